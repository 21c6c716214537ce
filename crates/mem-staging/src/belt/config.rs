//! How a belt is set up: the queue it submits on ([`SharedQueue`]) and its
//! sizes, thresholds and timeouts ([`StagingBeltConfig`], every default stated
//! on its field). `StagingBelt::new` clamps the sizes; nothing here changes
//! after that.

use super::*;

/// A queue and the lock that serializes submissions to it.
#[derive(Clone, Debug)]
pub struct SharedQueue {
    /// Queue family index.
    pub family: u32,
    /// The queue.
    pub queue: vk::Queue,
    /// Held around every `vkQueueSubmit` the belt makes; the engine holds the
    /// same lock for its own submissions to this queue.
    pub lock: Arc<Mutex<()>>,
}
impl SharedQueue {
    /// `queue` of `family` with a new lock; clone the result (or its
    /// [`Self::lock`]) for every other submitter of the queue.
    pub fn new(family: u32, queue: vk::Queue) -> Self {
        Self {
            family,
            queue,
            lock: Arc::new(Mutex::new(())),
        }
    }
}
/// Configuration of a [`StagingBelt`]. See [`Default`] for the defaults.
#[derive(Clone, Debug)]
pub struct StagingBeltConfig {
    /// Ring size in bytes. Default 64 MiB; at least 64 KiB.
    pub ring_size: u64,
    /// Largest piece of one upload copied and submitted at once. Default:
    /// ring_size / 4; raised to at least 4 KiB, lowered to at most ring_size / 2.
    pub chunk_size: u64,
    /// The open batch is submitted once it holds this many bytes, so the GPU
    /// starts copying while the CPU fills more. Default ring_size / 4.
    pub auto_submit_bytes: u64,
    /// Copies into the ring (or into a host-visible destination) of at least
    /// this many bytes are split over [`Self::copy_threads`], in pieces of at
    /// least 64 KiB each. A streamed upload copies pieces of at most
    /// [`Self::chunk_size`], so with a small ring the threshold applies to
    /// the whole upload's length. Default 4 MiB.
    pub parallel_copy_threshold: u64,
    /// Threads for those copies (1 disables). Default: available parallelism,
    /// at most 32. One core's memcpy falls well short of a PCIe 4/5 link, so
    /// large uploads need several (BENCHMARKS.md has the figures by thread
    /// count).
    pub copy_threads: usize,
    /// Stage even when the destination is host-visible. Default false.
    pub force_staging: bool,
    /// Memory the ring lives in. Default [`MemoryUsage::Readback`]: cached
    /// host-visible system memory, where the parallel memcpy into the ring
    /// runs faster than into write-combined memory (BENCHMARKS.md, "ring
    /// memory"). [`MemoryUsage::Upload`] puts it in
    /// uncached (write-combined) system memory;
    /// [`MemoryUsage::Dynamic`] in device-local host-visible memory (ReBAR),
    /// where the CPU writes cross PCIe and the GPU copy stays in VRAM. Must
    /// be host-visible: [`MemoryUsage::GpuOnly`] is refused by `new`.
    pub ring_memory: MemoryUsage,
    /// Longest wait for ring space or a ticket before
    /// [`StagingError::Timeout`]. Default 10 s.
    pub wait_timeout: Duration,
    /// The engine enabled `VK_EXT_external_memory_host` on the device, so the
    /// belt may import large upload sources instead of copying them into the
    /// ring (see [`Self::import_threshold`]). Default false.
    pub external_memory_host: bool,
    /// Buffer uploads of at least this many bytes import the caller's slice
    /// (zero copy) when [`Self::external_memory_host`] is set and the
    /// destination is not written directly. Such uploads are synchronous: the
    /// belt waits for the GPU copy before returning, and the returned ticket
    /// is complete. Default 64 MiB; `u64::MAX` disables imports.
    pub import_threshold: u64,
    /// Size of one imported piece. Groups of `copy_threads / 2` pieces are
    /// imported in parallel, and the GPU copies one group while the next is
    /// imported. Default 32 MiB; rounded down to the import alignment.
    pub import_chunk_size: u64,
    /// While the copy threads fill the ring with the next chunk of a
    /// streamed upload, hand the previous chunk's batch to the queue on
    /// another thread, so `vkQueueSubmit` does not leave the copy threads
    /// idle between chunks. Default true.
    pub overlap_submit: bool,
    /// Before blocking in `vkWaitSemaphores` for ring space or a ticket,
    /// poll the timeline value for up to this long (yielding between polls),
    /// so a batch that completes within it is seen at once instead of after
    /// the driver's wake-up. Default 500 µs; zero blocks at once. Never
    /// longer than [`Self::wait_timeout`].
    pub spin_wait: Duration,
    /// The engine enabled `VK_EXT_host_image_copy` and its `hostImageCopy`
    /// feature on the device, so [`super::StagingBelt::copy_image_on_host`]
    /// may write images with `HOST_TRANSFER_EXT` usage straight from host
    /// memory. Default false.
    pub host_image_copy: bool,
    /// Copy into the ring (and into host-visible destinations) with
    /// non-temporal stores on x86-64: whole cache lines go to memory
    /// without being read first, and the GPU's reads of the ring find no
    /// dirty lines in the CPU's caches. Writers then fill a small
    /// cache-resident buffer that is streamed into the ring. Default false.
    pub streaming_stores: bool,
}
impl Default for StagingBeltConfig {
    fn default() -> Self {
        let ring_size = 64 * MIB;
        Self {
            ring_size,
            chunk_size: ring_size / 4,
            auto_submit_bytes: ring_size / 4,
            parallel_copy_threshold: 4 * MIB,
            copy_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(32)),
            force_staging: false,
            ring_memory: MemoryUsage::Readback,
            wait_timeout: Duration::from_secs(10),
            external_memory_host: false,
            import_threshold: 64 * MIB,
            import_chunk_size: 32 * MIB,
            overlap_submit: true,
            spin_wait: Duration::from_micros(500),
            host_image_copy: false,
            streaming_stores: false,
        }
    }
}
impl StagingBeltConfig {
    /// Default configuration with a ring of `ring_size` bytes (chunk and
    /// auto-submit sizes follow it).
    pub fn with_ring_size(ring_size: u64) -> Self {
        Self {
            ring_size,
            chunk_size: ring_size / 4,
            auto_submit_bytes: ring_size / 4,
            ..Self::default()
        }
    }
}
