//! Staging both ways on lavapipe, under validation with synchronization
//! validation: readback of buffers and images (streamed, and as tickets),
//! uploads written in place by a writer (from several threads), fed by a
//! reader or by positioned reads of a file, and their failure paths.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use ash::vk;
use common::{layout_of, pattern, Setup, MIB};
use mem_core::MemoryUsage;
use mem_resources::{BufferDesc, ImageDesc};
use mem_staging::plan::{expected_data_size, expected_subresources_data_size};
use mem_staging::{ImageSubresources, StagingBeltConfig, StagingError};

fn staged(ring: u64) -> StagingBeltConfig {
    StagingBeltConfig {
        force_staging: true,
        ..StagingBeltConfig::with_ring_size(ring)
    }
}

#[test]
fn buffers_read_back_streamed_through_a_small_ring() {
    let mut s = Setup::new(staged(MIB));
    for (i, size) in [1u64, 4097, 3 * MIB + 5].into_iter().enumerate() {
        let buf = s.device_buffer(size);
        let data = pattern(size as usize, i as u64);
        let _ = s.belt().upload_buffer(&buf, 0, &data).unwrap();
        // No flush: the readback is ordered after the upload on the queue.
        let mut back = vec![0u8; size as usize];
        s.belt().read_buffer(&buf, 0, &mut back).unwrap();
        assert!(back == data, "size {size}");
        if size > 10 {
            let mut part = vec![0u8; (size - 7) as usize];
            s.belt().read_buffer(&buf, 3, &mut part).unwrap();
            assert!(part[..] == data[3..size as usize - 4]);
        }
        s.destroy(buf);
    }
    let st = s.belt().stats();
    assert!(st.bytes_read_back >= 2 * (3 * MIB));
    assert!(st.ring_high_water <= MIB);
    s.finish();
}

#[test]
fn downloads_complete_with_their_ticket_and_give_the_ring_back() {
    let mut s = Setup::new(staged(256 * 1024));
    let buf = s.device_buffer(48 * 1024);
    let data = pattern(48 * 1024, 7);
    let _ = s.belt().upload_buffer(&buf, 0, &data).unwrap();
    let a = s.belt().download_buffer(&buf, 0, 16 * 1024).unwrap();
    let b = s
        .belt()
        .download_buffer(&buf, 16 * 1024, 32 * 1024)
        .unwrap();
    assert_eq!(a.ticket(), b.ticket(), "one batch");
    let t = s.belt().flush().unwrap();
    s.belt().wait(t).unwrap();
    // A slice of the wrong length is refused and the download stays
    // readable.
    let mut short = vec![0u8; 32 * 1024 - 1];
    let e = s.belt().read_download(&b, &mut short).unwrap_err();
    assert!(matches!(e, StagingError::OutOfRange { .. }), "{e}");
    let mut out = vec![0u8; 32 * 1024];
    s.belt().read_download(&b, &mut out).unwrap();
    assert!(out[..] == data[16 * 1024..]);
    let mut out = vec![0u8; 16 * 1024];
    s.belt().read_download(&a, &mut out).unwrap();
    assert!(out[..] == data[..16 * 1024]);
    drop((a, b));
    // Unread downloads hold the ring: past it, a typed error; dropping them
    // gives the space back.
    let mut held = Vec::new();
    let e = loop {
        match s.belt().download_buffer(&buf, 0, 48 * 1024) {
            Ok(d) => {
                held.push(d);
                let _ = s.belt().flush().unwrap();
            }
            Err(e) => break e,
        }
        assert!(held.len() < 16, "the ring must fill");
    };
    assert!(matches!(e, StagingError::RingHeldByReadbacks { .. }), "{e}");
    let last = held.pop().unwrap();
    drop(held);
    let mut out = vec![0u8; 48 * 1024];
    s.belt().read_download(&last, &mut out).unwrap();
    assert!(out == data);
    drop(last);
    let big = pattern(200 * 1024, 8);
    let big_buf = s.device_buffer(200 * 1024);
    let t = s.belt().upload_buffer(&big_buf, 0, &big).unwrap();
    s.belt().wait(t).unwrap();
    let mut back = vec![0u8; 200 * 1024];
    s.belt().read_buffer(&big_buf, 0, &mut back).unwrap();
    assert!(back == big);
    // Bad input.
    let e = s
        .belt()
        .download_buffer(&big_buf, 0, 100 * 1024)
        .unwrap_err();
    assert!(matches!(e, StagingError::DownloadTooLarge { .. }), "{e}");
    let e = s
        .belt()
        .download_buffer(&buf, 40 * 1024, 16 * 1024)
        .unwrap_err();
    assert!(matches!(e, StagingError::OutOfRange { .. }), "{e}");
    let no_src = s
        .res()
        .create_buffer(&BufferDesc::new(
            64,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUsage::GpuOnly,
        ))
        .unwrap();
    let e = s.belt().read_buffer(&no_src, 0, &mut [0; 64]).unwrap_err();
    assert!(matches!(e, StagingError::MissingTransferSrc { .. }), "{e}");
    s.destroy(no_src);
    s.destroy(buf);
    s.destroy(big_buf);
    s.finish();
}

#[test]
fn images_read_back_whole_or_by_level_and_layer() {
    let mut s = Setup::new(staged(MIB));
    let usage = vk::ImageUsageFlags::TRANSFER_DST
        | vk::ImageUsageFlags::TRANSFER_SRC
        | vk::ImageUsageFlags::SAMPLED;
    for (i, desc) in [
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 300, 200, 9),
        ImageDesc::texture_2d_array(vk::Format::R8G8B8A8_UNORM, 64, 32, 4, 7),
        ImageDesc::texture_3d(vk::Format::R8G8B8A8_UNORM, 40, 30, 20, 6),
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 1024, 512, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let img = s.res().create_image(&desc.usage(usage)).unwrap();
        let layout = layout_of(img.desc());
        let data = pattern(expected_data_size(&layout).unwrap() as usize, i as u64);
        let _ = s
            .belt()
            .upload_image(&img, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
            .unwrap();
        let mut back = vec![0u8; data.len()];
        s.belt()
            .read_image(&img, ImageSubresources::all(), &mut back)
            .unwrap();
        assert!(back == data, "case {i}");
        assert_eq!(
            img.layouts().layout(0, 0),
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            "back in its layout"
        );
        // The last level of every layer alone.
        let last = img.desc().mip_levels - 1;
        let len =
            expected_subresources_data_size(&layout, last..last + 1, 0..img.desc().array_layers)
                .unwrap();
        let mut part = vec![0u8; len as usize];
        s.belt()
            .read_image(&img, ImageSubresources::level(last), &mut part)
            .unwrap();
        assert!(
            part[..] == data[data.len() - len as usize..],
            "case {i} last level"
        );
        // SAFETY: read_image waited for its copies.
        unsafe { s.res().destroy_image(img) }.unwrap();
    }
    // Never written: nothing to read.
    let img = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 4, 4, 1).usage(usage))
        .unwrap();
    let e = s
        .belt()
        .read_image(&img, ImageSubresources::all(), &mut [0; 64])
        .unwrap_err();
    assert!(
        matches!(
            e,
            StagingError::NothingToRead {
                level: 0,
                layer: 0,
                ..
            }
        ),
        "{e}"
    );
    // SAFETY: never used.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

/// Image downloads: whole images with odd extents, mips and layers, and one
/// level of one layer, read after their tickets, byte-exact, the images
/// back in their layouts; an upload still in the open batch is read after
/// it lands; bad input gets its typed error; an unread download dropped
/// gives its ring space back.
#[test]
fn images_download_as_tickets() {
    let mut s = Setup::new(staged(MIB));
    let usage = vk::ImageUsageFlags::TRANSFER_DST
        | vk::ImageUsageFlags::TRANSFER_SRC
        | vk::ImageUsageFlags::SAMPLED;
    for (i, desc) in [
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 37, 19, 6),
        ImageDesc::texture_2d_array(vk::Format::R8_UNORM, 33, 7, 3, 4),
        ImageDesc::texture_3d(vk::Format::R8G8B8A8_UNORM, 9, 5, 3, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let img = s.res().create_image(&desc.usage(usage)).unwrap();
        let layout = layout_of(img.desc());
        let data = pattern(expected_data_size(&layout).unwrap() as usize, 20 + i as u64);
        // No flush: the download waits for the upload in the same batch.
        let up = s
            .belt()
            .upload_image(&img, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
            .unwrap();
        let d = s
            .belt()
            .download_image(&img, ImageSubresources::all())
            .unwrap();
        assert_eq!(d.len(), data.len() as u64, "case {i}");
        assert!(d.ticket() > up, "case {i}: after the upload");
        let mut back = vec![0u8; data.len()];
        s.belt().read_download(&d, &mut back).unwrap();
        drop(d);
        assert!(back == data, "case {i}");
        // The download put the image back in its layout: an update of level
        // 0 transitions from it (validation checks the old layout).
        let level0 = expected_subresources_data_size(&layout, 0..1, 0..img.desc().array_layers)
            .unwrap() as usize;
        let data: Vec<u8> = pattern(level0, 50 + i as u64)
            .into_iter()
            .chain(data[level0..].iter().copied())
            .collect();
        let _ = s
            .belt()
            .upload_image_subresources(
                &img,
                ImageSubresources::level(0),
                &data[..level0],
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            )
            .unwrap();
        // One level of the last layer.
        let (level, layer) = (1, img.desc().array_layers - 1);
        let part = ImageSubresources {
            base_mip_level: level,
            level_count: 1,
            base_array_layer: layer,
            layer_count: 1,
        };
        let d = s.belt().download_image(&img, part).unwrap();
        let before_level =
            expected_subresources_data_size(&layout, 0..level, 0..img.desc().array_layers).unwrap();
        let before_layer = if layer == 0 {
            0
        } else {
            expected_subresources_data_size(&layout, level..level + 1, 0..layer).unwrap()
        };
        let start = before_level + before_layer;
        let mut out = vec![0u8; d.len() as usize];
        let t = s.belt().flush().unwrap();
        s.belt().wait(t).unwrap();
        s.belt().read_download(&d, &mut out).unwrap();
        drop(d);
        assert!(
            out[..] == data[start as usize..start as usize + out.len()],
            "case {i}: level {level} of layer {layer}"
        );
        // SAFETY: every download of it was waited for.
        unsafe { s.res().destroy_image(img) }.unwrap();
    }
    // Too large for a chunk (256 KiB here): a typed error.
    let big = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 512, 512, 1).usage(usage))
        .unwrap();
    let data = pattern(512 * 512 * 4, 30);
    let _ = s
        .belt()
        .upload_image(&big, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
        .unwrap();
    let e = s
        .belt()
        .download_image(&big, ImageSubresources::all())
        .unwrap_err();
    assert!(matches!(e, StagingError::DownloadTooLarge { .. }), "{e}");
    let mut back = vec![0u8; data.len()];
    s.belt()
        .read_image(&big, ImageSubresources::all(), &mut back)
        .unwrap();
    assert!(back == data, "streamed instead");
    // Dropped unread: its ring space comes back (200 downloads of 16 KiB
    // pass through the 1 MiB ring three times over).
    let small = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 1).usage(usage))
        .unwrap();
    let _ = s
        .belt()
        .upload_image(
            &small,
            &pattern(64 * 64 * 4, 31),
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
        )
        .unwrap();
    for _ in 0..200 {
        let d = s
            .belt()
            .download_image(&small, ImageSubresources::all())
            .unwrap();
        drop(d);
        let _ = s.belt().flush().unwrap();
    }
    // Bad input: no TRANSFER_SRC, out of range, never written.
    let no_src = s
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 8, 8, 1)
                .usage(vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::SAMPLED),
        )
        .unwrap();
    let e = s
        .belt()
        .download_image(&no_src, ImageSubresources::all())
        .unwrap_err();
    assert!(matches!(e, StagingError::MissingTransferSrc { .. }), "{e}");
    let e = s
        .belt()
        .download_image(&small, ImageSubresources::level(3))
        .unwrap_err();
    assert!(
        matches!(e, StagingError::SubresourcesOutOfRange { .. }),
        "{e}"
    );
    let unwritten = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 8, 8, 1).usage(usage))
        .unwrap();
    let e = s
        .belt()
        .download_image(&unwritten, ImageSubresources::all())
        .unwrap_err();
    assert!(matches!(e, StagingError::NothingToRead { .. }), "{e}");
    s.belt().finish().unwrap();
    for img in [big, small, no_src, unwritten] {
        // SAFETY: the belt finished; nothing else uses them.
        unsafe { s.res().destroy_image(img) }.unwrap();
    }
    s.finish();
}

/// A 12-byte texel format: staging offsets are multiples of 12, not a
/// power of two. Uploads, streamed reads and downloads place every piece at
/// such an offset (validation checks each copy's `bufferOffset`) and the
/// bytes come back exact.
#[test]
fn twelve_byte_texels_round_trip() {
    let mut s = Setup::new(staged(MIB));
    let usage = vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::TRANSFER_SRC;
    let img = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R32G32B32_SFLOAT, 131, 77, 8).usage(usage))
        .unwrap();
    let layout = layout_of(img.desc());
    let data = pattern(expected_data_size(&layout).unwrap() as usize, 40);
    // A 5-byte upload first leaves the ring's head off every multiple of 4.
    let odd = s.device_buffer(5);
    let _ = s.belt().upload_buffer(&odd, 0, &[1, 2, 3, 4, 5]).unwrap();
    let _ = s
        .belt()
        .upload_image(&img, &data, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap();
    let mut back = vec![0u8; data.len()];
    s.belt()
        .read_image(&img, ImageSubresources::all(), &mut back)
        .unwrap();
    assert!(back == data, "streamed");
    let _ = s.belt().upload_buffer(&odd, 0, &[6, 7, 8, 9, 10]).unwrap();
    let d = s
        .belt()
        .download_image(&img, ImageSubresources::all())
        .unwrap();
    let mut again = vec![0u8; data.len()];
    s.belt().read_download(&d, &mut again).unwrap();
    drop(d);
    assert!(again == data, "downloaded");
    s.belt().finish().unwrap();
    s.destroy(odd);
    // SAFETY: the belt finished.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

#[test]
fn uploads_written_in_place_from_several_threads() {
    let mut s = Setup::new(StagingBeltConfig {
        parallel_copy_threshold: 256 * 1024,
        copy_threads: 4,
        ..staged(MIB)
    });
    let len = 3 * MIB + 123;
    let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let buf = s.device_buffer(len);
    let calls = AtomicUsize::new(0);
    let t = s
        .belt()
        .upload_buffer_with(&buf, 0, len, |at, bytes| {
            calls.fetch_add(1, Ordering::Relaxed);
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = ((at + i as u64) % 251) as u8;
            }
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
    s.belt().wait(t).unwrap();
    assert!(
        calls.load(Ordering::Relaxed) > 4,
        "pieces split over threads"
    );
    let mut back = vec![0u8; len as usize];
    s.belt().read_buffer(&buf, 0, &mut back).unwrap();
    assert!(back == expected);
    // A failing writer: a typed error, the failed piece's ring space back,
    // and the belt keeps working.
    let before = s.belt().stats().ring_used;
    let e = s
        .belt()
        .upload_buffer_with(&buf, 0, 64 * 1024, |_, _| {
            Err(std::io::Error::other("truncated texture"))
        })
        .unwrap_err();
    assert!(
        matches!(&e, StagingError::Source(inner) if inner.to_string() == "truncated texture"),
        "{e}"
    );
    assert_eq!(s.belt().stats().ring_used, before);
    // A writer failing in the middle of a streamed upload.
    let e = s
        .belt()
        .upload_buffer_with(&buf, 0, len, |at, _| {
            if at >= MIB {
                Err(std::io::Error::other("decoder failed"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(e, StagingError::Source(_)), "{e}");
    let data = pattern(4096, 3);
    let t = s.belt().upload_buffer(&buf, 0, &data).unwrap();
    s.belt().wait(t).unwrap();
    let mut back = vec![0u8; 4096];
    s.belt().read_buffer(&buf, 0, &mut back).unwrap();
    assert!(back == data);
    s.destroy(buf);
    s.finish();
}

#[test]
fn uploads_fed_by_a_reader_and_by_a_file() {
    let mut s = Setup::new(staged(MIB));
    let len = 2 * MIB + 17;
    let data = pattern(len as usize, 11);
    let buf = s.device_buffer(len);
    let t = s
        .belt()
        .upload_buffer_from(&buf, 0, len, &mut std::io::Cursor::new(&data))
        .unwrap();
    s.belt().wait(t).unwrap();
    let mut back = vec![0u8; len as usize];
    s.belt().read_buffer(&buf, 0, &mut back).unwrap();
    assert!(back == data);
    // A reader that ends early.
    let e = s
        .belt()
        .upload_buffer_from(&buf, 0, len, &mut std::io::Cursor::new(&data[..1000]))
        .unwrap_err();
    assert!(matches!(e, StagingError::Source(_)), "{e}");
    #[cfg(unix)]
    {
        let path = std::env::temp_dir().join(format!("gpumem-file-upload-{}", std::process::id()));
        let file_data = pattern(len as usize + 100, 12);
        std::fs::write(&path, &file_data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let t = s
            .belt()
            .upload_buffer_from_file(&buf, 0, &file, 100, len)
            .unwrap();
        s.belt().wait(t).unwrap();
        s.belt().read_buffer(&buf, 0, &mut back).unwrap();
        assert!(back[..] == file_data[100..]);
        // Past the file's end.
        let e = s
            .belt()
            .upload_buffer_from_file(&buf, 0, &file, 200, len)
            .unwrap_err();
        assert!(matches!(e, StagingError::Source(_)), "{e}");
        // Earlier pieces of the failed upload are on the GPU: wait for them
        // before the buffer goes.
        s.belt().finish().unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    s.destroy(buf);
    s.finish();
}

#[test]
fn writers_fill_host_visible_destinations_directly() {
    let mut s = Setup::new(StagingBeltConfig::with_ring_size(MIB));
    let buf = s.buffer_in(100_000, MemoryUsage::Upload);
    assert!(buf.is_host_visible());
    let t = s
        .belt()
        .upload_buffer_with(&buf, 0, 100_000, |at, bytes| {
            bytes
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = ((at as usize + i) % 7) as u8);
            Ok::<(), std::io::Error>(())
        })
        .unwrap();
    assert_eq!(t.value(), 0, "direct: complete at once");
    assert_eq!(s.belt().stats().bytes_direct, 100_000);
    let mut back = vec![0u8; 100_000];
    s.belt().read_buffer(&buf, 0, &mut back).unwrap();
    assert!(back.iter().enumerate().all(|(i, &b)| b == (i % 7) as u8));
    s.destroy(buf);
    s.finish();
}

#[test]
fn images_written_in_place_level_by_level() {
    let mut s = Setup::new(StagingBeltConfig {
        parallel_copy_threshold: 64 * 1024,
        copy_threads: 4,
        ..staged(MIB)
    });
    let usage = vk::ImageUsageFlags::TRANSFER_DST
        | vk::ImageUsageFlags::TRANSFER_SRC
        | vk::ImageUsageFlags::SAMPLED;
    let img = s
        .res()
        .create_image(
            &ImageDesc::texture_2d_array(vk::Format::R8G8B8A8_UNORM, 512, 256, 2, 10).usage(usage),
        )
        .unwrap();
    let layout = layout_of(img.desc());
    let len = expected_data_size(&layout).unwrap();
    let byte = |at: u64| (at.wrapping_mul(2_654_435_761) >> 7) as u8;
    let t = s
        .belt()
        .upload_image_with(
            &img,
            ImageSubresources::all(),
            len,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            |at, bytes| {
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = byte(at + i as u64);
                }
                Ok::<(), std::io::Error>(())
            },
        )
        .unwrap();
    s.belt().wait(t).unwrap();
    let expected: Vec<u8> = (0..len).map(byte).collect();
    assert!(s.read_image(&img) == expected);
    // One level, written in place; then a writer that fails part way.
    let level_len = expected_subresources_data_size(&layout, 1..2, 0..2).unwrap();
    let t = s
        .belt()
        .upload_image_with(
            &img,
            ImageSubresources::level(1),
            level_len,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            |_, bytes| {
                bytes.fill(0xAB);
                Ok::<(), std::io::Error>(())
            },
        )
        .unwrap();
    s.belt().wait(t).unwrap();
    let mut level = vec![0u8; level_len as usize];
    s.belt()
        .read_image(&img, ImageSubresources::level(1), &mut level)
        .unwrap();
    assert!(level.iter().all(|&b| b == 0xAB));
    let e = s
        .belt()
        .upload_image_with(
            &img,
            ImageSubresources::all(),
            len,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
            |at, _| {
                if at > len / 2 {
                    Err(std::io::Error::other("transcoder failed"))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
    assert!(matches!(e, StagingError::Source(_)), "{e}");
    // The image still ends in its final layout: reading it back passes
    // validation.
    let mut back = vec![0u8; len as usize];
    s.belt()
        .read_image(&img, ImageSubresources::all(), &mut back)
        .unwrap();
    // SAFETY: read_image waited.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

/// A streamed image readback that fails after its transition to
/// `TRANSFER_SRC_OPTIMAL` (here: the ring is held by unread downloads)
/// still transitions the image back, so the layouts the image records stay
/// true: the next readback and update of it pass validation.
#[test]
fn a_failed_image_read_leaves_the_tracked_layouts_true() {
    let mut s = Setup::new(staged(MIB));
    let usage = vk::ImageUsageFlags::TRANSFER_DST
        | vk::ImageUsageFlags::TRANSFER_SRC
        | vk::ImageUsageFlags::SAMPLED;
    let img = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 1).usage(usage))
        .unwrap();
    let data = pattern(
        expected_data_size(&layout_of(img.desc())).unwrap() as usize,
        1,
    );
    let _ = s
        .belt()
        .upload_image(&img, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
        .unwrap();
    let buf = s.device_buffer(256 * 1024);
    let _ = s
        .belt()
        .upload_buffer(&buf, 0, &pattern(256 * 1024, 2))
        .unwrap();
    s.belt().finish().unwrap();
    let held: Vec<_> = (0..4)
        .map(|_| s.belt().download_buffer(&buf, 0, 256 * 1024).unwrap())
        .collect();
    s.belt().finish().unwrap();
    let mut out = vec![0u8; data.len()];
    let e = s
        .belt()
        .read_image(&img, ImageSubresources::all(), &mut out)
        .unwrap_err();
    assert!(matches!(e, StagingError::RingHeldByReadbacks { .. }), "{e}");
    assert_eq!(
        img.layouts().layout(0, 0),
        vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL
    );
    drop(held);
    let d = s
        .belt()
        .download_image(&img, ImageSubresources::all())
        .unwrap();
    s.belt().read_download(&d, &mut out).unwrap();
    assert!(out == data);
    drop(d);
    let _ = s
        .belt()
        .upload_image(&img, &data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
        .unwrap();
    s.belt().finish().unwrap();
    s.destroy(buf);
    // SAFETY: the belt finished.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

/// A linear image the host wrote in `PREINITIALIZED` reads back through
/// the ring; a transition may not go back to `PREINITIALIZED`, so it ends
/// in `GENERAL` (which keeps the texels) and the tracked layout says so.
#[test]
fn preinitialized_images_read_back_and_end_in_general() {
    let mut s = Setup::new(staged(MIB));
    let desc = ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 16, 16, 1)
        .usage(vk::ImageUsageFlags::TRANSFER_SRC)
        .tiling(vk::ImageTiling::LINEAR)
        .initial_layout(vk::ImageLayout::PREINITIALIZED)
        .memory(MemoryUsage::Upload);
    let mut img = s.res().create_image(&desc).unwrap();
    s.res().write_image(&mut img, 0, &[7u8; 64]).unwrap();
    img.layouts()
        .set_layout(ImageSubresources::all(), vk::ImageLayout::PREINITIALIZED);
    let d = s
        .belt()
        .download_image(&img, ImageSubresources::all())
        .unwrap();
    let mut out = vec![0u8; d.len() as usize];
    s.belt().read_download(&d, &mut out).unwrap();
    drop(d);
    assert_eq!(img.layouts().layout(0, 0), vk::ImageLayout::GENERAL);
    // A second readback starts from the layout the first one left.
    let mut again = vec![0u8; out.len()];
    s.belt()
        .read_image(&img, ImageSubresources::all(), &mut again)
        .unwrap();
    assert!(again == out);
    s.belt().finish().unwrap();
    // SAFETY: the belt finished.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}

/// On one queue family no ownership moves: handing an image to the belt
/// gives no barriers and leaves its record as it was; out of range is
/// refused.
#[test]
fn handing_an_image_over_on_one_family_needs_nothing() {
    let mut s = Setup::new(staged(MIB));
    let usage = vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::TRANSFER_SRC;
    let img = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 8, 8, 1).usage(usage))
        .unwrap();
    let data = pattern(256, 3);
    let _ = s
        .belt()
        .upload_image(&img, &data, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap();
    let before = img.layouts().state(0, 0);
    let release = s
        .belt()
        .release_image_to_belt(&img, ImageSubresources::all())
        .unwrap();
    assert!(release.is_empty());
    assert_eq!(img.layouts().state(0, 0), before);
    s.belt()
        .return_image_to_engine(&img, ImageSubresources::all())
        .unwrap();
    assert_eq!(img.layouts().state(0, 0), before);
    let e = s
        .belt()
        .release_image_to_belt(&img, ImageSubresources::level(3))
        .unwrap_err();
    assert!(
        matches!(e, StagingError::SubresourcesOutOfRange { .. }),
        "{e}"
    );
    let blank = s
        .res()
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 8, 8, 1).usage(usage))
        .unwrap();
    let e = s
        .belt()
        .release_image_to_belt(&blank, ImageSubresources::all())
        .unwrap_err();
    assert!(matches!(e, StagingError::NothingToRead { .. }), "{e}");
    // SAFETY: never used by the GPU.
    unsafe { s.res().destroy_image(blank) }.unwrap();
    let mut out = vec![0u8; 256];
    s.belt()
        .read_image(&img, ImageSubresources::all(), &mut out)
        .unwrap();
    assert!(out == data);
    // SAFETY: read_image waited for the image's last use.
    unsafe { s.res().destroy_image(img) }.unwrap();
    s.finish();
}
