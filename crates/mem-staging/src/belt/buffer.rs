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
    /// Large uploads (at least [`StagingBeltConfig::import_threshold`] bytes,
    /// with [`StagingBeltConfig::external_memory_host`]) import the aligned
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
        self.upload_source(dst, dst_offset, data.len() as u64, Source::Bytes(data))
    }

    /// Uploads `len` bytes into `dst` at `dst_offset`, written in place by
    /// `writer`: the belt reserves ring space (or, for a host-visible
    /// destination, takes the destination's mapping) piece by piece and calls
    /// `writer(at, bytes)` to fill the upload's bytes `[at, at + bytes.len())`.
    /// Pieces of large uploads are split over the belt's copy threads, so
    /// `writer` runs on several threads at once; every byte is asked for
    /// exactly once. A decoder or file reader writes straight into staging
    /// memory, with no buffer in between.
    ///
    /// When `writer` fails, the piece it was filling is not copied and its
    /// ring space is free again; the error is [`StagingError::Source`].
    /// Pieces of a streamed upload before it may have reached `dst`, and
    /// may still be in flight: [`Self::finish`] (or wait for a later ticket)
    /// before destroying `dst`.
    /// Otherwise as [`Self::upload_buffer`] (no import path: there is no
    /// slice to import).
    pub fn upload_buffer_with<F, E>(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        len: u64,
        writer: F,
    ) -> Result<Ticket, StagingError>
    where
        F: Fn(u64, &mut [u8]) -> Result<(), E> + Sync,
        E: Into<SourceError>,
    {
        let write = |at: u64, bytes: &mut [u8]| writer(at, bytes).map_err(Into::into);
        self.upload_source(dst, dst_offset, len, Source::Shared(&write))
    }

    /// Uploads `len` bytes read from `reader` into `dst` at `dst_offset`:
    /// each piece is read straight into the ring (or a host-visible
    /// destination), in order, with `read_exact`. A reader that fails or
    /// ends early is [`StagingError::Source`], as for
    /// [`Self::upload_buffer_with`].
    pub fn upload_buffer_from<R: std::io::Read + Send>(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        len: u64,
        reader: &mut R,
    ) -> Result<Ticket, StagingError> {
        let mut read = |_: u64, bytes: &mut [u8]| -> Result<(), SourceError> {
            reader.read_exact(bytes).map_err(Into::into)
        };
        self.upload_source(dst, dst_offset, len, Source::Exclusive(&mut read))
    }

    /// Uploads `len` bytes of `file` from `file_offset` into `dst` at
    /// `dst_offset` with positioned reads, several threads reading pieces of
    /// the file at once straight into the ring (or a host-visible
    /// destination). A read that fails or ends early is
    /// [`StagingError::Source`], as for [`Self::upload_buffer_with`].
    #[cfg(unix)]
    pub fn upload_buffer_from_file(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        file: &std::fs::File,
        file_offset: u64,
        len: u64,
    ) -> Result<Ticket, StagingError> {
        use std::os::unix::fs::FileExt;
        let end = file_offset.checked_add(len);
        self.upload_buffer_with(dst, dst_offset, len, |at, bytes| {
            if end.is_none() {
                return Err(std::io::Error::other("file range overflows u64"));
            }
            file.read_exact_at(bytes, file_offset + at)
        })
    }

    /// The checks every buffer write passes before anything is staged:
    /// the buffer is this belt's manager's, has `TRANSFER_DST` usage
    /// (checked on every path, the direct one included, so code that works
    /// on a device where the destination is host-visible works everywhere),
    /// and `[dst_offset, dst_offset + len)` is a non-empty range inside it.
    pub(super) fn check_buffer_write(
        &self,
        dst: &Buffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<(), StagingError> {
        self.check_owner(dst.owner(), dst.desc().name.as_deref())?;
        if len == 0 {
            return Err(StagingError::EmptyData);
        }
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
        Ok(())
    }

    /// True when uploads into `dst` write its mapping instead of staging.
    pub(super) fn writes_directly(&self, dst: &Buffer) -> bool {
        !self.desc.force_staging && dst.allocation().mapped_ptr().is_some()
    }

    /// The release half of the ownership transfer of `dst`'s written range
    /// to the destination family, when the belt's queue is of another
    /// family and the buffer is exclusive.
    pub(super) fn release_barrier(
        &self,
        dst: &Buffer,
        dst_offset: u64,
        len: u64,
    ) -> Option<vk::BufferMemoryBarrier<'static>> {
        self.needs_release(&dst.desc().sharing).then(|| {
            vk::BufferMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::empty())
                .src_queue_family_index(self.queue.family)
                .dst_queue_family_index(self.destination_family)
                .buffer(dst.handle())
                .offset(dst_offset)
                .size(len)
        })
    }

    /// The checks and paths every buffer upload shares.
    fn upload_source(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        len: u64,
        mut source: Source<'_>,
    ) -> Result<Ticket, StagingError> {
        self.check_usable()?;
        self.check_buffer_write(dst, dst_offset, len)?;
        if self.writes_directly(dst) {
            return self.upload_direct(dst, dst_offset, len, &mut source);
        }
        let release = self.release_barrier(dst, dst_offset, len);
        if len >= self.desc.import_threshold {
            if let Some((data, interior)) = source.as_bytes().and_then(|data| {
                let imp = self.importer.as_ref()?;
                aligned_interior(data.as_ptr() as usize, data.len(), imp.alignment())
                    .map(|i| (data, i))
            }) {
                return self.upload_imported(dst.handle(), dst_offset, data, interior, release);
            }
        }
        self.stage_source(dst.handle(), dst_offset, len, &mut source, release)?;
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
        self.stage_source(
            dst,
            dst_offset,
            data.len() as u64,
            &mut Source::Bytes(data),
            release,
        )
    }

    /// [`Self::stage_range`] for `len` bytes from any source.
    pub(super) fn stage_source(
        &mut self,
        dst: vk::Buffer,
        dst_offset: u64,
        len: u64,
        source: &mut Source<'_>,
        release: Option<vk::BufferMemoryBarrier<'static>>,
    ) -> Result<(), StagingError> {
        let mut closed = None;
        let result = self.stage_pieces(dst, dst_offset, len, source, release, &mut closed);
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
        len: u64,
        source: &mut Source<'_>,
        release: Option<vk::BufferMemoryBarrier<'static>>,
        closed: &mut Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let chunk = self.desc.chunk_size;
        let streamed = len > chunk;
        let threads = self.copy_threads_for(len);
        let mut done = 0u64;
        while done < len {
            let piece = if streamed {
                ramp_piece(len, done, chunk)
            } else {
                len
            };
            let offset = self.reserve_beside(piece, 16, closed)?;
            if let Err(e) = self.fill_ring(offset, piece, source, done, threads, closed.take()) {
                // Nothing reads the piece: its space is free again.
                self.undo_last_reserve();
                return Err(e);
            }
            let last = done + piece == len;
            self.record_buffer_piece(
                dst,
                offset,
                dst_offset + done,
                piece,
                release.filter(|_| last),
            );
            done += piece;
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

    /// Records the copy of `len` bytes at ring `offset` (reserved for the
    /// open batch and filled) into `dst` at `dst_start`, merged into the
    /// previous copy when it continues it; `release` goes into the batch
    /// with its acquire (the last piece of a write).
    pub(super) fn record_buffer_piece(
        &mut self,
        dst: vk::Buffer,
        offset: u64,
        dst_start: u64,
        len: u64,
        release: Option<vk::BufferMemoryBarrier<'static>>,
    ) {
        self.note_write(dst, dst_start, dst_start + len);
        self.queue_buffer_copy(
            dst,
            vk::BufferCopy {
                src_offset: offset,
                dst_offset: dst_start,
                size: len,
            },
        );
        let batch = self.open.as_mut().expect("reserve opened a batch");
        batch.has_work = true;
        batch.bytes += len;
        self.stats.bytes_staged += len;
        if let Some(release) = release {
            let value = batch.value;
            batch.end_buffer_barriers.push(release);
            self.push_acquire(value, |a| a.buffers.push(release));
        }
    }

    pub(super) fn upload_direct(
        &mut self,
        dst: &Buffer,
        dst_offset: u64,
        len: u64,
        source: &mut Source<'_>,
    ) -> Result<Ticket, StagingError> {
        let ptr = dst.allocation().mapped_ptr().expect("checked host-visible");
        // SAFETY: the destination is persistently mapped for its whole size
        // and [dst_offset, dst_offset+len) is inside it (checked by the
        // caller); the caller guarantees the GPU is not using the range; the
        // belt writes only through this call, which holds `&mut self`.
        let dst_slice = unsafe {
            std::slice::from_raw_parts_mut(ptr.as_ptr().add(dst_offset as usize), len as usize)
        };
        let threads = self.copy_threads_for(len);
        let start = Instant::now();
        let filled = source.fill(0, dst_slice, threads, self.desc.streaming_stores);
        self.stats.copy_time += start.elapsed();
        filled.map_err(StagingError::Source)?;
        if !dst.allocation().is_coherent() {
            self.resources
                .allocator()
                .flush(dst.allocation(), dst_offset, len)
                .map_err(StagingError::Flush)?;
        }
        self.stats.bytes_direct += len;
        self.stats.uploads += 1;
        // Host writes are visible to every later queue submission: complete.
        Ok(Ticket {
            belt: self.id,
            value: 0,
        })
    }
}
