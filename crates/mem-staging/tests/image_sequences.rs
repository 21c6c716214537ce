//! Sequences of uploads into one image on lavapipe, under validation with
//! synchronization validation: every upload is ordered after the earlier
//! ones and transitions from the layout the image is actually in, and a
//! partial update keeps the subresources it does not write. Every test reads
//! every mip level and layer back and ends with `finish()`, which fails on
//! any validation message.

mod common;

use ash::vk;
use common::{layout_of, pattern, Setup, MIB};
use mem_resources::{Image, ImageDesc};
use mem_staging::plan::expected_data_size;
use mem_staging::{ImageSubresources, StagingBeltConfig};

const FINAL: vk::ImageLayout = vk::ImageLayout::TRANSFER_SRC_OPTIMAL;

fn staged(ring: u64) -> StagingBeltConfig {
    StagingBeltConfig {
        force_staging: true,
        ..StagingBeltConfig::with_ring_size(ring)
    }
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

/// Bytes of the whole image in the upload layout.
fn whole_len(img: &Image) -> usize {
    expected_data_size(&layout_of(img.desc())).unwrap() as usize
}

/// Byte range of (level, layer) inside the whole image's upload layout
/// (level-major, layers of a level together), RGBA8.
fn subresource_span(img: &Image, level: u32, layer: u32) -> std::ops::Range<usize> {
    let d = img.desc();
    let mut offset = 0usize;
    for l in 0..d.mip_levels {
        let w = (d.extent.width >> l).max(1) as usize;
        let h = (d.extent.height >> l).max(1) as usize;
        let z = (d.extent.depth >> l).max(1) as usize;
        let sub = w * h * z * 4;
        if l == level {
            let start = offset + sub * layer as usize;
            return start..start + sub;
        }
        offset += sub * d.array_layers as usize;
    }
    unreachable!("level {level} out of range")
}

#[test]
fn an_image_uploaded_twice_before_the_belt_submits() {
    let mut s = Setup::new(StagingBeltConfig::default());
    let img = texture(
        &s,
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 4, 4, 1),
    );
    let _ = s.belt().upload_image(&img, &[0x11; 64], FINAL).unwrap();
    let _ = s.belt().upload_image(&img, &[0x22; 64], FINAL).unwrap();
    let t = s.belt().flush().unwrap();
    s.belt().wait(t).unwrap();
    assert_eq!(s.read_image(&img), vec![0x22; 64]);
    // SAFETY: waited.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

#[test]
fn an_image_uploaded_again_in_the_next_batch_without_waiting() {
    let mut s = Setup::new(staged(MIB));
    let img = texture(
        &s,
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 32, 7),
    );
    let len = whole_len(&img);
    let mut last = Vec::new();
    for round in 0..4u64 {
        last = pattern(len, 10 + round);
        let _ = s.belt().upload_image(&img, &last, FINAL).unwrap();
        let _ = s.belt().flush().unwrap();
    }
    s.belt().finish().unwrap();
    assert!(s.read_image(&img) == last);
    // SAFETY: waited.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

#[test]
fn a_streamed_image_uploaded_twice_in_one_call_sequence() {
    // A 512x512 texture with its mips through a 1 MiB ring: each upload
    // spans several batches, and the second starts while the first's last
    // batch is still open.
    let mut s = Setup::new(staged(MIB));
    let img = texture(
        &s,
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 512, 512, 10),
    );
    let len = whole_len(&img);
    let first = pattern(len, 1);
    let second = pattern(len, 2);
    let _ = s.belt().upload_image(&img, &first, FINAL).unwrap();
    let _ = s.belt().upload_image(&img, &second, FINAL).unwrap();
    s.belt().finish().unwrap();
    assert!(s.read_image(&img) == second);
    // SAFETY: waited.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

#[test]
fn one_mip_or_one_layer_at_a_time_keeps_the_rest() {
    let mut s = Setup::new(staged(MIB));
    let img = texture(
        &s,
        ImageDesc::texture_2d_array(vk::Format::R8G8B8A8_UNORM, 64, 32, 3, 7),
    );
    let len = whole_len(&img);
    let mut model = pattern(len, 5);
    let _ = s.belt().upload_image(&img, &model, FINAL).unwrap();
    // Each mip level of every layer, one call each, in one batch.
    for level in [0u32, 3, 6] {
        let spans: Vec<_> = (0..3).map(|l| subresource_span(&img, level, l)).collect();
        let bytes: usize = spans.iter().map(|r| r.len()).sum();
        let data = pattern(bytes, 100 + u64::from(level));
        let mut at = 0;
        for r in &spans {
            model[r.clone()].copy_from_slice(&data[at..at + r.len()]);
            at += r.len();
        }
        let _ = s
            .belt()
            .upload_image_subresources(&img, ImageSubresources::level(level), &data, FINAL)
            .unwrap();
    }
    let _ = s.belt().flush().unwrap();
    // One layer at a time (every level of it), in the next batch, without
    // waiting for the first.
    let layer = 1;
    let spans: Vec<_> = (0..7).map(|lv| subresource_span(&img, lv, layer)).collect();
    let bytes: usize = spans.iter().map(|r| r.len()).sum();
    let data = pattern(bytes, 200);
    let mut at = 0;
    for r in &spans {
        model[r.clone()].copy_from_slice(&data[at..at + r.len()]);
        at += r.len();
    }
    let _ = s
        .belt()
        .upload_image_subresources(&img, ImageSubresources::layer(layer), &data, FINAL)
        .unwrap();
    // One subresource, twice in the same batch.
    for seed in [300, 301] {
        let r = subresource_span(&img, 2, 2);
        let data = pattern(r.len(), seed);
        model[r].copy_from_slice(&data);
        let _ = s
            .belt()
            .upload_image_subresources(
                &img,
                ImageSubresources {
                    base_mip_level: 2,
                    level_count: 1,
                    base_array_layer: 2,
                    layer_count: 1,
                },
                &data,
                FINAL,
            )
            .unwrap();
    }
    s.belt().finish().unwrap();
    assert!(s.read_image(&img) == model, "every mip and layer");
    // SAFETY: waited.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

#[test]
fn a_partial_update_after_the_engine_used_the_image() {
    let mut s = Setup::new(staged(MIB));
    let img = texture(
        &s,
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 128, 64, 8),
    );
    let len = whole_len(&img);
    let mut model = pattern(len, 7);
    let t = s.belt().upload_image(&img, &model, FINAL).unwrap();
    s.belt().wait(t).unwrap();
    // The engine reads the image in its final layout (a copy out of
    // TRANSFER_SRC_OPTIMAL), then updates mip 1 without waiting for that.
    assert!(s.engine_read_image(&img, 4) == model);
    let r = subresource_span(&img, 1, 0);
    let data = pattern(r.len(), 8);
    model[r].copy_from_slice(&data);
    let t = s
        .belt()
        .upload_image_subresources(&img, ImageSubresources::level(1), &data, FINAL)
        .unwrap();
    s.belt().wait(t).unwrap();
    assert!(s.read_image(&img) == model);
    // The engine moved the image to another layout itself and says so;
    // the next partial update transitions from there.
    s.engine_transition(&img, FINAL, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL);
    img.layouts().set_layout(
        ImageSubresources::all(),
        vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
    );
    let r = subresource_span(&img, 0, 0);
    let data = pattern(r.len(), 9);
    model[r].copy_from_slice(&data);
    let t = s
        .belt()
        .upload_image_subresources(&img, ImageSubresources::level(0), &data, FINAL)
        .unwrap();
    s.belt().wait(t).unwrap();
    // Mip 0 went back to FINAL; the others are still SHADER_READ_ONLY.
    s.engine_transition_levels(&img, 1..8, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL, FINAL);
    img.layouts().set_layout(ImageSubresources::all(), FINAL);
    assert!(s.read_image(&img) == model);
    // SAFETY: waited.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}
