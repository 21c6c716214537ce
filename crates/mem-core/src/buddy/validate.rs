//! [`BuddyBlock::validate`]: every invariant of the bitmaps, the live map
//! and the byte counter, checked from scratch.

use super::bitmap::{CHUNK_LOG2, ORDER_SLOTS};
use super::BuddyBlock;

impl<T> BuddyBlock<T> {
    /// Checks every invariant; `Err` describes the first one broken.
    ///
    /// Bitmaps: each order has a power of two of chunks within its full size
    /// and summary levels of the common layout; every summary bit, in the
    /// chunks and above them, says whether the word below is non-zero; the
    /// non-empty mask says whether each order has a free block; no bit is set
    /// past the last slot of its order. Free blocks are fully coalesced (no
    /// free block's buddy is free at the same order); free blocks and live
    /// kept ranges tile `[0, size)` exactly, with no gap and no overlap; the
    /// byte counter agrees. O(n log n) in the number of blocks plus a scan of
    /// the bitmaps (`memcmp` against zero for the empty parts).
    pub fn validate(&self) -> Result<(), String> {
        let shift = self.min_log2;
        let units = 1u64 << self.units_log2;
        let mut ranges: Vec<(u64, u64, bool)> = Vec::with_capacity(self.live.len() * 3 + 64);
        let mut free_sum = 0u64;
        let total_upper = self.upper_offsets[self.upper_levels];
        for order in 0..ORDER_SLOTS as u32 {
            let r = order as usize;
            let bits = &self.orders[r];
            if order > self.units_log2 {
                if !bits.chunks.is_empty() || !bits.upper.is_empty() || self.non_empty >> r & 1 != 0
                {
                    return Err(format!("order {r} past the highest order is in use"));
                }
                continue;
            }
            let slot_bits = self.units_log2 - order;
            let full = 1usize << slot_bits.saturating_sub(CHUNK_LOG2);
            let chunks = bits.chunks.len();
            if (chunks != 0 && !chunks.is_power_of_two())
                || chunks > full
                || bits.upper.len() != total_upper
            {
                return Err(format!(
                    "order {r}: {chunks} chunks of at most {full}, {} summary words instead of {total_upper}",
                    bits.upper.len()
                ));
            }
            // Summary levels above the chunks: each level's word i
            // must have bit j set iff the child (word 64 i + j of the level
            // below, or chunk summary 64 i + j) is non-zero; children past
            // the end count as zero.
            for l in 0..self.upper_levels {
                let level = &bits.upper[self.upper_offsets[l]..self.upper_offsets[l + 1]];
                for (i, &word) in level.iter().enumerate() {
                    let mut expect = 0u64;
                    for j in 0..64 {
                        let child = (i << 6) | j;
                        let non_zero = if l == 0 {
                            bits.chunks.get(child).is_some_and(|c| c.summary != 0)
                        } else {
                            let below =
                                &bits.upper[self.upper_offsets[l - 1]..self.upper_offsets[l]];
                            below.get(child).is_some_and(|&w| w != 0)
                        };
                        expect |= u64::from(non_zero) << j;
                    }
                    if word != expect {
                        return Err(format!(
                            "order {r}: summary word {i} of level {} is {word:#x}, its children say {expect:#x}",
                            l + 2
                        ));
                    }
                }
            }
            let has_free = if self.upper_levels == 0 {
                bits.chunks.first().is_some_and(|c| c.summary != 0)
            } else {
                bits.upper[total_upper - 1] != 0
            };
            if (self.non_empty >> r & 1 == 1) != has_free {
                return Err(format!(
                    "non-empty bit of order {r} disagrees with its bitmap"
                ));
            }
            let lowest = bits.chunks.iter().position(|chunk| chunk.summary != 0);
            if has_free && lowest != Some(bits.first) {
                return Err(format!(
                    "order {r}: first chunk {} but the lowest non-empty one is {lowest:?}",
                    bits.first
                ));
            }
            // Chunks: the summary names exactly the non-zero words.
            for (c, chunk) in bits.chunks.iter().enumerate() {
                if chunk.summary == 0 {
                    if chunk.words != [0; 64] {
                        return Err(format!(
                            "order {r}: chunk {c} has free bits but an empty summary"
                        ));
                    }
                    continue;
                }
                for (w, &word) in chunk.words.iter().enumerate() {
                    if (chunk.summary >> w & 1 == 1) != (word != 0) {
                        return Err(format!(
                            "order {r}: summary bit {w} of chunk {c} disagrees with word {word:#x}"
                        ));
                    }
                }
            }
            // Free blocks of this order.
            let slots = 1u64 << slot_bits;
            let len = 1u64 << order;
            for slot in self.free_slots(order) {
                let slot = slot as u64;
                let (byte_offset, byte_len) = ((slot << order) << shift, len << shift);
                if slot >= slots {
                    return Err(format!(
                        "order {r}: bit of slot {slot} set past the {slots} slots"
                    ));
                }
                if order < self.units_log2 && self.is_free(order, (slot ^ 1) as u32) {
                    return Err(format!(
                        "free block ({byte_offset}, {byte_len}) and its buddy are both free"
                    ));
                }
                free_sum += byte_len;
                ranges.push((byte_offset, byte_len, false));
            }
        }
        let mut allocated_sum = 0u64;
        for (&offset, &(kept, _)) in &self.live {
            let (byte_offset, byte_kept) = (u64::from(offset) << shift, u64::from(kept) << shift);
            if kept == 0 || u64::from(kept) > units {
                return Err(format!(
                    "allocation at {byte_offset} keeps {byte_kept} bytes"
                ));
            }
            if offset % kept.next_power_of_two() != 0 {
                return Err(format!(
                    "allocation ({byte_offset}, {byte_kept}) is not naturally aligned"
                ));
            }
            allocated_sum += byte_kept;
            ranges.push((byte_offset, byte_kept, true));
        }
        if free_sum != self.free_bytes() || allocated_sum != self.allocated {
            return Err(format!(
                "counters say {} free, {} allocated; blocks sum to {free_sum} free, {allocated_sum} allocated",
                self.free_bytes(),
                self.allocated
            ));
        }
        ranges.sort_unstable();
        let mut end = 0u64;
        for &(offset, len, is_live) in &ranges {
            if offset != end {
                let what = if offset < end {
                    "overlaps"
                } else {
                    "leaves a gap before"
                };
                let kind = if is_live { "allocation" } else { "free block" };
                return Err(format!(
                    "{kind} ({offset}, {len}) {what} the range ending at {end}"
                ));
            }
            end = offset + len;
        }
        if end != self.size {
            return Err(format!(
                "blocks cover [0, {end}) instead of [0, {})",
                self.size
            ));
        }
        Ok(())
    }
}
