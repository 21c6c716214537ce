//! mem-staging: a ring-buffered staging belt that uploads static meshes and
//! textures into device-local memory through transfer queues, and a
//! [`margins::MarginChecker`] that fills and checks the allocator's debug
//! margins in memory the host cannot reach.

pub mod belt;
pub mod format;
pub mod import;
pub mod margins;
pub mod plan;
pub mod queues;
pub mod ring;
