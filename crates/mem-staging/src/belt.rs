//! The staging belt: a state machine over one persistently mapped ring.
//!
//! # Call order
//! ```text
//!   new ──► upload_buffer / upload_image  (any number; each returns a Ticket)
//!             │   data is copied into the ring now; copies are recorded into
//!             │   the open batch's command buffer
//!             ▼
//!           flush()  ──► the open batch is submitted on the transfer queue and
//!             │          signals the belt's timeline semaphore with its value
//!             ▼
//!           engine: wait for the ticket (is_complete / wait, or a GPU-side
//!           semaphore wait on ticket.semaphore_wait()), then, when the belt's
//!           queue family differs from the destination family, record the
//!           acquire barriers from take_acquire_barriers(ticket) on its own queue
//! ```
//! Uploads recorded but not flushed are not on the GPU: a ticket completes
//! only after the batch holding it is submitted (explicitly with `flush`, or
//! implicitly when the ring fills or a large upload streams).
//!
//! # Ring
//! Reservations are contiguous and aligned for the copy (16 bytes for buffer
//! copies, the planner's alignment for image copies); the ring wraps to 0
//! when its end is too short. Each reservation belongs to the open batch; a
//! batch's space returns when the timeline semaphore passes its value. A full
//! ring submits the open batch, then waits for the oldest one, with a
//! timeout: a lost device surfaces as an error, not a hang.
//!
//! # Large uploads
//! Data larger than a chunk ([`StagingBeltDesc::chunk_size`]) streams through
//! the ring: each chunk is copied into the ring and submitted at once, so the
//! GPU copy of chunk i overlaps the memcpy of chunk i+1. Chunks of at least
//! [`StagingBeltDesc::parallel_copy_threshold`] bytes are copied into the ring
//! by several threads.
//!
//! # Imported uploads (zero copy)
//! With [`StagingBeltDesc::external_memory_host`] (the engine enabled
//! `VK_EXT_external_memory_host`), a staged buffer upload of at least
//! [`StagingBeltDesc::import_threshold`] bytes imports the aligned interior of
//! the caller's slice as device memory ([`crate::import`]) in pieces of
//! [`StagingBeltDesc::import_chunk_size`], and the GPU copies from it
//! directly; the unaligned head and tail go through the ring. The slice is
//! only borrowed, so such uploads are synchronous: the belt submits, waits,
//! and frees the imports before returning a ticket that is already complete.
//! A failed import falls back to the ring ([`StagingStats::import_fallbacks`]).
//!
//! # Queues and ownership
//! The belt submits on the queue it is given ([`SharedQueue`]), taking the
//! queue's lock around `vkQueueSubmit` (the engine shares the same lock for its
//! own submits on that queue, since `VkQueue` submission is externally
//! synchronized). When that queue's family differs from the destination
//! family and a resource uses `EXCLUSIVE` sharing, the belt records the
//! release barrier (with an image's transition to its final layout) and keeps
//! the matching acquire barrier for the engine
//! ([`StagingBelt::take_acquire_barriers`], [`AcquireBarriers::record`]).
//!
//! # Direct path
//! When the destination buffer is host-visible (UMA, ReBAR) and staging is not
//! forced, `upload_buffer` writes it through its mapping and returns a ticket
//! that is already complete.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use ash::vk::Handle;
use mem_core::MemoryUsage;
use mem_resources::{
    Buffer, BufferDesc, Image, ImageSubresources, ResourceError, ResourceManager, Sharing,
    SubresourceState,
};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::image_state::{group_boxes, Final, PendingImage};
use crate::import::{aligned_interior, HostImporter, ImportedBuffer};
use crate::plan::{plan_subresources_upload, CopyLimits, ImageLayout, PlanError};
use crate::ring::Ring;

static NEXT_BELT_ID: AtomicU64 = AtomicU64::new(1);

const MIB: u64 = 1 << 20;

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
pub struct StagingBeltDesc {
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
    /// at most 32. Measured on an H200 host (16 cores), 1 GiB through a
    /// 64 MiB ring: 8 threads 27 GB/s, 16 threads 40 GB/s.
    pub copy_threads: usize,
    /// Stage even when the destination is host-visible. Default false.
    pub force_staging: bool,
    /// Memory the ring lives in. Default [`MemoryUsage::Readback`]: cached
    /// host-visible system memory, where the parallel memcpy into the ring
    /// ran faster than into write-combined memory (H200 host, same run:
    /// 1 GiB upload 34.1 vs 29.9 GB/s). [`MemoryUsage::Upload`] puts it in
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
}

impl Default for StagingBeltDesc {
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
        }
    }
}

impl StagingBeltDesc {
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

/// A point on a belt's timeline: the upload is on the GPU once the belt's
/// semaphore reaches `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use]
pub struct Ticket {
    belt: u64,
    value: u64,
}

impl Ticket {
    /// The timeline value to wait for on [`StagingBelt::semaphore`].
    pub fn value(&self) -> u64 {
        self.value
    }
}

/// Why an upload failed. Every variant names the values; the belt stays
/// usable and nothing is half-recorded, except after [`StagingError::DeviceLost`]
/// or a failed submit, which are sticky.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagingError {
    /// An upload of zero bytes.
    #[error("upload of zero bytes")]
    EmptyData,
    /// The range reaches past the destination.
    #[error("upload of {len} bytes at offset {offset} does not fit a buffer of {size} bytes")]
    OutOfRange {
        /// Destination offset.
        offset: u64,
        /// Data length.
        len: u64,
        /// Destination size.
        size: u64,
    },
    /// The destination lacks `TRANSFER_DST` usage.
    #[error("destination {name:?} lacks TRANSFER_DST usage (has {usage})")]
    MissingTransferDst {
        /// The resource's name.
        name: Option<String>,
        /// Its usage flags, as text.
        usage: String,
    },
    /// The image's usage does not allow the requested final layout (the
    /// spec ties e.g. `TRANSFER_SRC_OPTIMAL` to `TRANSFER_SRC` usage), or the
    /// layout cannot be transitioned to (`UNDEFINED`, `PREINITIALIZED`).
    #[error("final layout {layout} is not allowed for image {name:?} with usage {usage}")]
    LayoutNotAllowed {
        /// The image's name.
        name: Option<String>,
        /// The layout asked for, as text.
        layout: String,
        /// The image's usage flags, as text.
        usage: String,
    },
    /// The buffer or image was made by another [`ResourceManager`] than the
    /// belt's (another device, or another manager of the same device).
    #[error("{name:?} belongs to resource manager #{owner}, not to the belt's (#{manager})")]
    ForeignResource {
        /// The resource's name.
        name: Option<String>,
        /// The manager that made it.
        owner: u64,
        /// The belt's manager.
        manager: u64,
    },
    /// A multisampled image: copies from a buffer need one sample per texel.
    #[error("image {name:?} has {samples} samples per texel; uploads need 1")]
    Multisampled {
        /// The image's name.
        name: Option<String>,
        /// Its sample count.
        samples: u32,
    },
    /// The levels or layers of a partial upload are empty or reach past the
    /// image.
    #[error("{subresources:?} is not inside image {name:?} ({mip_levels} levels, {array_layers} layers)")]
    SubresourcesOutOfRange {
        /// The image's name.
        name: Option<String>,
        /// The box asked for.
        subresources: ImageSubresources,
        /// The image's levels.
        mip_levels: u32,
        /// The image's layers.
        array_layers: u32,
    },
    /// A partial update of an `EXCLUSIVE` image whose contents an earlier
    /// upload released to another queue family: the engine owns it there.
    /// Upload the whole image (which discards the contents and needs no
    /// transfer), or give the image `CONCURRENT` sharing.
    #[error("image {name:?} level {level} layer {layer} is owned by queue family {family}; a partial update needs it on the belt's family")]
    OwnedByAnotherFamily {
        /// The image's name.
        name: Option<String>,
        /// The first such level.
        level: u32,
        /// Its layer.
        layer: u32,
        /// The family that owns it.
        family: u32,
    },
    /// The ticket's batch is still open: nothing will signal its value until
    /// [`StagingBelt::flush`] submits it.
    #[error("timeline value {value} is not submitted yet: flush the belt first")]
    NotSubmitted {
        /// The ticket's value.
        value: u64,
    },
    /// The image upload cannot be planned (format, data size, layout).
    #[error("image upload: {0}")]
    Plan(#[from] PlanError),
    /// A ticket of another belt.
    #[error("ticket belongs to belt #{ticket_belt}, not to this belt (#{belt})")]
    ForeignTicket {
        /// The ticket's belt.
        ticket_belt: u64,
        /// This belt.
        belt: u64,
    },
    /// Waiting took longer than the configured timeout.
    #[error("waited {waited:?} for timeline value {value} (completed: {completed})")]
    Timeout {
        /// The value waited for.
        value: u64,
        /// The value reached.
        completed: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// The device was lost; the belt cannot continue.
    #[error("the device was lost")]
    DeviceLost,
    /// A Vulkan call failed.
    #[error("{call} failed: {result:?}")]
    Vulkan {
        /// The call.
        call: &'static str,
        /// Its result.
        result: vk::Result,
    },
    /// Creating the ring buffer failed.
    #[error("creating the staging ring: {0}")]
    Resource(#[from] ResourceError),
    /// A configuration value is out of range.
    #[error("invalid belt configuration: {0}")]
    InvalidConfig(String),
}

impl StagingError {
    fn vulkan(call: &'static str, result: vk::Result) -> Self {
        if result == vk::Result::ERROR_DEVICE_LOST {
            Self::DeviceLost
        } else {
            Self::Vulkan { call, result }
        }
    }

    fn sticky_copy(&self) -> Self {
        match self {
            Self::DeviceLost => Self::DeviceLost,
            Self::Vulkan { call, result } => Self::Vulkan {
                call,
                result: *result,
            },
            other => Self::InvalidConfig(format!("belt unusable after an earlier error: {other}")),
        }
    }
}

/// A Vulkan call of the belt that [`StagingBelt::inject_fault`] can make
/// fail, for tests of the failure paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BeltFault {
    /// `vkBeginCommandBuffer` when a batch opens.
    BeginCommandBuffer,
    /// `vkQueueSubmit` of a batch.
    QueueSubmit,
    /// `vkWaitSemaphores` while waiting for ring space or a ticket.
    WaitSemaphores,
}

impl BeltFault {
    fn index(self) -> usize {
        match self {
            BeltFault::BeginCommandBuffer => 0,
            BeltFault::QueueSubmit => 1,
            BeltFault::WaitSemaphores => 2,
        }
    }
}

/// Injected failures: calls made per point, and the call that fails.
#[derive(Default)]
struct Faults {
    calls: [u64; 3],
    fail_at: [Option<(u64, vk::Result)>; 3],
}

/// Counters of a belt, for insight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StagingStats {
    /// Bytes copied through the ring.
    pub bytes_staged: u64,
    /// Bytes written directly into host-visible destinations.
    pub bytes_direct: u64,
    /// Upload calls that succeeded.
    pub uploads: u64,
    /// Batches submitted.
    pub batches_submitted: u64,
    /// Batches submitted and not yet known complete.
    pub batches_in_flight: usize,
    /// Ring bytes in use now.
    pub ring_used: u64,
    /// Highest ring occupancy seen, in bytes.
    pub ring_high_water: u64,
    /// Ring size.
    pub ring_size: u64,
    /// Time spent waiting for ring space or tickets.
    pub wait_time: Duration,
    /// Time spent copying upload data into the ring (wall clock of the
    /// parallel copies, including a submit overlapped with them).
    pub copy_time: Duration,
    /// Time spent in `vkQueueSubmit` (on whichever thread made the call).
    pub submit_time: Duration,
    /// Copy commands recorded.
    pub copy_commands: u64,
    /// Bytes copied by the GPU straight from imported host memory.
    pub bytes_imported: u64,
    /// Imports that failed (rejected pointer, out of memory); their bytes
    /// went through the ring instead.
    pub import_fallbacks: u64,
}

/// Acquire barriers the engine records on its own queue (the destination
/// family) after waiting for the ticket, to complete queue-family ownership
/// transfers the belt released.
#[derive(Clone, Debug, Default)]
pub struct AcquireBarriers {
    /// Buffer barriers (`srcQueueFamilyIndex` = belt's family).
    pub buffers: Vec<vk::BufferMemoryBarrier<'static>>,
    /// Image barriers, with the same layout transition as the release.
    pub images: Vec<vk::ImageMemoryBarrier<'static>>,
    /// Semaphore and value to wait for before executing them.
    pub wait: Option<(vk::Semaphore, u64)>,
}

impl AcquireBarriers {
    /// True when there is nothing to acquire.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty() && self.images.is_empty()
    }

    /// Records the barriers into `cmd` with the engine's destination stage and
    /// access (e.g. `VERTEX_INPUT` + `VERTEX_ATTRIBUTE_READ`, or
    /// `FRAGMENT_SHADER` + `SHADER_READ`).
    ///
    /// # Safety
    /// - `cmd` is a command buffer of `device` in the recording state, from a
    ///   pool of the destination queue family;
    /// - the submission that executes it waits for [`Self::wait`] first.
    pub unsafe fn record(
        &self,
        device: &ash::Device,
        cmd: vk::CommandBuffer,
        dst_stage: vk::PipelineStageFlags,
        dst_access: vk::AccessFlags,
    ) {
        if self.is_empty() {
            return;
        }
        let buffers: Vec<_> = self
            .buffers
            .iter()
            .map(|b| b.dst_access_mask(dst_access))
            .collect();
        let images: Vec<_> = self
            .images
            .iter()
            .map(|b| b.dst_access_mask(dst_access))
            .collect();
        // SAFETY: the caller guarantees `cmd` is recording on the destination
        // family; the barriers name resources the belt released to it.
        unsafe {
            device.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                dst_stage,
                vk::DependencyFlags::empty(),
                &[],
                &buffers,
                &images,
            )
        }
    }
}

struct OpenBatch {
    cmd: vk::CommandBuffer,
    value: u64,
    bytes: u64,
    has_work: bool,
    /// Per destination buffer: the envelope [start, end) written in this
    /// batch, to detect overlapping writes that need a barrier.
    envelopes: ahash::AHashMap<vk::Buffer, (u64, u64)>,
    /// A buffer copy not yet recorded, extended while the next upload
    /// continues it in both the ring and the destination (many small
    /// uploads into one buffer become one region).
    pending_copy: Option<(vk::Buffer, vk::BufferCopy)>,
    end_buffer_barriers: Vec<vk::BufferMemoryBarrier<'static>>,
    /// Images with subresources this batch leaves in
    /// `TRANSFER_DST_OPTIMAL` until its end (see [`crate::image_state`]).
    images: ahash::AHashMap<vk::Image, PendingImage>,
}

/// The ring-buffered staging belt. See the module docs for its call order.
///
/// `Send`, used through `&mut self` by one thread at a time; wrap it in a
/// mutex to share it.
pub struct StagingBelt {
    id: u64,
    resources: Arc<ResourceManager>,
    device: ash::Device,
    desc: StagingBeltDesc,
    queue: SharedQueue,
    destination_family: u32,
    limits: CopyLimits,
    ring_buffer: Option<Buffer>,
    ring_ptr: RingPtr,
    ring_coherent: bool,
    ring: Ring,
    semaphore: vk::Semaphore,
    pool: vk::CommandPool,
    free_cmds: Vec<vk::CommandBuffer>,
    open: Option<OpenBatch>,
    next_value: u64,
    in_flight: VecDeque<(u64, vk::CommandBuffer)>,
    completed: u64,
    acquires: Vec<(u64, AcquireBarriers)>,
    /// Engine semaphores the next submitted batch waits on.
    next_waits: Vec<(vk::Semaphore, u64)>,
    sticky: Option<StagingError>,
    faults: Faults,
    stats: StagingStats,
    importer: Option<HostImporter>,
}

/// A batch whose command buffer is ended and whose ring space is closed,
/// waiting for [`StagingBelt::queue_submit`].
struct ClosedBatch {
    value: u64,
    cmd: vk::CommandBuffer,
}

#[derive(Clone, Copy)]
struct RingPtr(*mut u8);

// SAFETY: the pointer is the ring buffer's persistent mapping, owned by the
// belt; it is only dereferenced through `&mut StagingBelt` (or by copy threads
// that the belt joins before returning), so moving the belt between threads is
// sound.
unsafe impl Send for RingPtr {}
// SAFETY: shared only with scoped copy threads writing disjoint ranges.
unsafe impl Sync for RingPtr {}

/// The next piece of a streamed upload of `len` bytes (more than `chunk`)
/// after `done`: at most `chunk`, growing from `chunk / 8` at the start
/// (each piece as large as all before it) and shrinking by halves towards
/// the end, so the GPU starts copying soon after the call begins and
/// finishes soon after the last byte reaches the ring. Pieces are multiples
/// of 4 KiB except the last.
fn ramp_piece(len: u64, done: u64, chunk: u64) -> u64 {
    let left = len - done;
    let smallest = (chunk / 8).max(4096);
    let piece = chunk.min(done.max(smallest)).min((left / 2).max(smallest));
    if piece >= left {
        left
    } else {
        (piece & !4095).max(4096).min(left)
    }
}

/// Copies `src` into `dst`, split into `threads` pieces of at least 256 KiB
/// that rayon's pool copies in parallel (one core memcpys ~11 GB/s; the PCIe
/// link takes ~50 GB/s, so big uploads need several).
fn parallel_copy(dst: &mut [u8], src: &[u8], threads: usize) {
    use rayon::prelude::*;
    debug_assert_eq!(dst.len(), src.len());
    let piece = copy_piece(src.len(), threads);
    if piece >= src.len() {
        dst.copy_from_slice(src);
        return;
    }
    dst.par_chunks_mut(piece)
        .zip(src.par_chunks(piece))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

/// The piece each thread of a `threads`-way copy of `len` bytes takes: `len`
/// itself when one thread copies it all.
fn copy_piece(len: usize, threads: usize) -> usize {
    if threads <= 1 || len < 2 * MIN_PARALLEL_PIECE {
        return len;
    }
    len.div_ceil(threads)
        .next_multiple_of(4096)
        .max(MIN_PARALLEL_PIECE)
}

/// The smallest piece one copy thread takes: below it, handing work to a
/// thread costs about as much as the copy.
const MIN_PARALLEL_PIECE: usize = 64 << 10;

/// True when an image with `usage` may be transitioned to `layout`
/// (VUID-VkImageMemoryBarrier-oldLayout-01208..01212 and friends).
fn layout_allowed(layout: vk::ImageLayout, usage: vk::ImageUsageFlags) -> bool {
    use vk::ImageLayout as L;
    use vk::ImageUsageFlags as U;
    match layout {
        L::UNDEFINED | L::PREINITIALIZED => false,
        L::TRANSFER_SRC_OPTIMAL => usage.contains(U::TRANSFER_SRC),
        L::TRANSFER_DST_OPTIMAL => usage.contains(U::TRANSFER_DST),
        L::SHADER_READ_ONLY_OPTIMAL => usage.intersects(U::SAMPLED | U::INPUT_ATTACHMENT),
        L::COLOR_ATTACHMENT_OPTIMAL => usage.contains(U::COLOR_ATTACHMENT),
        L::DEPTH_STENCIL_ATTACHMENT_OPTIMAL
        | L::DEPTH_STENCIL_READ_ONLY_OPTIMAL
        | L::DEPTH_ATTACHMENT_OPTIMAL
        | L::DEPTH_READ_ONLY_OPTIMAL
        | L::STENCIL_ATTACHMENT_OPTIMAL
        | L::STENCIL_READ_ONLY_OPTIMAL
        | L::DEPTH_READ_ONLY_STENCIL_ATTACHMENT_OPTIMAL
        | L::DEPTH_ATTACHMENT_STENCIL_READ_ONLY_OPTIMAL => {
            usage.contains(U::DEPTH_STENCIL_ATTACHMENT)
        }
        _ => true,
    }
}

/// Reads the copy limits of `physical_device` for queue family `family`.
///
/// # Safety
/// - `physical_device` belongs to `instance`, which is alive.
pub unsafe fn query_copy_limits(
    instance: &ash::Instance,
    physical_device: vk::PhysicalDevice,
    family: u32,
) -> CopyLimits {
    // SAFETY: forwarded from the contract.
    let props = unsafe { instance.get_physical_device_properties(physical_device) };
    // SAFETY: as above.
    let families = unsafe { instance.get_physical_device_queue_family_properties(physical_device) };
    CopyLimits {
        optimal_buffer_copy_offset_alignment: props
            .limits
            .optimal_buffer_copy_offset_alignment
            .max(1),
        optimal_buffer_copy_row_pitch_alignment: props
            .limits
            .optimal_buffer_copy_row_pitch_alignment
            .max(1),
        min_image_transfer_granularity: families.get(family as usize).map_or(
            vk::Extent3D {
                width: 1,
                height: 1,
                depth: 1,
            },
            |f| f.min_image_transfer_granularity,
        ),
    }
}

impl StagingBelt {
    /// Creates a belt with its ring (an `Upload` buffer of `desc.ring_size`
    /// bytes), a timeline semaphore and a command pool on `queue.family`.
    /// `destination_family` is the family that will use the uploaded
    /// resources (the engine's graphics family).
    ///
    /// # Safety
    /// - `instance` and `physical_device` are the ones `resources` was created
    ///   with, alive;
    /// - `queue` is a queue of `resources`' device of family `queue.family`,
    ///   which supports transfer, and every other submitter of that queue
    ///   holds `queue.lock` while submitting;
    /// - the device has the `timelineSemaphore` feature enabled;
    /// - when `desc.external_memory_host` is set, the device was created with
    ///   `VK_EXT_external_memory_host` enabled.
    pub unsafe fn new(
        resources: Arc<ResourceManager>,
        instance: &ash::Instance,
        physical_device: vk::PhysicalDevice,
        queue: SharedQueue,
        destination_family: u32,
        desc: StagingBeltDesc,
    ) -> Result<Self, StagingError> {
        if desc.ring_memory == MemoryUsage::GpuOnly {
            return Err(StagingError::InvalidConfig(
                "ring_memory must be host-visible, not GpuOnly".into(),
            ));
        }
        if desc.ring_size < 64 * 1024 {
            return Err(StagingError::InvalidConfig(format!(
                "ring_size {} < 64 KiB",
                desc.ring_size
            )));
        }
        let mut desc = desc;
        desc.chunk_size = desc.chunk_size.max(4096).min(desc.ring_size / 2);
        desc.auto_submit_bytes = desc.auto_submit_bytes.clamp(1, desc.ring_size);
        // SAFETY: forwarded from this function's contract.
        let limits = unsafe { query_copy_limits(instance, physical_device, queue.family) };
        let device = resources.device().clone();
        let ring_buffer = resources.create_buffer(
            &BufferDesc::new(
                desc.ring_size,
                vk::BufferUsageFlags::TRANSFER_SRC,
                desc.ring_memory,
            )
            .name("gpumem staging ring"),
        )?;
        let ring_ptr = match ring_buffer.allocation().mapped_ptr() {
            Some(p) => RingPtr(p.as_ptr()),
            None => {
                // SAFETY: just created, never used by the GPU.
                let _ = unsafe { resources.destroy_buffer(ring_buffer) };
                return Err(StagingError::InvalidConfig(
                    "Upload memory is not host-visible".into(),
                ));
            }
        };
        let ring_coherent = ring_buffer.allocation().is_coherent();
        let mut type_info = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(0);
        let sem_info = vk::SemaphoreCreateInfo::default().push_next(&mut type_info);
        // SAFETY: the device is valid; timeline semaphores are enabled (contract).
        let semaphore = match unsafe { device.create_semaphore(&sem_info, None) } {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: the ring was never used by the GPU.
                let _ = unsafe { resources.destroy_buffer(ring_buffer) };
                return Err(StagingError::vulkan("vkCreateSemaphore", e));
            }
        };
        let pool_info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(queue.family)
            .flags(
                vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER
                    | vk::CommandPoolCreateFlags::TRANSIENT,
            );
        // SAFETY: valid device and family (contract).
        let pool = match unsafe { device.create_command_pool(&pool_info, None) } {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: neither was used by the GPU.
                unsafe {
                    device.destroy_semaphore(semaphore, None);
                    let _ = resources.destroy_buffer(ring_buffer);
                }
                return Err(StagingError::vulkan("vkCreateCommandPool", e));
            }
        };
        let ring = Ring::new(desc.ring_size);
        let stats = StagingStats {
            ring_size: desc.ring_size,
            ..StagingStats::default()
        };
        let importer = if desc.external_memory_host {
            // SAFETY: the engine enabled the extension on this device
            // (`desc.external_memory_host`); handles per this function's contract.
            unsafe { HostImporter::new(instance, physical_device, &device) }
        } else {
            None
        };
        if let Some(imp) = &importer {
            desc.import_chunk_size =
                (desc.import_chunk_size / imp.alignment() * imp.alignment()).max(imp.alignment());
        }
        Ok(Self {
            id: NEXT_BELT_ID.fetch_add(1, Ordering::Relaxed),
            resources,
            device,
            desc,
            queue,
            destination_family,
            limits,
            ring_buffer: Some(ring_buffer),
            ring_ptr,
            ring_coherent,
            ring,
            semaphore,
            pool,
            free_cmds: Vec::new(),
            open: None,
            next_value: 1,
            in_flight: VecDeque::new(),
            completed: 0,
            acquires: Vec::new(),
            next_waits: Vec::new(),
            sticky: None,
            faults: Faults::default(),
            stats,
            importer,
        })
    }

    /// The belt's timeline semaphore: a ticket is complete when it reaches
    /// the ticket's value.
    pub fn semaphore(&self) -> vk::Semaphore {
        self.semaphore
    }

    /// The queue family the belt copies on.
    pub fn queue_family(&self) -> u32 {
        self.queue.family
    }

    /// True when uploads to `EXCLUSIVE` resources need an ownership transfer.
    pub fn transfers_ownership(&self) -> bool {
        self.queue.family != self.destination_family
    }

    /// The copy limits in force (from the device and the belt's family).
    pub fn copy_limits(&self) -> &CopyLimits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> StagingStats {
        StagingStats {
            batches_in_flight: self.in_flight.len(),
            ring_used: self.ring.used(),
            ring_high_water: self.ring.high_water_mark(),
            ..self.stats.clone()
        }
    }

    /// The `(semaphore, value)` a GPU-side wait for `ticket` uses. Fails for
    /// another belt's ticket, and for one whose batch is not submitted yet
    /// (a GPU wait for it would never end): [`Self::flush`] first.
    pub fn semaphore_wait(&self, ticket: Ticket) -> Result<(vk::Semaphore, u64), StagingError> {
        self.check_ticket(ticket)?;
        if ticket.value >= self.next_value {
            return Err(StagingError::NotSubmitted {
                value: ticket.value,
            });
        }
        Ok((self.semaphore, ticket.value))
    }

    /// The highest timeline value the GPU has reached on
    /// [`Self::semaphore`]: every ticket at or below it is complete. Use it to
    /// ask about a raw value kept without its ticket (a retire point, say).
    pub fn completed_value(&mut self) -> Result<u64, StagingError> {
        self.check_usable()?;
        self.poll_completed().map_err(|e| self.fail(e))
    }

    /// Makes the next batch the belt submits wait on the GPU until
    /// `semaphore` (a timeline semaphore of the engine's) reaches `value`
    /// before any of its copies or transitions run: for an upload into a
    /// resource the engine used on another queue (a partial image update
    /// after a frame read it, say). Several waits accumulate until that
    /// submit.
    ///
    /// # Safety
    /// - `semaphore` is a timeline semaphore of the belt's device and stays
    ///   alive until the batch completes;
    /// - something the engine submits (or has submitted) signals `value`,
    ///   or the belt's waits time out with [`StagingError::Timeout`].
    pub unsafe fn wait_before_next_batch(&mut self, semaphore: vk::Semaphore, value: u64) {
        self.next_waits.push((semaphore, value));
    }

    fn check_owner(&self, owner: u64, name: Option<&str>) -> Result<(), StagingError> {
        let manager = self.resources.id();
        if owner == manager {
            Ok(())
        } else {
            Err(StagingError::ForeignResource {
                name: name.map(str::to_owned),
                owner,
                manager,
            })
        }
    }

    fn check_usable(&self) -> Result<(), StagingError> {
        match &self.sticky {
            Some(e) => Err(e.sticky_copy()),
            None => Ok(()),
        }
    }

    fn check_ticket(&self, ticket: Ticket) -> Result<(), StagingError> {
        if ticket.belt != self.id {
            return Err(StagingError::ForeignTicket {
                ticket_belt: ticket.belt,
                belt: self.id,
            });
        }
        Ok(())
    }

    fn fail(&mut self, e: StagingError) -> StagingError {
        self.sticky = Some(e.sticky_copy());
        e
    }

    fn poll_completed(&mut self) -> Result<u64, StagingError> {
        // SAFETY: the semaphore is the belt's own, alive.
        let value = unsafe { self.device.get_semaphore_counter_value(self.semaphore) }
            .map_err(|e| StagingError::vulkan("vkGetSemaphoreCounterValue", e))?;
        self.retire_until(value);
        Ok(value)
    }

    fn retire_until(&mut self, value: u64) {
        self.completed = self.completed.max(value);
        self.ring.release_until(value);
        while let Some(&(v, cmd)) = self.in_flight.front() {
            if v > value {
                break;
            }
            self.in_flight.pop_front();
            self.free_cmds.push(cmd);
        }
    }

    /// True when the ticket's uploads have reached the GPU memory.
    pub fn is_complete(&mut self, ticket: Ticket) -> Result<bool, StagingError> {
        self.check_ticket(ticket)?;
        if ticket.value <= self.completed {
            return Ok(true);
        }
        self.check_usable()?;
        let v = self.poll_completed().map_err(|e| self.fail(e))?;
        Ok(ticket.value <= v)
    }

    /// Waits until the ticket completes, submitting its batch first if it is
    /// still open. Fails with [`StagingError::Timeout`] after the configured
    /// timeout.
    pub fn wait(&mut self, ticket: Ticket) -> Result<(), StagingError> {
        self.check_ticket(ticket)?;
        if ticket.value <= self.completed {
            return Ok(());
        }
        self.check_usable()?;
        if self.open.as_ref().is_some_and(|b| b.value <= ticket.value) {
            self.submit_open()?;
        }
        self.wait_value(ticket.value)
    }

    fn wait_value(&mut self, value: u64) -> Result<(), StagingError> {
        let start = Instant::now();
        let semaphores = [self.semaphore];
        let values = [value];
        let info = vk::SemaphoreWaitInfo::default()
            .semaphores(&semaphores)
            .values(&values);
        let timeout = self.desc.wait_timeout.as_nanos().min(u64::MAX as u128) as u64;
        // SAFETY: the semaphore is alive; the value was (or will be) signaled
        // by a batch already submitted.
        let result = match self.fault(BeltFault::WaitSemaphores) {
            Some(injected) => Err(injected),
            None if self.poll_until(value, start) => Ok(()),
            // SAFETY: see above.
            None => unsafe { self.device.wait_semaphores(&info, timeout) },
        };
        self.stats.wait_time += start.elapsed();
        match result {
            Ok(()) => {
                self.retire_until(value);
                Ok(())
            }
            Err(vk::Result::TIMEOUT) => {
                let completed = self.poll_completed().unwrap_or(self.completed);
                Err(StagingError::Timeout {
                    value,
                    completed,
                    waited: start.elapsed(),
                })
            }
            Err(e) => Err(self.fail(StagingError::vulkan("vkWaitSemaphores", e))),
        }
    }

    /// Polls the timeline semaphore until it reaches `value` or
    /// [`StagingBeltDesc::spin_wait`] has passed since `start`; whether it
    /// got there (a failing query counts as not, for the blocking wait to
    /// report).
    fn poll_until(&self, value: u64, start: Instant) -> bool {
        loop {
            // SAFETY: the semaphore is the belt's own, alive.
            match unsafe { self.device.get_semaphore_counter_value(self.semaphore) } {
                Ok(v) if v >= value => return true,
                Ok(_) if start.elapsed() < self.desc.spin_wait.min(self.desc.wait_timeout) => {
                    std::thread::yield_now()
                }
                _ => return false,
            }
        }
    }

    /// Submits the open batch (if it holds anything) and returns a ticket
    /// that completes when every upload made so far is on the GPU.
    pub fn flush(&mut self) -> Result<Ticket, StagingError> {
        self.check_usable()?;
        if self.open.as_ref().is_some_and(|b| b.has_work) {
            self.submit_open()?;
        }
        Ok(Ticket {
            belt: self.id,
            value: self.next_value - 1,
        })
    }

    /// Submits everything and waits until the GPU has finished all of it.
    pub fn finish(&mut self) -> Result<(), StagingError> {
        let t = self.flush()?;
        self.wait(t)
    }

    /// Removes and returns the acquire barriers of every upload whose ticket
    /// is at most `ticket`, merged, with the semaphore wait they need.
    pub fn take_acquire_barriers(
        &mut self,
        ticket: Ticket,
    ) -> Result<AcquireBarriers, StagingError> {
        self.check_ticket(ticket)?;
        let mut out = AcquireBarriers::default();
        let mut max_value = 0;
        self.acquires.retain_mut(|(value, barriers)| {
            if *value <= ticket.value {
                max_value = max_value.max(*value);
                out.buffers.append(&mut barriers.buffers);
                out.images.append(&mut barriers.images);
                false
            } else {
                true
            }
        });
        if !out.is_empty() {
            out.wait = Some((self.semaphore, max_value));
        }
        Ok(out)
    }

    fn open_batch(&mut self) -> Result<&mut OpenBatch, StagingError> {
        if self.open.is_none() {
            let cmd = match self.free_cmds.pop() {
                Some(c) => c,
                None => {
                    let info = vk::CommandBufferAllocateInfo::default()
                        .command_pool(self.pool)
                        .level(vk::CommandBufferLevel::PRIMARY)
                        .command_buffer_count(1);
                    // SAFETY: the pool is the belt's own.
                    unsafe { self.device.allocate_command_buffers(&info) }
                        .map_err(|e| StagingError::vulkan("vkAllocateCommandBuffers", e))?[0]
                }
            };
            let begin = vk::CommandBufferBeginInfo::default()
                .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            // SAFETY: `cmd` is not in use (fresh, or its batch completed);
            // `begin_command_buffer` implicitly resets it (pool has
            // RESET_COMMAND_BUFFER).
            let begun = match self.fault(BeltFault::BeginCommandBuffer) {
                Some(injected) => Err(injected),
                // SAFETY: see above.
                None => unsafe { self.device.begin_command_buffer(cmd, &begin) },
            };
            if let Err(e) = begun {
                self.free_cmds.push(cmd);
                // Sticky like every device failure in the belt: a streamed
                // upload may already have submitted earlier chunks.
                return Err(self.fail(StagingError::vulkan("vkBeginCommandBuffer", e)));
            }
            // Order this batch's transfer writes after earlier batches' on the
            // same queue (uploads may rewrite what an earlier batch wrote).
            let barrier = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE | vk::AccessFlags::TRANSFER_READ);
            // SAFETY: `cmd` is recording.
            unsafe {
                self.device.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[barrier],
                    &[],
                    &[],
                )
            };
            self.open = Some(OpenBatch {
                cmd,
                value: self.next_value,
                bytes: 0,
                has_work: false,
                envelopes: ahash::AHashMap::new(),
                pending_copy: None,
                end_buffer_barriers: Vec::new(),
                images: ahash::AHashMap::new(),
            });
        }
        Ok(self.open.as_mut().expect("just opened"))
    }

    /// Ends and submits the open batch, signaling its timeline value.
    fn submit_open(&mut self) -> Result<(), StagingError> {
        match self.close_open()? {
            Some(closed) => self.queue_submit(closed),
            None => Ok(()),
        }
    }

    /// The first half of [`Self::submit_open`]: ends the open batch's
    /// command buffer and closes its ring space. The batch must reach
    /// [`Self::queue_submit`] before anything waits for ring space.
    fn close_open(&mut self) -> Result<Option<ClosedBatch>, StagingError> {
        self.record_pending_copy();
        let Some(batch) = self.open.take() else {
            return Ok(None);
        };
        let cmd = batch.cmd;
        let release = |b: vk::ImageMemoryBarrier<'static>| {
            b.src_queue_family_index(self.queue.family)
                .dst_queue_family_index(self.destination_family)
        };
        let mut end_images = Vec::new();
        for (&image, pending) in &batch.images {
            for (range, f) in pending.finals() {
                let barrier = vk::ImageMemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                    .dst_access_mask(vk::AccessFlags::empty())
                    .old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL)
                    .new_layout(f.layout)
                    .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                    .image(image)
                    .subresource_range(range.to_vk(pending.aspect));
                end_images.push(if f.release { release(barrier) } else { barrier });
            }
        }
        if !batch.end_buffer_barriers.is_empty() || !end_images.is_empty() {
            // SAFETY: `cmd` is recording; the barriers name live resources.
            unsafe {
                self.device.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    vk::DependencyFlags::empty(),
                    &[],
                    &batch.end_buffer_barriers,
                    &end_images,
                )
            };
        }
        let acquires: Vec<_> = end_images
            .into_iter()
            .filter(|b| b.src_queue_family_index != b.dst_queue_family_index)
            .collect();
        if !acquires.is_empty() {
            self.push_acquire(batch.value, |a| a.images.extend(acquires));
        }
        // SAFETY: `cmd` is recording.
        if let Err(e) = unsafe { self.device.end_command_buffer(cmd) } {
            return Err(self.fail(StagingError::vulkan("vkEndCommandBuffer", e)));
        }
        if !self.ring_coherent && batch.bytes > 0 {
            // Non-coherent Upload memory: flush the whole ring (simple and
            // rare: Upload prefers coherent types on every known device).
            let ring = self.ring_buffer.as_ref().expect("ring lives");
            self.resources
                .allocator()
                .flush(ring.allocation(), 0, self.desc.ring_size)
                .map_err(|e| self.fail(StagingError::InvalidConfig(e.to_string())))?;
        }
        self.ring.close_batch(batch.value);
        self.next_value += 1;
        Ok(Some(ClosedBatch {
            value: batch.value,
            cmd,
        }))
    }

    /// The second half of [`Self::submit_open`]: submits a closed batch,
    /// signaling its timeline value.
    fn queue_submit(&mut self, batch: ClosedBatch) -> Result<(), StagingError> {
        let start = Instant::now();
        let cmd = batch.cmd;
        let signal = [self.semaphore];
        let values = [batch.value];
        let cmds = [cmd];
        let waits = std::mem::take(&mut self.next_waits);
        let wait_semaphores: SmallVec<[vk::Semaphore; 4]> = waits.iter().map(|w| w.0).collect();
        let wait_values: SmallVec<[u64; 4]> = waits.iter().map(|w| w.1).collect();
        let wait_stages: SmallVec<[vk::PipelineStageFlags; 4]> = waits
            .iter()
            .map(|_| vk::PipelineStageFlags::ALL_COMMANDS)
            .collect();
        let mut timeline = vk::TimelineSemaphoreSubmitInfo::default()
            .signal_semaphore_values(&values)
            .wait_semaphore_values(&wait_values);
        let submit = vk::SubmitInfo::default()
            .command_buffers(&cmds)
            .signal_semaphores(&signal)
            .wait_semaphores(&wait_semaphores)
            .wait_dst_stage_mask(&wait_stages)
            .push_next(&mut timeline);
        let injected = self.fault(BeltFault::QueueSubmit);
        let result = if let Some(injected) = injected {
            Err(injected)
        } else {
            let _guard = self.queue.lock.lock();
            // SAFETY: the queue belongs to the device, its lock is held (the
            // engine honours it per `new`'s contract); the command buffer is
            // executable and not pending.
            unsafe {
                self.device
                    .queue_submit(self.queue.queue, &[submit], vk::Fence::null())
            }
        };
        self.stats.submit_time += start.elapsed();
        if let Err(e) = result {
            return Err(self.fail(StagingError::vulkan("vkQueueSubmit", e)));
        }
        self.in_flight.push_back((batch.value, cmd));
        self.stats.batches_submitted += 1;
        Ok(())
    }

    /// Ring space for the open batch if there is some now; never submits or
    /// waits.
    fn try_reserve(&mut self, len: u64, align: u64) -> Result<Option<u64>, StagingError> {
        self.open_batch()?;
        Ok(self.ring.reserve(len, align))
    }

    /// Ring space for the next piece of a streamed upload while `closed`
    /// (the previous piece's batch) still waits for its submit: taken
    /// without waiting, or else after submitting `closed` (a wait for ring
    /// space may need it on the queue).
    fn reserve_beside(
        &mut self,
        len: u64,
        align: u64,
        closed: &mut Option<ClosedBatch>,
    ) -> Result<u64, StagingError> {
        if closed.is_some() {
            if let Some(offset) = self.try_reserve(len, align)? {
                return Ok(offset);
            }
            if let Some(b) = closed.take() {
                self.queue_submit(b)?;
            }
        }
        self.reserve(len, align)
    }

    /// Copies `src` into the ring at `offset` (reserved for the open batch)
    /// with `threads` threads; meanwhile, on another thread, submits
    /// `closed` if there is one.
    fn fill_ring(
        &mut self,
        offset: u64,
        src: &[u8],
        threads: usize,
        closed: Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let start = Instant::now();
        let submitted = match closed {
            None => {
                parallel_copy(self.ring_slice(offset, src.len() as u64), src, threads);
                Ok(())
            }
            Some(batch) => {
                debug_assert!(offset + src.len() as u64 <= self.desc.ring_size);
                // SAFETY: as in `ring_slice`: the range is inside the mapping
                // and reserved for the open batch, so neither the GPU nor
                // another slice touches it. The submit on the other side of
                // the join reads no ring memory (the flush of a non-coherent
                // ring happened when the batch was closed).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(self.ring_ptr.0.add(offset as usize), src.len())
                };
                rayon::join(
                    || self.queue_submit(batch),
                    || parallel_copy(dst, src, threads),
                )
                .0
            }
        };
        self.stats.copy_time += start.elapsed();
        submitted
    }

    /// Reserves ring space for the open batch, submitting and waiting for old
    /// batches as needed.
    fn reserve(&mut self, len: u64, align: u64) -> Result<u64, StagingError> {
        loop {
            self.open_batch()?;
            if let Some(offset) = self.ring.reserve(len, align) {
                return Ok(offset);
            }
            // Full: submit what is pending, then wait for the oldest batch.
            if self.open.as_ref().is_some_and(|b| b.has_work) {
                self.submit_open()?;
            } else if let Some(b) = self.open.take() {
                // An empty open batch holds no ring space; recycle it after
                // ending it, so the next open starts a fresh one.
                // SAFETY: `b.cmd` is recording and never submitted.
                unsafe {
                    let _ = self.device.end_command_buffer(b.cmd);
                }
                self.free_cmds.push(b.cmd);
            }
            let completed = self.poll_completed().map_err(|e| self.fail(e))?;
            if let Some(oldest) = self.ring.oldest_batch() {
                if oldest > completed {
                    self.wait_value(oldest)?;
                }
            } else if self.ring.used() > 0 {
                unreachable!("ring space held without a closed batch");
            }
        }
    }

    fn ring_slice(&mut self, offset: u64, len: u64) -> &mut [u8] {
        debug_assert!(offset + len <= self.desc.ring_size);
        // SAFETY: the ring is mapped for `ring_size` bytes for the belt's
        // life; [offset, offset+len) was just reserved, so the GPU is not
        // reading it (its previous batch completed) and no other slice of it
        // is alive; `&mut self` makes this access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.ring_ptr.0.add(offset as usize), len as usize)
        }
    }

    fn note_write(&mut self, dst: vk::Buffer, start: u64, end: u64) {
        let batch = self.open.as_mut().expect("open batch");
        let overlaps = match batch.envelopes.get_mut(&dst) {
            Some(e) if start >= e.1 || end <= e.0 => {
                // Extending the envelope can swallow a gap; later writes into
                // that gap are then treated as overlapping (conservative).
                e.0 = e.0.min(start);
                e.1 = e.1.max(end);
                false
            }
            Some(_) => true,
            None => {
                batch.envelopes.insert(dst, (start, end));
                false
            }
        };
        if overlaps {
            self.record_pending_copy();
            let batch = self.open.as_mut().expect("open batch");
            let barrier = vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE);
            // SAFETY: the batch's command buffer is recording.
            unsafe {
                self.device.cmd_pipeline_barrier(
                    batch.cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[barrier],
                    &[],
                    &[],
                )
            };
            batch.envelopes.clear();
            batch.envelopes.insert(dst, (start, end));
        }
    }

    /// Records the merged buffer copy waiting in the open batch, if any.
    fn record_pending_copy(&mut self) {
        let Some(batch) = self.open.as_mut() else {
            return;
        };
        if let Some((dst, region)) = batch.pending_copy.take() {
            let ring = self.ring_buffer.as_ref().expect("ring lives").handle();
            // SAFETY: the batch's command buffer is recording; the ring range
            // was reserved for this batch; the destination range was checked
            // against the buffer's size and usage when each piece was queued.
            unsafe { self.device.cmd_copy_buffer(batch.cmd, ring, dst, &[region]) };
            self.stats.copy_commands += 1;
        }
    }

    /// Queues a ring→buffer copy, merging it into the previous one when it
    /// continues it.
    fn queue_buffer_copy(&mut self, dst: vk::Buffer, region: vk::BufferCopy) {
        let batch = self.open.as_mut().expect("open batch");
        if let Some((pdst, p)) = &mut batch.pending_copy {
            if *pdst == dst
                && p.src_offset + p.size == region.src_offset
                && p.dst_offset + p.size == region.dst_offset
            {
                p.size += region.size;
                return;
            }
        }
        self.record_pending_copy();
        self.open.as_mut().expect("open batch").pending_copy = Some((dst, region));
    }

    fn needs_release(&self, sharing: &Sharing) -> bool {
        self.transfers_ownership() && matches!(sharing, Sharing::Exclusive)
    }

    /// Uploads `data` into `dst` at `dst_offset`.
    ///
    /// Host-visible destinations are written directly (unless staging is
    /// forced) and the returned ticket is already complete. Otherwise the data
    /// is copied into the ring now (the slice may be reused as soon as this
    /// returns) and the GPU copy completes with the ticket. The destination
    /// range must not be in use by the GPU until the ticket completes.
    ///
    /// Large uploads (at least [`StagingBeltDesc::import_threshold`] bytes,
    /// with [`StagingBeltDesc::external_memory_host`]) import the aligned
    /// interior of `data` and let the GPU copy from it directly. They are
    /// synchronous: the belt submits and waits before returning (the slice is
    /// only borrowed for this call), so the returned ticket is complete. A
    /// failed import falls back to the ring (counted in
    /// [`StagingStats::import_fallbacks`]), never an error.
    #[doc(alias = "vkCmdCopyBuffer")]
    pub fn upload_buffer(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        data: &[u8],
    ) -> Result<Ticket, StagingError> {
        self.check_usable()?;
        self.check_owner(dst.owner(), dst.desc().name.as_deref())?;
        let len = data.len() as u64;
        if len == 0 {
            return Err(StagingError::EmptyData);
        }
        // Checked on every path, the direct one included, so code that works
        // on a device where the destination is host-visible works everywhere.
        if !dst
            .desc()
            .usage
            .contains(vk::BufferUsageFlags::TRANSFER_DST)
        {
            return Err(StagingError::MissingTransferDst {
                name: dst.desc().name.clone(),
                usage: format!("{:?}", dst.desc().usage),
            });
        }
        let size = dst.size();
        if dst_offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(StagingError::OutOfRange {
                offset: dst_offset,
                len,
                size,
            });
        }
        let direct = !self.desc.force_staging && dst.allocation().mapped_ptr().is_some();
        if direct {
            return self.upload_direct(dst, dst_offset, data);
        }
        let release = self.needs_release(&dst.desc().sharing).then(|| {
            vk::BufferMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::empty())
                .src_queue_family_index(self.queue.family)
                .dst_queue_family_index(self.destination_family)
                .buffer(dst.handle())
                .offset(dst_offset)
                .size(len)
        });
        if len >= self.desc.import_threshold {
            if let Some(interior) = self.importer.as_ref().and_then(|imp| {
                aligned_interior(data.as_ptr() as usize, data.len(), imp.alignment())
            }) {
                return self.upload_imported(dst.handle(), dst_offset, data, interior, release);
            }
        }
        self.stage_range(dst.handle(), dst_offset, data, release)?;
        self.stats.uploads += 1;
        Ok(Ticket {
            belt: self.id,
            value: self.current_value(),
        })
    }

    /// Copies `data` through the ring into `dst` at `dst_offset`, streaming
    /// pieces larger than a chunk. `release` (if any) goes into the batch of
    /// the last piece, with its acquire.
    fn stage_range(
        &mut self,
        dst: vk::Buffer,
        dst_offset: u64,
        data: &[u8],
        release: Option<vk::BufferMemoryBarrier<'static>>,
    ) -> Result<(), StagingError> {
        let mut closed = None;
        let result = self.stage_pieces(dst, dst_offset, data, release, &mut closed);
        // A batch closed for an overlapped submit always reaches the queue,
        // even after an error, so the ring's accounting stays true.
        match closed {
            Some(b) => result.and(self.queue_submit(b)),
            None => result,
        }
    }

    fn stage_pieces(
        &mut self,
        dst: vk::Buffer,
        dst_offset: u64,
        data: &[u8],
        release: Option<vk::BufferMemoryBarrier<'static>>,
        closed: &mut Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let len = data.len() as u64;
        let chunk = self.desc.chunk_size;
        let streamed = len > chunk;
        let threads = if len >= self.desc.parallel_copy_threshold {
            self.desc.copy_threads
        } else {
            1
        };
        let mut done = 0u64;
        while done < len {
            let piece = if streamed {
                ramp_piece(len, done, chunk)
            } else {
                len
            };
            let offset = self.reserve_beside(piece, 16, closed)?;
            let src = &data[done as usize..(done + piece) as usize];
            self.fill_ring(offset, src, threads, closed.take())?;
            let dst_start = dst_offset + done;
            self.note_write(dst, dst_start, dst_start + piece);
            self.queue_buffer_copy(
                dst,
                vk::BufferCopy {
                    src_offset: offset,
                    dst_offset: dst_start,
                    size: piece,
                },
            );
            let batch = self.open.as_mut().expect("reserve opened a batch");
            batch.has_work = true;
            batch.bytes += piece;
            self.stats.bytes_staged += piece;
            done += piece;
            let last = done == len;
            if let Some(release) = release.filter(|_| last) {
                let value = batch.value;
                batch.end_buffer_barriers.push(release);
                self.push_acquire(value, |a| a.buffers.push(release));
            }
            // Stream: submit each piece of a large upload at once so the GPU
            // copy overlaps the next memcpy; submit big batches early too.
            // With `overlap_submit`, the submit of a piece runs beside the
            // copy of the next one.
            let batch_bytes = self.open.as_ref().map_or(0, |b| b.bytes);
            if (!last && streamed) || batch_bytes >= self.desc.auto_submit_bytes {
                if !last && self.desc.overlap_submit && threads > 1 {
                    *closed = self.close_open()?;
                } else {
                    self.submit_open()?;
                }
            }
        }
        Ok(())
    }

    /// The import path of [`Self::upload_buffer`]: head and tail through the
    /// ring, the aligned interior imported piece by piece, each piece's copy
    /// submitted at once (so the GPU copies it while the next one is
    /// imported); then waits for everything and frees the imports.
    fn upload_imported(
        &mut self,
        dst: vk::Buffer,
        dst_offset: u64,
        data: &[u8],
        interior: crate::import::Interior,
        release: Option<vk::BufferMemoryBarrier<'static>>,
    ) -> Result<Ticket, StagingError> {
        let (head, mid_end) = (
            interior.head as usize,
            (interior.head + interior.len) as usize,
        );
        if head > 0 {
            self.stage_range(dst, dst_offset, &data[..head], None)?;
        }
        if mid_end < data.len() {
            self.stage_range(dst, dst_offset + mid_end as u64, &data[mid_end..], None)?;
        }
        let mut imports: Vec<ImportedBuffer> = Vec::new();
        let result =
            self.import_interior(dst, dst_offset, data, head, mid_end, release, &mut imports);
        // Every import is recorded in a submitted batch (or in one that never
        // will be: the belt is then sticky). Wait for the last one before
        // freeing: the host memory is only borrowed for this call.
        let waited = match (&result, imports.is_empty()) {
            (_, true) => Ok(()),
            (Ok(value), false) => self.wait_value(*value),
            (Err(_), false) => Err(StagingError::DeviceLost),
        };
        if !imports.is_empty() && (waited.is_err() || result.is_err()) {
            // Could not prove the copies finished (timeout, lost device,
            // failed submit): idle the queue before freeing the imports.
            let _guard = self.queue.lock.lock();
            // SAFETY: the queue belongs to the device; its lock is held.
            let _ = unsafe { self.device.queue_wait_idle(self.queue.queue) };
        }
        let importer = self.importer.as_ref().expect("imports need an importer");
        for imported in imports {
            // SAFETY: the batches reading it completed (waited above) or
            // were never submitted and never will be (sticky belt).
            unsafe { importer.destroy(imported) };
        }
        let value = result?;
        waited?;
        self.stats.uploads += 1;
        Ok(Ticket {
            belt: self.id,
            value,
        })
    }

    /// Imports `data[start..end]` in pieces and records and submits a copy of
    /// each into `dst`; a failed import stages the rest through the ring.
    /// Pushes every import that a batch records into `imports`. Returns the
    /// timeline value that completes the whole upload (submitted).
    #[allow(clippy::too_many_arguments)]
    fn import_interior(
        &mut self,
        dst: vk::Buffer,
        dst_offset: u64,
        data: &[u8],
        start: usize,
        end: usize,
        release: Option<vk::BufferMemoryBarrier<'static>>,
        imports: &mut Vec<ImportedBuffer>,
    ) -> Result<u64, StagingError> {
        let chunk = self.desc.import_chunk_size as usize;
        let pieces: Vec<(usize, usize)> = (start..end)
            .step_by(chunk.max(1))
            .map(|d| (d, (end - d).min(chunk)))
            .collect();
        // Pinning pages is the cost of an import (the driver locks every
        // page), so a group of pieces is imported in parallel; the GPU copies
        // one group while the next is imported.
        let group = (self.desc.copy_threads / 2).max(1);
        let base = data.as_ptr() as usize;
        for pieces in pieces.chunks(group) {
            let importer = self.importer.as_ref().expect("imports need an importer");
            let results: Vec<Result<ImportedBuffer, vk::Result>> = {
                use rayon::prelude::*;
                pieces
                    .par_iter()
                    .map(|&(d, p)| {
                        // SAFETY: `d` and `p` keep the import aligned (the
                        // interior and the chunk size are multiples of the
                        // alignment) and inside `data`, which is borrowed for
                        // this whole call and not written (shared borrow);
                        // `upload_imported` frees every import before
                        // returning; the importer's calls are thread-safe
                        // device-level calls on distinct objects.
                        unsafe { importer.import((base + d) as *const u8, p as u64) }
                    })
                    .collect()
            };
            for (&(d, piece), result) in pieces.iter().zip(results) {
                let dst_start = dst_offset + d as u64;
                let imported = match result {
                    Ok(i) => i,
                    Err(_) => {
                        self.stats.import_fallbacks += 1;
                        self.stage_range(dst, dst_start, &data[d..d + piece], None)?;
                        continue;
                    }
                };
                let src = imported.buffer;
                imports.push(imported);
                self.open_batch()?;
                self.record_pending_copy();
                self.note_write(dst, dst_start, dst_start + piece as u64);
                let batch = self.open.as_mut().expect("opened");
                let region = vk::BufferCopy {
                    src_offset: 0,
                    dst_offset: dst_start,
                    size: piece as u64,
                };
                // SAFETY: `cmd` is recording; the imported buffer is bound and
                // lives until this batch completes; the destination range was
                // checked against its size and usage.
                unsafe { self.device.cmd_copy_buffer(batch.cmd, src, dst, &[region]) };
                batch.has_work = true;
                self.stats.copy_commands += 1;
                self.stats.bytes_imported += piece as u64;
            }
            if self.open.as_ref().is_some_and(|b| b.has_work) {
                self.submit_open()?;
            }
        }
        if let Some(release) = release {
            // After every copy of this upload (earlier batches' writes are
            // ordered before this one by its opening barrier).
            let batch = self.open_batch()?;
            batch.has_work = true;
            let value = batch.value;
            batch.end_buffer_barriers.push(release);
            self.push_acquire(value, |a| a.buffers.push(release));
        }
        if self.open.as_ref().is_some_and(|b| b.has_work) {
            self.submit_open()?;
        }
        Ok(self.next_value - 1)
    }

    /// The value of the batch that holds the latest upload.
    fn current_value(&self) -> u64 {
        self.open.as_ref().map_or(self.next_value - 1, |b| b.value)
    }

    fn push_acquire(&mut self, value: u64, add: impl FnOnce(&mut AcquireBarriers)) {
        match self.acquires.last_mut() {
            Some((v, a)) if *v == value => add(a),
            _ => {
                let mut a = AcquireBarriers::default();
                add(&mut a);
                self.acquires.push((value, a));
            }
        }
    }

    fn upload_direct(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        data: &[u8],
    ) -> Result<Ticket, StagingError> {
        let ptr = dst.allocation().mapped_ptr().expect("checked host-visible");
        let len = data.len();
        // SAFETY: the destination is persistently mapped for its whole size
        // and [dst_offset, dst_offset+len) is inside it (checked by the
        // caller); the caller guarantees the GPU is not using the range; the
        // belt writes only through this call, which holds `&mut self`.
        let dst_slice =
            unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().add(dst_offset as usize), len) };
        let threads = if data.len() as u64 >= self.desc.parallel_copy_threshold {
            self.desc.copy_threads
        } else {
            1
        };
        parallel_copy(dst_slice, data, threads);
        if !dst.allocation().is_coherent() {
            self.resources
                .allocator()
                .flush(dst.allocation(), dst_offset, len as u64)
                .map_err(|e| StagingError::InvalidConfig(e.to_string()))?;
        }
        self.stats.bytes_direct += len as u64;
        self.stats.uploads += 1;
        // Host writes are visible to every later queue submission: complete.
        Ok(Ticket {
            belt: self.id,
            value: 0,
        })
    }

    /// Uploads every mip level and array layer of `dst` from `data` (laid out
    /// as [`crate::plan`] describes: level-major, tightly packed) and leaves
    /// the image in `final_layout`. The image's previous contents are
    /// discarded (the upload starts from `UNDEFINED`), after every earlier
    /// upload to it and, on the belt's queue, every earlier use of it.
    ///
    /// Uploads to one image are ordered: a later upload in the same batch
    /// waits for the earlier one's copies, and the batch's end transitions
    /// each subresource once, to the last final layout asked for. The layout
    /// each subresource is left in is recorded in [`Image::layouts`].
    #[doc(alias = "vkCmdCopyBufferToImage")]
    pub fn upload_image(
        &mut self,
        dst: &Image,
        data: &[u8],
        final_layout: vk::ImageLayout,
    ) -> Result<Ticket, StagingError> {
        self.upload_image_inner(dst, ImageSubresources::all(), true, data, final_layout)
    }

    /// Uploads mip levels and array layers `subresources` of `dst` from
    /// `data` (laid out as [`crate::plan`] describes, over those levels and
    /// layers only: see [`crate::plan::expected_subresources_data_size`]) and
    /// leaves them in `final_layout`. The other subresources keep their
    /// contents and layouts.
    ///
    /// The written subresources are transitioned from the layout
    /// [`Image::layouts`] says they are in: the one an earlier upload left,
    /// or the one the engine recorded with
    /// [`mem_resources::ImageLayouts::set_layout`] after transitioning the
    /// image itself. On the belt's queue the transition waits for all earlier
    /// work; an engine that used the image on another queue makes the belt's
    /// next batch wait for that work with [`Self::wait_before_next_batch`].
    ///
    /// An `EXCLUSIVE` image released to the destination family by an earlier
    /// upload is owned by the engine's queue: updating part of it would need
    /// the engine to release it back first, so the belt refuses with
    /// [`StagingError::OwnedByAnotherFamily`] (a whole-image
    /// [`Self::upload_image`] discards the contents and needs no transfer).
    #[doc(alias = "vkCmdCopyBufferToImage")]
    pub fn upload_image_subresources(
        &mut self,
        dst: &Image,
        subresources: ImageSubresources,
        data: &[u8],
        final_layout: vk::ImageLayout,
    ) -> Result<Ticket, StagingError> {
        self.upload_image_inner(dst, subresources, false, data, final_layout)
    }

    fn upload_image_inner(
        &mut self,
        dst: &Image,
        subresources: ImageSubresources,
        discard: bool,
        data: &[u8],
        final_layout: vk::ImageLayout,
    ) -> Result<Ticket, StagingError> {
        self.check_usable()?;
        self.check_owner(dst.owner(), dst.desc().name.as_deref())?;
        let desc = dst.desc();
        if !desc.usage.contains(vk::ImageUsageFlags::TRANSFER_DST) {
            return Err(StagingError::MissingTransferDst {
                name: desc.name.clone(),
                usage: format!("{:?}", desc.usage),
            });
        }
        if desc.samples != vk::SampleCountFlags::TYPE_1 {
            return Err(StagingError::Multisampled {
                name: desc.name.clone(),
                samples: desc.samples.as_raw(),
            });
        }
        if data.is_empty() {
            return Err(StagingError::EmptyData);
        }
        if !layout_allowed(final_layout, desc.usage) {
            return Err(StagingError::LayoutNotAllowed {
                name: desc.name.clone(),
                layout: format!("{final_layout:?}"),
                usage: format!("{:?}", desc.usage),
            });
        }
        let range = subresources
            .resolve(desc.mip_levels, desc.array_layers)
            .ok_or_else(|| StagingError::SubresourcesOutOfRange {
                name: desc.name.clone(),
                subresources,
                mip_levels: desc.mip_levels,
                array_layers: desc.array_layers,
            })?;
        let layout = ImageLayout {
            format: desc.format,
            image_type: desc.kind.image_type(),
            extent: desc.extent,
            mip_levels: desc.mip_levels,
            array_layers: desc.array_layers,
            aspect: None,
        };
        let plan = plan_subresources_upload(
            &layout,
            range.levels(),
            range.layers(),
            data.len() as u64,
            &self.limits,
            self.desc.chunk_size,
        )?;
        let aspect = desc.aspect();
        let image = dst.handle();
        let tracked = dst.layouts();
        // Where each written subresource is now: pending in the open batch
        // (already TRANSFER_DST_OPTIMAL), or in the tracked layout.
        let pending = |belt: &Self, level: u32, layer: u32| {
            belt.open
                .as_ref()
                .and_then(|b| b.images.get(&image))
                .is_some_and(|p| p.is_pending(level, layer))
        };
        if !discard {
            for level in range.levels() {
                for layer in range.layers() {
                    let state = tracked.state(level, layer);
                    if !pending(self, level, layer)
                        && state.layout != vk::ImageLayout::UNDEFINED
                        && state.owner_family != vk::QUEUE_FAMILY_IGNORED
                        && state.owner_family != self.queue.family
                    {
                        return Err(StagingError::OwnedByAnotherFamily {
                            name: desc.name.clone(),
                            level,
                            layer,
                            family: state.owner_family,
                        });
                    }
                }
            }
        }
        let cmd = self.open_batch()?.cmd;
        self.record_pending_copy();
        // Barriers into TRANSFER_DST_OPTIMAL: a subresource pending in this
        // batch needs only a write-after-write dependency; any other waits
        // for all earlier work on the queue (earlier batches' copies and
        // transitions, the engine's use of the image) and transitions from
        // its layout, or from UNDEFINED when the upload discards it.
        #[derive(Clone, Copy, PartialEq)]
        enum Start {
            Pending,
            Layout(vk::ImageLayout),
        }
        let mut from = |level: u32, layer: u32| {
            let batch = self.open.as_mut().expect("opened");
            let was_pending = batch
                .images
                .get_mut(&image)
                .is_some_and(|p| p.take(level, layer));
            if was_pending {
                Start::Pending
            } else if discard {
                Start::Layout(vk::ImageLayout::UNDEFINED)
            } else {
                Start::Layout(tracked.layout(level, layer))
            }
        };
        let mut kinds = Vec::with_capacity(range.level_count as usize * range.layer_count as usize);
        for level in range.levels() {
            for layer in range.layers() {
                kinds.push(from(level, layer));
            }
        }
        let at = |level: u32, layer: u32| {
            let i = (level - range.base_mip_level) as usize * range.layer_count as usize
                + (layer - range.base_array_layer) as usize;
            Some(kinds[i])
        };
        let boxes = group_boxes(
            range.base_mip_level + range.level_count,
            desc.array_layers,
            |l, y| {
                (range.levels().contains(&l) && range.layers().contains(&y))
                    .then(|| at(l, y))
                    .flatten()
            },
        );
        let mut waw = Vec::new();
        let mut transitions = Vec::new();
        for (b, kind) in boxes {
            let barrier = vk::ImageMemoryBarrier::default()
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(image)
                .subresource_range(b.to_vk(aspect))
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL);
            match kind {
                Start::Pending => {
                    waw.push(barrier.old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL))
                }
                Start::Layout(old) => transitions.push(
                    barrier
                        .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                        .old_layout(old),
                ),
            }
        }
        for (src_stage, barriers) in [
            (vk::PipelineStageFlags::TRANSFER, &waw),
            (vk::PipelineStageFlags::ALL_COMMANDS, &transitions),
        ] {
            if barriers.is_empty() {
                continue;
            }
            // SAFETY: `cmd` is recording; the image is alive.
            unsafe {
                self.device.cmd_pipeline_barrier(
                    cmd,
                    src_stage,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    barriers,
                )
            };
        }
        self.open.as_mut().expect("opened").has_work = true;
        let mut closed = None;
        let staged = self.stage_image_copies(image, &plan, data, &mut closed);
        // As in `stage_range`: a closed batch always reaches the queue.
        let staged = match closed {
            Some(b) => staged.and(self.queue_submit(b)),
            None => staged,
        };
        // The subresources are in TRANSFER_DST_OPTIMAL now (even when staging
        // failed part way): whichever batch is open takes their transition to
        // the final layout, so the tracked layout stays true.
        let release = self.needs_release(&desc.sharing);
        let batch = match self.open_batch() {
            Ok(b) => b,
            Err(e) => return Err(staged.err().unwrap_or(e)),
        };
        batch
            .images
            .entry(image)
            .or_insert_with(|| PendingImage::new(aspect, desc.mip_levels, desc.array_layers))
            .put(
                &range,
                Final {
                    layout: final_layout,
                    release,
                },
            );
        batch.has_work = true;
        let value = batch.value;
        tracked.set_state(
            subresources,
            SubresourceState {
                layout: final_layout,
                owner_family: if release {
                    self.destination_family
                } else {
                    vk::QUEUE_FAMILY_IGNORED
                },
            },
        );
        staged?;
        self.stats.uploads += 1;
        Ok(Ticket {
            belt: self.id,
            value,
        })
    }

    /// The copies of an image upload's plan, through the ring (see
    /// [`Self::stage_pieces`] for `closed`).
    fn stage_image_copies(
        &mut self,
        image: vk::Image,
        plan: &crate::plan::ImagePlan,
        data: &[u8],
        closed: &mut Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let ring_handle = self.ring_buffer.as_ref().expect("ring lives").handle();
        for (i, copy) in plan.copies.iter().enumerate() {
            let offset = self.reserve_beside(copy.staging_size, plan.staging_alignment, closed)?;
            let contiguous = copy.dst_row_pitch == copy.src_row_pitch
                && (copy.slices == 1 || copy.dst_slice_pitch == copy.src_slice_pitch);
            let threads = if data.len() as u64 >= self.desc.parallel_copy_threshold {
                self.desc.copy_threads
            } else {
                1
            };
            if contiguous {
                let start = copy.src_offset as usize;
                let src = &data[start..start + copy.staging_size as usize];
                self.fill_ring(offset, src, threads, closed.take())?;
            } else {
                if let Some(b) = closed.take() {
                    self.queue_submit(b)?;
                }
                copy.write_into(data, self.ring_slice(offset, copy.staging_size));
            }
            let mut region = copy.region;
            region.buffer_offset += offset;
            let batch = self.open.as_mut().expect("reserve opened a batch");
            // SAFETY: recording; ring range reserved for this batch; the
            // region was planned inside the image's subresources; the image
            // is in TRANSFER_DST_OPTIMAL (barrier above, earlier in this or a
            // previous batch on the same queue).
            unsafe {
                self.device.cmd_copy_buffer_to_image(
                    batch.cmd,
                    ring_handle,
                    image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &[region],
                )
            };
            batch.has_work = true;
            batch.bytes += copy.staging_size;
            self.stats.copy_commands += 1;
            self.stats.bytes_staged += copy.staging_size;
            if batch.bytes >= self.desc.auto_submit_bytes {
                let more = i + 1 < plan.copies.len();
                if more && self.desc.overlap_submit && threads > 1 {
                    *closed = self.close_open()?;
                } else {
                    self.submit_open()?;
                }
            }
        }
        Ok(())
    }

    /// Makes the `nth` call from now (1 = the next) of `point` fail with
    /// `result` instead of calling Vulkan, to test how callers and the belt
    /// survive. Like a real failure, it makes the belt unusable (every later
    /// call returns the error: a streamed upload may be half on the GPU), and
    /// dropping the belt still frees everything it made.
    pub fn inject_fault(&mut self, point: BeltFault, nth: u64, result: vk::Result) {
        let i = point.index();
        self.faults.fail_at[i] = Some((self.faults.calls[i] + nth, result));
    }

    /// Counts a call of `point`; `Some(result)` when it is the injected one.
    fn fault(&mut self, point: BeltFault) -> Option<vk::Result> {
        let i = point.index();
        self.faults.calls[i] += 1;
        match self.faults.fail_at[i] {
            Some((at, result)) if at == self.faults.calls[i] => {
                self.faults.fail_at[i] = None;
                Some(result)
            }
            _ => None,
        }
    }

    /// Identifier of this belt (tickets carry it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Raw handle of the ring buffer (for debugging tools).
    pub fn ring_buffer_handle(&self) -> u64 {
        self.ring_buffer.as_ref().map_or(0, |b| b.handle().as_raw())
    }
}

impl Drop for StagingBelt {
    /// Submits the open batch (uploads handed to the belt are never dropped
    /// silently), waits for everything in flight, then frees the ring, the
    /// command pool and the semaphore. When the belt failed earlier, or the
    /// submit or the wait fails, the open batch's uploads are lost: that is
    /// logged as an error, and the whole queue is idled instead so nothing
    /// is freed while the GPU may use it.
    fn drop(&mut self) {
        if self.open.as_ref().is_some_and(|b| b.has_work) {
            let lost = match &self.sticky {
                Some(e) => Some(e.to_string()),
                None => self.submit_open().err().map(|e| e.to_string()),
            };
            if let Some(why) = lost {
                log::error!(
                    "staging belt #{} dropped with unsubmitted uploads, which are lost: {why}",
                    self.id
                );
            }
        }
        if let Some(last) = self.in_flight.back().map(|b| b.0) {
            let waited = self.sticky.is_none() && self.wait_value(last).is_ok();
            if !waited {
                let _guard = self.queue.lock.lock();
                // SAFETY: the queue belongs to the device; its lock is held.
                let _ = unsafe { self.device.queue_wait_idle(self.queue.queue) };
            }
        }
        if let Some(b) = self.open.take() {
            // SAFETY: recording, never submitted; ended so the pool can be
            // destroyed cleanly.
            let _ = unsafe { self.device.end_command_buffer(b.cmd) };
        }
        // SAFETY: nothing the belt submitted is pending any more (waited
        // above), so the pool, semaphore and ring are idle.
        unsafe {
            self.device.destroy_command_pool(self.pool, None);
            self.device.destroy_semaphore(self.semaphore, None);
            if let Some(ring) = self.ring_buffer.take() {
                let _ = self.resources.destroy_buffer(ring);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{copy_piece, ramp_piece};

    #[test]
    fn copies_of_small_rings_pieces_still_split() {
        // A 1 MiB ring streams 256 KiB pieces: with 4 threads each takes 64 KiB
        // (a 512 KiB floor used to keep such pieces on one thread).
        assert_eq!(copy_piece(256 << 10, 4), 64 << 10);
        assert_eq!(copy_piece(16 << 20, 16), 1 << 20);
        // Too small to be worth a thread, or one thread.
        assert_eq!(copy_piece(100 << 10, 4), 100 << 10);
        assert_eq!(copy_piece(64 << 20, 1), 64 << 20);
    }

    /// The pieces `ramp_piece` cuts a streamed upload into.
    fn pieces(len: u64, chunk: u64) -> Vec<u64> {
        let mut done = 0;
        let mut out = Vec::new();
        while done < len {
            let p = ramp_piece(len, done, chunk);
            assert!(p > 0 && p <= chunk, "piece {p} of {len} at {done}");
            out.push(p);
            done += p;
        }
        assert_eq!(done, len);
        out
    }

    #[test]
    fn streamed_uploads_ramp_up_and_down() {
        const MIB: u64 = 1 << 20;
        let p = pieces(1024 * MIB, 16 * MIB);
        assert_eq!(p[..4], [2 * MIB, 2 * MIB, 4 * MIB, 8 * MIB]);
        assert_eq!(p[p.len() - 4..], [8 * MIB, 4 * MIB, 2 * MIB, 2 * MIB]);
        assert!(p.len() <= 64 + 8, "{} pieces", p.len());
        // Odd sizes: every piece but the last is a multiple of 4 KiB.
        for len in [
            16 * MIB + 1,
            17 * MIB + 4095,
            40 * MIB + 12_345,
            300 * MIB - 7,
        ] {
            let p = pieces(len, 16 * MIB);
            assert!(
                p[..p.len() - 1].iter().all(|x| x % 4096 == 0),
                "{len}: {p:?}"
            );
        }
        // Tiny chunks: pieces never drop below 4 KiB except the last.
        let p = pieces(100_000, 8192);
        assert!(p[..p.len() - 1].iter().all(|&x| x >= 4096));
    }
}
