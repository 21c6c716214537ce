//! The free blocks of a [`BuddyBlock`]: one bitmap per order, in chunks of
//! 4096 slots with a summary word each and summary levels above them (see
//! the module docs of [`crate::buddy`], "Free blocks: per-order bitmaps").
//!
//! Invariants (checked by [`BuddyBlock::validate`]): a set bit is a free
//! block of exactly that order; every summary bit says whether the word
//! below it is non-zero; an order's bit in `non_empty` says whether it has
//! a free block, and `first` is then its lowest non-empty chunk.

use super::{BuddyBlock, MAX_UNITS_LOG2};

/// Orders are `0..=units_log2 <= MAX_UNITS_LOG2 < 32`: the per-order table
/// has 32 entries and is indexed with `order & 31`, which needs no bounds
/// check.
pub(super) const ORDER_SLOTS: usize = 32;

/// `log2` of the slots a [`Chunk`] covers: 64 words of 64 bits.
pub(super) const CHUNK_LOG2: u32 = 12;

/// Most summary levels above the chunks: `ceil((MAX_UNITS_LOG2 - 12) / 6)`.
pub(super) const MAX_UPPER: usize = (MAX_UNITS_LOG2 - CHUNK_LOG2).div_ceil(6) as usize;

/// Number of summary levels above the chunks of an order with `2^chunks_log2`
/// chunks: enough that the top level is a single word (none for one chunk).
#[inline(always)]
pub(super) fn upper_count(chunks_log2: u32) -> usize {
    chunks_log2.div_ceil(6) as usize
}

/// 4096 slots of one order's free bitmap: `words` holds one bit per slot
/// (set = that block is free), and bit `w` of `summary` says whether
/// `words[w]` is non-zero. The summary sits next to the words it covers, and
/// `words[w & 63]` needs no bounds check.
#[derive(Clone)]
pub(super) struct Chunk {
    pub(super) summary: u64,
    pub(super) words: [u64; 64],
}

impl Chunk {
    pub(super) const EMPTY: Chunk = Chunk {
        summary: 0,
        words: [0; 64],
    };
}

/// The free bitmap of one order.
#[derive(Clone, Default)]
pub(super) struct OrderBits {
    /// Chunk `c` covers slots `c << 12 .. (c + 1) << 12`. Empty at first and
    /// grown lazily to the highest chunk written (a power of two of chunks, at
    /// most the full size); slots past the end are not free.
    pub(super) chunks: Vec<Chunk>,
    /// Summary levels above the chunks, lowest first, each at its offset in
    /// [`BuddyBlock::upper_offsets`] (the same layout for every order, sized
    /// for order 0): bit `c` of the first level says whether chunk `c`'s
    /// summary is non-zero, bit `i` of each next level whether word `i` of
    /// the level below is non-zero; the top level is one word. Allocated in
    /// full at creation: 5 words for 2^20 units, at most 261.
    pub(super) upper: Vec<u64>,
    /// The lowest non-empty chunk while the order has a free block (else
    /// meaningless), so that taking the lowest block needs no walk down the
    /// summary levels: lowered when a lower chunk turns non-empty, found
    /// again through the summary levels when it turns empty.
    pub(super) first: usize,
}

/// Positions of the set bits of a word, lowest first.
fn set_bits(mut word: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if word == 0 {
            return None;
        }
        let bit = word.trailing_zeros() as usize;
        word &= word - 1;
        Some(bit)
    })
}

impl<T> BuddyBlock<T> {
    /// Slots of the free blocks of `order`, ascending: the set bits of the
    /// chunks with a non-zero summary.
    pub(super) fn free_slots(&self, order: u32) -> impl Iterator<Item = usize> + '_ {
        let bits = &self.orders[order as usize & (ORDER_SLOTS - 1)];
        bits.chunks
            .iter()
            .enumerate()
            .filter(|(_, chunk)| chunk.summary != 0)
            .flat_map(|(c, chunk)| {
                set_bits(chunk.summary).flat_map(move |w| {
                    set_bits(chunk.words[w]).map(move |b| (c << CHUNK_LOG2) | (w << 6) | b)
                })
            })
    }

    /// Whether the block of `order` at `slot` (unit offset `slot << order`) is
    /// free.
    #[inline(always)]
    pub(super) fn is_free(&self, order: u32, slot: u32) -> bool {
        let slot = slot as usize;
        self.orders[order as usize & (ORDER_SLOTS - 1)]
            .chunks
            .get(slot >> CHUNK_LOG2)
            .is_some_and(|chunk| chunk.words[slot >> 6 & 63] >> (slot & 63) & 1 != 0)
    }

    /// Marks the block of `order` at `slot` free, without coalescing; it must
    /// not be free already. Sets the word bit and the chunk summary bit
    /// unconditionally; the levels above only when the chunk summary was zero,
    /// which is rare (a chunk covers 4096 slots).
    #[inline(always)]
    pub(super) fn insert_free(&mut self, order: u32, slot: u32) {
        debug_assert!(
            !self.is_free(order, slot),
            "double free of ({slot}, {order})"
        );
        let slot = slot as usize;
        let c = slot >> CHUNK_LOG2;
        let w = slot >> 6 & 63;
        let bits = &mut self.orders[order as usize & (ORDER_SLOTS - 1)];
        if c >= bits.chunks.len() {
            self.grow(order, c);
        }
        let chunk = &mut self.orders[order as usize & (ORDER_SLOTS - 1)].chunks[c];
        chunk.words[w] |= 1 << (slot & 63);
        let old = chunk.summary;
        chunk.summary = old | 1 << w;
        if old == 0 {
            self.set_upper(order, c);
        }
    }

    /// Chunk `c` of `order` has turned non-empty: sets its bit in the levels
    /// above (unconditionally: bits that are set stay set), the order's
    /// non-empty bit and its first chunk.
    #[inline(never)]
    pub(super) fn set_upper(&mut self, order: u32, mut index: usize) {
        let bits = &mut self.orders[order as usize & (ORDER_SLOTS - 1)];
        bits.first = if self.non_empty >> order & 1 == 0 {
            index
        } else {
            bits.first.min(index)
        };
        for l in 0..self.upper_levels {
            bits.upper[self.upper_offsets[l] + (index >> 6)] |= 1 << (index & 63);
            index >>= 6;
        }
        self.non_empty |= 1 << order;
    }

    /// Takes the block of `order` at `slot` out of the free bitmap if it is
    /// free there.
    #[inline(always)]
    pub(super) fn take_free(&mut self, order: u32, slot: u32) -> bool {
        let slot = slot as usize;
        let bits = &mut self.orders[order as usize & (ORDER_SLOTS - 1)];
        let Some(chunk) = bits.chunks.get_mut(slot >> CHUNK_LOG2) else {
            return false;
        };
        let w = slot >> 6 & 63;
        let bit = 1u64 << (slot & 63);
        if chunk.words[w] & bit == 0 {
            return false;
        }
        chunk.words[w] &= !bit;
        let emptied = u64::from(chunk.words[w] == 0);
        chunk.summary &= !(emptied << w);
        if chunk.summary == 0 {
            self.clear_upper(order, slot >> CHUNK_LOG2);
        }
        true
    }

    /// Takes the lowest free block of `order` out of its bitmap and returns
    /// its slot; `order` must have one.
    #[inline(always)]
    pub(super) fn take_lowest(&mut self, order: u32) -> u32 {
        let bits = &mut self.orders[order as usize & (ORDER_SLOTS - 1)];
        let c = bits.first;
        let chunk = &mut bits.chunks[c];
        let w = chunk.summary.trailing_zeros() as usize & 63;
        let word = chunk.words[w];
        let b = word.trailing_zeros() as usize;
        chunk.words[w] = word & (word - 1);
        let emptied = u64::from(chunk.words[w] == 0);
        chunk.summary &= !(emptied << w);
        if chunk.summary == 0 {
            self.clear_upper(order, c);
        }
        ((c << CHUNK_LOG2) | (w << 6) | b) as u32
    }

    /// Chunk `c` of `order` has turned empty: clears its bit in the levels
    /// above as far as words turn zero, and the order's non-empty bit if the
    /// top word does; if it was the first chunk, finds the next one.
    #[inline(never)]
    pub(super) fn clear_upper(&mut self, order: u32, c: usize) {
        let bits = &mut self.orders[order as usize & (ORDER_SLOTS - 1)];
        let mut index = c;
        let mut emptied = true;
        for l in 0..self.upper_levels {
            let word = &mut bits.upper[self.upper_offsets[l] + (index >> 6)];
            *word &= !(1 << (index & 63));
            if *word != 0 {
                emptied = false;
                break;
            }
            index >>= 6;
        }
        if emptied {
            self.non_empty &= !(1 << order);
        } else if bits.first == c {
            // Walk down from the top word to the lowest non-empty chunk.
            let mut first = 0usize;
            for l in (0..self.upper_levels).rev() {
                first = (first << 6)
                    | bits.upper[self.upper_offsets[l] + first].trailing_zeros() as usize;
            }
            bits.first = first;
        }
    }

    /// Grows the chunks of `order` to hold chunk `c`: to the next power of
    /// two (at most the full size).
    #[cold]
    #[inline(never)]
    pub(super) fn grow(&mut self, order: u32, c: usize) {
        let full = 1usize << (self.units_log2 - order).saturating_sub(CHUNK_LOG2);
        let len = (c + 1).next_power_of_two().min(full);
        let chunks = &mut self.orders[order as usize & (ORDER_SLOTS - 1)].chunks;
        // Exact: the lengths are powers of two already, and a chunk is 520
        // bytes (`Vec` would round a first allocation up to 4 of them).
        chunks.reserve_exact(len - chunks.len());
        chunks.resize(len, Chunk::EMPTY);
    }
}
