//! CPU cost of the buddy core on seeded traces, ns per allocate and per free.
//!
//! Allocate and free calls are timed apart (`iter_custom`, batches between two
//! `Instant`s, so the clock costs nothing per call); sizes and victims are
//! drawn before each timed batch. Each trace also prints, once and outside
//! the timing, its internal waste (kept bytes vs requested bytes), how full
//! the block is, and the host metadata size.
//!
//! Traces:
//! 1. `small_churn`: 256 MiB block, min block 256, sizes log-uniform
//!    256 B..64 KiB (mean 11.8 KiB), 14k live, allocate-one / free-one. The
//!    14k live keep about 62% of the block, where no request fails; 20k live
//!    would need about 88% of it, and with random frees about 6% of the
//!    requests (those over 32 KiB, which need a free aligned 64 KiB buddy)
//!    then fail for fragmentation.
//! 2. `mixed_assets`: 1 GiB block, sizes log-uniform 1 KiB..32 MiB, ~200 live.
//! 3. `frame_transients`: 256 MiB block with 2k long-lived small allocations;
//!    each frame allocates 200 of 1..256 KiB, then frees them all.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mem_core::buddy::BuddyBlock;

const MIB: u64 = 1 << 20;

/// xorshift64*: seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Log-uniform in `lo..=hi`.
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        ((a + u * (b - a)).exp() as u64).clamp(lo, hi)
    }
}

/// A block under churn: allocations carry their requested size as payload.
struct Trace {
    name: &'static str,
    block: BuddyBlock<u64>,
    live: Vec<u64>,
    rng: Rng,
    lo: u64,
    hi: u64,
    target_live: usize,
    sizes: Vec<u64>,
    victims: Vec<u64>,
    new: Vec<u64>,
    allocs: u64,
    failures: u64,
}

impl Trace {
    fn new(
        name: &'static str,
        block_size: u64,
        lo: u64,
        hi: u64,
        target_live: usize,
        seed: u64,
    ) -> Self {
        let mut trace = Self {
            name,
            block: BuddyBlock::new(block_size, 256).unwrap(),
            live: Vec::with_capacity(target_live * 2),
            rng: Rng(seed),
            lo,
            hi,
            target_live,
            sizes: Vec::new(),
            victims: Vec::new(),
            new: Vec::new(),
            allocs: 0,
            failures: 0,
        };
        // Warm up: fill to the target, then churn a while so the free lists
        // reach their steady state.
        while trace.live.len() < target_live {
            let size = trace.rng.log_uniform(lo, hi);
            match trace.block.allocate(size, 0, size) {
                Ok(off) => trace.live.push(off),
                Err(_) => break,
            }
        }
        let (mut a, mut f) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..(4 * target_live / 64).max(50) {
            trace.round(64, &mut a, &mut f);
        }
        trace.allocs = 0;
        trace.failures = 0;
        trace
    }

    /// Allocates `n`, then frees random live allocations back down to the
    /// target count; adds the time of the allocate and free calls.
    fn round(&mut self, n: usize, alloc_time: &mut Duration, free_time: &mut Duration) -> usize {
        self.sizes.clear();
        for _ in 0..n {
            let size = self.rng.log_uniform(self.lo, self.hi);
            self.sizes.push(size);
        }
        let t = Instant::now();
        for &size in &self.sizes {
            match self.block.allocate(size, 0, size) {
                Ok(off) => self.new.push(off),
                Err(_) => self.failures += 1,
            }
        }
        *alloc_time += t.elapsed();
        self.allocs += n as u64;
        self.live.append(&mut self.new);

        self.victims.clear();
        while self.live.len() > self.target_live {
            let i = self.rng.below(self.live.len());
            self.victims.push(self.live.swap_remove(i));
        }
        let t = Instant::now();
        for &off in &self.victims {
            let _ = black_box(self.block.free(off));
        }
        *free_time += t.elapsed();
        self.victims.len()
    }

    fn report(&self) {
        let requested: u64 = self.block.live().map(|(_, _, &size)| size).sum();
        let kept = self.block.allocated_bytes();
        let free_blocks: usize = self.block.free_histogram().map(|(_, n)| n).sum();
        println!(
            "{}: {} live, requested {:.1} MiB, kept {:.1} MiB (internal waste {:.3}%), block {:.1}% full, \
             largest free {} KiB, {} free blocks, host metadata {} KiB, {} of {} allocations failed",
            self.name,
            self.block.allocation_count(),
            requested as f64 / MIB as f64,
            kept as f64 / MIB as f64,
            100.0 * (kept - requested) as f64 / kept as f64,
            100.0 * kept as f64 / self.block.size() as f64,
            self.block.largest_free() >> 10,
            free_blocks,
            self.block.host_memory_bytes() >> 10,
            self.failures,
            self.allocs,
        );
    }
}

/// Benches allocate and free of a churn trace as two functions.
fn churn(c: &mut Criterion, mut trace: Trace, batch: usize) {
    trace.report();
    let name = trace.name;
    c.bench_function(&format!("{name}/allocate"), |b| {
        b.iter_custom(|iters| {
            let (mut a, mut f) = (Duration::ZERO, Duration::ZERO);
            let mut done = 0;
            while done < iters {
                let n = batch.min((iters - done) as usize);
                trace.round(n, &mut a, &mut f);
                done += n as u64;
            }
            a
        })
    });
    c.bench_function(&format!("{name}/free"), |b| {
        b.iter_custom(|iters| {
            let (mut a, mut f) = (Duration::ZERO, Duration::ZERO);
            let mut done = 0;
            while done < iters {
                let n = batch.min((iters - done) as usize);
                done += trace.round(n, &mut a, &mut f) as u64;
            }
            // Rounds free as many as they allocated, except when an
            // allocation failed; scale to `iters` frees.
            f.mul_f64(iters as f64 / done.max(1) as f64)
        })
    });
    trace.report();
    trace.block.validate().unwrap();
}

fn small_churn(c: &mut Criterion) {
    let trace = Trace::new("small_churn", 256 * MIB, 256, 64 << 10, 14_000, 0x5EED_0001);
    churn(c, trace, 256);
}

fn mixed_assets(c: &mut Criterion) {
    let trace = Trace::new(
        "mixed_assets",
        1024 * MIB,
        1 << 10,
        32 * MIB,
        200,
        0x5EED_0002,
    );
    churn(c, trace, 16);
}

fn frame_transients(c: &mut Criterion) {
    const PER_FRAME: usize = 200;
    let mut block = BuddyBlock::<u64>::new(256 * MIB, 256).unwrap();
    let mut rng = Rng(0x5EED_0003);
    for _ in 0..2000 {
        let size = rng.log_uniform(256, 64 << 10);
        block.allocate(size, 0, size).unwrap();
    }
    let mut sizes = Vec::with_capacity(PER_FRAME);
    let mut frame = Vec::with_capacity(PER_FRAME);
    // One frame, reported at its peak.
    {
        let mut peak = block.clone();
        let mut requested = 0;
        for _ in 0..PER_FRAME {
            let size = rng.log_uniform(1 << 10, 256 << 10);
            peak.allocate(size, 0, size).unwrap();
        }
        for (_, _, &size) in peak.live() {
            requested += size;
        }
        let kept = peak.allocated_bytes();
        println!(
            "frame_transients: at frame peak {} live, requested {:.2} MiB, kept {:.2} MiB (internal waste {:.3}%), host metadata {} KiB",
            peak.allocation_count(),
            requested as f64 / MIB as f64,
            kept as f64 / MIB as f64,
            100.0 * (kept - requested) as f64 / kept as f64,
            peak.host_memory_bytes() >> 10,
        );
    }
    let mut alloc_time = Duration::ZERO;
    let mut free_time = Duration::ZERO;
    let mut run_frame =
        |block: &mut BuddyBlock<u64>, alloc_time: &mut Duration, free_time: &mut Duration| {
            sizes.clear();
            sizes.extend((0..PER_FRAME).map(|_| rng.log_uniform(1 << 10, 256 << 10)));
            let t = Instant::now();
            for &size in &sizes {
                frame.push(block.allocate(size, 0, size).unwrap());
            }
            *alloc_time += t.elapsed();
            let t = Instant::now();
            for off in frame.drain(..) {
                let _ = black_box(block.free(off));
            }
            *free_time += t.elapsed();
        };
    for _ in 0..50 {
        run_frame(&mut block, &mut alloc_time, &mut free_time);
    }
    c.bench_function("frame_transients/allocate", |b| {
        b.iter_custom(|iters| {
            let (mut a, mut f) = (Duration::ZERO, Duration::ZERO);
            let frames = iters.div_ceil(PER_FRAME as u64);
            for _ in 0..frames {
                run_frame(&mut block, &mut a, &mut f);
            }
            a.mul_f64(iters as f64 / (frames * PER_FRAME as u64) as f64)
        })
    });
    c.bench_function("frame_transients/free", |b| {
        b.iter_custom(|iters| {
            let (mut a, mut f) = (Duration::ZERO, Duration::ZERO);
            let frames = iters.div_ceil(PER_FRAME as u64);
            for _ in 0..frames {
                run_frame(&mut block, &mut a, &mut f);
            }
            f.mul_f64(iters as f64 / (frames * PER_FRAME as u64) as f64)
        })
    });
    block.validate().unwrap();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = small_churn, mixed_assets, frame_transients
}
criterion_main!(benches);
