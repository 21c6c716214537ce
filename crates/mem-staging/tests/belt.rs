//! The staging belt on real Vulkan (lavapipe), under validation with
//! synchronization validation: every test ends with `ctx.finish()`, which
//! fails on any warning or error message.

mod common;

use ash::vk;
use common::{layout_of, pattern, transfer_barrier, Setup, MIB};
use mem_core::MemoryUsage;
use mem_resources::{BufferDesc, Image, ImageDesc, ImageKind};
use mem_staging::belt::{BufferWrite, StagingBeltConfig, StagingError};
use mem_staging::plan::expected_data_size;

fn staged(ring: u64) -> StagingBeltConfig {
    StagingBeltConfig {
        force_staging: true,
        ..StagingBeltConfig::with_ring_size(ring)
    }
}

#[test]
fn buffers_from_one_byte_to_larger_than_the_ring() {
    let mut s = Setup::new(staged(8 * MIB));
    for (i, size) in [1u64, 3, 4, 255, 4096, 65_537, MIB + 17, 5 * MIB, 20 * MIB]
        .into_iter()
        .enumerate()
    {
        let dst = s.device_buffer(size);
        let data = pattern(size as usize, i as u64);
        let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
        s.belt().wait(t).unwrap();
        assert!(s.belt().is_complete(t).unwrap());
        assert!(s.read_buffer(&dst) == data, "size {size}: mismatch");
        s.destroy(dst);
    }
    let st = s.belt().stats();
    assert!(st.bytes_staged > 26 * MIB);
    assert_eq!(st.bytes_direct, 0);
    assert!(st.ring_high_water <= 8 * MIB);
    s.finish();
}

#[test]
fn a_256_mib_buffer_streams_through_a_64_mib_ring() {
    let mut s = Setup::new(staged(64 * MIB));
    let size = 256 * MIB;
    let dst = s.device_buffer(size);
    let data = pattern(size as usize, 99);
    let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    s.belt().wait(t).unwrap();
    assert!(s.read_buffer(&dst) == data);
    assert!(
        s.belt().stats().batches_submitted >= 16,
        "streamed in chunks"
    );
    s.destroy(dst);
    s.finish();
}

#[test]
fn offsets_inside_a_buffer_and_overlapping_rewrites() {
    let mut s = Setup::new(staged(MIB));
    let dst = s.device_buffer(10_000);
    let mut model = vec![0u8; 10_000];
    let zero = vec![0u8; 10_000];
    let _ = s.belt().upload_buffer(&dst, 0, &zero).unwrap();
    for (i, (off, len)) in [
        (0u64, 100usize),
        (50, 100),
        (9_000, 1_000),
        (4_000, 3_000),
        (4_500, 10),
    ]
    .into_iter()
    .enumerate()
    {
        let data = pattern(len, 1000 + i as u64);
        model[off as usize..off as usize + len].copy_from_slice(&data);
        let _ = s.belt().upload_buffer(&dst, off, &data).unwrap();
    }
    s.belt().finish().unwrap();
    assert!(s.read_buffer(&dst) == model, "later uploads win, in order");
    s.destroy(dst);
    s.finish();
}

#[test]
fn ten_thousand_small_uploads_share_one_submit() {
    let mut s = Setup::new(staged(64 * MIB));
    let big = s.device_buffer(10_000 * 256);
    let mut model = vec![0u8; 10_000 * 256];
    for i in 0..10_000u64 {
        let data = pattern(256, i);
        model[(i * 256) as usize..((i + 1) * 256) as usize].copy_from_slice(&data);
        let _ = s.belt().upload_buffer(&big, i * 256, &data).unwrap();
    }
    let before = s.belt().stats().batches_submitted;
    assert_eq!(before, 0, "nothing submitted before flush");
    let t = s.belt().flush().unwrap();
    s.belt().wait(t).unwrap();
    let st = s.belt().stats();
    assert_eq!(st.batches_submitted, 1);
    assert_eq!(st.uploads, 10_000);
    assert_eq!(
        st.copy_commands, 1,
        "contiguous uploads merge into one copy region"
    );
    assert!(s.read_buffer(&big) == model);
    s.destroy(big);
    s.finish();
}

#[test]
fn tiny_ring_wraps_under_pressure() {
    let mut s = Setup::new(staged(64 * 1024));
    let mut bufs = Vec::new();
    let mut models = Vec::new();
    for _ in 0..12u64 {
        let b = s.device_buffer(300_000);
        // Vulkan memory starts undefined (lavapipe hands out recycled heap
        // memory), so the model starts from what the buffer holds.
        models.push(s.read_buffer(&b));
        bufs.push(b);
    }
    let mut rng = 7u64;
    for step in 0..400u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let b = (rng % 12) as usize;
        let len = 1 + (rng >> 8) % 40_000;
        let off = (rng >> 24) % (300_000 - len);
        let data = pattern(len as usize, step);
        models[b][off as usize..(off + len) as usize].copy_from_slice(&data);
        let _ = s.belt().upload_buffer(&bufs[b], off, &data).unwrap();
    }
    s.belt().finish().unwrap();
    let st = s.belt().stats();
    assert!(
        st.batches_submitted > 20,
        "the 64 KiB ring forced many submits: {st:?}"
    );
    assert!(st.ring_high_water <= 64 * 1024);
    for (b, m) in bufs.into_iter().zip(models) {
        assert!(s.read_buffer(&b) == m);
        s.destroy(b);
    }
    s.finish();
}

#[test]
fn direct_path_writes_host_visible_memory() {
    // Upload memory is host-visible on every device (lavapipe's only memory
    // type is): the belt writes it directly and records no copy.
    let mut s = Setup::new(StagingBeltConfig::with_ring_size(MIB));
    let dst = s.buffer_in(100_000, MemoryUsage::Upload);
    let data = pattern(100_000, 5);
    let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    assert!(
        s.belt().is_complete(t).unwrap(),
        "direct writes complete at once"
    );
    let st = s.belt().stats();
    assert_eq!(st.bytes_direct, 100_000);
    assert_eq!(st.copy_commands, 0);
    assert!(s.read_buffer(&dst) == data);
    s.destroy(dst);
    s.finish();
}

fn texture(s: &Setup, desc: ImageDesc) -> Image {
    s.res()
        .create_image(&desc.usage(
            vk::ImageUsageFlags::TRANSFER_DST
                | vk::ImageUsageFlags::TRANSFER_SRC
                | vk::ImageUsageFlags::SAMPLED,
        ))
        .unwrap()
}

#[test]
fn textures_with_full_mip_chains_arrays_and_3d() {
    let mut s = Setup::new(staged(MIB));
    let cases = [
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 300, 200, 9),
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 1024, 1024, 11),
        ImageDesc::texture_2d_array(vk::Format::R8G8B8A8_UNORM, 64, 32, 4, 7),
        ImageDesc::texture_3d(vk::Format::R8G8B8A8_UNORM, 40, 30, 20, 6),
        ImageDesc::texture_1d(vk::Format::R8G8B8A8_UNORM, 777, 10),
        ImageDesc::cube(vk::Format::R8G8B8A8_UNORM, 64, 7),
    ];
    for (i, desc) in cases.into_iter().enumerate() {
        let img = texture(&s, desc);
        let len = expected_data_size(&layout_of(img.desc())).unwrap();
        let data = pattern(len as usize, 77 + i as u64);
        let t = s
            .belt()
            .upload_image(&img, &data, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
            .unwrap();
        s.belt().wait(t).unwrap();
        let back = s.read_image(&img);
        assert!(
            back == data,
            "case {i} {:?}: mip data differs",
            img.desc().kind
        );
        // SAFETY: waited.
        unsafe { s.res().destroy_image(img) }.unwrap();
    }
    s.finish();
}

#[test]
fn block_compressed_textures_when_supported() {
    let mut s = Setup::new(staged(MIB));
    for format in [
        vk::Format::BC1_RGBA_UNORM_BLOCK,
        vk::Format::BC7_UNORM_BLOCK,
    ] {
        let feats = s.res().format_features(format, vk::ImageTiling::OPTIMAL);
        if !feats.contains(vk::FormatFeatureFlags::TRANSFER_DST) {
            eprintln!("note: lavapipe does not support {format:?} for transfer; skipped");
            continue;
        }
        let img = texture(&s, ImageDesc::texture_2d(format, 128, 64, 8));
        let len = expected_data_size(&layout_of(img.desc())).unwrap();
        let data = pattern(len as usize, 3);
        let t = s
            .belt()
            .upload_image(&img, &data, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
            .unwrap();
        s.belt().wait(t).unwrap();
        // Read back block by block: copy each level into a buffer.
        let readback = s.res().create_buffer(&BufferDesc::readback(len)).unwrap();
        let device = s.ctx().device().clone();
        let block = if format == vk::Format::BC1_RGBA_UNORM_BLOCK {
            8
        } else {
            16
        };
        let mut regions = Vec::new();
        let mut off = 0;
        for level in 0..8u32 {
            let w = (128u32 >> level).max(1);
            let h = (64u32 >> level).max(1);
            regions.push(vk::BufferImageCopy {
                buffer_offset: off,
                buffer_row_length: 0,
                buffer_image_height: 0,
                image_subresource: vk::ImageSubresourceLayers {
                    aspect_mask: vk::ImageAspectFlags::COLOR,
                    mip_level: level,
                    base_array_layer: 0,
                    layer_count: 1,
                },
                image_offset: vk::Offset3D::default(),
                image_extent: vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                },
            });
            off += u64::from(w.div_ceil(4) * h.div_ceil(4)) * block;
        }
        assert_eq!(off, len);
        s.ctx().one_shot(s.family, |cmd| {
            // SAFETY: recording; image in TRANSFER_SRC_OPTIMAL.
            unsafe {
                transfer_barrier(&device, cmd);
                device.cmd_copy_image_to_buffer(
                    cmd,
                    img.handle(),
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    readback.handle(),
                    &regions,
                );
            }
        });
        let mut back = vec![0u8; len as usize];
        s.res().read_buffer(&readback, 0, &mut back).unwrap();
        assert!(back == data, "{format:?} blocks differ");
        // SAFETY: waited.
        unsafe {
            s.res().destroy_buffer(readback).unwrap();
            s.res().destroy_image(img).unwrap();
        }
    }
    s.finish();
}

#[test]
fn bad_input_is_typed_and_the_belt_stays_usable() {
    let mut s = Setup::new(staged(MIB));
    let dst = s.device_buffer(1000);
    assert!(matches!(
        s.belt().upload_buffer(&dst, 0, &[]),
        Err(StagingError::EmptyData)
    ));
    let e = s.belt().upload_buffer(&dst, 990, &[0; 20]).unwrap_err();
    assert!(
        matches!(
            e,
            StagingError::OutOfRange {
                offset: 990,
                len: 20,
                size: 1000
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("990") && e.to_string().contains("1000"));
    assert!(matches!(
        s.belt().upload_buffer(&dst, u64::MAX, &[0; 2]),
        Err(StagingError::OutOfRange { .. })
    ));
    let no_dst = s
        .res()
        .create_buffer(
            &BufferDesc::new(
                64,
                vk::BufferUsageFlags::VERTEX_BUFFER,
                MemoryUsage::GpuOnly,
            )
            .name("vb"),
        )
        .unwrap();
    let e = s.belt().upload_buffer(&no_dst, 0, &[1; 8]).unwrap_err();
    assert!(
        matches!(&e, StagingError::MissingTransferDst { name: Some(n), .. } if n == "vb"),
        "{e}"
    );
    let img = texture(
        &s,
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 16, 16, 5),
    );
    let e = s
        .belt()
        .upload_image(&img, &[0; 100], vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap_err();
    assert!(matches!(e, StagingError::Plan(_)), "{e}");
    assert!(e.to_string().contains("100"), "{e}");
    // A final layout the image's usage does not allow (no TRANSFER_SRC, no
    // COLOR_ATTACHMENT), or one that cannot be transitioned to.
    let sampled_only = s
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 16, 16, 1)
                .usage(vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::SAMPLED)
                .name("albedo"),
        )
        .unwrap();
    for layout in [
        vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
        vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
        vk::ImageLayout::UNDEFINED,
    ] {
        let e = s
            .belt()
            .upload_image(&sampled_only, &[0; 16 * 16 * 4], layout)
            .unwrap_err();
        assert!(
            matches!(&e, StagingError::LayoutNotAllowed { name: Some(n), .. } if n == "albedo"),
            "{e}"
        );
    }
    // A ticket of another belt.
    let mut other = Setup::new(staged(MIB));
    let t_other = other.belt().flush().unwrap();
    assert!(matches!(
        s.belt().wait(t_other),
        Err(StagingError::ForeignTicket { .. })
    ));
    other.finish();
    // Nothing was recorded: the belt still works and nothing is pending.
    assert_eq!(s.belt().stats().copy_commands, 0);
    let data = pattern(1000, 1);
    let t = s.belt().upload_buffer(&dst, 0, &data).unwrap();
    s.belt().wait(t).unwrap();
    assert!(s.read_buffer(&dst) == data);
    // SAFETY: idle.
    unsafe {
        s.res().destroy_image(img).unwrap();
        s.res().destroy_image(sampled_only).unwrap();
        s.res().destroy_buffer(no_dst).unwrap();
    }
    s.destroy(dst);
    s.finish();
}

#[test]
fn same_family_needs_no_acquire_barriers() {
    let mut s = Setup::new(staged(MIB));
    assert!(!s.belt().transfers_ownership());
    let dst = s.device_buffer(4096);
    let t = s.belt().upload_buffer(&dst, 0, &[7; 4096]).unwrap();
    let acq = s.belt().take_acquire_barriers(t).unwrap();
    assert!(acq.is_empty());
    s.belt().wait(t).unwrap();
    s.destroy(dst);
    s.finish();
}

#[test]
fn image_kinds_match_plan_types() {
    assert_eq!(ImageKind::D3.image_type(), vk::ImageType::TYPE_3D);
}

#[test]
fn many_writes_in_one_call_land_in_order_across_ring_wraps() {
    // A 1 MiB ring (256 KiB chunks, parallel copies from 64 KiB with two
    // threads): runs wrap the ring many times; one write is larger than a
    // chunk and streams; later writes to a range win.
    let mut s = Setup::new(StagingBeltConfig {
        parallel_copy_threshold: 64 << 10,
        copy_threads: 2,
        ..staged(MIB)
    });
    let a = s.device_buffer(3 * MIB);
    let b = s.device_buffer(100_003);
    let mut model_a = vec![0u8; 3 * MIB as usize];
    let mut model_b = vec![0u8; 100_003];
    let zero_a = vec![0u8; 3 * MIB as usize];
    let zero_b = vec![0u8; 100_003];
    let _ = s.belt().upload_buffer(&a, 0, &zero_a).unwrap();
    let _ = s.belt().upload_buffer(&b, 0, &zero_b).unwrap();
    let mut datas = Vec::new();
    let mut places = Vec::new();
    let mut seed = 7u64;
    for i in 0..600u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let to_a = i % 3 != 0;
        let size = if i == 301 {
            700_000 // larger than a chunk: streamed alone, in its turn
        } else {
            1 + (seed >> 33) % 20_000
        };
        let cap = if to_a { 3 * MIB } else { 100_003 };
        let off = (seed >> 17) % (cap - size + 1);
        let data = pattern(size as usize, 5000 + i);
        let model = if to_a { &mut model_a } else { &mut model_b };
        model[off as usize..(off + size) as usize].copy_from_slice(&data);
        datas.push(data);
        places.push((to_a, off));
    }
    let writes: Vec<BufferWrite<'_>> = datas
        .iter()
        .zip(&places)
        .map(|(d, &(to_a, off))| BufferWrite::new(if to_a { &a } else { &b }, off, d))
        .collect();
    let before = s.belt().stats();
    let t = s.belt().upload_buffers(&writes).unwrap();
    drop(writes);
    s.belt().wait(t).unwrap();
    let st = s.belt().stats();
    assert_eq!(st.uploads - before.uploads, 600);
    assert!(
        st.batches_submitted - before.batches_submitted > 10,
        "wrapped"
    );
    assert!(
        s.read_buffer(&a) == model_a,
        "buffer a: writes land in order"
    );
    assert!(
        s.read_buffer(&b) == model_b,
        "buffer b: writes land in order"
    );
    // Contiguous writes merge into one copy each run.
    let dst = s.device_buffer(64 * 1024);
    let pieces: Vec<Vec<u8>> = (0..64).map(|i| pattern(1024, i)).collect();
    let writes: Vec<_> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| BufferWrite::new(&dst, i as u64 * 1024, p))
        .collect();
    let before = s.belt().stats().copy_commands;
    let t = s.belt().upload_buffers(&writes).unwrap();
    s.belt().wait(t).unwrap();
    assert_eq!(s.belt().stats().copy_commands - before, 1);
    assert!(s.read_buffer(&dst) == pieces.concat());
    for buf in [a, b, dst] {
        s.destroy(buf);
    }
    s.finish();
}

#[test]
fn a_bad_write_in_a_list_uploads_nothing() {
    let mut s = Setup::new(staged(MIB));
    let dst = s.device_buffer(4096);
    let no_dst = s
        .res()
        .create_buffer(&BufferDesc::new(
            4096,
            vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::GpuOnly,
        ))
        .unwrap();
    let data = pattern(1024, 1);
    let empty: [u8; 0] = [];
    let before = s.belt().stats();
    for (bad, what) in [
        (BufferWrite::new(&dst, 3500, &data), "past the end"),
        (
            BufferWrite::new(&dst, u64::MAX - 10, &data),
            "offset overflows",
        ),
        (BufferWrite::new(&dst, 0, &empty), "empty"),
        (BufferWrite::new(&no_dst, 0, &data), "no TRANSFER_DST"),
    ] {
        let writes = [BufferWrite::new(&dst, 0, &data), bad];
        let e = s.belt().upload_buffers(&writes).unwrap_err();
        assert!(
            matches!(
                e,
                StagingError::OutOfRange { .. }
                    | StagingError::EmptyData
                    | StagingError::MissingTransferDst { .. }
            ),
            "{what}: {e}"
        );
    }
    let st = s.belt().stats();
    assert_eq!(st.uploads, before.uploads, "nothing uploaded");
    assert_eq!(st.bytes_staged, before.bytes_staged);
    // No writes: a complete ticket.
    let t = s.belt().upload_buffers(&[]).unwrap();
    assert!(s.belt().is_complete(t).unwrap());
    s.destroy(no_dst);
    s.destroy(dst);
    s.finish();
}
