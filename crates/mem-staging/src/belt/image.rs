//! Image uploads, whole or by mip levels and array layers. Each upload is
//! ordered after earlier work on the image and transitions from the layout
//! the image is in ([`mem_resources::ImageLayouts`]); the open batch's
//! [`super::pending_images`] make the batch's end transition each
//! subresource once.

use super::*;

/// True when an image with `usage` may be transitioned to `layout`
/// (VUID-VkImageMemoryBarrier-oldLayout-01208..01212 and friends).
pub(super) fn layout_allowed(layout: vk::ImageLayout, usage: vk::ImageUsageFlags) -> bool {
    use vk::ImageLayout as L;
    use vk::ImageUsageFlags as U;
    match layout {
        L::UNDEFINED | L::PREINITIALIZED => false,
        L::TRANSFER_SRC_OPTIMAL => usage.contains(U::TRANSFER_SRC),
        L::TRANSFER_DST_OPTIMAL => usage.contains(U::TRANSFER_DST),
        L::SHADER_READ_ONLY_OPTIMAL => usage.intersects(U::SAMPLED | U::INPUT_ATTACHMENT),
        L::COLOR_ATTACHMENT_OPTIMAL => usage.contains(U::COLOR_ATTACHMENT),
        L::DEPTH_STENCIL_ATTACHMENT_OPTIMAL
        | L::DEPTH_STENCIL_READ_ONLY_OPTIMAL
        | L::DEPTH_ATTACHMENT_OPTIMAL
        | L::DEPTH_READ_ONLY_OPTIMAL
        | L::STENCIL_ATTACHMENT_OPTIMAL
        | L::STENCIL_READ_ONLY_OPTIMAL
        | L::DEPTH_READ_ONLY_STENCIL_ATTACHMENT_OPTIMAL
        | L::DEPTH_ATTACHMENT_STENCIL_READ_ONLY_OPTIMAL => {
            usage.contains(U::DEPTH_STENCIL_ATTACHMENT)
        }
        _ => true,
    }
}

impl StagingBelt {
    /// Uploads every mip level and array layer of `dst` from `data` (laid out
    /// as [`crate::plan`] describes: level-major, tightly packed) and leaves
    /// the image in `final_layout`. The image's previous contents are
    /// discarded (the upload starts from `UNDEFINED`), after every earlier
    /// upload to it and, on the belt's queue, every earlier use of it.
    ///
    /// Uploads to one image are ordered: a later upload in the same batch
    /// waits for the earlier one's copies, and the batch's end transitions
    /// each subresource once, to the last final layout asked for. The layout
    /// each subresource is left in is recorded in [`Image::layouts`].
    #[doc(alias = "vkCmdCopyBufferToImage")]
    pub fn upload_image(
        &mut self,
        dst: &Image,
        data: &[u8],
        final_layout: vk::ImageLayout,
    ) -> Result<Ticket, StagingError> {
        self.upload_image_inner(
            dst,
            ImageSubresources::all(),
            true,
            data.len() as u64,
            Source::Bytes(data),
            final_layout,
        )
    }

    /// Uploads mip levels and array layers `subresources` of `dst` from
    /// `data` (laid out as [`crate::plan`] describes, over those levels and
    /// layers only: see [`crate::plan::expected_subresources_data_size`]) and
    /// leaves them in `final_layout`. The other subresources keep their
    /// contents and layouts.
    ///
    /// The written subresources are transitioned from the layout
    /// [`Image::layouts`] says they are in: the one an earlier upload left,
    /// or the one the engine recorded with
    /// [`mem_resources::ImageLayouts::set_layout`] after transitioning the
    /// image itself. On the belt's queue the transition waits for all earlier
    /// work; an engine that used the image on another queue makes the belt's
    /// next batch wait for that work with [`Self::wait_before_next_batch`].
    ///
    /// An `EXCLUSIVE` image released to the destination family by an earlier
    /// upload is owned by the engine's queue: the engine hands the
    /// subresources back with [`Self::release_image_to_belt`] first, and the
    /// update acquires them; without that the belt refuses with
    /// [`StagingError::OwnedByAnotherFamily`] (a whole-image
    /// [`Self::upload_image`] discards the contents and needs no transfer).
    #[doc(alias = "vkCmdCopyBufferToImage")]
    pub fn upload_image_subresources(
        &mut self,
        dst: &Image,
        subresources: ImageSubresources,
        data: &[u8],
        final_layout: vk::ImageLayout,
    ) -> Result<Ticket, StagingError> {
        self.upload_image_inner(
            dst,
            subresources,
            false,
            data.len() as u64,
            Source::Bytes(data),
            final_layout,
        )
    }

    /// [`Self::upload_image_subresources`] with the data written in place:
    /// `writer(at, bytes)` fills bytes `[at, at + bytes.len())` of the
    /// upload's data (the [`crate::plan`] layout over `subresources`, `len`
    /// bytes in all: [`crate::plan::expected_subresources_data_size`]),
    /// straight into the ring where its row pitch matches the copy's and
    /// through a piece-sized scratch buffer where the device wants padded
    /// rows. Large pieces are split over the copy threads, so `writer` runs
    /// on several threads at once; each byte is asked for once. Level by
    /// level, layer by layer: a transcoder writes each subresource where the
    /// layout puts it. A failing writer is [`StagingError::Source`]; the
    /// subresources written so far keep what reached them and every one of
    /// the box still ends in `final_layout`.
    pub fn upload_image_with<F, E>(
        &mut self,
        dst: &Image,
        subresources: ImageSubresources,
        len: u64,
        final_layout: vk::ImageLayout,
        writer: F,
    ) -> Result<Ticket, StagingError>
    where
        F: Fn(u64, &mut [u8]) -> Result<(), E> + Sync,
        E: Into<SourceError>,
    {
        let write = |at: u64, bytes: &mut [u8]| writer(at, bytes).map_err(Into::into);
        let discard = subresources == ImageSubresources::all();
        self.upload_image_inner(
            dst,
            subresources,
            discard,
            len,
            Source::Shared(&write),
            final_layout,
        )
    }

    /// The checks every image path shares: the belt is usable, the image is
    /// its manager's, has `usage` (one of `TRANSFER_DST`, `TRANSFER_SRC`,
    /// `HOST_TRANSFER_EXT`) and one sample per texel.
    pub(super) fn check_image(
        &self,
        image: &Image,
        usage: vk::ImageUsageFlags,
    ) -> Result<(), StagingError> {
        self.check_usable()?;
        let desc = image.desc();
        self.check_owner(image.owner(), desc.name.as_deref())?;
        if !desc.usage.contains(usage) {
            let (name, has) = (desc.name.clone(), format!("{:?}", desc.usage));
            return Err(match usage {
                vk::ImageUsageFlags::TRANSFER_SRC => {
                    StagingError::MissingTransferSrc { name, usage: has }
                }
                vk::ImageUsageFlags::HOST_TRANSFER_EXT => {
                    StagingError::MissingHostTransfer { name, usage: has }
                }
                _ => StagingError::MissingTransferDst { name, usage: has },
            });
        }
        if desc.samples != vk::SampleCountFlags::TYPE_1 {
            return Err(StagingError::Multisampled {
                name: desc.name.clone(),
                samples: desc.samples.as_raw(),
            });
        }
        Ok(())
    }

    pub(super) fn upload_image_inner(
        &mut self,
        dst: &Image,
        subresources: ImageSubresources,
        discard: bool,
        len: u64,
        mut source: Source<'_>,
        final_layout: vk::ImageLayout,
    ) -> Result<Ticket, StagingError> {
        self.check_image(dst, vk::ImageUsageFlags::TRANSFER_DST)?;
        let desc = dst.desc();
        if len == 0 {
            return Err(StagingError::EmptyData);
        }
        if !layout_allowed(final_layout, desc.usage) {
            return Err(StagingError::LayoutNotAllowed {
                name: desc.name.clone(),
                layout: format!("{final_layout:?}"),
                usage: format!("{:?}", desc.usage),
            });
        }
        let range = resolve_subresources(desc, subresources)?;
        let layout = ImageLayout {
            format: desc.format,
            image_type: desc.kind.image_type(),
            extent: desc.extent,
            mip_levels: desc.mip_levels,
            array_layers: desc.array_layers,
            aspect: None,
        };
        let plan = plan_subresources_upload(
            &layout,
            range.levels(),
            range.layers(),
            len,
            &self.limits,
            self.desc.chunk_size,
        )?;
        let aspect = desc.aspect();
        let image = dst.handle();
        let tracked = dst.layouts();
        // Where each written subresource is now: pending in the open batch
        // (already TRANSFER_DST_OPTIMAL), or in the tracked layout.
        let pending = |belt: &Self, level: u32, layer: u32| {
            belt.open
                .as_ref()
                .and_then(|b| b.images.get(&image))
                .is_some_and(|p| p.is_pending(level, layer))
        };
        if !discard {
            for level in range.levels() {
                for layer in range.layers() {
                    let state = tracked.state(level, layer);
                    if !pending(self, level, layer)
                        && state.layout != vk::ImageLayout::UNDEFINED
                        && state.owner_family != vk::QUEUE_FAMILY_IGNORED
                        && state.owner_family != self.queue.family
                    {
                        return Err(StagingError::OwnedByAnotherFamily {
                            name: desc.name.clone(),
                            level,
                            layer,
                            family: state.owner_family,
                        });
                    }
                }
            }
        }
        let cmd = self.open_batch()?.cmd;
        self.record_pending_copy();
        // Barriers into TRANSFER_DST_OPTIMAL: a subresource pending in this
        // batch needs only a write-after-write dependency; any other waits
        // for all earlier work on the queue (earlier batches' copies and
        // transitions, the engine's use of the image) and transitions from
        // its layout, or from UNDEFINED when the upload discards it.
        // Subresources the engine handed over with `release_image_to_belt`
        // are acquired from its family with the release's layout (also when
        // the upload discards them), then transitioned.
        #[derive(Clone, Copy, PartialEq)]
        enum Start {
            Pending,
            Layout(vk::ImageLayout, Option<vk::ImageLayout>),
        }
        let transfer = self.needs_release(&desc.sharing);
        let belt_family = self.queue.family;
        let mut from = |level: u32, layer: u32| {
            let batch = self.open.as_mut().expect("opened");
            let was_pending = batch
                .images
                .get_mut(&image)
                .is_some_and(|p| p.take(level, layer));
            if was_pending {
                Start::Pending
            } else {
                let state = tracked.state(level, layer);
                let acquire =
                    (transfer && state.owner_family == belt_family).then_some(state.layout);
                if discard {
                    Start::Layout(vk::ImageLayout::UNDEFINED, acquire)
                } else {
                    Start::Layout(state.layout, acquire)
                }
            }
        };
        let mut kinds = Vec::with_capacity(range.level_count as usize * range.layer_count as usize);
        for level in range.levels() {
            for layer in range.layers() {
                kinds.push(from(level, layer));
            }
        }
        let at = |level: u32, layer: u32| {
            let i = (level - range.base_mip_level) as usize * range.layer_count as usize
                + (layer - range.base_array_layer) as usize;
            Some(kinds[i])
        };
        let boxes = group_boxes(
            range.base_mip_level + range.level_count,
            desc.array_layers,
            |l, y| {
                (range.levels().contains(&l) && range.layers().contains(&y))
                    .then(|| at(l, y))
                    .flatten()
            },
        );
        let mut waw = Vec::new();
        let mut acquires = Vec::new();
        let mut transitions = Vec::new();
        for (b, kind) in boxes {
            let barrier = vk::ImageMemoryBarrier::default()
                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                .image(image)
                .subresource_range(b.to_vk(aspect))
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .new_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL);
            match kind {
                Start::Pending => {
                    waw.push(barrier.old_layout(vk::ImageLayout::TRANSFER_DST_OPTIMAL))
                }
                Start::Layout(old, acquire) => {
                    if let Some(released) = acquire {
                        // One by one, with the release's layouts; the
                        // transition follows.
                        for one in super::download::single_subresources(&b) {
                            acquires.push(
                                barrier
                                    .subresource_range(one.to_vk(aspect))
                                    .src_access_mask(vk::AccessFlags::empty())
                                    .old_layout(released)
                                    .new_layout(released)
                                    .src_queue_family_index(self.destination_family)
                                    .dst_queue_family_index(belt_family),
                            );
                        }
                    }
                    transitions.push(
                        barrier
                            .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                            .old_layout(old),
                    )
                }
            }
        }
        for (src_stage, dst_stage, barriers) in [
            (
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::TRANSFER,
                &waw,
            ),
            (
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::ALL_COMMANDS,
                &acquires,
            ),
            (
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::TRANSFER,
                &transitions,
            ),
        ] {
            if barriers.is_empty() {
                continue;
            }
            // SAFETY: `cmd` is recording; the image is alive.
            unsafe {
                self.device.cmd_pipeline_barrier(
                    cmd,
                    src_stage,
                    dst_stage,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    barriers,
                )
            };
        }
        self.open.as_mut().expect("opened").has_work = true;
        let mut closed = None;
        let staged = self.stage_image_copies(image, &plan, len, &mut source, &mut closed);
        // As in `stage_range`: a closed batch always reaches the queue.
        let staged = match closed {
            Some(b) => staged.and(self.queue_submit(b)),
            None => staged,
        };
        // The subresources are in TRANSFER_DST_OPTIMAL now (even when staging
        // failed part way): whichever batch is open takes their transition to
        // the final layout, so the tracked layout stays true.
        let release = self.needs_release(&desc.sharing);
        let batch = match self.open_batch() {
            Ok(b) => b,
            Err(e) => return Err(staged.err().unwrap_or(e)),
        };
        batch
            .images
            .entry(image)
            .or_insert_with(|| PendingImage::new(aspect, desc.mip_levels, desc.array_layers))
            .put(
                &range,
                Final {
                    layout: final_layout,
                    release,
                },
            );
        batch.has_work = true;
        let value = batch.value;
        tracked.set_state(
            subresources,
            SubresourceState {
                layout: final_layout,
                owner_family: if release {
                    self.destination_family
                } else {
                    vk::QUEUE_FAMILY_IGNORED
                },
            },
        );
        staged?;
        self.stats.uploads += 1;
        Ok(Ticket {
            belt: self.id,
            value,
        })
    }

    /// The copies of an image upload's plan, through the ring (see
    /// [`Self::stage_pieces`] for `closed`).
    ///
    /// Consecutive copies whose bytes lie end to end both in the caller's
    /// data and in staging (tight rows, sizes that keep the next copy
    /// aligned) are filled as one run of at most a chunk: a texture's small
    /// mips are then written by the copy threads in one go instead of one
    /// level at a time on the calling thread.
    pub(super) fn stage_image_copies(
        &mut self,
        image: vk::Image,
        plan: &crate::plan::ImagePlan,
        len: u64,
        source: &mut Source<'_>,
        closed: &mut Option<ClosedBatch>,
    ) -> Result<(), StagingError> {
        let ring_handle = self.ring_buffer.as_ref().expect("ring lives").handle();
        debug_assert!(len > 0);
        // A run as large as a chunk counts as large even when the ring is
        // too small for the threshold.
        let large = self.desc.parallel_copy_threshold.min(self.desc.chunk_size);
        let copies = &plan.copies;
        let mut i = 0;
        while i < copies.len() {
            let (end, run_len) = copy_run(copies, i, plan.staging_alignment, self.desc.chunk_size);
            let threads = if run_len >= large {
                self.desc.copy_threads
            } else {
                1
            };
            let offset = self.reserve_beside(run_len, plan.staging_alignment, closed)?;
            let first = &copies[i];
            let filled = if first.is_contiguous() {
                self.fill_ring(
                    offset,
                    run_len,
                    source,
                    first.src_offset,
                    threads,
                    closed.take(),
                )
            } else {
                debug_assert_eq!(end, i + 1, "a padded copy is a run of its own");
                if let Some(b) = closed.take() {
                    self.queue_submit(b)?;
                }
                // Padded rows: the piece's bytes as the data lays them out,
                // then row by row into the ring.
                let staging = self.ring_slice(offset, first.staging_size);
                match source {
                    Source::Bytes(data) => {
                        first.write_into(data, staging);
                        Ok(())
                    }
                    _ => {
                        let mut scratch = vec![0u8; first.src_span() as usize];
                        let local = crate::plan::PlannedCopy {
                            src_offset: 0,
                            ..*first
                        };
                        source
                            .fill(first.src_offset, &mut scratch, threads, false)
                            .map(|()| local.write_into(&scratch, staging))
                            .map_err(StagingError::Source)
                    }
                }
            };
            if let Err(e) = filled {
                self.undo_last_reserve();
                return Err(e);
            }
            let regions: SmallVec<[vk::BufferImageCopy; 16]> = copies[i..end]
                .iter()
                .map(|c| {
                    let mut region = c.region;
                    // Runs lie end to end in the data and in staging.
                    region.buffer_offset += offset + (c.src_offset - first.src_offset);
                    region
                })
                .collect();
            let batch = self.open.as_mut().expect("reserve opened a batch");
            // SAFETY: recording; ring range reserved for this batch; every
            // region was planned inside the image's subresources and lies
            // inside the run's reserved range; the image is in
            // TRANSFER_DST_OPTIMAL (barrier above, earlier in this or a
            // previous batch on the same queue).
            unsafe {
                self.device.cmd_copy_buffer_to_image(
                    batch.cmd,
                    ring_handle,
                    image,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    &regions,
                )
            };
            batch.has_work = true;
            batch.bytes += run_len;
            self.stats.copy_commands += 1;
            self.stats.bytes_staged += run_len;
            i = end;
            if batch.bytes >= self.desc.auto_submit_bytes {
                let more = i < copies.len();
                if more && self.desc.overlap_submit && threads > 1 {
                    *closed = self.close_open()?;
                } else {
                    self.submit_open()?;
                }
            }
        }
        Ok(())
    }
}

/// The run of copies from `copies[start]` that one ring reservation and one
/// fill take: `(end, bytes)`, with `copies[start..end]` lying end to end in
/// the caller's data and in staging (each contiguous, every copy but the
/// first starting at a multiple of `alignment` from the run's start), in at
/// most `max_bytes` (the first copy alone may be larger). A copy with
/// padded rows is a run of its own.
fn copy_run(
    copies: &[crate::plan::PlannedCopy],
    start: usize,
    alignment: u64,
    max_bytes: u64,
) -> (usize, u64) {
    let first = &copies[start];
    let mut bytes = first.staging_size;
    let mut end = start + 1;
    if !first.is_contiguous() {
        return (end, bytes);
    }
    while let Some(next) = copies.get(end) {
        let joins = next.is_contiguous()
            && next.src_offset == first.src_offset + bytes
            && bytes % alignment == 0
            && bytes + next.staging_size <= max_bytes;
        if !joins {
            break;
        }
        bytes += next.staging_size;
        end += 1;
    }
    (end, bytes)
}

/// `subresources` checked against the image `desc` describes.
pub(super) fn resolve_subresources(
    desc: &mem_resources::ImageDesc,
    subresources: ImageSubresources,
) -> Result<mem_resources::ResolvedSubresources, StagingError> {
    subresources
        .resolve(desc.mip_levels, desc.array_layers)
        .ok_or_else(|| StagingError::SubresourcesOutOfRange {
            name: desc.name.clone(),
            subresources,
            mip_levels: desc.mip_levels,
            array_layers: desc.array_layers,
        })
}

#[cfg(test)]
mod tests {
    use super::copy_run;
    use crate::plan::{expected_data_size, plan_image_upload, CopyLimits, ImageLayout};
    use ash::vk;

    fn rgba8(width: u32, height: u32, mips: u32) -> ImageLayout {
        ImageLayout {
            format: vk::Format::R8G8B8A8_UNORM,
            image_type: vk::ImageType::TYPE_2D,
            extent: vk::Extent3D {
                width,
                height,
                depth: 1,
            },
            mip_levels: mips,
            array_layers: 1,
            aspect: None,
        }
    }

    /// Every run of a plan, in order: `(first, end, bytes)`.
    fn runs(plan: &crate::plan::ImagePlan, max: u64) -> Vec<(usize, usize, u64)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < plan.copies.len() {
            let (end, bytes) = copy_run(&plan.copies, i, plan.staging_alignment, max);
            assert!(end > i);
            out.push((i, end, bytes));
            i = end;
        }
        out
    }

    #[test]
    fn small_mips_join_one_run_up_to_the_limit() {
        let layout = rgba8(2048, 2048, 12);
        let len = expected_data_size(&layout).unwrap();
        let plan = plan_image_upload(&layout, len, &CopyLimits::default(), 16 << 20).unwrap();
        let r = runs(&plan, 16 << 20);
        // Level 0 (16 MiB) alone; levels 1-11 (5.3 MiB) in one run.
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], (0, 1, 16 << 20));
        assert_eq!(r[1].1, plan.copies.len());
        assert_eq!(r[0].2 + r[1].2, len);
        // A smaller limit cuts the tail into more runs, none above it
        // unless one copy alone is.
        for (first, end, bytes) in runs(&plan, 1 << 20) {
            assert!(
                bytes <= 1 << 20 || end == first + 1,
                "{first}..{end}: {bytes}"
            );
        }
    }

    #[test]
    fn padded_rows_and_misaligned_ends_break_runs() {
        // Rows of 3 texels padded to a 64-byte pitch: every level is a run
        // of its own.
        let layout = rgba8(3, 300, 3);
        let limits = CopyLimits {
            optimal_buffer_copy_offset_alignment: 64,
            optimal_buffer_copy_row_pitch_alignment: 64,
            ..CopyLimits::default()
        };
        let len = expected_data_size(&layout).unwrap();
        let plan = plan_image_upload(&layout, len, &limits, 16 << 20).unwrap();
        assert!(plan.copies.iter().all(|c| !c.is_contiguous()));
        assert!(runs(&plan, 16 << 20).iter().all(|&(f, e, _)| e == f + 1));

        // Tight rows but a level whose size is no multiple of the 64-byte
        // alignment: the next level cannot start right after it.
        let layout = rgba8(15, 5, 2);
        let limits = CopyLimits {
            optimal_buffer_copy_offset_alignment: 64,
            ..CopyLimits::default()
        };
        let len = expected_data_size(&layout).unwrap();
        let plan = plan_image_upload(&layout, len, &limits, 16 << 20).unwrap();
        assert!(plan.copies.iter().all(|c| c.is_contiguous()));
        assert_ne!(plan.copies[0].staging_size % 64, 0);
        assert_eq!(runs(&plan, 16 << 20).len(), 2);
    }
}
