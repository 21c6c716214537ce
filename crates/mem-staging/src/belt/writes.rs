//! Many buffer writes in one call ([`StagingBelt::upload_buffers`]): the
//! writes are laid end to end in runs of at most a chunk, each run takes one
//! ring reservation, and the copy threads fill a whole run at once, so small
//! writes (meshes, constants, streamed pieces) are copied in parallel
//! instead of one at a time on the calling thread.
//!
//! Invariant: writes reach the command stream in the order given, as if
//! each were uploaded alone, so overlapping writes land in order.

use rayon::prelude::*;

use super::ring_space::{copy_piece, stream_copy};
use super::*;

/// One write of [`StagingBelt::upload_buffers`]: `data` into `dst` at
/// `offset` (in bytes).
#[derive(Clone, Copy, Debug)]
pub struct BufferWrite<'a> {
    /// The buffer written; it needs `TRANSFER_DST` usage.
    pub dst: &'a Buffer,
    /// Where the bytes go in `dst`.
    pub offset: u64,
    /// The bytes; they may be reused as soon as the call returns.
    pub data: &'a [u8],
}

impl<'a> BufferWrite<'a> {
    /// `data` into `dst` at `offset`.
    pub fn new(dst: &'a Buffer, offset: u64, data: &'a [u8]) -> Self {
        Self { dst, offset, data }
    }
}

/// Where each write of a run starts in the run: writes are 16-byte aligned
/// (the ring's alignment for buffer copies), and the run's length.
fn run_layout(lens: impl IntoIterator<Item = u64>) -> (SmallVec<[u64; 64]>, u64) {
    let mut at = SmallVec::new();
    let mut len = 0u64;
    for l in lens {
        let start = len.next_multiple_of(16);
        at.push(start);
        len = start + l;
    }
    (at, len)
}

impl StagingBelt {
    /// Uploads every write of `writes`, in order, as [`Self::upload_buffer`]
    /// would one after another, and returns a ticket that completes when
    /// every one of them has reached its buffer.
    ///
    /// Writes that fit a chunk ([`StagingBeltConfig::chunk_size`]) are laid
    /// end to end in runs of at most a chunk: each run takes one ring
    /// reservation, is filled by the copy threads at once (a run of many
    /// small writes is split over the threads as one large copy would be)
    /// and becomes one copy command per destination when the writes
    /// continue each other. Larger writes, writes the belt imports
    /// ([`StagingBeltConfig::import_threshold`]) and writes to host-visible
    /// destinations (written directly) take the paths of
    /// [`Self::upload_buffer`] in their turn.
    ///
    /// Every write is checked before anything is staged: a foreign buffer,
    /// missing `TRANSFER_DST`, an empty write or a range past the end fails
    /// the call with nothing uploaded. A later failure (the device, a
    /// timeout waiting for ring space) leaves the writes before it staged,
    /// as if they had been uploaded one by one. An empty `writes` returns a
    /// complete ticket.
    #[doc(alias = "vkCmdCopyBuffer")]
    pub fn upload_buffers(&mut self, writes: &[BufferWrite<'_>]) -> Result<Ticket, StagingError> {
        self.check_usable()?;
        for w in writes {
            self.check_buffer_write(w.dst, w.offset, w.data.len() as u64)?;
        }
        let chunk = self.desc.chunk_size;
        let mut ticket = Ticket {
            belt: self.id,
            value: 0,
        };
        let mut closed = None;
        let result = (|| {
            let mut i = 0;
            while i < writes.len() {
                let w = &writes[i];
                let len = w.data.len() as u64;
                let imported = len >= self.desc.import_threshold && self.importer.is_some();
                if self.writes_directly(w.dst) || len > chunk || imported {
                    if let Some(b) = closed.take() {
                        self.queue_submit(b)?;
                    }
                    let t = self.upload_buffer(w.dst, w.offset, w.data)?;
                    // A direct write's ticket is complete (value 0): the
                    // call's ticket still covers the staged writes before it.
                    ticket.value = ticket.value.max(t.value);
                    i += 1;
                    continue;
                }
                // The run: the following writes that are staged and fit the
                // chunk together.
                let mut end = i + 1;
                let mut run_len = len;
                while let Some(next) = writes.get(end) {
                    let next_len = next.data.len() as u64;
                    let grown = run_len.next_multiple_of(16) + next_len;
                    let next_imported =
                        next_len >= self.desc.import_threshold && self.importer.is_some();
                    if grown > chunk || self.writes_directly(next.dst) || next_imported {
                        break;
                    }
                    run_len = grown;
                    end += 1;
                }
                let more = end < writes.len();
                self.stage_run(&writes[i..end], more, &mut closed)?;
                ticket.value = ticket.value.max(self.current_value());
                i = end;
            }
            Ok(())
        })();
        // As in `stage_source`: a batch closed for an overlapped submit
        // always reaches the queue, even after an error.
        match closed {
            Some(b) => result.and(self.queue_submit(b))?,
            None => result?,
        }
        Ok(ticket)
    }

    /// Stages one run of writes (each staged, together at most a chunk):
    /// one reservation, one parallel fill beside the submit of `closed`,
    /// then each write's copy. With `more` runs to come, a full batch is
    /// closed into `closed` for an overlapped submit.
    fn stage_run(
        &mut self,
        writes: &[BufferWrite<'_>],
        more: bool,
        closed: &mut Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let (at, len) = run_layout(writes.iter().map(|w| w.data.len() as u64));
        // A run as large as a chunk counts as large even when the ring is
        // too small for the threshold (as for image runs).
        let large = self.desc.parallel_copy_threshold.min(self.desc.chunk_size);
        let threads = if len >= large {
            self.desc.copy_threads
        } else {
            1
        };
        let offset = self.reserve_beside(len, 16, closed)?;
        let start = Instant::now();
        debug_assert!(offset + len <= self.desc.ring_size);
        // SAFETY: as in `fill_ring`: the range is inside the mapping and
        // reserved for the open batch, so neither the GPU nor another slice
        // touches it; the submit beside the fill reads no ring memory.
        let ring = unsafe {
            std::slice::from_raw_parts_mut(self.ring_ptr.0.add(offset as usize), len as usize)
        };
        let streaming = self.desc.streaming_stores;
        let at_ref = &at;
        let fill = move || {
            // Each write cut into pieces of at most a thread's share of the
            // run, so one large write and many small ones spread alike.
            let piece = copy_piece(len as usize, threads);
            let mut jobs: Vec<(&mut [u8], &[u8])> = Vec::new();
            let mut rest = ring;
            let mut pos = 0u64;
            for (w, &start) in writes.iter().zip(at_ref) {
                let (_, tail) = rest.split_at_mut((start - pos) as usize);
                let (dst, tail) = tail.split_at_mut(w.data.len());
                rest = tail;
                pos = start + w.data.len() as u64;
                jobs.extend(dst.chunks_mut(piece).zip(w.data.chunks(piece)));
            }
            let copy = |(d, s): (&mut [u8], &[u8])| {
                if streaming {
                    stream_copy(d, s);
                } else {
                    d.copy_from_slice(s);
                }
            };
            if threads > 1 && jobs.len() > 1 {
                jobs.into_par_iter().for_each(copy);
            } else {
                jobs.into_iter().for_each(copy);
            }
        };
        let submitted = match closed.take() {
            None => {
                fill();
                Ok(())
            }
            Some(batch) => rayon::join(|| self.queue_submit(batch), fill).0,
        };
        self.stats.copy_time += start.elapsed();
        if let Err(e) = submitted {
            // Nothing reads the run yet and no batch was closed since the
            // reservation: its space is free again.
            self.undo_last_reserve();
            return Err(e);
        }
        for (w, &start) in writes.iter().zip(&at) {
            let len = w.data.len() as u64;
            let release = self.release_barrier(w.dst, w.offset, len);
            self.record_buffer_piece(w.dst.handle(), offset + start, w.offset, len, release);
            self.stats.uploads += 1;
        }
        let batch_bytes = self.open.as_ref().map_or(0, |b| b.bytes);
        if batch_bytes >= self.desc.auto_submit_bytes {
            if more && self.desc.overlap_submit && threads > 1 {
                *closed = self.close_open()?;
            } else {
                self.submit_open()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::run_layout;

    #[test]
    fn runs_lay_writes_end_to_end_at_16_bytes() {
        let (at, len) = run_layout([5, 16, 1, 32]);
        assert_eq!(at.as_slice(), [0, 16, 32, 48]);
        assert_eq!(len, 80);
        let (at, len) = run_layout([64]);
        assert_eq!((at.as_slice(), len), (&[0][..], 64));
    }
}
