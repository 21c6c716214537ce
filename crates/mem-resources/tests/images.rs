//! Images on lavapipe under validation (with synchronization validation):
//! every kind with full mip chains in several formats, used by the GPU
//! after creation; batches; linear host-visible images; bad input.

mod common;

use ash::vk;
use common::Gpu;
use mem_core::MemoryUsage;
use mem_resources::{
    full_mip_chain, FaultPoint, Image, ImageDesc, ImageKind, ResourceError, ResourceKind,
    ResourceManager,
};

/// Transitions the whole image to TRANSFER_DST and clears it when the
/// format allows, so the validation layer sees the image used with its
/// memory bound.
fn touch_on_gpu(gpu: &Gpu, images: &[&Image]) {
    let d = gpu.ctx.device();
    let (family, _) = gpu.ctx.graphics_queue();
    gpu.ctx.one_shot(family, |cmd| {
        for img in images {
            let range = img.full_subresource_range();
            let to_dst = vk::ImageMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::empty())
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .old_layout(vk::ImageLayout::UNDEFINED)
                .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(img.handle())
                .subresource_range(range);
            // SAFETY: the image is live with memory bound; the barrier
            // covers every subresource.
            unsafe {
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[to_dst],
                )
            };
            let depth_stencil = vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL;
            if range.aspect_mask.intersects(depth_stencil) {
                let value = vk::ClearDepthStencilValue {
                    depth: 1.0,
                    stencil: 0,
                };
                // SAFETY: the image is in TRANSFER_DST_OPTIMAL, has TRANSFER_DST usage.
                unsafe {
                    d.cmd_clear_depth_stencil_image(
                        cmd,
                        img.handle(),
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        &value,
                        &[range],
                    )
                };
            } else if !is_block_compressed(img.format()) {
                let value = vk::ClearColorValue {
                    float32: [0.25, 0.5, 0.75, 1.0],
                };
                // SAFETY: as above.
                unsafe {
                    d.cmd_clear_color_image(
                        cmd,
                        img.handle(),
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        &value,
                        &[range],
                    )
                };
            }
        }
    });
}

fn is_block_compressed(f: vk::Format) -> bool {
    (vk::Format::BC1_RGB_UNORM_BLOCK.as_raw()..=vk::Format::ASTC_12X12_SRGB_BLOCK.as_raw())
        .contains(&f.as_raw())
}

/// Whether the device can sample `format` with optimal tiling; prints a note
/// when it cannot (the caller then skips the format).
fn supported(rm: &ResourceManager, format: vk::Format) -> bool {
    let f = rm.format_features(format, vk::ImageTiling::OPTIMAL);
    let ok = f.contains(vk::FormatFeatureFlags::SAMPLED_IMAGE);
    if !ok {
        eprintln!(
            "note: {format:?} has no optimal SAMPLED_IMAGE support on this device ({f:?}); skipped"
        );
    }
    ok
}

fn color_descs(format: vk::Format) -> Vec<ImageDesc> {
    vec![
        ImageDesc::texture_1d(format, 256, 1)
            .full_mip_chain()
            .name(format!("{format:?} 1d")),
        ImageDesc::texture_1d(format, 100, 1)
            .full_mip_chain()
            .array_layers(4)
            .name(format!("{format:?} 1d array")),
        ImageDesc::texture_2d(format, 300, 200, 1)
            .full_mip_chain()
            .name(format!("{format:?} 2d npot")),
        ImageDesc::texture_2d(format, 1024, 512, 1)
            .full_mip_chain()
            .name(format!("{format:?} 2d")),
        ImageDesc::texture_2d_array(format, 64, 64, 8, 1)
            .full_mip_chain()
            .name(format!("{format:?} 2d array")),
        ImageDesc::texture_3d(format, 32, 16, 8, 1)
            .full_mip_chain()
            .name(format!("{format:?} 3d")),
        ImageDesc::cube(format, 64, 1)
            .full_mip_chain()
            .name(format!("{format:?} cube")),
        ImageDesc::cube(format, 32, 1)
            .full_mip_chain()
            .array_layers(12)
            .name(format!("{format:?} cube array")),
    ]
}

fn depth_descs(format: vk::Format) -> Vec<ImageDesc> {
    let usage = vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT
        | vk::ImageUsageFlags::SAMPLED
        | vk::ImageUsageFlags::TRANSFER_DST;
    vec![
        ImageDesc::texture_2d(format, 512, 512, 1)
            .full_mip_chain()
            .usage(usage)
            .name(format!("{format:?} depth")),
        ImageDesc::texture_2d_array(format, 256, 256, 6, 1)
            .full_mip_chain()
            .usage(usage)
            .name(format!("{format:?} depth array")),
        ImageDesc::cube(format, 128, 1)
            .full_mip_chain()
            .usage(usage)
            .name(format!("{format:?} depth cube")),
    ]
}

#[test]
fn every_kind_with_full_mip_chains_in_several_formats() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let mut created = 0;
    let mut skipped = Vec::new();
    let formats = [
        vk::Format::R8G8B8A8_UNORM,
        vk::Format::R16G16B16A16_SFLOAT,
        vk::Format::BC1_RGBA_UNORM_BLOCK,
        vk::Format::BC7_UNORM_BLOCK,
        vk::Format::D32_SFLOAT,
        vk::Format::D24_UNORM_S8_UINT,
    ];
    for format in formats {
        if !supported(rm, format) {
            assert!(
                format != vk::Format::R8G8B8A8_UNORM && format != vk::Format::D32_SFLOAT,
                "{format:?} is required by the spec"
            );
            continue;
        }
        let descs = if mem_resources::format_aspect(format) == vk::ImageAspectFlags::COLOR {
            color_descs(format)
        } else {
            depth_descs(format)
        };
        for desc in descs {
            match rm.create_image(&desc) {
                Ok(img) => {
                    assert_eq!(img.desc(), &desc);
                    assert_ne!(img.handle(), vk::Image::null());
                    let range = img.full_subresource_range();
                    assert_eq!(range.level_count, full_mip_chain(desc.extent));
                    assert_eq!(range.layer_count, desc.array_layers);
                    if desc.kind == ImageKind::Cube {
                        assert!(desc
                            .create_flags()
                            .contains(vk::ImageCreateFlags::CUBE_COMPATIBLE));
                    }
                    assert!(img.memory_size() > 0);
                    touch_on_gpu(&gpu, &[&img]);
                    // SAFETY: the one_shot waited for the GPU.
                    unsafe { rm.destroy_image(img) }.unwrap();
                    created += 1;
                }
                Err(ResourceError::FormatNotSupported { .. })
                    if format != vk::Format::R8G8B8A8_UNORM =>
                {
                    // Optional combinations (e.g. BC 3D, depth cube): the
                    // typed error is the right answer; note it.
                    eprintln!(
                        "note: {:?} not supported: skipped",
                        desc.name.as_deref().unwrap_or("")
                    );
                    skipped.push(desc.name.clone().unwrap_or_default());
                }
                Err(e) => panic!("{:?}: {e}", desc.name),
            }
        }
    }
    eprintln!("created {created} images, skipped {skipped:?}");
    assert!(
        created >= 8 + 3,
        "every RGBA8 kind and the D32 kinds at least"
    );
    gpu.finish();
}

#[test]
fn image_batch_binds_once_and_is_disjoint() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let f = vk::Format::R8G8B8A8_UNORM;
    let descs = vec![
        ImageDesc::texture_2d(f, 128, 128, 1)
            .full_mip_chain()
            .name("a"),
        ImageDesc::texture_2d(f, 2048, 2048, 1).name("large"),
        ImageDesc::cube(f, 16, 1).full_mip_chain().name("cube"),
        ImageDesc::texture_3d(f, 8, 8, 8, 4).name("volume"),
        ImageDesc::render_target(vk::Format::D32_SFLOAT, 64, 64)
            .usage_add(vk::ImageUsageFlags::TRANSFER_DST)
            .name("depth"),
        ImageDesc::texture_2d(f, 16, 16, 1)
            .tiling(vk::ImageTiling::LINEAR)
            .usage(vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::TRANSFER_DST)
            .memory(MemoryUsage::Upload)
            .name("linear"),
    ];
    let binds = rm.fault_calls(FaultPoint::BindImageMemory);
    assert!(
        rm.create_images(&[]).unwrap().is_empty(),
        "an empty batch is no Vulkan call"
    );
    assert_eq!(rm.fault_calls(FaultPoint::BindImageMemory), binds);
    let images = rm.create_images(&descs).unwrap();
    assert_eq!(rm.fault_calls(FaultPoint::BindImageMemory) - binds, 1);
    let mut ranges: Vec<(u64, u64, u64)> = images
        .iter()
        .map(|i| {
            (
                vk::Handle::as_raw(i.allocation().memory()),
                i.allocation().offset(),
                i.allocation().offset() + i.memory_size(),
            )
        })
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].0 != w[1].0 || w[0].2 <= w[1].1, "overlap {w:?}");
    }
    let report = rm.leak_report();
    assert_eq!(report.len(), 6);
    assert!(report.iter().all(|r| r.kind == ResourceKind::Image));
    assert_eq!(rm.report().live_images, 6);
    touch_on_gpu(&gpu, &images.iter().collect::<Vec<_>>());
    for img in images {
        // SAFETY: the one_shot waited for the GPU.
        unsafe { rm.destroy_image(img) }.unwrap();
    }
    gpu.finish();
}

#[test]
fn linear_host_visible_image_written_by_host_copied_by_gpu() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let (w, h) = (16u32, 8u32);
    let desc = ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, w, h, 1)
        .tiling(vk::ImageTiling::LINEAR)
        .usage(vk::ImageUsageFlags::TRANSFER_SRC)
        .initial_layout(vk::ImageLayout::PREINITIALIZED)
        .memory(MemoryUsage::Upload)
        .name("linear texels");
    let mut img = rm.create_image(&desc).unwrap();
    assert!(img.is_host_visible());
    let layout = rm
        .image_subresource_layout(&img, vk::ImageAspectFlags::COLOR, 0, 0)
        .unwrap();
    let texel = |x: u32, y: u32| [x as u8, y as u8, (x * y) as u8, 0xA5];
    for y in 0..h {
        let row: Vec<u8> = (0..w).flat_map(|x| texel(x, y)).collect();
        rm.write_image(
            &mut img,
            layout.offset + u64::from(y) * layout.row_pitch,
            &row,
        )
        .unwrap();
    }
    let mut first_row = vec![0u8; (w * 4) as usize];
    rm.read_image(&img, layout.offset, &mut first_row).unwrap();
    assert_eq!(&first_row[4..8], &texel(1, 0));

    let out = rm
        .create_buffer(&mem_resources::BufferDesc::readback(u64::from(w * h * 4)))
        .unwrap();
    let d = gpu.ctx.device();
    let (family, _) = gpu.ctx.graphics_queue();
    gpu.ctx.one_shot(family, |cmd| {
        let to_src = vk::ImageMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::HOST_WRITE)
            .dst_access_mask(vk::AccessFlags::TRANSFER_READ)
            .old_layout(vk::ImageLayout::PREINITIALIZED)
            .new_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
            .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .image(img.handle())
            .subresource_range(img.full_subresource_range());
        let to_host = vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ);
        let region = vk::BufferImageCopy::default()
            .image_subresource(vk::ImageSubresourceLayers {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                mip_level: 0,
                base_array_layer: 0,
                layer_count: 1,
            })
            .image_extent(img.extent());
        // SAFETY: live image and buffer with memory bound; barriers order the
        // host writes, the copy and the host read.
        unsafe {
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::HOST,
                vk::PipelineStageFlags::TRANSFER,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[to_src],
            );
            d.cmd_copy_image_to_buffer(
                cmd,
                img.handle(),
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                out.handle(),
                &[region],
            );
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &[to_host],
                &[],
                &[],
            );
        }
    });
    let mut tight = vec![0u8; (w * h * 4) as usize];
    rm.read_buffer(&out, 0, &mut tight).unwrap();
    let expected: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| texel(x, y)))
        .collect();
    assert_eq!(tight, expected, "GPU copy of the host-written texels");

    // Host access errors.
    let optimal = rm
        .create_image(&ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 4, 4, 1))
        .unwrap();
    let mut optimal = optimal;
    assert_eq!(
        rm.write_image(&mut optimal, 0, &[0]).unwrap_err(),
        ResourceError::NotLinear {
            tiling: vk::ImageTiling::OPTIMAL
        }
    );
    assert!(matches!(
        rm.image_subresource_layout(&img, vk::ImageAspectFlags::COLOR, 1, 0),
        Err(ResourceError::SubresourceOutOfRange {
            mip_level: 1,
            array_layer: 0,
            mip_levels: 1,
            array_layers: 1
        })
    ));
    let size = img.memory_size();
    assert_eq!(
        rm.write_image(&mut img, size, &[1]).unwrap_err(),
        ResourceError::OutOfRange {
            offset: size,
            len: 1,
            size
        }
    );
    // SAFETY: the one_shot waited for the GPU.
    unsafe {
        rm.destroy_image(img).unwrap();
        rm.destroy_image(optimal).unwrap();
        rm.destroy_buffer(out).unwrap();
    }
    gpu.finish();
}

#[test]
fn bad_image_descs_are_typed_errors_naming_values() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let f = vk::Format::R8G8B8A8_UNORM;
    let ok = ImageDesc::texture_2d(f, 1024, 512, 1);
    let creates = rm.fault_calls(FaultPoint::CreateImage);
    let err = |d: &ImageDesc| {
        rm.create_image(d)
            .map(|_| ())
            .expect_err("bad desc accepted")
    };
    let has = |e: &ResourceError, parts: &[&str]| {
        let s = e.to_string();
        for p in parts {
            assert!(s.contains(p), "{s:?} does not name {p:?}");
        }
    };

    let e = err(&ok.clone().extent(vk::Extent3D {
        width: 0,
        height: 512,
        depth: 1,
    }));
    assert!(matches!(e, ResourceError::ZeroExtent { .. }));
    has(&e, &["0x512x1"]);
    let e = err(&ok.clone().usage(vk::ImageUsageFlags::empty()));
    assert_eq!(e, ResourceError::EmptyImageUsage);
    let e = err(&ok.clone().mip_levels(12));
    assert!(matches!(
        e,
        ResourceError::InvalidMipLevels {
            mip_levels: 12,
            max: 11,
            ..
        }
    ));
    has(&e, &["12", "1..=11", "1024x512x1"]);
    assert!(matches!(
        err(&ok.clone().mip_levels(0)),
        ResourceError::InvalidMipLevels { mip_levels: 0, .. }
    ));
    assert_eq!(
        err(&ok.clone().array_layers(0)),
        ResourceError::ZeroArrayLayers
    );
    assert_eq!(
        err(&ok.clone().format(vk::Format::UNDEFINED)),
        ResourceError::UndefinedFormat
    );
    let e = err(&ImageDesc::cube(f, 64, 1).extent(vk::Extent3D {
        width: 64,
        height: 32,
        depth: 1,
    }));
    assert_eq!(
        e,
        ResourceError::CubeNotSquare {
            width: 64,
            height: 32
        }
    );
    has(&e, &["64x32"]);
    let e = err(&ImageDesc::cube(f, 64, 1).array_layers(8));
    assert_eq!(e, ResourceError::CubeLayerCount { array_layers: 8 });
    has(&e, &["8"]);
    assert_eq!(
        err(&ImageDesc::texture_3d(f, 4, 4, 4, 1).array_layers(2)),
        ResourceError::LayeredVolume { array_layers: 2 }
    );
    let e = err(&ImageDesc::texture_1d(f, 64, 1).extent(vk::Extent3D {
        width: 64,
        height: 2,
        depth: 1,
    }));
    assert!(matches!(
        e,
        ResourceError::ExtentDoesNotFitKind {
            kind: ImageKind::D1,
            ..
        }
    ));
    has(&e, &["64x2x1", "D1"]);
    let e = err(&ok.clone().initial_layout(vk::ImageLayout::GENERAL));
    assert_eq!(
        e,
        ResourceError::InvalidInitialLayout {
            layout: vk::ImageLayout::GENERAL
        }
    );
    has(&e, &["GENERAL"]);
    let e = err(&ok.clone().flags(vk::ImageCreateFlags::SPARSE_BINDING));
    assert!(matches!(e, ResourceError::UnsupportedCreateFlags { .. }));

    // Rejected by vkGetPhysicalDeviceImageFormatProperties: RGBA8 has no
    // depth/stencil attachment feature.
    let e = err(&ok
        .clone()
        .usage(vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT));
    match &e {
        ResourceError::FormatNotSupported {
            format,
            usage,
            tiling,
            features,
            ..
        } => {
            assert_eq!(*format, f);
            assert_eq!(*usage, vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT);
            assert_eq!(*tiling, vk::ImageTiling::OPTIMAL);
            assert!(!features.contains(vk::FormatFeatureFlags::DEPTH_STENCIL_ATTACHMENT));
        }
        other => panic!("expected FormatNotSupported, got {other}"),
    }
    has(
        &e,
        &["R8G8B8A8_UNORM", "DEPTH_STENCIL_ATTACHMENT", "OPTIMAL"],
    );
    // A block-compressed format as a colour attachment.
    let e = err(
        &ImageDesc::texture_2d(vk::Format::BC1_RGBA_UNORM_BLOCK, 64, 64, 1)
            .usage(vk::ImageUsageFlags::COLOR_ATTACHMENT),
    );
    assert!(
        matches!(
            e,
            ResourceError::FormatNotSupported {
                format: vk::Format::BC1_RGBA_UNORM_BLOCK,
                ..
            }
        ),
        "{e}"
    );

    // Beyond the format's maxima (per vkGetPhysicalDeviceImageFormatProperties).
    let props = rm.image_format_properties(&ok).unwrap();
    let wide = props.max_extent.width + 1;
    let e = err(&ImageDesc::texture_2d(f, wide, 1, 1));
    assert!(matches!(e, ResourceError::ExtentTooLarge { .. }), "{e}");
    has(
        &e,
        &[
            &format!("{wide}x1x1"),
            &format!("{}x", props.max_extent.width),
        ],
    );
    let layers = props.max_array_layers + 1;
    let e = err(&ImageDesc::texture_2d_array(f, 4, 4, layers, 1));
    assert_eq!(
        e,
        ResourceError::TooManyArrayLayers {
            format: f,
            array_layers: layers,
            max: props.max_array_layers
        }
    );
    has(
        &e,
        &[&layers.to_string(), &props.max_array_layers.to_string()],
    );
    let ms = ImageDesc::texture_2d(f, 64, 64, 1)
        .usage(vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::SAMPLED);
    let ms_props = rm.image_format_properties(&ms).unwrap();
    let unsupported = [
        vk::SampleCountFlags::TYPE_64,
        vk::SampleCountFlags::TYPE_32,
        vk::SampleCountFlags::TYPE_16,
    ]
    .into_iter()
    .find(|s| !ms_props.sample_counts.contains(*s));
    if let Some(s) = unsupported {
        let e = err(&ms.clone().samples(s));
        assert!(
            matches!(e, ResourceError::SampleCountNotSupported { samples, .. } if samples == s),
            "{e}"
        );
        has(&e, &[&format!("{s:?}")]);
    }
    let linear = ImageDesc::texture_2d(f, 16, 16, 5)
        .tiling(vk::ImageTiling::LINEAR)
        .usage(vk::ImageUsageFlags::TRANSFER_SRC);
    match rm.image_format_properties(&linear) {
        Ok(p) if p.max_mip_levels < 5 => {
            let e = err(&linear);
            assert_eq!(
                e,
                ResourceError::TooManyMipLevels {
                    format: f,
                    mip_levels: 5,
                    max: p.max_mip_levels
                }
            );
            has(&e, &["5", &p.max_mip_levels.to_string()]);
        }
        other => eprintln!("note: LINEAR RGBA8 allows 5 mips here ({other:?})"),
    }
    // Formats that need a sampler Y'CbCr conversion have maxMipLevels 1 by
    // the spec, whatever the extent.
    let ycbcr = ImageDesc::texture_2d(vk::Format::G8_B8R8_2PLANE_420_UNORM, 64, 64, 2)
        .usage(vk::ImageUsageFlags::SAMPLED);
    match rm.image_format_properties(&ycbcr) {
        Ok(p) => {
            assert_eq!(
                p.max_mip_levels, 1,
                "spec: multi-planar formats have one level"
            );
            let e = err(&ycbcr);
            assert_eq!(
                e,
                ResourceError::TooManyMipLevels {
                    format: ycbcr.format,
                    mip_levels: 2,
                    max: 1
                }
            );
            has(
                &e,
                &["mip_levels 2", "maximum 1", "G8_B8R8_2PLANE_420_UNORM"],
            );
        }
        Err(e) => {
            assert!(matches!(e, ResourceError::FormatNotSupported { .. }), "{e}");
            eprintln!("note: {e}; TooManyMipLevels is covered by the unit tests only");
        }
    }

    // Batches name the index and create nothing.
    let e = rm
        .create_images(&[ok.clone(), ok.clone().mip_levels(99)])
        .unwrap_err();
    assert!(matches!(&e, ResourceError::Batch { index: 1, .. }));
    assert!(matches!(
        e.root(),
        ResourceError::InvalidMipLevels { mip_levels: 99, .. }
    ));
    assert_eq!(
        rm.fault_calls(FaultPoint::CreateImage),
        creates,
        "nothing reached vkCreateImage"
    );
    assert!(rm.leak_report().is_empty());
    gpu.finish();
}
