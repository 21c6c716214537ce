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
//! Data larger than a chunk ([`StagingBeltConfig::chunk_size`]) streams through
//! the ring: each chunk is copied into the ring and submitted at once, so the
//! GPU copy of chunk i overlaps the memcpy of chunk i+1. Chunks of at least
//! [`StagingBeltConfig::parallel_copy_threshold`] bytes are copied into the ring
//! by several threads.
//!
//! # Many small writes
//! [`StagingBelt::upload_buffers`] lays a list of writes end to end in runs
//! of at most a chunk; each run is one reservation that the copy threads
//! fill at once, and an image's small mip levels are filled as one run the
//! same way, so small pieces are not copied one at a time on the calling
//! thread.
//!
//! # Imported uploads (zero copy)
//! With [`StagingBeltConfig::external_memory_host`] (the engine enabled
//! `VK_EXT_external_memory_host`), a staged buffer upload of at least
//! [`StagingBeltConfig::import_threshold`] bytes imports the aligned interior of
//! the caller's slice as device memory in pieces of
//! [`StagingBeltConfig::import_chunk_size`], and the GPU copies from it
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
use mem_core::MemoryUsage;
use mem_resources::{
    Buffer, BufferDesc, Image, ImageSubresources, ResourceError, ResourceManager, Sharing,
    SubresourceState,
};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::import::{aligned_interior, HostImporter, ImportedBuffer};
use crate::plan::{plan_subresources_upload, CopyLimits, ImageLayout, PlanError};
use crate::ring::{Ring, RingSnapshot};

mod batch;
mod buffer;
mod config;
mod defrag;
mod download;
mod error;
mod faults;
mod host_copy;
mod image;
mod imported;
mod pending_images;
mod ring_space;
mod source;
mod stats;
mod ticket;
mod writes;

pub use config::{SharedQueue, StagingBeltConfig};
pub use defrag::{DefragmentationPass, ResourceMove};
pub use download::Download;
pub use error::StagingError;
#[cfg(feature = "testing")]
pub use faults::BeltFault;
#[cfg(not(feature = "testing"))]
use faults::BeltFault;
pub use source::SourceError;
pub use stats::StagingStats;
pub use ticket::{AcquireBarriers, Ticket};
pub use writes::BufferWrite;

use faults::Faults;
use pending_images::{group_boxes, Final, PendingImage};
use ring_space::ramp_piece;
use source::Source;

static NEXT_BELT_ID: AtomicU64 = AtomicU64::new(1);
const MIB: u64 = 1 << 20;
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
    /// `TRANSFER_DST_OPTIMAL` until its end (see [`pending_images`]).
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
    desc: StagingBeltConfig,
    queue: SharedQueue,
    destination_family: u32,
    limits: CopyLimits,
    ring_buffer: Option<Buffer>,
    ring_ptr: RingPtr,
    ring_coherent: bool,
    ring: Ring,
    /// The ring before the latest reservation, to give it back when the
    /// source of its bytes fails.
    last_reserve: Option<RingSnapshot>,
    semaphore: vk::Semaphore,
    pool: vk::CommandPool,
    free_cmds: Vec<vk::CommandBuffer>,
    open: Option<OpenBatch>,
    next_value: u64,
    in_flight: VecDeque<(u64, vk::CommandBuffer)>,
    completed: u64,
    acquires: Vec<(u64, AcquireBarriers)>,
    /// Batches holding readback bytes the host has not read yet (set once
    /// read), oldest first: the ring is not released past them.
    pins: VecDeque<(u64, Arc<std::sync::atomic::AtomicBool>)>,
    /// Engine semaphores the next submitted batch waits on.
    next_waits: Vec<(vk::Semaphore, u64)>,
    sticky: Option<StagingError>,
    faults: Faults,
    stats: StagingStats,
    importer: Option<HostImporter>,
    /// `VK_EXT_host_image_copy`, when the engine enabled it.
    host_copy: Option<host_copy::HostCopy>,
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
    /// Creates a belt with its ring (a `TRANSFER_SRC | TRANSFER_DST` buffer of
    /// `desc.ring_size` bytes in [`StagingBeltConfig::ring_memory`], host-visible
    /// and persistently mapped), a timeline semaphore and a command pool on
    /// `queue.family`. These, and the buffers and memory of imports, are
    /// created and destroyed with the host allocation callbacks `resources`
    /// was given ([`ResourceManager::allocation_callbacks`]).
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
    ///   `VK_EXT_external_memory_host` enabled;
    /// - when `desc.host_image_copy` is set, the device was created with
    ///   `VK_EXT_host_image_copy` and its `hostImageCopy` feature enabled.
    pub unsafe fn new(
        resources: Arc<ResourceManager>,
        instance: &ash::Instance,
        physical_device: vk::PhysicalDevice,
        queue: SharedQueue,
        destination_family: u32,
        desc: StagingBeltConfig,
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
                // Uploads copy out of the ring, readbacks into it.
                vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
                desc.ring_memory,
            )
            .name("gpumem staging ring")
            // Alone in its memory type on most discrete GPUs: a block would
            // keep the rest of itself unused.
            .own_memory(),
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
        // SAFETY: the ring is mapped for `ring_size` bytes and nothing else
        // uses it yet (the GPU has no work that names it).
        ring_space::touch_pages(
            unsafe { std::slice::from_raw_parts_mut(ring_ptr.0, desc.ring_size as usize) },
            desc.copy_threads,
        );
        let ring_coherent = ring_buffer.allocation().is_coherent();
        let mut type_info = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(0);
        let sem_info = vk::SemaphoreCreateInfo::default().push_next(&mut type_info);
        // The engine's host allocation callbacks, as the manager got them.
        let callbacks = resources.allocation_callbacks();
        // SAFETY: the device is valid; timeline semaphores are enabled (contract).
        let semaphore = match unsafe { device.create_semaphore(&sem_info, callbacks) } {
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
        let pool = match unsafe { device.create_command_pool(&pool_info, callbacks) } {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: neither was used by the GPU.
                unsafe {
                    device.destroy_semaphore(semaphore, callbacks);
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
        let host_copy = desc.host_image_copy.then(|| {
            // SAFETY: the engine enabled the extension and its feature
            // (`desc.host_image_copy`); handles per this function's contract.
            unsafe { host_copy::HostCopy::new(instance, physical_device, &device) }
        });
        let importer = if desc.external_memory_host {
            // SAFETY: the engine enabled the extension on this device
            // (`desc.external_memory_host`); handles per this function's contract.
            unsafe {
                // The manager's callbacks, under the promise its constructor
                // was given; the importer lives in the belt, which holds the
                // manager.
                let callbacks =
                    mem_core::host::HostCallbacks::new(resources.allocation_callbacks().copied());
                HostImporter::new(instance, physical_device, &device, callbacks)
            }
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
            last_reserve: None,
            semaphore,
            pool,
            free_cmds: Vec::new(),
            open: None,
            next_value: 1,
            in_flight: VecDeque::new(),
            completed: 0,
            acquires: Vec::new(),
            pins: VecDeque::new(),
            next_waits: Vec::new(),
            sticky: None,
            faults: Faults::default(),
            stats,
            importer,
            host_copy,
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

    pub(super) fn check_owner(&self, owner: u64, name: Option<&str>) -> Result<(), StagingError> {
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

    pub(super) fn check_usable(&self) -> Result<(), StagingError> {
        match &self.sticky {
            Some(e) => Err(e.sticky_copy()),
            None => Ok(()),
        }
    }

    pub(super) fn check_ticket(&self, ticket: Ticket) -> Result<(), StagingError> {
        if ticket.belt != self.id {
            return Err(StagingError::ForeignTicket {
                ticket_belt: ticket.belt,
                belt: self.id,
            });
        }
        Ok(())
    }

    pub(super) fn fail(&mut self, e: StagingError) -> StagingError {
        self.sticky = Some(e.sticky_copy());
        e
    }

    /// The value of the batch that holds the latest upload.
    pub(super) fn current_value(&self) -> u64 {
        self.open.as_ref().map_or(self.next_value - 1, |b| b.value)
    }

    /// Identifier of this belt (tickets carry it).
    pub fn id(&self) -> u64 {
        self.id
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
            let callbacks = self.resources.allocation_callbacks();
            self.device.destroy_command_pool(self.pool, callbacks);
            self.device.destroy_semaphore(self.semaphore, callbacks);
            if let Some(ring) = self.ring_buffer.take() {
                let _ = self.resources.destroy_buffer(ring);
            }
        }
    }
}
