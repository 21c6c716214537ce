//! `Allocator::validate` while other threads allocate and free: it must be
//! exact at every moment, not only once the allocator is quiet. Threads
//! churn 1-8 MiB requests (memory of their own, the reuse cache, and with
//! the cut off, blocks that grow and are given back) and small ones in
//! blocks, while another thread validates in a loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use mem_core::fake::FakeDevice;
use mem_core::{
    AllocationDesc, Allocator, AllocatorConfig, AllocatorCreateInfo, CacheRetention, MemoryUsage,
};
use mem_testkit::TestContext;

const MIB: u64 = 1 << 20;

fn req(size: u64, usage: MemoryUsage) -> AllocationDesc<'static> {
    AllocationDesc::new(
        vk::MemoryRequirements {
            size,
            alignment: 256,
            memory_type_bits: u32::MAX,
        },
        usage,
    )
}

/// Runs `churners` threads that allocate and free while this thread
/// validates, until the churners made `operations` calls and it made 500 (or 20 s
/// passed);
/// returns (validations, failures, the first few failures).
///
/// The lock of a memory type is not fair, and `validate` holds it for a
/// while: a validating loop without a pause would starve the churners.
fn validate_while_churning(
    alloc: Arc<Allocator>,
    churners: u64,
    operations: u64,
) -> (u64, u64, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..churners)
        .map(|t| {
            let (alloc, stop, done) = (alloc.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                let mut live = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if live.len() >= 8 || (rng % 3 == 0 && !live.is_empty()) {
                        let i = (rng >> 8) as usize % live.len();
                        alloc.free(live.swap_remove(i)).unwrap();
                    } else {
                        let size = if rng >> 60 < 4 {
                            256 << ((rng >> 20) % 10)
                        } else {
                            MIB + (rng >> 24) % (7 * MIB)
                        };
                        let usage = MemoryUsage::ALL[(rng >> 40) as usize % 4];
                        live.push(alloc.allocate(&req(size, usage)).unwrap());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                for a in live {
                    alloc.free(a).unwrap();
                }
            })
        })
        .collect();
    let (mut calls, mut failed, mut failures) = (0u64, 0u64, Vec::new());
    let start = Instant::now();
    while (done.load(Ordering::Relaxed) < operations || calls < 500)
        && start.elapsed() < Duration::from_secs(20)
    {
        calls += 1;
        if let Err(e) = alloc.validate() {
            failed += 1;
            if failures.len() < 5 {
                failures.push(e.to_string());
            }
        }
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    alloc.validate().unwrap();
    let done = done.load(Ordering::Relaxed);
    assert!(done >= operations, "the churners made {done} calls");
    assert!(calls >= 500, "{calls} validations");
    (calls, failed, failures)
}

fn configs() -> [(&'static str, AllocatorConfig); 3] {
    [
        ("default", AllocatorConfig::default()),
        (
            "live-share cache",
            AllocatorConfig {
                cache_retention: CacheRetention::LiveShare,
                ..Default::default()
            },
        ),
        // Every size in blocks: pools grow, empty blocks are given back.
        (
            "blocks only",
            AllocatorConfig {
                own_memory_threshold: u64::MAX,
                small_allocation_limit: 0,
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn validate_is_exact_while_other_threads_allocate_fake() {
    for table in ["nvidia-h100", "amd-rx6600-no-rebar"] {
        for (name, config) in configs() {
            let fake = Arc::new(FakeDevice::builtin(table).unwrap());
            let alloc = Arc::new(Allocator::with_device(Box::new(fake.clone()), config));
            let (calls, failed, failures) = validate_while_churning(alloc.clone(), 2, 3000);
            assert!(
                failed == 0,
                "{table} {name}: {failed} of {calls} validations failed while threads allocated: {failures:#?}"
            );
            drop(alloc);
            assert_eq!(fake.live_memory_objects(), 0, "{table} {name}");
        }
    }
}

#[test]
fn validate_is_exact_while_other_threads_allocate_lavapipe() {
    let ctx = TestContext::new();
    {
        // SAFETY: the context's handles are valid and outlive the allocator,
        // dropped before `ctx.finish()`.
        let alloc = Arc::new(
            unsafe {
                Allocator::new(AllocatorCreateInfo::new(
                    ctx.instance(),
                    ctx.physical_device(),
                    ctx.device(),
                ))
            }
            .unwrap(),
        );
        let (calls, failed, failures) = validate_while_churning(alloc, 1, 3000);
        assert!(
            failed == 0,
            "{failed} of {calls} validations failed while a thread allocated: {failures:#?}"
        );
    }
    ctx.finish();
}
