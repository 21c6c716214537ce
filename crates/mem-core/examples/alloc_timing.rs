//! Allocator-level ns per allocate and per free on a small-churn trace over
//! the fake lavapipe device (no Vulkan): the overhead above the placement
//! cores (TLSF, the default, and the buddy), timed alone on the same trace.
//!
//! Then two threads at once, on the same memory type (one lock) and on two
//! types (two locks), to show what per-memory-type locking buys.
//!
//! `cargo run --release -p mem-core --example alloc_timing`
use std::time::Instant;

use ash::vk;
use clap::Parser;
use mem_core::buddy::BuddyBlock;
use mem_core::fake::FakeDevice;
use mem_core::tlsf::{Tlsf, TlsfAllocation};
use mem_core::{AllocationDesc, Allocator, AllocatorConfig, MemoryUsage};

/// Time the allocator against the bare placement cores on a small-churn trace
/// over the fake lavapipe device, then two threads on one and on two memory
/// types.
#[derive(Parser)]
struct Args {}

fn main() {
    Args::parse();
    let alloc = Allocator::with_device(
        Box::new(FakeDevice::builtin("lavapipe-mesa-22.3").unwrap()),
        AllocatorConfig::default(),
    );
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let sizes: Vec<u64> = (0..200_000)
        .map(|_| (256.0 * 256f64.powf((next() % 10_000) as f64 / 10_000.0)) as u64)
        .collect();
    let req = |s| {
        AllocationDesc::new(
            vk::MemoryRequirements {
                size: s,
                alignment: 256,
                memory_type_bits: 1,
            },
            MemoryUsage::GpuOnly,
        )
    };
    let mut live: Vec<_> = sizes[..20_000]
        .iter()
        .map(|&s| alloc.allocate(&req(s)).unwrap())
        .collect();
    let (mut ta, mut tf, mut n) = (0u128, 0u128, 0u128);
    for round in 0..90 {
        let mut freed = Vec::with_capacity(1000);
        for k in 0..1000 {
            let i = (next() as usize) % live.len();
            freed.push(live.swap_remove(i));
            let _ = k;
        }
        let t = Instant::now();
        for a in freed {
            alloc.free(a).unwrap();
        }
        tf += t.elapsed().as_nanos();
        let t = Instant::now();
        for k in 0..1000 {
            live.push(
                alloc
                    .allocate(&req(sizes[20_000 + (round * 1000 + k) % 180_000]))
                    .unwrap(),
            );
        }
        ta += t.elapsed().as_nanos();
        n += 1000;
    }
    println!(
        "Allocator: allocate {:.1} ns, free {:.1} ns",
        ta as f64 / n as f64,
        tf as f64 / n as f64
    );
    // The buddy core alone on the same trace.
    let mut b: BuddyBlock<()> = BuddyBlock::new(1 << 30, 256).unwrap();
    let mut offs: Vec<u64> = sizes[..20_000]
        .iter()
        .map(|&s| b.allocate(s, 256, ()).unwrap())
        .collect();
    let (mut ta, mut tf, mut n) = (0u128, 0u128, 0u128);
    for round in 0..90 {
        let mut freed = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let i = (next() as usize) % offs.len();
            freed.push(offs.swap_remove(i));
        }
        let t = Instant::now();
        for o in freed {
            b.free(o).unwrap();
        }
        tf += t.elapsed().as_nanos();
        let t = Instant::now();
        for k in 0..1000 {
            offs.push(
                b.allocate(sizes[20_000 + (round * 1000 + k) % 180_000], 256, ())
                    .unwrap(),
            );
        }
        ta += t.elapsed().as_nanos();
        n += 1000;
    }
    println!(
        "BuddyBlock: allocate {:.1} ns, free {:.1} ns",
        ta as f64 / n as f64,
        tf as f64 / n as f64
    );
    // The TLSF core alone on the same trace (one 1 GiB region).
    let mut t: Tlsf<()> = Tlsf::new(256).unwrap();
    t.add_region(1 << 30).unwrap();
    let mut handles: Vec<TlsfAllocation> = sizes[..20_000]
        .iter()
        .map(|&s| t.allocate(s, 256, ()).unwrap())
        .collect();
    let (mut ta, mut tf, mut n) = (0u128, 0u128, 0u128);
    for round in 0..90 {
        let mut freed = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let i = (next() as usize) % handles.len();
            freed.push(handles.swap_remove(i));
        }
        let start = Instant::now();
        for a in freed {
            t.free(a.handle, a.region, a.offset).unwrap();
        }
        tf += start.elapsed().as_nanos();
        let start = Instant::now();
        for k in 0..1000 {
            handles.push(
                t.allocate(sizes[20_000 + (round * 1000 + k) % 180_000], 256, ())
                    .unwrap(),
            );
        }
        ta += start.elapsed().as_nanos();
        n += 1000;
    }
    println!(
        "Tlsf: allocate {:.1} ns, free {:.1} ns",
        ta as f64 / n as f64,
        tf as f64 / n as f64
    );
    for a in live {
        alloc.free(a).unwrap();
    }
    contention();
}

/// Two threads churning 256 B-64 KiB allocations at once; ns per
/// allocate+free pair, per thread, by wall clock.
fn contention() {
    use std::sync::Arc;
    let run = |usages: [MemoryUsage; 2]| -> f64 {
        let alloc = Arc::new(Allocator::with_device(
            Box::new(FakeDevice::builtin("nvidia-h100").unwrap()),
            AllocatorConfig::default(),
        ));
        let start = std::sync::Barrier::new(2);
        let start = Arc::new(start);
        let handles: Vec<_> = usages
            .into_iter()
            .enumerate()
            .map(|(t, usage)| {
                let alloc = alloc.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (t as u64 + 1);
                    let mut live = Vec::with_capacity(4096);
                    let req = |s: u64| {
                        AllocationDesc::new(
                            vk::MemoryRequirements {
                                size: s,
                                alignment: 256,
                                memory_type_bits: u32::MAX,
                            },
                            usage,
                        )
                    };
                    for _ in 0..4096 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        live.push(alloc.allocate(&req(256 + rng % 65_280)).unwrap());
                    }
                    start.wait();
                    let t0 = Instant::now();
                    let n = 300_000;
                    for _ in 0..n {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let i = (rng >> 16) as usize % live.len();
                        let a = live.swap_remove(i);
                        alloc.free(a).unwrap();
                        live.push(alloc.allocate(&req(256 + rng % 65_280)).unwrap());
                    }
                    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
                    for a in live {
                        alloc.free(a).unwrap();
                    }
                    ns
                })
            })
            .collect();
        let v: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let same = run([MemoryUsage::GpuOnly, MemoryUsage::GpuOnly]);
    let apart = run([MemoryUsage::GpuOnly, MemoryUsage::Upload]);
    println!(
        "2 threads, same memory type (one lock): {same:.1} ns per allocate+free pair per thread\n\
         2 threads, different types (two locks): {apart:.1} ns per pair per thread"
    );
}
