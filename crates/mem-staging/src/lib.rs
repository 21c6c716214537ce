//! mem-staging: a ring-buffered staging belt that uploads static meshes and
//! textures into device-local memory through transfer queues, and a
//! [`margins::MarginChecker`] that fills and checks the allocator's debug
//! margins in memory the host cannot reach.

pub mod belt;
pub mod format;
mod image_state;
pub mod import;
pub mod margins;
pub mod plan;
pub mod queues;
pub mod ring;

pub use belt::{
    AcquireBarriers, SharedQueue, StagingBelt, StagingBeltDesc, StagingError, StagingStats, Ticket,
};
pub use mem_resources::ImageSubresources;
/// The lock crate of [`SharedQueue::lock`], re-exported so the engine names
/// the same version gpumem uses.
pub use parking_lot;
