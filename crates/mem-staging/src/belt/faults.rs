//! Injected failures of the belt's own Vulkan calls, so tests can walk every
//! failure path: a call counter per [`BeltFault`] point and the call that
//! fails.

use super::*;

/// A Vulkan call of the belt that `StagingBelt::inject_fault` (feature `testing`) can make
/// fail, for tests of the failure paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BeltFault {
    /// `vkBeginCommandBuffer` when a batch opens.
    BeginCommandBuffer,
    /// `vkQueueSubmit` of a batch.
    QueueSubmit,
    /// `vkWaitSemaphores` while waiting for ring space or a ticket.
    WaitSemaphores,
}
impl BeltFault {
    fn index(self) -> usize {
        match self {
            BeltFault::BeginCommandBuffer => 0,
            BeltFault::QueueSubmit => 1,
            BeltFault::WaitSemaphores => 2,
        }
    }
}
/// Injected failures: calls made per point, and the call that fails.
#[derive(Default)]
pub(super) struct Faults {
    calls: [u64; 3],
    fail_at: [Option<(u64, vk::Result)>; 3],
}

impl StagingBelt {
    /// Makes the `nth` call from now (1 = the next) of `point` fail with
    /// `result` instead of calling Vulkan, to test how callers and the belt
    /// survive. Like a real failure, it makes the belt unusable (every later
    /// call returns the error: a streamed upload may be half on the GPU), and
    /// dropping the belt still frees everything it made.
    #[cfg(feature = "testing")]
    pub fn inject_fault(&mut self, point: BeltFault, nth: u64, result: vk::Result) {
        let i = point.index();
        self.faults.fail_at[i] = Some((self.faults.calls[i] + nth, result));
    }

    /// Counts a call of `point`; `Some(result)` when it is the injected one.
    pub(super) fn fault(&mut self, point: BeltFault) -> Option<vk::Result> {
        let i = point.index();
        self.faults.calls[i] += 1;
        match self.faults.fail_at[i] {
            Some((at, result)) if at == self.faults.calls[i] => {
                self.faults.fail_at[i] = None;
                Some(result)
            }
            _ => None,
        }
    }
}
