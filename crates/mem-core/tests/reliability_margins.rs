//! Debug margins (`AllocatorConfig::debug_margin`): canaries around
//! host-visible sub-allocations catch overruns and underruns through the
//! mapped pointer, on demand and on free; clean allocations pass; margins
//! off means no extra space.

use std::sync::Arc;

use ash::vk;
use mem_core::fake::FakeDevice;
use mem_core::{AllocationDesc, Allocator, AllocatorConfig, MemoryUsage};

fn setup(table: &str, margin: u64) -> (Arc<FakeDevice>, Allocator) {
    let fake = Arc::new(FakeDevice::builtin(table).expect("table"));
    let config = AllocatorConfig {
        debug_margin: margin,
        ..AllocatorConfig::default()
    };
    (fake.clone(), Allocator::with_device(Box::new(fake), config))
}

fn desc(size: u64, alignment: u64, usage: MemoryUsage, name: &str) -> AllocationDesc<'_> {
    AllocationDesc::new(
        vk::MemoryRequirements {
            size,
            alignment,
            memory_type_bits: u32::MAX,
        },
        usage,
    )
    .name(name)
}

#[test]
fn overrun_is_reported_with_name_and_offset() {
    for table in [
        "nvidia-h100",
        "amd-rx6600-no-rebar",
        "lavapipe-mesa-22.3",
        "adreno-750-android",
    ] {
        let (fake, alloc) = setup(table, 20); // rounded up to 32
        let mut clean = alloc
            .allocate(&desc(100, 64, MemoryUsage::Upload, "clean"))
            .unwrap();
        let victim = alloc
            .allocate(&desc(1000, 16, MemoryUsage::Upload, "victim"))
            .unwrap();
        let mut after = alloc
            .allocate(&desc(3, 1, MemoryUsage::Upload, "after"))
            .unwrap();
        assert_eq!(clean.offset() % 64, 0, "{table}: alignment kept");
        // Writing the whole allocation through its own slice is fine.
        // SAFETY: fake device, no GPU; the slices are the allocations' own.
        unsafe { clean.mapped_slice_mut().unwrap().fill(0xEE) };
        // SAFETY: as above.
        unsafe { after.mapped_slice_mut().unwrap().fill(0xEE) };
        alloc
            .check_corruption()
            .unwrap_or_else(|e| panic!("{table}: clean allocations flagged: {e}"));
        assert_eq!(alloc.stats().total.corruptions_detected, 0);

        // One byte past the end of "victim".
        let p = victim.mapped_ptr().unwrap();
        // SAFETY: deliberately one byte past the allocation, into its debug
        // margin, which lies inside the same mapped fake block.
        unsafe { p.as_ptr().add(1000).write(0) };
        let err = alloc.check_corruption().expect_err("overrun detected");
        assert_eq!(err.name.as_deref(), Some("victim"), "{table}");
        assert_eq!(err.offset, victim.offset());
        assert_eq!(err.side, "after");
        assert_eq!(err.corrupted_offset, victim.offset() + 1000);
        eprintln!("{table}: {err}");
        // Freeing it still frees, and reports again.
        alloc.free(victim).unwrap();
        assert_eq!(alloc.corruption_reports().len(), 2);
        assert_eq!(alloc.stats().total.corruptions_detected, 2);
        alloc
            .check_corruption()
            .expect("the corrupted allocation is gone");
        // An underrun one byte before "after".
        let q = after.mapped_ptr().unwrap();
        // SAFETY: deliberately one byte before the allocation, into its
        // front margin inside the same mapped fake block.
        unsafe { q.as_ptr().sub(1).write(0x55) };
        let err = alloc.check_corruption().expect_err("underrun detected");
        assert_eq!((err.name.as_deref(), err.side), (Some("after"), "before"));
        alloc.free(after).unwrap();
        alloc.free(clean).unwrap();
        alloc.validate().unwrap();
        assert!(alloc.leak_report().is_empty());
        alloc.trim();
        assert_eq!(fake.live_memory_objects(), 0);
        assert!(
            fake.range_violations().is_empty(),
            "{:?}",
            fake.range_violations()
        );
    }
}

#[test]
fn device_local_and_margins_off_are_untouched() {
    // Margins off: allocations are packed as before (no extra bytes).
    let (_, alloc) = setup("nvidia-h100", 0);
    let a = alloc
        .allocate(&desc(256, 256, MemoryUsage::Upload, "a"))
        .unwrap();
    let b = alloc
        .allocate(&desc(256, 256, MemoryUsage::Upload, "b"))
        .unwrap();
    assert_eq!(b.offset().abs_diff(a.offset()), 256);
    alloc.check_corruption().unwrap();
    alloc.free(a).unwrap();
    alloc.free(b).unwrap();
    // Device-local, not host-visible: no margins (documented), no error.
    let (_, alloc) = setup("nvidia-h100", 64);
    let g = alloc
        .allocate(&desc(256, 256, MemoryUsage::GpuOnly, "gpu"))
        .unwrap();
    assert!(g.mapped_ptr().is_none());
    assert_eq!(g.offset() % 256, 0);
    alloc.check_corruption().unwrap();
    alloc.free(g).unwrap();
    alloc.validate().unwrap();
}

#[test]
fn many_allocations_with_margins_stay_valid() {
    let (fake, alloc) = setup("amd-rx6600-no-rebar", 16);
    let mut live = Vec::new();
    for i in 0..2000u64 {
        let size = 1 + (i * 7919) % 5000;
        let mut a = alloc
            .allocate(&desc(size, 1 << (i % 9), MemoryUsage::Upload, "m"))
            .unwrap();
        // SAFETY: fake device, no GPU; the slice is the allocation's own.
        unsafe { a.mapped_slice_mut().unwrap().fill(i as u8) };
        live.push(a);
        if i % 3 == 0 {
            alloc
                .free(live.swap_remove((i as usize * 31) % live.len()))
                .unwrap();
        }
    }
    alloc.check_corruption().unwrap();
    alloc.validate().unwrap();
    for a in live {
        alloc.free(a).unwrap();
    }
    assert_eq!(alloc.stats().total.corruptions_detected, 0);
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}
