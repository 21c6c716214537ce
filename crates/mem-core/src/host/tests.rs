use super::block::HEADER_SPACE;
use super::*;
use vk::SystemAllocationScope as Scope;

/// The callbacks with their function pointers unwrapped, for direct calls.
struct Fns {
    user: *mut c_void,
    alloc: unsafe extern "system" fn(*mut c_void, usize, usize, Scope) -> *mut c_void,
    realloc:
        unsafe extern "system" fn(*mut c_void, *mut c_void, usize, usize, Scope) -> *mut c_void,
    free: unsafe extern "system" fn(*mut c_void, *mut c_void),
    ialloc: unsafe extern "system" fn(*mut c_void, usize, vk::InternalAllocationType, Scope),
    ifree: unsafe extern "system" fn(*mut c_void, usize, vk::InternalAllocationType, Scope),
}

fn fns(t: &TrackingHostAllocator) -> Fns {
    let cb = t.callbacks();
    Fns {
        user: cb.p_user_data,
        alloc: cb.pfn_allocation.unwrap(),
        realloc: cb.pfn_reallocation.unwrap(),
        free: cb.pfn_free.unwrap(),
        ialloc: cb.pfn_internal_allocation.unwrap(),
        ifree: cb.pfn_internal_free.unwrap(),
    }
}

impl Fns {
    fn alloc(&self, size: usize, align: usize, scope: Scope) -> *mut u8 {
        // SAFETY: user points at a tracker the test keeps alive.
        unsafe { (self.alloc)(self.user, size, align, scope) }.cast()
    }
    /// # Safety
    /// - `p` is null or live from these callbacks.
    unsafe fn realloc(&self, p: *mut u8, size: usize, align: usize, scope: Scope) -> *mut u8 {
        // SAFETY: caller's contract; user as in `alloc`.
        unsafe { (self.realloc)(self.user, p.cast(), size, align, scope) }.cast()
    }
    /// # Safety
    /// - `p` is null or live from these callbacks.
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: caller's contract; user as in `alloc`.
        unsafe { (self.free)(self.user, p.cast()) }
    }
}

/// Writes a pattern derived from `seed` into `len` bytes at `p`.
///
/// # Safety
///
/// - `p` is a live block of at least `len` bytes.
unsafe fn fill(p: *mut u8, len: usize, seed: u8) {
    // SAFETY: caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts_mut(p, len) };
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
}

/// Checks the pattern [`fill`] wrote.
///
/// # Safety
///
/// - `p` is a live block of at least `len` initialized bytes.
unsafe fn check(p: *const u8, len: usize, seed: u8) {
    // SAFETY: caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(p, len) };
    for (i, b) in bytes.iter().enumerate() {
        assert_eq!(*b, seed.wrapping_add(i as u8), "byte {i}");
    }
}

#[test]
fn header_space_is_sixteen() {
    assert_eq!(HEADER_SPACE, 16);
    assert!(std::mem::align_of::<Header>() <= HEADER_SPACE);
}

#[test]
fn alignments_1_to_4096() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    let mut live = Vec::new();
    let mut bytes = 0u64;
    for log2 in 0..=12 {
        let align = 1usize << log2;
        for size in [0usize, 1, 3, 16, 100, 4096, 10_000] {
            let p = f.alloc(size, align, Scope::OBJECT);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align} size {size}");
            // SAFETY: the block is live and holds at least that many (written) bytes.
            unsafe { fill(p, size, log2 as u8) };
            live.push((p, size, log2 as u8));
            bytes += size as u64;
        }
    }
    let s = t.stats();
    assert_eq!(s.object.live_bytes, bytes);
    assert_eq!(s.object.live_allocations, live.len() as u64);
    assert_eq!(s.object.allocation_calls, live.len() as u64);
    assert_eq!(s.total.live_bytes, bytes);
    assert_eq!(s.total.peak_bytes, bytes);
    for (p, size, seed) in live {
        // SAFETY: the block is live and holds at least that many (written) bytes.
        unsafe { check(p, size, seed) };
        // SAFETY: p is live from these callbacks.
        unsafe { f.free(p) };
    }
    let s = t.stats();
    assert_eq!(s.total.live_bytes, 0);
    assert_eq!(s.total.live_allocations, 0);
    assert_eq!(s.object.free_calls, 91);
    assert_eq!(s.object.peak_bytes, bytes);
}

#[test]
fn realloc_grow_and_shrink_keep_contents() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    let p = f.alloc(100, 8, Scope::COMMAND);
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { fill(p, 100, 7) };
    // SAFETY: p is live; replaced by the result.
    let p = unsafe { f.realloc(p, 10_000, 8, Scope::COMMAND) };
    assert!(!p.is_null());
    assert_eq!(p as usize % 8, 0);
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { check(p, 100, 7) };
    assert_eq!(t.stats().command.live_bytes, 10_000);
    assert_eq!(t.stats().command.peak_bytes, 10_000);
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { fill(p, 10_000, 9) };
    // SAFETY: p is live; replaced by the result.
    let p = unsafe { f.realloc(p, 33, 8, Scope::COMMAND) };
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { check(p, 33, 9) };
    let s = t.stats();
    assert_eq!(s.command.live_bytes, 33);
    assert_eq!(s.command.peak_bytes, 10_000);
    assert_eq!(s.command.live_allocations, 1);
    assert_eq!(s.command.reallocation_calls, 2);
    // SAFETY: p is live.
    unsafe { f.free(p) };
    assert_eq!(t.stats().total.live_bytes, 0);
}

#[test]
fn realloc_changes_alignment_and_scope() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    let p = f.alloc(64, 4, Scope::COMMAND);
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { fill(p, 64, 1) };
    // SAFETY: p is live; replaced by the result.
    let p = unsafe { f.realloc(p, 200, 4096, Scope::OBJECT) };
    assert_eq!(p as usize % 4096, 0);
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { check(p, 64, 1) };
    let s = t.stats();
    assert_eq!((s.command.live_bytes, s.command.live_allocations), (0, 0));
    assert_eq!((s.object.live_bytes, s.object.live_allocations), (200, 1));
    assert_eq!(s.total.live_bytes, 200);
    assert_eq!(s.total.peak_bytes, 200);
    // SAFETY: p is live; replaced by the result.
    let p = unsafe { f.realloc(p, 50, 2, Scope::OBJECT) };
    assert_eq!(p as usize % 2, 0);
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { check(p, 50, 1) };
    // SAFETY: p is live.
    unsafe { f.free(p) };
    let s = t.stats();
    assert_eq!(s.total.live_bytes, 0);
    assert_eq!(s.total.live_allocations, 0);
    assert_eq!(s.object.free_calls, 1);
}

#[test]
fn realloc_null_allocates_and_zero_frees() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    // SAFETY: null original.
    let p = unsafe { f.realloc(ptr::null_mut(), 48, 16, Scope::DEVICE) };
    assert!(!p.is_null());
    assert_eq!(p as usize % 16, 0);
    assert_eq!(t.stats().device.live_bytes, 48);
    // SAFETY: p is live; size 0 frees it.
    let q = unsafe { f.realloc(p, 0, 16, Scope::DEVICE) };
    assert!(q.is_null());
    let s = t.stats();
    assert_eq!(s.device.live_bytes, 0);
    assert_eq!(s.device.live_allocations, 0);
    assert_eq!(s.device.reallocation_calls, 2);
    assert_eq!(s.device.failed_calls, 0);
}

#[test]
fn free_null_is_a_no_op() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    // SAFETY: null is allowed.
    unsafe { f.free(ptr::null_mut()) };
    let s = t.stats();
    assert_eq!(s.null_free_calls, 1);
    assert_eq!(s.total.free_calls, 0);
    assert_eq!(s.total.live_bytes, 0);
}

#[test]
fn failures_return_null_without_panicking() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    assert!(f.alloc(16, 3, Scope::CACHE).is_null());
    assert!(f.alloc(usize::MAX, 8, Scope::CACHE).is_null());
    assert!(f.alloc(isize::MAX as usize, 8, Scope::CACHE).is_null());
    let p = f.alloc(32, 0, Scope::CACHE); // 0 is treated as 1
    assert!(!p.is_null());
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { fill(p, 32, 5) };
    // SAFETY: p is live; the failed realloc leaves it untouched.
    let q = unsafe { f.realloc(p, usize::MAX - 8, 8, Scope::CACHE) };
    assert!(q.is_null());
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { check(p, 32, 5) };
    // SAFETY: as above.
    let q = unsafe { f.realloc(p, 64, 6, Scope::CACHE) };
    assert!(q.is_null());
    // SAFETY: the block is live and holds at least that many (written) bytes.
    unsafe { check(p, 32, 5) };
    let s = t.stats();
    assert_eq!(s.cache.failed_calls, 5);
    assert_eq!(s.cache.live_bytes, 32);
    assert_eq!(s.cache.live_allocations, 1);
    // SAFETY: p is still live.
    unsafe { f.free(p) };
    assert_eq!(t.stats().total.live_bytes, 0);
}

#[test]
fn scopes_are_counted_apart_and_peaks_reset() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    let scopes = [
        Scope::COMMAND,
        Scope::OBJECT,
        Scope::CACHE,
        Scope::DEVICE,
        Scope::INSTANCE,
        Scope::from_raw(77),
    ];
    let ptrs: Vec<_> = scopes
        .iter()
        .enumerate()
        .map(|(i, &s)| f.alloc(10 * (i + 1), 8, s))
        .collect();
    let s = t.stats();
    for (i, &scope) in scopes.iter().enumerate() {
        assert_eq!(s.scope(scope).live_bytes, 10 * (i as u64 + 1));
        assert_eq!(s.scope(scope).allocation_calls, 1);
    }
    assert_eq!(s.unknown_scope.live_bytes, 60);
    assert_eq!(s.total.live_bytes, 210);
    for p in ptrs {
        // SAFETY: p is live.
        unsafe { f.free(p) };
    }
    assert_eq!(t.stats().total.peak_bytes, 210);
    t.reset_peaks();
    let s = t.stats();
    assert_eq!(s.total.peak_bytes, 0);
    assert_eq!(s.instance.peak_bytes, 0);
}

#[test]
fn internal_notifications() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    let exe = vk::InternalAllocationType::EXECUTABLE;
    // SAFETY: user points at a live tracker.
    unsafe {
        (f.ialloc)(f.user, 1000, exe, Scope::OBJECT);
        (f.ialloc)(f.user, 500, exe, Scope::DEVICE);
        (f.ifree)(f.user, 1000, exe, Scope::OBJECT);
        // A bogus free saturates at zero instead of wrapping.
        (f.ifree)(f.user, 9999, exe, Scope::CACHE);
    }
    let s = t.stats();
    assert_eq!(s.object.internal_allocation_calls, 1);
    assert_eq!(s.object.internal_free_calls, 1);
    assert_eq!(s.object.internal_live_bytes, 0);
    assert_eq!(s.object.internal_peak_bytes, 1000);
    assert_eq!(s.device.internal_live_bytes, 500);
    assert_eq!(s.cache.internal_live_bytes, 0);
    assert_eq!(s.total.internal_live_bytes, 500);
    assert_eq!(s.total.internal_peak_bytes, 1500);
    assert_eq!(s.total.live_bytes, 0);
}

#[test]
fn concurrent_use_balances() {
    let t = TrackingHostAllocator::new();
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let t = &t;
            scope.spawn(move || {
                let f = fns(t);
                for round in 0..500usize {
                    let size = 1 + (round * 37 + thread as usize) % 300;
                    let align = 1 << (round % 8);
                    let p = f.alloc(size, align, Scope::OBJECT);
                    // SAFETY: the block is live and holds at least that many (written) bytes.
                    unsafe { fill(p, size, thread) };
                    // SAFETY: p is live; replaced by the result.
                    let p = unsafe { f.realloc(p, size * 2, align, Scope::OBJECT) };
                    // SAFETY: the block is live and holds at least that many (written) bytes.
                    unsafe { check(p, size, thread) };
                    // SAFETY: p is live.
                    unsafe { f.free(p) };
                }
            });
        }
    });
    let s = t.stats();
    assert_eq!(s.total.live_bytes, 0);
    assert_eq!(s.total.live_allocations, 0);
    assert_eq!(s.object.allocation_calls, 2000);
    assert_eq!(s.object.reallocation_calls, 2000);
    assert_eq!(s.object.free_calls, 2000);
}

#[cfg(feature = "json")]
#[test]
fn stats_serialize() {
    let t = TrackingHostAllocator::new();
    let f = fns(&t);
    let p = f.alloc(8, 8, Scope::INSTANCE);
    let json = serde_json::to_value(t.stats()).unwrap();
    assert_eq!(json["instance"]["live_bytes"], 8);
    assert_eq!(json["total"]["live_allocations"], 1);
    // SAFETY: p is live.
    unsafe { f.free(p) };
}
