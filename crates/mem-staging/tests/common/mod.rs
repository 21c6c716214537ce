//! Shared setup of mem-staging's lavapipe tests: a context with an
//! allocator, a resource manager and a belt, plus readback helpers.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::Arc;

use ash::vk;
use mem_core::{Allocator, AllocatorConfig, AllocatorCreateInfo, MemoryUsage};
use mem_resources::{
    Buffer, BufferDesc, Image, ImageDesc, ResourceManager, ResourceManagerCreateInfo,
};
use mem_staging::belt::{SharedQueue, StagingBelt, StagingBeltConfig};
use mem_staging::plan::{expected_data_size, ImageLayout};
use mem_staging::ImageSubresources;
use mem_testkit::TestContext;
use parking_lot::Mutex;

/// 1 MiB.
pub const MIB: u64 = 1 << 20;

/// An allocator and a resource manager over `ctx`'s device.
pub fn stack(ctx: &TestContext) -> (Arc<Allocator>, Arc<ResourceManager>) {
    // SAFETY: the context's handles are valid and outlive what is built on
    // them: every test drops the allocator and manager before `ctx.finish()`.
    let allocator = Arc::new(
        unsafe {
            Allocator::new(AllocatorCreateInfo {
                instance: ctx.instance(),
                physical_device: ctx.physical_device(),
                device: ctx.device(),
                memory_budget: false,
                allocation_callbacks: None,
                config: AllocatorConfig::default(),
            })
        }
        .unwrap(),
    );
    // SAFETY: as above.
    let resources = Arc::new(unsafe {
        ResourceManager::new(ResourceManagerCreateInfo {
            instance: ctx.instance(),
            physical_device: ctx.physical_device(),
            device: ctx.device(),
            allocator: allocator.clone(),
            debug_utils: ctx.debug_utils().cloned(),
            allocation_callbacks: None,
        })
    });
    (allocator, resources)
}

/// A belt on `ctx`'s transfer queue delivering to the same family, and
/// that family.
pub fn belt_on(
    ctx: &TestContext,
    resources: &Arc<ResourceManager>,
    desc: StagingBeltConfig,
) -> (StagingBelt, u32) {
    let (family, queue) = ctx.transfer_queue();
    let shared = SharedQueue {
        family,
        queue,
        lock: Arc::new(Mutex::new(())),
    };
    // SAFETY: handles from the context; the tests submit to this queue only
    // through the belt or after it is idle.
    let belt = unsafe {
        StagingBelt::new(
            resources.clone(),
            ctx.instance(),
            ctx.physical_device(),
            shared,
            family,
            desc,
        )
    }
    .unwrap();
    (belt, family)
}

/// A lavapipe context with an allocator, a resource manager and a belt.
pub struct Setup {
    /// The belt (taken by `finish`).
    pub belt: Option<StagingBelt>,
    /// The resource manager.
    pub resources: Option<Arc<ResourceManager>>,
    /// The allocator.
    pub allocator: Option<Arc<Allocator>>,
    /// The context.
    pub ctx: Option<TestContext>,
    /// The belt's (and the destinations') queue family.
    pub family: u32,
}

impl Setup {
    /// A belt on the transfer queue of a fresh lavapipe context.
    pub fn new(desc: StagingBeltConfig) -> Self {
        Self::with_context(TestContext::new(), desc)
    }

    /// A belt on the transfer queue of `ctx`, delivering to the same family.
    pub fn with_context(ctx: TestContext, desc: StagingBeltConfig) -> Self {
        let (allocator, resources) = stack(&ctx);
        let (belt, family) = belt_on(&ctx, &resources, desc);
        Self {
            belt: Some(belt),
            resources: Some(resources),
            allocator: Some(allocator),
            ctx: Some(ctx),
            family,
        }
    }

    pub fn belt(&mut self) -> &mut StagingBelt {
        self.belt.as_mut().unwrap()
    }

    pub fn res(&self) -> &ResourceManager {
        self.resources.as_ref().unwrap()
    }

    pub fn ctx(&self) -> &TestContext {
        self.ctx.as_ref().unwrap()
    }

    pub fn device_buffer(&self, size: u64) -> Buffer {
        self.buffer_in(size, MemoryUsage::GpuOnly)
    }

    /// A transfer source and destination buffer of `size` bytes in `memory`.
    pub fn buffer_in(&self, size: u64, memory: MemoryUsage) -> Buffer {
        self.res()
            .create_buffer(
                &BufferDesc::new(
                    size,
                    vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC,
                    memory,
                )
                .name(format!("dst {size}")),
            )
            .unwrap()
    }

    /// Reads every byte of `src` back through the belt.
    pub fn read_buffer(&mut self, src: &Buffer) -> Vec<u8> {
        let mut out = vec![0u8; src.requested_size() as usize];
        self.belt().read_buffer(src, 0, &mut out).unwrap();
        out
    }

    /// Reads every mip and layer of `image` back through the belt, in the
    /// upload layout (level-major, tightly packed).
    pub fn read_image(&mut self, image: &Image) -> Vec<u8> {
        let total = expected_data_size(&layout_of(image.desc())).unwrap();
        let mut out = vec![0u8; total as usize];
        self.belt()
            .read_image(image, ImageSubresources::all(), &mut out)
            .unwrap();
        out
    }

    /// The engine's own readback, independent of the belt: copies `src`
    /// into a fresh readback buffer on the GPU and returns its bytes.
    pub fn engine_read_buffer(&self, src: &Buffer) -> Vec<u8> {
        let size = src.requested_size();
        let readback = self
            .res()
            .create_buffer(&BufferDesc::readback(size))
            .unwrap();
        let device = self.ctx().device().clone();
        self.ctx().one_shot(self.family, |cmd| {
            // SAFETY: recording; both buffers alive; a memory barrier orders
            // this copy after the belt's earlier writes on this queue.
            unsafe {
                transfer_barrier(&device, cmd);
                device.cmd_copy_buffer(
                    cmd,
                    src.handle(),
                    readback.handle(),
                    &[vk::BufferCopy {
                        src_offset: 0,
                        dst_offset: 0,
                        size,
                    }],
                );
            }
        });
        let mut out = vec![0u8; size as usize];
        self.res().read_buffer(&readback, 0, &mut out).unwrap();
        // SAFETY: the one-shot waited for the copy.
        unsafe { self.res().destroy_buffer(readback) }.unwrap();
        out
    }

    /// The engine's own readback, independent of the belt: copies every mip
    /// and layer of `image` (in TRANSFER_SRC_OPTIMAL) back in the upload
    /// layout (level-major, tightly packed).
    pub fn engine_read_image(&self, image: &Image, bytes_per_texel: u64) -> Vec<u8> {
        let d = image.desc();
        let total = expected_data_size(&layout_of(d)).unwrap();
        let readback = self
            .res()
            .create_buffer(&BufferDesc::readback(total))
            .unwrap();
        let device = self.ctx().device().clone();
        let mut regions = Vec::new();
        let mut offset = 0;
        for level in 0..d.mip_levels {
            let w = (d.extent.width >> level).max(1);
            let h = (d.extent.height >> level).max(1);
            let depth = (d.extent.depth >> level).max(1);
            regions.push(vk::BufferImageCopy {
                buffer_offset: offset,
                buffer_row_length: 0,
                buffer_image_height: 0,
                image_subresource: vk::ImageSubresourceLayers {
                    aspect_mask: vk::ImageAspectFlags::COLOR,
                    mip_level: level,
                    base_array_layer: 0,
                    layer_count: d.array_layers,
                },
                image_offset: vk::Offset3D::default(),
                image_extent: vk::Extent3D {
                    width: w,
                    height: h,
                    depth,
                },
            });
            offset += u64::from(w * h * depth) * bytes_per_texel * u64::from(d.array_layers);
        }
        assert_eq!(offset, total);
        self.ctx().one_shot(self.family, |cmd| {
            // SAFETY: recording; image in TRANSFER_SRC_OPTIMAL (the upload's
            // final layout); the barrier orders after the belt's writes.
            unsafe {
                transfer_barrier(&device, cmd);
                device.cmd_copy_image_to_buffer(
                    cmd,
                    image.handle(),
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    readback.handle(),
                    &regions,
                );
            }
        });
        let mut out = vec![0u8; total as usize];
        self.res().read_buffer(&readback, 0, &mut out).unwrap();
        // SAFETY: waited.
        unsafe { self.res().destroy_buffer(readback) }.unwrap();
        out
    }

    /// The engine transitions every level and layer of `image` from `old`
    /// to `new` on the belt's queue (after all earlier work there).
    pub fn engine_transition(&self, image: &Image, old: vk::ImageLayout, new: vk::ImageLayout) {
        self.engine_transition_levels(image, 0..image.desc().mip_levels, old, new);
    }

    /// As [`Self::engine_transition`], for mip levels `levels` only.
    pub fn engine_transition_levels(
        &self,
        image: &Image,
        levels: std::ops::Range<u32>,
        old: vk::ImageLayout,
        new: vk::ImageLayout,
    ) {
        let device = self.ctx().device().clone();
        let barrier = vk::ImageMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
            .dst_access_mask(vk::AccessFlags::MEMORY_READ | vk::AccessFlags::MEMORY_WRITE)
            .old_layout(old)
            .new_layout(new)
            .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .image(image.handle())
            .subresource_range(vk::ImageSubresourceRange {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                base_mip_level: levels.start,
                level_count: levels.len() as u32,
                base_array_layer: 0,
                layer_count: image.desc().array_layers,
            });
        self.ctx().one_shot(self.family, |cmd| {
            // SAFETY: recording; the image is alive and in `old`.
            unsafe {
                device.cmd_pipeline_barrier(
                    cmd,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    vk::PipelineStageFlags::ALL_COMMANDS,
                    vk::DependencyFlags::empty(),
                    &[],
                    &[],
                    &[barrier],
                )
            }
        });
    }

    pub fn destroy(&self, b: Buffer) {
        // SAFETY: callers wait for their uploads before destroying.
        unsafe { self.res().destroy_buffer(b) }.unwrap();
    }

    pub fn finish(mut self) {
        if let Some(mut belt) = self.belt.take() {
            belt.finish().unwrap();
        }
        self.resources.take();
        let allocator = self.allocator.take().unwrap();
        assert!(
            allocator.leak_report().is_empty(),
            "leaks: {:?}",
            allocator.leak_report()
        );
        drop(allocator);
        self.ctx.take().unwrap().finish();
    }
}

/// The planner layout of an image desc.
pub fn layout_of(d: &ImageDesc) -> ImageLayout {
    ImageLayout {
        format: d.format,
        image_type: d.kind.image_type(),
        extent: d.extent,
        mip_levels: d.mip_levels,
        array_layers: d.array_layers,
        aspect: None,
    }
}

/// # Safety
/// `cmd` is recording on `device`.
pub unsafe fn transfer_barrier(device: &ash::Device, cmd: vk::CommandBuffer) {
    let barrier = vk::MemoryBarrier::default()
        .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
        .dst_access_mask(vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE);
    // SAFETY: forwarded.
    unsafe {
        device.cmd_pipeline_barrier(
            cmd,
            vk::PipelineStageFlags::TRANSFER,
            vk::PipelineStageFlags::TRANSFER,
            vk::DependencyFlags::empty(),
            &[barrier],
            &[],
            &[],
        )
    }
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
