//! Virtual blocks: the placement cores for ranges that are not device
//! memory.
//!
//! Like VMA's virtual blocks, a [`VirtualBlock`] hands out sub-ranges of
//! something the caller owns (one big vertex/index buffer, a descriptor
//! range, a ring of query slots) with the placement the device-memory pools
//! use, through the same interface: TLSF by default ([`crate::tlsf`]), or
//! the tail-trimmed buddy ([`crate::buddy`]) by
//! [`VirtualBlock::with_placement`]; no memory behind it. Allocations are returned as [`VirtualAllocation`] values that
//! [`VirtualBlock::free`] consumes; each carries the id of the block that made
//! it, so giving it to another block is an error, not a silent corruption.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::PlacementError;
use crate::placement::{BlockPlacement, PoolPlacer};

/// Source of block ids, unique in the process. A block takes a fresh id on
/// creation and on [`VirtualBlock::clear`], which turns the allocations made
/// before the clear into foreign ones.
static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

fn next_block_id() -> u64 {
    NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed)
}

/// What the block keeps per allocation.
#[derive(Debug, Clone, Copy)]
struct VirtualMeta {
    /// Requested size in bytes.
    size: u64,
    /// Caller's value, 0 until set.
    user_data: u64,
}

/// A sub-range handed out by a [`VirtualBlock`].
///
/// Not `Clone`: give it back by value to [`VirtualBlock::free`]. Dropping it
/// without freeing leaks the range until [`VirtualBlock::clear`].
#[must_use = "dropping a VirtualAllocation leaks its range; give it to VirtualBlock::free"]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VirtualAllocation {
    offset: u64,
    size: u64,
    /// The placer's handle (TLSF's node; 0 for the buddy).
    handle: u32,
    block_id: u64,
}

impl VirtualAllocation {
    /// Offset of the range in the block, aligned as requested.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Requested size in bytes (the block keeps this rounded up to its
    /// minimum block).
    #[inline]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Id of the block that made this allocation.
    #[inline]
    pub fn block_id(&self) -> u64 {
        self.block_id
    }
}

/// Plain-data statistics of a [`VirtualBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtualBlockStats {
    /// Size of the whole block in bytes.
    pub size: u64,
    /// Bytes held by live allocations (requested sizes rounded up to the
    /// minimum block).
    pub allocated: u64,
    /// Sum of the requested sizes of the live allocations.
    pub requested: u64,
    /// Free bytes (`size - allocated`).
    pub free: u64,
    /// Number of live allocations.
    pub allocation_count: usize,
    /// Largest free range in bytes: the largest request that is sure to
    /// succeed without alignment (the buddy's ranges are naturally aligned,
    /// so there with any alignment up to that size).
    pub largest_free: u64,
}

/// Sub-allocation of a range that is not device memory, with either
/// placement core ([`BlockPlacement`]; TLSF by default).
///
/// ```
/// use mem_core::VirtualBlock;
///
/// // Sub-ranges of one 1 MiB vertex buffer, in 256-byte granules.
/// let mut block = VirtualBlock::new(1 << 20, 256)?;
/// let mesh = block.allocate(10_000, 16)?;
/// assert_eq!(mesh.offset() % 16, 0);
/// block.set_user_data(&mesh, 42)?;
/// assert_eq!(block.user_data(&mesh)?, 42);
///
/// let stats = block.stats();
/// assert_eq!((stats.requested, stats.allocated), (10_000, 10_240));
///
/// // An allocation from another block is refused.
/// let mut other = VirtualBlock::new(1 << 20, 256)?;
/// let foreign = other.allocate(64, 0)?;
/// assert!(block.free(foreign).is_err());
///
/// block.free(mesh)?;
/// assert!(block.is_empty());
/// # Ok::<(), mem_core::PlacementError>(())
/// ```
#[derive(Debug)]
pub struct VirtualBlock {
    id: u64,
    placement: BlockPlacement,
    min_block: u64,
    /// One block, in slot 0.
    placer: PoolPlacer<VirtualMeta>,
    requested: u64,
}

/// The placer's slot of the one block.
const SLOT: usize = 0;

impl VirtualBlock {
    /// Creates an empty block of `size` bytes placing at `min_block`-byte
    /// units with [`BlockPlacement::Tlsf`], like the device-memory pools:
    /// `min_block` a power of two and `size` a non-zero multiple of it,
    /// below `2^32 - 1` units; otherwise [`PlacementError::InvalidConfig`].
    /// Each allocation keeps its size rounded up to `min_block`.
    pub fn new(size: u64, min_block: u64) -> Result<Self, PlacementError> {
        Self::with_placement(size, min_block, BlockPlacement::Tlsf)
    }

    /// [`Self::new`] with the placement of your choice.
    /// [`BlockPlacement::Buddy`] aligns every range naturally (to its size
    /// rounded up to a power of two) and answers [`Self::stats`]'
    /// `largest_free` in O(1), at the cost of more waste under churn; it
    /// needs `size` and `min_block` powers of two with
    /// `min_block <= size <= 2^26 * min_block`.
    pub fn with_placement(
        size: u64,
        min_block: u64,
        placement: BlockPlacement,
    ) -> Result<Self, PlacementError> {
        Ok(Self {
            id: next_block_id(),
            placement,
            min_block,
            placer: PoolPlacer::with_block(placement, size, min_block)?,
            requested: 0,
        })
    }

    /// This block's id, unique in the process; it changes on
    /// [`clear`](Self::clear).
    #[inline]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How the block places its ranges.
    #[inline]
    pub fn placement(&self) -> BlockPlacement {
        self.placement
    }

    /// Size of the whole block in bytes.
    #[inline]
    pub fn size(&self) -> u64 {
        self.placer.block_size(SLOT)
    }

    /// Whether no allocation is live.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.placer.block_is_empty(SLOT)
    }

    /// Allocates `size` bytes aligned to `alignment` (a power of two, or 0
    /// for none). Errors: [`PlacementError::ZeroSize`],
    /// [`PlacementError::AlignmentNotPowerOfTwo`],
    /// [`PlacementError::TooLarge`] (never fits), or
    /// [`PlacementError::OutOfSpace`] (no free range fits now); on error the
    /// block is unchanged.
    #[inline]
    pub fn allocate(
        &mut self,
        size: u64,
        alignment: u64,
    ) -> Result<VirtualAllocation, PlacementError> {
        let mut hint = SLOT;
        let placed = self.placer.allocate_checked(
            size,
            alignment,
            VirtualMeta { size, user_data: 0 },
            &mut hint,
        )?;
        self.requested += size;
        Ok(VirtualAllocation {
            offset: placed.offset,
            size,
            handle: placed.handle,
            block_id: self.id,
        })
    }

    /// Frees an allocation made by this block.
    ///
    /// [`PlacementError::ForeignAllocation`] if another block made it, or
    /// this block before a [`clear`](Self::clear); the block is then
    /// unchanged.
    #[inline]
    pub fn free(&mut self, allocation: VirtualAllocation) -> Result<(), PlacementError> {
        self.check(&allocation)?;
        let (_, meta) = self
            .placer
            .free(SLOT, allocation.handle, allocation.offset)
            .ok_or(PlacementError::UnknownOffset {
                offset: allocation.offset,
            })?;
        self.requested -= meta.size;
        Ok(())
    }

    /// Sets the caller's value of an allocation (0 until set).
    pub fn set_user_data(
        &mut self,
        allocation: &VirtualAllocation,
        user_data: u64,
    ) -> Result<(), PlacementError> {
        self.check(allocation)?;
        let meta = self
            .placer
            .get_mut(SLOT, allocation.handle, allocation.offset)
            .ok_or(PlacementError::UnknownOffset {
                offset: allocation.offset,
            })?;
        meta.user_data = user_data;
        Ok(())
    }

    /// The caller's value of an allocation (0 until set).
    pub fn user_data(&self, allocation: &VirtualAllocation) -> Result<u64, PlacementError> {
        self.check(allocation)?;
        self.placer
            .get(SLOT, allocation.handle, allocation.offset)
            .map(|(_, meta)| meta.user_data)
            .ok_or(PlacementError::UnknownOffset {
                offset: allocation.offset,
            })
    }

    /// Sizes and counts: O(1), except `largest_free` with TLSF (the nodes of
    /// the largest size class).
    pub fn stats(&self) -> VirtualBlockStats {
        let size = self.size();
        let allocated = self.placer.block_allocated_bytes(SLOT);
        VirtualBlockStats {
            size,
            allocated,
            requested: self.requested,
            free: size - allocated,
            allocation_count: self.placer.block_allocation_count(SLOT),
            largest_free: self.placer.largest_free(),
        }
    }

    /// `(offset, requested size, user data)` of every live allocation, in no
    /// particular order (for leak reports).
    pub fn live(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.placer
            .block_live(SLOT)
            .map(|(_, offset, _, meta)| (offset, meta.size, meta.user_data))
    }

    /// Checks every invariant of the placement core and the requested byte
    /// count; `Err` describes the first one broken.
    pub fn validate(&self) -> Result<(), String> {
        self.placer.validate()?;
        let requested: u64 = self.live().map(|(_, size, _)| size).sum();
        if requested != self.requested {
            return Err(format!(
                "requested counter is {} but live allocations request {requested}",
                self.requested
            ));
        }
        Ok(())
    }

    /// Frees every allocation at once. The block takes a new id, so the
    /// [`VirtualAllocation`]s made before are refused afterwards with
    /// [`PlacementError::ForeignAllocation`] instead of freeing someone
    /// else's range.
    pub fn clear(&mut self) {
        self.placer = PoolPlacer::with_block(self.placement, self.size(), self.min_block)
            .expect("the block's own size and unit were valid");
        self.requested = 0;
        self.id = next_block_id();
    }

    fn check(&self, allocation: &VirtualAllocation) -> Result<(), PlacementError> {
        if allocation.block_id == self.id {
            Ok(())
        } else {
            Err(PlacementError::ForeignAllocation {
                block_id: self.id,
                allocation_block_id: allocation.block_id,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [BlockPlacement; 2] = [BlockPlacement::Tlsf, BlockPlacement::Buddy];

    #[test]
    fn tlsf_by_default_like_device_blocks() {
        let block = VirtualBlock::new(1 << 16, 64).unwrap();
        assert_eq!(block.placement(), BlockPlacement::Tlsf);
        assert_eq!(BlockPlacement::default(), BlockPlacement::Tlsf);
    }

    #[test]
    fn allocate_free_and_stats_tlsf() {
        let mut block = VirtualBlock::new(1 << 16, 64).unwrap();
        let a = block.allocate(100, 0).unwrap();
        let b = block.allocate(1000, 512).unwrap();
        assert_eq!((a.offset(), b.offset()), (0, 512));
        assert_eq!(
            block.stats(),
            VirtualBlockStats {
                size: 1 << 16,
                allocated: 128 + 1024,
                requested: 1100,
                free: (1 << 16) - 1152,
                allocation_count: 2,
                // [128, 512) and [1536, 65536) are free.
                largest_free: (1 << 16) - 1536,
            }
        );
        block.validate().unwrap();
        block.free(a).unwrap();
        block.free(b).unwrap();
        assert_eq!(block.stats().largest_free, 1 << 16);
        block.validate().unwrap();
    }

    #[test]
    fn allocate_free_and_stats_buddy() {
        let mut block = VirtualBlock::with_placement(1 << 16, 64, BlockPlacement::Buddy).unwrap();
        let a = block.allocate(100, 0).unwrap();
        let b = block.allocate(1000, 512).unwrap();
        assert_eq!(b.offset() % 512, 0);
        assert_eq!(
            block.stats(),
            VirtualBlockStats {
                size: 1 << 16,
                allocated: 128 + 1024,
                requested: 1100,
                free: (1 << 16) - 1152,
                allocation_count: 2,
                largest_free: 1 << 15,
            }
        );
        block.validate().unwrap();
        block.free(a).unwrap();
        block.free(b).unwrap();
        assert_eq!(block.stats().largest_free, 1 << 16);
        block.validate().unwrap();
    }

    #[test]
    fn sizes_each_placement_accepts() {
        // TLSF takes any multiple of its unit; the buddy powers of two only.
        let tlsf = VirtualBlock::new(3 * 4096, 256).unwrap();
        assert_eq!(tlsf.size(), 3 * 4096);
        let bad = PlacementError::InvalidConfig {
            size: 3 * 4096,
            min_block: 256,
        };
        assert_eq!(
            VirtualBlock::with_placement(3 * 4096, 256, BlockPlacement::Buddy).unwrap_err(),
            bad
        );
        for placement in BOTH {
            for (size, unit) in [(0, 256), (4096, 3), (4096, 0), (1000, 256)] {
                assert!(
                    matches!(
                        VirtualBlock::with_placement(size, unit, placement),
                        Err(PlacementError::InvalidConfig { .. })
                    ),
                    "{placement:?} {size} {unit}"
                );
            }
            let mut block = VirtualBlock::with_placement(4096, 256, placement).unwrap();
            assert_eq!(block.allocate(0, 0), Err(PlacementError::ZeroSize));
            assert_eq!(
                block.allocate(1, 3),
                Err(PlacementError::AlignmentNotPowerOfTwo { alignment: 3 })
            );
            let all = block.allocate(4096, 0).unwrap();
            assert!(matches!(
                block.allocate(1, 0),
                Err(PlacementError::OutOfSpace { .. })
            ));
            block.free(all).unwrap();
            block.validate().unwrap();
        }
    }

    #[test]
    fn foreign_and_stale_allocations_are_refused() {
        for placement in BOTH {
            let mut a = VirtualBlock::with_placement(4096, 256, placement).unwrap();
            let mut b = VirtualBlock::with_placement(4096, 256, placement).unwrap();
            assert_ne!(a.id(), b.id());
            let x = b.allocate(10, 0).unwrap();
            assert_eq!(
                a.user_data(&x),
                Err(PlacementError::ForeignAllocation {
                    block_id: a.id(),
                    allocation_block_id: b.id()
                })
            );
            assert!(matches!(
                a.free(x),
                Err(PlacementError::ForeignAllocation { .. })
            ));
            assert_eq!(b.stats().allocation_count, 1);
            let old_id = a.id();
            let stale = a.allocate(10, 0).unwrap();
            a.clear();
            assert_ne!(a.id(), old_id);
            assert_eq!(a.placement(), placement);
            let fresh = a.allocate(10, 0).unwrap();
            assert_eq!(fresh.offset(), stale.offset());
            assert!(matches!(
                a.free(stale),
                Err(PlacementError::ForeignAllocation { .. })
            ));
            a.set_user_data(&fresh, 5).unwrap();
            assert_eq!(a.live().collect::<Vec<_>>(), [(0, 10, 5)]);
            a.free(fresh).unwrap();
            a.validate().unwrap();
            assert!(a.is_empty());
        }
    }
}
