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
