use super::*;

#[test]
fn mapping_is_monotonic_and_search_rounds_up() {
    let mut last = (0, 0);
    for units in 1..100_000u32 {
        let m = mapping(units);
        assert!(m >= last, "{units}");
        last = m;
        let (fl, sl) = mapping_search(units).unwrap();
        // The smallest size of the searched class is >= units.
        let lo = if fl == 0 {
            sl
        } else {
            (SL_COUNT + sl) << (fl - 1)
        };
        assert!(lo >= units, "{units}: class ({fl},{sl}) starts at {lo}");
    }
}

#[test]
fn allocate_free_merge() {
    let mut b = Tlsf::new(256).unwrap();
    let r = b.add_region(1 << 20).unwrap();
    let a = b.allocate(1000, 0, 1u32).unwrap();
    let c = b.allocate(5000, 4096, 2).unwrap();
    assert_eq!(c.offset % 4096, 0);
    b.validate().unwrap();
    assert_eq!(b.allocated_bytes(), 1024 + 5120);
    assert_eq!(b.free(a.handle, r, a.offset).unwrap(), (1024, 1));
    assert!(b.free(a.handle, r, a.offset).is_err());
    b.validate().unwrap();
    assert_eq!(b.free(c.handle, r, c.offset).unwrap().1, 2);
    b.validate().unwrap();
    assert!(b.is_empty());
    assert_eq!(b.largest_free(), 1 << 20);
    assert_eq!(b.free_ranges(r).collect::<Vec<_>>(), vec![(0, 1 << 20)]);
    b.remove_region(r).unwrap();
    b.validate().unwrap();
    assert!(b.allocate(1, 0, 3).is_err());
}

#[test]
fn fills_every_region_with_odd_sizes() {
    let mut b = Tlsf::new(256).unwrap();
    let r0 = b.add_region(150 * 256).unwrap();
    let r1 = b.add_region(150 * 256).unwrap();
    let mut v = Vec::new();
    for _ in 0..100 {
        v.push(b.allocate(3 * 256 - 7, 0, ()).unwrap());
    }
    assert!(b.allocate(1, 0, ()).is_err());
    assert_eq!(b.region_allocated_bytes(r0), 150 * 256);
    assert_eq!(b.region_allocated_bytes(r1), 150 * 256);
    assert!(b.remove_region(r1).is_err());
    b.validate().unwrap();
    for a in v.iter().step_by(2) {
        b.free(a.handle, a.region, a.offset).unwrap();
    }
    // Every freed hole holds an exact fit again.
    for _ in 0..50 {
        b.allocate(3 * 256, 0, ()).unwrap();
    }
    b.validate().unwrap();
    assert_eq!(b.allocated_bytes(), 300 * 256);
}

#[test]
fn bad_input_is_typed() {
    let mut b = Tlsf::new(256).unwrap();
    assert!(matches!(
        b.allocate(1, 0, ()),
        Err(PlacementError::OutOfSpace { .. })
    ));
    b.add_region(1 << 16).unwrap();
    assert_eq!(b.allocate(0, 0, ()), Err(PlacementError::ZeroSize));
    assert!(matches!(
        b.allocate(1, 3, ()),
        Err(PlacementError::AlignmentNotPowerOfTwo { .. })
    ));
    assert!(matches!(
        b.allocate((1 << 16) + 1, 0, ()),
        Err(PlacementError::OutOfSpace { .. })
    ));
    // Offset 0 is aligned to anything.
    assert_eq!(b.allocate(1, 1 << 17, ()).unwrap().offset, 0);
    assert!(matches!(
        b.allocate(u64::MAX, 0, ()),
        Err(PlacementError::TooLarge { .. })
    ));
    assert!(b.add_region(1000).is_err());
    assert!(b.add_region(0).is_err());
    assert!(Tlsf::<()>::new(3).is_err());
    b.validate().unwrap();
}
