//! The batch lifecycle: open (a command buffer begins, ordered after earlier
//! batches' transfer writes), close (the images' end transitions and
//! releases are recorded once each, the ring space is closed), submit
//! (signals the batch's timeline value, after the engine's semaphores the
//! belt was asked to wait on), and the waits and polls that retire batches
//! and return their ring space in order.
//!
//! Invariant: batch values are consecutive; a closed batch always reaches
//! `queue_submit` (or the belt fails), so the ring's accounting holds.

use super::*;

impl StagingBelt {
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

    pub(super) fn poll_completed(&mut self) -> Result<u64, StagingError> {
        // SAFETY: the semaphore is the belt's own, alive.
        let value = unsafe { self.device.get_semaphore_counter_value(self.semaphore) }
            .map_err(|e| StagingError::vulkan("vkGetSemaphoreCounterValue", e))?;
        self.retire_until(value);
        Ok(value)
    }

    pub(super) fn retire_until(&mut self, value: u64) {
        self.completed = self.completed.max(value);
        self.release_ring();
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

    pub(super) fn wait_value(&mut self, value: u64) -> Result<(), StagingError> {
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
    /// [`StagingBeltConfig::spin_wait`] has passed since `start`; whether it
    /// got there (a failing query counts as not, for the blocking wait to
    /// report).
    pub(super) fn poll_until(&self, value: u64, start: Instant) -> bool {
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

    pub(super) fn open_batch(&mut self) -> Result<&mut OpenBatch, StagingError> {
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
    pub(super) fn submit_open(&mut self) -> Result<(), StagingError> {
        match self.close_open()? {
            Some(closed) => self.queue_submit(closed),
            None => Ok(()),
        }
    }

    /// The first half of [`Self::submit_open`]: ends the open batch's
    /// command buffer and closes its ring space. The batch must reach
    /// [`Self::queue_submit`] before anything waits for ring space.
    pub(super) fn close_open(&mut self) -> Result<Option<ClosedBatch>, StagingError> {
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
                .map_err(|e| self.fail(StagingError::Flush(e)))?;
        }
        self.ring.close_batch(batch.value);
        self.last_reserve = None;
        self.next_value += 1;
        Ok(Some(ClosedBatch {
            value: batch.value,
            cmd,
        }))
    }

    /// The second half of [`Self::submit_open`]: submits a closed batch,
    /// signaling its timeline value.
    pub(super) fn queue_submit(&mut self, batch: ClosedBatch) -> Result<(), StagingError> {
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

    pub(super) fn push_acquire(&mut self, value: u64, add: impl FnOnce(&mut AcquireBarriers)) {
        match self.acquires.last_mut() {
            Some((v, a)) if *v == value => add(a),
            _ => {
                let mut a = AcquireBarriers::default();
                add(&mut a);
                self.acquires.push((value, a));
            }
        }
    }
}
