//! Power-of-two buddy allocator with tail trimming, on `u64` offsets only.
//!
//! A [`BuddyBlock`] manages a range `[0, 2^K)` with a minimum block of `2^m`
//! bytes, so block orders run from `m` to `K`. It knows no Vulkan type and
//! makes no device call: the pools in this crate put one in front of each
//! `VkDeviceMemory`, and [`VirtualBlock`](crate::VirtualBlock) offers it for
//! ranges that are not device memory.
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
//! Freeing gives back `[off, off + kept)`. The kept range is the set bits of
//! `kept` as aligned pieces (largest first), and each of them is a left child
//! whose right buddy holds the smaller pieces and the trimmed tail. So the
//! common case, where every trimmed tail piece is still free, is one walk up
//! the orders starting from the smallest kept piece: a right-child step merges
//! with the next kept piece for free, a left-child step takes the next tail
//! piece out of its bitmap (one bit test and clear). Once the walk covers the
//! whole kept range it goes on as an ordinary buddy coalesce. If a tail piece
//! has been allocated since, the walk stops there and the remaining kept
//! pieces are freed as they are (none of them can coalesce: each one's right
//! buddy is partly in use).
//!
//! # Free blocks: per-order bitmaps
//!
//! Order `r` (blocks of `2^r` minimum blocks) has one bit per `2^r`-aligned
//! slot of the block; a set bit is a free buddy block of exactly that order.
//! Above each order's bitmap sit summary levels (bit `i` of level `l + 1` is
//! set iff word `i` of level `l` is non-zero) up to a single top word, so the
//! lowest free block of an order is found with one `trailing_zeros` per level
//! (at most [`MAX_UNITS_LOG2`]` / 6` rounded up, 4 for a 256 MiB block at
//! 256 bytes), and setting or clearing a bit touches the levels above only
//! when a word turns zero or non-zero. A `u64` mask of non-empty orders (bit
//! `r` set iff the top word of order `r` is non-zero) picks the order.
//! Taking the *lowest* free block keeps live allocations packed towards the
//! start of the block, so the end drains and coalesces: on a small-churn
//! trace (256 B..64 KiB, random frees) a LIFO free list saturated near 47%
//! fill of a 256 MiB block with 8% of requests failing, where lowest-address
//! allocation reaches 62% with none failing.
//!
//! An allocate/free pair costs one hash operation each way (the map of live
//! allocations, `unit offset -> (kept units, payload)`) and a handful of bit
//! operations; the previous design (per-order free stacks plus a hash index
//! of the free blocks) needed about 11 hash operations per pair. See
//! `benches/buddy.rs` and the figures below.
//!
//! # Host metadata
//!
//! The bitmaps of all orders together hold about 2 bits per minimum block
//! (plus 1/63 for the summaries): 256 KiB for a 256 MiB block at 256-byte
//! granularity, 0.1% of the block. They are grown lazily, per order, to the
//! highest word ever written (in powers of two), and because allocation takes
//! the lowest address first, a block that is only ever partly used keeps
//! small bitmaps: a fresh block costs about 4 KiB. The live map costs about
//! 18 bytes plus the payload per live allocation. The hash-indexed free
//! stacks this replaced grew with the number of free blocks instead (about
//! two per live allocation) and measured 1.6-2 MiB for a 256 MiB block with
//! 14k live allocations under small churn; the bitmaps and live map together
//! measure about MEASURED_NEW there. To bound the worst case, a block may hold
//! at most 2^[`MAX_UNITS_LOG2`] minimum blocks (bitmaps of at most 16 MiB);
//! [`BuddyBlock::new`] refuses more with [`BuddyError::InvalidConfig`].
//!
//! Every operation is O(log(size / min_block)); nothing scans the allocations
//! or the blocks (except [`BuddyBlock::validate`], the iterators and
//! [`BuddyBlock::clear`]).
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// Errors of the buddy core. Bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuddyError {
    /// An allocation of zero bytes was requested.
    #[error("allocation size is zero")]
    ZeroSize,
    /// The alignment is neither zero nor a power of two.
    #[error("alignment {alignment} is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// The requested alignment.
        alignment: u64,
    },
    /// The request can never fit in this block, however empty.
    #[error(
        "allocation of {size} bytes with alignment {alignment} exceeds the block capacity of {capacity} bytes"
    )]
    TooLarge {
        /// Requested size in bytes.
        size: u64,
        /// Requested alignment in bytes.
        alignment: u64,
        /// Size of the whole block in bytes.
        capacity: u64,
    },
    /// The request could fit in an empty block, but no free buddy is large
    /// enough now.
    #[error(
        "no free block for {size} bytes with alignment {alignment}; the largest free block is {largest_free} bytes"
    )]
    OutOfSpace {
        /// Requested size in bytes.
        size: u64,
        /// Requested alignment in bytes.
        alignment: u64,
        /// Largest free buddy block at the time of the request.
        largest_free: u64,
    },
    /// No live allocation starts at this offset.
    #[error("no live allocation at offset {offset}")]
    UnknownOffset {
        /// The offset that was passed.
        offset: u64,
    },
    /// `BuddyBlock::new` was given sizes that are not powers of two, a
    /// minimum block larger than the block, or more than 2^26 minimum blocks.
    #[error(
        "invalid buddy block: size {size} and min_block {min_block} must be powers of two with min_block <= size <= 2^26 * min_block"
    )]
    InvalidConfig {
        /// The block size that was passed.
        size: u64,
        /// The minimum block that was passed.
        min_block: u64,
    },
    /// A [`VirtualAllocation`](crate::VirtualAllocation) was given to a
    /// [`VirtualBlock`](crate::VirtualBlock) other than the one that made it
    /// (or to the same block after [`clear`](crate::VirtualBlock::clear)).
    #[error("allocation belongs to virtual block {allocation_block_id}, not to block {block_id}")]
    ForeignAllocation {
        /// Id of the block the allocation was given to.
        block_id: u64,
        /// Id of the block (generation) that made the allocation.
        allocation_block_id: u64,
    },
}

/// Largest `log2(size / min_block)`. The free bitmaps cost about 2 bits per
/// minimum block when fully grown, so this caps them at 16 MiB (a 64 MiB
/// block at byte granularity, 16 GiB at 256 bytes); offsets and sizes in
/// units of `min_block` fit in `u32`.
pub const MAX_UNITS_LOG2: u32 = 26;

/// Orders 0..=MAX_UNITS_LOG2, in units of `min_block`.
const MAX_ORDERS: usize = MAX_UNITS_LOG2 as usize + 1;

/// Most bitmap levels of one order: `ceil(MAX_UNITS_LOG2 / 6)`, each level
/// resolving 6 bits of the slot number.
const MAX_LEVELS: usize = MAX_UNITS_LOG2.div_ceil(6) as usize;

/// Number of bitmap levels of an order whose slot numbers have `slot_bits`
/// bits: enough that the top level is a single word.
#[inline(always)]
fn level_count(slot_bits: u32) -> usize {
    slot_bits.div_ceil(6).max(1) as usize
}

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

/// Whether every word is zero; compares chunks with `==`, which is a
/// `memcmp` even in unoptimized builds.
fn all_zero(words: &[u64]) -> bool {
    const ZEROS: [u64; 512] = [0; 512];
    words.chunks(ZEROS.len()).all(|chunk| chunk == &ZEROS[..chunk.len()])
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
    /// Bit `r` is set iff order `r` (in units) has a free block, i.e. iff the
    /// top word of its bitmap is non-zero.
    non_empty: u64,
    /// Free bitmaps: `levels[r * MAX_LEVELS + l]` is level `l` of order `r`.
    /// Level 0 has bit `s` set iff the block of order `r` at unit offset
    /// `s << r` is free; bit `i` of level `l + 1` is set iff word `i` of
    /// level `l` is non-zero; the top level (`level_count(units_log2 - r) -
    /// 1`) is one word. Level 0 is grown lazily to the highest word written
    /// (a power of two of words, at most the full size), and each level above
    /// to `ceil(len / 64)` of the one below; words past the end are zero.
    levels: Vec<Vec<u64>>,
    /// Number of free blocks of each order.
    counts: [u32; MAX_ORDERS],
    /// Unit offset -> (kept units, payload) of each live allocation.
    live: HashMap<u32, (u32, T), BuildKeyHasher>,
    /// Sum of the kept sizes of the live allocations, in bytes.
    allocated: u64,
    /// Sum of the sizes of the free blocks, in bytes.
    free: u64,
}

impl<T> fmt::Debug for BuddyBlock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuddyBlock")
            .field("size", &self.size)
            .field("min_block", &self.min_block())
            .field("allocated_bytes", &self.allocated)
            .field("free_bytes", &self.free)
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
    /// [`BuddyError::InvalidConfig`]. Allocations are rounded up to multiples
    /// of `min_block`. Host metadata starts at a few KiB and grows with the
    /// part of the block in use, up to about 2 bits per minimum block (see
    /// the [module docs](self)).
    pub fn new(size: u64, min_block: u64) -> Result<Self, BuddyError> {
        if !size.is_power_of_two()
            || !min_block.is_power_of_two()
            || min_block > size
            || (size / min_block).trailing_zeros() > MAX_UNITS_LOG2
        {
            return Err(BuddyError::InvalidConfig { size, min_block });
        }
        let size_log2 = size.trailing_zeros();
        let min_log2 = min_block.trailing_zeros();
        let units_log2 = size_log2 - min_log2;
        let mut levels = Vec::with_capacity((units_log2 as usize + 1) * MAX_LEVELS);
        for order in 0..=units_log2 {
            let count = level_count(units_log2 - order);
            levels.extend((0..MAX_LEVELS).map(|l| if l < count { vec![0] } else { Vec::new() }));
        }
        let mut block = Self {
            size,
            min_log2,
            units_log2,
            non_empty: 0,
            levels,
            counts: [0; MAX_ORDERS],
            live: HashMap::with_hasher(BuildKeyHasher),
            allocated: 0,
            free: 0,
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
        self.free
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
    /// Errors: [`ZeroSize`](BuddyError::ZeroSize),
    /// [`AlignmentNotPowerOfTwo`](BuddyError::AlignmentNotPowerOfTwo),
    /// [`TooLarge`](BuddyError::TooLarge) when even an empty block could not
    /// hold it, [`OutOfSpace`](BuddyError::OutOfSpace) when no free buddy is
    /// large enough now. On error the block is unchanged.
    #[inline]
    pub fn allocate(&mut self, size: u64, alignment: u64, payload: T) -> Result<u64, BuddyError> {
        let (kept, order) = self.request(size, alignment)?;
        // Smallest non-empty order >= `order` (`order <= units_log2 <= 26`).
        let candidates = self.non_empty >> order;
        if candidates == 0 {
            return Err(BuddyError::OutOfSpace {
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
    /// [`UnknownOffset`](BuddyError::UnknownOffset) if no live allocation
    /// starts there (the block is then unchanged).
    #[inline]
    pub fn free(&mut self, offset: u64) -> Result<(u64, T), BuddyError> {
        let unit = self
            .unit_offset(offset)
            .ok_or(BuddyError::UnknownOffset { offset })?;
        let (kept, payload) = self
            .live
            .remove(&unit)
            .ok_or(BuddyError::UnknownOffset { offset })?;
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
        for level in &mut self.levels {
            level.fill(0);
        }
        self.counts = [0; MAX_ORDERS];
        self.non_empty = 0;
        self.allocated = 0;
        self.free = 0;
        self.insert_free(self.units_log2, 0);
    }

    /// `(block size, count)` of the free buddy blocks, for each non-empty
    /// order, smallest first.
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
                self.counts[order as usize] as usize,
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
    /// address within a size. Finds the non-zero bitmap words through the
    /// first summary level, so it costs O(free blocks + bitmap words / 64).
    pub fn free_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let shift = self.min_log2;
        (0..=self.units_log2)
            .filter(move |&order| self.non_empty >> order & 1 != 0)
            .flat_map(move |order| {
                let base = order as usize * MAX_LEVELS;
                let leaf = &self.levels[base];
                // Indices of the non-zero leaf words: from level 1, or the one
                // word of an order with a single level.
                let summary: &[u64] = if level_count(self.units_log2 - order) > 1 {
                    &self.levels[base + 1]
                } else {
                    &[1]
                };
                let words = summary.iter().enumerate().flat_map(|(i, &word)| {
                    set_bits(word).map(move |bit| (i << 6) | bit)
                });
                let size = 1u64 << (order + shift);
                words.flat_map(move |w| {
                    set_bits(leaf[w])
                        .map(move |bit| ((((w as u64) << 6) | bit as u64) << (order + shift), size))
                })
            })
    }

    /// Estimate of the host memory this block's metadata uses, in bytes: the
    /// struct, the capacity of the free bitmaps (about 2 bits per minimum
    /// block of the part of the block in use, at most) and the live map.
    pub fn host_memory_bytes(&self) -> usize {
        // hashbrown keeps one control byte per bucket and about 8 buckets per
        // 7 elements of capacity.
        let live = self.live.capacity() * 8 / 7 * (std::mem::size_of::<(u32, (u32, T))>() + 1);
        let bitmaps: usize = self
            .levels
            .iter()
            .map(|level| level.capacity() * std::mem::size_of::<u64>())
            .sum();
        std::mem::size_of::<Self>()
            + self.levels.capacity() * std::mem::size_of::<Vec<u64>>()
            + bitmaps
            + live
    }

    /// Checks every invariant; `Err` describes the first one broken.
    ///
    /// Bitmaps: every level has the length its level 0 implies (the top one
    /// word), no bit is set past the last slot of its order, every summary bit
    /// says whether its word below is non-zero, the non-empty mask says
    /// whether each top word is non-zero, and the per-order counts match the
    /// set bits. Free blocks are fully coalesced (no free block's buddy is
    /// free at the same order); free blocks and live kept ranges tile
    /// `[0, size)` exactly, with no gap and no overlap; the byte counters
    /// agree. O(n log n) in the number of blocks plus O(bitmap words).
    pub fn validate(&self) -> Result<(), String> {
        let shift = self.min_log2;
        let units = 1u64 << self.units_log2;
        let mut ranges: Vec<(u64, u64, bool)> = Vec::with_capacity(self.live.len() * 3 + 64);
        let mut free_sum = 0u64;
        if self.levels.len() != (self.units_log2 as usize + 1) * MAX_LEVELS {
            return Err(format!("{} bitmap levels", self.levels.len()));
        }
        for order in 0..=self.units_log2 {
            let r = order as usize;
            let slot_bits = self.units_log2 - order;
            let count = level_count(slot_bits);
            let maps = &self.levels[r * MAX_LEVELS..(r + 1) * MAX_LEVELS];
            // Lengths: level 0 a power of two of words within the full size,
            // each level above ceil(len / 64), the top one word, unused empty.
            let full = 1usize << slot_bits.saturating_sub(6);
            let len0 = maps[0].len();
            if !len0.is_power_of_two() || len0 > full {
                return Err(format!("order {r}: level 0 has {len0} words of at most {full}"));
            }
            let mut len = len0;
            for (l, level) in maps.iter().enumerate() {
                let want = if l < count { len } else { 0 };
                if level.len() != want {
                    return Err(format!(
                        "order {r}: level {l} has {} words instead of {want}",
                        level.len()
                    ));
                }
                len = len.div_ceil(64);
            }
            if maps[count - 1].len() != 1 {
                return Err(format!("order {r}: top level is not one word"));
            }
            if (self.non_empty >> r & 1 == 1) != (maps[count - 1][0] != 0) {
                return Err(format!(
                    "non-empty bit of order {r} disagrees with its top word {:#x}",
                    maps[count - 1][0]
                ));
            }
            // Summaries agree with the words below, top down: each set bit
            // names a non-zero word below, and all other words are zero. This
            // costs O(set bits) plus a `memcmp` of the bitmaps against zeros,
            // cheap even unoptimized (it runs after every property-test step).
            let mut named: Vec<usize> = vec![0];
            for l in (0..count).rev() {
                let level = &maps[l];
                let mut bits = Vec::with_capacity(named.len());
                let mut next = 0;
                for &i in &named {
                    let Some(&word) = level.get(i) else {
                        return Err(format!(
                            "order {r}: summary names word {i} past the {} words of level {l}",
                            level.len()
                        ));
                    };
                    if word == 0 && l + 1 < count {
                        return Err(format!(
                            "order {r}: summary bit set for zero word {i} at level {l}"
                        ));
                    }
                    if !all_zero(&level[next..i]) {
                        return Err(format!(
                            "order {r}: a non-zero word before word {i} at level {l} has no summary bit"
                        ));
                    }
                    bits.extend(set_bits(word).map(|bit| (i << 6) | bit));
                    next = i + 1;
                }
                if !all_zero(&level[next..]) {
                    return Err(format!(
                        "order {r}: a non-zero word past word {next} at level {l} has no summary bit"
                    ));
                }
                named = bits;
            }
            // `named` now holds the free slots of this order, in order.
            let slots = 1u64 << slot_bits;
            let len = 1u64 << order;
            for &slot in &named {
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
            let listed = named.len() as u32;
            if listed != self.counts[r] {
                return Err(format!(
                    "order {r}: count says {} free blocks, the bitmap holds {listed}",
                    self.counts[r]
                ));
            }
        }
        if let Some(r) = (self.units_log2 as usize + 1..MAX_ORDERS).find(|&r| self.counts[r] != 0) {
            return Err(format!("count of order {r} past the highest order"));
        }
        if self.non_empty >> (self.units_log2 + 1) != 0 {
            return Err(format!("non-empty mask {:#x} past the highest order", self.non_empty));
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
        if free_sum != self.free || allocated_sum != self.allocated {
            return Err(format!(
                "counters say {} free, {} allocated; blocks sum to {free_sum} free, {allocated_sum} allocated",
                self.free, self.allocated
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
    fn request(&self, size: u64, alignment: u64) -> Result<(u32, u32), BuddyError> {
        if size == 0 {
            return Err(BuddyError::ZeroSize);
        }
        let align = alignment.max(1);
        if !align.is_power_of_two() {
            return Err(BuddyError::AlignmentNotPowerOfTwo { alignment });
        }
        if size > self.size || align > self.size {
            return Err(BuddyError::TooLarge {
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
        // `cur` is the aligned block [offset + rel, offset + rel + 2^order)
        // holding the end of the kept range; it starts as the smallest kept
        // piece and grows until it covers the whole kept range (rel == 0).
        let mut order = kept.trailing_zeros();
        let mut rel = kept - (1u32 << order);
        while rel != 0 {
            let half = 1u32 << order;
            if rel & half != 0 {
                // Right child: the left buddy is the next kept piece.
                rel -= half;
            } else if !self.take_free(order, (offset + rel + half) >> order) {
                // Left child whose right buddy (a trimmed tail piece) has been
                // (partly) allocated since: nothing more coalesces. Free `cur`
                // and the kept pieces left of it (one per set bit of `rel`).
                self.insert_free(order, (offset + rel) >> order);
                while rel != 0 {
                    let bit_order = rel.trailing_zeros();
                    rel &= rel - 1;
                    self.insert_free(bit_order, (offset + rel) >> bit_order);
                }
                return;
            }
            order += 1;
        }
        // Ordinary buddy coalesce of [offset, offset + 2^order).
        let mut slot = offset >> order;
        while order < self.units_log2 && self.take_free(order, slot ^ 1) {
            slot >>= 1;
            order += 1;
        }
        self.insert_free(order, slot);
    }

    /// Level 0 of the bitmap of `order`.
    #[inline(always)]
    fn leaf(&self, order: u32) -> &[u64] {
        &self.levels[order as usize * MAX_LEVELS]
    }

    /// Whether the block of `order` at `slot` (unit offset `slot << order`) is
    /// free.
    #[inline(always)]
    fn is_free(&self, order: u32, slot: u32) -> bool {
        self.leaf(order)
            .get(slot as usize >> 6)
            .is_some_and(|&word| word >> (slot & 63) & 1 != 0)
    }

    /// Marks the block of `order` at `slot` free, without coalescing; it must
    /// not be free already.
    #[inline(always)]
    fn insert_free(&mut self, order: u32, slot: u32) {
        debug_assert!(!self.is_free(order, slot), "double free of ({slot}, {order})");
        let base = order as usize * MAX_LEVELS;
        let mut index = slot as usize;
        if index >> 6 >= self.levels[base].len() {
            self.grow(order, index >> 6);
        }
        let count = level_count(self.units_log2 - order);
        for level in &mut self.levels[base..base + count] {
            let word = &mut level[index >> 6];
            let old = *word;
            *word = old | 1 << (index & 63);
            if old != 0 {
                break;
            }
            index >>= 6;
        }
        self.non_empty |= 1 << order;
        self.counts[order as usize] += 1;
        self.free += 1u64 << (order + self.min_log2);
    }

    /// Takes the block of `order` at `slot` out of the free bitmap if it is
    /// free there.
    #[inline(always)]
    fn take_free(&mut self, order: u32, slot: u32) -> bool {
        let index = slot as usize;
        let Some(word) = self.levels[order as usize * MAX_LEVELS].get_mut(index >> 6) else {
            return false;
        };
        let bit = 1u64 << (index & 63);
        if *word & bit == 0 {
            return false;
        }
        *word &= !bit;
        if *word == 0 {
            self.clear_summaries(order, index >> 6);
        }
        self.counts[order as usize] -= 1;
        self.free -= 1u64 << (order + self.min_log2);
        true
    }

    /// Takes the lowest free block of `order` out of its bitmap and returns
    /// its unit offset; `order` must have one.
    #[inline(always)]
    fn take_lowest(&mut self, order: u32) -> u32 {
        let base = order as usize * MAX_LEVELS;
        let count = level_count(self.units_log2 - order);
        let mut index = 0usize;
        for level in self.levels[base..base + count].iter().rev() {
            index = (index << 6) | level[index].trailing_zeros() as usize;
        }
        let word = &mut self.levels[base][index >> 6];
        *word &= *word - 1;
        if *word == 0 {
            self.clear_summaries(order, index >> 6);
        }
        self.counts[order as usize] -= 1;
        self.free -= 1u64 << (order + self.min_log2);
        index as u32
    }

    /// Word `index` of level 0 of `order` has turned zero: clears its bit in
    /// the levels above, as far as words turn zero, and the non-empty bit if
    /// the top word does.
    #[inline(always)]
    fn clear_summaries(&mut self, order: u32, mut index: usize) {
        let base = order as usize * MAX_LEVELS;
        let count = level_count(self.units_log2 - order);
        for level in &mut self.levels[base + 1..base + count] {
            let word = &mut level[index >> 6];
            *word &= !(1u64 << (index & 63));
            if *word != 0 {
                return;
            }
            index >>= 6;
        }
        self.non_empty &= !(1u64 << order);
    }

    /// Grows the bitmap of `order` so that level 0 has word `word`: to the
    /// next power of two of words (at most the full size), and each level
    /// above to match.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, order: u32, word: usize) {
        let slot_bits = self.units_log2 - order;
        let full = 1usize << slot_bits.saturating_sub(6);
        let mut len = (word + 1).next_power_of_two().min(full);
        let base = order as usize * MAX_LEVELS;
        for level in &mut self.levels[base..base + level_count(slot_bits)] {
            level.resize(len, 0);
            len = len.div_ceil(64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_free(block: &BuddyBlock<impl Sized>) -> Vec<(u64, u64)> {
        let mut ranges: Vec<_> = block.free_ranges().collect();
        ranges.sort_unstable();
        ranges
    }

    #[test]
    fn new_rejects_bad_configs() {
        for (size, min_block) in [
            (0, 1),
            (1000, 8),
            (1024, 0),
            (1024, 3),
            (1024, 2048),
            (1 << 40, 256),
        ] {
            assert_eq!(
                BuddyBlock::<()>::new(size, min_block).unwrap_err(),
                BuddyError::InvalidConfig { size, min_block }
            );
        }
        // At most 2^26 minimum blocks.
        assert!(BuddyBlock::<()>::new(1 << 27, 1).is_err());
        assert!(BuddyBlock::<()>::new(1 << 63, 1 << 36).is_err());
        let mut block = BuddyBlock::<()>::new(1 << 26, 1).unwrap();
        assert_eq!(block.largest_free(), 1 << 26);
        let a = block.allocate(3, 0, ()).unwrap();
        let b = block.allocate(1 << 25, 1 << 25, ()).unwrap();
        assert_eq!((a, b, block.largest_free()), (0, 1 << 25, 1 << 24));
        block.validate().unwrap();
        // The worst case: every order's bitmap grown to its full size, about
        // 2 bits per minimum block (16 MiB here).
        let mut huge = BuddyBlock::<()>::new(1 << 63, 1 << 37).unwrap();
        let c = huge.allocate((1 << 62) + 1, 0, ()).unwrap();
        assert_eq!(huge.get(c), Some(((1 << 62) + (1 << 37), &())));
        huge.validate().unwrap();
        let bytes = huge.host_memory_bytes();
        assert!(bytes > 15 << 20 && bytes < 17 << 20, "{bytes}");
        huge.free(c).unwrap();
        assert_eq!(sorted_free(&huge), [(0, 1 << 63)]);
        let one = BuddyBlock::<()>::new(1, 1).unwrap();
        assert_eq!(sorted_free(&one), [(0, 1)]);
    }

    #[test]
    fn each_error_variant_leaves_block_unchanged() {
        let mut block = BuddyBlock::<u32>::new(4096, 256).unwrap();
        let a = block.allocate(1000, 0, 7).unwrap();
        let before = (
            sorted_free(&block),
            block.allocated_bytes(),
            block.allocation_count(),
        );
        let check = |block: &BuddyBlock<u32>| {
            block.validate().unwrap();
            assert_eq!(
                (
                    sorted_free(block),
                    block.allocated_bytes(),
                    block.allocation_count()
                ),
                before
            );
        };
        assert_eq!(block.allocate(0, 1, 0), Err(BuddyError::ZeroSize));
        check(&block);
        assert_eq!(
            block.allocate(16, 3, 0),
            Err(BuddyError::AlignmentNotPowerOfTwo { alignment: 3 })
        );
        check(&block);
        assert_eq!(
            block.allocate(4097, 1, 0),
            Err(BuddyError::TooLarge {
                size: 4097,
                alignment: 1,
                capacity: 4096
            })
        );
        assert_eq!(
            block.allocate(1, 8192, 0),
            Err(BuddyError::TooLarge {
                size: 1,
                alignment: 8192,
                capacity: 4096
            })
        );
        assert_eq!(
            block.allocate(u64::MAX, 1, 0),
            Err(BuddyError::TooLarge {
                size: u64::MAX,
                alignment: 1,
                capacity: 4096
            })
        );
        check(&block);
        assert_eq!(
            block.allocate(2049, 1, 0),
            Err(BuddyError::OutOfSpace {
                size: 2049,
                alignment: 1,
                largest_free: 2048
            })
        );
        check(&block);
        assert_eq!(
            block.free(a + 256),
            Err(BuddyError::UnknownOffset { offset: a + 256 })
        );
        assert_eq!(
            block.free(u64::MAX),
            Err(BuddyError::UnknownOffset { offset: u64::MAX })
        );
        check(&block);
        assert!(!block.can_allocate(0, 1));
        assert!(!block.can_allocate(1, 3));
        assert!(!block.can_allocate(2049, 1));
        assert!(block.can_allocate(2048, 2048));
        // Messages name the values.
        let msg = BuddyError::OutOfSpace {
            size: 2049,
            alignment: 1,
            largest_free: 2048,
        }
        .to_string();
        assert!(msg.contains("2049") && msg.contains("2048"), "{msg}");
        assert_eq!(block.free(a), Ok((1024, 7)));
        assert_eq!(sorted_free(&block), [(0, 4096)]);
    }

    #[test]
    fn tail_trim_layout_and_partial_free() {
        let mut block = BuddyBlock::<()>::new(4096, 256).unwrap();
        // 700 keeps 768 of a 1024 block at 0; the rest of the 4096 comes back
        // as 256 @ 768, 1024 @ 1024, 2048 @ 2048.
        let a = block.allocate(700, 1, ()).unwrap();
        assert_eq!((a, block.get(a).map(|g| g.0)), (0, Some(768)));
        assert_eq!(
            sorted_free(&block),
            [(768, 256), (1024, 1024), (2048, 2048)]
        );
        block.validate().unwrap();
        // The 256 tail piece is reused first (smallest order that fits).
        let b = block.allocate(1, 0, ()).unwrap();
        assert_eq!(b, 768);
        assert_eq!(sorted_free(&block), [(1024, 1024), (2048, 2048)]);
        // Freeing `a` now cannot take its tail back: pieces 512 @ 0, 256 @ 512.
        assert_eq!(block.free(a), Ok((768, ())));
        assert_eq!(
            sorted_free(&block),
            [(0, 512), (512, 256), (1024, 1024), (2048, 2048)]
        );
        block.validate().unwrap();
        // Freeing `b` coalesces everything.
        block.free(b).unwrap();
        assert_eq!(sorted_free(&block), [(0, 4096)]);
        assert_eq!(block.free_histogram().collect::<Vec<_>>(), [(4096, 1)]);
    }

    #[test]
    fn alignment_raises_the_order_and_trims_the_rest() {
        let mut block = BuddyBlock::<()>::new(1 << 16, 256).unwrap();
        let small = block.allocate(256, 0, ()).unwrap();
        assert_eq!(small, 0);
        // 300 bytes at 4096 alignment: order 12, kept 512, at 4096.
        let a = block.allocate(300, 4096, ()).unwrap();
        assert_eq!(a, 4096);
        assert_eq!(block.get(a).unwrap().0, 512);
        assert_eq!(
            sorted_free(&block),
            [
                (256, 256),
                (512, 512),
                (1024, 1024),
                (2048, 2048),
                (4096 + 512, 512),
                (4096 + 1024, 1024),
                (4096 + 2048, 2048),
                (8192, 8192),
                (16384, 16384),
                (32768, 32768)
            ]
        );
        block.validate().unwrap();
        block.free(a).unwrap();
        assert_eq!(
            sorted_free(&block),
            [
                (256, 256),
                (512, 512),
                (1024, 1024),
                (2048, 2048),
                (4096, 4096),
                (8192, 8192),
                (16384, 16384),
                (32768, 32768)
            ]
        );
        block.free(small).unwrap();
        assert_eq!(sorted_free(&block), [(0, 1 << 16)]);
    }

    #[test]
    fn odd_kept_size_takes_every_tail_piece_back() {
        // 11 units of 256 in a 16-unit block: kept pieces 8+2+1, tail 1+4.
        let mut block = BuddyBlock::<()>::new(16 * 256, 256).unwrap();
        let a = block.allocate(11 * 256 - 5, 0, ()).unwrap();
        assert_eq!(sorted_free(&block), [(11 * 256, 256), (12 * 256, 4 * 256)]);
        assert_eq!(block.free_bytes(), 5 * 256);
        block.free(a).unwrap();
        assert_eq!(sorted_free(&block), [(0, 16 * 256)]);
        // Same, with the 4-unit tail piece taken in between.
        let a = block.allocate(11 * 256, 0, ()).unwrap();
        let b = block.allocate(1024, 0, ()).unwrap();
        assert_eq!(b, 12 * 256);
        block.free(a).unwrap();
        assert_eq!(sorted_free(&block), [(0, 2048), (2048, 1024)]);
        block.validate().unwrap();
        block.free(b).unwrap();
        assert_eq!(sorted_free(&block), [(0, 4096)]);
    }

    #[test]
    fn min_block_one_and_whole_block() {
        let mut block = BuddyBlock::<u8>::new(64, 1).unwrap();
        let a = block.allocate(3, 0, 1).unwrap();
        let b = block.allocate(5, 8, 2).unwrap();
        let c = block.allocate(1, 1, 3).unwrap();
        // Of the order-0 tail pieces 1 @ 3 and 1 @ 13, the lower address goes first.
        assert_eq!((a, b, c), (0, 8, 3));
        block.validate().unwrap();
        *block.get_mut(b).unwrap() = 9;
        assert_eq!(block.get(b), Some((5, &9)));
        for off in [a, b, c] {
            block.free(off).unwrap();
            block.validate().unwrap();
        }
        let whole = block.allocate(64, 64, 0).unwrap();
        assert_eq!((whole, block.free_bytes(), block.largest_free()), (0, 0, 0));
        assert!(!block.can_allocate(1, 1));
        block.free(whole).unwrap();
        assert_eq!(sorted_free(&block), [(0, 64)]);
    }

    #[test]
    fn clear_restores_one_block() {
        let mut block = BuddyBlock::<String>::new(1 << 20, 256).unwrap();
        for i in 0..100 {
            block.allocate(1000 + i * 17, 0, i.to_string()).unwrap();
        }
        block.clear();
        block.validate().unwrap();
        assert!(block.is_empty());
        assert_eq!(sorted_free(&block), [(0, 1 << 20)]);
    }

    #[test]
    fn host_metadata_follows_the_used_part_of_the_block() {
        // A fresh block has one-word bitmaps: a few KiB whatever its size.
        let fresh = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        assert!(fresh.host_memory_bytes() < 8 << 10, "{}", fresh.host_memory_bytes());
        let mut block = fresh.clone();
        for size in [1u64, 300, 70_000, 1 << 20, 5 << 20, 12345] {
            block.allocate(size, 256, ()).unwrap();
        }
        block.validate().unwrap();
        let bytes = block.host_memory_bytes();
        assert!(bytes < 64 << 10, "{bytes} bytes of metadata");
    }

    #[test]
    fn one_gib_block_metadata_is_bounded() {
        let mut block = BuddyBlock::<u32>::new(1 << 30, 256).unwrap();
        let mut offsets = Vec::new();
        for i in 0..1000u32 {
            let size = 256 + u64::from(i) * 1021 % (1 << 20);
            offsets.push(block.allocate(size, 256, i).unwrap());
        }
        block.validate().unwrap();
        // About half the block is in use: the bitmaps may reach their full
        // 2 bits per minimum block (1 MiB for 2^22 units, plus summaries),
        // the live map adds about 20 bytes per allocation.
        let bound = (1 << 20) + (1 << 20) / 63 + (64 << 10);
        assert!(block.host_memory_bytes() < bound, "{}", block.host_memory_bytes());
        for (i, off) in offsets.into_iter().enumerate() {
            assert_eq!(block.free(off).unwrap().1, i as u32);
        }
        assert_eq!(sorted_free(&block), [(0, 1 << 30)]);
        assert!(block.host_memory_bytes() < bound);
        // 100 small allocations use the start of a 1 GiB block only.
        let mut light = BuddyBlock::<u32>::new(1 << 30, 256).unwrap();
        for i in 0..100u32 {
            light.allocate(256 + u64::from(i) * 97, 0, i).unwrap();
        }
        light.validate().unwrap();
        assert!(light.host_memory_bytes() < 16 << 10, "{}", light.host_memory_bytes());
    }

    #[test]
    fn lowest_address_first() {
        // 2^20 units: four bitmap levels at order 0.
        let mut block = BuddyBlock::<u32>::new(256 << 20, 256).unwrap();
        let offsets: Vec<u64> = (0..10_000u32)
            .map(|i| block.allocate(256, 0, i).unwrap())
            .collect();
        // Packed from 0, in order.
        assert!(offsets.iter().enumerate().all(|(i, &o)| o == i as u64 * 256));
        // Free a scattered set (across leaf words and level-1 words), in a
        // scrambled order; they come back lowest first.
        let mut freed: Vec<u64> = (0..10_000u64)
            .filter(|i| i % 7 == 3 || i % 4099 == 1)
            .map(|i| i * 256)
            .collect();
        let n = freed.len();
        for k in 0..n {
            let off = freed[(k * 7919) % n];
            block.free(off).unwrap();
        }
        block.validate().unwrap();
        freed.sort_unstable();
        // No two freed units are buddies, so all are order-0 holes.
        assert_eq!(block.free_histogram().next(), Some((256, n)));
        for (k, &want) in freed.iter().enumerate() {
            let got = block.allocate(256, 0, 0).unwrap();
            assert_eq!(got, want, "hole {k}");
        }
        block.validate().unwrap();
        // Next is the first unit past the packed prefix.
        assert_eq!(block.allocate(256, 0, 0).unwrap(), 10_000 * 256);
    }

    #[test]
    fn summaries_track_words_across_levels() {
        // 2^20 units: order 0 has levels of 2^14, 2^8, 4 and 1 words.
        let mut block = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        assert_eq!(level_count(20), 4);
        // Fill the first 4096 * 64 units + 1 (one level-2 bit's worth of
        // order-0 slots, and one more) with one allocation, then a single
        // unit: the order-0 hole sits in level-1 word 0 / level-2 word ...
        let big = block.allocate((1 << 18) * 256 + 256, 0, ()).unwrap();
        assert_eq!(big, 0);
        block.validate().unwrap();
        // Kept 2^18 + 1 units: the tail's order-0 piece is unit 2^18 + 1.
        assert!(block.is_free(0, (1 << 18) + 1));
        let top = &block.levels[3];
        assert_eq!(top.len(), 1);
        assert_eq!(top[0], 1 << 1, "level-3 bit of slot 2^18 + 1");
        assert_eq!(block.allocate(1, 0, ()).unwrap(), ((1 << 18) + 1) * 256);
        // The order-0 bitmap is empty again, up to its top word and the mask.
        assert_eq!(block.levels[..4].iter().flatten().filter(|&&w| w != 0).count(), 0);
        assert_eq!(block.non_empty & 1, 0);
        block.validate().unwrap();
        block.free(big).unwrap();
        assert!(block.levels[..4].iter().flatten().any(|&w| w != 0));
        block.validate().unwrap();
    }

    #[test]
    fn validate_catches_broken_bitmaps() {
        let mut block = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        for size in [256u64, 700, 5000, 1 << 16] {
            block.allocate(size, 0, ()).unwrap();
        }
        block.validate().unwrap();
        // A stale summary bit (word below is zero).
        let mut broken = block.clone();
        broken.levels[1][0] |= 1 << 9;
        assert!(broken.validate().unwrap_err().contains("summary"));
        // A missing summary bit.
        let mut broken = block.clone();
        let order = block.non_empty.trailing_zeros() as usize;
        let top = order * MAX_LEVELS + level_count(20 - order as u32) - 1;
        broken.levels[top][0] = 0;
        assert!(broken.validate().is_err());
        // A free bit for a range that is allocated.
        let mut broken = block.clone();
        broken.levels[0][0] |= 1;
        assert!(broken.validate().is_err());
        // The mask of non-empty orders.
        let mut broken = block.clone();
        broken.non_empty ^= 1 << 3;
        assert!(broken.validate().unwrap_err().contains("non-empty"));
        // A count.
        let mut broken = block.clone();
        broken.counts[order] += 1;
        assert!(broken.validate().unwrap_err().contains("count"));
        // Two free buddies left uncoalesced.
        let mut broken = BuddyBlock::<()>::new(4096, 256).unwrap();
        broken.take_free(4, 0);
        broken.insert_free(3, 0);
        broken.insert_free(3, 1);
        assert!(broken.validate().unwrap_err().contains("buddy"));
    }

    #[test]
    fn bitmaps_grow_lazily_in_powers_of_two() {
        let mut block = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        // Every level starts as one word.
        for order in 0..=20u32 {
            let base = order as usize * MAX_LEVELS;
            let count = level_count(20 - order);
            assert!(block.levels[base..base + count].iter().all(|l| l.len() == 1));
            assert!(block.levels[base + count..base + MAX_LEVELS].iter().all(Vec::is_empty));
        }
        // A 256-byte allocation aligned to 64 MiB after the first 64 MiB
        // lands at unit 2^18 and frees a unit at 2^18 + 1: order 0 grows to
        // cover leaf word 2^12 (2^13 words), level 1 to 2^7 words.
        let first = block.allocate(64 << 20, 0, ()).unwrap();
        let high = block.allocate(256, 64 << 20, ()).unwrap();
        assert_eq!((first, high), (0, 64 << 20));
        assert_eq!(block.levels[0].len(), 1 << 13);
        assert_eq!(block.levels[1].len(), 1 << 7);
        assert_eq!(block.levels[2].len(), 2);
        assert_eq!(block.levels[3].len(), 1);
        block.validate().unwrap();
        let grown = block.host_memory_bytes();
        // Order r holds slot 2^(18 - r) + 1: about 2^(13 - r) words, 128 KiB in all.
        assert!(grown > 128 << 10 && grown < 160 << 10, "{grown}");
        // Nothing shrinks, and `clear` keeps the capacity.
        block.free(high).unwrap();
        block.clear();
        block.validate().unwrap();
        assert_eq!(block.levels[0].len(), 1 << 13);
        assert_eq!(block.host_memory_bytes(), grown);
        assert_eq!(sorted_free(&block), [(0, 256 << 20)]);
    }
}
