//! The error type of mem-core.

use crate::device::DeviceError;
use crate::selection::MemoryUsage;

/// Why an allocation, a free or a host access failed. Every variant names the
/// values involved; none leaves the allocator changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// A size of zero was asked for.
    #[error("allocation size is zero")]
    ZeroSize,
    /// The alignment is not a power of two.
    #[error("alignment {alignment} is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// The alignment asked for.
        alignment: u64,
    },
    /// No memory type in `memory_type_bits` can serve `usage`.
    #[error("no memory type in memoryTypeBits {memory_type_bits:#b} can serve {usage:?} (device has {type_count} types)")]
    NoCompatibleMemoryType {
        /// The resource's `memoryTypeBits`.
        memory_type_bits: u32,
        /// The usage asked for.
        usage: MemoryUsage,
        /// How many memory types the device has.
        type_count: u32,
    },
    /// The size is larger than `maxMemoryAllocationSize`.
    #[error("size {size} exceeds maxMemoryAllocationSize {max}")]
    ExceedsMaxAllocationSize {
        /// The size asked for.
        size: u64,
        /// The device limit.
        max: u64,
    },
    /// The size is larger than every heap that could serve it.
    #[error("size {size} exceeds the largest compatible heap ({largest_heap} bytes)")]
    ExceedsHeap {
        /// The size asked for.
        size: u64,
        /// The largest heap size among compatible types.
        largest_heap: u64,
    },
    /// Every compatible memory type is out of device memory (or over its
    /// budget / heap limit where the request must stay within it).
    #[error("out of device memory for {size} bytes of {usage:?} (tried memory types {tried:#b})")]
    OutOfDeviceMemory {
        /// The size asked for.
        size: u64,
        /// The usage asked for.
        usage: MemoryUsage,
        /// Bit mask of the memory types tried.
        tried: u32,
    },
    /// The host ran out of memory inside a Vulkan call.
    #[error("host out of memory during a Vulkan call")]
    OutOfHostMemory,
    /// `maxMemoryAllocationCount` reached.
    #[error("too many VkDeviceMemory objects: {count} of maxMemoryAllocationCount {max}")]
    TooManyObjects {
        /// Live memory objects.
        count: u32,
        /// The device limit.
        max: u32,
    },
    /// The allocation was made by another allocator.
    #[error("allocation belongs to allocator #{owner}, not to this one (#{this})")]
    ForeignAllocation {
        /// The id of the allocator that made it.
        owner: u64,
        /// This allocator's id.
        this: u64,
    },
    /// Host access to memory that is not host-visible.
    #[error("memory type {memory_type_index} is not host-visible")]
    NotHostVisible {
        /// The allocation's memory type.
        memory_type_index: u32,
    },
    /// A host access range reaches past the allocation.
    #[error("range {offset}+{size} is outside the allocation of {allocation_size} bytes")]
    OutOfBounds {
        /// Offset inside the allocation.
        offset: u64,
        /// Length of the range.
        size: u64,
        /// The allocation's size.
        allocation_size: u64,
    },
    /// Another device failure (map failed, device lost, ...).
    #[error("device call failed: {0}")]
    Device(DeviceError),
}

/// A call that takes an object by value refused it: the error, and the
/// object handed back unchanged so that it is not lost (its memory or
/// handle would otherwise leak). Like [`std::io::IntoInnerError`].
///
/// [`crate::Allocator::free`] returns it for an allocation of another
/// allocator; mem-resources' destroy and retire calls return it for a
/// resource of another manager. Give the object to its owner, or take it
/// apart with [`Self::into_parts`]. There is deliberately no `From`
/// conversion to `E`: `?` would drop the object without a word.
///
/// The object is boxed (on this failure path only), so that the `Result`
/// of a call that succeeds stays small.
#[derive(Debug)]
#[must_use = "the refused object is handed back and leaks if dropped"]
pub struct Refused<T, E> {
    error: E,
    object: Box<T>,
}

impl<T, E> Refused<T, E> {
    /// Pairs `error` with the object it refused.
    pub fn new(error: E, object: T) -> Self {
        Self {
            error,
            object: Box::new(object),
        }
    }

    /// Why the object was refused.
    pub fn error(&self) -> &E {
        &self.error
    }

    /// The refused object.
    pub fn object(&self) -> &T {
        &self.object
    }

    /// The refused object, to give to its owner.
    pub fn into_inner(self) -> T {
        *self.object
    }

    /// The error and the object.
    pub fn into_parts(self) -> (E, T) {
        (self.error, *self.object)
    }
}

impl<T, E: std::fmt::Display> std::fmt::Display for Refused<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: std::fmt::Debug, E: std::error::Error> std::error::Error for Refused<T, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// An invariant [`crate::Allocator::validate`] found broken, with the
/// values that disagree. A pool is one placement index of a memory type
/// (`small` / `large`, with `linear` / `optimal` in front when
/// `bufferImageGranularity` separates them).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The placement core ([`crate::tlsf::Tlsf::validate`] or
    /// [`crate::buddy::BuddyBlock::validate`]) found its own state broken;
    /// `reason` is its description of the first broken invariant.
    #[error("memory type {memory_type_index}, {pool} pool: placement state broken: {reason}")]
    Placement {
        /// The memory type.
        memory_type_index: u32,
        /// The pool.
        pool: &'static str,
        /// What the placement core found.
        reason: String,
    },
    /// A pool's live-block counter disagrees with its blocks.
    #[error(
        "memory type {memory_type_index}, {pool} pool: {blocks} blocks, counter says {counter}"
    )]
    BlockCount {
        /// The memory type.
        memory_type_index: u32,
        /// The pool.
        pool: &'static str,
        /// Blocks holding memory.
        blocks: u32,
        /// The counter.
        counter: u32,
    },
    /// The placement index and the pool's memory blocks hold different
    /// slots.
    #[error("memory type {memory_type_index}, {pool} pool: placement has blocks {placed:?}, memory blocks {with_memory:?}")]
    BlockSlots {
        /// The memory type.
        memory_type_index: u32,
        /// The pool.
        pool: &'static str,
        /// Slots the placement index holds.
        placed: Vec<usize>,
        /// Slots holding a `VkDeviceMemory`.
        with_memory: Vec<usize>,
    },
    /// A block's placed size differs from its memory's size.
    #[error("memory type {memory_type_index}, {pool} pool, block {slot}: placed size {placed}, memory size {memory}")]
    BlockSize {
        /// The memory type.
        memory_type_index: u32,
        /// The pool.
        pool: &'static str,
        /// The block's slot.
        slot: usize,
        /// Size the placement index manages.
        placed: u64,
        /// Size of the `VkDeviceMemory`.
        memory: u64,
    },
    /// The reuse cache's counters disagree with its contents, or it keeps
    /// an empty list.
    #[error("memory type {memory_type_index}: cache holds {bytes} bytes in {objects} objects ({empty_lists} empty lists), counters say {counted_bytes} in {counted_objects}")]
    CacheCounters {
        /// The memory type.
        memory_type_index: u32,
        /// Bytes of the cached objects.
        bytes: u64,
        /// Cached objects.
        objects: u64,
        /// Size lists without an object.
        empty_lists: u64,
        /// The byte counter.
        counted_bytes: u64,
        /// The object counter.
        counted_objects: u64,
    },
    /// The reuse cache holds more objects than it may.
    #[error("memory type {memory_type_index}: {count} cached objects, at most {max} allowed")]
    TooManyCached {
        /// The memory type.
        memory_type_index: u32,
        /// Cached objects.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// The requested-bytes or allocation counters disagree with the live
    /// allocations.
    #[error("memory type {memory_type_index}: counters say {counted_bytes} bytes in {counted_allocations} allocations, live allocations hold {bytes} in {allocations}")]
    AllocationCounters {
        /// The memory type.
        memory_type_index: u32,
        /// Requested bytes of the live allocations.
        bytes: u64,
        /// Live allocations.
        allocations: u64,
        /// The requested-bytes counter.
        counted_bytes: u64,
        /// The allocation counter.
        counted_allocations: u64,
    },
    /// The empty-block counter disagrees with the blocks, or more empty
    /// blocks are kept than [`crate::AllocatorConfig::max_empty_blocks_per_type`].
    #[error("memory type {memory_type_index}: {empty} empty blocks, counter says {counter}, at most {max} kept")]
    EmptyBlocks {
        /// The memory type.
        memory_type_index: u32,
        /// Empty blocks.
        empty: u32,
        /// The counter.
        counter: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A memory type's memory (blocks, memory of its own, cached objects,
    /// and memory in flight: being created or given back) disagrees with
    /// its counters.
    #[error("memory type {memory_type_index}: holds {bytes} bytes ({in_flight_bytes} in flight) in {objects} memory objects, counters say {counted_bytes} in {counted_objects}")]
    TypeMemory {
        /// The memory type.
        memory_type_index: u32,
        /// Bytes held, in flight included.
        bytes: u64,
        /// Memory objects held, in flight included.
        objects: u32,
        /// Bytes in flight.
        in_flight_bytes: u64,
        /// The type's committed-bytes counter.
        counted_bytes: u64,
        /// The type's memory-object counter.
        counted_objects: u32,
    },
    /// A heap's committed-bytes counter disagrees with the sum of its
    /// memory types' counters.
    #[error("heap {heap_index}: its memory types hold {held} bytes, counter says {counter}")]
    HeapCommitted {
        /// The heap.
        heap_index: u32,
        /// Bytes the heap's memory types hold.
        held: u64,
        /// The counter.
        counter: u64,
    },
    /// The memory-object counter disagrees with the `VkDeviceMemory`
    /// objects the pools hold.
    #[error("{held} memory objects held, counter says {counter}")]
    MemoryObjects {
        /// Objects the pools hold.
        held: u32,
        /// The counter.
        counter: u32,
    },
}

/// Errors of the placement cores ([`crate::tlsf::Tlsf`],
/// [`crate::buddy::BuddyBlock`]) and of [`crate::VirtualBlock`]. Bad input
/// is always one of these, never a panic, and leaves the core unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// An allocation of zero bytes was requested.
    #[error("allocation size is zero")]
    ZeroSize,
    /// The alignment is neither zero nor a power of two.
    #[error("alignment {alignment} is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// The requested alignment.
        alignment: u64,
    },
    /// The request can never fit in this block (or region), however empty.
    #[error(
        "allocation of {size} bytes with alignment {alignment} exceeds the block capacity of {capacity} bytes"
    )]
    TooLarge {
        /// Requested size in bytes.
        size: u64,
        /// Requested alignment in bytes.
        alignment: u64,
        /// Size of the whole block in bytes.
        capacity: u64,
    },
    /// The request could fit in an empty block, but no free range is large
    /// enough now.
    #[error(
        "no free block for {size} bytes with alignment {alignment}; the largest free block is {largest_free} bytes"
    )]
    OutOfSpace {
        /// Requested size in bytes.
        size: u64,
        /// Requested alignment in bytes.
        alignment: u64,
        /// Largest free range at the time of the request.
        largest_free: u64,
    },
    /// No live allocation starts at this offset.
    #[error("no live allocation at offset {offset}")]
    UnknownOffset {
        /// The offset that was passed.
        offset: u64,
    },
    /// A size or placement unit the core cannot manage:
    /// [`BuddyBlock::new`](crate::buddy::BuddyBlock::new) needs powers of two
    /// with `min_block <= size <= 2^26 * min_block`;
    /// [`Tlsf::new`](crate::tlsf::Tlsf::new) a power-of-two granularity and
    /// [`Tlsf::add_region`](crate::tlsf::Tlsf::add_region) a non-zero
    /// multiple of it below `2^32 - 1` units.
    #[error(
        "invalid placement setup: size {size} with placement unit {min_block} (the buddy needs powers of two with min_block <= size <= 2^26 * min_block; TLSF a power-of-two unit and a non-zero multiple of it below 2^32 - 1 units)"
    )]
    InvalidConfig {
        /// The block or region size that was passed (0 for a TLSF
        /// granularity alone).
        size: u64,
        /// The minimum block (buddy) or granularity (TLSF) that was passed.
        min_block: u64,
    },
    /// A [`VirtualAllocation`](crate::VirtualAllocation) was given to a
    /// [`VirtualBlock`](crate::VirtualBlock) other than the one that made it
    /// (or to the same block after [`clear`](crate::VirtualBlock::clear)).
    #[error("allocation belongs to virtual block {allocation_block_id}, not to block {block_id}")]
    ForeignAllocation {
        /// Id of the block the allocation was given to.
        block_id: u64,
        /// Id of the block (generation) that made the allocation.
        allocation_block_id: u64,
    },
}
