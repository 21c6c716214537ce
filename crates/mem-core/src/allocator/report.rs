//! What the allocator reports about itself: [`Allocator::stats`] (per heap
//! and memory type), [`Allocator::block_maps`] (every range of every
//! memory object), [`Allocator::dump_json`] and [`Allocator::leak_report`].
//! Each takes one memory type's lock at a time, so figures of different
//! types may come from slightly different moments.

use std::sync::atomic::Ordering;

use super::*;
use crate::stats::{
    AllocatorStats, BlockMap, HeapStats, LeakedAllocation, MemoryTypeStats, RangeKind, RangeMap,
};

impl Allocator {
    /// Statistics per heap and memory type. Takes each type's lock briefly.
    #[doc(alias = "vmaCalculateStatistics")]
    pub fn stats(&self) -> AllocatorStats {
        let budgets = self.device.heap_budgets();
        let mut types = Vec::with_capacity(self.pools.len());
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            let mut s = MemoryTypeStats {
                memory_type_index: t as u32,
                heap_index: self.props.memory_types[t].heap_index,
                flags: self.props.memory_types[t].flags,
                requested_bytes: pool.requested_bytes,
                allocation_count: pool.allocation_count,
                ..MemoryTypeStats::default()
            };
            for cp in &pool.classes {
                for (slot, b) in cp.blocks.iter().enumerate() {
                    let Some(b) = b else { continue };
                    s.block_count += 1;
                    s.committed_bytes += b.size;
                    s.allocated_bytes += cp.placer.block_allocated_bytes(slot);
                    s.largest_free_block =
                        s.largest_free_block.max(cp.placer.block_largest_free(slot));
                    if cp.placer.block_is_empty(slot) {
                        s.empty_block_count += 1;
                    }
                    for (size, count) in cp.placer.block_free_histogram(slot) {
                        *s.free_block_histogram.entry(size).or_default() += count as u64;
                    }
                }
                s.host_metadata_bytes += cp.placer.host_memory_bytes() as u64;
            }
            for d in pool.own.iter().flatten() {
                s.own_memory_count += 1;
                s.committed_bytes += d.size;
                s.allocated_bytes += d.size;
            }
            s.committed_bytes += pool.cached_bytes;
            s.cached_bytes = pool.cached_bytes;
            s.cached_count = u64::from(pool.cached_count);
            types.push(s);
        }
        let heaps = self
            .props
            .memory_heaps
            .iter()
            .enumerate()
            .map(|(h, info)| {
                let mut hs = HeapStats {
                    heap_index: h as u32,
                    size: info.size,
                    flags: info.flags,
                    budget: budgets.as_ref().and_then(|b| b.get(h)).map(|b| b.budget),
                    driver_usage: budgets.as_ref().and_then(|b| b.get(h)).map(|b| b.usage),
                    ..HeapStats::default()
                };
                for s in types.iter().filter(|s| s.heap_index == h as u32) {
                    hs.block_count += s.block_count;
                    hs.own_memory_count += s.own_memory_count;
                    hs.committed_bytes += s.committed_bytes;
                    hs.allocated_bytes += s.allocated_bytes;
                    hs.requested_bytes += s.requested_bytes;
                    hs.allocation_count += s.allocation_count;
                }
                hs
            })
            .collect::<Vec<_>>();
        let mut stats = AllocatorStats::from_parts(
            heaps,
            types,
            self.allocate_memory_calls.load(Ordering::Relaxed),
        );
        stats.total.corruptions_detected = self.corruptions.load(Ordering::Relaxed);
        stats
    }

    /// Every block and every allocation with memory of its own, with the allocated and free
    /// ranges, for pictures of fragmentation and the detailed JSON dump.
    pub fn block_maps(&self) -> Vec<BlockMap> {
        let mut maps = Vec::new();
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for (class, cp) in pool.classes.iter().enumerate() {
                for (slot, b) in cp.blocks.iter().enumerate() {
                    let Some(b) = b else { continue };
                    let mut ranges: Vec<RangeMap> = cp
                        .placer
                        .block_live(slot)
                        .map(|(_, offset, kept, meta)| RangeMap {
                            offset,
                            size: kept,
                            requested: meta.requested,
                            kind: RangeKind::Allocated,
                            name: meta.name(),
                        })
                        .chain(cp.placer.block_free_ranges(slot).into_iter().map(
                            |(offset, size)| RangeMap {
                                offset,
                                size,
                                requested: 0,
                                kind: RangeKind::Free,
                                name: None,
                            },
                        ))
                        .collect();
                    ranges.sort_by_key(|r| r.offset);
                    maps.push(BlockMap {
                        memory_type_index: t as u32,
                        class: self.pool_label(class),
                        own_memory: false,
                        size: b.size,
                        ranges,
                    });
                }
            }
            for d in pool.own.iter().flatten() {
                maps.push(BlockMap {
                    memory_type_index: t as u32,
                    class: "dedicated",
                    own_memory: true,
                    size: d.size,
                    ranges: vec![RangeMap {
                        offset: 0,
                        size: d.size,
                        requested: d.requested,
                        kind: RangeKind::Allocated,
                        name: d.name.as_deref().map(str::to_owned),
                    }],
                });
            }
        }
        maps
    }

    /// A JSON document with [`Self::stats`] and, when `detailed`, every block's
    /// map (like `vmaBuildStatsString`).
    #[doc(alias = "vmaBuildStatsString")]
    #[cfg(feature = "json")]
    pub fn dump_json(&self, detailed: bool) -> String {
        #[derive(serde::Serialize)]
        struct Dump {
            stats: AllocatorStats,
            #[serde(skip_serializing_if = "Option::is_none")]
            blocks: Option<Vec<BlockMap>>,
        }
        let dump = Dump {
            stats: self.stats(),
            blocks: detailed.then(|| self.block_maps()),
        };
        serde_json::to_string_pretty(&dump).expect("stats serialize")
    }

    /// Live allocations (name, size, memory type): what would leak if the
    /// allocator were dropped now.
    pub fn leak_report(&self) -> Vec<LeakedAllocation> {
        let mut out = Vec::new();
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for cp in &pool.classes {
                for (_, offset, _, meta) in cp
                    .placer
                    .slots()
                    .into_iter()
                    .flat_map(|slot| cp.placer.block_live(slot))
                {
                    out.push(LeakedAllocation {
                        name: meta.name(),
                        size: meta.requested,
                        memory_type_index: t as u32,
                        offset: offset + meta.front(),
                        own_memory: false,
                    });
                }
            }
            for d in pool.own.iter().flatten() {
                out.push(LeakedAllocation {
                    name: d.name.as_deref().map(str::to_owned),
                    size: d.requested,
                    memory_type_index: t as u32,
                    offset: 0,
                    own_memory: true,
                });
            }
        }
        out
    }

    /// The name of class pool `pool` in statistics and errors.
    pub(super) fn pool_label(&self, pool: usize) -> &'static str {
        match (self.separate_classes, pool) {
            (_, LARGE_POOL) => "large",
            (false, _) => "small",
            (true, OPTIMAL_SMALL_POOL) => "optimal small",
            (true, _) => "linear small",
        }
    }
}
