//! Peer upload benchmark: the upload cases of gpumem's `examples/upload_bench.rs`
//! timed through wgpu (Vulkan backend only), end to end from a `&[u8]` in host
//! memory until the GPU has finished the copy.
//!
//! ```text
//! cargo build --release   # inside benches/wgpu-upload (its own workspace)
//! target/release/wgpu-upload [--size-mib 1024] [--small-count 65536] [--small-kib 16]
//!     [--texture 4096] [--belt-mib 64] [--reps 5] [--json out.json] [--no-verify]
//! ```
//!
//! Cases (each the best of `--reps`; the first rep includes warm-up):
//! 1. one big buffer via `Queue::write_buffer` + `submit([])` + `poll(Wait)`;
//! 2. the same bytes through `util::StagingBelt` (chunk 64 MiB, writes of <= 64 MiB);
//! 3. `--small-count` pieces of `--small-kib` KiB at consecutive offsets of one
//!    buffer, via `Queue::write_buffer` per piece and via `StagingBelt`, one submit;
//! 4. an N x N RGBA8 texture with its full mip chain via `Queue::write_texture` per mip.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use clap::{ArgAction, Parser};

const MIB: u64 = 1 << 20;

/// The upload cases of gpumem's `upload_bench`, timed through wgpu's Vulkan
/// backend.
#[derive(Parser, Debug)]
struct Args {
    /// Size of the large buffer upload, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Number of small uploads into one buffer.
    #[arg(long, default_value_t = 65536)]
    small_count: u64,
    /// Size of each small upload, in KiB.
    #[arg(long, default_value_t = 16)]
    small_kib: u64,
    /// Width and height of the RGBA8 texture (with a full mip chain).
    #[arg(long, default_value_t = 4096)]
    texture: u32,
    /// Chunk size of wgpu's `StagingBelt`, in MiB.
    #[arg(long, default_value_t = 64)]
    belt_mib: u64,
    /// Repetitions per case; each figure is the best of them (at least 1).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Skip reading the uploaded bytes back to compare them with the source.
    #[arg(long = "no-verify", action = ArgAction::SetFalse)]
    verify: bool,
}

impl Args {
    fn parse_checked() -> Self {
        let mut a = Self::parse();
        a.reps = a.reps.max(1);
        a
    }
}

struct Row {
    case: String,
    bytes: u64,
    times: Vec<Duration>,
}

impl Row {
    fn best(&self) -> Duration {
        *self.times.iter().min().unwrap()
    }
}

fn gbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
}

impl Gpu {
    fn wait(&self) {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("device.poll(Wait) failed");
    }

    fn buffer(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Reads `len` bytes at `offset` of `buf` back to the host (untimed).
    fn read_buffer(&self, buf: &wgpu::Buffer, offset: u64, len: u64) -> Vec<u8> {
        let rb = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: len,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, offset, &rb, 0, len);
        self.queue.submit([enc.finish()]);
        self.map_read(&rb)
    }

    fn map_read(&self, rb: &wgpu::Buffer) -> Vec<u8> {
        rb.map_async(wgpu::MapMode::Read, .., |r| r.expect("map_async failed"));
        self.wait();
        let v = rb.get_mapped_range(..).to_vec();
        rb.unmap();
        v
    }

    /// Compares a few sampled ranges of `buf` with `src` (untimed).
    fn verify_buffer(&self, case: &str, buf: &wgpu::Buffer, src: &[u8]) {
        let len = src.len() as u64;
        let sample = 4096.min(len) & !3;
        let mut offsets: Vec<u64> = (0..8).map(|i| (len - sample) * i / 7 & !3).collect();
        offsets.dedup();
        for off in offsets {
            let got = self.read_buffer(buf, off, sample);
            assert!(
                got == src[off as usize..(off + sample) as usize],
                "{case}: GPU buffer differs from the source at offset {off}"
            );
        }
    }
}

/// A deterministic non-zero fill, so no page is a zero page.
fn fill(buf: &mut [u8]) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn time_reps(reps: usize, mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    (0..reps).map(|_| f()).collect()
}

/// Case 1: one big buffer through `Queue::write_buffer`.
fn big_write_buffer(gpu: &Gpu, args: &Args, src: &[u8]) -> Row {
    let size = args.size_mib * MIB;
    let dst = gpu.buffer("big write_buffer", size);
    let data = &src[..size as usize];
    let times = time_reps(args.reps, || {
        let t0 = Instant::now();
        gpu.queue.write_buffer(&dst, 0, data);
        gpu.queue.submit([]);
        gpu.wait();
        t0.elapsed()
    });
    if args.verify {
        gpu.verify_buffer("big write_buffer", &dst, data);
    }
    Row {
        case: format!("{} MiB buffer, Queue::write_buffer", args.size_mib),
        bytes: size,
        times,
    }
}

/// Case 2: one big buffer through `util::StagingBelt`.
fn big_belt(gpu: &Gpu, args: &Args, src: &[u8]) -> Row {
    let size = args.size_mib * MIB;
    let chunk = args.belt_mib * MIB;
    let dst = gpu.buffer("big belt", size);
    let data = &src[..size as usize];
    let mut belt = wgpu::util::StagingBelt::new(chunk);
    let times = time_reps(args.reps, || {
        let t0 = Instant::now();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let mut off = 0u64;
        while off < size {
            let n = chunk.min(size - off);
            let mut view = belt.write_buffer(
                &mut enc,
                &dst,
                off,
                NonZeroU64::new(n).unwrap(),
                &gpu.device,
            );
            view.copy_from_slice(&data[off as usize..(off + n) as usize]);
            drop(view);
            off += n;
        }
        belt.finish();
        gpu.queue.submit([enc.finish()]);
        belt.recall();
        gpu.wait();
        t0.elapsed()
    });
    if args.verify {
        gpu.verify_buffer("big belt", &dst, data);
    }
    Row {
        case: format!(
            "{} MiB buffer, StagingBelt ({} MiB chunks)",
            args.size_mib, args.belt_mib
        ),
        bytes: size,
        times,
    }
}

/// Case 3a: many small pieces, one `Queue::write_buffer` per piece, one submit.
fn small_write_buffer(gpu: &Gpu, args: &Args, src: &[u8]) -> Row {
    let piece = args.small_kib * 1024;
    let total = piece * args.small_count;
    let dst = gpu.buffer("small write_buffer", total);
    let data = &src[..total as usize];
    let times = time_reps(args.reps, || {
        let t0 = Instant::now();
        for (i, p) in data.chunks_exact(piece as usize).enumerate() {
            gpu.queue.write_buffer(&dst, i as u64 * piece, p);
        }
        gpu.queue.submit([]);
        gpu.wait();
        t0.elapsed()
    });
    if args.verify {
        gpu.verify_buffer("small write_buffer", &dst, data);
    }
    Row {
        case: format!(
            "{} x {} KiB buffers, Queue::write_buffer",
            args.small_count, args.small_kib
        ),
        bytes: total,
        times,
    }
}

/// Case 3b: many small pieces through `util::StagingBelt`, one submit.
fn small_belt(gpu: &Gpu, args: &Args, src: &[u8]) -> Row {
    let piece = args.small_kib * 1024;
    let total = piece * args.small_count;
    let dst = gpu.buffer("small belt", total);
    let data = &src[..total as usize];
    let mut belt = wgpu::util::StagingBelt::new(args.belt_mib * MIB);
    let size = NonZeroU64::new(piece).unwrap();
    let times = time_reps(args.reps, || {
        let t0 = Instant::now();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (i, p) in data.chunks_exact(piece as usize).enumerate() {
            let mut view = belt.write_buffer(&mut enc, &dst, i as u64 * piece, size, &gpu.device);
            view.copy_from_slice(p);
        }
        belt.finish();
        gpu.queue.submit([enc.finish()]);
        belt.recall();
        gpu.wait();
        t0.elapsed()
    });
    if args.verify {
        gpu.verify_buffer("small belt", &dst, data);
    }
    Row {
        case: format!(
            "{} x {} KiB buffers, StagingBelt ({} MiB chunks)",
            args.small_count, args.small_kib, args.belt_mib
        ),
        bytes: total,
        times,
    }
}

fn mip_dims(n: u32) -> Vec<(u32, u32)> {
    let levels = 32 - n.leading_zeros();
    (0..levels)
        .map(|l| ((n >> l).max(1), (n >> l).max(1)))
        .collect()
}

fn texture_bytes(n: u32) -> u64 {
    mip_dims(n)
        .iter()
        .map(|&(w, h)| 4 * w as u64 * h as u64)
        .sum()
}

/// Case 4: an RGBA8 texture with its full mip chain, one `Queue::write_texture` per mip.
fn texture_write(gpu: &Gpu, args: &Args, src: &[u8]) -> Row {
    let n = args.texture;
    let mips = mip_dims(n);
    let total = texture_bytes(n);
    let tex = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("mip chain"),
        size: wgpu::Extent3d {
            width: n,
            height: n,
            depth_or_array_layers: 1,
        },
        mip_level_count: mips.len() as u32,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let upload = || {
        let mut off = 0usize;
        for (level, &(w, h)) in mips.iter().enumerate() {
            let bytes = 4 * w as usize * h as usize;
            gpu.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &tex,
                    mip_level: level as u32,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                &src[off..off + bytes],
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * w),
                    rows_per_image: Some(h),
                },
                wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            );
            off += bytes;
        }
    };
    let times = time_reps(args.reps, || {
        let t0 = Instant::now();
        upload();
        gpu.queue.submit([]);
        gpu.wait();
        t0.elapsed()
    });
    if args.verify {
        // Read back the first and last row of every mip whose row pitch is a
        // multiple of 256 (the buffer-copy alignment) and compare.
        let mut off = 0usize;
        for (level, &(w, h)) in mips.iter().enumerate() {
            let pitch = 4 * w as usize;
            if pitch % 256 == 0 {
                for row in [0, h - 1] {
                    let rb = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("texture readback"),
                        size: pitch as u64,
                        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
                        mapped_at_creation: false,
                    });
                    let mut enc = gpu.device.create_command_encoder(&Default::default());
                    enc.copy_texture_to_buffer(
                        wgpu::TexelCopyTextureInfo {
                            texture: &tex,
                            mip_level: level as u32,
                            origin: wgpu::Origin3d { x: 0, y: row, z: 0 },
                            aspect: wgpu::TextureAspect::All,
                        },
                        wgpu::TexelCopyBufferInfo {
                            buffer: &rb,
                            layout: wgpu::TexelCopyBufferLayout {
                                offset: 0,
                                bytes_per_row: Some(pitch as u32),
                                rows_per_image: Some(1),
                            },
                        },
                        wgpu::Extent3d {
                            width: w,
                            height: 1,
                            depth_or_array_layers: 1,
                        },
                    );
                    gpu.queue.submit([enc.finish()]);
                    let got = gpu.map_read(&rb);
                    let at = off + row as usize * pitch;
                    assert!(
                        got == src[at..at + pitch],
                        "texture: mip {level} row {row} differs from the source"
                    );
                }
            }
            off += pitch * h as usize;
        }
    }
    Row {
        case: format!(
            "{n}x{n} RGBA8 texture + {} mips, Queue::write_texture",
            mips.len() - 1
        ),
        bytes: total,
        times,
    }
}

fn main() {
    let args = Args::parse_checked();

    let instance = wgpu::Instance::new(&wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        flags: wgpu::InstanceFlags::from_build_config().with_env(),
        ..Default::default()
    });
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
    }))
    .expect("no Vulkan adapter");
    let info = adapter.get_info();
    let alimits = adapter.limits();
    println!(
        "adapter: {} ({:?}, {:?}) vendor {:#06x} device {:#06x} driver {} {}",
        info.name,
        info.backend,
        info.device_type,
        info.vendor,
        info.device,
        info.driver,
        info.driver_info
    );
    println!(
        "wgpu 27, adapter limits: max_buffer_size {} max_storage_buffer_binding_size {}",
        alimits.max_buffer_size, alimits.max_storage_buffer_binding_size
    );
    let required_limits = wgpu::Limits {
        max_buffer_size: alimits.max_buffer_size,
        max_storage_buffer_binding_size: alimits.max_storage_buffer_binding_size,
        ..wgpu::Limits::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("wgpu-upload"),
        required_features: wgpu::Features::empty(),
        required_limits,
        memory_hints: wgpu::MemoryHints::Performance,
        ..Default::default()
    }))
    .expect("request_device failed");
    device.on_uncaptured_error(std::sync::Arc::new(|e| panic!("wgpu error: {e}")));
    let gpu = Gpu { device, queue };

    let size = args.size_mib * MIB;
    let small_total = args.small_kib * 1024 * args.small_count;
    for (what, b) in [
        ("--size-mib", size),
        ("small-count x small-kib", small_total),
    ] {
        assert!(
            b <= alimits.max_buffer_size,
            "{what}: {b} bytes exceeds the adapter's max_buffer_size {}",
            alimits.max_buffer_size
        );
    }
    let src_len = size.max(small_total).max(texture_bytes(args.texture));
    let mut src = vec![0u8; src_len as usize];
    fill(&mut src);
    println!(
        "source: {} MiB in host memory; reps {}; verify {}",
        src_len / MIB,
        args.reps,
        args.verify
    );

    let rows = vec![
        big_write_buffer(&gpu, &args, &src),
        big_belt(&gpu, &args, &src),
        small_write_buffer(&gpu, &args, &src),
        small_belt(&gpu, &args, &src),
        texture_write(&gpu, &args, &src),
    ];

    println!();
    println!("wgpu 27 (Vulkan) on {}, best of {}:", info.name, args.reps);
    println!();
    println!("| case | bytes | best GB/s | best ms | all reps GB/s |");
    println!("|---|---:|---:|---:|---|");
    for r in &rows {
        let all: Vec<String> = r
            .times
            .iter()
            .map(|&t| format!("{:.2}", gbps(r.bytes, t)))
            .collect();
        println!(
            "| {} | {} | {:.2} | {:.2} | {} |",
            r.case,
            r.bytes,
            gbps(r.bytes, r.best()),
            r.best().as_secs_f64() * 1e3,
            all.join(" ")
        );
    }
    if args.verify {
        println!("\nverified: every case's GPU contents match the source (sampled ranges / rows)");
    }

    if let Some(path) = &args.json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "  {{\"case\":\"{}\",\"bytes\":{},\"gbps\":{:.3}}}",
                    r.case,
                    r.bytes,
                    gbps(r.bytes, r.best())
                )
            })
            .collect();
        std::fs::write(path, format!("[\n{}\n]\n", items.join(",\n"))).expect("write json");
        println!("wrote {path}");
    }
}
