//! Power-of-two buddy allocator with tail trimming, on `u64` offsets only.
//!
//! A [`BuddyBlock`] manages a range `[0, 2^K)` with a minimum block of `2^m`
//! bytes, so block orders run from `m` to `K`. It knows no Vulkan type and
//! makes no device call: the pools in this crate put one in front of each
//! `VkDeviceMemory` with [`BlockPlacement::Buddy`](crate::BlockPlacement::Buddy),
//! and [`VirtualBlock::with_placement`](crate::VirtualBlock::with_placement)
//! offers it for ranges that are not device memory.
//!
//! # Allocation
//!
//! A request of `size` bytes with `alignment` keeps `kept = round_up(size,
//! min_block)` bytes and needs a block of order `k`, the smallest with
//! `2^k >= max(kept, alignment)`. Blocks are naturally aligned (a block of
//! order `k` starts at a multiple of `2^k`), so any alignment up to `2^k` is
//! honoured without padding. The allocator finds the smallest non-empty free
//! order `>= k` with one bit scan over a `u64` mask of non-empty orders, takes
//! the lowest-addressed free block of that order, and then *trims the tail*:
//! it keeps `[off, off + kept)` and gives the rest of the taken block straight
//! back as free blocks. That rest decomposes into naturally aligned
//! power-of-two buddies: walking up from `p = kept`, each piece is `lowbit(p)`
//! bytes long, which covers both the halves a classic buddy would split off
//! and the unused tail of the order-`k` block. Waste per allocation is
//! therefore below `min_block`, instead of up to half the allocation for a
//! plain buddy.
//!
//! # Free
//!
//! Freeing gives back `[off, off + kept)`, which lies in the aligned block
//! `[off, off + 2^k)`; the rest of that block is the trimmed tail, whose
//! pieces have the orders of the set bits of `2^k - kept`. So the common
//! case, where every tail piece is still free, takes those pieces back (one
//! bit test and clear each, ascending) and then goes on as an ordinary buddy
//! coalesce of the order-`k` block. If a tail piece has been allocated since,
//! the walk stops there and what it has merged so far is freed as aligned
//! pieces (none of them can coalesce: each one's right buddy is partly in
//! use).
//!
//! # Free blocks: per-order bitmaps
//!
//! Order `r` (blocks of `2^r` minimum blocks) has one bit per `2^r`-aligned
//! slot of the block; a set bit is a free buddy block of exactly that order.
//! The bits come in chunks of 4096 slots: 64 words and, next to them, a
//! summary word whose bit `w` says whether word `w` is non-zero. Above the
//! chunks sit summary levels (a bit per chunk, then a bit per word of the
//! level below) up to a single top word, as many levels for every order as
//! order 0 needs (2 for a 256 MiB block at 256 bytes, at most 3). Setting or
//! clearing a bit updates its word and chunk summary without a
//! data-dependent branch; the levels above change only when a whole chunk
//! turns empty or non-empty, which is rare. Each order also keeps its lowest
//! non-empty chunk, so taking the lowest free block of an order is two
//! `trailing_zeros` (chunk summary, then word) with no walk down the levels;
//! the walk runs only when that chunk empties. A `u64` mask of non-empty
//! orders picks the order.
//!
//! Taking the *lowest* free block keeps live allocations packed towards the
//! start of the block, so the end drains and coalesces: on a small-churn
//! trace (256 B..64 KiB, random frees) a LIFO free list saturated near 47%
//! fill of a 256 MiB block with 8% of requests failing, where lowest-address
//! allocation reaches 62% with none failing.
//!
//! # Cost
//!
//! An allocate/free pair costs one hash operation each way (the map of live
//! allocations, `unit offset -> (kept units, payload)`) and a few bit
//! operations per tail piece and coalesced buddy. The
//! design this replaced (per-order free stacks with a hash index of the free
//! blocks) did about 11 hash operations per pair. On `benches/buddy.rs`, old
//! and new run back to back on a 2-core x86 VM (criterion medians of two
//! runs each): `small_churn` 62 -> 33 ns per allocate and 102 -> 46 ns per
//! free, `mixed_assets` 143 -> 69 and 194 -> 70 ns, `frame_transients`
//! 120 -> 51 and 171 -> 52 ns. About a quarter of the small-churn time is
//! the live map's hash operation. The lowest-chunk hint saved about 13% per
//! allocate over walking down the summary levels; measured and dropped: a
//! linear-probing live map (fewer instructions, but slower at 14k live),
//! one loop for tail pieces and coalescing together, and updating every
//! summary level without branches.
//!
//! # Host metadata
//!
//! The bitmaps of all orders together hold about 2 bits per minimum block
//! (plus 1/64 for the summaries): 256 KiB for a 256 MiB block at 256-byte
//! granularity, 0.1% of the block. An order's chunks are allocated lazily up
//! to the highest one written (in powers of two), and because allocation
//! takes the lowest address first, a block only partly used keeps small
//! bitmaps: a fresh 256 MiB block costs about 4.5 KiB in all. The live map
//! costs about 19 bytes plus the payload per live allocation (hashbrown at
//! its load factor).
//!
//! Measured on `small_churn` (256 MiB block, 14k live allocations with `u64`
//! payloads): 1.06 MiB, of which 268 KiB bitmaps and 800 KiB live map; the
//! hash-indexed free stacks grew with the number of free blocks instead
//! (about two per live allocation) and measured 1.5-1.9 MiB with the same
//! live map. The trade-off goes the other way for a big block with few
//! large allocations: on `mixed_assets` (1 GiB block, 200 live allocations
//! of up to 32 MiB spread over it) the bitmaps reach their full 1 MiB where
//! the old free stacks needed 60-70 KiB in all. The bitmaps follow the part
//! of the block in use, not the number of blocks. To bound the worst case, a
//! block may hold at most 2^[`MAX_UNITS_LOG2`] minimum blocks (bitmaps of at
//! most 16 MiB); [`BuddyBlock::new`] refuses more with
//! [`PlacementError::InvalidConfig`].
//!
//! Every operation is O(log(size / min_block)); nothing scans the allocations
//! or the blocks (except [`BuddyBlock::validate`], the iterators and
//! [`BuddyBlock::clear`]).
#![deny(unsafe_code)]

mod bitmap;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use crate::error::PlacementError;
use bitmap::{upper_count, Chunk, OrderBits, CHUNK_LOG2, MAX_UPPER, ORDER_SLOTS};

/// Largest `log2(size / min_block)`. The free bitmaps cost about 2 bits per
/// minimum block when fully grown, so this caps them at 16 MiB (a 64 MiB
/// block at byte granularity, 16 GiB at 256 bytes); offsets and sizes in
/// units of `min_block` fit in `u32`.
pub const MAX_UNITS_LOG2: u32 = 26;

/// Hasher of the `u32` keys of the live map: one multiply (Fibonacci
/// hashing).
///
/// The keys are unit offsets chosen by the allocator, not by callers, so a
/// keyed hash buys nothing, and this one measured 3-18% faster per allocate
/// and per free than `ahash` on churn traces. hashbrown takes bucket bits from
/// the low end of the hash and its 7-bit tag from the top; the rotation puts
/// the product's well-mixed high half at the low end.
#[derive(Clone, Copy, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline(always)]
    fn write_u32(&mut self, key: u32) {
        self.0 = (self.0 ^ u64::from(key))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(32);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed; this keeps the hasher total anyway.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(32);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct BuildKeyHasher;

impl BuildHasher for BuildKeyHasher {
    type Hasher = KeyHasher;

    #[inline(always)]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// A power-of-two buddy allocator with tail trimming over `[0, size)`.
///
/// Each live allocation carries a payload `T` (use `()` for none). See the
/// [module docs](self) for the algorithm.
///
/// Within an order, allocation takes the free block with the lowest address.
/// This keeps live allocations packed towards the start of the block, so the
/// end drains and coalesces (and the lazily grown bitmaps stay small).
///
/// ```
/// use mem_core::buddy::BuddyBlock;
///
/// let mut block = BuddyBlock::<&str>::new(1 << 20, 256).unwrap();
/// let a = block.allocate(1000, 0, "mesh").unwrap();
/// let b = block.allocate(3000, 4096, "texture").unwrap();
/// assert_eq!(b % 4096, 0);
/// // 1000 bytes keep 1024 and 3000 keep 3072, where a plain buddy would
/// // keep 1024 and 4096.
/// assert_eq!(block.allocated_bytes(), 1024 + 3072);
/// assert_eq!(block.free(a).unwrap(), (1024, "mesh"));
/// block.free(b).unwrap();
/// assert!(block.is_empty());
/// assert_eq!(block.free_ranges().collect::<Vec<_>>(), [(0, 1 << 20)]);
/// ```
#[derive(Clone)]
pub struct BuddyBlock<T = ()> {
    /// Block size in bytes.
    size: u64,
    /// `log2(min_block)`; internally offsets, sizes and orders are in units
    /// of `min_block`.
    min_log2: u32,
    /// `log2(size / min_block)`, the highest order in units.
    units_log2: u32,
    /// Bit `r` is set iff order `r` (in units) has a free block.
    non_empty: u64,
    /// Number of summary levels above the chunks, the same for every order
    /// (small orders' top levels are single words), so the walk down has a
    /// trip count the branch predictor learns.
    upper_levels: usize,
    /// Offset of each summary level in [`OrderBits::upper`]; entry
    /// `upper_levels` is the total length.
    upper_offsets: [usize; MAX_UPPER + 1],
    /// Free bitmaps by order (entries past `units_log2` are unused).
    orders: Box<[OrderBits; ORDER_SLOTS]>,
    /// Unit offset -> (kept units, payload) of each live allocation.
    live: HashMap<u32, (u32, T), BuildKeyHasher>,
    /// Sum of the kept sizes of the live allocations, in bytes; the free
    /// blocks hold the rest.
    allocated: u64,
}

impl<T> fmt::Debug for BuddyBlock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuddyBlock")
            .field("size", &self.size)
            .field("min_block", &self.min_block())
            .field("allocated_bytes", &self.allocated)
            .field("free_bytes", &self.free_bytes())
            .field("allocation_count", &self.live.len())
            .field("largest_free", &self.largest_free())
            .finish_non_exhaustive()
    }
}

impl<T> BuddyBlock<T> {
    /// Creates an empty block of `size` bytes with a minimum block of
    /// `min_block` bytes.
    ///
    /// Both must be powers of two with `1 <= min_block <= size` and
    /// `size / min_block <= 2^26` ([`MAX_UNITS_LOG2`]: a 64 MiB block at
    /// byte granularity, 16 GiB at 256 bytes); otherwise
    /// [`PlacementError::InvalidConfig`]. Allocations are rounded up to multiples
    /// of `min_block`. Host metadata starts at a few KiB and grows with the
    /// part of the block in use, up to about 2 bits per minimum block (see
    /// the [module docs](self)).
    pub fn new(size: u64, min_block: u64) -> Result<Self, PlacementError> {
        if !size.is_power_of_two()
            || !min_block.is_power_of_two()
            || min_block > size
            || (size / min_block).trailing_zeros() > MAX_UNITS_LOG2
        {
            return Err(PlacementError::InvalidConfig { size, min_block });
        }
        let size_log2 = size.trailing_zeros();
        let min_log2 = min_block.trailing_zeros();
        let units_log2 = size_log2 - min_log2;
        // Summary levels sized for order 0, the one with the most chunks.
        let chunks_log2 = units_log2.saturating_sub(CHUNK_LOG2);
        let upper_levels = upper_count(chunks_log2);
        let mut upper_offsets = [0; MAX_UPPER + 1];
        let mut words = 1usize << chunks_log2;
        for l in 0..upper_levels {
            words = words.div_ceil(64);
            upper_offsets[l + 1] = upper_offsets[l] + words;
        }
        let mut orders: Box<[OrderBits; ORDER_SLOTS]> = Box::default();
        for bits in &mut orders[..=units_log2 as usize] {
            bits.upper = vec![0; upper_offsets[upper_levels]];
        }
        let mut block = Self {
            size,
            min_log2,
            units_log2,
            non_empty: 0,
            upper_levels,
            upper_offsets,
            orders,
            live: HashMap::with_hasher(BuildKeyHasher),
            allocated: 0,
        };
        block.insert_free(units_log2, 0);
        Ok(block)
    }

    /// Size of the whole block in bytes.
    #[inline]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Minimum block size in bytes; every kept size is a multiple of it.
    #[inline]
    pub fn min_block(&self) -> u64 {
        1 << self.min_log2
    }

    /// Sum of the kept sizes of all live allocations.
    #[inline]
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
    }

    /// Sum of the sizes of all free buddy blocks (`size - allocated_bytes`).
    #[inline]
    pub fn free_bytes(&self) -> u64 {
        self.size - self.allocated
    }

    /// Number of live allocations.
    #[inline]
    pub fn allocation_count(&self) -> usize {
        self.live.len()
    }

    /// Whether there is no live allocation (the block is then one free buddy).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Size of the largest free buddy block, 0 if none. O(1).
    ///
    /// Any request whose order fits this size succeeds; because of natural
    /// alignment, a larger one fails even if enough free bytes lie side by side
    /// across buddies.
    #[inline]
    pub fn largest_free(&self) -> u64 {
        if self.non_empty == 0 {
            0
        } else {
            1 << (63 - self.non_empty.leading_zeros() + self.min_log2)
        }
    }

    /// Whether [`allocate`](Self::allocate) with these arguments would succeed
    /// now. O(1).
    #[inline]
    pub fn can_allocate(&self, size: u64, alignment: u64) -> bool {
        match self.request(size, alignment) {
            Ok((_, order)) => self.non_empty >> order != 0,
            Err(_) => false,
        }
    }

    /// Allocates `size` bytes aligned to `alignment` (a power of two, or 0
    /// for none) and returns the offset. The allocation keeps
    /// `round_up(size, min_block)` bytes, see [`get`](Self::get).
    ///
    /// Errors: [`ZeroSize`](PlacementError::ZeroSize),
    /// [`AlignmentNotPowerOfTwo`](PlacementError::AlignmentNotPowerOfTwo),
    /// [`TooLarge`](PlacementError::TooLarge) when even an empty block could not
    /// hold it, [`OutOfSpace`](PlacementError::OutOfSpace) when no free buddy is
    /// large enough now. On error the block is unchanged.
    #[inline]
    pub fn allocate(
        &mut self,
        size: u64,
        alignment: u64,
        payload: T,
    ) -> Result<u64, PlacementError> {
        let (kept, order) = self.request(size, alignment)?;
        // Smallest non-empty order >= `order` (`order <= units_log2 <= 26`).
        let candidates = self.non_empty >> order;
        if candidates == 0 {
            return Err(PlacementError::OutOfSpace {
                size,
                alignment,
                largest_free: self.largest_free(),
            });
        }
        let found = order + candidates.trailing_zeros();
        let offset = self.take_lowest(found) << found;
        // Split and trim in one pass: everything of the taken block past
        // `kept` goes back as naturally aligned pieces of `lowbit(p)` units.
        // Each piece is a right child whose left buddy is (partly) kept, so
        // none can coalesce.
        let end = 1u32 << found;
        let mut p = kept;
        while p < end {
            let piece_order = p.trailing_zeros();
            self.insert_free(piece_order, (offset + p) >> piece_order);
            p += 1 << piece_order;
        }
        self.allocated += u64::from(kept) << self.min_log2;
        self.live.insert(offset, (kept, payload));
        Ok(u64::from(offset) << self.min_log2)
    }

    /// Frees the allocation at `offset` and returns its kept size and payload.
    ///
    /// [`UnknownOffset`](PlacementError::UnknownOffset) if no live allocation
    /// starts there (the block is then unchanged).
    #[inline]
    pub fn free(&mut self, offset: u64) -> Result<(u64, T), PlacementError> {
        let unit = self
            .unit_offset(offset)
            .ok_or(PlacementError::UnknownOffset { offset })?;
        let (kept, payload) = self
            .live
            .remove(&unit)
            .ok_or(PlacementError::UnknownOffset { offset })?;
        let kept_bytes = u64::from(kept) << self.min_log2;
        self.allocated -= kept_bytes;
        self.release(unit, kept);
        Ok((kept_bytes, payload))
    }

    /// Kept size and payload of the live allocation at `offset`.
    #[inline]
    pub fn get(&self, offset: u64) -> Option<(u64, &T)> {
        let (kept, payload) = self.live.get(&self.unit_offset(offset)?)?;
        Some((u64::from(*kept) << self.min_log2, payload))
    }

    /// Payload of the live allocation at `offset`, mutably.
    #[inline]
    pub fn get_mut(&mut self, offset: u64) -> Option<&mut T> {
        let unit = self.unit_offset(offset)?;
        self.live.get_mut(&unit).map(|(_, payload)| payload)
    }

    /// Frees every live allocation at once (dropping their payloads), keeping
    /// the containers' capacity.
    pub fn clear(&mut self) {
        self.live.clear();
        for bits in self.orders.iter_mut() {
            bits.chunks.fill(Chunk::EMPTY);
            bits.upper.fill(0);
        }
        self.non_empty = 0;
        self.allocated = 0;
        self.insert_free(self.units_log2, 0);
    }

    /// `(block size, count)` of the free buddy blocks, for each non-empty
    /// order, smallest first. Counts the bits of the non-zero bitmap words:
    /// O(free blocks + bitmap words / 64).
    pub fn free_histogram(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        let mut orders = self.non_empty;
        std::iter::from_fn(move || {
            if orders == 0 {
                return None;
            }
            let order = orders.trailing_zeros();
            orders &= orders - 1;
            Some((
                1u64 << (order + self.min_log2),
                self.free_slots(order).count(),
            ))
        })
    }

    /// `(offset, kept, payload)` of every live allocation, in no particular
    /// order.
    pub fn live(&self) -> impl Iterator<Item = (u64, u64, &T)> + '_ {
        let shift = self.min_log2;
        self.live.iter().map(move |(&offset, (kept, payload))| {
            (
                u64::from(offset) << shift,
                u64::from(*kept) << shift,
                payload,
            )
        })
    }

    /// `(offset, size)` of every free buddy block, smallest first, and by
    /// address within a size: O(free blocks + bitmap words / 64).
    pub fn free_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let shift = self.min_log2;
        (0..=self.units_log2)
            .filter(move |&order| self.non_empty >> order & 1 != 0)
            .flat_map(move |order| {
                let size = 1u64 << (order + shift);
                self.free_slots(order)
                    .map(move |slot| ((slot as u64) << (order + shift), size))
            })
    }

    /// Estimate of the host memory this block's metadata uses, in bytes: the
    /// struct, the capacity of the free bitmaps (about 2 bits per minimum
    /// block of the part of the block in use, at most) and of the live map.
    pub fn host_memory_bytes(&self) -> usize {
        // hashbrown keeps one control byte per bucket and about 8 buckets per
        // 7 elements of capacity.
        let live = self.live.capacity() * 8 / 7 * (std::mem::size_of::<(u32, (u32, T))>() + 1);
        let bitmaps: usize = self
            .orders
            .iter()
            .map(|bits| {
                bits.chunks.capacity() * std::mem::size_of::<Chunk>()
                    + bits.upper.capacity() * std::mem::size_of::<u64>()
            })
            .sum();
        std::mem::size_of::<Self>()
            + std::mem::size_of::<[OrderBits; ORDER_SLOTS]>()
            + bitmaps
            + live
    }

    /// Unit offset of a byte offset that can start a block.
    #[inline(always)]
    fn unit_offset(&self, offset: u64) -> Option<u32> {
        if offset & ((1u64 << self.min_log2) - 1) != 0 || offset >= self.size {
            return None;
        }
        Some((offset >> self.min_log2) as u32)
    }

    /// Checks a request and returns `(kept, order)`, both in units.
    #[inline(always)]
    fn request(&self, size: u64, alignment: u64) -> Result<(u32, u32), PlacementError> {
        if size == 0 {
            return Err(PlacementError::ZeroSize);
        }
        let align = alignment.max(1);
        if !align.is_power_of_two() {
            return Err(PlacementError::AlignmentNotPowerOfTwo { alignment });
        }
        if size > self.size || align > self.size {
            return Err(PlacementError::TooLarge {
                size,
                alignment,
                capacity: self.size,
            });
        }
        // No overflow: size <= self.size <= 2^63, and the result is at most
        // size / min_block <= 2^26.
        let kept = ((size - 1) >> self.min_log2) as u32 + 1;
        let align_units = (align >> self.min_log2) as u32;
        // A power of two or at most 2^26, so the order is <= units_log2.
        let need = kept.max(align_units);
        Ok((kept, need.next_power_of_two().trailing_zeros()))
    }

    /// Gives `[offset, offset + kept)` back, coalescing (see the module docs).
    #[inline]
    fn release(&mut self, offset: u32, kept: u32) {
        // The kept range lies in the aligned block [offset, offset + 2^order);
        // the rest of that block is the trimmed tail, whose pieces have the
        // orders of the set bits of `tail`, ascending in address and order.
        let order = u32::BITS - (kept - 1).leading_zeros();
        let tail = (1u32 << order) - kept;
        let mut left = tail;
        while left != 0 {
            let piece = left.trailing_zeros();
            // Units of the kept range and of the tail pieces below this one.
            let below = kept + (tail - left);
            if !self.take_free(piece, (offset + below) >> piece) {
                // This tail piece has been (partly) allocated since: nothing
                // more coalesces. Free [offset, offset + below) as the aligned
                // pieces of the set bits of `below` (the lowest is the buddy
                // of the piece in use).
                let mut rest = below;
                while rest != 0 {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    self.insert_free(bit, (offset + rest) >> bit);
                }
                return;
            }
            left &= left - 1;
        }
        // Ordinary buddy coalesce of [offset, offset + 2^order).
        let (mut order, mut slot) = (order, offset >> order);
        while order < self.units_log2 && self.take_free(order, slot ^ 1) {
            slot >>= 1;
            order += 1;
        }
        self.insert_free(order, slot);
    }
}
