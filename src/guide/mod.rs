//! Topic guides: one page per task an engine does with gpumem, each with
//! the rules, the defaults and an example that compiles.
//!
//! 1. [`quick_start`]: an allocator, a resource manager and a staging belt
//!    from the engine's handles; a buffer and an image created, uploaded,
//!    and destroyed or retired.
//! 2. [`choosing_memory`]: memory usages, how memory types are ranked,
//!    fallback, resource classes and memory of its own.
//! 3. [`budget`]: staying within the heaps' budgets and limits, trimming,
//!    statistics.
//! 4. [`debugging`]: names, statistics and the JSON dump, the memory
//!    viewer, leak reports, `validate()`, debug margins.
//! 5. [`virtual_blocks`]: sub-ranges of something that is not device
//!    memory.
//! 6. [`uploads`]: the staging belt's call order, streaming, images, writing
//!    in place, readback, host image copy, the direct path.
//! 7. [`ownership`]: one queue family or two, release and acquire barriers,
//!    `CONCURRENT` and `EXCLUSIVE` sharing.
//! 8. [`deferred_destruction`]: destroying now or after timeline points.
//! 9. [`defragmentation`]: giving back memory held by holes, by moving
//!    resources on the transfer queue.
//!
//! The pages are plain modules with no items; `cargo doc --open` shows them
//! under `gpumem::guide`.

#[doc = include_str!("../../docs/guide/quick_start.md")]
pub mod quick_start {}

#[doc = include_str!("../../docs/guide/choosing_memory.md")]
pub mod choosing_memory {}

#[doc = include_str!("../../docs/guide/budget.md")]
pub mod budget {}

#[doc = include_str!("../../docs/guide/debugging.md")]
pub mod debugging {}

#[doc = include_str!("../../docs/guide/virtual_blocks.md")]
pub mod virtual_blocks {}

#[doc = include_str!("../../docs/guide/uploads.md")]
pub mod uploads {}

#[doc = include_str!("../../docs/guide/ownership.md")]
pub mod ownership {}

#[doc = include_str!("../../docs/guide/deferred_destruction.md")]
pub mod deferred_destruction {}

#[doc = include_str!("../../docs/guide/defragmentation.md")]
pub mod defragmentation {}
