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
