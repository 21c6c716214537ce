//! Defragmentation passes: [`Allocator::begin_defragmentation_pass`] plans
//! moves with the pure planner ([`crate::defrag`]) under each memory type's
//! lock and reserves every destination at its planned place, so nothing
//! else can take it. Where the blocks' holes can empty nothing, a pass may
//! create one block per class pool, sized to what it places there, and
//! empty the sparsest blocks into it ([`DefragmentationBudget::new_blocks`]):
//! the block is created with the lock dropped, then the pass is planned
//! again with it. Such a block goes back to the device as soon as it is
//! empty, so a failed or cancelled pass leaves nothing behind.
//! [`Allocator::commit_defragmentation_pass`] hands the
//! destinations over and frees the sources (their emptied blocks and
//! memory of its own go back to the device at once);
//! [`Allocator::cancel_defragmentation_pass`] frees the destinations.
//!
//! Only what the caller offers may move: the allocator does not know which
//! allocations the engine reads through a mapped pointer or a device
//! address. Of those offered, allocations flagged
//! [`AllocationFlags::PINNED`], allocations under a debug margin and memory
//! of its own in a Vulkan dedicated allocation stay where they are. Moves
//! stay inside one class pool (same memory type, same resource class and
//! size bucket), so `bufferImageGranularity` holds as it does for any
//! allocation; memory of its own goes to the pool its size and class
//! would pick. Pools placed with [`BlockPlacement::Buddy`] are not
//! defragmented (a buddy range cannot be chosen freely).

use std::collections::HashMap;

use super::*;
use crate::defrag::{
    plan_new_block, plan_pass, plan_pass_into, Fresh, MoveSource, PlanBlock, PlanBudget, PlanOwn,
    PlanRange,
};
use crate::error::Refused;
use crate::placement::{BlockPlacement, PoolPlacer};

/// What one defragmentation pass may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragmentationBudget {
    /// Bytes all moves of a pass copy together, at most. Default 64 MiB:
    /// one pass then fits a frame's copy bandwidth on a discrete GPU and
    /// the pass's destinations stay a small share of a heap.
    pub max_bytes_per_pass: u64,
    /// Moves per pass, at most (each is a resource to create and bind).
    /// Default 1024.
    pub max_moves_per_pass: u32,
    /// Whether allocations with memory of their own may be packed into
    /// holes of blocks (each such move gives a whole `VkDeviceMemory`
    /// back). Default true.
    pub pack_memory_of_its_own: bool,
    /// Whether a pass may create a block (at most one per class pool,
    /// sized to what the pass places there: the live data it takes, each
    /// range rounded to the pool's placement unit) when the holes of the
    /// blocks there can empty none, and emptying the sparsest blocks into
    /// it gives back more than it takes (at least 1/16 of the bytes
    /// copied). Committed memory
    /// then rises by that block until the pass's sources are freed, and
    /// falls below where it was. Default true: without it, what stays after
    /// the passes is blocks whose holes are each too small for what another
    /// block holds.
    pub new_blocks: bool,
}

impl Default for DefragmentationBudget {
    fn default() -> Self {
        Self {
            max_bytes_per_pass: 64 * MIB,
            max_moves_per_pass: 1024,
            pack_memory_of_its_own: true,
            new_blocks: true,
        }
    }
}

/// One planned move: the allocation the caller offered under `key` goes
/// to `destination`, reserved at its planned place.
#[derive(Debug)]
pub struct DefragmentationMove<K> {
    /// The caller's key of the source allocation.
    pub key: K,
    /// The new allocation: same size, alignment, class and flags as the
    /// source, in the same memory type.
    pub destination: Allocation,
}

/// Counters of a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct DefragmentationStats {
    /// Moves planned.
    pub moves: u32,
    /// Bytes the moves copy (the sources' reserved sizes).
    pub bytes_moved: u64,
    /// Blocks that hold nothing once the sources are freed.
    pub blocks_emptied: u32,
    /// Allocations with memory of their own packed into blocks.
    pub own_memory_packed: u32,
    /// `VkDeviceMemory` bytes given back once the sources are freed
    /// (emptied blocks and memory of its own).
    pub bytes_released: u64,
    /// Blocks the pass created to move data into
    /// ([`DefragmentationBudget::new_blocks`]).
    pub blocks_created: u32,
    /// Their bytes: committed memory rises by these until the sources are
    /// freed, then falls by [`Self::bytes_released`].
    pub bytes_created: u64,
}

/// A planned pass: its moves, with every destination reserved. Finish it
/// with [`Allocator::commit_defragmentation_pass`] or
/// [`Allocator::cancel_defragmentation_pass`], or take the moves with
/// [`Self::into_moves`] and free sources and destinations yourself;
/// dropping it leaks the destinations until the allocator reports them.
#[derive(Debug)]
#[must_use = "a pass holds reserved allocations: commit or cancel it"]
pub struct DefragmentationPass<K> {
    moves: Vec<DefragmentationMove<K>>,
    stats: DefragmentationStats,
}

impl<K> DefragmentationPass<K> {
    /// The moves, in the order the planner chose them.
    pub fn moves(&self) -> &[DefragmentationMove<K>] {
        &self.moves
    }

    /// True when the pass moves nothing: the pools are as compact as the
    /// offered allocations and the budget allow.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// What the pass moves and gives back.
    pub fn stats(&self) -> DefragmentationStats {
        self.stats
    }

    /// The moves, for a caller that copies the data and frees the sources
    /// itself (after marking them with [`Allocation::mark_moved`]).
    pub fn into_moves(self) -> Vec<DefragmentationMove<K>> {
        self.moves
    }
}

/// What planning one class pool of a pass reads and adds to.
struct ClassPlan<'c, 'a, K> {
    class: usize,
    offered: &'c [usize],
    candidates: &'c [(K, &'a Allocation)],
    pack_own: bool,
    left: &'c mut PlanBudget,
    planned: &'c mut Vec<(usize, Allocation)>,
    stats: &'c mut DefragmentationStats,
    /// Memory to free once the pool's lock is dropped.
    retired: &'c mut Vec<Retired>,
}

/// A candidate's place, to find it among a block's live ranges.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BlockKey {
    class: usize,
    slot: usize,
    offset: u64,
}

impl Allocator {
    /// Plans one defragmentation pass over the allocations the caller
    /// offers (`(key, allocation)` pairs: only these may move) and reserves
    /// every destination. See [`crate::defrag`] for how blocks are chosen
    /// and the module docs of this file for what never moves.
    ///
    /// Destinations lie in blocks that already exist, or in blocks the
    /// pass creates ([`DefragmentationBudget::new_blocks`],
    /// [`DefragmentationStats::blocks_created`]). An allocation of another
    /// allocator is refused with
    /// [`AllocError::ForeignAllocation`] before anything is reserved.
    #[doc(alias = "vmaBeginDefragmentation")]
    #[doc(alias = "vmaBeginDefragmentationPass")]
    pub fn begin_defragmentation_pass<'a, K>(
        &self,
        candidates: impl IntoIterator<Item = (K, &'a Allocation)>,
        budget: &DefragmentationBudget,
    ) -> Result<DefragmentationPass<K>, AllocError> {
        let candidates: Vec<(K, &Allocation)> = candidates.into_iter().collect();
        if let Some((_, a)) = candidates.iter().find(|(_, a)| a.allocator_id != self.id) {
            return Err(AllocError::ForeignAllocation {
                owner: a.allocator_id,
                this: self.id,
            });
        }
        let mut by_type: Vec<Vec<usize>> = vec![Vec::new(); self.pools.len()];
        for (i, (_, a)) in candidates.iter().enumerate() {
            if !a.is_pinned() && !a.moved && a.margin_front == 0 {
                by_type[a.memory_type_index as usize].push(i);
            }
        }
        let mut left = PlanBudget {
            max_bytes: budget.max_bytes_per_pass,
            max_moves: budget.max_moves_per_pass,
        };
        let mut planned: Vec<(usize, Allocation)> = Vec::new();
        let mut stats = DefragmentationStats::default();
        if self.config.placement == BlockPlacement::Buddy {
            return Ok(DefragmentationPass {
                moves: Vec::new(),
                stats,
            });
        }
        for (type_index, offered) in by_type.iter().enumerate() {
            if offered.is_empty() || left.max_moves == 0 {
                continue;
            }
            let type_u32 = type_index as u32;
            let mut retired = Vec::new();
            let mut pool = self.pools[type_index].lock();
            for class in 0..pool.classes.len() {
                let mut ctx = ClassPlan {
                    class,
                    offered,
                    candidates: &candidates,
                    pack_own: budget.pack_memory_of_its_own,
                    left: &mut left,
                    planned: &mut planned,
                    stats: &mut stats,
                    retired: &mut retired,
                };
                let Some((size, sources)) =
                    self.plan_class(&mut pool, type_u32, &mut ctx, None, budget.new_blocks)
                else {
                    continue;
                };
                // A block for the sparsest blocks' data: created with the
                // lock dropped (other threads allocate meanwhile), then the
                // pass is planned again with it.
                drop(pool);
                // What earlier classes gave back goes first: it counts
                // against the heap until freed.
                self.release_all(type_u32, std::mem::take(ctx.retired));
                let created = self.create_block(type_u32, size, true);
                pool = self.pools[type_index].lock();
                let fresh = match created {
                    Ok(mut block) => {
                        block.exact = true;
                        match pool.add_block(class, block) {
                            Ok(slot) => Some((slot, sources)),
                            Err(block) => {
                                ctx.retired.push(block.retired());
                                None
                            }
                        }
                    }
                    Err(e) => {
                        log::debug!("defragmentation: no new block of {size} bytes in memory type {type_index}: {e:?}");
                        None
                    }
                };
                self.plan_class(&mut pool, type_u32, &mut ctx, fresh, false);
            }
            drop(pool);
            self.release_all(type_u32, retired);
        }
        let mut keys: Vec<Option<K>> = candidates.into_iter().map(|(k, _)| Some(k)).collect();
        let moves = planned
            .into_iter()
            .map(|(i, destination)| DefragmentationMove {
                key: keys[i].take().expect("each candidate moves at most once"),
                destination,
            })
            .collect();
        Ok(DefragmentationPass { moves, stats })
    }

    /// Plans and reserves the moves into one class pool of one memory
    /// type: its blocks' ranges, and memory of its own of that class.
    /// `fresh` is the slot of an empty block created for this pass and the
    /// slots of the blocks to empty into it: it is used when the plan into
    /// it gives back more than the block, else retired. Returns the size of
    /// a block worth creating and the slots it is for, when `may_ask` and
    /// the blocks' holes give nothing back (nothing is reserved then).
    fn plan_class(
        &self,
        pool: &mut TypePool,
        type_index: u32,
        ctx: &mut ClassPlan<'_, '_, impl Sized>,
        fresh: Option<(usize, Vec<usize>)>,
        may_ask: bool,
    ) -> Option<(u64, Vec<usize>)> {
        let class = ctx.class;
        let candidates = ctx.candidates;
        let mut in_blocks: HashMap<BlockKey, usize> = HashMap::new();
        let mut own = Vec::new();
        for &i in ctx.offered {
            let a = candidates[i].1;
            match a.placement {
                Placement::Block {
                    class: c, block, ..
                } if c as usize == class => {
                    let key = BlockKey {
                        class,
                        slot: block as usize,
                        offset: a.offset,
                    };
                    in_blocks.entry(key).or_insert(i);
                }
                Placement::OwnMemory { slot } if ctx.pack_own => {
                    let reusable = pool
                        .own
                        .get(slot as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|m| m.reusable && m.memory == a.memory);
                    let alignment = a.alignment.max(1);
                    // Either size bucket of its granularity class will do
                    // (the buckets only keep small and large requests
                    // apart); the small one is planned first.
                    let same_granularity =
                        self.class_of(a.class, a.size, alignment) / 2 == class / 2;
                    let taken = ctx.planned.iter().any(|&(k, _)| k == i);
                    if reusable && same_granularity && !taken {
                        own.push(PlanOwn {
                            key: i,
                            size: a.size.next_multiple_of(self.min_block),
                            alignment,
                        });
                    }
                }
                _ => {}
            }
        }
        if in_blocks.is_empty() && own.is_empty() {
            if let Some((slot, _)) = fresh {
                ctx.retired.push(pool.retire_block(class, slot));
            }
            return None;
        }
        let cp = &pool.classes[class];
        let mut slots = cp.placer.slots();
        let mut blocks: Vec<PlanBlock> = slots
            .iter()
            .map(|&slot| PlanBlock {
                size: cp.placer.block_size(slot),
                ranges: cp
                    .placer
                    .block_live(slot)
                    .map(|(_, offset, kept, _)| {
                        let found = in_blocks.get(&BlockKey {
                            class,
                            slot,
                            offset,
                        });
                        PlanRange {
                            key: found.copied().unwrap_or(usize::MAX),
                            offset,
                            size: kept,
                            alignment: found.map_or(1, |&i| candidates[i].1.alignment.max(1)),
                            movable: found.is_some(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let granularity = cp.granularity.max(self.min_block);
        let largest = blocks.iter().map(|b| b.size).max().unwrap_or(0);
        let fresh = fresh.and_then(|(slot, sources)| {
            let index = slots.iter().position(|&s| s == slot)?;
            let sources: Vec<usize> = sources
                .iter()
                .filter_map(|&src| slots.iter().position(|&s| s == src))
                .collect();
            Some((index, sources))
        });
        let mut fresh_used = None;
        let planned = match fresh {
            Some((fi, sources)) => {
                let fresh = Fresh {
                    index: fi,
                    sources: &sources,
                };
                let into = plan_pass_into(&blocks, granularity, *ctx.left, fresh);
                match into {
                    Ok(p)
                        if p.moves.iter().any(|m| m.block == fi)
                            && p.released(&blocks) > blocks[fi].size =>
                    {
                        fresh_used = Some((slots[fi], blocks[fi].size));
                        Some(p)
                    }
                    _ => {
                        // Not worth it after all (other threads changed
                        // the pool while it was created): it goes back.
                        ctx.retired.push(pool.retire_block(class, slots[fi]));
                        slots.remove(fi);
                        blocks.remove(fi);
                        None
                    }
                }
            }
            None => None,
        };
        let plan = match planned {
            Some(p) => p,
            None => match plan_pass(&blocks, &own, self.min_block, *ctx.left) {
                Ok(plan) => plan,
                Err(e) => {
                    // The pools' own data always plans; report and move nothing.
                    log::error!("defragmentation of memory type {type_index} class {class}: {e}");
                    return None;
                }
            },
        };
        if may_ask && plan.released(&blocks) == 0 {
            let max = self.preferred_block_size(type_index).max(largest);
            // Sized at the class pool's unit: every kept size and offset
            // there is a multiple of it.
            if let Ok(Some(new)) = plan_new_block(&blocks, granularity, *ctx.left, max) {
                let sources = new.sources.iter().map(|&b| slots[b]).collect();
                return Some((new.size, sources));
            }
        }
        let (left, planned, stats) = (&mut *ctx.left, &mut *ctx.planned, &mut *ctx.stats);
        for &b in &plan.emptied_blocks {
            stats.blocks_emptied += 1;
            stats.bytes_released += blocks[b].size;
        }
        for m in plan.moves {
            let source = candidates[m.key].1;
            let slot = slots[m.block];
            let name = match m.from {
                MoveSource::Block { .. } => {
                    let Placement::Block { block, handle, .. } = source.placement else {
                        unreachable!("block moves come from blocks")
                    };
                    pool.classes[class]
                        .placer
                        .get(block as usize, handle, source.offset)
                        .and_then(|(_, meta)| meta.name())
                }
                MoveSource::OwnMemory => {
                    let Placement::OwnMemory { slot } = source.placement else {
                        unreachable!("own-memory moves come from memory of its own")
                    };
                    pool.own[slot as usize]
                        .as_ref()
                        .and_then(|o| o.name.as_deref().map(str::to_owned))
                }
            };
            let meta = AllocMeta::new(source.size, name.as_deref(), 0, 0);
            let cp = &mut pool.classes[class];
            let PoolPlacer::Tlsf(tlsf) = &mut cp.placer else {
                return None;
            };
            let Ok(placed) = tlsf.allocate_at(slot as u32, m.offset, m.size, meta) else {
                // The plan came from this very state under the same lock.
                log::error!("defragmentation: planned range {m:?} was not free");
                break;
            };
            if tlsf.region_allocation_count(slot as u32) == 1 {
                pool.empty_blocks -= 1;
            }
            let block = pool.classes[class].blocks[slot]
                .as_ref()
                .expect("placer and blocks agree");
            let destination = Allocation {
                memory: block.memory,
                offset: placed.offset,
                size: source.size,
                memory_size: block.size,
                memory_type_index: type_index,
                // SAFETY: `offset + size <= block.size` (the placer checked
                // the range), so the pointer stays inside the mapping.
                mapped: block
                    .mapped
                    .map(|p| MappedPtr(unsafe { p.0.add(placed.offset as usize) })),
                coherent: self.is_coherent(type_index),
                allocator_id: self.id,
                placement: Placement::Block {
                    class: class as u8,
                    block: slot as u32,
                    handle: placed.handle,
                },
                margin_front: 0,
                alignment: source.alignment,
                class: source.class,
                flags: source.flags,
                moved: false,
            };
            pool.requested_bytes += source.size;
            pool.allocation_count += 1;
            left.max_bytes -= m.size.min(left.max_bytes);
            left.max_moves -= 1;
            stats.moves += 1;
            stats.bytes_moved += source.size;
            if m.from == MoveSource::OwnMemory {
                stats.own_memory_packed += 1;
                stats.bytes_released += source.memory_size;
            }
            planned.push((m.key, destination));
        }
        if let Some((slot, size)) = fresh_used {
            if pool.classes[class].placer.block_is_empty(slot) {
                // Nothing was reserved there after all: it goes back.
                ctx.retired.push(pool.retire_block(class, slot));
            } else {
                stats.blocks_created += 1;
                stats.bytes_created += size;
            }
        }
        None
    }

    /// The class pool a request of `class`, `size` and `alignment` goes to
    /// (as the allocate path picks it).
    fn class_of(&self, class: ResourceClass, size: u64, alignment: u64) -> usize {
        let optimal = usize::from(self.separate_classes && class == ResourceClass::Optimal);
        let needed = size.max(alignment).next_power_of_two();
        let large = usize::from(needed > self.config.small_allocation_limit);
        optimal * 2 + large
    }

    /// Finishes a pass whose data the caller has copied: for each move,
    /// `swap(key, destination)` puts the destination where the caller kept
    /// the source and returns the source, which is marked moved
    /// ([`Allocation::mark_moved`]) and freed, so blocks it empties and
    /// memory of its own go back to the device at once.
    ///
    /// A source of another allocator is handed back inside the
    /// [`Refused`] (with every other such source) after the rest are freed.
    #[doc(alias = "vmaEndDefragmentationPass")]
    pub fn commit_defragmentation_pass<K>(
        &self,
        pass: DefragmentationPass<K>,
        mut swap: impl FnMut(K, Allocation) -> Allocation,
    ) -> Result<DefragmentationStats, Refused<Vec<Allocation>, AllocError>> {
        let stats = pass.stats;
        let mut refused = Vec::new();
        let mut error = None;
        for m in pass.moves {
            let mut source = swap(m.key, m.destination);
            source.mark_moved();
            if let Err(r) = self.free(source) {
                let (e, a) = r.into_parts();
                error.get_or_insert(e);
                refused.push(a);
            }
        }
        match error {
            None => Ok(stats),
            Some(e) => Err(Refused::new(e, refused)),
        }
    }

    /// Drops a pass: frees every reserved destination. The sources were
    /// never touched.
    pub fn cancel_defragmentation_pass<K>(&self, pass: DefragmentationPass<K>) {
        for m in pass.moves {
            // Destinations come from this allocator: free cannot refuse them.
            let _ = self.free(m.destination);
        }
    }

    /// Frees memory of its own in `slot` straight back to the device,
    /// past the reuse cache (its data was moved into a block).
    pub(super) fn release_own_memory(&self, pool: &mut TypePool, slot: u32) -> Vec<Retired> {
        let entry = pool.take_own(slot);
        pool.requested_bytes -= entry.requested;
        pool.allocation_count -= 1;
        vec![pool.retire(entry.retired())]
    }
}
