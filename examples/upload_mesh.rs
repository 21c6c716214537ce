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
//! cargo run --release --example upload_mesh -- --report target/upload_mesh.html
//! ```
//!
//! `--report PATH` writes the memory viewer's HTML page: the allocator's
//! blocks and allocations once the scene is uploaded, verified and the
//! allocator trimmed, committed and live bytes over the whole run, and the
//! leak report taken when the resources were destroyed.
//!
//! Exit code 0 when everything verified and no validation message was seen;
//! 1 on any error (bad input, a file over a limit, a Vulkan failure): one
//! line `error: <input>: <problem>` on stderr, after everything created on
//! the device was destroyed; 2 when a verification failed or the validation
//! layer reported anything.
//!
//! What is checked before the device is touched: the frame size
//! (1..=[`MAX_FRAME_SIDE`]), `--out` not a folder, `--ring-size` in MiB
//! fitting 64 bits, the scene (the loader's own limits: decoding budget,
//! files only inside the asset's folder) and the frame's cost
//! (`--max-frame-triangles`, `--max-frame-fragments`). Once the
//! device exists: the frame size against its `maxImageDimension2D`. What can
//! only fail later (an image the device cannot create, the PNG that cannot
//! be written) ends the same way: every object is owned by a guard whose
//! drop waits for the device and destroys it, so the error path and the
//! success path free through the same code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use clap::{Parser, ValueEnum};
use gpumem::memory::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use gpumem::resources::{
    Buffer, BufferDesc, Image, ImageDesc, ResourceManager, ResourceManagerCreateInfo,
};
use gpumem::staging::belt::{BufferWrite, SharedQueue, StagingBelt, StagingBeltConfig};
use gpumem::staging::ImageSubresources;
use gpumem::viewer::{write_html_report, ReportOptions, Timeline};
use mem_demo::render::{render_frame, FrameDesc, GpuMesh, GpuTexture, RenderDevice};
use mem_demo::scene::LoadOptions;
use mem_demo::{DemoError, Scene};
use mem_testkit::TestContext;
use parking_lot::Mutex;

const MIB: u64 = 1 << 20;

/// Largest frame side accepted before the device is asked (it may allow
/// less: its `maxImageDimension2D` is checked next). 16384 x 16384 RGBA8 is
/// a 1 GiB readback.
const MAX_FRAME_SIDE: u32 = 16384;

/// Default of `--max-frame-triangles` (draws times their meshes'
/// triangles): bounds the time of the fragment estimate and of vertex
/// processing on a CPU rasterizer; some twenty times what the built-in
/// scene draws at scale 1.0.
const DEFAULT_MAX_FRAME_TRIANGLES: u64 = 1 << 26;

/// Default of `--max-frame-fragments`: 2^32 fragments is a few seconds to
/// a minute on lavapipe with two cores (measured: 10 000 triangles covering
/// about 40% of a 960x540 frame, ~2e9 fragments, render in 1.7 s), far
/// below the renderer's 300 s frame timeout, and 1000 times the overdraw of
/// a 4K frame.
const DEFAULT_MAX_FRAME_FRAGMENTS: u64 = 1 << 32;

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
    /// Memory of the staging ring: `cached` system memory (the belt's
    /// default), write-combined system memory (`upload`), or host-visible
    /// device-local memory (`rebar`), where the host's writes cross PCIe
    /// and the GPU's copies stay in VRAM.
    #[arg(long, value_enum, default_value_t = RingMemory::Cached)]
    ring_memory: RingMemory,
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
    /// Frame width in pixels (1..=16384, and at most the device's
    /// maxImageDimension2D).
    #[arg(long, default_value_t = 960)]
    width: u32,
    /// Frame height in pixels (as --width).
    #[arg(long, default_value_t = 540)]
    height: u32,
    /// The most bytes the glTF loader may hold decoded (buffers, images with
    /// their mips, vertices, indices); checked before anything is decoded.
    #[arg(long, default_value_t = LoadOptions::DEFAULT_MAX_DECODED_BYTES)]
    max_decoded_bytes: u64,
    /// Let buffer and image URIs name files outside the glTF file's folder
    /// (by default `../`, absolute paths, `file:` URIs and links pointing
    /// out are refused).
    #[arg(long)]
    allow_outside_uris: bool,
    /// The most triangles the frame may draw (each draw counts its mesh's
    /// triangles), checked before anything is drawn.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_TRIANGLES)]
    max_frame_triangles: u64,
    /// The most fragments the frame may rasterize, as estimated from the
    /// drawn triangles' screen area before anything is drawn.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_FRAGMENTS)]
    max_frame_fragments: u64,
    /// Print the summary as JSON on stdout (and nothing else).
    #[arg(long)]
    json: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Write the memory viewer's HTML page here: the allocator after the
    /// upload, committed and live bytes during the run, the leak report at
    /// teardown (open it in a browser; it needs no network).
    #[arg(long)]
    report: Option<PathBuf>,
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
    own_memory: u64,
    efficiency: f64,
    batches: u64,
    /// The upload's time in the belt: writing into the ring (or into
    /// host-visible destinations), in `vkQueueSubmit`, waiting.
    phases: [Duration; 3],
    /// Time to make the staging belt (its ring touched page by page).
    belt_made: Duration,
    ring_high_water: u64,
    /// The ring's size and memory, as `--ring-size` and `--ring-memory`
    /// chose them.
    ring: (u64, RingMemory),
    direct_bytes: u64,
    staged_bytes: u64,
    transfer_family: u32,
    graphics_family: u32,
    frame: Option<PathBuf>,
    distinct_colors: usize,
    validation: bool,
    validation_messages: usize,
    /// With `--report`: committed and live bytes over the run.
    timeline: Option<Timeline>,
    /// With `--report`: the allocator's detailed dump after the upload.
    report_dump: Option<String>,
    /// The report written, with its block and allocation counts.
    report: Option<(PathBuf, usize, usize)>,
}

type AnyError = Box<dyn std::error::Error>;

/// Why the job stopped. Its message is one line; `main` prefixes the input.
#[derive(Debug)]
enum JobError {
    /// A command-line value that cannot be used.
    Arg {
        flag: &'static str,
        value: String,
        problem: String,
    },
    /// The glTF file could not be loaded (its message names the file).
    Load(DemoError),
    /// The frame would cost too much to draw.
    FrameTooCostly {
        what: &'static str,
        estimate: u64,
        limit: u64,
        flag: &'static str,
    },
    /// A step on the device failed.
    Step {
        what: &'static str,
        source: AnyError,
    },
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Arg {
                flag,
                value,
                problem,
            } => write!(f, "{flag} {value}: {problem}"),
            JobError::Load(e) => write!(f, "{e}"),
            JobError::FrameTooCostly {
                what,
                estimate,
                limit,
                flag,
            } => write!(
                f,
                "the frame would draw about {estimate} {what}, more than the limit of {limit} \
                 ({flag}); render a smaller frame, raise the limit, or pass --no-render"
            ),
            JobError::Step { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

/// `what` failed with `source`.
fn step<E: Into<AnyError>>(what: &'static str) -> impl FnOnce(E) -> JobError {
    move |source| JobError::Step {
        what,
        source: source.into(),
    }
}

/// `--ring-memory`: where the staging ring lives.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum RingMemory {
    #[default]
    /// Cached system memory (`MemoryUsage::Readback`).
    Cached,
    /// Write-combined system memory (`MemoryUsage::Upload`).
    Upload,
    /// Host-visible device-local memory (`MemoryUsage::Dynamic`).
    Rebar,
}

impl RingMemory {
    fn usage(self) -> MemoryUsage {
        match self {
            RingMemory::Cached => MemoryUsage::Readback,
            RingMemory::Upload => MemoryUsage::Upload,
            RingMemory::Rebar => MemoryUsage::Dynamic,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RingMemory::Cached => "cached",
            RingMemory::Upload => "upload",
            RingMemory::Rebar => "rebar",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match job(&args) {
        Ok(summary) => {
            print_summary(&args, &summary);
            if !summary.mismatched_objects.is_empty() || summary.validation_messages > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            let message = e.to_string().replace('\n', " ");
            match (&e, &args.path) {
                // The loader's errors name the file already.
                (JobError::Load(_), _) => eprintln!("error: {message}"),
                (_, Some(path)) => eprintln!("error: {}: {message}", path.display()),
                (_, None) => eprintln!("error: built-in scene: {message}"),
            }
            ExitCode::from(1)
        }
    }
}

/// Everything that can be checked before the device is created.
fn check_args(args: &Args) -> Result<u64, JobError> {
    let arg = |flag, value: &dyn std::fmt::Display, problem: String| JobError::Arg {
        flag,
        value: value.to_string(),
        problem,
    };
    let ring_size = match args.ring_size.checked_mul(MIB) {
        Some(0) => {
            return Err(arg(
                "--ring-size",
                &0,
                "must be at least 1 (MiB)".to_owned(),
            ))
        }
        Some(bytes) => bytes,
        None => {
            return Err(arg(
                "--ring-size",
                &args.ring_size,
                "MiB do not fit in 64 bits of bytes".to_owned(),
            ))
        }
    };
    if !args.no_render {
        for (flag, value) in [("--width", args.width), ("--height", args.height)] {
            if !(1..=MAX_FRAME_SIDE).contains(&value) {
                return Err(arg(
                    flag,
                    &value,
                    format!("must be 1..={MAX_FRAME_SIDE} pixels"),
                ));
            }
        }
        if args.out.is_dir() {
            return Err(arg(
                "--out",
                &args.out.display(),
                "is a directory; name the PNG file to write".to_owned(),
            ));
        }
    }
    if let Some(report) = args.report.as_deref().filter(|p| p.is_dir()) {
        return Err(arg(
            "--report",
            &report.display(),
            "is a directory; name the HTML file to write".to_owned(),
        ));
    }
    Ok(ring_size)
}

fn job(args: &Args) -> Result<Summary, JobError> {
    let ring_size = check_args(args)?;
    let scene = match &args.path {
        Some(p) => {
            let options = LoadOptions {
                max_decoded_bytes: args.max_decoded_bytes,
                allow_outside_uris: args.allow_outside_uris,
            };
            Scene::load_gltf_with(p, &options).map_err(JobError::Load)?
        }
        None => Scene::generate_default(args.scale),
    };
    if scene.meshes.is_empty() {
        return Err(step("the scene")("has no meshes"));
    }
    if !args.no_render {
        check_frame_cost(args, &scene)?;
    }
    let validation = if args.no_validation {
        false
    } else {
        args.validation || cfg!(debug_assertions)
    };
    run(args, &scene, validation, ring_size)
}

/// Refuses a frame that would take too long to draw, before the device
/// exists: a CPU rasterizer pays for every covered pixel of every triangle.
fn check_frame_cost(args: &Args, scene: &Scene) -> Result<(), JobError> {
    let triangles = scene.drawn_triangles();
    if triangles > args.max_frame_triangles {
        return Err(JobError::FrameTooCostly {
            what: "triangles",
            estimate: triangles,
            limit: args.max_frame_triangles,
            flag: "--max-frame-triangles",
        });
    }
    let view_proj = scene.view_proj(args.width as f32 / args.height as f32);
    let fragments = scene.estimated_fragments(
        &view_proj,
        args.width,
        args.height,
        args.max_frame_fragments,
    );
    if fragments > args.max_frame_fragments {
        return Err(JobError::FrameTooCostly {
            what: "fragments",
            estimate: fragments,
            limit: args.max_frame_fragments,
            flag: "--max-frame-fragments",
        });
    }
    Ok(())
}

/// Runs `f` with panics silenced and caught: mem-testkit, a test kit,
/// panics where this program reports.
fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "unknown failure".to_owned())
    })
}

/// Creates the device, runs the job on it, and tears it down; the
/// validation layer's messages (during the run and at teardown) are counted
/// into the summary.
fn run(args: &Args, scene: &Scene, validation: bool, ring_size: u64) -> Result<Summary, JobError> {
    let ctx = quietly(|| {
        TestContext::builder()
            .validation(validation)
            .want_device_extension(ash::ext::memory_budget::NAME)
            .build()
    })
    .map_err(step("creating the Vulkan device"))?;
    let mut summary = Summary {
        validation,
        timeline: args.report.as_ref().map(|_| Timeline::new()),
        ..Summary::default()
    };
    let result = on_device(args, scene, &ctx, ring_size, &mut summary);
    summary.validation_messages = ctx.message_count();
    // Report instead of panicking: the summary says how many there were.
    for m in ctx.clear_messages().iter().take(10) {
        eprintln!("validation: {m}");
    }
    // Objects found alive when the device is destroyed would be reported
    // here; every path above destroyed what it created.
    if let Err(message) = quietly(|| ctx.finish()) {
        summary.validation_messages += 1;
        eprintln!("validation: at device destruction: {message}");
    }
    result?;
    Ok(summary)
}

/// Everything between device creation and teardown. The allocator and the
/// resource manager are dropped before this returns, on every path.
fn on_device(
    args: &Args,
    scene: &Scene,
    ctx: &TestContext,
    ring_size: u64,
    summary: &mut Summary,
) -> Result<(), JobError> {
    let props = ctx.properties();
    // SAFETY: the driver's device name is NUL-terminated.
    summary.device = unsafe { std::ffi::CStr::from_ptr(props.device_name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let max = props.limits.max_image_dimension2_d;
    if !args.no_render {
        for (flag, value) in [("--width", args.width), ("--height", args.height)] {
            if value > max {
                return Err(JobError::Arg {
                    flag,
                    value: value.to_string(),
                    problem: format!("is more than the device's maxImageDimension2D {max}"),
                });
            }
        }
    }
    // SAFETY: the context's handles are valid and outlive the allocator,
    // manager and belt, all dropped before this function returns.
    let allocator = Arc::new(
        unsafe {
            Allocator::new(AllocatorCreateInfo {
                instance: ctx.instance(),
                physical_device: ctx.physical_device(),
                device: ctx.device(),
                memory_budget: ctx.has_extension(ash::ext::memory_budget::NAME),
                allocation_callbacks: None,
                config: AllocatorConfig::default(),
            })
        }
        .map_err(step("creating the allocator"))?,
    );
    // SAFETY: as above.
    let resources = Arc::new(unsafe {
        ResourceManager::new(ResourceManagerCreateInfo {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            allocator: allocator.clone(),
            debug_utils: ctx.debug_utils().cloned(),
            allocation_callbacks: None,
        })
    });
    record(&mut summary.timeline, &allocator, Some("allocator created"));
    let result = upload_and_check(args, scene, ctx, &allocator, &resources, ring_size, summary);
    drop(resources);
    let leaks = allocator.leak_report();
    record(
        &mut summary.timeline,
        &allocator,
        Some("resources destroyed"),
    );
    drop(allocator);
    // Written also when a step after the dump failed: the page shows the
    // memory as it was.
    let report = write_report(args, summary, &leaks);
    result?;
    report?;
    if !leaks.is_empty() {
        return Err(step("after the run")(format!(
            "{} allocations leaked: {leaks:?}",
            leaks.len()
        )));
    }
    Ok(())
}

/// Records the allocator's committed and live (requested) bytes on the
/// report's timeline, when there is one, and labels the moment with `mark`.
fn record(timeline: &mut Option<Timeline>, allocator: &Allocator, mark: Option<&str>) {
    if let Some(t) = timeline {
        let s = allocator.stats().total;
        t.sample(s.committed_bytes, s.requested_bytes);
        if let Some(label) = mark {
            t.mark(label);
        }
    }
}

/// Writes `--report` from the dump taken after the upload, with the
/// timeline and the leak report taken at teardown.
fn write_report(
    args: &Args,
    summary: &mut Summary,
    leaks: &[gpumem::memory::stats::LeakedAllocation],
) -> Result<(), JobError> {
    let (Some(path), Some(dump)) = (&args.report, summary.report_dump.take()) else {
        return Ok(());
    };
    let scene = match &args.path {
        Some(p) => p.display().to_string(),
        None => format!("the built-in scene (scale {})", args.scale),
    };
    let leaks = gpumem::viewer::serde_json::to_value(leaks).map_err(step("the leak report"))?;
    let mut options = ReportOptions::new()
        .title(format!("upload_mesh: {scene} on {}", summary.device))
        .leaks(leaks);
    if let Some(t) = summary.timeline.take() {
        options = options.timeline(t);
    }
    let counts = write_html_report(path, &dump, &options).map_err(step("writing the report"))?;
    summary.report = Some((path.clone(), counts.blocks, counts.allocations));
    Ok(())
}

/// Buffers and images this program created on the device. Dropping it, on
/// success and on every error path alike, waits for the device to finish
/// all work and destroys them, so that nothing reaches the device's
/// teardown alive.
struct Owned<'a> {
    ctx: &'a TestContext,
    res: &'a ResourceManager,
    buffers: Vec<Buffer>,
    images: Vec<Image>,
}

impl<'a> Owned<'a> {
    fn new(ctx: &'a TestContext, res: &'a ResourceManager) -> Self {
        Self {
            ctx,
            res,
            buffers: Vec::new(),
            images: Vec::new(),
        }
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        if self.buffers.is_empty() && self.images.is_empty() {
            return;
        }
        // SAFETY: this program is single-threaded here (the belt, the only
        // other queue user, is dropped before the objects it wrote: it is
        // created after them), so the queues are not in use; after the wait
        // no submitted work uses the objects, and no view of them is left
        // (the renderer destroys its views before it returns).
        unsafe {
            if let Err(e) = self.ctx.device().device_wait_idle() {
                eprintln!("upload_mesh: vkDeviceWaitIdle failed before destroying: {e}");
            }
            for b in self.buffers.drain(..) {
                // Fails only for a buffer of another manager.
                let _ = self.res.destroy_buffer(b);
            }
            for i in self.images.drain(..) {
                let _ = self.res.destroy_image(i);
            }
        }
    }
}

fn upload_and_check(
    args: &Args,
    scene: &Scene,
    ctx: &TestContext,
    allocator: &Arc<Allocator>,
    res: &Arc<ResourceManager>,
    ring_size: u64,
    summary: &mut Summary,
) -> Result<(), JobError> {
    let (transfer, tqueue) = ctx.transfer_queue();
    let (graphics, gqueue) = ctx.graphics_queue();
    summary.transfer_family = transfer;
    summary.graphics_family = graphics;
    summary.meshes = scene.meshes.len();
    summary.textures = scene.textures.len();
    summary.draws = scene.draws.len();

    // Create every resource first (batched binds), then upload. The
    // vertex buffers come first in `up.buffers`, then the index buffers.
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
    let mut up = Owned::new(ctx, res);
    up.buffers = res
        .create_buffers(&vdescs)
        .map_err(step("creating the vertex buffers"))?;
    let index_buffers = res
        .create_buffers(&idescs)
        .map_err(step("creating the index buffers"))?;
    up.buffers.extend(index_buffers);
    up.images = res
        .create_images(&tdescs)
        .map_err(step("creating the images"))?;
    record(&mut summary.timeline, allocator, Some("resources created"));
    let n = scene.meshes.len();

    let shared = SharedQueue {
        family: transfer,
        queue: tqueue,
        lock: Arc::new(Mutex::new(())),
    };
    let desc = StagingBeltConfig {
        force_staging: args.force_staging,
        ring_memory: args.ring_memory.usage(),
        ..StagingBeltConfig::with_ring_size(ring_size)
    };
    let made = Instant::now();
    // SAFETY: handles from the context; the belt's queue is used by nobody
    // else in this program except through `submit_graphics`, which runs
    // only after the belt is idle. Declared after `up`, the belt is dropped
    // (waiting for its work) before `up` destroys what it wrote.
    let mut belt = unsafe {
        StagingBelt::new(
            res.clone(),
            ctx.instance(),
            ctx.physical_device(),
            shared,
            graphics,
            desc,
        )
    }
    .map_err(step("creating the staging belt"))?;
    summary.belt_made = made.elapsed();

    let total = scene.total_bytes();
    summary.bytes = total;
    let bar = if args.quiet || args.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    let start = Instant::now();
    let uploading = step("uploading");
    let mut timeline = summary.timeline.take();
    let uploaded: Result<_, gpumem::staging::StagingError> = (|| {
        // Every mesh buffer in one call: the belt lays them end to end in
        // the ring and its copy threads fill each run at once.
        let writes: Vec<BufferWrite<'_>> = scene
            .meshes
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                [
                    BufferWrite::new(&up.buffers[i], 0, m.vertex_bytes()),
                    BufferWrite::new(&up.buffers[n + i], 0, m.index_bytes()),
                ]
            })
            .collect();
        let _ = belt.upload_buffers(&writes)?;
        bar.inc(writes.iter().map(|w| w.data.len() as u64).sum());
        record(&mut timeline, allocator, None);
        for (i, t) in scene.textures.iter().enumerate() {
            // Written in place: the decoded levels go straight into the ring,
            // with no copy of the whole chain in between.
            let len: usize = t.mips.iter().map(Vec::len).sum();
            let _ = belt.upload_image_with(
                &up.images[i],
                ImageSubresources::all(),
                len as u64,
                vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                |at, bytes| {
                    t.copy_levels_into(at as usize, bytes);
                    Ok::<(), std::convert::Infallible>(())
                },
            )?;
            bar.inc(len as u64);
            record(&mut timeline, allocator, None);
        }
        let ticket = belt.flush()?;
        belt.wait(ticket)?;
        Ok(ticket)
    })();
    summary.timeline = timeline;
    let ticket = uploaded.map_err(uploading)?;
    record(&mut summary.timeline, allocator, Some("uploaded"));
    summary.upload = start.elapsed();
    bar.finish_and_clear();
    let acquire = belt
        .take_acquire_barriers(ticket)
        .map_err(step("taking the acquire barriers"))?;
    let st = belt.stats();
    summary.batches = st.batches_submitted;
    summary.phases = [st.copy_time, st.submit_time, st.wait_time];
    summary.ring_high_water = st.ring_high_water;
    summary.ring = (ring_size, args.ring_memory);
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
    })
    .map_err(step("acquiring the uploads on the graphics queue"))?;
    // The belt owns the timeline semaphore the submit above waited on: it
    // lives until that submit completed.
    drop(belt);
    verify(ctx, res, graphics, gqueue, scene, &up, summary).map_err(step("verifying"))?;
    record(&mut summary.timeline, allocator, Some("verified"));

    // Loading is done: give back the memory objects the verification's
    // readback buffers left in the allocator's cache (and any empty block
    // kept), as an engine would after a level load.
    let before = allocator.stats().total.committed_bytes;
    allocator.trim();
    let s = allocator.stats();
    summary.trimmed = before.saturating_sub(s.total.committed_bytes);
    summary.committed = s.total.committed_bytes;
    summary.requested = s.total.requested_bytes;
    summary.blocks = s.total.block_count;
    summary.own_memory = s.total.own_memory_count;
    summary.efficiency = s.total.efficiency;
    if summary.timeline.is_some() {
        record(&mut summary.timeline, allocator, Some("trimmed: dump"));
        summary.report_dump = Some(allocator.dump_json(true));
    }

    if !args.no_render {
        let meshes: Vec<GpuMesh> = scene
            .meshes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                // The loader and the generator keep index counts in u32.
                let index_count = u32::try_from(m.indices.len()).map_err(step("drawing"))?;
                Ok(GpuMesh {
                    vertex_buffer: up.buffers[i].handle(),
                    index_buffer: up.buffers[n + i].handle(),
                    index_count,
                })
            })
            .collect::<Result<_, JobError>>()?;
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
            timeout: mem_demo::render::FRAME_TIMEOUT,
        };
        let pixels = {
            let _q = ctx.lock_queue(graphics);
            // SAFETY: every resource is uploaded, acquired and idle; the
            // queue lock is held. `render_frame` destroys what it creates,
            // on error too (after waiting for its submission).
            unsafe { render_frame(&dev, &frame) }
        }
        .map_err(step("rendering"))?;
        mem_demo::save_png(&args.out, args.width, args.height, &pixels)
            .map_err(step("saving the frame"))?;
        let mut colors: Vec<u32> = pixels
            .chunks_exact(4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
            .collect();
        colors.sort_unstable();
        colors.dedup();
        summary.distinct_colors = colors.len();
        summary.frame = Some(args.out.clone());
        record(&mut summary.timeline, allocator, Some("frame rendered"));
    }
    // `up` is dropped here: the device is waited for and every buffer and
    // image destroyed, as on every error path above.
    Ok(())
}

/// The command pool and fence of one submission. Dropping it destroys
/// them, after draining the queue if the submission may still be running
/// (an error between submit and wait).
struct OneShot<'a> {
    ctx: &'a TestContext,
    family: u32,
    queue: vk::Queue,
    pool: vk::CommandPool,
    fence: vk::Fence,
    pending: bool,
}

impl Drop for OneShot<'_> {
    fn drop(&mut self) {
        let d = self.ctx.device();
        // SAFETY: both were created on `d` by `submit_graphics` (or are null,
        // which vkDestroy* ignores); a submission that may still use them is
        // waited for first, with the queue's lock held.
        unsafe {
            if self.pending {
                let _q = self.ctx.lock_queue(self.family);
                let _ = d.queue_wait_idle(self.queue);
            }
            d.destroy_fence(self.fence, None);
            d.destroy_command_pool(self.pool, None);
        }
    }
}

/// Records with `f` on the graphics family, submits (waiting on `wait` when
/// given) and waits for completion. The work is a few barriers after the
/// belt's copies, so the wait has no timeout.
fn submit_graphics(
    ctx: &TestContext,
    family: u32,
    queue: vk::Queue,
    wait: Option<(vk::Semaphore, u64)>,
    f: impl FnOnce(&ash::Device, vk::CommandBuffer),
) -> Result<(), AnyError> {
    let d = ctx.device();
    let mut one = OneShot {
        ctx,
        family,
        queue,
        pool: vk::CommandPool::null(),
        fence: vk::Fence::null(),
        pending: false,
    };
    // SAFETY: every object below is created and used here, on this thread,
    // with the queue lock held around the submit; `one` destroys them.
    unsafe {
        one.pool = d.create_command_pool(
            &vk::CommandPoolCreateInfo::default().queue_family_index(family),
            None,
        )?;
        let cmd = d.allocate_command_buffers(
            &vk::CommandBufferAllocateInfo::default()
                .command_pool(one.pool)
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
        one.fence = d.create_fence(&vk::FenceCreateInfo::default(), None)?;
        {
            let _q = ctx.lock_queue(family);
            d.queue_submit(queue, &[submit], one.fence)?;
        }
        one.pending = true;
        d.wait_for_fences(&[one.fence], true, u64::MAX)?;
        one.pending = false;
    }
    Ok(())
}

/// Reads every object back through a staging belt on the graphics queue
/// (the family that owns them after the acquire) and compares it with the
/// scene's bytes.
fn verify(
    ctx: &TestContext,
    res: &Arc<ResourceManager>,
    family: u32,
    queue: vk::Queue,
    scene: &Scene,
    up: &Owned<'_>,
    summary: &mut Summary,
) -> Result<(), AnyError> {
    // SAFETY: handles from the context. The graphics queue is used by
    // nobody else while this belt lives: `submit_graphics` ran before and
    // the frame is rendered after it is dropped, so a lock of its own
    // suffices.
    let mut belt = unsafe {
        StagingBelt::new(
            res.clone(),
            ctx.instance(),
            ctx.physical_device(),
            SharedQueue::new(family, queue),
            family,
            StagingBeltConfig::with_ring_size(16 << 20),
        )
    }?;
    let n = scene.meshes.len();
    let mut back = Vec::new();
    let mut compare = |name: String, same: bool| {
        if !same {
            summary.mismatched_objects.push(name);
        }
        summary.verified_objects += 1;
    };
    for (i, m) in scene.meshes.iter().enumerate() {
        for (buffer, bytes, what) in [
            (&up.buffers[i], m.vertex_bytes(), "vertices"),
            (&up.buffers[n + i], m.index_bytes(), "indices"),
        ] {
            back.resize(bytes.len(), 0);
            belt.read_buffer(buffer, 0, &mut back)?;
            compare(format!("{} {what}", m.name), back == bytes);
        }
    }
    for (i, t) in scene.textures.iter().enumerate() {
        back.resize(t.mips.iter().map(Vec::len).sum(), 0);
        belt.read_image(&up.images[i], ImageSubresources::all(), &mut back)?;
        let mut rest = back.as_slice();
        let mut same = true;
        for level in &t.mips {
            let (head, tail) = rest.split_at(level.len());
            same &= head == level.as_slice();
            rest = tail;
        }
        compare(t.name.clone(), same);
    }
    Ok(())
}

fn print_summary(args: &Args, s: &Summary) {
    let gbps = s.bytes as f64 / s.upload.as_secs_f64().max(1e-9) / 1e9;
    if args.json {
        let mut v = serde_json::json!({
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
                "own_memory": s.own_memory,
                "efficiency": s.efficiency,
                "trimmed_bytes": s.trimmed,
            },
            "belt": {
                "batches": s.batches,
                "copy_seconds": s.phases[0].as_secs_f64(),
                "submit_seconds": s.phases[1].as_secs_f64(),
                "wait_seconds": s.phases[2].as_secs_f64(),
                "made_seconds": s.belt_made.as_secs_f64(),
                "ring_high_water": s.ring_high_water,
                "ring_size": s.ring.0,
                "ring_memory": s.ring.1.name(),
                "direct_bytes": s.direct_bytes,
                "staged_bytes": s.staged_bytes,
                "textures_written_in_place": true,
                "transfer_family": s.transfer_family,
                "graphics_family": s.graphics_family,
            },
            "frame": s.frame,
            "frame_distinct_colors": s.distinct_colors,
            "validation": s.validation,
            "validation_messages": s.validation_messages,
        });
        if let Some((path, blocks, allocations)) = &s.report {
            v["report"] = serde_json::json!({
                "path": path, "blocks": blocks, "allocations": allocations,
            });
        }
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
    println!("  upload       {:.1} ms, {gbps:.2} GB/s ({} batches, {} MiB ring in {} memory, high-water {:.1} MiB, {:.1} MiB staged, {:.1} MiB written directly; textures written into the ring in place)",
        s.upload.as_secs_f64() * 1e3, s.batches, s.ring.0 / MIB, s.ring.1.name(), s.ring_high_water as f64 / MIB as f64, s.staged_bytes as f64 / MIB as f64, s.direct_bytes as f64 / MIB as f64);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let [copy, submit, wait] = s.phases;
    println!(
        "  phases       {:.1} ms writing into the ring and destinations, {:.1} ms in vkQueueSubmit, {:.1} ms waiting for the GPU, {:.1} ms recording and the rest; the belt was made in {:.1} ms before",
        ms(copy),
        ms(submit),
        ms(wait),
        ms(s.upload.saturating_sub(copy + submit + wait)),
        ms(s.belt_made)
    );
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
    println!("  allocator    {} blocks + {} objects in memory of their own, {:.1} MiB committed for {:.1} MiB requested ({:.1}% efficient; trim() after loading gave back {:.1} MiB)",
        s.blocks, s.own_memory, s.committed as f64 / MIB as f64, s.requested as f64 / MIB as f64, s.efficiency * 100.0,
        s.trimmed as f64 / MIB as f64);
    if let Some(f) = &s.frame {
        println!(
            "  frame        {} ({} distinct colours)",
            f.display(),
            s.distinct_colors
        );
    }
    if let Some((path, blocks, allocations)) = &s.report {
        println!(
            "  report       {} ({blocks} blocks, {allocations} allocations; open it in a browser)",
            path.display()
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
