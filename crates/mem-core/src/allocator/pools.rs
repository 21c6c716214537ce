//! What one memory type holds, behind its lock: class pools of blocks with
//! their placer, memory of its own, the reuse cache, and the counters
//! [`Allocator::validate`](super::Allocator::validate) checks.
//!
//! Invariants (checked by `validate`): a class pool's `blocks` and its
//! placer name the same slots with the same sizes; `live_blocks` counts
//! them; `empty_blocks` counts the empty ones and stays within the
//! configured maximum; the cache's lists are never empty and `cached_bytes`
//! / `cached_count` are their sums; `committed_bytes` / `memory_objects`
//! are blocks + memory of its own + cache + in flight. Everything that
//! takes memory out of a pool goes through [`TypePool::retire_block`],
//! [`TypePool::take_cached`] or [`TypePool::take_own`], so the counters
//! move together.

use std::collections::BTreeMap;

use ash::vk;
use smallvec::SmallVec;

use super::MappedPtr;
use crate::placement::{BlockPlacement, PoolPlacer};

/// Per-allocation metadata kept by the placer (for stats and leaks): 16
/// bytes, since every allocate writes it and every free reads it; what only
/// named allocations and debug margins need lives in a box.
#[derive(Debug)]
pub(super) struct AllocMeta {
    pub(super) requested: u64,
    pub(super) extra: Option<Box<MetaExtra>>,
}

/// The rare part of [`AllocMeta`].
#[derive(Debug, Default)]
pub(super) struct MetaExtra {
    name: Option<Box<str>>,
    /// Debug margin before the user range (0 without margins); the margin
    /// after it is `kept - front - requested` bytes, at least the configured
    /// margin.
    front: u64,
    /// Nonzero when the margins are left to a GPU checker (see
    /// [`AllocatorConfig::debug_margin`](crate::AllocatorConfig::debug_margin)):
    /// the allocation's id in
    /// [`DeviceMargin::allocation_id`](crate::stats::DeviceMargin::allocation_id).
    /// The back margin then starts at `front + requested` rounded up to 4.
    device_margin: u64,
    /// A GPU checker wrote the canary into both margins.
    pub(super) device_margin_filled: bool,
}

impl AllocMeta {
    pub(super) fn new(requested: u64, name: Option<&str>, front: u64, device_margin: u64) -> Self {
        let extra = (name.is_some() || front > 0 || device_margin > 0).then(|| {
            Box::new(MetaExtra {
                name: name.map(Box::from),
                front,
                device_margin,
                device_margin_filled: false,
            })
        });
        Self { requested, extra }
    }

    pub(super) fn name(&self) -> Option<String> {
        self.extra.as_ref()?.name.as_deref().map(str::to_owned)
    }

    pub(super) fn front(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.front)
    }

    pub(super) fn device_margin(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.device_margin)
    }

    pub(super) fn device_margin_filled(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.device_margin_filled)
    }
}

/// One `VkDeviceMemory` shared by sub-allocations.
pub(super) struct Block {
    pub(super) memory: vk::DeviceMemory,
    /// Unique for the allocator's life
    /// ([`DeviceMargin::block_id`](crate::stats::DeviceMargin::block_id)).
    pub(super) id: u64,
    pub(super) size: u64,
    pub(super) mapped: Option<MappedPtr>,
    /// Created by a defragmentation pass, sized to the data moved into it:
    /// it goes back to the device as soon as it is empty (no hysteresis),
    /// whenever that is, so a pass that fails or is cancelled leaves
    /// nothing behind.
    pub(super) exact: bool,
}

impl Block {
    /// The block as memory to unmap and free outside the lock.
    pub(super) fn retired(self) -> Retired {
        Retired {
            memory: self.memory,
            size: self.size,
            mapped: self.mapped.is_some(),
        }
    }
}

/// A live allocation with a `VkDeviceMemory` of its own.
pub(super) struct OwnMemory {
    pub(super) memory: vk::DeviceMemory,
    pub(super) size: u64,
    pub(super) requested: u64,
    pub(super) mapped: Option<MappedPtr>,
    pub(super) name: Option<Box<str>>,
    /// Allocated without a dedicated target (`VkMemoryDedicatedAllocateInfo`):
    /// may serve another request after it is freed (see [`TypePool::cache`]).
    pub(super) reusable: bool,
}

impl OwnMemory {
    /// The memory, to unmap and free outside the lock.
    pub(super) fn retired(&self) -> Retired {
        Retired {
            memory: self.memory,
            size: self.size,
            mapped: self.mapped.is_some(),
        }
    }
}

/// A freed memory object of its own kept for the next large request.
pub(super) struct CachedMemory {
    pub(super) memory: vk::DeviceMemory,
    pub(super) mapped: Option<MappedPtr>,
}

/// The blocks of one class (granularity class and size bucket) of a memory
/// type.
pub(super) struct ClassPool {
    /// Indexed by the placer's slots.
    pub(super) blocks: Vec<Option<Block>>,
    /// Where allocations go inside the blocks.
    pub(super) placer: PoolPlacer<AllocMeta>,
    /// Index of the block that served last: tried first.
    pub(super) hint: usize,
    /// Blocks created so far (drives the small-first growth).
    pub(super) live_blocks: u32,
    /// Placement unit of these blocks, in bytes: the minimum block, or the
    /// coarser unit of the large requests' pool.
    pub(super) granularity: u64,
}

impl ClassPool {
    /// Takes the block in `slot` out of the placer and the slot list; the
    /// hint moves off it. The caller counts the memory as retired.
    fn take_block(&mut self, slot: usize) -> Block {
        let block = self.blocks[slot].take().expect("the block is live");
        self.placer.remove_block(slot);
        self.live_blocks -= 1;
        if self.hint == slot {
            self.hint = 0;
        }
        block
    }
}

/// The pool of one memory type.
pub(super) struct TypePool {
    /// Class pools: (linear, optimal when granularity demands) x (small,
    /// large).
    pub(super) classes: SmallVec<[ClassPool; 2]>,
    /// Live allocations with memory of their own, by slot.
    pub(super) own: Vec<Option<OwnMemory>>,
    pub(super) own_free_slots: Vec<u32>,
    /// Freed large memory objects by size, reused by requests at most 1/4
    /// smaller (no `vkAllocateMemory`), bounded as
    /// [`CacheRetention`](crate::CacheRetention) says.
    pub(super) cache: BTreeMap<u64, SmallVec<[CachedMemory; 1]>>,
    pub(super) cached_bytes: u64,
    pub(super) cached_count: u32,
    pub(super) requested_bytes: u64,
    pub(super) allocation_count: u64,
    pub(super) empty_blocks: u32,
    /// `VkDeviceMemory` of this type in bytes: blocks, memory of its own,
    /// cached objects and memory in flight. The allocator's per-heap
    /// committed bytes and its object count are sums of these and change
    /// only together with them, under this lock, so
    /// [`Allocator::validate`](super::Allocator::validate) finds them exact while other threads
    /// allocate.
    pub(super) committed_bytes: u64,
    /// The memory objects of [`Self::committed_bytes`].
    pub(super) memory_objects: u32,
    /// The part of [`Self::committed_bytes`] that no block, slot of memory
    /// of its own or cache entry holds: memory being created (reserved,
    /// `vkAllocateMemory` running) or given back (taken out, `vkFreeMemory`
    /// running).
    pub(super) in_flight_bytes: u64,
    /// The memory objects of [`Self::in_flight_bytes`].
    pub(super) in_flight_objects: u32,
}

impl TypePool {
    /// An empty pool with one class pool per entry of `granularities`,
    /// each placing at that many bytes.
    pub(super) fn new(granularities: &[u64], placement: BlockPlacement) -> Self {
        Self {
            classes: granularities
                .iter()
                .map(|&granularity| ClassPool {
                    blocks: Vec::new(),
                    placer: PoolPlacer::new(placement, granularity),
                    hint: 0,
                    live_blocks: 0,
                    granularity,
                })
                .collect(),
            own: Vec::new(),
            own_free_slots: Vec::new(),
            cache: BTreeMap::new(),
            cached_bytes: 0,
            cached_count: 0,
            requested_bytes: 0,
            allocation_count: 0,
            empty_blocks: 0,
            committed_bytes: 0,
            memory_objects: 0,
            in_flight_bytes: 0,
            in_flight_objects: 0,
        }
    }

    /// `r`, just taken out of the pool, stays counted as in flight until
    /// [`Allocator::release_memory`](super::Allocator::release_memory) has freed it.
    pub(super) fn retire(&mut self, r: Retired) -> Retired {
        self.in_flight_bytes += r.size;
        self.in_flight_objects += 1;
        r
    }

    /// Memory created for this pool (counted in flight since its
    /// reservation) now held by a block or a slot of memory of its own.
    pub(super) fn land(&mut self, size: u64) {
        self.in_flight_bytes -= size;
        self.in_flight_objects -= 1;
    }

    /// Adds a fresh `block` (created for this pool, counted in flight) to
    /// class pool `class` as an empty block that serves next; its slot, or
    /// the block back when the placer refuses its size.
    pub(super) fn add_block(&mut self, class: usize, block: Block) -> Result<usize, Block> {
        let cp = &mut self.classes[class];
        let Ok(slot) = cp.placer.add_block(block.size, cp.granularity) else {
            return Err(block);
        };
        self.land(block.size);
        let cp = &mut self.classes[class];
        cp.live_blocks += 1;
        if cp.blocks.len() <= slot {
            cp.blocks.resize_with(slot + 1, || None);
        }
        cp.blocks[slot] = Some(block);
        cp.hint = slot;
        self.empty_blocks += 1;
        Ok(slot)
    }

    /// Takes the block `slot` of class pool `class` out of the pool, to be
    /// freed outside the lock: the one way a block leaves a pool. An empty
    /// block leaves [`Self::empty_blocks`] too (callers count a block that
    /// just became empty there first).
    pub(super) fn retire_block(&mut self, class: usize, slot: usize) -> Retired {
        if self.classes[class].placer.block_is_empty(slot) {
            self.empty_blocks -= 1;
        }
        let block = self.classes[class].take_block(slot);
        self.retire(block.retired())
    }

    /// Takes the largest empty block out of the pool, to be freed outside
    /// the lock; `None` when the pool has no empty block.
    pub(super) fn pop_empty_block(&mut self) -> Option<Retired> {
        if self.empty_blocks == 0 {
            return None;
        }
        let (class, slot) = (0..self.classes.len())
            .flat_map(|c| {
                let cp = &self.classes[c];
                cp.blocks
                    .iter()
                    .enumerate()
                    .filter(move |&(slot, b)| b.is_some() && cp.placer.block_is_empty(slot))
                    .map(move |(slot, b)| (b.as_ref().map_or(0, |b| b.size), c, slot))
            })
            .max()
            .map(|(_, c, slot)| (c, slot))?;
        Some(self.retire_block(class, slot))
    }

    /// Takes every block for which `which(class pool, slot)` holds out of
    /// the pool (see [`Self::retire_block`]); afterwards no block serves
    /// first (the hints start over).
    pub(super) fn retire_blocks(
        &mut self,
        which: impl Fn(&ClassPool, usize) -> bool,
    ) -> Vec<Retired> {
        let mut out = Vec::new();
        for class in 0..self.classes.len() {
            for slot in 0..self.classes[class].blocks.len() {
                let cp = &self.classes[class];
                if cp.blocks[slot].is_some() && which(cp, slot) {
                    out.push(self.retire_block(class, slot));
                }
            }
            self.classes[class].hint = 0;
        }
        out
    }

    /// Takes every allocation with memory of its own out of the pool, live
    /// or not (the allocator is going away).
    pub(super) fn retire_own_memory(&mut self) -> Vec<Retired> {
        let own: Vec<OwnMemory> = self.own.drain(..).flatten().collect();
        self.own_free_slots.clear();
        own.iter().map(|m| self.retire(m.retired())).collect()
    }

    /// Records a live allocation with memory of its own; its slot.
    pub(super) fn insert_own(&mut self, entry: OwnMemory) -> u32 {
        match self.own_free_slots.pop() {
            Some(s) => {
                self.own[s as usize] = Some(entry);
                s
            }
            None => {
                self.own.push(Some(entry));
                (self.own.len() - 1) as u32
            }
        }
    }

    /// Takes the allocation with memory of its own in `slot` out.
    pub(super) fn take_own(&mut self, slot: u32) -> OwnMemory {
        let entry = self.own[slot as usize]
            .take()
            .expect("allocation ids are unique: the slot of memory of its own is live");
        self.own_free_slots.push(slot);
        entry
    }

    /// Keeps a freed memory object of `size` bytes for reuse.
    pub(super) fn put_cached(&mut self, size: u64, memory: CachedMemory) {
        self.cache.entry(size).or_default().push(memory);
        self.cached_bytes += size;
        self.cached_count += 1;
    }

    /// Takes a cached object of `size` bytes (a key of the cache) out.
    pub(super) fn take_cached(&mut self, size: u64) -> CachedMemory {
        let list = self.cache.get_mut(&size).expect("a key of the cache");
        let m = list.pop().expect("cache lists are never empty");
        if list.is_empty() {
            self.cache.remove(&size);
        }
        self.cached_bytes -= size;
        self.cached_count -= 1;
        m
    }

    /// Takes the largest cached object out, to be freed outside the lock.
    pub(super) fn pop_cached(&mut self) -> Option<Retired> {
        let size = *self.cache.last_key_value()?.0;
        let m = self.take_cached(size);
        Some(self.retire(Retired {
            memory: m.memory,
            size,
            mapped: m.mapped.is_some(),
        }))
    }
}

/// Memory taken out of a pool (or never placed in one), to be unmapped and
/// freed outside the lock; counted in flight until then.
pub(super) struct Retired {
    pub(super) memory: vk::DeviceMemory,
    pub(super) size: u64,
    pub(super) mapped: bool,
}
