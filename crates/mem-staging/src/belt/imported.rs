//! Zero-copy buffer uploads: the aligned interior of the caller's slice is
//! imported as device memory (`VK_EXT_external_memory_host`) and copied by
//! the GPU directly; head and tail go through the ring. Synchronous: the
//! slice is only borrowed for the call.

use super::*;

impl StagingBelt {
    /// The import path of [`Self::upload_buffer`]: head and tail through the
    /// ring, the aligned interior imported piece by piece, each piece's copy
    /// submitted at once (so the GPU copies it while the next one is
    /// imported); then waits for everything and frees the imports.
    pub(super) fn upload_imported(
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
    pub(super) fn import_interior(
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
}
