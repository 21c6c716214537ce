//! Fuzz target `allocator_fake`: the [`Allocator`] over a [`FakeDevice`] of
//! any shipped device table, any configuration, any request (sizes,
//! alignments, type bits, usages, classes, dedicated hints, flags), with
//! injected `vkAllocateMemory` failures (every `DeviceError`), `vkMapMemory`
//! failures and shrunken heaps.
//!
//! Checked: `validate()` after every step; every error is a typed
//! `AllocError`; a live host-visible allocation's bytes (a tag written at
//! both ends) survive every later operation (no overlap, no lost memory);
//! flush/invalidate ranges obey the spec (`range_violations()` empty); at the
//! end, after freeing everything and `trim()`: no leak report, no live or
//! mapped `VkDeviceMemory` on the fake device.

use std::sync::Arc;

use ash::vk;
use mem_core::device::DeviceError;
use mem_core::fake::{FakeDevice, DEVICE_TABLES};
use mem_core::{
    AllocError, Allocation, AllocationDesc, AllocationFlags, Allocator, AllocatorConfig,
    BlockPlacement, CacheRetention, Dedicated, MemoryDevice, MemoryUsage, ResourceClass,
};

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
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

const MIB: u64 = 1 << 20;

const ERRORS: [DeviceError; 6] = [
    DeviceError::OutOfDeviceMemory,
    DeviceError::OutOfHostMemory,
    DeviceError::TooManyObjects,
    DeviceError::MemoryMapFailed,
    DeviceError::DeviceLost,
    DeviceError::Other(vk::Result::ERROR_UNKNOWN),
];

struct Live {
    allocation: Allocation,
    tag: u64,
}

fn tag_bytes(tag: u64) -> [u8; 8] {
    tag.to_le_bytes()
}

fn write_tag(alloc: &Allocator, live: &mut Live) {
    let size = live.allocation.reserved_size();
    let n = size.min(8);
    let t = tag_bytes(live.tag);
    alloc
        .write(&mut live.allocation, 0, &t[..n as usize])
        .expect("write in bounds");
    if size >= 16 {
        alloc
            .write(&mut live.allocation, size - 8, &t)
            .expect("write in bounds");
    }
}

fn check_tag(alloc: &Allocator, live: &Live) {
    let size = live.allocation.reserved_size();
    let n = size.min(8) as usize;
    let t = tag_bytes(live.tag);
    let mut buf = [0u8; 8];
    alloc
        .read(&live.allocation, 0, &mut buf[..n])
        .expect("read in bounds");
    assert_eq!(
        &buf[..n],
        &t[..n],
        "allocation {} head overwritten",
        live.tag
    );
    if size >= 16 {
        alloc
            .read(&live.allocation, size - 8, &mut buf)
            .expect("read in bounds");
        assert_eq!(buf, t, "allocation {} tail overwritten", live.tag);
    }
}

fn typed(e: &AllocError) -> bool {
    matches!(
        e,
        AllocError::ZeroSize
            | AllocError::AlignmentNotPowerOfTwo { .. }
            | AllocError::NoCompatibleMemoryType { .. }
            | AllocError::ExceedsMaxAllocationSize { .. }
            | AllocError::ExceedsHeap { .. }
            | AllocError::OutOfDeviceMemory { .. }
            | AllocError::OutOfHostMemory
            | AllocError::TooManyObjects { .. }
            | AllocError::Device(_)
    )
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let mut input = Input { data };
    let (name, _) = DEVICE_TABLES[usize::from(input.u8()) % DEVICE_TABLES.len()];
    let fake = FakeDevice::builtin(name).expect("shipped table");
    let max_objects = u32::from(input.u8() % 16);
    let fake = if max_objects != 0 {
        fake.with_properties(|p| p.max_memory_allocation_count = max_objects)
    } else {
        fake
    };
    let fake = Arc::new(fake);
    let heaps = fake.properties().memory_heaps.len();
    let flags = input.u8();
    let config = AllocatorConfig {
        preferred_large_heap_block_size: MIB << (input.u8() % 9),
        min_block_size: 1 << (input.u8() % 14),
        small_first_blocks: flags & 1 != 0,
        max_empty_blocks_per_type: u32::from(input.u8() % 3),
        heap_size_limits: (0..heaps)
            .map(|_| (input.u8() % 4 == 0).then(|| u64::from(input.u8()) * 4 * MIB))
            .collect(),
        device_address: flags & 2 != 0,
        small_allocation_limit: if flags & 4 != 0 {
            0
        } else {
            MIB << (input.u8() % 4)
        },
        debug_margin: if flags & 8 != 0 {
            u64::from(input.u8() % 5) * 16
        } else {
            0
        },
        placement: if flags & 16 != 0 {
            BlockPlacement::Buddy
        } else {
            BlockPlacement::Tlsf
        },
        own_memory_threshold: if flags & 32 != 0 {
            u64::MAX
        } else {
            MIB >> (input.u8() % 8)
        },
        debug_margin_gpu_checked: flags & 64 != 0,
        cache_retention: if flags & 128 != 0 {
            CacheRetention::LiveShare
        } else {
            CacheRetention::UpToPeak
        },
    };
    let margin = config.debug_margin;
    let alloc = Allocator::with_device(Box::new(fake.clone()), config);
    let type_count = fake.properties().memory_types.len() as u32;
    let mut live: Vec<Live> = Vec::new();
    let mut next_tag = 1u64;
    let mut steps = 0;
    while !input.is_empty() && steps < 512 {
        steps += 1;
        match input.u8() % 12 {
            0..=4 => {
                if live.len() >= 96 {
                    continue;
                }
                let size = match input.u8() % 6 {
                    0 => input.u64() % (1024 * MIB + 1),
                    1 => u64::from(input.u32()) % (512 * MIB),
                    2 => u64::from(input.u8()),
                    _ => u64::from(input.u32() % (4 * MIB as u32)),
                };
                let alignment = match input.u8() % 5 {
                    0 => u64::from(input.u32()),
                    1 => 0,
                    _ => 1 << (input.u8() % 24),
                };
                let memory_type_bits = match input.u8() % 4 {
                    0 => input.u32(),
                    _ => u32::MAX,
                };
                let usage = MemoryUsage::ALL[usize::from(input.u8()) % MemoryUsage::ALL.len()];
                let b = input.u8();
                let class = if b & 1 != 0 {
                    ResourceClass::Optimal
                } else {
                    ResourceClass::Linear
                };
                let dedicated = match (b >> 1) % 4 {
                    0 => Dedicated::Preferred(None),
                    1 => Dedicated::Required(None),
                    _ => Dedicated::No,
                };
                let mut f = AllocationFlags::empty();
                if b & 0x10 != 0 {
                    f |= AllocationFlags::WITHIN_BUDGET;
                }
                if b & 0x20 != 0 {
                    f |= AllocationFlags::NEVER_ALLOCATE;
                }
                let tag = next_tag;
                next_tag += 1;
                let name = format!("fuzz#{tag}");
                let desc = AllocationDesc {
                    size,
                    alignment,
                    memory_type_bits,
                    usage,
                    class,
                    dedicated,
                    flags: f,
                    name: Some(&name),
                };
                match alloc.allocate(&desc) {
                    Ok(a) => {
                        assert!(a.reserved_size() == size && a.memory_type_index() < type_count);
                        assert!(
                            memory_type_bits & (1 << a.memory_type_index()) != 0,
                            "type outside memoryTypeBits"
                        );
                        let align = alignment.max(1);
                        assert_eq!(a.offset() % align, 0, "offset not aligned");
                        let mut l = Live { allocation: a, tag };
                        if l.allocation.mapped_ptr().is_some() {
                            write_tag(&alloc, &mut l);
                        }
                        live.push(l);
                    }
                    Err(e) => assert!(typed(&e), "untyped error {e:?}"),
                }
            }
            5 | 6 => {
                if !live.is_empty() {
                    let i = usize::from(input.u8()) % live.len();
                    let l = live.swap_remove(i);
                    if l.allocation.mapped_ptr().is_some() {
                        check_tag(&alloc, &l);
                    }
                    alloc.free(l.allocation).expect("own allocation frees");
                }
            }
            7 => {
                let n = u64::from(input.u8() % 4) + 1;
                fake.fail_allocate_at(n, ERRORS[usize::from(input.u8()) % ERRORS.len()]);
            }
            8 => fake.fail_map_at(u64::from(input.u8() % 4) + 1),
            9 => {
                let heap = u32::from(input.u8()) % heaps as u32;
                fake.set_heap_capacity(heap, u64::from(input.u8()) * 8 * MIB);
            }
            10 => alloc.trim(),
            _ => {
                // Bad host access: must be a typed error, nothing written.
                if let Some(l) = live.first_mut() {
                    let off = input.u64();
                    let r = alloc.write(&mut l.allocation, off, &[0xAB; 16]);
                    if l.allocation.mapped_ptr().is_none() {
                        assert!(matches!(r, Err(AllocError::NotHostVisible { .. })), "{r:?}");
                    } else if off
                        .checked_add(16)
                        .is_none_or(|e| e > l.allocation.reserved_size())
                    {
                        assert!(matches!(r, Err(AllocError::OutOfBounds { .. })), "{r:?}");
                    } else {
                        r.expect("in-bounds write");
                        write_tag(&alloc, l);
                    }
                }
            }
        }
        alloc
            .validate()
            .unwrap_or_else(|e| panic!("{name}: invalid after step {steps}: {e}"));
        if margin > 0 {
            alloc
                .check_corruption()
                .unwrap_or_else(|e| panic!("{name}: margins after step {steps}: {e}"));
            for m in alloc.device_margins() {
                let user_end = m.allocation_offset + m.allocation_size;
                assert!(
                    m.offset % 4 == 0
                        && m.size % 4 == 0
                        && m.size > 0
                        && m.offset + m.size <= m.memory_size
                        && (m.offset + m.size <= m.allocation_offset || m.offset >= user_end),
                    "{name}: bad device margin after step {steps}: {m:?}"
                );
            }
        }
    }
    for l in live.drain(..) {
        if l.allocation.mapped_ptr().is_some() {
            check_tag(&alloc, &l);
        }
        alloc.free(l.allocation).expect("own allocation frees");
    }
    alloc.validate().expect("valid after freeing all");
    assert!(alloc.leak_report().is_empty(), "leaks after freeing all");
    alloc.trim();
    alloc.validate().expect("valid after trim");
    assert_eq!(
        fake.live_memory_objects(),
        0,
        "{name}: VkDeviceMemory leaked"
    );
    assert_eq!(fake.mapped_memory_objects(), 0);
    assert!(
        fake.range_violations().is_empty(),
        "{:?}",
        fake.range_violations()
    );
    assert!(fake.heap_used().iter().all(|&u| u == 0));
}
