//! Fault injection into the belt's own Vulkan calls (begin, submit, wait) at
//! every position of a realistic scenario on lavapipe: the failure comes
//! back as a typed error, later calls keep returning it (nothing continues
//! on a half-submitted upload), and dropping the belt frees everything: the
//! allocator's leak report is empty and the validation layer (with
//! synchronization validation) stays quiet at device destruction.

mod common;

use ash::vk;
use common::{pattern, Setup, MIB};
use mem_resources::ImageDesc;
use mem_staging::belt::{BeltFault, BufferWrite, StagingBeltConfig, StagingError};
use mem_staging::plan::expected_data_size;

/// Uploads a streamed buffer, many small ones one by one and in one call
/// (runs of up to a chunk, the first submitted beside the second's copy
/// when the belt overlaps submits), and a texture, then waits.
fn scenario(
    s: &mut Setup,
    bufs: &[mem_resources::Buffer],
    img: &mem_resources::Image,
    tex: &[u8],
) -> Result<(), StagingError> {
    let big = pattern(bufs[0].desc().size as usize, 1);
    let _ = s.belt().upload_buffer(&bufs[0], 0, &big)?;
    for i in 0..64u64 {
        let _ = s
            .belt()
            .upload_buffer(&bufs[1], i * 4096, &pattern(4096, i))?;
    }
    let pieces: Vec<Vec<u8>> = (0..512).map(|i| pattern(6 * 1024, 100 + i)).collect();
    let writes: Vec<BufferWrite<'_>> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| BufferWrite::new(&bufs[0], i as u64 * 6 * 1024, p))
        .collect();
    let _ = s.belt().upload_buffers(&writes)?;
    let _ = s
        .belt()
        .upload_image(img, tex, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)?;
    let t = s.belt().flush()?;
    s.belt().wait(t)
}

#[test]
fn every_belt_call_can_fail_at_every_position() {
    let desc = StagingBeltConfig {
        force_staging: true,
        ..StagingBeltConfig::with_ring_size(MIB)
    };
    let failures = fault_sweep(&desc, 3 * MIB, 256);
    assert!(
        failures >= 12,
        "the scenario reached the injected faults: {failures}"
    );
}

/// The same with chunks copied by several threads, so each chunk's submit
/// runs beside the next chunk's copy (`overlap_submit`): a submit that fails
/// on the other thread is reported the same way and frees the same.
#[test]
fn overlapped_submits_can_fail_at_every_position() {
    let desc = StagingBeltConfig {
        force_staging: true,
        copy_threads: 4,
        parallel_copy_threshold: MIB,
        ..StagingBeltConfig::with_ring_size(8 * MIB)
    };
    assert!(desc.overlap_submit, "on by default");
    let failures = fault_sweep(&desc, 10 * MIB, 1024);
    assert!(
        failures >= 12,
        "the scenario reached the injected faults: {failures}"
    );
}

/// The belt's own Vulkan calls that faults are injected into.
const FAULTS: [BeltFault; 3] = [
    BeltFault::BeginCommandBuffer,
    BeltFault::QueueSubmit,
    BeltFault::WaitSemaphores,
];

/// The result a fault injected at `point` returns: a lost device for the
/// waits, an out-of-memory for the rest.
fn injected(point: BeltFault) -> vk::Result {
    if point == BeltFault::WaitSemaphores {
        vk::Result::ERROR_DEVICE_LOST
    } else {
        vk::Result::ERROR_OUT_OF_HOST_MEMORY
    }
}

/// `e` is the typed error of the fault injected at `point` (its `nth` call).
fn assert_injected(e: &StagingError, point: BeltFault, nth: u64) {
    match (e, point) {
        (StagingError::Vulkan { call, result }, BeltFault::BeginCommandBuffer) => {
            assert_eq!((*call, *result), ("vkBeginCommandBuffer", injected(point)))
        }
        (StagingError::Vulkan { call, result }, BeltFault::QueueSubmit) => {
            assert_eq!((*call, *result), ("vkQueueSubmit", injected(point)))
        }
        (StagingError::DeviceLost, BeltFault::WaitSemaphores) => {}
        other => panic!("{point:?} #{nth}: unexpected {other:?}"),
    }
}

/// A call after the fault is refused with the same kind of cause: the
/// failure is sticky.
fn assert_sticky(again: &StagingError, point: BeltFault, nth: u64) {
    assert!(
        matches!(
            again,
            StagingError::Vulkan { .. } | StagingError::DeviceLost
        ),
        "{point:?} #{nth}: {again:?}"
    );
}

/// Injects each fault at its 1st..8th call into [`scenario`] (a `big`-byte
/// buffer, a `side`² texture with mips) on a belt made from `desc`; checks
/// the typed, sticky error and that dropping the belt frees everything.
/// Returns how many runs failed.
fn fault_sweep(desc: &StagingBeltConfig, big: u64, side: u32) -> u32 {
    let mut failures = 0;
    for point in FAULTS {
        for nth in 1..=8 {
            let mut s = Setup::new(desc.clone());
            let bufs = vec![s.device_buffer(big), s.device_buffer(64 * 4096)];
            let levels = 32 - side.leading_zeros();
            let img = s
                .res()
                .create_image(
                    &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, side, side, levels)
                        .usage(vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::SAMPLED),
                )
                .unwrap();
            let tex = pattern(
                expected_data_size(&common::layout_of(img.desc())).unwrap() as usize,
                9,
            );
            s.belt().inject_fault(point, nth, injected(point));
            match scenario(&mut s, &bufs, &img, &tex) {
                Ok(()) => {
                    // The fault lies past the scenario's last call of `point`.
                }
                Err(e) => {
                    failures += 1;
                    assert_injected(&e, point, nth);
                    // Sticky: the next upload is refused with the same cause.
                    let again = s.belt().upload_buffer(&bufs[1], 0, &[1; 16]).unwrap_err();
                    assert_sticky(&again, point, nth);
                }
            }
            // Dropping the belt waits for (or idles) its queue and frees the
            // ring, the command pool and the semaphore.
            drop(s.belt.take());
            // SAFETY: the belt is gone and nothing else uses the queue.
            unsafe { s.ctx().device().device_wait_idle() }.unwrap();
            for b in bufs {
                s.destroy(b);
            }
            // SAFETY: idle.
            unsafe { s.res().destroy_image(img) }.unwrap();
            s.finish(); // leak report empty, zero validation messages
        }
    }
    failures
}

/// A streamed readback through a small ring, where each piece's submit runs
/// beside the copy-out of an older piece: a fault at any of its begins,
/// submits or waits comes back typed and sticky, and dropping the belt frees
/// everything.
#[test]
fn readbacks_can_fail_at_every_position() {
    let desc = StagingBeltConfig {
        force_staging: true,
        copy_threads: 4,
        parallel_copy_threshold: 64 * 1024,
        ..StagingBeltConfig::with_ring_size(MIB)
    };
    let mut failures = 0;
    for point in FAULTS {
        for nth in 1..=8 {
            let mut s = Setup::new(desc.clone());
            let buf = s.device_buffer(3 * MIB + 40);
            let data = pattern(buf.desc().size as usize, 7);
            let _ = s.belt().upload_buffer(&buf, 0, &data).unwrap();
            s.belt().finish().unwrap();
            s.belt().inject_fault(point, nth, injected(point));
            let mut back = vec![0u8; data.len()];
            match s.belt().read_buffer(&buf, 0, &mut back) {
                Ok(()) => assert!(back == data, "{point:?} #{nth}: read back"),
                Err(e) => {
                    failures += 1;
                    assert_injected(&e, point, nth);
                    let again = s.belt().read_buffer(&buf, 0, &mut back[..16]).unwrap_err();
                    assert_sticky(&again, point, nth);
                }
            }
            drop(s.belt.take());
            // SAFETY: the belt is gone and nothing else uses the queue.
            unsafe { s.ctx().device().device_wait_idle() }.unwrap();
            s.destroy(buf);
            s.finish();
        }
    }
    assert!(
        failures >= 12,
        "the readback reached the faults: {failures}"
    );
}

/// A wait that times out in the middle of a streamed readback is not
/// sticky: the pieces it left pinned are given back, and the same belt
/// reads the buffer again, byte-exact, then finishes.
#[test]
fn a_readback_after_a_timed_out_wait_reads_everything() {
    let desc = StagingBeltConfig {
        force_staging: true,
        copy_threads: 4,
        parallel_copy_threshold: 64 * 1024,
        wait_timeout: std::time::Duration::from_secs(2),
        ..StagingBeltConfig::with_ring_size(MIB)
    };
    let mut timeouts = 0;
    for nth in 1..=12 {
        let mut s = Setup::new(desc.clone());
        let buf = s.device_buffer(3 * MIB + 40);
        let data = pattern(buf.desc().size as usize, 11);
        let _ = s.belt().upload_buffer(&buf, 0, &data).unwrap();
        s.belt().finish().unwrap();
        s.belt()
            .inject_fault(BeltFault::WaitSemaphores, nth, vk::Result::TIMEOUT);
        let mut back = vec![0u8; data.len()];
        match s.belt().read_buffer(&buf, 0, &mut back) {
            Ok(()) => assert!(back == data, "#{nth}: read back"),
            Err(StagingError::Timeout { .. }) => timeouts += 1,
            Err(e) => panic!("#{nth}: unexpected {e:?}"),
        }
        let mut again = vec![0u8; data.len()];
        s.belt().read_buffer(&buf, 0, &mut again).unwrap();
        assert!(again == data, "#{nth}: read again after the timeout");
        s.belt().finish().unwrap();
        s.destroy(buf);
        s.finish();
    }
    assert!(timeouts >= 8, "the readback reached the faults: {timeouts}");
}
