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
//! [`BuddyError::InvalidConfig`].
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

/// Orders are `0..=units_log2 <= MAX_UNITS_LOG2 < 32`: the per-order table
/// has 32 entries and is indexed with `order & 31`, which needs no bounds
/// check.
const ORDER_SLOTS: usize = 32;

/// `log2` of the slots a [`Chunk`] covers: 64 words of 64 bits.
const CHUNK_LOG2: u32 = 12;

/// Most summary levels above the chunks: `ceil((MAX_UNITS_LOG2 - 12) / 6)`.
const MAX_UPPER: usize = (MAX_UNITS_LOG2 - CHUNK_LOG2).div_ceil(6) as usize;

/// Number of summary levels above the chunks of an order with `2^chunks_log2`
/// chunks: enough that the top level is a single word (none for one chunk).
#[inline(always)]
fn upper_count(chunks_log2: u32) -> usize {
    chunks_log2.div_ceil(6) as usize
}

/// 4096 slots of one order's free bitmap: `words` holds one bit per slot
/// (set = that block is free), and bit `w` of `summary` says whether
/// `words[w]` is non-zero. The summary sits next to the words it covers, and
/// `words[w & 63]` needs no bounds check.
#[derive(Clone)]
struct Chunk {
    summary: u64,
    words: [u64; 64],
}

impl Chunk {
    const EMPTY: Chunk = Chunk {
        summary: 0,
        words: [0; 64],
    };
}

/// The free bitmap of one order.
#[derive(Clone, Default)]
struct OrderBits {
    /// Chunk `c` covers slots `c << 12 .. (c + 1) << 12`. Empty at first and
    /// grown lazily to the highest chunk written (a power of two of chunks, at
    /// most the full size); slots past the end are not free.
    chunks: Vec<Chunk>,
    /// Summary levels above the chunks, lowest first, each at its offset in
    /// [`BuddyBlock::upper_offsets`] (the same layout for every order, sized
    /// for order 0): bit `c` of the first level says whether chunk `c`'s
    /// summary is non-zero, bit `i` of each next level whether word `i` of
    /// the level below is non-zero; the top level is one word. Allocated in
    /// full at creation: 5 words for 2^20 units, at most 261.
    upper: Vec<u64>,
    /// The lowest non-empty chunk while the order has a free block (else
    /// meaningless), so that taking the lowest block needs no walk down the
    /// summary levels: lowered when a lower chunk turns non-empty, found
    /// again through the summary levels when it turns empty.
    first: usize,
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

    /// Slots of the free blocks of `order`, ascending: the set bits of the
    /// chunks with a non-zero summary.
    fn free_slots(&self, order: u32) -> impl Iterator<Item = usize> + '_ {
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
    fn is_free(&self, order: u32, slot: u32) -> bool {
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
    fn insert_free(&mut self, order: u32, slot: u32) {
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
    fn set_upper(&mut self, order: u32, mut index: usize) {
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
    fn take_free(&mut self, order: u32, slot: u32) -> bool {
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
    fn take_lowest(&mut self, order: u32) -> u32 {
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
    fn clear_upper(&mut self, order: u32, c: usize) {
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
    fn grow(&mut self, order: u32, c: usize) {
        let full = 1usize << (self.units_log2 - order).saturating_sub(CHUNK_LOG2);
        let len = (c + 1).next_power_of_two().min(full);
        let chunks = &mut self.orders[order as usize & (ORDER_SLOTS - 1)].chunks;
        // Exact: the lengths are powers of two already, and a chunk is 520
        // bytes (`Vec` would round a first allocation up to 4 of them).
        chunks.reserve_exact(len - chunks.len());
        chunks.resize(len, Chunk::EMPTY);
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
        // A fresh block has one bitmap chunk: a few KiB whatever its size.
        let fresh = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        assert!(
            fresh.host_memory_bytes() < 4 << 10,
            "{}",
            fresh.host_memory_bytes()
        );
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
        assert!(
            block.host_memory_bytes() < bound,
            "{}",
            block.host_memory_bytes()
        );
        for (i, off) in offsets.into_iter().enumerate() {
            assert_eq!(block.free(off).unwrap().1, i as u32);
        }
        assert_eq!(sorted_free(&block), [(0, 1 << 30)]);
        assert!(block.host_memory_bytes() < bound);
        // 100 small allocations use the start of a 1 GiB block only: one
        // 520-byte chunk for each of the 23 orders.
        let mut light = BuddyBlock::<u32>::new(1 << 30, 256).unwrap();
        for i in 0..100u32 {
            light.allocate(256 + u64::from(i) * 97, 0, i).unwrap();
        }
        light.validate().unwrap();
        assert!(
            light.host_memory_bytes() < 24 << 10,
            "{}",
            light.host_memory_bytes()
        );
    }

    #[test]
    fn lowest_address_first() {
        // 2^20 units: 256 chunks at order 0, two summary levels above them.
        let mut block = BuddyBlock::<u32>::new(256 << 20, 256).unwrap();
        let offsets: Vec<u64> = (0..10_000u32)
            .map(|i| block.allocate(256, 0, i).unwrap())
            .collect();
        // Packed from 0, in order.
        assert!(offsets
            .iter()
            .enumerate()
            .all(|(i, &o)| o == i as u64 * 256));
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
        // 2^20 units: order 0 has 256 chunks, two summary levels above them
        // (4 words, then 1).
        let mut block = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        assert_eq!(
            (block.upper_levels, block.upper_offsets[..3].to_vec()),
            (2, vec![0, 4, 5])
        );
        // Kept 2^18 + 1 units at 0: the tail's order-0 piece is slot
        // 2^18 + 1, in chunk 64, word 0, bit 1.
        let big = block.allocate((1 << 18) * 256 + 256, 0, ()).unwrap();
        assert_eq!(big, 0);
        block.validate().unwrap();
        assert!(block.is_free(0, (1 << 18) + 1));
        let bits = &block.orders[0];
        assert_eq!(bits.chunks[64].summary, 1);
        assert_eq!(bits.chunks[64].words[0], 1 << 1);
        // Level 2: bit 64 (word 1, bit 0); level 3: bit 1.
        assert_eq!(bits.upper, [0, 1, 0, 0, 1 << 1]);
        let small = block.allocate(1, 0, ()).unwrap();
        assert_eq!(small, ((1 << 18) + 1) * 256);
        // The order-0 bitmap is empty again, up to its top word and the mask.
        let bits = &block.orders[0];
        assert!(bits
            .chunks
            .iter()
            .all(|c| c.summary == 0 && c.words == [0; 64]));
        assert!(bits.upper.iter().all(|&w| w == 0));
        assert_eq!(block.non_empty & 1, 0);
        block.validate().unwrap();
        block.free(big).unwrap();
        block.free(small).unwrap();
        assert_eq!(sorted_free(&block), [(0, 256 << 20)]);
        block.validate().unwrap();
    }

    #[test]
    fn validate_catches_broken_bitmaps() {
        let mut block = BuddyBlock::<()>::new(256 << 20, 256).unwrap();
        for size in [256u64, 700, 5000, 1 << 16] {
            block.allocate(size, 0, ()).unwrap();
        }
        block.validate().unwrap();
        let order = block.non_empty.trailing_zeros() as usize;
        // A stale chunk summary bit (the word is zero).
        let mut broken = block.clone();
        broken.orders[order].chunks[0].summary |= 1 << 9;
        assert!(broken.validate().unwrap_err().contains("summary"));
        // A stale summary bit above the chunks.
        let mut broken = block.clone();
        broken.orders[order].upper[0] |= 1 << 9;
        assert!(broken.validate().unwrap_err().contains("summary"));
        // A missing top bit.
        let mut broken = block.clone();
        broken.orders[order].upper[4] = 0;
        assert!(broken.validate().is_err());
        // A free bit for a range that is allocated.
        let mut broken = block.clone();
        broken.orders[0].chunks[0].words[0] |= 1;
        assert!(broken.validate().is_err());
        // A free bit without its chunk summary bit.
        let mut broken = block.clone();
        broken.orders[0].chunks[0].words[40] |= 1;
        assert!(broken.validate().unwrap_err().contains("summary"));
        // The mask of non-empty orders.
        let mut broken = block.clone();
        broken.non_empty ^= 1 << 3;
        assert!(broken.validate().unwrap_err().contains("non-empty"));
        // The allocated-bytes counter.
        let mut broken = block.clone();
        broken.allocated += 256;
        assert!(broken.validate().unwrap_err().contains("counters"));
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
        // Every order starts without chunks (the highest has the one free
        // block) and with full summary levels (5 words); orders past the
        // highest have nothing.
        for order in 0..ORDER_SLOTS {
            let bits = &block.orders[order];
            let want = match order {
                0..20 => (0, 5),
                20 => (1, 5),
                _ => (0, 0),
            };
            assert_eq!((bits.chunks.len(), bits.upper.len()), want, "order {order}");
        }
        // A 256-byte allocation aligned to 64 MiB after the first 64 MiB
        // lands at unit 2^18 and frees a unit at 2^18 + 1: order 0 grows to
        // cover chunk 64 (128 chunks).
        let first = block.allocate(64 << 20, 0, ()).unwrap();
        let high = block.allocate(256, 64 << 20, ()).unwrap();
        assert_eq!((first, high), (0, 64 << 20));
        assert_eq!(block.orders[0].chunks.len(), 128);
        // Order r holds slot 2^(18 - r) + 1 in chunk 2^(6 - r): 2^(7 - r)
        // chunks up to order 6, one chunk above.
        for order in 1..=20 {
            assert_eq!(
                block.orders[order].chunks.len(),
                1 << 7usize.saturating_sub(order)
            );
        }
        block.validate().unwrap();
        let grown = block.host_memory_bytes();
        // 255 chunks of 520 bytes, about 130 KiB.
        assert!(grown > 128 << 10 && grown < 160 << 10, "{grown}");
        // Nothing shrinks, and `clear` keeps the capacity.
        block.free(high).unwrap();
        block.clear();
        block.validate().unwrap();
        assert_eq!(block.orders[0].chunks.len(), 128);
        assert_eq!(block.host_memory_bytes(), grown);
        assert_eq!(sorted_free(&block), [(0, 256 << 20)]);
    }
}
