//! Plain-data statistics of an [`crate::Allocator`], serializable to JSON.

use std::collections::BTreeMap;

/// Statistics of one memory type.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct MemoryTypeStats {
    /// Memory type index.
    pub memory_type_index: u32,
    /// Heap the type allocates from.
    pub heap_index: u32,
    /// The type's property flags (`VkMemoryType::propertyFlags`). In JSON
    /// the flag names as `ash` prints them (`"DEVICE_LOCAL | HOST_VISIBLE"`).
    #[cfg_attr(
        feature = "json",
        serde(serialize_with = "crate::device::ser_type_flags")
    )]
    pub flags: ash::vk::MemoryPropertyFlags,
    /// Blocks (`VkDeviceMemory` objects shared by allocations).
    pub block_count: u64,
    /// Blocks with no allocation, kept for hysteresis.
    pub empty_block_count: u64,
    /// Allocations with memory of their own (one `VkDeviceMemory` each).
    /// `"dedicated_count"` in JSON.
    #[cfg_attr(feature = "json", serde(rename = "dedicated_count"))]
    pub own_memory_count: u64,
    /// Bytes of `VkDeviceMemory` committed (blocks, memory of its own and
    /// the cache).
    pub committed_bytes: u64,
    /// Bytes handed out, as the allocator rounds them (multiples of the
    /// minimum block).
    pub allocated_bytes: u64,
    /// Bytes the callers asked for.
    pub requested_bytes: u64,
    /// Live allocations.
    pub allocation_count: u64,
    /// Largest free range in any block of this type.
    pub largest_free_block: u64,
    /// Free ranges of the blocks by size (each under the largest power of
    /// two not above it): `size -> count`.
    pub free_block_histogram: BTreeMap<u64, u64>,
    /// Host memory used by the placement metadata of this type's blocks.
    pub host_metadata_bytes: u64,
    /// Bytes of freed memory objects of their own kept for reuse
    /// (`AllocatorConfig::own_memory_threshold`); part of `committed_bytes`.
    pub cached_bytes: u64,
    /// Number of such cached memory objects.
    pub cached_count: u64,
}

/// Statistics of one heap (sums over its memory types, plus the budget).
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct HeapStats {
    /// Heap index.
    pub heap_index: u32,
    /// Heap size reported by the driver.
    pub size: u64,
    /// The heap's flags (`VkMemoryHeap::flags`). In JSON the flag names as
    /// `ash` prints them (`"DEVICE_LOCAL"`).
    #[cfg_attr(
        feature = "json",
        serde(serialize_with = "crate::device::ser_heap_flags")
    )]
    pub flags: ash::vk::MemoryHeapFlags,
    /// `VK_EXT_memory_budget` budget, when enabled.
    pub budget: Option<u64>,
    /// `VK_EXT_memory_budget` usage (all of the process), when enabled.
    pub driver_usage: Option<u64>,
    /// Blocks.
    pub block_count: u64,
    /// Allocations with memory of their own. `"dedicated_count"` in JSON.
    #[cfg_attr(feature = "json", serde(rename = "dedicated_count"))]
    pub own_memory_count: u64,
    /// Committed bytes.
    pub committed_bytes: u64,
    /// Allocated (rounded) bytes.
    pub allocated_bytes: u64,
    /// Requested bytes.
    pub requested_bytes: u64,
    /// Live allocations.
    pub allocation_count: u64,
}

/// Totals over all heaps.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct TotalStats {
    /// Blocks.
    pub block_count: u64,
    /// Allocations with memory of their own. `"dedicated_count"` in JSON.
    #[cfg_attr(feature = "json", serde(rename = "dedicated_count"))]
    pub own_memory_count: u64,
    /// Committed bytes: the sum of live `VkDeviceMemory` sizes.
    pub committed_bytes: u64,
    /// Allocated (rounded) bytes.
    pub allocated_bytes: u64,
    /// Requested bytes.
    pub requested_bytes: u64,
    /// Live allocations.
    pub allocation_count: u64,
    /// `vkAllocateMemory` calls made so far.
    pub allocate_memory_calls: u64,
    /// Corrupted debug margins found so far (on free, by
    /// [`crate::Allocator::check_corruption`], or reported by a GPU checker
    /// through [`crate::Allocator::report_corruption`]); always 0 when
    /// [`crate::AllocatorConfig::debug_margin`] is 0.
    pub corruptions_detected: u64,
    /// requested / committed, 0 when nothing is committed.
    pub efficiency: f64,
}

/// Everything [`crate::Allocator::stats`] reports.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct AllocatorStats {
    /// Totals.
    pub total: TotalStats,
    /// Per heap.
    pub heaps: Vec<HeapStats>,
    /// Per memory type.
    pub memory_types: Vec<MemoryTypeStats>,
}

impl AllocatorStats {
    pub(crate) fn from_parts(
        heaps: Vec<HeapStats>,
        memory_types: Vec<MemoryTypeStats>,
        calls: u64,
    ) -> Self {
        let mut total = TotalStats {
            allocate_memory_calls: calls,
            ..TotalStats::default()
        };
        for h in &heaps {
            total.block_count += h.block_count;
            total.own_memory_count += h.own_memory_count;
            total.committed_bytes += h.committed_bytes;
            total.allocated_bytes += h.allocated_bytes;
            total.requested_bytes += h.requested_bytes;
            total.allocation_count += h.allocation_count;
        }
        if total.committed_bytes > 0 {
            total.efficiency = total.requested_bytes as f64 / total.committed_bytes as f64;
        }
        Self {
            total,
            heaps,
            memory_types,
        }
    }

    /// Committed bytes: the sum of live `VkDeviceMemory` sizes.
    pub fn committed_bytes(&self) -> u64 {
        self.total.committed_bytes
    }

    /// Allocated (rounded) bytes.
    pub fn allocated_bytes(&self) -> u64 {
        self.total.allocated_bytes
    }

    /// JSON text of these statistics (the `json` feature, on by default).
    #[cfg(feature = "json")]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("stats serialize")
    }
}

/// A debug margin whose canary pattern was overwritten (see
/// [`crate::AllocatorConfig::debug_margin`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
#[error("debug margin {side} allocation {name:?} (memory type {memory_type_index}, offset {offset}, {size} bytes) is corrupted at byte {corrupted_offset} of its VkDeviceMemory")]
pub struct CorruptionReport {
    /// The allocation's name, if it had one.
    pub name: Option<String>,
    /// Memory type index.
    pub memory_type_index: u32,
    /// The allocation's offset in its `VkDeviceMemory` (what
    /// [`crate::Allocation::offset`] returned).
    pub offset: u64,
    /// The allocation's size.
    pub size: u64,
    /// `"before"` (an underrun) or `"after"` (an overrun).
    pub side: &'static str,
    /// Offset in the `VkDeviceMemory` of the first byte that differs.
    pub corrupted_offset: u64,
}

/// One debug margin that the host does not fill or check: a margin of a
/// sub-allocation in memory that is not `HOST_VISIBLE` (or in any memory when
/// [`crate::AllocatorConfig::debug_margin_gpu_checked`] is set), listed by
/// [`crate::Allocator::device_margins`] for a GPU checker such as
/// `mem_staging::margins::MarginChecker`.
///
/// Every such margin starts and ends at a multiple of 4 bytes (what
/// `vkCmdFillBuffer` needs), so the canary `0x7F84E666` written as a `u32` at
/// its 4-aligned offsets gives byte `p` of the memory the value
/// `CANARY[p % 4]` the host path uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMargin {
    /// The `VkDeviceMemory` (a block) holding the margin.
    pub memory: ash::vk::DeviceMemory,
    /// Identifies the block for the allocator's life. A `VkDeviceMemory`
    /// handle may be reused by the driver after the block is freed; this id
    /// is not, so a checker can cache per-block objects (alias buffers) by it.
    pub block_id: u64,
    /// Size of [`Self::memory`] in bytes.
    pub memory_size: u64,
    /// Memory type index.
    pub memory_type_index: u32,
    /// Offset of the margin's first byte in [`Self::memory`] (a multiple of 4).
    pub offset: u64,
    /// Margin size in bytes (a multiple of 4, never 0).
    pub size: u64,
    /// `"before"` (the front margin: an underrun lands here) or `"after"`
    /// (the back margin: an overrun).
    pub side: &'static str,
    /// Identifies the allocation for the allocator's life (a freed and
    /// re-made allocation at the same offset gets a new id). Both margins of
    /// an allocation share it.
    pub allocation_id: u64,
    /// The allocation's offset in [`Self::memory`] (what
    /// [`crate::Allocation::offset`] returned).
    pub allocation_offset: u64,
    /// The allocation's requested size.
    pub allocation_size: u64,
    /// The allocation's name, if it had one.
    pub name: Option<String>,
    /// True once a checker has written the canary into the margin and told
    /// the allocator ([`crate::Allocator::mark_device_margins_filled`]);
    /// only filled margins can be checked.
    pub filled: bool,
}

/// A live allocation, as the leak report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct LeakedAllocation {
    /// The allocation's name, if it had one.
    pub name: Option<String>,
    /// Requested size in bytes.
    pub size: u64,
    /// Memory type index.
    pub memory_type_index: u32,
    /// Offset in its `VkDeviceMemory`.
    pub offset: u64,
    /// Whether it had a `VkDeviceMemory` of its own. `"dedicated"` in JSON.
    #[cfg_attr(feature = "json", serde(rename = "dedicated"))]
    pub own_memory: bool,
}

/// Whether a range of a block is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub enum RangeKind {
    /// Handed out.
    Allocated,
    /// A free range.
    Free,
}

/// One range of a block map.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct RangeMap {
    /// Offset in the block.
    pub offset: u64,
    /// Size in bytes (kept size for allocations).
    pub size: u64,
    /// Requested size (0 for free ranges).
    pub requested: u64,
    /// Allocated or free.
    pub kind: RangeKind,
    /// The allocation's name.
    pub name: Option<String>,
}

/// The layout of one `VkDeviceMemory`: every allocated and free range.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct BlockMap {
    /// Memory type index.
    pub memory_type_index: u32,
    /// Which pool: `"small"`, `"large"` (with `"linear "` or `"optimal "` in
    /// front when bufferImageGranularity separates them), or `"dedicated"`
    /// for memory of its own.
    pub class: &'static str,
    /// True for memory of its own (one allocation). `"dedicated"` in JSON.
    #[cfg_attr(feature = "json", serde(rename = "dedicated"))]
    pub own_memory: bool,
    /// Size of the memory object.
    pub size: u64,
    /// Ranges in offset order, tiling the block.
    pub ranges: Vec<RangeMap>,
}
