#![no_main]
//! libFuzzer entry for the `defrag` target; the logic is in `src/defrag.rs`
//! (shared with the corpus regression tests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gpumem_fuzz::defrag::run(data));
