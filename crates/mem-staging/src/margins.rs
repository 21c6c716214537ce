//! GPU-side debug margins: fills and checks the canaries around
//! sub-allocations the host cannot reach (device-local memory that is not
//! `HOST_VISIBLE`).
//!
//! With [`mem_core::AllocatorConfig::debug_margin`] set, the allocator puts
//! margins around every sub-allocation. It fills and checks those of
//! host-visible memory itself; the others it only lists
//! ([`mem_core::Allocator::device_margins`]). A [`MarginChecker`] takes care
//! of them with transfer commands on a queue the engine lends it:
//!
//! ```text
//!   new ──► (engine creates resources)
//!             ▼
//!           fill_new_margins()   vkCmdFillBuffer 0x7F84E666 into every margin
//!             │                  not filled yet; submit; wait; tell the allocator
//!             ▼
//!           (engine's frames: GPU work that might overrun its buffers)
//!             ▼
//!           check(waits)         vkCmdCopyBuffer every filled margin into a
//!                                host-visible readback buffer; submit (after
//!                                the engine's semaphores); wait; compare;
//!                                report damage through the allocator
//! ```
//!
//! A typical engine calls `fill_new_margins` once per frame after creating
//! that frame's resources and before submitting work that uses them (the
//! fill must land before the first write that could overrun, or the fill
//! hides it), and `check` every N frames or at a point where it suspects
//! damage. Both wait for their own submission before returning: this is a
//! debug aid, not a per-frame cost an engine ships with.
//!
//! # How the GPU reaches the margins
//! Margins lie outside every resource, so the checker creates one alias
//! `VkBuffer` (`TRANSFER_SRC | TRANSFER_DST`) over each whole
//! `VkDeviceMemory` block, bound at offset 0, and fills or copies the margin
//! ranges through it. Aliases are cached by the allocator's block id (not the
//! `VkDeviceMemory` handle, which a driver may reuse after a block is freed)
//! and destroyed when their block no longer holds GPU-checked margins. A
//! block whose buffer requirements do not fit (size, or `memoryTypeBits`
//! without the block's type) is a typed error, [`MarginError::AliasDoesNotFit`].
//!
//! Caveat: where `bufferImageGranularity` exceeds the allocator's minimum
//! block, optimally tiled images have blocks of their own, and their margins
//! share granularity pages with the images; the checker touches only bytes no
//! image occupies, but through a linear buffer, which the spec does not
//! promise leaves a neighbouring optimal image intact on every device.
//!
//! # Synchronization
//! Each submission starts with a global barrier (all earlier commands on the
//! queue, all writes, before the transfer) and ends with one that makes the
//! transfer writes visible to later commands (fill) or to the host
//! (check). Work on other queues must be finished, or covered by the
//! semaphores given to [`MarginChecker::check`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use ash::vk;
use mem_core::host::HostCallbacks;
use mem_core::stats::{CorruptionReport, DeviceMargin};
use mem_core::AllocError;
use mem_resources::{Buffer, BufferDesc, ResourceError, ResourceManager};

use crate::belt::SharedQueue;

/// The canary as `vkCmdFillBuffer` writes it: at a 4-aligned offset `p` the
/// bytes become `CANARY[p % 4]`, the pattern the host path writes.
pub const CANARY_U32: u32 = 0x7F84_E666;

const CANARY: [u8; 4] = CANARY_U32.to_le_bytes();

/// Configuration of a [`MarginChecker`]. See [`Default`] for the defaults.
#[derive(Clone, Debug)]
pub struct MarginCheckerConfig {
    /// Size of the host-visible readback buffer the margins are copied into,
    /// in bytes. More margin bytes than this are checked in several
    /// submissions. Default 4 MiB; raised to at least 4 KiB. The buffer is
    /// created on the first check, as large as needed up to this size.
    pub max_readback_size: u64,
    /// Longest wait for one submission before [`MarginError::Timeout`].
    /// Default 10 s.
    pub wait_timeout: Duration,
    /// Host allocation callbacks for the checker's own Vulkan objects (alias
    /// buffers, command pool, fence); the readback buffer goes through the
    /// resource manager and uses its callbacks. Default `None`.
    pub allocation_callbacks: Option<vk::AllocationCallbacks<'static>>,
}

impl Default for MarginCheckerConfig {
    fn default() -> Self {
        Self {
            max_readback_size: 4 << 20,
            wait_timeout: Duration::from_secs(10),
            allocation_callbacks: None,
        }
    }
}

/// Why filling or checking margins failed. Nothing is left pending or leaked
/// after an error, except that a submission that timed out or hit a lost
/// device is waited for (or the queue idled) before the checker reuses or
/// destroys its objects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarginError {
    /// A Vulkan call failed.
    #[error("{call} failed: {result:?}")]
    Vulkan {
        /// The call.
        call: &'static str,
        /// Its result.
        result: vk::Result,
    },
    /// The device was lost.
    #[error("the device was lost")]
    DeviceLost,
    /// The submission did not finish within
    /// [`MarginCheckerConfig::wait_timeout`].
    #[error("margin {what} did not finish within {waited:?}")]
    Timeout {
        /// `"fill"` or `"check"`.
        what: &'static str,
        /// How long it waited.
        waited: Duration,
    },
    /// A buffer over the whole block cannot be bound to it.
    #[error("alias buffer of {memory_size} bytes does not fit its memory (type {memory_type_index}): needs {required_size} bytes, memoryTypeBits {memory_type_bits:#x}")]
    AliasDoesNotFit {
        /// The block's memory type.
        memory_type_index: u32,
        /// The block's size.
        memory_size: u64,
        /// `VkMemoryRequirements::size` of the alias.
        required_size: u64,
        /// `VkMemoryRequirements::memoryTypeBits` of the alias.
        memory_type_bits: u32,
    },
    /// Creating the readback buffer failed.
    #[error("readback buffer: {0}")]
    Resource(#[from] ResourceError),
    /// Invalidating the readback buffer failed.
    #[error("readback buffer: {0}")]
    Alloc(#[from] AllocError),
}

impl MarginError {
    fn vulkan(call: &'static str, result: vk::Result) -> Self {
        if result == vk::Result::ERROR_DEVICE_LOST {
            Self::DeviceLost
        } else {
            Self::Vulkan { call, result }
        }
    }
}

/// A Vulkan call of the checker that `MarginChecker::inject_fault` (feature `testing`) can
/// make fail, for tests of the failure paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarginFault {
    /// `vkCreateBuffer` of an alias buffer.
    CreateBuffer,
    /// `vkBindBufferMemory` of an alias buffer.
    BindBufferMemory,
    /// `vkQueueSubmit` of a fill or check.
    QueueSubmit,
    /// `vkWaitForFences` after a submission.
    WaitForFences,
}

impl MarginFault {
    const COUNT: usize = 4;

    fn index(self) -> usize {
        match self {
            MarginFault::CreateBuffer => 0,
            MarginFault::BindBufferMemory => 1,
            MarginFault::QueueSubmit => 2,
            MarginFault::WaitForFences => 3,
        }
    }
}

/// What one [`MarginChecker::check`] did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarginCheck {
    /// Margins compared against the canary.
    pub margins_checked: usize,
    /// Bytes compared.
    pub bytes_checked: u64,
    /// Margins skipped because no fill has reached them yet (call
    /// [`MarginChecker::fill_new_margins`]).
    pub margins_unfilled: usize,
    /// Submissions made (more than one when the margins exceed the readback
    /// buffer).
    pub submissions: usize,
    /// Every damaged margin found (also recorded in the allocator's
    /// [`mem_core::Allocator::corruption_reports`] and counted in its stats).
    pub corruptions: Vec<CorruptionReport>,
}

/// One alias buffer over a whole block.
struct Alias {
    block_id: u64,
    buffer: vk::Buffer,
}

/// A piece of a margin copied into the readback buffer.
struct Piece {
    margin: usize,
    alias: vk::Buffer,
    src: u64,
    dst: u64,
    len: u64,
}

/// Fills and checks the debug margins that only the GPU can reach. See the
/// module docs for the call order. `Send`; used through `&mut self`.
pub struct MarginChecker {
    resources: Arc<ResourceManager>,
    device: ash::Device,
    queue: SharedQueue,
    desc: MarginCheckerConfig,
    callbacks: HostCallbacks,
    pool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    /// A submission whose fence was not seen signaled (timeout, lost
    /// device): waited for before the next use and in `Drop`.
    pending: bool,
    aliases: Vec<Alias>,
    readback: Option<Buffer>,
    faults: [(u64, Option<(u64, vk::Result)>); MarginFault::COUNT],
}

impl MarginChecker {
    /// Creates a checker submitting on `queue` (any family with transfer).
    ///
    /// # Safety
    /// - `queue` is a queue of `resources`' device of family `queue.family`,
    ///   and every other submitter of that queue holds `queue.lock` while
    ///   submitting;
    /// - `desc.allocation_callbacks`, when given, stay valid and thread-safe
    ///   for the checker's life.
    pub unsafe fn new(
        resources: Arc<ResourceManager>,
        queue: SharedQueue,
        desc: MarginCheckerConfig,
    ) -> Result<Self, MarginError> {
        let mut desc = desc;
        desc.max_readback_size = desc.max_readback_size.max(4096);
        let device = resources.device().clone();
        // SAFETY: valid and thread-safe for the checker's life (contract).
        let callbacks = unsafe { HostCallbacks::new(desc.allocation_callbacks) };
        let cb = callbacks.get();
        let pool_info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(queue.family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: valid device and family (contract).
        let pool = unsafe { device.create_command_pool(&pool_info, cb) }
            .map_err(|e| MarginError::vulkan("vkCreateCommandPool", e))?;
        let alloc_info = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: the pool was just created and is ours.
        let cmd = match unsafe { device.allocate_command_buffers(&alloc_info) } {
            Ok(c) => c[0],
            Err(e) => {
                // SAFETY: unused pool.
                unsafe { device.destroy_command_pool(pool, cb) };
                return Err(MarginError::vulkan("vkAllocateCommandBuffers", e));
            }
        };
        // SAFETY: valid device.
        let fence = match unsafe { device.create_fence(&vk::FenceCreateInfo::default(), cb) } {
            Ok(f) => f,
            Err(e) => {
                // SAFETY: the pool and its command buffer were never submitted.
                unsafe { device.destroy_command_pool(pool, cb) };
                return Err(MarginError::vulkan("vkCreateFence", e));
            }
        };
        Ok(Self {
            resources,
            device,
            queue,
            desc,
            callbacks,
            pool,
            cmd,
            fence,
            pending: false,
            aliases: Vec::new(),
            readback: None,
            faults: [(0, None); MarginFault::COUNT],
        })
    }

    /// Makes the `nth` next call of `point` (1 = the very next) fail with
    /// `result` instead of calling Vulkan, for tests of the failure paths.
    #[cfg(feature = "testing")]
    pub fn inject_fault(&mut self, point: MarginFault, nth: u64, result: vk::Result) {
        let f = &mut self.faults[point.index()];
        f.1 = Some((f.0 + nth, result));
    }

    /// Counts a call of `point`; `Some(result)` when it is the injected one.
    fn fault(&mut self, point: MarginFault) -> Option<vk::Result> {
        let f = &mut self.faults[point.index()];
        f.0 += 1;
        match f.1 {
            Some((at, result)) if at == f.0 => {
                f.1 = None;
                Some(result)
            }
            _ => None,
        }
    }

    /// Alias buffers alive now (one per block with GPU-checked margins seen
    /// by the last call).
    pub fn alias_count(&self) -> usize {
        self.aliases.len()
    }

    /// Writes the canary into every GPU-checked margin not filled yet, waits
    /// for the GPU, and tells the allocator. Returns how many margins were
    /// filled.
    ///
    /// # Safety
    /// - no allocation of the resource manager's allocator is freed (and no
    ///   block trimmed) by another thread while this runs: the GPU writes
    ///   through buffers bound to the listed blocks;
    /// - no GPU work that writes the new margins is pending (they lie outside
    ///   every resource, so only buggy work does; a write that lands before
    ///   the fill is overwritten and goes unseen).
    #[doc(alias = "vkCmdFillBuffer")]
    pub unsafe fn fill_new_margins(&mut self) -> Result<usize, MarginError> {
        self.settle("fill")?;
        let allocator = self.resources.allocator().clone();
        let mut margins = allocator.device_margins();
        // Keep the aliases of every block with GPU margins, filled or not.
        self.prune_aliases(&margins);
        margins.retain(|m| !m.filled);
        if margins.is_empty() {
            return Ok(0);
        }
        let mut fills = Vec::with_capacity(margins.len());
        for m in &margins {
            let alias = self.alias_for(m)?;
            debug_assert!(m.offset % 4 == 0 && m.size % 4 == 0);
            fills.push((alias, m.offset, m.size));
        }
        let device = self.device.clone();
        // SAFETY: the aliases are alive, bound, and cover the margins (they
        // span their whole blocks); offsets and sizes are multiples of 4
        // (the allocator's layout for GPU margins).
        unsafe {
            self.submit("fill", &[], |cmd| {
                for &(alias, offset, size) in &fills {
                    device.cmd_fill_buffer(cmd, alias, offset, size, CANARY_U32);
                }
            })
        }?;
        allocator.mark_device_margins_filled(&margins);
        Ok(margins.len())
    }

    /// Copies every filled GPU-checked margin into the readback buffer,
    /// compares it with the canary, and reports each damaged margin through
    /// the allocator ([`mem_core::Allocator::report_device_corruption`]:
    /// printed, counted in `stats().total.corruptions_detected`, kept in
    /// `corruption_reports()`). The first submission waits for `waits`
    /// (semaphore, value) pairs at all stages (the value is ignored for
    /// binary semaphores).
    ///
    /// # Safety
    /// - as for [`Self::fill_new_margins`]: no allocation freed and no block
    ///   trimmed while this runs;
    /// - every GPU write that could reach the margins has finished, or is
    ///   ordered before the check by `waits` (semaphores of this device,
    ///   signaled by work already submitted or submitted later);
    /// - timeline values in `waits` need the `timelineSemaphore` feature.
    pub unsafe fn check(
        &mut self,
        waits: &[(vk::Semaphore, u64)],
    ) -> Result<MarginCheck, MarginError> {
        self.settle("check")?;
        let allocator = self.resources.allocator().clone();
        let cap = self.desc.max_readback_size;
        let mut all = allocator.device_margins();
        let total: u64 = all.iter().filter(|m| m.filled).map(|m| m.size).sum();
        if total > 0 && self.ensure_readback(total.min(cap))? {
            // A new readback buffer: the old one's margins (and maybe its
            // block) are gone; list again. Filled bytes can only shrink (the
            // new buffer's margins are not filled yet).
            all = allocator.device_margins();
        }
        self.prune_aliases(&all);
        let mut out = MarginCheck::default();
        let mut margins = Vec::with_capacity(all.len());
        for m in all {
            if m.filled {
                margins.push(m);
            } else {
                out.margins_unfilled += 1;
            }
        }
        if margins.is_empty() {
            return Ok(out);
        }
        margins.sort_by_key(|m| (m.block_id, m.offset));
        // Cut the margins into pieces packed into readback-sized batches.
        let mut batches: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut used = 0;
        for (i, m) in margins.iter().enumerate() {
            let alias = self.alias_for(m)?;
            let mut done = 0;
            while done < m.size {
                if used == cap {
                    batches.push(Vec::new());
                    used = 0;
                }
                let len = (m.size - done).min(cap - used);
                batches.last_mut().expect("one batch").push(Piece {
                    margin: i,
                    alias,
                    src: m.offset + done,
                    dst: used,
                    len,
                });
                done += len;
                used += len;
            }
        }
        let mut reported = vec![false; margins.len()];
        for (b, pieces) in batches.iter().enumerate() {
            let readback = self.readback.as_ref().expect("ensured").handle();
            let device = self.device.clone();
            let waits = if b == 0 { waits } else { &[] };
            // SAFETY: the aliases cover the source ranges (whole blocks),
            // the readback buffer holds `cap >= used` bytes; the sources
            // (margins) and the destination (inside the readback buffer's
            // own range) never overlap in memory.
            unsafe {
                self.submit("check", waits, |cmd| {
                    // One vkCmdCopyBuffer per alias with all its regions.
                    let mut start = 0;
                    while start < pieces.len() {
                        let alias = pieces[start].alias;
                        let end = pieces[start..]
                            .iter()
                            .position(|p| p.alias != alias)
                            .map_or(pieces.len(), |n| start + n);
                        let regions: Vec<vk::BufferCopy> = pieces[start..end]
                            .iter()
                            .map(|p| vk::BufferCopy {
                                src_offset: p.src,
                                dst_offset: p.dst,
                                size: p.len,
                            })
                            .collect();
                        device.cmd_copy_buffer(cmd, alias, readback, &regions);
                        start = end;
                    }
                })
            }?;
            out.submissions += 1;
            let rb = self.readback.as_ref().expect("ensured");
            let bytes: u64 = pieces.iter().map(|p| p.len).sum();
            allocator.invalidate(rb.allocation(), 0, bytes)?;
            let base = rb
                .allocation()
                .mapped_ptr()
                .expect("readback memory is host-visible");
            // SAFETY: the readback allocation is mapped for at least `cap`
            // bytes; the GPU finished writing it (fence waited, barrier to
            // HOST_READ, invalidated); no one else uses it.
            let data = unsafe { std::slice::from_raw_parts(base.as_ptr(), bytes as usize) };
            for p in pieces {
                out.bytes_checked += p.len;
                if reported[p.margin] {
                    continue;
                }
                let got = &data[p.dst as usize..(p.dst + p.len) as usize];
                if let Some(k) = got
                    .iter()
                    .enumerate()
                    .position(|(k, &byte)| byte != CANARY[((p.src + k as u64) % 4) as usize])
                {
                    reported[p.margin] = true;
                    let m = &margins[p.margin];
                    if let Some(r) = allocator.report_device_corruption(m, p.src + k as u64) {
                        out.corruptions.push(r);
                    }
                }
            }
        }
        out.margins_checked = margins.len();
        Ok(out)
    }

    /// Waits for a submission left pending by an earlier error.
    fn settle(&mut self, what: &'static str) -> Result<(), MarginError> {
        if self.pending {
            self.wait(what)?;
        }
        Ok(())
    }

    fn wait(&mut self, what: &'static str) -> Result<(), MarginError> {
        let start = Instant::now();
        let timeout = self.desc.wait_timeout.as_nanos().min(u64::MAX as u128) as u64;
        let result = match self.fault(MarginFault::WaitForFences) {
            Some(injected) => Err(injected),
            // SAFETY: the fence is ours and was submitted.
            None => unsafe { self.device.wait_for_fences(&[self.fence], true, timeout) },
        };
        match result {
            Ok(()) => {
                self.pending = false;
                Ok(())
            }
            Err(vk::Result::TIMEOUT) => Err(MarginError::Timeout {
                what,
                waited: start.elapsed(),
            }),
            Err(e) => Err(MarginError::vulkan("vkWaitForFences", e)),
        }
    }

    /// Records `record` between the checker's barriers, submits it after
    /// `waits`, and waits for it.
    ///
    /// # Safety
    /// - the commands `record` records are valid for this queue and touch
    ///   only memory the caller's contract lets the checker touch.
    unsafe fn submit(
        &mut self,
        what: &'static str,
        waits: &[(vk::Semaphore, u64)],
        record: impl FnOnce(vk::CommandBuffer),
    ) -> Result<(), MarginError> {
        let d = self.device.clone();
        let cmd = self.cmd;
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        // SAFETY: `cmd` is not pending (no submission is: `settle` ran), and
        // its pool allows the implicit reset.
        unsafe { d.begin_command_buffer(cmd, &begin) }
            .map_err(|e| MarginError::vulkan("vkBeginCommandBuffer", e))?;
        // Everything earlier on this queue (the engine's writes, an earlier
        // check or fill) before the transfer reads and writes.
        let before = vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
            .dst_access_mask(vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE);
        // The transfer writes visible to the host (check) and to later
        // commands on the queue (fill: the engine's work, a later check).
        let after = vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(
                vk::AccessFlags::HOST_READ
                    | vk::AccessFlags::MEMORY_READ
                    | vk::AccessFlags::MEMORY_WRITE,
            );
        // SAFETY: `cmd` is recording.
        unsafe {
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::TRANSFER,
                vk::DependencyFlags::empty(),
                &[before],
                &[],
                &[],
            )
        };
        record(cmd);
        // SAFETY: `cmd` is recording.
        unsafe {
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::HOST | vk::PipelineStageFlags::ALL_COMMANDS,
                vk::DependencyFlags::empty(),
                &[after],
                &[],
                &[],
            )
        };
        // SAFETY: `cmd` is recording.
        unsafe { d.end_command_buffer(cmd) }
            .map_err(|e| MarginError::vulkan("vkEndCommandBuffer", e))?;
        // SAFETY: the fence is ours and not pending (settled).
        unsafe { d.reset_fences(&[self.fence]) }
            .map_err(|e| MarginError::vulkan("vkResetFences", e))?;
        let sems: Vec<vk::Semaphore> = waits.iter().map(|w| w.0).collect();
        let values: Vec<u64> = waits.iter().map(|w| w.1).collect();
        let stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
        let cmds = [cmd];
        let mut timeline =
            vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&values);
        let mut submit = vk::SubmitInfo::default()
            .command_buffers(&cmds)
            .wait_semaphores(&sems)
            .wait_dst_stage_mask(&stages);
        if !waits.is_empty() {
            submit = submit.push_next(&mut timeline);
        }
        let result = match self.fault(MarginFault::QueueSubmit) {
            Some(injected) => Err(injected),
            None => {
                let _guard = self.queue.lock.lock();
                // SAFETY: the queue belongs to the device and its lock is held
                // (the engine honours it per `new`'s contract); the command
                // buffer is executable, the fence unsignaled.
                unsafe { d.queue_submit(self.queue.queue, &[submit], self.fence) }
            }
        };
        result.map_err(|e| MarginError::vulkan("vkQueueSubmit", e))?;
        self.pending = true;
        self.wait(what)
    }

    /// Destroys the aliases of blocks that hold no GPU-checked margin now
    /// (freed blocks included: destroying a buffer whose memory was freed is
    /// allowed).
    fn prune_aliases(&mut self, margins: &[DeviceMargin]) {
        let live: ahash::AHashSet<u64> = margins.iter().map(|m| m.block_id).collect();
        let cb = self.callbacks.get();
        let device = &self.device;
        self.aliases.retain(|a| {
            if live.contains(&a.block_id) {
                return true;
            }
            // SAFETY: nothing is pending (callers settle first), so the GPU
            // no longer uses the alias.
            unsafe { device.destroy_buffer(a.buffer, cb) };
            false
        });
    }

    /// The alias buffer over `m`'s block, created and bound on first use.
    fn alias_for(&mut self, m: &DeviceMargin) -> Result<vk::Buffer, MarginError> {
        if let Some(a) = self.aliases.iter().find(|a| a.block_id == m.block_id) {
            return Ok(a.buffer);
        }
        let info = vk::BufferCreateInfo::default()
            .size(m.memory_size)
            .usage(vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        let created = match self.fault(MarginFault::CreateBuffer) {
            Some(injected) => Err(injected),
            // SAFETY: valid create info; callbacks per `new`'s contract.
            None => unsafe { self.device.create_buffer(&info, self.callbacks.get()) },
        };
        let buffer = created.map_err(|e| MarginError::vulkan("vkCreateBuffer", e))?;
        let destroy = |this: &Self| {
            // SAFETY: just created, never bound or used.
            unsafe { this.device.destroy_buffer(buffer, this.callbacks.get()) }
        };
        // SAFETY: `buffer` is alive.
        let req = unsafe { self.device.get_buffer_memory_requirements(buffer) };
        if req.size > m.memory_size || req.memory_type_bits & (1 << m.memory_type_index) == 0 {
            destroy(self);
            return Err(MarginError::AliasDoesNotFit {
                memory_type_index: m.memory_type_index,
                memory_size: m.memory_size,
                required_size: req.size,
                memory_type_bits: req.memory_type_bits,
            });
        }
        let bound = match self.fault(MarginFault::BindBufferMemory) {
            Some(injected) => Err(injected),
            // SAFETY: the block is alive (the caller's contract: nothing is
            // freed while the checker runs); offset 0 meets any alignment;
            // the type and size fit (checked above).
            None => unsafe { self.device.bind_buffer_memory(buffer, m.memory, 0) },
        };
        if let Err(e) = bound {
            destroy(self);
            return Err(MarginError::vulkan("vkBindBufferMemory", e));
        }
        self.aliases.push(Alias {
            block_id: m.block_id,
            buffer,
        });
        Ok(buffer)
    }

    /// Makes the readback buffer hold at least `size` bytes; true when it
    /// was (re)created.
    fn ensure_readback(&mut self, size: u64) -> Result<bool, MarginError> {
        if self
            .readback
            .as_ref()
            .is_some_and(|b| b.requested_size() >= size)
        {
            return Ok(false);
        }
        if let Some(old) = self.readback.take() {
            // SAFETY: nothing is pending (callers settle first).
            unsafe { self.resources.destroy_buffer(old) }.map_err(|r| r.into_parts().0)?;
        }
        let buffer = self
            .resources
            .create_buffer(&BufferDesc::readback(size).name("gpumem margin readback"))?;
        if buffer.allocation().mapped_ptr().is_none() {
            let memory_type_index = buffer.allocation().memory_type_index();
            // SAFETY: just created, never used by the GPU.
            unsafe { self.resources.destroy_buffer(buffer) }.map_err(|r| r.into_parts().0)?;
            return Err(MarginError::Alloc(AllocError::NotHostVisible {
                memory_type_index,
            }));
        }
        self.readback = Some(buffer);
        Ok(true)
    }
}

impl Drop for MarginChecker {
    fn drop(&mut self) {
        if self.pending && self.wait("drop").is_err() {
            let _guard = self.queue.lock.lock();
            // SAFETY: the queue belongs to the device; its lock is held.
            let _ = unsafe { self.device.queue_wait_idle(self.queue.queue) };
        }
        let cb = self.callbacks.get();
        // SAFETY: nothing the checker submitted is pending any more (waited
        // above), so its objects are idle. The alias buffers may outlive
        // their blocks' memory: destroying them is still allowed.
        unsafe {
            for a in self.aliases.drain(..) {
                self.device.destroy_buffer(a.buffer, cb);
            }
            self.device.destroy_fence(self.fence, cb);
            self.device.destroy_command_pool(self.pool, cb);
            if let Some(rb) = self.readback.take() {
                let _ = self.resources.destroy_buffer(rb);
            }
        }
    }
}
