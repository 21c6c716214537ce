//! The allocator over the fake device: selection on every real layout,
//! fallback, growth, dedicated allocations, hysteresis, granularity, budget,
//! bad input, fault injection with leak checks, and threads.

use std::sync::Arc;

use ash::vk;
use mem_core::device::DeviceError;
use mem_core::fake::{FakeDevice, RangeOp};
use mem_core::{
    AllocError, Allocation, AllocationDesc, AllocationFlags, Allocator, AllocatorConfig,
    BlockPlacement, CacheRetention, Dedicated, MemoryDevice, MemoryUsage, ResourceClass,
};

const MIB: u64 = 1 << 20;

fn setup(name: &str) -> (Arc<FakeDevice>, Allocator) {
    setup_with(name, AllocatorConfig::default())
}

fn setup_with(name: &str, config: AllocatorConfig) -> (Arc<FakeDevice>, Allocator) {
    let fake = Arc::new(FakeDevice::builtin(name).unwrap_or_else(|| panic!("no table {name}")));
    let alloc = Allocator::with_device(Box::new(fake.clone()), config);
    (fake, alloc)
}

/// Memory of its own from 1 MiB (`own_memory_threshold`), one empty block
/// kept per type: the settings the cache tests exercise.
fn own_memory_config() -> AllocatorConfig {
    AllocatorConfig {
        own_memory_threshold: MIB,
        max_empty_blocks_per_type: 1,
        ..Default::default()
    }
}

/// An allocator with memory of its own from 1 MiB.
fn own_memory(name: &str) -> (Arc<FakeDevice>, Allocator) {
    setup_with(name, own_memory_config())
}

/// An allocator with memory of its own from 1 MiB whose cache keeps at
/// most 1/16 of live bytes.
fn live_share(name: &str) -> (Arc<FakeDevice>, Allocator) {
    setup_with(
        name,
        AllocatorConfig {
            cache_retention: CacheRetention::LiveShare,
            ..own_memory_config()
        },
    )
}

fn req(size: u64, usage: MemoryUsage) -> AllocationDesc<'static> {
    AllocationDesc::new(
        vk::MemoryRequirements {
            size,
            alignment: 256,
            memory_type_bits: u32::MAX,
        },
        usage,
    )
}

/// Expected first choice per usage (GpuOnly, Upload, Dynamic, Readback) on
/// every shipped table, written out by hand from the tables' flags.
const EXPECTED: &[(&str, [u32; 4])] = &[
    // type 0 DL; 4/5 DL|HV|HC; 6 DL|HV|HC|cached; 3 DL|HV|cached (non-coherent)
    ("adreno-750-android", [0, 4, 4, 6]),
    // 0 DL; 1 HV|HC sysram; 2 DL|HV|HC (256 MiB BAR); 3 HV|HC|cached
    ("amd-rx6600-no-rebar", [0, 1, 2, 3]),
    // 0 DL; 2 HV|HC sysram; 3 DL|HV|HC (ReBAR); 5 HV|HC|cached
    ("amd-rx7800xt-radv-rebar", [0, 2, 3, 5]),
    // 0 DL; 1 DL|HV|HC|cached (UMA)
    ("apple-m2-moltenvk", [0, 1, 1, 1]),
    // 0 DL; 1 DL|HV|HC; 2 DL|HV|HC|cached
    ("intel-adl-gt2-mesa-uma", [0, 1, 1, 2]),
    // 0 DL; 1 HV|HC|cached sysram; 2 DL|HV|HC
    ("intel-arc-a770-mesa", [0, 1, 2, 1]),
    ("lavapipe-mesa-22.3", [0, 0, 0, 0]),
    // 0 DL|HV|HC; 1 DL|HV|cached non-coherent
    ("mali-g715-android", [0, 0, 0, 1]),
    ("nvidia-h100", [1, 2, 4, 3]),
    // 7 DL; 8 HV|HC; 9 HV|HC|cached; 10 DL|HV|HC (246 MiB BAR)
    ("nvidia-rtx3060ti-linux-no-rebar", [7, 8, 10, 9]),
];

#[test]
fn selection_on_every_table() {
    assert_eq!(EXPECTED.len(), mem_core::fake::DEVICE_TABLES.len());
    for (name, expected) in EXPECTED {
        let (fake, alloc) = setup(name);
        for (usage, want) in MemoryUsage::ALL.iter().zip(expected) {
            let a = alloc.allocate(&req(4096, *usage)).unwrap();
            assert_eq!(a.memory_type_index(), *want, "{name} {usage:?}");
            let host_visible = fake
                .properties()
                .type_has(*want, vk::MemoryPropertyFlags::HOST_VISIBLE);
            assert_eq!(
                a.mapped_ptr().is_some(),
                host_visible,
                "{name} {usage:?} mapping"
            );
            alloc.free(a).unwrap();
        }
        alloc.validate().unwrap();
    }
}

#[test]
fn memory_type_bits_restrict_choice() {
    let (_fake, alloc) = setup("nvidia-h100");
    // Without type 4, Dynamic falls to host-visible system memory (type 2).
    let mut d = req(4096, MemoryUsage::Dynamic);
    d.memory_type_bits = !(1 << 4);
    let a = alloc.allocate(&d).unwrap();
    assert_eq!(a.memory_type_index(), 2);
    alloc.free(a).unwrap();
}

#[test]
fn rx6600_dynamic_falls_back_when_bar_heap_is_full() {
    let (fake, alloc) = setup("amd-rx6600-no-rebar");
    // The 256 MiB BAR heap (heap 2): leave room for only 8 MiB.
    fake.set_heap_capacity(2, 8 * MIB);
    let mut live = Vec::new();
    let mut types = Vec::new();
    for _ in 0..8 {
        let a = alloc.allocate(&req(2 * MIB, MemoryUsage::Dynamic)).unwrap();
        types.push(a.memory_type_index());
        live.push(a);
    }
    assert_eq!(types[0], 2, "first Dynamic allocations use the BAR heap");
    assert_eq!(
        *types.last().unwrap(),
        1,
        "then host-visible system memory: {types:?}"
    );
    alloc.validate().unwrap();
    for a in live {
        alloc.free(a).unwrap();
    }
}

#[test]
fn h100_gpu_only_falls_back_to_system_memory_when_vram_is_full() {
    let (fake, alloc) = setup("nvidia-h100");
    fake.set_heap_capacity(0, 64 * MIB);
    let mut live = Vec::new();
    for _ in 0..6 {
        live.push(
            alloc
                .allocate(&req(20 * MIB, MemoryUsage::GpuOnly))
                .unwrap(),
        );
    }
    let types: Vec<u32> = live.iter().map(Allocation::memory_type_index).collect();
    assert_eq!(types[0], 1);
    assert!(
        types.contains(&0),
        "falls back to type 0 (system memory): {types:?}"
    );
    for a in live {
        alloc.free(a).unwrap();
    }
    alloc.validate().unwrap();
}

#[test]
fn within_budget_fails_instead_of_exceeding() {
    let (fake, alloc) = setup("nvidia-h100");
    fake.set_heap_capacity(0, 16 * MIB); // budget = capacity on the fake
    fake.set_heap_capacity(1, 16 * MIB);
    let d = req(32 * MIB, MemoryUsage::GpuOnly).flags(AllocationFlags::WITHIN_BUDGET);
    match alloc.allocate(&d) {
        Err(AllocError::OutOfDeviceMemory { tried, .. }) => assert_ne!(tried, 0),
        other => panic!("expected out of memory, got {other:?}"),
    }
    alloc.validate().unwrap();
}

#[test]
fn heap_size_limit_caps_and_escalates() {
    let config = AllocatorConfig {
        heap_size_limits: vec![Some(64 * MIB)],
        ..Default::default()
    };
    let (_fake, alloc) = setup_with("nvidia-h100", config);
    let mut live = Vec::new();
    let mut last_err = None;
    for _ in 0..200 {
        match alloc.allocate(&req(4 * MIB, MemoryUsage::GpuOnly)) {
            Ok(a) => live.push(a),
            Err(e) => {
                last_err = Some(e);
                break;
            }
        }
    }
    // 64 MiB of heap 0, then the other heap (96 GiB) takes over: no error.
    assert!(last_err.is_none(), "{last_err:?}");
    let stats = alloc.stats();
    assert!(stats.heaps[0].committed_bytes <= 64 * MIB);
    assert!(stats.heaps[1].committed_bytes > 0);
    for a in live {
        alloc.free(a).unwrap();
    }
}

#[test]
fn small_first_blocks_then_preferred_size() {
    let (fake, alloc) = setup("nvidia-h100");
    let mut live = Vec::new();
    // 1024 allocations of 512 KiB (512 MiB): TLSF pools grow by 1/8 of the
    // pool (power of two, 16..256 MiB): sixteen 16 MiB blocks up to 256 MiB,
    // then eight of 32 MiB. Every block is filled exactly.
    for _ in 0..1024 {
        live.push(
            alloc
                .allocate(&req(512 * 1024, MemoryUsage::GpuOnly))
                .unwrap(),
        );
    }
    let sizes: Vec<u64> = fake.allocate_log().iter().map(|&(_, s)| s / MIB).collect();
    let mut expected = vec![16; 16];
    expected.extend([32; 8]);
    assert_eq!(sizes, expected);
    alloc.validate().unwrap();
    for a in live {
        alloc.free(a).unwrap();
    }
    // Eight empty blocks stay (`max_empty_blocks_per_type`), the rest go.
    assert_eq!(fake.live_memory_objects(), 8);
    alloc.validate().unwrap();
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn buddy_pools_grow_by_half() {
    let (fake, alloc) = setup_with(
        "nvidia-h100",
        AllocatorConfig {
            placement: BlockPlacement::Buddy,
            own_memory_threshold: u64::MAX,
            ..Default::default()
        },
    );
    let mut live = Vec::new();
    // 61 allocations of 8 MiB, in the large requests' pool: each new block
    // is half the pool (power of two, from a quarter of the preferred
    // 256 MiB up to all of it): 64, 64, 64, 64, 128, 128 (512 MiB in all).
    for _ in 0..61 {
        live.push(alloc.allocate(&req(8 * MIB, MemoryUsage::GpuOnly)).unwrap());
    }
    let sizes: Vec<u64> = fake.allocate_log().iter().map(|&(_, s)| s / MIB).collect();
    assert_eq!(sizes, vec![64, 64, 64, 64, 128, 128]);
    for a in live {
        alloc.free(a).unwrap();
    }
    // All six blocks are empty and kept (`max_empty_blocks_per_type` is 8).
    assert_eq!(fake.live_memory_objects(), 6);
    alloc.validate().unwrap();
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn small_heaps_use_an_eighth() {
    let (_fake, alloc) = setup("amd-rx6600-no-rebar");
    assert_eq!(alloc.preferred_block_size(2), 32 * MIB); // 256 MiB heap / 8
    assert_eq!(alloc.preferred_block_size(0), 256 * MIB);
}

#[test]
fn dedicated_when_large_required_or_preferred() {
    let (fake, alloc) = setup("nvidia-h100");
    let big = alloc
        .allocate(&req(200 * MIB, MemoryUsage::GpuOnly))
        .unwrap();
    assert!(big.has_own_memory());
    assert_eq!(fake.allocate_log().last().unwrap().1, 200 * MIB);
    let small = alloc
        .allocate(&req(4096, MemoryUsage::GpuOnly).dedicated(Dedicated::Required(None)))
        .unwrap();
    assert!(small.has_own_memory());
    let pref = alloc
        .allocate(&req(4096, MemoryUsage::GpuOnly).dedicated(Dedicated::Preferred(None)))
        .unwrap();
    assert!(pref.has_own_memory());
    let normal = alloc.allocate(&req(4096, MemoryUsage::GpuOnly)).unwrap();
    assert!(!normal.has_own_memory());
    let s = alloc.stats();
    assert_eq!(s.total.own_memory_count, 3);
    for a in [big, small, pref, normal] {
        alloc.free(a).unwrap();
    }
    alloc.validate().unwrap();
    // The kept empty block and the three objects, cached (none has a
    // dedicated target): the heap is at its peak.
    assert_eq!(fake.live_memory_objects(), 4);
    let cached: u64 = alloc
        .stats()
        .memory_types
        .iter()
        .map(|t| t.cached_count)
        .sum();
    assert_eq!(cached, 3);
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn granularity_separates_linear_and_optimal_on_nvidia() {
    let (_fake, alloc) = setup("nvidia-h100"); // bufferImageGranularity 1024 > 256
    assert!(alloc.separates_resource_classes());
    let lin = alloc.allocate(&req(300, MemoryUsage::GpuOnly)).unwrap();
    let opt = alloc
        .allocate(&req(300, MemoryUsage::GpuOnly).class(ResourceClass::Optimal))
        .unwrap();
    assert_ne!(lin.memory(), opt.memory());
    alloc.free(lin).unwrap();
    alloc.free(opt).unwrap();
    let (_fake, alloc) = setup("lavapipe-mesa-22.3"); // 64 <= 256
    assert!(!alloc.separates_resource_classes());
    let lin = alloc.allocate(&req(300, MemoryUsage::GpuOnly)).unwrap();
    let opt = alloc
        .allocate(&req(300, MemoryUsage::GpuOnly).class(ResourceClass::Optimal))
        .unwrap();
    assert_eq!(lin.memory(), opt.memory());
    // Naturally aligned to the minimum block: never within one 64-byte page.
    assert!(lin.offset().abs_diff(opt.offset()) >= 256);
    alloc.free(lin).unwrap();
    alloc.free(opt).unwrap();
}

#[test]
fn mali_readback_flushes_and_invalidates_whole_atoms() {
    let (fake, alloc) = setup("mali-g715-android");
    let mut live = Vec::new();
    for (i, size) in [100u64, 64, 1000, 4097, 65536, 3].into_iter().enumerate() {
        let mut a = alloc.allocate(&req(size, MemoryUsage::Readback)).unwrap();
        assert_eq!(a.memory_type_index(), 1);
        assert!(!a.is_coherent());
        let data: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(7).wrapping_add(i as u8))
            .collect();
        alloc.write(&mut a, 0, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        alloc.read(&a, 0, &mut back).unwrap();
        assert_eq!(back, data);
        // Odd sub-ranges too.
        alloc.flush(&a, size / 3, size - size / 3).unwrap();
        alloc.invalidate(&a, 1, size - 1).unwrap();
        live.push(a);
    }
    let log = fake.range_log();
    assert!(log.iter().any(|op| matches!(op, RangeOp::Flush(_))));
    assert!(log.iter().any(|op| matches!(op, RangeOp::Invalidate(_))));
    assert_eq!(fake.range_violations(), Vec::<String>::new());
    for a in live {
        alloc.free(a).unwrap();
    }
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let (fake, alloc) = setup("mali-g715-android");
    let keep = alloc.allocate(&req(4096, MemoryUsage::GpuOnly)).unwrap();
    let before = alloc.stats();
    let calls = fake.allocate_calls();

    assert_eq!(
        alloc.allocate(&req(0, MemoryUsage::GpuOnly)).unwrap_err(),
        AllocError::ZeroSize
    );
    let mut d = req(64, MemoryUsage::GpuOnly);
    d.alignment = 48;
    assert_eq!(
        alloc.allocate(&d).unwrap_err(),
        AllocError::AlignmentNotPowerOfTwo { alignment: 48 }
    );
    let mut d = req(64, MemoryUsage::GpuOnly);
    d.memory_type_bits = 1 << 2; // lazily allocated only
    assert!(matches!(
        alloc.allocate(&d),
        Err(AllocError::NoCompatibleMemoryType {
            memory_type_bits: 4,
            ..
        })
    ));
    d.memory_type_bits = 0;
    assert!(matches!(
        alloc.allocate(&d),
        Err(AllocError::NoCompatibleMemoryType { .. })
    ));
    let huge = req(20_000 * MIB, MemoryUsage::GpuOnly);
    assert!(
        matches!(alloc.allocate(&huge), Err(AllocError::ExceedsHeap { size, .. }) if size == 20_000 * MIB)
    );
    let e = alloc.allocate(&huge).unwrap_err().to_string();
    assert!(e.contains("20971520000"), "message names the size: {e}");

    let (_f2, other) = setup("mali-g715-android");
    let foreign = other.allocate(&req(64, MemoryUsage::GpuOnly)).unwrap();
    let refused = alloc.free(foreign).unwrap_err();
    assert!(matches!(
        refused.error(),
        AllocError::ForeignAllocation { .. }
    ));
    other.free(refused.into_inner()).unwrap();

    let mut host = alloc.allocate(&req(64, MemoryUsage::Upload)).unwrap();
    assert!(matches!(
        alloc.write(&mut host, 60, &[0; 8]),
        Err(AllocError::OutOfBounds {
            offset: 60,
            size: 8,
            ..
        })
    ));
    alloc.free(host).unwrap();

    // Container capacity (host_metadata_bytes) may stay grown; all else is equal.
    let strip = |mut s: mem_core::AllocatorStats| {
        s.memory_types
            .iter_mut()
            .for_each(|t| t.host_metadata_bytes = 0);
        s
    };
    assert_eq!(strip(alloc.stats()), strip(before));
    assert_eq!(fake.allocate_calls(), calls);
    alloc.validate().unwrap();
    alloc.free(keep).unwrap();
}

#[test]
fn freeing_a_foreign_allocation_hands_it_back() {
    let (fake, alloc) = setup("nvidia-h100");
    let (other_fake, other) = setup("nvidia-h100");
    // One range of a block and one memory object of its own.
    for size in [4096, 4 * MIB] {
        let a = other.allocate(&req(size, MemoryUsage::Upload)).unwrap();
        let (memory, offset, ptr) = (a.memory(), a.offset(), a.mapped_ptr());
        let refused = alloc.free(a).unwrap_err();
        let other_id = match *refused.error() {
            AllocError::ForeignAllocation { owner, this } => {
                assert_ne!(owner, this);
                owner
            }
            ref e => panic!("{size}: {e:?}"),
        };
        assert!(refused.to_string().contains(&format!("#{other_id}")));
        let back = refused.into_inner();
        assert_eq!(
            (back.memory(), back.offset(), back.mapped_ptr()),
            (memory, offset, ptr),
            "{size}: handed back unchanged"
        );
        assert_eq!(back.reserved_size(), size);
        // The refusal changed neither allocator; the owner frees it.
        assert_eq!(alloc.stats().total.allocation_count, 0);
        assert_eq!(other.leak_report().len(), 1);
        other.free(back).unwrap();
        assert!(other.leak_report().is_empty(), "{size}: nothing leaks");
        other.validate().unwrap();
        alloc.validate().unwrap();
    }
    drop(other);
    assert_eq!(other_fake.live_memory_objects(), 0);
    drop(alloc);
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn host_access_to_a_foreign_allocation_is_refused_and_changes_nothing() {
    // Mali's Readback type is not coherent: flush and invalidate would
    // reach the device, so the fake's range log shows whether they did.
    let (fake, alloc) = setup("mali-g715-android");
    let (other_fake, other) = setup("mali-g715-android");
    let mut a = other.allocate(&req(1000, MemoryUsage::Readback)).unwrap();
    assert!(!a.is_coherent());
    let pattern: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
    other.write(&mut a, 0, &pattern).unwrap();
    let other_ops = other_fake.range_log().len();
    let foreign = |e: AllocError| matches!(e, AllocError::ForeignAllocation { .. });

    assert!(foreign(alloc.write(&mut a, 0, &[0xAA; 16]).unwrap_err()));
    let mut out = [0u8; 16];
    assert!(foreign(alloc.read(&a, 0, &mut out).unwrap_err()));
    assert_eq!(out, [0; 16], "nothing was read");
    assert!(foreign(alloc.flush(&a, 0, 1000).unwrap_err()));
    assert!(foreign(alloc.invalidate(&a, 0, 1000).unwrap_err()));
    // Refused before the range is looked at.
    assert!(foreign(alloc.write(&mut a, 5000, &[1]).unwrap_err()));
    assert!(foreign(alloc.flush(&a, u64::MAX, 2).unwrap_err()));

    assert!(fake.range_log().is_empty(), "no device call on this side");
    assert_eq!(
        other_fake.range_log().len(),
        other_ops,
        "nor on the owner's"
    );
    let mut back = vec![0u8; 1000];
    other.read(&a, 0, &mut back).unwrap();
    assert_eq!(back, pattern, "the foreign write changed nothing");
    other.free(a).unwrap();
}

#[test]
fn host_access_out_of_bounds_is_refused_and_changes_nothing() {
    let (fake, alloc) = setup("mali-g715-android");
    // Two neighbours in one block: a write past the first must not reach
    // the second.
    let mut a = alloc.allocate(&req(1000, MemoryUsage::Readback)).unwrap();
    let mut b = alloc.allocate(&req(1000, MemoryUsage::Readback)).unwrap();
    assert_eq!(a.memory(), b.memory());
    alloc.write(&mut a, 0, &[1; 1000]).unwrap();
    alloc.write(&mut b, 0, &[2; 1000]).unwrap();
    let ops = fake.range_log().len();
    let oob = |e: AllocError, want: (u64, u64)| match e {
        AllocError::OutOfBounds {
            offset,
            size,
            allocation_size,
        } => (offset, size) == want && allocation_size == 1000,
        _ => false,
    };

    // Write: one byte past the end, wholly past it, an offset that
    // overflows.
    assert!(oob(
        alloc.write(&mut a, 1, &[9; 1000]).unwrap_err(),
        (1, 1000)
    ));
    assert!(oob(alloc.write(&mut a, 1000, &[9]).unwrap_err(), (1000, 1)));
    assert!(oob(
        alloc.write(&mut a, u64::MAX, &[9]).unwrap_err(),
        (u64::MAX, 1)
    ));
    // Read.
    let mut out = vec![0u8; 1001];
    assert!(oob(alloc.read(&a, 0, &mut out).unwrap_err(), (0, 1001)));
    assert!(oob(
        alloc.read(&a, 999, &mut out[..2]).unwrap_err(),
        (999, 2)
    ));
    assert!(out.iter().all(|&x| x == 0), "nothing was read");
    // Flush and invalidate.
    assert!(oob(alloc.flush(&a, 0, 1001).unwrap_err(), (0, 1001)));
    assert!(oob(alloc.flush(&a, 1001, 0).unwrap_err(), (1001, 0)));
    assert!(oob(
        alloc.flush(&a, 8, u64::MAX).unwrap_err(),
        (8, u64::MAX)
    ));
    assert!(oob(alloc.invalidate(&a, 500, 501).unwrap_err(), (500, 501)));
    assert!(oob(
        alloc.invalidate(&a, u64::MAX, 1).unwrap_err(),
        (u64::MAX, 1)
    ));
    assert_eq!(
        fake.range_log().len(),
        ops,
        "no flush or invalidate reached the device"
    );

    // The edges themselves are in bounds.
    alloc.write(&mut a, 999, &[7]).unwrap();
    alloc.flush(&a, 1000, 0).unwrap();
    alloc.invalidate(&a, 0, 1000).unwrap();
    let mut back = vec![0u8; 1000];
    alloc.read(&a, 0, &mut back).unwrap();
    assert!(back[..999].iter().all(|&x| x == 1) && back[999] == 7);
    alloc.read(&b, 0, &mut back).unwrap();
    assert!(back.iter().all(|&x| x == 2), "the neighbour is untouched");
    assert_eq!(fake.range_violations(), Vec::<String>::new());
    alloc.free(a).unwrap();
    alloc.free(b).unwrap();
}

#[test]
fn gpu_only_host_access_is_refused() {
    let (_fake, alloc) = setup("nvidia-h100");
    let mut a = alloc.allocate(&req(64, MemoryUsage::GpuOnly)).unwrap();
    assert!(matches!(
        alloc.write(&mut a, 0, &[1]),
        Err(AllocError::NotHostVisible {
            memory_type_index: 1
        })
    ));
    alloc.free(a).unwrap();
}

#[test]
fn max_allocation_size_is_enforced() {
    let fake = Arc::new(
        FakeDevice::builtin("nvidia-h100")
            .unwrap()
            .with_properties(|p| {
                p.max_memory_allocation_size = 64 * MIB;
            }),
    );
    let alloc = Allocator::with_device(Box::new(fake), AllocatorConfig::default());
    assert_eq!(
        alloc
            .allocate(&req(65 * MIB, MemoryUsage::GpuOnly))
            .unwrap_err(),
        AllocError::ExceedsMaxAllocationSize {
            size: 65 * MIB,
            max: 64 * MIB
        }
    );
}

/// A realistic mix: small, medium, dedicated, host-visible.
fn scenario(alloc: &Allocator, live: &mut Vec<Allocation>) -> Result<(), AllocError> {
    let plan: &[(u64, MemoryUsage)] = &[
        (4096, MemoryUsage::GpuOnly),
        (300 * 1024, MemoryUsage::Upload),
        (40 * MIB, MemoryUsage::GpuOnly),
        (200 * MIB, MemoryUsage::GpuOnly),
        (1000, MemoryUsage::Dynamic),
        (64 * MIB, MemoryUsage::Readback),
        (16 * MIB, MemoryUsage::Upload),
        (7, MemoryUsage::Readback),
    ];
    for &(size, usage) in plan {
        let mut a = alloc.allocate(&req(size, usage))?;
        if a.mapped_ptr().is_some() {
            alloc.write(&mut a, 0, &[0xAB; 7])?;
        }
        live.push(a);
    }
    Ok(())
}

#[test]
fn fault_injection_sweep_allocate_and_map() {
    for table in ["nvidia-h100", "mali-g715-android", "amd-rx6600-no-rebar"] {
        for fail_map in [false, true] {
            for n in 1..=12 {
                let (fake, alloc) = setup(table);
                if fail_map {
                    fake.fail_map_at(n);
                } else {
                    fake.fail_allocate_at(n, DeviceError::OutOfHostMemory);
                }
                let mut live = Vec::new();
                let result = scenario(&alloc, &mut live);
                if let Err(e) = &result {
                    assert!(
                        matches!(
                            e,
                            AllocError::OutOfHostMemory
                                | AllocError::Device(DeviceError::MemoryMapFailed)
                        ),
                        "{table} n={n}: {e:?}"
                    );
                }
                alloc
                    .validate()
                    .unwrap_or_else(|e| panic!("{table} n={n}: {e}"));
                // The next request works.
                let a = alloc.allocate(&req(4096, MemoryUsage::Upload)).unwrap();
                live.push(a);
                for a in live {
                    alloc.free(a).unwrap();
                }
                alloc.validate().unwrap();
                drop(alloc);
                assert_eq!(
                    fake.live_memory_objects(),
                    0,
                    "{table} n={n}: leaked memory"
                );
                assert_eq!(fake.heap_used().iter().sum::<u64>(), 0);
            }
        }
    }
}

#[test]
fn out_of_device_memory_in_every_type_is_typed() {
    let (fake, alloc) = setup("lavapipe-mesa-22.3");
    fake.set_heap_capacity(0, 40 * MIB);
    let mut live = Vec::new();
    let err = loop {
        match alloc.allocate(&req(3 * MIB, MemoryUsage::GpuOnly)) {
            Ok(a) => live.push(a),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, AllocError::OutOfDeviceMemory { tried: 1, .. }),
        "{err:?}"
    );
    assert!(live.len() >= 10, "used most of the heap: {}", live.len());
    alloc.validate().unwrap();
    for a in live {
        alloc.free(a).unwrap();
    }
}

#[test]
fn too_many_objects_is_typed() {
    let fake = Arc::new(
        FakeDevice::builtin("amd-rx6600-no-rebar")
            .unwrap()
            .with_properties(|p| {
                p.max_memory_allocation_count = 3;
            }),
    );
    let alloc = Allocator::with_device(Box::new(fake), AllocatorConfig::default());
    let mut live = Vec::new();
    let err = loop {
        match alloc.allocate(&req(4096, MemoryUsage::GpuOnly).dedicated(Dedicated::Required(None)))
        {
            Ok(a) => live.push(a),
            Err(e) => break e,
        }
    };
    assert_eq!(err, AllocError::TooManyObjects { count: 3, max: 3 });
    for a in live {
        alloc.free(a).unwrap();
    }
}

#[test]
fn leak_report_and_json() {
    let (_fake, alloc) = setup("nvidia-h100");
    let a = alloc
        .allocate(&req(1000, MemoryUsage::Upload).name("vertex buffer"))
        .unwrap();
    let b = alloc
        .allocate(&req(200 * MIB, MemoryUsage::GpuOnly).name("big texture"))
        .unwrap();
    let leaks = alloc.leak_report();
    assert_eq!(leaks.len(), 2);
    assert!(leaks
        .iter()
        .any(|l| l.name.as_deref() == Some("vertex buffer") && l.size == 1000));
    assert!(leaks
        .iter()
        .any(|l| l.name.as_deref() == Some("big texture") && l.own_memory));
    let json: serde_json::Value = serde_json::from_str(&alloc.dump_json(true)).unwrap();
    assert_eq!(json["stats"]["total"]["allocation_count"], 2);
    assert_eq!(json["stats"]["total"]["requested_bytes"], 1000 + 200 * MIB);
    let blocks = json["blocks"].as_array().unwrap();
    assert!(blocks.iter().any(|b| b["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "vertex buffer")));
    let s = alloc.stats();
    // Flags stay bitflags in the statistics; the JSON names them.
    for (t, mt) in s.memory_types.iter().enumerate() {
        assert_eq!(mt.flags, alloc.memory_properties().memory_types[t].flags);
        let text = format!("{:?}", mt.flags);
        assert_eq!(json["stats"]["memory_types"][t]["flags"], text.as_str());
    }
    assert_eq!(
        json["stats"]["memory_types"][4]["flags"],
        "DEVICE_LOCAL | HOST_VISIBLE | HOST_COHERENT"
    );
    assert_eq!(s.heaps[0].flags, ash::vk::MemoryHeapFlags::DEVICE_LOCAL);
    assert_eq!(json["stats"]["heaps"][0]["flags"], "DEVICE_LOCAL");
    assert_eq!(s.committed_bytes(), 16 * MIB + 200 * MIB);
    assert!(s.memory_types[2].largest_free_block >= 8 * MIB);
    assert!(!s.memory_types[2].free_block_histogram.is_empty());
    alloc.free(a).unwrap();
    alloc.free(b).unwrap();
    assert!(alloc.leak_report().is_empty());
}

#[test]
fn eight_threads_allocate_and_free() {
    let (fake, alloc) = setup("nvidia-h100");
    let alloc = Arc::new(alloc);
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            let alloc = alloc.clone();
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
                let mut live: Vec<Allocation> = Vec::new();
                for _ in 0..4000 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if live.len() > 64 || (rng % 3 == 0 && !live.is_empty()) {
                        let i = (rng >> 8) as usize % live.len();
                        alloc.free(live.swap_remove(i)).unwrap();
                    } else {
                        let size = 256 << ((rng >> 20) % 10);
                        let usage = MemoryUsage::ALL[(rng >> 40) as usize % 4];
                        let mut a = alloc.allocate(&req(size, usage)).unwrap();
                        if a.mapped_ptr().is_some() {
                            let pattern = vec![t as u8; size as usize];
                            alloc.write(&mut a, 0, &pattern).unwrap();
                            let mut back = vec![0; size as usize];
                            alloc.read(&a, 0, &mut back).unwrap();
                            assert_eq!(back, pattern, "another thread overwrote this allocation");
                        }
                        live.push(a);
                    }
                }
                for a in live {
                    alloc.free(a).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    alloc.validate().unwrap();
    assert_eq!(alloc.stats().total.allocation_count, 0);
    drop(alloc);
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn exact_size_memory_when_no_power_of_two_block_fits() {
    // 32 MiB first block + 3 MiB of room: after the block is full (eight
    // 3 MiB allocations in 4 MiB buddies), no 4 MiB block fits the heap but
    // a 3 MiB dedicated allocation does.
    let (fake, alloc) = setup_with(
        "lavapipe-mesa-22.3",
        AllocatorConfig {
            placement: BlockPlacement::Buddy,
            own_memory_threshold: u64::MAX,
            ..Default::default()
        },
    );
    fake.set_heap_capacity(0, 35 * MIB);
    let mut live = Vec::new();
    for _ in 0..8 {
        let a = alloc.allocate(&req(3 * MIB, MemoryUsage::GpuOnly)).unwrap();
        assert!(!a.has_own_memory());
        live.push(a);
    }
    let last = alloc.allocate(&req(3 * MIB, MemoryUsage::GpuOnly)).unwrap();
    assert!(last.has_own_memory(), "fell back to exact-size memory");
    assert!(matches!(
        alloc.allocate(&req(3 * MIB, MemoryUsage::GpuOnly)),
        Err(AllocError::OutOfDeviceMemory { .. })
    ));
    alloc.validate().unwrap();
    live.push(last);
    for a in live {
        alloc.free(a).unwrap();
    }
}

#[test]
fn requests_over_a_quarter_block_get_their_own_memory() {
    let (_fake, alloc) = setup_with(
        "nvidia-h100", // 256 MiB blocks
        AllocatorConfig {
            own_memory_threshold: u64::MAX,
            ..Default::default()
        },
    );
    let a = alloc
        .allocate(&req(64 * MIB, MemoryUsage::GpuOnly))
        .unwrap();
    assert!(!a.has_own_memory());
    let b = alloc
        .allocate(&req(64 * MIB + 1, MemoryUsage::GpuOnly))
        .unwrap();
    assert!(b.has_own_memory());
    alloc.free(a).unwrap();
    alloc.free(b).unwrap();
}

#[test]
fn large_requests_get_their_own_memory_and_reuse_it() {
    let (fake, alloc) = live_share("nvidia-h100");
    // Below the 1 MiB threshold: a block.
    let small = alloc
        .allocate(&req(MIB - 256, MemoryUsage::GpuOnly))
        .unwrap();
    assert!(!small.has_own_memory());
    // Enough live bytes that the cache (1/16 of them) can keep 2 MiB.
    let filler: Vec<_> = (0..8)
        .map(|_| alloc.allocate(&req(4 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    assert!(filler.iter().all(|a| a.has_own_memory() && a.offset() == 0));
    let big = alloc.allocate(&req(2 * MIB, MemoryUsage::GpuOnly)).unwrap();
    assert!(big.has_own_memory());
    let calls = fake.allocate_log().len();
    let objects = fake.live_memory_objects();
    alloc.free(big).unwrap();
    // Cached, not freed.
    assert_eq!(fake.live_memory_objects(), objects);
    let s = alloc.stats();
    let t = s.memory_types.iter().find(|t| t.cached_count > 0).unwrap();
    assert_eq!(t.cached_bytes, 2 * MIB);
    alloc.validate().unwrap();
    // Up to 1/4 smaller reuses it without vkAllocateMemory; the allocation
    // reports the request's size and the memory's size apart.
    let again = alloc
        .allocate(&req(2 * MIB - 300 * 1024, MemoryUsage::GpuOnly))
        .unwrap();
    assert_eq!(fake.allocate_log().len(), calls);
    assert_eq!(again.reserved_size(), 2 * MIB - 300 * 1024);
    assert_eq!(
        alloc.stats().total.requested_bytes,
        MIB - 256 + 32 * MIB + 2 * MIB - 300 * 1024
    );
    // Much smaller: new memory.
    let other = alloc.allocate(&req(MIB + 1, MemoryUsage::GpuOnly)).unwrap();
    assert_eq!(fake.allocate_log().len(), calls + 1);
    alloc.validate().unwrap();
    for a in filler.into_iter().chain([again, other, small]) {
        alloc.free(a).unwrap();
    }
    alloc.validate().unwrap();
    // Nothing live: the cache keeps nothing (its share of 0 live bytes).
    assert_eq!(
        alloc
            .stats()
            .memory_types
            .iter()
            .map(|t| t.cached_bytes)
            .sum::<u64>(),
        0
    );
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn cached_memory_is_given_back_when_the_heap_is_full() {
    let (fake, alloc) = own_memory("lavapipe-mesa-22.3");
    fake.set_heap_capacity(0, 48 * MIB);
    let live: Vec<_> = (0..20)
        .map(|_| alloc.allocate(&req(2 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    let mut live = live.into_iter();
    // Free one: 2 MiB cached (under 1/16 of 38 MiB live).
    alloc.free(live.next().unwrap()).unwrap();
    assert_eq!(alloc.stats().committed_bytes(), 40 * MIB);
    // 9 MiB does not fit next to 40 MiB in 48: the cache is dropped first.
    let big = alloc.allocate(&req(9 * MIB, MemoryUsage::GpuOnly)).unwrap();
    assert_eq!(alloc.stats().committed_bytes(), 38 * MIB + 9 * MIB);
    alloc.validate().unwrap();
    for a in live.chain([big]) {
        alloc.free(a).unwrap();
    }
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn cached_memory_is_given_back_when_a_block_cannot_grow() {
    // The heap is exactly full: 19 live objects of their own and one cached.
    let (fake, alloc) = own_memory("lavapipe-mesa-22.3");
    fake.set_heap_capacity(0, 40 * MIB);
    let mut live: Vec<_> = (0..20)
        .map(|_| alloc.allocate(&req(2 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    alloc.free(live.pop().unwrap()).unwrap();
    assert_eq!(alloc.stats().committed_bytes(), 40 * MIB);
    // A small request needs a block; no block size fits next to 40 MiB, so
    // the cached object is freed and the smallest block is retried.
    let small = alloc
        .allocate(&req(512 * 1024, MemoryUsage::GpuOnly))
        .unwrap();
    assert!(!small.has_own_memory());
    let s = alloc.stats();
    assert_eq!(s.memory_types[0].cached_bytes, 0);
    assert!(s.committed_bytes() <= 40 * MIB);
    alloc.validate().unwrap();
    for a in live.into_iter().chain([small]) {
        alloc.free(a).unwrap();
    }
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn the_cache_follows_live_bytes_down_when_blocks_are_freed() {
    let (fake, alloc) = live_share("nvidia-h100");
    let big: Vec<_> = (0..4)
        .map(|_| alloc.allocate(&req(2 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    let small: Vec<_> = (0..256)
        .map(|_| {
            alloc
                .allocate(&req(256 * 1024, MemoryUsage::GpuOnly))
                .unwrap()
        })
        .collect();
    let mut big = big.into_iter();
    // 70 MiB live: 2 MiB fits in the cache's 1/16 share.
    alloc.free(big.next().unwrap()).unwrap();
    assert_eq!(cached_bytes(&alloc), 2 * MIB);
    // Freeing the small ones drops live bytes to 6 MiB: the cache must go.
    for a in small {
        alloc.free(a).unwrap();
    }
    assert_eq!(cached_bytes(&alloc), 0);
    alloc.validate().unwrap();
    free_all_and_trim(&fake, &alloc, big);
}

/// Frees `allocations`, trims, and checks that no `VkDeviceMemory` is left.
fn free_all_and_trim(
    fake: &FakeDevice,
    alloc: &Allocator,
    allocations: impl IntoIterator<Item = Allocation>,
) {
    for a in allocations {
        alloc.free(a).unwrap();
    }
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

fn cached_bytes(alloc: &Allocator) -> u64 {
    alloc
        .stats()
        .memory_types
        .iter()
        .map(|t| t.cached_bytes)
        .sum()
}

#[test]
fn the_cache_keeps_freed_objects_up_to_the_peak_and_never_past_it() {
    let (fake, alloc) = own_memory("nvidia-h100");
    // Peak: 8 x 4 MiB + 4 x 2 MiB = 40 MiB of objects of their own.
    let mut big: Vec<_> = (0..8)
        .map(|_| alloc.allocate(&req(4 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    let mut mid: Vec<_> = (0..4)
        .map(|_| alloc.allocate(&req(2 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    let peak = alloc.stats().committed_bytes();
    assert_eq!(peak, 40 * MIB);
    // Free half of each: all of it stays cached, far above 1/16 of live.
    for a in big.drain(..4).chain(mid.drain(..2)) {
        alloc.free(a).unwrap();
    }
    assert_eq!(cached_bytes(&alloc), 20 * MIB);
    assert_eq!(alloc.stats().committed_bytes(), peak);
    // Same sizes come back without vkAllocateMemory.
    let calls = fake.allocate_log().len();
    big.extend((0..4).map(|_| alloc.allocate(&req(4 * MIB, MemoryUsage::GpuOnly)).unwrap()));
    mid.push(alloc.allocate(&req(2 * MIB, MemoryUsage::GpuOnly)).unwrap());
    assert_eq!(fake.allocate_log().len(), calls);
    assert_eq!(cached_bytes(&alloc), 2 * MIB);
    // A size nothing cached fits: the cached 2 MiB is freed first, so the
    // heap passes its peak by 1 MiB only, not by 3.
    let objects = fake.live_memory_objects();
    let odd = alloc.allocate(&req(3 * MIB, MemoryUsage::GpuOnly)).unwrap();
    assert_eq!(fake.allocate_log().len(), calls + 1);
    assert_eq!(fake.live_memory_objects(), objects);
    assert_eq!(cached_bytes(&alloc), 0);
    assert_eq!(alloc.stats().committed_bytes(), peak + MIB);
    alloc.validate().unwrap();
    // Freed objects make room for a larger one: evicted first, never both
    // cached and new past the peak.
    for a in mid.drain(..) {
        alloc.free(a).unwrap();
    }
    let peak = alloc.stats().committed_bytes();
    let huge = alloc.allocate(&req(5 * MIB, MemoryUsage::GpuOnly)).unwrap();
    assert!(alloc.stats().committed_bytes() <= peak);
    alloc.validate().unwrap();
    for a in big.into_iter().chain([odd, huge]) {
        alloc.free(a).unwrap();
    }
    assert!(cached_bytes(&alloc) > 0, "cached at the peak");
    free_all_and_trim(&fake, &alloc, []);
    assert_eq!(cached_bytes(&alloc), 0);
}

#[test]
fn trim_lowers_the_peak_the_cache_may_fill() {
    let (fake, alloc) = own_memory("nvidia-h100");
    let a: Vec<_> = (0..4)
        .map(|_| alloc.allocate(&req(4 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    let mut a = a.into_iter();
    alloc.free(a.next().unwrap()).unwrap();
    alloc.free(a.next().unwrap()).unwrap();
    assert_eq!(cached_bytes(&alloc), 8 * MIB);
    // After a trim the peak is what is live now (8 MiB): a freed object is
    // still cached, but the next new object evicts it instead of adding to
    // the heap.
    alloc.trim();
    assert_eq!(cached_bytes(&alloc), 0);
    alloc.free(a.next().unwrap()).unwrap();
    assert_eq!(cached_bytes(&alloc), 4 * MIB);
    let other = alloc.allocate(&req(3 * MIB, MemoryUsage::GpuOnly)).unwrap();
    assert_eq!(cached_bytes(&alloc), 0);
    assert_eq!(alloc.stats().committed_bytes(), 7 * MIB);
    free_all_and_trim(&fake, &alloc, a.chain([other]));
}

#[test]
fn a_cache_past_the_budget_is_dropped_before_blocks_shrink() {
    // A 64 MiB heap: the budget is 80% of it (no VK_EXT_memory_budget).
    let fake = FakeDevice::builtin("lavapipe-mesa-22.3")
        .unwrap()
        .with_properties(|p| {
            p.memory_heaps[0].size = 64 * MIB;
            p.memory_budget = false;
        });
    fake.set_heap_capacity(0, 64 * MIB);
    let fake = Arc::new(fake);
    let alloc = Allocator::with_device(Box::new(fake.clone()), AllocatorConfig::default());
    // 16 objects of 4 MiB: the last ones past the budget, up to the heap.
    let big: Vec<_> = (0..16)
        .map(|_| alloc.allocate(&req(4 * MIB, MemoryUsage::GpuOnly)).unwrap())
        .collect();
    assert!(big.iter().all(Allocation::has_own_memory));
    assert_eq!(alloc.stats().committed_bytes(), 64 * MIB);
    for a in big {
        alloc.free(a).unwrap();
    }
    assert_eq!(cached_bytes(&alloc), 64 * MIB, "all cached, at the peak");
    // Within the budget, the cache is what is in the way: it goes, and the
    // request gets its block instead of ever smaller blocks or memory of
    // its own.
    let small = alloc
        .allocate(&req(200 * 1024, MemoryUsage::GpuOnly).flags(AllocationFlags::WITHIN_BUDGET))
        .unwrap();
    assert!(!small.has_own_memory());
    assert_eq!(cached_bytes(&alloc), 0);
    alloc.validate().unwrap();
    free_all_and_trim(&fake, &alloc, [small]);
}
