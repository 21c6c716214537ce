//! `render_frame` on lavapipe under validation (with synchronization
//! validation): upload scenes the simple way (host-visible buffers, one
//! copy per mip level), render 256x256, check the picture is not blank, and
//! end with zero validation messages (leaks included: `ctx.finish()`
//! destroys the device and fails on any message).

use std::collections::HashSet;
use std::path::Path;

use ash::vk;
use mem_core::{
    Allocation, AllocationDesc, Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage,
    ResourceClass,
};
use mem_demo::render::{render_frame, FrameDesc, GpuMesh, GpuTexture, RenderDevice};
use mem_demo::{RenderError, Scene};
use mem_testkit::TestContext;

const SIDE: u32 = 256;

fn allocator(ctx: &TestContext) -> Allocator {
    // SAFETY: the context's handles are valid and outlive the allocator,
    // which every test drops before `ctx.finish()`.
    unsafe {
        Allocator::new(AllocatorCreateInfo {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            memory_budget: false,
            allocation_callbacks: None,
            config: AllocatorConfig::default(),
        })
    }
    .unwrap()
}

/// A scene's GPU objects, uploaded the simple way.
struct Uploaded {
    buffers: Vec<(vk::Buffer, Allocation)>,
    images: Vec<(vk::Image, Allocation)>,
    meshes: Vec<GpuMesh>,
    textures: Vec<GpuTexture>,
}

fn host_buffer(
    ctx: &TestContext,
    alloc: &Allocator,
    data: &[u8],
    usage: vk::BufferUsageFlags,
) -> (vk::Buffer, Allocation) {
    let d = ctx.device();
    let info = vk::BufferCreateInfo::default()
        .size(data.len() as u64)
        .usage(usage)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    // SAFETY: valid create info; the buffer is bound and destroyed below.
    let buffer = unsafe { d.create_buffer(&info, None) }.unwrap();
    // SAFETY: the buffer is valid.
    let reqs = unsafe { d.get_buffer_memory_requirements(buffer) };
    let mut a = alloc
        .allocate(&AllocationDesc::new(reqs, MemoryUsage::Upload).name("test upload"))
        .unwrap();
    alloc.write(&mut a, 0, data).unwrap();
    // SAFETY: compatible memory, not yet bound.
    unsafe { d.bind_buffer_memory(buffer, a.memory(), a.offset()) }.unwrap();
    (buffer, a)
}

fn upload(ctx: &TestContext, alloc: &Allocator, scene: &Scene) -> Uploaded {
    let d = ctx.device();
    let (family, _) = ctx.graphics_queue();
    let mut up = Uploaded {
        buffers: Vec::new(),
        images: Vec::new(),
        meshes: Vec::new(),
        textures: Vec::new(),
    };
    for m in &scene.meshes {
        let vb = host_buffer(
            ctx,
            alloc,
            m.vertex_bytes(),
            vk::BufferUsageFlags::VERTEX_BUFFER,
        );
        let ib = host_buffer(
            ctx,
            alloc,
            m.index_bytes(),
            vk::BufferUsageFlags::INDEX_BUFFER,
        );
        up.meshes.push(GpuMesh {
            vertex_buffer: vb.0,
            index_buffer: ib.0,
            index_count: m.indices.len() as u32,
        });
        up.buffers.extend([vb, ib]);
    }
    let mut staging = Vec::new();
    for t in &scene.textures {
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(t.format)
            .extent(vk::Extent3D {
                width: t.width,
                height: t.height,
                depth: 1,
            })
            .mip_levels(t.mip_levels())
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            .tiling(vk::ImageTiling::OPTIMAL)
            .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST)
            .initial_layout(vk::ImageLayout::UNDEFINED);
        // SAFETY: valid create info.
        let image = unsafe { d.create_image(&info, None) }.unwrap();
        // SAFETY: the image is valid.
        let reqs = unsafe { d.get_image_memory_requirements(image) };
        let a = alloc
            .allocate(
                &AllocationDesc::new(reqs, MemoryUsage::GpuOnly)
                    .class(ResourceClass::Optimal)
                    .name(&t.name),
            )
            .unwrap();
        // SAFETY: compatible memory, not yet bound.
        unsafe { d.bind_image_memory(image, a.memory(), a.offset()) }.unwrap();
        let bytes: Vec<u8> = t.mips.concat();
        let src = host_buffer(ctx, alloc, &bytes, vk::BufferUsageFlags::TRANSFER_SRC);
        let mut offset = 0u64;
        let regions: Vec<vk::BufferImageCopy> = t
            .mips
            .iter()
            .enumerate()
            .map(|(level, data)| {
                let (w, h) = t.mip_extent(level as u32);
                let r = vk::BufferImageCopy::default()
                    .buffer_offset(offset)
                    .image_subresource(vk::ImageSubresourceLayers {
                        aspect_mask: vk::ImageAspectFlags::COLOR,
                        mip_level: level as u32,
                        base_array_layer: 0,
                        layer_count: 1,
                    })
                    .image_extent(vk::Extent3D {
                        width: w,
                        height: h,
                        depth: 1,
                    });
                offset += data.len() as u64;
                r
            })
            .collect();
        let range = vk::ImageSubresourceRange {
            aspect_mask: vk::ImageAspectFlags::COLOR,
            base_mip_level: 0,
            level_count: t.mip_levels(),
            base_array_layer: 0,
            layer_count: 1,
        };
        ctx.one_shot(family, |cmd| {
            let to_dst = vk::ImageMemoryBarrier::default()
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .old_layout(vk::ImageLayout::UNDEFINED)
                .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(image)
                .subresource_range(range);
            let to_read = vk::ImageMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::SHADER_READ)
                .old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                .new_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(image)
                .subresource_range(range);
            // SAFETY: recording into the one-shot command buffer; every
            // handle is valid; the barriers cover the copies.
            unsafe {
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[to_dst],
                );
                d.cmd_copy_buffer_to_image(
                    cmd,
                    src.0,
                    image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &regions,
                );
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::FRAGMENT_SHADER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[to_read],
                );
            }
        });
        staging.push(src);
        up.textures.push(GpuTexture {
            image,
            format: t.format,
            mip_levels: t.mip_levels(),
        });
        up.images.push((image, a));
    }
    // The one-shot submissions were waited on: staging can go.
    for (b, a) in staging {
        // SAFETY: the copies finished (one_shot waits on a fence).
        unsafe { d.destroy_buffer(b, None) };
        alloc.free(a).unwrap();
    }
    up
}

fn destroy(ctx: &TestContext, alloc: &Allocator, up: Uploaded) {
    for (b, a) in up.buffers {
        // SAFETY: the GPU is done: render_frame waited on its fence.
        unsafe { ctx.device().destroy_buffer(b, None) };
        alloc.free(a).unwrap();
    }
    for (i, a) in up.images {
        // SAFETY: as above.
        unsafe { ctx.device().destroy_image(i, None) };
        alloc.free(a).unwrap();
    }
}

fn render(
    ctx: &TestContext,
    alloc: &Allocator,
    up: &Uploaded,
    scene: &Scene,
) -> Result<Vec<u8>, RenderError> {
    let (queue_family, _) = ctx.graphics_queue();
    let queue = ctx.lock_queue(queue_family).unwrap();
    let dev = RenderDevice {
        instance: ctx.instance(),
        physical_device: ctx.physical_device(),
        device: ctx.device(),
        queue: *queue,
        queue_family,
        allocator: alloc,
        allocation_callbacks: None,
    };
    let frame = FrameDesc {
        meshes: &up.meshes,
        textures: &up.textures,
        draws: &scene.draws,
        view_proj: scene.view_proj(1.0),
        width: SIDE,
        height: SIDE,
        clear_color: [0.5, 0.7, 0.9, 1.0],
        wait_semaphores: &[],
        timeout: mem_demo::render::FRAME_TIMEOUT,
    };
    // SAFETY: the context's handles are valid; the queue is locked; every
    // buffer and image was uploaded above, waited for, and left in
    // SHADER_READ_ONLY_OPTIMAL.
    unsafe { render_frame(&dev, &frame) }
}

/// Distinct colours in the middle half of the picture.
fn middle_colours(rgba: &[u8]) -> usize {
    let mut colours = HashSet::new();
    for y in SIDE / 4..3 * SIDE / 4 {
        for x in SIDE / 4..3 * SIDE / 4 {
            let i = ((y * SIDE + x) * 4) as usize;
            colours.insert([rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]]);
        }
    }
    colours.len()
}

fn render_scene(name: &str, scene: &Scene) {
    let ctx = TestContext::new();
    let alloc = allocator(&ctx);
    let up = upload(&ctx, &alloc, scene);
    let rgba = render(&ctx, &alloc, &up, scene).expect("render_frame");
    assert_eq!(rgba.len(), (SIDE * SIDE * 4) as usize);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mem-demo-{name}.png"));
    mem_demo::save_png(&out, SIDE, SIDE, &rgba).unwrap();
    let colours = middle_colours(&rgba);
    eprintln!(
        "{name}: {colours} distinct colours in the middle; picture at {}",
        out.display()
    );
    assert!(
        colours > 16,
        "the frame is blank or flat ({colours} colours): {}",
        out.display()
    );
    assert!(rgba.chunks_exact(4).all(|p| p[3] == 255), "opaque");
    destroy(&ctx, &alloc, up);
    alloc.validate().unwrap();
    assert!(alloc.leak_report().is_empty(), "{:?}", alloc.leak_report());
    drop(alloc);
    ctx.finish();
}

#[test]
fn renders_the_default_scene() {
    render_scene("default-scene", &Scene::generate_default(0.01));
}

#[test]
fn renders_the_test_gltf() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mem-demo-render-gltf");
    let scene = Scene::load_gltf(mem_demo::write_test_gltf(&dir)).unwrap();
    render_scene("test-gltf", &scene);
}

#[test]
fn bad_draws_are_errors_and_leak_nothing() {
    let ctx = TestContext::new();
    let alloc = allocator(&ctx);
    let mut scene = Scene::generate_default(0.001);
    let up = upload(&ctx, &alloc, &scene);
    scene.draws[3].texture = 999;
    let err = render(&ctx, &alloc, &up, &scene).unwrap_err();
    assert!(
        matches!(
            err,
            RenderError::TextureOutOfRange {
                draw: 3,
                texture: 999,
                ..
            }
        ),
        "{err}"
    );
    scene.draws[3].texture = 0;
    scene.draws[1].mesh = 50;
    assert!(matches!(
        render(&ctx, &alloc, &up, &scene),
        Err(RenderError::MeshOutOfRange { draw: 1, .. })
    ));
    scene.draws[1].mesh = 0;
    // And a good frame right after, with the same objects.
    assert!(middle_colours(&render(&ctx, &alloc, &up, &scene).unwrap()) > 1);
    destroy(&ctx, &alloc, up);
    drop(alloc);
    ctx.finish();
}
