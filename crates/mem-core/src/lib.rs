//! mem-core: sub-allocation of Vulkan device memory.
//!
//! Each memory type owns a pool of `VkDeviceMemory` blocks; each block is
//! managed by a power-of-two buddy allocator with tail trimming (see
//! [`buddy`]), so waste per allocation stays below the minimum block size.
//! The buddy algorithm itself knows no Vulkan type and is also offered as a
//! [`VirtualBlock`] for ranges that are not device memory.
//!
//! Every Vulkan call goes through the small [`MemoryDevice`] trait, with an
//! `ash` implementation ([`AshMemoryDevice`]) and a fake one ([`fake`]) that
//! reproduces real GPUs' memory layouts for tests.
//!
//! See [`Allocator`] for pools, block sizing, `bufferImageGranularity` and
//! budgets; [`host`] for the tracking host allocator.

pub mod buddy;
pub mod device;
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
    Allocation, AllocationDesc, AllocationFlags, Allocator, AllocatorConfig, AllocatorDesc,
    Dedicated, ResourceClass,
};
pub use device::{
    AshMemoryDevice, DedicatedTarget, DeviceError, DeviceMemoryProperties, MemoryDevice,
};
pub use error::AllocError;
pub use placement::BlockPlacement;
pub use selection::MemoryUsage;
pub use stats::AllocatorStats;
pub use virtual_block::{VirtualAllocation, VirtualBlock};
