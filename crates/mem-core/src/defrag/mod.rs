//! The defragmentation planner: which allocations of one pool move where,
//! on plain numbers (`u64` offsets, no Vulkan type, no device call).
//!
//! A pool is a set of blocks placing at one granularity (the allocator's
//! minimum block). Each block lists its live ranges; each range is movable
//! or not (pinned by the engine, mapped, under a debug margin, or simply
//! not offered by the caller). [`plan_pass`] frees whole blocks:
//!
//! 1. Blocks are ranked by the share of their bytes that is live, densest
//!    first: the dense ones are where moved data goes.
//! 2. Sources are taken sparsest first (the fewest bytes to copy per byte
//!    given back). A source must hold only movable ranges, or it could not
//!    be emptied.
//! 3. Each range of a source, largest first, goes to the first hole that
//!    fits it (aligned as the range demands), densest block first, in the
//!    blocks ranked denser than the source that are not sources
//!    themselves, or in any block holding a range that may not move (such
//!    a block is never emptied, however sparse).
//! 4. When a source cannot be emptied for lack of room, its tentative
//!    moves are dropped (moving part of a block gives nothing back); when
//!    the byte or move budget ends inside a source, the moves made so far
//!    stay (the next pass finishes that block first, as it is the sparsest).
//! 5. Then memory of its own ([`PlanOwn`]), largest first, goes to holes of
//!    any block that is not a source: each such move gives back a whole
//!    memory object.
//! 6. When nothing could be emptied or packed but the blocks kept have as
//!    many free bytes as the sparsest block holds, the pass compacts:
//!    ranges of each kept block, highest first, move to the lowest hole
//!    below them in the same block, so free space gathers at the block's
//!    end and a later pass can empty the sparse block into it.
//!
//! What stays after such passes are blocks whose holes are smaller than
//! what any other block holds live. [`plan_new_block`] chooses the
//! sparsest blocks worth emptying into a new block and sizes that block to
//! what the pass would place there; the caller creates it and plans the
//! pass with [`plan_pass_into`], which empties those blocks only: each
//! range goes to holes of the denser blocks first and to the new block when
//! none fits. Planned on the same pool, the two give the same moves.
//!
//! Without a fresh block no move lands in a new block, so committed memory
//! never grows; no two destinations overlap each other or a live range
//! that stays.

#[cfg(test)]
mod tests;

/// One live range of a block, as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanRange {
    /// The caller's identifier, returned in [`PlannedMove::key`].
    pub key: usize,
    /// Offset of the range inside its block (a multiple of the granularity).
    pub offset: u64,
    /// Bytes the range occupies (its kept size).
    pub size: u64,
    /// Alignment its new offset must keep (a power of two).
    pub alignment: u64,
    /// Whether it may move.
    pub movable: bool,
}

/// A block of the pool: its size and live ranges (in any order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanBlock {
    /// Size in bytes.
    pub size: u64,
    /// Live ranges.
    pub ranges: Vec<PlanRange>,
}

/// An allocation with memory of its own that may be packed into a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanOwn {
    /// The caller's identifier.
    pub key: usize,
    /// Bytes it needs in a block (its size rounded up to the granularity).
    pub size: u64,
    /// Alignment its offset in the block must keep (a power of two).
    pub alignment: u64,
}

/// What one pass may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanBudget {
    /// Bytes of all moves together, at most.
    pub max_bytes: u64,
    /// Moves, at most.
    pub max_moves: u32,
}

/// Where a planned move comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveSource {
    /// A range of block `block` (index into the input) at `offset`.
    Block {
        /// The source block.
        block: usize,
        /// The range's offset there.
        offset: u64,
    },
    /// Memory of its own.
    OwnMemory,
}

/// One planned move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedMove {
    /// The range's or own allocation's [`PlanRange::key`] / [`PlanOwn::key`].
    pub key: usize,
    /// Where it is now.
    pub from: MoveSource,
    /// The destination block (index into the input).
    pub block: usize,
    /// The destination offset, aligned as asked.
    pub offset: u64,
    /// Bytes it occupies.
    pub size: u64,
}

/// A pass's plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The moves, in the order they were chosen.
    pub moves: Vec<PlannedMove>,
    /// Blocks (indices) that hold no range once every move is done.
    pub emptied_blocks: Vec<usize>,
    /// Bytes of all moves.
    pub bytes: u64,
}

/// A block worth creating for a pass (see [`plan_new_block`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlock {
    /// Bytes of the block to create, a multiple of the granularity: what
    /// the pass into it places there, alignment padding included.
    pub size: u64,
    /// The blocks (indices into the input) it is sized to take, sparsest
    /// first.
    pub sources: Vec<usize>,
    /// Their live bytes: what the pass copies.
    pub live: u64,
    /// Their size: what emptying them gives back.
    pub released: u64,
}

/// An empty block created for a pass, and the blocks the pass empties
/// ([`plan_pass_into`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fresh<'a> {
    /// Its index in the input.
    pub index: usize,
    /// The only blocks the pass may empty ([`NewBlock::sources`]).
    pub sources: &'a [usize],
}

/// Why the input cannot be planned: it describes no real pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The granularity or an alignment is not a power of two.
    #[error("{what} {value} is not a power of two")]
    NotPowerOfTwo {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// A range is empty, reaches past its block, or overlaps another.
    #[error("block {block}: range {offset}+{size} is empty, past the block's {block_size} bytes or overlaps another")]
    BadRange {
        /// The block.
        block: usize,
        /// The range's offset.
        offset: u64,
        /// The range's size.
        size: u64,
        /// The block's size.
        block_size: u64,
    },
}

/// The free ranges of one block, sorted by offset, updated as moves land.
#[derive(Clone, Debug)]
struct Holes(Vec<(u64, u64)>);

impl Holes {
    /// The first offset where `size` bytes aligned to `align` fit.
    fn find(&self, size: u64, align: u64) -> Option<(usize, u64)> {
        self.0.iter().enumerate().find_map(|(i, &(start, len))| {
            let at = start.checked_next_multiple_of(align)?;
            (at.checked_add(size)? <= start + len).then_some((i, at))
        })
    }

    /// Takes `[at, at + size)` out of hole `i`.
    fn take(&mut self, i: usize, at: u64, size: u64) {
        let (start, len) = self.0[i];
        let end = start + len;
        let mut rest = Vec::with_capacity(2);
        if at > start {
            rest.push((start, at - start));
        }
        if at + size < end {
            rest.push((at + size, end - at - size));
        }
        self.0.splice(i..=i, rest);
    }
}

fn pow2(what: &'static str, value: u64) -> Result<(), PlanError> {
    if value.is_power_of_two() {
        Ok(())
    } else {
        Err(PlanError::NotPowerOfTwo { what, value })
    }
}

/// The free ranges of every block, after checking the input.
fn holes_of(
    blocks: &[PlanBlock],
    own: &[PlanOwn],
    granularity: u64,
) -> Result<Vec<Holes>, PlanError> {
    pow2("granularity", granularity)?;
    let mut holes = Vec::with_capacity(blocks.len());
    for (b, block) in blocks.iter().enumerate() {
        let mut ranges: Vec<&PlanRange> = block.ranges.iter().collect();
        ranges.sort_by_key(|r| r.offset);
        let mut free = Vec::new();
        let mut cursor = 0u64;
        for r in ranges {
            pow2("alignment", r.alignment.max(1))?;
            let end = r.offset.checked_add(r.size).filter(|&e| e <= block.size);
            let Some(end) = end.filter(|_| r.size > 0 && r.offset >= cursor) else {
                return Err(PlanError::BadRange {
                    block: b,
                    offset: r.offset,
                    size: r.size,
                    block_size: block.size,
                });
            };
            if r.offset > cursor {
                free.push((cursor, r.offset - cursor));
            }
            cursor = end;
        }
        if cursor < block.size {
            free.push((cursor, block.size - cursor));
        }
        holes.push(Holes(free));
    }
    for o in own {
        pow2("alignment", o.alignment.max(1))?;
    }
    Ok(holes)
}

impl Plan {
    /// `VkDeviceMemory` bytes the plan gives back once its sources are
    /// freed: the blocks it empties and the memory of its own it packs.
    pub fn released(&self, blocks: &[PlanBlock]) -> u64 {
        let emptied: u64 = self.emptied_blocks.iter().map(|&b| blocks[b].size).sum();
        let own: u64 = self
            .moves
            .iter()
            .filter(|m| m.from == MoveSource::OwnMemory)
            .map(|m| m.size)
            .sum();
        emptied + own
    }
}

/// Live bytes of a block.
fn live_of(block: &PlanBlock) -> u64 {
    block.ranges.iter().map(|r| r.size).sum()
}

/// Block indices, densest first by the share of the block that is live
/// (ties: larger blocks first, they are kept).
fn by_share(blocks: &[PlanBlock]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.sort_by(|&a, &b| {
        let share = |x: usize, y: usize| {
            u128::from(live_of(&blocks[x])) * u128::from(blocks[y].size.max(1))
        };
        share(b, a)
            .cmp(&share(a, b))
            .then(blocks[b].size.cmp(&blocks[a].size))
            .then(a.cmp(&b))
    });
    order
}

/// Plans one pass over a pool (see the [module docs](self)).
///
/// `granularity` is the pool's placement unit: destination offsets are
/// multiples of it and of each range's alignment. Ranges are checked first:
/// overlapping or out-of-bounds input is a [`PlanError`], never a panic.
pub fn plan_pass(
    blocks: &[PlanBlock],
    own: &[PlanOwn],
    granularity: u64,
    budget: PlanBudget,
) -> Result<Plan, PlanError> {
    plan_with(blocks, own, granularity, budget, None)
}

/// A pass that empties `fresh.sources` into holes of denser blocks and,
/// for what fits none, into the empty block `fresh.index` created for it
/// (see [`plan_new_block`]). Memory of its own is not packed in such a
/// pass.
pub fn plan_pass_into(
    blocks: &[PlanBlock],
    granularity: u64,
    budget: PlanBudget,
    fresh: Fresh<'_>,
) -> Result<Plan, PlanError> {
    plan_with(blocks, &[], granularity, budget, Some(fresh))
}

fn plan_with(
    blocks: &[PlanBlock],
    own: &[PlanOwn],
    granularity: u64,
    budget: PlanBudget,
    fresh: Option<Fresh<'_>>,
) -> Result<Plan, PlanError> {
    let holes = holes_of(blocks, own, granularity)?;
    // An index that names no empty block takes nothing; the pass still
    // empties only the sources it was given.
    let fresh = fresh.map(|f| Fresh {
        index: if f.index < blocks.len() && blocks[f.index].ranges.is_empty() {
            f.index
        } else {
            usize::MAX
        },
        ..f
    });
    let live = |b: usize| live_of(&blocks[b]);
    // Two rankings, densest first (ties: larger blocks first, they are
    // kept): by the share of the block that is live (sources give back the
    // most bytes per byte copied), and by live bytes (sources are the
    // cheapest to empty). Each is planned; the plan that gives back more
    // memory wins, then the one that copies less. Neither is better on
    // every pool: on the `defragment` example's churned scene (lavapipe,
    // blocks only) live bytes reached 117% of live, the share 124%.
    let by_share = by_share(blocks);
    let mut by_live: Vec<usize> = (0..blocks.len()).collect();
    by_live.sort_by_key(|&b| {
        (
            std::cmp::Reverse(live(b)),
            std::cmp::Reverse(blocks[b].size),
            b,
        )
    });
    let released = |p: &Plan| p.released(blocks);
    let a = plan_ranked(
        blocks,
        own,
        granularity,
        budget,
        holes.clone(),
        by_share,
        fresh,
    );
    let b = plan_ranked(blocks, own, granularity, budget, holes, by_live, fresh);
    let better_b =
        (released(&b), std::cmp::Reverse(b.bytes)) > (released(&a), std::cmp::Reverse(a.bytes));
    Ok(if better_b { b } else { a })
}

/// One pass's plan with blocks ranked `dense` (densest first).
fn plan_ranked(
    blocks: &[PlanBlock],
    own: &[PlanOwn],
    granularity: u64,
    budget: PlanBudget,
    mut holes: Vec<Holes>,
    dense: Vec<usize>,
    fresh: Option<Fresh<'_>>,
) -> Plan {
    let sources = fresh.map(|f| f.sources);
    let fresh = fresh.map(|f| f.index).filter(|&i| i < blocks.len());
    let live = |b: usize| live_of(&blocks[b]);
    let rank: Vec<usize> = {
        let mut rank = vec![0; blocks.len()];
        for (i, &b) in dense.iter().enumerate() {
            rank[b] = i;
        }
        rank
    };
    let mut is_source = vec![false; blocks.len()];
    // Blocks that take moved data are never emptied: what lands there
    // stays.
    let mut received = vec![false; blocks.len()];
    // Blocks that hold a range that may not move are never emptied, so they
    // take data from any source, sparser ones included (no ping-pong:
    // they are never sources themselves).
    let pinned: Vec<bool> = blocks
        .iter()
        .map(|b| b.ranges.iter().any(|r| !r.movable))
        .collect();
    let mut plan = Plan::default();
    let mut moves_left = budget.max_moves;
    let mut bytes_left = budget.max_bytes;
    let align_of = |a: u64| a.max(1).max(granularity);

    // Sparsest first, each block a candidate source once.
    'sources: for &s in dense.iter().rev() {
        let block = &blocks[s];
        if block.ranges.is_empty()
            || block.ranges.iter().any(|r| !r.movable)
            || Some(s) == fresh
            || received[s]
            || sources.is_some_and(|only| !only.contains(&s))
        {
            continue;
        }
        let mut ranges: Vec<&PlanRange> = block.ranges.iter().collect();
        ranges.sort_by_key(|r| (std::cmp::Reverse(r.size), r.offset));
        let saved = (holes.clone(), received.clone());
        let (saved_moves, saved_bytes, saved_count) = (plan.moves.len(), bytes_left, moves_left);
        for r in ranges {
            if moves_left == 0 || r.size > bytes_left {
                // Out of budget inside this block: keep what is planned.
                is_source[s] = true;
                break 'sources;
            }
            let place = dense
                .iter()
                .filter(|&&d| {
                    d != s && !is_source[d] && Some(d) != fresh && (rank[d] < rank[s] || pinned[d])
                })
                .chain(fresh.iter())
                .find_map(|&d| holes[d].find(r.size, align_of(r.alignment)).map(|h| (d, h)));
            let Some((d, (i, at))) = place else {
                // No room for all of it: undo this block's moves.
                (holes, received) = saved;
                plan.moves.truncate(saved_moves);
                (bytes_left, moves_left) = (saved_bytes, saved_count);
                continue 'sources;
            };
            holes[d].take(i, at, r.size);
            received[d] = true;
            plan.moves.push(PlannedMove {
                key: r.key,
                from: MoveSource::Block {
                    block: s,
                    offset: r.offset,
                },
                block: d,
                offset: at,
                size: r.size,
            });
            bytes_left -= r.size;
            moves_left -= 1;
        }
        is_source[s] = true;
        plan.emptied_blocks.push(s);
    }

    let mut own: Vec<&PlanOwn> = own.iter().collect();
    own.sort_by_key(|o| (std::cmp::Reverse(o.size), o.key));
    for o in own {
        if moves_left == 0 || o.size > bytes_left || o.size == 0 {
            continue;
        }
        let place = dense
            .iter()
            .filter(|&&d| !is_source[d])
            .find_map(|&d| holes[d].find(o.size, align_of(o.alignment)).map(|h| (d, h)));
        if let Some((d, (i, at))) = place {
            holes[d].take(i, at, o.size);
            plan.moves.push(PlannedMove {
                key: o.key,
                from: MoveSource::OwnMemory,
                block: d,
                offset: at,
                size: o.size,
            });
            bytes_left -= o.size;
            moves_left -= 1;
        }
    }
    // Nothing could be emptied or packed: compact instead, so that the next
    // pass finds room. Ranges of the densest blocks move down into holes
    // below them in the same block, which gathers their free space at the
    // end. Only worth it when the blocks kept could hold the sparsest
    // movable block once their holes are gathered.
    if plan.moves.is_empty() {
        let sparsest =
            dense.iter().rev().copied().find(|&b| {
                !blocks[b].ranges.is_empty() && blocks[b].ranges.iter().all(|r| r.movable)
            });
        if let Some(sparsest) = sparsest {
            let free: u64 = dense
                .iter()
                .filter(|&&d| d != sparsest)
                .flat_map(|&d| holes[d].0.iter().map(|h| h.1))
                .sum();
            if free >= live(sparsest) {
                compact(
                    blocks,
                    &dense,
                    sparsest,
                    &mut holes,
                    align_of,
                    &mut plan,
                    &mut bytes_left,
                    &mut moves_left,
                );
            }
        }
    }
    plan.bytes = budget.max_bytes - bytes_left;
    plan
}

/// Moves movable ranges of every block but `skip`, densest block first and
/// highest range first, into the lowest hole below them in their own block.
#[allow(clippy::too_many_arguments)]
fn compact(
    blocks: &[PlanBlock],
    dense: &[usize],
    skip: usize,
    holes: &mut [Holes],
    align_of: impl Fn(u64) -> u64,
    plan: &mut Plan,
    bytes_left: &mut u64,
    moves_left: &mut u32,
) {
    for &d in dense.iter().filter(|&&d| d != skip) {
        let mut ranges: Vec<&PlanRange> = blocks[d].ranges.iter().filter(|r| r.movable).collect();
        ranges.sort_by_key(|r| std::cmp::Reverse(r.offset));
        for r in ranges {
            if *moves_left == 0 || r.size > *bytes_left {
                return;
            }
            let Some((i, at)) = holes[d].find(r.size, align_of(r.alignment)) else {
                continue;
            };
            if at + r.size > r.offset {
                // The lowest fitting hole is not below the range.
                continue;
            }
            holes[d].take(i, at, r.size);
            plan.moves.push(PlannedMove {
                key: r.key,
                from: MoveSource::Block {
                    block: d,
                    offset: r.offset,
                },
                block: d,
                offset: at,
                size: r.size,
            });
            *bytes_left -= r.size;
            *moves_left -= 1;
        }
    }
}

/// Sizes a block for the live ranges of the sparsest blocks (see the
/// [module docs](self)): `None` when no such block gives back more than
/// it takes within `budget`, or none fits `max_size`.
///
/// Sources are the blocks whose ranges all may move, sparsest first by the
/// share of the block that is live, taken while their live bytes and
/// ranges fit the budget, each while emptying it gives back at least 1/16
/// of what it copies (a pass that copies 64 MiB to give back less than
/// 4 MiB is not worth it; each range may need its alignment beyond the
/// granularity as padding). The block is then sized to what
/// [`plan_pass_into`] places in it, a multiple of the granularity: holes of
/// denser blocks take what they can first. `None` too when the pass would
/// place nothing there, or give back no more than the block.
pub fn plan_new_block(
    blocks: &[PlanBlock],
    granularity: u64,
    budget: PlanBudget,
    max_size: u64,
) -> Result<Option<NewBlock>, PlanError> {
    holes_of(blocks, &[], granularity)?;
    let mut new = NewBlock {
        size: 0,
        sources: Vec::new(),
        live: 0,
        released: 0,
    };
    let mut moves = 0u64;
    for s in by_share(blocks).into_iter().rev() {
        let block = &blocks[s];
        if block.ranges.is_empty() || block.ranges.iter().any(|r| !r.movable) {
            continue;
        }
        // Each range ends at most its size (rounded to the granularity)
        // plus its alignment beyond the granularity past the highest end so
        // far, whichever hole first fit picks.
        let worst: u64 = block
            .ranges
            .iter()
            .map(|r| {
                r.size
                    .checked_next_multiple_of(granularity)
                    .unwrap_or(u64::MAX)
                    .saturating_add(r.alignment.max(granularity) - granularity)
            })
            .fold(0u64, u64::saturating_add);
        let live = live_of(block);
        let size = new.size.saturating_add(worst);
        let gain = block.size.saturating_sub(worst);
        if new.live.saturating_add(live) > budget.max_bytes
            || moves + block.ranges.len() as u64 > u64::from(budget.max_moves)
            || size > max_size
            || gain == 0
            || gain.saturating_mul(16) < live
        {
            // Denser blocks give back less per byte copied.
            break;
        }
        moves += block.ranges.len() as u64;
        new.sources.push(s);
        new.live += live;
        new.released += block.size;
        new.size = size;
    }
    if new.sources.is_empty() {
        return Ok(None);
    }
    // The pass into a block of the worst-case size, to size the block to
    // what it places there: first fit places the same way in a block that
    // ends right after its highest range.
    let mut with_fresh = blocks.to_vec();
    with_fresh.push(PlanBlock {
        size: new.size,
        ranges: Vec::new(),
    });
    let fresh = Fresh {
        index: blocks.len(),
        sources: &new.sources,
    };
    let plan = plan_with(&with_fresh, &[], granularity, budget, Some(fresh))?;
    let used = plan
        .moves
        .iter()
        .filter(|m| m.block == fresh.index)
        .map(|m| m.offset + m.size)
        .max()
        .unwrap_or(0)
        .checked_next_multiple_of(granularity)
        .unwrap_or(u64::MAX);
    let released = plan.released(&with_fresh);
    if used == 0 || released <= used {
        return Ok(None);
    }
    new.sources.retain(|b| plan.emptied_blocks.contains(b));
    new.size = used;
    new.live = new.sources.iter().map(|&b| live_of(&blocks[b])).sum();
    new.released = released;
    Ok(Some(new))
}
