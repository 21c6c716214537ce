//! Large requests on the fake device: placed in blocks of their own pool
//! (not a `VkDeviceMemory` each), memory of its own only above a quarter of
//! a block or when the driver asks for a dedicated allocation, empty blocks
//! kept up to the heap's peak, and a property test over random programs of
//! large and small requests on every shipped GPU table.

use std::sync::Arc;

use ash::vk;
use mem_core::fake::FakeDevice;
use mem_core::{
    AllocationDesc, Allocator, AllocatorConfig, BlockPlacement, Dedicated, MemoryUsage,
    ResourceClass,
};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

fn setup_with(name: &str, config: AllocatorConfig) -> (Arc<FakeDevice>, Allocator) {
    let fake = Arc::new(FakeDevice::builtin(name).unwrap_or_else(|| panic!("no table {name}")));
    let alloc = Allocator::with_device(Box::new(fake.clone()), config);
    (fake, alloc)
}

fn req(size: u64, alignment: u64, class: ResourceClass) -> AllocationDesc<'static> {
    AllocationDesc::new(
        vk::MemoryRequirements {
            size,
            alignment,
            memory_type_bits: u32::MAX,
        },
        MemoryUsage::GpuOnly,
    )
    .class(class)
}

#[test]
fn large_requests_share_blocks_without_a_call_each() {
    // NVIDIA: bufferImageGranularity 1024 separates the small pools, but
    // large buffers and images share the large requests' blocks.
    let (fake, alloc) = setup_with("nvidia-h100", AllocatorConfig::default());
    assert!(alloc.separates_resource_classes());
    let mut live = Vec::new();
    for i in 0..48u64 {
        let size = (2 + i % 31) * MIB + 4096 * i;
        let class = if i % 3 == 0 {
            ResourceClass::Optimal
        } else {
            ResourceClass::Linear
        };
        let a = alloc.allocate(&req(size, 4096, class)).unwrap();
        assert!(!a.has_own_memory(), "{size} bytes got memory of its own");
        // The large pool places at 4 KiB units: nothing shares a page.
        assert_eq!(a.offset() % 4096, 0);
        live.push((a, class));
    }
    alloc.validate().unwrap();
    // 48 requests of ~2-32 MiB (~850 MiB): blocks of 64 MiB and more (the
    // large pool's floor, a quarter of the preferred block), not 48 objects.
    let calls = fake.allocate_log().len();
    assert!(calls <= 14, "{calls} vkAllocateMemory calls");
    assert!(fake
        .allocate_log()
        .iter()
        .all(|&(_, size)| size >= 64 * MIB));
    let shared = live.iter().any(|(a, c)| {
        *c == ResourceClass::Optimal
            && live
                .iter()
                .any(|(b, d)| *d == ResourceClass::Linear && b.memory() == a.memory())
    });
    assert!(shared, "buffers and images share the large pool's blocks");
    // Churn: free every other one and allocate the same sizes again; the
    // holes take them without a driver call.
    let mut kept = Vec::new();
    let mut again = Vec::new();
    for (i, (a, class)) in live.into_iter().enumerate() {
        if i % 2 == 0 {
            again.push((a.reserved_size(), class));
            alloc.free(a).unwrap();
        } else {
            kept.push(a);
        }
    }
    for (size, class) in again {
        kept.push(alloc.allocate(&req(size, 4096, class)).unwrap());
    }
    assert_eq!(fake.allocate_log().len(), calls);
    alloc.validate().unwrap();
    for a in kept {
        alloc.free(a).unwrap();
    }
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn memory_of_its_own_only_past_a_quarter_block_or_when_dedicated() {
    let (fake, alloc) = setup_with("nvidia-h100", AllocatorConfig::default());
    let quarter = alloc.preferred_block_size(0) / 4;
    let linear = ResourceClass::Linear;
    let at = alloc.allocate(&req(quarter, 256, linear)).unwrap();
    assert!(!at.has_own_memory());
    let past = alloc.allocate(&req(quarter + 1, 256, linear)).unwrap();
    assert!(past.has_own_memory());
    let small_required = alloc
        .allocate(&req(MIB, 256, linear).dedicated(Dedicated::Required(None)))
        .unwrap();
    assert!(small_required.has_own_memory());
    let small_preferred = alloc
        .allocate(&req(2 * MIB, 256, linear).dedicated(Dedicated::Preferred(None)))
        .unwrap();
    assert!(small_preferred.has_own_memory());
    // An explicit threshold still gives memory of its own.
    let (_, thresholded) = setup_with(
        "nvidia-h100",
        AllocatorConfig {
            own_memory_threshold: MIB,
            ..Default::default()
        },
    );
    let t = thresholded.allocate(&req(MIB, 256, linear)).unwrap();
    assert!(t.has_own_memory());
    thresholded.free(t).unwrap();
    alloc.validate().unwrap();
    for a in [at, past, small_required, small_preferred] {
        alloc.free(a).unwrap();
    }
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn empty_blocks_stay_until_new_memory_would_pass_the_peak() {
    let (fake, alloc) = setup_with("nvidia-h100", AllocatorConfig::default());
    let linear = ResourceClass::Linear;
    // Four 60 MiB buffers: the large pool's blocks start at 64 MiB, one each.
    let live: Vec<_> = (0..4)
        .map(|_| alloc.allocate(&req(60 * MIB, 256, linear)).unwrap())
        .collect();
    assert_eq!(fake.allocate_log().len(), 4);
    let peak = alloc.stats().committed_bytes();
    assert_eq!(peak, 256 * MIB);
    for a in live {
        alloc.free(a).unwrap();
    }
    // All four stay, empty: refilling them needs no driver call.
    assert_eq!(fake.live_memory_objects(), 4);
    alloc.validate().unwrap();
    let refill: Vec<_> = (0..4)
        .map(|_| alloc.allocate(&req(60 * MIB, 256, linear)).unwrap())
        .collect();
    assert_eq!(fake.allocate_log().len(), 4);
    for a in refill {
        alloc.free(a).unwrap();
    }
    // 100 MiB gets memory of its own; two empty blocks are freed first so
    // the heap stays within its peak.
    let big = alloc.allocate(&req(100 * MIB, 256, linear)).unwrap();
    assert!(big.has_own_memory());
    assert!(alloc.stats().committed_bytes() <= peak);
    assert_eq!(fake.live_memory_objects(), 3);
    alloc.validate().unwrap();
    alloc.free(big).unwrap();
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[test]
fn empty_blocks_past_the_maximum_are_freed() {
    let (fake, alloc) = setup_with(
        "nvidia-h100",
        AllocatorConfig {
            max_empty_blocks_per_type: 2,
            ..Default::default()
        },
    );
    let live: Vec<_> = (0..5)
        .map(|_| {
            alloc
                .allocate(&req(60 * MIB, 256, ResourceClass::Linear))
                .unwrap()
        })
        .collect();
    for a in live {
        alloc.free(a).unwrap();
        alloc.validate().unwrap();
    }
    assert_eq!(fake.live_memory_objects(), 2);
    alloc.trim();
    assert_eq!(fake.live_memory_objects(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    /// Size in KiB (64 KiB..96 MiB: small pool, large pool, own memory),
    /// optimal or not.
    Alloc { kib: u64, optimal: bool },
    /// Frees the live allocation at this index (modulo the count).
    Free(usize),
    /// [`Allocator::trim`].
    Trim,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (64u64..98_304, any::<bool>()).prop_map(|(kib, optimal)| Op::Alloc { kib, optimal }),
        5 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::Trim),
    ]
}

fn table() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("nvidia-h100"),
        Just("lavapipe-mesa-22.3"),
        Just("amd-rx6600-no-rebar"),
        Just("intel-adl-gt2-mesa-uma"),
        Just("mali-g715-android"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random programs of small and large requests: `validate()` after
    /// every step, memory of its own exactly for requests past a quarter
    /// block, no two live allocations of a `VkDeviceMemory` overlap, and
    /// everything is given back at the end.
    #[test]
    fn programs_of_large_requests(
        name in table(),
        buddy in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let placement = if buddy { BlockPlacement::Buddy } else { BlockPlacement::Tlsf };
        let (fake, alloc) = setup_with(name, AllocatorConfig { placement, ..Default::default() });
        let mut live: Vec<mem_core::Allocation> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { kib, optimal } => {
                    let class = if optimal { ResourceClass::Optimal } else { ResourceClass::Linear };
                    let size = kib * 1024;
                    // Small heaps (mobile tables) may run out: a typed
                    // error, never a panic, and nothing leaked.
                    if let Ok(a) = alloc.allocate(&req(size, 4096, class)) {
                        let quarter = alloc.preferred_block_size(a.memory_type_index()) / 4;
                        // Past a quarter block: memory of its own (below it too,
                        // where a full heap leaves no room for a block).
                        prop_assert!(a.has_own_memory() || size <= quarter, "{} bytes", size);
                        for b in &live {
                            if b.memory() == a.memory() {
                                let (x, y) = (a.offset(), b.offset());
                                prop_assert!(
                                    x + a.reserved_size() <= y || y + b.reserved_size() <= x,
                                    "overlap"
                                );
                            }
                        }
                        live.push(a);
                    }
                }
                Op::Free(i) => {
                    if !live.is_empty() {
                        let a = live.swap_remove(i % live.len());
                        alloc.free(a).unwrap();
                    }
                }
                Op::Trim => alloc.trim(),
            }
            alloc.validate().unwrap();
        }
        for a in live {
            alloc.free(a).unwrap();
        }
        alloc.trim();
        prop_assert_eq!(fake.live_memory_objects(), 0);
    }
}
