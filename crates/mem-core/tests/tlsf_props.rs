//! Property tests over programs of TLSF operations across several regions.
//!
//! Each case runs a random sequence of region adds/removes, allocations and
//! frees against a [`Tlsf`] and a plain model (a `Vec` of live ranges), and
//! checks after every step: `validate()`, no two live ranges of a region
//! overlap, each lies inside its region, alignment is honoured, waste per
//! allocation is below the granularity, errors change nothing,
//! `can_allocate` agrees with `allocate`, and freeing everything leaves one
//! free range per region.

use mem_core::tlsf::Tlsf;
use mem_core::PlacementError;
use proptest::prelude::*;
use proptest::sample::Index;

const GRANULARITY: u64 = 256;

#[derive(Debug, Clone)]
enum Op {
    AddRegion(u64),
    RemoveRegion(Index),
    Alloc { size: u64, alignment: u64 },
    Free(Index),
    FreeBogus(Index),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u64..=4096).prop_map(|units| Op::AddRegion(units * GRANULARITY)),
        1 => any::<Index>().prop_map(Op::RemoveRegion),
        8 => (
            prop_oneof![4 => 1u64..=64 * 1024, 1 => 1u64..=1 << 20, 1 => Just(0u64)],
            prop_oneof![
                4 => Just(0u64),
                4 => (0u32..=16).prop_map(|e| 1u64 << e),
                1 => prop_oneof![Just(3u64), Just(100), Just(u64::MAX)],
            ],
        )
            .prop_map(|(size, alignment)| Op::Alloc { size, alignment }),
        5 => any::<Index>().prop_map(Op::Free),
        1 => any::<Index>().prop_map(Op::FreeBogus),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Live {
    region: u32,
    offset: u64,
    size: u64,
    handle: u32,
    tag: u64,
}

fn check(t: &Tlsf<u64>, live: &[Live], regions: &[(u32, u64)]) {
    t.validate().unwrap();
    assert_eq!(t.allocation_count(), live.len());
    for &(r, size) in regions {
        assert_eq!(t.region_size(r), size);
        let mut ranges: Vec<(u64, u64)> = live
            .iter()
            .filter(|l| l.region == r)
            .map(|l| (l.offset, l.offset + l.size.next_multiple_of(GRANULARITY)))
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlap in region {r}: {w:?}");
        }
        if let Some(last) = ranges.last() {
            assert!(last.1 <= size, "range past region {r}'s end");
        }
    }
    for l in live {
        let (kept, tag) = t.get(l.handle, l.region, l.offset).expect("live");
        assert_eq!(*tag, l.tag);
        assert!(kept >= l.size && kept - l.size < GRANULARITY);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn programs_keep_every_invariant(ops in prop::collection::vec(op_strategy(), 1..200)) {
        let mut t: Tlsf<u64> = Tlsf::new(GRANULARITY).unwrap();
        let mut live: Vec<Live> = Vec::new();
        let mut regions: Vec<(u32, u64)> = Vec::new();
        let mut tag = 0u64;
        for op in ops {
            match op {
                Op::AddRegion(size) => {
                    let r = t.add_region(size).unwrap();
                    prop_assert!(regions.iter().all(|&(x, _)| x != r), "region index reused while live");
                    regions.push((r, size));
                }
                Op::RemoveRegion(i) => {
                    if regions.is_empty() { continue; }
                    let k = i.index(regions.len());
                    let (r, _) = regions[k];
                    let used = live.iter().any(|l| l.region == r);
                    let res = t.remove_region(r);
                    prop_assert_eq!(res.is_ok(), !used);
                    if !used { regions.swap_remove(k); }
                }
                Op::Alloc { size, alignment } => {
                    let could = t.can_allocate(size, alignment);
                    let before = t.allocated_bytes();
                    tag += 1;
                    match t.allocate(size, alignment, tag) {
                        Ok(a) => {
                            prop_assert!(could, "can_allocate said no");
                            prop_assert!(size > 0 && alignment.max(1).is_power_of_two());
                            prop_assert_eq!(a.offset % alignment.max(1), 0);
                            prop_assert!(regions.iter().any(|&(r, _)| r == a.region));
                            live.push(Live { region: a.region, offset: a.offset, size, handle: a.handle, tag });
                        }
                        Err(e) => {
                            prop_assert!(!could, "can_allocate said yes, allocate failed: {:?}", e);
                            prop_assert_eq!(t.allocated_bytes(), before, "error changed the state");
                            if size == 0 {
                                prop_assert_eq!(e, PlacementError::ZeroSize);
                            }
                        }
                    }
                }
                Op::Free(i) => {
                    if live.is_empty() { continue; }
                    let l = live.swap_remove(i.index(live.len()));
                    let (kept, got) = t.free(l.handle, l.region, l.offset).unwrap();
                    prop_assert_eq!(got, l.tag);
                    prop_assert_eq!(kept, l.size.next_multiple_of(GRANULARITY));
                    // A second free of the same handle is refused.
                    prop_assert!(t.free(l.handle, l.region, l.offset).is_err() || live.iter().any(|x| x.handle == l.handle));
                }
                Op::FreeBogus(i) => {
                    let before = t.allocated_bytes();
                    let (handle, region, offset) = match live.get(i.index(live.len().max(1))) {
                        Some(l) => (l.handle, l.region, l.offset + GRANULARITY),
                        None => (i.index(1000) as u32, 0, 0),
                    };
                    prop_assert!(t.free(handle, region, offset).is_err());
                    prop_assert_eq!(t.allocated_bytes(), before);
                }
            }
            check(&t, &live, &regions);
        }
        for l in live.drain(..) {
            t.free(l.handle, l.region, l.offset).unwrap();
        }
        t.validate().unwrap();
        for &(r, size) in &regions {
            prop_assert_eq!(t.free_ranges(r).collect::<Vec<_>>(), vec![(0, size)]);
            t.remove_region(r).unwrap();
        }
        prop_assert!(t.regions().next().is_none());
        t.validate().unwrap();
    }
}
