//! Memory of its own: requests over a quarter of a block, at or above
//! [`AllocatorConfig::own_memory_threshold`] (off by default), or whose
//! resource needs a dedicated allocation get a `VkDeviceMemory` each.
//! Freed ones without a dedicated target go to a per-type cache by size and
//! serve later requests up to 1/4 smaller without a `vkAllocateMemory`.
//!
//! The cache is bounded three ways: [`CacheRetention`] (a share of the live
//! bytes, or the heap's peak), at most [`MAX_CACHED_OBJECTS`] per type, and
//! a full heap or exhausted object count, which empties it before anything
//! fails. The same bounds free surplus empty blocks (see
//! [`AllocatorConfig::max_empty_blocks_per_type`]). A cached object moves to a live slot, and back, under one lock,
//! so it is always counted.

use std::sync::atomic::Ordering;

use ash::vk;

use super::pools::{CachedMemory, OwnMemory};
use super::*;

impl Allocator {
    /// Memory of its own for `desc`: a cached object at most 1/4 larger when
    /// the request has no dedicated target, else a new `VkDeviceMemory` of
    /// exactly the request's size.
    pub(super) fn allocate_own_memory(
        &self,
        type_index: u32,
        desc: &AllocationDesc<'_>,
        within_budget: bool,
    ) -> Result<Allocation, TypeFailure> {
        if desc.flags.contains(AllocationFlags::NEVER_ALLOCATE) {
            return Err(TypeFailure::Exhausted);
        }
        let target = match desc.dedicated {
            Dedicated::Preferred(t) | Dedicated::Required(t) => t,
            Dedicated::No => None,
        };
        let reusable = target.is_none();
        if reusable {
            // A freed object of the same type at most 1/4 larger serves
            // without a `vkAllocateMemory`; it moves from the cache to the
            // live objects under one lock, so it is always counted.
            let mut pool = self.pools[type_index as usize].lock();
            let hit = pool
                .cache
                .range(desc.size..=desc.size + desc.size / 4)
                .next()
                .map(|(&size, _)| size);
            if let Some(size) = hit {
                let m = pool.take_cached(size);
                return Ok(self.insert_own_memory(
                    &mut pool, type_index, desc, m.memory, size, m.mapped, reusable,
                ));
            }
        }
        let created = match self.create_memory(type_index, desc.size, target, within_budget) {
            // Out of room: give the cached objects back and retry once.
            Err(f) if self.drop_caches_for(type_index, &f) => {
                self.create_memory(type_index, desc.size, target, within_budget)
            }
            r => r,
        };
        let (memory, mapped) = created?;
        let mut pool = self.pools[type_index as usize].lock();
        pool.land(desc.size);
        Ok(self.insert_own_memory(
            &mut pool, type_index, desc, memory, desc.size, mapped, reusable,
        ))
    }

    /// Records memory of its own as a live allocation.
    #[allow(clippy::too_many_arguments)]
    fn insert_own_memory(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        desc: &AllocationDesc<'_>,
        memory: vk::DeviceMemory,
        size: u64,
        mapped: Option<MappedPtr>,
        reusable: bool,
    ) -> Allocation {
        let slot = pool.insert_own(OwnMemory {
            memory,
            size,
            requested: desc.size,
            mapped,
            name: desc.name.map(Box::from),
            reusable,
        });
        pool.requested_bytes += desc.size;
        pool.allocation_count += 1;
        Allocation {
            memory,
            offset: 0,
            size: desc.size,
            memory_size: size,
            memory_type_index: type_index,
            mapped,
            coherent: self.is_coherent(type_index),
            allocator_id: self.id,
            placement: Placement::OwnMemory { slot },
            margin_front: 0,
            alignment: desc.alignment.max(1),
            class: desc.class,
            flags: desc.flags,
            moved: false,
        }
    }

    /// Frees the allocation with memory of its own in `slot`: into the cache
    /// when it may serve another request, else out of the pool. Returns the
    /// memory to free outside the lock.
    pub(super) fn free_own_memory(&self, pool: &mut TypePool, slot: u32) -> Vec<Retired> {
        let entry = pool.take_own(slot);
        pool.requested_bytes -= entry.requested;
        pool.allocation_count -= 1;
        if !entry.reusable {
            return vec![pool.retire(entry.retired())];
        }
        let cached = CachedMemory {
            memory: entry.memory,
            mapped: entry.mapped,
        };
        pool.put_cached(entry.size, cached);
        let cap = self.cache_cap(pool);
        self.evict_cache(pool, cap)
    }

    /// Cached bytes a pool keeps after a free (see [`CacheRetention`]).
    pub(super) fn cache_cap(&self, pool: &TypePool) -> u64 {
        match self.config.cache_retention {
            CacheRetention::LiveShare => pool.requested_bytes / CACHE_SHARE,
            CacheRetention::UpToPeak => u64::MAX,
        }
    }

    /// Before `size` new bytes on `heap`: frees cached objects of the heap's
    /// types (largest first), then empty blocks (largest first), until the
    /// heap stays within its peak, or neither is left.
    pub(super) fn keep_cache_under_peak(&self, heap: usize, size: u64) {
        let peak = self.heap_peak[heap].load(Ordering::Relaxed);
        for (t, pool) in self.pools.iter().enumerate() {
            if self.props.memory_types[t].heap_index as usize != heap {
                continue;
            }
            let committed = self.heap_committed[heap].load(Ordering::Relaxed);
            let Some(excess) = (committed + size).checked_sub(peak).filter(|&e| e > 0) else {
                return;
            };
            let retired = {
                let mut pool = pool.lock();
                let mut out =
                    take_while(&mut pool, |_, freed| freed < excess, TypePool::pop_cached);
                let freed: u64 = out.iter().map(|r| r.size).sum();
                let rest = excess.saturating_sub(freed);
                out.extend(take_while(
                    &mut pool,
                    |_, freed| freed < rest,
                    TypePool::pop_empty_block,
                ));
                out
            };
            self.release_all(t as u32, retired);
        }
    }

    /// Takes the largest cached objects out until the cache holds at most
    /// `cap` bytes and [`MAX_CACHED_OBJECTS`] objects (`cap == 0`: all).
    pub(super) fn evict_cache(&self, pool: &mut TypePool, cap: u64) -> Vec<Retired> {
        take_while(
            pool,
            |p, _| p.cached_bytes > cap || p.cached_count > MAX_CACHED_OBJECTS,
            TypePool::pop_cached,
        )
    }

    /// After `failure` to create memory of `type_index`: frees the cached
    /// objects and empty blocks that stand in the way (every type on the same heap when the
    /// heap is full or over budget, every type when memory objects ran out);
    /// whether there was any, so a retry may succeed.
    pub(super) fn drop_caches_for(&self, type_index: u32, failure: &TypeFailure) -> bool {
        let heap = self.props.memory_types[type_index as usize].heap_index;
        let same_heap = match failure {
            TypeFailure::Exhausted => true,
            TypeFailure::Fatal(AllocError::TooManyObjects { .. }) => false,
            TypeFailure::Fatal(_) => return false,
        };
        let mut any = false;
        for (t, pool) in self.pools.iter().enumerate() {
            if same_heap && self.props.memory_types[t].heap_index != heap {
                continue;
            }
            let retired = {
                let mut pool = pool.lock();
                let mut out = self.evict_cache(&mut pool, 0);
                out.extend(take_while(
                    &mut pool,
                    |_, _| true,
                    TypePool::pop_empty_block,
                ));
                out
            };
            any |= !retired.is_empty();
            self.release_all(t as u32, retired);
        }
        any
    }
}

/// Takes memory out of `pool` with `pop` (largest first) while
/// `more(pool, bytes taken so far)` holds and `pop` finds any: the one loop
/// that empties the cache or the empty blocks.
fn take_while(
    pool: &mut TypePool,
    mut more: impl FnMut(&TypePool, u64) -> bool,
    mut pop: impl FnMut(&mut TypePool) -> Option<Retired>,
) -> Vec<Retired> {
    let mut out = Vec::new();
    let mut taken = 0;
    while more(pool, taken) {
        let Some(r) = pop(pool) else {
            break;
        };
        taken += r.size;
        out.push(r);
    }
    out
}
