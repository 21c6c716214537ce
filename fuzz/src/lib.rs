//! Fuzz target bodies as plain functions `run(&[u8])`.
//!
//! Each module is self-contained (no `crate::` paths) so the workspace's
//! regression tests can include the same file with `#[path]`:
//! `crates/mem-core/tests/reliability_corpus.rs` (buddy, tlsf, allocator_fake, defrag) and
//! `crates/mem-staging/tests/reliability_corpus.rs` (image_plan) replay every
//! file of `fuzz/corpus/TARGET/` plus seeded random inputs.

pub mod allocator_fake;
pub mod buddy;
pub mod defrag;
pub mod image_plan;
pub mod tlsf;
