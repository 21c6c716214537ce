//! A tracking host allocator: `vk::AllocationCallbacks` that allocate from
//! Rust's global allocator, honour the requested alignment, and count bytes
//! and calls per `VkSystemAllocationScope`.
//!
//! An engine hands [`TrackingHostAllocator::callbacks`] to `vkCreateInstance`,
//! `vkCreateDevice` (and to gpumem, which passes them to every Vulkan call it
//! makes) to see how much host memory the driver, the loader and the layers
//! take, and in which scope. [`TrackingHostAllocator::stats`] returns a
//! plain-data, serde-serializable snapshot.
//!
//! [`HostCallbacks`] holds an engine's callbacks (these or its own) in the
//! objects several threads share, and hands them to every Vulkan call:
//! mem-core's device, mem-resources' manager and mem-staging's margin
//! checker all keep theirs in one.
//!
//! ```no_run
//! use ash::vk;
//! use mem_core::host::TrackingHostAllocator;
//!
//! # fn demo(entry: &ash::Entry, create_info: &vk::InstanceCreateInfo<'_>) -> ash::prelude::VkResult<()> {
//! let tracker = TrackingHostAllocator::new();
//! let callbacks = tracker.callbacks();
//! // SAFETY: `tracker` (an Arc) outlives the instance: it is destroyed first.
//! let instance = unsafe { entry.create_instance(create_info, Some(&callbacks))? };
//! println!("instance scope: {} bytes", tracker.stats().instance.live_bytes);
//! // SAFETY: created above with the same callbacks; no child objects left.
//! unsafe { instance.destroy_instance(Some(&callbacks)) };
//! assert_eq!(tracker.stats().total.live_bytes, 0);
//! # Ok(()) }
//! ```
//!
//! # Lifetime of the callbacks
//!
//! `pUserData` points at the [`TrackingHostAllocator`], which [`new`]
//! returns inside an [`Arc`] so its address never changes. Vulkan keeps
//! calling the callbacks until the last object created with them is
//! destroyed, which the borrow checker cannot see: keep a clone of the `Arc`
//! alive (e.g. next to the `ash::Instance`) until then. Passing the callbacks
//! to Vulkan is already an `unsafe` call; that promise is part of it.
//!
//! # Layout of an allocation
//!
//! The spec's `pfnFree` and `pfnReallocation` receive only the pointer, but
//! Rust's allocator needs the original [`Layout`](std::alloc::Layout) back, and the counters need
//! the scope. So every block starts with `max(alignment, 16)` bytes of which
//! the last 16 hold a header (size, alignment, scope); the pointer handed to
//! Vulkan follows it and is therefore aligned to the requested alignment.
//! Overhead: 16 bytes for alignments up to 16, `alignment` bytes above.
//!
//! # Rules from the spec
//!
//! (<https://registry.khronos.org/vulkan/specs/1.3/html/chap11.html#memory-host>)
//!
//! - Failure returns `NULL` (the driver then reports
//!   `VK_ERROR_OUT_OF_HOST_MEMORY`); the callbacks never panic or unwind:
//!   every step is a checked computation or a call to [`std::alloc`], which
//!   reports failure by returning null.
//! - `pfnReallocation` with `pOriginal == NULL` allocates; with `size == 0`
//!   frees and returns `NULL`; otherwise keeps `min(old, new)` bytes, and on
//!   failure leaves the original untouched.
//! - `pfnFree(NULL)` does nothing.
//! - The callbacks may be called from several threads at once: all state is
//!   atomics.
//!
//! An alignment that is not a power of two is a driver bug; the allocation
//! then fails (returns `NULL`) and counts as failed. An alignment of 0 is
//! treated as 1.
//!
//! [`new`]: TrackingHostAllocator::new

mod block;
mod callbacks;
#[cfg(test)]
mod tests;

use std::ffi::c_void;
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ash::vk;

pub use callbacks::HostCallbacks;

use block::{checked_align, raw_allocate, raw_free, raw_reallocate, Header};

/// Counters are statistics, not synchronization: nothing is ordered by them.
const RELAXED: Ordering = Ordering::Relaxed;

/// Number of counter buckets: the five scopes of Vulkan 1.3, plus one for
/// values the spec does not define (a driver from the future, or a bug).
const BUCKETS: usize = 6;
const UNKNOWN_BUCKET: usize = 5;

fn bucket(scope: vk::SystemAllocationScope) -> usize {
    match scope {
        vk::SystemAllocationScope::COMMAND => 0,
        vk::SystemAllocationScope::OBJECT => 1,
        vk::SystemAllocationScope::CACHE => 2,
        vk::SystemAllocationScope::DEVICE => 3,
        vk::SystemAllocationScope::INSTANCE => 4,
        _ => UNKNOWN_BUCKET,
    }
}

/// Live counters of one bucket.
#[derive(Default)]
struct ScopeCounters {
    live_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    live_allocations: AtomicU64,
    allocation_calls: AtomicU64,
    reallocation_calls: AtomicU64,
    free_calls: AtomicU64,
    failed_calls: AtomicU64,
    internal_live_bytes: AtomicU64,
    internal_peak_bytes: AtomicU64,
    internal_allocation_calls: AtomicU64,
    internal_free_calls: AtomicU64,
}

impl ScopeCounters {
    fn snapshot(&self) -> ScopeStats {
        ScopeStats {
            live_bytes: self.live_bytes.load(RELAXED),
            peak_bytes: self.peak_bytes.load(RELAXED),
            live_allocations: self.live_allocations.load(RELAXED),
            allocation_calls: self.allocation_calls.load(RELAXED),
            reallocation_calls: self.reallocation_calls.load(RELAXED),
            free_calls: self.free_calls.load(RELAXED),
            failed_calls: self.failed_calls.load(RELAXED),
            internal_live_bytes: self.internal_live_bytes.load(RELAXED),
            internal_peak_bytes: self.internal_peak_bytes.load(RELAXED),
            internal_allocation_calls: self.internal_allocation_calls.load(RELAXED),
            internal_free_calls: self.internal_free_calls.load(RELAXED),
        }
    }
}

/// Adds `bytes` to `live` and raises `peak` to the result.
fn grow(live: &AtomicU64, peak: &AtomicU64, bytes: u64) {
    let now = live.fetch_add(bytes, RELAXED).wrapping_add(bytes);
    peak.fetch_max(now, RELAXED);
}

/// Subtracts `bytes` from `live`, saturating at zero (internal-free
/// notifications come from the driver; a bogus one must not wrap around).
fn shrink(live: &AtomicU64, bytes: u64) {
    let _ = live.fetch_update(RELAXED, RELAXED, |v| Some(v.saturating_sub(bytes)));
}

/// Host allocation counters for one `VkSystemAllocationScope` (or the
/// totals). Bytes are the sizes Vulkan asked for, without this allocator's
/// header overhead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ScopeStats {
    /// Bytes currently allocated through the callbacks.
    pub live_bytes: u64,
    /// Highest `live_bytes` seen (since creation or
    /// [`TrackingHostAllocator::reset_peaks`]). For the totals this is the
    /// peak of the sum, not the sum of the scopes' peaks.
    pub peak_bytes: u64,
    /// Allocations currently live.
    pub live_allocations: u64,
    /// `pfnAllocation` calls.
    pub allocation_calls: u64,
    /// `pfnReallocation` calls (including those with a null original or
    /// size 0, which allocate or free).
    pub reallocation_calls: u64,
    /// `pfnFree` calls with a non-null pointer, counted in the scope the
    /// memory was allocated in (`pfnFree` has no scope argument).
    pub free_calls: u64,
    /// `pfnAllocation`/`pfnReallocation` calls that returned `NULL` because
    /// of a failure (out of memory, overflow, invalid alignment).
    pub failed_calls: u64,
    /// Bytes the implementation reports as allocated internally, outside the
    /// callbacks (`pfnInternalAllocation` minus `pfnInternalFree`; e.g.
    /// executable memory for shaders).
    pub internal_live_bytes: u64,
    /// Highest `internal_live_bytes` seen.
    pub internal_peak_bytes: u64,
    /// `pfnInternalAllocation` notifications.
    pub internal_allocation_calls: u64,
    /// `pfnInternalFree` notifications.
    pub internal_free_calls: u64,
}

/// A snapshot of a [`TrackingHostAllocator`]'s counters, per scope and in
/// total. Plain data; serializes with serde (`json` feature, on by default;
/// e.g. into the allocator's JSON
/// report).
///
/// Each counter is read atomically but the snapshot as a whole is not: taken
/// while other threads call into Vulkan, fields may be from slightly
/// different moments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HostAllocationStats {
    /// `VK_SYSTEM_ALLOCATION_SCOPE_COMMAND`: lives for one Vulkan command.
    pub command: ScopeStats,
    /// `VK_SYSTEM_ALLOCATION_SCOPE_OBJECT`: lives as long as a Vulkan object.
    pub object: ScopeStats,
    /// `VK_SYSTEM_ALLOCATION_SCOPE_CACHE`: pipeline caches and the like.
    pub cache: ScopeStats,
    /// `VK_SYSTEM_ALLOCATION_SCOPE_DEVICE`: lives as long as the device.
    pub device: ScopeStats,
    /// `VK_SYSTEM_ALLOCATION_SCOPE_INSTANCE`: lives as long as the instance.
    pub instance: ScopeStats,
    /// Scope values Vulkan 1.3 does not define; should stay zero.
    pub unknown_scope: ScopeStats,
    /// All scopes together (peaks are peaks of the sum).
    pub total: ScopeStats,
    /// `pfnFree` calls with `NULL` (valid, and no-ops; they have no scope).
    pub null_free_calls: u64,
}

impl HostAllocationStats {
    /// The counters of `scope` (unknown values give [`Self::unknown_scope`]).
    pub fn scope(&self, scope: vk::SystemAllocationScope) -> &ScopeStats {
        match bucket(scope) {
            0 => &self.command,
            1 => &self.object,
            2 => &self.cache,
            3 => &self.device,
            4 => &self.instance,
            _ => &self.unknown_scope,
        }
    }
}

/// `vk::AllocationCallbacks` backed by Rust's global allocator that count
/// bytes and calls per `VkSystemAllocationScope`. See the [module
/// docs](self) for the lifetime rule and the block layout.
pub struct TrackingHostAllocator {
    scopes: [ScopeCounters; BUCKETS],
    total_live_bytes: AtomicU64,
    total_peak_bytes: AtomicU64,
    total_internal_live_bytes: AtomicU64,
    total_internal_peak_bytes: AtomicU64,
    null_free_calls: AtomicU64,
}

impl fmt::Debug for TrackingHostAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingHostAllocator")
            .field("stats", &self.stats())
            .finish()
    }
}

impl TrackingHostAllocator {
    /// A tracker with all counters at zero, in an [`Arc`] so the address
    /// that `pUserData` holds stays fixed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            scopes: Default::default(),
            total_live_bytes: AtomicU64::new(0),
            total_peak_bytes: AtomicU64::new(0),
            total_internal_live_bytes: AtomicU64::new(0),
            total_internal_peak_bytes: AtomicU64::new(0),
            null_free_calls: AtomicU64::new(0),
        })
    }

    /// The callbacks to pass to Vulkan; `pUserData` points at `self`.
    ///
    /// The returned value borrows `self`, but Vulkan uses the callbacks until
    /// the last object created with them is destroyed: keep `self` alive
    /// until then (see the [module docs](self)). Objects must be destroyed
    /// with callbacks from the same tracker.
    #[doc(alias = "VkAllocationCallbacks")]
    pub fn callbacks(&self) -> vk::AllocationCallbacks<'_> {
        vk::AllocationCallbacks::default()
            .user_data(self as *const Self as *mut c_void)
            .pfn_allocation(Some(allocation))
            .pfn_reallocation(Some(reallocation))
            .pfn_free(Some(free))
            .pfn_internal_allocation(Some(internal_allocation))
            .pfn_internal_free(Some(internal_free))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> HostAllocationStats {
        let mut total = ScopeStats::default();
        let snaps: [ScopeStats; BUCKETS] = std::array::from_fn(|i| self.scopes[i].snapshot());
        for s in &snaps {
            total.live_bytes += s.live_bytes;
            total.live_allocations += s.live_allocations;
            total.allocation_calls += s.allocation_calls;
            total.reallocation_calls += s.reallocation_calls;
            total.free_calls += s.free_calls;
            total.failed_calls += s.failed_calls;
            total.internal_live_bytes += s.internal_live_bytes;
            total.internal_allocation_calls += s.internal_allocation_calls;
            total.internal_free_calls += s.internal_free_calls;
        }
        total.peak_bytes = self.total_peak_bytes.load(RELAXED);
        total.internal_peak_bytes = self.total_internal_peak_bytes.load(RELAXED);
        let [command, object, cache, device, instance, unknown_scope] = snaps;
        HostAllocationStats {
            command,
            object,
            cache,
            device,
            instance,
            unknown_scope,
            total,
            null_free_calls: self.null_free_calls.load(RELAXED),
        }
    }

    /// Lowers every peak to the current live value, to measure the peak of
    /// one phase (e.g. device creation) on its own.
    pub fn reset_peaks(&self) {
        for s in &self.scopes {
            s.peak_bytes.store(s.live_bytes.load(RELAXED), RELAXED);
            s.internal_peak_bytes
                .store(s.internal_live_bytes.load(RELAXED), RELAXED);
        }
        self.total_peak_bytes
            .store(self.total_live_bytes.load(RELAXED), RELAXED);
        self.total_internal_peak_bytes
            .store(self.total_internal_live_bytes.load(RELAXED), RELAXED);
    }

    fn scope_added(&self, bucket: usize, size: u64) {
        let s = &self.scopes[bucket];
        s.live_allocations.fetch_add(1, RELAXED);
        grow(&s.live_bytes, &s.peak_bytes, size);
    }

    fn scope_removed(&self, bucket: usize, size: u64) {
        let s = &self.scopes[bucket];
        s.live_allocations.fetch_sub(1, RELAXED);
        s.live_bytes.fetch_sub(size, RELAXED);
    }

    fn on_allocated(&self, bucket: usize, size: usize) {
        self.scope_added(bucket, size as u64);
        grow(&self.total_live_bytes, &self.total_peak_bytes, size as u64);
    }

    fn on_freed(&self, header: Header) {
        self.scope_removed(header.bucket as usize, header.size as u64);
        self.total_live_bytes.fetch_sub(header.size as u64, RELAXED);
    }

    fn on_reallocated(&self, old: Header, bucket: usize, size: usize) {
        let (old_size, new_size) = (old.size as u64, size as u64);
        if old.bucket as usize == bucket {
            let s = &self.scopes[bucket];
            if new_size >= old_size {
                grow(&s.live_bytes, &s.peak_bytes, new_size - old_size);
            } else {
                s.live_bytes.fetch_sub(old_size - new_size, RELAXED);
            }
        } else {
            // The block moves to another scope.
            self.scope_added(bucket, new_size);
            self.scope_removed(old.bucket as usize, old_size);
        }
        // The total only sees the difference, so its peak is not inflated.
        if new_size >= old_size {
            grow(
                &self.total_live_bytes,
                &self.total_peak_bytes,
                new_size - old_size,
            );
        } else {
            self.total_live_bytes
                .fetch_sub(old_size - new_size, RELAXED);
        }
    }
}

/// Turns `pUserData` back into the tracker.
///
/// # Safety
///
/// - `user_data` is null or came from [`TrackingHostAllocator::callbacks`] on
///   a tracker that is still alive.
unsafe fn tracker<'a>(user_data: *mut c_void) -> Option<&'a TrackingHostAllocator> {
    // SAFETY: null or a live tracker (caller's contract); only shared access.
    unsafe { (user_data as *const TrackingHostAllocator).as_ref() }
}

/// `PFN_vkAllocationFunction`.
///
/// # Safety
///
/// - `user_data` as in [`tracker`].
unsafe extern "system" fn allocation(
    user_data: *mut c_void,
    size: usize,
    alignment: usize,
    scope: vk::SystemAllocationScope,
) -> *mut c_void {
    // SAFETY: Vulkan passes back the pUserData of `callbacks()` (caller's contract).
    let Some(t) = (unsafe { tracker(user_data) }) else {
        return ptr::null_mut();
    };
    let b = bucket(scope);
    t.scopes[b].allocation_calls.fetch_add(1, RELAXED);
    match checked_align(alignment).and_then(|a| raw_allocate(size, a, b)) {
        Some(p) => {
            t.on_allocated(b, size);
            p.as_ptr().cast()
        }
        None => {
            t.scopes[b].failed_calls.fetch_add(1, RELAXED);
            ptr::null_mut()
        }
    }
}

/// `PFN_vkReallocationFunction`.
///
/// # Safety
///
/// - `user_data` as in [`tracker`].
/// - `original` is null or a live pointer from these callbacks (spec).
unsafe extern "system" fn reallocation(
    user_data: *mut c_void,
    original: *mut c_void,
    size: usize,
    alignment: usize,
    scope: vk::SystemAllocationScope,
) -> *mut c_void {
    // SAFETY: Vulkan passes back the pUserData of `callbacks()` (caller's contract).
    let Some(t) = (unsafe { tracker(user_data) }) else {
        return ptr::null_mut();
    };
    let b = bucket(scope);
    t.scopes[b].reallocation_calls.fetch_add(1, RELAXED);
    let Some(user) = NonNull::new(original.cast::<u8>()) else {
        // Spec: a null original behaves like pfnAllocation.
        return match checked_align(alignment).and_then(|a| raw_allocate(size, a, b)) {
            Some(p) => {
                t.on_allocated(b, size);
                p.as_ptr().cast()
            }
            None => {
                t.scopes[b].failed_calls.fetch_add(1, RELAXED);
                ptr::null_mut()
            }
        };
    };
    if size == 0 {
        // Spec: size 0 behaves like pfnFree(original); the result is NULL.
        // SAFETY: `original` is a live pointer from these callbacks (spec).
        let header = unsafe { raw_free(user) };
        t.on_freed(header);
        return ptr::null_mut();
    }
    let Some(align) = checked_align(alignment) else {
        t.scopes[b].failed_calls.fetch_add(1, RELAXED);
        return ptr::null_mut();
    };
    // SAFETY: `original` is a live pointer from these callbacks (spec); on
    // success Vulkan no longer uses it.
    match unsafe { raw_reallocate(user, size, align, b) } {
        Some((p, old)) => {
            t.on_reallocated(old, b, size);
            p.as_ptr().cast()
        }
        None => {
            // Spec: on failure the original stays valid and untouched.
            t.scopes[b].failed_calls.fetch_add(1, RELAXED);
            ptr::null_mut()
        }
    }
}

/// `PFN_vkFreeFunction`.
///
/// # Safety
///
/// - `user_data` as in [`tracker`].
/// - `memory` is null or a live pointer from these callbacks (spec).
unsafe extern "system" fn free(user_data: *mut c_void, memory: *mut c_void) {
    // SAFETY: Vulkan passes back the pUserData of `callbacks()` (caller's contract).
    let Some(t) = (unsafe { tracker(user_data) }) else {
        return;
    };
    let Some(user) = NonNull::new(memory.cast::<u8>()) else {
        t.null_free_calls.fetch_add(1, RELAXED);
        return;
    };
    // SAFETY: `memory` is a live pointer from these callbacks (spec).
    let header = unsafe { raw_free(user) };
    t.scopes[header.bucket as usize]
        .free_calls
        .fetch_add(1, RELAXED);
    t.on_freed(header);
}

/// `PFN_vkInternalAllocationNotification`.
///
/// # Safety
///
/// - `user_data` as in [`tracker`].
unsafe extern "system" fn internal_allocation(
    user_data: *mut c_void,
    size: usize,
    _kind: vk::InternalAllocationType,
    scope: vk::SystemAllocationScope,
) {
    // SAFETY: Vulkan passes back the pUserData of `callbacks()` (caller's contract).
    let Some(t) = (unsafe { tracker(user_data) }) else {
        return;
    };
    let s = &t.scopes[bucket(scope)];
    s.internal_allocation_calls.fetch_add(1, RELAXED);
    grow(&s.internal_live_bytes, &s.internal_peak_bytes, size as u64);
    grow(
        &t.total_internal_live_bytes,
        &t.total_internal_peak_bytes,
        size as u64,
    );
}

/// `PFN_vkInternalFreeNotification`.
///
/// # Safety
///
/// - `user_data` as in [`tracker`].
unsafe extern "system" fn internal_free(
    user_data: *mut c_void,
    size: usize,
    _kind: vk::InternalAllocationType,
    scope: vk::SystemAllocationScope,
) {
    // SAFETY: Vulkan passes back the pUserData of `callbacks()` (caller's contract).
    let Some(t) = (unsafe { tracker(user_data) }) else {
        return;
    };
    let s = &t.scopes[bucket(scope)];
    s.internal_free_calls.fetch_add(1, RELAXED);
    shrink(&s.internal_live_bytes, size as u64);
    shrink(&t.total_internal_live_bytes, size as u64);
}
