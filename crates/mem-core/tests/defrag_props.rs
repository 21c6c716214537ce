//! Property tests of defragmentation passes over the fake device's tables.
//!
//! Each case fills an allocator on one real GPU's memory table with random
//! allocations (sizes from 256 B to 4 MiB, so some get memory of their own;
//! both resource classes; some pinned), frees a random share of them, then
//! runs passes with random budgets, each committed or cancelled at random.
//! After every step: `validate()` passes; no two live ranges of one
//! `VkDeviceMemory` overlap (destinations included); every destination lies
//! inside its memory, keeps its source's alignment, class, size and memory
//! type; a pass stays within its byte and move budgets; pinned allocations
//! never move; a pass creates no memory but the blocks its stats report,
//! each giving back more than it takes; committed bytes never rise once a
//! pass is committed or cancelled, and after passes to a fixed point they
//! are no higher than before.

use std::collections::BTreeMap;
use std::sync::Arc;

use ash::vk;
use mem_core::fake::{FakeDevice, DEVICE_TABLES};
use mem_core::{
    Allocation, AllocationDesc, AllocationFlags, Allocator, AllocatorConfig, DefragmentationBudget,
    MemoryUsage, ResourceClass,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Spec {
    size: u64,
    alignment_log2: u32,
    optimal: bool,
    pinned: bool,
    keep: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            6 => 256u64..=64 * 1024,
            2 => 64 * 1024u64..=1 << 20,
            1 => (1u64 << 20)..=4 << 20,
        ],
        0u32..=16,
        any::<bool>(),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.4),
    )
        .prop_map(|(size, alignment_log2, optimal, pinned, keep)| Spec {
            size,
            alignment_log2,
            optimal,
            pinned,
            keep,
        })
}

fn committed(a: &Allocator) -> u64 {
    a.stats().committed_bytes()
}

/// No two ranges of one memory object overlap; each lies inside it.
fn check_disjoint<'a>(all: impl IntoIterator<Item = &'a Allocation>) {
    let mut by_memory: BTreeMap<vk::DeviceMemory, Vec<(u64, u64)>> = BTreeMap::new();
    for a in all {
        let end = a.offset() + a.reserved_size();
        by_memory
            .entry(a.memory())
            .or_default()
            .push((a.offset(), end));
    }
    for ranges in by_memory.values_mut() {
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlap: {:?} and {:?}", w[0], w[1]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn passes_keep_every_invariant(
        table in 0..DEVICE_TABLES.len(),
        specs in prop::collection::vec(spec(), 1..160),
        budgets in prop::collection::vec(
            ((1u64 << 12)..=(64u64 << 20), 1u32..=64, any::<bool>(), any::<bool>(), any::<bool>()),
            1..8,
        ),
    ) {
        let fake = Arc::new(FakeDevice::builtin(DEVICE_TABLES[table].0).unwrap());
        let alloc = Allocator::with_device(Box::new(fake.clone()), AllocatorConfig::default());
        let mut live: Vec<(Allocation, Spec)> = Vec::new();
        for s in &specs {
            let desc = AllocationDesc::new(
                vk::MemoryRequirements {
                    size: s.size,
                    alignment: 1 << s.alignment_log2,
                    memory_type_bits: u32::MAX,
                },
                MemoryUsage::GpuOnly,
            )
            .class(if s.optimal { ResourceClass::Optimal } else { ResourceClass::Linear })
            .flags(if s.pinned { AllocationFlags::PINNED } else { AllocationFlags::empty() });
            if let Ok(a) = alloc.allocate(&desc) {
                live.push((a, s.clone()));
            }
        }
        // Churn: free the ones not kept.
        let (kept, freed): (Vec<_>, Vec<_>) = live.into_iter().partition(|(_, s)| s.keep || s.pinned);
        for (a, _) in freed {
            alloc.free(a).unwrap();
        }
        let mut live: Vec<Option<(Allocation, Spec)>> = kept.into_iter().map(Some).collect();
        alloc.validate().unwrap();
        let start = committed(&alloc);
        for &(max_bytes, max_moves, pack, commit, new_blocks) in &budgets {
            let before = committed(&alloc);
            let calls = fake.allocate_calls();
            let budget = DefragmentationBudget {
                max_bytes_per_pass: max_bytes,
                max_moves_per_pass: max_moves,
                pack_memory_of_its_own: pack,
                new_blocks,
            };
            let pass = alloc
                .begin_defragmentation_pass(
                    live.iter().enumerate().map(|(i, l)| (i, &l.as_ref().unwrap().0)),
                    &budget,
                )
                .unwrap();
            alloc.validate().unwrap();
            let created = pass.stats().bytes_created;
            prop_assert_eq!(
                fake.allocate_calls() - calls,
                u64::from(pass.stats().blocks_created),
                "every block a pass creates is used"
            );
            prop_assert!(new_blocks || created == 0);
            prop_assert!(pass.stats().blocks_created <= 4, "one block per class pool at most");
            prop_assert!(
                committed(&alloc) <= before + created,
                "a pass creates no memory but the blocks it reports"
            );
            prop_assert!(created == 0 || pass.stats().bytes_released > created,
                "a block created gives back more than it takes");
            let moves = pass.moves();
            prop_assert!(moves.len() as u32 <= max_moves);
            let bytes: u64 = moves.iter().map(|m| m.destination.reserved_size()).sum();
            prop_assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
            prop_assert_eq!(pass.stats().moves as usize, moves.len());
            for m in moves {
                let (src, s) = live[m.key].as_ref().unwrap();
                let d = &m.destination;
                prop_assert!(!s.pinned, "a pinned allocation moved");
                prop_assert!(!src.is_pinned());
                prop_assert_eq!(d.reserved_size(), src.reserved_size());
                prop_assert_eq!(d.memory_type_index(), src.memory_type_index());
                prop_assert_eq!(d.resource_class(), src.resource_class());
                prop_assert_eq!(d.offset() % src.alignment(), 0);
                prop_assert!(!d.has_own_memory());
                prop_assert!(d.memory() != src.memory() || !src.has_own_memory());
            }
            check_disjoint(
                live.iter()
                    .map(|l| &l.as_ref().unwrap().0)
                    .chain(moves.iter().map(|m| &m.destination)),
            );
            let expected_release = pass.stats().bytes_released;
            if commit {
                alloc
                    .commit_defragmentation_pass(pass, |key, new| {
                        let (old, s) = live[key].take().unwrap();
                        live[key] = Some((new, s));
                        old
                    })
                    .unwrap();
                let after = committed(&alloc);
                prop_assert!(after <= before, "commit raised committed bytes");
                // Hysteresis may keep one empty block per type of those not
                // emptied by the pass; the pass's own release is exact.
                prop_assert!(before + created - after >= expected_release,
                    "released {} of {expected_release} planned", before + created - after);
            } else {
                alloc.cancel_defragmentation_pass(pass);
                // A block created for the pass is gone again; creating it
                // may have freed kept empty blocks.
                prop_assert!(committed(&alloc) <= before);
            }
            alloc.validate().unwrap();
        }
        // To a fixed point: passes without budget limits until none moves.
        for _ in 0..64 {
            let pass = alloc
                .begin_defragmentation_pass(
                    live.iter().enumerate().map(|(i, l)| (i, &l.as_ref().unwrap().0)),
                    &DefragmentationBudget {
                        max_bytes_per_pass: u64::MAX,
                        max_moves_per_pass: u32::MAX,
                        pack_memory_of_its_own: true,
                        new_blocks: true,
                    },
                )
                .unwrap();
            if pass.is_empty() {
                alloc.cancel_defragmentation_pass(pass);
                break;
            }
            alloc
                .commit_defragmentation_pass(pass, |key, new| {
                    let (old, s) = live[key].take().unwrap();
                    live[key] = Some((new, s));
                    old
                })
                .unwrap();
            alloc.validate().unwrap();
        }
        prop_assert!(committed(&alloc) <= start);
        for l in live.into_iter().flatten() {
            alloc.free(l.0).unwrap();
        }
        alloc.validate().unwrap();
        alloc.trim();
        prop_assert_eq!(committed(&alloc), 0);
        prop_assert_eq!(fake.live_memory_objects(), 0);
    }
}

/// A churned pool gives blocks back: committed bytes fall after a pass.
#[test]
fn churned_pool_releases_blocks() {
    let fake = Arc::new(FakeDevice::builtin("nvidia-h100").unwrap());
    let alloc = Allocator::with_device(Box::new(fake), AllocatorConfig::default());
    let desc = |size| {
        AllocationDesc::new(
            vk::MemoryRequirements {
                size,
                alignment: 256,
                memory_type_bits: u32::MAX,
            },
            MemoryUsage::GpuOnly,
        )
    };
    let mut live: Vec<Option<Allocation>> = (0..4000)
        .map(|i| Some(alloc.allocate(&desc(16 * 1024 + (i % 7) * 4096)).unwrap()))
        .collect();
    // Free three of every four: every block keeps a quarter.
    for (i, l) in live.iter_mut().enumerate() {
        if i % 4 != 0 {
            alloc.free(l.take().unwrap()).unwrap();
        }
    }
    let mut live: Vec<Allocation> = live.into_iter().flatten().collect();
    let before = alloc.stats().committed_bytes();
    let mut passes = 0;
    loop {
        let pass = alloc
            .begin_defragmentation_pass(live.iter().enumerate(), &DefragmentationBudget::default())
            .unwrap();
        if pass.is_empty() {
            alloc.cancel_defragmentation_pass(pass);
            break;
        }
        let mut slots: Vec<Option<Allocation>> = live.into_iter().map(Some).collect();
        alloc
            .commit_defragmentation_pass(pass, |k, new| slots[k].replace(new).unwrap())
            .unwrap();
        live = slots.into_iter().flatten().collect();
        alloc.validate().unwrap();
        passes += 1;
    }
    let after = alloc.stats().committed_bytes();
    assert!(passes > 0);
    assert!(after * 2 < before, "committed {before} -> {after}");
    for a in live {
        alloc.free(a).unwrap();
    }
}
