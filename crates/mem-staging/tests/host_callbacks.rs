//! The belt's own Vulkan objects (its timeline semaphore, its command pool,
//! the buffers and memory of imports) are made and destroyed with the host
//! allocation callbacks of the resource manager, here a counting
//! `TrackingHostAllocator`: the counters move for them, and everything
//! allocated through the callbacks is freed once the belt, the manager and
//! the allocator are gone. The validation layer (quiet at `ctx.finish()`)
//! also checks that every destroy passed callbacks compatible with its
//! create.

use std::sync::Arc;

use ash::vk;
use mem_core::host::{ScopeStats, TrackingHostAllocator};
use mem_core::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use mem_resources::{BufferDesc, ResourceManager, ResourceManagerCreateInfo};
use mem_staging::belt::{SharedQueue, StagingBelt, StagingBeltConfig};
use mem_testkit::TestContext;
use parking_lot::Mutex;

const MIB: u64 = 1 << 20;
const EXT: &std::ffi::CStr = ash::ext::external_memory_host::NAME;

/// The tracker's callbacks with the lifetime erased.
///
/// # Safety
/// - `tracker` outlives every Vulkan object created with the result.
unsafe fn static_callbacks(tracker: &TrackingHostAllocator) -> vk::AllocationCallbacks<'static> {
    let c = tracker.callbacks();
    vk::AllocationCallbacks {
        p_user_data: c.p_user_data,
        pfn_allocation: c.pfn_allocation,
        pfn_reallocation: c.pfn_reallocation,
        pfn_free: c.pfn_free,
        pfn_internal_allocation: c.pfn_internal_allocation,
        pfn_internal_free: c.pfn_internal_free,
        _marker: std::marker::PhantomData,
    }
}

/// An allocator and a manager over `ctx` whose Vulkan objects go through
/// `tracker`.
fn tracked_stack(
    ctx: &TestContext,
    tracker: &TrackingHostAllocator,
) -> (Arc<Allocator>, Arc<ResourceManager>) {
    // SAFETY: every test keeps its tracker (an Arc) alive past
    // `ctx.finish()`; the callbacks are thread-safe (atomics only).
    let callbacks = unsafe { static_callbacks(tracker) };
    // SAFETY: the context's handles outlive the allocator and manager, which
    // are dropped before `ctx.finish()`; callbacks as above.
    let allocator = Arc::new(
        unsafe {
            Allocator::new(
                AllocatorCreateInfo::new(ctx.instance(), ctx.physical_device(), ctx.device())
                    .allocation_callbacks(callbacks)
                    .config(AllocatorConfig::default()),
            )
        }
        .unwrap(),
    );
    // SAFETY: as above.
    let resources = Arc::new(unsafe {
        ResourceManager::new(
            ResourceManagerCreateInfo::new(
                ctx.instance(),
                ctx.physical_device(),
                ctx.device(),
                allocator.clone(),
            )
            .allocation_callbacks(callbacks),
        )
    });
    (allocator, resources)
}

fn belt_desc(import: bool) -> StagingBeltConfig {
    StagingBeltConfig {
        force_staging: true,
        external_memory_host: import,
        import_threshold: MIB,
        ..StagingBeltConfig::with_ring_size(4 * MIB)
    }
}

fn belt_on(ctx: &TestContext, resources: &Arc<ResourceManager>, import: bool) -> StagingBelt {
    let (family, queue) = ctx.transfer_queue();
    let shared = SharedQueue {
        family,
        queue,
        lock: Arc::new(Mutex::new(())),
    };
    // SAFETY: handles from the context; only the belt submits to the queue;
    // the extension is enabled when `import` is set.
    unsafe {
        StagingBelt::new(
            resources.clone(),
            ctx.instance(),
            ctx.physical_device(),
            shared,
            family,
            belt_desc(import),
        )
    }
    .unwrap()
}

/// Object-scope growth between two snapshots.
fn grown(before: &ScopeStats, after: &ScopeStats) -> (u64, u64) {
    (
        after.allocation_calls - before.allocation_calls,
        after.live_allocations - before.live_allocations,
    )
}

#[test]
fn belt_objects_go_through_the_managers_callbacks() {
    let ctx = TestContext::builder().want_device_extension(EXT).build();
    assert!(ctx.has_extension(EXT), "lavapipe has {EXT:?}");

    // What the belt's ring buffer alone costs, on a stack of its own in the
    // same state the belt's stack starts from.
    let ring_tracker = TrackingHostAllocator::new();
    let (ring_allocator, ring_resources) = tracked_stack(&ctx, &ring_tracker);
    let desc = belt_desc(true);
    let before = ring_tracker.stats().object;
    let ring = ring_resources
        .create_buffer(
            &BufferDesc::new(
                desc.ring_size,
                vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST,
                desc.ring_memory,
            )
            .name("gpumem staging ring"),
        )
        .unwrap();
    let (ring_calls, ring_live) = grown(&before, &ring_tracker.stats().object);
    // SAFETY: never used by the GPU.
    unsafe { ring_resources.destroy_buffer(ring) }.unwrap();
    drop(ring_resources);
    drop(ring_allocator);

    let tracker = TrackingHostAllocator::new();
    let (allocator, resources) = tracked_stack(&ctx, &tracker);
    assert!(resources.allocation_callbacks().is_some());
    let before_belt = tracker.stats().object;
    let mut belt = belt_on(&ctx, &resources, true);
    let with_belt = tracker.stats().object;
    let (belt_calls, belt_live) = grown(&before_belt, &with_belt);
    eprintln!(
        "object scope: ring buffer {ring_calls} calls / {ring_live} live, \
         belt {belt_calls} calls / {belt_live} live"
    );
    assert!(
        belt_live >= ring_live + 2 && belt_calls >= ring_calls + 2,
        "the semaphore and the command pool did not allocate through the callbacks: \
         ring {ring_live} live, belt {belt_live} live"
    );

    // An upload large enough to import its source: the imported buffer and
    // memory are made and freed through the callbacks within the call.
    let size = 3 * MIB + 17;
    let dst = resources
        .create_buffer(&BufferDesc::new(
            size,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUsage::GpuOnly,
        ))
        .unwrap();
    let backing: Vec<u8> = (0..size + 5).map(|i| (i * 7 + 3) as u8).collect();
    let before_upload = tracker.stats().object;
    let ticket = belt.upload_buffer(&dst, 0, &backing[5..]).unwrap();
    belt.wait(ticket).unwrap();
    let after_upload = tracker.stats().object;
    assert!(belt.stats().bytes_imported > 2 * MIB, "{:?}", belt.stats());
    assert!(
        after_upload.allocation_calls >= before_upload.allocation_calls + 2
            && after_upload.free_calls >= before_upload.free_calls + 2,
        "the import's buffer and memory did not go through the callbacks: \
         {before_upload:?} -> {after_upload:?}"
    );
    // SAFETY: the upload was waited for.
    unsafe { resources.destroy_buffer(dst) }.unwrap();

    drop(belt);
    // The allocator keeps an empty block per type for reuse: give those
    // back so only what the belt itself made is compared.
    allocator.trim();
    let after_belt = tracker.stats().object;
    assert_eq!(
        after_belt.live_allocations, before_belt.live_allocations,
        "the belt's objects were not all freed through the callbacks"
    );
    assert_eq!(after_belt.live_bytes, before_belt.live_bytes);
    assert_eq!(after_belt.failed_calls, 0);

    drop(resources);
    drop(allocator);
    let end = tracker.stats();
    assert_eq!(end.total.live_bytes, 0, "host memory left: {end:#?}");
    assert_eq!(end.total.live_allocations, 0);
    ctx.finish(); // fails on any validation message
    drop(tracker);
    drop(ring_tracker);
}
