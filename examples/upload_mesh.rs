//! The main job: load a scene (the built-in default, or a glTF 2.0 file),
//! upload every mesh and texture through gpumem's staging belt into
//! device-local buffers and images, verify every byte on the GPU side by
//! copying it back, render one frame headlessly into a PNG, and print a
//! summary (objects, bytes, upload time and GB/s, allocator statistics,
//! validation messages).
//!
//! ```text
//! cargo run --release --example upload_mesh                     # built-in scene
//! cargo run --release --example upload_mesh -- model.glb --out frame.png
//! cargo run --release --example upload_mesh -- --scale 0.05 --validation --json
//! ```
//! Exit code 0 when everything verified and no validation message was seen;
//! 1 on bad input (missing or invalid file: a one-line error); 2 when a
//! verification failed or the validation layer reported anything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use clap::Parser;
use gpumem::core::{Allocator, AllocatorConfig, AllocatorDesc, MemoryUsage};
use gpumem::resources::{
    Buffer, BufferDesc, Image, ImageDesc, ResourceManager, ResourceManagerDesc,
};
use gpumem::staging::belt::{SharedQueue, StagingBelt, StagingBeltDesc};
use mem_demo::render::{render_frame, FrameDesc, GpuMesh, GpuTexture, RenderDevice};
use mem_demo::Scene;
use mem_testkit::TestContext;
use parking_lot::Mutex;

const MIB: u64 = 1 << 20;

/// Upload a scene through gpumem, verify it on the GPU, render one frame.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A glTF 2.0 file (.gltf with external buffers/images, or .glb); the
    /// built-in generated scene when absent.
    path: Option<PathBuf>,
    /// Size of the built-in scene (1.0 = a few hundred MB).
    #[arg(long, default_value_t = 1.0)]
    scale: f32,
    /// Staging ring size in MiB.
    #[arg(long, default_value_t = 64)]
    ring_size: u64,
    /// Copy through the staging ring even where device-local memory is
    /// host-visible (UMA, ReBAR, lavapipe).
    #[arg(long)]
    force_staging: bool,
    /// Skip rendering the frame.
    #[arg(long)]
    no_render: bool,
    /// Run under VK_LAYER_KHRONOS_validation with synchronization validation
    /// (default: on in debug builds).
    #[arg(long, overrides_with = "no_validation")]
    validation: bool,
    /// Run without the validation layer.
    #[arg(long)]
    no_validation: bool,
    /// Where to write the rendered frame.
    #[arg(long, default_value = "target/upload_mesh.png")]
    out: PathBuf,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 960)]
    width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 540)]
    height: u32,
    /// Print the summary as JSON on stdout (and nothing else).
    #[arg(long)]
    json: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

/// What the run measured.
#[derive(Debug, Default)]
struct Summary {
    device: String,
    meshes: usize,
    textures: usize,
    draws: usize,
    bytes: u64,
    upload: Duration,
    verified_objects: usize,
    mismatched_objects: Vec<String>,
    committed: u64,
    requested: u64,
    /// Bytes the `trim()` before `committed` was read gave back: freed
    /// memory objects the allocator cached (the verification's readback
    /// buffers) and empty blocks it kept.
    trimmed: u64,
    blocks: u64,
    dedicated: u64,
    efficiency: f64,
    batches: u64,
    ring_high_water: u64,
    direct_bytes: u64,
    staged_bytes: u64,
    transfer_family: u32,
    graphics_family: u32,
    frame: Option<PathBuf>,
    distinct_colors: usize,
    validation: bool,
    validation_messages: usize,
}

struct Uploaded {
    vertex: Vec<Buffer>,
    index: Vec<Buffer>,
    images: Vec<Image>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let scene = match &args.path {
        Some(p) => match Scene::load_gltf(p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        None => Scene::generate_default(args.scale),
    };
    if scene.meshes.is_empty() {
        eprintln!("error: the scene has no meshes");
        return ExitCode::from(1);
    }
    let validation = if args.no_validation {
        false
    } else {
        args.validation || cfg!(debug_assertions)
    };
    match run(&args, &scene, validation) {
        Ok(summary) => {
            print_summary(&args, &summary);
            if !summary.mismatched_objects.is_empty() || summary.validation_messages > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn run(args: &Args, scene: &Scene, validation: bool) -> Result<Summary, AnyError> {
    let ctx = TestContext::builder()
        .validation(validation)
        .want_device_extension(ash::ext::memory_budget::NAME)
        .build();
    let mut summary = Summary {
        validation,
        ..Summary::default()
    };
    let props = ctx.properties();
    // SAFETY: the driver's device name is NUL-terminated.
    summary.device = unsafe { std::ffi::CStr::from_ptr(props.device_name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: the context's handles are valid and outlive the allocator,
    // manager and belt, all dropped before `ctx` (end of `upload_and_check`).
    let allocator = Arc::new(unsafe {
        Allocator::new(AllocatorDesc {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            memory_budget: ctx.has_extension(ash::ext::memory_budget::NAME),
            allocation_callbacks: None,
            config: AllocatorConfig::default(),
        })
    }?);
    // SAFETY: as above.
    let resources = Arc::new(unsafe {
        ResourceManager::new(ResourceManagerDesc {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            allocator: allocator.clone(),
            debug_utils: ctx.debug_utils().cloned(),
            allocation_callbacks: None,
        })
    });
    let result = upload_and_check(args, scene, &ctx, &allocator, &resources, &mut summary);
    drop(resources);
    let leaks = allocator.leak_report();
    drop(allocator);
    summary.validation_messages = ctx.message_count();
    // Report instead of panicking: the summary says how many there were.
    let messages = ctx.clear_messages();
    for m in messages.iter().take(10) {
        eprintln!("validation: {m}");
    }
    ctx.finish();
    result?;
    if !leaks.is_empty() {
        return Err(format!("{} allocations leaked: {leaks:?}", leaks.len()).into());
    }
    Ok(summary)
}

fn upload_and_check(
    args: &Args,
    scene: &Scene,
    ctx: &TestContext,
    allocator: &Arc<Allocator>,
    res: &Arc<ResourceManager>,
    summary: &mut Summary,
) -> Result<(), AnyError> {
    let (transfer, tqueue) = ctx.transfer_queue();
    let (graphics, gqueue) = ctx.graphics_queue();
    summary.transfer_family = transfer;
    summary.graphics_family = graphics;
    summary.meshes = scene.meshes.len();
    summary.textures = scene.textures.len();
    summary.draws = scene.draws.len();
    let shared = SharedQueue {
        family: transfer,
        queue: tqueue,
        lock: Arc::new(Mutex::new(())),
    };
    let desc = StagingBeltDesc {
        force_staging: args.force_staging,
        ..StagingBeltDesc::with_ring_size(args.ring_size * MIB)
    };
    // SAFETY: handles from the context; the belt's queue is used by nobody
    // else in this program except through `one_shot`, which runs only after
    // the belt is idle.
    let mut belt = unsafe {
        StagingBelt::new(
            res.clone(),
            ctx.instance(),
            ctx.physical_device(),
            shared,
            graphics,
            desc,
        )
    }?;

    // Create every resource first (batched binds), then upload.
    let usage_v = vk::BufferUsageFlags::VERTEX_BUFFER
        | vk::BufferUsageFlags::TRANSFER_DST
        | vk::BufferUsageFlags::TRANSFER_SRC;
    let usage_i = vk::BufferUsageFlags::INDEX_BUFFER
        | vk::BufferUsageFlags::TRANSFER_DST
        | vk::BufferUsageFlags::TRANSFER_SRC;
    let vdescs: Vec<BufferDesc> = scene
        .meshes
        .iter()
        .map(|m| {
            BufferDesc::new(m.vertex_bytes().len() as u64, usage_v, MemoryUsage::GpuOnly)
                .name(format!("{} vertices", m.name))
        })
        .collect();
    let idescs: Vec<BufferDesc> = scene
        .meshes
        .iter()
        .map(|m| {
            BufferDesc::new(m.index_bytes().len() as u64, usage_i, MemoryUsage::GpuOnly)
                .name(format!("{} indices", m.name))
        })
        .collect();
    let tdescs: Vec<ImageDesc> = scene
        .textures
        .iter()
        .map(|t| {
            ImageDesc::texture_2d(t.format, t.width, t.height, t.mip_levels())
                .usage(
                    vk::ImageUsageFlags::SAMPLED
                        | vk::ImageUsageFlags::TRANSFER_DST
                        | vk::ImageUsageFlags::TRANSFER_SRC,
                )
                .name(t.name.clone())
        })
        .collect();
    let mut up = Uploaded {
        vertex: res.create_buffers(&vdescs)?,
        index: res.create_buffers(&idescs)?,
        images: res.create_images(&tdescs)?,
    };

    let total = scene.total_bytes();
    summary.bytes = total;
    let bar = if args.quiet || args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    let texture_data: Vec<Vec<u8>> = scene.textures.iter().map(|t| t.mips.concat()).collect();
    let start = Instant::now();
    for (i, m) in scene.meshes.iter().enumerate() {
        let _ = belt.upload_buffer(&up.vertex[i], 0, m.vertex_bytes())?;
        let _ = belt.upload_buffer(&up.index[i], 0, m.index_bytes())?;
        bar.inc((m.vertex_bytes().len() + m.index_bytes().len()) as u64);
    }
    for (i, data) in texture_data.iter().enumerate() {
        let _ = belt.upload_image(
            &up.images[i],
            data,
            vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
        )?;
        bar.inc(data.len() as u64);
    }
    let ticket = belt.flush()?;
    belt.wait(ticket)?;
    summary.upload = start.elapsed();
    bar.finish_and_clear();
    let acquire = belt.take_acquire_barriers(ticket)?;
    let st = belt.stats();
    summary.batches = st.batches_submitted;
    summary.ring_high_water = st.ring_high_water;
    summary.direct_bytes = st.bytes_direct;
    summary.staged_bytes = st.bytes_staged;

    // On the graphics family: acquire what the transfer family released
    // (after a GPU-side wait on the ticket), then read every object back.
    let semaphore_wait = acquire.wait;
    submit_graphics(ctx, graphics, gqueue, semaphore_wait, |d, cmd| {
        // SAFETY: recording on the graphics family; the submission waits for
        // the belt's ticket first.
        unsafe {
            acquire.record(
                d,
                cmd,
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::AccessFlags::MEMORY_READ,
            )
        };
        if acquire.is_empty() {
            // Same family: a plain barrier orders the reads after the copies.
            let b = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                .dst_access_mask(vk::AccessFlags::MEMORY_READ);
            // SAFETY: recording.
            unsafe {
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    vk::DependencyFlags::empty(),
                    &[b],
                    &[],
                    &[],
                )
            };
        }
    })?;
    // The belt owns the timeline semaphore the submit above waited on: it
    // lives until that submit completed.
    drop(belt);
    verify(
        ctx,
        res,
        graphics,
        gqueue,
        scene,
        &texture_data,
        &up,
        summary,
    )?;

    // Loading is done: give back the memory objects the verification's
    // readback buffers left in the allocator's cache (and any empty block
    // kept), as an engine would after a level load.
    let before = allocator.stats().total.committed_bytes;
    allocator.trim();
    let s = allocator.stats();
    summary.trimmed = before - s.total.committed_bytes;
    summary.committed = s.total.committed_bytes;
    summary.requested = s.total.requested_bytes;
    summary.blocks = s.total.block_count;
    summary.dedicated = s.total.dedicated_count;
    summary.efficiency = s.total.efficiency;

    if !args.no_render {
        let meshes: Vec<GpuMesh> = scene
            .meshes
            .iter()
            .enumerate()
            .map(|(i, m)| GpuMesh {
                vertex_buffer: up.vertex[i].handle(),
                index_buffer: up.index[i].handle(),
                index_count: m.indices.len() as u32,
            })
            .collect();
        let textures: Vec<GpuTexture> = scene
            .textures
            .iter()
            .enumerate()
            .map(|(i, t)| GpuTexture {
                image: up.images[i].handle(),
                format: t.format,
                mip_levels: t.mip_levels(),
            })
            .collect();
        let dev = RenderDevice {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            queue: gqueue,
            queue_family: graphics,
            allocator,
            allocation_callbacks: None,
        };
        let frame = FrameDesc {
            meshes: &meshes,
            textures: &textures,
            draws: &scene.draws,
            view_proj: scene.view_proj(args.width as f32 / args.height as f32),
            width: args.width,
            height: args.height,
            clear_color: [0.02, 0.03, 0.05, 1.0],
            wait_semaphores: &[],
        };
        let pixels = {
            let _q = ctx.lock_queue(graphics);
            // SAFETY: every resource is uploaded, acquired and idle; the
            // queue lock is held.
            unsafe { render_frame(&dev, &frame) }?
        };
        mem_demo::save_png(&args.out, args.width, args.height, &pixels)?;
        let mut colors: Vec<u32> = pixels
            .chunks_exact(4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
            .collect();
        colors.sort_unstable();
        colors.dedup();
        summary.distinct_colors = colors.len();
        summary.frame = Some(args.out.clone());
    }

    for b in up.vertex.drain(..).chain(up.index.drain(..)) {
        // SAFETY: the device is idle (every submission was waited for).
        unsafe { res.destroy_buffer(b) }?;
    }
    for i in up.images.drain(..) {
        // SAFETY: as above.
        unsafe { res.destroy_image(i) }?;
    }
    Ok(())
}

/// Records with `f` on the graphics family, submits (waiting on `wait` when
/// given) and waits for completion.
fn submit_graphics(
    ctx: &TestContext,
    family: u32,
    queue: vk::Queue,
    wait: Option<(vk::Semaphore, u64)>,
    f: impl FnOnce(&ash::Device, vk::CommandBuffer),
) -> Result<(), AnyError> {
    let d = ctx.device();
    // SAFETY: every object below is created, used and destroyed here, on this
    // thread, with the queue lock held around the submit.
    unsafe {
        let pool = d.create_command_pool(
            &vk::CommandPoolCreateInfo::default().queue_family_index(family),
            None,
        )?;
        let cmd = d.allocate_command_buffers(
            &vk::CommandBufferAllocateInfo::default()
                .command_pool(pool)
                .command_buffer_count(1),
        )?[0];
        d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())?;
        f(d, cmd);
        d.end_command_buffer(cmd)?;
        let cmds = [cmd];
        let (sems, values): (Vec<_>, Vec<_>) = wait.into_iter().unzip();
        let stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; sems.len()];
        let mut timeline =
            vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&values);
        let submit = vk::SubmitInfo::default()
            .command_buffers(&cmds)
            .wait_semaphores(&sems)
            .wait_dst_stage_mask(&stages)
            .push_next(&mut timeline);
        let fence = d.create_fence(&vk::FenceCreateInfo::default(), None)?;
        {
            let _q = ctx.lock_queue(family);
            d.queue_submit(queue, &[submit], fence)?;
        }
        d.wait_for_fences(&[fence], true, u64::MAX)?;
        d.destroy_fence(fence, None);
        d.destroy_command_pool(pool, None);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn verify(
    ctx: &TestContext,
    res: &ResourceManager,
    family: u32,
    queue: vk::Queue,
    scene: &Scene,
    texture_data: &[Vec<u8>],
    up: &Uploaded,
    summary: &mut Summary,
) -> Result<(), AnyError> {
    let largest = scene
        .meshes
        .iter()
        .map(|m| m.vertex_bytes().len().max(m.index_bytes().len()))
        .chain(texture_data.iter().map(Vec::len))
        .max()
        .unwrap_or(1) as u64;
    let readback =
        res.create_buffer(&BufferDesc::readback(largest).name("verification readback"))?;
    let mut back = vec![0u8; largest as usize];
    let mut check = |name: String,
                     expected: &[u8],
                     record: &dyn Fn(&ash::Device, vk::CommandBuffer)|
     -> Result<(), AnyError> {
        submit_graphics(ctx, family, queue, None, |d, cmd| record(d, cmd))?;
        let out = &mut back[..expected.len()];
        res.read_buffer(&readback, 0, out)?;
        if out != expected {
            summary.mismatched_objects.push(name);
        }
        summary.verified_objects += 1;
        Ok(())
    };
    let rb = readback.handle();
    let copy_buffer = |src: vk::Buffer, size: u64| {
        move |d: &ash::Device, cmd: vk::CommandBuffer| {
            // SAFETY: recording; both buffers alive, the readback is large enough.
            unsafe {
                d.cmd_copy_buffer(
                    cmd,
                    src,
                    rb,
                    &[vk::BufferCopy {
                        src_offset: 0,
                        dst_offset: 0,
                        size,
                    }],
                )
            };
        }
    };
    for (i, m) in scene.meshes.iter().enumerate() {
        let v = m.vertex_bytes();
        check(
            format!("{} vertices", m.name),
            v,
            &copy_buffer(up.vertex[i].handle(), v.len() as u64),
        )?;
        let ix = m.index_bytes();
        check(
            format!("{} indices", m.name),
            ix,
            &copy_buffer(up.index[i].handle(), ix.len() as u64),
        )?;
    }
    for (i, t) in scene.textures.iter().enumerate() {
        let image = &up.images[i];
        let range = image.full_subresource_range();
        let mut regions = Vec::new();
        let mut off = 0u64;
        for level in 0..t.mip_levels() {
            let (w, h) = t.mip_extent(level);
            regions.push(vk::BufferImageCopy {
                buffer_offset: off,
                image_subresource: vk::ImageSubresourceLayers {
                    aspect_mask: vk::ImageAspectFlags::COLOR,
                    mip_level: level,
                    base_array_layer: 0,
                    layer_count: 1,
                },
                image_extent: vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                },
                ..Default::default()
            });
            off += u64::from(w) * u64::from(h) * 4;
        }
        let handle = image.handle();
        let record = move |d: &ash::Device, cmd: vk::CommandBuffer| {
            let barrier = |old, new, src, dst| {
                vk::ImageMemoryBarrier::default()
                    .old_layout(old)
                    .new_layout(new)
                    .src_access_mask(src)
                    .dst_access_mask(dst)
                    .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .image(handle)
                    .subresource_range(range)
            };
            let to_src = barrier(
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::AccessFlags::empty(),
                vk::AccessFlags::TRANSFER_READ,
            );
            let back_to_read = barrier(
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                vk::AccessFlags::empty(),
                vk::AccessFlags::SHADER_READ,
            );
            // SAFETY: recording; image in SHADER_READ_ONLY_OPTIMAL after the
            // upload; readback large enough for every mip.
            unsafe {
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[to_src],
                );
                d.cmd_copy_image_to_buffer(
                    cmd,
                    handle,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    rb,
                    &regions,
                );
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::FRAGMENT_SHADER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[back_to_read],
                );
            }
        };
        check(t.name.clone(), &texture_data[i], &record)?;
    }
    // SAFETY: every copy was waited for.
    unsafe { res.destroy_buffer(readback) }?;
    Ok(())
}

fn print_summary(args: &Args, s: &Summary) {
    let gbps = s.bytes as f64 / s.upload.as_secs_f64().max(1e-9) / 1e9;
    if args.json {
        let v = serde_json::json!({
            "device": s.device,
            "meshes": s.meshes,
            "textures": s.textures,
            "draws": s.draws,
            "bytes": s.bytes,
            "upload_seconds": s.upload.as_secs_f64(),
            "upload_gbps": gbps,
            "verified_objects": s.verified_objects,
            "mismatched_objects": s.mismatched_objects,
            "allocator": {
                "committed_bytes": s.committed,
                "requested_bytes": s.requested,
                "blocks": s.blocks,
                "dedicated": s.dedicated,
                "efficiency": s.efficiency,
                "trimmed_bytes": s.trimmed,
            },
            "belt": {
                "batches": s.batches,
                "ring_high_water": s.ring_high_water,
                "direct_bytes": s.direct_bytes,
                "staged_bytes": s.staged_bytes,
                "transfer_family": s.transfer_family,
                "graphics_family": s.graphics_family,
            },
            "frame": s.frame,
            "frame_distinct_colors": s.distinct_colors,
            "validation": s.validation,
            "validation_messages": s.validation_messages,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return;
    }
    println!("gpumem upload_mesh on {}", s.device);
    println!(
        "  scene        {} meshes, {} textures, {} draws, {:.1} MiB",
        s.meshes,
        s.textures,
        s.draws,
        s.bytes as f64 / MIB as f64
    );
    println!("  upload       {:.1} ms, {gbps:.2} GB/s ({} batches, ring high-water {:.1} MiB, {:.1} MiB staged, {:.1} MiB written directly)",
        s.upload.as_secs_f64() * 1e3, s.batches, s.ring_high_water as f64 / MIB as f64, s.staged_bytes as f64 / MIB as f64, s.direct_bytes as f64 / MIB as f64);
    println!(
        "  queues       copies on family {}, used on family {}{}",
        s.transfer_family,
        s.graphics_family,
        if s.transfer_family != s.graphics_family {
            " (ownership transferred)"
        } else {
            ""
        }
    );
    println!(
        "  verified     {}/{} objects byte-exact on the GPU side{}",
        s.verified_objects - s.mismatched_objects.len(),
        s.verified_objects,
        if s.mismatched_objects.is_empty() {
            String::new()
        } else {
            format!(" — MISMATCH: {:?}", s.mismatched_objects)
        }
    );
    println!("  allocator    {} blocks + {} dedicated, {:.1} MiB committed for {:.1} MiB requested ({:.1}% efficient; trim() after loading gave back {:.1} MiB)",
        s.blocks, s.dedicated, s.committed as f64 / MIB as f64, s.requested as f64 / MIB as f64, s.efficiency * 100.0,
        s.trimmed as f64 / MIB as f64);
    if let Some(f) = &s.frame {
        println!(
            "  frame        {} ({} distinct colours)",
            f.display(),
            s.distinct_colors
        );
    }
    println!(
        "  validation   {}",
        if s.validation {
            format!("{} messages", s.validation_messages)
        } else {
            "off".to_owned()
        }
    );
}
