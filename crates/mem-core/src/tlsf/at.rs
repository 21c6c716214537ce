//! Placement at a chosen offset: [`Tlsf::allocate_at`], for plans made
//! outside the index (defragmentation decides where each allocation goes
//! and then reserves exactly there).

use super::*;

impl<T> Tlsf<T> {
    /// Allocates `size` bytes at exactly `offset` of `region`, which must
    /// lie inside one free range. The allocation keeps
    /// `round_up(size, granularity)` bytes, like [`Self::allocate`].
    ///
    /// Errors: [`ZeroSize`](PlacementError::ZeroSize);
    /// [`UnknownOffset`](PlacementError::UnknownOffset) when `offset` is not
    /// a multiple of the granularity, the region does not exist, or the
    /// range is not free; [`TooLarge`](PlacementError::TooLarge) for a size
    /// beyond any region's reach. On error nothing changes. O(ranges in
    /// the region).
    pub fn allocate_at(
        &mut self,
        region: u32,
        offset: u64,
        size: u64,
        payload: T,
    ) -> Result<TlsfAllocation, PlacementError> {
        let (kept, _) = self.request(size, 1)?;
        let unknown = PlacementError::UnknownOffset { offset };
        if offset % self.granularity() != 0 {
            return Err(unknown);
        }
        let Ok(start) = u32::try_from(offset >> self.unit_log2) else {
            return Err(unknown);
        };
        let Some(r) = self.region(region) else {
            return Err(unknown);
        };
        let mut n = r.first;
        while n != NIL {
            let node = &self.nodes[n as usize];
            let end = u64::from(node.offset) + u64::from(node.size);
            if u64::from(start) < end {
                let fits = node.state == State::Free
                    && node.offset <= start
                    && u64::from(start) + u64::from(kept) <= end;
                return if fits {
                    Ok(self.take(n, start, kept, payload))
                } else {
                    Err(unknown)
                };
            }
            n = node.next_phys;
        }
        Err(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_at_places_exactly_and_refuses_taken_ranges() {
        let mut t: Tlsf<u32> = Tlsf::new(256).unwrap();
        let r = t.add_region(1 << 16).unwrap();
        let a = t.allocate_at(r, 4096, 1000, 1).unwrap();
        assert_eq!((a.region, a.offset), (r, 4096));
        t.validate().unwrap();
        // Overlapping, unaligned, past the end, unknown region.
        assert!(t.allocate_at(r, 4096 + 768, 10, 2).is_err());
        assert!(t.allocate_at(r, 3840, 512, 2).is_err());
        assert!(t.allocate_at(r, 100, 10, 2).is_err());
        assert!(t.allocate_at(r, (1 << 16) - 256, 512, 2).is_err());
        assert!(t.allocate_at(r + 1, 0, 10, 2).is_err());
        assert!(t.allocate_at(r, 0, 0, 2).is_err());
        // Exactly the hole before it, then the rest.
        let b = t.allocate_at(r, 0, 4096, 3).unwrap();
        assert_eq!(b.offset, 0);
        let c = t.allocate_at(r, 4096 + 1024, (1 << 16) - 5120, 4).unwrap();
        assert_eq!(c.offset, 5120);
        assert_eq!(t.region_allocated_bytes(r), 1 << 16);
        t.validate().unwrap();
        for x in [a, b, c] {
            t.free(x.handle, x.region, x.offset).unwrap();
        }
        assert!(t.region_is_empty(r));
        t.validate().unwrap();
    }
}
