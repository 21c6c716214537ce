//! Shared setup of the GPU tests: a validated lavapipe context, an allocator
//! and a resource manager, torn down in the right order.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ash::vk;
use mem_core::device::{HeapBudget, MappedRange, MemoryAllocateRequest};
use mem_core::{
    Allocator, AllocatorConfig, AshMemoryDevice, DeviceError, DeviceMemoryProperties, MemoryDevice,
};
use mem_resources::{ResourceManager, ResourceManagerCreateInfo};
use mem_testkit::TestContext;
use smallvec::SmallVec;

/// Context, allocator and manager. Call [`Gpu::finish`] at the end: it
/// checks that nothing leaked, drops the manager and the allocator (whose
/// `Drop` frees device memory) before the device, and then fails the test on
/// any validation message.
pub struct Gpu {
    pub resources: Option<ResourceManager>,
    pub allocator: Option<Arc<Allocator>>,
    pub ctx: TestContext,
}

impl Gpu {
    pub fn new() -> Self {
        Self::with_config(AllocatorConfig::default())
    }

    pub fn with_config(config: AllocatorConfig) -> Self {
        let ctx = TestContext::new();
        // SAFETY: the context's handles are valid and outlive the allocator
        // (dropped in `finish`, before the context).
        let allocator = Arc::new(
            unsafe {
                Allocator::new(
                    mem_core::AllocatorCreateInfo::new(
                        ctx.instance(),
                        ctx.physical_device(),
                        ctx.device(),
                    )
                    .config(config),
                )
            }
            .expect("allocator"),
        );
        let resources = manager(&ctx, Arc::clone(&allocator));
        Self {
            resources: Some(resources),
            allocator: Some(allocator),
            ctx,
        }
    }

    pub fn rm(&self) -> &ResourceManager {
        self.resources.as_ref().expect("manager alive")
    }

    pub fn allocator(&self) -> &Allocator {
        self.allocator.as_ref().expect("allocator alive")
    }

    /// Asserts nothing is left, tears down, checks validation messages.
    pub fn finish(mut self) {
        let rm = self.resources.take().expect("manager alive");
        assert_eq!(
            rm.leak_report(),
            vec![],
            "resources left at the end of the test"
        );
        rm.validate().expect("manager invariants");
        drop(rm);
        let allocator = self.allocator.take().expect("allocator alive");
        assert!(
            allocator.leak_report().is_empty(),
            "allocations left: {:?}",
            allocator.leak_report()
        );
        allocator.validate().expect("allocator invariants");
        drop(allocator);
        self.ctx.finish();
    }
}

/// A manager over `ctx` with its debug utils.
pub fn manager(ctx: &TestContext, allocator: Arc<Allocator>) -> ResourceManager {
    // SAFETY: the context's handles are valid and outlive the manager; the
    // allocator is over the same device; debug utils were loaded for it.
    unsafe {
        ResourceManager::new(
            ResourceManagerCreateInfo::new(
                ctx.instance(),
                ctx.physical_device(),
                ctx.device(),
                allocator,
            )
            .debug_utils(ctx.debug_utils().cloned()),
        )
    }
}

/// A [`MemoryDevice`] over the real device that can fail the Nth
/// `vkAllocateMemory` or `vkMapMemory`, and can hide host visibility (to
/// test host access to device-only memory on lavapipe, whose one memory
/// type is host-visible).
pub struct FaultyDevice {
    inner: AshMemoryDevice,
    props: DeviceMemoryProperties,
    pub allocate_calls: AtomicU64,
    pub map_calls: AtomicU64,
    fail_allocate_at: AtomicU64,
    fail_allocate_with: parking_lot::Mutex<DeviceError>,
    fail_map_at: AtomicU64,
}

impl FaultyDevice {
    pub fn new(ctx: &TestContext, hide_host_visible: bool) -> Self {
        // SAFETY: the context's handles are valid and outlive the device
        // wrapper (the allocator owning it is dropped before the context).
        let inner = unsafe {
            AshMemoryDevice::new(
                ctx.instance(),
                ctx.physical_device(),
                ctx.device(),
                false,
                None,
            )
        };
        let mut props = inner.properties().clone();
        if hide_host_visible {
            for t in &mut props.memory_types {
                t.flags &= !(vk::MemoryPropertyFlags::HOST_VISIBLE
                    | vk::MemoryPropertyFlags::HOST_COHERENT
                    | vk::MemoryPropertyFlags::HOST_CACHED);
            }
        }
        Self {
            inner,
            props,
            allocate_calls: AtomicU64::new(0),
            map_calls: AtomicU64::new(0),
            fail_allocate_at: AtomicU64::new(u64::MAX),
            fail_allocate_with: parking_lot::Mutex::new(DeviceError::OutOfDeviceMemory),
            fail_map_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Fails the `nth` allocate call counted from creation (1 = the first,
    /// as `ResourceManager::set_fault` counts from now).
    pub fn fail_allocate_at(&self, nth: u64, error: DeviceError) {
        *self.fail_allocate_with.lock() = error;
        self.fail_allocate_at.store(nth, Ordering::SeqCst);
    }

    /// Fails the `nth` map call counted from creation (1 = the first).
    pub fn fail_map_at(&self, nth: u64) {
        self.fail_map_at.store(nth, Ordering::SeqCst);
    }
}

impl MemoryDevice for FaultyDevice {
    fn properties(&self) -> &DeviceMemoryProperties {
        &self.props
    }

    unsafe fn allocate_memory(
        &self,
        request: &MemoryAllocateRequest,
    ) -> Result<vk::DeviceMemory, DeviceError> {
        let nth = self.allocate_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if nth == self.fail_allocate_at.load(Ordering::SeqCst) {
            return Err(*self.fail_allocate_with.lock());
        }
        // SAFETY: forwarded from the trait's contract.
        unsafe { self.inner.allocate_memory(request) }
    }

    unsafe fn free_memory(&self, memory: vk::DeviceMemory) {
        // SAFETY: forwarded.
        unsafe { self.inner.free_memory(memory) }
    }

    unsafe fn map_memory(
        &self,
        memory: vk::DeviceMemory,
        size: u64,
    ) -> Result<NonNull<u8>, DeviceError> {
        let nth = self.map_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if nth == self.fail_map_at.load(Ordering::SeqCst) {
            return Err(DeviceError::MemoryMapFailed);
        }
        // SAFETY: forwarded.
        unsafe { self.inner.map_memory(memory, size) }
    }

    unsafe fn unmap_memory(&self, memory: vk::DeviceMemory) {
        // SAFETY: forwarded.
        unsafe { self.inner.unmap_memory(memory) }
    }

    unsafe fn flush_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        // SAFETY: forwarded.
        unsafe { self.inner.flush_ranges(ranges) }
    }

    unsafe fn invalidate_ranges(&self, ranges: &[MappedRange]) -> Result<(), DeviceError> {
        // SAFETY: forwarded.
        unsafe { self.inner.invalidate_ranges(ranges) }
    }

    fn heap_budgets(&self) -> Option<SmallVec<[HeapBudget; 4]>> {
        self.inner.heap_budgets()
    }
}

/// An allocator over a shared [`FaultyDevice`].
pub fn faulty_allocator(
    ctx: &TestContext,
    hide_host_visible: bool,
    config: AllocatorConfig,
) -> (Arc<FaultyDevice>, Arc<Allocator>) {
    let dev = Arc::new(FaultyDevice::new(ctx, hide_host_visible));
    let allocator = Arc::new(Allocator::with_device(Box::new(Arc::clone(&dev)), config));
    (dev, allocator)
}

/// A deterministic pseudo-random sequence (xorshift64*), for sizes and data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
