//! The two-family path for real: the belt copies on a dedicated transfer
//! family, releases EXCLUSIVE resources, and the test acquires them on the
//! graphics family after a GPU-side wait on the ticket, then reads them back.
//! Runs under validation with synchronization validation.
//!
//! lavapipe has one queue family, so there the test says so and returns; it
//! runs for real on GPUs with a dedicated transfer family (NVIDIA H100:
//! docs/results/h100-2026-12-06-images).

mod common;

use std::sync::Arc;

use ash::vk;
use mem_core::MemoryUsage;
use mem_resources::{BufferDesc, ImageDesc};
use mem_staging::belt::{SharedQueue, StagingBelt, StagingBeltConfig};
use mem_staging::plan::{expected_data_size, ImageLayout};
use mem_staging::queues::pick_transfer_family;
use mem_testkit::TestContext;
use parking_lot::Mutex;

#[test]
fn ownership_transfer_from_a_dedicated_transfer_family() {
    two_family(false);
}

/// The same with the large buffer imported from host memory
/// (VK_EXT_external_memory_host) instead of copied into the ring.
#[test]
fn ownership_transfer_of_an_imported_upload() {
    two_family(true);
}

fn two_family(import: bool) {
    let ctx = TestContext::builder()
        .want_device_extension(ash::ext::external_memory_host::NAME)
        .build();
    let import = import && ctx.has_extension(ash::ext::external_memory_host::NAME);
    let families: Vec<vk::QueueFamilyProperties> =
        ctx.queue_families().into_iter().map(|(_, p)| p).collect();
    let (graphics, _) = ctx.graphics_queue();
    let transfer = pick_transfer_family(&families).unwrap();
    if transfer == graphics {
        eprintln!(
            "note: this device has no dedicated transfer family (only {} families): \
             the two-family path needs a GPU with a dedicated transfer family",
            families.len()
        );
        ctx.finish();
        return;
    }
    let tqueue = ctx
        .queue(transfer)
        .expect("testkit creates a queue on every transfer family");
    let (allocator, res) = common::stack(&ctx);
    let shared = SharedQueue {
        family: transfer,
        queue: tqueue,
        lock: Arc::new(Mutex::new(())),
    };
    // SAFETY: handles from the context; the transfer queue is used only by the belt.
    let mut belt = unsafe {
        StagingBelt::new(
            res.clone(),
            ctx.instance(),
            ctx.physical_device(),
            shared,
            graphics,
            StagingBeltConfig {
                force_staging: true,
                external_memory_host: import,
                import_threshold: 1 << 20,
                ..StagingBeltConfig::with_ring_size(4 << 20)
            },
        )
    }
    .unwrap();
    assert!(belt.transfers_ownership());

    let size = 3 << 20; // larger than a chunk: streams over several batches
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
    let buf = res
        .create_buffer(&BufferDesc::new(
            size as u64,
            vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::GpuOnly,
        ))
        .unwrap();
    let img_desc = ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 256, 128, 9).usage(
        vk::ImageUsageFlags::TRANSFER_DST
            | vk::ImageUsageFlags::TRANSFER_SRC
            | vk::ImageUsageFlags::SAMPLED,
    );
    let img = res.create_image(&img_desc).unwrap();
    let layout = ImageLayout {
        format: img_desc.format,
        image_type: vk::ImageType::TYPE_2D,
        extent: img_desc.extent,
        mip_levels: 9,
        array_layers: 1,
        aspect: None,
    };
    let img_len = expected_data_size(&layout).unwrap();
    let img_data: Vec<u8> = (0..img_len).map(|i| (i * 13 + 1) as u8).collect();

    let _ = belt.upload_buffer(&buf, 0, &data).unwrap();
    let _ = belt
        .upload_image(&img, &img_data, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap();
    let ticket = belt.flush().unwrap();
    let acquire = belt.take_acquire_barriers(ticket).unwrap();
    assert_eq!(acquire.buffers.len(), 1);
    assert_eq!(acquire.images.len(), 1);
    assert_eq!(acquire.buffers[0].src_queue_family_index, transfer);
    assert_eq!(acquire.buffers[0].dst_queue_family_index, graphics);
    assert_eq!(
        acquire.images[0].new_layout,
        vk::ImageLayout::TRANSFER_SRC_OPTIMAL
    );
    let (_, value) = acquire.wait.unwrap();
    assert_eq!(value, ticket.value());

    // The graphics family's view: acquire what the belt released, read
    // the buffer and every level of the image back.
    let read_on_graphics = |acquire: &mem_staging::AcquireBarriers| {
        acquire_and_read_back(
            &ctx,
            &res,
            graphics,
            acquire,
            &buf,
            size as u64,
            &img,
            img_len,
        )
    };
    // On the graphics family: wait for the ticket, acquire, read back.
    let back = read_on_graphics(&acquire);
    assert!(belt.is_complete(ticket).unwrap());
    assert!(
        back[..size] == data[..],
        "buffer contents after ownership transfer"
    );
    if import {
        assert!(
            belt.stats().bytes_imported > 0,
            "the large buffer was imported: {:?}",
            belt.stats()
        );
    }
    assert!(
        back[size..] == img_data[..],
        "image contents after ownership transfer"
    );
    eprintln!(
        "two-family upload verified (import {import}): transfer family {transfer} -> graphics family {graphics}, {} batches, {} bytes imported",
        belt.stats().batches_submitted,
        belt.stats().bytes_imported
    );

    // The graphics family owns the image now: a partial update would need it
    // back, so it is refused; a whole upload discards the contents and needs
    // no transfer. Uploaded twice before the submit, it is released once.
    assert_eq!(
        img.layouts().state(0, 0).owner_family,
        graphics,
        "released to the graphics family"
    );
    let e = belt
        .upload_image_subresources(
            &img,
            mem_staging::ImageSubresources::level(8),
            &[0; 4],
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
        )
        .unwrap_err();
    assert!(
        matches!(e, mem_staging::StagingError::OwnedByAnotherFamily { family, .. } if family == graphics),
        "{e}"
    );
    // A readback is refused too, until the graphics family hands the image
    // over: then the belt acquires it, reads it and releases it back, and
    // the graphics family acquires it again from the download's ticket.
    let e = belt
        .download_image(&img, mem_staging::ImageSubresources::all())
        .unwrap_err();
    assert!(
        matches!(e, mem_staging::StagingError::OwnedByAnotherFamily { family, .. } if family == graphics),
        "{e}"
    );
    let release = belt
        .release_image_to_belt(&img, mem_staging::ImageSubresources::all())
        .unwrap();
    assert_eq!(release.len(), 9, "one release per subresource");
    assert_eq!(release[0].src_queue_family_index, graphics);
    assert_eq!(release[0].dst_queue_family_index, transfer);
    assert_eq!(img.layouts().state(0, 0).owner_family, transfer);
    submit_on_graphics(&ctx, graphics, &release);
    // Read back in two ranges other than the one handed over: the last
    // level alone, then the others.
    let rest = mem_staging::ImageSubresources {
        base_mip_level: 0,
        level_count: 8,
        base_array_layer: 0,
        layer_count: 1,
    };
    let mut read = Vec::new();
    let mut tickets = Vec::new();
    for part in [mem_staging::ImageSubresources::level(8), rest] {
        let download = belt.download_image(&img, part).unwrap();
        let mut bytes = vec![0u8; download.len() as usize];
        belt.read_download(&download, &mut bytes).unwrap();
        tickets.push(download.ticket());
        read.push(bytes);
    }
    assert!(read[1] == img_data[..read[1].len()], "levels 0-7 read back");
    assert!(read[0] == img_data[read[1].len()..], "level 8 read back");
    let acquire = belt.take_acquire_barriers(tickets[1]).unwrap();
    assert_eq!(acquire.images.len(), 9, "every level released back");
    assert!(acquire
        .images
        .iter()
        .all(|b| b.src_queue_family_index == transfer && b.dst_queue_family_index == graphics));
    assert_eq!(img.layouts().state(0, 0).owner_family, graphics);
    let back = read_on_graphics(&acquire);
    assert!(
        back[size..] == img_data[..],
        "the graphics family has it back"
    );

    // A partial update after handing one level over acquires it.
    let release = belt
        .release_image_to_belt(&img, mem_staging::ImageSubresources::level(8))
        .unwrap();
    assert_eq!(release.len(), 1);
    submit_on_graphics(&ctx, graphics, &release);
    let _ = belt
        .upload_image_subresources(
            &img,
            mem_staging::ImageSubresources::level(8),
            &[9, 8, 7, 6],
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
        )
        .unwrap();
    let ticket = belt.flush().unwrap();
    let acquire = belt.take_acquire_barriers(ticket).unwrap();
    assert_eq!(acquire.images.len(), 1);
    let back = read_on_graphics(&acquire);
    let mut updated = img_data.clone();
    let last = updated.len() - 4;
    updated[last..].copy_from_slice(&[9, 8, 7, 6]);
    assert!(
        back[size..] == updated[..],
        "level 8 updated, the rest kept"
    );

    // Handed over and given back unused.
    let release = belt
        .release_image_to_belt(&img, mem_staging::ImageSubresources::level(8))
        .unwrap();
    submit_on_graphics(&ctx, graphics, &release);
    belt.return_image_to_engine(&img, mem_staging::ImageSubresources::all())
        .unwrap();
    assert_eq!(img.layouts().state(8, 0).owner_family, graphics);
    let ticket = belt.flush().unwrap();
    let acquire = belt.take_acquire_barriers(ticket).unwrap();
    assert_eq!(acquire.images.len(), 1, "level 8 alone was handed over");
    let back = read_on_graphics(&acquire);
    assert!(back[size..] == updated[..], "given back unchanged");

    // A whole upload after a handover still acquires what was released.
    let release = belt
        .release_image_to_belt(&img, mem_staging::ImageSubresources::level(8))
        .unwrap();
    submit_on_graphics(&ctx, graphics, &release);
    let _ = belt
        .upload_image(&img, &img_data, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap();
    let ticket = belt.flush().unwrap();
    let acquire = belt.take_acquire_barriers(ticket).unwrap();
    let back = read_on_graphics(&acquire);
    assert!(back[size..] == img_data[..], "replaced after a handover");

    let first: Vec<u8> = (0..img_len).map(|i| (i * 5 + 3) as u8).collect();
    let second: Vec<u8> = (0..img_len).map(|i| (i * 11 + 7) as u8).collect();
    let _ = belt
        .upload_image(&img, &first, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap();
    let _ = belt
        .upload_image(&img, &second, vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
        .unwrap();
    let ticket = belt.flush().unwrap();
    let acquire = belt.take_acquire_barriers(ticket).unwrap();
    assert_eq!(
        acquire.images.len(),
        1,
        "one release and acquire for both uploads"
    );
    let back = read_on_graphics(&acquire);
    assert!(back[size..] == second[..], "the second upload won");
    drop(belt);
    // SAFETY: idle (fence waited).
    unsafe {
        res.destroy_buffer(buf).unwrap();
        res.destroy_image(img).unwrap();
    }
    drop(res);
    assert!(allocator.leak_report().is_empty());
    drop(allocator);
    ctx.finish();
}

/// On the graphics family: waits for the ticket in `acquire`, records the
/// acquire barriers, copies `buf`'s first `size` bytes and every level of
/// `img` into a readback buffer, and returns its bytes.
#[allow(clippy::too_many_arguments)]
fn acquire_and_read_back(
    ctx: &TestContext,
    res: &mem_resources::ResourceManager,
    graphics: u32,
    acquire: &mem_staging::AcquireBarriers,
    buf: &mem_resources::Buffer,
    size: u64,
    img: &mem_resources::Image,
    img_len: u64,
) -> Vec<u8> {
    let readback = res
        .create_buffer(&BufferDesc::readback(size + img_len))
        .unwrap();
    on_graphics(ctx, graphics, acquire.wait, |d, cmd| {
        // SAFETY: `cmd` is recording on the graphics family; the submission
        // waits for the belt's timeline value before the acquire.
        unsafe {
            acquire.record(
                d,
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::AccessFlags::TRANSFER_READ,
            );
            d.cmd_copy_buffer(
                cmd,
                buf.handle(),
                readback.handle(),
                &[vk::BufferCopy {
                    src_offset: 0,
                    dst_offset: 0,
                    size,
                }],
            );
        }
        let mut regions = Vec::new();
        let mut off = size;
        for level in 0..9u32 {
            let (w, h) = ((256u32 >> level).max(1), (128u32 >> level).max(1));
            regions.push(vk::BufferImageCopy {
                buffer_offset: off,
                image_subresource: vk::ImageSubresourceLayers {
                    aspect_mask: vk::ImageAspectFlags::COLOR,
                    mip_level: level,
                    base_array_layer: 0,
                    layer_count: 1,
                },
                image_extent: vk::Extent3D {
                    width: w,
                    height: h,
                    depth: 1,
                },
                ..Default::default()
            });
            off += u64::from(w * h * 4);
        }
        // SAFETY: as above; the image is in TRANSFER_SRC_OPTIMAL.
        unsafe {
            d.cmd_copy_image_to_buffer(
                cmd,
                img.handle(),
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                readback.handle(),
                &regions,
            )
        };
    });
    let mut back = vec![0u8; (size + img_len) as usize];
    res.read_buffer(&readback, 0, &mut back).unwrap();
    // SAFETY: the submission was waited for.
    unsafe { res.destroy_buffer(readback) }.unwrap();
    back
}

/// Records `barriers` (releases to the belt's family) on the graphics
/// family, submits them and waits on the host, so the belt's next batch
/// runs after them.
fn submit_on_graphics(ctx: &TestContext, graphics: u32, barriers: &[vk::ImageMemoryBarrier<'_>]) {
    on_graphics(ctx, graphics, None, |d, cmd| {
        // SAFETY: `cmd` is recording; the image is alive.
        unsafe {
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::ALL_COMMANDS,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                barriers,
            )
        };
    });
}

/// Records one command buffer on the graphics family with `record`,
/// submits it (after `wait`, a timeline semaphore value, if any) and waits
/// for it on the host.
fn on_graphics(
    ctx: &TestContext,
    graphics: u32,
    wait: Option<(vk::Semaphore, u64)>,
    record: impl FnOnce(&ash::Device, vk::CommandBuffer),
) {
    let (_, gqueue) = ctx.graphics_queue();
    let d = ctx.device();
    let pool_info = vk::CommandPoolCreateInfo::default().queue_family_index(graphics);
    // SAFETY: everything below runs on this thread with live handles; the
    // fence is waited for before the pool is destroyed.
    unsafe {
        let pool = d.create_command_pool(&pool_info, None).unwrap();
        let cmd = d
            .allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(pool)
                    .command_buffer_count(1),
            )
            .unwrap()[0];
        d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default())
            .unwrap();
        record(d, cmd);
        d.end_command_buffer(cmd).unwrap();
        let waits: Vec<vk::Semaphore> = wait.iter().map(|w| w.0).collect();
        let wait_values: Vec<u64> = wait.iter().map(|w| w.1).collect();
        let stages = vec![vk::PipelineStageFlags::ALL_COMMANDS; waits.len()];
        let cmds = [cmd];
        let mut timeline =
            vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&wait_values);
        let submit = vk::SubmitInfo::default()
            .wait_semaphores(&waits)
            .wait_dst_stage_mask(&stages)
            .command_buffers(&cmds)
            .push_next(&mut timeline);
        let fence = d
            .create_fence(&vk::FenceCreateInfo::default(), None)
            .unwrap();
        {
            let _q = ctx.lock_queue(graphics).unwrap();
            d.queue_submit(gqueue, &[submit], fence).unwrap();
        }
        d.wait_for_fences(&[fence], true, u64::MAX).unwrap();
        d.destroy_fence(fence, None);
        d.destroy_command_pool(pool, None);
    }
}
