//! Fuzz target `tlsf`: arbitrary sequences of region adds/removes,
//! allocations (any size and alignment) and frees (valid, stale or made-up
//! handles) on a multi-region [`Tlsf`], with `validate()` and a shadow model
//! after every step.
//!
//! Checked after every operation:
//! - `validate()` (each region's nodes tile it, lists and bitmaps agree,
//!   counters match);
//! - every returned range is aligned, inside its region and overlaps no live
//!   range of that region (shadow model); kept bytes are the size rounded up
//!   to the granularity;
//! - bad input (zero size, non-power-of-two alignment, sizes beyond `u32`
//!   units, unknown handles, removing a region in use) is a typed `Err` and
//!   changes nothing;
//! - `can_allocate` agrees with `allocate` and `try_allocate`;
//! - freeing everything leaves one free range per region, and every region
//!   can then be removed.

use std::collections::BTreeMap;

use mem_core::tlsf::Tlsf;
use mem_core::PlacementError;

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
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// A size: mostly small, sometimes any u64, sometimes near a power of two.
    fn size(&mut self) -> u64 {
        match self.u8() % 8 {
            0 => self.u64(),
            1 => 1u64 << (self.u8() % 64),
            2 => (1u64 << (self.u8() % 24))
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

#[derive(Clone, Copy)]
struct Live {
    region: u32,
    offset: u64,
    size: u64,
    handle: u32,
    tag: u32,
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let mut input = Input { data };
    let granularity = 1u64 << (input.u8() % 13);
    if input.u8() % 32 == 0 {
        // Construction with any number: Ok or InvalidConfig.
        let g = input.u64();
        match Tlsf::<()>::new(g) {
            Ok(t) => {
                assert!(g.is_power_of_two());
                t.validate().expect("fresh allocator valid");
            }
            Err(PlacementError::InvalidConfig { .. }) => assert!(!g.is_power_of_two()),
            Err(e) => panic!("new({g}): unexpected {e:?}"),
        }
        return;
    }
    let mut t: Tlsf<u32> = Tlsf::new(granularity).expect("power of two");
    let mut regions: BTreeMap<u32, u64> = BTreeMap::new();
    let mut live: Vec<Live> = Vec::new();
    let mut freed: Vec<Live> = Vec::new();
    let mut tag = 0u32;
    let mut steps = 0;
    while !input.is_empty() && steps < 2048 {
        steps += 1;
        match input.u8() % 12 {
            0 => {
                // Any size; small ones are kept (validate stays cheap).
                let units = match input.u8() % 4 {
                    0 => input.u64() / granularity,
                    _ => u64::from(input.u8()) * 64 + u64::from(input.u8()) + 1,
                };
                let size = units.wrapping_mul(granularity);
                let junk = input.u8() % 8 == 0;
                let size = if junk { size.wrapping_add(1) } else { size };
                match t.add_region(size) {
                    Ok(r) => {
                        assert!(size > 0 && size % granularity == 0, "accepted {size}");
                        assert!(!regions.contains_key(&r), "region {r} handed out twice");
                        regions.insert(r, size);
                    }
                    Err(PlacementError::InvalidConfig { .. }) => {
                        assert!(
                            size == 0
                                || size % granularity != 0
                                || size / granularity >= u64::from(u32::MAX)
                        );
                    }
                    Err(e) => panic!("add_region({size}): unexpected {e:?}"),
                }
                // Keep the total small.
                if regions.values().sum::<u64>() / granularity > 1 << 18 {
                    break;
                }
            }
            1 => {
                let pick = u32::from(input.u8());
                let r = regions
                    .keys()
                    .nth(pick as usize % regions.len().max(1))
                    .copied();
                let r = r.unwrap_or(pick);
                let used = live.iter().any(|l| l.region == r);
                let before = t.allocated_bytes();
                match t.remove_region(r) {
                    Ok(()) => {
                        assert!(!used && regions.remove(&r).is_some(), "removed {r}");
                        freed.retain(|f| f.region != r);
                    }
                    Err(_) => assert!(used || !regions.contains_key(&r)),
                }
                assert_eq!(t.allocated_bytes(), before);
            }
            2..=6 => {
                let (size, alignment) = (input.size(), input.alignment());
                let before = (t.allocated_bytes(), t.allocation_count());
                let could = t.can_allocate(size, alignment);
                tag += 1;
                // `try_allocate` (the allocator's path) must agree with
                // `allocate`, minus the error's details.
                let result = if input.u8() % 4 == 0 {
                    t.try_allocate(size, alignment, tag)
                        .ok_or(PlacementError::OutOfSpace {
                            size,
                            alignment,
                            largest_free: 0,
                        })
                } else {
                    t.allocate(size, alignment, tag)
                };
                match result {
                    Ok(a) => {
                        assert!(could, "can_allocate said no to ({size}, {alignment})");
                        let region_size = *regions.get(&a.region).expect("known region");
                        let align = alignment.max(1);
                        assert_eq!(
                            a.offset % align,
                            0,
                            "offset {} not aligned to {align}",
                            a.offset
                        );
                        let kept = size.div_ceil(granularity) * granularity;
                        assert!(a.offset + kept <= region_size, "past region end");
                        for l in live.iter().filter(|l| l.region == a.region) {
                            let lk = l.size.div_ceil(granularity) * granularity;
                            assert!(
                                a.offset + kept <= l.offset || l.offset + lk <= a.offset,
                                "overlap"
                            );
                        }
                        assert_eq!(
                            t.get(a.handle, a.region, a.offset).map(|(k, p)| (k, *p)),
                            Some((kept, tag))
                        );
                        live.push(Live {
                            region: a.region,
                            offset: a.offset,
                            size,
                            handle: a.handle,
                            tag,
                        });
                    }
                    Err(e) => {
                        assert!(!could, "can_allocate said yes: {e:?}");
                        assert!(matches!(
                            e,
                            PlacementError::ZeroSize
                                | PlacementError::AlignmentNotPowerOfTwo { .. }
                                | PlacementError::TooLarge { .. }
                                | PlacementError::OutOfSpace { .. }
                        ));
                        assert_eq!((t.allocated_bytes(), t.allocation_count()), before);
                    }
                }
            }
            7..=9 => {
                if live.is_empty() {
                    continue;
                }
                let i = usize::from(input.u8()) % live.len();
                let l = live.swap_remove(i);
                let (kept, got) = t.free(l.handle, l.region, l.offset).expect("live frees");
                assert_eq!(
                    (kept, got),
                    (l.size.div_ceil(granularity) * granularity, l.tag)
                );
                freed.push(l);
            }
            _ => {
                // A stale handle (its node may now belong to someone else at
                // another offset), or made-up numbers: refused, no change.
                let before = (t.allocated_bytes(), t.allocation_count());
                let (h, r, o) = match freed.pop() {
                    Some(f) if input.u8() % 2 == 0 => (f.handle, f.region, f.offset),
                    _ => (input.u32() % 4096, input.u32() % 8, input.u64()),
                };
                let is_live = live
                    .iter()
                    .any(|l| (l.handle, l.region, l.offset) == (h, r, o));
                if !is_live {
                    assert!(t.free(h, r, o).is_err(), "freed a handle that is not live");
                    assert_eq!((t.allocated_bytes(), t.allocation_count()), before);
                }
            }
        }
        t.validate()
            .unwrap_or_else(|e| panic!("tlsf invalid after step {steps}: {e}"));
        assert_eq!(t.allocation_count(), live.len());
    }
    for l in live.drain(..) {
        t.free(l.handle, l.region, l.offset).expect("live");
    }
    t.validate().expect("valid when empty");
    for (&r, &size) in &regions {
        assert_eq!(t.free_ranges(r).collect::<Vec<_>>(), vec![(0, size)]);
        t.remove_region(r).expect("empty region removes");
    }
    t.validate().expect("valid without regions");
}
