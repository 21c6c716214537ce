//! Concurrency stress on lavapipe: 16 threads for a bounded time (~5 s)
//! allocating and freeing through one `Allocator`, creating and destroying
//! buffers through one `ResourceManager`, and queuing uploads through one
//! `StagingBelt` (behind a `parking_lot::Mutex`, `force_staging`) with a
//! sample verified by GPU readback. After: `Allocator::validate`,
//! `ResourceManager::validate`, empty leak reports, and no validation message
//! (`TestContext::finish`). The belt is `&mut self` (no lock-free ring), so a
//! loom model is not needed; see RELIABILITY.md.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use mem_core::{AllocationDesc, MemoryUsage};
use mem_resources::BufferDesc;
use mem_staging::belt::{SharedQueue, StagingBelt, StagingBeltConfig};
use mem_testkit::TestContext;
use parking_lot::Mutex;

const THREADS: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(5);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Default)]
struct Counts {
    allocs: AtomicU64,
    frees: AtomicU64,
    verified_allocs: AtomicU64,
    buffers_created: AtomicU64,
    buffers_destroyed: AtomicU64,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    readbacks: AtomicU64,
}

#[test]
fn sixteen_threads_allocate_create_upload() {
    let ctx = TestContext::new();
    let (allocator, resources) = common::stack(&ctx);
    let (family, queue) = ctx.transfer_queue();
    let shared = SharedQueue {
        family,
        queue,
        lock: Arc::new(Mutex::new(())),
    };
    let desc = StagingBeltConfig {
        force_staging: true,
        ..StagingBeltConfig::with_ring_size(8 << 20)
    };
    // SAFETY: handles from the context; the belt is used behind one mutex,
    // and readbacks on the same queue run while holding that mutex.
    let belt = unsafe {
        StagingBelt::new(
            resources.clone(),
            ctx.instance(),
            ctx.physical_device(),
            shared,
            family,
            desc,
        )
    }
    .unwrap();
    let belt = Mutex::new(belt);
    let counts = Counts::default();
    let start = Instant::now();

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (allocator, resources, belt, counts, ctx) =
                (&allocator, &resources, &belt, &counts, &ctx);
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let mut live = Vec::new();
                while start.elapsed() < RUN_FOR {
                    match t % 3 {
                        // Raw allocator traffic with a pattern check.
                        0 => {
                            let size = 1 + rng.next() % (256 << 10);
                            let usage = if rng.next() % 2 == 0 {
                                MemoryUsage::Upload
                            } else {
                                MemoryUsage::GpuOnly
                            };
                            let d = AllocationDesc::new(
                                vk::MemoryRequirements {
                                    size,
                                    alignment: 256,
                                    memory_type_bits: u32::MAX,
                                },
                                usage,
                            );
                            let mut a = allocator.allocate(&d).unwrap();
                            counts.allocs.fetch_add(1, Ordering::Relaxed);
                            if a.mapped_ptr().is_some() {
                                let tag = [t as u8; 64];
                                let n = (size as usize).min(64);
                                allocator.write(&mut a, 0, &tag[..n]).unwrap();
                            }
                            live.push((a, t as u8));
                            if live.len() > 32 || rng.next() % 2 == 0 {
                                let (a, tag) =
                                    live.swap_remove((rng.next() % live.len() as u64) as usize);
                                if a.mapped_ptr().is_some() {
                                    let n = (a.reserved_size() as usize).min(64);
                                    let mut buf = [0u8; 64];
                                    allocator.read(&a, 0, &mut buf[..n]).unwrap();
                                    assert!(
                                        buf[..n].iter().all(|&b| b == tag),
                                        "thread {t}: allocation overwritten"
                                    );
                                    counts.verified_allocs.fetch_add(1, Ordering::Relaxed);
                                }
                                allocator.free(a).unwrap();
                                counts.frees.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Resource creation/destruction (never used by the GPU).
                        1 => {
                            let size = 256 + rng.next() % (1 << 20);
                            let b = resources
                                .create_buffer(
                                    &BufferDesc::new(
                                        size,
                                        vk::BufferUsageFlags::STORAGE_BUFFER,
                                        MemoryUsage::GpuOnly,
                                    )
                                    .name(format!("t{t}")),
                                )
                                .unwrap();
                            counts.buffers_created.fetch_add(1, Ordering::Relaxed);
                            // SAFETY: never used by any command.
                            unsafe { resources.destroy_buffer(b) }.unwrap();
                            counts.buffers_destroyed.fetch_add(1, Ordering::Relaxed);
                        }
                        // Uploads through the shared belt, a sample read back.
                        _ => {
                            let size = 4 * (1 + rng.next() % (64 << 10));
                            let dst = resources
                                .create_buffer(
                                    &BufferDesc::new(
                                        size,
                                        vk::BufferUsageFlags::TRANSFER_DST
                                            | vk::BufferUsageFlags::TRANSFER_SRC,
                                        MemoryUsage::GpuOnly,
                                    )
                                    .name(format!("upload t{t}")),
                                )
                                .unwrap();
                            let seed = rng.next();
                            let data: Vec<u8> = (0..size)
                                .map(|i| (i.wrapping_mul(seed | 1) >> 3) as u8)
                                .collect();
                            let verify = rng.next() % 4 == 0;
                            let mut belt = belt.lock();
                            let ticket = belt.upload_buffer(&dst, 0, &data).unwrap();
                            counts.uploads.fetch_add(1, Ordering::Relaxed);
                            counts.upload_bytes.fetch_add(size, Ordering::Relaxed);
                            belt.wait(ticket).unwrap();
                            if verify {
                                let readback = resources
                                    .create_buffer(&BufferDesc::readback(size))
                                    .unwrap();
                                let device = ctx.device().clone();
                                // The belt's lock is held: nothing else submits to the queue.
                                ctx.one_shot(family, |cmd| {
                                    // SAFETY: recording; both buffers live; the
                                    // upload completed (waited above).
                                    unsafe {
                                        device.cmd_copy_buffer(
                                            cmd,
                                            dst.handle(),
                                            readback.handle(),
                                            &[vk::BufferCopy {
                                                src_offset: 0,
                                                dst_offset: 0,
                                                size,
                                            }],
                                        )
                                    }
                                });
                                let mut out = vec![0u8; size as usize];
                                resources.read_buffer(&readback, 0, &mut out).unwrap();
                                assert!(
                                    out == data,
                                    "thread {t}: upload of {size} bytes read back wrong"
                                );
                                counts.readbacks.fetch_add(1, Ordering::Relaxed);
                                // SAFETY: the one-shot waited for the copy.
                                unsafe { resources.destroy_buffer(readback) }.unwrap();
                            }
                            drop(belt);
                            // SAFETY: the upload and any readback completed.
                            unsafe { resources.destroy_buffer(dst) }.unwrap();
                        }
                    }
                }
                for (a, _) in live {
                    allocator.free(a).unwrap();
                    counts.frees.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let mut belt = belt.into_inner();
    belt.finish().unwrap();
    drop(belt);
    resources.collect().unwrap();
    allocator.validate().unwrap();
    resources.validate().unwrap();
    assert!(
        resources.leak_report().is_empty(),
        "{:?}",
        resources.leak_report()
    );
    drop(resources);
    assert!(
        allocator.leak_report().is_empty(),
        "{:?}",
        allocator.leak_report()
    );
    allocator.validate().unwrap();
    eprintln!(
        "reliability_threads: {THREADS} threads, {:.2} s: {} allocations ({} pattern-verified), {} frees, \
         {} buffers created/{} destroyed, {} uploads ({} bytes), {} readbacks verified",
        elapsed.as_secs_f64(),
        counts.allocs.load(Ordering::Relaxed),
        counts.verified_allocs.load(Ordering::Relaxed),
        counts.frees.load(Ordering::Relaxed),
        counts.buffers_created.load(Ordering::Relaxed),
        counts.buffers_destroyed.load(Ordering::Relaxed),
        counts.uploads.load(Ordering::Relaxed),
        counts.upload_bytes.load(Ordering::Relaxed),
        counts.readbacks.load(Ordering::Relaxed),
    );
    drop(allocator);
    ctx.finish();
}
