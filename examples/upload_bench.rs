//! Upload throughput, end to end from a `&[u8]` in host memory to
//! device-local memory, through the staging belt and side by side with a raw
//! `vkCmdCopyBuffer` / `vkCmdCopyBufferToImage` from a pre-filled staging
//! buffer on the same queue, in the same run.
//!
//! ```text
//! cargo run --release --example upload_bench -- [--size-mib 1024] [--small-count 65536]
//!     [--small-kib 16] [--small-list 256] [--texture 4096] [--ring-mib 64] [--reps 5] [--json out.json]
//!     [--validation] [--sweep] [--tune] [--import] [--ring-memory upload|cached|rebar]
//!     [--threads N] [--chunk-mib N] [--split] [--memcpy] [--ab overlap|spin|huge]
//!     [--scene [--scene-packed] [--scene-scale 1.0]] [--both-ways] [--streaming-stores]
//! ```
//! `--help` describes every option. Prints a markdown table: GB/s for raw
//! and belt, and their ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use clap::{Parser, ValueEnum};
use gpumem::memory::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use gpumem::resources::{
    Buffer, BufferDesc, Image, ImageDesc, ResourceManager, ResourceManagerCreateInfo,
};
use gpumem::staging::belt::{BufferWrite, SharedQueue, StagingBelt, StagingBeltConfig};
use gpumem::staging::plan::{expected_data_size, ImageLayout};
use gpumem::staging::ImageSubresources;
use mem_testkit::TestContext;
use parking_lot::Mutex;

const MIB: u64 = 1 << 20;

/// Upload throughput through the staging belt against raw copies on the
/// same queue, in the same run.
#[derive(Parser, Debug)]
struct Args {
    /// Size of the large buffer upload, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Number of small buffer uploads.
    #[arg(long, default_value_t = 65536)]
    small_count: u64,
    /// Size of each small buffer upload, in KiB.
    #[arg(long, default_value_t = 16)]
    small_kib: u64,
    /// Small uploads per `upload_buffers` call in the row of lists.
    #[arg(long, default_value_t = 256)]
    small_list: usize,
    /// Width and height of the RGBA8 texture (with a full mip chain).
    #[arg(long, default_value_t = 4096)]
    texture: u32,
    /// Staging ring size, in MiB.
    #[arg(long, default_value_t = 64)]
    ring_mib: u64,
    /// Repetitions per case; each figure is the best of them.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Run under VK_LAYER_KHRONOS_validation with synchronization validation.
    #[arg(long)]
    validation: bool,
    /// Also sweep upload sizes (4 KiB to --size-mib) against ring sizes.
    #[arg(long)]
    sweep: bool,
    /// Also sweep copy threads against chunk and ring sizes.
    #[arg(long)]
    tune: bool,
    /// Import large uploads' source memory (VK_EXT_external_memory_host).
    #[arg(long)]
    import: bool,
    /// Memory of the staging ring (default: the belt's default).
    #[arg(long, value_enum)]
    ring_memory: Option<RingMemory>,
    /// Copy threads of the belt (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Chunk size of the belt, in MiB (default: the belt's default).
    #[arg(long, value_name = "N")]
    chunk_mib: Option<u64>,
    /// Prototype: part of the large upload through the ring, the rest
    /// written straight into a ReBAR staging buffer at the same time.
    #[arg(long)]
    split: bool,
    /// The host copy alone (no GPU work), as the belt does it, by thread count.
    #[arg(long)]
    memcpy: bool,
    /// Only the table of staging both ways and in place: 1 GiB (--size-mib)
    /// from a slice, written in place (and by a writer that writes nothing:
    /// the belt's own cost), read from a file in the page cache and read
    /// back, each beside its raw copy (and the host's own copy or read)
    /// measured in the same run.
    #[arg(long)]
    both_ways: bool,
    /// Also time a texture (--texture, full mip chain) written from host
    /// memory with VK_EXT_host_image_copy against the belt, same image.
    #[arg(long)]
    host_image_copy: bool,
    /// Belts copy into the ring with non-temporal (streaming) stores
    /// (`StagingBeltConfig::streaming_stores`).
    #[arg(long)]
    streaming_stores: bool,
    /// Only the scene of the main job (`upload_mesh`'s built-in scene at
    /// --scene-scale): every object uploaded by a fresh belt and by a warm
    /// one, the time split into phases, then through the same calls with
    /// writers that write nothing (the belt's own cost), beside raw copies
    /// of the same objects (one submission) and of the same bytes (one
    /// buffer copy).
    #[arg(long)]
    scene: bool,
    /// Belts split copies of at least this many KiB over their copy threads
    /// (`StagingBeltConfig::parallel_copy_threshold`; default: the belt's).
    #[arg(long, value_name = "KIB")]
    parallel_threshold_kib: Option<u64>,
    /// Scale of the built-in scene for --scene.
    #[arg(long, default_value_t = 1.0)]
    scene_scale: f32,
    /// --scene with each texture's levels laid end to end in one slice
    /// beforehand (as a texture pack holds them) and uploaded from it with
    /// `upload_image`, instead of written level by level by a writer.
    #[arg(long)]
    scene_packed: bool,
    /// What the second belt of the A/B rows changes.
    #[arg(long, value_enum, default_value_t = Ab::Overlap)]
    ab: Ab,
}

/// `--ring-memory`: the memory usage the staging ring is allocated with.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum RingMemory {
    /// Write-combined host memory (`MemoryUsage::Upload`).
    Upload,
    /// Cached host memory (`MemoryUsage::Readback`).
    Cached,
    /// Host-visible device-local memory, ReBAR (`MemoryUsage::Dynamic`).
    Rebar,
}

impl RingMemory {
    fn usage(self) -> MemoryUsage {
        match self {
            RingMemory::Upload => MemoryUsage::Upload,
            RingMemory::Cached => MemoryUsage::Readback,
            RingMemory::Rebar => MemoryUsage::Dynamic,
        }
    }
}

struct Rig {
    ctx: TestContext,
    allocator: Option<Arc<Allocator>>,
    resources: Option<Arc<ResourceManager>>,
    family: u32,
    queue: vk::Queue,
    lock: Arc<Mutex<()>>,
    pool: vk::CommandPool,
    threads: Option<usize>,
    chunk: Option<u64>,
    /// Large uploads import the caller's memory (VK_EXT_external_memory_host).
    import: bool,
    ring_memory: Option<MemoryUsage>,
    /// Belts copy with streaming stores.
    streaming: bool,
    /// Belts' parallel copy threshold, when set.
    parallel_threshold: Option<u64>,
}

impl Rig {
    fn new(
        validation: bool,
        threads: Option<usize>,
        chunk: Option<u64>,
        import: bool,
        ring_memory: Option<MemoryUsage>,
    ) -> Self {
        let ctx = TestContext::builder()
            .validation(validation)
            .want_device_extension(ash::ext::memory_budget::NAME)
            .want_device_extension(ash::ext::external_memory_host::NAME)
            .want_device_extension(ash::ext::host_image_copy::NAME)
            .build();
        let import = import && ctx.has_extension(ash::ext::external_memory_host::NAME);
        // SAFETY: the context's handles are valid and outlive the allocator.
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
            .expect("allocator"),
        );
        // SAFETY: as above.
        let resources = Arc::new(unsafe {
            ResourceManager::new(ResourceManagerCreateInfo {
                instance: ctx.instance(),
                physical_device: ctx.physical_device(),
                device: ctx.device(),
                allocator: allocator.clone(),
                debug_utils: None,
                allocation_callbacks: None,
            })
        });
        let (family, queue) = ctx.transfer_queue();
        let info = vk::CommandPoolCreateInfo::default().queue_family_index(family);
        // SAFETY: valid device and family.
        let pool = unsafe { ctx.device().create_command_pool(&info, None) }.expect("pool");
        Self {
            ctx,
            allocator: Some(allocator),
            resources: Some(resources),
            family,
            queue,
            lock: Arc::new(Mutex::new(())),
            pool,
            threads,
            chunk,
            import,
            ring_memory,
            streaming: false,
            parallel_threshold: None,
        }
    }

    /// Property flags of memory type `ty`.
    fn memory_flags(&self, ty: u32) -> vk::MemoryPropertyFlags {
        self.allocator
            .as_ref()
            .unwrap()
            .memory_properties()
            .memory_types[ty as usize]
            .flags
    }

    fn res(&self) -> &Arc<ResourceManager> {
        self.resources.as_ref().unwrap()
    }

    /// A belt that always stages (so it is compared with the raw copy even
    /// where device-local memory is host-visible, as on lavapipe).
    fn belt(&self, ring: u64) -> StagingBelt {
        self.belt_with(StagingBeltConfig {
            force_staging: true,
            ..StagingBeltConfig::with_ring_size(ring)
        })
    }

    fn belt_with(&self, mut desc: StagingBeltConfig) -> StagingBelt {
        if let Some(t) = self.threads {
            desc.copy_threads = t;
        }
        if let Some(c) = self.chunk {
            desc.chunk_size = c;
            desc.auto_submit_bytes = c;
        }
        desc.external_memory_host |= self.import;
        desc.streaming_stores |= self.streaming;
        if let Some(t) = self.parallel_threshold {
            desc.parallel_copy_threshold = t;
        }
        if let Some(m) = self.ring_memory {
            desc.ring_memory = m;
        }
        let shared = SharedQueue {
            family: self.family,
            queue: self.queue,
            lock: self.lock.clone(),
        };
        let dst_family = self.ctx.graphics_queue().0;
        // SAFETY: handles from the context; this program submits to the
        // queue only under `lock`.
        unsafe {
            StagingBelt::new(
                self.res().clone(),
                self.ctx.instance(),
                self.ctx.physical_device(),
                shared,
                dst_family,
                desc,
            )
        }
        .expect("belt")
    }

    /// Records with `f`, submits on the transfer queue, waits; returns the
    /// time from submit to completion.
    fn submit_timed(&self, f: impl FnOnce(vk::CommandBuffer)) -> Duration {
        let d = self.ctx.device();
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(self.pool)
            .command_buffer_count(1);
        // SAFETY: the pool is ours; everything below is used on this thread.
        unsafe {
            let cmd = d.allocate_command_buffers(&info).unwrap()[0];
            d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
                .unwrap();
            f(cmd);
            d.end_command_buffer(cmd).unwrap();
            let fence = d
                .create_fence(&vk::FenceCreateInfo::default(), None)
                .unwrap();
            let cmds = [cmd];
            let submit = vk::SubmitInfo::default().command_buffers(&cmds);
            let start = Instant::now();
            {
                let _g = self.lock.lock();
                d.queue_submit(self.queue, &[submit], fence).unwrap();
            }
            d.wait_for_fences(&[fence], true, u64::MAX).unwrap();
            let t = start.elapsed();
            d.destroy_fence(fence, None);
            d.free_command_buffers(self.pool, &cmds);
            t
        }
    }

    fn gpu_buffer(&self, size: u64, memory: MemoryUsage) -> Buffer {
        self.res()
            .create_buffer(&BufferDesc::new(
                size,
                vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::STORAGE_BUFFER,
                memory,
            ))
            .expect("destination buffer")
    }

    fn staging(&self, size: u64, fill: u8) -> Buffer {
        let b = self
            .res()
            .create_buffer(&BufferDesc::staging(size))
            .expect("staging");
        let p = b.allocation().mapped_ptr().expect("mapped");
        // SAFETY: the staging buffer is mapped for `size` bytes and unused.
        unsafe { std::ptr::write_bytes(p.as_ptr(), fill, size as usize) };
        b
    }

    fn destroy(&self, b: Buffer) {
        // SAFETY: every submission using it was waited for.
        unsafe { self.res().destroy_buffer(b) }.unwrap();
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // SAFETY: all work was waited for.
        unsafe {
            let _ = self.ctx.device().device_wait_idle();
            self.ctx.device().destroy_command_pool(self.pool, None);
        }
        self.resources.take();
        self.allocator.take();
    }
}

fn gbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

fn best(reps: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..reps.max(1)).map(|_| f()).min().unwrap()
}

struct Row {
    case: String,
    bytes: u64,
    raw: Duration,
    belt: Duration,
}

fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for (i, c) in v.chunks_mut(8).enumerate() {
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
        c.copy_from_slice(&x[..c.len()]);
    }
    v
}

fn bench_big(rig: &Rig, args: &Args, size: u64, ring: u64) -> [Row; 2] {
    let dst = rig.gpu_buffer(size, MemoryUsage::GpuOnly);
    let staging = rig.staging(size, 0x5A);
    let d = rig.ctx.device().clone();
    let raw = best(args.reps, || {
        rig.submit_timed(|cmd| {
            let region = 64 * MIB;
            let regions: Vec<vk::BufferCopy> = (0..size.div_ceil(region))
                .map(|i| vk::BufferCopy {
                    src_offset: i * region,
                    dst_offset: i * region,
                    size: region.min(size - i * region),
                })
                .collect();
            // SAFETY: recording; both buffers alive and large enough.
            unsafe { d.cmd_copy_buffer(cmd, staging.handle(), dst.handle(), &regions) };
        })
    });
    rig.destroy(staging);
    let (data, huge) = sources(args, pattern(size as usize));
    let [on, off] = ab(rig, args, ring, "buffer", |belt, i| {
        let src = match (&huge, i) {
            (Some(h), 1) => h.bytes(),
            _ => &data,
        };
        let _ = belt.upload_buffer(&dst, 0, src).unwrap();
    });
    rig.destroy(dst);
    let case = format!("{} MiB buffer (ring {} MiB)", size / MIB, ring / MIB);
    [
        Row {
            case: case.clone(),
            bytes: size,
            raw,
            belt: on,
        },
        Row {
            case: format!("{case}, {}", args.ab.second()),
            bytes: size,
            raw,
            belt: off,
        },
    ]
}

/// What the second run of [`ab`] changes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Ab {
    /// Its belt turns `overlap_submit` off.
    Overlap,
    /// Its belt turns `spin_wait` off.
    Spin,
    /// Its belt turns `streaming_stores` on.
    Streaming,
    /// Its source bytes lie in transparent huge pages (a default belt).
    Huge,
}

impl Ab {
    fn second(self) -> &'static str {
        match self {
            Ab::Overlap => "submits not overlapped",
            Ab::Spin => "no spin before waits",
            Ab::Streaming => "streaming stores",
            Ab::Huge => "source in transparent huge pages",
        }
    }
}

/// A copy of some bytes in an anonymous mapping advised into transparent
/// huge pages (`madvise(MADV_HUGEPAGE)`), as an engine may keep its asset
/// data, for `--ab huge`.
struct HugePageBytes {
    map: *mut libc::c_void,
    map_len: usize,
    start: usize,
    len: usize,
}

impl HugePageBytes {
    fn copy_of(src: &[u8]) -> Self {
        const HUGE: usize = 2 << 20;
        let map_len = src.len().next_multiple_of(HUGE) + HUGE;
        // SAFETY: a new private anonymous mapping (no file, no fixed address).
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(map != libc::MAP_FAILED, "mmap of {map_len} bytes failed");
        let start = (map as usize).next_multiple_of(HUGE) - map as usize;
        // SAFETY: the range lies inside the mapping just made; advice only.
        let advised = unsafe {
            libc::madvise(
                map.cast::<u8>().add(start).cast(),
                map_len - start,
                libc::MADV_HUGEPAGE,
            )
        };
        if advised != 0 {
            eprintln!("madvise(MADV_HUGEPAGE) failed: the huge-page source uses normal pages");
        }
        // SAFETY: the mapping is writable for `start + src.len() <= map_len`
        // bytes and does not overlap `src`.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), map.cast::<u8>().add(start), src.len())
        };
        Self {
            map,
            map_len,
            start,
            len: src.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` initialized bytes at `start` inside the live mapping.
        unsafe { std::slice::from_raw_parts(self.map.cast::<u8>().add(self.start), self.len) }
    }
}

impl Drop for HugePageBytes {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no slice of it outlives `self`.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// `data`, and for `--ab huge` a copy of it in huge pages: the bytes the
/// two runs of [`ab`] upload.
fn sources(args: &Args, data: Vec<u8>) -> (Vec<u8>, Option<HugePageBytes>) {
    let huge = matches!(args.ab, Ab::Huge).then(|| HugePageBytes::copy_of(&data));
    (data, huge)
}

/// Times `upload` (then `finish`) through a belt with the defaults and
/// through one without the feature `args.ab` names, alternating, best of
/// `args.reps` each; prints where each belt's time went.
fn ab(
    rig: &Rig,
    args: &Args,
    ring: u64,
    what: &str,
    mut upload: impl FnMut(&mut StagingBelt, usize),
) -> [Duration; 2] {
    let mut belts = [
        rig.belt(ring),
        rig.belt_with(StagingBeltConfig {
            force_staging: true,
            overlap_submit: !matches!(args.ab, Ab::Overlap),
            spin_wait: match args.ab {
                Ab::Spin => Duration::ZERO,
                Ab::Overlap | Ab::Huge | Ab::Streaming => StagingBeltConfig::default().spin_wait,
            },
            streaming_stores: matches!(args.ab, Ab::Streaming) || rig.streaming,
            ..StagingBeltConfig::with_ring_size(ring)
        }),
    ];
    let mut best = [Duration::MAX; 2];
    for _ in 0..args.reps.max(1) {
        for (i, (belt, best)) in belts.iter_mut().zip(&mut best).enumerate() {
            let start = Instant::now();
            upload(belt, i);
            belt.finish().unwrap();
            *best = (*best).min(start.elapsed());
        }
    }
    for (belt, label) in belts.iter().zip(["defaults", args.ab.second()]) {
        let s = belt.stats();
        let n = args.reps.max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / n;
        println!(
            "  {what}, {label}: per upload {:.2} ms copying into the ring, {:.2} ms in vkQueueSubmit, \
             {:.2} ms waiting, {:.1} batches",
            ms(s.copy_time),
            ms(s.submit_time),
            ms(s.wait_time),
            s.batches_submitted as f64 / n
        );
    }
    best
}

/// The belt's host side alone: the upload source copied in 16 MiB chunks,
/// cycling through 64 MiB, by `threads` threads in 1 MiB pieces (as
/// `parallel_copy` splits a chunk), into heap memory and into mapped memory
/// of the ring's type. No GPU work runs meanwhile.
/// Times `threads` threads copying `size` bytes into `dst` (a ring-sized
/// region, wrapping) in 16 MiB chunks: the host's own copy, the ceiling of an
/// upload from a slice.
fn host_copy_time(data: &[u8], dst: &mut [u8], threads: usize, reps: usize) -> Duration {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let chunk = 16 * MIB as usize;
    best(reps, || {
        let start = Instant::now();
        for (i, src) in data.chunks(chunk).enumerate() {
            let at = i * chunk % dst.len();
            let d = &mut dst[at..at + src.len()];
            let piece = src.len().div_ceil(threads).max(1 << 20);
            pool.install(|| {
                d.par_chunks_mut(piece)
                    .zip(src.par_chunks(piece))
                    .for_each(|(d, s)| d.copy_from_slice(s))
            });
        }
        start.elapsed()
    })
}

/// Staging both ways and in place, each beside its ceiling measured in the
/// same run: the raw `vkCmdCopyBuffer` (host-visible to device-local, and
/// back), the host's parallel copy into mapped memory, and the file's own
/// parallel read from the page cache.
fn bench_both_ways(rig: &Rig, args: &Args, ring: u64) {
    use std::os::unix::fs::FileExt;
    let size = args.size_mib * MIB;
    let d = rig.ctx.device().clone();
    let dst = rig
        .res()
        .create_buffer(&BufferDesc::new(
            size,
            vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::GpuOnly,
        ))
        .expect("device-local buffer");
    let host = rig.staging(size, 0x5A);
    let readback = rig
        .res()
        .create_buffer(&BufferDesc::readback(size))
        .expect("readback buffer");
    let regions: Vec<vk::BufferCopy> = (0..size.div_ceil(64 * MIB))
        .map(|i| vk::BufferCopy {
            src_offset: i * 64 * MIB,
            dst_offset: i * 64 * MIB,
            size: (64 * MIB).min(size - i * 64 * MIB),
        })
        .collect();
    let raw_up = best(args.reps, || {
        rig.submit_timed(|cmd| {
            // SAFETY: recording; the buffers are alive and large enough.
            unsafe { d.cmd_copy_buffer(cmd, host.handle(), dst.handle(), &regions) }
        })
    });
    let raw_down = best(args.reps, || {
        rig.submit_timed(|cmd| {
            // SAFETY: as above.
            unsafe { d.cmd_copy_buffer(cmd, dst.handle(), readback.handle(), &regions) }
        })
    });
    rig.destroy(host);
    rig.destroy(readback);
    let mut belt = rig.belt(ring);
    let threads = belt_threads(rig);
    let data = pattern(size as usize);
    // The host's own copy into mapped ring-like memory.
    let ring_like = rig
        .res()
        .create_buffer(&BufferDesc::new(
            ring,
            vk::BufferUsageFlags::TRANSFER_SRC,
            rig.ring_memory
                .unwrap_or(StagingBeltConfig::default().ring_memory),
        ))
        .expect("ring-like buffer");
    let ptr = ring_like.allocation().mapped_ptr().expect("host-visible");
    // SAFETY: mapped for `ring` bytes, used by nothing else.
    let ring_mem = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), ring as usize) };
    let host_copy = host_copy_time(&data, ring_mem, threads, args.reps);
    rig.destroy(ring_like);
    let timed = |belt: &mut StagingBelt, f: &mut dyn FnMut(&mut StagingBelt)| {
        best(args.reps, || {
            let start = Instant::now();
            f(belt);
            belt.finish().unwrap();
            start.elapsed()
        })
    };
    let from_slice = timed(&mut belt, &mut |b| {
        let _ = b.upload_buffer(&dst, 0, &data).unwrap();
    });
    let in_place = timed(&mut belt, &mut |b| {
        let _ = b
            .upload_buffer_with(&dst, 0, size, |at, bytes| {
                bytes.fill((at >> 20) as u8);
                Ok::<(), std::io::Error>(())
            })
            .unwrap();
    });
    // The same calls with a writer that leaves the ring as it is: the
    // belt's own cost (pieces, submits, waits) beside the DMA.
    let unwritten = timed(&mut belt, &mut |b| {
        let _ = b
            .upload_buffer_with(&dst, 0, size, |_, _| Ok::<(), std::io::Error>(()))
            .unwrap();
    });
    // A file in the page cache: written, then read once to warm it.
    let path = std::env::temp_dir().join(format!("gpumem-bench-{}.bin", std::process::id()));
    std::fs::write(&path, &data).expect("bench file");
    let file = std::fs::File::open(&path).expect("bench file");
    let mut heap = vec![0u8; size as usize];
    let file_read = {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let piece = 16 * MIB as usize;
        best(args.reps.max(2), || {
            let start = Instant::now();
            pool.install(|| {
                heap.par_chunks_mut(piece).enumerate().for_each(|(i, c)| {
                    file.read_exact_at(c, (i * piece) as u64).expect("read");
                })
            });
            start.elapsed()
        })
    };
    let from_file = timed(&mut belt, &mut |b| {
        let _ = b.upload_buffer_from_file(&dst, 0, &file, 0, size).unwrap();
    });
    drop(file);
    let _ = std::fs::remove_file(&path);
    let read_back = best(args.reps, || {
        let start = Instant::now();
        belt.read_buffer(&dst, 0, &mut heap).unwrap();
        start.elapsed()
    });
    assert!(heap == data, "read back what was uploaded from the file");
    drop(belt);
    rig.destroy(dst);
    let g = |t| gbps(size, t);
    let file_ceiling = g(file_read).min(g(raw_up));
    println!();
    println!("| {} MiB, ring {} MiB, {threads} copy threads | gpumem GB/s | ceiling GB/s (measured in this run) | gpumem / ceiling |", args.size_mib, ring / MIB);
    println!("|---|---:|---|---:|");
    let row = |case: &str, t: Duration, ceiling: f64, what: &str| {
        println!(
            "| {case} | {:.2} | {ceiling:.2} ({what}) | {:.0}% |",
            g(t),
            g(t) / ceiling * 100.0
        );
    };
    row(
        "upload from a `&[u8]`",
        from_slice,
        g(host_copy),
        "host's parallel copy into mapped memory",
    );
    row(
        "upload from a `&[u8]`, against DMA",
        from_slice,
        g(raw_up),
        "raw vkCmdCopyBuffer host to device",
    );
    row(
        "upload written in place",
        in_place,
        g(raw_up),
        "raw vkCmdCopyBuffer host to device",
    );
    row(
        "upload written in place by a writer that writes nothing (the belt's own cost)",
        unwritten,
        g(raw_up),
        "raw vkCmdCopyBuffer host to device",
    );
    row(
        "upload from a file in the page cache",
        from_file,
        file_ceiling,
        &format!(
            "lower of raw DMA and the file's parallel read, {:.2}",
            g(file_read)
        ),
    );
    row(
        "readback to a `&mut [u8]`",
        read_back,
        g(raw_down),
        "raw vkCmdCopyBuffer device to host",
    );
}

/// A texture with its mip chain through the belt and written from host
/// memory (VK_EXT_host_image_copy), into the same image, alternating.
fn bench_host_copy(rig: &Rig, args: &Args, ring: u64) {
    if !rig.ctx.features().host_image_copy {
        println!("host image copy: this device lacks VK_EXT_host_image_copy");
        return;
    }
    let n = args.texture;
    let mips = 32 - n.leading_zeros();
    let img = rig
        .res()
        .create_image(
            &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, n, n, mips).usage(
                vk::ImageUsageFlags::SAMPLED
                    | vk::ImageUsageFlags::TRANSFER_DST
                    | vk::ImageUsageFlags::TRANSFER_SRC
                    | vk::ImageUsageFlags::HOST_TRANSFER_EXT,
            ),
        )
        .expect("texture");
    let layout = ImageLayout::new_2d(vk::Format::R8G8B8A8_UNORM, n, n, mips, 1);
    let data = pattern(expected_data_size(&layout).unwrap() as usize);
    let mut belt = rig.belt_with(StagingBeltConfig {
        force_staging: true,
        host_image_copy: true,
        ..StagingBeltConfig::with_ring_size(ring)
    });
    let final_layout = vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL;
    let (mut staged, mut host) = (Duration::MAX, Duration::MAX);
    for _ in 0..args.reps.max(1) {
        let start = Instant::now();
        let _ = belt.upload_image(&img, &data, final_layout).unwrap();
        belt.finish().unwrap();
        staged = staged.min(start.elapsed());
        let start = Instant::now();
        belt.copy_image_on_host(&img, &data, final_layout).unwrap();
        host = host.min(start.elapsed());
    }
    // The host copy's texels, read back through the belt.
    let mut back = vec![0u8; data.len()];
    belt.read_image(&img, ImageSubresources::all(), &mut back)
        .unwrap();
    assert!(back == data, "the host copy's texels read back");
    drop(belt);
    // SAFETY: the belt finished its copies; the host copy is synchronous.
    unsafe { rig.res().destroy_image(img) }.unwrap();
    let bytes = data.len() as u64;
    println!();
    println!("| {n}x{n} RGBA8, {mips} mips ({bytes} bytes) | ms | GB/s |");
    println!("|---|---:|---:|");
    for (case, t) in [
        ("belt (ring + vkCmdCopyBufferToImage)", staged),
        ("vkCopyMemoryToImageEXT (host image copy)", host),
    ] {
        println!(
            "| {case} | {:.2} | {:.2} |",
            t.as_secs_f64() * 1e3,
            gbps(bytes, t)
        );
    }
}

/// The copy threads the belts of this run use.
fn belt_threads(rig: &Rig) -> usize {
    rig.threads
        .unwrap_or_else(|| StagingBeltConfig::default().copy_threads)
}

fn bench_memcpy(rig: &Rig, args: &Args) {
    use rayon::prelude::*;
    let size = args.size_mib * MIB;
    let data = pattern(size as usize);
    let (ring, chunk) = (64 * MIB as usize, 16 * MIB as usize);
    let mut heap = vec![0u8; ring];
    let mapped = rig
        .res()
        .create_buffer(&BufferDesc::new(
            ring as u64,
            vk::BufferUsageFlags::TRANSFER_SRC,
            StagingBeltConfig::default().ring_memory,
        ))
        .expect("ring-like buffer");
    let ptr = mapped.allocation().mapped_ptr().expect("host-visible");
    // SAFETY: the buffer is mapped for `ring` bytes and nothing else uses it.
    let ring_mem = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), ring) };
    println!();
    println!("| copy threads | into heap GB/s | into mapped ring memory GB/s |");
    println!("|---:|---:|---:|");
    for threads in [1, 4, 8, 12, 16, 24, 32] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let run = |dst: &mut [u8]| {
            best(args.reps, || {
                let start = Instant::now();
                for (i, src) in data.chunks(chunk).enumerate() {
                    let at = i * chunk % ring;
                    let dst = &mut dst[at..at + src.len()];
                    let piece = src.len().div_ceil(threads).max(1 << 20);
                    pool.install(|| {
                        dst.par_chunks_mut(piece)
                            .zip(src.par_chunks(piece))
                            .for_each(|(d, s)| d.copy_from_slice(s))
                    });
                }
                start.elapsed()
            })
        };
        let (h, m) = (run(&mut heap), run(ring_mem));
        println!(
            "| {threads} | {:.2} | {:.2} |",
            gbps(size, h),
            gbps(size, m)
        );
    }
    rig.destroy(mapped);
}

fn bench_direct(rig: &Rig, args: &Args, size: u64) -> Option<(Duration, u32)> {
    // Dynamic memory: device-local + host-visible where the device has it.
    let dst = rig.gpu_buffer(size, MemoryUsage::Dynamic);
    let ty = dst.allocation().memory_type_index();
    let flags = rig.memory_flags(ty);
    if !flags
        .contains(vk::MemoryPropertyFlags::DEVICE_LOCAL | vk::MemoryPropertyFlags::HOST_VISIBLE)
    {
        rig.destroy(dst);
        return None;
    }
    let data = pattern(size as usize);
    let mut belt = rig.belt_with(StagingBeltConfig::with_ring_size(64 * MIB));
    let t = best(args.reps, || {
        let start = Instant::now();
        let _ = belt.upload_buffer(&dst, 0, &data).unwrap();
        start.elapsed()
    });
    drop(belt);
    rig.destroy(dst);
    Some((t, ty))
}

fn bench_small(rig: &Rig, args: &Args, ring: u64) -> [Row; 2] {
    let each = args.small_kib * 1024;
    let count = args.small_count;
    let total = each * count;
    let dst = rig.gpu_buffer(total, MemoryUsage::GpuOnly);
    let staging = rig.staging(total, 0x33);
    let d = rig.ctx.device().clone();
    let regions: Vec<vk::BufferCopy> = (0..count)
        .map(|i| vk::BufferCopy {
            src_offset: i * each,
            dst_offset: i * each,
            size: each,
        })
        .collect();
    let raw = best(args.reps, || {
        // SAFETY: recording; both buffers alive and large enough.
        rig.submit_timed(|cmd| unsafe {
            d.cmd_copy_buffer(cmd, staging.handle(), dst.handle(), &regions)
        })
    });
    rig.destroy(staging);
    let pieces: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; each as usize]).collect();
    let mut belt = rig.belt(ring);
    let list = args.small_list.max(1);
    // One call per upload, then lists of `list` writes per call, alternating.
    let mut best_t = [Duration::MAX; 2];
    for _ in 0..args.reps.max(1) {
        for (k, best_t) in best_t.iter_mut().enumerate() {
            let start = Instant::now();
            if k == 0 {
                for (i, p) in pieces.iter().enumerate() {
                    let _ = belt.upload_buffer(&dst, i as u64 * each, p).unwrap();
                }
            } else {
                for (c, group) in pieces.chunks(list).enumerate() {
                    let writes: Vec<BufferWrite<'_>> = group
                        .iter()
                        .enumerate()
                        .map(|(i, p)| BufferWrite::new(&dst, (c * list + i) as u64 * each, p))
                        .collect();
                    let _ = belt.upload_buffers(&writes).unwrap();
                }
            }
            belt.finish().unwrap();
            *best_t = (*best_t).min(start.elapsed());
        }
    }
    drop(belt);
    rig.destroy(dst);
    [
        Row {
            case: format!("{count} x {} KiB buffers", args.small_kib),
            bytes: total,
            raw,
            belt: best_t[0],
        },
        Row {
            case: format!(
                "{count} x {} KiB buffers, {list} per upload_buffers call",
                args.small_kib
            ),
            bytes: total,
            raw,
            belt: best_t[1],
        },
    ]
}

fn bench_texture(rig: &Rig, args: &Args, ring: u64) -> [Row; 2] {
    let n = args.texture;
    let desc = ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, n, n, 32 - n.leading_zeros())
        .usage(vk::ImageUsageFlags::TRANSFER_DST | vk::ImageUsageFlags::SAMPLED);
    let img: Image = rig.res().create_image(&desc).expect("texture");
    let layout = ImageLayout {
        format: desc.format,
        image_type: vk::ImageType::TYPE_2D,
        extent: desc.extent,
        mip_levels: desc.mip_levels,
        array_layers: 1,
        aspect: None,
    };
    let total = expected_data_size(&layout).unwrap();
    let staging = rig.staging(total, 0x77);
    let d = rig.ctx.device().clone();
    let mut regions = Vec::new();
    let mut off = 0;
    for level in 0..desc.mip_levels {
        let s = (n >> level).max(1);
        regions.push(vk::BufferImageCopy {
            buffer_offset: off,
            image_subresource: vk::ImageSubresourceLayers {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                mip_level: level,
                base_array_layer: 0,
                layer_count: 1,
            },
            image_extent: vk::Extent3D {
                width: s,
                height: s,
                depth: 1,
            },
            ..Default::default()
        });
        off += u64::from(s) * u64::from(s) * 4;
    }
    let range = img.full_subresource_range();
    let raw = best(args.reps, || {
        rig.submit_timed(|cmd| {
            let to_dst = vk::ImageMemoryBarrier::default()
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .old_layout(vk::ImageLayout::UNDEFINED)
                .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(img.handle())
                .subresource_range(range);
            // SAFETY: recording; image and staging alive.
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
                    staging.handle(),
                    img.handle(),
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &regions,
                );
            }
        })
    });
    rig.destroy(staging);
    let (data, huge) = sources(args, pattern(total as usize));
    let [on, off] = ab(rig, args, ring, "texture", |belt, i| {
        let src = match (&huge, i) {
            (Some(h), 1) => h.bytes(),
            _ => &data,
        };
        let _ = belt
            .upload_image(&img, src, vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
            .unwrap();
    });
    // SAFETY: idle.
    unsafe { rig.res().destroy_image(img) }.unwrap();
    let case = format!("{n}x{n} RGBA8 texture + {} mips", desc.mip_levels - 1);
    [
        Row {
            case: case.clone(),
            bytes: total,
            raw,
            belt: on,
        },
        Row {
            case: format!("{case}, {}", args.ab.second()),
            bytes: total,
            raw,
            belt: off,
        },
    ]
}

fn main() {
    let args = Args::parse();
    let mut rig = Rig::new(
        args.validation,
        args.threads,
        args.chunk_mib.map(|c| c * MIB),
        args.import,
        args.ring_memory.map(RingMemory::usage),
    );
    rig.streaming = args.streaming_stores;
    rig.parallel_threshold = args.parallel_threshold_kib.map(|k| k << 10);
    let props = rig.ctx.properties();
    // SAFETY: the name is a NUL-terminated string from the driver.
    let name = unsafe { std::ffi::CStr::from_ptr(props.device_name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let families = rig.ctx.queue_families();
    let fam_flags = families
        .iter()
        .find(|(i, _)| *i == rig.family)
        .map(|(_, p)| p.queue_flags)
        .unwrap();
    println!("device: {name}; copy queue family {} ({fam_flags:?}); {} CPU threads; import {}; ring memory {:?}; streaming stores {}; parallel copies from {} KiB", rig.family,
        std::thread::available_parallelism().map_or(1, |n| n.get()), if rig.import { "on" } else { "off" }, rig.ring_memory.unwrap_or(StagingBeltConfig::default().ring_memory),
        if rig.streaming { "on" } else { "off" },
        rig.parallel_threshold.unwrap_or(StagingBeltConfig::default().parallel_copy_threshold) >> 10);
    let ring = args.ring_mib * MIB;
    if args.scene || args.both_ways || args.host_image_copy {
        if args.scene {
            bench_scene(&rig, &args, ring);
        } else {
            if args.both_ways {
                bench_both_ways(&rig, &args, ring);
            }
            if args.host_image_copy {
                bench_host_copy(&rig, &args, ring);
            }
        }
        report_validation(rig, args.validation);
        return;
    }
    let [big, big_off] = bench_big(&rig, &args, args.size_mib * MIB, ring);
    let [small, small_lists] = bench_small(&rig, &args, ring);
    let [tex, tex_off] = bench_texture(&rig, &args, ring);
    let rows = [big, small, small_lists, tex, big_off, tex_off];
    let direct = bench_direct(&rig, &args, args.size_mib * MIB);
    println!();
    println!("| upload | bytes | raw vkCmdCopy* GB/s | gpumem belt GB/s | belt / raw |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let raw = gbps(r.bytes, r.raw);
        let belt = gbps(r.bytes, r.belt);
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0}% |",
            r.case,
            r.bytes,
            raw,
            belt,
            belt / raw * 100.0
        );
    }
    if let Some((t, ty)) = direct {
        println!(
            "| {} MiB buffer, direct write to host-visible VRAM (type {ty}) | {} | - | {:.2} | - |",
            args.size_mib,
            args.size_mib * MIB,
            gbps(args.size_mib * MIB, t)
        );
    }
    if args.split {
        bench_split(&rig, &args, args.size_mib * MIB);
    }
    if args.memcpy {
        bench_memcpy(&rig, &args);
    }
    if args.tune {
        let size = args.size_mib * MIB;
        let dst = rig.gpu_buffer(size, MemoryUsage::GpuOnly);
        let data = pattern(size as usize);
        println!();
        println!(
            "| copy threads | chunk | ring | belt GB/s ({} MiB) |",
            args.size_mib
        );
        println!("|---:|---:|---:|---:|");
        for threads in [1usize, 4, 8, 16] {
            for chunk_mib in [4u64, 16, 64] {
                let ring = 4 * chunk_mib * MIB;
                let desc = StagingBeltConfig {
                    force_staging: true,
                    copy_threads: threads,
                    chunk_size: chunk_mib * MIB,
                    auto_submit_bytes: chunk_mib * MIB,
                    ..StagingBeltConfig::with_ring_size(ring)
                };
                let mut belt = rig.belt_with(desc);
                let t = best(args.reps, || {
                    let start = Instant::now();
                    let _ = belt.upload_buffer(&dst, 0, &data).unwrap();
                    belt.finish().unwrap();
                    start.elapsed()
                });
                drop(belt);
                println!(
                    "| {threads} | {chunk_mib} MiB | {} MiB | {:.2} |",
                    ring / MIB,
                    gbps(size, t)
                );
            }
        }
        if rig.ctx.has_extension(ash::ext::external_memory_host::NAME) {
            println!();
            println!(
                "| import chunk | belt GB/s ({} MiB, imported) | bytes imported | fallbacks |",
                args.size_mib
            );
            println!("|---:|---:|---:|---:|");
            for chunk_mib in [16u64, 32, 64, 256] {
                let desc = StagingBeltConfig {
                    force_staging: true,
                    external_memory_host: true,
                    import_threshold: 64 * MIB,
                    import_chunk_size: chunk_mib * MIB,
                    ..StagingBeltConfig::with_ring_size(64 * MIB)
                };
                let mut belt = rig.belt_with(desc);
                let t = best(args.reps, || {
                    let start = Instant::now();
                    let _ = belt.upload_buffer(&dst, 0, &data).unwrap();
                    belt.finish().unwrap();
                    start.elapsed()
                });
                let st = belt.stats();
                drop(belt);
                println!(
                    "| {chunk_mib} MiB | {:.2} | {} | {} |",
                    gbps(size, t),
                    st.bytes_imported,
                    st.import_fallbacks
                );
            }
        }
        rig.destroy(dst);
    }
    let mut sweep_rows = Vec::new();
    if args.sweep {
        println!();
        println!("| upload size | ring | belt GB/s |");
        println!("|---:|---:|---:|");
        for ring_mib in [16u64, 64, 256] {
            for size in [
                4 * 1024u64,
                64 * 1024,
                MIB,
                16 * MIB,
                32 * MIB,
                64 * MIB,
                256 * MIB,
                args.size_mib * MIB,
            ] {
                if size > args.size_mib * MIB {
                    continue;
                }
                let dst = rig.gpu_buffer(size, MemoryUsage::GpuOnly);
                let data = pattern(size as usize);
                let mut belt = rig.belt(ring_mib * MIB);
                let reps = if size < MIB { 200 } else { args.reps };
                let t = best(reps, || {
                    let start = Instant::now();
                    let _ = belt.upload_buffer(&dst, 0, &data).unwrap();
                    belt.finish().unwrap();
                    start.elapsed()
                });
                drop(belt);
                rig.destroy(dst);
                println!("| {size} | {ring_mib} MiB | {:.2} |", gbps(size, t));
                sweep_rows.push(format!(
                    "{{\"size\":{size},\"ring_mib\":{ring_mib},\"gbps\":{:.3}}}",
                    gbps(size, t)
                ));
            }
        }
    }
    if let Some(path) = &args.json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"case\":\"{}\",\"bytes\":{},\"raw_gbps\":{:.3},\"belt_gbps\":{:.3}}}",
                    r.case,
                    r.bytes,
                    gbps(r.bytes, r.raw),
                    gbps(r.bytes, r.belt)
                )
            })
            .collect();
        let direct_json = direct.map_or("null".into(), |(t, ty)| {
            format!(
                "{{\"memory_type\":{ty},\"gbps\":{:.3}}}",
                gbps(args.size_mib * MIB, t)
            )
        });
        std::fs::write(
            path,
            format!(
                "{{\"device\":\"{name}\",\"rows\":[{}],\"direct\":{direct_json},\"sweep\":[{}]}}\n",
                items.join(","),
                sweep_rows.join(",")
            ),
        )
        .unwrap();
    }
    report_validation(rig, args.validation);
}

/// Drops the rig (its device and debug messenger) and, under --validation,
/// prints how many validation messages the run produced.
fn report_validation(rig: Rig, validation: bool) {
    let messages = rig.ctx.message_count();
    drop(rig);
    if validation {
        println!("validation messages: {messages}");
    }
}

/// `--split`: a prototype of feeding the link from two sides. The belt
/// streams the first part of the buffer through its system-memory ring
/// (memcpy + DMA) while other threads write the rest straight into a
/// device-local host-visible (ReBAR) staging buffer; a VRAM-to-VRAM copy then
/// moves that part into place. Timed from the `&[u8]` to the GPU done.
fn bench_split(rig: &Rig, args: &Args, size: u64) {
    let dst = rig.gpu_buffer(size, MemoryUsage::GpuOnly);
    let data = pattern(size as usize);
    let rebar = rig
        .res()
        .create_buffer(&BufferDesc::new(
            size,
            vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::Dynamic,
        ))
        .expect("rebar buffer");
    let ty = rebar.allocation().memory_type_index();
    let flags = rig.memory_flags(ty);
    let device_local = flags.contains(vk::MemoryPropertyFlags::DEVICE_LOCAL);
    let ptr = rebar.allocation().mapped_ptr().expect("host-visible");
    println!();
    println!(
        "| ReBAR share | belt threads | ReBAR threads | GB/s ({} MiB; ReBAR staging type {ty}, device-local {device_local}) |",
        size / MIB
    );
    println!("|---:|---:|---:|---:|");
    let d = rig.ctx.device().clone();
    for share_pct in [0u64, 15, 25, 35] {
        for (t1, t2) in [(16usize, 4usize), (12, 4), (12, 8), (16, 8)] {
            if share_pct == 0 && t2 != 4 {
                continue;
            }
            let split = (size * share_pct / 100) / 4096 * 4096;
            let ring_len = size - split;
            let mut belt = rig.belt_with(StagingBeltConfig {
                force_staging: true,
                copy_threads: t1,
                ..StagingBeltConfig::with_ring_size(64 * MIB)
            });
            let t = best(args.reps, || {
                let start = Instant::now();
                std::thread::scope(|s| {
                    if split > 0 {
                        // SAFETY: the ReBAR buffer is mapped for `size` bytes,
                        // unused by the GPU until the copy below, and each
                        // thread writes a disjoint piece of [0, split).
                        let dst_slice =
                            unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), split as usize) };
                        let src = &data[ring_len as usize..];
                        let piece = (split as usize).div_ceil(t2).next_multiple_of(4096);
                        for (dchunk, schunk) in dst_slice.chunks_mut(piece).zip(src.chunks(piece)) {
                            s.spawn(move || dchunk.copy_from_slice(schunk));
                        }
                    }
                    let _ = belt
                        .upload_buffer(&dst, 0, &data[..ring_len as usize])
                        .unwrap();
                });
                if split > 0 {
                    rig.submit_timed(|cmd| {
                        let region = vk::BufferCopy {
                            src_offset: 0,
                            dst_offset: ring_len,
                            size: split,
                        };
                        // SAFETY: recording; both buffers alive and large enough.
                        unsafe { d.cmd_copy_buffer(cmd, rebar.handle(), dst.handle(), &[region]) };
                    });
                }
                belt.finish().unwrap();
                start.elapsed()
            });
            drop(belt);
            println!("| {share_pct}% | {t1} | {t2} | {:.2} |", gbps(size, t));
        }
    }
    rig.destroy(rebar);
    rig.destroy(dst);
}

/// `--scene`: the main job's scene (`upload_mesh`'s built-in one) uploaded
/// object by object as `upload_mesh` does (meshes from slices, textures
/// written in place level by level), by a belt made for the upload (cold
/// ring) and by one that uploaded the scene before (warm), each with its
/// time split into phases, beside two raw copies measured in the same run:
/// every object from one pre-filled staging buffer in one submission, and
/// the same number of bytes as one buffer copy.
fn bench_scene(rig: &Rig, args: &Args, ring: u64) {
    let scene = mem_demo::Scene::generate_default(args.scene_scale);
    let d = rig.ctx.device().clone();
    let buffer_usage = vk::BufferUsageFlags::TRANSFER_DST
        | vk::BufferUsageFlags::VERTEX_BUFFER
        | vk::BufferUsageFlags::INDEX_BUFFER;
    let mut buffers: Vec<(Buffer, &[u8])> = Vec::new();
    for m in &scene.meshes {
        for bytes in [m.vertex_bytes(), m.index_bytes()] {
            let b = rig
                .res()
                .create_buffer(&BufferDesc::new(
                    bytes.len() as u64,
                    buffer_usage,
                    MemoryUsage::GpuOnly,
                ))
                .expect("mesh buffer");
            buffers.push((b, bytes));
        }
    }
    let images: Vec<(Image, &mem_demo::scene::TextureData)> = scene
        .textures
        .iter()
        .map(|t| {
            let desc = ImageDesc::texture_2d(t.format, t.width, t.height, t.mip_levels())
                .usage(vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST);
            (rig.res().create_image(&desc).expect("texture"), t)
        })
        .collect();
    let total = scene.total_bytes();
    // --scene-packed: each texture's levels end to end, as a pack holds them.
    let packed: Option<Vec<Vec<u8>>> = args
        .scene_packed
        .then(|| images.iter().map(|(_, t)| t.mips.concat()).collect());

    // Raw: every object's bytes from one staging buffer, in one submission.
    let staging = rig.staging(total, 0x3C);
    let mut buffer_copies = Vec::new();
    let mut image_copies: Vec<Vec<vk::BufferImageCopy>> = Vec::new();
    let mut off = 0u64;
    for (b, bytes) in &buffers {
        buffer_copies.push((
            b.handle(),
            vk::BufferCopy {
                src_offset: off,
                dst_offset: 0,
                size: bytes.len() as u64,
            },
        ));
        off += bytes.len() as u64;
    }
    for (_, t) in &images {
        let mut regions = Vec::new();
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
            off += t.mips[level as usize].len() as u64;
        }
        image_copies.push(regions);
    }
    assert_eq!(off, total, "every object's bytes laid end to end");
    let raw_objects = best(args.reps, || {
        rig.submit_timed(|cmd| {
            let to_dst: Vec<_> = images
                .iter()
                .map(|(img, _)| {
                    vk::ImageMemoryBarrier::default()
                        .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                        .old_layout(vk::ImageLayout::UNDEFINED)
                        .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                        .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                        .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                        .image(img.handle())
                        .subresource_range(img.full_subresource_range())
                })
                .collect();
            // SAFETY: recording; every buffer and image is alive, the
            // regions lie inside them and inside the staging buffer.
            unsafe {
                d.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TOP_OF_PIPE,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &to_dst,
                );
                for (dst, region) in &buffer_copies {
                    d.cmd_copy_buffer(cmd, staging.handle(), *dst, std::slice::from_ref(region));
                }
                for ((img, _), regions) in images.iter().zip(&image_copies) {
                    d.cmd_copy_buffer_to_image(
                        cmd,
                        staging.handle(),
                        img.handle(),
                        vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        regions,
                    );
                }
            }
        })
    });
    let flat = rig.gpu_buffer(total, MemoryUsage::GpuOnly);
    let raw_bytes = best(args.reps, || {
        rig.submit_timed(|cmd| {
            let region = vk::BufferCopy {
                src_offset: 0,
                dst_offset: 0,
                size: total,
            };
            // SAFETY: recording; both buffers alive and `total` bytes long.
            unsafe { d.cmd_copy_buffer(cmd, staging.handle(), flat.handle(), &[region]) };
        })
    });
    rig.destroy(flat);
    rig.destroy(staging);

    // The belt: one upload of the scene, as `upload_mesh` makes it.
    // With `write` false every object goes through the same belt calls with
    // writers that leave the ring as it is: the belt's own cost beside the
    // GPU's copies, without the host's writing.
    let upload =
        |belt: &mut StagingBelt, write: bool| -> (Duration, gpumem::staging::StagingStats) {
            let before = belt.stats();
            let start = Instant::now();
            if write {
                let writes: Vec<BufferWrite<'_>> = buffers
                    .iter()
                    .map(|(b, bytes)| BufferWrite::new(b, 0, bytes))
                    .collect();
                let _ = belt.upload_buffers(&writes).unwrap();
            } else {
                for (b, bytes) in &buffers {
                    let _ = belt
                        .upload_buffer_with(b, 0, bytes.len() as u64, |_, _| {
                            Ok::<(), std::convert::Infallible>(())
                        })
                        .unwrap();
                }
            }
            for (i, (img, t)) in images.iter().enumerate() {
                if let (true, Some(packed)) = (write, &packed) {
                    let _ = belt
                        .upload_image(img, &packed[i], vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)
                        .unwrap();
                    continue;
                }
                let _ = belt
                    .upload_image_with(
                        img,
                        ImageSubresources::all(),
                        t.byte_size(),
                        vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL,
                        |at, bytes| {
                            if write {
                                t.copy_levels_into(at as usize, bytes);
                            }
                            Ok::<(), std::convert::Infallible>(())
                        },
                    )
                    .unwrap();
            }
            belt.finish().unwrap();
            let t = start.elapsed();
            let after = belt.stats();
            let delta = gpumem::staging::StagingStats {
                copy_time: after.copy_time - before.copy_time,
                submit_time: after.submit_time - before.submit_time,
                wait_time: after.wait_time - before.wait_time,
                batches_submitted: after.batches_submitted - before.batches_submitted,
                ..after
            };
            (t, delta)
        };
    let make = || {
        rig.belt_with(StagingBeltConfig {
            force_staging: true,
            ..StagingBeltConfig::with_ring_size(ring)
        })
    };
    let mut cold = Vec::new();
    for _ in 0..args.reps.max(1) {
        let start = Instant::now();
        let mut belt = make();
        let created = start.elapsed();
        let (t, s) = upload(&mut belt, true);
        cold.push((t, s, created));
    }
    let mut belt = make();
    let _ = upload(&mut belt, true);
    let warm: Vec<_> = (0..args.reps.max(1))
        .map(|_| upload(&mut belt, true))
        .collect();
    let unwritten: Vec<_> = (0..args.reps.max(1))
        .map(|_| upload(&mut belt, false))
        .collect();
    drop(belt);

    for (img, _) in images {
        // SAFETY: every submission using it was waited for.
        unsafe { rig.res().destroy_image(img) }.unwrap();
    }
    for (b, _) in buffers {
        rig.destroy(b);
    }
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    println!(
        "scene: {} meshes ({} buffers), {} textures, {:.1} MiB; ring {} MiB; {} copy threads; textures {}",
        scene.meshes.len(),
        scene.meshes.len() * 2,
        scene.textures.len(),
        total as f64 / MIB as f64,
        ring / MIB,
        belt_threads(rig),
        if args.scene_packed {
            "from one slice each (--scene-packed)"
        } else {
            "written level by level"
        }
    );
    println!();
    println!("| upload of the scene | ms | GB/s | of raw, per object | phases: copying into the ring / vkQueueSubmit / waiting / the rest, ms | batches |");
    println!("|---|---:|---:|---:|---|---:|");
    let raw_gbps = gbps(total, raw_objects);
    println!(
        "| raw, every object from one staging buffer, one submission | {:.2} | {:.2} | 100% | - | 1 |",
        ms(raw_objects),
        raw_gbps
    );
    println!(
        "| raw, the same bytes as one buffer copy | {:.2} | {:.2} | {:.0}% | - | 1 |",
        ms(raw_bytes),
        gbps(total, raw_bytes),
        gbps(total, raw_bytes) / raw_gbps * 100.0
    );
    let row = |label: String, (t, s, _): &(Duration, gpumem::staging::StagingStats, Duration)| {
        let rest = t.saturating_sub(s.copy_time + s.submit_time + s.wait_time);
        println!(
            "| {label} | {:.2} | {:.2} | {:.0}% | {:.2} / {:.2} / {:.2} / {:.2} | {} |",
            ms(*t),
            gbps(total, *t),
            gbps(total, *t) / raw_gbps * 100.0,
            ms(s.copy_time),
            ms(s.submit_time),
            ms(s.wait_time),
            ms(rest),
            s.batches_submitted
        );
    };
    for (i, c) in cold.iter().enumerate() {
        row(
            format!(
                "belt made for it (run {}, made in {:.2} ms)",
                i + 1,
                ms(c.2)
            ),
            c,
        );
    }
    for (i, w) in warm.iter().enumerate() {
        row(
            format!("warm belt (run {})", i + 1),
            &(w.0, w.1.clone(), Duration::ZERO),
        );
    }
    for (i, w) in unwritten.iter().enumerate() {
        row(
            format!(
                "warm belt, writers that write nothing: the belt's own cost (run {})",
                i + 1
            ),
            &(w.0, w.1.clone(), Duration::ZERO),
        );
    }
}
