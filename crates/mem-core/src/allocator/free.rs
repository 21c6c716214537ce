//! Giving memory back: [`Allocator::free`] (a range of a block, or memory
//! of its own into the cache), [`Allocator::trim`] (empty blocks and the
//! cache), and everything when the allocator is dropped, after reporting
//! the allocations still live (one `log` warning; nothing while panicking).
//!
//! An empty block is kept only while the type holds fewer than
//! [`AllocatorConfig::max_empty_blocks_per_type`] empty blocks (hysteresis
//! against allocate/free ping-pong at a block boundary, and large requests
//! refilling blocks under churn without a `vkAllocateMemory`). Memory is taken out
//! of the pool under its lock and freed after the lock is dropped.

use std::sync::atomic::Ordering;

use super::margins::check_block_margins;
use super::*;
use crate::error::Refused;

/// Leaked allocations listed one by one in the drop report; the rest are
/// counted ([`Allocator::leak_report`] has them all).
const LEAKS_LISTED: usize = 32;

impl Allocator {
    /// Frees an allocation.
    ///
    /// An allocation of another allocator is refused with
    /// [`AllocError::ForeignAllocation`] and handed back inside the
    /// [`Refused`], unchanged: free it with the allocator that made it.
    /// That is the only failure.
    #[doc(alias = "vmaFreeMemory")]
    pub fn free(&self, allocation: Allocation) -> Result<(), Refused<Allocation, AllocError>> {
        if allocation.allocator_id != self.id {
            let error = AllocError::ForeignAllocation {
                owner: allocation.allocator_id,
                this: self.id,
            };
            return Err(Refused::new(error, allocation));
        }
        let type_index = allocation.memory_type_index;
        let retired = {
            let mut pool = self.pools[type_index as usize].lock();
            match allocation.placement {
                Placement::Block {
                    class,
                    block,
                    handle,
                } => {
                    let mut retired = self
                        .free_in_block(
                            &mut pool,
                            class as usize,
                            block as usize,
                            handle,
                            &allocation,
                        )
                        .map_or_else(Vec::new, |r| vec![r]);
                    // Live bytes fell: keep the cache within its share.
                    if pool.cached_bytes > 0 {
                        let cap = self.cache_cap(&pool);
                        retired.extend(self.evict_cache(&mut pool, cap));
                    }
                    retired
                }
                Placement::OwnMemory { slot } if allocation.moved => {
                    self.release_own_memory(&mut pool, slot)
                }
                Placement::OwnMemory { slot } => self.free_own_memory(&mut pool, slot),
            }
        };
        self.release_all(type_index, retired);
        Ok(())
    }

    /// Frees a range of a block; the block itself when it became empty and
    /// the type already keeps enough empty blocks.
    fn free_in_block(
        &self,
        pool: &mut TypePool,
        class: usize,
        slot: usize,
        handle: u32,
        allocation: &Allocation,
    ) -> Option<Retired> {
        let inner = allocation.offset - allocation.margin_front;
        let cp = &mut pool.classes[class];
        if allocation.margin_front > 0 {
            if let Some(report) =
                check_block_margins(cp, slot, allocation.memory_type_index, handle, inner)
            {
                self.record_corruption(report);
            }
        }
        let (_, meta) = cp
            .placer
            .free(slot, handle, inner)
            .expect("allocation ids are unique: the allocation is live in its block");
        let empty = cp.placer.block_is_empty(slot);
        pool.requested_bytes -= meta.requested;
        pool.allocation_count -= 1;
        if !empty {
            return None;
        }
        pool.empty_blocks += 1;
        // A block that defragmentation emptied, or one it created, goes
        // back to the device.
        let exact = pool.classes[class].blocks[slot]
            .as_ref()
            .is_some_and(|b| b.exact);
        (allocation.moved || exact || pool.empty_blocks > self.config.max_empty_blocks_per_type)
            .then(|| pool.retire_block(class, slot))
    }

    /// Frees every empty block, the ones kept for hysteresis included, and
    /// every cached memory object (e.g. after a level load or unload). The
    /// peak that [`CacheRetention::UpToPeak`] fills the cache up to starts
    /// again from what stays committed.
    pub fn trim(&self) {
        for (t, pool) in self.pools.iter().enumerate() {
            let retired = {
                let mut pool = pool.lock();
                let mut retired = pool.retire_blocks(|cp, slot| cp.placer.block_is_empty(slot));
                retired.extend(self.evict_cache(&mut pool, 0));
                retired
            };
            self.release_all(t as u32, retired);
        }
        // The cache may fill up to the heaps' present level again.
        for (peak, committed) in self.heap_peak.iter().zip(&self.heap_committed) {
            peak.store(committed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// The report of allocations still live when the allocator is dropped:
    /// one warning, nothing when there is none.
    fn log_leaks(&self) {
        let leaks = self.leak_report();
        if leaks.is_empty() {
            return;
        }
        let mut report = format!(
            "Allocator #{} dropped with {} live allocation(s) (leaked):",
            self.id,
            leaks.len()
        );
        for l in leaks.iter().take(LEAKS_LISTED) {
            report.push_str(&format!(
                "\n  {:?} {} bytes, memory type {}{}",
                l.name.as_deref().unwrap_or("<unnamed>"),
                l.size,
                l.memory_type_index,
                if l.own_memory {
                    " (memory of its own)"
                } else {
                    ""
                }
            ));
        }
        if leaks.len() > LEAKS_LISTED {
            report.push_str(&format!("\n  and {} more", leaks.len() - LEAKS_LISTED));
        }
        log::warn!("{report}");
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        if !std::thread::panicking() && log::log_enabled!(log::Level::Warn) {
            self.log_leaks();
        }
        for t in 0..self.pools.len() {
            let retired = {
                let mut pool = self.pools[t].lock();
                let mut retired = pool.retire_blocks(|_, _| true);
                retired.extend(pool.retire_own_memory());
                retired.extend(self.evict_cache(&mut pool, 0));
                retired
            };
            self.release_all(t as u32, retired);
        }
    }
}
