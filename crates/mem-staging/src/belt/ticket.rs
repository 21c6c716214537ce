//! What an upload hands back: a [`Ticket`] (a value on the belt's timeline
//! semaphore) and, for resources whose ownership moves to the engine's queue
//! family, the [`AcquireBarriers`] the engine records.

use super::*;

/// A point on a belt's timeline: the upload is on the GPU once the belt's
/// semaphore reaches `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[must_use]
pub struct Ticket {
    pub(super) belt: u64,
    pub(super) value: u64,
}
impl Ticket {
    /// The timeline value to wait for on [`StagingBelt::semaphore`].
    pub fn value(&self) -> u64 {
        self.value
    }
}
/// Acquire barriers the engine records on its own queue (the destination
/// family) after waiting for the ticket, to complete queue-family ownership
/// transfers the belt released.
#[derive(Clone, Debug, Default)]
pub struct AcquireBarriers {
    /// Buffer barriers (`srcQueueFamilyIndex` = belt's family).
    pub buffers: Vec<vk::BufferMemoryBarrier<'static>>,
    /// Image barriers, with the same layout transition as the release.
    pub images: Vec<vk::ImageMemoryBarrier<'static>>,
    /// Semaphore and value to wait for before executing them.
    pub wait: Option<(vk::Semaphore, u64)>,
}
impl AcquireBarriers {
    /// True when there is nothing to acquire.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty() && self.images.is_empty()
    }

    /// Records the barriers into `cmd` with the engine's destination stage and
    /// access (e.g. `VERTEX_INPUT` + `VERTEX_ATTRIBUTE_READ`, or
    /// `FRAGMENT_SHADER` + `SHADER_READ`).
    ///
    /// # Safety
    /// - `cmd` is a command buffer of `device` in the recording state, from a
    ///   pool of the destination queue family;
    /// - the submission that executes it waits for [`Self::wait`] first.
    pub unsafe fn record(
        &self,
        device: &ash::Device,
        cmd: vk::CommandBuffer,
        dst_stage: vk::PipelineStageFlags,
        dst_access: vk::AccessFlags,
    ) {
        if self.is_empty() {
            return;
        }
        let buffers: Vec<_> = self
            .buffers
            .iter()
            .map(|b| b.dst_access_mask(dst_access))
            .collect();
        let images: Vec<_> = self
            .images
            .iter()
            .map(|b| b.dst_access_mask(dst_access))
            .collect();
        // SAFETY: the caller guarantees `cmd` is recording on the destination
        // family; the barriers name resources the belt released to it.
        unsafe {
            device.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                dst_stage,
                vk::DependencyFlags::empty(),
                &[],
                &buffers,
                &images,
            )
        }
    }
}
