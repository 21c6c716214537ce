//! Debug margins (VMA's `VMA_DEBUG_MARGIN` + `VMA_DEBUG_DETECT_CORRUPTION`,
//! see [`AllocatorConfig::debug_margin`]): the canary, its layout around a
//! request, the host's fill and check through the mapping, and the listing,
//! marking and reporting of margins only the GPU can reach for an external
//! checker such as `mem_staging::margins::MarginChecker`.
//!
//! Layout: the placed range is `[front margin | request | back margin]`;
//! the front margin is a multiple of 16 rounded up to the request's
//! alignment, and starts on a minimum block. Byte `p` of a `VkDeviceMemory`
//! inside a margin holds `CANARY[p % 4]`. Margins left to the GPU have a
//! back margin starting at a multiple of 4 (what `vkCmdFillBuffer` needs);
//! the host never fills or reads them.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::*;
use crate::stats::DeviceMargin;

/// The debug-margin canary, little-endian: byte `p` of a `VkDeviceMemory`
/// inside a margin holds `CANARY[p % 4]`.
const CANARY: [u8; 4] = 0x7F84_E666u32.to_le_bytes();

impl Allocator {
    /// Logs (error level), counts and keeps (the first 1024) a damaged
    /// margin.
    pub(super) fn record_corruption(&self, report: CorruptionReport) {
        log::error!("{report}");
        self.corruptions.fetch_add(1, Ordering::Relaxed);
        let mut log = self.corruption_log.lock();
        if log.len() < 1024 {
            log.push(report);
        }
    }

    /// Checks the debug margins of every live allocation (see
    /// [`AllocatorConfig::debug_margin`]); `Ok` when margins are off. Every
    /// damaged margin is logged (error level), counted and kept; the first is
    /// returned.
    #[doc(alias = "vmaCheckCorruption")]
    pub fn check_corruption(&self) -> Result<(), CorruptionReport> {
        if self.margin == 0 {
            return Ok(());
        }
        let mut first = None;
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for cp in &pool.classes {
                let live: Vec<(usize, u32, u64)> = cp
                    .placer
                    .slots()
                    .into_iter()
                    .flat_map(|slot| {
                        cp.placer
                            .block_live(slot)
                            .filter(|(_, _, _, m)| m.front() > 0)
                            .map(move |(h, o, _, _)| (slot, h, o))
                    })
                    .collect();
                for (slot, handle, inner) in live {
                    if let Some(r) = check_block_margins(cp, slot, t as u32, handle, inner) {
                        self.record_corruption(r.clone());
                        first.get_or_insert(r);
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Every corrupted margin found so far (on free or by
    /// [`Self::check_corruption`]), oldest first, at most 1024.
    pub fn corruption_reports(&self) -> Vec<CorruptionReport> {
        self.corruption_log.lock().clone()
    }

    /// True when the margins of sub-allocations in `type_index` are left to
    /// a GPU checker rather than written and read through the mapping.
    pub(super) fn margins_on_gpu(&self, type_index: u32) -> bool {
        self.config.debug_margin_gpu_checked || !self.is_host_visible(type_index)
    }

    /// `(front margin, placed range size)` of a request of `size` bytes in
    /// `type_index`; `(0, size)` without margins; `None` on overflow. GPU
    /// margins round the request up to 4 so the back margin starts at a
    /// multiple of 4 (`vkCmdFillBuffer` needs `dstOffset % 4 == 0`); the
    /// front margin is a multiple of 16 and starts on a minimum block.
    pub(super) fn margin_layout(
        &self,
        type_index: u32,
        size: u64,
        alignment: u64,
    ) -> Option<(u64, u64)> {
        if self.margin == 0 {
            return Some((0, size));
        }
        let front = self.margin.checked_next_multiple_of(alignment)?;
        let body = if self.margins_on_gpu(type_index) {
            size.checked_next_multiple_of(4)?
        } else {
            size
        };
        Some((front, body.checked_add(front)?.checked_add(self.margin)?))
    }

    /// Every debug margin the host does not fill or check, two per live
    /// sub-allocation (front and back), in no particular order; empty when
    /// [`AllocatorConfig::debug_margin`] is 0. Takes each memory type's lock
    /// in turn: allocations made or freed meanwhile on other threads may or
    /// may not appear.
    pub fn device_margins(&self) -> Vec<DeviceMargin> {
        let mut out = Vec::new();
        if self.margin == 0 {
            return out;
        }
        for (t, pool) in self.pools.iter().enumerate() {
            let pool = pool.lock();
            for cp in &pool.classes {
                for (slot, b) in cp.blocks.iter().enumerate() {
                    let Some(b) = b else { continue };
                    for (_, inner, kept, meta) in cp.placer.block_live(slot) {
                        if meta.device_margin() == 0 {
                            continue;
                        }
                        let user = inner + meta.front();
                        let back = user + meta.requested.next_multiple_of(4);
                        for (side, offset, end) in
                            [("before", inner, user), ("after", back, inner + kept)]
                        {
                            out.push(DeviceMargin {
                                memory: b.memory,
                                block_id: b.id,
                                memory_size: b.size,
                                memory_type_index: t as u32,
                                offset,
                                size: end - offset,
                                side,
                                allocation_id: meta.device_margin(),
                                allocation_offset: user,
                                allocation_size: meta.requested,
                                name: meta.name(),
                                filled: meta.device_margin_filled(),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Records that a GPU checker wrote the canary into the margins of the
    /// allocations of `margins` (matched by [`DeviceMargin::allocation_id`],
    /// so an allocation freed meanwhile is skipped, even if a new one took
    /// its place). Returns how many live allocations were marked.
    pub fn mark_device_margins_filled(&self, margins: &[DeviceMargin]) -> usize {
        let mut by_block: ahash::AHashMap<u64, ahash::AHashSet<u64>> = ahash::AHashMap::new();
        let mut types = Vec::new();
        for m in margins {
            by_block
                .entry(m.block_id)
                .or_default()
                .insert(m.allocation_id);
            types.push(m.memory_type_index);
        }
        types.sort_unstable();
        types.dedup();
        let mut marked = 0;
        for t in types {
            let Some(pool) = self.pools.get(t as usize) else {
                continue;
            };
            let mut pool = pool.lock();
            for cp in pool.classes.iter_mut() {
                for slot in 0..cp.blocks.len() {
                    let Some(ids) = cp.blocks[slot].as_ref().and_then(|b| by_block.get(&b.id))
                    else {
                        continue;
                    };
                    let live: Vec<(u32, u64)> = cp
                        .placer
                        .block_live(slot)
                        .filter(|(_, _, _, m)| {
                            ids.contains(&m.device_margin()) && !m.device_margin_filled()
                        })
                        .map(|(h, o, _, _)| (h, o))
                        .collect();
                    for (h, o) in live {
                        if let Some(extra) =
                            cp.placer.get_mut(slot, h, o).and_then(|m| m.extra.as_mut())
                        {
                            extra.device_margin_filled = true;
                            marked += 1;
                        }
                    }
                }
            }
        }
        marked
    }

    /// Reports damage a GPU checker found in `margin` (the first differing
    /// byte at `corrupted_offset` of the memory): logged, counted in
    /// [`crate::stats::TotalStats::corruptions_detected`] and kept for
    /// [`Self::corruption_reports`], like the host check's findings. Returns
    /// the report, or `None` (nothing recorded) when the allocation was
    /// freed since the margin was listed.
    pub fn report_device_corruption(
        &self,
        margin: &DeviceMargin,
        corrupted_offset: u64,
    ) -> Option<CorruptionReport> {
        let live = {
            let pool = self.pools.get(margin.memory_type_index as usize)?.lock();
            pool.classes.iter().any(|cp| {
                cp.blocks.iter().enumerate().any(|(slot, b)| {
                    b.as_ref().is_some_and(|b| b.id == margin.block_id)
                        && cp
                            .placer
                            .block_live(slot)
                            .any(|(_, _, _, m)| m.device_margin() == margin.allocation_id)
                })
            })
        };
        if !live {
            return None;
        }
        let report = CorruptionReport {
            name: margin.name.clone(),
            memory_type_index: margin.memory_type_index,
            offset: margin.allocation_offset,
            size: margin.allocation_size,
            side: margin.side,
            corrupted_offset,
        };
        self.report_corruption(report.clone());
        Some(report)
    }

    /// Records a corrupted margin found by an external checker: logged
    /// (error level), counted in [`crate::stats::TotalStats::corruptions_detected`]
    /// and kept for [`Self::corruption_reports`].
    pub fn report_corruption(&self, report: CorruptionReport) {
        self.record_corruption(report);
    }
}

/// Writes the canary into `[start, user_start)` and `[user_end, end)` of a
/// mapped block.
///
/// # Safety
/// `base` maps at least `end` bytes, and the ranges are exclusively ours.
pub(super) unsafe fn fill_canary(
    base: NonNull<u8>,
    start: u64,
    front: u64,
    user_end: u64,
    end: u64,
) {
    for range in [start..start + front, user_end..end] {
        for p in range {
            // SAFETY: `p < end`, inside the mapping (caller's contract).
            unsafe {
                base.as_ptr()
                    .add(p as usize)
                    .write(CANARY[(p % 4) as usize])
            };
        }
    }
}

/// Checks the margins of the live placed range at `inner` of block `slot`.
pub(super) fn check_block_margins(
    cp: &ClassPool,
    slot: usize,
    memory_type_index: u32,
    handle: u32,
    inner: u64,
) -> Option<CorruptionReport> {
    let (kept, meta) = cp.placer.get(slot, handle, inner)?;
    if meta.device_margin() != 0 {
        return None; // the GPU checker's (the host never filled them)
    }
    let mapped = cp.blocks.get(slot)?.as_ref()?.mapped?;
    let user = inner + meta.front();
    let user_end = user + meta.requested;
    for (side, range) in [("before", inner..user), ("after", user_end..inner + kept)] {
        for p in range {
            // SAFETY: `p < inner + kept <= block.size`: inside the mapping.
            // The margins belong to the allocator; a racing GPU or host write
            // into them is exactly the bug this reports, and a byte read
            // cannot tear.
            let byte = unsafe { mapped.0.as_ptr().add(p as usize).read_volatile() };
            if byte != CANARY[(p % 4) as usize] {
                return Some(CorruptionReport {
                    name: meta.name(),
                    memory_type_index,
                    offset: user,
                    size: meta.requested,
                    side,
                    corrupted_offset: p,
                });
            }
        }
    }
    None
}
