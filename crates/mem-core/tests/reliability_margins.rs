//! Debug margins (`AllocatorConfig::debug_margin`): canaries around
//! host-visible sub-allocations catch overruns and underruns through the
//! mapped pointer, on demand and on free; clean allocations pass; margins
//! off means no extra space. Device-local margins are listed for the GPU
//! checker (`mem-staging/tests/margins_gpu.rs` runs it on lavapipe), with
//! the allocator's side (layout, marking, reporting) tested here.

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
fn margins_off_add_nothing_and_device_local_is_left_to_the_gpu() {
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
    assert!(alloc.device_margins().is_empty());
    alloc.free(a).unwrap();
    alloc.free(b).unwrap();
    // Device-local, not host-visible: margins the host cannot touch; the
    // host check and free leave them alone (the GPU checker's job).
    let (_, alloc) = setup("nvidia-h100", 64);
    let g = alloc
        .allocate(&desc(256, 256, MemoryUsage::GpuOnly, "gpu"))
        .unwrap();
    assert!(g.mapped_ptr().is_none());
    assert_eq!(g.offset() % 256, 0);
    assert_eq!(alloc.device_margins().len(), 2);
    alloc.check_corruption().unwrap();
    alloc.free(g).unwrap();
    assert!(alloc.device_margins().is_empty());
    alloc.validate().unwrap();
}

/// Device-local margins (nvidia-h100 `GpuOnly`): listed two per allocation,
/// 4-byte aligned and sized, hugging the allocation without touching any
/// neighbour; marking and reporting go by allocation id, so a freed
/// allocation is neither marked nor reported.
#[test]
fn device_local_margins_are_listed_marked_and_reported() {
    let (fake, alloc) = setup("nvidia-h100", 20); // rounded up to 32
    let sizes = [(1000u64, 16u64), (3, 1), (4096, 256), (77, 64), (1, 1)];
    let live: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(size, align))| {
            let name = format!("g{i}");
            alloc
                .allocate(&desc(size, align, MemoryUsage::GpuOnly, &name))
                .unwrap()
        })
        .collect();
    let margins = alloc.device_margins();
    assert_eq!(margins.len(), 2 * live.len());
    for a in &live {
        assert!(a.mapped_ptr().is_none());
        let mine: Vec<_> = margins
            .iter()
            .filter(|m| m.memory == a.memory() && m.allocation_offset == a.offset())
            .collect();
        assert_eq!(mine.len(), 2, "{a:?}");
        let before = mine.iter().find(|m| m.side == "before").unwrap();
        let after = mine.iter().find(|m| m.side == "after").unwrap();
        assert_eq!(before.allocation_id, after.allocation_id);
        assert_eq!(before.offset + before.size, a.offset());
        assert!(before.size >= 32);
        assert_eq!(
            after.offset,
            (a.offset() + a.reserved_size()).next_multiple_of(4)
        );
        assert!(after.size >= 32);
        for m in [before, after] {
            assert_eq!((m.offset % 4, m.size % 4), (0, 0), "{m:?}");
            assert!(!m.filled);
            assert!(m.offset + m.size <= m.memory_size);
            // No other allocation overlaps the margin.
            for b in &live {
                if b.memory() == m.memory {
                    assert!(
                        m.offset + m.size <= b.offset()
                            || m.offset >= b.offset() + b.reserved_size(),
                        "{m:?} overlaps {b:?}"
                    );
                }
            }
        }
    }
    // Host check and stats know nothing of them.
    alloc.check_corruption().unwrap();
    assert_eq!(alloc.stats().total.corruptions_detected, 0);

    // Mark the first three allocations' margins filled.
    let first: Vec<_> = margins
        .iter()
        .filter(|m| {
            live[..3]
                .iter()
                .any(|a| a.offset() == m.allocation_offset && a.memory() == m.memory)
        })
        .cloned()
        .collect();
    assert_eq!(alloc.mark_device_margins_filled(&first), 3);
    assert_eq!(
        alloc.mark_device_margins_filled(&first),
        0,
        "already filled"
    );
    let filled = alloc.device_margins().iter().filter(|m| m.filled).count();
    assert_eq!(filled, 6);

    // A report on a live allocation is recorded with its name and side.
    let victim = margins
        .iter()
        .find(|m| m.name.as_deref() == Some("g0") && m.side == "after")
        .unwrap();
    let r = alloc
        .report_device_corruption(victim, victim.offset + 2)
        .expect("live allocation reported");
    assert_eq!((r.name.as_deref(), r.side), (Some("g0"), "after"));
    assert_eq!(r.offset, victim.allocation_offset);
    assert_eq!(r.corrupted_offset, victim.offset + 2);
    assert_eq!(alloc.stats().total.corruptions_detected, 1);
    assert_eq!(alloc.corruption_reports(), vec![r]);

    // Free everything; a new allocation may take g0's place but has another
    // id: the old margin is neither marked nor reported.
    for a in live {
        alloc.free(a).unwrap();
    }
    let again = alloc
        .allocate(&desc(1000, 16, MemoryUsage::GpuOnly, "again"))
        .unwrap();
    assert!(alloc
        .report_device_corruption(victim, victim.offset)
        .is_none());
    assert_eq!(
        alloc.mark_device_margins_filled(std::slice::from_ref(victim)),
        0
    );
    assert!(alloc.device_margins().iter().all(|m| !m.filled));
    assert_eq!(alloc.stats().total.corruptions_detected, 1);
    alloc.free(again).unwrap();
    alloc.validate().unwrap();
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

/// `debug_margin_gpu_checked` leaves host-visible margins to the GPU checker:
/// the host writes no canary, so an unfilled margin is not reported by the
/// host check or on free.
#[test]
fn gpu_checked_host_visible_margins_are_left_to_the_checker() {
    let fake = Arc::new(FakeDevice::builtin("lavapipe-mesa-22.3").expect("table"));
    let config = AllocatorConfig {
        debug_margin: 16,
        debug_margin_gpu_checked: true,
        ..AllocatorConfig::default()
    };
    let alloc = Allocator::with_device(Box::new(fake.clone()), config);
    let mut a = alloc
        .allocate(&desc(10, 4, MemoryUsage::Upload, "hv"))
        .unwrap();
    assert!(a.mapped_ptr().is_some());
    let margins = alloc.device_margins();
    assert_eq!(margins.len(), 2);
    let after = margins.iter().find(|m| m.side == "after").unwrap();
    assert_eq!(after.offset, a.offset() + 12, "request rounded up to 4");
    // SAFETY: fake device, no GPU; the slice is the allocation's own.
    unsafe { a.mapped_slice_mut().unwrap().fill(0xEE) };
    // One byte past the end, into the (unfilled) margin: not the host's job.
    // SAFETY: inside the same mapped fake block, in the allocation's margin.
    unsafe { a.mapped_ptr().unwrap().as_ptr().add(13).write(0) };
    alloc.check_corruption().unwrap();
    alloc.free(a).unwrap();
    assert_eq!(alloc.stats().total.corruptions_detected, 0);
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
