//! Two-level segregated fit (TLSF) placement inside one block, on `u64`
//! offsets only.
//!
//! # Why a second placement core
//!
//! The tail-trimmed buddy ([`crate::buddy`]) wastes less than its minimum
//! block per allocation, but it can only place a request in a free, naturally
//! aligned power-of-two range. Under random churn the free space ends up
//! split into trimmed tail pieces that are smaller than the next request's
//! power of two: a 256 MiB buddy block stops accepting 256 B..64 KiB requests
//! at about 62% fill (`benches/buddy.rs`), and the peers benchmark measured
//! 45-59% efficiency (peak live / peak committed) on every trace. A free-list
//! allocator places a request in *any* free range long enough, so its fill is
//! limited only by true fragmentation. TLSF does that in O(1): it is the
//! placement the allocator uses by default ([`crate::AllocatorConfig::placement`]);
//! the buddy stays for [`crate::VirtualBlock`] and as an option.
//!
//! # Layout
//!
//! A [`Tlsf`] manages `[0, size)` in units of `granularity` bytes (a
//! power of two; the allocator uses its minimum block, 256 B or
//! `bufferImageGranularity`). Every range, free or live, is a node in a
//! `Vec`, linked to its neighbours in address order; together they tile the
//! block. Free nodes are never adjacent (free merges with both neighbours),
//! and each sits in one of `FL x 32` doubly linked free lists by size class:
//! the first level is `floor(log2(units))`, the second splits each power of
//! two into 32 equal classes (exact classes below 64 units). A `u32` bitmap
//! of non-empty first levels and one per first level of non-empty lists find
//! a list with two `trailing_zeros`.
//!
//! # Allocation
//!
//! A request keeps `kept = round_up(size, granularity)` bytes, so waste per
//! allocation is below the granularity, as for the buddy. The search rounds
//! `kept` up to the next class boundary, so the head of any list found fits
//! without looking at it (*good fit*: at most 1/32 larger class than best
//! fit). Alignments above the granularity first try the same search and
//! check the node's padding; if it does not fit, the search asks for
//! `kept + alignment - granularity`, whose lists always fit. Only if both
//! miss (before the pool grows) the slow path scans up to [`EXACT_SCAN`]
//! nodes of the request's own class (an exact fit may be free there) and,
//! for aligned requests, of every larger class, so a fresh block always
//! takes a request it is large enough for. The chosen
//! node is split: padding before it and the remainder after it become free
//! nodes. Allocation returns the offset and a *handle* (the node index) that
//! frees in O(1) without a hash lookup.
//!
//! # Free
//!
//! Frees the node and merges it with a free left and right neighbour (the
//! left node absorbs, so node 0 always starts at offset 0), then pushes the
//! result on its list. O(1).
//!
//! # Host metadata
//!
//! One node (32 bytes, plus `size_of::<Option<T>>()` for the payload, kept
//! apart so merges touch only dense links) per live allocation and per
//! free range (at most one more than the live ones), plus 3.6 KiB of list
//! heads. Unlike the buddy's bitmaps it does not grow with the block size.
#![deny(unsafe_code)]

use crate::buddy::BuddyError;

/// Second-level classes per power of two, log2.
const SL_LOG2: u32 = 5;
const SL_COUNT: u32 = 1 << SL_LOG2;
/// First levels: sizes up to 2^32 - 1 units.
const FL_COUNT: usize = (32 - SL_LOG2 + 1) as usize;
const NIL: u32 = u32::MAX;
/// Nodes of the request's own class scanned when no larger class has one.
pub const EXACT_SCAN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Live,
    /// Not part of any region: waiting in the spare list for reuse.
    Spare,
}

/// 32 bytes: the links a merge reads from the neighbours stay dense in
/// cache; payloads live apart, in `Tlsf::payloads`.
#[derive(Debug, Clone, Copy)]
struct Node {
    offset: u32,
    size: u32,
    region: u32,
    prev_phys: u32,
    next_phys: u32,
    prev_free: u32,
    next_free: u32,
    state: State,
}

#[derive(Clone, Copy, Debug)]
struct Region {
    units: u32,
    /// The node at offset 0 (it never changes: a merge keeps the lower node).
    first: u32,
    live: u32,
    allocated_units: u64,
}

/// A live allocation placed by [`Tlsf::allocate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsfAllocation {
    /// The region (block) it lies in.
    pub region: u32,
    /// Offset in bytes inside the region, aligned as asked.
    pub offset: u64,
    /// Handle for [`Tlsf::free`] and [`Tlsf::get`].
    pub handle: u32,
}

/// Two-level segregated fit over any number of regions (blocks): O(1)
/// allocate and free, waste per allocation below the granularity, placement
/// in any free range of any region that fits. See the [module docs](self).
#[derive(Debug)]
pub struct Tlsf<T> {
    unit_log2: u32,
    regions: Vec<Option<Region>>,
    nodes: Vec<Node>,
    /// Payload of each live node, by node index.
    payloads: Vec<Option<T>>,
    spare: Vec<u32>,
    fl_bitmap: u32,
    sl_bitmaps: [u32; FL_COUNT],
    heads: Box<[u32]>,
    allocated_units: u64,
    live: usize,
    free_nodes: usize,
}

/// Size class of `units` (>= 1): `(first level, second level)`.
#[inline]
fn mapping(units: u32) -> (u32, u32) {
    if units < SL_COUNT {
        (0, units)
    } else {
        let l = 31 - units.leading_zeros();
        (l - SL_LOG2 + 1, (units >> (l - SL_LOG2)) ^ SL_COUNT)
    }
}

/// Class whose every node holds at least `units`: `units` rounded up to the
/// next class boundary. `None` when no class can (beyond `u32`).
#[inline]
fn mapping_search(units: u32) -> Option<(u32, u32)> {
    if units < SL_COUNT {
        return Some((0, units));
    }
    let l = 31 - units.leading_zeros();
    let round = (1u32 << (l - SL_LOG2)) - 1;
    units.checked_add(round).map(mapping)
}

impl<T> Tlsf<T> {
    /// Creates an allocator without regions, placing at `granularity`-byte
    /// units (a power of two, else [`BuddyError::InvalidConfig`]).
    pub fn new(granularity: u64) -> Result<Self, BuddyError> {
        if !granularity.is_power_of_two() {
            return Err(BuddyError::InvalidConfig {
                size: 0,
                min_block: granularity,
            });
        }
        Ok(Self {
            unit_log2: granularity.trailing_zeros(),
            regions: Vec::new(),
            nodes: Vec::new(),
            payloads: Vec::new(),
            spare: Vec::new(),
            fl_bitmap: 0,
            sl_bitmaps: [0; FL_COUNT],
            heads: vec![NIL; FL_COUNT * SL_COUNT as usize].into_boxed_slice(),
            allocated_units: 0,
            live: 0,
            free_nodes: 0,
        })
    }

    /// Placement unit in bytes; every kept size is a multiple of it.
    #[inline]
    pub fn granularity(&self) -> u64 {
        1 << self.unit_log2
    }

    /// Adds a free region (a block) of `size` bytes and returns its index:
    /// the lowest index not in use. `size` must be a non-zero multiple of
    /// the granularity with fewer than `2^32 - 1` units; otherwise
    /// [`BuddyError::InvalidConfig`].
    pub fn add_region(&mut self, size: u64) -> Result<u32, BuddyError> {
        let g = self.granularity();
        let invalid = BuddyError::InvalidConfig { size, min_block: g };
        if size == 0 || size % g != 0 {
            return Err(invalid);
        }
        let units = u32::try_from(size >> self.unit_log2).map_err(|_| invalid.clone())?;
        if units == u32::MAX {
            return Err(invalid);
        }
        let index = match self.regions.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.regions.push(None);
                self.regions.len() - 1
            }
        };
        let first = self.new_node(Node {
            offset: 0,
            size: units,
            region: index as u32,
            prev_phys: NIL,
            next_phys: NIL,
            prev_free: NIL,
            next_free: NIL,
            state: State::Free,
        });
        self.regions[index] = Some(Region {
            units,
            first,
            live: 0,
            allocated_units: 0,
        });
        self.push_free(first);
        Ok(index as u32)
    }

    /// Removes an empty region. `Err` (and nothing changes) when it does not
    /// exist or still holds allocations.
    pub fn remove_region(&mut self, region: u32) -> Result<(), BuddyError> {
        let r = self
            .region(region)
            .ok_or(BuddyError::UnknownOffset { offset: 0 })?;
        if r.live != 0 {
            return Err(BuddyError::UnknownOffset { offset: 0 });
        }
        self.unlink_free(r.first);
        self.nodes[r.first as usize].state = State::Spare;
        self.spare.push(r.first);
        self.regions[region as usize] = None;
        while self.regions.last().is_some_and(Option::is_none) {
            self.regions.pop();
        }
        Ok(())
    }

    #[inline]
    fn region(&self, region: u32) -> Option<Region> {
        self.regions.get(region as usize).copied().flatten()
    }

    /// Size of a region in bytes (0 if it does not exist).
    pub fn region_size(&self, region: u32) -> u64 {
        self.region(region)
            .map_or(0, |r| u64::from(r.units) << self.unit_log2)
    }

    /// Sum of the kept sizes of a region's live allocations.
    #[inline]
    pub fn region_allocated_bytes(&self, region: u32) -> u64 {
        self.region(region)
            .map_or(0, |r| r.allocated_units << self.unit_log2)
    }

    /// Number of live allocations in a region.
    #[inline]
    pub fn region_allocation_count(&self, region: u32) -> u32 {
        self.region(region).map_or(0, |r| r.live)
    }

    /// Whether a region holds no live allocation (true if it does not exist).
    #[inline]
    pub fn region_is_empty(&self, region: u32) -> bool {
        self.region(region).is_none_or(|r| r.live == 0)
    }

    /// Indices of the regions that exist.
    pub fn regions(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.regions.len() as u32).filter(|&r| self.region(r).is_some())
    }

    /// Sum of the kept sizes of all live allocations.
    #[inline]
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_units << self.unit_log2
    }

    /// Number of live allocations.
    #[inline]
    pub fn allocation_count(&self) -> usize {
        self.live
    }

    /// Whether there is no live allocation.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    #[inline]
    fn list(fl: u32, sl: u32) -> usize {
        (fl * SL_COUNT + sl) as usize
    }

    #[inline]
    fn push_free(&mut self, n: u32) {
        let (fl, sl) = mapping(self.nodes[n as usize].size);
        let li = Self::list(fl, sl);
        let head = self.heads[li];
        {
            let node = &mut self.nodes[n as usize];
            node.state = State::Free;
            node.prev_free = NIL;
            node.next_free = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev_free = n;
        }
        self.heads[li] = n;
        self.fl_bitmap |= 1 << fl;
        self.sl_bitmaps[fl as usize] |= 1 << sl;
        self.free_nodes += 1;
    }

    #[inline]
    fn unlink_free(&mut self, n: u32) {
        let (size, prev, next) = {
            let node = &self.nodes[n as usize];
            (node.size, node.prev_free, node.next_free)
        };
        if next != NIL {
            self.nodes[next as usize].prev_free = prev;
        }
        if prev != NIL {
            self.nodes[prev as usize].next_free = next;
        } else {
            let (fl, sl) = mapping(size);
            self.heads[Self::list(fl, sl)] = next;
            if next == NIL {
                self.sl_bitmaps[fl as usize] &= !(1 << sl);
                if self.sl_bitmaps[fl as usize] == 0 {
                    self.fl_bitmap &= !(1 << fl);
                }
            }
        }
        self.free_nodes -= 1;
    }

    /// The first non-empty list at class `(fl, sl)` or above.
    #[inline]
    fn next_list(&self, fl: u32, sl: u32) -> Option<(u32, u32)> {
        if fl as usize >= FL_COUNT {
            return None;
        }
        let sl_map = self.sl_bitmaps[fl as usize] & u32::MAX.checked_shl(sl).unwrap_or(0);
        if sl_map != 0 {
            return Some((fl, sl_map.trailing_zeros()));
        }
        let fl_map = self.fl_bitmap & u32::MAX.checked_shl(fl + 1).unwrap_or(0);
        if fl_map == 0 {
            return None;
        }
        let fl = fl_map.trailing_zeros();
        Some((fl, self.sl_bitmaps[fl as usize].trailing_zeros()))
    }

    /// Head of the first non-empty list at class `(fl, sl)` or above.
    #[inline]
    fn find_list(&self, fl: u32, sl: u32) -> Option<u32> {
        self.next_list(fl, sl)
            .map(|(fl, sl)| self.heads[Self::list(fl, sl)])
    }

    /// Units kept and alignment in units of a request, or its error.
    #[inline]
    fn request(&self, size: u64, alignment: u64) -> Result<(u32, u32), BuddyError> {
        if size == 0 {
            return Err(BuddyError::ZeroSize);
        }
        let alignment = alignment.max(1);
        if !alignment.is_power_of_two() {
            return Err(BuddyError::AlignmentNotPowerOfTwo { alignment });
        }
        let kept = size.div_ceil(self.granularity());
        let align = (alignment >> self.unit_log2).max(1);
        if kept >= u64::from(u32::MAX) || align >= u64::from(u32::MAX) {
            return Err(BuddyError::TooLarge {
                size,
                alignment,
                capacity: self.largest_region(),
            });
        }
        Ok((kept as u32, align as u32))
    }

    fn largest_region(&self) -> u64 {
        self.regions
            .iter()
            .flatten()
            .map(|r| u64::from(r.units) << self.unit_log2)
            .max()
            .unwrap_or(0)
    }

    /// Where an allocation of `kept` units aligned to `align` units would
    /// start inside node `n`, if it fits there.
    #[inline]
    fn fit(&self, n: u32, kept: u32, align: u32) -> Option<u32> {
        let node = &self.nodes[n as usize];
        let start = u64::from(node.offset).next_multiple_of(u64::from(align));
        let end = u64::from(node.offset) + u64::from(node.size);
        // `start < end < u32::MAX` when it fits.
        (start + u64::from(kept) <= end).then_some(start as u32)
    }

    /// A free node that can hold the request, and where it would start.
    #[inline]
    fn find(&self, kept: u32, align: u32) -> Option<(u32, u32)> {
        if let Some(n) = mapping_search(kept).and_then(|(fl, sl)| self.find_list(fl, sl)) {
            if let Some(start) = self.fit(n, kept, align) {
                return Some((n, start));
            }
        }
        if align > 1 {
            // Room for any padding: the head of such a list always fits.
            let padded = kept.checked_add(align - 1)?;
            if let Some(n) = mapping_search(padded).and_then(|(fl, sl)| self.find_list(fl, sl)) {
                if let Some(start) = self.fit(n, kept, align) {
                    return Some((n, start));
                }
            }
        }
        // Slow path (before a pool grows): the request's own class may hold
        // a node large enough, and with alignment any larger class may hold
        // one whose padding fits. Scan up to EXACT_SCAN nodes of every
        // non-empty list from the request's class up.
        let (mut fl, mut sl) = mapping(kept);
        while let Some((f, s)) = self.next_list(fl, sl) {
            let mut n = self.heads[Self::list(f, s)];
            let mut scanned = 0;
            while n != NIL && scanned < EXACT_SCAN {
                if let Some(start) = self.fit(n, kept, align) {
                    return Some((n, start));
                }
                n = self.nodes[n as usize].next_free;
                scanned += 1;
            }
            if align == 1 && (f, s) != mapping(kept) {
                // Without alignment the head of any larger class fits, and
                // the fast path found none.
                return None;
            }
            (fl, sl) = if s + 1 < SL_COUNT {
                (f, s + 1)
            } else {
                (f + 1, 0)
            };
        }
        None
    }

    /// Whether [`allocate`](Self::allocate) with these arguments would
    /// succeed now. O(1) (plus the bounded scan of one size class).
    #[inline]
    pub fn can_allocate(&self, size: u64, alignment: u64) -> bool {
        match self.request(size, alignment) {
            Ok((kept, align)) => self.find(kept, align).is_some(),
            Err(_) => false,
        }
    }

    fn new_node(&mut self, node: Node) -> u32 {
        match self.spare.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.payloads.push(None);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Inserts a node of `size` units right after node `after` (physically).
    fn split_after(&mut self, after: u32, offset: u32, size: u32, state: State) -> u32 {
        let (next, region) = {
            let a = &self.nodes[after as usize];
            (a.next_phys, a.region)
        };
        let n = self.new_node(Node {
            offset,
            size,
            region,
            prev_phys: after,
            next_phys: next,
            prev_free: NIL,
            next_free: NIL,
            state,
        });
        self.nodes[after as usize].next_phys = n;
        if next != NIL {
            self.nodes[next as usize].prev_phys = n;
        }
        n
    }

    /// Allocates `size` bytes aligned to `alignment` (a power of two, or 0
    /// for none) in whichever region has a fitting free range. The
    /// allocation keeps `round_up(size, granularity)` bytes.
    ///
    /// Errors: [`ZeroSize`](BuddyError::ZeroSize),
    /// [`AlignmentNotPowerOfTwo`](BuddyError::AlignmentNotPowerOfTwo),
    /// [`TooLarge`](BuddyError::TooLarge) for sizes beyond any region's
    /// reach, [`OutOfSpace`](BuddyError::OutOfSpace) when no free range holds
    /// it now. On error nothing changes.
    pub fn allocate(
        &mut self,
        size: u64,
        alignment: u64,
        payload: T,
    ) -> Result<TlsfAllocation, BuddyError> {
        let (kept, align) = self.request(size, alignment)?;
        let Some((n, start)) = self.find(kept, align) else {
            return Err(BuddyError::OutOfSpace {
                size,
                alignment,
                largest_free: self.largest_free(),
            });
        };
        Ok(self.take(n, start, kept, payload))
    }

    /// [`Self::allocate`] without the error's details (a miss costs no walk
    /// for the largest free range): `None` for any error. The allocator's
    /// path, where a miss means "try elsewhere or grow".
    #[inline]
    pub fn try_allocate(
        &mut self,
        size: u64,
        alignment: u64,
        payload: T,
    ) -> Option<TlsfAllocation> {
        let (kept, align) = self.request(size, alignment).ok()?;
        let (n, start) = self.find(kept, align)?;
        Some(self.take(n, start, kept, payload))
    }

    /// Places `kept` units at `start` inside free node `n` (from `find`).
    fn take(&mut self, mut n: u32, start: u32, kept: u32, payload: T) -> TlsfAllocation {
        self.unlink_free(n);
        let (offset, node_size, region) = {
            let node = &self.nodes[n as usize];
            (node.offset, node.size, node.region)
        };
        let end = offset + node_size;
        if start > offset {
            // The padding stays in node `n` (the lower address keeps its
            // node); the allocation gets a new node after it.
            self.nodes[n as usize].size = start - offset;
            self.push_free(n);
            n = self.split_after(n, start, end - start, State::Live);
        }
        if start + kept < end {
            let rest = self.split_after(n, start + kept, end - start - kept, State::Free);
            self.push_free(rest);
        }
        let node = &mut self.nodes[n as usize];
        node.size = kept;
        node.state = State::Live;
        self.payloads[n as usize] = Some(payload);
        let r = self.regions[region as usize]
            .as_mut()
            .expect("a listed node's region exists");
        r.live += 1;
        r.allocated_units += u64::from(kept);
        self.allocated_units += u64::from(kept);
        self.live += 1;
        TlsfAllocation {
            region,
            offset: u64::from(start) << self.unit_log2,
            handle: n,
        }
    }

    #[inline]
    fn live_node(&self, handle: u32, region: u32, offset: u64) -> Option<&Node> {
        let node = self.nodes.get(handle as usize)?;
        (node.state == State::Live
            && node.region == region
            && u64::from(node.offset) << self.unit_log2 == offset)
            .then_some(node)
    }

    /// Frees the allocation `handle` that starts at `offset` in `region` and
    /// returns its kept size and payload.
    ///
    /// [`UnknownOffset`](BuddyError::UnknownOffset) if `handle` is not a
    /// live allocation there (nothing changes then).
    pub fn free(&mut self, handle: u32, region: u32, offset: u64) -> Result<(u64, T), BuddyError> {
        if self.live_node(handle, region, offset).is_none() {
            return Err(BuddyError::UnknownOffset { offset });
        }
        let mut n = handle;
        let payload = self.payloads[n as usize].take();
        let (kept, prev, next) = {
            let node = &mut self.nodes[n as usize];
            node.state = State::Free;
            (node.size, node.prev_phys, node.next_phys)
        };
        let r = self.regions[region as usize]
            .as_mut()
            .expect("a live node's region exists");
        r.live -= 1;
        r.allocated_units -= u64::from(kept);
        self.allocated_units -= u64::from(kept);
        self.live -= 1;
        if prev != NIL && self.nodes[prev as usize].state == State::Free {
            self.unlink_free(prev);
            self.absorb_next(prev);
            n = prev;
        }
        if next != NIL && self.nodes[next as usize].state == State::Free {
            self.unlink_free(next);
            self.absorb_next(n);
        }
        self.push_free(n);
        let payload = payload.ok_or(BuddyError::UnknownOffset { offset })?;
        Ok((u64::from(kept) << self.unit_log2, payload))
    }

    /// Merges the physical successor of `n` into `n` and retires its node.
    #[inline]
    fn absorb_next(&mut self, n: u32) {
        let next = self.nodes[n as usize].next_phys;
        let (next_size, after) = {
            let node = &mut self.nodes[next as usize];
            node.state = State::Spare;
            (node.size, node.next_phys)
        };
        let node = &mut self.nodes[n as usize];
        node.size += next_size;
        node.next_phys = after;
        if after != NIL {
            self.nodes[after as usize].prev_phys = n;
        }
        self.spare.push(next);
    }

    /// Kept size and payload of the live allocation `handle` at `offset` of
    /// `region`.
    #[inline]
    pub fn get(&self, handle: u32, region: u32, offset: u64) -> Option<(u64, &T)> {
        let node = self.live_node(handle, region, offset)?;
        Some((
            u64::from(node.size) << self.unit_log2,
            self.payloads[handle as usize].as_ref()?,
        ))
    }

    /// Payload of the live allocation `handle` at `offset` of `region`,
    /// mutably.
    pub fn get_mut(&mut self, handle: u32, region: u32, offset: u64) -> Option<&mut T> {
        self.live_node(handle, region, offset)?;
        self.payloads[handle as usize].as_mut()
    }

    /// Frees every live allocation and removes every region.
    pub fn clear(&mut self) {
        self.regions.clear();
        self.nodes.clear();
        self.payloads.clear();
        self.spare.clear();
        self.fl_bitmap = 0;
        self.sl_bitmaps = [0; FL_COUNT];
        self.heads.fill(NIL);
        self.allocated_units = 0;
        self.live = 0;
        self.free_nodes = 0;
    }

    /// Size of the largest free range of any region in bytes, 0 if none:
    /// O(nodes of the largest non-empty class).
    pub fn largest_free(&self) -> u64 {
        if self.fl_bitmap == 0 {
            return 0;
        }
        let fl = 31 - self.fl_bitmap.leading_zeros();
        let sl = 31 - self.sl_bitmaps[fl as usize].leading_zeros();
        let mut n = self.heads[Self::list(fl, sl)];
        let mut best = 0;
        while n != NIL {
            best = best.max(self.nodes[n as usize].size);
            n = self.nodes[n as usize].next_free;
        }
        u64::from(best) << self.unit_log2
    }

    /// A region's nodes in address order.
    fn physical(&self, region: u32) -> impl Iterator<Item = &Node> + '_ {
        let mut n = self.region(region).map_or(NIL, |r| r.first);
        std::iter::from_fn(move || {
            if n == NIL {
                return None;
            }
            let node = &self.nodes[n as usize];
            n = node.next_phys;
            Some(node)
        })
    }

    /// Size of a region's largest free range in bytes. O(its nodes).
    pub fn region_largest_free(&self, region: u32) -> u64 {
        self.free_ranges(region).map(|(_, s)| s).max().unwrap_or(0)
    }

    /// `(size, count)` of a region's free ranges, grouped by power of two
    /// (each range counts under the largest power of two not above its
    /// size), smallest first. O(its nodes).
    pub fn free_histogram(&self, region: u32) -> impl Iterator<Item = (u64, usize)> + '_ {
        let mut counts = [0usize; 64];
        for (_, bytes) in self.free_ranges(region) {
            counts[63 - bytes.leading_zeros() as usize] += 1;
        }
        (0..64)
            .filter(move |&i| counts[i] > 0)
            .map(move |i| (1u64 << i, counts[i]))
    }

    /// `(handle, offset, kept, payload)` of a region's live allocations, by
    /// address.
    pub fn live(&self, region: u32) -> impl Iterator<Item = (u32, u64, u64, &T)> + '_ {
        let shift = self.unit_log2;
        let mut n = self.region(region).map_or(NIL, |r| r.first);
        std::iter::from_fn(move || loop {
            if n == NIL {
                return None;
            }
            let handle = n;
            let node = &self.nodes[n as usize];
            n = node.next_phys;
            if let (State::Live, Some(p)) = (node.state, self.payloads[handle as usize].as_ref()) {
                return Some((
                    handle,
                    u64::from(node.offset) << shift,
                    u64::from(node.size) << shift,
                    p,
                ));
            }
        })
    }

    /// `(offset, size)` of a region's free ranges, by address. O(its nodes).
    pub fn free_ranges(&self, region: u32) -> impl Iterator<Item = (u64, u64)> + '_ {
        let shift = self.unit_log2;
        self.physical(region)
            .filter(|n| n.state == State::Free)
            .map(move |n| (u64::from(n.offset) << shift, u64::from(n.size) << shift))
    }

    /// Estimate of the host memory the metadata uses, in bytes.
    pub fn host_memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.payloads.capacity() * std::mem::size_of::<Option<T>>()
            + self.spare.capacity() * 4
            + self.regions.capacity() * std::mem::size_of::<Option<Region>>()
            + self.heads.len() * 4
    }

    /// Checks every invariant; `Err` describes the first one broken.
    ///
    /// Each region's nodes in address order start at its first node at 0,
    /// tile the region with no gap, have consistent links, belong to it, and
    /// no two adjacent ones are free; every free node is in the list of its
    /// class exactly once and every listed node is free; the bitmaps say
    /// which lists are non-empty; spare nodes are outside every chain; the
    /// byte, live and free counters (per region and in all) agree. O(nodes).
    pub fn validate(&self) -> Result<(), String> {
        let (mut live, mut free, mut allocated, mut chained) = (0usize, 0usize, 0u64, 0usize);
        for region in self.regions() {
            let r = self.region(region).expect("listed");
            let mut expect_offset = 0u64;
            let mut prev = NIL;
            let mut n = r.first;
            let mut prev_free = false;
            let (mut r_live, mut r_alloc) = (0u32, 0u64);
            while n != NIL {
                let node = self
                    .nodes
                    .get(n as usize)
                    .ok_or_else(|| format!("node {n} out of range"))?;
                chained += 1;
                if chained > self.nodes.len() {
                    return Err("physical chains have a cycle".into());
                }
                if node.region != region {
                    return Err(format!(
                        "node {n} in region {region}'s chain says {}",
                        node.region
                    ));
                }
                if u64::from(node.offset) != expect_offset {
                    return Err(format!(
                        "node {n} starts at unit {} where {expect_offset} was expected",
                        node.offset
                    ));
                }
                if node.size == 0 {
                    return Err(format!("node {n} is empty"));
                }
                if node.prev_phys != prev {
                    return Err(format!(
                        "node {n} links back to {} not {prev}",
                        node.prev_phys
                    ));
                }
                match node.state {
                    State::Free => {
                        if prev_free {
                            return Err(format!("free node {n} follows a free node"));
                        }
                        if self.payloads[n as usize].is_some() {
                            return Err(format!("free node {n} has a payload"));
                        }
                        free += 1;
                    }
                    State::Live => {
                        if self.payloads[n as usize].is_none() {
                            return Err(format!("live node {n} has no payload"));
                        }
                        r_live += 1;
                        r_alloc += u64::from(node.size);
                    }
                    State::Spare => return Err(format!("spare node {n} is in a chain")),
                }
                prev_free = node.state == State::Free;
                expect_offset += u64::from(node.size);
                prev = n;
                n = node.next_phys;
            }
            if expect_offset != u64::from(r.units) {
                return Err(format!(
                    "region {region}: nodes cover {expect_offset} units of {}",
                    r.units
                ));
            }
            if r_live != r.live || r_alloc != r.allocated_units {
                return Err(format!(
                    "region {region}: counters live {} / {r_live}, allocated {} / {r_alloc}",
                    r.live, r.allocated_units
                ));
            }
            live += r_live as usize;
            allocated += r_alloc;
        }
        if chained + self.spare.len() != self.nodes.len() {
            return Err(format!(
                "{chained} chained + {} spare nodes != {} nodes",
                self.spare.len(),
                self.nodes.len()
            ));
        }
        for &s in &self.spare {
            if self.nodes.get(s as usize).map(|n| n.state) != Some(State::Spare) {
                return Err(format!("spare node {s} is not marked spare"));
            }
        }
        if live != self.live || allocated != self.allocated_units || free != self.free_nodes {
            return Err(format!(
                "counters: live {}/{live}, allocated {}/{allocated}, free {}/{free}",
                self.live, self.allocated_units, self.free_nodes
            ));
        }
        let mut listed = 0usize;
        for fl in 0..FL_COUNT as u32 {
            let fl_bit = self.fl_bitmap >> fl & 1 != 0;
            if fl_bit != (self.sl_bitmaps[fl as usize] != 0) {
                return Err(format!("first-level bit {fl} disagrees with its lists"));
            }
            for sl in 0..SL_COUNT {
                let head = self.heads[Self::list(fl, sl)];
                if (self.sl_bitmaps[fl as usize] >> sl & 1 != 0) != (head != NIL) {
                    return Err(format!("list ({fl}, {sl}) bit disagrees with its head"));
                }
                let mut p = NIL;
                let mut m = head;
                while m != NIL {
                    let node = &self.nodes[m as usize];
                    if node.state != State::Free {
                        return Err(format!("listed node {m} is not free"));
                    }
                    if mapping(node.size) != (fl, sl) {
                        return Err(format!("node {m} is in list ({fl}, {sl}) of another class"));
                    }
                    if node.prev_free != p {
                        return Err(format!("node {m} free-list back link broken"));
                    }
                    listed += 1;
                    if listed > free {
                        return Err("free lists hold more nodes than are free".into());
                    }
                    p = m;
                    m = node.next_free;
                }
            }
        }
        if listed != free {
            return Err(format!(
                "{listed} listed free nodes, {free} free in the chains"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_monotonic_and_search_rounds_up() {
        let mut last = (0, 0);
        for units in 1..100_000u32 {
            let m = mapping(units);
            assert!(m >= last, "{units}");
            last = m;
            let (fl, sl) = mapping_search(units).unwrap();
            // The smallest size of the searched class is >= units.
            let lo = if fl == 0 {
                sl
            } else {
                (SL_COUNT + sl) << (fl - 1)
            };
            assert!(lo >= units, "{units}: class ({fl},{sl}) starts at {lo}");
        }
    }

    #[test]
    fn allocate_free_merge() {
        let mut b = Tlsf::new(256).unwrap();
        let r = b.add_region(1 << 20).unwrap();
        let a = b.allocate(1000, 0, 1u32).unwrap();
        let c = b.allocate(5000, 4096, 2).unwrap();
        assert_eq!(c.offset % 4096, 0);
        b.validate().unwrap();
        assert_eq!(b.allocated_bytes(), 1024 + 5120);
        assert_eq!(b.free(a.handle, r, a.offset).unwrap(), (1024, 1));
        assert!(b.free(a.handle, r, a.offset).is_err());
        b.validate().unwrap();
        assert_eq!(b.free(c.handle, r, c.offset).unwrap().1, 2);
        b.validate().unwrap();
        assert!(b.is_empty());
        assert_eq!(b.largest_free(), 1 << 20);
        assert_eq!(b.free_ranges(r).collect::<Vec<_>>(), vec![(0, 1 << 20)]);
        b.remove_region(r).unwrap();
        b.validate().unwrap();
        assert!(b.allocate(1, 0, 3).is_err());
    }

    #[test]
    fn fills_every_region_with_odd_sizes() {
        let mut b = Tlsf::new(256).unwrap();
        let r0 = b.add_region(150 * 256).unwrap();
        let r1 = b.add_region(150 * 256).unwrap();
        let mut v = Vec::new();
        for _ in 0..100 {
            v.push(b.allocate(3 * 256 - 7, 0, ()).unwrap());
        }
        assert!(b.allocate(1, 0, ()).is_err());
        assert_eq!(b.region_allocated_bytes(r0), 150 * 256);
        assert_eq!(b.region_allocated_bytes(r1), 150 * 256);
        assert!(b.remove_region(r1).is_err());
        b.validate().unwrap();
        for a in v.iter().step_by(2) {
            b.free(a.handle, a.region, a.offset).unwrap();
        }
        // Every freed hole holds an exact fit again.
        for _ in 0..50 {
            b.allocate(3 * 256, 0, ()).unwrap();
        }
        b.validate().unwrap();
        assert_eq!(b.allocated_bytes(), 300 * 256);
    }

    #[test]
    fn bad_input_is_typed() {
        let mut b = Tlsf::new(256).unwrap();
        assert!(matches!(
            b.allocate(1, 0, ()),
            Err(BuddyError::OutOfSpace { .. })
        ));
        b.add_region(1 << 16).unwrap();
        assert_eq!(b.allocate(0, 0, ()), Err(BuddyError::ZeroSize));
        assert!(matches!(
            b.allocate(1, 3, ()),
            Err(BuddyError::AlignmentNotPowerOfTwo { .. })
        ));
        assert!(matches!(
            b.allocate((1 << 16) + 1, 0, ()),
            Err(BuddyError::OutOfSpace { .. })
        ));
        // Offset 0 is aligned to anything.
        assert_eq!(b.allocate(1, 1 << 17, ()).unwrap().offset, 0);
        assert!(matches!(
            b.allocate(u64::MAX, 0, ()),
            Err(BuddyError::TooLarge { .. })
        ));
        assert!(b.add_region(1000).is_err());
        assert!(b.add_region(0).is_err());
        assert!(Tlsf::<()>::new(3).is_err());
        b.validate().unwrap();
    }
}
