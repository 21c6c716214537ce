//! mem-core: sub-allocation of Vulkan device memory.
//!
//! Each memory type owns pools of `VkDeviceMemory` blocks. By default one
//! two-level segregated fit index ([`tlsf`]) places requests over all the
//! blocks of a pool in O(1), with waste per allocation below the minimum
//! block; large requests go to blocks of their own pool, and only requests
//! over a quarter of a block or that the driver wants dedicated get memory
//! of their own, reused through a small cache. The tail-trimmed power-of-two buddy ([`buddy`]) the
//! project started with is [`BlockPlacement::Buddy`]. A [`VirtualBlock`]
//! places ranges that are not device memory with either core (TLSF by
//! default), through the same interface as the pools. Both cores know no
//! Vulkan type and report bad input as a [`PlacementError`].
//!
//! Every Vulkan call goes through the small [`MemoryDevice`] trait, with an
//! `ash` implementation ([`AshMemoryDevice`]) and, behind the `testing`
//! feature, a fake one (module `fake`) that reproduces real GPUs' memory
//! layouts with fault injection for tests.
//!
//! See [`Allocator`] for pools, block sizing, `bufferImageGranularity` and
//! budgets; [`host`] for the tracking host allocator.

pub mod buddy;
pub mod defrag;
pub mod device;
#[cfg(feature = "testing")]
pub mod fake;
pub mod host;
pub mod selection;
pub mod stats;
pub mod tlsf;
pub mod virtual_block;

mod allocator;
mod error;
mod lock;
mod placement;

pub use allocator::{
    Allocation, AllocationDesc, AllocationFlags, Allocator, AllocatorConfig, AllocatorCreateInfo,
    CacheRetention, Dedicated, DefragmentationBudget, DefragmentationMove, DefragmentationPass,
    DefragmentationStats, ResourceClass,
};
pub use device::{
    AshMemoryDevice, DedicatedTarget, DeviceError, DeviceMemoryProperties, MemoryDevice,
};
pub use error::{AllocError, PlacementError, Refused, ValidationError};
pub use placement::BlockPlacement;
pub use selection::MemoryUsage;
pub use stats::AllocatorStats;
pub use virtual_block::{VirtualAllocation, VirtualBlock};
