//! Defragmentation end to end: load a scene into device-local buffers and
//! images, churn it (free and reload a random half, several rounds, then
//! stream a share out) until committed memory runs well past live,
//! defragment it on the transfer queue with passes of a byte budget,
//! verify every byte of every moved resource by reading it back on the GPU,
//! write the memory maps before and after as PNGs, and print a table:
//! committed and live bytes before and after, bytes moved, pass times, and
//! bytes moved per millisecond beside a raw `vkCmdCopyBuffer` of the same
//! bytes in the same run.
//!
//! ```text
//! cargo run --release --example defragment
//! cargo run --release --example defragment -- --scale 1 --budget-mib 64 --out-dir target/defragment
//! ```
//!
//! Exit code 0 when every moved byte verified and the validation layer (on
//! with `--validation`, default in debug builds) stayed quiet; 1 on an
//! error; 2 when a verification failed or the layer reported anything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use ash::vk;
use clap::Parser;
use gpumem::memory::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use gpumem::resources::{
    Buffer, BufferDesc, Image, ImageDesc, Resource, ResourceManager, ResourceManagerCreateInfo,
    ResourceRef, Sharing,
};
use gpumem::staging::belt::{SharedQueue, StagingBelt, StagingBeltConfig};
use gpumem::staging::{DefragmentationBudget, ImageSubresources};
use mem_demo::memory_map::render_block_map;
use mem_demo::Scene;
use mem_testkit::TestContext;
use parking_lot::Mutex;

const MIB: u64 = 1 << 20;

/// Churn a scene, defragment it on the transfer queue, verify every moved
/// byte on the GPU, and measure (see the source's header for the table).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Size of the built-in scene (1.0 = a few hundred MB).
    #[arg(long, default_value_t = 0.25)]
    scale: f32,
    /// Copies of the scene's assets loaded side by side (more, smaller
    /// holes to fill).
    #[arg(long, default_value_t = 4)]
    copies: u32,
    /// Give requests of at least this many MiB memory of their own (the
    /// allocator's `own_memory_threshold`; 1 was the default before large
    /// requests shared blocks). By default every request below a quarter of
    /// a block is placed in blocks, so large textures fragment blocks too.
    #[arg(long, value_name = "MIB")]
    own_memory_mib: Option<u64>,
    /// Churn rounds (free and reload a random half of the assets).
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Share of the assets streamed out after the churn, in percent.
    #[arg(long, default_value_t = 50)]
    stream_out_percent: u32,
    /// Seed of the churn's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bytes a defragmentation pass may move, in MiB.
    #[arg(long, default_value_t = 64)]
    budget_mib: u64,
    /// Passes at most.
    #[arg(long, default_value_t = 64)]
    max_passes: u32,
    /// Passes never create a block to move data into
    /// (`DefragmentationBudget::new_blocks` off): they only empty blocks
    /// into the holes of others.
    #[arg(long)]
    no_new_blocks: bool,
    /// Staging ring size in MiB (its memory counts as committed and live
    /// in the table).
    #[arg(long, default_value_t = 8)]
    ring_size: u64,
    /// Where the memory maps (before.png, after.png) go.
    #[arg(long, default_value = "target/defragment")]
    out_dir: PathBuf,
    /// Run under VK_LAYER_KHRONOS_validation with synchronization
    /// validation (default: on in debug builds).
    #[arg(long, overrides_with = "no_validation")]
    validation: bool,
    /// Run without the validation layer.
    #[arg(long)]
    no_validation: bool,
}

/// What an asset slot holds the data of.
#[derive(Clone, Copy, Debug)]
enum Source {
    Vertices(usize),
    Indices(usize),
    Texture(usize),
}

/// A loaded asset.
enum Loaded {
    Buffer(Buffer),
    Image(Image),
}

impl Loaded {
    fn as_ref(&self) -> ResourceRef<'_> {
        match self {
            Loaded::Buffer(b) => ResourceRef::Buffer(b),
            Loaded::Image(i) => ResourceRef::Image(i),
        }
    }
}

/// xorshift64*: the churn's choices, reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[derive(Default)]
struct Report {
    committed_before: u64,
    live_before: u64,
    committed_after: u64,
    live_after: u64,
    blocks_before: usize,
    blocks_after: usize,
    passes: u32,
    moves: u64,
    bytes_moved: u64,
    blocks_created: u32,
    bytes_created: u64,
    /// Highest committed bytes right after a pass began (its new block
    /// made, its sources not yet freed).
    peak_during: u64,
    pass_ms: Vec<f64>,
    raw_copy_bytes: u64,
    raw_copy_ms: f64,
    raw_copy_cold_ms: f64,
    verified_bytes: u64,
    mismatches: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let validation = if args.no_validation {
        false
    } else {
        args.validation || cfg!(debug_assertions)
    };
    match run(&args, validation) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn run(args: &Args, validation: bool) -> Result<ExitCode, Error> {
    if args.budget_mib == 0 || args.ring_size == 0 {
        return Err("--budget-mib and --ring-size must be at least 1".into());
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let scene = Scene::generate_default(args.scale);
    let ctx = TestContext::builder().validation(validation).build();
    let result = on_device(args, &scene, &ctx);
    let messages = ctx.message_count();
    for m in ctx.clear_messages().iter().take(10) {
        eprintln!("validation: {m}");
    }
    ctx.finish();
    let report = result?;
    print_report(args, &report, validation, messages);
    Ok(if report.mismatches > 0 || messages > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn on_device(args: &Args, scene: &Scene, ctx: &TestContext) -> Result<Report, Error> {
    // SAFETY: the context's handles are valid and outlive the allocator,
    // the manager and the belt, which this function drops before returning.
    let allocator = Arc::new(unsafe {
        Allocator::new(AllocatorCreateInfo {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            memory_budget: false,
            allocation_callbacks: None,
            config: AllocatorConfig {
                own_memory_threshold: args
                    .own_memory_mib
                    .map_or(AllocatorConfig::default().own_memory_threshold, |mib| {
                        mib.saturating_mul(MIB)
                    }),
                ..AllocatorConfig::default()
            },
        })
    }?);
    // SAFETY: as above.
    let res = Arc::new(unsafe {
        ResourceManager::new(ResourceManagerCreateInfo::new(
            ctx.instance(),
            ctx.physical_device(),
            ctx.device(),
            allocator.clone(),
        ))
    });
    let (transfer, tqueue) = ctx.transfer_queue();
    let (graphics, _) = ctx.graphics_queue();
    // SAFETY: handles from the context; nothing else submits to this queue
    // while the belt lives, except `one_shot` below, which takes the
    // context's queue lock while the belt is idle.
    let mut belt = unsafe {
        StagingBelt::new(
            res.clone(),
            ctx.instance(),
            ctx.physical_device(),
            SharedQueue {
                family: transfer,
                queue: tqueue,
                lock: Arc::new(Mutex::new(())),
            },
            graphics,
            StagingBeltConfig::with_ring_size(args.ring_size * MIB),
        )
    }?;
    // With a transfer family apart from the engine's, the resources are
    // shared so the belt may move them (EXCLUSIVE ones are refused).
    let sharing = if transfer == graphics {
        Sharing::Exclusive
    } else {
        Sharing::concurrent([graphics, transfer])
    };
    let texture_bytes: Vec<Vec<u8>> = scene.textures.iter().map(|t| t.mips.concat()).collect();
    let sources: Vec<Source> = (0..args.copies.max(1))
        .flat_map(|_| {
            (0..scene.meshes.len())
                .flat_map(|m| [Source::Vertices(m), Source::Indices(m)])
                .chain((0..scene.textures.len()).map(Source::Texture))
        })
        .filter(|s| !data_of(scene, &texture_bytes, *s).is_empty())
        .collect();
    let mut slots: Vec<Option<Loaded>> = sources.iter().map(|_| None).collect();
    let result = churn_and_defragment(
        args,
        scene,
        ctx,
        &allocator,
        &res,
        &mut belt,
        &sharing,
        &texture_bytes,
        &sources,
        &mut slots,
    );
    // Teardown on every path: wait for the belt, destroy what is loaded.
    let _ = belt.finish();
    drop(belt);
    let _ = res.collect();
    for l in slots.into_iter().flatten() {
        // SAFETY: the belt finished every batch; nothing else used them.
        unsafe {
            let _ = match l {
                Loaded::Buffer(b) => res.destroy_resource(Resource::Buffer(b)),
                Loaded::Image(i) => res.destroy_resource(Resource::Image(i)),
            };
        }
    }
    result
}

fn data_of<'a>(scene: &'a Scene, textures: &'a [Vec<u8>], s: Source) -> &'a [u8] {
    match s {
        Source::Vertices(m) => scene.meshes[m].vertex_bytes(),
        Source::Indices(m) => scene.meshes[m].index_bytes(),
        Source::Texture(t) => &textures[t],
    }
}

#[allow(clippy::too_many_arguments)]
fn load(
    scene: &Scene,
    res: &ResourceManager,
    belt: &mut StagingBelt,
    sharing: &Sharing,
    textures: &[Vec<u8>],
    s: Source,
) -> Result<Loaded, Error> {
    let data = data_of(scene, textures, s);
    let copy = vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST;
    Ok(match s {
        Source::Vertices(m) | Source::Indices(m) => {
            let (usage, what) = match s {
                Source::Vertices(_) => (vk::BufferUsageFlags::VERTEX_BUFFER, "vertices"),
                _ => (vk::BufferUsageFlags::INDEX_BUFFER, "indices"),
            };
            let b = res.create_buffer(
                &BufferDesc::new(data.len() as u64, usage | copy, MemoryUsage::GpuOnly)
                    .sharing(sharing.clone())
                    .name(format!("{} {what}", scene.meshes[m].name)),
            )?;
            let _ = belt.upload_buffer(&b, 0, data)?;
            Loaded::Buffer(b)
        }
        Source::Texture(t) => {
            let tex = &scene.textures[t];
            let i = res.create_image(
                &ImageDesc::texture_2d(tex.format, tex.width, tex.height, tex.mip_levels())
                    .usage(
                        vk::ImageUsageFlags::SAMPLED
                            | vk::ImageUsageFlags::TRANSFER_SRC
                            | vk::ImageUsageFlags::TRANSFER_DST,
                    )
                    .sharing(sharing.clone())
                    .name(format!("texture {}", tex.name)),
            )?;
            let _ = belt.upload_image(&i, data, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)?;
            Loaded::Image(i)
        }
    })
}

fn unload(res: &ResourceManager, l: Loaded) {
    // SAFETY: callers finish the belt first; nothing else uses the assets.
    unsafe {
        let _ = match l {
            Loaded::Buffer(b) => res.destroy_resource(Resource::Buffer(b)),
            Loaded::Image(i) => res.destroy_resource(Resource::Image(i)),
        };
    }
}

/// Committed and live (requested) bytes, after giving back empty blocks
/// and cached memory (not fragmentation).
fn measure(allocator: &Allocator) -> (u64, u64) {
    allocator.trim();
    let s = allocator.stats();
    (s.total.committed_bytes, s.total.requested_bytes)
}

#[allow(clippy::too_many_arguments)]
fn churn_and_defragment(
    args: &Args,
    scene: &Scene,
    ctx: &TestContext,
    allocator: &Allocator,
    res: &ResourceManager,
    belt: &mut StagingBelt,
    sharing: &Sharing,
    textures: &[Vec<u8>],
    sources: &[Source],
    slots: &mut [Option<Loaded>],
) -> Result<Report, Error> {
    let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for (i, &s) in sources.iter().enumerate() {
        slots[i] = Some(load(scene, res, belt, sharing, textures, s)?);
    }
    belt.finish()?;
    let mut order: Vec<usize> = (0..slots.len()).collect();
    for _ in 0..args.rounds {
        rng.shuffle(&mut order);
        let half = &order[..order.len() / 2];
        for &i in half {
            if let Some(l) = slots[i].take() {
                unload(res, l);
            }
        }
        let mut back = half.to_vec();
        rng.shuffle(&mut back);
        for i in back {
            slots[i] = Some(load(scene, res, belt, sharing, textures, sources[i])?);
        }
        belt.finish()?;
    }
    rng.shuffle(&mut order);
    let out = order.len() * args.stream_out_percent.min(100) as usize / 100;
    for &i in &order[..out] {
        if let Some(l) = slots[i].take() {
            unload(res, l);
        }
    }
    let mut report = Report::default();
    (report.committed_before, report.live_before) = measure(allocator);
    let maps = allocator.block_maps();
    report.blocks_before = maps.len();
    render_block_map(&maps, 1024).save_png(args.out_dir.join("before.png"))?;

    let handles_before: Vec<Option<u64>> = slots.iter().map(|s| s.as_ref().map(raw)).collect();
    let budget = DefragmentationBudget {
        max_bytes_per_pass: args.budget_mib * MIB,
        new_blocks: !args.no_new_blocks,
        ..DefragmentationBudget::default()
    };
    let live: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
    let mut largest_pass = 0u64;
    while report.passes < args.max_passes {
        let start = Instant::now();
        let refs: Vec<ResourceRef<'_>> = live
            .iter()
            .map(|&i| slots[i].as_ref().expect("live").as_ref())
            .collect();
        let pass = belt.begin_defragmentation(&refs, &budget)?;
        drop(refs);
        if pass.is_empty() {
            belt.cancel_defragmentation(pass)?;
            break;
        }
        belt.wait(pass.ticket())?;
        report.pass_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let stats = pass.stats();
        report.passes += 1;
        report.moves += u64::from(stats.moves);
        report.bytes_moved += stats.bytes_moved;
        report.blocks_created += stats.blocks_created;
        report.bytes_created += stats.bytes_created;
        report.peak_during = report
            .peak_during
            .max(allocator.stats().total.committed_bytes);
        largest_pass = largest_pass.max(stats.bytes_moved);
        let after = pass.retire_point();
        for m in pass.into_moves() {
            let slot = &mut slots[live[m.index]];
            let old = match (slot.take().expect("live"), m.resource) {
                (Loaded::Buffer(b), Resource::Buffer(new)) => {
                    *slot = Some(Loaded::Buffer(new));
                    Resource::Buffer(b)
                }
                (Loaded::Image(i), Resource::Image(new)) => {
                    *slot = Some(Loaded::Image(new));
                    Resource::Image(i)
                }
                _ => return Err("a move changed the resource's kind".into()),
            };
            // SAFETY: the pass's copy is the old resource's last GPU use
            // (the example draws nothing), done at `after`; the belt's
            // semaphore outlives the collect below.
            unsafe { res.retire_moved(old, after) }.map_err(|r| r.into_parts().0)?;
        }
        res.collect()?;
    }
    (report.committed_after, report.live_after) = measure(allocator);
    let maps = allocator.block_maps();
    report.blocks_after = maps.len();
    render_block_map(&maps, 1024).save_png(args.out_dir.join("after.png"))?;

    // Every moved resource, read back on the GPU through the belt.
    for (i, slot) in slots.iter().enumerate() {
        let Some(l) = slot else { continue };
        if handles_before[i] == Some(raw(l)) {
            continue;
        }
        let expected = data_of(scene, textures, sources[i]);
        let mut got = vec![0u8; expected.len()];
        match l {
            Loaded::Buffer(b) => belt.read_buffer(b, 0, &mut got)?,
            Loaded::Image(img) => belt.read_image(img, ImageSubresources::all(), &mut got)?,
        }
        report.verified_bytes += got.len() as u64;
        if got != expected {
            report.mismatches += 1;
            eprintln!("mismatch: {:?}", l.as_ref().name());
        }
    }

    // A raw vkCmdCopyBuffer of the largest pass's bytes, same device, same
    // run: submit and wait included, as in a pass's time (which also plans,
    // creates and binds the new resources).
    if largest_pass > 0 {
        report.raw_copy_bytes = largest_pass;
        let copy = vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST;
        let desc = BufferDesc::new(largest_pass, copy, MemoryUsage::GpuOnly);
        let (src, dst) = (res.create_buffer(&desc)?, res.create_buffer(&desc)?);
        belt.finish()?;
        let device = ctx.device().clone();
        let copy_once = || {
            let start = Instant::now();
            ctx.one_shot(belt.queue_family(), |cmd| {
                // SAFETY: recording; both buffers alive and idle.
                unsafe {
                    device.cmd_copy_buffer(
                        cmd,
                        src.handle(),
                        dst.handle(),
                        &[vk::BufferCopy {
                            src_offset: 0,
                            dst_offset: 0,
                            size: largest_pass,
                        }],
                    )
                }
            });
            start.elapsed().as_secs_f64() * 1e3
        };
        // The first copy writes memory never written before (page faults
        // on a CPU driver), as a pass into a block it created does; the
        // others are warm, as a pass into holes of blocks in use. The
        // median of three warm copies.
        report.raw_copy_cold_ms = copy_once();
        let mut ms = [copy_once(), copy_once(), copy_once()];
        ms.sort_by(f64::total_cmp);
        report.raw_copy_ms = ms[1];
        unload(res, Loaded::Buffer(src));
        unload(res, Loaded::Buffer(dst));
    }
    Ok(report)
}

fn raw(l: &Loaded) -> u64 {
    match l {
        Loaded::Buffer(b) => vk::Handle::as_raw(b.handle()),
        Loaded::Image(i) => vk::Handle::as_raw(i.handle()),
    }
}

fn print_report(args: &Args, r: &Report, validation: bool, messages: usize) {
    let mib = |b: u64| b as f64 / MIB as f64;
    let share = |c: u64, l: u64| {
        if l == 0 {
            0.0
        } else {
            100.0 * c as f64 / l as f64
        }
    };
    let total_ms = r.pass_ms.iter().fold(0.0, |a, b| a + b);
    let max_ms = r.pass_ms.iter().copied().fold(0.0, f64::max);
    let per_ms = |bytes: u64, ms: f64| if ms > 0.0 { bytes as f64 / ms } else { 0.0 };
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| committed / live before | {:.1} MiB / {:.1} MiB ({:.1}% of live, {} blocks) |",
        mib(r.committed_before),
        mib(r.live_before),
        share(r.committed_before, r.live_before),
        r.blocks_before
    );
    println!(
        "| committed / live after | {:.1} MiB / {:.1} MiB ({:.1}% of live, {} blocks) |",
        mib(r.committed_after),
        mib(r.live_after),
        share(r.committed_after, r.live_after),
        r.blocks_after
    );
    println!(
        "| passes ({} MiB budget), moves, bytes moved | {}, {}, {:.1} MiB |",
        args.budget_mib,
        r.passes,
        r.moves,
        mib(r.bytes_moved)
    );
    println!(
        "| blocks created by the passes, their bytes; peak committed during the passes | {}, {:.1} MiB; {:.1} MiB |",
        r.blocks_created,
        mib(r.bytes_created),
        mib(r.peak_during)
    );
    println!(
        "| pass time, total / longest | {:.2} ms / {:.2} ms |",
        total_ms, max_ms
    );
    println!(
        "| bytes moved per ms (passes) | {:.0} |",
        per_ms(r.bytes_moved, total_ms)
    );
    println!(
        "| raw vkCmdCopyBuffer of {:.1} MiB, per ms | {:.2} ms, {:.0} |",
        mib(r.raw_copy_bytes),
        r.raw_copy_ms,
        per_ms(r.raw_copy_bytes, r.raw_copy_ms)
    );
    println!(
        "| the same, first copy into the new buffers, per ms | {:.2} ms, {:.0} |",
        r.raw_copy_cold_ms,
        per_ms(r.raw_copy_bytes, r.raw_copy_cold_ms)
    );
    println!(
        "| verified bytes of moved resources, mismatches | {:.1} MiB, {} |",
        mib(r.verified_bytes),
        r.mismatches
    );
    println!(
        "| validation (sync) messages | {} |",
        if validation {
            messages.to_string()
        } else {
            "off".to_owned()
        }
    );
    println!(
        "memory maps: {}, {}",
        args.out_dir.join("before.png").display(),
        args.out_dir.join("after.png").display()
    );
}
