//! mem-staging: a ring-buffered staging belt that uploads static meshes and
//! textures into device-local memory through transfer queues, and a
//! [`margins::MarginChecker`] that fills and checks the allocator's debug
//! margins in memory the host cannot reach.
//!
//! # Uploading, in four steps
//! 1. Make one [`StagingBelt`] per transfer queue with [`StagingBelt::new`]
//!    (a [`SharedQueue`] whose lock the engine also takes for its own
//!    submits to that queue).
//! 2. Upload: [`StagingBelt::upload_buffer`] (or many writes at once with
//!    [`StagingBelt::upload_buffers`]), [`StagingBelt::upload_image`] or
//!    [`StagingBelt::upload_image_subresources`] copy the bytes into the
//!    ring now and record the GPU copies; each returns a [`Ticket`].
//! 3. Submit with [`StagingBelt::flush`] (a large upload, or a full ring,
//!    submits on its own).
//! 4. Before the engine uses a resource, wait for its ticket: on the host
//!    ([`StagingBelt::wait`], [`StagingBelt::is_complete`]) or on the GPU
//!    ([`StagingBelt::semaphore_wait`]); when the belt's queue family is not
//!    the engine's, record [`StagingBelt::take_acquire_barriers`] on the
//!    engine's queue first.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ash::vk;
//! use mem_resources::{BufferDesc, Buffer, Image, ImageDesc, MemoryUsage, ResourceManager};
//! use mem_staging::{SharedQueue, StagingBelt, StagingBeltConfig};
//!
//! /// 1. One belt per transfer queue, kept for the engine's life.
//! ///
//! /// # Safety
//! /// `instance` and `physical_device` are the ones `resources` was made
//! /// with; `transfer` is a transfer queue of its device.
//! unsafe fn make_belt(
//!     resources: &Arc<ResourceManager>,
//!     instance: &ash::Instance,
//!     physical_device: vk::PhysicalDevice,
//!     transfer: SharedQueue,
//!     graphics_family: u32,
//! ) -> Result<StagingBelt, Box<dyn std::error::Error>> {
//!     // SAFETY: forwarded.
//!     Ok(unsafe {
//!         StagingBelt::new(resources.clone(), instance, physical_device, transfer,
//!                          graphics_family, StagingBeltConfig::default())?
//!     })
//! }
//!
//! /// Uploads a mesh and a texture; returns them with the semaphore and
//! /// value the engine's first submit that uses them waits on.
//! fn upload(
//!     belt: &mut StagingBelt,
//!     resources: &ResourceManager,
//!     vertices: &[u8],
//!     texels: &[u8],
//! ) -> Result<(Buffer, Image, vk::Semaphore, u64), Box<dyn std::error::Error>> {
//!     let usage = vk::BufferUsageFlags::VERTEX_BUFFER | vk::BufferUsageFlags::TRANSFER_DST;
//!     let mesh = resources.create_buffer(
//!         &BufferDesc::new(vertices.len() as u64, usage, MemoryUsage::GpuOnly).name("hero"))?;
//!     let albedo = resources.create_image(
//!         &ImageDesc::texture_2d(vk::Format::R8G8B8A8_SRGB, 256, 256, 1)
//!             .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST))?;
//!     // 2. Upload: the bytes are in the ring when these return.
//!     let _ = belt.upload_buffer(&mesh, 0, vertices)?;
//!     let _ = belt.upload_image(&albedo, texels, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)?;
//!     // 3. Submit.
//!     let ticket = belt.flush()?;
//!     // 4. The engine's submit waits for the ticket on the GPU, after
//!     //    recording these acquire barriers (empty when one family serves both).
//!     let (semaphore, value) = belt.semaphore_wait(ticket)?;
//!     let _acquire = belt.take_acquire_barriers(ticket)?;
//!     Ok((mesh, albedo, semaphore, value))
//! }
//! ```

pub mod belt;
pub mod format;
mod import;
pub mod margins;
pub mod plan;
pub mod queues;
mod ring;

pub use belt::{
    AcquireBarriers, BufferWrite, DefragmentationPass, ResourceMove, SharedQueue, StagingBelt,
    StagingBeltConfig, StagingError, StagingStats, Ticket,
};
pub use mem_core::{DefragmentationBudget, DefragmentationStats};
pub use mem_resources::ImageSubresources;
pub use mem_resources::{Resource, ResourceRef};
/// The lock crate of [`SharedQueue::lock`], re-exported so the engine names
/// the same version gpumem uses.
pub use parking_lot;
