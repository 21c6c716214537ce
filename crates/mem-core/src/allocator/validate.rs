//! [`Allocator::validate`]: every invariant of every memory type under its
//! own lock (placer against blocks, counters against contents, cache
//! bounds), then the per-heap committed bytes and the memory-object count
//! against the memory types' sums under all locks at once.

use std::sync::atomic::Ordering;

use super::*;
use crate::error::ValidationError;

impl Allocator {
    /// Checks every invariant: each pool's placement state
    /// ([`crate::tlsf::Tlsf::validate`] or [`crate::buddy::BuddyBlock::validate`]),
    /// the placer's blocks against the memory blocks, the pools' counters and
    /// the reuse cache against the blocks, each memory type's memory
    /// against its counters, and the per-heap committed bytes and the
    /// memory-object count against the memory types'.
    ///
    /// Exact also while other threads allocate and free: each check reads
    /// values that change only under the locks it holds. A memory type is
    /// checked under its own lock (other types stay free meanwhile); the
    /// heap and object counters, which several types share, under every
    /// type's lock at once, briefly (one sum per type). Memory being created
    /// or given back counts as in flight in its type. Cheap enough for
    /// tests.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (t, pool) in self.pools.iter().enumerate() {
            self.validate_type(t as u32, &pool.lock())?;
        }
        // Every pool's lock at once, in index order. No other path holds two
        // pool locks, so this cannot deadlock.
        let pools: Vec<_> = self.pools.iter().map(|p| p.lock()).collect();
        let mut held = vec![0u64; self.props.memory_heaps.len()];
        let mut objects = 0u32;
        for (t, pool) in pools.iter().enumerate() {
            held[self.props.memory_types[t].heap_index as usize] += pool.committed_bytes;
            objects += pool.memory_objects;
        }
        let counters = (
            self.heap_committed
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
            self.memory_objects.load(Ordering::Relaxed),
        );
        drop(pools);
        for (h, (&held, &counter)) in held.iter().zip(&counters.0).enumerate() {
            if held != counter {
                return Err(ValidationError::HeapCommitted {
                    heap_index: h as u32,
                    held,
                    counter,
                });
            }
        }
        if objects != counters.1 {
            return Err(ValidationError::MemoryObjects {
                held: objects,
                counter: counters.1,
            });
        }
        Ok(())
    }

    /// The invariants of one memory type, under its lock.
    fn validate_type(
        &self,
        memory_type_index: u32,
        pool: &TypePool,
    ) -> Result<(), ValidationError> {
        let (mut held, mut objects) = (0u64, 0u32);
        let mut requested = 0;
        let mut count = 0;
        let mut empty = 0;
        for (c, cp) in pool.classes.iter().enumerate() {
            let label = self.pool_label(c);
            let live = cp.blocks.iter().flatten().count() as u32;
            if live != cp.live_blocks {
                return Err(ValidationError::BlockCount {
                    memory_type_index,
                    pool: label,
                    blocks: live,
                    counter: cp.live_blocks,
                });
            }
            cp.placer
                .validate()
                .map_err(|reason| ValidationError::Placement {
                    memory_type_index,
                    pool: label,
                    reason,
                })?;
            let slots = cp.placer.slots();
            let with_memory: Vec<usize> = (0..cp.blocks.len())
                .filter(|&i| cp.blocks[i].is_some())
                .collect();
            if slots != with_memory {
                return Err(ValidationError::BlockSlots {
                    memory_type_index,
                    pool: label,
                    placed: slots,
                    with_memory,
                });
            }
            for (i, b) in cp.blocks.iter().enumerate() {
                let Some(b) = b else { continue };
                let placed = cp.placer.block_size(i);
                if placed != b.size {
                    return Err(ValidationError::BlockSize {
                        memory_type_index,
                        pool: label,
                        slot: i,
                        placed,
                        memory: b.size,
                    });
                }
                held += b.size;
                objects += 1;
                empty += u32::from(cp.placer.block_is_empty(i));
                for (_, _, _, meta) in cp.placer.block_live(i) {
                    requested += meta.requested;
                    count += 1;
                }
            }
        }
        for d in pool.own.iter().flatten() {
            held += d.size;
            objects += 1;
            requested += d.requested;
            count += 1;
        }
        let (mut cached, mut cached_objects, mut empty_lists) = (0, 0u64, 0u64);
        for (&size, list) in &pool.cache {
            empty_lists += u64::from(list.is_empty());
            cached += size * list.len() as u64;
            cached_objects += list.len() as u64;
        }
        if empty_lists > 0
            || cached != pool.cached_bytes
            || cached_objects != u64::from(pool.cached_count)
        {
            return Err(ValidationError::CacheCounters {
                memory_type_index,
                bytes: cached,
                objects: cached_objects,
                empty_lists,
                counted_bytes: pool.cached_bytes,
                counted_objects: u64::from(pool.cached_count),
            });
        }
        if pool.cached_count > MAX_CACHED_OBJECTS {
            return Err(ValidationError::TooManyCached {
                memory_type_index,
                count: pool.cached_count,
                max: MAX_CACHED_OBJECTS,
            });
        }
        held += cached + pool.in_flight_bytes;
        objects += pool.cached_count + pool.in_flight_objects;
        if held != pool.committed_bytes || objects != pool.memory_objects {
            return Err(ValidationError::TypeMemory {
                memory_type_index,
                bytes: held,
                objects,
                in_flight_bytes: pool.in_flight_bytes,
                counted_bytes: pool.committed_bytes,
                counted_objects: pool.memory_objects,
            });
        }
        if requested != pool.requested_bytes || count != pool.allocation_count {
            return Err(ValidationError::AllocationCounters {
                memory_type_index,
                bytes: requested,
                allocations: count,
                counted_bytes: pool.requested_bytes,
                counted_allocations: pool.allocation_count,
            });
        }
        let max = self.config.max_empty_blocks_per_type;
        if empty != pool.empty_blocks || empty > max {
            return Err(ValidationError::EmptyBlocks {
                memory_type_index,
                empty,
                counter: pool.empty_blocks,
                max,
            });
        }
        Ok(())
    }
}
