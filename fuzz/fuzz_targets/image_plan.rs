#![no_main]
//! libFuzzer entry for the `image_plan` target; the logic is in `src/image_plan.rs`
//! (shared with the corpus regression tests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gpumem_fuzz::image_plan::run(data));
