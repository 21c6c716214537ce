//! Defragmentation on the transfer queue: the belt plans a pass with the
//! allocator, creates each moved resource at its planned place, records
//! the GPU copies (`vkCmdCopyBuffer`, `vkCmdCopyImage` of every level and
//! layer, layouts preserved) into one batch and submits it; the engine
//! swaps its handles and retires the old resources after the batch's
//! timeline value.
//!
//! The call order and what moves are on [`DefragmentationPass`].

use mem_core::{DefragmentationBudget, DefragmentationStats};
use mem_resources::{ImageDesc, Resource, ResourceRef, TimelinePoint};

use super::*;

/// One move of a pass: the resource the engine offered at `index` now has
/// a copy in `resource`, at its new place.
#[derive(Debug)]
pub struct ResourceMove {
    /// Index of the moved resource in the slice given to
    /// [`StagingBelt::begin_defragmentation`].
    pub index: usize,
    /// Its replacement: same desc, same contents once the pass's ticket
    /// completes, image layouts as the old one's.
    pub resource: Resource,
}

/// A submitted defragmentation pass: its moves, the ticket of its copies
/// and the point after which the old resources may go.
///
/// # Call order
/// 1. [`StagingBelt::begin_defragmentation`] with the resources the engine
///    lets move and a [`DefragmentationBudget`]: the pass is planned,
///    every new resource created and bound, every copy recorded and
///    submitted. On error nothing of the pass is left and every offered
///    resource is as it was.
/// 2. The engine waits for [`DefragmentationPass::ticket`] (on the host
///    with [`StagingBelt::wait`], or on its queue through
///    [`StagingBelt::semaphore_wait`]).
/// 3. For each [`ResourceMove`] it puts [`ResourceMove::resource`] where it
///    kept the resource at [`ResourceMove::index`] (descriptors, views,
///    handles), and retires the old one with
///    [`ResourceManager::retire_moved`] after
///    [`DefragmentationPass::retire_point`] and its own frames that may
///    still use it. [`ResourceManager::collect`] then destroys it and gives
///    its memory back: emptied blocks go back to the device.
///
/// Or, instead of 3, [`StagingBelt::cancel_defragmentation`] waits for
/// the copies and destroys the new resources; the old ones stay in use.
///
/// gpumem's guide page `gpumem::guide::defragmentation` has these steps as
/// a compiled example.
///
/// # What moves
/// Only what the engine offers, and of that only resources in
/// [`MemoryUsage::GpuOnly`] memory (the engine may hold a mapped pointer
/// into any other), with both `TRANSFER_SRC` and `TRANSFER_DST` usage
/// (the copy reads the old one and writes the new one, made from the same
/// desc), not pinned ([`mem_core::AllocationFlags::PINNED`]) and not in a
/// Vulkan dedicated allocation; the rest are skipped. An `EXCLUSIVE`
/// resource on a belt whose family differs from the engine's is refused
/// with [`StagingError::MoveNeedsOwnershipTransfer`].
///
/// # Ordering
/// The copies run after every earlier batch of the belt and after the
/// engine semaphores given to [`StagingBelt::wait_before_next_batch`]. The
/// engine must not write an offered resource from begin until it retires
/// it (reads are fine: the data stays in both).
#[derive(Debug)]
#[must_use = "the moved resources must be swapped in, or the pass cancelled"]
pub struct DefragmentationPass {
    moves: Vec<ResourceMove>,
    ticket: Ticket,
    semaphore: vk::Semaphore,
    stats: DefragmentationStats,
}

impl DefragmentationPass {
    /// The moves.
    pub fn moves(&self) -> &[ResourceMove] {
        &self.moves
    }

    /// True when nothing moved: the offered resources are as compact as
    /// the budget allows.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// Completes when every copy of the pass is done.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// The point after which the belt no longer uses the old resources:
    /// retire them after it (and after the engine's own last use).
    pub fn retire_point(&self) -> TimelinePoint {
        TimelinePoint::new(self.semaphore, self.ticket.value)
    }

    /// What the pass moves and the memory it gives back once the old
    /// resources are collected.
    pub fn stats(&self) -> DefragmentationStats {
        self.stats
    }

    /// The moves, to swap in.
    pub fn into_moves(self) -> Vec<ResourceMove> {
        self.moves
    }
}

/// An image's subresources grouped by their tracked layout, leaving out
/// `UNDEFINED` ones (nothing to keep there).
fn layout_boxes(image: &Image) -> Vec<(mem_resources::ResolvedSubresources, SubresourceState)> {
    let desc = image.desc();
    let tracked = image.layouts();
    group_boxes(desc.mip_levels, desc.array_layers, |l, y| {
        let s = tracked.state(l, y);
        (s.layout != vk::ImageLayout::UNDEFINED).then_some((s.layout, s.owner_family))
    })
    .into_iter()
    .map(|(b, (layout, owner_family))| {
        (
            b,
            SubresourceState {
                layout,
                owner_family,
            },
        )
    })
    .collect()
}

fn level_extent(desc: &ImageDesc, level: u32) -> vk::Extent3D {
    vk::Extent3D {
        width: (desc.extent.width >> level).max(1),
        height: (desc.extent.height >> level).max(1),
        depth: (desc.extent.depth >> level).max(1),
    }
}

impl StagingBelt {
    /// Plans a defragmentation pass over `candidates`, creates each moved
    /// resource at its new place, records and submits the copies (step 1
    /// of the [call order](DefragmentationPass#call-order)). On error every offered resource
    /// is as it was and nothing the pass created is left.
    #[doc(alias = "vmaBeginDefragmentationPass")]
    #[doc(alias = "vkCmdCopyBuffer")]
    #[doc(alias = "vkCmdCopyImage")]
    pub fn begin_defragmentation(
        &mut self,
        candidates: &[ResourceRef<'_>],
        budget: &DefragmentationBudget,
    ) -> Result<DefragmentationPass, StagingError> {
        self.check_usable()?;
        let copy_usage =
            |r: &ResourceRef<'_>| match r {
                ResourceRef::Buffer(b) => b.desc().usage.contains(
                    vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
                ),
                ResourceRef::Image(i) => i.desc().usage.contains(
                    vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::TRANSFER_DST,
                ),
            };
        let mut movable = Vec::new();
        for (i, r) in candidates.iter().enumerate() {
            self.check_owner(r.owner(), r.name())?;
            if r.memory_usage() != MemoryUsage::GpuOnly || !copy_usage(r) {
                continue;
            }
            let sharing = match r {
                ResourceRef::Buffer(b) => &b.desc().sharing,
                ResourceRef::Image(i) => &i.desc().sharing,
            };
            if self.needs_release(sharing) {
                return Err(StagingError::MoveNeedsOwnershipTransfer {
                    name: r.name().map(str::to_owned),
                    family: self.destination_family,
                    belt_family: self.queue.family,
                });
            }
            movable.push(i);
        }
        let allocator = self.resources.allocator().clone();
        let pass = allocator
            .begin_defragmentation_pass(
                movable.iter().map(|&i| (i, candidates[i].allocation())),
                budget,
            )
            .map_err(StagingError::Defragmentation)?;
        let stats = pass.stats();
        let mut planned = pass.into_moves().into_iter();
        let mut made: Vec<ResourceMove> = Vec::with_capacity(planned.len());
        let mut failure = None;
        for m in planned.by_ref() {
            let created = match candidates[m.key] {
                ResourceRef::Buffer(b) => self
                    .resources
                    .create_buffer_at(b.desc(), m.destination)
                    .map(Resource::Buffer),
                ResourceRef::Image(i) => self
                    .resources
                    .create_image_at(i.desc(), m.destination)
                    .map(Resource::Image),
            };
            match created {
                Ok(resource) => made.push(ResourceMove {
                    index: m.key,
                    resource,
                }),
                Err(e) => {
                    failure = Some(StagingError::MoveResource(e));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for m in planned {
                let _ = allocator.free(m.destination);
            }
            self.destroy_unused(made);
            return Err(e);
        }
        if made.is_empty() {
            return Ok(DefragmentationPass {
                moves: made,
                ticket: Ticket {
                    belt: self.id,
                    value: self.next_value - 1,
                },
                semaphore: self.semaphore,
                stats,
            });
        }
        let recorded = self
            .record_moves(candidates, &made)
            .and_then(|value| self.submit_open().map(|()| value));
        match recorded {
            Ok(value) => Ok(DefragmentationPass {
                moves: made,
                ticket: Ticket {
                    belt: self.id,
                    value,
                },
                semaphore: self.semaphore,
                stats,
            }),
            Err(e) => {
                // The batch never ran (its begin or submit failed, and the
                // belt is unusable now): the new resources are unused.
                self.destroy_unused(made);
                Err(e)
            }
        }
    }

    /// Destroys resources of a pass that no GPU work uses (any more).
    fn destroy_unused(&self, made: Vec<ResourceMove>) {
        for m in made.into_iter().rev() {
            // SAFETY: created by this pass; its copy never ran or is done.
            let _ = unsafe { self.resources.destroy_resource(m.resource) };
        }
    }

    /// Records every move's barriers and copies into the open batch; its
    /// timeline value.
    fn record_moves(
        &mut self,
        candidates: &[ResourceRef<'_>],
        moves: &[ResourceMove],
    ) -> Result<u64, StagingError> {
        self.record_pending_copy();
        let mut buffers_before = Vec::new();
        let mut images_before = Vec::new();
        let mut images_after = Vec::new();
        for m in moves {
            match (&candidates[m.index], &m.resource) {
                (ResourceRef::Buffer(old), Resource::Buffer(new)) => {
                    for (b, access) in [
                        (old.handle(), vk::AccessFlags::TRANSFER_READ),
                        (new.handle(), vk::AccessFlags::TRANSFER_WRITE),
                    ] {
                        buffers_before.push(
                            vk::BufferMemoryBarrier::default()
                                .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
                                .dst_access_mask(access)
                                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                                .buffer(b)
                                .offset(0)
                                .size(vk::WHOLE_SIZE),
                        );
                    }
                }
                (ResourceRef::Image(old), Resource::Image(new)) => {
                    let aspect = old.desc().aspect();
                    for (range, state) in layout_boxes(old) {
                        let sub = range.to_vk(aspect);
                        let barrier = |image, old_layout, new_layout, src, dst| {
                            vk::ImageMemoryBarrier::default()
                                .src_access_mask(src)
                                .dst_access_mask(dst)
                                .old_layout(old_layout)
                                .new_layout(new_layout)
                                .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                                .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
                                .image(image)
                                .subresource_range(sub)
                        };
                        let (src_opt, dst_opt) = (
                            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                            vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                        );
                        images_before.push(barrier(
                            old.handle(),
                            state.layout,
                            src_opt,
                            vk::AccessFlags::MEMORY_WRITE,
                            vk::AccessFlags::TRANSFER_READ,
                        ));
                        images_before.push(barrier(
                            new.handle(),
                            vk::ImageLayout::UNDEFINED,
                            dst_opt,
                            vk::AccessFlags::MEMORY_WRITE,
                            vk::AccessFlags::TRANSFER_WRITE,
                        ));
                        images_after.push(barrier(
                            old.handle(),
                            src_opt,
                            state.layout,
                            vk::AccessFlags::empty(),
                            vk::AccessFlags::empty(),
                        ));
                        images_after.push(barrier(
                            new.handle(),
                            dst_opt,
                            state.layout,
                            vk::AccessFlags::TRANSFER_WRITE,
                            vk::AccessFlags::empty(),
                        ));
                    }
                }
                _ => unreachable!("a move's resource has the kind of its source"),
            }
        }
        let device = self.device.clone();
        let batch = self.open_batch()?;
        let cmd = batch.cmd;
        // SAFETY: `cmd` is recording; every buffer and image is alive (the
        // old ones borrowed, the new ones owned by `moves`); each image's
        // old layouts are the ones its tracker records.
        unsafe {
            device.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::TRANSFER,
                vk::DependencyFlags::empty(),
                &[],
                &buffers_before,
                &images_before,
            );
        }
        let mut copies = 0u64;
        for m in moves {
            match (&candidates[m.index], &m.resource) {
                (ResourceRef::Buffer(old), Resource::Buffer(new)) => {
                    let region = vk::BufferCopy {
                        src_offset: 0,
                        dst_offset: 0,
                        size: old.requested_size(),
                    };
                    // SAFETY: recording; both buffers hold `size` bytes
                    // (same desc) and are in the states the barrier above
                    // made.
                    unsafe { device.cmd_copy_buffer(cmd, old.handle(), new.handle(), &[region]) };
                    copies += 1;
                }
                (ResourceRef::Image(old), Resource::Image(new)) => {
                    let desc = old.desc();
                    let aspect = desc.aspect();
                    let mut regions = Vec::new();
                    for (range, state) in layout_boxes(old) {
                        for level in range.levels() {
                            let sub = vk::ImageSubresourceLayers {
                                aspect_mask: aspect,
                                mip_level: level,
                                base_array_layer: range.base_array_layer,
                                layer_count: range.layer_count,
                            };
                            regions.push(vk::ImageCopy {
                                src_subresource: sub,
                                src_offset: vk::Offset3D::default(),
                                dst_subresource: sub,
                                dst_offset: vk::Offset3D::default(),
                                extent: level_extent(desc, level),
                            });
                        }
                        new.layouts().set_state(
                            ImageSubresources {
                                base_mip_level: range.base_mip_level,
                                level_count: range.level_count,
                                base_array_layer: range.base_array_layer,
                                layer_count: range.layer_count,
                            },
                            state,
                        );
                    }
                    if !regions.is_empty() {
                        // SAFETY: recording; same desc on both sides, whole
                        // subresources, old in TRANSFER_SRC_OPTIMAL and new
                        // in TRANSFER_DST_OPTIMAL (barriers above).
                        unsafe {
                            device.cmd_copy_image(
                                cmd,
                                old.handle(),
                                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                                new.handle(),
                                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                                &regions,
                            )
                        };
                        copies += 1;
                    }
                }
                _ => unreachable!("a move's resource has the kind of its source"),
            }
        }
        if !images_after.is_empty() {
            // SAFETY: recording; the images are alive.
            unsafe {
                device.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::TRANSFER,
                    vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &images_after,
                );
            }
        }
        let batch = self.open.as_mut().expect("opened above");
        batch.has_work = true;
        let value = batch.value;
        self.stats.copy_commands += copies;
        Ok(value)
    }

    /// Gives a pass up after step 1: waits for its copies, then destroys
    /// the new resources; the old ones stay in use unchanged. On a failed
    /// wait (device lost) the new resources are left to the device's
    /// teardown and the error is returned.
    pub fn cancel_defragmentation(
        &mut self,
        pass: DefragmentationPass,
    ) -> Result<(), StagingError> {
        if !pass.moves.is_empty() {
            self.wait(pass.ticket)?;
        }
        // The pass's copy, their only GPU use, is complete.
        self.destroy_unused(pass.moves);
        Ok(())
    }
}
