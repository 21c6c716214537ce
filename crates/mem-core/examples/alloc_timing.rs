//! Allocator-level ns per allocate and per free on a small-churn trace over
//! the fake lavapipe device (no Vulkan): the overhead above the buddy core.
//!
//! `cargo run --release -p mem-core --example alloc_timing`
use std::time::Instant;

use ash::vk;
use mem_core::buddy::BuddyBlock;
use mem_core::fake::FakeDevice;
use mem_core::{AllocationDesc, Allocator, AllocatorConfig, MemoryUsage};

fn main() {
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
    for a in live {
        alloc.free(a).unwrap();
    }
}
