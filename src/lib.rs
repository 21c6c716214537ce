//! gpumem: a Vulkan memory subsystem for game engines.
//!
//! This facade re-exports the member crates so an engine needs one dependency:
//! - [`core`] (`mem-core`): buddy sub-allocation of `VkDeviceMemory` per memory type.
#![deny(unsafe_code)]

pub use mem_core as core;
pub use ash;
