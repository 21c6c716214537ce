//! A picture of fragmentation: runs a synthetic allocation workload (a level
//! load, then streaming churn) through mem-core and writes every memory
//! block as a band of a PNG (allocations coloured by kind, free space dark)
//! plus the allocator's detailed JSON dump.
//!
//! By default it runs on the fake device with the NVIDIA H100's memory
//! layout (five memory types, two heaps); `--table NAME` picks another of
//! the shipped device tables (`lavapipe-mesa-22.3`, `amd-rx6600-no-rebar`,
//! `mali-g715-android`, ...).
//!
//! ```text
//! cargo run --release --example memory_report -- [--table nvidia-h100] [--out target/memory_map.png]
//!     [--json target/memory_map.json] [--seed 1]
//! ```

use std::process::ExitCode;

use ash::vk;
use clap::Parser;
use gpumem::core::fake::FakeDevice;
use gpumem::core::{
    Allocation, AllocationDesc, Allocator, AllocatorConfig, MemoryUsage, ResourceClass,
};

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
        let names: Vec<&str> = gpumem::core::fake::DEVICE_TABLES
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
    let allocator = Allocator::with_device(Box::new(device), AllocatorConfig::default());
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
    };
    // A level load, then streaming: free a random third, allocate more.
    for n in 0..1500 {
        allocate(n, &mut live, &mut next);
    }
    for round in 0..4u32 {
        for _ in 0..live.len() / 3 {
            let i = (next() % live.len() as u64) as usize;
            allocator.free(live.swap_remove(i)).expect("own allocation");
        }
        for n in 0..300 {
            allocate(10_000 * (round + 1) + n, &mut live, &mut next);
        }
    }
    if let Err(e) = allocator.validate() {
        eprintln!("error: allocator invariant broken: {e}");
        return ExitCode::from(2);
    }
    let maps = allocator.block_maps();
    let image = mem_demo::memory_map::render_block_map(&maps, 1600);
    if let Err(e) = image.save_png(&args.out) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    let json = allocator.dump_json(true);
    if let Err(e) = std::fs::write(&args.json, json) {
        eprintln!("error: writing {}: {e}", args.json);
        return ExitCode::from(1);
    }
    let s = allocator.stats();
    println!(
        "{}: {} live allocations in {} blocks + {} dedicated; {:.1} MiB requested, {:.1} MiB committed ({:.1}% efficient)",
        args.table,
        s.total.allocation_count,
        s.total.block_count,
        s.total.dedicated_count,
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
    for a in live {
        allocator.free(a).expect("own allocation");
    }
    ExitCode::SUCCESS
}
