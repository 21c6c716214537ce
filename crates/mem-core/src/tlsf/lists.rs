//! The free lists of a [`Tlsf`]: size classes (`FL x 32`, exact below 64
//! units), one doubly linked list per class, and the two levels of bitmaps
//! that say which lists are non-empty.
//!
//! Invariant (checked by [`Tlsf::validate`]): every free node is in the list
//! of its class exactly once, every listed node is free, and a class's bits
//! are set exactly when its list is non-empty.

use super::{State, Tlsf};

/// Second-level classes per power of two, log2.
pub(super) const SL_LOG2: u32 = 5;
pub(super) const SL_COUNT: u32 = 1 << SL_LOG2;
/// First levels: sizes up to 2^32 - 1 units.
pub(super) const FL_COUNT: usize = (32 - SL_LOG2 + 1) as usize;
pub(super) const NIL: u32 = u32::MAX;

/// Size class of `units` (>= 1): `(first level, second level)`.
#[inline]
pub(super) fn mapping(units: u32) -> (u32, u32) {
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
pub(super) fn mapping_search(units: u32) -> Option<(u32, u32)> {
    if units < SL_COUNT {
        return Some((0, units));
    }
    let l = 31 - units.leading_zeros();
    let round = (1u32 << (l - SL_LOG2)) - 1;
    units.checked_add(round).map(mapping)
}

impl<T> Tlsf<T> {
    #[inline]
    pub(super) fn list(fl: u32, sl: u32) -> usize {
        (fl * SL_COUNT + sl) as usize
    }

    #[inline]
    pub(super) fn push_free(&mut self, n: u32) {
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
    pub(super) fn unlink_free(&mut self, n: u32) {
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
    pub(super) fn next_list(&self, fl: u32, sl: u32) -> Option<(u32, u32)> {
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
    pub(super) fn find_list(&self, fl: u32, sl: u32) -> Option<u32> {
        self.next_list(fl, sl)
            .map(|(fl, sl)| self.heads[Self::list(fl, sl)])
    }
}
