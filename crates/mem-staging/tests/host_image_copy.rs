//! Textures written from host memory with VK_EXT_host_image_copy, read back
//! through the belt, under validation with synchronization validation. Runs
//! where the device has the extension (NVIDIA's 580 driver lists it); on
//! lavapipe, which does not, only the refusals are checked.

mod common;

use ash::vk;
use common::{layout_of, pattern, Setup};
use mem_resources::ImageDesc;
use mem_staging::plan::expected_data_size;
use mem_staging::{StagingBeltConfig, StagingError};
use mem_testkit::TestContext;

#[test]
fn textures_copied_from_host_memory() {
    let ctx = TestContext::builder()
        .want_device_extension(ash::ext::host_image_copy::NAME)
        .build();
    let supported = ctx.features().host_image_copy;
    let mut s = Setup::with_context(
        ctx,
        StagingBeltConfig {
            host_image_copy: supported,
            ..StagingBeltConfig::with_ring_size(4 << 20)
        },
    );
    let plain = s
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 7)
                .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST)
                .name("plain"),
        )
        .unwrap();
    let data = pattern(
        expected_data_size(&layout_of(plain.desc())).unwrap() as usize,
        1,
    );
    let e = s
        .belt()
        .copy_image_on_host(&plain, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
        .unwrap_err();
    if supported {
        assert!(!s.belt().can_copy_on_host(&plain));
        assert!(matches!(e, StagingError::MissingHostTransfer { .. }), "{e}");
    } else {
        assert!(
            matches!(e, StagingError::HostImageCopyUnavailable { .. }),
            "{e}"
        );
        eprintln!("note: this device lacks VK_EXT_host_image_copy; only the refusals ran");
    }
    // SAFETY: never used by the GPU.
    unsafe { s.res().destroy_image(plain) }.unwrap();
    if supported {
        for (i, desc) in [
            ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 300, 200, 9),
            ImageDesc::texture_2d_array(vk::Format::R8G8B8A8_UNORM, 64, 32, 4, 7),
        ]
        .into_iter()
        .enumerate()
        {
            let img = s
                .res()
                .create_image(&desc.usage(
                    vk::ImageUsageFlags::SAMPLED
                        | vk::ImageUsageFlags::TRANSFER_SRC
                        | vk::ImageUsageFlags::HOST_TRANSFER_EXT,
                ))
                .unwrap();
            assert!(s.belt().can_copy_on_host(&img));
            let data = pattern(
                expected_data_size(&layout_of(img.desc())).unwrap() as usize,
                10 + i as u64,
            );
            s.belt()
                .copy_image_on_host(&img, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
                .unwrap();
            assert_eq!(
                img.layouts().layout(0, 0),
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL
            );
            assert!(s.read_image(&img) == data, "case {i}");
            // SAFETY: read_image waited for its copies.
            unsafe { s.res().destroy_image(img) }.unwrap();
        }
        assert!(s.belt().stats().bytes_host_copied > 0);
    }
    s.finish();
}
