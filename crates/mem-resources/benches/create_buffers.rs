//! Creating + binding + destroying 10,000 buffers of 1-64 KiB: through
//! mem-resources (one `create_buffer` per buffer, and one `create_buffers`
//! batch) against raw Vulkan with one `vkAllocateMemory` per buffer, side by
//! side in one run. Criterion reports time per element (= per buffer).
//!
//! Validation is off: it would measure the layer, not us. Run with
//! `cargo bench -p mem-resources`; `GPUMEM_TEST_DEVICE` picks the device.

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mem_core::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use mem_resources::{BufferDesc, ResourceManager, ResourceManagerCreateInfo};
use mem_testkit::TestContext;

const COUNT: usize = 10_000;

/// Deterministic sizes in [1 KiB, 64 KiB] (xorshift64*).
fn sizes() -> Vec<u64> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..COUNT)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            1024 + x.wrapping_mul(0x2545_F491_4F6C_DD1D) % (63 * 1024 + 1)
        })
        .collect()
}

const USAGE: vk::BufferUsageFlags = vk::BufferUsageFlags::from_raw(
    vk::BufferUsageFlags::STORAGE_BUFFER.as_raw() | vk::BufferUsageFlags::TRANSFER_DST.as_raw(),
);

/// Raw Vulkan: vkCreateBuffer, vkGetBufferMemoryRequirements, one
/// vkAllocateMemory, vkBindBufferMemory per buffer; then destroy + free.
fn raw_vulkan(ctx: &TestContext, sizes: &[u64]) -> Duration {
    let d = ctx.device();
    let mem = ctx.memory_properties();
    let start = Instant::now();
    let mut made = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let info = vk::BufferCreateInfo::default().size(size).usage(USAGE);
        // SAFETY: valid create info; every object is destroyed below.
        unsafe {
            let buffer = d.create_buffer(&info, None).expect("vkCreateBuffer");
            let req = d.get_buffer_memory_requirements(buffer);
            let type_index = (0..mem.memory_type_count)
                .find(|&i| {
                    req.memory_type_bits & (1 << i) != 0
                        && mem.memory_types[i as usize]
                            .property_flags
                            .contains(vk::MemoryPropertyFlags::DEVICE_LOCAL)
                })
                .expect("a device-local type");
            let alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(type_index);
            let memory = d.allocate_memory(&alloc, None).expect("vkAllocateMemory");
            d.bind_buffer_memory(buffer, memory, 0)
                .expect("vkBindBufferMemory");
            made.push((buffer, memory));
        }
    }
    for (buffer, memory) in made {
        // SAFETY: unused by the GPU; destroyed once.
        unsafe {
            d.destroy_buffer(buffer, None);
            d.free_memory(memory, None);
        }
    }
    start.elapsed()
}

/// The floor: vkCreateBuffer + vkGetBufferMemoryRequirements +
/// vkDestroyBuffer, no memory at all. What any path pays for the objects.
fn objects_only(ctx: &TestContext, sizes: &[u64]) -> Duration {
    let d = ctx.device();
    let start = Instant::now();
    let mut made = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let info = vk::BufferCreateInfo::default().size(size).usage(USAGE);
        // SAFETY: valid create info; destroyed below.
        unsafe {
            let buffer = d.create_buffer(&info, None).expect("vkCreateBuffer");
            let _ = std::hint::black_box(d.get_buffer_memory_requirements(buffer));
            made.push(buffer);
        }
    }
    for buffer in made {
        // SAFETY: never bound or used.
        unsafe { d.destroy_buffer(buffer, None) };
    }
    start.elapsed()
}

fn through_manager(rm: &ResourceManager, descs: &[BufferDesc], batch: bool) -> Duration {
    let start = Instant::now();
    let buffers = if batch {
        rm.create_buffers(descs).expect("create_buffers")
    } else {
        descs
            .iter()
            .map(|d| rm.create_buffer(d).expect("create_buffer"))
            .collect()
    };
    for b in buffers {
        // SAFETY: no GPU work uses them.
        unsafe { rm.destroy_buffer(b) }.expect("destroy_buffer");
    }
    start.elapsed()
}

fn allocator(ctx: &TestContext, config: AllocatorConfig) -> Arc<Allocator> {
    // SAFETY: the context's handles are valid and outlive the allocator
    // (dropped at the end of `bench`, before `ctx.finish()`).
    Arc::new(
        unsafe {
            Allocator::new(AllocatorCreateInfo {
                instance: ctx.instance(),
                physical_device: ctx.physical_device(),
                device: ctx.device(),
                memory_budget: false,
                allocation_callbacks: None,
                config,
            })
        }
        .expect("allocator"),
    )
}

fn manager(ctx: &TestContext, allocator: &Arc<Allocator>) -> ResourceManager {
    // SAFETY: as for `allocator`; no debug utils (names would add their cost).
    unsafe {
        ResourceManager::new(ResourceManagerCreateInfo {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            allocator: Arc::clone(allocator),
            debug_utils: None,
            allocation_callbacks: None,
        })
    }
}

/// `vkAllocateMemory` calls one round makes after a warm-up round.
fn allocations_per_round(allocator: &Allocator, rm: &ResourceManager, descs: &[BufferDesc]) -> u64 {
    through_manager(rm, descs, false);
    let before = allocator.stats().total.allocate_memory_calls;
    through_manager(rm, descs, false);
    allocator.stats().total.allocate_memory_calls - before
}

fn bench(c: &mut Criterion) {
    let ctx = TestContext::builder().validation(false).build();
    let sizes = sizes();
    let descs: Vec<BufferDesc> = sizes
        .iter()
        .map(|&s| BufferDesc::new(s, USAGE, MemoryUsage::GpuOnly))
        .collect();
    // Default config: one empty block kept per type, so a round that frees
    // all 10,000 buffers gives most blocks back and the next one allocates
    // them again: the full-churn cost.
    let default_alloc = allocator(&ctx, AllocatorConfig::default());
    let rm = manager(&ctx, &default_alloc);
    // Blocks kept across rounds: the steady state of an engine whose working
    // set does not shrink to zero between frames.
    let kept_alloc = allocator(
        &ctx,
        AllocatorConfig {
            max_empty_blocks_per_type: 64,
            ..AllocatorConfig::default()
        },
    );
    let rm_kept = manager(&ctx, &kept_alloc);
    eprintln!(
        "vkAllocateMemory calls per round of 10,000: default config {}, empty blocks kept {}",
        allocations_per_round(&default_alloc, &rm, &descs),
        allocations_per_round(&kept_alloc, &rm_kept, &descs),
    );

    let mut group = c.benchmark_group("create_bind_destroy_10000_buffers_1-64KiB");
    group.throughput(Throughput::Elements(COUNT as u64));
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);
    group.bench_function(
        BenchmarkId::new("floor_objects_only_no_memory", COUNT),
        |b| b.iter_custom(|iters| (0..iters).map(|_| objects_only(&ctx, &sizes)).sum()),
    );
    // One round takes seconds on drivers with a slow vkAllocateMemory.
    group.sample_size(10);
    group.bench_function(
        BenchmarkId::new("raw_vulkan_one_allocation_each", COUNT),
        |b| b.iter_custom(|iters| (0..iters).map(|_| raw_vulkan(&ctx, &sizes)).sum()),
    );
    group.sample_size(20);
    group.bench_function(
        BenchmarkId::new("mem_resources_create_buffer", COUNT),
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| through_manager(&rm, &descs, false))
                    .sum()
            })
        },
    );
    group.bench_function(
        BenchmarkId::new("mem_resources_create_buffers_batch", COUNT),
        |b| b.iter_custom(|iters| (0..iters).map(|_| through_manager(&rm, &descs, true)).sum()),
    );
    group.bench_function(
        BenchmarkId::new("mem_resources_create_buffer_blocks_kept", COUNT),
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| through_manager(&rm_kept, &descs, false))
                    .sum()
            })
        },
    );
    group.bench_function(
        BenchmarkId::new("mem_resources_create_buffers_batch_blocks_kept", COUNT),
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| through_manager(&rm_kept, &descs, true))
                    .sum()
            })
        },
    );
    group.finish();

    for (rm, allocator) in [(rm, default_alloc), (rm_kept, kept_alloc)] {
        assert!(rm.leak_report().is_empty());
        drop(rm);
        assert!(allocator.leak_report().is_empty());
        drop(allocator);
    }
    ctx.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
