//! Destroying or retiring a buffer or image of another manager is refused
//! and hands the resource back unchanged, so its own manager can still
//! destroy it: nothing leaks (`Gpu::finish` fails on a leak report or on
//! the validation layer's report of a `VkBuffer` or `VkImage` left at
//! `vkDestroyDevice`).

mod common;

use ash::vk;
use common::{manager, Gpu};
use mem_core::MemoryUsage;
use mem_resources::{
    Buffer, BufferDesc, Image, ImageDesc, Refused, ResourceError, ResourceManager, TimelinePoint,
};

fn buffer(rm: &ResourceManager, name: &str) -> Buffer {
    rm.create_buffer(
        &BufferDesc::new(
            4096,
            vk::BufferUsageFlags::UNIFORM_BUFFER,
            MemoryUsage::Dynamic,
        )
        .name(name),
    )
    .unwrap()
}

fn image(rm: &ResourceManager, name: &str) -> Image {
    rm.create_image(
        &ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 64, 64, 1)
            .full_mip_chain()
            .name(name),
    )
    .unwrap()
}

/// The refusal names both managers, and the resource comes back as it was.
fn handed_back<T>(refused: Refused<T, ResourceError>, handle: impl Fn(&T) -> u64, raw: u64) -> T {
    assert!(
        matches!(refused.error(), ResourceError::ForeignResource { owner, this } if owner != this),
        "{}",
        refused.error()
    );
    assert_eq!(handle(refused.object()), raw, "the same resource");
    refused.into_inner()
}

#[test]
fn destroying_or_retiring_a_foreign_resource_hands_it_back() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    let other = manager(&gpu.ctx, gpu.allocator.clone().unwrap());
    let point = TimelinePoint::new(vk::Semaphore::null(), 1);
    let buffer_raw = |b: &Buffer| vk::Handle::as_raw(b.handle());
    let image_raw = |i: &Image| vk::Handle::as_raw(i.handle());

    let (b, b2) = (buffer(&other, "destroyed"), buffer(&other, "retired"));
    let (i, i2) = (image(&other, "destroyed"), image(&other, "retired"));
    let raws = (
        buffer_raw(&b),
        buffer_raw(&b2),
        image_raw(&i),
        image_raw(&i2),
    );
    // SAFETY: no GPU work uses the resources; every call is refused, so the
    // manager keeps no semaphore (the null one is never read).
    let refused = unsafe {
        (
            rm.destroy_buffer(b).unwrap_err(),
            rm.retire_buffer(b2, point).unwrap_err(),
            rm.destroy_image(i).unwrap_err(),
            rm.retire_image(i2, [point, point]).unwrap_err(),
        )
    };
    let b = handed_back(refused.0, buffer_raw, raws.0);
    let b2 = handed_back(refused.1, buffer_raw, raws.1);
    let i = handed_back(refused.2, image_raw, raws.2);
    let i2 = handed_back(refused.3, image_raw, raws.3);

    // The refusing manager took nothing; the owner still tracks all four.
    assert!(rm.leak_report().is_empty());
    assert_eq!(rm.pending_retired(), 0);
    assert_eq!(other.leak_report().len(), 4);
    rm.validate().unwrap();
    other.validate().unwrap();

    // Its own manager destroys them: nothing is left to leak.
    // SAFETY: no GPU work.
    unsafe {
        other.destroy_buffer(b).unwrap();
        other.destroy_buffer(b2).unwrap();
        other.destroy_image(i).unwrap();
        other.destroy_image(i2).unwrap();
    }
    assert!(other.leak_report().is_empty(), "{:?}", other.leak_report());
    other.validate().unwrap();
    drop(other);
    gpu.finish();
}

#[test]
fn a_resource_of_a_manager_over_another_allocator_is_handed_back_too() {
    let gpu = Gpu::new();
    let rm = gpu.rm();
    // SAFETY: the context's handles outlive this allocator and manager,
    // dropped before `gpu.finish()`.
    let allocator = std::sync::Arc::new(
        unsafe {
            mem_core::Allocator::new(mem_core::AllocatorCreateInfo::new(
                gpu.ctx.instance(),
                gpu.ctx.physical_device(),
                gpu.ctx.device(),
            ))
        }
        .unwrap(),
    );
    let other = manager(&gpu.ctx, allocator.clone());
    let b = buffer(&other, "other allocator's buffer");
    // SAFETY: no GPU work.
    let refused = unsafe { rm.destroy_buffer(b) }.unwrap_err();
    let (error, b) = refused.into_parts();
    assert!(matches!(error, ResourceError::ForeignResource { .. }));
    // SAFETY: no GPU work.
    unsafe { other.destroy_buffer(b) }.unwrap();
    drop(other);
    assert!(allocator.leak_report().is_empty());
    allocator.validate().unwrap();
    drop(allocator);
    gpu.finish();
}
