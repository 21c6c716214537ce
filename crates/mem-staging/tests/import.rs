//! Zero-copy imports of large upload sources (`VK_EXT_external_memory_host`)
//! on real Vulkan (lavapipe), under validation with synchronization
//! validation: every test ends with `ctx.finish()`, which fails on any
//! warning or error message.

use std::sync::Arc;

use ash::vk;
use mem_core::{Allocator, AllocatorConfig, AllocatorDesc, MemoryUsage};
use mem_resources::{Buffer, BufferDesc, ResourceManager, ResourceManagerDesc};
use mem_staging::belt::{SharedQueue, StagingBelt, StagingBeltDesc};
use mem_testkit::TestContext;
use parking_lot::Mutex;

const MIB: u64 = 1 << 20;
const EXT: &std::ffi::CStr = ash::ext::external_memory_host::NAME;

struct Setup {
    belt: Option<StagingBelt>,
    resources: Option<Arc<ResourceManager>>,
    allocator: Option<Arc<Allocator>>,
    ctx: Option<TestContext>,
    family: u32,
}

impl Setup {
    /// A belt on a context that enabled `VK_EXT_external_memory_host` when
    /// `want_ext`; `desc.external_memory_host` is set by the caller.
    fn new(want_ext: bool, desc: impl FnOnce(bool) -> StagingBeltDesc) -> Self {
        let mut builder = TestContext::builder();
        if want_ext {
            builder = builder.want_device_extension(EXT);
        }
        let ctx = builder.build();
        let has = ctx.has_extension(EXT);
        assert_eq!(has, want_ext, "lavapipe has VK_EXT_external_memory_host");
        // SAFETY: the context's handles are valid and outlive the allocator
        // (dropped first in `finish`).
        let allocator = Arc::new(
            unsafe {
                Allocator::new(AllocatorDesc {
                    instance: ctx.instance(),
                    physical_device: ctx.physical_device(),
                    device: ctx.device(),
                    memory_budget: false,
                    allocation_callbacks: None,
                    config: AllocatorConfig::default(),
                })
            }
            .unwrap(),
        );
        // SAFETY: as above.
        let resources = Arc::new(unsafe {
            ResourceManager::new(ResourceManagerDesc {
                instance: ctx.instance(),
                physical_device: ctx.physical_device(),
                device: ctx.device(),
                allocator: allocator.clone(),
                debug_utils: ctx.debug_utils().cloned(),
                allocation_callbacks: None,
            })
        });
        let (family, queue) = ctx.transfer_queue();
        let shared = SharedQueue {
            family,
            queue,
            lock: Arc::new(Mutex::new(())),
        };
        // SAFETY: handles from the context; the extension is enabled when the
        // desc says so; tests submit on this queue only from this thread.
        let belt = unsafe {
            StagingBelt::new(
                resources.clone(),
                ctx.instance(),
                ctx.physical_device(),
                shared,
                family,
                desc(has),
            )
        }
        .unwrap();
        Self {
            belt: Some(belt),
            resources: Some(resources),
            allocator: Some(allocator),
            ctx: Some(ctx),
            family,
        }
    }

    fn belt(&mut self) -> &mut StagingBelt {
        self.belt.as_mut().unwrap()
    }

    fn res(&self) -> &ResourceManager {
        self.resources.as_ref().unwrap()
    }

    fn ctx(&self) -> &TestContext {
        self.ctx.as_ref().unwrap()
    }

    fn device_buffer(&self, size: u64) -> Buffer {
        self.res()
            .create_buffer(
                &BufferDesc::new(
                    size,
                    vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC,
                    MemoryUsage::GpuOnly,
                )
                .name(format!("dst {size}")),
            )
            .unwrap()
    }

    /// Copies `src` into a fresh readback buffer on the GPU and returns its bytes.
    fn read_buffer(&self, src: &Buffer) -> Vec<u8> {
        let size = src.size();
        let readback = self
            .res()
            .create_buffer(&BufferDesc::readback(size))
            .unwrap();
        let device = self.ctx().device().clone();
        self.ctx().one_shot(self.family, |cmd| {
            // SAFETY: recording; both buffers alive; a memory barrier orders
            // this copy after the belt's earlier writes on this queue.
            unsafe {
                transfer_barrier(&device, cmd);
                device.cmd_copy_buffer(
                    cmd,
                    src.handle(),
                    readback.handle(),
                    &[vk::BufferCopy {
                        src_offset: 0,
                        dst_offset: 0,
                        size,
                    }],
                );
            }
        });
        let mut out = vec![0u8; size as usize];
        self.res().read_buffer(&readback, 0, &mut out).unwrap();
        // SAFETY: the one-shot waited for the copy.
        unsafe { self.res().destroy_buffer(readback) }.unwrap();
        out
    }

    fn destroy(&self, b: Buffer) {
        // SAFETY: callers wait for their uploads before destroying.
        unsafe { self.res().destroy_buffer(b) }.unwrap();
    }

    fn finish(mut self) {
        if let Some(mut belt) = self.belt.take() {
            belt.finish().unwrap();
        }
        self.resources.take();
        let allocator = self.allocator.take().unwrap();
        assert!(
            allocator.leak_report().is_empty(),
            "leaks: {:?}",
            allocator.leak_report()
        );
        drop(allocator);
        self.ctx.take().unwrap().finish();
    }
}

/// # Safety
/// `cmd` is recording on `device`.
unsafe fn transfer_barrier(device: &ash::Device, cmd: vk::CommandBuffer) {
    let barrier = vk::MemoryBarrier::default()
        .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
        .dst_access_mask(vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE);
    // SAFETY: forwarded.
    unsafe {
        device.cmd_pipeline_barrier(
            cmd,
            vk::PipelineStageFlags::TRANSFER,
            vk::PipelineStageFlags::TRANSFER,
            vk::DependencyFlags::empty(),
            &[barrier],
            &[],
            &[],
        )
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn importing(ext: bool, chunk: u64) -> StagingBeltDesc {
    StagingBeltDesc {
        force_staging: true,
        external_memory_host: ext,
        import_threshold: MIB,
        import_chunk_size: chunk,
        ..StagingBeltDesc::with_ring_size(16 * MIB)
    }
}

/// Uploads each size from a slice starting 5 bytes into a Vec (unaligned),
/// checks the GPU copy, and returns the stats.
fn upload_sizes(s: &mut Setup, sizes: &[u64]) {
    for (i, &size) in sizes.iter().enumerate() {
        let dst = s.device_buffer(size);
        let backing = pattern(size as usize + 5, i as u64 + 7);
        let data = &backing[5..];
        let before = s.belt().stats();
        let t = s.belt().upload_buffer(&dst, 0, data).unwrap();
        let after = s.belt().stats();
        if after.bytes_imported > before.bytes_imported {
            assert!(
                s.belt().is_complete(t).unwrap(),
                "imported uploads are synchronous"
            );
        }
        s.belt().wait(t).unwrap();
        assert!(s.read_buffer(&dst) == data, "size {size}: mismatch");
        s.destroy(dst);
    }
}

#[test]
fn large_unaligned_uploads_import_the_source() {
    let mut s = Setup::new(true, |ext| importing(ext, 256 * MIB));
    upload_sizes(&mut s, &[1, 4096 + 3]);
    assert_eq!(s.belt().stats().bytes_imported, 0, "below the threshold");
    upload_sizes(&mut s, &[100 * MIB + 17]);
    let st = s.belt().stats();
    assert!(st.bytes_imported > 99 * MIB, "{st:?}");
    assert!(st.bytes_staged < MIB, "only head and tail staged: {st:?}");
    assert_eq!(st.import_fallbacks, 0);
    s.finish();
}

#[test]
fn imports_in_pieces_at_a_destination_offset() {
    let mut s = Setup::new(true, |ext| importing(ext, 8 * MIB));
    let size = 40 * MIB + 4099;
    let dst = s.device_buffer(size + 1000);
    let zero = vec![0u8; (size + 1000) as usize];
    let _ = s
        .belt()
        .upload_buffer(&dst, 0, &zero[..2 * MIB as usize])
        .unwrap();
    let backing = pattern(size as usize + 3, 42);
    let data = &backing[3..];
    let batches = s.belt().stats().batches_submitted;
    let t = s.belt().upload_buffer(&dst, 333, data).unwrap();
    assert!(s.belt().is_complete(t).unwrap());
    let st = s.belt().stats();
    // Six 8 MiB pieces (at most), imported in groups of copy_threads / 2,
    // one batch per group.
    let group = (mem_staging::belt::StagingBeltDesc::default().copy_threads / 2).max(1) as u64;
    assert!(
        st.batches_submitted >= batches + 5u64.div_ceil(group),
        "one batch per group of pieces: {st:?}"
    );
    assert!(st.bytes_imported >= 40 * MIB - 8192, "{st:?}");
    let mut model = vec![0u8; (size + 1000) as usize];
    model[333..333 + size as usize].copy_from_slice(data);
    assert!(s.read_buffer(&dst) == model);
    s.destroy(dst);
    s.finish();
}

#[test]
fn without_the_extension_flag_nothing_is_imported() {
    let mut s = Setup::new(true, |_| importing(false, 256 * MIB));
    upload_sizes(&mut s, &[1, 4096 + 3, 100 * MIB + 17]);
    let st = s.belt().stats();
    assert_eq!(st.bytes_imported, 0);
    assert_eq!(st.import_fallbacks, 0);
    assert!(st.bytes_staged >= 100 * MIB);
    s.finish();
}

#[test]
fn host_visible_destinations_are_written_directly() {
    let mut s = Setup::new(true, |ext| StagingBeltDesc {
        force_staging: false,
        ..importing(ext, 256 * MIB)
    });
    let dst = s
        .res()
        .create_buffer(&BufferDesc::new(
            8 * MIB,
            vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::Upload,
        ))
        .unwrap();
    let data = pattern(8 * MIB as usize, 3);
    let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    s.belt().wait(t).unwrap();
    let st = s.belt().stats();
    assert_eq!(st.bytes_imported, 0);
    assert_eq!(st.bytes_direct, 8 * MIB);
    assert!(s.read_buffer(&dst) == data);
    s.destroy(dst);
    s.finish();
}
