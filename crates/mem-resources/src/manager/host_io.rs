//! Host access through persistent mappings: reads and writes of
//! host-visible buffers and `LINEAR` images, flushed or invalidated when
//! the memory is not coherent, and where a linear image's subresources lie.
//! Every range is checked against the resource before memory is touched.

use super::*;

impl ResourceManager {
    /// Copies `data` into the buffer at `offset` through its persistent
    /// mapping, flushing when the memory is not coherent.
    ///
    /// The GPU must not be using the range (a data race on device memory is
    /// not undefined behaviour for Rust, but gives garbage); `&mut Buffer`
    /// keeps host writers exclusive.
    pub fn write_buffer(
        &self,
        buffer: &mut Buffer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(buffer.owner)?;
        check_host_range(
            &buffer.allocation,
            buffer.desc.name.as_deref(),
            offset,
            data.len() as u64,
            buffer.desc.size,
        )?;
        self.allocator.write(&mut buffer.allocation, offset, data)?;
        Ok(())
    }

    /// Invalidates (when not coherent) and copies `out.len()` bytes of the
    /// buffer at `offset` into `out`. The GPU must have finished writing the
    /// range (wait for its submission first).
    pub fn read_buffer(
        &self,
        buffer: &Buffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(buffer.owner)?;
        check_host_range(
            &buffer.allocation,
            buffer.desc.name.as_deref(),
            offset,
            out.len() as u64,
            buffer.desc.size,
        )?;
        self.allocator.read(&buffer.allocation, offset, out)?;
        Ok(())
    }

    /// Where a subresource of a `LINEAR` image lies in its memory
    /// (`vkGetImageSubresourceLayout`), for [`Self::write_image`] and
    /// [`Self::read_image`]. `aspect` is one aspect of the format.
    #[doc(alias = "vkGetImageSubresourceLayout")]
    pub fn image_subresource_layout(
        &self,
        image: &Image,
        aspect: vk::ImageAspectFlags,
        mip_level: u32,
        array_layer: u32,
    ) -> Result<vk::SubresourceLayout, ResourceError> {
        self.check_owner(image.owner)?;
        if image.desc.tiling != vk::ImageTiling::LINEAR {
            return Err(ResourceError::NotLinear {
                tiling: image.desc.tiling,
            });
        }
        if mip_level >= image.desc.mip_levels || array_layer >= image.desc.array_layers {
            return Err(ResourceError::SubresourceOutOfRange {
                mip_level,
                array_layer,
                mip_levels: image.desc.mip_levels,
                array_layers: image.desc.array_layers,
            });
        }
        let sub = vk::ImageSubresource {
            aspect_mask: aspect,
            mip_level,
            array_layer,
        };
        // SAFETY: a live LINEAR image of this device, subresource in range.
        Ok(unsafe { self.device.get_image_subresource_layout(image.handle, sub) })
    }

    /// Copies `data` into a host-visible `LINEAR` image's memory at byte
    /// `offset` (see [`Self::image_subresource_layout`] for where texels
    /// go), flushing when needed. The image should be in `PREINITIALIZED`
    /// or `GENERAL` layout and unused by the GPU.
    pub fn write_image(
        &self,
        image: &mut Image,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(image.owner)?;
        if image.desc.tiling != vk::ImageTiling::LINEAR {
            return Err(ResourceError::NotLinear {
                tiling: image.desc.tiling,
            });
        }
        let size = image.allocation.reserved_size();
        check_host_range(
            &image.allocation,
            image.desc.name.as_deref(),
            offset,
            data.len() as u64,
            size,
        )?;
        self.allocator.write(&mut image.allocation, offset, data)?;
        Ok(())
    }

    /// Reads bytes of a host-visible `LINEAR` image's memory at `offset`,
    /// invalidating when needed.
    pub fn read_image(
        &self,
        image: &Image,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), ResourceError> {
        self.check_owner(image.owner)?;
        if image.desc.tiling != vk::ImageTiling::LINEAR {
            return Err(ResourceError::NotLinear {
                tiling: image.desc.tiling,
            });
        }
        let size = image.allocation.reserved_size();
        check_host_range(
            &image.allocation,
            image.desc.name.as_deref(),
            offset,
            out.len() as u64,
            size,
        )?;
        self.allocator.read(&image.allocation, offset, out)?;
        Ok(())
    }
}

fn check_host_range(
    allocation: &Allocation,
    name: Option<&str>,
    offset: u64,
    len: u64,
    size: u64,
) -> Result<(), ResourceError> {
    if allocation.mapped_ptr().is_none() {
        return Err(ResourceError::NotHostVisible {
            name: name.map(str::to_owned),
            memory_type_index: allocation.memory_type_index(),
        });
    }
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(ResourceError::OutOfRange { offset, len, size });
    }
    Ok(())
}
