#![no_main]
//! libFuzzer entry for the `tlsf` target; the logic is in `src/tlsf.rs`
//! (shared with the corpus regression tests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gpumem_fuzz::tlsf::run(data));
