//! The planner's unit tests: sizes, splitting and granularity, alignments,
//! and the devices' own copy limits.

use super::*;
use mem_core::fake::DeviceTable;

const MIB: u64 = 1 << 20;

fn rgba8(width: u32, height: u32, mips: u32) -> ImageLayout {
    ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, width, height, mips, 1)
}

fn rx6600_transfer() -> CopyLimits {
    let table = DeviceTable::builtin("amd-rx6600-no-rebar").unwrap();
    let limits = CopyLimits::from_table(&table, 2);
    assert_eq!(
        limits.min_image_transfer_granularity,
        vk::Extent3D {
            width: 16,
            height: 16,
            depth: 8
        }
    );
    limits
}

#[test]
fn data_size_of_chains() {
    // 4x4 RGBA8 full chain: 64 + 16 + 4.
    assert_eq!(expected_data_size(&rgba8(4, 4, 3)), Ok(84));
    // BC1 8x8, 4 levels: 4 blocks, then 1, 1, 1 (partial blocks are whole).
    let bc1 = ImageLayout::new_2d(vk::Format::BC1_RGBA_UNORM_BLOCK, 8, 8, 4, 1);
    assert_eq!(expected_data_size(&bc1), Ok((4 + 1 + 1 + 1) * 8));
    // 3D 4x4x4 R8, 3 levels: 64 + 8 + 1.
    let vol = ImageLayout::new_3d(
        vk::Format::R8_UNORM,
        vk::Extent3D {
            width: 4,
            height: 4,
            depth: 4,
        },
        3,
    );
    assert_eq!(expected_data_size(&vol), Ok(73));
    // Arrays: layers inside levels.
    let arr = ImageLayout::new_2d(vk::Format::R8_UNORM, 2, 2, 2, 6);
    assert_eq!(expected_data_size(&arr), Ok(6 * 4 + 6));
}

#[test]
fn validation_errors() {
    let ok = rgba8(16, 16, 1);
    let e = |l: ImageLayout| expected_data_size(&l).unwrap_err();
    assert_eq!(
        e(ImageLayout {
            mip_levels: 0,
            ..ok
        }),
        PlanError::ZeroMipLevels
    );
    assert_eq!(
        e(ImageLayout {
            array_layers: 0,
            ..ok
        }),
        PlanError::ZeroArrayLayers
    );
    assert_eq!(
        e(rgba8(16, 16, 6)),
        PlanError::TooManyMipLevels {
            mip_levels: 6,
            max: 5
        }
    );
    assert_eq!(
        e(rgba8(0, 16, 1)),
        PlanError::ZeroExtent {
            width: 0,
            height: 16,
            depth: 1
        }
    );
    assert!(matches!(
        e(ImageLayout {
            format: vk::Format::D24_UNORM_S8_UINT,
            ..ok
        }),
        PlanError::UnsupportedFormat { .. }
    ));
    assert!(matches!(
        e(ImageLayout {
            format: vk::Format::G8_B8R8_2PLANE_420_UNORM,
            ..ok
        }),
        PlanError::UnsupportedFormat { .. }
    ));
    assert!(matches!(
        e(ImageLayout {
            aspect: Some(vk::ImageAspectFlags::DEPTH),
            ..ok
        }),
        PlanError::UnsupportedAspect { .. }
    ));
    assert!(matches!(
        e(ImageLayout {
            image_type: vk::ImageType::TYPE_1D,
            ..ok
        }),
        PlanError::ExtentForImageType { .. }
    ));
    assert!(matches!(
        e(ImageLayout {
            image_type: vk::ImageType::from_raw(7),
            ..ok
        }),
        PlanError::UnsupportedImageType { .. }
    ));
    let vol = ImageLayout::new_3d(
        vk::Format::R8_UNORM,
        vk::Extent3D {
            width: 4,
            height: 4,
            depth: 4,
        },
        1,
    );
    assert_eq!(
        e(ImageLayout {
            array_layers: 2,
            ..vol
        }),
        PlanError::Image3DWithLayers { layers: 2 }
    );
    assert!(matches!(
        e(ImageLayout {
            extent: vk::Extent3D {
                width: 4,
                height: 4,
                depth: 2
            },
            ..ok
        }),
        PlanError::ExtentForImageType { .. }
    ));
    let msg = PlanError::DataSizeMismatch {
        expected: 84,
        actual: 80,
    }
    .to_string();
    assert!(msg.contains("84") && msg.contains("80"), "{msg}");
}

#[test]
fn combined_depth_stencil_one_aspect() {
    let base = ImageLayout::new_2d(vk::Format::D24_UNORM_S8_UINT, 8, 8, 1, 1);
    let depth = ImageLayout {
        aspect: Some(vk::ImageAspectFlags::DEPTH),
        ..base
    };
    let stencil = ImageLayout {
        aspect: Some(vk::ImageAspectFlags::STENCIL),
        ..base
    };
    assert_eq!(expected_data_size(&depth), Ok(256));
    assert_eq!(expected_data_size(&stencil), Ok(64));
    let plan = plan_image_upload(&stencil, 64, &CopyLimits::default(), MIB).unwrap();
    assert_eq!(
        plan.copies[0].region.image_subresource.aspect_mask,
        vk::ImageAspectFlags::STENCIL
    );
    assert_eq!(plan.staging_alignment, 4);
}

#[test]
fn data_size_mismatch() {
    let l = rgba8(4, 4, 3);
    assert_eq!(
        plan_image_upload(&l, 83, &CopyLimits::default(), MIB).unwrap_err(),
        PlanError::DataSizeMismatch {
            expected: 84,
            actual: 83
        }
    );
}

#[test]
fn rx6600_small_mips_are_copied_whole() {
    let limits = rx6600_transfer();
    let layout = rgba8(64, 64, 7);
    let len = expected_data_size(&layout).unwrap();
    let plan = plan_image_upload(&layout, len, &limits, MIB).unwrap();
    assert_eq!(plan.copies.len(), 7);
    for (mip, copy) in plan.copies.iter().enumerate() {
        let dim = 64 >> mip;
        let r = copy.region;
        assert_eq!(r.image_subresource.mip_level, mip as u32);
        assert_eq!(
            (r.image_offset.x, r.image_offset.y, r.image_offset.z),
            (0, 0, 0)
        );
        assert_eq!(
            (
                r.image_extent.width,
                r.image_extent.height,
                r.image_extent.depth
            ),
            (dim, dim, 1)
        );
        assert_eq!(copy.staging_size, u64::from(dim * dim * 4));
    }
    // The 4x4 level on its own, too.
    let small = rgba8(4, 4, 1);
    let plan = plan_image_upload(&small, 64, &limits, 64).unwrap();
    assert_eq!(plan.copies.len(), 1);
    assert_eq!(
        plan.copies[0].region.image_extent,
        vk::Extent3D {
            width: 4,
            height: 4,
            depth: 1
        }
    );
}

#[test]
fn rx6600_large_level_splits_at_multiples_of_16_rows() {
    let limits = rx6600_transfer();
    let layout = rgba8(256, 256, 1);
    let plan = plan_image_upload(&layout, 256 * 256 * 4, &limits, 64 * 1024).unwrap();
    // 1 KiB per row: 64 rows per 64 KiB band, a multiple of 16.
    assert_eq!(plan.copies.len(), 4);
    for (i, copy) in plan.copies.iter().enumerate() {
        let r = copy.region;
        assert_eq!(r.image_offset.y, 64 * i as i32);
        assert_eq!(r.image_offset.y % 16, 0);
        assert_eq!(r.image_extent.height, 64);
        assert_eq!(copy.src_offset, 64 * 1024 * i as u64);
        assert!(copy.staging_size <= 64 * 1024);
    }
    // A chunk that holds 40 rows takes 32 (two granularity units) per band.
    let plan = plan_image_upload(&layout, 256 * 256 * 4, &limits, 40 * 1024).unwrap();
    let ys: Vec<i32> = plan
        .copies
        .iter()
        .map(|c| c.region.image_offset.y)
        .collect();
    assert_eq!(ys, (0..8).map(|i| 32 * i).collect::<Vec<_>>());
    // Less than 16 rows cannot be a band.
    assert_eq!(
        plan_image_upload(&layout, 256 * 256 * 4, &limits, 15 * 1024).unwrap_err(),
        PlanError::ChunkTooSmall {
            needed: 16 * 1024,
            max_chunk: 15 * 1024
        }
    );
}

#[test]
fn compressed_granularity_counts_blocks() {
    // BC1 256x256: 64 block rows of 512 bytes. Granularity 16 is 16 blocks
    // = 64 texel rows.
    let limits = rx6600_transfer();
    let layout = ImageLayout::new_2d(vk::Format::BC1_RGBA_UNORM_BLOCK, 256, 256, 1, 1);
    let len = expected_data_size(&layout).unwrap();
    assert_eq!(len, 64 * 512);
    let plan = plan_image_upload(&layout, len, &limits, 8 * 1024).unwrap();
    assert_eq!(plan.copies.len(), 4);
    for (i, c) in plan.copies.iter().enumerate() {
        assert_eq!(c.region.image_offset.y, 64 * i as i32);
        assert_eq!(c.rows, 16);
    }
}

#[test]
fn lavapipe_row_pitch() {
    let table = DeviceTable::builtin("lavapipe-mesa-22.3").unwrap();
    let limits = CopyLimits::from_table(&table, 0);
    let layout = rgba8(33, 5, 1);
    let plan = plan_image_upload(&layout, 33 * 5 * 4, &limits, MIB).unwrap();
    assert_eq!(plan.copies.len(), 1);
    let c = plan.copies[0];
    assert_eq!((c.src_row_pitch, c.dst_row_pitch), (132, 256));
    assert_eq!(c.region.buffer_row_length, 64);
    assert_eq!(c.region.buffer_image_height, 0);
    assert_eq!(c.staging_size, 256 * 4 + 132);
    assert_eq!(plan.staging_alignment, 128);
    // 12-byte texels: pitch a multiple of lcm(12, 128) = 384.
    let rgb32 = ImageLayout::new_2d(vk::Format::R32G32B32_SFLOAT, 33, 2, 1, 1);
    let plan = plan_image_upload(&rgb32, 33 * 2 * 12, &limits, MIB).unwrap();
    assert_eq!(plan.copies[0].dst_row_pitch, 768);
    assert_eq!(plan.copies[0].region.buffer_row_length, 64);
    assert_eq!(plan.staging_alignment, 384);
}

#[test]
fn write_into_pads_rows() {
    let c = PlannedCopy {
        src_offset: 2,
        src_row_pitch: 3,
        dst_row_pitch: 4,
        rows: 2,
        slices: 2,
        src_slice_pitch: 9,
        dst_slice_pitch: 8,
        staging_size: 15,
        region: vk::BufferImageCopy::default(),
    };
    let data: Vec<u8> = (0..20).collect();
    let mut staging = vec![0xff; 15];
    c.write_into(&data, &mut staging);
    assert_eq!(
        staging,
        [2, 3, 4, 0xff, 5, 6, 7, 0xff, 11, 12, 13, 0xff, 14, 15, 16]
    );
    assert_eq!(c.src_span(), 9 + 6);
}

#[test]
fn zero_granularity_whole_mips_only() {
    let limits = CopyLimits {
        min_image_transfer_granularity: vk::Extent3D::default(),
        ..CopyLimits::default()
    };
    let layout = rgba8(16, 16, 1);
    assert!(plan_image_upload(&layout, 1024, &limits, 1024).is_ok());
    assert_eq!(
        plan_image_upload(&layout, 1024, &limits, 1023).unwrap_err(),
        PlanError::ChunkTooSmall {
            needed: 1024,
            max_chunk: 1023
        }
    );
}

#[test]
fn volume_splits_into_slabs_then_bands() {
    let limits = rx6600_transfer();
    let layout = ImageLayout::new_3d(
        vk::Format::R8_UNORM,
        vk::Extent3D {
            width: 32,
            height: 32,
            depth: 20,
        },
        1,
    );
    // 1 KiB per slice; 8-slice slabs fit 16 KiB: two slabs of 16 and one of 4.
    let plan = plan_image_upload(&layout, 20 * 1024, &limits, 16 * 1024 + 100).unwrap();
    let zs: Vec<(i32, u32)> = plan
        .copies
        .iter()
        .map(|c| (c.region.image_offset.z, c.region.image_extent.depth))
        .collect();
    assert_eq!(zs, [(0, 16), (16, 4)]);
    // 4 KiB chunks: 8-slice slabs no longer fit; 16-row bands of 8 slices.
    let plan = plan_image_upload(&layout, 20 * 1024, &limits, 4 * 1024).unwrap();
    let boxes: Vec<(i32, u32, i32, u32)> = plan
        .copies
        .iter()
        .map(|c| {
            let r = c.region;
            (
                r.image_offset.z,
                r.image_extent.depth,
                r.image_offset.y,
                r.image_extent.height,
            )
        })
        .collect();
    assert_eq!(
        boxes,
        [
            (0, 8, 0, 16),
            (0, 8, 16, 16),
            (8, 8, 0, 16),
            (8, 8, 16, 16),
            (16, 4, 0, 32)
        ]
    );
}
