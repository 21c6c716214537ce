//! Readback: GPU copies from buffers and images into the ring, read by the
//! host once their batch completes.
//!
//! A readback's ring space is pinned until the host has read it (or dropped
//! its [`Download`], from [`StagingBelt::download_buffer`] or
//! [`StagingBelt::download_image`]): the ring gives space back in batch
//! order, so a pinned batch holds back the batches after it too. [`StagingBelt::read_buffer`]
//! and [`StagingBelt::read_image`] stream through the ring and unpin each
//! piece as soon as it is copied out, the GPU copying the next piece
//! meanwhile.
//!
//! Invariants: the ring is released only up to the batch before the oldest
//! pinned one; a pinned piece's bytes are read only after its batch's
//! timeline value is reached (and the range invalidated on non-coherent
//! memory).

use mem_resources::ResolvedSubresources;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// A readback in flight ([`StagingBelt::download_buffer`],
/// [`StagingBelt::download_image`]): its bytes are in the ring once
/// [`Self::ticket`] completes. Read them with [`StagingBelt::read_download`]
/// (as often as needed); dropping it, read or not, gives the ring space
/// back (at the belt's next poll or wait).
#[must_use = "a download holds ring space until it is read or dropped"]
#[derive(Debug)]
pub struct Download {
    ticket: Ticket,
    ring_offset: u64,
    /// Bytes the caller reads: the buffer range, or the image data laid out
    /// as uploads take it.
    len: u64,
    /// An image's copies, each with its staging offset from `ring_offset`;
    /// empty for a buffer (its bytes lie in the ring as they are).
    image_copies: Vec<(u64, crate::plan::PlannedCopy)>,
    read: Arc<AtomicBool>,
}

impl Download {
    /// The ticket after which the bytes are in the ring.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// Bytes downloaded.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty download (never: downloads of zero bytes are
    /// refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        self.read.store(true, Ordering::Release);
    }
}

/// What an image readback records: the planned copies for `len` bytes of
/// data, and the transitions to `TRANSFER_SRC_OPTIMAL` and back.
struct ImageReadback {
    plan: crate::plan::ImagePlan,
    len: u64,
    /// Acquires of subresources the engine handed over
    /// ([`StagingBelt::release_image_to_belt`]), with the release's layouts;
    /// recorded before `to_src`.
    acquire: Vec<vk::ImageMemoryBarrier<'static>>,
    to_src: Vec<vk::ImageMemoryBarrier<'static>>,
    /// The transitions out of `TRANSFER_SRC_OPTIMAL`, recorded with
    /// [`StagingBelt::end_image_readback`].
    back: ImageReadbackEnd,
}

/// How an image readback leaves the image: the transitions back to the
/// tracked layouts and the subresources whose tracked layout changes
/// (`PREINITIALIZED` is not a layout a transition may go to: those go to
/// `GENERAL`, which keeps the texels).
struct ImageReadbackEnd {
    barriers: Vec<vk::ImageMemoryBarrier<'static>>,
    /// Subresources whose record changes: their layout, and their owner
    /// when the readback releases them back to the destination family.
    retracked: Vec<(ImageSubresources, vk::ImageLayout, Option<u32>)>,
    /// The engine's acquires of what the readback releases back (the same
    /// barriers, recorded on the destination family).
    acquires: Vec<vk::ImageMemoryBarrier<'static>>,
}

/// One piece of a streamed readback, waiting to be copied out.
struct Piece {
    value: u64,
    ring_offset: u64,
    /// Where the piece's bytes go in the caller's slice, and how: a plain
    /// copy of `len` bytes, or the rows of an image copy.
    out_offset: u64,
    layout: PieceLayout,
    read: Arc<AtomicBool>,
}

#[derive(Clone, Copy)]
enum PieceLayout {
    /// `len` bytes, copied out by `threads` threads: as many as the whole
    /// readback gets, so its small first and last pieces are split too.
    Bytes {
        len: u64,
        threads: usize,
    },
    Rows(crate::plan::PlannedCopy),
}

impl StagingBelt {
    /// Gives back the ring space of every completed batch up to the oldest
    /// one that holds unread readback bytes.
    pub(super) fn release_ring(&mut self) {
        while self
            .pins
            .front()
            .is_some_and(|(_, read)| read.load(Ordering::Acquire))
        {
            self.pins.pop_front();
        }
        let limit = match self.pins.front() {
            Some(&(value, _)) => self.completed.min(value - 1),
            None => self.completed,
        };
        if self.ring.release_until(limit) > 0 {
            self.last_reserve = None;
        }
    }

    /// Records a copy of `len` bytes of `src` at `src_offset` into the ring,
    /// after every earlier write to it on the belt's queue (and, when the
    /// belt's family is not the destination family and `src` is
    /// `EXCLUSIVE`, an acquire of it from the destination family), and pins
    /// the ring space.
    fn record_buffer_readback(
        &mut self,
        src: &Buffer,
        src_offset: u64,
        len: u64,
        ring_offset: u64,
    ) -> (u64, Arc<AtomicBool>) {
        self.record_pending_copy();
        let acquire = self.needs_release(&src.desc().sharing);
        let (src_family, dst_family) = if acquire {
            (self.destination_family, self.queue.family)
        } else {
            (vk::QUEUE_FAMILY_IGNORED, vk::QUEUE_FAMILY_IGNORED)
        };
        let before = vk::BufferMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
            .dst_access_mask(vk::AccessFlags::TRANSFER_READ)
            .src_queue_family_index(src_family)
            .dst_queue_family_index(dst_family)
            .buffer(src.handle())
            .offset(src_offset)
            .size(len);
        let ring = self.ring_buffer.as_ref().expect("ring lives").handle();
        let batch = self.open.as_mut().expect("reserve opened a batch");
        // SAFETY: the batch's command buffer is recording; both buffers are
        // alive; the ring range is reserved for this batch; the source range
        // was checked against the buffer's size.
        unsafe {
            self.device.cmd_pipeline_barrier(
                batch.cmd,
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::TRANSFER,
                vk::DependencyFlags::empty(),
                &[],
                &[before],
                &[],
            );
            self.device.cmd_copy_buffer(
                batch.cmd,
                src.handle(),
                ring,
                &[vk::BufferCopy {
                    src_offset,
                    dst_offset: ring_offset,
                    size: len,
                }],
            );
        }
        self.readback_recorded(ring_offset, len)
    }

    /// After a copy into the ring at `ring_offset` (`len` bytes) in the open
    /// batch: makes it visible to the host, counts it, and pins the ring
    /// space until the host has read it. The batch's value and the pin.
    fn readback_recorded(&mut self, ring_offset: u64, len: u64) -> (u64, Arc<AtomicBool>) {
        let ring = self.ring_buffer.as_ref().expect("ring lives").handle();
        let after = vk::BufferMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)
            .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .buffer(ring)
            .offset(ring_offset)
            .size(len);
        let batch = self.open.as_mut().expect("reserve opened a batch");
        // SAFETY: the batch's command buffer is recording; the ring is alive.
        unsafe {
            self.device.cmd_pipeline_barrier(
                batch.cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &[],
                &[after],
                &[],
            );
        }
        batch.has_work = true;
        batch.bytes += len;
        self.stats.copy_commands += 1;
        self.stats.bytes_read_back += len;
        let read = Arc::new(AtomicBool::new(false));
        self.pins.push_back((batch.value, read.clone()));
        (batch.value, read)
    }

    fn check_readable_buffer(
        &self,
        src: &Buffer,
        offset: u64,
        len: u64,
    ) -> Result<(), StagingError> {
        self.check_usable()?;
        self.check_owner(src.owner(), src.desc().name.as_deref())?;
        if len == 0 {
            return Err(StagingError::EmptyData);
        }
        if !src
            .desc()
            .usage
            .contains(vk::BufferUsageFlags::TRANSFER_SRC)
        {
            return Err(StagingError::MissingTransferSrc {
                name: src.desc().name.clone(),
                usage: format!("{:?}", src.desc().usage),
            });
        }
        let size = src.requested_size();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(StagingError::OutOfRange { offset, len, size });
        }
        Ok(())
    }

    /// Starts a readback of `len` bytes of `src` at `offset` (at most
    /// [`StagingBeltConfig::chunk_size`]; [`Self::read_buffer`] streams any
    /// length): the GPU copies them into the ring in the open batch, after
    /// every earlier write to `src` on the belt's queue. Submit with
    /// [`Self::flush`] (or let [`Self::read_download`] do it), then read the
    /// bytes with [`Self::read_download`].
    ///
    /// Writes to `src` on another queue must be finished before the batch
    /// runs ([`Self::wait_before_next_batch`]). When the belt's family is not
    /// the destination family and `src` is `EXCLUSIVE`, the engine first
    /// releases it to the belt's family with the barrier from
    /// [`Self::readback_release`].
    #[doc(alias = "vkCmdCopyBuffer")]
    pub fn download_buffer(
        &mut self,
        src: &Buffer,
        offset: u64,
        len: u64,
    ) -> Result<Download, StagingError> {
        self.check_readable_buffer(src, offset, len)?;
        if len > self.desc.chunk_size {
            return Err(StagingError::DownloadTooLarge {
                len,
                max: self.desc.chunk_size,
            });
        }
        let (span, align) = self.readback_span(len, 16);
        let ring_offset = self.reserve(span, align)?;
        let pin = self.record_buffer_readback(src, offset, len, ring_offset);
        Ok(self.download(pin, ring_offset, len, Vec::new()))
    }

    /// Starts a readback of mip levels and array layers `subresources` of
    /// `image` (their data at most [`StagingBeltConfig::chunk_size`] in
    /// staging; [`Self::read_image`] streams any size): in the open batch
    /// the subresources go from the layout [`Image::layouts`] records to
    /// `TRANSFER_SRC_OPTIMAL`, are copied into the ring, and go back, after
    /// every earlier write on the belt's queue. Submit with [`Self::flush`]
    /// (or let [`Self::read_download`] do it), then read the bytes, laid
    /// out as uploads take them ([`crate::plan`]; length
    /// [`crate::plan::expected_subresources_data_size`]), with
    /// [`Self::read_download`]. Until the ticket completes the belt's queue
    /// uses the image.
    ///
    /// Refused like [`Self::read_image`]: an image without `TRANSFER_SRC`,
    /// subresources out of range, never written, or owned by another family
    /// (hand it over with [`Self::release_image_to_belt`]; the download's
    /// ticket then also gives the acquires that return it, through
    /// [`Self::take_acquire_barriers`]).
    #[doc(alias = "vkCmdCopyImageToBuffer")]
    pub fn download_image(
        &mut self,
        image: &Image,
        subresources: ImageSubresources,
    ) -> Result<Download, StagingError> {
        let chunk = self.desc.chunk_size;
        let ImageReadback {
            plan,
            len,
            acquire,
            to_src,
            back,
        } = self.prepare_image_readback(image, subresources, None, chunk)?;
        // One reservation for every copy, each at an aligned offset.
        let align = plan.staging_alignment;
        let mut image_copies = Vec::with_capacity(plan.copies.len());
        let mut total = 0u64;
        for copy in &plan.copies {
            let at = total.next_multiple_of(align);
            image_copies.push((at, *copy));
            total = at + copy.staging_size;
        }
        if total > chunk {
            return Err(StagingError::DownloadTooLarge {
                len: total,
                max: chunk,
            });
        }
        let (span, span_align) = self.readback_span(total, align);
        let ring_offset = self.reserve(span, span_align)?;
        // The reservation left the batch open, so recording cannot fail
        // here; the transitions back land in the same batch, before the
        // ring range is pinned.
        self.begin_image_readback(&acquire, &to_src)?;
        for (at, copy) in &image_copies {
            self.record_image_copy(image, copy, ring_offset + at);
        }
        self.end_image_readback(image, &back)?;
        let pin = self.readback_recorded(ring_offset, total);
        Ok(self.download(pin, ring_offset, len, image_copies))
    }

    /// The [`Download`] of a readback recorded at `ring_offset` and pinned
    /// as `(batch value, read flag)`.
    fn download(
        &self,
        (value, read): (u64, Arc<AtomicBool>),
        ring_offset: u64,
        len: u64,
        image_copies: Vec<(u64, crate::plan::PlannedCopy)>,
    ) -> Download {
        Download {
            ticket: Ticket {
                belt: self.id,
                value,
            },
            ring_offset,
            len,
            image_copies,
            read,
        }
    }

    /// The release barrier an engine records on its own queue (the
    /// destination family) before a readback of `len` bytes of `src` at
    /// `offset` on a belt whose family differs, for an `EXCLUSIVE` buffer:
    /// it hands the range to the belt's family, which the readback acquires.
    /// `None` when no transfer is needed. Record it with the engine's source
    /// stage and access, and make the belt's batch wait for that submission
    /// ([`Self::wait_before_next_batch`]).
    pub fn readback_release(
        &self,
        src: &Buffer,
        offset: u64,
        len: u64,
    ) -> Option<vk::BufferMemoryBarrier<'static>> {
        self.needs_release(&src.desc().sharing).then(|| {
            vk::BufferMemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                .dst_access_mask(vk::AccessFlags::empty())
                .src_queue_family_index(self.destination_family)
                .dst_queue_family_index(self.queue.family)
                .buffer(src.handle())
                .offset(offset)
                .size(len)
        })
    }

    /// Copies a download's bytes into `out` (exactly [`Download::len`]
    /// bytes; an image's laid out as uploads take them, rows tightly
    /// packed), submitting its batch and waiting for it first if needed.
    /// The bytes stay in the ring until the download is dropped: a call
    /// refused (a wrong `out` length) or timed out can be made again, and
    /// dropping the download gives its ring space back.
    pub fn read_download(
        &mut self,
        download: &Download,
        out: &mut [u8],
    ) -> Result<(), StagingError> {
        self.check_ticket(download.ticket)?;
        if out.len() as u64 != download.len {
            return Err(StagingError::OutOfRange {
                offset: 0,
                len: download.len,
                size: out.len() as u64,
            });
        }
        self.wait(download.ticket)?;
        if download.image_copies.is_empty() {
            let threads = self.copy_threads_for(download.len);
            self.copy_out(download.ring_offset, out, download.len, threads, None)?;
        } else {
            for (at, copy) in &download.image_copies {
                self.copy_rows_out(download.ring_offset + at, copy, out)?;
            }
        }
        Ok(())
    }

    /// Copies `len` bytes of the ring at `ring_offset` into `out`, after
    /// invalidating them on non-coherent memory; meanwhile, on another
    /// thread, submits `closed` if there is one (it reaches the queue
    /// whatever happens).
    fn copy_out(
        &mut self,
        ring_offset: u64,
        out: &mut [u8],
        len: u64,
        threads: usize,
        closed: Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        if !self.ring_coherent {
            let ring = self.ring_buffer.as_ref().expect("ring lives");
            let invalidated = self
                .resources
                .allocator()
                .invalidate(ring.allocation(), ring_offset, len)
                .map_err(StagingError::Flush);
            if let Err(e) = invalidated {
                return match closed {
                    Some(b) => self.queue_submit(b).and(Err(e)),
                    None => Err(e),
                };
            }
        }
        let start = Instant::now();
        debug_assert!(ring_offset + len <= self.desc.ring_size);
        // SAFETY: the range is inside the ring's mapping and pinned for this
        // readback; the GPU finished writing it (the caller waited for its
        // batch) and nothing writes it until it is released. The submit on
        // the other side of the join reads no ring memory.
        let src: &[u8] = unsafe {
            std::slice::from_raw_parts(self.ring_ptr.0.add(ring_offset as usize), len as usize)
        };
        let submitted = match closed {
            None => {
                super::ring_space::parallel_copy(out, src, threads, false);
                Ok(())
            }
            Some(batch) => {
                rayon::join(
                    || self.queue_submit(batch),
                    || super::ring_space::parallel_copy(out, src, threads, false),
                )
                .0
            }
        };
        self.stats.copy_time += start.elapsed();
        submitted
    }

    /// Reads `out.len()` bytes of `src` at `offset` back to the host,
    /// streaming through the ring: the GPU copies the next pieces while the
    /// copy threads copy an older one out. Returns when every byte is in
    /// `out`. Same ordering and ownership rules as
    /// [`Self::download_buffer`].
    pub fn read_buffer(
        &mut self,
        src: &Buffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), StagingError> {
        let len = out.len() as u64;
        self.check_readable_buffer(src, offset, len)?;
        let chunk = self.readback_chunk();
        let depth = self.readback_depth();
        let threads = self.copy_threads_for(len);
        let mut pending = VecDeque::new();
        let mut done = 0u64;
        let result = (|| {
            while done < len {
                // Small first pieces let the host start copying out soon;
                // small last ones leave little to copy once the GPU is done.
                let piece = if len > chunk {
                    super::ring_space::ramp_piece(len, done, chunk)
                } else {
                    len
                };
                let ring_offset = self.reserve_for_readback(piece, 16, &mut pending, out)?;
                let (value, read) =
                    self.record_buffer_readback(src, offset + done, piece, ring_offset);
                pending.push_back(Piece {
                    value,
                    ring_offset,
                    out_offset: done,
                    layout: PieceLayout::Bytes {
                        len: piece,
                        threads,
                    },
                    read,
                });
                done += piece;
                // Copy out the oldest piece only while `depth` newer ones
                // are queued behind it, so the GPU has the next copy when it
                // finishes one; this piece's submit runs beside that copy.
                if pending.len() > depth && self.desc.overlap_submit {
                    let closed = self.close_open()?;
                    self.drain_piece(&mut pending, out, closed)?;
                } else {
                    self.submit_open()?;
                    if pending.len() > depth {
                        self.drain_piece(&mut pending, out, None)?;
                    }
                }
            }
            while !pending.is_empty() {
                self.drain_piece(&mut pending, out, None)?;
            }
            Ok(())
        })();
        // Pieces not copied out (after an error) give their space back.
        for p in pending {
            p.read.store(true, Ordering::Release);
        }
        self.release_ring();
        result
    }

    /// The largest piece of a streamed readback: at most a quarter of the
    /// ring.
    fn readback_chunk(&self) -> u64 {
        self.desc.chunk_size.min(self.desc.ring_size / 4).max(4096)
    }

    /// Pieces of a streamed readback queued on the GPU while the host copies
    /// out an older one: the ring's pieces less two (the one being copied
    /// out, and room for the batch the readback opened among other
    /// uploads), at least one.
    fn readback_depth(&self) -> usize {
        let pieces = self.desc.ring_size / self.readback_chunk();
        (pieces.saturating_sub(2) as usize).max(1)
    }

    /// Ring space for the next piece of a streamed readback: without
    /// waiting when there is some, else after copying out the pending
    /// pieces, else by waiting for older batches.
    /// The ring span and alignment a readback of `len` bytes at `align`
    /// reserves. On non-coherent ring memory a readback takes whole
    /// `nonCoherentAtomSize` atoms: invalidating its range (which rounds out
    /// to atoms) then never discards host writes of a neighbouring upload
    /// that its batch has not flushed yet. The ring's own offset in its
    /// memory is atom-aligned (allocations are aligned to at least the
    /// atom).
    fn readback_span(&self, len: u64, align: u64) -> (u64, u64) {
        if self.ring_coherent {
            return (len, align);
        }
        let atom = self
            .resources
            .allocator()
            .memory_properties()
            .non_coherent_atom_size;
        atom_span(len, align, atom)
    }

    fn reserve_for_readback(
        &mut self,
        len: u64,
        align: u64,
        pending: &mut VecDeque<Piece>,
        out: &mut [u8],
    ) -> Result<u64, StagingError> {
        let (len, align) = self.readback_span(len, align);
        loop {
            if let Some(offset) = self.try_reserve(len, align)? {
                return Ok(offset);
            }
            if pending.is_empty() {
                return self.reserve(len, align);
            }
            self.submit_open()?;
            self.drain_piece(pending, out, None)?;
        }
    }

    /// Waits for the oldest pending piece, copies it out and unpins it;
    /// `closed` (a batch newer than every pending piece) is submitted beside
    /// the copy, and reaches the queue whatever happens.
    fn drain_piece(
        &mut self,
        pending: &mut VecDeque<Piece>,
        out: &mut [u8],
        closed: Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let submit = |belt: &mut Self, closed: Option<ClosedBatch>| match closed {
            Some(b) => belt.queue_submit(b),
            None => Ok(()),
        };
        let Some(p) = pending.pop_front() else {
            return submit(self, closed);
        };
        // The piece's batch is older than `closed` and already submitted.
        // While the GPU is still on it, `closed` goes to the queue first, so
        // the GPU has it when it finishes; the join is for the usual case,
        // a piece already complete.
        let mut closed = closed;
        if closed.is_some() && p.value > self.completed {
            let completed = self.poll_completed().map_err(|e| self.fail(e));
            if !matches!(completed, Ok(v) if v >= p.value) {
                if let Err(e) = submit(self, closed.take()) {
                    pending.push_front(p);
                    return Err(e);
                }
            }
        }
        let done = self.wait_value(p.value);
        if let Err(e) = done {
            pending.push_front(p);
            return submit(self, closed).and(Err(e));
        }
        let copied = match p.layout {
            PieceLayout::Bytes { len, threads } => {
                let start = p.out_offset as usize;
                let out = &mut out[start..start + len as usize];
                self.copy_out(p.ring_offset, out, len, threads, closed)
            }
            PieceLayout::Rows(copy) => {
                submit(self, closed).and_then(|()| self.copy_rows_out(p.ring_offset, &copy, out))
            }
        };
        p.read.store(true, Ordering::Release);
        self.release_ring();
        copied
    }

    /// Copies an image piece's rows from the ring (staging pitches) into
    /// `out` (the tightly packed layout the planner describes).
    fn copy_rows_out(
        &mut self,
        ring_offset: u64,
        copy: &crate::plan::PlannedCopy,
        out: &mut [u8],
    ) -> Result<(), StagingError> {
        if !self.ring_coherent {
            let ring = self.ring_buffer.as_ref().expect("ring lives");
            self.resources
                .allocator()
                .invalidate(ring.allocation(), ring_offset, copy.staging_size)
                .map_err(StagingError::Flush)?;
        }
        let staging: &[u8] = self.ring_slice(ring_offset, copy.staging_size);
        copy.read_into(staging, out);
        Ok(())
    }

    /// Reads mip levels and array layers `subresources` of `image` back to
    /// the host into `out`, laid out as uploads take them
    /// ([`crate::plan`]: level-major, tightly packed; see
    /// [`crate::plan::expected_subresources_data_size`]). The subresources
    /// are moved from the layout [`Image::layouts`] records to
    /// `TRANSFER_SRC_OPTIMAL` for the copies and back afterwards, after
    /// every earlier write on the belt's queue (`PREINITIALIZED` ones to
    /// `GENERAL`, which the record then says), also when the read fails
    /// part way. Subresources never written (`UNDEFINED`) are refused.
    ///
    /// On a belt whose family is not the destination family, an `EXCLUSIVE`
    /// image that family owns is refused
    /// ([`StagingError::OwnedByAnotherFamily`]) until the engine hands it
    /// over with [`Self::release_image_to_belt`]; the read then acquires it
    /// and releases it back, and the engine takes the matching acquires from
    /// [`Self::take_acquire_barriers`] (with [`Self::flush`]'s ticket).
    #[doc(alias = "vkCmdCopyImageToBuffer")]
    pub fn read_image(
        &mut self,
        image: &Image,
        subresources: ImageSubresources,
        out: &mut [u8],
    ) -> Result<(), StagingError> {
        let chunk = self.readback_chunk();
        let ImageReadback {
            plan,
            acquire,
            to_src,
            back,
            ..
        } = self.prepare_image_readback(image, subresources, Some(out.len() as u64), chunk)?;
        let depth = self.readback_depth();
        let mut pending = VecDeque::new();
        // Whether the image is in `TRANSFER_SRC_OPTIMAL` on the queue with no
        // transition back recorded yet.
        let mut in_transfer_src = false;
        let result = (|| {
            self.begin_image_readback(&acquire, &to_src)?;
            in_transfer_src = true;
            for copy in &plan.copies {
                let ring_offset = self.reserve_for_readback(
                    copy.staging_size,
                    plan.staging_alignment,
                    &mut pending,
                    out,
                )?;
                let (value, read) = self.record_image_readback(image, copy, ring_offset);
                pending.push_back(Piece {
                    value,
                    ring_offset,
                    out_offset: copy.src_offset,
                    layout: PieceLayout::Rows(*copy),
                    read,
                });
                if self
                    .open
                    .as_ref()
                    .is_some_and(|b| b.bytes >= self.readback_chunk())
                {
                    self.submit_open()?;
                    if pending.len() > depth {
                        self.drain_piece(&mut pending, out, None)?;
                    }
                }
            }
            self.end_image_readback(image, &back)?;
            in_transfer_src = false;
            // The transitions back run in the last batch: wait for it too,
            // so the image is idle when this returns.
            let last = self.flush()?;
            while !pending.is_empty() {
                self.drain_piece(&mut pending, out, None)?;
            }
            self.wait(last)
        })();
        if in_transfer_src {
            // Failed between the transitions: the copies recorded so far
            // still run, so the transitions back follow them on the queue
            // (in the open batch) and the tracked layouts stay true. A belt
            // that has failed for good records nothing more; its device is
            // unusable anyway.
            let _ = self.end_image_readback(image, &back);
        }
        for p in pending {
            p.read.store(true, Ordering::Release);
        }
        self.release_ring();
        result
    }

    /// What an image readback of `subresources` records, after the checks
    /// [`Self::read_image`] documents: copies in pieces of at most
    /// `max_piece` bytes of staging, for `len` bytes of data (`None`: the
    /// subresources' size). Submits the open batch first when it
    /// holds uploads to the image, so the tracked layouts hold.
    fn prepare_image_readback(
        &mut self,
        image: &Image,
        subresources: ImageSubresources,
        len: Option<u64>,
        max_piece: u64,
    ) -> Result<ImageReadback, StagingError> {
        self.check_image(image, vk::ImageUsageFlags::TRANSFER_SRC)?;
        let desc = image.desc();
        let range = super::image::resolve_subresources(desc, subresources)?;
        // Uploads still pending in the open batch reach their final layouts
        // when it ends: submit it so the tracked layouts hold.
        if self
            .open
            .as_ref()
            .is_some_and(|b| b.images.contains_key(&image.handle()))
        {
            self.submit_open()?;
        }
        let tracked = image.layouts();
        for level in range.levels() {
            for layer in range.layers() {
                let state = tracked.state(level, layer);
                if state.layout == vk::ImageLayout::UNDEFINED {
                    return Err(StagingError::NothingToRead {
                        name: desc.name.clone(),
                        level,
                        layer,
                    });
                }
                if state.owner_family != vk::QUEUE_FAMILY_IGNORED
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
        let layout = ImageLayout {
            format: desc.format,
            image_type: desc.kind.image_type(),
            extent: desc.extent,
            mip_levels: desc.mip_levels,
            array_layers: desc.array_layers,
            aspect: None,
        };
        let len = match len {
            Some(len) => len,
            None => crate::plan::expected_subresources_data_size(
                &layout,
                range.levels(),
                range.layers(),
            )?,
        };
        let plan = plan_subresources_upload(
            &layout,
            range.levels(),
            range.layers(),
            len,
            &self.limits,
            max_piece,
        )?;
        // Subresources the engine handed to the belt's family
        // ([`Self::release_image_to_belt`]) are acquired here and released
        // back at the end.
        let transfer = self.needs_release(&desc.sharing);
        let boxes = group_boxes(
            range.base_mip_level + range.level_count,
            desc.array_layers,
            |l, y| {
                (range.levels().contains(&l) && range.layers().contains(&y)).then(|| {
                    let state = tracked.state(l, y);
                    (
                        state.layout,
                        transfer && state.owner_family == self.queue.family,
                    )
                })
            },
        );
        let (belt_family, engine_family) = (self.queue.family, self.destination_family);
        let aspect = desc.aspect();
        let back_to = |layout: vk::ImageLayout| match layout {
            vk::ImageLayout::PREINITIALIZED => vk::ImageLayout::GENERAL,
            other => other,
        };
        let barrier = |b: &ResolvedSubresources, old, new| {
            vk::ImageMemoryBarrier::default()
                .old_layout(old)
                .new_layout(new)
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(image.handle())
                .subresource_range(b.to_vk(aspect))
        };
        let to_src = boxes
            .iter()
            .map(|(b, (layout, _))| {
                barrier(b, *layout, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
                    .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                    .dst_access_mask(vk::AccessFlags::TRANSFER_READ)
            })
            .collect();
        // Handed-over subresources ([`Self::release_image_to_belt`]) are
        // acquired one by one with the release's layouts (so that the ranges
        // match whatever ranges were handed over), before the transitions;
        // the way back releases them one by one with the transition, and the
        // engine acquires them with the same barriers.
        let mut acquire = Vec::new();
        let mut back = Vec::new();
        let mut acquires = Vec::new();
        for (b, (layout, handed_over)) in &boxes {
            let to = back_to(*layout);
            if !*handed_over {
                back.push(barrier(b, vk::ImageLayout::TRANSFER_SRC_OPTIMAL, to));
                continue;
            }
            for one in single_subresources(b) {
                acquire.push(
                    barrier(&one, *layout, *layout)
                        .dst_access_mask(vk::AccessFlags::TRANSFER_READ)
                        .src_queue_family_index(engine_family)
                        .dst_queue_family_index(belt_family),
                );
                let release = barrier(&one, vk::ImageLayout::TRANSFER_SRC_OPTIMAL, to)
                    .src_queue_family_index(belt_family)
                    .dst_queue_family_index(engine_family);
                back.push(release);
                acquires.push(release);
            }
        }
        let retracked = boxes
            .iter()
            .filter(|(_, (layout, handed_over))| *handed_over || back_to(*layout) != *layout)
            .map(|(b, (layout, handed_over))| {
                (
                    subresources_of(b),
                    back_to(*layout),
                    handed_over.then_some(engine_family),
                )
            })
            .collect();
        Ok(ImageReadback {
            plan,
            len,
            acquire,
            to_src,
            back: ImageReadbackEnd {
                barriers: back,
                retracked,
                acquires,
            },
        })
    }

    /// Hands subresources of an `EXCLUSIVE` image that the engine's queue
    /// family owns (an upload released them there, or the engine used the
    /// image) to the belt's family, for a readback or a partial update
    /// through the belt. Returns the release barriers, one per subresource,
    /// that the engine records on its own queue (the destination family)
    /// after its last use of them (and after the acquires of earlier uploads
    /// of them), with its own source stage and access, in a submission the
    /// belt's next batch waits for ([`Self::wait_before_next_batch`], or a
    /// host wait before the belt submits). The layouts stay as
    /// [`Image::layouts`] records them; the record names the belt's family
    /// as owner from now on.
    ///
    /// The belt's next readback or update of these subresources acquires
    /// them and, at the end of its batch, releases them back to the
    /// destination family: the engine takes the matching acquires from
    /// [`Self::take_acquire_barriers`], as after an upload. Hand over only
    /// what the belt will read or update next: until then the engine may not
    /// use it ([`Self::return_image_to_engine`] gives it back unused).
    ///
    /// Uploads of the image still in the open batch are submitted first
    /// (their release comes before the engine's). Nothing is released where
    /// no transfer is needed: the belt copies on the destination family, the
    /// image is `CONCURRENT`, a subresource is already handed over, or it
    /// is `PREINITIALIZED` (written by the host, used by no queue). Refused
    /// for subresources out of range or never written, an image of another
    /// resource manager, and subresources a third family owns.
    pub fn release_image_to_belt(
        &mut self,
        image: &Image,
        subresources: ImageSubresources,
    ) -> Result<Vec<vk::ImageMemoryBarrier<'static>>, StagingError> {
        self.check_usable()?;
        let desc = image.desc();
        self.check_owner(image.owner(), desc.name.as_deref())?;
        let range = super::image::resolve_subresources(desc, subresources)?;
        let tracked = image.layouts();
        for level in range.levels() {
            for layer in range.layers() {
                if tracked.layout(level, layer) == vk::ImageLayout::UNDEFINED {
                    return Err(StagingError::NothingToRead {
                        name: desc.name.clone(),
                        level,
                        layer,
                    });
                }
            }
        }
        if !self.needs_release(&desc.sharing) {
            return Ok(Vec::new());
        }
        if self
            .open
            .as_ref()
            .is_some_and(|b| b.images.contains_key(&image.handle()))
        {
            self.submit_open()?;
        }
        let (belt_family, engine_family) = (self.queue.family, self.destination_family);
        let mut handed = Vec::new();
        for level in range.levels() {
            for layer in range.layers() {
                let state = tracked.state(level, layer);
                if state.owner_family == belt_family
                    || state.layout == vk::ImageLayout::PREINITIALIZED
                {
                    continue;
                }
                if state.owner_family != vk::QUEUE_FAMILY_IGNORED
                    && state.owner_family != engine_family
                {
                    return Err(StagingError::OwnedByAnotherFamily {
                        name: desc.name.clone(),
                        level,
                        layer,
                        family: state.owner_family,
                    });
                }
                handed.push((level, layer, state.layout));
            }
        }
        let aspect = desc.aspect();
        let barriers = handed
            .iter()
            .map(|&(level, layer, layout)| {
                vk::ImageMemoryBarrier::default()
                    .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                    .dst_access_mask(vk::AccessFlags::empty())
                    .old_layout(layout)
                    .new_layout(layout)
                    .src_queue_family_index(engine_family)
                    .dst_queue_family_index(belt_family)
                    .image(image.handle())
                    .subresource_range(one_subresource(level, layer).to_vk(aspect))
            })
            .collect();
        for &(level, layer, layout) in &handed {
            tracked.set_state(
                subresources_of(&one_subresource(level, layer)),
                mem_resources::SubresourceState {
                    layout,
                    owner_family: belt_family,
                },
            );
        }
        Ok(barriers)
    }

    /// Gives subresources handed over with [`Self::release_image_to_belt`]
    /// back to the engine's family without reading or updating them (the
    /// engine changed its mind, or a readback was refused before it
    /// started): the open batch acquires them and releases them back, with
    /// their layouts, and the engine takes the matching acquires from
    /// [`Self::take_acquire_barriers`] (with [`Self::flush`]'s ticket).
    /// Subresources not handed over are left as they are.
    pub fn return_image_to_engine(
        &mut self,
        image: &Image,
        subresources: ImageSubresources,
    ) -> Result<(), StagingError> {
        self.check_usable()?;
        let desc = image.desc();
        self.check_owner(image.owner(), desc.name.as_deref())?;
        let range = super::image::resolve_subresources(desc, subresources)?;
        if !self.needs_release(&desc.sharing) {
            return Ok(());
        }
        let (belt_family, engine_family) = (self.queue.family, self.destination_family);
        let tracked = image.layouts();
        let aspect = desc.aspect();
        let mut acquire = Vec::new();
        let mut release = Vec::new();
        for level in range.levels() {
            for layer in range.layers() {
                let state = tracked.state(level, layer);
                if state.owner_family != belt_family {
                    continue;
                }
                let barrier = vk::ImageMemoryBarrier::default()
                    .old_layout(state.layout)
                    .new_layout(state.layout)
                    .image(image.handle())
                    .subresource_range(one_subresource(level, layer).to_vk(aspect));
                acquire.push(
                    barrier
                        .src_queue_family_index(engine_family)
                        .dst_queue_family_index(belt_family),
                );
                release.push(
                    barrier
                        .src_queue_family_index(belt_family)
                        .dst_queue_family_index(engine_family),
                );
            }
        }
        if acquire.is_empty() {
            return Ok(());
        }
        let all = vk::PipelineStageFlags::ALL_COMMANDS;
        self.record_image_barriers(all, all, &acquire)?;
        self.record_image_barriers(all, all, &release)?;
        for b in &release {
            let r = b.subresource_range;
            tracked.set_state(
                subresources_of(&one_subresource(r.base_mip_level, r.base_array_layer)),
                mem_resources::SubresourceState {
                    layout: b.old_layout,
                    owner_family: engine_family,
                },
            );
        }
        let value = self
            .open
            .as_ref()
            .expect("the barriers opened a batch")
            .value;
        self.push_acquire(value, |a| a.images.extend(release));
        Ok(())
    }

    /// Records what starts an image readback: the acquires of handed-over
    /// subresources, then the transitions to `TRANSFER_SRC_OPTIMAL`.
    fn begin_image_readback(
        &mut self,
        acquire: &[vk::ImageMemoryBarrier<'static>],
        to_src: &[vk::ImageMemoryBarrier<'static>],
    ) -> Result<(), StagingError> {
        if !acquire.is_empty() {
            self.record_image_barriers(
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::ALL_COMMANDS,
                acquire,
            )?;
        }
        self.record_image_barriers(
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::PipelineStageFlags::TRANSFER,
            to_src,
        )
    }

    /// Records the transitions out of `TRANSFER_SRC_OPTIMAL` that end an
    /// image readback and updates the tracked layouts they change.
    fn end_image_readback(
        &mut self,
        image: &Image,
        end: &ImageReadbackEnd,
    ) -> Result<(), StagingError> {
        self.record_image_barriers(
            vk::PipelineStageFlags::TRANSFER,
            vk::PipelineStageFlags::ALL_COMMANDS,
            &end.barriers,
        )?;
        for &(subresources, layout, owner) in &end.retracked {
            match owner {
                Some(owner_family) => image.layouts().set_state(
                    subresources,
                    mem_resources::SubresourceState {
                        layout,
                        owner_family,
                    },
                ),
                None => image.layouts().set_layout(subresources, layout),
            }
        }
        if !end.acquires.is_empty() {
            let value = self
                .open
                .as_ref()
                .expect("the barriers opened a batch")
                .value;
            let acquires = end.acquires.iter().copied();
            self.push_acquire(value, |a| a.images.extend(acquires));
        }
        Ok(())
    }

    /// Records `barriers` in the open batch (opening one if needed).
    fn record_image_barriers(
        &mut self,
        src: vk::PipelineStageFlags,
        dst: vk::PipelineStageFlags,
        barriers: &[vk::ImageMemoryBarrier<'static>],
    ) -> Result<(), StagingError> {
        self.record_pending_copy();
        let batch = self.open_batch()?;
        batch.has_work = true;
        let cmd = batch.cmd;
        // SAFETY: `cmd` is recording; the image is alive.
        unsafe {
            self.device.cmd_pipeline_barrier(
                cmd,
                src,
                dst,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                barriers,
            )
        };
        Ok(())
    }

    /// Records one planned copy of `image` (in `TRANSFER_SRC_OPTIMAL`) into
    /// the ring at `ring_offset`, made visible to the host and pinned.
    fn record_image_readback(
        &mut self,
        image: &Image,
        copy: &crate::plan::PlannedCopy,
        ring_offset: u64,
    ) -> (u64, Arc<AtomicBool>) {
        self.record_image_copy(image, copy, ring_offset);
        self.readback_recorded(ring_offset, copy.staging_size)
    }

    /// Records one planned copy of `image` (in `TRANSFER_SRC_OPTIMAL`) into
    /// the ring at `ring_offset`, reserved for the open batch.
    fn record_image_copy(
        &mut self,
        image: &Image,
        copy: &crate::plan::PlannedCopy,
        ring_offset: u64,
    ) {
        let ring = self.ring_buffer.as_ref().expect("ring lives").handle();
        let mut region = copy.region;
        region.buffer_offset += ring_offset;
        let batch = self.open.as_mut().expect("reserve opened a batch");
        // SAFETY: recording; the ring range is reserved for this batch; the
        // region was planned inside the image's subresources, which are in
        // TRANSFER_SRC_OPTIMAL (barrier recorded before, on this queue).
        unsafe {
            self.device.cmd_copy_image_to_buffer(
                batch.cmd,
                image.handle(),
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                ring,
                &[region],
            );
        }
    }
}

/// Each (level, layer) of a box as a box of its own: ownership transfers
/// name single subresources, so a release and an acquire made for
/// different ranges still match one to one.
pub(super) fn single_subresources(
    b: &ResolvedSubresources,
) -> impl Iterator<Item = ResolvedSubresources> + '_ {
    b.levels()
        .flat_map(move |level| b.layers().map(move |layer| one_subresource(level, layer)))
}

/// Level `level` of layer `layer` alone.
fn one_subresource(level: u32, layer: u32) -> ResolvedSubresources {
    ResolvedSubresources {
        base_mip_level: level,
        level_count: 1,
        base_array_layer: layer,
        layer_count: 1,
    }
}

/// The [`ImageSubresources`] of a resolved box.
fn subresources_of(b: &ResolvedSubresources) -> ImageSubresources {
    ImageSubresources {
        base_mip_level: b.base_mip_level,
        level_count: b.level_count,
        base_array_layer: b.base_array_layer,
        layer_count: b.layer_count,
    }
}

/// `len` rounded up to whole atoms and `lcm(align, atom)`, for an `atom`
/// that is a power of two (as `nonCoherentAtomSize` is) and `align >= 1`.
fn atom_span(len: u64, align: u64, atom: u64) -> (u64, u64) {
    let atom = atom.max(1);
    let twos = align.max(1).trailing_zeros();
    let align = (align.max(1) >> twos).saturating_mul((1u64 << twos).max(atom));
    (len.next_multiple_of(atom), align)
}

#[cfg(test)]
mod tests {
    use super::atom_span;

    #[test]
    fn readback_spans_take_whole_atoms() {
        // Texel alignments of every format family against common atoms.
        for atom in [1u64, 4, 64, 256] {
            for align in [1u64, 2, 4, 12, 16, 24, 48] {
                for len in [1u64, 63, 64, 65, 1000, 4096] {
                    let (span, a) = atom_span(len, align, atom);
                    assert!(span >= len && span % atom == 0 && span - len < atom);
                    assert!(a % align == 0 && a % atom == 0, "{align} {atom} -> {a}");
                    // The least common multiple, not just a common one.
                    let lcm = (1..=atom * align)
                        .map(|k| k * align)
                        .find(|m| m % atom == 0)
                        .unwrap();
                    assert_eq!(a, lcm);
                }
            }
        }
    }
}
