#![no_main]
//! libFuzzer entry for the `buddy` target; the logic is in `src/buddy.rs`
//! (shared with the corpus regression tests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gpumem_fuzz::buddy::run(data));
