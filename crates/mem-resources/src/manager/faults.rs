//! The manager's test hooks over its [`FaultPoint`]s (cargo feature
//! `testing`, off by default): arm a failure of the nth call of a Vulkan
//! command, disarm, and count calls. The injector itself is
//! [`crate::fault`]; every creation path asks it before the Vulkan call it
//! stands for, with or without the feature.
//!
//! "The nth call" counts as everywhere in gpumem: 1 is the next call.

use super::*;

impl ResourceManager {
    /// Makes the `nth` call from now (1 = the next) of `point` fail once
    /// with `result`, as if Vulkan had returned it; `nth == 0` disarms
    /// `point`. For tests of the failure paths (feature `testing`).
    pub fn set_fault(&self, point: FaultPoint, nth: u64, result: vk::Result) {
        self.faults.set(point, nth, result);
    }

    /// Disarms every fault set with [`Self::set_fault`].
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// How many calls `point` got since the manager was made (whether they
    /// were failed or not): run a scenario once to learn how many positions
    /// a failure sweep has (positions 1 to the count, for
    /// [`Self::set_fault`]).
    pub fn fault_calls(&self, point: FaultPoint) -> u64 {
        self.faults.calls(point)
    }
}
