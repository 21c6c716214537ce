//! Fault injection for the Vulkan calls mem-resources makes itself, so tests
//! can prove that a failure at any step undoes every earlier step.
//!
//! Memory allocation failures come from mem-core (its fake device's
//! injection, a heap-size limit, or a [`mem_core::MemoryDevice`] wrapper);
//! this module covers the calls mem-core never sees: object creation,
//! binding and naming. Every call through a [`FaultPoint`] is counted
//! whether or not a fault is armed (one relaxed atomic add: noise next to a
//! `vkCreateBuffer`), so a test can run a scenario once, read how many calls
//! each point got, and then fail each of them in turn.
//!
//! The hooks are methods of the manager behind the cargo feature `testing`
//! (off by default): `ResourceManager::set_fault` arms the nth call from
//! now, counted as everywhere in gpumem (1 = the next call, as the staging
//! belt's `inject_fault`), `clear_faults` disarms, `fault_calls` reads the
//! counters.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use ash::vk;

/// A Vulkan call of mem-resources that a test can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// `vkCreateBuffer`.
    CreateBuffer,
    /// `vkCreateImage`.
    CreateImage,
    /// `vkBindBufferMemory2` (one call per `create_buffer` or per batch).
    BindBufferMemory,
    /// `vkBindImageMemory2` (one call per `create_image` or per batch).
    BindImageMemory,
    /// `vkSetDebugUtilsObjectNameEXT` (only made for named resources when
    /// the manager has debug utils).
    SetObjectName,
}

impl FaultPoint {
    /// Every fault point.
    pub const ALL: [FaultPoint; 5] = [
        FaultPoint::CreateBuffer,
        FaultPoint::CreateImage,
        FaultPoint::BindBufferMemory,
        FaultPoint::BindImageMemory,
        FaultPoint::SetObjectName,
    ];

    /// The Vulkan command this point stands for.
    pub fn call(self) -> &'static str {
        match self {
            FaultPoint::CreateBuffer => "vkCreateBuffer",
            FaultPoint::CreateImage => "vkCreateImage",
            FaultPoint::BindBufferMemory => "vkBindBufferMemory2",
            FaultPoint::BindImageMemory => "vkBindImageMemory2",
            FaultPoint::SetObjectName => "vkSetDebugUtilsObjectNameEXT",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const DISARMED: u64 = u64::MAX;

/// Per-point call counters and one armed fault per point.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    calls: [AtomicU64; 5],
    fail_at: [AtomicU64; 5],
    result: [AtomicI32; 5],
}

impl Default for FaultInjector {
    fn default() -> Self {
        Self {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            fail_at: std::array::from_fn(|_| AtomicU64::new(DISARMED)),
            result: std::array::from_fn(|_| AtomicI32::new(0)),
        }
    }
}

impl FaultInjector {
    /// Arms `point` so that its `nth` call from now (1 = the next) fails
    /// once with `result`; `nth == 0` disarms the point.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn set(&self, point: FaultPoint, nth: u64, result: vk::Result) {
        let i = point.index();
        self.result[i].store(result.as_raw(), Ordering::SeqCst);
        // `check` compares the call's 0-based index with `fail_at`: the
        // next call's index is `now`.
        let at = match nth {
            0 => DISARMED,
            n => self.calls[i].load(Ordering::SeqCst).saturating_add(n - 1),
        };
        self.fail_at[i].store(at, Ordering::SeqCst);
    }

    /// Disarms every point.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn clear(&self) {
        for f in &self.fail_at {
            f.store(DISARMED, Ordering::SeqCst);
        }
    }

    /// Calls counted at `point` so far.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn calls(&self, point: FaultPoint) -> u64 {
        self.calls[point.index()].load(Ordering::SeqCst)
    }

    /// Counts a call at `point`; `Err` when this call is the armed one.
    #[inline]
    pub(crate) fn check(&self, point: FaultPoint) -> Result<(), vk::Result> {
        let i = point.index();
        let n = self.calls[i].fetch_add(1, Ordering::Relaxed);
        if n == self.fail_at[i].load(Ordering::Relaxed)
            && self.fail_at[i]
                .compare_exchange(n, DISARMED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            return Err(vk::Result::from_raw(self.result[i].load(Ordering::SeqCst)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_the_nth_call_once() {
        let f = FaultInjector::default();
        assert_eq!(f.check(FaultPoint::CreateBuffer), Ok(()));
        f.set(
            FaultPoint::CreateBuffer,
            3,
            vk::Result::ERROR_OUT_OF_HOST_MEMORY,
        );
        assert_eq!(f.check(FaultPoint::CreateBuffer), Ok(()));
        assert_eq!(f.check(FaultPoint::CreateImage), Ok(()));
        assert_eq!(f.check(FaultPoint::CreateBuffer), Ok(()));
        assert_eq!(
            f.check(FaultPoint::CreateBuffer),
            Err(vk::Result::ERROR_OUT_OF_HOST_MEMORY)
        );
        assert_eq!(f.check(FaultPoint::CreateBuffer), Ok(()));
        assert_eq!(f.calls(FaultPoint::CreateBuffer), 5);
        assert_eq!(f.calls(FaultPoint::CreateImage), 1);
        f.set(
            FaultPoint::BindImageMemory,
            1,
            vk::Result::ERROR_OUT_OF_DEVICE_MEMORY,
        );
        f.clear();
        assert_eq!(f.check(FaultPoint::BindImageMemory), Ok(()));
    }

    #[test]
    fn one_is_the_next_call_and_zero_disarms() {
        let f = FaultInjector::default();
        f.set(FaultPoint::SetObjectName, 1, vk::Result::ERROR_UNKNOWN);
        assert_eq!(
            f.check(FaultPoint::SetObjectName),
            Err(vk::Result::ERROR_UNKNOWN)
        );
        assert_eq!(f.check(FaultPoint::SetObjectName), Ok(()));
        f.set(FaultPoint::SetObjectName, 2, vk::Result::ERROR_UNKNOWN);
        f.set(FaultPoint::SetObjectName, 0, vk::Result::ERROR_UNKNOWN);
        for _ in 0..4 {
            assert_eq!(f.check(FaultPoint::SetObjectName), Ok(()));
        }
        assert_eq!(f.calls(FaultPoint::SetObjectName), 6);
    }
}
