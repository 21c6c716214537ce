//! Creating and freeing `VkDeviceMemory`: the budget check, the reservation
//! of heap bytes and of a memory object before `vkAllocateMemory` (so
//! threads allocating at once cannot overshoot a heap limit or
//! `maxMemoryAllocationCount` together), mapping host-visible memory once,
//! and giving everything back on failure or free.
//!
//! Invariant: a memory object counts in its pool's `in_flight_*` from its
//! reservation until it lands in a block or a slot of memory of its own,
//! and again from the moment it is taken out until `vkFreeMemory` has
//! returned; the per-heap committed bytes and the object count change under
//! the same lock as the pool's counters.

use std::sync::atomic::Ordering;

use ash::vk;

use super::*;
use crate::device::{DedicatedTarget, DeviceError, MemoryAllocateRequest};

impl Allocator {
    /// Checks the budget, allocates and maps one `VkDeviceMemory`.
    pub(super) fn create_memory(
        &self,
        type_index: u32,
        size: u64,
        dedicated: Option<DedicatedTarget>,
        within_budget: bool,
    ) -> Result<(vk::DeviceMemory, Option<MappedPtr>), TypeFailure> {
        let heap = self.props.memory_types[type_index as usize].heap_index as usize;
        if self.config.cache_retention == CacheRetention::UpToPeak {
            self.keep_cache_under_peak(heap, size);
        }
        // The driver's budget, when there is one, is read outside the lock.
        let own_budget = if within_budget {
            match self.device.heap_budgets() {
                Some(b) if b.get(heap).is_some_and(|b| b.usage + size > b.budget) => {
                    return Err(TypeFailure::Exhausted)
                }
                Some(_) => false,
                None => true,
            }
        } else {
            false
        };
        // Reserve the bytes and the object before allocating, so threads
        // allocating at once cannot overshoot the heap limit or the object
        // count together; every failure below gives the reservation back.
        // The reservation is made under the pool's lock and counted there as
        // in flight (see `TypePool::in_flight_bytes`).
        let limit = self.heap_limit(heap);
        let max = self.props.max_memory_allocation_count;
        let (committed, count) = {
            let mut pool = self.pools[type_index as usize].lock();
            let committed = match self.heap_committed[heap].fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |c| c.checked_add(size).filter(|&n| n <= limit),
            ) {
                Ok(c) => c,
                Err(_) => return Err(TypeFailure::Exhausted),
            };
            if own_budget && committed + size > self.props.memory_heaps[heap].size / 10 * 8 {
                self.heap_committed[heap].fetch_sub(size, Ordering::Relaxed);
                return Err(TypeFailure::Exhausted);
            }
            let count =
                match self
                    .memory_objects
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                        (c < max).then_some(c + 1)
                    }) {
                    Ok(c) => c,
                    Err(count) => {
                        self.heap_committed[heap].fetch_sub(size, Ordering::Relaxed);
                        return Err(TypeFailure::Fatal(AllocError::TooManyObjects {
                            count,
                            max,
                        }));
                    }
                };
            pool.committed_bytes += size;
            pool.memory_objects += 1;
            pool.in_flight_bytes += size;
            pool.in_flight_objects += 1;
            (committed, count)
        };
        let unreserve = || self.forget_memory(type_index, size);
        let request = MemoryAllocateRequest {
            memory_type_index: type_index,
            size,
            dedicated,
            device_address: self.config.device_address,
        };
        self.allocate_memory_calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the dedicated target comes from the caller of `allocate`,
        // whose `DedicatedTarget` contract is that it is a live object without
        // memory; everything else is plain data.
        let memory = match unsafe { self.device.allocate_memory(&request) } {
            Ok(m) => m,
            Err(e) => {
                unreserve();
                return Err(match e {
                    DeviceError::OutOfDeviceMemory => TypeFailure::Exhausted,
                    DeviceError::OutOfHostMemory => TypeFailure::Fatal(AllocError::OutOfHostMemory),
                    DeviceError::TooManyObjects => {
                        TypeFailure::Fatal(AllocError::TooManyObjects { count, max })
                    }
                    e => TypeFailure::Fatal(AllocError::Device(e)),
                });
            }
        };
        let mapped = if self.is_host_visible(type_index) {
            // SAFETY: `memory` was just allocated from a HOST_VISIBLE type with
            // `size` bytes and is not mapped.
            match unsafe { self.device.map_memory(memory, size) } {
                Ok(p) => Some(MappedPtr(p)),
                Err(e) => {
                    // SAFETY: just allocated, unused, unmapped.
                    unsafe { self.device.free_memory(memory) };
                    unreserve();
                    return Err(TypeFailure::Fatal(AllocError::Device(e)));
                }
            }
        } else {
            None
        };
        self.heap_peak[heap].fetch_max(committed + size, Ordering::Relaxed);
        Ok((memory, mapped))
    }

    /// A new block of `size` bytes (see [`Self::create_memory`]).
    pub(super) fn create_block(
        &self,
        type_index: u32,
        size: u64,
        within_budget: bool,
    ) -> Result<Block, TypeFailure> {
        let (memory, mapped) = self.create_memory(type_index, size, None, within_budget)?;
        Ok(Block {
            memory,
            id: self.next_serial.fetch_add(1, Ordering::Relaxed),
            size,
            mapped,
            exact: false,
        })
    }

    /// Unmaps and frees memory taken out of a pool (or never placed in
    /// one), outside the pool's lock.
    pub(super) fn release_memory(&self, type_index: u32, r: Retired) {
        if r.mapped {
            // SAFETY: the block or memory of its own was mapped at creation and no
            // allocation points into it any more.
            unsafe { self.device.unmap_memory(r.memory) };
        }
        // SAFETY: no allocation uses the memory any more; binding resources
        // are the engine's to destroy before freeing their allocation.
        unsafe { self.device.free_memory(r.memory) };
        self.forget_memory(type_index, r.size);
    }

    /// Unmaps and frees every memory object in `retired` (see
    /// [`Self::release_memory`]).
    pub(super) fn release_all(&self, type_index: u32, retired: Vec<Retired>) {
        for r in retired {
            self.release_memory(type_index, r);
        }
    }

    /// Takes `size` bytes in one memory object of `type_index`, counted in
    /// flight, out of the heap and object counters: after it was freed, or
    /// when its creation failed.
    fn forget_memory(&self, type_index: u32, size: u64) {
        let heap = self.props.memory_types[type_index as usize].heap_index as usize;
        let mut pool = self.pools[type_index as usize].lock();
        self.heap_committed[heap].fetch_sub(size, Ordering::Relaxed);
        self.memory_objects.fetch_sub(1, Ordering::Relaxed);
        pool.committed_bytes -= size;
        pool.memory_objects -= 1;
        pool.in_flight_bytes -= size;
        pool.in_flight_objects -= 1;
    }
}
