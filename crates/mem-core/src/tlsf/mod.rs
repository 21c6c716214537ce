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
//! the buddy stays an option, for the pools and for [`crate::VirtualBlock`].
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
//! One node (32 bytes of links plus `size_of::<Option<T>>()` for the
//! payload, in the node so that a free finds both in one place) per live
//! allocation and per free range (at most one more than the live ones),
//! plus 3.6 KiB of list heads. Unlike the buddy's bitmaps it does not grow with the block size.
#![deny(unsafe_code)]

mod at;
mod lists;
#[cfg(test)]
mod tests;
mod validate;

use lists::{mapping, mapping_search, FL_COUNT, NIL, SL_COUNT};

use crate::error::PlacementError;

/// Nodes of the request's own class scanned when no larger class has one.
pub const EXACT_SCAN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Live,
    /// Not part of any region: waiting in the spare list for reuse.
    Spare,
}

/// One range, free or live, with the payload of a live one beside its
/// links: a free reads the node and its payload from one place.
#[derive(Debug)]
struct Node<T> {
    offset: u32,
    size: u32,
    region: u32,
    prev_phys: u32,
    next_phys: u32,
    prev_free: u32,
    next_free: u32,
    state: State,
    /// The payload of a live node; `None` otherwise.
    payload: Option<T>,
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
    nodes: Vec<Node<T>>,
    spare: Vec<u32>,
    fl_bitmap: u32,
    sl_bitmaps: [u32; FL_COUNT],
    heads: Box<[u32]>,
    allocated_units: u64,
    live: usize,
    free_nodes: usize,
}

impl<T> Tlsf<T> {
    /// Creates an allocator without regions, placing at `granularity`-byte
    /// units (a power of two, else [`PlacementError::InvalidConfig`]).
    pub fn new(granularity: u64) -> Result<Self, PlacementError> {
        if !granularity.is_power_of_two() {
            return Err(PlacementError::InvalidConfig {
                size: 0,
                min_block: granularity,
            });
        }
        Ok(Self {
            unit_log2: granularity.trailing_zeros(),
            regions: Vec::new(),
            nodes: Vec::new(),
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
    /// [`PlacementError::InvalidConfig`].
    pub fn add_region(&mut self, size: u64) -> Result<u32, PlacementError> {
        let g = self.granularity();
        let invalid = PlacementError::InvalidConfig { size, min_block: g };
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
            payload: None,
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
    pub fn remove_region(&mut self, region: u32) -> Result<(), PlacementError> {
        let r = self
            .region(region)
            .ok_or(PlacementError::UnknownOffset { offset: 0 })?;
        if r.live != 0 {
            return Err(PlacementError::UnknownOffset { offset: 0 });
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
    /// Units kept and alignment in units of a request, or its error.
    #[inline]
    fn request(&self, size: u64, alignment: u64) -> Result<(u32, u32), PlacementError> {
        if size == 0 {
            return Err(PlacementError::ZeroSize);
        }
        let alignment = alignment.max(1);
        if !alignment.is_power_of_two() {
            return Err(PlacementError::AlignmentNotPowerOfTwo { alignment });
        }
        let kept = size.div_ceil(self.granularity());
        let align = (alignment >> self.unit_log2).max(1);
        if kept >= u64::from(u32::MAX) || align >= u64::from(u32::MAX) {
            return Err(PlacementError::TooLarge {
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

    fn new_node(&mut self, node: Node<T>) -> u32 {
        match self.spare.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
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
            payload: None,
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
    /// Errors: [`ZeroSize`](PlacementError::ZeroSize),
    /// [`AlignmentNotPowerOfTwo`](PlacementError::AlignmentNotPowerOfTwo),
    /// [`TooLarge`](PlacementError::TooLarge) for sizes beyond any region's
    /// reach, [`OutOfSpace`](PlacementError::OutOfSpace) when no free range holds
    /// it now. On error nothing changes.
    pub fn allocate(
        &mut self,
        size: u64,
        alignment: u64,
        payload: T,
    ) -> Result<TlsfAllocation, PlacementError> {
        let (kept, align) = self.request(size, alignment)?;
        let Some((n, start)) = self.find(kept, align) else {
            return Err(PlacementError::OutOfSpace {
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
        node.payload = Some(payload);
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
    fn live_node(&self, handle: u32, region: u32, offset: u64) -> Option<&Node<T>> {
        let node = self.nodes.get(handle as usize)?;
        (node.state == State::Live
            && node.region == region
            && u64::from(node.offset) << self.unit_log2 == offset)
            .then_some(node)
    }

    /// Frees the allocation `handle` that starts at `offset` in `region` and
    /// returns its kept size and payload.
    ///
    /// [`UnknownOffset`](PlacementError::UnknownOffset) if `handle` is not a
    /// live allocation there (nothing changes then).
    pub fn free(
        &mut self,
        handle: u32,
        region: u32,
        offset: u64,
    ) -> Result<(u64, T), PlacementError> {
        if self.live_node(handle, region, offset).is_none() {
            return Err(PlacementError::UnknownOffset { offset });
        }
        let mut n = handle;
        let payload = self.nodes[n as usize].payload.take();
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
        let payload = payload.ok_or(PlacementError::UnknownOffset { offset })?;
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
            node.payload.as_ref()?,
        ))
    }

    /// Payload of the live allocation `handle` at `offset` of `region`,
    /// mutably.
    pub fn get_mut(&mut self, handle: u32, region: u32, offset: u64) -> Option<&mut T> {
        self.live_node(handle, region, offset)?;
        self.nodes[handle as usize].payload.as_mut()
    }

    /// Frees every live allocation and removes every region.
    pub fn clear(&mut self) {
        self.regions.clear();
        self.nodes.clear();
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
    fn physical(&self, region: u32) -> impl Iterator<Item = &Node<T>> + '_ {
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
            if let (State::Live, Some(p)) = (node.state, node.payload.as_ref()) {
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
            + self.nodes.capacity() * std::mem::size_of::<Node<T>>()
            + self.spare.capacity() * 4
            + self.regions.capacity() * std::mem::size_of::<Option<Region>>()
            + self.heads.len() * 4
    }
}
