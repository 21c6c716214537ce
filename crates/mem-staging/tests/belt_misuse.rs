//! Misuse of the staging belt on lavapipe, under validation: resources of
//! another manager, images uploads cannot write, partial uploads outside the
//! image or of an image another queue family owns, GPU waits on tickets that
//! nothing will signal, and a belt dropped with uploads in its open batch.
//! Each is a typed error before anything is recorded (the belt stays usable),
//! or, for the drop, the uploads still reach the GPU.

mod common;

use ash::vk;
use common::{pattern, stack, Setup, MIB};
use mem_core::MemoryUsage;
use mem_resources::{BufferDesc, ImageDesc, SubresourceState};
use mem_staging::{ImageSubresources, StagingBeltConfig, StagingError};

const FINAL: vk::ImageLayout = vk::ImageLayout::TRANSFER_SRC_OPTIMAL;

fn staged(ring: u64) -> StagingBeltConfig {
    StagingBeltConfig {
        force_staging: true,
        ..StagingBeltConfig::with_ring_size(ring)
    }
}

fn image_usage() -> vk::ImageUsageFlags {
    vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::TRANSFER_SRC
}

#[test]
fn resources_of_another_manager_are_refused() {
    let mut s = Setup::new(staged(MIB));
    // A second manager over the same device: its resources are not the belt's.
    let (other_alloc, other_res) = stack(s.ctx());
    let buffer = other_res
        .create_buffer(
            &BufferDesc::new(64, vk::BufferUsageFlags::TRANSFER_DST, MemoryUsage::GpuOnly)
                .name("theirs"),
        )
        .unwrap();
    let e = s.belt().upload_buffer(&buffer, 0, &[1; 64]).unwrap_err();
    assert!(
        matches!(&e, StagingError::ForeignResource { name: Some(n), owner, manager }
            if n == "theirs" && *owner == other_res.id() && *manager == s.res().id()),
        "{e}"
    );
    let image = other_res
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 4, 4, 1).usage(image_usage()),
        )
        .unwrap();
    let e = s.belt().upload_image(&image, &[0; 64], FINAL).unwrap_err();
    assert!(matches!(e, StagingError::ForeignResource { .. }), "{e}");
    assert_eq!(s.belt().stats().copy_commands, 0, "nothing recorded");
    // SAFETY: never used by the GPU.
    unsafe {
        other_res.destroy_buffer(buffer).unwrap();
        other_res.destroy_image(image).unwrap();
    }
    drop(other_res);
    assert!(other_alloc.leak_report().is_empty());
    drop(other_alloc);
    s.finish();
}

#[test]
fn images_an_upload_cannot_write_are_refused() {
    let mut s = Setup::new(staged(MIB));
    // Multisampled: buffer-to-image copies need one sample per texel.
    let msaa = s
        .res()
        .create_image(
            &ImageDesc::render_target(vk::Format::R8G8B8A8_UNORM, 8, 8)
                .samples(vk::SampleCountFlags::TYPE_4)
                .usage(vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_DST)
                .name("msaa"),
        )
        .unwrap();
    let e = s
        .belt()
        .upload_image(&msaa, &[0; 256], vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
        .unwrap_err();
    assert!(
        matches!(&e, StagingError::Multisampled { name: Some(n), samples: 4 } if n == "msaa"),
        "{e}"
    );
    // No TRANSFER_DST.
    let sampled = s
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 4, 4, 1)
                .usage(vk::ImageUsageFlags::SAMPLED)
                .name("sampled"),
        )
        .unwrap();
    let e = s
        .belt()
        .upload_image(
            &sampled,
            &[0; 64],
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
        )
        .unwrap_err();
    assert!(matches!(e, StagingError::MissingTransferDst { .. }), "{e}");
    // Levels or layers outside the image, or none.
    let img = s
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 16, 16, 5).usage(image_usage()),
        )
        .unwrap();
    for bad in [
        ImageSubresources::level(5),
        ImageSubresources::layer(1),
        ImageSubresources {
            level_count: 0,
            ..ImageSubresources::all()
        },
    ] {
        let e = s
            .belt()
            .upload_image_subresources(&img, bad, &[0; 64], FINAL)
            .unwrap_err();
        assert!(
            matches!(
                e,
                StagingError::SubresourcesOutOfRange {
                    mip_levels: 5,
                    array_layers: 1,
                    ..
                }
            ),
            "{e}"
        );
    }
    // The wrong byte count for the levels asked for.
    let e = s
        .belt()
        .upload_image_subresources(&img, ImageSubresources::level(1), &[0; 64 * 4 + 1], FINAL)
        .unwrap_err();
    assert!(matches!(e, StagingError::Plan(_)), "{e}");
    // A level an earlier upload released to another family (the engine owns
    // it there): a partial update is refused, a whole upload discards.
    img.layouts().set_state(
        ImageSubresources::level(2),
        SubresourceState {
            layout: vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            owner_family: s.family + 1,
        },
    );
    let e = s
        .belt()
        .upload_image_subresources(&img, ImageSubresources::level(2), &[0; 64], FINAL)
        .unwrap_err();
    assert!(
        matches!(
            e,
            StagingError::OwnedByAnotherFamily {
                level: 2,
                layer: 0,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(s.belt().stats().copy_commands, 0, "nothing recorded");
    let whole = pattern(16 * 16 * 4 + 8 * 8 * 4 + 4 * 4 * 4 + 2 * 2 * 4 + 4, 1);
    let t = s.belt().upload_image(&img, &whole, FINAL).unwrap();
    s.belt().wait(t).unwrap();
    assert!(s.read_image(&img) == whole);
    for level in 0..5 {
        assert_eq!(img.layouts().layout(level, 0), FINAL);
    }
    // SAFETY: idle.
    unsafe {
        s.res().destroy_image(msaa).unwrap();
        s.res().destroy_image(sampled).unwrap();
        s.res().destroy_image(img).unwrap();
    }
    s.finish();
}

#[test]
fn buffers_without_transfer_dst_are_refused_on_the_direct_path_too() {
    // lavapipe's memory is host-visible, so this upload would be written
    // directly; it is refused as it would be on a discrete GPU.
    let mut s = Setup::new(StagingBeltConfig::with_ring_size(MIB));
    let vb = s
        .res()
        .create_buffer(
            &BufferDesc::new(64, vk::BufferUsageFlags::VERTEX_BUFFER, MemoryUsage::Upload)
                .name("vb"),
        )
        .unwrap();
    assert!(vb.is_host_visible());
    let e = s.belt().upload_buffer(&vb, 0, &[1; 64]).unwrap_err();
    assert!(
        matches!(&e, StagingError::MissingTransferDst { name: Some(n), .. } if n == "vb"),
        "{e}"
    );
    assert_eq!(s.belt().stats().bytes_direct, 0);
    s.destroy(vb);
    s.finish();
}

#[test]
fn gpu_waits_need_a_submitted_ticket_of_this_belt() {
    let mut s = Setup::new(staged(MIB));
    let dst = s.device_buffer(4096);
    let t = s.belt().upload_buffer(&dst, 0, &[7; 4096]).unwrap();
    let e = s.belt().semaphore_wait(t).unwrap_err();
    assert!(
        matches!(e, StagingError::NotSubmitted { value } if value == t.value()),
        "{e}"
    );
    let flushed = s.belt().flush().unwrap();
    assert!(flushed >= t);
    let (semaphore, value) = s.belt().semaphore_wait(t).unwrap();
    assert_eq!((semaphore, value), (s.belt().semaphore(), t.value()));
    let mut other = Setup::new(staged(MIB));
    let t_other = other.belt().flush().unwrap();
    assert!(matches!(
        s.belt().semaphore_wait(t_other),
        Err(StagingError::ForeignTicket { .. })
    ));
    other.finish();
    s.belt().wait(t).unwrap();
    assert!(s.belt().completed_value().unwrap() >= t.value());
    s.destroy(dst);
    s.finish();
}

#[test]
fn the_next_batch_waits_for_the_engines_semaphore() {
    let mut s = Setup::new(staged(MIB));
    let device = s.ctx().device().clone();
    let mut type_info = vk::SemaphoreTypeCreateInfo::default()
        .semaphore_type(vk::SemaphoreType::TIMELINE)
        .initial_value(0);
    let info = vk::SemaphoreCreateInfo::default().push_next(&mut type_info);
    // SAFETY: valid device with timeline semaphores.
    let frame = unsafe { device.create_semaphore(&info, None) }.unwrap();
    let dst = s.device_buffer(4096);
    // SAFETY: `frame` is a timeline semaphore of this device, alive until
    // the belt has finished; the host signals 1 below.
    unsafe { s.belt().wait_before_next_batch(frame, 1) };
    let data = pattern(4096, 3);
    let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    let _ = s.belt().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !s.belt().is_complete(t).unwrap(),
        "held by the engine's semaphore"
    );
    let signal = vk::SemaphoreSignalInfo::default().semaphore(frame).value(1);
    // SAFETY: the semaphore is alive; 1 is above its value.
    unsafe { device.signal_semaphore(&signal) }.unwrap();
    s.belt().wait(t).unwrap();
    assert!(s.read_buffer(&dst) == data);
    s.destroy(dst);
    s.belt().finish().unwrap();
    // SAFETY: nothing waits on it any more.
    unsafe { device.destroy_semaphore(frame, None) };
    s.finish();
}

#[test]
fn a_belt_dropped_with_an_open_batch_submits_it() {
    let mut s = Setup::new(staged(MIB));
    let dst = s.device_buffer(64 * 1024);
    let img = s
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 32, 32, 6).usage(image_usage()),
        )
        .unwrap();
    let data = pattern(64 * 1024, 9);
    let texels = pattern(
        32 * 32 * 4 + 16 * 16 * 4 + 8 * 8 * 4 + 4 * 4 * 4 + 2 * 2 * 4 + 4,
        10,
    );
    let _ = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    let _ = s.belt().upload_image(&img, &texels, FINAL).unwrap();
    assert_eq!(s.belt().stats().batches_submitted, 0);
    drop(s.belt.take());
    // The drop submitted and waited: the data is there and the image is in
    // its final layout (reading it back in that layout passes validation).
    assert!(s.engine_read_buffer(&dst) == data);
    assert!(s.engine_read_image(&img, 4) == texels);
    // SAFETY: idle.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.destroy(dst);
    s.finish();
}
