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

pub mod buddy;
pub mod virtual_block;

pub use virtual_block::{VirtualAllocation, VirtualBlock};
