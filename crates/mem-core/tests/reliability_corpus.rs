//! The `buddy`, `tlsf`, `allocator_fake` and `defrag` fuzz targets as regression
//! tests: every file of `fuzz/corpus/{buddy,tlsf,allocator_fake,defrag}/` is replayed through the same
//! target body libFuzzer runs (`fuzz/src/*.rs`, included by path), then
//! 10 000 inputs from a fixed-seed generator. Runs under
//! `cargo test --workspace --release`; see RELIABILITY.md.

#[path = "../../../fuzz/src/buddy.rs"]
mod buddy;

#[path = "../../../fuzz/src/tlsf.rs"]
mod tlsf;

#[path = "../../../fuzz/src/allocator_fake.rs"]
mod allocator_fake;

#[path = "../../../fuzz/src/defrag.rs"]
mod defrag;

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let d = std::fs::read(&p).expect("read corpus file");
            (p, d)
        })
        .collect()
}

/// xorshift64*: a fixed, dependency-free byte source.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = (self.next() % max_len as u64) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
    for (path, data) in &files {
        let r = std::panic::catch_unwind(|| run(data));
        assert!(r.is_ok(), "corpus input {} fails", path.display());
    }
}

fn random(seed: u64, n: usize, max_len: usize, run: fn(&[u8])) {
    let mut rng = Rng(seed);
    for i in 0..n {
        let data = rng.bytes(max_len);
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(
            r.is_ok(),
            "random input #{i} (seed {seed:#x}) fails: {data:?}"
        );
    }
}

#[test]
fn buddy_corpus() {
    replay("buddy", buddy::run);
}

#[test]
fn buddy_random_10k() {
    random(0x62_7564_6479, 10_000, 512, buddy::run);
}

#[test]
fn allocator_fake_corpus() {
    replay("allocator_fake", allocator_fake::run);
}

#[test]
fn allocator_fake_random_10k() {
    random(0x61_6c6c_6f63, 10_000, 512, allocator_fake::run);
}

#[test]
fn tlsf_corpus() {
    replay("tlsf", tlsf::run);
}

#[test]
fn tlsf_random_10k() {
    random(0x746c_7366, 10_000, 1024, tlsf::run);
}

#[test]
fn defrag_corpus() {
    replay("defrag", defrag::run);
}

#[test]
fn defrag_random_2k() {
    random(0x6465_6672_6167, 2_000, 1024, defrag::run);
}
