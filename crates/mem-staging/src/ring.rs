//! The ring's space accounting, apart from any Vulkan object: contiguous
//! reservations in FIFO order, grouped into batches that are released in the
//! order they were closed.
//!
//! ```text
//!  0                tail              head               size
//!  |  free (wrapped) |#### in flight ####|      free        |
//! ```
//! A reservation is contiguous: when the space between `head` and the end is
//! too short, the ring wraps to 0 and the skipped tail end is charged to the
//! batch that wrapped, so releasing batches in order gives back exactly what
//! they took.

#![deny(unsafe_code)]

use std::collections::VecDeque;

/// [`Ring::snapshot`]: where the ring stood before a reservation.
#[derive(Clone, Copy, Debug)]
pub struct RingSnapshot {
    head: u64,
    tail: u64,
    used: u64,
    open_bytes: u64,
}

/// Space accounting of a ring of `size` bytes.
#[derive(Debug, Clone)]
pub struct Ring {
    size: u64,
    head: u64,
    tail: u64,
    used: u64,
    /// Bytes charged to the open (not yet closed) batch.
    open_bytes: u64,
    /// Closed batches: (id, head after the batch, bytes charged).
    closed: VecDeque<(u64, u64, u64)>,
    high_water: u64,
}

impl Ring {
    /// An empty ring of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self {
            size,
            head: 0,
            tail: 0,
            used: 0,
            open_bytes: 0,
            closed: VecDeque::new(),
            high_water: 0,
        }
    }

    /// Bytes reserved and not yet released (padding and wrap waste included).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Highest [`Self::used`] seen.
    pub fn high_water_mark(&self) -> u64 {
        self.high_water
    }

    /// Reserves `len` contiguous bytes at a multiple of `align` (any
    /// nonzero value: an image's staging offsets are multiples of its texel
    /// block, 12 bytes for a 3-byte format) for the open batch; `None` when
    /// they do not fit now.
    pub fn reserve(&mut self, len: u64, align: u64) -> Option<u64> {
        debug_assert!(align > 0);
        if len == 0 || len > self.size {
            return None;
        }
        if self.used == 0 {
            // Empty: restart at 0 for the longest contiguous run.
            self.head = 0;
            self.tail = 0;
        }
        let start = self.head.checked_next_multiple_of(align)?;
        let (offset, new_head) =
            if self.head >= self.tail && !(self.used > 0 && self.head == self.tail) {
                // Free: [head, size) and [0, tail).
                if start.checked_add(len)? <= self.size {
                    (start, start + len)
                } else if len <= self.tail {
                    (0, len)
                } else {
                    return None;
                }
            } else {
                // Wrapped: free is [head, tail).
                if start.checked_add(len)? <= self.tail {
                    (start, start + len)
                } else {
                    return None;
                }
            };
        let charged = if offset == 0 && self.head != 0 {
            (self.size - self.head) + len
        } else {
            new_head - self.head
        };
        self.head = new_head;
        self.used += charged;
        self.open_bytes += charged;
        self.high_water = self.high_water.max(self.used);
        Some(offset)
    }

    /// The state before a reservation, to undo it with [`Self::restore`].
    pub fn snapshot(&self) -> RingSnapshot {
        RingSnapshot {
            head: self.head,
            tail: self.tail,
            used: self.used,
            open_bytes: self.open_bytes,
        }
    }

    /// Undoes the reservations of the open batch made since `snapshot` (no
    /// batch may have been closed or released in between): their space is
    /// free again at once.
    pub fn restore(&mut self, snapshot: RingSnapshot) {
        debug_assert!(snapshot.used <= self.used);
        self.head = snapshot.head;
        self.tail = snapshot.tail;
        self.used = snapshot.used;
        self.open_bytes = snapshot.open_bytes;
    }

    /// Closes the open batch under `id` (e.g. its timeline value). A batch
    /// with no reservation is still recorded (it releases nothing).
    pub fn close_batch(&mut self, id: u64) {
        self.closed.push_back((id, self.head, self.open_bytes));
        self.open_bytes = 0;
    }

    /// Id of the oldest closed batch, if any.
    pub fn oldest_batch(&self) -> Option<u64> {
        self.closed.front().map(|b| b.0)
    }

    /// Releases every closed batch whose id is `<= completed`, oldest first.
    /// Returns how many were released.
    pub fn release_until(&mut self, completed: u64) -> usize {
        let mut n = 0;
        while let Some(&(id, end, bytes)) = self.closed.front() {
            if id > completed {
                break;
            }
            self.closed.pop_front();
            // An empty batch's end mark may predate a reset of the ring to 0
            // (reset happens when nothing is used): it must not move the tail.
            if bytes > 0 {
                self.tail = end;
            }
            self.used -= bytes;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_reservation_is_free_again() {
        let mut r = Ring::new(1000);
        assert_eq!(r.reserve(400, 1), Some(0));
        let snap = r.snapshot();
        assert_eq!(r.reserve(500, 1), Some(400));
        r.restore(snap);
        assert_eq!(r.used(), 400);
        assert_eq!(r.reserve(600, 1), Some(400));
        r.close_batch(1);
        assert_eq!(r.release_until(1), 1);
        assert_eq!(r.used(), 0);
        // Undoing a reservation that wrapped gives back the skipped end too.
        let mut r = Ring::new(1000);
        assert_eq!(r.reserve(700, 1), Some(0));
        r.close_batch(1);
        assert_eq!(r.reserve(200, 1), Some(700));
        r.release_until(1);
        let snap = r.snapshot();
        assert_eq!(r.reserve(500, 1), Some(0));
        r.restore(snap);
        assert_eq!(r.used(), 200);
        assert_eq!(r.reserve(100, 1), Some(900));
    }

    #[test]
    fn reserves_wraps_and_releases_in_order() {
        let mut r = Ring::new(1000);
        assert_eq!(r.reserve(400, 1), Some(0));
        r.close_batch(1);
        assert_eq!(r.reserve(400, 1), Some(400));
        r.close_batch(2);
        // 200 left at the end, too short for 300: must wait for batch 1.
        assert_eq!(r.reserve(300, 1), None);
        assert_eq!(r.release_until(1), 1);
        // Now wraps to 0 (the 200-byte tail end is charged to this batch).
        assert_eq!(r.reserve(300, 1), Some(0));
        assert_eq!(r.used(), 400 + 200 + 300);
        r.close_batch(3);
        assert_eq!(r.reserve(150, 1), None, "only [300, 400) free");
        assert_eq!(r.reserve(100, 1), Some(300));
        r.close_batch(4);
        assert_eq!(r.release_until(4), 3);
        assert_eq!(r.used(), 0);
        assert_eq!(r.high_water_mark(), 1000);
    }

    #[test]
    fn empty_batch_after_reset_does_not_free_live_space() {
        let mut r = Ring::new(1000);
        assert_eq!(r.reserve(50, 1), Some(0));
        r.close_batch(1);
        r.release_until(1);
        r.close_batch(2); // empty, end mark 50
        assert_eq!(r.reserve(900, 1), Some(0)); // ring reset to 0
        r.release_until(2);
        // [0, 900) is live: only [900, 1000) is free.
        assert_eq!(r.reserve(150, 1), None);
        assert_eq!(r.reserve(100, 1), Some(900));
    }

    #[test]
    fn alignment_and_limits() {
        let mut r = Ring::new(1024);
        assert_eq!(r.reserve(0, 4), None);
        assert_eq!(r.reserve(2000, 4), None);
        assert_eq!(r.reserve(3, 4), Some(0));
        assert_eq!(r.reserve(3, 256), Some(256));
        assert_eq!(r.used(), 259);
        r.close_batch(7);
        r.release_until(6);
        assert_eq!(r.used(), 259);
        r.release_until(7);
        assert_eq!(r.used(), 0);
        // Alignments that are not powers of two (a 3-byte texel format's
        // lcm(4, 3) = 12, or 384 with a 128-byte copy alignment).
        assert_eq!(r.reserve(5, 12), Some(0));
        assert_eq!(r.reserve(5, 12), Some(12));
        assert_eq!(r.reserve(100, 384), Some(384));
        assert_eq!(r.reserve(100, 384), Some(768));
        assert_eq!(r.reserve(1, 384), None, "no multiple of 384 left with room");
    }

    #[test]
    fn full_ring_is_not_mistaken_for_empty() {
        let mut r = Ring::new(256);
        assert_eq!(r.reserve(256, 1), Some(0));
        assert_eq!(r.reserve(1, 1), None);
        r.close_batch(1);
        assert_eq!(r.reserve(1, 1), None);
        r.release_until(1);
        assert_eq!(r.reserve(256, 1), Some(0));
    }

    #[test]
    fn random_programs_never_overlap_live_space() {
        // A model check: live reservations (per batch) never overlap, and the
        // accounting returns to zero.
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for size in [64u64, 1000, 4096] {
            let mut r = Ring::new(size);
            let mut live: VecDeque<(u64, Vec<(u64, u64)>)> = VecDeque::new();
            let mut open: Vec<(u64, u64)> = Vec::new();
            let mut id = 0;
            for _ in 0..20_000 {
                let op = next() % 10;
                if op < 6 {
                    let len = 1 + next() % (size / 3);
                    let align = 1 << (next() % 5);
                    if let Some(off) = r.reserve(len, align) {
                        assert_eq!(off % align, 0);
                        assert!(off + len <= size);
                        for (_, ranges) in &live {
                            for &(o, l) in ranges {
                                assert!(off + len <= o || o + l <= off, "overlap");
                            }
                        }
                        for &(o, l) in &open {
                            assert!(off + len <= o || o + l <= off, "overlap in batch");
                        }
                        open.push((off, len));
                    }
                } else if op < 8 {
                    id += 1;
                    r.close_batch(id);
                    live.push_back((id, std::mem::take(&mut open)));
                } else if let Some(&(first, _)) = live.front() {
                    r.release_until(first);
                    live.pop_front();
                }
            }
            id += 1;
            r.close_batch(id);
            r.release_until(id);
            assert_eq!(r.used(), 0);
        }
    }
}
