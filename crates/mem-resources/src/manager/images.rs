//! [`Image`] and its life: `vkCreateImage` and its memory requirements for
//! the batch creation, destruction now, and retirement to a timeline
//! point. An image's memory class follows its tiling (`OPTIMAL` apart from
//! everything linear); it carries the layouts of its subresources.

use super::batch::{dedicated_hint, BatchDesc};
use super::*;

/// An image with its memory bound, made by [`ResourceManager::create_image`].
///
/// Not `Clone`: destroy it once, by value, with
/// [`ResourceManager::destroy_image`] or [`ResourceManager::retire_image`].
#[derive(Debug)]
#[must_use = "an image must be destroyed or retired through its ResourceManager"]
pub struct Image {
    pub(super) handle: vk::Image,
    pub(super) allocation: Allocation,
    pub(super) desc: ImageDesc,
    pub(super) owner: u64,
    pub(super) slot: u32,
    pub(super) layouts: ImageLayouts,
}

impl Image {
    /// The `VkImage`.
    pub fn handle(&self) -> vk::Image {
        self.handle
    }

    /// The memory bound to it.
    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    /// The desc it was made from.
    pub fn desc(&self) -> &ImageDesc {
        &self.desc
    }

    /// Bytes of memory bound to it (`VkMemoryRequirements::size`, the
    /// allocation's [`Allocation::reserved_size`]). An image's texel bytes
    /// depend on the driver's layout; this is what it occupies.
    pub fn memory_size(&self) -> u64 {
        self.allocation.reserved_size()
    }

    /// The extent of level 0.
    pub fn extent(&self) -> vk::Extent3D {
        self.desc.extent
    }

    /// The format.
    pub fn format(&self) -> vk::Format {
        self.desc.format
    }

    /// True when its memory is host-visible (persistently mapped).
    pub fn is_host_visible(&self) -> bool {
        self.allocation.mapped_ptr().is_some()
    }

    /// Every mip level and layer, with the format's aspects.
    pub fn full_subresource_range(&self) -> vk::ImageSubresourceRange {
        self.desc.full_subresource_range()
    }

    /// The layout of each subresource after the work recorded so far (by
    /// the staging belt, or as the engine set it): see [`ImageLayouts`].
    pub fn layouts(&self) -> &ImageLayouts {
        &self.layouts
    }

    /// Id of the [`ResourceManager`] that made it.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl ResourceManager {
    /// Creates an image, allocates and binds its memory, and names it.
    ///
    /// The desc is validated first, format support included; any failure
    /// after `vkCreateImage` destroys the image and frees its memory before
    /// returning.
    #[doc(alias = "vkCreateImage")]
    #[doc(alias = "vmaCreateImage")]
    pub fn create_image(&self, desc: &ImageDesc) -> Result<Image, ResourceError> {
        let mut v = self.create_batch(std::slice::from_ref(desc), false)?;
        Ok(v.pop().expect("one image per desc"))
    }

    /// Creates one image per desc with a single `vkBindImageMemory2` call;
    /// all or nothing, like [`Self::create_buffers`].
    pub fn create_images(&self, descs: &[ImageDesc]) -> Result<Vec<Image>, ResourceError> {
        Ok(self.create_batch(descs, true)?.into_vec())
    }

    /// Destroys an image and frees its memory now.
    ///
    /// Fails only for an image of another manager: it is handed back
    /// unchanged inside the [`Refused`] ([`ResourceError::ForeignResource`]).
    ///
    /// # Safety
    /// - no pending or future GPU work uses the image;
    /// - every view of it has been destroyed.
    #[doc(alias = "vkDestroyImage")]
    pub unsafe fn destroy_image(&self, image: Image) -> Result<(), Refused<Image, ResourceError>> {
        if let Err(e) = self.check_owner(image.owner) {
            return Err(Refused::new(e, image));
        }
        self.registry.lock().remove(image.slot);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.destroy_image_now(image) };
        Ok(())
    }

    /// # Safety
    /// - as for [`Self::destroy_image`]; the image is out of the registry.
    pub(super) unsafe fn destroy_image_now(&self, image: Image) {
        // SAFETY: the GPU is done with it (caller's contract).
        unsafe {
            self.device
                .destroy_image(image.handle, self.callbacks.get())
        };
        let freed = self.allocator.free(image.allocation);
        debug_assert!(
            freed.is_ok(),
            "allocation from our own allocator: {freed:?}"
        );
    }

    /// Queues an image for destruction once the GPU passes `after` (one
    /// [`TimelinePoint`] or a [`RetirePoint`]). Fails only for an image of
    /// another manager, handed back as in [`Self::destroy_image`].
    ///
    /// # Safety
    /// - as for [`Self::retire_buffer`]; views of the image must be destroyed
    ///   by the time it is collected.
    pub unsafe fn retire_image(
        &self,
        image: Image,
        after: impl Into<RetirePoint>,
    ) -> Result<(), Refused<Image, ResourceError>> {
        if let Err(e) = self.check_owner(image.owner) {
            return Err(Refused::new(e, image));
        }
        self.retire(RetiredResource::Image(image), after.into());
        Ok(())
    }
}

impl BatchDesc for ImageDesc {
    type Handle = vk::Image;
    type Resource = Image;
    const KIND: ResourceKind = ResourceKind::Image;
    const BIND_CALL: &'static str = "vkBindImageMemory2";

    fn check(&self, manager: &ResourceManager) -> Result<(), ResourceError> {
        manager.validate_image_desc(self)
    }

    fn create_object(&self, manager: &ResourceManager) -> Result<vk::Image, ResourceError> {
        let families = self.sharing.distinct_families();
        let info = vk::ImageCreateInfo::default()
            .flags(self.create_flags())
            .image_type(self.kind.image_type())
            .format(self.format)
            .extent(self.extent)
            .mip_levels(self.mip_levels)
            .array_layers(self.array_layers)
            .samples(self.samples)
            .tiling(self.tiling)
            .usage(self.usage)
            .sharing_mode(self.sharing.mode())
            .queue_family_indices(&families)
            .initial_layout(self.initial_layout);
        manager
            .faults
            .check(FaultPoint::CreateImage)
            .and_then(|()| {
                // SAFETY: the desc passed validation, including the format
                // properties for exactly this format/type/tiling/usage/flags.
                unsafe { manager.device.create_image(&info, manager.callbacks.get()) }
            })
            .map_err(|result| ResourceError::Vulkan {
                call: "vkCreateImage",
                result,
            })
    }

    fn requirements(
        manager: &ResourceManager,
        image: vk::Image,
    ) -> (vk::MemoryRequirements, Dedicated) {
        let mut dedicated = vk::MemoryDedicatedRequirements::default();
        let mut req2 = vk::MemoryRequirements2::default().push_next(&mut dedicated);
        let info = vk::ImageMemoryRequirementsInfo2::default().image(image);
        // SAFETY: the image is a live, non-disjoint object of this device.
        unsafe {
            manager
                .device
                .get_image_memory_requirements2(&info, &mut req2)
        };
        let requirements = req2.memory_requirements;
        (
            requirements,
            dedicated_hint(&dedicated, DedicatedTarget::Image(image)),
        )
    }

    fn class(&self) -> ResourceClass {
        if self.tiling == vk::ImageTiling::OPTIMAL {
            ResourceClass::Optimal
        } else {
            ResourceClass::Linear
        }
    }

    fn memory_usage(&self) -> MemoryUsage {
        self.memory
    }

    fn debug_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn own_memory(&self) -> bool {
        self.own_memory
    }

    unsafe fn bind(
        manager: &ResourceManager,
        images: &[vk::Image],
        allocations: &[Allocation],
    ) -> Result<(), vk::Result> {
        let binds: SmallVec<[vk::BindImageMemoryInfo<'_>; 1]> = images
            .iter()
            .zip(allocations)
            .map(|(&img, a)| {
                vk::BindImageMemoryInfo::default()
                    .image(img)
                    .memory(a.memory())
                    .memory_offset(a.offset())
            })
            .collect();
        manager
            .faults
            .check(FaultPoint::BindImageMemory)
            .and_then(|()| {
                // SAFETY: fresh images, not disjoint (refused by validation),
                // with allocations from their own requirements (this
                // function's contract).
                unsafe { manager.device.bind_image_memory2(&binds) }
            })
    }

    unsafe fn destroy_object(manager: &ResourceManager, image: vk::Image) {
        // SAFETY: made by this manager with these callbacks and unused by
        // the GPU (this function's contract).
        unsafe { manager.device.destroy_image(image, manager.callbacks.get()) };
    }

    fn make_resource(
        &self,
        handle: vk::Image,
        allocation: Allocation,
        owner: u64,
        slot: u32,
    ) -> Image {
        Image {
            handle,
            allocation,
            desc: self.clone(),
            owner,
            slot,
            layouts: ImageLayouts::new(self.mip_levels, self.array_layers),
        }
    }
}
