//! The failure-path sweep: a scenario of single and batched buffer and image
//! creations is run once to count the calls at every fault point, then once
//! per (fault point, position) with that call failing. Each failure must be
//! the typed error of that call, leave exactly the resources created before
//! it (nothing half-made: no object, no allocation), and leave the manager
//! usable. At the end the validation layer (at `vkDestroyDevice`) confirms
//! no `VkBuffer`, `VkImage` or `VkDeviceMemory` leaked.
//!
//! Allocation and mapping failures are injected under mem-core through a
//! `MemoryDevice` wrapper over the real device; real out-of-device-memory
//! comes from a heap-size limit.

mod common;

use std::sync::atomic::Ordering;

use ash::vk;
use common::{faulty_allocator, manager, Gpu};
use mem_core::{AllocError, AllocatorConfig, DeviceError, MemoryUsage};
use mem_resources::{
    Buffer, BufferDesc, FaultPoint, Image, ImageDesc, ResourceError, ResourceManager,
};
use mem_testkit::TestContext;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

enum Res {
    Buffer(Buffer),
    Image(Image),
}

/// Small blocks (512 KiB first, 4 MiB preferred) so the scenario makes
/// several block and dedicated `vkAllocateMemory` calls.
fn config() -> AllocatorConfig {
    AllocatorConfig {
        preferred_large_heap_block_size: 4 * MIB,
        ..AllocatorConfig::default()
    }
}

fn scenario(rm: &ResourceManager, live: &mut Vec<Res>) -> Result<(), ResourceError> {
    let rgba = vk::Format::R8G8B8A8_UNORM;
    live.push(Res::Buffer(
        rm.create_buffer(&BufferDesc::staging(KIB).name("s0 staging"))?,
    ));
    live.push(Res::Image(
        rm.create_image(
            &ImageDesc::texture_2d(rgba, 256, 256, 1)
                .full_mip_chain()
                .name("s1 texture"),
        )?,
    ));
    let batch = rm.create_buffers(&[
        BufferDesc::new(
            300 * KIB,
            vk::BufferUsageFlags::VERTEX_BUFFER,
            MemoryUsage::GpuOnly,
        )
        .name("s2 vertices"),
        BufferDesc::new(
            8 * MIB,
            vk::BufferUsageFlags::STORAGE_BUFFER,
            MemoryUsage::GpuOnly,
        )
        .name("s3 big"),
        BufferDesc::new(
            4 * KIB,
            vk::BufferUsageFlags::UNIFORM_BUFFER,
            MemoryUsage::Dynamic,
        ),
    ])?;
    live.extend(batch.into_iter().map(Res::Buffer));
    let images = rm.create_images(&[
        ImageDesc::texture_2d(rgba, 2048, 2048, 1).name("s5 large"),
        ImageDesc::cube(rgba, 64, 1)
            .full_mip_chain()
            .name("s6 cube"),
        ImageDesc::render_target(vk::Format::D32_SFLOAT, 128, 128),
    ])?;
    live.extend(images.into_iter().map(Res::Image));
    live.push(Res::Buffer(
        rm.create_buffer(
            &BufferDesc::new(
                2 * MIB,
                vk::BufferUsageFlags::STORAGE_BUFFER,
                MemoryUsage::Readback,
            )
            .name("s8"),
        )?,
    ));
    Ok(())
}

fn destroy_all(rm: &ResourceManager, live: Vec<Res>) {
    for r in live.into_iter().rev() {
        // SAFETY: no GPU work uses them.
        unsafe {
            match r {
                Res::Buffer(b) => rm.destroy_buffer(b).unwrap(),
                Res::Image(i) => rm.destroy_image(i).unwrap(),
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Vulkan(FaultPoint),
    Allocate,
    Map,
}

#[test]
fn failure_sweep_every_fault_point_every_position() {
    let ctx = TestContext::new();

    // Dry run: count the calls of each kind.
    let (dev, allocator) = faulty_allocator(&ctx, false, config());
    let rm = manager(&ctx, allocator.clone());
    let mut live = Vec::new();
    scenario(&rm, &mut live).expect("scenario without faults");
    let mut counts: Vec<(Fault, u64)> = FaultPoint::ALL
        .iter()
        .map(|&p| (Fault::Vulkan(p), rm.fault_calls(p)))
        .collect();
    counts.push((Fault::Allocate, dev.allocate_calls.load(Ordering::SeqCst)));
    counts.push((Fault::Map, dev.map_calls.load(Ordering::SeqCst)));
    let total_resources = live.len();
    destroy_all(&rm, live);
    drop(rm);
    assert!(allocator.leak_report().is_empty());
    drop(allocator);
    eprintln!("calls per fault point: {counts:?}");
    let count = |f: &str| {
        counts
            .iter()
            .find(|(k, _)| format!("{k:?}").contains(f))
            .unwrap()
            .1
    };
    assert_eq!(count("CreateBuffer"), 5);
    assert_eq!(count("CreateImage"), 4);
    assert_eq!(
        count("BindBufferMemory"),
        3,
        "one per create_buffer, one per batch"
    );
    assert_eq!(count("BindImageMemory"), 2);
    assert!(
        count("SetObjectName") >= 7,
        "named objects (+ their dedicated memory)"
    );
    assert!(
        count("Allocate") >= 4,
        "several blocks and dedicated allocations"
    );
    assert!(count("Map") >= 1);

    let mut runs = 0;
    for &(fault, n_calls) in &counts {
        // Positions count as every fault hook does: 1 is the first call.
        for n in 1..=n_calls {
            let (dev, allocator) = faulty_allocator(&ctx, false, config());
            let rm = manager(&ctx, allocator.clone());
            let vk_result = if n % 2 == 0 {
                vk::Result::ERROR_OUT_OF_DEVICE_MEMORY
            } else {
                vk::Result::ERROR_OUT_OF_HOST_MEMORY
            };
            match fault {
                Fault::Vulkan(p) => rm.set_fault(p, n, vk_result),
                Fault::Allocate => dev.fail_allocate_at(n, DeviceError::OutOfHostMemory),
                Fault::Map => dev.fail_map_at(n),
            }
            let mut live = Vec::new();
            let err = scenario(&rm, &mut live).expect_err(&format!("{fault:?} #{n} did not fail"));
            let ctxt = format!("{fault:?} #{n}: {err}");
            match fault {
                Fault::Vulkan(p) => {
                    assert_eq!(
                        err.root(),
                        &ResourceError::Vulkan {
                            call: p.call(),
                            result: vk_result
                        },
                        "{ctxt}"
                    );
                    assert_eq!(err.is_out_of_device_memory(), n % 2 == 0, "{ctxt}");
                    assert_eq!(err.is_out_of_host_memory(), n % 2 == 1, "{ctxt}");
                }
                Fault::Allocate => {
                    assert_eq!(
                        err.root(),
                        &ResourceError::Alloc(AllocError::OutOfHostMemory),
                        "{ctxt}"
                    );
                    assert!(err.is_out_of_host_memory());
                }
                Fault::Map => assert_eq!(
                    err.root(),
                    &ResourceError::Alloc(AllocError::Device(DeviceError::MemoryMapFailed)),
                    "{ctxt}"
                ),
            }
            assert!(live.len() < total_resources, "{ctxt}");
            // Only what was made before the failure exists.
            rm.validate().unwrap_or_else(|e| panic!("{ctxt}: {e}"));
            assert_eq!(rm.leak_report().len(), live.len(), "{ctxt}");
            assert_eq!(
                allocator.leak_report().len(),
                live.len(),
                "{ctxt}: {:?}",
                allocator.leak_report()
            );
            // The manager still works.
            let extra = rm
                .create_buffer(&BufferDesc::staging(100).name("after the fault"))
                .unwrap();
            // SAFETY: no GPU work.
            unsafe { rm.destroy_buffer(extra) }.unwrap();
            destroy_all(&rm, live);
            assert!(rm.leak_report().is_empty(), "{ctxt}");
            assert!(allocator.leak_report().is_empty(), "{ctxt}");
            allocator
                .validate()
                .unwrap_or_else(|e| panic!("{ctxt}: {e}"));
            drop(rm);
            drop(allocator);
            runs += 1;
        }
    }
    eprintln!("{runs} faulted runs");
    assert!(runs >= 25);
    // One past the last position is past the scenario: nothing fails, so
    // positions 1..=count covered every call.
    for &p in &FaultPoint::ALL {
        let (_dev, allocator) = faulty_allocator(&ctx, false, config());
        let rm = manager(&ctx, allocator.clone());
        let n = counts
            .iter()
            .find(|(f, _)| matches!(f, Fault::Vulkan(q) if *q == p))
            .unwrap()
            .1;
        rm.set_fault(p, n + 1, vk::Result::ERROR_OUT_OF_HOST_MEMORY);
        let mut live = Vec::new();
        scenario(&rm, &mut live).unwrap_or_else(|e| panic!("{p:?} #{}: {e}", n + 1));
        destroy_all(&rm, live);
        drop(rm);
        assert!(allocator.leak_report().is_empty());
    }
    // Zero validation messages: no object or memory leaked at vkDestroyDevice,
    // nothing used after destruction.
    ctx.finish();
}

#[test]
fn allocation_out_of_device_memory_recovers_or_fails_cleanly() {
    // An OUT_OF_DEVICE_MEMORY from vkAllocateMemory makes mem-core retry
    // (smaller block, next type, past the soft budget); whichever way each
    // position goes, the result is consistent and nothing leaks.
    let ctx = TestContext::new();
    let (dev, allocator) = faulty_allocator(&ctx, false, config());
    let rm = manager(&ctx, allocator.clone());
    let mut live = Vec::new();
    scenario(&rm, &mut live).unwrap();
    let calls = dev.allocate_calls.load(Ordering::SeqCst);
    destroy_all(&rm, live);
    drop(rm);
    drop(allocator);
    let (mut ok, mut failed) = (0, 0);
    for n in 1..=calls {
        let (dev, allocator) = faulty_allocator(&ctx, false, config());
        let rm = manager(&ctx, allocator.clone());
        dev.fail_allocate_at(n, DeviceError::OutOfDeviceMemory);
        let mut live = Vec::new();
        match scenario(&rm, &mut live) {
            Ok(()) => ok += 1,
            Err(e) => {
                assert!(e.is_out_of_device_memory(), "#{n}: {e}");
                failed += 1;
            }
        }
        assert_eq!(rm.leak_report().len(), live.len());
        assert_eq!(allocator.leak_report().len(), live.len());
        destroy_all(&rm, live);
        assert!(allocator.leak_report().is_empty());
        drop(rm);
        drop(allocator);
    }
    eprintln!("OUT_OF_DEVICE_MEMORY at each of {calls} allocations: {ok} recovered, {failed} failed cleanly");
    ctx.finish();
}

#[test]
fn heap_limit_gives_real_out_of_device_memory() {
    let gpu = Gpu::with_config(AllocatorConfig {
        heap_size_limits: vec![Some(4 * MIB)],
        ..AllocatorConfig::default()
    });
    let rm = gpu.rm();
    let desc = |i: usize| {
        BufferDesc::new(
            1536 * KIB,
            vk::BufferUsageFlags::STORAGE_BUFFER,
            MemoryUsage::GpuOnly,
        )
        .name(format!("b{i}"))
    };
    let mut live = Vec::new();
    let err = loop {
        match rm.create_buffer(&desc(live.len())) {
            Ok(b) => live.push(b),
            Err(e) => break e,
        }
        assert!(live.len() < 10, "the heap limit is not enforced");
    };
    assert!(err.is_out_of_device_memory(), "{err}");
    assert!(
        matches!(err, ResourceError::Alloc(AllocError::OutOfDeviceMemory { size, .. }) if size >= 1536 * KIB),
        "{err}"
    );
    assert!(!live.is_empty());
    assert_eq!(rm.leak_report().len(), live.len());
    assert_eq!(gpu.allocator().leak_report().len(), live.len());

    // A batch crossing the limit keeps nothing and names the index. Start
    // from no committed memory at all (trim the empty blocks kept for
    // hysteresis) so the first, small buffer surely fits and the failure
    // comes after something of the batch was made.
    for b in live.drain(..) {
        // SAFETY: no GPU work.
        unsafe { rm.destroy_buffer(b) }.unwrap();
    }
    gpu.allocator().trim();
    assert_eq!(gpu.allocator().stats().committed_bytes(), 0);
    let mut descs = vec![BufferDesc::new(
        4 * KIB,
        vk::BufferUsageFlags::UNIFORM_BUFFER,
        MemoryUsage::GpuOnly,
    )
    .name("m0")];
    descs.extend((1..=4).map(|i| {
        BufferDesc::new(
            1536 * KIB,
            vk::BufferUsageFlags::STORAGE_BUFFER,
            MemoryUsage::GpuOnly,
        )
        .name(format!("m{i}"))
    }));
    let err = rm.create_buffers(&descs).unwrap_err();
    match &err {
        ResourceError::Batch { index, source } => {
            assert!(*index >= 1, "{err}");
            assert!(source.is_out_of_device_memory(), "{err}");
        }
        other => panic!("expected a batch error, got {other}"),
    }
    assert!(rm.leak_report().is_empty());
    assert!(gpu.allocator().leak_report().is_empty());

    // Larger than the whole (limited) heap: a different typed error.
    let err = rm
        .create_image(&ImageDesc::texture_2d(
            vk::Format::R8G8B8A8_UNORM,
            2048,
            2048,
            1,
        ))
        .unwrap_err();
    assert!(
        matches!(err, ResourceError::Alloc(AllocError::ExceedsHeap { largest_heap, .. }) if largest_heap == 4 * MIB),
        "{err}"
    );
    gpu.finish();
}
