//! The `image_plan` fuzz target as a regression test: every file of
//! `fuzz/corpus/image_plan/` is replayed through the body libFuzzer runs
//! (`fuzz/src/image_plan.rs`, included by path), then 10 000 inputs from a
//! fixed-seed generator. See RELIABILITY.md.

#[path = "../../../fuzz/src/image_plan.rs"]
mod image_plan;

use std::path::PathBuf;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn image_plan_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/image_plan");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz/corpus/image_plan is empty");
    for path in files {
        let data = std::fs::read(&path).expect("read corpus file");
        let r = std::panic::catch_unwind(|| image_plan::run(&data));
        assert!(r.is_ok(), "corpus input {} fails", path.display());
    }
}

#[test]
fn image_plan_random_10k() {
    let mut rng = Rng(0x69_6d61_6765);
    for i in 0..10_000 {
        let len = (rng.next() % 96) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let r = std::panic::catch_unwind(|| image_plan::run(&data));
        assert!(r.is_ok(), "random input #{i} fails: {data:?}");
    }
}

/// The input that exhausted memory in the first fuzzing run (before the
/// planner refused absurd array-layer counts) now plans or fails quickly.
#[test]
fn image_plan_oom_finding_is_bounded() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/findings/image_plan-oom-646959f4");
    let data = std::fs::read(&path).expect("read finding");
    let start = std::time::Instant::now();
    let r = std::panic::catch_unwind(|| image_plan::run(&data));
    assert!(r.is_ok(), "finding panics");
    assert!(
        start.elapsed().as_secs() < 10,
        "finding takes {:?}",
        start.elapsed()
    );
}
