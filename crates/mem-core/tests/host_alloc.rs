//! The tracking host allocator under a real instance and device (lavapipe in
//! CI), with validation on: the scopes fill up while the objects live and
//! drain to zero once they are destroyed.

use ash::vk;
use mem_core::host::TrackingHostAllocator;
use mem_testkit::TestContext;

#[test]
fn instance_device_and_objects_through_the_tracker() {
    let tracker = TrackingHostAllocator::new();
    // SAFETY: the callbacks follow the spec and are thread-safe; `tracker`
    // (an Arc) lives until the end of this function, after `ctx.finish()`.
    let ctx =
        unsafe { TestContext::builder().allocation_callbacks(Some(tracker.callbacks())) }.build();
    let after_create = tracker.stats();
    eprintln!(
        "after instance + device: instance {} B, device {} B, object {} B live",
        after_create.instance.live_bytes,
        after_create.device.live_bytes,
        after_create.object.live_bytes
    );
    assert!(
        after_create.instance.live_bytes > 0,
        "vkCreateInstance allocated nothing in INSTANCE scope"
    );
    assert!(
        after_create.device.live_bytes > 0,
        "vkCreateDevice allocated nothing in DEVICE scope"
    );
    assert_eq!(after_create.total.failed_calls, 0);

    // Objects created with the callbacks: OBJECT scope.
    let callbacks = tracker.callbacks();
    let device = ctx.device();
    let info = vk::BufferCreateInfo::default()
        .size(4096)
        .usage(vk::BufferUsageFlags::TRANSFER_DST)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    // SAFETY: valid create info; destroyed below with the same callbacks.
    let buffers: Vec<vk::Buffer> = (0..8)
        .map(|_| unsafe { device.create_buffer(&info, Some(&callbacks)) }.unwrap())
        .collect();
    // one_shot creates its command pool and fence with the context's
    // callbacks, i.e. the tracker's.
    let (family, _) = ctx.transfer_queue();
    ctx.one_shot(family, |_cmd| {});
    let with_objects = tracker.stats();
    assert!(
        with_objects.object.live_allocations >= after_create.object.live_allocations + 8
            && with_objects.object.live_bytes > after_create.object.live_bytes,
        "buffers did not allocate in OBJECT scope: {:#?}",
        with_objects.object
    );
    assert!(with_objects.object.allocation_calls > after_create.object.allocation_calls);

    for buffer in buffers {
        // SAFETY: created above with these callbacks; never used by the GPU.
        unsafe { device.destroy_buffer(buffer, Some(&callbacks)) };
    }
    assert_eq!(
        tracker.stats().object.live_bytes,
        after_create.object.live_bytes,
        "destroying the buffers did not give their OBJECT memory back"
    );

    ctx.finish(); // panics on any validation message

    let end = tracker.stats();
    assert_eq!(end.total.live_bytes, 0, "host memory leaked: {end:#?}");
    assert_eq!(end.total.live_allocations, 0);
    assert_eq!(end.total.failed_calls, 0);
    assert!(end.total.peak_bytes >= after_create.total.live_bytes);
    assert!(end.instance.free_calls > 0 && end.device.free_calls > 0);
}
