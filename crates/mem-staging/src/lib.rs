//! mem-staging: a ring-buffered staging belt that uploads static meshes and
//! textures into device-local memory through transfer queues.

pub mod belt;
pub mod format;
pub mod import;
pub mod plan;
pub mod queues;
pub mod ring;
