//! Headless rendering of one frame of a scene whose meshes and textures are
//! already on the GPU: [`render_frame`] returns the frame as RGBA8 pixels.
//!
//! What it does, in order: checks the input; creates an sRGB colour target
//! ([`COLOR_FORMAT`]), a depth target (D32_SFLOAT, else X8_D24, else D16)
//! and a readback buffer, their memory from the engine's
//! [`mem_core::Allocator`] (`GpuOnly` for the targets, `Readback` for the
//! buffer); one image view per texture and one sampler (trilinear,
//! repeating); one descriptor set per texture (binding 0: the sampled image,
//! binding 1: the sampler) allocated through `gpu-descriptor`; a render pass,
//! framebuffer and graphics pipeline (the GLSL in `shaders/`, compiled to
//! SPIR-V by naga at build time: textured, one directional light plus
//! hemisphere ambient, depth-tested, no culling, the MVP and normal matrices
//! as 128 bytes of push constants per draw); records the frame and the copy
//! of the colour target into the readback buffer, submits on the caller's
//! queue, waits on a fence, reads the pixels, and destroys everything it
//! created, on success and on every error path (the validation layer's leak
//! check at device destruction finds nothing).
//!
//! # Example
//!
//! With the scene's meshes and textures uploaded (for a complete program
//! that uploads them the simple way, see `tests/render_lavapipe.rs`):
//!
//! ```no_run
//! use mem_demo::render::{render_frame, FrameDesc, GpuMesh, GpuTexture, RenderDevice, FRAME_TIMEOUT};
//! use mem_demo::{DemoError, Scene};
//!
//! fn draw(dev: &RenderDevice<'_>, scene: &Scene, meshes: &[GpuMesh], textures: &[GpuTexture]) -> Result<(), DemoError> {
//!     let (width, height) = (1280, 720);
//!     let frame = FrameDesc {
//!         meshes,
//!         textures,
//!         draws: &scene.draws,
//!         view_proj: scene.view_proj(width as f32 / height as f32),
//!         width,
//!         height,
//!         clear_color: [0.5, 0.7, 0.9, 1.0],
//!         wait_semaphores: &[],
//!         timeout: FRAME_TIMEOUT,
//!     };
//!     // SAFETY: (in a real program) the handles are valid, the queue is not
//!     // used elsewhere, the uploads finished on this queue and left the
//!     // textures in SHADER_READ_ONLY_OPTIMAL.
//!     let rgba = unsafe { render_frame(dev, &frame) }?;
//!     mem_demo::save_png("target/frame.png", width, height, &rgba)
//! }
//! ```
//!
//! A render pass rather than dynamic rendering: it works on every Vulkan
//! version and needs no feature the engine may not have enabled.

use std::time::Duration;

use ash::vk;
use gpu_descriptor::{
    DescriptorAllocator, DescriptorSet, DescriptorSetLayoutCreateFlags, DescriptorTotalCount,
};
use gpu_descriptor_ash::AshDescriptorDevice;
use mem_core::{
    Allocation, AllocationDesc, Allocator, Dedicated, DedicatedTarget, MemoryUsage, ResourceClass,
};

use crate::error::RenderError;
use crate::math;
use crate::scene::Draw;

/// Format of the colour target and of the returned pixels: sRGB-encoded
/// RGBA8, ready for a PNG.
pub const COLOR_FORMAT: vk::Format = vk::Format::R8G8B8A8_SRGB;

/// A sane [`FrameDesc::timeout`]: lavapipe draws a few million triangles in
/// seconds, so a frame past a minute is a hang or a hostile scene.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

static VERT_SPV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesh.vert.spv"));
static FRAG_SPV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesh.frag.spv"));

/// A mesh on the GPU: vertices are [`crate::Vertex`] (32-byte stride),
/// indices `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuMesh {
    /// Vertex buffer (usage `VERTEX_BUFFER`).
    pub vertex_buffer: vk::Buffer,
    /// Index buffer of `u32` (usage `INDEX_BUFFER`).
    pub index_buffer: vk::Buffer,
    /// Indices to draw, from the start of the index buffer.
    pub index_count: u32,
}

/// A 2D texture on the GPU, in `SHADER_READ_ONLY_OPTIMAL` layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuTexture {
    /// The image (usage `SAMPLED`, one array layer).
    pub image: vk::Image,
    /// Its format (the view's format).
    pub format: vk::Format,
    /// Mip levels to sample, from level 0; at least 1.
    pub mip_levels: u32,
}

/// A semaphore the frame's submission waits on, e.g. a staging belt's
/// timeline semaphore at an upload ticket's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemaphoreWait {
    /// The semaphore (binary or timeline).
    pub semaphore: vk::Semaphore,
    /// Value to wait for (timeline semaphores; ignored for binary ones).
    pub value: u64,
    /// Stages that wait, e.g. `VERTEX_INPUT | FRAGMENT_SHADER`.
    pub stage: vk::PipelineStageFlags,
}

/// The engine's Vulkan objects the renderer borrows.
#[derive(Clone, Copy)]
pub struct RenderDevice<'a> {
    /// The instance `device` was created from.
    pub instance: &'a ash::Instance,
    /// The physical device of `device`.
    pub physical_device: vk::PhysicalDevice,
    /// The device.
    pub device: &'a ash::Device,
    /// A queue with GRAPHICS of `queue_family`.
    pub queue: vk::Queue,
    /// The queue's family.
    pub queue_family: u32,
    /// Memory for the targets and the readback buffer comes from here.
    pub allocator: &'a Allocator,
    /// Host allocation callbacks for every create/destroy, if the engine
    /// uses them (descriptor pools are created by `gpu-descriptor-ash`,
    /// which passes none).
    pub allocation_callbacks: Option<&'a vk::AllocationCallbacks<'static>>,
}

/// What to draw and how big.
#[derive(Clone, Copy, Debug)]
pub struct FrameDesc<'a> {
    /// Meshes the draws index.
    pub meshes: &'a [GpuMesh],
    /// Textures the draws index.
    pub textures: &'a [GpuTexture],
    /// Draws: mesh, texture and model matrix ([`crate::Scene::draws`]).
    pub draws: &'a [Draw],
    /// View-projection matrix into Vulkan clip space (Y down, depth 0..1),
    /// column-major, e.g. [`crate::Scene::view_proj`].
    pub view_proj: [[f32; 4]; 4],
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Background colour (linear RGBA; the target stores it sRGB-encoded).
    pub clear_color: [f32; 4],
    /// Semaphores the submission waits on (may be empty).
    pub wait_semaphores: &'a [SemaphoreWait],
    /// How long [`render_frame`] waits for the frame before it returns
    /// [`RenderError::Timeout`] (after which it still waits for the queue to
    /// go idle before freeing what the frame used). [`FRAME_TIMEOUT`] is a
    /// sane default.
    pub timeout: Duration,
}

/// Renders one frame and returns it as tightly packed RGBA8 pixels
/// ([`COLOR_FORMAT`], `width * height * 4` bytes, top row first).
///
/// # Safety
///
/// - every handle in `dev` is valid, `device` was created from `instance`
///   and `physical_device`, `allocator` allocates for `device`;
/// - `queue` belongs to `queue_family`, supports GRAPHICS, and no other
///   thread uses it during the call (queue access is externally
///   synchronized);
/// - every buffer and image in `frame` belongs to `device`, stays alive and
///   unmodified during the call, and is bound to memory; vertex buffers hold
///   at least as many [`crate::Vertex`] as the highest index used, index
///   buffers `index_count` `u32`s;
/// - every texture image is in `SHADER_READ_ONLY_OPTIMAL` layout with
///   `mip_levels` levels, owned by `queue_family`, and the writes that
///   filled buffers and images happened-before this submission: on this
///   queue (any prior submission: the frame starts with a global memory
///   barrier), or on another queue with one of `frame.wait_semaphores`.
pub unsafe fn render_frame(
    dev: &RenderDevice<'_>,
    frame: &FrameDesc<'_>,
) -> Result<Vec<u8>, RenderError> {
    // SAFETY: the physical device is valid (caller's contract).
    let props = unsafe {
        dev.instance
            .get_physical_device_properties(dev.physical_device)
    };
    check_input(frame, props.limits.max_image_dimension2_d)?;
    let mut objects = Objects::new(dev);
    // SAFETY: forwarded from this function's contract; `objects` destroys
    // whatever was created, whether `record_and_submit` succeeds or not.
    unsafe { render_inner(&mut objects, frame) }
}

fn check_input(frame: &FrameDesc<'_>, max: u32) -> Result<(), RenderError> {
    let (width, height) = (frame.width, frame.height);
    if width == 0 || height == 0 || width > max || height > max {
        return Err(RenderError::InvalidSize { width, height, max });
    }
    for (index, t) in frame.textures.iter().enumerate() {
        if t.mip_levels == 0 {
            return Err(RenderError::NoMipLevels { index });
        }
    }
    for (i, d) in frame.draws.iter().enumerate() {
        if d.mesh >= frame.meshes.len() {
            return Err(RenderError::MeshOutOfRange {
                draw: i,
                mesh: d.mesh,
                count: frame.meshes.len(),
            });
        }
        if d.texture >= frame.textures.len() {
            return Err(RenderError::TextureOutOfRange {
                draw: i,
                texture: d.texture,
                count: frame.textures.len(),
            });
        }
    }
    Ok(())
}

/// Everything the renderer creates; `Drop` destroys it all (null handles
/// are no-ops for `vkDestroy*`), after waiting for the queue if a
/// submission may still be running.
struct Objects<'a> {
    dev: &'a RenderDevice<'a>,
    allocations: Vec<Allocation>,
    images: Vec<vk::Image>,
    buffers: Vec<vk::Buffer>,
    views: Vec<vk::ImageView>,
    sampler: vk::Sampler,
    set_layout: vk::DescriptorSetLayout,
    pipeline_layout: vk::PipelineLayout,
    shader_modules: Vec<vk::ShaderModule>,
    render_pass: vk::RenderPass,
    framebuffer: vk::Framebuffer,
    pipeline: vk::Pipeline,
    descriptor_allocator: DescriptorAllocator<vk::DescriptorPool, vk::DescriptorSet>,
    descriptor_sets: Vec<DescriptorSet<vk::DescriptorSet>>,
    command_pool: vk::CommandPool,
    fence: vk::Fence,
    /// A submission was made and not seen finished.
    in_flight: bool,
}

impl<'a> Objects<'a> {
    fn new(dev: &'a RenderDevice<'a>) -> Self {
        Self {
            dev,
            allocations: Vec::new(),
            images: Vec::new(),
            buffers: Vec::new(),
            views: Vec::new(),
            sampler: vk::Sampler::null(),
            set_layout: vk::DescriptorSetLayout::null(),
            pipeline_layout: vk::PipelineLayout::null(),
            shader_modules: Vec::new(),
            render_pass: vk::RenderPass::null(),
            framebuffer: vk::Framebuffer::null(),
            pipeline: vk::Pipeline::null(),
            descriptor_allocator: DescriptorAllocator::new(0),
            descriptor_sets: Vec::new(),
            command_pool: vk::CommandPool::null(),
            fence: vk::Fence::null(),
            in_flight: false,
        }
    }

    fn alloc_cb(&self) -> Option<&'a vk::AllocationCallbacks<'static>> {
        self.dev.allocation_callbacks
    }
}

impl Drop for Objects<'_> {
    fn drop(&mut self) {
        let d = self.dev.device;
        let cb = self.dev.allocation_callbacks;
        // SAFETY: every handle was created by this renderer on `d` with
        // `cb` and is destroyed once, children before parents; the GPU is
        // done with them: the fence was waited on, or the queue is drained
        // here first (the caller guarantees exclusive use of the queue).
        unsafe {
            if self.in_flight {
                let _ = d.queue_wait_idle(self.dev.queue);
            }
            d.destroy_command_pool(self.command_pool, cb);
            d.destroy_fence(self.fence, cb);
            let device = AshDescriptorDevice::wrap(d);
            self.descriptor_allocator
                .free(device, self.descriptor_sets.drain(..));
            self.descriptor_allocator.cleanup(device);
            d.destroy_pipeline(self.pipeline, cb);
            for m in self.shader_modules.drain(..) {
                d.destroy_shader_module(m, cb);
            }
            d.destroy_pipeline_layout(self.pipeline_layout, cb);
            d.destroy_descriptor_set_layout(self.set_layout, cb);
            d.destroy_framebuffer(self.framebuffer, cb);
            d.destroy_render_pass(self.render_pass, cb);
            d.destroy_sampler(self.sampler, cb);
            for v in self.views.drain(..) {
                d.destroy_image_view(v, cb);
            }
            for i in self.images.drain(..) {
                d.destroy_image(i, cb);
            }
            for b in self.buffers.drain(..) {
                d.destroy_buffer(b, cb);
            }
        }
        for a in self.allocations.drain(..) {
            // Freeing only fails for a foreign allocation, impossible here.
            let _ = self.dev.allocator.free(a);
        }
    }
}

/// Creates a 2D optimal-tiling image with its own memory, bound.
///
/// # Safety
/// `o.dev` is valid (render_frame's contract).
unsafe fn create_image(
    o: &mut Objects<'_>,
    format: vk::Format,
    width: u32,
    height: u32,
    usage: vk::ImageUsageFlags,
    name: &'static str,
) -> Result<vk::Image, RenderError> {
    let d = o.dev.device;
    let info = vk::ImageCreateInfo::default()
        .image_type(vk::ImageType::TYPE_2D)
        .format(format)
        .extent(vk::Extent3D {
            width,
            height,
            depth: 1,
        })
        .mip_levels(1)
        .array_layers(1)
        .samples(vk::SampleCountFlags::TYPE_1)
        .tiling(vk::ImageTiling::OPTIMAL)
        .usage(usage)
        .sharing_mode(vk::SharingMode::EXCLUSIVE)
        .initial_layout(vk::ImageLayout::UNDEFINED);
    // SAFETY: valid create info; the image is recorded for destruction at once.
    let image =
        unsafe { d.create_image(&info, o.alloc_cb()) }.map_err(RenderError::vk("vkCreateImage"))?;
    o.images.push(image);
    let mut dedicated = vk::MemoryDedicatedRequirements::default();
    let mut reqs2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
    // SAFETY: the image is valid; Vulkan 1.1 core query.
    unsafe {
        d.get_image_memory_requirements2(
            &vk::ImageMemoryRequirementsInfo2::default().image(image),
            &mut reqs2,
        )
    };
    let reqs = reqs2.memory_requirements;
    let dedicated = dedicated_hint(dedicated, DedicatedTarget::Image(image));
    let desc = AllocationDesc::new(reqs, MemoryUsage::GpuOnly)
        .class(ResourceClass::Optimal)
        .dedicated(dedicated)
        .name(name);
    let allocation = o
        .dev
        .allocator
        .allocate(&desc)
        .map_err(|source| RenderError::Alloc { what: name, source })?;
    let (memory, offset) = (allocation.memory(), allocation.offset());
    o.allocations.push(allocation);
    // SAFETY: memory of a compatible type, size and alignment from the
    // requirements; the image is not bound yet.
    unsafe { d.bind_image_memory(image, memory, offset) }
        .map_err(RenderError::vk("vkBindImageMemory"))?;
    Ok(image)
}

fn dedicated_hint(req: vk::MemoryDedicatedRequirements<'_>, target: DedicatedTarget) -> Dedicated {
    if req.requires_dedicated_allocation == vk::TRUE {
        Dedicated::Required(Some(target))
    } else if req.prefers_dedicated_allocation == vk::TRUE {
        Dedicated::Preferred(Some(target))
    } else {
        Dedicated::No
    }
}

/// # Safety
/// `o.dev` is valid (render_frame's contract).
unsafe fn create_view(
    o: &mut Objects<'_>,
    image: vk::Image,
    format: vk::Format,
    aspect: vk::ImageAspectFlags,
    levels: u32,
) -> Result<vk::ImageView, RenderError> {
    let info = vk::ImageViewCreateInfo::default()
        .image(image)
        .view_type(vk::ImageViewType::TYPE_2D)
        .format(format)
        .subresource_range(vk::ImageSubresourceRange {
            aspect_mask: aspect,
            base_mip_level: 0,
            level_count: levels,
            base_array_layer: 0,
            layer_count: 1,
        });
    // SAFETY: the image is valid and has `levels` levels (checked or created so).
    let view = unsafe { o.dev.device.create_image_view(&info, o.alloc_cb()) }
        .map_err(RenderError::vk("vkCreateImageView"))?;
    o.views.push(view);
    Ok(view)
}

fn pick_depth_format(
    instance: &ash::Instance,
    pd: vk::PhysicalDevice,
) -> Result<vk::Format, RenderError> {
    // The spec requires D16_UNORM, and X8_D24 or D32_SFLOAT, as depth
    // attachments; stencil formats are avoided so the aspect stays DEPTH.
    [
        vk::Format::D32_SFLOAT,
        vk::Format::X8_D24_UNORM_PACK32,
        vk::Format::D16_UNORM,
    ]
    .into_iter()
    .find(|&f| {
        // SAFETY: valid physical device (render_frame's contract).
        let props = unsafe { instance.get_physical_device_format_properties(pd, f) };
        props
            .optimal_tiling_features
            .contains(vk::FormatFeatureFlags::DEPTH_STENCIL_ATTACHMENT)
    })
    .ok_or(RenderError::NoDepthFormat)
}

/// # Safety
/// `render_frame`'s contract.
unsafe fn render_inner(o: &mut Objects<'_>, frame: &FrameDesc<'_>) -> Result<Vec<u8>, RenderError> {
    let dev = o.dev;
    let d = dev.device;
    let cb = dev.allocation_callbacks;
    let (width, height) = (frame.width, frame.height);
    let depth_format = pick_depth_format(dev.instance, dev.physical_device)?;

    // SAFETY: (whole block) every create call gets a valid create info
    // built right here from handles created above or given by the caller
    // (valid per contract); each result is recorded in `o` at once so it is
    // destroyed exactly once by `Objects::drop`.
    unsafe {
        // Targets and readback buffer.
        let color = create_image(
            o,
            COLOR_FORMAT,
            width,
            height,
            vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
            "mem-demo color target",
        )?;
        let depth = create_image(
            o,
            depth_format,
            width,
            height,
            vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT,
            "mem-demo depth target",
        )?;
        let color_view = create_view(o, color, COLOR_FORMAT, vk::ImageAspectFlags::COLOR, 1)?;
        let depth_view = create_view(o, depth, depth_format, vk::ImageAspectFlags::DEPTH, 1)?;
        let readback_size = u64::from(width) * u64::from(height) * 4;
        let buffer_info = vk::BufferCreateInfo::default()
            .size(readback_size)
            .usage(vk::BufferUsageFlags::TRANSFER_DST)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        let readback = d
            .create_buffer(&buffer_info, cb)
            .map_err(RenderError::vk("vkCreateBuffer"))?;
        o.buffers.push(readback);
        let mut dedicated = vk::MemoryDedicatedRequirements::default();
        let mut reqs2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
        d.get_buffer_memory_requirements2(
            &vk::BufferMemoryRequirementsInfo2::default().buffer(readback),
            &mut reqs2,
        );
        let reqs = reqs2.memory_requirements;
        let desc = AllocationDesc::new(reqs, MemoryUsage::Readback)
            .class(ResourceClass::Linear)
            .dedicated(dedicated_hint(dedicated, DedicatedTarget::Buffer(readback)))
            .name("mem-demo readback");
        let allocation = dev
            .allocator
            .allocate(&desc)
            .map_err(|source| RenderError::Alloc {
                what: "readback buffer",
                source,
            })?;
        let (memory, offset) = (allocation.memory(), allocation.offset());
        o.allocations.push(allocation);
        let readback_allocation = o.allocations.len() - 1;
        d.bind_buffer_memory(readback, memory, offset)
            .map_err(RenderError::vk("vkBindBufferMemory"))?;

        // Texture views and the sampler.
        let mut texture_views = Vec::with_capacity(frame.textures.len());
        let mut all_linear = true;
        for t in frame.textures {
            texture_views.push(create_view(
                o,
                t.image,
                t.format,
                vk::ImageAspectFlags::COLOR,
                t.mip_levels,
            )?);
            let props = dev
                .instance
                .get_physical_device_format_properties(dev.physical_device, t.format);
            all_linear &= props
                .optimal_tiling_features
                .contains(vk::FormatFeatureFlags::SAMPLED_IMAGE_FILTER_LINEAR);
        }
        let (filter, mip_mode) = if all_linear {
            (vk::Filter::LINEAR, vk::SamplerMipmapMode::LINEAR)
        } else {
            (vk::Filter::NEAREST, vk::SamplerMipmapMode::NEAREST)
        };
        let sampler_info = vk::SamplerCreateInfo::default()
            .mag_filter(filter)
            .min_filter(filter)
            .mipmap_mode(mip_mode)
            .address_mode_u(vk::SamplerAddressMode::REPEAT)
            .address_mode_v(vk::SamplerAddressMode::REPEAT)
            .address_mode_w(vk::SamplerAddressMode::REPEAT)
            .min_lod(0.0)
            .max_lod(vk::LOD_CLAMP_NONE);
        o.sampler = d
            .create_sampler(&sampler_info, cb)
            .map_err(RenderError::vk("vkCreateSampler"))?;

        // Descriptor set layout: the texture and its sampler.
        let bindings = [
            vk::DescriptorSetLayoutBinding::default()
                .binding(0)
                .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::FRAGMENT),
            vk::DescriptorSetLayoutBinding::default()
                .binding(1)
                .descriptor_type(vk::DescriptorType::SAMPLER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::FRAGMENT),
        ];
        o.set_layout = d
            .create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings),
                cb,
            )
            .map_err(RenderError::vk("vkCreateDescriptorSetLayout"))?;
        let set_count = DescriptorTotalCount {
            sampled_image: 1,
            sampler: 1,
            ..Default::default()
        };
        let sets = o
            .descriptor_allocator
            .allocate(
                AshDescriptorDevice::wrap(d),
                &o.set_layout,
                DescriptorSetLayoutCreateFlags::empty(),
                &set_count,
                frame.textures.len() as u32,
            )
            .map_err(RenderError::Descriptor)?;
        o.descriptor_sets = sets;
        let image_infos: Vec<[vk::DescriptorImageInfo; 2]> = texture_views
            .iter()
            .map(|&view| {
                [
                    vk::DescriptorImageInfo::default()
                        .image_view(view)
                        .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL),
                    vk::DescriptorImageInfo::default().sampler(o.sampler),
                ]
            })
            .collect();
        let writes: Vec<vk::WriteDescriptorSet<'_>> = o
            .descriptor_sets
            .iter()
            .zip(&image_infos)
            .flat_map(|(set, infos)| {
                [
                    vk::WriteDescriptorSet::default()
                        .dst_set(*set.raw())
                        .dst_binding(0)
                        .descriptor_type(vk::DescriptorType::SAMPLED_IMAGE)
                        .image_info(&infos[0..1]),
                    vk::WriteDescriptorSet::default()
                        .dst_set(*set.raw())
                        .dst_binding(1)
                        .descriptor_type(vk::DescriptorType::SAMPLER)
                        .image_info(&infos[1..2]),
                ]
            })
            .collect();
        d.update_descriptor_sets(&writes, &[]);

        // Render pass: clear both, keep colour for the copy.
        let attachments = [
            vk::AttachmentDescription::default()
                .format(COLOR_FORMAT)
                .samples(vk::SampleCountFlags::TYPE_1)
                .load_op(vk::AttachmentLoadOp::CLEAR)
                .store_op(vk::AttachmentStoreOp::STORE)
                .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
                .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
                .initial_layout(vk::ImageLayout::UNDEFINED)
                .final_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL),
            vk::AttachmentDescription::default()
                .format(depth_format)
                .samples(vk::SampleCountFlags::TYPE_1)
                .load_op(vk::AttachmentLoadOp::CLEAR)
                .store_op(vk::AttachmentStoreOp::DONT_CARE)
                .stencil_load_op(vk::AttachmentLoadOp::DONT_CARE)
                .stencil_store_op(vk::AttachmentStoreOp::DONT_CARE)
                .initial_layout(vk::ImageLayout::UNDEFINED)
                .final_layout(vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL),
        ];
        let color_ref = [vk::AttachmentReference {
            attachment: 0,
            layout: vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL,
        }];
        let depth_ref = vk::AttachmentReference {
            attachment: 1,
            layout: vk::ImageLayout::DEPTH_STENCIL_ATTACHMENT_OPTIMAL,
        };
        let subpasses = [vk::SubpassDescription::default()
            .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
            .color_attachments(&color_ref)
            .depth_stencil_attachment(&depth_ref)];
        let attachment_stages = vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT
            | vk::PipelineStageFlags::EARLY_FRAGMENT_TESTS
            | vk::PipelineStageFlags::LATE_FRAGMENT_TESTS;
        let dependencies = [
            // The layout transitions out of UNDEFINED happen before the
            // attachments are cleared and written.
            vk::SubpassDependency::default()
                .src_subpass(vk::SUBPASS_EXTERNAL)
                .dst_subpass(0)
                .src_stage_mask(attachment_stages)
                .dst_stage_mask(attachment_stages)
                .src_access_mask(vk::AccessFlags::empty())
                .dst_access_mask(
                    vk::AccessFlags::COLOR_ATTACHMENT_WRITE
                        | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_READ
                        | vk::AccessFlags::DEPTH_STENCIL_ATTACHMENT_WRITE,
                ),
            // The colour writes (and the transition to TRANSFER_SRC) happen
            // before the copy into the readback buffer.
            vk::SubpassDependency::default()
                .src_subpass(0)
                .dst_subpass(vk::SUBPASS_EXTERNAL)
                .src_stage_mask(vk::PipelineStageFlags::COLOR_ATTACHMENT_OUTPUT)
                .dst_stage_mask(vk::PipelineStageFlags::TRANSFER)
                .src_access_mask(vk::AccessFlags::COLOR_ATTACHMENT_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_READ),
        ];
        let rp_info = vk::RenderPassCreateInfo::default()
            .attachments(&attachments)
            .subpasses(&subpasses)
            .dependencies(&dependencies);
        o.render_pass = d
            .create_render_pass(&rp_info, cb)
            .map_err(RenderError::vk("vkCreateRenderPass"))?;
        let fb_views = [color_view, depth_view];
        let fb_info = vk::FramebufferCreateInfo::default()
            .render_pass(o.render_pass)
            .attachments(&fb_views)
            .width(width)
            .height(height)
            .layers(1);
        o.framebuffer = d
            .create_framebuffer(&fb_info, cb)
            .map_err(RenderError::vk("vkCreateFramebuffer"))?;

        // Pipeline.
        let push_range = [vk::PushConstantRange {
            stage_flags: vk::ShaderStageFlags::VERTEX,
            offset: 0,
            size: 128,
        }];
        let set_layouts = [o.set_layout];
        o.pipeline_layout = d
            .create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default()
                    .set_layouts(&set_layouts)
                    .push_constant_ranges(&push_range),
                cb,
            )
            .map_err(RenderError::vk("vkCreatePipelineLayout"))?;
        let vert = create_shader(o, VERT_SPV)?;
        let frag = create_shader(o, FRAG_SPV)?;
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(vert)
                .name(c"main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(frag)
                .name(c"main"),
        ];
        let vertex_bindings = [vk::VertexInputBindingDescription {
            binding: 0,
            stride: crate::Vertex::SIZE as u32,
            input_rate: vk::VertexInputRate::VERTEX,
        }];
        let vertex_attributes = [
            vk::VertexInputAttributeDescription {
                location: 0,
                binding: 0,
                format: vk::Format::R32G32B32_SFLOAT,
                offset: 0,
            },
            vk::VertexInputAttributeDescription {
                location: 1,
                binding: 0,
                format: vk::Format::R32G32B32_SFLOAT,
                offset: 12,
            },
            vk::VertexInputAttributeDescription {
                location: 2,
                binding: 0,
                format: vk::Format::R32G32_SFLOAT,
                offset: 24,
            },
        ];
        let vertex_input = vk::PipelineVertexInputStateCreateInfo::default()
            .vertex_binding_descriptions(&vertex_bindings)
            .vertex_attribute_descriptions(&vertex_attributes);
        let input_assembly = vk::PipelineInputAssemblyStateCreateInfo::default()
            .topology(vk::PrimitiveTopology::TRIANGLE_LIST);
        let viewport_state = vk::PipelineViewportStateCreateInfo::default()
            .viewport_count(1)
            .scissor_count(1);
        // No culling: glTF materials may be double-sided, and the Y flip of
        // the projection would flip the winding anyway.
        let raster = vk::PipelineRasterizationStateCreateInfo::default()
            .polygon_mode(vk::PolygonMode::FILL)
            .cull_mode(vk::CullModeFlags::NONE)
            .front_face(vk::FrontFace::COUNTER_CLOCKWISE)
            .line_width(1.0);
        let multisample = vk::PipelineMultisampleStateCreateInfo::default()
            .rasterization_samples(vk::SampleCountFlags::TYPE_1);
        let depth_state = vk::PipelineDepthStencilStateCreateInfo::default()
            .depth_test_enable(true)
            .depth_write_enable(true)
            .depth_compare_op(vk::CompareOp::LESS);
        let blend_attachments = [vk::PipelineColorBlendAttachmentState::default()
            .color_write_mask(vk::ColorComponentFlags::RGBA)];
        let blend =
            vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend_attachments);
        let dynamic_states = [vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
        let dynamic = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&dynamic_states);
        let pipeline_info = vk::GraphicsPipelineCreateInfo::default()
            .stages(&stages)
            .vertex_input_state(&vertex_input)
            .input_assembly_state(&input_assembly)
            .viewport_state(&viewport_state)
            .rasterization_state(&raster)
            .multisample_state(&multisample)
            .depth_stencil_state(&depth_state)
            .color_blend_state(&blend)
            .dynamic_state(&dynamic)
            .layout(o.pipeline_layout)
            .render_pass(o.render_pass)
            .subpass(0);
        let pipelines = d
            .create_graphics_pipelines(vk::PipelineCache::null(), &[pipeline_info], cb)
            .map_err(|(_, result)| RenderError::Vulkan {
                call: "vkCreateGraphicsPipelines",
                result,
            })?;
        o.pipeline = pipelines[0];

        // Command buffer and fence.
        let pool_info = vk::CommandPoolCreateInfo::default()
            .flags(vk::CommandPoolCreateFlags::TRANSIENT)
            .queue_family_index(dev.queue_family);
        o.command_pool = d
            .create_command_pool(&pool_info, cb)
            .map_err(RenderError::vk("vkCreateCommandPool"))?;
        o.fence = d
            .create_fence(&vk::FenceCreateInfo::default(), cb)
            .map_err(RenderError::vk("vkCreateFence"))?;
        let cmd = d
            .allocate_command_buffers(
                &vk::CommandBufferAllocateInfo::default()
                    .command_pool(o.command_pool)
                    .level(vk::CommandBufferLevel::PRIMARY)
                    .command_buffer_count(1),
            )
            .map_err(RenderError::vk("vkAllocateCommandBuffers"))?[0];
        d.begin_command_buffer(
            cmd,
            &vk::CommandBufferBeginInfo::default()
                .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
        )
        .map_err(RenderError::vk("vkBeginCommandBuffer"))?;

        // Make every earlier write on this queue (the uploads) visible to
        // vertex fetch and texture reads. Layouts are the caller's job.
        let upload_visibility = vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::MEMORY_WRITE)
            .dst_access_mask(
                vk::AccessFlags::VERTEX_ATTRIBUTE_READ
                    | vk::AccessFlags::INDEX_READ
                    | vk::AccessFlags::SHADER_READ,
            );
        d.cmd_pipeline_barrier(
            cmd,
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::PipelineStageFlags::VERTEX_INPUT | vk::PipelineStageFlags::FRAGMENT_SHADER,
            vk::DependencyFlags::empty(),
            &[upload_visibility],
            &[],
            &[],
        );

        let clear_values = [
            vk::ClearValue {
                color: vk::ClearColorValue {
                    float32: frame.clear_color,
                },
            },
            vk::ClearValue {
                depth_stencil: vk::ClearDepthStencilValue {
                    depth: 1.0,
                    stencil: 0,
                },
            },
        ];
        let area = vk::Rect2D {
            offset: vk::Offset2D { x: 0, y: 0 },
            extent: vk::Extent2D { width, height },
        };
        d.cmd_begin_render_pass(
            cmd,
            &vk::RenderPassBeginInfo::default()
                .render_pass(o.render_pass)
                .framebuffer(o.framebuffer)
                .render_area(area)
                .clear_values(&clear_values),
            vk::SubpassContents::INLINE,
        );
        d.cmd_set_viewport(
            cmd,
            0,
            &[vk::Viewport {
                x: 0.0,
                y: 0.0,
                width: width as f32,
                height: height as f32,
                min_depth: 0.0,
                max_depth: 1.0,
            }],
        );
        d.cmd_set_scissor(cmd, 0, &[area]);
        d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, o.pipeline);
        for draw in frame.draws {
            let mesh = frame.meshes[draw.mesh];
            if mesh.index_count == 0 {
                continue;
            }
            d.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::GRAPHICS,
                o.pipeline_layout,
                0,
                &[*o.descriptor_sets[draw.texture].raw()],
                &[],
            );
            d.cmd_bind_vertex_buffers(cmd, 0, &[mesh.vertex_buffer], &[0]);
            d.cmd_bind_index_buffer(cmd, mesh.index_buffer, 0, vk::IndexType::UINT32);
            let push = push_constants(&frame.view_proj, &draw.transform);
            d.cmd_push_constants(
                cmd,
                o.pipeline_layout,
                vk::ShaderStageFlags::VERTEX,
                0,
                &push,
            );
            d.cmd_draw_indexed(cmd, mesh.index_count, 1, 0, 0, 0);
        }
        d.cmd_end_render_pass(cmd);

        let region = vk::BufferImageCopy::default()
            .image_subresource(vk::ImageSubresourceLayers {
                aspect_mask: vk::ImageAspectFlags::COLOR,
                mip_level: 0,
                base_array_layer: 0,
                layer_count: 1,
            })
            .image_extent(vk::Extent3D {
                width,
                height,
                depth: 1,
            });
        d.cmd_copy_image_to_buffer(
            cmd,
            color,
            vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
            readback,
            &[region],
        );
        let to_host = vk::BufferMemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(vk::AccessFlags::HOST_READ)
            .src_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .dst_queue_family_index(vk::QUEUE_FAMILY_IGNORED)
            .buffer(readback)
            .offset(0)
            .size(vk::WHOLE_SIZE);
        d.cmd_pipeline_barrier(
            cmd,
            vk::PipelineStageFlags::TRANSFER,
            vk::PipelineStageFlags::HOST,
            vk::DependencyFlags::empty(),
            &[],
            &[to_host],
            &[],
        );
        d.end_command_buffer(cmd)
            .map_err(RenderError::vk("vkEndCommandBuffer"))?;

        // Submit and wait.
        let cmds = [cmd];
        let wait_semaphores: Vec<vk::Semaphore> =
            frame.wait_semaphores.iter().map(|w| w.semaphore).collect();
        let wait_values: Vec<u64> = frame.wait_semaphores.iter().map(|w| w.value).collect();
        let wait_stages: Vec<vk::PipelineStageFlags> =
            frame.wait_semaphores.iter().map(|w| w.stage).collect();
        let mut timeline =
            vk::TimelineSemaphoreSubmitInfo::default().wait_semaphore_values(&wait_values);
        let mut submit = vk::SubmitInfo::default().command_buffers(&cmds);
        if !wait_semaphores.is_empty() {
            submit = submit
                .wait_semaphores(&wait_semaphores)
                .wait_dst_stage_mask(&wait_stages)
                .push_next(&mut timeline);
        }
        d.queue_submit(dev.queue, &[submit], o.fence)
            .map_err(RenderError::vk("vkQueueSubmit"))?;
        o.in_flight = true;
        let timeout = u64::try_from(frame.timeout.as_nanos()).unwrap_or(u64::MAX);
        match d.wait_for_fences(&[o.fence], true, timeout) {
            Ok(()) => o.in_flight = false,
            Err(vk::Result::TIMEOUT) => {
                return Err(RenderError::Timeout {
                    seconds: frame.timeout.as_secs(),
                })
            }
            Err(result) => {
                return Err(RenderError::Vulkan {
                    call: "vkWaitForFences",
                    result,
                })
            }
        }

        let allocation = &o.allocations[readback_allocation];
        dev.allocator
            .invalidate(allocation, 0, readback_size)
            .map_err(|source| RenderError::Alloc {
                what: "readback buffer",
                source,
            })?;
        let mut pixels = vec![0u8; readback_size as usize];
        dev.allocator
            .read(allocation, 0, &mut pixels)
            .map_err(|source| RenderError::Alloc {
                what: "readback buffer",
                source,
            })?;
        Ok(pixels)
    }
}

/// # Safety
/// `o.dev` is valid.
unsafe fn create_shader(o: &mut Objects<'_>, spv: &[u8]) -> Result<vk::ShaderModule, RenderError> {
    // read_spv copies into u32s: include_bytes! data is only byte-aligned.
    let code =
        ash::util::read_spv(&mut std::io::Cursor::new(spv)).map_err(|_| RenderError::Vulkan {
            call: "vkCreateShaderModule",
            result: vk::Result::ERROR_INVALID_SHADER_NV,
        })?;
    // SAFETY: the SPIR-V was produced and validated by naga at build time.
    let module = unsafe {
        o.dev.device.create_shader_module(
            &vk::ShaderModuleCreateInfo::default().code(&code),
            o.alloc_cb(),
        )
    }
    .map_err(RenderError::vk("vkCreateShaderModule"))?;
    o.shader_modules.push(module);
    Ok(module)
}

/// The 128 bytes of push constants: MVP, then the normal matrix.
fn push_constants(view_proj: &[[f32; 4]; 4], model: &[[f32; 4]; 4]) -> [u8; 128] {
    let mvp = math::mul(view_proj, model);
    let normal = math::normal_matrix(model);
    let mut out = [0u8; 128];
    for (dst, value) in out
        .chunks_exact_mut(4)
        .zip(mvp.iter().chain(normal.iter()).flatten())
    {
        dst.copy_from_slice(&value.to_ne_bytes());
    }
    out
}
