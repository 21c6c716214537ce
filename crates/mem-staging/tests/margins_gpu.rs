//! GPU-side debug margins (`mem_staging::margins::MarginChecker`) on
//! lavapipe, under the validation layer with synchronization validation.
//!
//! lavapipe's only memory type is `DEVICE_LOCAL | HOST_VISIBLE`, so these
//! tests set `AllocatorConfig::debug_margin_gpu_checked`: the allocator then
//! leaves every margin to the GPU checker exactly as it does for memory that
//! is not host-visible on a discrete GPU (the allocator side of that, with a
//! real non-host-visible type, is tested over the fake nvidia-h100 table in
//! `mem-core/tests/reliability_margins.rs`). Overruns and underruns are
//! made by GPU commands writing through a second alias buffer over the same
//! `VkDeviceMemory`, since a real overrun goes past the range of the buffer
//! it was meant for.

use std::sync::Arc;

use ash::vk;
use mem_core::stats::DeviceMargin;
use mem_core::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use mem_resources::{Buffer, BufferDesc, ResourceManager, ResourceManagerCreateInfo};
use mem_staging::belt::SharedQueue;
use mem_staging::margins::{MarginChecker, MarginCheckerConfig, MarginError, MarginFault};
use mem_testkit::TestContext;
use parking_lot::Mutex;

struct Gpu {
    ctx: Option<TestContext>,
    allocator: Option<Arc<Allocator>>,
    resources: Option<Arc<ResourceManager>>,
    family: u32,
    queue: SharedQueue,
}

impl Gpu {
    fn new(debug_margin: u64) -> Self {
        let ctx = TestContext::new();
        // SAFETY: the context's handles are valid and outlive the allocator
        // and manager (dropped in `finish` before the context).
        let allocator = Arc::new(
            unsafe {
                Allocator::new(AllocatorCreateInfo {
                    instance: ctx.instance(),
                    physical_device: ctx.physical_device(),
                    device: ctx.device(),
                    memory_budget: false,
                    allocation_callbacks: None,
                    config: AllocatorConfig {
                        debug_margin,
                        debug_margin_gpu_checked: true,
                        ..AllocatorConfig::default()
                    },
                })
            }
            .unwrap(),
        );
        // SAFETY: as above.
        let resources = Arc::new(unsafe {
            ResourceManager::new(ResourceManagerCreateInfo {
                instance: ctx.instance(),
                physical_device: ctx.physical_device(),
                device: ctx.device(),
                allocator: allocator.clone(),
                debug_utils: ctx.debug_utils().cloned(),
                allocation_callbacks: None,
            })
        });
        let (family, queue) = ctx.transfer_queue();
        Self {
            ctx: Some(ctx),
            allocator: Some(allocator),
            resources: Some(resources),
            family,
            queue: SharedQueue {
                family,
                queue,
                lock: Arc::new(Mutex::new(())),
            },
        }
    }

    fn ctx(&self) -> &TestContext {
        self.ctx.as_ref().unwrap()
    }

    fn res(&self) -> &Arc<ResourceManager> {
        self.resources.as_ref().unwrap()
    }

    fn alloc(&self) -> &Allocator {
        self.allocator.as_ref().unwrap()
    }

    fn checker(&self, desc: MarginCheckerConfig) -> MarginChecker {
        // SAFETY: the queue is the context's; the tests submit to it only
        // through the checker or `one_shot` on the same thread.
        unsafe { MarginChecker::new(self.res().clone(), self.queue.clone(), desc) }.unwrap()
    }

    fn buffer(&self, size: u64, name: &str) -> Buffer {
        self.res()
            .create_buffer(
                &BufferDesc::new(
                    size,
                    vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST,
                    MemoryUsage::GpuOnly,
                )
                .name(name),
            )
            .unwrap()
    }

    fn destroy(&self, b: Buffer) {
        // SAFETY: every submission was waited for.
        unsafe { self.res().destroy_buffer(b) }.unwrap();
    }

    /// The device margin of `b`'s allocation on `side`.
    fn margin(&self, b: &Buffer, side: &str) -> DeviceMargin {
        self.alloc()
            .device_margins()
            .into_iter()
            .find(|m| {
                m.memory == b.allocation().memory()
                    && m.allocation_offset == b.allocation().offset()
                    && m.side == side
            })
            .unwrap_or_else(|| panic!("no {side} margin for {:?}", b.desc().name))
    }

    /// Runs `record` on the queue after a barrier that orders it after
    /// everything earlier on the queue.
    fn gpu(&self, record: impl FnOnce(&ash::Device, vk::CommandBuffer)) {
        let device = self.ctx().device().clone();
        self.ctx().one_shot(self.family, |cmd| {
            let barrier = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE | vk::AccessFlags::TRANSFER_READ);
            // SAFETY: `cmd` is recording.
            unsafe {
                device.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[barrier],
                    &[],
                    &[],
                )
            };
            record(&device, cmd);
        });
    }

    /// A buffer over the whole memory of `m`'s block (the overrun's way in).
    fn alias(&self, m: &DeviceMargin) -> vk::Buffer {
        let d = self.ctx().device();
        let info = vk::BufferCreateInfo::default()
            .size(m.memory_size)
            .usage(vk::BufferUsageFlags::TRANSFER_DST);
        // SAFETY: valid create info; the block is alive; offset 0.
        unsafe {
            let b = d.create_buffer(&info, None).unwrap();
            d.bind_buffer_memory(b, m.memory, 0).unwrap();
            b
        }
    }

    fn finish(mut self) {
        self.resources.take();
        let allocator = self.allocator.take().unwrap();
        assert!(
            allocator.leak_report().is_empty(),
            "{:?}",
            allocator.leak_report()
        );
        drop(allocator);
        self.ctx.take().unwrap().finish();
    }
}

/// Clean buffers written in full by the GPU: nothing reported; unfilled
/// margins are skipped (and counted) until the first fill.
#[test]
fn clean_buffers_pass_after_fill() {
    let gpu = Gpu::new(64);
    let mut checker = gpu.checker(MarginCheckerConfig::default());
    let bufs: Vec<Buffer> = [1000u64, 4096, 12, 100_000]
        .iter()
        .map(|&s| gpu.buffer(s, &format!("clean {s}")))
        .collect();
    let n = 2 * bufs.len();
    // SAFETY: single thread; nothing freed meanwhile; no GPU work pending.
    let before = unsafe { checker.check(&[]) }.unwrap();
    assert_eq!((before.margins_checked, before.margins_unfilled), (0, n));
    // SAFETY: as above.
    assert_eq!(unsafe { checker.fill_new_margins() }.unwrap(), n);
    // SAFETY: as above.
    let refill = unsafe { checker.fill_new_margins() }.unwrap();
    assert_eq!(refill, 0, "all filled");
    // The engine writes every byte of every buffer.
    gpu.gpu(|d, cmd| {
        for b in &bufs {
            // SAFETY: recording; the whole buffer, TRANSFER_DST usage.
            unsafe { d.cmd_fill_buffer(cmd, b.handle(), 0, vk::WHOLE_SIZE, 0xABAB_ABAB) };
        }
    });
    // The check waits for an engine timeline value (signaled here by the
    // host; an engine's frame submission would signal it).
    let d = gpu.ctx().device();
    let mut type_info = vk::SemaphoreTypeCreateInfo::default()
        .semaphore_type(vk::SemaphoreType::TIMELINE)
        .initial_value(0);
    let info = vk::SemaphoreCreateInfo::default().push_next(&mut type_info);
    // SAFETY: valid device with timeline semaphores (enabled by the context).
    let sem = unsafe { d.create_semaphore(&info, None) }.unwrap();
    // SAFETY: the semaphore is ours.
    unsafe { d.signal_semaphore(&vk::SemaphoreSignalInfo::default().semaphore(sem).value(5)) }
        .unwrap();
    // SAFETY: the GPU work above was waited for; the wait is satisfiable.
    let r = unsafe { checker.check(&[(sem, 5)]) }.unwrap();
    // SAFETY: the check waited for its submission, the semaphore's last use.
    unsafe { d.destroy_semaphore(sem, None) };
    assert_eq!(r.margins_checked, n);
    assert!(r.bytes_checked >= n as u64 * 64);
    assert_eq!(r.margins_unfilled, 2, "the readback buffer's own margins");
    assert!(r.corruptions.is_empty(), "{:?}", r.corruptions);
    assert_eq!(gpu.alloc().stats().total.corruptions_detected, 0);
    assert!(checker.alias_count() >= 1);
    drop(checker);
    for b in bufs {
        gpu.destroy(b);
    }
    gpu.finish();
}

/// An overrun (a copy straddling the end of "victim") and an underrun (a
/// fill of the 4 bytes before "under") are reported with name, side, offset
/// and first corrupted byte, counted in the stats, and reported again by the
/// next check while the damage stays.
#[test]
fn overrun_and_underrun_are_reported() {
    let gpu = Gpu::new(64);
    let mut checker = gpu.checker(MarginCheckerConfig::default());
    let clean = gpu.buffer(2048, "clean");
    let victim = gpu.buffer(1024, "victim");
    let under = gpu.buffer(512, "under");
    // SAFETY: single thread; nothing freed meanwhile; no GPU work pending.
    unsafe { checker.fill_new_margins() }.unwrap();
    let after = gpu.margin(&victim, "after");
    let before = gpu.margin(&under, "before");
    assert!(after.filled && before.filled);
    let v_end = victim.allocation().offset() + victim.requested_size();
    assert_eq!(after.offset, v_end.next_multiple_of(4));
    let mut src = gpu
        .res()
        .create_buffer(&BufferDesc::staging(64).name("overrun source"))
        .unwrap();
    gpu.res().write_buffer(&mut src, 0, &[0x11; 64]).unwrap();
    let alias_v = gpu.alias(&after);
    let alias_u = gpu.alias(&before);
    gpu.gpu(|d, cmd| {
        // SAFETY: recording; the aliases cover their whole blocks.
        unsafe {
            // 8 bytes from 3 before the end of "victim": 5 land in its margin.
            d.cmd_copy_buffer(
                cmd,
                src.handle(),
                alias_v,
                &[vk::BufferCopy {
                    src_offset: 0,
                    dst_offset: v_end - 3,
                    size: 8,
                }],
            );
            // The 4 bytes just before "under".
            d.cmd_fill_buffer(
                cmd,
                alias_u,
                under.allocation().offset() - 4,
                4,
                0xDEAD_BEEF,
            );
        }
    });
    // SAFETY: the writes above were waited for.
    let r = unsafe { checker.check(&[]) }.unwrap();
    assert_eq!(r.corruptions.len(), 2, "{:?}", r.corruptions);
    let over = r.corruptions.iter().find(|c| c.side == "after").unwrap();
    assert_eq!(over.name.as_deref(), Some("victim"));
    assert_eq!(over.offset, victim.allocation().offset());
    assert_eq!(over.size, victim.requested_size());
    assert_eq!(over.corrupted_offset, after.offset);
    let und = r.corruptions.iter().find(|c| c.side == "before").unwrap();
    assert_eq!(und.name.as_deref(), Some("under"));
    assert_eq!(und.offset, under.allocation().offset());
    assert_eq!(und.corrupted_offset, under.allocation().offset() - 4);
    for c in &r.corruptions {
        eprintln!("reported: {c}");
    }
    let stats = gpu.alloc().stats();
    assert_eq!(stats.total.corruptions_detected, 2);
    assert_eq!(gpu.alloc().corruption_reports(), r.corruptions);
    // The damage stays: the next check reports it again.
    // SAFETY: as above.
    let again = unsafe { checker.check(&[]) }.unwrap();
    assert_eq!(again.corruptions.len(), 2);
    assert_eq!(gpu.alloc().stats().total.corruptions_detected, 4);
    // The host check leaves GPU-checked margins alone, and so does free.
    gpu.alloc().check_corruption().unwrap();
    drop(checker);
    // SAFETY: waited for; the aliases were ours.
    unsafe {
        gpu.ctx().device().destroy_buffer(alias_v, None);
        gpu.ctx().device().destroy_buffer(alias_u, None);
    }
    for b in [clean, victim, under, src] {
        gpu.destroy(b);
    }
    assert_eq!(gpu.alloc().stats().total.corruptions_detected, 4);
    gpu.finish();
}

/// Margins larger than the readback buffer are checked in pieces over
/// several submissions; damage at the far end of a split margin is found.
#[test]
fn margins_larger_than_the_readback_buffer_are_split() {
    let gpu = Gpu::new(6000);
    let mut checker = gpu.checker(MarginCheckerConfig {
        max_readback_size: 4096,
        ..MarginCheckerConfig::default()
    });
    let bufs: Vec<Buffer> = (0..3).map(|i| gpu.buffer(256, &format!("b{i}"))).collect();
    // SAFETY: single thread; nothing freed meanwhile; no GPU work pending.
    assert_eq!(unsafe { checker.fill_new_margins() }.unwrap(), 6);
    let m = gpu.margin(&bufs[1], "after");
    assert!(m.size > 4096, "{m:?}");
    let alias = gpu.alias(&m);
    let last = m.offset + m.size - 4;
    gpu.gpu(|d, cmd| {
        // SAFETY: recording; inside the alias.
        unsafe { d.cmd_fill_buffer(cmd, alias, last, 4, 0) };
    });
    // SAFETY: waited for.
    let r = unsafe { checker.check(&[]) }.unwrap();
    assert!(r.submissions >= 3, "{r:?}");
    assert_eq!(r.margins_checked, 6);
    assert_eq!(r.corruptions.len(), 1, "{:?}", r.corruptions);
    assert_eq!(r.corruptions[0].name.as_deref(), Some("b1"));
    assert_eq!(r.corruptions[0].corrupted_offset, last);
    drop(checker);
    // SAFETY: waited for.
    unsafe { gpu.ctx().device().destroy_buffer(alias, None) };
    for b in bufs {
        gpu.destroy(b);
    }
    gpu.finish();
}

/// Every checker call that can fail, failing at the first and second use:
/// a typed error naming the call, then the checker still works, and
/// dropping it (even with a submission it did not see finish) frees
/// everything: the layer reports no leaked object at vkDestroyDevice.
#[test]
fn failures_and_teardown_leave_nothing_behind() {
    let gpu = Gpu::new(32);
    let bufs: Vec<Buffer> = (0..4).map(|i| gpu.buffer(300, &format!("f{i}"))).collect();
    for point in [
        MarginFault::CreateBuffer,
        MarginFault::BindBufferMemory,
        MarginFault::QueueSubmit,
        MarginFault::WaitForFences,
    ] {
        for nth in 1..=2 {
            let mut checker = gpu.checker(MarginCheckerConfig::default());
            checker.inject_fault(point, nth, vk::Result::ERROR_OUT_OF_HOST_MEMORY);
            let mut errors = Vec::new();
            for _ in 0..2 {
                // SAFETY: single thread; nothing freed meanwhile; waited.
                if let Err(e) = unsafe { checker.fill_new_margins() } {
                    errors.push(e);
                }
                // SAFETY: as above.
                match unsafe { checker.check(&[]) } {
                    Ok(r) => assert!(r.corruptions.is_empty(), "{:?}", r.corruptions),
                    Err(e) => errors.push(e),
                }
            }
            assert!(errors.len() <= 1, "{point:?} #{nth}: {errors:?}");
            if nth == 1 {
                let [MarginError::Vulkan { call, result }] = errors.as_slice() else {
                    panic!("{point:?} #{nth}: {errors:?}");
                };
                assert_eq!(*result, vk::Result::ERROR_OUT_OF_HOST_MEMORY);
                let want = match point {
                    MarginFault::CreateBuffer => "vkCreateBuffer",
                    MarginFault::BindBufferMemory => "vkBindBufferMemory",
                    MarginFault::QueueSubmit => "vkQueueSubmit",
                    MarginFault::WaitForFences => "vkWaitForFences",
                };
                assert_eq!(*call, want);
            }
            // SAFETY: as above.
            let r = unsafe { checker.check(&[]) }.unwrap();
            assert_eq!(r.margins_checked, 2 * bufs.len(), "{point:?} #{nth}");
            // Teardown with a submission the checker has not seen finish.
            checker.inject_fault(
                MarginFault::WaitForFences,
                1,
                vk::Result::ERROR_OUT_OF_HOST_MEMORY,
            );
            // SAFETY: as above.
            assert!(unsafe { checker.check(&[]) }.is_err());
            drop(checker);
        }
    }
    // A block freed while a checker holds an alias over it: the next call
    // drops the alias, and so does the checker's own drop.
    let mut checker = gpu.checker(MarginCheckerConfig::default());
    // SAFETY: as above.
    unsafe { checker.check(&[]) }.unwrap();
    assert!(checker.alias_count() >= 1);
    for b in bufs {
        gpu.destroy(b);
    }
    gpu.alloc().trim();
    let extra = gpu.buffer(64, "after trim");
    // SAFETY: as above.
    unsafe { checker.fill_new_margins() }.unwrap();
    // SAFETY: as above.
    let r = unsafe { checker.check(&[]) }.unwrap();
    assert!(r.corruptions.is_empty());
    drop(checker);
    gpu.destroy(extra);
    assert_eq!(gpu.alloc().stats().total.corruptions_detected, 0);
    gpu.finish();
}
