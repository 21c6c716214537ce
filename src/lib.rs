//! gpumem: a Vulkan memory subsystem for game engines.
//!
//! This facade re-exports the member crates so an engine needs one dependency:
//! - [`memory`] (`mem-core`): sub-allocation of `VkDeviceMemory` (TLSF over
//!   pooled blocks, or a tail-trimmed buddy) per
//!   memory type, memory-type selection, statistics, the tracking host
//!   allocator and virtual blocks;
//! - [`resources`] (`mem-resources`): buffers and images created, bound,
//!   named and destroyed (now or after a timeline point);
//! - [`staging`] (`mem-staging`): the ring-buffered staging belt that uploads
//!   meshes and textures over transfer queues;
//! - [`viewer`] (`mem-viewer`): the allocator's JSON dump as one
//!   self-contained HTML page (blocks to scale, allocations, free ranges,
//!   leaks, a timeline) to open in a browser.
#![deny(unsafe_code)]

// The README's embedding example compiles as a doctest of this crate.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod guide;

pub use ash;
pub use mem_core as memory;
pub use mem_resources as resources;
pub use mem_staging as staging;
/// The lock type of the staging belt's [`staging::SharedQueue`].
pub use mem_staging::parking_lot;
pub use mem_viewer as viewer;
