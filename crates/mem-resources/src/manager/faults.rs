//! The manager's test hooks over its [`FaultPoint`]s: arm a failure of the
//! nth call of a Vulkan command, disarm, and count calls. The injector
//! itself is [`crate::fault`]; every creation path asks it before the
//! Vulkan call it stands for.

use super::*;

impl ResourceManager {
    /// Makes the `nth` call from now (0 = the next) of `point` fail once
    /// with `result`, as if Vulkan had returned it. For tests of the failure
    /// paths; costs nothing measurable when unused.
    pub fn set_fault(&self, point: FaultPoint, nth: u64, result: vk::Result) {
        self.faults.set(point, nth, result);
    }

    /// Disarms every fault set with [`Self::set_fault`].
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// How many calls `point` got since the manager was made (whether they
    /// were failed or not): run a scenario once to learn how many positions
    /// a failure sweep has.
    pub fn fault_calls(&self, point: FaultPoint) -> u64 {
        self.faults.calls(point)
    }
}
