//! Ring space for the open batch: reservations that submit and wait for old
//! batches when the ring is full, and the copies into it (split over threads
//! for large pieces, beside a submit of the previous chunk when streaming).
//!
//! Invariant: a slice of the ring is written only while it is reserved for
//! the open batch, so the GPU never reads what the host is writing.

use super::source::Source;
use super::*;

/// The next piece of a streamed upload of `len` bytes (more than `chunk`)
/// after `done`: at most `chunk`, growing from `chunk / 8` at the start
/// (each piece as large as all before it) and shrinking by halves towards
/// the end, so the GPU starts copying soon after the call begins and
/// finishes soon after the last byte reaches the ring. Pieces are multiples
/// of 4 KiB except the last.
pub(super) fn ramp_piece(len: u64, done: u64, chunk: u64) -> u64 {
    let left = len - done;
    let smallest = (chunk / 8).max(4096);
    let piece = chunk.min(done.max(smallest)).min((left / 2).max(smallest));
    if piece >= left {
        left
    } else {
        (piece & !4095).max(4096).min(left)
    }
}
/// Copies `src` into `dst`, split into `threads` pieces of at least
/// [`MIN_PARALLEL_PIECE`] that rayon's pool copies in parallel (one core's
/// memcpy cannot keep a PCIe link busy); with `streaming`, through
/// [`stream_copy`].
pub(super) fn parallel_copy(dst: &mut [u8], src: &[u8], threads: usize, streaming: bool) {
    use rayon::prelude::*;
    debug_assert_eq!(dst.len(), src.len());
    let copy = |d: &mut [u8], s: &[u8]| {
        if streaming {
            stream_copy(d, s);
        } else {
            d.copy_from_slice(s);
        }
    };
    let piece = copy_piece(src.len(), threads);
    if piece >= src.len() {
        copy(dst, src);
        return;
    }
    dst.par_chunks_mut(piece)
        .zip(src.par_chunks(piece))
        .for_each(|(d, s)| copy(d, s));
}

/// Copies `src` into `dst` with non-temporal (streaming) stores on x86-64:
/// whole cache lines go to memory without being read into the cache first
/// and leave no dirty lines behind for the GPU's reads of the ring to
/// snoop. The stores are fenced before it returns. Elsewhere, and for the
/// unaligned head and tail, a plain copy.
pub(super) fn stream_copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "stream_copy of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let len = dst.len();
        let head = dst.as_ptr().align_offset(64).min(len);
        let body = (len - head) / 64 * 64;
        dst[..head].copy_from_slice(&src[..head]);
        // SAFETY: SSE2 is part of the x86-64 baseline. Every access is
        // inside [head, head + body) of both slices (equal lengths, asserted
        // above); the stores are 16-byte aligned (dst + head is 64-byte
        // aligned, steps are 16 bytes) and the loads are unaligned loads.
        // `dst` is exclusively borrowed, so nothing else writes it.
        unsafe {
            let mut d = dst.as_mut_ptr().add(head).cast::<__m128i>();
            let mut s = src.as_ptr().add(head).cast::<__m128i>();
            let end = d.add(body / 16);
            while d < end {
                let a = _mm_loadu_si128(s);
                let b = _mm_loadu_si128(s.add(1));
                let c = _mm_loadu_si128(s.add(2));
                let e = _mm_loadu_si128(s.add(3));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
                d = d.add(4);
                s = s.add(4);
            }
            // Streaming stores are weakly ordered: make them visible before
            // whatever this thread does next (the join that precedes the
            // submit).
            _mm_sfence();
        }
        dst[head + body..].copy_from_slice(&src[head + body..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}
/// Writes one byte of every 4 KiB page of `ring`, with up to `threads`
/// threads: memory a driver maps on first touch is populated when the belt
/// is made rather than during the first uploads, and the copy threads are
/// started.
pub(super) fn touch_pages(ring: &mut [u8], threads: usize) {
    use rayon::prelude::*;
    let piece = copy_piece(ring.len(), threads);
    ring.par_chunks_mut(piece).for_each(|c| {
        for page in c.chunks_mut(4096) {
            // SAFETY: `page` is a non-empty part of an exclusively borrowed
            // slice; a volatile write keeps the store the compiler could
            // otherwise drop (nothing reads it back).
            unsafe { std::ptr::write_volatile(page.as_mut_ptr(), 0) };
        }
    });
}

/// The piece each thread of a `threads`-way copy of `len` bytes takes: `len`
/// itself when one thread copies it all.
pub(super) fn copy_piece(len: usize, threads: usize) -> usize {
    if threads <= 1 || len < 2 * MIN_PARALLEL_PIECE {
        return len;
    }
    len.div_ceil(threads)
        .next_multiple_of(4096)
        .max(MIN_PARALLEL_PIECE)
}
/// The smallest piece one copy thread takes: below it, handing work to a
/// thread costs about as much as the copy.
pub(super) const MIN_PARALLEL_PIECE: usize = 64 << 10;

impl StagingBelt {
    /// Threads that copy `len` bytes into or out of the ring (or an upload
    /// or readback of that many bytes, piece by piece): every copy thread
    /// from [`StagingBeltConfig::parallel_copy_threshold`], else one.
    pub(super) fn copy_threads_for(&self, len: u64) -> usize {
        if len >= self.desc.parallel_copy_threshold {
            self.desc.copy_threads
        } else {
            1
        }
    }

    /// Ring space for the open batch if there is some now; never submits or
    /// waits.
    pub(super) fn try_reserve(
        &mut self,
        len: u64,
        align: u64,
    ) -> Result<Option<u64>, StagingError> {
        self.open_batch()?;
        let before = self.ring.snapshot();
        let offset = self.ring.reserve(len, align);
        self.last_reserve = offset.map(|_| before);
        Ok(offset)
    }

    /// Ring space for the next piece of a streamed upload while `closed`
    /// (the previous piece's batch) still waits for its submit: taken
    /// without waiting, or else after submitting `closed` (a wait for ring
    /// space may need it on the queue).
    pub(super) fn reserve_beside(
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

    /// Fills the ring at `offset` (reserved for the open batch) with the
    /// upload's bytes `[at, at + len)` from `source`, with up to `threads`
    /// threads; meanwhile, on another thread, submits `closed` if there is
    /// one. A source that fails is [`StagingError::Source`] (after `closed`
    /// is submitted).
    pub(super) fn fill_ring(
        &mut self,
        offset: u64,
        len: u64,
        source: &mut Source<'_>,
        at: u64,
        threads: usize,
        closed: Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let start = Instant::now();
        let streaming = self.desc.streaming_stores;
        debug_assert!(offset + len <= self.desc.ring_size);
        // SAFETY: as in `ring_slice`: the range is inside the mapping and
        // reserved for the open batch, so neither the GPU nor another slice
        // touches it. A submit on the other side of the join reads no ring
        // memory (the flush of a non-coherent ring happened when its batch
        // was closed).
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.ring_ptr.0.add(offset as usize), len as usize)
        };
        let (submitted, filled) = match closed {
            None => (Ok(()), source.fill(at, dst, threads, streaming)),
            Some(batch) => rayon::join(
                || self.queue_submit(batch),
                || source.fill(at, dst, threads, streaming),
            ),
        };
        self.stats.copy_time += start.elapsed();
        submitted?;
        filled.map_err(StagingError::Source)
    }

    /// Reserves ring space for the open batch, submitting and waiting for old
    /// batches as needed.
    pub(super) fn reserve(&mut self, len: u64, align: u64) -> Result<u64, StagingError> {
        loop {
            self.open_batch()?;
            let before = self.ring.snapshot();
            if let Some(offset) = self.ring.reserve(len, align) {
                self.last_reserve = Some(before);
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
                } else {
                    // Complete but not released: it holds readback bytes
                    // the host has not read.
                    return Err(StagingError::RingHeldByReadbacks {
                        len,
                        used: self.ring.used(),
                    });
                }
            } else if self.ring.used() > 0 {
                unreachable!("ring space held without a closed batch");
            }
        }
    }

    /// Gives back the latest reservation (nothing was recorded that reads
    /// it, and no batch was closed since).
    pub(super) fn undo_last_reserve(&mut self) {
        if let Some(before) = self.last_reserve.take() {
            self.ring.restore(before);
        }
    }

    pub(super) fn ring_slice(&mut self, offset: u64, len: u64) -> &mut [u8] {
        debug_assert!(offset + len <= self.desc.ring_size);
        // SAFETY: the ring is mapped for `ring_size` bytes for the belt's
        // life; [offset, offset+len) was just reserved, so the GPU is not
        // reading it (its previous batch completed) and no other slice of it
        // is alive; `&mut self` makes this access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.ring_ptr.0.add(offset as usize), len as usize)
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
