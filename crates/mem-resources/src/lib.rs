//! mem-resources: Vulkan buffers and images with memory from mem-core,
//! created, bound, named and destroyed safely.
//!
//! Engines use it instead of raw `vkCreateBuffer` / `vkCreateImage` +
//! `vkAllocateMemory` + `vkBind*Memory`: a [`ResourceManager`] validates a
//! [`BufferDesc`] or [`ImageDesc`] before Vulkan sees it (typed
//! [`ResourceError`]s naming the bad values), creates the object, asks for
//! its requirements with the driver's dedicated-allocation hint, allocates
//! from a [`mem_core::Allocator`] in the right granularity class, binds, and
//! names the object through `VK_EXT_debug_utils`. Any failure after the
//! object exists undoes every step. Batches bind with one
//! `vkBind*Memory2` call.
//!
//! Destruction is by value: now ([`ResourceManager::destroy_buffer`], when
//! the engine knows the GPU is done) or deferred
//! ([`ResourceManager::retire_buffer`] with a timeline point, or several
//! that must all be reached, then [`ResourceManager::collect`] each frame).
//! A resource of another manager is refused and handed back inside the
//! error ([`Refused`]). Dropping a resource never calls Vulkan; the manager
//! reports what was never destroyed.
//!
//! # Quick start
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use ash::vk;
//! use mem_core::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
//! use mem_resources::{BufferDesc, ImageDesc, ResourceManager, ResourceManagerCreateInfo};
//! use mem_testkit::TestContext;
//!
//! let ctx = TestContext::new(); // stands for the engine's instance and device
//! // SAFETY: the context's handles are valid and outlive allocator and manager.
//! let allocator = Arc::new(unsafe {
//!     Allocator::new(
//!         AllocatorCreateInfo::new(ctx.instance(), ctx.physical_device(), ctx.device())
//!             .config(AllocatorConfig::default()),
//!     )
//! }?);
//! // SAFETY: as above; debug utils were loaded for this device.
//! let resources = unsafe {
//!     ResourceManager::new(
//!         ResourceManagerCreateInfo::new(
//!             ctx.instance(),
//!             ctx.physical_device(),
//!             ctx.device(),
//!             Arc::clone(&allocator),
//!         )
//!         .debug_utils(ctx.debug_utils().cloned()),
//!     )
//! };
//!
//! let mut constants = resources.create_buffer(
//!     &BufferDesc::new(256, vk::BufferUsageFlags::UNIFORM_BUFFER, MemoryUsage::Dynamic)
//!         .name("frame constants"),
//! )?;
//! resources.write_buffer(&mut constants, 0, &[1, 2, 3, 4])?;
//!
//! let albedo = resources.create_image(
//!     &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 1024, 1024, 1).full_mip_chain().name("albedo"),
//! )?;
//!
//! // SAFETY: no GPU work was submitted that uses them.
//! unsafe {
//!     resources.destroy_image(albedo)?;
//!     resources.destroy_buffer(constants)?;
//! }
//! drop(resources);
//! drop(allocator);
//! ctx.finish();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Naming
//! - A `*Desc` says what to create: [`BufferDesc`] and [`ImageDesc`] (as
//!   mem-core's `AllocationDesc`) are plain data with builders, checked
//!   before Vulkan sees them ([`ResourceManager::validate_buffer_desc`]) and
//!   kept by the resource made from them ([`Buffer::desc`]).
//! - A `*CreateInfo` says what a long-lived object is built from:
//!   [`ResourceManagerCreateInfo`] holds the engine's borrowed handles, the
//!   allocator and options, and is consumed by [`ResourceManager::new`], as
//!   Vulkan's `Vk*CreateInfo` and VMA's `VmaAllocatorCreateInfo`.
//!
//! # Modules
//! - [`desc`]: what a buffer or image is.
//! - [`validate`]: the checks a desc passes before Vulkan sees it.
//! - [`manager`]: creation, destruction, the registry and host access.
//! - [`retire`]: the timeline points deferred destruction waits for.
//! - [`fault`]: fault points for the failure-path tests; the hooks that
//!   arm them are behind the cargo feature `testing` (off by default).

pub mod desc;
pub mod fault;
pub mod image_layouts;
pub mod manager;
pub mod retire;
pub mod validate;

mod error;

pub use desc::{format_aspect, full_mip_chain, BufferDesc, ImageDesc, ImageKind, Sharing};
pub use error::{ManagerValidationError, ResourceError};
pub use fault::FaultPoint;
pub use image_layouts::{ImageLayouts, ImageSubresources, ResolvedSubresources, SubresourceState};
pub use manager::{
    Buffer, Image, LiveResource, Resource, ResourceKind, ResourceManager,
    ResourceManagerCreateInfo, ResourceRef, ResourceReport,
};
pub use retire::{RetirePoint, TimelinePoint};
pub use validate::DeviceLimits;

// Re-exported so users name the memory intent, and take refused objects
// back, without a direct mem-core dependency.
pub use mem_core::{MemoryUsage, Refused};
