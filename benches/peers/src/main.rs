//! gpumem-peers: mem-core against gpu-allocator, gpu-alloc and VMA (vk-mem),
//! side by side in one run on lavapipe, from raw memory requirements.
//!
//! ```text
//! cargo run --release -- [--quick] [--variants] [--only NAME,NAME] [--reps N] [--json PATH] [--md PATH]
//! cargo run --release -- --scale [--quick] [--reps N] [--plot PNG] [--csv CSV] [--json PATH] [--md PATH]
//! ```
//!
//! Every allocator gets the same seeded trace of (size, alignment,
//! memoryTypeBits = all, linear/optimal, "GPU only") requests. Committed bytes
//! and `vkAllocateMemory` calls are counted by one hook in the `ash::Device`
//! function table that all four allocators call through (see `vkctx.rs`);
//! each allocator's own report is recorded beside it as a cross-check.

mod peers;
mod plot;
mod trace;
mod vkctx;

use std::time::{Duration, Instant};

use clap::Parser;

use peers::{Peer, SelfReport};
use trace::{Batch, Trace};
use vkctx::VkCtx;

const MIB: f64 = 1024.0 * 1024.0;

/// CPU time of this thread, in ns. Unlike wall time it stops while the
/// thread is descheduled, so other processes on a shared machine do not add
/// their time slices to a batch.
#[inline(always)]
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Cost of one timed empty batch (two clock reads of each kind), in ns of
/// thread CPU time: subtracted from every batch.
fn timer_overhead_ns() -> u64 {
    let mut v: Vec<u64> = (0..20_001)
        .map(|_| {
            let c0 = thread_cpu_ns();
            let w0 = Instant::now();
            let w = w0.elapsed();
            std::hint::black_box(w);
            thread_cpu_ns() - c0
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

static TIMER_OVERHEAD: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

#[derive(Clone, Debug, Default, serde::Serialize)]
struct RunResult {
    /// Steady-state thread CPU ns per allocation (timer overhead subtracted).
    alloc_ns: f64,
    /// Steady-state thread CPU ns per free.
    free_ns: f64,
    /// The same by wall clock (includes time slices lost to other processes).
    alloc_wall_ns: f64,
    free_wall_ns: f64,
    /// First pass, thread CPU ms.
    first_pass_ms: f64,
    /// First pass, wall ms.
    first_pass_wall_ms: f64,
    /// Warm-up (first pass) cost per allocation.
    first_pass_ns_per_alloc: f64,
    peak_committed: u64,
    allocate_calls: u64,
    /// Of those, failed ones (an allocator retrying smaller blocks).
    allocate_failures: u64,
    free_calls: u64,
    /// Hook's committed bytes at the end of the first pass.
    committed_after_first_pass: u64,
    /// The allocator's own report at the same moment.
    self_report_after_first_pass: SelfReport,
    /// `vkAllocateMemory` calls during the steady state (after the first pass).
    steady_allocate_calls: u64,
    /// `vkFreeMemory` calls during the steady state.
    steady_free_calls: u64,
    /// Latency run only (`per_op`): 99th percentile of single steady-state
    /// allocations, wall ns.
    alloc_p99_ns: f64,
    /// Latency run only: the slowest single steady-state allocation, wall ns.
    alloc_max_ns: f64,
    /// Bytes still allocated after the allocator was dropped (leak check).
    committed_after_drop: u64,
    error: Option<String>,
    /// Operations replayed before the error.
    ops_before_error: Option<usize>,
    /// The allocator's own state at the error (mem-core only).
    diag_at_error: Option<serde_json::Value>,
    /// Defragmentation passes after the steady state (mem-core, not in the
    /// latency run); the columns above are taken before them.
    defrag: Option<peers::DefragOutcome>,
}

/// Replays one batch; on failure returns how many of its operations were done.
#[inline(always)]
fn exec<P: Peer>(p: &mut P, b: &Batch, slots: &mut [Option<P::H>]) -> Result<(), (usize, String)> {
    match b {
        Batch::Alloc(v) => {
            for (i, &(slot, ref r)) in v.iter().enumerate() {
                match p.alloc(r) {
                    Ok(h) => slots[slot as usize] = Some(h),
                    Err(e) => return Err((i, e)),
                }
            }
        }
        Batch::Free(v) => {
            for &slot in v {
                let h = slots[slot as usize]
                    .take()
                    .expect("trace frees a live slot");
                p.free(h);
            }
        }
    }
    Ok(())
}

fn batch_len(b: &Batch) -> usize {
    match b {
        Batch::Alloc(v) => v.len(),
        Batch::Free(v) => v.len(),
    }
}

fn teardown<P: Peer>(p: &mut P, slots: &mut [Option<P::H>]) {
    for s in slots.iter_mut() {
        if let Some(h) = s.take() {
            p.free(h);
        }
    }
    p.finish();
}

/// Replays an allocation batch timing each allocation by wall clock.
fn exec_timed<P: Peer>(
    p: &mut P,
    v: &[(u32, peers::Req)],
    slots: &mut [Option<P::H>],
    lat: &mut Vec<u64>,
) -> Result<(), (usize, String)> {
    for (i, &(slot, ref r)) in v.iter().enumerate() {
        let w0 = Instant::now();
        let h = p.alloc(r);
        lat.push(w0.elapsed().as_nanos() as u64);
        match h {
            Ok(h) => slots[slot as usize] = Some(h),
            Err(e) => return Err((i, e)),
        }
    }
    Ok(())
}

/// Replays `t` through `p`. With `per_op`, every steady-state allocation is
/// timed on its own (for p99 and max); the batch times of such a run carry
/// the clock reads and are not reported.
fn run<P: Peer>(mut p: P, t: &Trace, per_op: bool) -> RunResult {
    let overhead = *TIMER_OVERHEAD.get_or_init(timer_overhead_ns);
    vkctx::reset_counters();
    let mut r = RunResult::default();
    let mut slots: Vec<Option<P::H>> = (0..t.slots).map(|_| None).collect();
    let warm_allocs: usize = t
        .warm
        .iter()
        .map(|b| if let Batch::Alloc(v) = b { v.len() } else { 0 })
        .sum();
    let mut done = 0usize;
    let c0 = thread_cpu_ns();
    let w0 = Instant::now();
    for b in &t.warm {
        if let Err((i, e)) = exec(&mut p, b, &mut slots) {
            r.error = Some(format!("first pass: {e}"));
            r.ops_before_error = Some(done + i);
            break;
        }
        done += batch_len(b);
    }
    let wall = w0.elapsed();
    let cpu = thread_cpu_ns().saturating_sub(c0 + overhead);
    r.first_pass_ms = cpu as f64 / 1e6;
    r.first_pass_wall_ms = wall.as_secs_f64() * 1e3;
    r.first_pass_ns_per_alloc = cpu as f64 / warm_allocs.max(1) as f64;
    r.committed_after_first_pass = vkctx::counters().current;
    r.self_report_after_first_pass = p.self_report();
    let before_steady = vkctx::counters();
    let mut lat = Vec::new();
    if r.error.is_none() {
        let (mut ca, mut cf, mut wa, mut wf) = (0u64, 0u64, Duration::ZERO, Duration::ZERO);
        let (mut na, mut nf) = (0usize, 0usize);
        for b in &t.steady {
            let c0 = thread_cpu_ns();
            let w0 = Instant::now();
            let res = match b {
                Batch::Alloc(v) if per_op => exec_timed(&mut p, v, &mut slots, &mut lat),
                _ => exec(&mut p, b, &mut slots),
            };
            let w = w0.elapsed();
            let c = thread_cpu_ns().saturating_sub(c0 + overhead);
            if let Err((i, e)) = res {
                // Times so far stay (the failed batch is not counted).
                r.error = Some(format!("steady state: {e}"));
                r.ops_before_error = Some(done + i);
                break;
            }
            done += batch_len(b);
            match b {
                Batch::Alloc(v) => {
                    ca += c;
                    wa += w;
                    na += v.len();
                }
                Batch::Free(v) => {
                    cf += c;
                    wf += w;
                    nf += v.len();
                }
            }
        }
        r.alloc_ns = ca as f64 / na.max(1) as f64;
        r.free_ns = cf as f64 / nf.max(1) as f64;
        r.alloc_wall_ns = wa.as_nanos() as f64 / na.max(1) as f64;
        r.free_wall_ns = wf.as_nanos() as f64 / nf.max(1) as f64;
    }
    let after_steady = vkctx::counters();
    r.steady_allocate_calls = after_steady.allocate_calls - before_steady.allocate_calls;
    r.steady_free_calls = after_steady.free_calls - before_steady.free_calls;
    if !lat.is_empty() {
        lat.sort_unstable();
        r.alloc_p99_ns = lat[(lat.len() * 99 / 100).min(lat.len() - 1)] as f64;
        r.alloc_max_ns = *lat.last().unwrap() as f64;
    }
    if r.error.is_some() {
        r.diag_at_error = p.diag();
    }
    // The trace's own figures end here; defragmentation comes after them.
    let c = vkctx::counters();
    r.peak_committed = c.peak;
    r.allocate_calls = c.allocate_calls;
    r.allocate_failures = c.allocate_failures;
    if r.error.is_none() && !per_op {
        r.defrag = p.defragment(&mut slots);
    }
    teardown(&mut p, &mut slots);
    r.free_calls = vkctx::counters().free_calls;
    drop(slots);
    drop(p);
    r.committed_after_drop = vkctx::counters().current;
    r
}

fn run_named(name: &str, ctx: &VkCtx, t: &Trace, per_op: bool) -> RunResult {
    use gpu_alloc::UsageFlags as U;
    use vk_mem::AllocationCreateFlags as V;
    const MB: u64 = 1024 * 1024;
    match name {
        peers::MEM_CORE | peers::MEM_CORE_BUDDY | peers::MEM_CORE_OWN_MEMORY => run(
            peers::MemCore::new(ctx, mem_core_config(name).expect("a mem-core row")),
            t,
            per_op,
        ),
        peers::GPU_ALLOCATOR => run(
            peers::GpuAllocator::new(ctx, gpu_allocator::AllocationSizes::default()),
            t,
            per_op,
        ),
        peers::GPU_ALLOC => run(peers::GpuAlloc::new(ctx, U::FAST_DEVICE_ACCESS), t, per_op),
        peers::VMA => run(peers::Vma::new(ctx, V::empty()), t, per_op),
        peers::GPU_ALLOCATOR_GROW => run(
            peers::GpuAllocator::new(
                ctx,
                gpu_allocator::AllocationSizes::new(4 * MB, 4 * MB)
                    .with_max_device_memblock_size(256 * MB)
                    .with_max_host_memblock_size(256 * MB),
            ),
            t,
            per_op,
        ),
        peers::GPU_ALLOC_TRANSIENT => run(
            peers::GpuAlloc::new(ctx, U::FAST_DEVICE_ACCESS | U::TRANSIENT),
            t,
            per_op,
        ),
        peers::VMA_MIN_MEMORY => run(peers::Vma::new(ctx, V::STRATEGY_MIN_MEMORY), t, per_op),
        peers::VMA_MIN_TIME => run(peers::Vma::new(ctx, V::STRATEGY_MIN_TIME), t, per_op),
        _ => unreachable!(),
    }
}

/// The settings of mem-core's rows (`None` for a peer's).
fn mem_core_config(name: &str) -> Option<mem_core::AllocatorConfig> {
    const MB: u64 = 1024 * 1024;
    let default = mem_core::AllocatorConfig::default();
    Some(match name {
        peers::MEM_CORE => default,
        peers::MEM_CORE_BUDDY => mem_core::AllocatorConfig {
            placement: mem_core::BlockPlacement::Buddy,
            ..default
        },
        peers::MEM_CORE_OWN_MEMORY => mem_core::AllocatorConfig {
            own_memory_threshold: MB,
            max_empty_blocks_per_type: 1,
            ..default
        },
        _ => return None,
    })
}

/// `--fake TABLE`: mem-core's rows alone over mem-core's fake device with
/// a real GPU's memory table (`crates/mem-core/device-tables/`). Placement
/// depends only on the memory properties, so peak committed bytes and
/// `vkAllocateMemory` calls are what that GPU's driver would see; times
/// are not measured.
fn fake_bench(args: &Args, table: &str) {
    use std::fmt::Write;
    use std::sync::Arc;
    let scale = if args.quick { 10 } else { 1 };
    let mut traces = trace::peer_traces(scale);
    if let Some(only) = &args.traces {
        traces.retain(|t| only.split(',').any(|o| o == t.name));
    }
    let mut names: Vec<&str> = vec![peers::MEM_CORE];
    if args.variants {
        names.extend([peers::MEM_CORE_OWN_MEMORY, peers::MEM_CORE_BUDDY]);
    }
    if let Some(only) = &args.only {
        names.retain(|n| only.split(',').any(|o| o == *n));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### mem-core over the fake device with the `{table}` table ({})\n",
        mem_core_version()
    );
    let _ = writeln!(s, "Command: `{}`.\n", command_line());
    let _ = writeln!(
        s,
        "| trace | allocator | peak committed MiB | peak live MiB | efficiency | vkAllocateMemory all / steady |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
    let mut defrags = Vec::new();
    for t in &traces {
        for &name in &names {
            let fake = Arc::new(
                mem_core::fake::FakeDevice::builtin(table)
                    .unwrap_or_else(|| panic!("no device table {table}")),
            );
            let alloc = mem_core::Allocator::with_device(
                Box::new(fake.clone()),
                mem_core_config(name).expect("a mem-core row"),
            );
            let committed = || fake.heap_used().iter().sum::<u64>();
            let mut slots: Vec<Option<mem_core::Allocation>> = (0..t.slots).map(|_| None).collect();
            let mut peak = 0u64;
            let mut warm_calls = 0;
            let mut error = None;
            'replay: for (steady, batch) in t
                .warm
                .iter()
                .map(|b| (false, b))
                .chain(t.steady.iter().map(|b| (true, b)))
            {
                if steady && warm_calls == 0 {
                    warm_calls = fake.allocate_calls();
                }
                match batch {
                    Batch::Alloc(v) => {
                        for &(slot, ref r) in v {
                            let req = ash::vk::MemoryRequirements {
                                size: r.size,
                                alignment: r.align,
                                memory_type_bits: !0,
                            };
                            let class = if r.optimal {
                                mem_core::ResourceClass::Optimal
                            } else {
                                mem_core::ResourceClass::Linear
                            };
                            let desc =
                                mem_core::AllocationDesc::new(req, mem_core::MemoryUsage::GpuOnly)
                                    .class(class);
                            match alloc.allocate(&desc) {
                                Ok(a) => slots[slot as usize] = Some(a),
                                Err(e) => {
                                    error = Some(e.to_string());
                                    break 'replay;
                                }
                            }
                            peak = peak.max(committed());
                        }
                    }
                    Batch::Free(v) => {
                        for &slot in v {
                            let a = slots[slot as usize]
                                .take()
                                .expect("trace frees a live slot");
                            alloc.free(a).expect("mem-core free");
                        }
                    }
                }
            }
            let calls = fake.allocate_calls();
            if error.is_none() {
                defrags.push((
                    t.name.clone(),
                    name,
                    peers::defragment_mem_core(&alloc, &mut slots),
                ));
            }
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {:.1}% | {} / {} |{}",
                t.name,
                name,
                peak as f64 / MIB,
                t.peak_live_requested as f64 / MIB,
                t.peak_live_requested as f64 / peak.max(1) as f64 * 100.0,
                calls,
                calls - warm_calls,
                error.map(|e| format!(" failed: {e}")).unwrap_or_default()
            );
            for a in slots.into_iter().flatten() {
                alloc.free(a).expect("mem-core free");
            }
        }
    }
    defrag_table(&mut s, defrags.iter().map(|(t, n, d)| (t.as_str(), *n, *d)));
    println!("{s}");
    if let Some(p) = &args.md {
        write_file(p, &s);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn median_u(v: Vec<u64>) -> u64 {
    median(v.into_iter().map(|x| x as f64).collect()) as u64
}

#[derive(Clone, Debug, Default, serde::Serialize)]
struct Median {
    alloc_ns: f64,
    free_ns: f64,
    first_pass_ms: f64,
    peak_committed: u64,
    efficiency: f64,
    allocate_calls: u64,
    alloc_wall_ns: f64,
    free_wall_ns: f64,
    first_pass_wall_ms: f64,
    /// Steady-state `vkAllocateMemory` calls.
    steady_allocate_calls: u64,
    /// Steady-state allocate + free, wall ns (one allocation and one free).
    alloc_free_wall_ns: f64,
    /// From the latency run: p99 and max of single steady-state
    /// allocations, wall ns.
    alloc_p99_ns: f64,
    alloc_max_ns: f64,
    error: Option<String>,
    ops_before_error: Option<usize>,
    /// The first run's defragmentation passes (committed bytes and moves are
    /// the same in every run).
    defrag: Option<peers::DefragOutcome>,
}

fn summarize(runs: &[RunResult], latency: Option<&RunResult>, peak_live: u64) -> Median {
    let peak_committed = median_u(runs.iter().map(|r| r.peak_committed).collect());
    Median {
        alloc_ns: median(runs.iter().map(|r| r.alloc_ns).collect()),
        free_ns: median(runs.iter().map(|r| r.free_ns).collect()),
        first_pass_ms: median(runs.iter().map(|r| r.first_pass_ms).collect()),
        peak_committed,
        efficiency: if peak_committed == 0 {
            0.0
        } else {
            peak_live as f64 / peak_committed as f64
        },
        allocate_calls: median_u(runs.iter().map(|r| r.allocate_calls).collect()),
        alloc_wall_ns: median(runs.iter().map(|r| r.alloc_wall_ns).collect()),
        free_wall_ns: median(runs.iter().map(|r| r.free_wall_ns).collect()),
        first_pass_wall_ms: median(runs.iter().map(|r| r.first_pass_wall_ms).collect()),
        steady_allocate_calls: median_u(runs.iter().map(|r| r.steady_allocate_calls).collect()),
        alloc_free_wall_ns: median(
            runs.iter()
                .map(|r| r.alloc_wall_ns + r.free_wall_ns)
                .collect(),
        ),
        alloc_p99_ns: latency.map_or(0.0, |r| r.alloc_p99_ns),
        alloc_max_ns: latency.map_or(0.0, |r| r.alloc_max_ns),
        error: runs.iter().find_map(|r| r.error.clone()),
        ops_before_error: runs.iter().find_map(|r| r.ops_before_error),
        defrag: runs.first().and_then(|r| r.defrag),
    }
}

#[derive(serde::Serialize)]
struct AllocatorResult {
    allocator: String,
    runs: Vec<RunResult>,
    /// The run that timed each steady-state allocation on its own.
    latency_run: Option<RunResult>,
    median: Median,
}

#[derive(serde::Serialize)]
struct TraceResult {
    trace: String,
    description: String,
    peak_live_requested: u64,
    peak_live_count: usize,
    warm_ops: usize,
    steady_allocs: usize,
    steady_frees: usize,
    results: Vec<AllocatorResult>,
}

#[derive(serde::Serialize)]
struct Report {
    command: String,
    mem_core: String,
    device: String,
    driver: String,
    heaps: Vec<u64>,
    memory_types: Vec<String>,
    buffer_image_granularity: u64,
    reps: usize,
    quick: bool,
    settings: Vec<(String, String)>,
    traces: Vec<TraceResult>,
    markdown: String,
}

/// mem-core against gpu-allocator, gpu-alloc and VMA on the same seeded
/// traces, or mem-core alone at scale (`--scale`).
#[derive(Parser, Debug)]
struct Args {
    /// Traces about 10x shorter (a quick look, not figures to quote).
    #[arg(long)]
    quick: bool,
    /// Also run the variants (mem-core's buddy and blocks-only settings,
    /// the peers' alternative settings); not counted as peers.
    #[arg(long)]
    variants: bool,
    /// Run mem-core alone against the number of live allocations and the
    /// block size, instead of the peers comparison.
    #[arg(long)]
    scale: bool,
    /// Repetitions; each figure is their median (at least 1).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<String>,
    /// Also write the markdown report to this file.
    #[arg(long, value_name = "PATH")]
    md: Option<String>,
    /// With --scale: draw ns per operation against live allocations (PNG).
    #[arg(long, value_name = "PNG")]
    plot: Option<String>,
    /// With --scale: write the table as CSV.
    #[arg(long, value_name = "CSV")]
    csv: Option<String>,
    /// Skip the extra run per allocator that times each steady-state
    /// allocation on its own (p99 and max columns).
    #[arg(long)]
    no_latency: bool,
    /// Run only these traces (comma-separated names as the report prints
    /// them).
    #[arg(long, value_name = "NAME,NAME")]
    traces: Option<String>,
    /// mem-core's rows alone over mem-core's fake device with this GPU
    /// memory table (a file name of `crates/mem-core/device-tables/`
    /// without `.txt`): peak committed bytes and `vkAllocateMemory` calls
    /// as that GPU's driver would see them, no times.
    #[arg(long, value_name = "TABLE")]
    fake: Option<String>,
    /// Run only these allocators (comma-separated names as the report
    /// prints them, variants included).
    #[arg(long, value_name = "NAME,NAME")]
    only: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.reps = a.reps.max(1);
    a
}

/// Which mem-core this binary was built from (see build.rs).
fn mem_core_version() -> String {
    format!(
        "mem-core at git {} (source fingerprint {})",
        env!("MEM_CORE_GIT"),
        env!("MEM_CORE_FINGERPRINT")
    )
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cd benches/peers && cargo run --release -- {}",
        args.join(" ")
    )
}

fn write_file(path: &str, data: &str) {
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {path}: {e}"));
    eprintln!("wrote {path}");
}

fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn fmt_ns(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} us", x / 1000.0)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn main() {
    let args = parse_args();
    if let Some(table) = &args.fake {
        fake_bench(&args, table);
        return;
    }
    let ctx = VkCtx::new().unwrap_or_else(|e| {
        eprintln!("Vulkan setup failed: {e}");
        std::process::exit(2)
    });
    eprintln!(
        "device: {} ({}), heaps {:?}, types {:?}, bufferImageGranularity {}",
        ctx.device_name,
        ctx.driver_info,
        ctx.heap_sizes,
        ctx.memory_types,
        ctx.buffer_image_granularity
    );
    if args.scale {
        scale(&ctx, &args);
    } else {
        peers_bench(&ctx, &args);
    }
}

fn peers_bench(ctx: &VkCtx, args: &Args) {
    let scale = if args.quick { 10 } else { 1 };
    let start = Instant::now();
    let mut traces = trace::peer_traces(scale);
    if let Some(only) = &args.traces {
        traces.retain(|t| only.split(',').any(|o| o == t.name));
    }
    let mut names: Vec<&str> = peers::ALL.to_vec();
    if args.variants {
        names.extend(peers::VARIANTS);
    }
    if let Some(only) = &args.only {
        names.retain(|n| only.split(',').any(|o| o == *n));
    }
    let mut results = Vec::new();
    for t in &traces {
        eprintln!(
            "trace {}: {} slots, peak live {:.1} MiB in {} allocations, {} steady allocs / {} frees",
            t.name,
            t.slots,
            t.peak_live_requested as f64 / MIB,
            t.peak_live_count,
            t.steady_allocs,
            t.steady_frees
        );
        let mut runs: Vec<Vec<RunResult>> = vec![Vec::new(); names.len()];
        for rep in 0..args.reps {
            // Rotate the order each repetition so no allocator always runs
            // first (cold caches) or last.
            for k in 0..names.len() {
                let i = (k + rep) % names.len();
                let name = names[i];
                let r = run_named(name, ctx, t, false);
                eprintln!(
                    "  rep {rep} {name:>14}: alloc {:>9} ns  free {:>9} ns  first {:>8.2} ms  peak {:>7.1} MiB  \
                     calls {:>5}{}{}",
                    fmt_ns(r.alloc_ns),
                    fmt_ns(r.free_ns),
                    r.first_pass_ms,
                    r.peak_committed as f64 / MIB,
                    r.allocate_calls,
                    r.error.as_deref().map(|e| format!("  ERROR {e}")).unwrap_or_default(),
                    if r.committed_after_drop != 0 {
                        format!("  LEAK {} bytes after drop", r.committed_after_drop)
                    } else {
                        String::new()
                    }
                );
                if let Some(c) = r.self_report_after_first_pass.committed {
                    if c != r.committed_after_first_pass {
                        eprintln!(
                            "    note: {name} reports {c} committed bytes, the hook counted {}",
                            r.committed_after_first_pass
                        );
                    }
                }
                runs[i].push(r);
            }
        }
        // One more run of each with every steady-state allocation timed on
        // its own, for the latency tail.
        let latency: Vec<Option<RunResult>> = names
            .iter()
            .map(|name| {
                if args.no_latency {
                    return None;
                }
                let r = run_named(name, ctx, t, true);
                eprintln!(
                    "  latency {name:>14}: p99 {}  max {} (ns unless marked)",
                    fmt_ns(r.alloc_p99_ns),
                    fmt_ns(r.alloc_max_ns)
                );
                Some(r)
            })
            .collect();
        results.push(TraceResult {
            trace: t.name.clone(),
            description: t.description.clone(),
            peak_live_requested: t.peak_live_requested,
            peak_live_count: t.peak_live_count,
            warm_ops: t.warm_ops,
            steady_allocs: t.steady_allocs,
            steady_frees: t.steady_frees,
            results: names
                .iter()
                .zip(runs)
                .zip(latency)
                .map(|((n, runs), latency_run)| AllocatorResult {
                    allocator: n.to_string(),
                    median: summarize(&runs, latency_run.as_ref(), t.peak_live_requested),
                    runs,
                    latency_run,
                })
                .collect(),
        });
    }
    let md = markdown(ctx, args, &results, start.elapsed());
    println!("{md}");
    if let Some(p) = &args.md {
        write_file(p, &md);
    }
    if let Some(p) = &args.json {
        let report = Report {
            command: command_line(),
            mem_core: mem_core_version(),
            device: ctx.device_name.clone(),
            driver: ctx.driver_info.clone(),
            heaps: ctx.heap_sizes.clone(),
            memory_types: ctx.memory_types.clone(),
            buffer_image_granularity: ctx.buffer_image_granularity,
            reps: args.reps,
            quick: args.quick,
            settings: peers::settings()
                .into_iter()
                .chain(if args.variants {
                    peers::variant_settings()
                } else {
                    Vec::new()
                })
                .map(|(a, b)| (a.to_string(), b))
                .collect(),
            traces: results,
            markdown: md,
        };
        write_file(p, &serde_json::to_string_pretty(&report).unwrap());
    }
}

fn markdown(ctx: &VkCtx, args: &Args, results: &[TraceResult], took: Duration) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Allocators side by side on {} ({}), median of {} runs{}\n",
        ctx.device_name,
        ctx.driver_info,
        args.reps,
        if args.quick {
            ", --quick (traces ~10x shorter)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "Command: `{}` (took {:.0} s). Measured: {}.\n",
        command_line(),
        took.as_secs_f64(),
        mem_core_version()
    );
    let _ = writeln!(
        s,
        "| trace | allocator | alloc ns | free ns | alloc+free wall ns | alloc p99 / max wall | first pass ms | peak committed MiB | peak live MiB | efficiency | vkAllocateMemory all / steady |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for t in results {
        for a in &t.results {
            let m = &a.median;
            if let Some(e) = &m.error {
                let _ = writeln!(
                    s,
                    "| {} | {} | {}¹ | {}¹ | {}¹ | {} / {} | {} | **{:.1} (out of memory)**¹ | {:.1} | {:.1}%¹ | {} / {} |",
                    t.trace,
                    a.allocator,
                    fmt_ns(m.alloc_ns),
                    fmt_ns(m.free_ns),
                    fmt_ns(m.alloc_free_wall_ns),
                    fmt_ns(m.alloc_p99_ns),
                    fmt_ns(m.alloc_max_ns),
                    fmt_ms(m.first_pass_ms),
                    m.peak_committed as f64 / MIB,
                    t.peak_live_requested as f64 / MIB,
                    m.efficiency * 100.0,
                    m.allocate_calls,
                    m.steady_allocate_calls,
                );
                failures.push(format!(
                    "¹ {} on {}: **failed** with {e}, after {} of {} operations (every run); times are over the \
                     operations before the failure, peak committed and efficiency are at the failure.",
                    a.allocator,
                    t.trace,
                    m.ops_before_error.unwrap_or(0),
                    t.warm_ops + t.steady_allocs + t.steady_frees
                ));
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} / {} | {} | {:.1} | {:.1} | {:.1}% | {} / {} |",
                t.trace,
                a.allocator,
                fmt_ns(m.alloc_ns),
                fmt_ns(m.free_ns),
                fmt_ns(m.alloc_free_wall_ns),
                fmt_ns(m.alloc_p99_ns),
                fmt_ns(m.alloc_max_ns),
                fmt_ms(m.first_pass_ms),
                m.peak_committed as f64 / MIB,
                t.peak_live_requested as f64 / MIB,
                m.efficiency * 100.0,
                m.allocate_calls,
                m.steady_allocate_calls,
            );
        }
    }
    for f in &failures {
        let _ = writeln!(s, "\n{f}");
    }
    let _ = writeln!(s, "\n#### mem-core against the best peer per column\n");
    let _ = writeln!(
        s,
        "Time columns: mem-core / fastest peer (below 1.00 = mem-core faster). Efficiency: mem-core / tightest \
         peer (above 1.00 = mem-core tighter). vkAllocateMemory: steady-state calls, mem-core / fewest. \
         alloc+free wall: one allocation plus one free in the steady state, wall clock (driver time \
         included). Latency: mem-core / VMA, single steady-state allocations by wall clock, from one extra run \
         per allocator that times each allocation on its own. Peers at their default settings only{}.\n",
        if args.variants { " (the variants rows are not counted)" } else { "" }
    );
    let _ = writeln!(
        s,
        "| trace | alloc+free wall | alloc ns | free ns | first pass | efficiency | vkAllocateMemory (steady) | alloc p99 (wall) | alloc max (wall) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for t in results {
        let mc = &t
            .results
            .iter()
            .find(|a| a.allocator == peers::MEM_CORE)
            .unwrap()
            .median;
        let peers: Vec<&AllocatorResult> = t
            .results
            .iter()
            .filter(|a| {
                a.allocator != peers::MEM_CORE
                    && peers::ALL.contains(&a.allocator.as_str())
                    && a.median.error.is_none()
            })
            .collect();
        let best = |f: &dyn Fn(&Median) -> f64, higher: bool| -> Option<(f64, &str)> {
            peers
                .iter()
                .map(|a| (f(&a.median), a.allocator.as_str()))
                .min_by(|x, y| {
                    if higher {
                        y.0.total_cmp(&x.0)
                    } else {
                        x.0.total_cmp(&y.0)
                    }
                })
        };
        let vma = |f: &dyn Fn(&Median) -> f64| -> Option<(f64, &str)> {
            peers
                .iter()
                .find(|a| a.allocator == peers::VMA)
                .map(|a| (f(&a.median), a.allocator.as_str()))
        };
        let cell = |v: f64, b: Option<(f64, &str)>, unit: &dyn Fn(f64) -> String| match b {
            Some((bv, bn)) if bv > 0.0 => {
                format!("{:.2} ({} vs {} {})", v / bv, unit(v), bn, unit(bv))
            }
            Some((bv, bn)) => format!("- ({} vs {} {})", unit(v), bn, unit(bv)),
            None => "-".into(),
        };
        let mark = if mc.error.is_some() {
            "¹ mem-core failed: partial"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {}{mark} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.trace,
            cell(
                mc.alloc_free_wall_ns,
                best(&|m| m.alloc_free_wall_ns, false),
                &|x| fmt_ns(x)
            ),
            cell(mc.alloc_ns, best(&|m| m.alloc_ns, false), &|x| fmt_ns(x)),
            cell(mc.free_ns, best(&|m| m.free_ns, false), &|x| fmt_ns(x)),
            cell(
                mc.first_pass_ms,
                best(&|m| m.first_pass_ms, false),
                &|x| format!("{} ms", fmt_ms(x))
            ),
            cell(mc.efficiency, best(&|m| m.efficiency, true), &|x| format!(
                "{:.1}%",
                x * 100.0
            )),
            cell(
                mc.steady_allocate_calls as f64,
                best(&|m| m.steady_allocate_calls as f64, false),
                &|x| format!("{x:.0}")
            ),
            cell(mc.alloc_p99_ns, vma(&|m| m.alloc_p99_ns), &|x| fmt_ns(x)),
            cell(mc.alloc_max_ns, vma(&|m| m.alloc_max_ns), &|x| fmt_ns(x)),
        );
    }
    defrag_table(
        &mut s,
        results.iter().flat_map(|t| {
            t.results.iter().filter_map(move |a| {
                a.median
                    .defrag
                    .map(|d| (t.trace.as_str(), a.allocator.as_str(), d))
            })
        }),
    );
    let _ = writeln!(
        s,
        "\nTraces (seeded xorshift64*, identical for every allocator):\n"
    );
    for t in results {
        let _ = writeln!(
            s,
            "- **{}**: {}. Peak live: {:.1} MiB in {} allocations; steady state {} allocations, {} frees.",
            t.trace,
            t.description,
            t.peak_live_requested as f64 / MIB,
            t.peak_live_count,
            t.steady_allocs,
            t.steady_frees
        );
    }
    let _ = writeln!(
        s,
        "\nMethod: every request is raw `VkMemoryRequirements` (memoryTypeBits = all) plus a linear/optimal \
         flag and a GPU-only usage; no buffers or images are created. alloc/free ns = steady-state thread CPU \
         time (`CLOCK_THREAD_CPUTIME_ID`, so time slices lost to other processes on the shared 2-core VM do \
         not count; the timer's own cost is measured and subtracted) / operations, timed around each batch \
         of frees or allocations; alloc+free wall is one of each by wall clock, driver time included (on the \
         shared VM it also takes in other processes' time slices). alloc p99 / max wall: single steady-state \
         allocations by wall clock, from one extra run of each allocator that times each allocation on its own \
         (one run: the max is a single sample; on the shared VM, pauses of about 4 ms hit every allocator at \
         random). vkAllocateMemory all / steady: calls in the whole run and in the steady state alone. First pass (thread CPU ms) \
         = the warm-up phase (cold allocator, includes its `vkAllocateMemory` calls). Peak committed and \
         `vkAllocateMemory` calls are counted exactly by a hook in the `ash::Device` function table that all \
         four allocators call through (vk-mem passes that table's pointers to VMA); the allocators' own \
         reports (mem-core `stats()`, gpu-allocator `generate_report()`, VMA `vmaCalculateStatistics`) are \
         recorded in the JSON as a cross-check. Efficiency = peak live requested bytes / peak committed \
         bytes. No validation layer. Allocator order rotates between repetitions.\n"
    );
    let _ = writeln!(s, "Settings:\n");
    for (n, d) in peers::settings() {
        let _ = writeln!(s, "- **{n}**: {d}");
    }
    if args.variants {
        let _ = writeln!(s, "\nVariants (`--variants`):\n");
        for (n, d) in peers::variant_settings() {
            let _ = writeln!(s, "- **{n}**: {d}");
        }
    }
    s
}

// ------------------------------------------------------------------- scale

#[derive(serde::Serialize)]
struct ScaleRow {
    block_size_mib: u64,
    live: usize,
    alloc_ns: f64,
    free_ns: f64,
    first_pass_ms: f64,
    first_pass_ns_per_alloc: f64,
    peak_committed: u64,
    peak_live_requested: u64,
    efficiency: f64,
    allocate_calls: u64,
    runs: Vec<RunResult>,
}

fn scale(ctx: &VkCtx, args: &Args) {
    let start = Instant::now();
    let lives: &[usize] = if args.quick {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    let ops = if args.quick { 10_000 } else { 100_000 };
    let blocks = [16u64, 64, 256];
    let mut rows = Vec::new();
    for &live in lives {
        let t = trace::scale_trace(live, ops, 0x5CA1_E000 + live as u64);
        eprintln!(
            "scale trace {}: peak live {:.1} MiB, {} steady allocs",
            t.name,
            t.peak_live_requested as f64 / MIB,
            t.steady_allocs
        );
        for &bs in &blocks {
            let mut runs = Vec::new();
            for _ in 0..args.reps {
                let config = mem_core::AllocatorConfig {
                    preferred_large_heap_block_size: bs << 20,
                    ..mem_core::AllocatorConfig::default()
                };
                let r = run(peers::MemCore::new(ctx, config), &t, false);
                eprintln!(
                    "  {bs:>3} MiB blocks, {live:>7} live: alloc {:>7} ns free {:>7} ns first {:>8.1} ms peak {:.1} MiB calls {}{}",
                    fmt_ns(r.alloc_ns),
                    fmt_ns(r.free_ns),
                    r.first_pass_ms,
                    r.peak_committed as f64 / MIB,
                    r.allocate_calls,
                    r.error.as_deref().map(|e| format!("  ERROR {e}")).unwrap_or_default()
                );
                runs.push(r);
            }
            let m = summarize(&runs, None, t.peak_live_requested);
            rows.push(ScaleRow {
                block_size_mib: bs,
                live,
                alloc_ns: m.alloc_ns,
                free_ns: m.free_ns,
                first_pass_ms: m.first_pass_ms,
                first_pass_ns_per_alloc: median(
                    runs.iter().map(|r| r.first_pass_ns_per_alloc).collect(),
                ),
                peak_committed: m.peak_committed,
                peak_live_requested: t.peak_live_requested,
                efficiency: m.efficiency,
                allocate_calls: m.allocate_calls,
                runs,
            });
        }
    }
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### mem-core scale on {} ({}), median of {} runs{}\n",
        ctx.device_name,
        ctx.driver_info,
        args.reps,
        if args.quick { ", --quick" } else { "" }
    );
    let _ = writeln!(
        s,
        "Command: `{}` (took {:.0} s). Measured: {}.\n",
        command_line(),
        start.elapsed().as_secs_f64(),
        mem_core_version()
    );
    let _ = writeln!(
        s,
        "Buffers of 256 B-1 KiB (log-uniform, align 256); warm up to N live, then ~{ops} steady-state \
         allocations and frees in rounds of min(1000, N/10) random frees + as many allocations. Block size = \
         `AllocatorConfig::preferred_large_heap_block_size` (lavapipe's heap is 2 GiB, so it applies; TLSF \
         pools start at 1/16 of it and grow by 1/8 of the pool). Requests are rounded up to the 256 B \
         minimum block, which costs ~20% at these sizes.\n"
    );
    let _ = writeln!(
        s,
        "| block size | live | alloc ns | free ns | first pass ms | first pass ns/alloc | peak committed MiB | peak live MiB | efficiency | vkAllocateMemory |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            s,
            "| {} MiB | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1}% | {} |",
            r.block_size_mib,
            r.live,
            fmt_ns(r.alloc_ns),
            fmt_ns(r.free_ns),
            fmt_ms(r.first_pass_ms),
            fmt_ns(r.first_pass_ns_per_alloc),
            r.peak_committed as f64 / MIB,
            r.peak_live_requested as f64 / MIB,
            r.efficiency * 100.0,
            r.allocate_calls
        );
    }
    println!("{s}");
    if let Some(p) = &args.md {
        write_file(p, &s);
    }
    if let Some(p) = &args.csv {
        let mut c = String::from(
            "block_size_mib,live,alloc_ns,free_ns,first_pass_ms,first_pass_ns_per_alloc,peak_committed_bytes,peak_live_requested_bytes,efficiency,allocate_memory_calls\n",
        );
        for r in &rows {
            let _ = writeln!(
                c,
                "{},{},{:.2},{:.2},{:.3},{:.2},{},{},{:.4},{}",
                r.block_size_mib,
                r.live,
                r.alloc_ns,
                r.free_ns,
                r.first_pass_ms,
                r.first_pass_ns_per_alloc,
                r.peak_committed,
                r.peak_live_requested,
                r.efficiency,
                r.allocate_calls
            );
        }
        write_file(p, &c);
    }
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "command": command_line(),
            "mem_core": mem_core_version(),
            "device": ctx.device_name,
            "driver": ctx.driver_info,
            "reps": args.reps,
            "quick": args.quick,
            "rows": rows,
            "markdown": s,
        });
        write_file(p, &serde_json::to_string_pretty(&v).unwrap());
    }
    if let Some(p) = &args.plot {
        if let Some(dir) = std::path::Path::new(p).parent() {
            if !dir.as_os_str().is_empty() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let colors = [
            plotters::style::RGBColor(214, 39, 40),
            plotters::style::RGBColor(44, 160, 44),
            plotters::style::RGBColor(31, 119, 180),
        ];
        let panel = |f: &dyn Fn(&ScaleRow) -> f64| -> Vec<plot::Series> {
            blocks
                .iter()
                .zip(colors)
                .map(|(&bs, color)| plot::Series {
                    label: format!("{bs} MIB BLOCKS"),
                    color,
                    points: rows
                        .iter()
                        .filter(|r| r.block_size_mib == bs)
                        .map(|r| (r.live as f64, f(r)))
                        .collect(),
                })
                .collect()
        };
        let panels = vec![
            ("ALLOCATE NS/OP".to_string(), panel(&|r| r.alloc_ns)),
            ("FREE NS/OP".to_string(), panel(&|r| r.free_ns)),
        ];
        let title = format!(
            "MEM-CORE ON LAVAPIPE: NS PER OP VS LIVE ALLOCATIONS (256 B-1 KIB), MEDIAN OF {}",
            args.reps
        );
        match plot::plot(p, &title, &panels) {
            Ok(()) => eprintln!("wrote {p}"),
            Err(e) => eprintln!("plot failed: {e}"),
        }
    }
}

/// The table of mem-core's defragmentation passes at the end of each trace.
fn defrag_table<'a>(
    s: &mut String,
    rows: impl Iterator<Item = (&'a str, &'a str, peers::DefragOutcome)>,
) {
    use std::fmt::Write;
    let rows: Vec<_> = rows.collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n#### mem-core with defragmentation passes at the end of each trace\n\n\
         Over the allocations live at the end of the steady state: `trim()`, then passes of \
         `DefragmentationBudget::default()` (64 MiB) until one moves nothing, then `trim()`. The passes \
         reserve destinations and free sources (no data is copied: the bench has none). Efficiency = \
         live / committed at that moment.\n"
    );
    let _ = writeln!(
        s,
        "| trace | allocator | live MiB | committed MiB before / after | efficiency before / after | passes, moves, moved MiB | blocks created (vkAllocateMemory) | ms |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (trace, allocator, d) in rows {
        let pct = |c: u64| {
            if c == 0 {
                0.0
            } else {
                d.live as f64 / c as f64 * 100.0
            }
        };
        let _ = writeln!(
            s,
            "| {trace} | {allocator} | {:.1} | {:.1} / {:.1} | {:.1}% / {:.1}% | {}, {}, {:.1} | {} ({}) | {:.2} |",
            d.live as f64 / MIB,
            d.committed_before as f64 / MIB,
            d.committed_after as f64 / MIB,
            pct(d.committed_before),
            pct(d.committed_after),
            d.passes,
            d.moves,
            d.bytes_moved as f64 / MIB,
            d.blocks_created,
            d.allocate_calls,
            d.ms
        );
    }
}
