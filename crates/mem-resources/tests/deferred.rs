//! Deferred destruction: resources retired to timeline points are destroyed
//! by `collect` only once the semaphore (signalled from the host here)
//! passes their value, in retire order; the manager's `Drop` destroys the
//! passed ones it still holds.

mod common;

use ash::vk;
use common::Gpu;
use mem_core::MemoryUsage;
use mem_resources::{BufferDesc, ImageDesc, ResourceKind, RetirePoint, TimelinePoint};

fn timeline(gpu: &Gpu) -> vk::Semaphore {
    let mut ty = vk::SemaphoreTypeCreateInfo::default()
        .semaphore_type(vk::SemaphoreType::TIMELINE)
        .initial_value(0);
    let info = vk::SemaphoreCreateInfo::default().push_next(&mut ty);
    // SAFETY: valid create info; timelineSemaphore is enabled by the test kit.
    unsafe { gpu.ctx.device().create_semaphore(&info, None) }.unwrap()
}

fn signal(gpu: &Gpu, semaphore: vk::Semaphore, value: u64) {
    let info = vk::SemaphoreSignalInfo::default()
        .semaphore(semaphore)
        .value(value);
    // SAFETY: a live timeline semaphore; values only increase.
    unsafe { gpu.ctx.device().signal_semaphore(&info) }.unwrap();
}

fn destroy_semaphore(gpu: &Gpu, semaphore: vk::Semaphore) {
    // SAFETY: nothing waits on it any more.
    unsafe { gpu.ctx.device().destroy_semaphore(semaphore, None) };
}

fn names_left(gpu: &Gpu) -> Vec<String> {
    let mut v: Vec<String> = gpu
        .rm()
        .leak_report()
        .into_iter()
        .filter_map(|r| r.name)
        .collect();
    v.sort();
    v
}

#[test]
fn retire_then_collect_after_host_signal() {
    let gpu = Gpu::new();
    assert!(
        gpu.ctx.features().timeline_semaphore,
        "the test kit enables timeline semaphores"
    );
    let rm = gpu.rm();
    let frames = timeline(&gpu);
    let other = timeline(&gpu);
    let buf = |name: &str| {
        rm.create_buffer(
            &BufferDesc::new(
                4096,
                vk::BufferUsageFlags::UNIFORM_BUFFER,
                MemoryUsage::Dynamic,
            )
            .name(name),
        )
        .unwrap()
    };
    let img = |name: &str| {
        rm.create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 1)
                .full_mip_chain()
                .name(name),
        )
        .unwrap()
    };
    let at = |semaphore, value| TimelinePoint { semaphore, value };
    let keep = buf("kept alive");
    // SAFETY: (all retires below) the semaphores live until after the last
    // collect, and no GPU work uses the resources at all.
    unsafe {
        rm.retire_buffer(buf("frame1 buffer"), at(frames, 1))
            .unwrap();
        rm.retire_image(img("frame1 image"), at(frames, 1)).unwrap();
        rm.retire_buffer(buf("frame2 buffer"), at(frames, 2))
            .unwrap();
        rm.retire_image(img("other3 image"), at(other, 3)).unwrap();
        rm.retire_buffer(buf("frame3 buffer"), at(frames, 3))
            .unwrap();
    }
    assert_eq!(rm.pending_retired(), 5);
    rm.validate().unwrap();
    let report = rm.report();
    assert_eq!(
        (report.live_buffers, report.live_images, report.retired),
        (1, 0, 5)
    );
    let retired = rm
        .leak_report()
        .into_iter()
        .filter(|r| r.retired.is_some())
        .collect::<Vec<_>>();
    assert_eq!(retired.len(), 5);
    assert!(retired
        .iter()
        .any(|r| r.kind == ResourceKind::Image && r.retired == Some(at(other, 3).into())));

    // Nothing passed yet.
    assert_eq!(rm.collect().unwrap(), 0);
    assert_eq!(rm.pending_retired(), 5);

    signal(&gpu, frames, 1);
    assert_eq!(rm.collect().unwrap(), 2);
    assert_eq!(
        names_left(&gpu),
        [
            "frame2 buffer",
            "frame3 buffer",
            "kept alive",
            "other3 image"
        ]
    );
    assert_eq!(rm.collect().unwrap(), 0, "collect is idempotent");

    // Jumping past several values releases everything up to it.
    signal(&gpu, frames, 5);
    assert_eq!(rm.collect().unwrap(), 2);
    assert_eq!(names_left(&gpu), ["kept alive", "other3 image"]);

    signal(&gpu, other, 2);
    assert_eq!(rm.collect().unwrap(), 0, "2 < 3");
    signal(&gpu, other, 3);
    assert_eq!(rm.collect().unwrap(), 1);
    assert_eq!(rm.pending_retired(), 0);
    assert_eq!(names_left(&gpu), ["kept alive"]);
    rm.validate().unwrap();

    // SAFETY: no GPU work.
    unsafe { rm.destroy_buffer(keep) }.unwrap();
    // An empty queue needs no semaphore read.
    assert_eq!(rm.collect().unwrap(), 0);
    destroy_semaphore(&gpu, frames);
    destroy_semaphore(&gpu, other);
    gpu.finish();
}

#[test]
fn retired_resources_whose_point_passed_are_destroyed_by_drop() {
    let mut gpu = Gpu::new();
    let sem = timeline(&gpu);
    {
        let rm = gpu.rm();
        for i in 0..20u64 {
            let b = rm
                .create_buffer(&BufferDesc::staging(1000 + i).name(format!("b{i}")))
                .unwrap();
            // SAFETY: the semaphore outlives the manager; no GPU work.
            unsafe {
                rm.retire_buffer(
                    b,
                    TimelinePoint {
                        semaphore: sem,
                        value: i % 4 + 1,
                    },
                )
            }
            .unwrap();
        }
        signal(&gpu, sem, 4);
    }
    // Drop the manager without collecting: its Drop reads the semaphore and
    // destroys all 20 (the validation layer would report leaked buffers at
    // vkDestroyDevice otherwise).
    let rm = gpu.resources.take().unwrap();
    assert_eq!(rm.pending_retired(), 20);
    drop(rm);
    assert!(
        gpu.allocator().leak_report().is_empty(),
        "{:?}",
        gpu.allocator().leak_report()
    );
    destroy_semaphore(&gpu, sem);
    // A fresh manager for `finish`'s checks.
    gpu.resources = Some(common::manager(&gpu.ctx, gpu.allocator.clone().unwrap()));
    gpu.finish();
}

#[test]
fn many_frames_in_flight() {
    // An engine loop: each frame creates transient buffers, retires them to
    // the frame's value, and collects; the "GPU" (host signal) lags two
    // frames behind.
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let sem = timeline(&gpu);
    let mut destroyed = 0;
    for frame in 1..=30u64 {
        for i in 0..10 {
            let b = rm
                .create_buffer(&BufferDesc::new(
                    256 * (i + 1),
                    vk::BufferUsageFlags::UNIFORM_BUFFER,
                    MemoryUsage::Dynamic,
                ))
                .unwrap();
            // SAFETY: the semaphore outlives the manager's use of it; no GPU work.
            unsafe {
                rm.retire_buffer(
                    b,
                    TimelinePoint {
                        semaphore: sem,
                        value: frame,
                    },
                )
            }
            .unwrap();
        }
        if frame > 2 {
            signal(&gpu, sem, frame - 2);
        }
        destroyed += rm.collect().unwrap();
        let in_flight = frame.min(2) * 10;
        assert_eq!(rm.pending_retired() as u64, in_flight, "frame {frame}");
    }
    signal(&gpu, sem, 30);
    destroyed += rm.collect().unwrap();
    assert_eq!(destroyed, 300);
    destroy_semaphore(&gpu, sem);
    gpu.finish();
}

#[test]
fn a_retire_point_of_several_semaphores_waits_for_all() {
    // A mesh the staging belt uploads (its timeline) and the engine's
    // frames draw (another timeline): retired to both, it is destroyed only
    // once both have passed, with no host wait before the retire.
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let (belt, frames) = (timeline(&gpu), timeline(&gpu));
    let at = TimelinePoint::new;
    let buf = |name: &str| {
        rm.create_buffer(&BufferDesc::staging(4096).name(name))
            .unwrap()
    };
    let mesh = buf("mesh");
    let texture = rm
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 1).name("texture"))
        .unwrap();
    // SAFETY: (all retires below) the semaphores outlive the manager's use
    // of them; no GPU work uses the resources.
    unsafe {
        rm.retire_buffer(mesh, [at(belt, 7), at(frames, 41)])
            .unwrap();
        rm.retire_image(
            texture,
            RetirePoint::from(at(frames, 40))
                .and(at(belt, 2))
                .and(at(frames, 42)),
        )
        .unwrap();
        // One semaphore, as before; and none at all (unused by the GPU).
        rm.retire_buffer(buf("frame only"), at(frames, 41)).unwrap();
        rm.retire_buffer(buf("unused"), RetirePoint::none())
            .unwrap();
    }
    rm.validate().unwrap();
    let texture_point = rm
        .leak_report()
        .into_iter()
        .find(|r| r.kind == ResourceKind::Image)
        .and_then(|r| r.retired)
        .unwrap();
    assert_eq!(
        texture_point.points(),
        RetirePoint::from([at(belt, 2), at(frames, 42)]).points(),
        "one point per semaphore, the later value"
    );

    assert_eq!(rm.collect().unwrap(), 1, "the unused one goes at once");
    assert_eq!(names_left(&gpu), ["frame only", "mesh", "texture"]);
    // The frames pass 41, the belt has not reached 7: the mesh stays.
    signal(&gpu, frames, 41);
    assert_eq!(rm.collect().unwrap(), 1);
    assert_eq!(names_left(&gpu), ["mesh", "texture"]);
    signal(&gpu, belt, 6);
    assert_eq!(rm.collect().unwrap(), 0, "belt 6 < 7, frames 41 < 42");
    signal(&gpu, belt, 7);
    assert_eq!(rm.collect().unwrap(), 1);
    assert_eq!(names_left(&gpu), ["texture"]);
    signal(&gpu, frames, 42);
    assert_eq!(rm.collect().unwrap(), 1);
    assert_eq!(rm.pending_retired(), 0);
    rm.validate().unwrap();
    destroy_semaphore(&gpu, belt);
    destroy_semaphore(&gpu, frames);
    gpu.finish();
}
