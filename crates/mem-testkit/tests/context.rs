//! The test context on the machine's Vulkan (lavapipe in CI), validation on.

use mem_testkit::ash::vk;
use mem_testkit::TestContext;

/// Creates a buffer of size 0, which `VUID-VkBufferCreateInfo-size-00912`
/// forbids, and destroys it if the driver made one anyway.
fn provoke_validation_error(ctx: &TestContext) {
    let info = vk::BufferCreateInfo::default()
        .size(0)
        .usage(vk::BufferUsageFlags::TRANSFER_DST)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    // SAFETY: invalid on purpose (size 0); the layer reports it. Whatever the
    // layer and driver return, a created buffer is destroyed at once.
    unsafe {
        if let Ok(buffer) = ctx.device().create_buffer(&info, None) {
            ctx.device().destroy_buffer(buffer, None);
        }
    }
}

#[test]
fn builds_and_finishes_clean() {
    let ctx = TestContext::new();
    assert!(ctx.is_validation_enabled());
    assert!(ctx.api_version() >= vk::API_VERSION_1_2);
    assert!(!ctx.queue_families().is_empty());
    assert!(ctx.debug_utils().is_some());
    let (gfx_family, gfx_queue) = ctx.graphics_queue();
    let (xfer_family, xfer_queue) = ctx.transfer_queue();
    assert_ne!(gfx_queue, vk::Queue::null());
    assert_ne!(xfer_queue, vk::Queue::null());
    assert_eq!(ctx.queue(gfx_family), Some(gfx_queue));
    assert_eq!(ctx.queue(xfer_family), Some(xfer_queue));
    assert!(ctx.memory_properties().memory_type_count > 0);
    eprintln!(
        "device: {:?}, features: {:?}, messages seen (incl. uncounted): {}",
        ctx.properties().device_name_as_c_str(),
        ctx.features(),
        ctx.messages_seen()
    );
    assert_eq!(ctx.message_count(), 0, "{:?}", ctx.messages());
    ctx.finish();
}

#[test]
fn one_shot_fill_buffer_is_clean() {
    let ctx = TestContext::new();
    let device = ctx.device();
    let (family, _) = ctx.transfer_queue();
    let info = vk::BufferCreateInfo::default()
        .size(256)
        .usage(vk::BufferUsageFlags::TRANSFER_DST)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    // SAFETY: valid create info; the buffer is destroyed below after the GPU
    // finished with it (one_shot waits).
    let buffer = unsafe { device.create_buffer(&info, None) }.unwrap();
    ctx.set_name(buffer, "one_shot target");
    // SAFETY: valid buffer of this device.
    let req = unsafe { device.get_buffer_memory_requirements(buffer) };
    let props = ctx.memory_properties();
    let type_index = (0..props.memory_type_count)
        .find(|&i| req.memory_type_bits & (1 << i) != 0)
        .unwrap();
    let alloc_info = vk::MemoryAllocateInfo::default()
        .allocation_size(req.size)
        .memory_type_index(type_index);
    // SAFETY: valid allocate info; freed below.
    let memory = unsafe { device.allocate_memory(&alloc_info, None) }.unwrap();
    // SAFETY: fresh buffer and memory of a compatible type, offset 0.
    unsafe { device.bind_buffer_memory(buffer, memory, 0) }.unwrap();
    let value = ctx.one_shot(family, |cmd| {
        // SAFETY: cmd is recording; the buffer has TRANSFER_DST and bound memory.
        unsafe { device.cmd_fill_buffer(cmd, buffer, 0, vk::WHOLE_SIZE, 0xdead_beef) };
        7
    });
    assert_eq!(value, 7);
    // SAFETY: one_shot waited for the GPU; nothing else uses them.
    unsafe {
        device.destroy_buffer(buffer, None);
        device.free_memory(memory, None);
    }
    ctx.finish();
}

#[test]
fn wrong_call_is_recorded() {
    let ctx = TestContext::new();
    provoke_validation_error(&ctx);
    let messages = ctx.messages();
    assert!(!messages.is_empty(), "size-0 buffer was not reported");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("VkBufferCreateInfo-size")),
        "{messages:?}"
    );
    assert_eq!(ctx.message_count(), messages.len());
    let cleared = ctx.clear_messages();
    assert_eq!(cleared.len(), messages.len());
    assert_eq!(ctx.message_count(), 0);
    ctx.finish();
}

#[test]
#[should_panic(expected = "validation messages")]
fn finish_panics_on_messages() {
    let ctx = TestContext::new();
    provoke_validation_error(&ctx);
    ctx.finish();
}

#[test]
#[should_panic(expected = "dropped without finish")]
fn drop_panics_on_messages() {
    let ctx = TestContext::new();
    provoke_validation_error(&ctx);
    drop(ctx);
}

#[test]
#[should_panic(expected = "validation messages")]
fn leaked_object_is_reported_at_finish() {
    let ctx = TestContext::new();
    // SAFETY: valid create info; leaked on purpose.
    let _fence = unsafe {
        ctx.device()
            .create_fence(&vk::FenceCreateInfo::default(), None)
    }
    .unwrap();
    ctx.finish();
}

#[test]
fn validation_off_builds() {
    let ctx = TestContext::builder().validation(false).build();
    assert!(!ctx.is_validation_enabled());
    ctx.finish();
}

#[test]
fn wanted_extensions_only_when_supported() {
    let bogus = c"VK_GPUMEM_not_an_extension";
    let ctx = TestContext::builder()
        .want_device_extension(vk::EXT_MEMORY_BUDGET_NAME)
        .want_device_extension(vk::EXT_EXTERNAL_MEMORY_HOST_NAME)
        .want_device_extension(vk::EXT_HOST_IMAGE_COPY_NAME)
        .want_device_extension(bogus)
        .build();
    assert!(!ctx.has_extension(bogus));
    for name in ctx.enabled_extensions() {
        assert!(ctx.has_extension(name));
    }
    eprintln!("enabled: {:?}", ctx.enabled_extensions());
    ctx.finish();
}

#[test]
fn sync_hazard_is_recorded() {
    let ctx = TestContext::new();
    let device = ctx.device();
    let (family, _) = ctx.graphics_queue();
    let info = vk::BufferCreateInfo::default()
        .size(256)
        .usage(vk::BufferUsageFlags::TRANSFER_DST)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    // SAFETY: valid create info; destroyed below after one_shot waited.
    let buffer = unsafe { device.create_buffer(&info, None) }.unwrap();
    // SAFETY: valid buffer of this device.
    let req = unsafe { device.get_buffer_memory_requirements(buffer) };
    let type_index = req.memory_type_bits.trailing_zeros();
    let alloc_info = vk::MemoryAllocateInfo::default()
        .allocation_size(req.size)
        .memory_type_index(type_index);
    // SAFETY: valid allocate info; freed below.
    let memory = unsafe { device.allocate_memory(&alloc_info, None) }.unwrap();
    // SAFETY: fresh buffer and memory of a compatible type, offset 0.
    unsafe { device.bind_buffer_memory(buffer, memory, 0) }.unwrap();
    ctx.one_shot(family, |cmd| {
        // SAFETY: valid commands; the missing barrier between the two writes
        // is the write-after-write hazard synchronization validation reports.
        unsafe {
            device.cmd_fill_buffer(cmd, buffer, 0, 256, 1);
            device.cmd_fill_buffer(cmd, buffer, 0, 256, 2);
        }
    });
    // SAFETY: one_shot waited for the GPU.
    unsafe {
        device.destroy_buffer(buffer, None);
        device.free_memory(memory, None);
    }
    let messages = ctx.clear_messages();
    assert!(
        messages.iter().any(|m| m.contains("SYNC-HAZARD-WRITE")),
        "synchronization validation did not report the hazard: {messages:?}"
    );
    ctx.finish();
}

#[test]
fn api_version_1_2_is_honoured() {
    let ctx = TestContext::builder()
        .api_version(vk::API_VERSION_1_2)
        .build();
    assert_eq!(ctx.api_version(), vk::API_VERSION_1_2);
    assert!(!ctx.features().synchronization2);
    assert!(!ctx.features().maintenance4);
    ctx.finish();
}

#[test]
fn context_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TestContext>();
    // And usable from several threads at once.
    let ctx = TestContext::new();
    let (family, _) = ctx.transfer_queue();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    ctx.one_shot(family, |_cmd| {});
                }
            });
        }
    });
    ctx.finish();
}
