//! One allocation request: [`AllocationDesc`], built from
//! `VkMemoryRequirements`, with its resource class, dedicated-allocation
//! hint, flags and name. Plain data, checked by [`Allocator::allocate`].

use ash::vk;

use super::*;
use crate::device::DedicatedTarget;

/// Whether a resource is linear or optimally tiled, for
/// `bufferImageGranularity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub enum ResourceClass {
    /// Buffers and `VK_IMAGE_TILING_LINEAR` images.
    Linear,
    /// `VK_IMAGE_TILING_OPTIMAL` images.
    Optimal,
}

/// The dedicated-allocation hint of a request: whether the driver prefers or
/// requires the resource to have a `VkDeviceMemory` of its own
/// (`VkMemoryDedicatedRequirements`), and the resource to name in
/// `VkMemoryDedicatedAllocateInfo`. A request with a hint gets memory of its
/// own (see [`Allocation::has_own_memory`]); one without may get it for its
/// size (over a quarter of a block, or
/// [`AllocatorConfig::own_memory_threshold`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dedicated {
    /// No hint: sub-allocate unless the size calls for memory of its own.
    #[default]
    No,
    /// The driver prefers a dedicated allocation
    /// (`prefersDedicatedAllocation`); honoured while memory objects are
    /// plentiful.
    Preferred(Option<DedicatedTarget>),
    /// The driver requires it (`requiresDedicatedAllocation`), or the caller
    /// insists on memory of its own (then without a target, it may be reused
    /// from the cache).
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
        /// Defragmentation never moves it: the engine holds its address
        /// (a mapped pointer it keeps, a device address, a sparse binding)
        /// or simply wants it to stay. Memory of its own in a dedicated
        /// allocation never moves either.
        const PINNED = 4;
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
