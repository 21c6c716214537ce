//! The allocate path: checks, the fast path (room in a block of the best
//! memory type, one lock, no device call), the fallback over compatible
//! memory types within and then past their budgets, and a new block when no
//! block has room. Memory of its own is `own_memory`'s; creating
//! `VkDeviceMemory` is `memory`'s.
//!
//! A new block's size is chosen under the pool's lock, the memory is created
//! outside it, and the request is placed after the lock is taken again, so
//! another thread may have made room meanwhile: the fresh block then stays
//! only if the type keeps that many empty blocks.

use std::sync::atomic::Ordering;

use super::margins::fill_canary;
use super::*;
use crate::device::MappedRange;
use crate::placement::BlockPlacement;

impl Allocator {
    /// Allocates memory for `desc`.
    ///
    /// Tries the memory types `desc.usage` ranks best first, falling back to
    /// the next compatible type when one is out of memory or over budget.
    #[doc(alias = "vmaAllocateMemory")]
    pub fn allocate(&self, desc: &AllocationDesc<'_>) -> Result<Allocation, AllocError> {
        if desc.size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let alignment = desc.alignment.max(1);
        if !alignment.is_power_of_two() {
            return Err(AllocError::AlignmentNotPowerOfTwo {
                alignment: desc.alignment,
            });
        }
        let ranked = &self.ranked[usage_index(desc.usage)];
        let type_count = self.props.memory_types.len() as u32;
        let Some(best) = candidate_types(ranked, desc.memory_type_bits).next() else {
            return Err(AllocError::NoCompatibleMemoryType {
                memory_type_bits: desc.memory_type_bits,
                usage: desc.usage,
                type_count,
            });
        };
        // Fast path: room in an existing block of the best type. The limits,
        // the fallback over types and new memory below run only on a miss.
        // (Debug margins take the full path.)
        if self.margin == 0
            && desc.size <= self.props.max_memory_allocation_size
            && !self.wants_own_memory(best, desc, alignment)
        {
            let class = self.class_index(desc.class, desc.size, alignment);
            let mut pool = self.pools[best as usize].lock();
            if let Some(a) =
                self.try_existing_blocks(&mut pool, best, class, desc, desc.size, 0, alignment)
            {
                return Ok(a);
            }
        }
        if desc.size > self.props.max_memory_allocation_size {
            return Err(AllocError::ExceedsMaxAllocationSize {
                size: desc.size,
                max: self.props.max_memory_allocation_size,
            });
        }
        let largest_heap = candidate_types(ranked, desc.memory_type_bits)
            .map(|t| self.heap_limit(self.props.memory_types[t as usize].heap_index as usize))
            .max()
            .unwrap_or(0);
        if desc.size > largest_heap {
            return Err(AllocError::ExceedsHeap {
                size: desc.size,
                largest_heap,
            });
        }

        let mut tried = 0u32;
        // Two passes: first within every heap's budget, then (unless the
        // caller forbids it) past the soft budget, up to the hard heap limit.
        let passes: &[bool] = if desc.flags.contains(AllocationFlags::WITHIN_BUDGET) {
            &[true]
        } else {
            &[true, false]
        };
        for &within_budget in passes {
            for t in candidate_types(ranked, desc.memory_type_bits) {
                tried |= 1 << t;
                match self.allocate_in_type(t, desc, alignment, within_budget) {
                    Ok(a) => return Ok(a),
                    Err(TypeFailure::Exhausted) => continue,
                    Err(TypeFailure::Fatal(e)) => return Err(e),
                }
            }
        }
        Err(AllocError::OutOfDeviceMemory {
            size: desc.size,
            usage: desc.usage,
            tried,
        })
    }

    /// The pool of a request inside its memory type: [`LARGE_POOL`] for
    /// requests over [`AllocatorConfig::small_allocation_limit`] (unless it
    /// is 0: then every size goes to the small pools), else the
    /// small pool of its granularity class (see [`TypePool::new`]'s
    /// caller). Large requests of both classes share blocks: that pool
    /// places at a unit of at least `bufferImageGranularity`, so a linear
    /// and an optimal resource never share a page.
    fn class_index(&self, class: ResourceClass, size: u64, alignment: u64) -> usize {
        let needed = size.max(alignment).next_power_of_two();
        let limit = self.config.small_allocation_limit;
        if limit > 0 && needed > limit {
            LARGE_POOL
        } else if self.separate_classes && class == ResourceClass::Optimal {
            OPTIMAL_SMALL_POOL
        } else {
            0
        }
    }

    /// Memory of its own when the driver asks for it
    /// (`VkMemoryDedicatedRequirements`), when the request is a sizeable
    /// share of a block ([`Self::own_memory_share`]), or when it reaches
    /// [`AllocatorConfig::own_memory_threshold`] (off by default) while
    /// memory objects are plentiful. Everything else is placed in blocks, so
    /// a large request costs a `vkAllocateMemory` only when the pool grows.
    fn wants_own_memory(&self, type_index: u32, desc: &AllocationDesc<'_>, alignment: u64) -> bool {
        let share = self.own_memory_share(type_index);
        let size = desc.size.max(alignment);
        let max = self.props.max_memory_allocation_count as u64;
        let used = self.memory_objects.load(Ordering::Relaxed) as u64;
        let objects_plentiful = used * 4 < max * 3;
        match desc.dedicated {
            Dedicated::Required(_) => true,
            // Like VMA: stop honouring the preference once 3/4 of
            // maxMemoryAllocationCount is used, if the request fits a block.
            Dedicated::Preferred(_) => objects_plentiful || size > share,
            Dedicated::No => {
                size > share || (size >= self.config.own_memory_threshold && objects_plentiful)
            }
        }
    }

    /// Requests larger than this get memory of their own: a quarter of the
    /// preferred block. Ranges that large are rarely free once blocks have
    /// churned (an 85 MiB texture failed against 8 buddy blocks of 256 MiB
    /// holding 440 MiB when the cut was half a block), and with TLSF blocks
    /// holding 85 MiB textures (a cut at half a block) the textures trace of
    /// `benches/peers` fell from 76.7% to 59.9% efficiency (lavapipe,
    /// 2026-12-06, commit `d57e874`).
    fn own_memory_share(&self, type_index: u32) -> u64 {
        self.preferred_block_size(type_index) / 4
    }

    fn allocate_in_type(
        &self,
        type_index: u32,
        desc: &AllocationDesc<'_>,
        alignment: u64,
        within_budget: bool,
    ) -> Result<Allocation, TypeFailure> {
        if self.wants_own_memory(type_index, desc, alignment) {
            return self.allocate_own_memory(type_index, desc, within_budget);
        }
        // Debug margins: the placed range is [front margin | request | back margin].
        let Some((front, inner_size)) = self.margin_layout(type_index, desc.size, alignment) else {
            return Err(TypeFailure::Exhausted);
        };
        let class = self.class_index(desc.class, inner_size, alignment);
        let mut pool = self.pools[type_index as usize].lock();
        if let Some(a) = self.try_existing_blocks(
            &mut pool, type_index, class, desc, inner_size, front, alignment,
        ) {
            return Ok(a);
        }
        if desc.flags.contains(AllocationFlags::NEVER_ALLOCATE) {
            return Err(TypeFailure::Exhausted);
        }
        // Choose the new block's size under the lock, allocate it outside.
        let preferred = self.preferred_block_size(type_index);
        let pool_bytes: u64 = pool.classes[class]
            .blocks
            .iter()
            .flatten()
            .map(|b| b.size)
            .sum();
        drop(pool);
        let needed = inner_size
            .max(alignment)
            .next_power_of_two()
            .max(self.min_block);
        // Geometric growth: each new block is a fraction of what the pool
        // already holds (a power of two), so the unused tail of the newest
        // block stays a bounded share of the pool. (VMA's 1/8, 1/4, 1/2, 1
        // steps committed 480 MiB for 226 MiB live on the small-churn trace:
        // the last step doubles the pool.) TLSF fills blocks densely, so it
        // grows by 1/8 of the pool from 1/16 of the preferred size (the
        // newest block is at most 1/9 of the pool); the buddy, whose blocks
        // saturate early, by half the pool from 1/8.
        //
        // The large requests' pool starts at the share above which requests
        // get memory of their own (a quarter of the preferred block), so
        // every request it takes fits any of its blocks. From 16 MiB, blocks
        // held one or two large requests each and emptied and refilled under
        // churn: the large-churn trace of `benches/peers` (64 KiB-16 MiB
        // buffers) made 33 `vkAllocateMemory` calls for 70.2% efficiency,
        // against 15 for 74.9% from 64 MiB; mixed assets 65.7% against 71.7%
        // (lavapipe, 2026-12-06; 32 and 128 MiB: 65.7% and 66.8% on mixed).
        let (divisor, mut smallest) = match self.config.placement {
            BlockPlacement::Tlsf => (8, preferred / 16),
            BlockPlacement::Buddy => (2, preferred / 8),
        };
        if class == LARGE_POOL {
            smallest = smallest.max(self.own_memory_share(type_index));
        }
        let mut size = if self.config.small_first_blocks {
            prev_power_of_two(pool_bytes / divisor)
                .clamp(smallest.max(self.min_block), preferred)
                .max(needed)
        } else {
            preferred.max(needed)
        };
        // On failure retry with halved sizes down to what the request needs;
        // then, as a last resort on this type, memory of exactly the request's
        // size: a heap too fragmented or too full for a power-of-two block
        // may still hold it.
        let mut caches_dropped = false;
        let block = loop {
            match self.create_block(type_index, size, within_budget) {
                Ok(b) => break b,
                // Cached objects of their own may be what fills the heap, its
                // budget or the object count: give them back and retry the
                // same size once, before settling for smaller blocks.
                Err(e) if !caches_dropped && self.drop_caches_for(type_index, &e) => {
                    caches_dropped = true;
                }
                Err(TypeFailure::Exhausted) if size / 2 >= needed => size /= 2,
                Err(TypeFailure::Exhausted) if desc.size < needed => {
                    return self.allocate_own_memory(type_index, desc, within_budget)
                }
                Err(e) => return Err(e),
            }
        };
        let mut pool = self.pools[type_index as usize].lock();
        let slot = match pool.add_block(class, block) {
            Ok(slot) => slot,
            Err(block) => {
                // Sizes were checked by `create_memory`'s caller; give the
                // memory (still in flight) back rather than leak it.
                drop(pool);
                self.release_memory(type_index, block.retired());
                return Err(TypeFailure::Exhausted);
            }
        };
        let Some(a) = self.allocate_in_class(
            &mut pool, type_index, class, desc, inner_size, front, alignment,
        ) else {
            // A fresh block of at least `needed` bytes always fits the request.
            unreachable!("fresh block of {size} bytes could not fit {needed}")
        };
        // While the lock was dropped another thread may have made room, and
        // the placer put the request there: the fresh block is then surplus
        // if it would exceed the empty blocks kept.
        if pool.empty_blocks > self.config.max_empty_blocks_per_type
            && pool.classes[class].placer.block_is_empty(slot)
        {
            let retired = pool.retire_block(class, slot);
            drop(pool);
            self.release_memory(type_index, retired);
        }
        Ok(a)
    }

    #[allow(clippy::too_many_arguments)]
    fn try_existing_blocks(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        class: usize,
        desc: &AllocationDesc<'_>,
        inner_size: u64,
        front: u64,
        alignment: u64,
    ) -> Option<Allocation> {
        // No separate `can_allocate`: a miss costs only the metadata built
        // for it, a hit would pay the lookup twice.
        self.allocate_in_class(pool, type_index, class, desc, inner_size, front, alignment)
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_in_class(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        class: usize,
        desc: &AllocationDesc<'_>,
        inner_size: u64,
        front: u64,
        alignment: u64,
    ) -> Option<Allocation> {
        let on_gpu = front > 0 && self.margins_on_gpu(type_index);
        let device_margin = if on_gpu {
            self.next_serial.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let meta = AllocMeta::new(desc.size, desc.name, front, device_margin);
        let cp = &mut pool.classes[class];
        let placed = cp
            .placer
            .allocate(inner_size, alignment, meta, &mut cp.hint)?;
        let (inner, handle, slot) = (placed.offset, placed.handle, placed.slot);
        let block = cp.blocks[slot].as_ref().expect("placer and blocks agree");
        if front > 0 && !on_gpu {
            let (kept, _) = cp.placer.get(slot, handle, inner).expect("just allocated");
            let mapped = block.mapped.expect("margins only in host-visible memory");
            // SAFETY: [inner, inner + kept) is this allocation's placed range,
            // inside the block's mapping, and no one else can reach it yet.
            unsafe {
                fill_canary(
                    mapped.0,
                    inner,
                    front,
                    inner + front + desc.size,
                    inner + kept,
                )
            };
            if !self.is_coherent(type_index) {
                // The kept range is a multiple of the minimum block, which is
                // at least nonCoherentAtomSize, so it is atom-aligned.
                let range = MappedRange {
                    memory: block.memory,
                    offset: inner,
                    size: kept,
                };
                // SAFETY: an atom-aligned range of mapped memory.
                let _ = unsafe { self.device.flush_ranges(&[range]) };
            }
        }
        let offset = inner + front;
        let allocation = Allocation {
            memory: block.memory,
            offset,
            size: desc.size,
            memory_size: block.size,
            memory_type_index: type_index,
            // SAFETY: `offset + size <= block.size` (the placer guarantees
            // it), so the pointer stays inside the mapped range.
            mapped: block
                .mapped
                .map(|p| MappedPtr(unsafe { p.0.add(offset as usize) })),
            coherent: self.is_coherent(type_index),
            allocator_id: self.id,
            placement: Placement::Block {
                class: class as u8,
                block: slot as u32,
                handle,
            },
            margin_front: front,
            alignment,
            class: desc.class,
            flags: desc.flags,
            moved: false,
        };
        if placed.was_empty {
            pool.empty_blocks -= 1;
        }
        pool.requested_bytes += desc.size;
        pool.allocation_count += 1;
        Some(allocation)
    }
}
