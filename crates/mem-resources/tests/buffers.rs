//! Buffers on lavapipe under validation (with synchronization validation):
//! creation over many sizes and usages, a batch of 10,000, host access,
//! bad input. Every test ends with `Gpu::finish`, which fails on any leak or
//! validation message.

mod common;

use ash::vk;
use common::{faulty_allocator, manager, Gpu, Rng};
use mem_core::{AllocatorConfig, MemoryUsage};
use mem_resources::{Buffer, BufferDesc, FaultPoint, ResourceError, ResourceKind, Sharing};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Requirements of a fresh buffer like `desc`, read straight from Vulkan,
/// to check the manager bound memory that satisfies them.
fn raw_requirements(gpu: &Gpu, desc: &BufferDesc) -> vk::MemoryRequirements {
    let d = gpu.ctx.device();
    let info = vk::BufferCreateInfo::default()
        .size(desc.size)
        .usage(desc.usage);
    // SAFETY: valid create info; the buffer is destroyed right after.
    unsafe {
        let b = d.create_buffer(&info, None).unwrap();
        let r = d.get_buffer_memory_requirements(b);
        d.destroy_buffer(b, None);
        r
    }
}

/// Checks that no two buffers' memory ranges overlap.
fn assert_disjoint(buffers: &[Buffer]) {
    let mut ranges: Vec<(u64, u64, u64)> = buffers
        .iter()
        .map(|b| {
            let a = b.allocation();
            (
                vk::Handle::as_raw(a.memory()),
                a.offset(),
                a.offset() + a.reserved_size(),
            )
        })
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(
                w[0].2 <= w[1].1,
                "overlapping ranges {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
}

#[test]
fn buffers_of_many_sizes_and_usages() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let usages = [
        vk::BufferUsageFlags::VERTEX_BUFFER | vk::BufferUsageFlags::TRANSFER_DST,
        vk::BufferUsageFlags::INDEX_BUFFER,
        vk::BufferUsageFlags::UNIFORM_BUFFER,
        vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_SRC,
        vk::BufferUsageFlags::UNIFORM_TEXEL_BUFFER | vk::BufferUsageFlags::STORAGE_TEXEL_BUFFER,
        vk::BufferUsageFlags::INDIRECT_BUFFER,
        vk::BufferUsageFlags::TRANSFER_SRC,
    ];
    let sizes = [1, 3, 255, 256, 4097, 64 * KIB, MIB + 7, 16 * MIB, 64 * MIB];
    let mut live = Vec::new();
    let mut i = 0;
    for &size in &sizes {
        for &usage in &usages {
            let memory = MemoryUsage::ALL[i % 4];
            i += 1;
            let desc = BufferDesc::new(size, usage, memory).name(format!("buf {size} {usage:?}"));
            let req = raw_requirements(&gpu, &desc);
            let b = rm
                .create_buffer(&desc)
                .unwrap_or_else(|e| panic!("{desc:?}: {e}"));
            assert_ne!(b.handle(), vk::Buffer::null());
            assert_eq!(b.requested_size(), size);
            assert_eq!(b.memory_size(), b.allocation().reserved_size());
            assert_eq!(b.desc(), &desc);
            let a = b.allocation();
            assert!(
                a.reserved_size() >= req.size,
                "allocation {} < requirement {}",
                a.reserved_size(),
                req.size
            );
            assert_eq!(
                a.offset() % req.alignment.max(1),
                0,
                "offset {} not aligned to {}",
                a.offset(),
                req.alignment
            );
            assert_ne!(req.memory_type_bits & (1 << a.memory_type_index()), 0);
            if memory != MemoryUsage::GpuOnly {
                assert!(b.is_host_visible());
            }
            live.push(b);
        }
    }
    assert_disjoint(&live);
    let report = rm.leak_report();
    assert_eq!(report.len(), sizes.len() * usages.len());
    assert!(report
        .iter()
        .all(|r| r.kind == ResourceKind::Buffer && r.retired.is_none()));
    assert!(report.iter().any(
        |r| r.name.as_deref() == Some("buf 67108864 TRANSFER_SRC") && r.memory_size >= 64 * MIB
    ));
    let rep = rm.report();
    assert_eq!(rep.live_buffers as usize, live.len());
    assert!(rep.buffer_memory_bytes >= sizes.iter().sum::<u64>() * usages.len() as u64);
    rm.validate().unwrap();
    // Destroy in an interleaved order to exercise the registry's free list.
    let mut k = 0;
    while !live.is_empty() {
        k = (k + 7) % live.len();
        let b = live.swap_remove(k);
        // SAFETY: no GPU work was submitted.
        unsafe { rm.destroy_buffer(b) }.unwrap();
    }
    gpu.finish();
}

#[test]
fn batch_of_10000_small_buffers() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let descs: Vec<BufferDesc> = (0..10_000)
        .map(|i| {
            let usage = if i % 2 == 0 {
                vk::BufferUsageFlags::VERTEX_BUFFER | vk::BufferUsageFlags::TRANSFER_DST
            } else {
                vk::BufferUsageFlags::UNIFORM_BUFFER
            };
            let d = BufferDesc::new(rng.range(16, 4096), usage, MemoryUsage::GpuOnly);
            if i % 1000 == 0 {
                d.name(format!("small {i}"))
            } else {
                d
            }
        })
        .collect();
    let binds_before = rm.fault_calls(FaultPoint::BindBufferMemory);
    assert!(
        rm.create_buffers(&[]).unwrap().is_empty(),
        "an empty batch is no Vulkan call"
    );
    assert_eq!(rm.fault_calls(FaultPoint::BindBufferMemory), binds_before);
    let buffers = rm.create_buffers(&descs).unwrap();
    assert_eq!(
        rm.fault_calls(FaultPoint::BindBufferMemory) - binds_before,
        1,
        "one vkBindBufferMemory2 for the batch"
    );
    assert_eq!(buffers.len(), 10_000);
    for (b, d) in buffers.iter().zip(&descs) {
        assert_eq!(b.desc(), d);
    }
    let mut handles: Vec<u64> = buffers
        .iter()
        .map(|b| vk::Handle::as_raw(b.handle()))
        .collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(handles.len(), 10_000, "handles are distinct");
    assert_disjoint(&buffers);
    assert_eq!(rm.report().live_buffers, 10_000);
    assert_eq!(
        rm.leak_report().iter().filter(|r| r.name.is_some()).count(),
        10
    );
    let stats = gpu.allocator().stats();
    // 10,000 small buffers must share a few blocks, not take 10,000 memory objects.
    let blocks: u64 = stats
        .heaps
        .iter()
        .map(|h| h.block_count + h.own_memory_count)
        .sum();
    assert!(
        blocks < 8,
        "{blocks} memory objects for 10,000 small buffers"
    );
    rm.validate().unwrap();
    for b in buffers {
        // SAFETY: no GPU work was submitted.
        unsafe { rm.destroy_buffer(b) }.unwrap();
    }
    gpu.finish();
}

#[test]
fn write_through_mapping_then_gpu_copy_and_read_back() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let size = 256 * KIB + 13;
    let mut rng = Rng(7);
    let data = rng.bytes(size as usize);
    let mut src = rm
        .create_buffer(&BufferDesc::staging(size).name("upload"))
        .unwrap();
    let dst = rm
        .create_buffer(&BufferDesc::readback(size).name("readback"))
        .unwrap();
    assert!(src.is_host_visible() && dst.is_host_visible());
    rm.write_buffer(&mut src, 0, &data[..1000]).unwrap();
    rm.write_buffer(&mut src, 1000, &data[1000..]).unwrap();
    let mut back = vec![0u8; size as usize];
    rm.read_buffer(&src, 0, &mut back).unwrap();
    assert_eq!(back, data, "host round trip");

    // Now let the GPU copy it and read the copy: proves the bound memory is
    // the mapped memory.
    let (family, _) = gpu.ctx.graphics_queue();
    let d = gpu.ctx.device();
    gpu.ctx.one_shot(family, |cmd| {
        let region = vk::BufferCopy {
            src_offset: 0,
            dst_offset: 0,
            size,
        };
        let barrier = vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ);
        // SAFETY: both buffers are live with memory bound; the barrier makes
        // the copy visible to host reads after the fence.
        unsafe {
            d.cmd_copy_buffer(cmd, src.handle(), dst.handle(), &[region]);
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &[barrier],
                &[],
                &[],
            );
        }
    });
    let mut copied = vec![0u8; size as usize];
    rm.read_buffer(&dst, 0, &mut copied).unwrap();
    assert_eq!(copied, data, "GPU copy of the uploaded bytes");
    let mut tail = [0u8; 13];
    rm.read_buffer(&dst, size - 13, &mut tail).unwrap();
    assert_eq!(&tail[..], &data[data.len() - 13..]);

    // Out of range: the message names offset, length and size.
    let e = rm.write_buffer(&mut src, size - 4, &[0; 5]).unwrap_err();
    assert_eq!(
        e,
        ResourceError::OutOfRange {
            offset: size - 4,
            len: 5,
            size
        }
    );
    assert!(
        e.to_string().contains(&format!("{}+5", size - 4))
            && e.to_string().contains(&size.to_string())
    );
    let e = rm.read_buffer(&dst, u64::MAX, &mut [0; 2]).unwrap_err();
    assert!(matches!(
        e,
        ResourceError::OutOfRange {
            offset: u64::MAX,
            len: 2,
            ..
        }
    ));

    // SAFETY: the one_shot waited for the GPU.
    unsafe {
        rm.destroy_buffer(src).unwrap();
        rm.destroy_buffer(dst).unwrap();
    }
    gpu.finish();
}

#[test]
fn host_access_to_device_only_memory_is_refused() {
    let gpu = Gpu::new();
    // lavapipe's only memory type is host-visible; an allocator over a
    // device wrapper that hides it gives device-only (unmapped) memory.
    let (_dev, allocator) = faulty_allocator(&gpu.ctx, true, AllocatorConfig::default());
    let rm = manager(&gpu.ctx, allocator.clone());
    let mut b = rm
        .create_buffer(
            &BufferDesc::new(
                64,
                vk::BufferUsageFlags::STORAGE_BUFFER,
                MemoryUsage::GpuOnly,
            )
            .name("vram"),
        )
        .unwrap();
    assert!(!b.is_host_visible());
    let e = rm.write_buffer(&mut b, 0, &[1, 2, 3]).unwrap_err();
    assert_eq!(
        e,
        ResourceError::NotHostVisible {
            name: Some("vram".into()),
            memory_type_index: b.allocation().memory_type_index()
        }
    );
    assert!(e.to_string().contains("vram") && e.to_string().contains("not host-visible"));
    assert!(matches!(
        rm.read_buffer(&b, 0, &mut [0; 3]),
        Err(ResourceError::NotHostVisible { .. })
    ));
    // Upload memory cannot be had at all without a host-visible type.
    let e = rm.create_buffer(&BufferDesc::staging(64)).unwrap_err();
    assert!(
        matches!(
            e,
            ResourceError::Alloc(mem_core::AllocError::NoCompatibleMemoryType { .. })
        ),
        "{e}"
    );
    // SAFETY: no GPU work.
    unsafe { rm.destroy_buffer(b) }.unwrap();
    assert!(rm.leak_report().is_empty());
    drop(rm);
    assert!(allocator.leak_report().is_empty());
    drop(allocator);
    gpu.finish();
}

#[test]
fn bad_buffer_descs_are_typed_errors_naming_values() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let ok = BufferDesc::new(
        1024,
        vk::BufferUsageFlags::STORAGE_BUFFER,
        MemoryUsage::GpuOnly,
    );
    let creates_before = rm.fault_calls(FaultPoint::CreateBuffer);

    assert_eq!(
        rm.create_buffer(&ok.clone().size(0)).unwrap_err(),
        ResourceError::ZeroBufferSize
    );
    assert_eq!(
        rm.create_buffer(&ok.clone().usage(vk::BufferUsageFlags::empty()))
            .unwrap_err(),
        ResourceError::EmptyBufferUsage
    );
    let max = rm.limits().max_buffer_size;
    eprintln!("maxBufferSize = {max:#x}");
    if max < u64::MAX {
        let e = rm.create_buffer(&ok.clone().size(max + 1)).unwrap_err();
        assert_eq!(e, ResourceError::BufferTooLarge { size: max + 1, max });
        assert!(
            e.to_string().contains(&(max + 1).to_string())
                && e.to_string().contains(&max.to_string())
        );
    }
    let families = gpu.ctx.queue_families().len() as u32;
    // Vulkan counts every family of the device, not only the context's.
    let count = rm.limits().queue_family_count;
    assert!(count >= families);
    let e = rm
        .create_buffer(&ok.clone().sharing(Sharing::concurrent([0, 0])))
        .unwrap_err();
    assert!(
        matches!(&e, ResourceError::ConcurrentSharingNeedsTwoFamilies { families } if families.as_slice() == [0, 0])
    );
    assert!(e.to_string().contains("[0, 0]"), "{e}");
    let e = rm
        .create_buffer(&ok.clone().sharing(Sharing::concurrent([0, count])))
        .unwrap_err();
    assert_eq!(
        e,
        ResourceError::InvalidQueueFamily {
            family: count,
            family_count: count
        }
    );
    assert!(e.to_string().contains(&format!("queue family {count}")));
    let e = rm.create_buffer(&ok.clone().name("bad\0name")).unwrap_err();
    assert_eq!(
        e,
        ResourceError::InvalidName {
            name: "bad\0name".into()
        }
    );

    // In a batch the error says which desc.
    let e = rm
        .create_buffers(&[ok.clone(), ok.clone(), ok.clone().size(0)])
        .unwrap_err();
    assert_eq!(
        e,
        ResourceError::Batch {
            index: 2,
            source: Box::new(ResourceError::ZeroBufferSize)
        }
    );
    assert_eq!(e.root(), &ResourceError::ZeroBufferSize);
    assert!(e.to_string().starts_with("resource 2 of the batch"));

    // Nothing reached vkCreateBuffer.
    assert_eq!(rm.fault_calls(FaultPoint::CreateBuffer), creates_before);
    assert!(rm.leak_report().is_empty());
    gpu.finish();
}

#[test]
fn foreign_resources_are_refused() {
    let gpu = Gpu::new();
    let other = manager(&gpu.ctx, gpu.allocator.clone().unwrap());
    let mut b = other.create_buffer(&BufferDesc::staging(16)).unwrap();
    let rm = gpu.rm();
    let e = rm.write_buffer(&mut b, 0, &[1]).unwrap_err();
    assert!(matches!(e, ResourceError::ForeignResource { .. }), "{e}");
    assert!(matches!(
        rm.read_buffer(&b, 0, &mut [0]),
        Err(ResourceError::ForeignResource { .. })
    ));
    // SAFETY: no GPU work.
    unsafe { other.destroy_buffer(b) }.unwrap();
    drop(other);
    gpu.finish();
}

#[test]
fn names_reach_objects_and_dedicated_memory() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let n0 = rm.fault_calls(FaultPoint::SetObjectName);
    let small = rm
        .create_buffer(&BufferDesc::staging(64).name("small"))
        .unwrap();
    assert!(!small.allocation().has_own_memory());
    assert_eq!(
        rm.fault_calls(FaultPoint::SetObjectName) - n0,
        1,
        "object only: its block is shared"
    );
    // Larger than half the first block: mem-core makes it dedicated.
    let big = rm
        .create_buffer(&BufferDesc::staging(200 * MIB).name("big"))
        .unwrap();
    assert!(big.allocation().has_own_memory());
    assert_eq!(
        rm.fault_calls(FaultPoint::SetObjectName) - n0,
        3,
        "object and its own memory"
    );
    let unnamed = rm.create_buffer(&BufferDesc::staging(64)).unwrap();
    assert_eq!(rm.fault_calls(FaultPoint::SetObjectName) - n0, 3);
    // SAFETY: no GPU work.
    unsafe {
        rm.destroy_buffer(small).unwrap();
        rm.destroy_buffer(big).unwrap();
        rm.destroy_buffer(unnamed).unwrap();
    }
    gpu.finish();
}

#[test]
fn threads_create_and_destroy_concurrently() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                let mut rng = Rng(t + 1);
                let mut live: Vec<Buffer> = Vec::new();
                for i in 0..400 {
                    if !live.is_empty() && rng.next() % 3 == 0 {
                        let k = (rng.next() % live.len() as u64) as usize;
                        // SAFETY: no GPU work.
                        unsafe { rm.destroy_buffer(live.swap_remove(k)) }.unwrap();
                    } else {
                        let d = BufferDesc::new(
                            rng.range(1, 64 * KIB),
                            vk::BufferUsageFlags::STORAGE_BUFFER,
                            MemoryUsage::Upload,
                        )
                        .name(format!("t{t} #{i}"));
                        let mut b = rm.create_buffer(&d).unwrap();
                        rm.write_buffer(&mut b, 0, &[t as u8]).unwrap();
                        live.push(b);
                    }
                }
                for b in &live {
                    let mut x = [0u8];
                    rm.read_buffer(b, 0, &mut x).unwrap();
                    assert_eq!(x[0], t as u8, "another thread wrote into this buffer");
                }
                for b in live {
                    // SAFETY: no GPU work.
                    unsafe { rm.destroy_buffer(b) }.unwrap();
                }
            });
        }
    });
    rm.validate().unwrap();
    gpu.finish();
}
