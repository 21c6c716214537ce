//! A picture of fragmentation: runs a synthetic allocation workload (a level
//! load, then streaming churn) through mem-core and writes every memory
//! block as a band of a PNG (allocations coloured by kind, free space dark)
//! plus the allocator's detailed JSON dump, and with `--html` the memory
//! viewer's page: the dump after the churn, committed and live bytes over
//! the whole run, and the leak report once everything was freed.
//!
//! By default it runs on the fake device with the NVIDIA H100's memory
//! layout (five memory types, two heaps); `--table NAME` picks another of
//! the shipped device tables (`lavapipe-mesa-22.3`, `amd-rx6600-no-rebar`,
//! `mali-g715-android`, ...).
//!
//! ```text
//! cargo run --release --example memory_report -- [--table nvidia-h100] [--out target/memory_map.png]
//!     [--json target/memory_map.json] [--seed 1] [--html target/memory_report.html]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ash::vk;
use clap::Parser;
use gpumem::memory::fake::FakeDevice;
use gpumem::memory::{
    Allocation, AllocationDesc, Allocator, AllocatorConfig, MemoryUsage, ResourceClass,
};
use gpumem::viewer::{write_html_report, ReportOptions, Timeline};

/// Run a synthetic level load and streaming churn through mem-core on a fake
/// device and draw every memory block.
#[derive(Parser, Debug)]
struct Args {
    /// The device table whose heaps and memory types the fake device has
    /// (an unknown name lists the known ones).
    #[arg(long, default_value = "nvidia-h100")]
    table: String,
    /// Where to write the picture of the memory blocks (PNG).
    #[arg(long, default_value = "target/memory_map.png")]
    out: String,
    /// Where to write the allocator's detailed JSON dump.
    #[arg(long, default_value = "target/memory_map.json")]
    json: String,
    /// Seed of the workload's random sizes and frees.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the memory viewer's HTML page here (open it in a
    /// browser; it needs no network).
    #[arg(long)]
    html: Option<PathBuf>,
}

/// The kinds of allocation the workload makes: name prefix, usage, class,
/// size range in bytes.
const KINDS: &[(&str, MemoryUsage, ResourceClass, u64, u64)] = &[
    (
        "vertex",
        MemoryUsage::GpuOnly,
        ResourceClass::Linear,
        16 << 10,
        4 << 20,
    ),
    (
        "index",
        MemoryUsage::GpuOnly,
        ResourceClass::Linear,
        4 << 10,
        1 << 20,
    ),
    (
        "texture",
        MemoryUsage::GpuOnly,
        ResourceClass::Optimal,
        64 << 10,
        22 << 20,
    ),
    (
        "uniform",
        MemoryUsage::Dynamic,
        ResourceClass::Linear,
        256,
        64 << 10,
    ),
    (
        "staging",
        MemoryUsage::Upload,
        ResourceClass::Linear,
        64 << 10,
        8 << 20,
    ),
    (
        "readback",
        MemoryUsage::Readback,
        ResourceClass::Linear,
        4 << 10,
        1 << 20,
    ),
];

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(device) = FakeDevice::builtin(&args.table) else {
        let names: Vec<&str> = gpumem::memory::fake::DEVICE_TABLES
            .iter()
            .map(|(n, _)| *n)
            .collect();
        eprintln!(
            "error: no device table {:?}; known: {}",
            args.table,
            names.join(", ")
        );
        return ExitCode::from(1);
    };
    if let Some(html) = args.html.as_deref().filter(|p| p.is_dir()) {
        eprintln!(
            "error: --html {}: is a directory; name the HTML file to write",
            html.display()
        );
        return ExitCode::from(1);
    }
    let allocator = Allocator::with_device(Box::new(device), AllocatorConfig::default());
    // Committed and live bytes after every few operations, for the page.
    let timeline = std::cell::RefCell::new(Timeline::new());
    let operations = std::cell::Cell::new(0u64);
    let sample = || {
        operations.set(operations.get() + 1);
        if args.html.is_some() && operations.get() % 8 == 0 {
            let t = allocator.stats().total;
            timeline
                .borrow_mut()
                .sample(t.committed_bytes, t.requested_bytes);
        }
    };
    let mark = |label: &str| {
        if args.html.is_some() {
            timeline.borrow_mut().mark(label);
        }
    };
    let mut rng = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<Allocation> = Vec::new();
    let allocate = |n: u32, live: &mut Vec<Allocation>, next: &mut dyn FnMut() -> u64| {
        let (kind, usage, class, lo, hi) = KINDS[(next() % KINDS.len() as u64) as usize];
        // Log-uniform size in [lo, hi].
        let t = (next() % 10_000) as f64 / 10_000.0;
        let size = (lo as f64 * (hi as f64 / lo as f64).powf(t)) as u64;
        let req = vk::MemoryRequirements {
            size,
            alignment: 256,
            memory_type_bits: u32::MAX,
        };
        let name = format!("{kind} #{n}");
        match allocator.allocate(&AllocationDesc::new(req, usage).class(class).name(&name)) {
            Ok(a) => live.push(a),
            Err(e) => eprintln!("note: {name} ({size} bytes) failed: {e}"),
        }
        sample();
    };
    // A level load, then streaming: free a random third, allocate more.
    for n in 0..1500 {
        allocate(n, &mut live, &mut next);
    }
    mark("level loaded");
    for round in 0..4u32 {
        for _ in 0..live.len() / 3 {
            let i = (next() % live.len() as u64) as usize;
            allocator.free(live.swap_remove(i)).expect("own allocation");
            sample();
        }
        for n in 0..300 {
            allocate(10_000 * (round + 1) + n, &mut live, &mut next);
        }
        mark(&format!("streaming {}", round + 1));
    }
    if let Err(e) = allocator.validate() {
        eprintln!("error: allocator invariant broken: {e}");
        return ExitCode::from(2);
    }
    // The state after the churn, then everything freed (the timeline goes
    // on through the frees), then the files.
    let maps = allocator.block_maps();
    let json = allocator.dump_json(true);
    let s = allocator.stats();
    mark("dump taken");
    for a in live {
        allocator.free(a).expect("own allocation");
        sample();
    }
    mark("all freed");
    let image = mem_demo::memory_map::render_block_map(&maps, 1600);
    if let Err(e) = image.save_png(&args.out) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    if let Err(e) = std::fs::write(&args.json, &json) {
        eprintln!("error: writing {}: {e}", args.json);
        return ExitCode::from(1);
    }
    println!(
        "{}: {} live allocations in {} blocks + {} dedicated; {:.1} MiB requested, {:.1} MiB committed ({:.1}% efficient)",
        args.table,
        s.total.allocation_count,
        s.total.block_count,
        s.total.own_memory_count,
        s.total.requested_bytes as f64 / (1 << 20) as f64,
        s.total.committed_bytes as f64 / (1 << 20) as f64,
        s.total.efficiency * 100.0
    );
    println!(
        "wrote {} ({} blocks) and {}",
        args.out,
        maps.len(),
        args.json
    );
    if let Some(path) = &args.html {
        // The leak report once everything was freed: empty unless the
        // workload lost an allocation.
        let leaks = match gpumem::viewer::serde_json::to_value(allocator.leak_report()) {
            Ok(leaks) => leaks,
            Err(e) => {
                eprintln!("error: the leak report: {e}");
                return ExitCode::from(1);
            }
        };
        let options = ReportOptions::new()
            .title(format!(
                "memory_report on {} (seed {}): after the level load and streaming",
                args.table, args.seed
            ))
            .timeline(timeline.into_inner())
            .leaks(leaks);
        match write_html_report(path, &json, &options) {
            Ok(counts) => println!(
                "wrote {} ({} blocks, {} allocations): open it in a browser",
                path.display(),
                counts.blocks,
                counts.allocations
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
