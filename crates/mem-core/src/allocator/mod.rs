//! The device-memory allocator: [`Allocator`], its construction and the
//! facts every part reads (memory properties, block sizes, memory types per
//! usage).
//!
//! One concern per child module, each an `impl Allocator` block (or the
//! types it owns) that sees the allocator's private state:
//!
//! | module | owns |
//! |---|---|
//! | `config` | [`AllocatorConfig`], [`CacheRetention`], [`AllocatorCreateInfo`] |
//! | `request` | [`AllocationDesc`] and its parts ([`ResourceClass`], [`Dedicated`], [`AllocationFlags`]) |
//! | `allocation` | [`Allocation`], what the caller holds |
//! | `pools` | a memory type's pools: blocks, memory of its own, the reuse cache, and the counters [`Allocator::validate`] checks |
//! | `allocate` | the allocate path: fast path, fallback over memory types, a new block |
//! | `memory` | creating and freeing `VkDeviceMemory`: budget, heap limit, object count, mapping |
//! | `own_memory` | memory of its own for large requests, and its cache |
//! | `free` | free, trim, and giving everything back on drop |
//! | `defrag` | defragmentation passes: plan, reserve, commit, cancel |
//! | `host_io` | read, write, flush and invalidate through the mapping |
//! | `margins` | debug margins: canary, host checks, GPU-checked margins, corruption reports |
//! | `report` | statistics, block maps, the JSON dump, the leak report |
//! | `validate` | [`Allocator::validate`] |
//!
//! Lock order: a memory type's pool lock is never held while another is
//! taken, except by [`Allocator::validate`], which takes all of them in
//! index order. No device call runs under a pool lock, except flushing the
//! fresh canary of a debug margin.

mod allocate;
mod allocation;
mod config;
mod defrag;
mod free;
mod host_io;
mod margins;
mod memory;
mod own_memory;
mod pools;
mod report;
mod request;
mod validate;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ash::vk;

use crate::device::{AshMemoryDevice, DeviceMemoryProperties, MemoryDevice};
use crate::error::AllocError;
use crate::lock::Mutex;
use crate::selection::{candidate_types, rank_memory_types, MemoryUsage, RankedTypes};
use crate::stats::CorruptionReport;

pub use allocation::Allocation;
pub use config::{AllocatorConfig, AllocatorCreateInfo, CacheRetention};
pub use defrag::{
    DefragmentationBudget, DefragmentationMove, DefragmentationPass, DefragmentationStats,
};
pub use request::{AllocationDesc, AllocationFlags, Dedicated, ResourceClass};

use allocation::{MappedPtr, Placement};
use pools::{AllocMeta, Block, ClassPool, Retired, TypePool};

static NEXT_ALLOCATOR_ID: AtomicU64 = AtomicU64::new(1);

/// 1 MiB, for the block-size defaults.
const MIB: u64 = 1 << 20;
/// With [`CacheRetention::LiveShare`], freed memory objects of their own are
/// kept for reuse up to 1/16 of the memory type's live requested bytes.
const CACHE_SHARE: u64 = 16;
/// Index of the pool of large requests (both resource classes) in a
/// memory type's class pools.
const LARGE_POOL: usize = 1;
/// Index of the pool of small optimal resources, when
/// `bufferImageGranularity` separates them from linear ones.
const OPTIMAL_SMALL_POOL: usize = 2;
/// Smallest placement unit of the large requests' pool, in bytes. Large
/// requests are over [`AllocatorConfig::small_allocation_limit`] (1 MiB by
/// default), so rounding them to 4 KiB costs under 0.4%; optimal
/// images are 4 KiB multiples already, and a unit of at least
/// `bufferImageGranularity` lets buffers and images share these blocks.
const LARGE_UNIT: u64 = 4096;
/// At most this many cached objects per memory type, so the cache never
/// holds many of `maxMemoryAllocationCount`'s objects.
const MAX_CACHED_OBJECTS: u32 = 64;

/// Sub-allocates `VkDeviceMemory` for an engine: per-memory-type pools of
/// blocks, memory of its own for large requests, budget-aware fallback.
/// `Send + Sync`: allocate and free from any thread; each memory type has its
/// own lock.
///
/// # Pools and blocks
/// Each memory type has a pool behind its own lock (so threads allocating
/// from different types never contend). A pool holds blocks; a block is one
/// `VkDeviceMemory` of a power-of-two size. Placement inside the blocks is
/// [`BlockPlacement::Tlsf`](crate::BlockPlacement::Tlsf) by default: one two-level segregated fit index
/// over all the pool's blocks ([`crate::tlsf`]), so a request takes the
/// best-fitting free range of any block in O(1);
/// [`BlockPlacement::Buddy`](crate::BlockPlacement::Buddy) keeps the tail-trimmed buddy
/// ([`crate::buddy::BuddyBlock`]) per block. Pools grow geometrically: with
/// TLSF the first block is 1/16 of the preferred size
/// ([`Allocator::preferred_block_size`]) and each new one 1/8 of what the
/// pool already holds (up to the preferred size), so a small app does not
/// commit 256 MiB and a large one has at most 1/9 of its pool in its newest
/// block. Large requests are placed in blocks too (a pool of their own
/// beside the small ones), so a multi-MiB texture calls `vkAllocateMemory`
/// only when its pool grows. Requests over a quarter of a block, or whose
/// resource the driver wants in a dedicated allocation
/// (`VkMemoryDedicatedRequirements`), or of at least
/// [`AllocatorConfig::own_memory_threshold`] (off by default), get a
/// `VkDeviceMemory` of their own; freed ones without a dedicated target
/// (`VkMemoryDedicatedAllocateInfo`) are cached for reuse, by default as
/// long as the heap stays within the peak it already reached
/// ([`CacheRetention`]; [`Allocator::trim`] empties the cache). Empty
/// blocks are kept, up to [`AllocatorConfig::max_empty_blocks_per_type`],
/// so a pool that empties and refills under churn does not free and
/// recreate its blocks; with [`CacheRetention::UpToPeak`] they are freed
/// (after the cache) before new memory would push the heap past its peak.
///
/// # bufferImageGranularity
/// Linear resources (buffers, linear images) and optimal (tiled) images must
/// not share a `bufferImageGranularity` page. Both placements hand out ranges
/// that start and end on multiples of [`AllocatorConfig::min_block_size`], so if
/// the granularity is no larger than the minimum block, two allocations never
/// share a page and one set of blocks serves both classes. Otherwise (e.g.
/// 1024 on NVIDIA with the default 256-byte minimum) each pool keeps separate
/// blocks per class, so a page is never shared either.
///
/// # Budget
/// With `VK_EXT_memory_budget` enabled the driver's budget is read whenever a
/// new `VkDeviceMemory` is about to be allocated; otherwise the allocator
/// counts its own committed bytes against 80% of the heap (the figure VMA
/// uses). A type whose heap is over budget is skipped in favour of the next
/// compatible type; only if every type is over budget does the allocator
/// exceed it, unless [`AllocationFlags::WITHIN_BUDGET`] forbids that.
/// [`AllocatorConfig::heap_size_limits`] caps a heap hard, like VMA's
/// `pHeapSizeLimit`.
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
#[derive(Debug)]
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
    pub unsafe fn new(desc: AllocatorCreateInfo<'_>) -> Result<Self, AllocError> {
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
        // Pools per memory type: small (linear), large (both classes, at a
        // coarse unit), and small optimal when the granularity separates
        // the classes.
        let large_unit = min_block
            .max(props.buffer_image_granularity.next_power_of_two())
            .max(LARGE_UNIT);
        let mut granularities = vec![min_block, large_unit];
        if separate_classes {
            granularities.push(min_block);
        }
        let pools = props
            .memory_types
            .iter()
            .map(|_| Mutex::new(TypePool::new(&granularities, config.placement)))
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

    fn is_coherent(&self, type_index: u32) -> bool {
        self.props
            .type_has(type_index, vk::MemoryPropertyFlags::HOST_COHERENT)
    }

    fn is_host_visible(&self, type_index: u32) -> bool {
        self.props
            .type_has(type_index, vk::MemoryPropertyFlags::HOST_VISIBLE)
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
