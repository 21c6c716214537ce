//! Buffer uploads: the direct path for host-visible destinations, and the
//! staged path that copies through the ring, merges contiguous small
//! uploads into one copy region, streams large ones in ramped pieces, and
//! orders overlapping writes with a barrier.

use super::*;

impl StagingBelt {
    pub(super) fn note_write(&mut self, dst: vk::Buffer, start: u64, end: u64) {
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
    pub(super) fn record_pending_copy(&mut self) {
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
    pub(super) fn queue_buffer_copy(&mut self, dst: vk::Buffer, region: vk::BufferCopy) {
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

    pub(super) fn needs_release(&self, sharing: &Sharing) -> bool {
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
        let size = dst.requested_size();
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
    pub(super) fn stage_range(
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

    pub(super) fn stage_pieces(
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

    pub(super) fn upload_direct(
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
                .map_err(StagingError::Flush)?;
        }
        self.stats.bytes_direct += len as u64;
        self.stats.uploads += 1;
        // Host writes are visible to every later queue submission: complete.
        Ok(Ticket {
            belt: self.id,
            value: 0,
        })
    }
}
