//! Fuzz target `defrag`: arbitrary programs of allocations (any size up to
//! a few MiB, both resource classes, some pinned), frees and
//! defragmentation passes (any budget, committed or cancelled) on an
//! [`Allocator`] over one of the fake device's real GPU tables.
//!
//! Checked after every pass: `validate()`; no two live ranges of one
//! `VkDeviceMemory` overlap (destinations included); every destination
//! lies inside its memory at its source's alignment, with its size, class
//! and memory type; pinned allocations never move; the byte and move
//! budgets hold; committed bytes never rise, and a commit releases at
//! least what the pass announced. At the end everything is freed and the
//! device holds no memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use ash::vk;
use mem_core::fake::{FakeDevice, DEVICE_TABLES};
use mem_core::{
    Allocation, AllocationDesc, AllocationFlags, Allocator, AllocatorConfig, DefragmentationBudget,
    MemoryUsage, ResourceClass,
};

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
}

fn committed(a: &Allocator) -> u64 {
    a.stats().committed_bytes()
}

fn check_disjoint<'a>(all: impl IntoIterator<Item = &'a Allocation>) {
    let mut by_memory: BTreeMap<vk::DeviceMemory, Vec<(u64, u64)>> = BTreeMap::new();
    for a in all {
        by_memory
            .entry(a.memory())
            .or_default()
            .push((a.offset(), a.offset() + a.reserved_size()));
    }
    for ranges in by_memory.values_mut() {
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlap: {:?} and {:?}", w[0], w[1]);
        }
    }
}

/// Runs one program.
pub fn run(data: &[u8]) {
    let mut input = Input { data };
    let table = DEVICE_TABLES[input.u8() as usize % DEVICE_TABLES.len()].0;
    let fake = Arc::new(FakeDevice::builtin(table).expect("a built-in table"));
    let alloc = Allocator::with_device(Box::new(fake.clone()), AllocatorConfig::default());
    let mut live: Vec<Allocation> = Vec::new();
    let mut steps = 0;
    while !input.data.is_empty() && steps < 512 {
        steps += 1;
        match input.u8() % 8 {
            0..=3 => {
                let size = match input.u8() % 4 {
                    0 => u64::from(input.u32() % (4 << 20)) + 1,
                    _ => u64::from(input.u32() % (64 << 10)) + 1,
                };
                let flags = input.u8();
                let desc = AllocationDesc::new(
                    vk::MemoryRequirements {
                        size,
                        alignment: 1 << (flags % 17),
                        memory_type_bits: u32::MAX,
                    },
                    MemoryUsage::GpuOnly,
                )
                .class(if flags & 0x20 != 0 {
                    ResourceClass::Optimal
                } else {
                    ResourceClass::Linear
                })
                .flags(if flags & 0xc0 == 0xc0 {
                    AllocationFlags::PINNED
                } else {
                    AllocationFlags::empty()
                });
                if let Ok(a) = alloc.allocate(&desc) {
                    live.push(a);
                }
            }
            4 | 5 => {
                if !live.is_empty() {
                    let i = input.u32() as usize % live.len();
                    alloc.free(live.swap_remove(i)).expect("own allocation");
                }
            }
            _ => {
                let max_bytes = u64::from(input.u32()) << (input.u8() % 12);
                let max_moves = u32::from(input.u8());
                let pack = input.u8() & 1 == 1;
                let commit = input.u8() & 1 == 1;
                let new_blocks = input.u8() & 1 == 1;
                let before = committed(&alloc);
                let pass = alloc
                    .begin_defragmentation_pass(
                        live.iter().enumerate(),
                        &DefragmentationBudget {
                            max_bytes_per_pass: max_bytes,
                            max_moves_per_pass: max_moves,
                            pack_memory_of_its_own: pack,
                            new_blocks,
                        },
                    )
                    .expect("own allocations");
                alloc.validate().expect("valid after begin");
                let created = pass.stats().bytes_created;
                assert!(new_blocks || created == 0);
                assert!(committed(&alloc) <= before + created);
                assert!(created == 0 || pass.stats().bytes_released > created);
                assert!(pass.moves().len() <= max_moves as usize);
                let bytes: u64 = pass
                    .moves()
                    .iter()
                    .map(|m| m.destination.reserved_size())
                    .sum();
                assert!(bytes <= max_bytes);
                for m in pass.moves() {
                    let (s, d) = (&live[m.key], &m.destination);
                    assert!(!s.is_pinned());
                    assert_eq!(d.reserved_size(), s.reserved_size());
                    assert_eq!(d.memory_type_index(), s.memory_type_index());
                    assert_eq!(d.resource_class(), s.resource_class());
                    assert_eq!(d.offset() % s.alignment(), 0);
                }
                check_disjoint(
                    live.iter()
                        .chain(pass.moves().iter().map(|m| &m.destination)),
                );
                let release = pass.stats().bytes_released;
                if commit {
                    alloc
                        .commit_defragmentation_pass(pass, |k, new| {
                            std::mem::replace(&mut live[k], new)
                        })
                        .expect("own allocations");
                    let after = committed(&alloc);
                    assert!(
                        after <= before && before + created - after >= release,
                        "before {before} created {created} after {after} release {release}"
                    );
                } else {
                    alloc.cancel_defragmentation_pass(pass);
                    // A block created for the pass is gone again; creating
                    // it may have freed kept empty blocks.
                    assert!(committed(&alloc) <= before);
                }
                alloc.validate().expect("valid after the pass");
            }
        }
    }
    for a in live {
        alloc.free(a).expect("own allocation");
    }
    alloc.trim();
    alloc.validate().expect("valid at the end");
    assert_eq!(committed(&alloc), 0);
    assert_eq!(fake.live_memory_objects(), 0);
}
