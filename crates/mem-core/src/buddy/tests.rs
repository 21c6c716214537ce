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
            PlacementError::InvalidConfig { size, min_block }
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
    assert_eq!(block.allocate(0, 1, 0), Err(PlacementError::ZeroSize));
    check(&block);
    assert_eq!(
        block.allocate(16, 3, 0),
        Err(PlacementError::AlignmentNotPowerOfTwo { alignment: 3 })
    );
    check(&block);
    assert_eq!(
        block.allocate(4097, 1, 0),
        Err(PlacementError::TooLarge {
            size: 4097,
            alignment: 1,
            capacity: 4096
        })
    );
    assert_eq!(
        block.allocate(1, 8192, 0),
        Err(PlacementError::TooLarge {
            size: 1,
            alignment: 8192,
            capacity: 4096
        })
    );
    assert_eq!(
        block.allocate(u64::MAX, 1, 0),
        Err(PlacementError::TooLarge {
            size: u64::MAX,
            alignment: 1,
            capacity: 4096
        })
    );
    check(&block);
    assert_eq!(
        block.allocate(2049, 1, 0),
        Err(PlacementError::OutOfSpace {
            size: 2049,
            alignment: 1,
            largest_free: 2048
        })
    );
    check(&block);
    assert_eq!(
        block.free(a + 256),
        Err(PlacementError::UnknownOffset { offset: a + 256 })
    );
    assert_eq!(
        block.free(u64::MAX),
        Err(PlacementError::UnknownOffset { offset: u64::MAX })
    );
    check(&block);
    assert!(!block.can_allocate(0, 1));
    assert!(!block.can_allocate(1, 3));
    assert!(!block.can_allocate(2049, 1));
    assert!(block.can_allocate(2048, 2048));
    // Messages name the values.
    let msg = PlacementError::OutOfSpace {
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
