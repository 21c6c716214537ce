//! Property tests of the image upload planner: every plan, replayed through
//! `write_into` and a model of `vkCmdCopyBufferToImage`, rebuilds the source
//! image exactly, honours every device table's copy limits and transfer
//! granularity, and no input makes the planner panic.

use ash::vk;
use mem_core::fake::DeviceTable;
use mem_staging::format::{format_info, FormatInfo};
use mem_staging::plan::{
    expected_data_size, plan_image_upload, CopyLimits, ImageLayout, ImagePlan, PlanError,
};
use proptest::prelude::*;

const FORMATS: [vk::Format; 7] = [
    vk::Format::R8G8B8A8_UNORM,
    vk::Format::R16G16B16A16_SFLOAT,
    vk::Format::BC1_RGBA_UNORM_BLOCK,
    vk::Format::BC7_UNORM_BLOCK,
    vk::Format::ASTC_8X8_UNORM_BLOCK,
    vk::Format::D32_SFLOAT,
    vk::Format::R32G32B32_SFLOAT,
];

/// Every (table, queue family with TRANSFER) of the shipped device tables,
/// plus synthetic limits the tables lack (zero granularity, large alignments,
/// non-power-of-two alignments).
fn all_limits() -> Vec<(String, CopyLimits)> {
    let mut out = Vec::new();
    for (name, table) in DeviceTable::all_builtin() {
        for (i, family) in table.queue_families.iter().enumerate() {
            if family.flags.contains(vk::QueueFlags::TRANSFER) {
                out.push((
                    format!("{name} family {i}"),
                    CopyLimits::from_table(&table, i),
                ));
            }
        }
    }
    let synthetic = |offset, row, (width, height, depth)| CopyLimits {
        optimal_buffer_copy_offset_alignment: offset,
        optimal_buffer_copy_row_pitch_alignment: row,
        min_image_transfer_granularity: vk::Extent3D {
            width,
            height,
            depth,
        },
    };
    out.push(("whole mips only".into(), synthetic(1, 1, (0, 0, 0))));
    out.push(("big alignments".into(), synthetic(512, 256, (4, 4, 4))));
    out.push(("odd alignments".into(), synthetic(24, 6, (2, 8, 2))));
    out.push(("zero alignments".into(), synthetic(0, 0, (1, 1, 1))));
    out
}

fn mip_dim(dim: u32, mip: u32) -> u32 {
    (dim >> mip).max(1)
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

/// Deterministic bytes that differ from block to block.
fn pattern(len: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let mut state = seed;
    while (out.len() as u64) < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

/// The layout of the source data, computed independently of the planner:
/// per (mip, layer), the subresource's offset and its size in blocks.
struct Model {
    info: FormatInfo,
    /// `[mip][layer]` → byte offset of the subresource in the data.
    offsets: Vec<Vec<u64>>,
    /// `[mip]` → (texel width, height, depth, block cols, block rows).
    dims: Vec<(u32, u32, u32, u64, u64)>,
    len: u64,
}

fn model(layout: &ImageLayout) -> Model {
    let info = format_info(layout.format).unwrap();
    let (bw, bh, bb) = (
        u64::from(info.block_extent.width),
        u64::from(info.block_extent.height),
        u64::from(info.block_bytes),
    );
    let mut offset = 0;
    let mut offsets = Vec::new();
    let mut dims = Vec::new();
    for mip in 0..layout.mip_levels {
        let (w, h, d) = (
            mip_dim(layout.extent.width, mip),
            mip_dim(layout.extent.height, mip),
            mip_dim(layout.extent.depth, mip),
        );
        let (cols, rows) = (ceil_div(w.into(), bw), ceil_div(h.into(), bh));
        dims.push((w, h, d, cols, rows));
        let mut per_layer = Vec::new();
        for _ in 0..layout.array_layers {
            per_layer.push(offset);
            offset += cols * rows * u64::from(d) * bb;
        }
        offsets.push(per_layer);
    }
    Model {
        info,
        offsets,
        dims,
        len: offset,
    }
}

/// One dimension of the granularity rule: the offset is a multiple of the
/// granularity (scaled to texels by the block size) and the extent is too,
/// or reaches the subresource's edge. A zero granularity allows the whole
/// dimension only.
fn granularity_ok(offset: u32, extent: u32, granularity: u32, block: u32, edge: u32) -> bool {
    if granularity == 0 {
        return offset == 0 && extent == edge;
    }
    let unit = granularity * block;
    offset % unit == 0 && (extent % unit == 0 || offset + extent == edge)
}

/// Checks every rule of `plan` and replays it into a model image; returns
/// the image (laid out like the source data).
fn replay(
    layout: &ImageLayout,
    limits: &CopyLimits,
    max_chunk: u64,
    plan: &ImagePlan,
    data: &[u8],
) -> Vec<u8> {
    let m = model(layout);
    let info = m.info;
    let (bw, bh, bb) = (
        info.block_extent.width,
        info.block_extent.height,
        u64::from(info.block_bytes),
    );
    let align = plan.staging_alignment;
    assert_eq!(align % 4, 0);
    assert_eq!(align % bb, 0);
    assert_eq!(
        align % limits.optimal_buffer_copy_offset_alignment.max(1),
        0
    );
    let pitch_unit = lcm(bb, limits.optimal_buffer_copy_row_pitch_alignment.max(1));
    let gran = limits.min_image_transfer_granularity;
    let gran_zero = gran.width == 0 || gran.height == 0 || gran.depth == 0;

    let mut image = vec![0u8; m.len as usize];
    let mut writes = vec![0u8; (m.len / bb) as usize];
    let mut last_src = None;
    for (i, copy) in plan.copies.iter().enumerate() {
        let r = copy.region;
        let ctx = format!("copy {i}: {copy:?}");
        assert!(copy.staging_size <= max_chunk, "{ctx}");
        assert!(
            last_src < Some(copy.src_offset),
            "copies out of data order: {ctx}"
        );
        last_src = Some(copy.src_offset);
        assert_eq!(r.buffer_offset, 0, "{ctx}");
        let sub = r.image_subresource;
        assert_eq!(sub.aspect_mask, info.aspect, "{ctx}");
        assert_eq!(sub.layer_count, 1, "{ctx}");
        assert!(
            sub.mip_level < layout.mip_levels && sub.base_array_layer < layout.array_layers,
            "{ctx}"
        );
        let (w, h, d, cols, rows) = m.dims[sub.mip_level as usize];

        // Pitches.
        assert_eq!(copy.src_row_pitch, cols * bb, "{ctx}");
        assert_eq!(
            copy.dst_row_pitch,
            copy.src_row_pitch.div_ceil(pitch_unit) * pitch_unit,
            "{ctx}"
        );
        assert_eq!(copy.src_slice_pitch, copy.src_row_pitch * rows, "{ctx}");

        // Offsets/extents: in range, block-aligned, granularity rule.
        let (ox, oy, oz) = (r.image_offset.x, r.image_offset.y, r.image_offset.z);
        assert!(ox >= 0 && oy >= 0 && oz >= 0, "{ctx}");
        let (ox, oy, oz) = (ox as u32, oy as u32, oz as u32);
        let e = r.image_extent;
        assert!(e.width > 0 && e.height > 0 && e.depth > 0, "{ctx}");
        assert!(
            ox + e.width <= w && oy + e.height <= h && oz + e.depth <= d,
            "{ctx}"
        );
        assert!(
            granularity_ok(ox, e.width, gran.width, bw, w),
            "x granularity: {ctx}"
        );
        assert!(
            granularity_ok(oy, e.height, gran.height, bh, h),
            "y granularity: {ctx}"
        );
        assert!(
            granularity_ok(oz, e.depth, gran.depth, 1, d),
            "z granularity: {ctx}"
        );
        assert!(
            granularity_ok(ox, e.width, 1, bw, w),
            "x block alignment: {ctx}"
        );
        assert!(
            granularity_ok(oy, e.height, 1, bh, h),
            "y block alignment: {ctx}"
        );
        if gran_zero {
            assert_eq!(
                (ox, oy, oz, e.width, e.height, e.depth),
                (0, 0, 0, w, h, d),
                "{ctx}"
            );
        }
        match layout.image_type {
            vk::ImageType::TYPE_1D => {
                assert_eq!((oy, e.height, oz, e.depth), (0, 1, 0, 1), "{ctx}")
            }
            vk::ImageType::TYPE_2D => assert_eq!((oz, e.depth), (0, 1), "{ctx}"),
            _ => {}
        }
        // Buffer addressing parameters (Vulkan valid usage).
        if r.buffer_row_length != 0 {
            assert!(
                r.buffer_row_length >= e.width && r.buffer_row_length % bw == 0,
                "{ctx}"
            );
        }
        if r.buffer_image_height != 0 {
            assert!(
                r.buffer_image_height >= e.height && r.buffer_image_height % bh == 0,
                "{ctx}"
            );
        }
        let row_len = if r.buffer_row_length == 0 {
            e.width
        } else {
            r.buffer_row_length
        };
        let img_h = if r.buffer_image_height == 0 {
            e.height
        } else {
            r.buffer_image_height
        };
        let row_blocks = ceil_div(row_len.into(), bw.into());
        let h_blocks = ceil_div(img_h.into(), bh.into());
        assert_eq!(
            row_blocks * bb,
            copy.dst_row_pitch,
            "buffer_row_length vs dst pitch: {ctx}"
        );
        assert_eq!(
            h_blocks * copy.dst_row_pitch,
            copy.dst_slice_pitch,
            "image height vs slice pitch: {ctx}"
        );
        let (ex, ey, ez) = (
            ceil_div(e.width.into(), bw.into()),
            ceil_div(e.height.into(), bh.into()),
            u64::from(e.depth),
        );
        assert_eq!((ey, ez), (copy.rows, copy.slices), "{ctx}");

        // Stage, then "perform" the copy into the model image.
        let mut staging = vec![0xA5u8; copy.staging_size as usize];
        copy.write_into(data, &mut staging);
        let base = m.offsets[sub.mip_level as usize][sub.base_array_layer as usize];
        let (bx0, by0) = (u64::from(ox / bw), u64::from(oy / bh));
        let mut footprint_end = 0;
        for z in 0..ez {
            for y in 0..ey {
                for x in 0..ex {
                    let addr = r.buffer_offset + ((z * h_blocks + y) * row_blocks + x) * bb;
                    footprint_end = footprint_end.max(addr + bb);
                    let texel =
                        base + (((u64::from(oz) + z) * rows + by0 + y) * cols + bx0 + x) * bb;
                    let (a, t) = (addr as usize, texel as usize);
                    image[t..t + bb as usize].copy_from_slice(&staging[a..a + bb as usize]);
                    writes[(texel / bb) as usize] += 1;
                }
            }
        }
        assert_eq!(
            footprint_end, copy.staging_size,
            "staging_size is the copy's footprint: {ctx}"
        );
    }
    if let Some(i) = writes.iter().position(|&n| n != 1) {
        panic!("block {i} written {} times", writes[i]);
    }
    image
}

/// Plans, replays and compares; returns `Err` only for `ChunkTooSmall`.
fn plan_and_check(
    layout: &ImageLayout,
    limits: &CopyLimits,
    max_chunk: u64,
    seed: u64,
) -> Result<usize, PlanError> {
    let len = expected_data_size(layout).unwrap();
    let data = pattern(len, seed);
    let plan = match plan_image_upload(layout, len, limits, max_chunk) {
        Ok(plan) => plan,
        Err(
            e @ PlanError::ChunkTooSmall {
                needed,
                max_chunk: m,
            },
        ) => {
            assert_eq!(m, max_chunk);
            assert!(needed > max_chunk, "{e}");
            return Err(e);
        }
        Err(e) => panic!("unexpected {e} for {layout:?}"),
    };
    let image = replay(layout, limits, max_chunk, &plan, &data);
    assert!(image == data, "reconstructed image differs from the source");
    Ok(plan.copies.len())
}

fn layout_strategy() -> impl Strategy<Value = ImageLayout> {
    (
        0..FORMATS.len(),
        prop_oneof![1 => Just(vk::ImageType::TYPE_1D), 4 => Just(vk::ImageType::TYPE_2D), 2 => Just(vk::ImageType::TYPE_3D)],
        1u32..=300,
        1u32..=300,
        1u32..=20,
        0u32..64,
        1u32..=6,
    )
        .prop_map(|(f, image_type, w, h, d, mip_pick, layers)| {
            let (h, d, layers) = match image_type {
                vk::ImageType::TYPE_1D => (1, 1, layers),
                vk::ImageType::TYPE_2D => (h, 1, layers),
                _ => (h, d, 1),
            };
            let chain = 32 - w.max(h).max(d).leading_zeros();
            // Full chains half the time, else any count.
            let mip_levels = if mip_pick >= 32 { chain } else { 1 + mip_pick % chain };
            ImageLayout {
                format: FORMATS[f],
                image_type,
                extent: vk::Extent3D { width: w, height: h, depth: d },
                mip_levels,
                array_layers: layers,
                aspect: None,
            }
        })
}

/// From a few bytes to far more than any subresource.
fn chunk_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u32..30, any::<u64>()).prop_map(|(e, r)| (1u64 << e) + r % (1u64 << e)),
        Just(u64::MAX),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn plans_rebuild_the_image(
        layout in layout_strategy(),
        limits_pick in any::<prop::sample::Index>(),
        max_chunk in chunk_strategy(),
        seed in any::<u64>(),
    ) {
        let all = all_limits();
        let (_, limits) = &all[limits_pick.index(all.len())];
        let mut max_chunk = max_chunk;
        // A ChunkTooSmall names what is needed: planning with (at least) that
        // much must eventually succeed, `needed` growing each time.
        let mut planned = false;
        for _ in 0..64 {
            match plan_and_check(&layout, limits, max_chunk, seed) {
                Ok(_) => {
                    planned = true;
                    break;
                }
                Err(PlanError::ChunkTooSmall { needed, .. }) => {
                    prop_assert!(needed > max_chunk);
                    max_chunk = needed;
                }
                Err(e) => panic!("{e}"),
            }
        }
        prop_assert!(planned, "no chunk size made {:?} plannable", layout);
    }

    #[test]
    fn wrong_data_len_is_a_mismatch(
        layout in layout_strategy(),
        delta in 1u64..1_000_000,
        longer in any::<bool>(),
    ) {
        let expected = expected_data_size(&layout).unwrap();
        let actual = if longer { expected + delta } else { expected.saturating_sub(delta) };
        prop_assume!(actual != expected);
        prop_assert_eq!(
            plan_image_upload(&layout, actual, &CopyLimits::default(), u64::MAX).unwrap_err(),
            PlanError::DataSizeMismatch { expected, actual }
        );
    }

    #[test]
    fn arbitrary_input_never_panics(
        format in prop_oneof![
            (0..FORMATS.len()).prop_map(|i| FORMATS[i]),
            (0i32..200).prop_map(vk::Format::from_raw),
            any::<i32>().prop_map(vk::Format::from_raw),
        ],
        image_type in (-1i32..5).prop_map(vk::ImageType::from_raw),
        extent in (any::<u32>(), any::<u32>(), any::<u32>()),
        small_extent in (0u32..70, 0u32..70, 0u32..5),
        use_small in any::<bool>(),
        mip_levels in prop_oneof![any::<u32>(), 0u32..34],
        array_layers in prop_oneof![any::<u32>(), 0u32..8],
        aspect in prop::option::of(any::<u32>().prop_map(vk::ImageAspectFlags::from_raw)),
        data_len in any::<u64>(),
        max_chunk in prop_oneof![any::<u64>(), 0u64..4096],
        offset_align in prop_oneof![any::<u64>(), 0u64..1024],
        row_align in prop_oneof![any::<u64>(), 0u64..1024],
        gran in prop_oneof![(any::<u32>(), any::<u32>(), any::<u32>()), (0u32..17, 0u32..17, 0u32..9)],
    ) {
        let (width, height, depth) = if use_small { small_extent } else { extent };
        let layout = ImageLayout {
            format,
            image_type,
            extent: vk::Extent3D { width, height, depth },
            mip_levels,
            array_layers,
            aspect,
        };
        let limits = CopyLimits {
            optimal_buffer_copy_offset_alignment: offset_align,
            optimal_buffer_copy_row_pitch_alignment: row_align,
            min_image_transfer_granularity: vk::Extent3D { width: gran.0, height: gran.1, depth: gran.2 },
        };
        let expected = expected_data_size(&layout);
        let _ = plan_image_upload(&layout, data_len, &limits, max_chunk);
        if let Ok(len) = expected {
            // With the right length: Ok or a typed error, never a panic.
            // (Bounded so the plan's Vec stays small.)
            if len <= 1 << 16 {
                if let Ok(plan) = plan_image_upload(&layout, len, &limits, max_chunk) {
                    for c in &plan.copies {
                        prop_assert!(c.staging_size <= max_chunk);
                    }
                }
            }
        } else if let Err(e) = plan_image_upload(&layout, data_len, &limits, max_chunk) {
            let _ = e.to_string();
        }
    }
}

#[test]
fn every_table_and_transfer_family() {
    let layouts = [
        ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 7, 1),
        ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, 33, 47, 6, 3),
        ImageLayout::new_2d(vk::Format::R32G32B32_SFLOAT, 257, 130, 9, 2),
        ImageLayout::new_2d(vk::Format::BC1_RGBA_UNORM_BLOCK, 300, 200, 9, 2),
        ImageLayout::new_2d(vk::Format::ASTC_8X8_UNORM_BLOCK, 250, 131, 8, 1),
        ImageLayout::new_3d(
            vk::Format::R16G16B16A16_SFLOAT,
            vk::Extent3D {
                width: 40,
                height: 33,
                depth: 19,
            },
            6,
        ),
        ImageLayout::new_3d(
            vk::Format::BC7_UNORM_BLOCK,
            vk::Extent3D {
                width: 64,
                height: 64,
                depth: 17,
            },
            7,
        ),
        ImageLayout {
            image_type: vk::ImageType::TYPE_1D,
            ..ImageLayout::new_2d(vk::Format::D32_SFLOAT, 300, 1, 9, 4)
        },
    ];
    let (mut planned, mut split) = (0, 0);
    for (name, limits) in all_limits() {
        for layout in &layouts {
            let subresources = (layout.mip_levels * layout.array_layers) as usize;
            for max_chunk in [256, 4096, 20_000, 1 << 20, u64::MAX] {
                match plan_and_check(layout, &limits, max_chunk, 7) {
                    Ok(copies) => {
                        planned += 1;
                        split += usize::from(copies > subresources);
                    }
                    Err(PlanError::ChunkTooSmall { .. }) => {}
                    Err(e) => panic!("{name}: {e}"),
                }
            }
        }
    }
    assert!(planned > 200, "only {planned} plans succeeded");
    assert!(split > 100, "only {split} plans split a subresource");
}

#[test]
fn rx6600_transfer_family() {
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
    // A 64x64 RGBA8 chain: every level, down to 4x4, 2x2 and 1x1, one whole copy.
    let chain = ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 7, 1);
    assert_eq!(plan_and_check(&chain, &limits, 1 << 20, 1), Ok(7));
    let plan = plan_image_upload(
        &chain,
        expected_data_size(&chain).unwrap(),
        &limits,
        1 << 20,
    )
    .unwrap();
    for c in &plan.copies {
        let dim = 64 >> c.region.image_subresource.mip_level;
        assert_eq!(
            c.region.image_extent,
            vk::Extent3D {
                width: dim,
                height: dim,
                depth: 1
            }
        );
        assert_eq!(c.region.image_offset, vk::Offset3D::default());
    }
    // A 256x256 level in 64 KiB chunks: bands at multiples of 16 rows.
    let big = ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, 256, 256, 1, 1);
    assert_eq!(plan_and_check(&big, &limits, 64 << 10, 2), Ok(4));
    let plan = plan_image_upload(&big, 256 * 256 * 4, &limits, 64 << 10).unwrap();
    for c in &plan.copies {
        assert_eq!(c.region.image_offset.y % 16, 0);
        assert!(c.staging_size <= 64 << 10);
    }
    // Uneven chunk: 100 rows fit, bands of 96 (6 units); the last one reaches the edge.
    let plan = plan_image_upload(&big, 256 * 256 * 4, &limits, 100 << 10).unwrap();
    let bands: Vec<(i32, u32)> = plan
        .copies
        .iter()
        .map(|c| (c.region.image_offset.y, c.region.image_extent.height))
        .collect();
    assert_eq!(bands, [(0, 96), (96, 96), (192, 64)]);
}

#[test]
fn lavapipe_row_pitch_alignment() {
    let table = DeviceTable::builtin("lavapipe-mesa-22.3").unwrap();
    let limits = CopyLimits::from_table(&table, 0);
    let layout = ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, 33, 9, 4, 2);
    let plan = plan_image_upload(
        &layout,
        expected_data_size(&layout).unwrap(),
        &limits,
        1 << 20,
    )
    .unwrap();
    let level0 = plan.copies[0];
    assert_eq!(level0.dst_row_pitch, 256);
    assert_eq!(level0.region.buffer_row_length, 64);
    assert_eq!(plan.staging_alignment, 128);
    // Level 2 is 8 texels = 32 bytes wide: padded to 128, row length 32.
    let level2 = plan
        .copies
        .iter()
        .find(|c| c.region.image_subresource.mip_level == 2)
        .unwrap();
    assert_eq!(
        (level2.dst_row_pitch, level2.region.buffer_row_length),
        (128, 32)
    );
    assert_eq!(plan_and_check(&layout, &limits, 1 << 20, 3), Ok(8));
    // Split with padded rows.
    assert!(plan_and_check(&layout, &limits, 1000, 4).unwrap() > 8);
}

#[test]
fn absurd_layer_counts_are_refused_not_planned() {
    use mem_staging::plan::{
        expected_data_size, plan_image_upload, CopyLimits, ImageLayout, PlanError, MAX_ARRAY_LAYERS,
    };
    let layout = ImageLayout {
        format: vk::Format::R8G8B8A8_UNORM,
        image_type: vk::ImageType::TYPE_2D,
        extent: vk::Extent3D {
            width: 1,
            height: 1,
            depth: 1,
        },
        mip_levels: 1,
        array_layers: u32::MAX,
        aspect: None,
    };
    let e = plan_image_upload(
        &layout,
        4 * u64::from(u32::MAX),
        &CopyLimits::default(),
        u64::MAX,
    )
    .unwrap_err();
    assert_eq!(
        e,
        PlanError::TooManyArrayLayers {
            layers: u32::MAX,
            max: MAX_ARRAY_LAYERS
        }
    );
    assert!(expected_data_size(&layout).is_err());
    let ok = ImageLayout {
        array_layers: MAX_ARRAY_LAYERS,
        ..layout
    };
    assert_eq!(
        plan_image_upload(
            &ok,
            4 * u64::from(MAX_ARRAY_LAYERS),
            &CopyLimits::default(),
            u64::MAX
        )
        .unwrap()
        .copies
        .len(),
        1 << 16
    );
}
