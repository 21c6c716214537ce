//! Property tests over programs of buddy operations.
//!
//! Each case runs a random sequence of allocations and frees against a
//! [`BuddyBlock`] and a plain model (a `Vec` of live ranges), and checks after
//! every step: `validate()`, no two live ranges overlap, alignment is honoured,
//! waste per allocation is below `min_block`, errors leave the block
//! unchanged, `can_allocate` agrees with `allocate`, and freeing everything
//! gives back one free block of the whole size.

use mem_core::buddy::BuddyBlock;
use mem_core::{BlockPlacement, PlacementError, VirtualBlock};
use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone)]
enum Size {
    /// 1..=1 MiB, the common case.
    Small(u64),
    /// A fraction (of 65536) of the block, up to the whole block.
    Fraction(u32),
    /// Exactly the block size, or one byte more.
    Whole { plus_one: bool },
}

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: Size,
        alignment: u64,
    },
    Free(Index),
    /// Free an offset that is not the start of a live allocation.
    FreeBogus(Index),
}

fn size_strategy() -> impl Strategy<Value = Size> {
    prop_oneof![
        12 => (1u64..=1 << 20).prop_map(Size::Small),
        4 => (0u32..12).prop_map(|e| Size::Small(1 << e)),
        3 => (1u32..=65536).prop_map(Size::Fraction),
        1 => any::<bool>().prop_map(|plus_one| Size::Whole { plus_one }),
    ]
}

fn alignment_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0u64),
        8 => (0u32..=12).prop_map(|e| 1u64 << e),
        1 => (13u32..=30).prop_map(|e| 1u64 << e),
        1 => prop_oneof![Just(3u64), Just(6), Just(100), Just(4097), Just(u64::MAX)],
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (size_strategy(), alignment_strategy()).prop_map(|(size, alignment)| Op::Alloc { size, alignment }),
        4 => any::<Index>().prop_map(Op::Free),
        1 => any::<Index>().prop_map(Op::FreeBogus),
    ]
}

/// `(block_log2, min_log2)` with `min_block` in {1, 64, 256, 4096}.
fn config_strategy() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![Just(0u32), Just(6), Just(8), Just(12)].prop_flat_map(|min_log2| {
        (min_log2.max(4)..=24).prop_map(move |block_log2| (block_log2, min_log2))
    })
}

#[derive(Debug, Clone, Copy)]
struct Live {
    offset: u64,
    size: u64,
    kept: u64,
    id: u64,
}

/// Everything an error must leave unchanged.
fn snapshot(block: &BuddyBlock<u64>) -> (u64, u64, usize, u64, Vec<(u64, u64)>) {
    let mut free: Vec<_> = block.free_ranges().collect();
    free.sort_unstable();
    (
        block.allocated_bytes(),
        block.free_bytes(),
        block.allocation_count(),
        block.largest_free(),
        free,
    )
}

fn check_model(block: &BuddyBlock<u64>, model: &[Live]) -> Result<(), TestCaseError> {
    if let Err(e) = block.validate() {
        return Err(TestCaseError::fail(e));
    }
    let mut ranges: Vec<(u64, u64)> = model.iter().map(|l| (l.offset, l.kept)).collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        prop_assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap: {:?}", pair);
    }
    prop_assert_eq!(block.allocation_count(), model.len());
    prop_assert_eq!(
        block.allocated_bytes(),
        model.iter().map(|l| l.kept).sum::<u64>()
    );
    prop_assert_eq!(block.allocated_bytes() + block.free_bytes(), block.size());
    prop_assert_eq!(block.is_empty(), model.is_empty());
    let histogram_bytes: u64 = block
        .free_histogram()
        .map(|(size, n)| size * n as u64)
        .sum();
    prop_assert_eq!(histogram_bytes, block.free_bytes());
    Ok(())
}

fn run_program(block_log2: u32, min_log2: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let size = 1u64 << block_log2;
    let min_block = 1u64 << min_log2;
    let mut block = BuddyBlock::<u64>::new(size, min_block).unwrap();
    let mut model: Vec<Live> = Vec::new();
    let mut next_id = 0u64;
    for op in ops {
        match op {
            Op::Alloc {
                size: spec,
                alignment,
            } => {
                let req = match *spec {
                    Size::Small(s) => s,
                    Size::Fraction(f) => (size * u64::from(f) / 65536).max(1),
                    Size::Whole { plus_one } => size + u64::from(plus_one),
                };
                let alignment = *alignment;
                let predicted = block.can_allocate(req, alignment);
                let before = snapshot(&block);
                match block.allocate(req, alignment, next_id) {
                    Ok(offset) => {
                        prop_assert!(predicted, "can_allocate said no to {} @ {}", req, alignment);
                        prop_assert_eq!(offset % alignment.max(1), 0);
                        let (kept, &id) = block.get(offset).unwrap();
                        prop_assert_eq!(id, next_id);
                        prop_assert!(
                            kept >= req && kept - req < min_block,
                            "kept {} for {}",
                            kept,
                            req
                        );
                        prop_assert_eq!(kept % min_block, 0);
                        prop_assert!(offset + kept <= size);
                        model.push(Live {
                            offset,
                            size: req,
                            kept,
                            id: next_id,
                        });
                        next_id += 1;
                    }
                    Err(err) => {
                        prop_assert!(
                            !predicted,
                            "can_allocate said yes to {} @ {}: {}",
                            req,
                            alignment,
                            err
                        );
                        prop_assert_eq!(snapshot(&block), before);
                        let align = alignment.max(1);
                        match err {
                            PlacementError::AlignmentNotPowerOfTwo { alignment: a } => {
                                prop_assert!(!align.is_power_of_two());
                                prop_assert_eq!(a, alignment);
                            }
                            PlacementError::TooLarge { capacity, .. } => {
                                prop_assert_eq!(capacity, size);
                                prop_assert!(req > size || align > size);
                            }
                            PlacementError::OutOfSpace { largest_free, .. } => {
                                let kept = req.div_ceil(min_block) * min_block;
                                prop_assert!(largest_free < kept.max(align).next_power_of_two());
                                prop_assert_eq!(largest_free, block.largest_free());
                            }
                            other => prop_assert!(false, "unexpected error {}", other),
                        }
                    }
                }
            }
            Op::Free(index) => {
                if model.is_empty() {
                    prop_assert_eq!(
                        block.free(0),
                        Err(PlacementError::UnknownOffset { offset: 0 })
                    );
                } else {
                    let live = model.swap_remove(index.index(model.len()));
                    let (kept, id) = block.free(live.offset).unwrap();
                    prop_assert_eq!((kept, id), (live.kept, live.id));
                    prop_assert!(live.kept - live.size < min_block);
                    prop_assert!(block.get(live.offset).is_none());
                }
            }
            Op::FreeBogus(index) => {
                // The last byte of a live allocation, or just past the block.
                let offset = match model.get(index.index(model.len().max(1))) {
                    Some(live) if live.kept > 1 => live.offset + live.kept - 1,
                    _ => size,
                };
                let before = snapshot(&block);
                prop_assert_eq!(
                    block.free(offset),
                    Err(PlacementError::UnknownOffset { offset })
                );
                prop_assert_eq!(snapshot(&block), before);
            }
        }
        check_model(&block, &model)?;
    }
    // Free everything, in program order of the model, checking as we go.
    while let Some(live) = model.pop() {
        prop_assert_eq!(block.free(live.offset).unwrap().1, live.id);
        check_model(&block, &model)?;
    }
    prop_assert_eq!(block.free_ranges().collect::<Vec<_>>(), vec![(0, size)]);
    prop_assert_eq!(block.largest_free(), size);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// 16 MiB block, 256-byte minimum block: the device-memory shape.
    #[test]
    fn programs_16mib_min256(ops in prop::collection::vec(op_strategy(), 1..200)) {
        run_program(24, 8, &ops)?;
    }

    /// Block sizes 16 B..16 MiB and min_block in {1, 64, 256, 4096}.
    #[test]
    fn programs_varied_configs(
        (block_log2, min_log2) in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..200),
    ) {
        run_program(block_log2, min_log2, &ops)?;
    }

    /// Long programs of small requests in a small block: many frees land on
    /// tails that were partly reused (the slow free path) and fill to OutOfSpace.
    #[test]
    fn programs_small_block_long(
        min_log2 in prop_oneof![Just(0u32), Just(6)],
        ops in prop::collection::vec(
            prop_oneof![
                3 => ((1u64..=3000), alignment_strategy())
                    .prop_map(|(s, alignment)| Op::Alloc { size: Size::Small(s), alignment }),
                2 => any::<Index>().prop_map(Op::Free),
            ],
            1..600,
        ),
    ) {
        run_program(15, min_log2, &ops)?;
    }

    /// The virtual block keeps its requested-bytes count and refuses nothing
    /// of its own, with either placement (TLSF, its default, or the buddy).
    #[test]
    fn virtual_block_programs(
        sizes in prop::collection::vec((1u64..=5000, 0u32..=8, any::<bool>()), 1..200),
        buddy in any::<bool>(),
    ) {
        let placement = if buddy { BlockPlacement::Buddy } else { BlockPlacement::Tlsf };
        let mut block = VirtualBlock::with_placement(1 << 16, 64, placement).unwrap();
        let mut live = Vec::new();
        for (size, align_log2, free_one) in sizes {
            if free_one && !live.is_empty() {
                let alloc = live.swap_remove(size as usize % live.len());
                block.free(alloc).unwrap();
            } else if let Ok(alloc) = block.allocate(size, 1 << align_log2) {
                prop_assert_eq!(alloc.offset() % (1 << align_log2), 0);
                live.push(alloc);
            }
            if let Err(e) = block.validate() {
                return Err(TestCaseError::fail(e));
            }
            let requested: u64 = live.iter().map(|a| a.size()).sum();
            prop_assert_eq!(block.stats().requested, requested);
        }
        for alloc in live {
            block.free(alloc).unwrap();
        }
        prop_assert_eq!(block.stats().largest_free, 1 << 16);
    }
}

/// Deterministic long churn, checking invariants every 64 steps.
#[test]
fn long_churn_stays_valid() {
    let mut block = BuddyBlock::<u32>::new(1 << 22, 256).unwrap();
    let mut live: Vec<u64> = Vec::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for step in 0..20_000u32 {
        let r = next();
        if live.len() < 200 || r % 2 == 0 {
            let size = 1 + (next() % (1 << (8 + r % 9)));
            if let Ok(off) = block.allocate(size, 1 << (r % 5), step) {
                live.push(off);
            }
        } else {
            let i = (next() % live.len() as u64) as usize;
            block.free(live.swap_remove(i)).unwrap();
        }
        if step % 64 == 0 {
            block.validate().unwrap();
        }
    }
    for off in live {
        block.free(off).unwrap();
    }
    assert_eq!(block.free_ranges().collect::<Vec<_>>(), [(0, 1 << 22)]);
}
