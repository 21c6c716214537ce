#![no_main]
//! libFuzzer entry for the `allocator_fake` target; the logic is in `src/allocator_fake.rs`
//! (shared with the corpus regression tests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gpumem_fuzz::allocator_fake::run(data));
