use super::*;

fn range(key: usize, offset: u64, size: u64) -> PlanRange {
    PlanRange {
        key,
        offset,
        size,
        alignment: 1,
        movable: true,
    }
}

/// Blocks of `(size, live)`: block `i` holds one range keyed `i` at offset
/// 0 of `live` bytes (none when `live` is 0).
fn one_range_each(spec: &[(u64, u64)]) -> Vec<PlanBlock> {
    spec.iter()
        .enumerate()
        .map(|(i, &(size, live))| PlanBlock {
            size,
            ranges: (live > 0).then(|| range(i, 0, live)).into_iter().collect(),
        })
        .collect()
}

const ALL: PlanBudget = PlanBudget {
    max_bytes: u64::MAX,
    max_moves: u32::MAX,
};

#[test]
fn sparse_block_moves_into_the_dense_one() {
    let blocks = [
        PlanBlock {
            size: 4096,
            ranges: vec![range(0, 0, 1024), range(1, 2048, 1024)],
        },
        PlanBlock {
            size: 4096,
            ranges: vec![range(2, 512, 256)],
        },
    ];
    let plan = plan_pass(&blocks, &[], 256, ALL).unwrap();
    assert_eq!(plan.emptied_blocks, vec![1]);
    assert_eq!(plan.moves.len(), 1);
    let m = plan.moves[0];
    assert_eq!((m.key, m.block, m.offset), (2, 0, 1024));
    assert_eq!(plan.bytes, 256);
}

#[test]
fn pinned_blocks_stay_and_partial_blocks_roll_back() {
    // Block 2's two ranges of 384 fit only one at a time into the others'
    // holes: it cannot be emptied, so none of its ranges moves.
    let blocks = [
        PlanBlock {
            size: 1024,
            ranges: vec![range(0, 0, 768)],
        },
        PlanBlock {
            size: 1024,
            ranges: vec![range(1, 0, 640)],
        },
        PlanBlock {
            size: 1024,
            ranges: vec![range(3, 0, 384), range(4, 512, 384)],
        },
    ];
    let plan = plan_pass(&blocks, &[], 128, ALL).unwrap();
    assert!(plan.emptied_blocks.is_empty(), "{plan:?}");
    assert!(
        plan.moves.iter().all(|m| m.key != 3 && m.key != 4),
        "{plan:?}"
    );

    // Of two rankings the plan that gives back more wins: the two small
    // blocks (more live bytes than their share says) go into the large one.
    let blocks = [
        PlanBlock {
            size: 1024,
            ranges: vec![range(0, 0, 768)],
        },
        PlanBlock {
            size: 1024,
            ranges: vec![range(1, 0, 512)],
        },
        PlanBlock {
            size: 4096,
            ranges: vec![range(3, 0, 384), range(4, 1024, 384)],
        },
    ];
    let plan = plan_pass(&blocks, &[], 128, ALL).unwrap();
    let mut emptied = plan.emptied_blocks.clone();
    emptied.sort_unstable();
    assert_eq!(emptied, vec![0, 1], "{plan:?}");

    // A pinned range keeps its block from being a source.
    let mut pinned = range(2, 0, 256);
    pinned.movable = false;
    let blocks = [
        PlanBlock {
            size: 4096,
            ranges: vec![range(0, 0, 3072)],
        },
        PlanBlock {
            size: 4096,
            ranges: vec![pinned, range(1, 1024, 256)],
        },
    ];
    let plan = plan_pass(&blocks, &[], 256, ALL).unwrap();
    assert!(plan.emptied_blocks.is_empty(), "{plan:?}");
    assert!(plan.moves.iter().all(|m| m.key != 2));
}

#[test]
fn budget_and_alignment_are_kept() {
    let blocks = [
        PlanBlock {
            size: 1 << 16,
            ranges: vec![range(0, 0, 256)],
        },
        PlanBlock {
            size: 1 << 16,
            ranges: vec![PlanRange {
                alignment: 4096,
                ..range(1, 256, 256)
            }],
        },
    ];
    let plan = plan_pass(&blocks, &[], 256, ALL).unwrap();
    // Block 0 is denser by tie-break on index; block 1's range goes there
    // aligned to 4096.
    assert_eq!(plan.moves[0].offset % 4096, 0);
    let none = plan_pass(
        &blocks,
        &[],
        256,
        PlanBudget {
            max_bytes: 100,
            max_moves: 10,
        },
    )
    .unwrap();
    assert!(none.moves.is_empty());
}

#[test]
fn own_memory_packs_into_holes() {
    let blocks = [PlanBlock {
        size: 1 << 20,
        ranges: vec![range(0, 0, 1 << 19)],
    }];
    let own = [
        PlanOwn {
            key: 7,
            size: 1 << 18,
            alignment: 1 << 16,
        },
        PlanOwn {
            key: 8,
            size: 1 << 20,
            alignment: 1,
        },
    ];
    let plan = plan_pass(&blocks, &own, 256, ALL).unwrap();
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(plan.moves[0].key, 7);
    assert_eq!(plan.moves[0].from, MoveSource::OwnMemory);
    assert_eq!(plan.moves[0].offset, 1 << 19);
}

#[test]
fn bad_input_is_an_error() {
    let overlap = [PlanBlock {
        size: 1024,
        ranges: vec![range(0, 0, 512), range(1, 256, 256)],
    }];
    assert!(matches!(
        plan_pass(&overlap, &[], 256, ALL),
        Err(PlanError::BadRange { .. })
    ));
    let past = [PlanBlock {
        size: 1024,
        ranges: vec![range(0, 768, 512)],
    }];
    assert!(plan_pass(&past, &[], 256, ALL).is_err());
    assert!(plan_pass(&[], &[], 3, ALL).is_err());
}

#[test]
fn compaction_gathers_holes_when_nothing_can_be_emptied() {
    // Block 0: four 256-byte holes between ranges; block 1 holds 768 bytes
    // in one range, more than any hole of block 0.
    let blocks = [
        PlanBlock {
            size: 2048,
            ranges: vec![
                range(0, 256, 256),
                range(1, 768, 256),
                range(2, 1280, 256),
                range(3, 1792, 256),
            ],
        },
        PlanBlock {
            size: 2048,
            ranges: vec![range(4, 0, 768)],
        },
    ];
    let plan = plan_pass(&blocks, &[], 256, ALL).unwrap();
    assert!(plan.emptied_blocks.is_empty());
    assert!(!plan.moves.is_empty());
    for m in &plan.moves {
        let MoveSource::Block { block, offset } = m.from else {
            panic!("block moves only")
        };
        assert_eq!(block, m.block, "compaction stays in its block");
        assert!(m.offset < offset, "and moves down: {m:?}");
    }
}

#[test]
fn a_sparse_block_with_a_pinned_range_takes_data() {
    let mut pinned = range(0, 0, 256);
    pinned.movable = false;
    let blocks = [
        // Sparsest, but pinned: never a source, still a destination.
        PlanBlock {
            size: 4096,
            ranges: vec![pinned],
        },
        PlanBlock {
            size: 4096,
            ranges: vec![range(1, 0, 512)],
        },
    ];
    let plan = plan_pass(&blocks, &[], 256, ALL).unwrap();
    assert_eq!(plan.emptied_blocks, vec![1]);
    assert_eq!((plan.moves[0].key, plan.moves[0].block), (1, 0));
}

/// Four blocks, each 3/4 live in ranges too large for any other block's
/// hole: no pass empties one into the others, so a block sized for the
/// sparsest ones is worth creating, and the pass into it empties them.
#[test]
fn new_block_takes_what_no_hole_fits() {
    let blocks: Vec<PlanBlock> = (0..4)
        .map(|b| PlanBlock {
            size: 4096,
            ranges: vec![
                range(b * 2, 0, 2048),
                range(b * 2 + 1, 2048, 1024 - 256 * b as u64),
            ],
        })
        .collect();
    let plan = plan_pass(&blocks, &[], 256, ALL).unwrap();
    assert_eq!(plan.released(&blocks), 0, "{plan:?}");
    let budget = PlanBudget {
        max_bytes: 6144,
        max_moves: 16,
    };
    let new = plan_new_block(&blocks, 256, budget, 1 << 20)
        .unwrap()
        .expect("worth a block");
    // The sparsest first: blocks 3 (2304 live) and 2 (2560 live) fit the
    // budget; a third would not.
    assert_eq!(new.sources, vec![3, 2]);
    assert_eq!(new.live, 2304 + 2560);
    assert_eq!(new.released, 8192);
    // Their 2048-byte ranges go to the new block; the small ones fit the
    // holes of block 0 (the densest), so the block holds 4096 bytes.
    assert_eq!(new.size, 4096);

    let mut with_fresh = blocks.clone();
    with_fresh.push(PlanBlock {
        size: new.size,
        ranges: Vec::new(),
    });
    let fresh = Fresh {
        index: 4,
        sources: &new.sources,
    };
    let plan = plan_pass_into(&with_fresh, 256, budget, fresh).unwrap();
    let mut emptied = plan.emptied_blocks.clone();
    emptied.sort_unstable();
    assert_eq!(emptied, vec![2, 3], "{plan:?}");
    assert!(plan.moves.iter().all(|m| m.block == 4 || m.block == 0));
    assert!(plan.released(&with_fresh) > new.size);
    // Destinations in the fresh block do not overlap and stay inside it.
    let mut ranges: Vec<(u64, u64)> = plan
        .moves
        .iter()
        .filter(|m| m.block == 4)
        .map(|m| (m.offset, m.offset + m.size))
        .collect();
    ranges.sort_unstable();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0));
    assert!(ranges.last().unwrap().1 <= new.size);
}

/// Dense blocks are not worth a new block: copying them would give back
/// less than 1/16 of the bytes copied.
#[test]
fn no_new_block_for_dense_blocks() {
    let blocks: Vec<PlanBlock> = (0..2)
        .map(|b| PlanBlock {
            size: 1 << 20,
            ranges: vec![range(b, 0, (1 << 20) - 4096)],
        })
        .collect();
    assert_eq!(plan_new_block(&blocks, 4096, ALL, 1 << 30).unwrap(), None);
    // Pinned ranges keep a block out; an empty budget takes nothing.
    let mut sparse = blocks.clone();
    sparse[0].ranges[0].size = 4096;
    sparse[0].ranges[0].movable = false;
    assert_eq!(plan_new_block(&sparse, 4096, ALL, 1 << 30).unwrap(), None);
    sparse[0].ranges[0].movable = true;
    // 4096 live fits the dense block's 4096-byte hole: no block needed.
    assert_eq!(plan_new_block(&sparse, 4096, ALL, 1 << 30).unwrap(), None);
    sparse[0].ranges[0].size = 8192;
    let none = PlanBudget {
        max_bytes: 0,
        max_moves: 0,
    };
    assert_eq!(plan_new_block(&sparse, 4096, none, 1 << 30).unwrap(), None);
    let new = plan_new_block(&sparse, 4096, ALL, 1 << 30)
        .unwrap()
        .unwrap();
    assert_eq!((new.sources, new.size), (vec![0], 8192));
}

/// Sources are chosen for the worst placement order (each range may need
/// its alignment beyond the granularity as padding); the block is sized
/// to where the pass places them.
#[test]
fn new_block_is_sized_to_what_lands_there() {
    let mut r = range(0, 0, 256);
    r.alignment = 1024;
    let blocks = vec![PlanBlock {
        size: 8192,
        ranges: vec![r, range(1, 1024, 256)],
    }];
    let new = plan_new_block(&blocks, 256, ALL, 1 << 20).unwrap().unwrap();
    // Worst order (the unaligned range first, the aligned one at 1024)
    // needs 1280; the pass places the aligned one first, at 0.
    assert_eq!(new.size, 512);
    // A block too small for the worst order is not planned.
    assert_eq!(plan_new_block(&blocks, 256, ALL, 1024).unwrap(), None);
}

/// A block that took moved data is never emptied in the same pass.
#[test]
fn destination_is_never_a_source() {
    let blocks = one_range_each(&[(4096, 512), (4096, 1024), (4096, 3072), (8192, 0)]);
    let fresh = Fresh {
        index: 3,
        sources: &[0, 1, 2],
    };
    let plan = plan_pass_into(&blocks, 256, ALL, fresh).unwrap();
    for &e in &plan.emptied_blocks {
        assert!(plan.moves.iter().all(|m| m.block != e), "{plan:?}");
    }
}

/// A fresh index that names no empty block takes nothing, and the pass
/// still empties only the sources it was given.
#[test]
fn pass_into_keeps_its_sources_without_a_fresh_block() {
    let blocks = one_range_each(&[(4096, 2048), (4096, 256), (4096, 512)]);
    for index in [0, 7] {
        let fresh = Fresh {
            index,
            sources: &[2],
        };
        let plan = plan_pass_into(&blocks, 256, ALL, fresh).unwrap();
        assert_eq!(plan.emptied_blocks, vec![2], "{plan:?}");
        assert!(plan
            .moves
            .iter()
            .all(|m| m.key == 2 && m.block < blocks.len()));
    }
}
