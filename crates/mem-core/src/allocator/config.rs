//! How an allocator is set up: the engine's handles ([`AllocatorCreateInfo`]) and
//! the tuning ([`AllocatorConfig`], [`CacheRetention`]), each field with its
//! default, units, clamping and interactions. Plain data: nothing here
//! changes after [`Allocator::with_device`] reads it.

use ash::vk;

use super::*;
use crate::placement::BlockPlacement;

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
    /// Default 8. A kept empty block serves the next requests without a
    /// `vkAllocateMemory`: large requests placed in blocks empty and refill
    /// them under churn, and freeing each one at once made the peers
    /// benchmark's large-request traces create and free a block every few
    /// rounds. With [`CacheRetention::UpToPeak`] (the default) empty blocks
    /// never raise the peak either: before a new `VkDeviceMemory` would
    /// push the heap past its peak, the cache and then the empty blocks
    /// (largest first) are freed. A full heap, budget or object count frees
    /// them before anything fails. [`Allocator::trim`] frees them all.
    pub max_empty_blocks_per_type: u32,
    /// Hard per-heap limits in bytes (`None` = the heap size), like VMA's
    /// `pHeapSizeLimit`. Indexed by heap; missing entries mean no limit.
    pub heap_size_limits: Vec<Option<u64>>,
    /// Chain `VkMemoryAllocateFlagsInfo::DEVICE_ADDRESS` on every allocation
    /// (the engine enabled `bufferDeviceAddress`). Default false.
    pub device_address: bool,
    /// Requests whose size and alignment, rounded up to a power of two, are
    /// at most this many bytes go to blocks of their own, apart from larger
    /// requests. Default 1 MiB; 0 puts all sizes together (in the small
    /// requests' pools). The larger requests' blocks place at a unit of at
    /// least 4 KiB and `bufferImageGranularity`, so buffers and optimal
    /// images share them. For the buddy,
    /// small allocations scattered through a block leave no naturally
    /// aligned large range free, so mixing them with multi-MiB resources
    /// strands most of a block (measured with `examples/memory_report`).
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
    /// a damaged one is logged (`log` crate, error level), counted in
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
    /// checker's first fill are not seen. Not covered at all: allocations
    /// with memory of their own (an overrun there leaves the memory).
    pub debug_margin: u64,
    /// How sub-allocations are placed inside a block. Default
    /// [`BlockPlacement::Tlsf`]; [`BlockPlacement::Buddy`] gives every
    /// allocation natural alignment at the cost of about 60% block fill under
    /// churn (see [`crate::tlsf`] for the measurements).
    pub placement: BlockPlacement,
    /// Requests of at least this many bytes get a `VkDeviceMemory` of their
    /// own (exact size) instead of a range of a block, while fewer than 3/4
    /// of `maxMemoryAllocationCount` objects exist. Default `u64::MAX`: off.
    /// Whatever this says, memory of its own goes to requests over a quarter
    /// of the preferred block size and to resources whose driver asks for a
    /// dedicated allocation ([`Dedicated`]); everything else is placed in
    /// blocks, so a large request calls `vkAllocateMemory` only when its pool
    /// grows.
    ///
    /// A threshold trades driver calls for tightness. With 1 MiB the peers
    /// benchmark's mixed-assets trace (1 KiB..32 MiB, random churn at
    /// 600 MiB live) reaches 92.9% efficiency against 71.7% in blocks, but
    /// makes 7,729 `vkAllocateMemory` calls in its steady state against 11
    /// (lavapipe, 2026-12-06, commit `4829baa`). NVIDIA's driver spends
    /// 0.5-1 ms per `vkAllocateMemory` + `vkFreeMemory` pair of such sizes
    /// (H100, driver 580.159.04, 2026-12-06: 113 µs per allocation and free
    /// on that trace, against 3.7 µs in blocks), so there the threshold
    /// costs far more time than it saves memory. Blocks' holes are given
    /// back by moving data (defragmentation), not by more memory objects.
    ///
    /// Freed objects of this kind are cached (see [`Self::cache_retention`])
    /// and serve later requests up to 1/4 smaller without a
    /// `vkAllocateMemory`.
    pub own_memory_threshold: u64,
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
    /// [`Self::own_memory_threshold`]). Default [`CacheRetention::UpToPeak`].
    pub cache_retention: CacheRetention,
}

/// How long freed memory objects of their own (requests over a quarter of
/// a block, or at or above [`AllocatorConfig::own_memory_threshold`]) stay
/// cached for reuse by later
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
            max_empty_blocks_per_type: 8,
            heap_size_limits: Vec::new(),
            device_address: false,
            small_allocation_limit: MIB,
            debug_margin: 0,
            placement: BlockPlacement::Tlsf,
            own_memory_threshold: u64::MAX,
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
/// use mem_core::{Allocator, AllocatorConfig, AllocatorCreateInfo};
/// let desc = AllocatorCreateInfo::new(instance, physical_device, device)
///     .memory_budget(true)
///     .config(AllocatorConfig { debug_margin: 16, ..Default::default() });
/// // SAFETY: the engine's handles outlive the allocator.
/// let allocator = unsafe { Allocator::new(desc) };
/// # }
/// ```
pub struct AllocatorCreateInfo<'a> {
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

impl<'a> AllocatorCreateInfo<'a> {
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
