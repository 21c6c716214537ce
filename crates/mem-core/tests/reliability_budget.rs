//! Driving the allocator past its heaps on the fake H100: the escalation is
//! preferred type → smaller blocks → exact-size memory → the next compatible
//! type (other heap) → a typed out-of-memory error; nothing is lost and
//! every earlier allocation's contents stay intact.

use std::sync::Arc;

use ash::vk;
use mem_core::fake::FakeDevice;
use mem_core::{
    AllocError, Allocation, AllocationDesc, Allocator, AllocatorConfig, BlockPlacement, MemoryUsage,
};

const MIB: u64 = 1 << 20;

fn fill(i: usize, len: u64) -> Vec<u8> {
    (0..len).map(|b| (b as usize * 31 + i * 7) as u8).collect()
}

#[test]
fn upload_escalates_across_types_and_heaps_then_fails_typed() {
    // Each 5 MiB request takes an 8 MiB buddy (tail trimmed), so a 32 MiB
    // block holds 4. Heap 1 (70 MiB): blocks of 32 + 32 MiB, then no
    // power-of-two block fits (96, 80, 72 MiB > 70) but exact-size memory
    // does (69 MiB). Type 3 shares heap 1: full. Type 4 on heap 0 (40 MiB):
    // a 32 MiB block, then halved sizes down to an 8 MiB block.
    let mut expected = vec![(2, false); 8];
    expected.push((2, true));
    expected.extend([(4, false); 5]);
    escalate(
        AllocatorConfig {
            placement: BlockPlacement::Buddy,
            own_memory_threshold: u64::MAX,
            ..Default::default()
        },
        &expected,
    );
}

#[test]
fn large_uploads_escalate_with_memory_of_their_own() {
    // A 1 MiB `own_memory_threshold` gives 5 MiB requests memory of their
    // own (exact size): 14 fill heap 1's 70 MiB, type 3 shares heap 1, then
    // 8 fill heap 0's 40 MiB.
    let mut expected = vec![(2, true); 14];
    expected.extend([(4, true); 8]);
    let config = AllocatorConfig {
        own_memory_threshold: MIB,
        ..Default::default()
    };
    escalate(config, &expected);
}

fn escalate(config: AllocatorConfig, expected: &[(u32, bool)]) {
    // H100: Upload ranks type 2 (heap 1, system), 3 (heap 1), 4 (heap 0, ReBAR).
    let fake = Arc::new(FakeDevice::builtin("nvidia-h100").unwrap());
    fake.set_heap_capacity(1, 70 * MIB);
    fake.set_heap_capacity(0, 40 * MIB);
    let alloc = Allocator::with_device(Box::new(fake.clone()), config);
    let req = vk::MemoryRequirements {
        size: 5 * MIB,
        alignment: 256,
        memory_type_bits: u32::MAX,
    };
    let mut live: Vec<Allocation> = Vec::new();
    let err = loop {
        match alloc.allocate(&AllocationDesc::new(req, MemoryUsage::Upload).name("level data")) {
            Ok(mut a) => {
                let data = fill(live.len(), a.reserved_size());
                alloc.write(&mut a, 0, &data).unwrap();
                live.push(a);
            }
            Err(e) => break e,
        }
        assert!(live.len() < 100, "never fails?");
    };
    let seq: Vec<(u32, bool)> = live
        .iter()
        .map(|a| (a.memory_type_index(), a.has_own_memory()))
        .collect();
    assert_eq!(seq, expected);
    match err {
        AllocError::OutOfDeviceMemory { size, usage, tried } => {
            assert_eq!((size, usage), (5 * MIB, MemoryUsage::Upload));
            assert_eq!(
                tried,
                (1 << 2) | (1 << 3) | (1 << 4),
                "every compatible type was tried"
            );
        }
        other => panic!("expected a typed out-of-memory error, got {other:?}"),
    }
    let used = fake.heap_used();
    assert!(used[1] <= 70 * MIB && used[0] <= 40 * MIB, "{used:?}");
    alloc.validate().unwrap();
    // Nothing lost: every earlier allocation still holds its bytes.
    for (i, a) in live.iter().enumerate() {
        let mut back = vec![0u8; a.reserved_size() as usize];
        alloc.read(a, 0, &mut back).unwrap();
        assert!(back == fill(i, a.reserved_size()), "allocation {i} damaged");
    }
    // Freeing makes room again: the next request succeeds on the best type.
    let first = live.remove(0);
    alloc.free(first).unwrap();
    let again = alloc
        .allocate(&AllocationDesc::new(req, MemoryUsage::Upload))
        .unwrap();
    assert_eq!(again.memory_type_index(), 2);
    live.push(again);
    for a in live {
        alloc.free(a).unwrap();
    }
    alloc.validate().unwrap();
    drop(alloc);
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn within_budget_stops_at_the_budget_not_the_heap() {
    // VK_EXT_memory_budget on the fake reports budget = capacity: a
    // WITHIN_BUDGET request fails typed where a plain one spills over types.
    let fake = Arc::new(FakeDevice::builtin("amd-rx6600-no-rebar").unwrap());
    fake.set_heap_capacity(2, 32 * MIB); // the 256 MiB BAR heap, nearly full
    let alloc = Allocator::with_device(Box::new(fake.clone()), AllocatorConfig::default());
    let req = vk::MemoryRequirements {
        size: 3 * MIB,
        alignment: 256,
        memory_type_bits: 1 << 2,
    };
    let mut live = Vec::new();
    let err = loop {
        let d = AllocationDesc::new(req, MemoryUsage::Dynamic)
            .flags(mem_core::AllocationFlags::WITHIN_BUDGET);
        match alloc.allocate(&d) {
            Ok(a) => live.push(a),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, AllocError::OutOfDeviceMemory { tried: 4, .. }),
        "{err:?}"
    );
    assert!(!live.is_empty());
    for a in live {
        alloc.free(a).unwrap();
    }
    alloc.validate().unwrap();
}
