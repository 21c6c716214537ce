//! Textures written from host memory with `VK_EXT_host_image_copy`: no ring,
//! no command buffer, no queue. The driver lays the texels out in the image's
//! memory on the calling thread; the image must be host-visible to the driver
//! (it is created with `HOST_TRANSFER` usage) and idle on the GPU.
//!
//! Invariant: the image's tracked layouts ([`mem_resources::ImageLayouts`])
//! hold the layout the host transition left, as for uploads through the ring.

use super::*;

/// What the belt keeps to copy on the host: the extension's functions and
/// the layouts the device can copy into.
pub(super) struct HostCopy {
    fns: ash::ext::host_image_copy::Device,
    dst_layouts: Vec<vk::ImageLayout>,
}

impl HostCopy {
    /// Loads the extension's functions and reads the layouts a host copy
    /// may write.
    ///
    /// # Safety
    /// `device` was created from `instance` and `physical_device` with
    /// `VK_EXT_host_image_copy` and its `hostImageCopy` feature enabled.
    pub(super) unsafe fn new(
        instance: &ash::Instance,
        physical_device: vk::PhysicalDevice,
        device: &ash::Device,
    ) -> Self {
        let mut props = vk::PhysicalDeviceHostImageCopyPropertiesEXT::default();
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut props);
        // SAFETY: forwarded; the first call only counts the layouts.
        unsafe { instance.get_physical_device_properties2(physical_device, &mut props2) };
        let mut dst_layouts =
            vec![vk::ImageLayout::UNDEFINED; props.copy_dst_layout_count as usize];
        let mut src_layouts =
            vec![vk::ImageLayout::UNDEFINED; props.copy_src_layout_count as usize];
        let mut props = vk::PhysicalDeviceHostImageCopyPropertiesEXT::default()
            .copy_dst_layouts(&mut dst_layouts)
            .copy_src_layouts(&mut src_layouts);
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut props);
        // SAFETY: as above; the arrays hold the counts just read.
        unsafe { instance.get_physical_device_properties2(physical_device, &mut props2) };
        Self {
            fns: ash::ext::host_image_copy::Device::new(instance, device),
            dst_layouts,
        }
    }
}

impl StagingBelt {
    /// True when [`Self::copy_image_on_host`] can write `image`: the belt was
    /// made with [`StagingBeltConfig::host_image_copy`] and the image has
    /// `HOST_TRANSFER_EXT` usage.
    pub fn can_copy_on_host(&self, image: &Image) -> bool {
        self.host_copy.is_some()
            && image
                .desc()
                .usage
                .contains(vk::ImageUsageFlags::HOST_TRANSFER_EXT)
    }

    /// Writes every mip level and array layer of `dst` from `data` (laid out
    /// as [`crate::plan`] describes) straight from host memory with
    /// `VK_EXT_host_image_copy`, and leaves it in `final_layout` (one of the
    /// layouts the device lists as host-copy destinations; `GENERAL` and
    /// `SHADER_READ_ONLY_OPTIMAL` on common drivers). The previous contents
    /// are discarded. Returns when the texels are in the image: no ring,
    /// command buffer or ticket is involved, and the next submission that
    /// uses the image sees them.
    ///
    /// The image must not be in use by the GPU (as for the direct path of
    /// buffer uploads), have `HOST_TRANSFER_EXT` usage, one sample, and
    /// belong to the belt's resource manager.
    #[doc(alias = "vkCopyMemoryToImageEXT")]
    pub fn copy_image_on_host(
        &mut self,
        dst: &Image,
        data: &[u8],
        final_layout: vk::ImageLayout,
    ) -> Result<(), StagingError> {
        let desc = dst.desc();
        let Some(dst_layouts) = self.host_copy.as_ref().map(|h| &h.dst_layouts) else {
            return Err(StagingError::HostImageCopyUnavailable {
                name: desc.name.clone(),
            });
        };
        let layout_ok = dst_layouts.contains(&final_layout);
        self.check_image(dst, vk::ImageUsageFlags::HOST_TRANSFER_EXT)?;
        if !layout_ok {
            return Err(StagingError::LayoutNotAllowed {
                name: desc.name.clone(),
                layout: format!(
                    "{final_layout:?} (not a host-copy destination layout of this device)"
                ),
                usage: format!("{:?}", desc.usage),
            });
        }
        if data.is_empty() {
            return Err(StagingError::EmptyData);
        }
        if self
            .open
            .as_ref()
            .is_some_and(|b| b.images.contains_key(&dst.handle()))
        {
            // Uploads through the ring still pending for this image: they
            // would land after the host copy and their end transitions
            // would start from the wrong layout.
            let t = self.flush()?;
            self.wait(t)?;
        }
        let layout = ImageLayout {
            format: desc.format,
            image_type: desc.kind.image_type(),
            extent: desc.extent,
            mip_levels: desc.mip_levels,
            array_layers: desc.array_layers,
            aspect: None,
        };
        // Whole subresources with tight rows: no chunking, no padding.
        let tight = CopyLimits {
            optimal_buffer_copy_offset_alignment: 1,
            optimal_buffer_copy_row_pitch_alignment: 1,
            min_image_transfer_granularity: vk::Extent3D {
                width: 1,
                height: 1,
                depth: 1,
            },
        };
        let plan = plan_subresources_upload(
            &layout,
            0..desc.mip_levels,
            0..desc.array_layers,
            data.len() as u64,
            &tight,
            u64::MAX,
        )?;
        let regions: Vec<vk::MemoryToImageCopyEXT<'_>> = plan
            .copies
            .iter()
            .map(|c| {
                let r = c.region;
                vk::MemoryToImageCopyEXT::default()
                    // The plan keeps every copy inside `data`
                    // (`src_offset + src_span <= len`).
                    .host_pointer(data[c.src_offset as usize..].as_ptr().cast())
                    .memory_row_length(0)
                    .memory_image_height(0)
                    .image_subresource(r.image_subresource)
                    .image_offset(r.image_offset)
                    .image_extent(r.image_extent)
            })
            .collect();
        let transition = vk::HostImageLayoutTransitionInfoEXT::default()
            .image(dst.handle())
            .old_layout(vk::ImageLayout::UNDEFINED)
            .new_layout(final_layout)
            .subresource_range(dst.full_subresource_range());
        let info = vk::CopyMemoryToImageInfoEXT::default()
            .dst_image(dst.handle())
            .dst_image_layout(final_layout)
            .regions(&regions);
        let host = self.host_copy.as_ref().expect("checked above");
        let start = Instant::now();
        // SAFETY: the extension is enabled (`host_copy` exists only then);
        // the image is alive, has HOST_TRANSFER usage and is idle on the GPU
        // (this function's contract).
        unsafe { host.fns.transition_image_layout(&[transition]) }
            .map_err(|e| StagingError::vulkan("vkTransitionImageLayoutEXT", e))?;
        // The transition discarded the contents: the image is in the final
        // layout from here on, whether or not the copy goes through.
        dst.layouts().set_state(
            ImageSubresources::all(),
            SubresourceState {
                layout: final_layout,
                owner_family: vk::QUEUE_FAMILY_IGNORED,
            },
        );
        // SAFETY: as above; every region lies inside its subresource and
        // reads inside `data` (planned and checked above); the image is in
        // `final_layout`, a host-copy destination layout of the device.
        let copied = unsafe { host.fns.copy_memory_to_image(&info) };
        self.stats.copy_time += start.elapsed();
        copied.map_err(|e| StagingError::vulkan("vkCopyMemoryToImageEXT", e))?;
        self.stats.bytes_host_copied += data.len() as u64;
        self.stats.uploads += 1;
        Ok(())
    }
}
