//! The device-memory allocator: per-memory-type pools of `VkDeviceMemory`
//! blocks, memory of its own for large requests, budget-aware fallback.
//!
//! # Pools and blocks
//! Each memory type has a pool behind its own lock (so threads allocating
//! from different types never contend). A pool holds blocks; a block is one
//! `VkDeviceMemory` of a power-of-two size. Placement inside the blocks is
//! [`BlockPlacement::Tlsf`] by default: one two-level segregated fit index
//! over all the pool's blocks ([`crate::tlsf`]), so a request takes the
//! best-fitting free range of any block in O(1);
//! [`BlockPlacement::Buddy`] keeps the tail-trimmed buddy
//! ([`crate::buddy::BuddyBlock`]) per block. Pools grow geometrically: with
//! TLSF the first block is 1/16 of the preferred size
//! ([`Allocator::preferred_block_size`]) and each new one 1/8 of what the
//! pool already holds (up to the preferred size), so a small app does not
//! commit 256 MiB and a large one has at most 1/9 of its pool in its newest
//! block. Requests of at least [`AllocatorConfig::dedicated_threshold`]
//! (1 MiB) or over a quarter of a block, or whose resource the driver wants
//! dedicated (`VkMemoryDedicatedRequirements`), get their own
//! `VkDeviceMemory`; freed ones without a dedicated target are cached for
//! reuse, by default as long as the heap stays within the peak it already
//! reached ([`CacheRetention`]; [`Allocator::trim`] empties the cache). When
//! a block becomes empty it is kept only if it is the type's one
//! empty block (hysteresis against allocate/free ping-pong at a block
//! boundary); others are freed at once.
//!
//! # bufferImageGranularity
//! Linear resources (buffers, linear images) and optimal (tiled) images must
//! not share a `bufferImageGranularity` page. Both placements hand out ranges
//! that start and end on multiples of [`AllocatorConfig::min_block_size`], so if
//! the granularity is no larger than the minimum block, two allocations never
//! share a page and one set of blocks serves both classes. Otherwise (e.g.
//! 1024 on NVIDIA with the default 256-byte minimum) each pool keeps separate
//! blocks per class, so a page is never shared either.
//!
//! # Budget
//! With `VK_EXT_memory_budget` enabled the driver's budget is read whenever a
//! new `VkDeviceMemory` is about to be allocated; otherwise the allocator
//! counts its own committed bytes against 80% of the heap (the figure VMA
//! uses). A type whose heap is over budget is skipped in favour of the next
//! compatible type; only if every type is over budget does the allocator
//! exceed it, unless [`AllocationFlags::WITHIN_BUDGET`] forbids that.
//! [`AllocatorConfig::heap_size_limits`] caps a heap hard, like VMA's
//! `pHeapSizeLimit`.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::lock::Mutex;
use ash::vk;
use smallvec::SmallVec;

use crate::device::{
    AshMemoryDevice, DedicatedTarget, DeviceError, DeviceMemoryProperties, MappedRange,
    MemoryAllocateRequest, MemoryDevice,
};
use crate::error::{AllocError, Refused, ValidationError};
use crate::placement::{BlockPlacement, PoolPlacer};
use crate::selection::{candidate_types, rank_memory_types, MemoryUsage, RankedTypes};
use crate::stats::{
    AllocatorStats, BlockMap, CorruptionReport, DeviceMargin, HeapStats, LeakedAllocation,
    MemoryTypeStats, RangeKind, RangeMap,
};

static NEXT_ALLOCATOR_ID: AtomicU64 = AtomicU64::new(1);

/// 1 MiB, for the block-size defaults.
const MIB: u64 = 1 << 20;
/// With [`CacheRetention::LiveShare`], freed memory objects of their own are
/// kept for reuse up to 1/16 of the memory type's live requested bytes.
const CACHE_SHARE: u64 = 16;
/// At most this many cached objects per memory type, so the cache never
/// holds many of `maxMemoryAllocationCount`'s objects.
const MAX_CACHED_OBJECTS: u32 = 64;

/// Tuning of an [`Allocator`]. Every field has a documented default
/// ([`Default`]); out-of-range values are clamped as each field says.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocatorConfig {
    /// Preferred block size on heaps larger than 1 GiB. Default 256 MiB.
    /// Rounded down to a power of two, clamped to `[1 MiB, 4 GiB]`. Heaps of
    /// 1 GiB or less use heap/8 (rounded down to a power of two, at least
    /// 1 MiB) instead.
    pub preferred_large_heap_block_size: u64,
    /// Placement unit (smallest block), in bytes: every sub-allocation is rounded up to a
    /// multiple of it and aligned to it. Default 256. Rounded up to a power of
    /// two and raised to at least `nonCoherentAtomSize` (so flushing one
    /// allocation never touches a neighbour's atoms). Waste per allocation is
    /// below this size.
    pub min_block_size: u64,
    /// Grow each pool geometrically: a new block is 1/8 of the pool's current
    /// size (TLSF; half with the buddy), rounded down to a power of two and
    /// kept within 1/16..1 (buddy: 1/8..1) of the preferred size, so a small
    /// app commits little and a big one never has more than 1/9 (buddy: about
    /// a third) of its pool in an unused newest block. Default true; false
    /// makes every block the preferred size.
    pub small_first_blocks: bool,
    /// Empty blocks kept per memory type before freeing further empty ones.
    /// Default 1.
    pub max_empty_blocks_per_type: u32,
    /// Hard per-heap limits in bytes (`None` = the heap size), like VMA's
    /// `pHeapSizeLimit`. Indexed by heap; missing entries mean no limit.
    pub heap_size_limits: Vec<Option<u64>>,
    /// Chain `VkMemoryAllocateFlagsInfo::DEVICE_ADDRESS` on every allocation
    /// (the engine enabled `bufferDeviceAddress`). Default false.
    pub device_address: bool,
    /// Requests whose size and alignment, rounded up to a power of two, are
    /// at most this many bytes go to blocks of their own, apart from larger
    /// requests. Default 1 MiB; 0 puts all sizes together. For the buddy,
    /// small allocations scattered through a block leave no naturally
    /// aligned large range free, so mixing them with multi-MiB resources
    /// strands most of a block (measured with `examples/memory_report`).
    /// With the default [`Self::dedicated_threshold`] (also 1 MiB) larger
    /// requests mostly get memory of their own anyway.
    pub small_allocation_limit: u64,
    /// Debug corruption detection (VMA's `VMA_DEBUG_MARGIN` +
    /// `VMA_DEBUG_DETECT_CORRUPTION`). Default 0: off, and the allocation
    /// path does no extra work. When > 0 (rounded up to a multiple of 16),
    /// every sub-allocation in a `HOST_VISIBLE` memory type gets this many
    /// bytes before and after it (the front margin is rounded up to the
    /// allocation's alignment so the returned offset stays aligned), filled
    /// with the canary `0x7F84E666` (little-endian, repeated; each byte
    /// depends on its offset in the `VkDeviceMemory`). The margins are
    /// checked on [`Allocator::free`] and by [`Allocator::check_corruption`];
    /// a damaged one is printed to stderr, counted in
    /// [`crate::stats::TotalStats::corruptions_detected`] and kept for
    /// [`Allocator::corruption_reports`]. Device writes into the margins of
    /// non-coherent memory are seen only after the range is invalidated.
    ///
    /// Sub-allocations in memory types that are not `HOST_VISIBLE` get
    /// margins too (same layout, except that the back margin starts at the
    /// end of the request rounded up to 4 bytes, so the 0..3 bytes of that
    /// rounding are not guarded), but the host can neither fill nor read
    /// them: the allocator only tracks them ([`Allocator::device_margins`]),
    /// and a GPU checker (`mem_staging::margins::MarginChecker`) fills them
    /// with `vkCmdFillBuffer` and checks them with a copy to a readback
    /// buffer, reporting damage through [`Allocator::report_corruption`].
    /// Such margins are *not* checked on [`Allocator::free`] or by
    /// [`Allocator::check_corruption`], and writes that land before the
    /// checker's first fill are not seen. Not covered at all: dedicated
    /// allocations (their own `VkDeviceMemory`; an overrun there leaves the
    /// memory).
    pub debug_margin: u64,
    /// How sub-allocations are placed inside a block. Default
    /// [`BlockPlacement::Tlsf`]; [`BlockPlacement::Buddy`] gives every
    /// allocation natural alignment at the cost of about 60% block fill under
    /// churn (see [`crate::tlsf`] for the measurements).
    pub placement: BlockPlacement,
    /// Requests of at least this many bytes get a `VkDeviceMemory` of their
    /// own (exact size) instead of a range of a block, while fewer than 3/4
    /// of `maxMemoryAllocationCount` objects exist. Default 1 MiB. Above a
    /// quarter of the preferred block size memory of its own is always used.
    /// Large requests fragment blocks: in the peers benchmark's mixed-assets
    /// trace (1 KiB..32 MiB) no placement in shared blocks got past 75%
    /// efficiency (address-ordered first fit; best fit 69%, TLSF 65%), while
    /// memory of its own for requests of 1 MiB and more reached 91% (2 MiB:
    /// 88%). The price is a `vkAllocateMemory` for most large requests.
    /// Freed objects of this kind are cached (see [`Self::cache_retention`])
    /// and serve later requests up to 1/4 smaller without a
    /// `vkAllocateMemory`. `u64::MAX` turns it off.
    pub dedicated_threshold: u64,
    /// Leave the margins of `HOST_VISIBLE` sub-allocations to the GPU
    /// checker as well, exactly like those of device-local memory (see
    /// [`Self::debug_margin`]): the host neither writes nor reads them.
    /// Default false. For host-visible memory whose host reads are slow
    /// (write-combined system memory, ReBAR VRAM read across PCIe), and to
    /// exercise the GPU path on devices whose only memory type is
    /// host-visible (lavapipe, most UMA GPUs). No effect when
    /// [`Self::debug_margin`] is 0.
    pub debug_margin_gpu_checked: bool,
    /// How many freed memory objects of their own are kept for reuse (see
    /// [`Self::dedicated_threshold`]). Default [`CacheRetention::UpToPeak`].
    pub cache_retention: CacheRetention,
}

/// How long freed memory objects of their own (requests at or above
/// [`AllocatorConfig::dedicated_threshold`]) stay cached for reuse by later
/// requests up to 1/4 smaller, which then need no `vkAllocateMemory`.
///
/// Either way at most 64 objects per memory type are kept, a full heap or
/// an exhausted object count empties the cache before anything fails, and
/// [`Allocator::trim`] empties it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheRetention {
    /// Keep at most 1/16 of the memory type's live requested bytes: memory
    /// goes back to the driver soon after it is freed.
    LiveShare,
    /// Keep freed objects as long as the heap's committed bytes stay within
    /// the peak they already reached (since creation or the last
    /// [`Allocator::trim`]): before a new `VkDeviceMemory` would push the
    /// heap past that peak, cached objects on the heap are freed first. The
    /// cache thus does not raise peak memory (threads creating memory at the
    /// same moment may each count on the same cached bytes, and the peak
    /// then rises by the difference), and a game that streams assets in and
    /// out at a steady level stops calling `vkAllocateMemory`. When a heap
    /// is over its budget or limit, the cache is emptied before smaller
    /// blocks are tried. Call [`Allocator::trim`] after a level unload to
    /// give the memory back.
    UpToPeak,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            preferred_large_heap_block_size: 256 * MIB,
            min_block_size: 256,
            small_first_blocks: true,
            max_empty_blocks_per_type: 1,
            heap_size_limits: Vec::new(),
            device_address: false,
            small_allocation_limit: MIB,
            debug_margin: 0,
            placement: BlockPlacement::Tlsf,
            dedicated_threshold: MIB,
            debug_margin_gpu_checked: false,
            cache_retention: CacheRetention::UpToPeak,
        }
    }
}

/// What the engine hands the allocator: its own Vulkan objects, borrowed,
/// and the options around them.
///
/// It has no `Default` since the handles are the engine's; the tuning that
/// has defaults is [`AllocatorConfig`]. [`Self::new`] takes the handles and
/// defaults the rest:
///
/// ```no_run
/// # fn f(instance: &ash::Instance, physical_device: ash::vk::PhysicalDevice, device: &ash::Device) {
/// use mem_core::{Allocator, AllocatorConfig, AllocatorDesc};
/// let desc = AllocatorDesc::new(instance, physical_device, device)
///     .memory_budget(true)
///     .config(AllocatorConfig { debug_margin: 16, ..Default::default() });
/// // SAFETY: the engine's handles outlive the allocator.
/// let allocator = unsafe { Allocator::new(desc) };
/// # }
/// ```
pub struct AllocatorDesc<'a> {
    /// The engine's instance.
    pub instance: &'a ash::Instance,
    /// The physical device `device` was created from.
    pub physical_device: vk::PhysicalDevice,
    /// The engine's device.
    pub device: &'a ash::Device,
    /// Whether the engine enabled `VK_EXT_memory_budget` on `device`.
    pub memory_budget: bool,
    /// Host allocation callbacks passed to every Vulkan call the allocator
    /// makes (for example [`crate::host::TrackingHostAllocator`]'s).
    pub allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
    /// Tuning; `AllocatorConfig::default()` suits most engines.
    pub config: AllocatorConfig,
}

impl<'a> AllocatorDesc<'a> {
    /// The engine's handles, with `VK_EXT_memory_budget` not enabled, no
    /// host allocation callbacks and [`AllocatorConfig::default`].
    pub fn new(
        instance: &'a ash::Instance,
        physical_device: vk::PhysicalDevice,
        device: &'a ash::Device,
    ) -> Self {
        Self {
            instance,
            physical_device,
            device,
            memory_budget: false,
            allocation_callbacks: None,
            config: AllocatorConfig::default(),
        }
    }

    /// Sets whether the engine enabled `VK_EXT_memory_budget` on the device.
    pub fn memory_budget(mut self, enabled: bool) -> Self {
        self.memory_budget = enabled;
        self
    }

    /// Sets the host allocation callbacks.
    pub fn allocation_callbacks(mut self, callbacks: vk::AllocationCallbacks<'static>) -> Self {
        self.allocation_callbacks = Some(callbacks);
        self
    }

    /// Sets the tuning.
    pub fn config(mut self, config: AllocatorConfig) -> Self {
        self.config = config;
        self
    }
}

/// Whether a resource is linear or optimally tiled, for
/// `bufferImageGranularity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ResourceClass {
    /// Buffers and `VK_IMAGE_TILING_LINEAR` images.
    Linear,
    /// `VK_IMAGE_TILING_OPTIMAL` images.
    Optimal,
}

/// Whether the memory should be a `VkDeviceMemory` of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dedicated {
    /// Sub-allocate unless the size calls for a dedicated allocation.
    #[default]
    No,
    /// The driver prefers a dedicated allocation
    /// (`prefersDedicatedAllocation`); honoured while memory objects are
    /// plentiful.
    Preferred(Option<DedicatedTarget>),
    /// The driver requires it (`requiresDedicatedAllocation`) or the caller
    /// insists.
    Required(Option<DedicatedTarget>),
}

bitflags::bitflags! {
    /// Options of one allocation.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct AllocationFlags: u32 {
        /// Fail with out-of-memory rather than exceed a heap's budget.
        const WITHIN_BUDGET = 1;
        /// Never allocate a new `VkDeviceMemory`: fail unless an existing
        /// block has room.
        const NEVER_ALLOCATE = 2;
    }
}

/// One allocation request, from raw `VkMemoryRequirements`.
#[derive(Clone, Debug)]
pub struct AllocationDesc<'a> {
    /// Size in bytes (`VkMemoryRequirements::size`).
    pub size: u64,
    /// Alignment in bytes, a power of two (`VkMemoryRequirements::alignment`);
    /// 0 means 1.
    pub alignment: u64,
    /// Acceptable memory types (`VkMemoryRequirements::memoryTypeBits`).
    pub memory_type_bits: u32,
    /// What the memory is for.
    pub usage: MemoryUsage,
    /// Linear or optimal, for `bufferImageGranularity`.
    pub class: ResourceClass,
    /// Dedicated allocation hint.
    pub dedicated: Dedicated,
    /// Options.
    pub flags: AllocationFlags,
    /// Name shown in statistics and leak reports.
    pub name: Option<&'a str>,
}

impl<'a> AllocationDesc<'a> {
    /// A request for `requirements` with `usage`; linear, not dedicated, unnamed.
    pub fn new(requirements: vk::MemoryRequirements, usage: MemoryUsage) -> Self {
        Self {
            size: requirements.size,
            alignment: requirements.alignment,
            memory_type_bits: requirements.memory_type_bits,
            usage,
            class: ResourceClass::Linear,
            dedicated: Dedicated::No,
            flags: AllocationFlags::empty(),
            name: None,
        }
    }

    /// Sets the resource class.
    pub fn class(mut self, class: ResourceClass) -> Self {
        self.class = class;
        self
    }

    /// Sets the dedicated hint.
    pub fn dedicated(mut self, dedicated: Dedicated) -> Self {
        self.dedicated = dedicated;
        self
    }

    /// Sets the flags.
    pub fn flags(mut self, flags: AllocationFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Names the allocation.
    pub fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }
}

/// A host pointer into persistently mapped memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MappedPtr(NonNull<u8>);

// SAFETY: the pointer points into a persistently mapped VkDeviceMemory that
// lives as long as the allocator; sending the address between threads is
// harmless, and every access through it goes through methods that take
// `&mut Allocation` for writes (exclusive) or are `unsafe` for the caller.
unsafe impl Send for MappedPtr {}
// SAFETY: as above.
unsafe impl Sync for MappedPtr {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Block { class: u8, block: u32, handle: u32 },
    Dedicated { slot: u32 },
}

/// Memory handed out by [`Allocator::allocate`]: a range of a
/// `VkDeviceMemory`. Free it with [`Allocator::free`] (by value); dropping it
/// without freeing leaks the range until the allocator is dropped, which
/// reports it.
#[derive(Debug)]
#[must_use = "an allocation must be freed with Allocator::free"]
pub struct Allocation {
    memory: vk::DeviceMemory,
    offset: u64,
    size: u64,
    memory_size: u64,
    memory_type_index: u32,
    mapped: Option<MappedPtr>,
    coherent: bool,
    allocator_id: u64,
    placement: Placement,
    /// Bytes of debug margin before `offset` (0 without margins).
    margin_front: u64,
}

impl Allocation {
    /// The `VkDeviceMemory` to bind.
    pub fn memory(&self) -> vk::DeviceMemory {
        self.memory
    }

    /// Offset of the allocation inside [`Self::memory`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes reserved for the caller at [`Self::offset`] of [`Self::memory`]:
    /// [`AllocationDesc::size`] as asked for (for a resource, its
    /// `VkMemoryRequirements::size`, which may exceed the resource's own
    /// size). Host access ([`Allocator::write`], [`Self::mapped_slice_mut`])
    /// is checked against it. The allocator may keep a few more bytes
    /// behind it (rounding to the minimum block, debug margins); those are
    /// not the caller's.
    pub fn reserved_size(&self) -> u64 {
        self.size
    }

    /// The memory type index.
    pub fn memory_type_index(&self) -> u32 {
        self.memory_type_index
    }

    /// Host pointer to the first byte when the memory is host-visible
    /// (persistently mapped), else `None`.
    pub fn mapped_ptr(&self) -> Option<NonNull<u8>> {
        self.mapped.map(|p| p.0)
    }

    /// True when the memory is `HOST_COHERENT` (no flush/invalidate needed).
    pub fn is_coherent(&self) -> bool {
        self.coherent
    }

    /// True when this allocation owns its whole `VkDeviceMemory`.
    pub fn is_dedicated(&self) -> bool {
        matches!(self.placement, Placement::Dedicated { .. })
    }

    /// The mapped bytes, for writing.
    ///
    /// Returns `None` when the memory is not host-visible.
    ///
    /// # Safety
    /// - no GPU work may read or write the range while the slice is in use;
    /// - for non-coherent memory, call [`Allocator::flush`] after writing.
    pub unsafe fn mapped_slice_mut(&mut self) -> Option<&mut [u8]> {
        let ptr = self.mapped?.0;
        let len = usize::try_from(self.size).ok()?;
        // SAFETY: the pointer is valid for `size` bytes of mapped memory for as
        // long as the allocation lives; `&mut self` makes the host access
        // exclusive; the caller guarantees the GPU is not using it.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) })
    }
}

/// Per-allocation metadata kept by the placer (for stats and leaks): 16
/// bytes, since every allocate writes it and every free reads it; what only
/// named allocations and debug margins need lives in a box.
#[derive(Debug)]
struct AllocMeta {
    requested: u64,
    extra: Option<Box<MetaExtra>>,
}

/// The rare part of [`AllocMeta`].
#[derive(Debug, Default)]
struct MetaExtra {
    name: Option<Box<str>>,
    /// Debug margin before the user range (0 without margins); the margin
    /// after it is `kept - front - requested` bytes, at least the configured
    /// margin.
    front: u64,
    /// Nonzero when the margins are left to a GPU checker (see
    /// [`AllocatorConfig::debug_margin`]): the allocation's id in
    /// [`DeviceMargin::allocation_id`]. The back margin then starts at
    /// `front + requested` rounded up to 4.
    device_margin: u64,
    /// A GPU checker wrote the canary into both margins.
    device_margin_filled: bool,
}

impl AllocMeta {
    fn new(requested: u64, name: Option<&str>, front: u64, device_margin: u64) -> Self {
        let extra = (name.is_some() || front > 0 || device_margin > 0).then(|| {
            Box::new(MetaExtra {
                name: name.map(Box::from),
                front,
                device_margin,
                device_margin_filled: false,
            })
        });
        Self { requested, extra }
    }

    fn name(&self) -> Option<String> {
        self.extra.as_ref()?.name.as_deref().map(str::to_owned)
    }

    fn front(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.front)
    }

    fn device_margin(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.device_margin)
    }

    fn device_margin_filled(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.device_margin_filled)
    }
}

struct Block {
    memory: vk::DeviceMemory,
    /// Unique for the allocator's life ([`DeviceMargin::block_id`]).
    id: u64,
    size: u64,
    mapped: Option<MappedPtr>,
}

impl Block {
    /// The block as memory to unmap and free outside the lock.
    fn retired(self) -> Retired {
        Retired {
            memory: self.memory,
            size: self.size,
            mapped: self.mapped.is_some(),
        }
    }
}

struct DedicatedMemory {
    memory: vk::DeviceMemory,
    size: u64,
    requested: u64,
    mapped: Option<MappedPtr>,
    name: Option<Box<str>>,
    /// Allocated without a dedicated target: may serve another request
    /// after it is freed (see [`TypePool::cache`]).
    reusable: bool,
}

/// A freed memory object of its own kept for the next large request.
struct CachedMemory {
    memory: vk::DeviceMemory,
    mapped: Option<MappedPtr>,
}

struct ClassPool {
    /// Indexed by the placer's slots.
    blocks: Vec<Option<Block>>,
    /// Where allocations go inside the blocks.
    placer: PoolPlacer<AllocMeta>,
    /// Index of the block that served last: tried first.
    hint: usize,
    /// Blocks created so far (drives the small-first growth).
    live_blocks: u32,
}

/// The pool of one memory type.
struct TypePool {
    /// One class pool, or two (linear, optimal) when granularity demands.
    classes: SmallVec<[ClassPool; 2]>,
    dedicated: Vec<Option<DedicatedMemory>>,
    dedicated_free_slots: Vec<u32>,
    /// Freed large memory objects by size, reused by requests at most 1/4
    /// smaller (no `vkAllocateMemory`), bounded by [`CACHE_SHARE`].
    cache: BTreeMap<u64, SmallVec<[CachedMemory; 1]>>,
    cached_bytes: u64,
    cached_count: u32,
    requested_bytes: u64,
    allocation_count: u64,
    empty_blocks: u32,
    /// `VkDeviceMemory` of this type in bytes: blocks, memory of its own,
    /// cached objects and memory in flight. The allocator's per-heap
    /// committed bytes and its object count are sums of these and change
    /// only together with them, under this lock, so
    /// [`Allocator::validate`] finds them exact while other threads
    /// allocate.
    committed_bytes: u64,
    /// The memory objects of [`Self::committed_bytes`].
    memory_objects: u32,
    /// The part of [`Self::committed_bytes`] that no block, dedicated slot
    /// or cache entry holds: memory being created (reserved,
    /// `vkAllocateMemory` running) or given back (taken out, `vkFreeMemory`
    /// running).
    in_flight_bytes: u64,
    /// The memory objects of [`Self::in_flight_bytes`].
    in_flight_objects: u32,
}

impl TypePool {
    /// `r`, just taken out of the pool, stays counted as in flight until
    /// [`Allocator::release_memory`] has freed it.
    fn retire(&mut self, r: Retired) -> Retired {
        self.mark_retired(&r);
        r
    }

    fn mark_retired(&mut self, r: &Retired) {
        self.in_flight_bytes += r.size;
        self.in_flight_objects += 1;
    }

    /// Memory created for this pool (counted in flight since its
    /// reservation) now held by a block or a dedicated slot.
    fn land(&mut self, size: u64) {
        self.in_flight_bytes -= size;
        self.in_flight_objects -= 1;
    }
}

/// Memory taken out of a pool (or never placed in one), to be unmapped and
/// freed outside the lock; counted in flight until then.
struct Retired {
    memory: vk::DeviceMemory,
    size: u64,
    mapped: bool,
}

/// Sub-allocates `VkDeviceMemory` for an engine. `Send + Sync`: allocate and
/// free from any thread; each memory type has its own lock.
pub struct Allocator {
    id: u64,
    device: Box<dyn MemoryDevice>,
    props: DeviceMemoryProperties,
    config: AllocatorConfig,
    min_block: u64,
    separate_classes: bool,
    ranked: [RankedTypes; 4],
    /// [`Self::preferred_block_size`] of each memory type, computed once.
    preferred: Vec<u64>,
    pools: Vec<Mutex<TypePool>>,
    /// Bytes of `VkDeviceMemory` committed per heap (our own accounting).
    heap_committed: Vec<AtomicU64>,
    /// Highest `heap_committed` since creation or the last [`Self::trim`]
    /// (see [`CacheRetention::UpToPeak`]).
    heap_peak: Vec<AtomicU64>,
    memory_objects: AtomicU32,
    allocate_memory_calls: AtomicU64,
    /// Effective debug margin (0 = off).
    margin: u64,
    corruptions: AtomicU64,
    corruption_log: Mutex<Vec<CorruptionReport>>,
    /// Source of block ids and device-margin allocation ids.
    next_serial: AtomicU64,
}

/// The debug-margin canary, little-endian: byte `p` of a `VkDeviceMemory`
/// inside a margin holds `CANARY[p % 4]`.
const CANARY: [u8; 4] = 0x7F84_E666u32.to_le_bytes();

fn usage_index(usage: MemoryUsage) -> usize {
    match usage {
        MemoryUsage::GpuOnly => 0,
        MemoryUsage::Upload => 1,
        MemoryUsage::Dynamic => 2,
        MemoryUsage::Readback => 3,
    }
}

fn prev_power_of_two(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        1 << (63 - x.leading_zeros())
    }
}

/// Why one memory type could not serve a request.
enum TypeFailure {
    /// Out of memory or over budget: try the next type.
    Exhausted,
    /// Stop and report.
    Fatal(AllocError),
}

impl Allocator {
    /// Creates an allocator over the engine's device.
    ///
    /// # Safety
    /// - `desc.instance`, `desc.physical_device` and `desc.device` are valid,
    ///   related, and outlive the allocator;
    /// - `desc.allocation_callbacks`, when given, stay valid and thread-safe
    ///   for the allocator's lifetime.
    #[doc(alias = "vmaCreateAllocator")]
    pub unsafe fn new(desc: AllocatorDesc<'_>) -> Result<Self, AllocError> {
        // SAFETY: forwarded from this function's contract.
        let device = unsafe {
            AshMemoryDevice::new(
                desc.instance,
                desc.physical_device,
                desc.device,
                desc.memory_budget,
                desc.allocation_callbacks,
            )
        };
        Ok(Self::with_device(Box::new(device), desc.config))
    }

    /// Creates an allocator over any [`MemoryDevice`] (the fake device in
    /// tests, or an engine's own wrapper).
    pub fn with_device(device: Box<dyn MemoryDevice>, config: AllocatorConfig) -> Self {
        let props = device.properties().clone();
        let min_block = config
            .min_block_size
            .max(props.non_coherent_atom_size)
            .max(1)
            .next_power_of_two();
        let separate_classes = props.buffer_image_granularity > min_block;
        let ranked = MemoryUsage::ALL.map(|u| rank_memory_types(&props, u));
        // Pools per memory type: (linear, optimal if separated) x (small, large).
        let class_count = if separate_classes { 4 } else { 2 };
        let pools = props
            .memory_types
            .iter()
            .map(|_| {
                Mutex::new(TypePool {
                    classes: (0..class_count)
                        .map(|_| ClassPool {
                            blocks: Vec::new(),
                            placer: PoolPlacer::new(config.placement, min_block),
                            hint: 0,
                            live_blocks: 0,
                        })
                        .collect(),
                    dedicated: Vec::new(),
                    dedicated_free_slots: Vec::new(),
                    cache: BTreeMap::new(),
                    cached_bytes: 0,
                    cached_count: 0,
                    requested_bytes: 0,
                    allocation_count: 0,
                    empty_blocks: 0,
                    committed_bytes: 0,
                    memory_objects: 0,
                    in_flight_bytes: 0,
                    in_flight_objects: 0,
                })
            })
            .collect();
        let zeroes = || {
            props
                .memory_heaps
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect()
        };
        let (heap_committed, heap_peak) = (zeroes(), zeroes());
        let margin = config
            .debug_margin
            .checked_next_multiple_of(16)
            .unwrap_or(0);
        let large =
            prev_power_of_two(config.preferred_large_heap_block_size).clamp(MIB, 4096 * MIB);
        let preferred = props
            .memory_types
            .iter()
            .map(|t| {
                let heap_size = props.memory_heaps[t.heap_index as usize].size;
                let size = if heap_size > 1024 * MIB {
                    large
                } else {
                    prev_power_of_two(heap_size / 8).max(MIB)
                };
                size.max(min_block)
            })
            .collect();
        Self {
            id: NEXT_ALLOCATOR_ID.fetch_add(1, Ordering::Relaxed),
            device,
            props,
            config,
            min_block,
            separate_classes,
            ranked,
            preferred,
            pools,
            heap_peak,
            heap_committed,
            memory_objects: AtomicU32::new(0),
            allocate_memory_calls: AtomicU64::new(0),
            margin,
            corruptions: AtomicU64::new(0),
            corruption_log: Mutex::new(Vec::new()),
            next_serial: AtomicU64::new(1),
        }
    }

    /// The device's memory properties as the allocator read them.
    pub fn memory_properties(&self) -> &DeviceMemoryProperties {
        &self.props
    }

    /// The device calls underneath.
    pub fn device(&self) -> &dyn MemoryDevice {
        &*self.device
    }

    /// The configuration in force (with the effective minimum block).
    pub fn config(&self) -> &AllocatorConfig {
        &self.config
    }

    /// The effective minimum block (placement unit) (see
    /// [`AllocatorConfig::min_block_size`]).
    pub fn min_block_size(&self) -> u64 {
        self.min_block
    }

    /// True when linear and optimal resources get separate blocks because
    /// `bufferImageGranularity` exceeds the minimum block.
    pub fn separates_resource_classes(&self) -> bool {
        self.separate_classes
    }

    /// The memory types `usage` would try, best first, restricted to
    /// `memory_type_bits`.
    pub fn memory_type_candidates(&self, usage: MemoryUsage, memory_type_bits: u32) -> Vec<u32> {
        candidate_types(&self.ranked[usage_index(usage)], memory_type_bits).collect()
    }

    /// Preferred block size for memory type `type_index`'s heap.
    pub fn preferred_block_size(&self, type_index: u32) -> u64 {
        self.preferred[type_index as usize]
    }

    fn heap_limit(&self, heap: usize) -> u64 {
        let size = self.props.memory_heaps[heap].size;
        self.config
            .heap_size_limits
            .get(heap)
            .copied()
            .flatten()
            .map_or(size, |l| l.min(size))
    }

    /// Allocates memory for `desc`.
    ///
    /// Tries the memory types `desc.usage` ranks best first, falling back to
    /// the next compatible type when one is out of memory or over budget.
    #[doc(alias = "vmaAllocateMemory")]
    pub fn allocate(&self, desc: &AllocationDesc<'_>) -> Result<Allocation, AllocError> {
        if desc.size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let alignment = desc.alignment.max(1);
        if !alignment.is_power_of_two() {
            return Err(AllocError::AlignmentNotPowerOfTwo {
                alignment: desc.alignment,
            });
        }
        let ranked = &self.ranked[usage_index(desc.usage)];
        let type_count = self.props.memory_types.len() as u32;
        let Some(best) = candidate_types(ranked, desc.memory_type_bits).next() else {
            return Err(AllocError::NoCompatibleMemoryType {
                memory_type_bits: desc.memory_type_bits,
                usage: desc.usage,
                type_count,
            });
        };
        // Fast path: room in an existing block of the best type. The limits,
        // the fallback over types and new memory below run only on a miss.
        // (Debug margins take the full path.)
        if self.margin == 0
            && desc.size <= self.props.max_memory_allocation_size
            && !self.wants_dedicated(best, desc, alignment)
        {
            let class = self.class_index(desc.class, desc.size, alignment);
            let mut pool = self.pools[best as usize].lock();
            if let Some(a) =
                self.try_existing_blocks(&mut pool, best, class, desc, desc.size, 0, alignment)
            {
                return Ok(a);
            }
        }
        if desc.size > self.props.max_memory_allocation_size {
            return Err(AllocError::ExceedsMaxAllocationSize {
                size: desc.size,
                max: self.props.max_memory_allocation_size,
            });
        }
        let largest_heap = candidate_types(ranked, desc.memory_type_bits)
            .map(|t| self.heap_limit(self.props.memory_types[t as usize].heap_index as usize))
            .max()
            .unwrap_or(0);
        if desc.size > largest_heap {
            return Err(AllocError::ExceedsHeap {
                size: desc.size,
                largest_heap,
            });
        }

        let mut tried = 0u32;
        // Two passes: first within every heap's budget, then (unless the
        // caller forbids it) past the soft budget, up to the hard heap limit.
        let passes: &[bool] = if desc.flags.contains(AllocationFlags::WITHIN_BUDGET) {
            &[true]
        } else {
            &[true, false]
        };
        for &within_budget in passes {
            for t in candidate_types(ranked, desc.memory_type_bits) {
                tried |= 1 << t;
                match self.allocate_in_type(t, desc, alignment, within_budget) {
                    Ok(a) => return Ok(a),
                    Err(TypeFailure::Exhausted) => continue,
                    Err(TypeFailure::Fatal(e)) => return Err(e),
                }
            }
        }
        Err(AllocError::OutOfDeviceMemory {
            size: desc.size,
            usage: desc.usage,
            tried,
        })
    }

    /// The pool of a request inside its memory type: granularity class
    /// times size bucket.
    fn class_index(&self, class: ResourceClass, size: u64, alignment: u64) -> usize {
        let optimal = usize::from(self.separate_classes && class == ResourceClass::Optimal);
        let needed = size.max(alignment).next_power_of_two();
        let large = usize::from(needed > self.config.small_allocation_limit);
        optimal * 2 + large
    }

    fn pool_label(&self, pool: usize) -> &'static str {
        match (self.separate_classes, pool) {
            (false, 0) => "small",
            (false, _) => "large",
            (true, 0) => "linear small",
            (true, 1) => "linear large",
            (true, 2) => "optimal small",
            (true, _) => "optimal large",
        }
    }

    /// Memory of its own when the driver asks for it, when the request
    /// exceeds a quarter of a block (ranges that large are rarely free once
    /// blocks have churned: an 85 MiB texture failed against 8 buddy blocks
    /// of 256 MiB holding 440 MiB when the cut was half a block), or when it
    /// reaches [`AllocatorConfig::dedicated_threshold`] while memory objects
    /// are plentiful.
    fn wants_dedicated(&self, type_index: u32, desc: &AllocationDesc<'_>, alignment: u64) -> bool {
        let quarter = self.preferred_block_size(type_index) / 4;
        match desc.dedicated {
            Dedicated::Required(_) => true,
            Dedicated::Preferred(_) => {
                // Like VMA: stop honouring the preference once 3/4 of
                // maxMemoryAllocationCount is used, if the request fits a block.
                let max = self.props.max_memory_allocation_count as u64;
                let used = self.memory_objects.load(Ordering::Relaxed) as u64;
                used * 4 < max * 3 || desc.size.max(alignment) > quarter
            }
            Dedicated::No => {
                let size = desc.size.max(alignment);
                let max = self.props.max_memory_allocation_count as u64;
                let used = self.memory_objects.load(Ordering::Relaxed) as u64;
                size > quarter || (size >= self.config.dedicated_threshold && used * 4 < max * 3)
            }
        }
    }

    fn allocate_in_type(
        &self,
        type_index: u32,
        desc: &AllocationDesc<'_>,
        alignment: u64,
        within_budget: bool,
    ) -> Result<Allocation, TypeFailure> {
        if self.wants_dedicated(type_index, desc, alignment) {
            return self.allocate_dedicated(type_index, desc, within_budget);
        }
        // Debug margins: the placed range is [front margin | request | back margin].
        let Some((front, inner_size)) = self.margin_layout(type_index, desc.size, alignment) else {
            return Err(TypeFailure::Exhausted);
        };
        let class = self.class_index(desc.class, inner_size, alignment);
        let mut pool = self.pools[type_index as usize].lock();
        if let Some(a) = self.try_existing_blocks(
            &mut pool, type_index, class, desc, inner_size, front, alignment,
        ) {
            return Ok(a);
        }
        if desc.flags.contains(AllocationFlags::NEVER_ALLOCATE) {
            return Err(TypeFailure::Exhausted);
        }
        // Choose the new block's size under the lock, allocate it outside.
        let preferred = self.preferred_block_size(type_index);
        let pool_bytes: u64 = pool.classes[class]
            .blocks
            .iter()
            .flatten()
            .map(|b| b.size)
            .sum();
        drop(pool);
        let needed = inner_size
            .max(alignment)
            .next_power_of_two()
            .max(self.min_block);
        // Geometric growth: each new block is a fraction of what the pool
        // already holds (a power of two), so the unused tail of the newest
        // block stays a bounded share of the pool. (VMA's 1/8, 1/4, 1/2, 1
        // steps committed 480 MiB for 226 MiB live on the small-churn trace:
        // the last step doubles the pool.) TLSF fills blocks densely, so it
        // grows by 1/8 of the pool from 1/16 of the preferred size (the
        // newest block is at most 1/9 of the pool); the buddy, whose blocks
        // saturate early, by half the pool from 1/8.
        let (divisor, smallest) = match self.config.placement {
            BlockPlacement::Tlsf => (8, preferred / 16),
            BlockPlacement::Buddy => (2, preferred / 8),
        };
        let mut size = if self.config.small_first_blocks {
            prev_power_of_two(pool_bytes / divisor)
                .clamp(smallest.max(self.min_block), preferred)
                .max(needed)
        } else {
            preferred.max(needed)
        };
        // On failure retry with halved sizes down to what the request needs;
        // then, as a last resort on this type, memory of exactly the request's
        // size: a heap too fragmented or too full for a power-of-two block
        // may still hold it.
        let mut caches_dropped = false;
        let block = loop {
            match self.create_block(type_index, size, within_budget) {
                Ok(b) => break b,
                // Cached objects of their own may be what fills the heap, its
                // budget or the object count: give them back and retry the
                // same size once, before settling for smaller blocks.
                Err(e) if !caches_dropped && self.drop_caches_for(type_index, &e) => {
                    caches_dropped = true;
                }
                Err(TypeFailure::Exhausted) if size / 2 >= needed => size /= 2,
                Err(TypeFailure::Exhausted) if desc.size < needed => {
                    return self.allocate_dedicated(type_index, desc, within_budget)
                }
                Err(e) => return Err(e),
            }
        };
        let mut pool = self.pools[type_index as usize].lock();
        let slot = match pool.classes[class]
            .placer
            .add_block(block.size, self.min_block)
        {
            Ok(slot) => slot,
            Err(_) => {
                // Sizes were checked by `create_memory`'s caller; give the
                // memory (still in flight) back rather than leak it.
                drop(pool);
                self.release_memory(type_index, block.retired());
                return Err(TypeFailure::Exhausted);
            }
        };
        pool.land(block.size);
        let cp = &mut pool.classes[class];
        cp.live_blocks += 1;
        if cp.blocks.len() <= slot {
            cp.blocks.resize_with(slot + 1, || None);
        }
        cp.blocks[slot] = Some(block);
        cp.hint = slot;
        pool.empty_blocks += 1; // it is empty until the allocation below
        let Some(a) = self.allocate_in_class(
            &mut pool, type_index, class, desc, inner_size, front, alignment,
        ) else {
            // A fresh block of at least `needed` bytes always fits the request.
            unreachable!("fresh block of {size} bytes could not fit {needed}")
        };
        // While the lock was dropped another thread may have made room, and
        // the placer put the request there: the fresh block is then surplus
        // if it would exceed the empty blocks kept.
        if pool.empty_blocks > self.config.max_empty_blocks_per_type
            && pool.classes[class].placer.block_is_empty(slot)
        {
            let cp = &mut pool.classes[class];
            let block = cp.blocks[slot].take().expect("just added");
            cp.placer.remove_block(slot);
            cp.live_blocks -= 1;
            cp.hint = 0;
            pool.empty_blocks -= 1;
            let retired = pool.retire(block.retired());
            drop(pool);
            self.release_memory(type_index, retired);
        }
        Ok(a)
    }

    #[allow(clippy::too_many_arguments)]
    fn try_existing_blocks(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        class: usize,
        desc: &AllocationDesc<'_>,
        inner_size: u64,
        front: u64,
        alignment: u64,
    ) -> Option<Allocation> {
        // No separate `can_allocate`: a miss costs only the metadata built
        // for it, a hit would pay the lookup twice.
        self.allocate_in_class(pool, type_index, class, desc, inner_size, front, alignment)
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_in_class(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        class: usize,
        desc: &AllocationDesc<'_>,
        inner_size: u64,
        front: u64,
        alignment: u64,
    ) -> Option<Allocation> {
        let on_gpu = front > 0 && self.margins_on_gpu(type_index);
        let device_margin = if on_gpu {
            self.next_serial.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let meta = AllocMeta::new(desc.size, desc.name, front, device_margin);
        let cp = &mut pool.classes[class];
        let placed = cp
            .placer
            .allocate(inner_size, alignment, meta, &mut cp.hint)?;
        let (inner, handle, slot) = (placed.offset, placed.handle, placed.slot);
        let block = cp.blocks[slot].as_ref().expect("placer and blocks agree");
        if front > 0 && !on_gpu {
            let (kept, _) = cp.placer.get(slot, handle, inner).expect("just allocated");
            let mapped = block.mapped.expect("margins only in host-visible memory");
            // SAFETY: [inner, inner + kept) is this allocation's placed range,
            // inside the block's mapping, and no one else can reach it yet.
            unsafe {
                fill_canary(
                    mapped.0,
                    inner,
                    front,
                    inner + front + desc.size,
                    inner + kept,
                )
            };
            if !self.is_coherent(type_index) {
                // The kept range is a multiple of the minimum block, which is
                // at least nonCoherentAtomSize, so it is atom-aligned.
                let range = MappedRange {
                    memory: block.memory,
                    offset: inner,
                    size: kept,
                };
                // SAFETY: an atom-aligned range of mapped memory.
                let _ = unsafe { self.device.flush_ranges(&[range]) };
            }
        }
        let offset = inner + front;
        let allocation = Allocation {
            memory: block.memory,
            offset,
            size: desc.size,
            memory_size: block.size,
            memory_type_index: type_index,
            // SAFETY: `offset + size <= block.size` (the placer guarantees
            // it), so the pointer stays inside the mapped range.
            mapped: block
                .mapped
                .map(|p| MappedPtr(unsafe { p.0.add(offset as usize) })),
            coherent: self.is_coherent(type_index),
            allocator_id: self.id,
            placement: Placement::Block {
                class: class as u8,
                block: slot as u32,
                handle,
            },
            margin_front: front,
        };
        if placed.was_empty {
            pool.empty_blocks -= 1;
        }
        pool.requested_bytes += desc.size;
        pool.allocation_count += 1;
        Some(allocation)
    }

    fn is_coherent(&self, type_index: u32) -> bool {
        self.props
            .type_has(type_index, vk::MemoryPropertyFlags::HOST_COHERENT)
    }

    fn is_host_visible(&self, type_index: u32) -> bool {
        self.props
            .type_has(type_index, vk::MemoryPropertyFlags::HOST_VISIBLE)
    }

    /// Checks the budget, allocates and maps one `VkDeviceMemory`.
    fn create_memory(
        &self,
        type_index: u32,
        size: u64,
        dedicated: Option<DedicatedTarget>,
        within_budget: bool,
    ) -> Result<(vk::DeviceMemory, Option<MappedPtr>), TypeFailure> {
        let heap = self.props.memory_types[type_index as usize].heap_index as usize;
        if self.config.cache_retention == CacheRetention::UpToPeak {
            self.keep_cache_under_peak(heap, size);
        }
        // The driver's budget, when there is one, is read outside the lock.
        let own_budget = if within_budget {
            match self.device.heap_budgets() {
                Some(b) if b.get(heap).is_some_and(|b| b.usage + size > b.budget) => {
                    return Err(TypeFailure::Exhausted)
                }
                Some(_) => false,
                None => true,
            }
        } else {
            false
        };
        // Reserve the bytes and the object before allocating, so threads
        // allocating at once cannot overshoot the heap limit or the object
        // count together; every failure below gives the reservation back.
        // The reservation is made under the pool's lock and counted there as
        // in flight (see `TypePool::in_flight_bytes`).
        let limit = self.heap_limit(heap);
        let max = self.props.max_memory_allocation_count;
        let (committed, count) = {
            let mut pool = self.pools[type_index as usize].lock();
            let committed = match self.heap_committed[heap].fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |c| c.checked_add(size).filter(|&n| n <= limit),
            ) {
                Ok(c) => c,
                Err(_) => return Err(TypeFailure::Exhausted),
            };
            if own_budget && committed + size > self.props.memory_heaps[heap].size / 10 * 8 {
                self.heap_committed[heap].fetch_sub(size, Ordering::Relaxed);
                return Err(TypeFailure::Exhausted);
            }
            let count =
                match self
                    .memory_objects
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                        (c < max).then_some(c + 1)
                    }) {
                    Ok(c) => c,
                    Err(count) => {
                        self.heap_committed[heap].fetch_sub(size, Ordering::Relaxed);
                        return Err(TypeFailure::Fatal(AllocError::TooManyObjects {
                            count,
                            max,
                        }));
                    }
                };
            pool.committed_bytes += size;
            pool.memory_objects += 1;
            pool.in_flight_bytes += size;
            pool.in_flight_objects += 1;
            (committed, count)
        };
        let unreserve = || self.forget_memory(type_index, size);
        let request = MemoryAllocateRequest {
            memory_type_index: type_index,
            size,
            dedicated,
            device_address: self.config.device_address,
        };
        self.allocate_memory_calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the dedicated target comes from the caller of `allocate`,
        // whose `DedicatedTarget` contract is that it is a live object without
        // memory; everything else is plain data.
        let memory = match unsafe { self.device.allocate_memory(&request) } {
            Ok(m) => m,
            Err(e) => {
                unreserve();
                return Err(match e {
                    DeviceError::OutOfDeviceMemory => TypeFailure::Exhausted,
                    DeviceError::OutOfHostMemory => TypeFailure::Fatal(AllocError::OutOfHostMemory),
                    DeviceError::TooManyObjects => {
                        TypeFailure::Fatal(AllocError::TooManyObjects { count, max })
                    }
                    e => TypeFailure::Fatal(AllocError::Device(e)),
                });
            }
        };
        let mapped = if self.is_host_visible(type_index) {
            // SAFETY: `memory` was just allocated from a HOST_VISIBLE type with
            // `size` bytes and is not mapped.
            match unsafe { self.device.map_memory(memory, size) } {
                Ok(p) => Some(MappedPtr(p)),
                Err(e) => {
                    // SAFETY: just allocated, unused, unmapped.
                    unsafe { self.device.free_memory(memory) };
                    unreserve();
                    return Err(TypeFailure::Fatal(AllocError::Device(e)));
                }
            }
        } else {
            None
        };
        self.heap_peak[heap].fetch_max(committed + size, Ordering::Relaxed);
        Ok((memory, mapped))
    }

    fn create_block(
        &self,
        type_index: u32,
        size: u64,
        within_budget: bool,
    ) -> Result<Block, TypeFailure> {
        let (memory, mapped) = self.create_memory(type_index, size, None, within_budget)?;
        Ok(Block {
            memory,
            id: self.next_serial.fetch_add(1, Ordering::Relaxed),
            size,
            mapped,
        })
    }

    fn allocate_dedicated(
        &self,
        type_index: u32,
        desc: &AllocationDesc<'_>,
        within_budget: bool,
    ) -> Result<Allocation, TypeFailure> {
        if desc.flags.contains(AllocationFlags::NEVER_ALLOCATE) {
            return Err(TypeFailure::Exhausted);
        }
        let target = match desc.dedicated {
            Dedicated::Preferred(t) | Dedicated::Required(t) => t,
            Dedicated::No => None,
        };
        let reusable = target.is_none();
        if reusable {
            // A freed object of the same type at most 1/4 larger serves
            // without a `vkAllocateMemory`; it moves from the cache to the
            // live objects under one lock, so it is always counted.
            let mut pool = self.pools[type_index as usize].lock();
            let hit = pool
                .cache
                .range(desc.size..=desc.size + desc.size / 4)
                .next()
                .map(|(&size, _)| size);
            if let Some(size) = hit {
                let list = pool.cache.get_mut(&size).expect("found above");
                let m = list.pop().expect("cache lists are never empty");
                if list.is_empty() {
                    pool.cache.remove(&size);
                }
                pool.cached_bytes -= size;
                pool.cached_count -= 1;
                return Ok(self.insert_dedicated(
                    &mut pool, type_index, desc, m.memory, size, m.mapped, reusable,
                ));
            }
        }
        let created = match self.create_memory(type_index, desc.size, target, within_budget) {
            // Out of room: give the cached objects back and retry once.
            Err(f) if self.drop_caches_for(type_index, &f) => {
                self.create_memory(type_index, desc.size, target, within_budget)
            }
            r => r,
        };
        let (memory, mapped) = created?;
        let mut pool = self.pools[type_index as usize].lock();
        pool.land(desc.size);
        Ok(self.insert_dedicated(
            &mut pool, type_index, desc, memory, desc.size, mapped, reusable,
        ))
    }

    /// Records memory of its own as a live allocation.
    #[allow(clippy::too_many_arguments)]
    fn insert_dedicated(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        desc: &AllocationDesc<'_>,
        memory: vk::DeviceMemory,
        size: u64,
        mapped: Option<MappedPtr>,
        reusable: bool,
    ) -> Allocation {
        let entry = DedicatedMemory {
            memory,
            size,
            requested: desc.size,
            mapped,
            name: desc.name.map(Box::from),
            reusable,
        };
        let slot = match pool.dedicated_free_slots.pop() {
            Some(s) => {
                pool.dedicated[s as usize] = Some(entry);
                s
            }
            None => {
                pool.dedicated.push(Some(entry));
                (pool.dedicated.len() - 1) as u32
            }
        };
        pool.requested_bytes += desc.size;
        pool.allocation_count += 1;
        Allocation {
            memory,
            offset: 0,
            size: desc.size,
            memory_size: size,
            memory_type_index: type_index,
            mapped,
            coherent: self.is_coherent(type_index),
            allocator_id: self.id,
            placement: Placement::Dedicated { slot },
            margin_front: 0,
        }
    }

    /// Frees an allocation.
    ///
    /// An allocation of another allocator is refused with
    /// [`AllocError::ForeignAllocation`] and handed back inside the
    /// [`Refused`], unchanged: free it with the allocator that made it.
    /// That is the only failure.
    #[doc(alias = "vmaFreeMemory")]
    pub fn free(&self, allocation: Allocation) -> Result<(), Refused<Allocation, AllocError>> {
        if allocation.allocator_id != self.id {
            let error = AllocError::ForeignAllocation {
                owner: allocation.allocator_id,
                this: self.id,
            };
            return Err(Refused::new(error, allocation));
        }
        let type_index = allocation.memory_type_index;
        let retired = {
            let mut pool = self.pools[type_index as usize].lock();
            match allocation.placement {
                Placement::Block {
                    class,
                    block,
                    handle,
                } => {
                    let mut retired = self
                        .free_in_block(
                            &mut pool,
                            class as usize,
                            block as usize,
                            handle,
                            &allocation,
                        )
                        .map_or_else(Vec::new, |r| vec![r]);
                    // Live bytes fell: keep the cache within its share.
                    if pool.cached_bytes > 0 {
                        let cap = self.cache_cap(&pool);
                        retired.extend(self.evict_cache(&mut pool, cap));
                    }
                    retired
                }
                Placement::Dedicated { slot } => {
                    let entry = pool.dedicated[slot as usize]
                        .take()
                        .expect("allocation ids are unique: dedicated slot is live");
                    pool.dedicated_free_slots.push(slot);
                    pool.requested_bytes -= entry.requested;
                    pool.allocation_count -= 1;
                    if entry.reusable {
                        pool.cache
                            .entry(entry.size)
                            .or_default()
                            .push(CachedMemory {
                                memory: entry.memory,
                                mapped: entry.mapped,
                            });
                        pool.cached_bytes += entry.size;
                        pool.cached_count += 1;
                        let cap = self.cache_cap(&pool);
                        self.evict_cache(&mut pool, cap)
                    } else {
                        vec![pool.retire(Retired {
                            memory: entry.memory,
                            size: entry.size,
                            mapped: entry.mapped.is_some(),
                        })]
                    }
                }
            }
        };
        for r in retired {
            self.release_memory(type_index, r);
        }
        Ok(())
    }

    /// Cached bytes a pool keeps after a free (see [`CacheRetention`]).
    fn cache_cap(&self, pool: &TypePool) -> u64 {
        match self.config.cache_retention {
            CacheRetention::LiveShare => pool.requested_bytes / CACHE_SHARE,
            CacheRetention::UpToPeak => u64::MAX,
        }
    }

    /// Before `size` new bytes on `heap`: frees cached objects of the heap's
    /// types (largest first) until the heap stays within its peak, or the
    /// caches are empty.
    fn keep_cache_under_peak(&self, heap: usize, size: u64) {
        let peak = self.heap_peak[heap].load(Ordering::Relaxed);
        for (t, pool) in self.pools.iter().enumerate() {
            if self.props.memory_types[t].heap_index as usize != heap {
                continue;
            }
            let committed = self.heap_committed[heap].load(Ordering::Relaxed);
            let Some(excess) = (committed + size).checked_sub(peak).filter(|&e| e > 0) else {
                return;
            };
            let retired = {
                let mut pool = pool.lock();
                let mut out = Vec::new();
                let mut freed = 0;
                while freed < excess {
                    let Some(r) = Self::pop_cached(&mut pool) else {
                        break;
                    };
                    freed += r.size;
                    out.push(r);
                }
                out
            };
            for r in retired {
                self.release_memory(t as u32, r);
            }
        }
    }

    /// Takes the largest cached object out of the pool.
    fn pop_cached(pool: &mut TypePool) -> Option<Retired> {
        let mut entry = pool.cache.last_entry()?;
        let size = *entry.key();
        let m = entry.get_mut().pop().expect("cache lists are never empty");
        if entry.get().is_empty() {
            entry.remove();
        }
        pool.cached_bytes -= size;
        pool.cached_count -= 1;
        Some(pool.retire(Retired {
            memory: m.memory,
            size,
            mapped: m.mapped.is_some(),
        }))
    }

    /// Takes the largest cached objects out until the cache holds at most
    /// `cap` bytes and [`MAX_CACHED_OBJECTS`] objects (`cap == 0`: all).
    fn evict_cache(&self, pool: &mut TypePool, cap: u64) -> Vec<Retired> {
        let mut out = Vec::new();
        while pool.cached_bytes > cap || pool.cached_count > MAX_CACHED_OBJECTS {
            let Some(r) = Self::pop_cached(pool) else {
                break;
            };
            out.push(r);
        }
        out
    }

    /// After `failure` to create memory of `type_index`: frees the cached
    /// objects that stand in the way (every type on the same heap when the
    /// heap is full or over budget, every type when memory objects ran out);
    /// whether there was any, so a retry may succeed.
    fn drop_caches_for(&self, type_index: u32, failure: &TypeFailure) -> bool {
        let heap = self.props.memory_types[type_index as usize].heap_index;
        let same_heap = match failure {
            TypeFailure::Exhausted => true,
            TypeFailure::Fatal(AllocError::TooManyObjects { .. }) => false,
            TypeFailure::Fatal(_) => return false,
        };
        let mut any = false;
        for (t, pool) in self.pools.iter().enumerate() {
            if same_heap && self.props.memory_types[t].heap_index != heap {
                continue;
            }
            let retired = self.evict_cache(&mut pool.lock(), 0);
            any |= !retired.is_empty();
            for r in retired {
                self.release_memory(t as u32, r);
            }
        }
        any
    }

    fn free_in_block(
        &self,
        pool: &mut TypePool,
        class: usize,
        slot: usize,
        handle: u32,
        allocation: &Allocation,
    ) -> Option<Retired> {
        let inner = allocation.offset - allocation.margin_front;
        let cp = &mut pool.classes[class];
        if allocation.margin_front > 0 {
            if let Some(report) =
                check_block_margins(cp, slot, allocation.memory_type_index, handle, inner)
            {
                self.record_corruption(report);
            }
        }
        let (_, meta) = cp
            .placer
            .free(slot, handle, inner)
            .expect("allocation ids are unique: the allocation is live in its block");
        let empty = cp.placer.block_is_empty(slot);
        pool.requested_bytes -= meta.requested;
        pool.allocation_count -= 1;
        if !empty {
            return None;
        }
        if pool.empty_blocks < self.config.max_empty_blocks_per_type {
            pool.empty_blocks += 1;
            return None;
        }
        let cp = &mut pool.classes[class];
        let block = cp.blocks[slot].take().expect("the block is live");
        cp.placer.remove_block(slot);
        cp.live_blocks -= 1;
        if cp.hint == slot {
            cp.hint = 0;
        }
        Some(pool.retire(block.retired()))
    }

    fn release_memory(&self, type_index: u32, r: Retired) {
        if r.mapped {
            // SAFETY: the block/dedicated memory was mapped at creation and no
            // allocation points into it any more.
            unsafe { self.device.unmap_memory(r.memory) };
        }
        // SAFETY: no allocation uses the memory any more; binding resources
        // are the engine's to destroy before freeing their allocation.
        unsafe { self.device.free_memory(r.memory) };
        self.forget_memory(type_index, r.size);
    }

    /// Takes `size` bytes in one memory object of `type_index`, counted in
    /// flight, out of the heap and object counters: after it was freed, or
    /// when its creation failed.
    fn forget_memory(&self, type_index: u32, size: u64) {
        let heap = self.props.memory_types[type_index as usize].heap_index as usize;
        let mut pool = self.pools[type_index as usize].lock();
        self.heap_committed[heap].fetch_sub(size, Ordering::Relaxed);
        self.memory_objects.fetch_sub(1, Ordering::Relaxed);
        pool.committed_bytes -= size;
        pool.memory_objects -= 1;
        pool.in_flight_bytes -= size;
        pool.in_flight_objects -= 1;
    }

    fn record_corruption(&self, report: CorruptionReport) {
        eprintln!("gpumem: {report}");
        self.corruptions.fetch_add(1, Ordering::Relaxed);
        let mut log = self.corruption_log.lock();
        if log.len() < 1024 {
            log.push(report);
        }
    }

    /// Checks the debug margins of every live allocation (see
    /// [`AllocatorConfig::debug_margin`]); `Ok` when margins are off. Every
    /// damaged margin is printed, counted and kept; the first is returned.
    #[doc(alias = "vmaCheckCorruption")]
    pub fn check_corruption(&self) -> Result<(), CorruptionReport> {
        if self.margin == 0 {
            return Ok(());
        }
        let mut first = None;
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for cp in &pool.classes {
                let live: Vec<(usize, u32, u64)> = cp
                    .placer
                    .slots()
                    .into_iter()
                    .flat_map(|slot| {
                        cp.placer
                            .block_live(slot)
                            .filter(|(_, _, _, m)| m.front() > 0)
                            .map(move |(h, o, _, _)| (slot, h, o))
                    })
                    .collect();
                for (slot, handle, inner) in live {
                    if let Some(r) = check_block_margins(cp, slot, t as u32, handle, inner) {
                        self.record_corruption(r.clone());
                        first.get_or_insert(r);
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Every corrupted margin found so far (on free or by
    /// [`Self::check_corruption`]), oldest first, at most 1024.
    pub fn corruption_reports(&self) -> Vec<CorruptionReport> {
        self.corruption_log.lock().clone()
    }

    /// Frees every empty block, the ones kept for hysteresis included, and
    /// every cached memory object (e.g. after a level load or unload). The
    /// peak that [`CacheRetention::UpToPeak`] fills the cache up to starts
    /// again from what stays committed.
    pub fn trim(&self) {
        for (t, pool) in self.pools.iter().enumerate() {
            let mut retired = Vec::new();
            {
                let mut pool = pool.lock();
                for cp in pool.classes.iter_mut() {
                    for slot in cp.placer.slots() {
                        if cp.placer.block_is_empty(slot) {
                            let b = cp.blocks[slot].take().expect("placer and blocks agree");
                            cp.placer.remove_block(slot);
                            cp.live_blocks -= 1;
                            retired.push(b.retired());
                        }
                    }
                    cp.hint = 0;
                }
                pool.empty_blocks = 0;
                for r in &retired {
                    pool.mark_retired(r);
                }
                retired.extend(self.evict_cache(&mut pool, 0));
            }
            for r in retired {
                self.release_memory(t as u32, r);
            }
        }
        // The cache may fill up to the heaps' present level again.
        for (peak, committed) in self.heap_peak.iter().zip(&self.heap_committed) {
            peak.store(committed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    fn check_range(
        &self,
        allocation: &Allocation,
        offset: u64,
        size: u64,
    ) -> Result<(), AllocError> {
        if allocation.allocator_id != self.id {
            return Err(AllocError::ForeignAllocation {
                owner: allocation.allocator_id,
                this: self.id,
            });
        }
        if allocation.mapped.is_none() {
            return Err(AllocError::NotHostVisible {
                memory_type_index: allocation.memory_type_index,
            });
        }
        if offset
            .checked_add(size)
            .is_none_or(|end| end > allocation.size)
        {
            return Err(AllocError::OutOfBounds {
                offset,
                size,
                allocation_size: allocation.size,
            });
        }
        Ok(())
    }

    /// The mapped range covering `[offset, offset + size)` of the allocation,
    /// rounded out to `nonCoherentAtomSize` and clamped to the memory's end.
    fn atom_range(&self, allocation: &Allocation, offset: u64, size: u64) -> MappedRange {
        let atom = self.props.non_coherent_atom_size;
        let start = allocation.offset + offset;
        let end = (start + size).div_ceil(atom) * atom;
        let start = start / atom * atom;
        MappedRange {
            memory: allocation.memory,
            offset: start,
            size: end.min(allocation.memory_size) - start,
        }
    }

    /// Makes host writes to `[offset, offset + size)` of the allocation visible
    /// to the device (`vkFlushMappedMemoryRanges`, rounded to
    /// `nonCoherentAtomSize`); a no-op on coherent memory.
    #[doc(alias = "vmaFlushAllocation")]
    pub fn flush(&self, allocation: &Allocation, offset: u64, size: u64) -> Result<(), AllocError> {
        self.check_range(allocation, offset, size)?;
        if allocation.coherent || size == 0 {
            return Ok(());
        }
        let range = self.atom_range(allocation, offset, size);
        // SAFETY: the range lies inside the allocation's mapped memory, is
        // atom-aligned and clamped to the memory's end.
        unsafe { self.device.flush_ranges(&[range]) }.map_err(AllocError::Device)
    }

    /// Makes device writes to `[offset, offset + size)` visible to the host
    /// (`vkInvalidateMappedMemoryRanges`, rounded to `nonCoherentAtomSize`);
    /// a no-op on coherent memory.
    #[doc(alias = "vmaInvalidateAllocation")]
    pub fn invalidate(
        &self,
        allocation: &Allocation,
        offset: u64,
        size: u64,
    ) -> Result<(), AllocError> {
        self.check_range(allocation, offset, size)?;
        if allocation.coherent || size == 0 {
            return Ok(());
        }
        let range = self.atom_range(allocation, offset, size);
        // SAFETY: as in `flush`. Rounding out cannot discard a neighbour's
        // writes: allocations are aligned to the minimum block, which is at
        // least nonCoherentAtomSize.
        unsafe { self.device.invalidate_ranges(&[range]) }.map_err(AllocError::Device)
    }

    /// Copies `data` into the allocation at `offset` through its mapping and
    /// flushes it when the memory is not coherent. The GPU must not be using
    /// the range.
    pub fn write(
        &self,
        allocation: &mut Allocation,
        offset: u64,
        data: &[u8],
    ) -> Result<(), AllocError> {
        self.check_range(allocation, offset, data.len() as u64)?;
        let base = allocation.mapped.expect("checked host-visible").0;
        // SAFETY: the range is inside the mapped allocation (checked), the
        // `&mut Allocation` makes the host access exclusive, and `data` cannot
        // overlap device memory mappings handed out as `&mut`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                base.as_ptr().add(offset as usize),
                data.len(),
            )
        };
        self.flush(allocation, offset, data.len() as u64)
    }

    /// Invalidates (when not coherent) and copies `out.len()` bytes from the
    /// allocation at `offset`. The GPU must have finished writing the range.
    pub fn read(
        &self,
        allocation: &Allocation,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), AllocError> {
        self.check_range(allocation, offset, out.len() as u64)?;
        self.invalidate(allocation, offset, out.len() as u64)?;
        let base = allocation.mapped.expect("checked host-visible").0;
        // SAFETY: the range is inside the mapped allocation (checked); writers
        // need `&mut Allocation`, so none runs while we hold `&Allocation`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                base.as_ptr().add(offset as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Statistics per heap and memory type. Takes each type's lock briefly.
    #[doc(alias = "vmaCalculateStatistics")]
    pub fn stats(&self) -> AllocatorStats {
        let budgets = self.device.heap_budgets();
        let mut types = Vec::with_capacity(self.pools.len());
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            let mut s = MemoryTypeStats {
                memory_type_index: t as u32,
                heap_index: self.props.memory_types[t].heap_index,
                flags: format!("{:?}", self.props.memory_types[t].flags),
                requested_bytes: pool.requested_bytes,
                allocation_count: pool.allocation_count,
                ..MemoryTypeStats::default()
            };
            for cp in &pool.classes {
                for (slot, b) in cp.blocks.iter().enumerate() {
                    let Some(b) = b else { continue };
                    s.block_count += 1;
                    s.committed_bytes += b.size;
                    s.allocated_bytes += cp.placer.block_allocated_bytes(slot);
                    s.largest_free_block =
                        s.largest_free_block.max(cp.placer.block_largest_free(slot));
                    if cp.placer.block_is_empty(slot) {
                        s.empty_block_count += 1;
                    }
                    for (size, count) in cp.placer.block_free_histogram(slot) {
                        *s.free_block_histogram.entry(size).or_default() += count as u64;
                    }
                }
                s.host_metadata_bytes += cp.placer.host_memory_bytes() as u64;
            }
            for d in pool.dedicated.iter().flatten() {
                s.dedicated_count += 1;
                s.committed_bytes += d.size;
                s.allocated_bytes += d.size;
            }
            s.committed_bytes += pool.cached_bytes;
            s.cached_bytes = pool.cached_bytes;
            s.cached_count = u64::from(pool.cached_count);
            types.push(s);
        }
        let heaps = self
            .props
            .memory_heaps
            .iter()
            .enumerate()
            .map(|(h, info)| {
                let mut hs = HeapStats {
                    heap_index: h as u32,
                    size: info.size,
                    flags: format!("{:?}", info.flags),
                    budget: budgets.as_ref().and_then(|b| b.get(h)).map(|b| b.budget),
                    driver_usage: budgets.as_ref().and_then(|b| b.get(h)).map(|b| b.usage),
                    ..HeapStats::default()
                };
                for s in types.iter().filter(|s| s.heap_index == h as u32) {
                    hs.block_count += s.block_count;
                    hs.dedicated_count += s.dedicated_count;
                    hs.committed_bytes += s.committed_bytes;
                    hs.allocated_bytes += s.allocated_bytes;
                    hs.requested_bytes += s.requested_bytes;
                    hs.allocation_count += s.allocation_count;
                }
                hs
            })
            .collect::<Vec<_>>();
        let mut stats = AllocatorStats::from_parts(
            heaps,
            types,
            self.allocate_memory_calls.load(Ordering::Relaxed),
        );
        stats.total.corruptions_detected = self.corruptions.load(Ordering::Relaxed);
        stats
    }

    /// Every block and dedicated allocation with its allocated and free
    /// ranges, for pictures of fragmentation and the detailed JSON dump.
    pub fn block_maps(&self) -> Vec<BlockMap> {
        let mut maps = Vec::new();
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for (class, cp) in pool.classes.iter().enumerate() {
                for (slot, b) in cp.blocks.iter().enumerate() {
                    let Some(b) = b else { continue };
                    let mut ranges: Vec<RangeMap> = cp
                        .placer
                        .block_live(slot)
                        .map(|(_, offset, kept, meta)| RangeMap {
                            offset,
                            size: kept,
                            requested: meta.requested,
                            kind: RangeKind::Allocated,
                            name: meta.name(),
                        })
                        .chain(cp.placer.block_free_ranges(slot).into_iter().map(
                            |(offset, size)| RangeMap {
                                offset,
                                size,
                                requested: 0,
                                kind: RangeKind::Free,
                                name: None,
                            },
                        ))
                        .collect();
                    ranges.sort_by_key(|r| r.offset);
                    maps.push(BlockMap {
                        memory_type_index: t as u32,
                        class: self.pool_label(class),
                        dedicated: false,
                        size: b.size,
                        ranges,
                    });
                }
            }
            for d in pool.dedicated.iter().flatten() {
                maps.push(BlockMap {
                    memory_type_index: t as u32,
                    class: "dedicated",
                    dedicated: true,
                    size: d.size,
                    ranges: vec![RangeMap {
                        offset: 0,
                        size: d.size,
                        requested: d.requested,
                        kind: RangeKind::Allocated,
                        name: d.name.as_deref().map(str::to_owned),
                    }],
                });
            }
        }
        maps
    }

    /// A JSON document with [`Self::stats`] and, when `detailed`, every block's
    /// map (like `vmaBuildStatsString`).
    #[doc(alias = "vmaBuildStatsString")]
    pub fn dump_json(&self, detailed: bool) -> String {
        #[derive(serde::Serialize)]
        struct Dump {
            stats: AllocatorStats,
            #[serde(skip_serializing_if = "Option::is_none")]
            blocks: Option<Vec<BlockMap>>,
        }
        let dump = Dump {
            stats: self.stats(),
            blocks: detailed.then(|| self.block_maps()),
        };
        serde_json::to_string_pretty(&dump).expect("stats serialize")
    }

    /// Live allocations (name, size, memory type): what would leak if the
    /// allocator were dropped now.
    pub fn leak_report(&self) -> Vec<LeakedAllocation> {
        let mut out = Vec::new();
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for cp in &pool.classes {
                for (_, offset, _, meta) in cp
                    .placer
                    .slots()
                    .into_iter()
                    .flat_map(|slot| cp.placer.block_live(slot))
                {
                    out.push(LeakedAllocation {
                        name: meta.name(),
                        size: meta.requested,
                        memory_type_index: t as u32,
                        offset: offset + meta.front(),
                        dedicated: false,
                    });
                }
            }
            for d in pool.dedicated.iter().flatten() {
                out.push(LeakedAllocation {
                    name: d.name.as_deref().map(str::to_owned),
                    size: d.requested,
                    memory_type_index: t as u32,
                    offset: 0,
                    dedicated: true,
                });
            }
        }
        out
    }

    /// Checks every invariant: each pool's placement state
    /// ([`crate::tlsf::Tlsf::validate`] or [`crate::buddy::BuddyBlock::validate`]),
    /// the placer's blocks against the memory blocks, the pools' counters and
    /// the reuse cache against the blocks, each memory type's memory
    /// against its counters, and the per-heap committed bytes and the
    /// memory-object count against the memory types'.
    ///
    /// Exact also while other threads allocate and free: each check reads
    /// values that change only under the locks it holds. A memory type is
    /// checked under its own lock (other types stay free meanwhile); the
    /// heap and object counters, which several types share, under every
    /// type's lock at once, briefly (one sum per type). Memory being created
    /// or given back counts as in flight in its type. Cheap enough for
    /// tests.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (t, pool) in self.pools.iter().enumerate() {
            self.validate_type(t as u32, &pool.lock())?;
        }
        // Every pool's lock at once, in index order. No other path holds two
        // pool locks, so this cannot deadlock.
        let pools: Vec<_> = self.pools.iter().map(|p| p.lock()).collect();
        let mut held = vec![0u64; self.props.memory_heaps.len()];
        let mut objects = 0u32;
        for (t, pool) in pools.iter().enumerate() {
            held[self.props.memory_types[t].heap_index as usize] += pool.committed_bytes;
            objects += pool.memory_objects;
        }
        let counters = (
            self.heap_committed
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
            self.memory_objects.load(Ordering::Relaxed),
        );
        drop(pools);
        for (h, (&held, &counter)) in held.iter().zip(&counters.0).enumerate() {
            if held != counter {
                return Err(ValidationError::HeapCommitted {
                    heap_index: h as u32,
                    held,
                    counter,
                });
            }
        }
        if objects != counters.1 {
            return Err(ValidationError::MemoryObjects {
                held: objects,
                counter: counters.1,
            });
        }
        Ok(())
    }

    /// The invariants of one memory type, under its lock.
    fn validate_type(
        &self,
        memory_type_index: u32,
        pool: &TypePool,
    ) -> Result<(), ValidationError> {
        let (mut held, mut objects) = (0u64, 0u32);
        let mut requested = 0;
        let mut count = 0;
        let mut empty = 0;
        for (c, cp) in pool.classes.iter().enumerate() {
            let label = self.pool_label(c);
            let live = cp.blocks.iter().flatten().count() as u32;
            if live != cp.live_blocks {
                return Err(ValidationError::BlockCount {
                    memory_type_index,
                    pool: label,
                    blocks: live,
                    counter: cp.live_blocks,
                });
            }
            cp.placer
                .validate()
                .map_err(|reason| ValidationError::Placement {
                    memory_type_index,
                    pool: label,
                    reason,
                })?;
            let slots = cp.placer.slots();
            let with_memory: Vec<usize> = (0..cp.blocks.len())
                .filter(|&i| cp.blocks[i].is_some())
                .collect();
            if slots != with_memory {
                return Err(ValidationError::BlockSlots {
                    memory_type_index,
                    pool: label,
                    placed: slots,
                    with_memory,
                });
            }
            for (i, b) in cp.blocks.iter().enumerate() {
                let Some(b) = b else { continue };
                let placed = cp.placer.block_size(i);
                if placed != b.size {
                    return Err(ValidationError::BlockSize {
                        memory_type_index,
                        pool: label,
                        slot: i,
                        placed,
                        memory: b.size,
                    });
                }
                held += b.size;
                objects += 1;
                empty += u32::from(cp.placer.block_is_empty(i));
                for (_, _, _, meta) in cp.placer.block_live(i) {
                    requested += meta.requested;
                    count += 1;
                }
            }
        }
        for d in pool.dedicated.iter().flatten() {
            held += d.size;
            objects += 1;
            requested += d.requested;
            count += 1;
        }
        let (mut cached, mut cached_objects, mut empty_lists) = (0, 0u64, 0u64);
        for (&size, list) in &pool.cache {
            empty_lists += u64::from(list.is_empty());
            cached += size * list.len() as u64;
            cached_objects += list.len() as u64;
        }
        if empty_lists > 0
            || cached != pool.cached_bytes
            || cached_objects != u64::from(pool.cached_count)
        {
            return Err(ValidationError::CacheCounters {
                memory_type_index,
                bytes: cached,
                objects: cached_objects,
                empty_lists,
                counted_bytes: pool.cached_bytes,
                counted_objects: u64::from(pool.cached_count),
            });
        }
        if pool.cached_count > MAX_CACHED_OBJECTS {
            return Err(ValidationError::TooManyCached {
                memory_type_index,
                count: pool.cached_count,
                max: MAX_CACHED_OBJECTS,
            });
        }
        held += cached + pool.in_flight_bytes;
        objects += pool.cached_count + pool.in_flight_objects;
        if held != pool.committed_bytes || objects != pool.memory_objects {
            return Err(ValidationError::TypeMemory {
                memory_type_index,
                bytes: held,
                objects,
                in_flight_bytes: pool.in_flight_bytes,
                counted_bytes: pool.committed_bytes,
                counted_objects: pool.memory_objects,
            });
        }
        if requested != pool.requested_bytes || count != pool.allocation_count {
            return Err(ValidationError::AllocationCounters {
                memory_type_index,
                bytes: requested,
                allocations: count,
                counted_bytes: pool.requested_bytes,
                counted_allocations: pool.allocation_count,
            });
        }
        let max = self.config.max_empty_blocks_per_type;
        if empty != pool.empty_blocks || empty > max {
            return Err(ValidationError::EmptyBlocks {
                memory_type_index,
                empty,
                counter: pool.empty_blocks,
                max,
            });
        }
        Ok(())
    }
}

/// Debug margins that only the GPU can fill and check (see
/// [`AllocatorConfig::debug_margin`]): layout, listing and reporting for an
/// external checker such as `mem_staging::margins::MarginChecker`.
impl Allocator {
    /// True when the margins of sub-allocations in `type_index` are left to
    /// a GPU checker rather than written and read through the mapping.
    fn margins_on_gpu(&self, type_index: u32) -> bool {
        self.config.debug_margin_gpu_checked || !self.is_host_visible(type_index)
    }

    /// `(front margin, placed range size)` of a request of `size` bytes in
    /// `type_index`; `(0, size)` without margins; `None` on overflow. GPU
    /// margins round the request up to 4 so the back margin starts at a
    /// multiple of 4 (`vkCmdFillBuffer` needs `dstOffset % 4 == 0`); the
    /// front margin is a multiple of 16 and starts on a minimum block.
    fn margin_layout(&self, type_index: u32, size: u64, alignment: u64) -> Option<(u64, u64)> {
        if self.margin == 0 {
            return Some((0, size));
        }
        let front = self.margin.checked_next_multiple_of(alignment)?;
        let body = if self.margins_on_gpu(type_index) {
            size.checked_next_multiple_of(4)?
        } else {
            size
        };
        Some((front, body.checked_add(front)?.checked_add(self.margin)?))
    }

    /// Every debug margin the host does not fill or check, two per live
    /// sub-allocation (front and back), in no particular order; empty when
    /// [`AllocatorConfig::debug_margin`] is 0. Takes each memory type's lock
    /// in turn: allocations made or freed meanwhile on other threads may or
    /// may not appear.
    pub fn device_margins(&self) -> Vec<DeviceMargin> {
        let mut out = Vec::new();
        if self.margin == 0 {
            return out;
        }
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for cp in &pool.classes {
                for (slot, b) in cp.blocks.iter().enumerate() {
                    let Some(b) = b else { continue };
                    for (_, inner, kept, meta) in cp.placer.block_live(slot) {
                        if meta.device_margin() == 0 {
                            continue;
                        }
                        let user = inner + meta.front();
                        let back = user + meta.requested.next_multiple_of(4);
                        for (side, offset, end) in
                            [("before", inner, user), ("after", back, inner + kept)]
                        {
                            out.push(DeviceMargin {
                                memory: b.memory,
                                block_id: b.id,
                                memory_size: b.size,
                                memory_type_index: t as u32,
                                offset,
                                size: end - offset,
                                side,
                                allocation_id: meta.device_margin(),
                                allocation_offset: user,
                                allocation_size: meta.requested,
                                name: meta.name(),
                                filled: meta.device_margin_filled(),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Records that a GPU checker wrote the canary into the margins of the
    /// allocations of `margins` (matched by [`DeviceMargin::allocation_id`],
    /// so an allocation freed meanwhile is skipped, even if a new one took
    /// its place). Returns how many live allocations were marked.
    pub fn mark_device_margins_filled(&self, margins: &[DeviceMargin]) -> usize {
        let mut by_block: ahash::AHashMap<u64, ahash::AHashSet<u64>> = ahash::AHashMap::new();
        let mut types = Vec::new();
        for m in margins {
            by_block
                .entry(m.block_id)
                .or_default()
                .insert(m.allocation_id);
            types.push(m.memory_type_index);
        }
        types.sort_unstable();
        types.dedup();
        let mut marked = 0;
        for t in types {
            let Some(pool) = self.pools.get(t as usize) else {
                continue;
            };
            let mut pool = pool.lock();
            for cp in pool.classes.iter_mut() {
                for slot in 0..cp.blocks.len() {
                    let Some(ids) = cp.blocks[slot].as_ref().and_then(|b| by_block.get(&b.id))
                    else {
                        continue;
                    };
                    let live: Vec<(u32, u64)> = cp
                        .placer
                        .block_live(slot)
                        .filter(|(_, _, _, m)| {
                            ids.contains(&m.device_margin()) && !m.device_margin_filled()
                        })
                        .map(|(h, o, _, _)| (h, o))
                        .collect();
                    for (h, o) in live {
                        if let Some(extra) =
                            cp.placer.get_mut(slot, h, o).and_then(|m| m.extra.as_mut())
                        {
                            extra.device_margin_filled = true;
                            marked += 1;
                        }
                    }
                }
            }
        }
        marked
    }

    /// Reports damage a GPU checker found in `margin` (the first differing
    /// byte at `corrupted_offset` of the memory): printed, counted in
    /// [`crate::stats::TotalStats::corruptions_detected`] and kept for
    /// [`Self::corruption_reports`], like the host check's findings. Returns
    /// the report, or `None` (nothing recorded) when the allocation was
    /// freed since the margin was listed.
    pub fn report_device_corruption(
        &self,
        margin: &DeviceMargin,
        corrupted_offset: u64,
    ) -> Option<CorruptionReport> {
        let live = {
            let pool = self.pools.get(margin.memory_type_index as usize)?.lock();
            pool.classes.iter().any(|cp| {
                cp.blocks.iter().enumerate().any(|(slot, b)| {
                    b.as_ref().is_some_and(|b| b.id == margin.block_id)
                        && cp
                            .placer
                            .block_live(slot)
                            .any(|(_, _, _, m)| m.device_margin() == margin.allocation_id)
                })
            })
        };
        if !live {
            return None;
        }
        let report = CorruptionReport {
            name: margin.name.clone(),
            memory_type_index: margin.memory_type_index,
            offset: margin.allocation_offset,
            size: margin.allocation_size,
            side: margin.side,
            corrupted_offset,
        };
        self.report_corruption(report.clone());
        Some(report)
    }

    /// Records a corrupted margin found by an external checker: printed to
    /// stderr, counted in [`crate::stats::TotalStats::corruptions_detected`]
    /// and kept for [`Self::corruption_reports`].
    pub fn report_corruption(&self, report: CorruptionReport) {
        self.record_corruption(report);
    }
}

/// Writes the canary into `[start, user_start)` and `[user_end, end)` of a
/// mapped block.
///
/// # Safety
/// `base` maps at least `end` bytes, and the ranges are exclusively ours.
unsafe fn fill_canary(base: NonNull<u8>, start: u64, front: u64, user_end: u64, end: u64) {
    for range in [start..start + front, user_end..end] {
        for p in range {
            // SAFETY: `p < end`, inside the mapping (caller's contract).
            unsafe {
                base.as_ptr()
                    .add(p as usize)
                    .write(CANARY[(p % 4) as usize])
            };
        }
    }
}

/// Checks the margins of the live placed range at `inner` of block `slot`.
fn check_block_margins(
    cp: &ClassPool,
    slot: usize,
    memory_type_index: u32,
    handle: u32,
    inner: u64,
) -> Option<CorruptionReport> {
    let (kept, meta) = cp.placer.get(slot, handle, inner)?;
    if meta.device_margin() != 0 {
        return None; // the GPU checker's (the host never filled them)
    }
    let mapped = cp.blocks.get(slot)?.as_ref()?.mapped?;
    let user = inner + meta.front();
    let user_end = user + meta.requested;
    for (side, range) in [("before", inner..user), ("after", user_end..inner + kept)] {
        for p in range {
            // SAFETY: `p < inner + kept <= block.size`: inside the mapping.
            // The margins belong to the allocator; a racing GPU or host write
            // into them is exactly the bug this reports, and a byte read
            // cannot tear.
            let byte = unsafe { mapped.0.as_ptr().add(p as usize).read_volatile() };
            if byte != CANARY[(p % 4) as usize] {
                return Some(CorruptionReport {
                    name: meta.name(),
                    memory_type_index,
                    offset: user,
                    size: meta.requested,
                    side,
                    corrupted_offset: p,
                });
            }
        }
    }
    None
}

impl Drop for Allocator {
    fn drop(&mut self) {
        let leaks = self.leak_report();
        if !leaks.is_empty() && !std::thread::panicking() {
            eprintln!(
                "gpumem: allocator dropped with {} live allocation(s):",
                leaks.len()
            );
            for l in leaks.iter().take(32) {
                eprintln!(
                    "  {:?} {} bytes, memory type {}{}",
                    l.name.as_deref().unwrap_or("<unnamed>"),
                    l.size,
                    l.memory_type_index,
                    if l.dedicated { " (dedicated)" } else { "" }
                );
            }
        }
        for t in 0..self.pools.len() {
            let mut retired = Vec::new();
            {
                let mut pool = self.pools[t].lock();
                for cp in pool.classes.iter_mut() {
                    for slot in cp.placer.slots() {
                        cp.placer.remove_block(slot);
                    }
                    for b in cp.blocks.drain(..).flatten() {
                        retired.push(b.retired());
                    }
                    cp.live_blocks = 0;
                }
                for d in pool.dedicated.drain(..).flatten() {
                    retired.push(Retired {
                        memory: d.memory,
                        size: d.size,
                        mapped: d.mapped.is_some(),
                    });
                }
                for r in &retired {
                    pool.mark_retired(r);
                }
                retired.extend(self.evict_cache(&mut pool, 0));
            }
            for r in retired {
                self.release_memory(t as u32, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Allocator>();
        check::<Allocation>();
    }

    #[test]
    fn prev_pow2() {
        assert_eq!(prev_power_of_two(0), 0);
        assert_eq!(prev_power_of_two(1), 1);
        assert_eq!(prev_power_of_two(1000), 512);
        assert_eq!(prev_power_of_two(1024), 1024);
    }
}
