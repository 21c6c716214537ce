//! Fuzz target `buddy`: arbitrary operation sequences on a [`BuddyBlock`]
//! and a [`VirtualBlock`], with `validate()` and a shadow model after every
//! step.
//!
//! Checked after every operation:
//! - `validate()` (free lists and live allocations tile the block exactly);
//! - every returned offset is aligned, in bounds and overlaps no live range
//!   (shadow model);
//! - bad input (zero size, non-power-of-two alignment, too large, unknown
//!   offset, foreign virtual allocation) is a typed `Err` and leaves the block
//!   unchanged (allocated bytes and count equal before and after);
//! - `allocated_bytes` and `allocation_count` match the shadow model.

use std::collections::BTreeMap;

use mem_core::buddy::BuddyBlock;
use mem_core::{BlockPlacement, PlacementError, VirtualBlock};

/// Reads bytes as a little stream of numbers; exhausted input reads zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        let mut v = 0u64;
        for i in 0..8 {
            v |= u64::from(self.u8()) << (8 * i);
        }
        v
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// A size: mostly small, sometimes any u64, sometimes a power of two.
    fn size(&mut self) -> u64 {
        match self.u8() % 8 {
            0 => self.u64(),
            1 => 1u64 << (self.u8() % 64),
            2 => (1u64 << (self.u8() % 64))
                .wrapping_add(u64::from(self.u8()) % 3)
                .wrapping_sub(1),
            3 | 4 => u64::from(self.u8()) + 1,
            _ => u64::from(self.u8()) * 64 + u64::from(self.u8()),
        }
    }
    fn alignment(&mut self) -> u64 {
        match self.u8() % 6 {
            0 => 0,
            1 => self.u64(),
            2 => u64::from(self.u8()),
            _ => 1u64 << (self.u8() % 64),
        }
    }
}

fn is_unchanged_error(e: &PlacementError) -> bool {
    matches!(
        e,
        PlacementError::ZeroSize
            | PlacementError::AlignmentNotPowerOfTwo { .. }
            | PlacementError::TooLarge { .. }
            | PlacementError::OutOfSpace { .. }
            | PlacementError::UnknownOffset { .. }
            | PlacementError::ForeignAllocation { .. }
    )
}

/// Shadow model: offset -> (size asked, kept bytes).
#[derive(Default)]
struct Model {
    live: BTreeMap<u64, (u64, u64)>,
}

impl Model {
    fn check_new(&self, offset: u64, size: u64, alignment: u64, block: u64) {
        let align = alignment.max(1);
        assert_eq!(offset % align, 0, "offset {offset} not aligned to {align}");
        assert!(
            offset.checked_add(size).is_some_and(|e| e <= block),
            "{offset}+{size} past block {block}"
        );
        if let Some((&o, &(_, kept))) = self.live.range(..=offset).next_back() {
            assert!(o + kept <= offset, "new {offset} overlaps live {o}+{kept}");
        }
        if let Some((&o, _)) = self.live.range(offset..).next() {
            assert!(offset + size <= o, "new {offset}+{size} overlaps live {o}");
        }
    }
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let mut input = Input { data };
    // Occasionally probe construction with any numbers: Ok or InvalidConfig.
    if input.u8() % 16 == 0 {
        let (size, min) = (input.u64(), input.u64());
        match BuddyBlock::<()>::new(size, min) {
            Ok(b) => {
                // Only sizes we can afford to keep around (<= 2^20 units).
                assert!(size.is_power_of_two() && min.is_power_of_two() && min <= size);
                b.validate().expect("fresh block valid");
            }
            Err(PlacementError::InvalidConfig { .. }) => {}
            Err(e) => panic!("new({size}, {min}): unexpected {e:?}"),
        }
        return;
    }
    // Keep the block small enough that validate() after every step is cheap:
    // at most 2^16 minimum blocks.
    let min_log2 = u32::from(input.u8() % 13);
    let units_log2 = u32::from(input.u8() % 17);
    let size = 1u64 << (min_log2 + units_log2);
    let min_block = 1u64 << min_log2;
    let mut block: BuddyBlock<u32> = BuddyBlock::new(size, min_block).expect("valid config");
    // The buddy's virtual block (VirtualBlock::new places with TLSF, fuzzed
    // by the `tlsf` target).
    let buddy = BlockPlacement::Buddy;
    let mut vblock = VirtualBlock::with_placement(size, min_block, buddy).expect("valid config");
    let mut other = VirtualBlock::with_placement(size, min_block, buddy).expect("valid config");
    let mut model = Model::default();
    let mut vmodel = Model::default();
    let mut vlive = Vec::new();
    let mut foreign = Vec::new();
    let mut tag = 0u32;
    let mut steps = 0;
    while !input.is_empty() && steps < 4096 {
        steps += 1;
        match input.u8() % 10 {
            0..=3 => {
                let (sz, al) = (input.size(), input.alignment());
                let (before_bytes, before_count) =
                    (block.allocated_bytes(), block.allocation_count());
                let could = block.can_allocate(sz, al);
                tag += 1;
                match block.allocate(sz, al, tag) {
                    Ok(off) => {
                        assert!(
                            could,
                            "can_allocate said no but allocate({sz}, {al}) succeeded"
                        );
                        model.check_new(off, sz, al, size);
                        let (kept, payload) = block.get(off).map(|(k, p)| (k, *p)).expect("live");
                        assert_eq!(payload, tag);
                        assert!(kept >= sz && kept % min_block == 0, "kept {kept} for {sz}");
                        model.live.insert(off, (sz, kept));
                    }
                    Err(e) => {
                        assert!(
                            !could || !matches!(e, PlacementError::OutOfSpace { .. }),
                            "can_allocate said yes: {e:?}"
                        );
                        assert!(is_unchanged_error(&e), "unexpected {e:?}");
                        assert_eq!(
                            (block.allocated_bytes(), block.allocation_count()),
                            (before_bytes, before_count)
                        );
                    }
                }
            }
            4 | 5 => {
                // Free a live allocation (chosen by index) or any offset.
                let pick = input.u64();
                let live_off = if model.live.is_empty() {
                    None
                } else {
                    model
                        .live
                        .keys()
                        .nth((pick % model.live.len() as u64) as usize)
                        .copied()
                };
                let off = if input.u8() % 4 == 0 {
                    pick % (size + 1).max(1)
                } else {
                    live_off.unwrap_or(pick)
                };
                match block.free(off) {
                    Ok((kept, _)) => {
                        let (_, k) = model.live.remove(&off).expect("freed offset was live");
                        assert_eq!(kept, k);
                    }
                    Err(PlacementError::UnknownOffset { .. }) => {
                        assert!(!model.live.contains_key(&off), "live offset {off} refused");
                    }
                    Err(e) => panic!("free({off}): unexpected {e:?}"),
                }
            }
            6 | 7 => {
                let (sz, al) = (input.size(), input.alignment());
                match vblock.allocate(sz, al) {
                    Ok(a) => {
                        vmodel.check_new(a.offset(), sz, al, size);
                        vmodel.live.insert(a.offset(), (sz, sz));
                        vlive.push(a);
                    }
                    Err(e) => assert!(is_unchanged_error(&e), "unexpected {e:?}"),
                }
                if input.u8() % 8 == 0 {
                    if let Ok(a) = other.allocate(1, 0) {
                        foreign.push(a);
                    }
                }
            }
            8 => {
                if !vlive.is_empty() {
                    let i = usize::from(input.u8()) % vlive.len();
                    let a = vlive.swap_remove(i);
                    vmodel.live.remove(&a.offset()).expect("model has it");
                    vblock.free(a).expect("live virtual allocation frees");
                }
                if let Some(f) = foreign.pop() {
                    match vblock.free(f) {
                        Err(PlacementError::ForeignAllocation { .. }) => {}
                        r => panic!("foreign free: {r:?}"),
                    }
                }
            }
            _ => {
                if input.u8() % 16 == 0 {
                    block.clear();
                    model.live.clear();
                    vblock.clear();
                    vmodel.live.clear();
                    // Allocations of the cleared generation are now foreign.
                    foreign.append(&mut vlive);
                }
            }
        }
        block
            .validate()
            .unwrap_or_else(|e| panic!("buddy invalid after step {steps}: {e}"));
        vblock
            .validate()
            .unwrap_or_else(|e| panic!("virtual block invalid after step {steps}: {e}"));
        let kept: u64 = model.live.values().map(|&(_, k)| k).sum();
        assert_eq!(block.allocated_bytes(), kept);
        assert_eq!(block.allocation_count(), model.live.len());
        assert_eq!(block.is_empty(), model.live.is_empty());
    }
    // Free everything: the block is whole again.
    let offsets: Vec<u64> = model.live.keys().copied().collect();
    for off in offsets {
        block.free(off).expect("live");
    }
    for a in vlive {
        vblock.free(a).expect("live");
    }
    block.validate().expect("valid when empty");
    assert!(block.is_empty() && block.allocated_bytes() == 0);
    assert_eq!(block.largest_free(), size);
    assert!(vblock.is_empty());
}
