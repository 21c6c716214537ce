//! Checks of buffer and image descs against the spec's valid-usage rules and
//! the device's limits, before Vulkan sees them.
//!
//! The checks are plain functions over plain data ([`DeviceLimits`],
//! `vk::ImageFormatProperties`) so they are unit-tested without a device.
//! [`crate::ResourceManager`] runs them in this order: the desc's own shape
//! ([`buffer`], [`image_shape`]), then for images the device's answer to
//! `vkGetPhysicalDeviceImageFormatProperties` ([`image_format_limits`]).
//! The first broken rule is reported.

use ash::vk;

use crate::desc::{full_mip_chain, BufferDesc, ImageDesc, ImageKind, Sharing};
use crate::error::ResourceError;

/// What the checks need to know about the device, read once by
/// [`crate::ResourceManager::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// The device's Vulkan version (`VkPhysicalDeviceProperties::apiVersion`).
    pub api_version: u32,
    /// `VkPhysicalDeviceMaintenance4Properties::maxBufferSize` on Vulkan 1.3
    /// devices; `u64::MAX` before 1.3, where the limit is not reported (the
    /// allocator's `maxMemoryAllocationSize` still applies).
    pub max_buffer_size: u64,
    /// Number of queue families (`vkGetPhysicalDeviceQueueFamilyProperties`).
    pub queue_family_count: u32,
}

impl DeviceLimits {
    /// Limits that never reject anything the spec allows in general (for
    /// tests of the shape checks).
    pub fn permissive() -> Self {
        Self {
            api_version: vk::API_VERSION_1_3,
            max_buffer_size: u64::MAX,
            queue_family_count: u32::MAX,
        }
    }
}

/// Checks a queue-family sharing mode: concurrent sharing names at least two
/// distinct families, each one the device has
/// (VUID-VkBufferCreateInfo-sharingMode-00914, -01419).
pub fn sharing(sharing: &Sharing, limits: &DeviceLimits) -> Result<(), ResourceError> {
    let Sharing::Concurrent(families) = sharing else {
        return Ok(());
    };
    if let Some(&family) = families.iter().find(|&&f| f >= limits.queue_family_count) {
        return Err(ResourceError::InvalidQueueFamily {
            family,
            family_count: limits.queue_family_count,
        });
    }
    if sharing.distinct_families().len() < 2 {
        return Err(ResourceError::ConcurrentSharingNeedsTwoFamilies {
            families: families.clone(),
        });
    }
    Ok(())
}

/// Checks that a name can become a C string for `VK_EXT_debug_utils`.
pub fn name(name: Option<&str>) -> Result<(), ResourceError> {
    match name {
        Some(n) if n.contains('\0') => Err(ResourceError::InvalidName { name: n.to_owned() }),
        _ => Ok(()),
    }
}

/// Checks a buffer desc: non-zero size within `maxBufferSize`, non-empty
/// usage, sharing and name.
pub fn buffer(desc: &BufferDesc, limits: &DeviceLimits) -> Result<(), ResourceError> {
    if desc.size == 0 {
        return Err(ResourceError::ZeroBufferSize);
    }
    if desc.usage.is_empty() {
        return Err(ResourceError::EmptyBufferUsage);
    }
    if desc.size > limits.max_buffer_size {
        return Err(ResourceError::BufferTooLarge {
            size: desc.size,
            max: limits.max_buffer_size,
        });
    }
    sharing(&desc.sharing, limits)?;
    name(desc.name.as_deref())
}

/// Checks everything about an image desc that does not need the format's
/// properties: format, usage, extent for the kind, mip chain, layers, cube
/// rules, sample count, initial layout, create flags, sharing, name.
pub fn image_shape(desc: &ImageDesc, limits: &DeviceLimits) -> Result<(), ResourceError> {
    let e = desc.extent;
    if desc.format == vk::Format::UNDEFINED {
        return Err(ResourceError::UndefinedFormat);
    }
    if desc.usage.is_empty() {
        return Err(ResourceError::EmptyImageUsage);
    }
    if e.width == 0 || e.height == 0 || e.depth == 0 {
        return Err(ResourceError::ZeroExtent { extent: e });
    }
    let fits_kind = match desc.kind {
        ImageKind::D1 => e.height == 1 && e.depth == 1,
        ImageKind::D2 | ImageKind::Cube => e.depth == 1,
        ImageKind::D3 => true,
    };
    if !fits_kind {
        return Err(ResourceError::ExtentDoesNotFitKind {
            kind: desc.kind,
            extent: e,
        });
    }
    if desc.kind == ImageKind::Cube && e.width != e.height {
        return Err(ResourceError::CubeNotSquare {
            width: e.width,
            height: e.height,
        });
    }
    let max_mips = full_mip_chain(e);
    if desc.mip_levels == 0 || desc.mip_levels > max_mips {
        return Err(ResourceError::InvalidMipLevels {
            mip_levels: desc.mip_levels,
            max: max_mips,
            extent: e,
        });
    }
    if desc.array_layers == 0 {
        return Err(ResourceError::ZeroArrayLayers);
    }
    if desc.kind == ImageKind::D3 && desc.array_layers != 1 {
        return Err(ResourceError::LayeredVolume {
            array_layers: desc.array_layers,
        });
    }
    if desc.kind == ImageKind::Cube && desc.array_layers % 6 != 0 {
        return Err(ResourceError::CubeLayerCount {
            array_layers: desc.array_layers,
        });
    }
    let samples = desc.samples.as_raw();
    if samples.count_ones() != 1 || samples > vk::SampleCountFlags::TYPE_64.as_raw() {
        return Err(ResourceError::InvalidSampleCount {
            samples: desc.samples,
        });
    }
    if desc.samples != vk::SampleCountFlags::TYPE_1 {
        // VUID-VkImageCreateInfo-samples-02257.
        let reason = if desc.kind != ImageKind::D2 {
            Some("the image is not a plain 2D image")
        } else if desc.tiling != vk::ImageTiling::OPTIMAL {
            Some("the tiling is not OPTIMAL")
        } else if desc.mip_levels != 1 {
            Some("the image has more than one mip level")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ResourceError::MultisampleNotAllowed {
                samples: desc.samples,
                reason,
            });
        }
    }
    if desc.tiling != vk::ImageTiling::OPTIMAL && desc.tiling != vk::ImageTiling::LINEAR {
        return Err(ResourceError::UnsupportedTiling {
            tiling: desc.tiling,
        });
    }
    if desc.initial_layout != vk::ImageLayout::UNDEFINED
        && desc.initial_layout != vk::ImageLayout::PREINITIALIZED
    {
        return Err(ResourceError::InvalidInitialLayout {
            layout: desc.initial_layout,
        });
    }
    let unsupported = desc.create_flags()
        & (vk::ImageCreateFlags::SPARSE_BINDING
            | vk::ImageCreateFlags::SPARSE_RESIDENCY
            | vk::ImageCreateFlags::SPARSE_ALIASED
            | vk::ImageCreateFlags::DISJOINT);
    if !unsupported.is_empty() {
        return Err(ResourceError::UnsupportedCreateFlags { flags: unsupported });
    }
    sharing(&desc.sharing, limits)?;
    name(desc.name.as_deref())
}

/// Checks an image desc against what `vkGetPhysicalDeviceImageFormatProperties`
/// returned for its format, type, tiling, usage and flags: extent, mip
/// levels, array layers and sample count within the maxima.
pub fn image_format_limits(
    desc: &ImageDesc,
    props: &vk::ImageFormatProperties,
) -> Result<(), ResourceError> {
    let (e, m) = (desc.extent, props.max_extent);
    if e.width > m.width || e.height > m.height || e.depth > m.depth {
        return Err(ResourceError::ExtentTooLarge {
            format: desc.format,
            extent: e,
            max: m,
        });
    }
    if desc.mip_levels > props.max_mip_levels {
        return Err(ResourceError::TooManyMipLevels {
            format: desc.format,
            mip_levels: desc.mip_levels,
            max: props.max_mip_levels,
        });
    }
    if desc.array_layers > props.max_array_layers {
        return Err(ResourceError::TooManyArrayLayers {
            format: desc.format,
            array_layers: desc.array_layers,
            max: props.max_array_layers,
        });
    }
    if !props.sample_counts.contains(desc.samples) {
        return Err(ResourceError::SampleCountNotSupported {
            format: desc.format,
            samples: desc.samples,
            supported: props.sample_counts,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mem_core::MemoryUsage;

    fn limits() -> DeviceLimits {
        DeviceLimits {
            api_version: vk::API_VERSION_1_3,
            max_buffer_size: 1 << 32,
            queue_family_count: 3,
        }
    }

    fn rgba(w: u32, h: u32) -> ImageDesc {
        ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, w, h, 1)
    }

    #[test]
    fn buffer_rules() {
        let l = limits();
        let ok = BufferDesc::new(
            16,
            vk::BufferUsageFlags::UNIFORM_BUFFER,
            MemoryUsage::Dynamic,
        );
        assert_eq!(buffer(&ok, &l), Ok(()));
        assert_eq!(
            buffer(&ok.clone().size(0), &l),
            Err(ResourceError::ZeroBufferSize)
        );
        assert_eq!(
            buffer(&ok.clone().usage(vk::BufferUsageFlags::empty()), &l),
            Err(ResourceError::EmptyBufferUsage)
        );
        assert_eq!(
            buffer(&ok.clone().size((1 << 32) + 1), &l),
            Err(ResourceError::BufferTooLarge {
                size: (1 << 32) + 1,
                max: 1 << 32
            })
        );
        assert_eq!(buffer(&ok.clone().size(1 << 32), &l), Ok(()));
        assert_eq!(
            buffer(&ok.clone().sharing(Sharing::concurrent([1, 1])), &l),
            Err(ResourceError::ConcurrentSharingNeedsTwoFamilies {
                families: [1, 1].into_iter().collect()
            })
        );
        assert_eq!(
            buffer(&ok.clone().sharing(Sharing::concurrent([0, 3])), &l),
            Err(ResourceError::InvalidQueueFamily {
                family: 3,
                family_count: 3
            })
        );
        assert_eq!(
            buffer(&ok.clone().sharing(Sharing::concurrent([0, 2, 0])), &l),
            Ok(())
        );
        assert_eq!(
            buffer(&ok.clone().name("a\0b"), &l),
            Err(ResourceError::InvalidName {
                name: "a\0b".into()
            })
        );
    }

    #[test]
    fn image_shape_rules() {
        let l = limits();
        assert_eq!(image_shape(&rgba(4, 4), &l), Ok(()));
        assert_eq!(
            image_shape(&rgba(4, 4).format(vk::Format::UNDEFINED), &l),
            Err(ResourceError::UndefinedFormat)
        );
        assert_eq!(
            image_shape(&rgba(4, 4).usage(vk::ImageUsageFlags::empty()), &l),
            Err(ResourceError::EmptyImageUsage)
        );
        let zero = vk::Extent3D {
            width: 4,
            height: 0,
            depth: 1,
        };
        assert_eq!(
            image_shape(&rgba(4, 0), &l),
            Err(ResourceError::ZeroExtent { extent: zero })
        );
        let tall = vk::Extent3D {
            width: 8,
            height: 2,
            depth: 1,
        };
        assert_eq!(
            image_shape(&rgba(8, 2).kind(ImageKind::D1), &l),
            Err(ResourceError::ExtentDoesNotFitKind {
                kind: ImageKind::D1,
                extent: tall
            })
        );
        let deep = vk::Extent3D {
            width: 8,
            height: 8,
            depth: 2,
        };
        assert_eq!(
            image_shape(&rgba(8, 8).extent(deep), &l),
            Err(ResourceError::ExtentDoesNotFitKind {
                kind: ImageKind::D2,
                extent: deep
            })
        );
        assert_eq!(
            image_shape(&rgba(8, 4).mip_levels(5), &l),
            Err(ResourceError::InvalidMipLevels {
                mip_levels: 5,
                max: 4,
                extent: vk::Extent3D {
                    width: 8,
                    height: 4,
                    depth: 1
                }
            })
        );
        assert_eq!(image_shape(&rgba(8, 4).mip_levels(4), &l), Ok(()));
        assert!(matches!(
            image_shape(&rgba(8, 4).mip_levels(0), &l),
            Err(ResourceError::InvalidMipLevels { mip_levels: 0, .. })
        ));
        assert_eq!(
            image_shape(&rgba(8, 4).array_layers(0), &l),
            Err(ResourceError::ZeroArrayLayers)
        );
        let vol = ImageDesc::texture_3d(vk::Format::R8_UNORM, 4, 4, 4, 3);
        assert_eq!(image_shape(&vol, &l), Ok(()));
        assert_eq!(
            image_shape(&vol.array_layers(2), &l),
            Err(ResourceError::LayeredVolume { array_layers: 2 })
        );
        let cube = ImageDesc::cube(vk::Format::R8G8B8A8_UNORM, 16, 5);
        assert_eq!(image_shape(&cube, &l), Ok(()));
        assert_eq!(image_shape(&cube.clone().array_layers(12), &l), Ok(()));
        assert_eq!(
            image_shape(&cube.clone().array_layers(7), &l),
            Err(ResourceError::CubeLayerCount { array_layers: 7 })
        );
        assert_eq!(
            image_shape(
                &cube.clone().extent(vk::Extent3D {
                    width: 16,
                    height: 8,
                    depth: 1
                }),
                &l
            ),
            Err(ResourceError::CubeNotSquare {
                width: 16,
                height: 8
            })
        );
        let three = vk::SampleCountFlags::from_raw(3);
        assert_eq!(
            image_shape(&rgba(4, 4).samples(three), &l),
            Err(ResourceError::InvalidSampleCount { samples: three })
        );
        assert_eq!(
            image_shape(&rgba(4, 4).samples(vk::SampleCountFlags::empty()), &l),
            Err(ResourceError::InvalidSampleCount {
                samples: vk::SampleCountFlags::empty()
            })
        );
        let ms = rgba(4, 4).samples(vk::SampleCountFlags::TYPE_4);
        assert_eq!(image_shape(&ms, &l), Ok(()));
        assert!(matches!(
            image_shape(&ms.clone().mip_levels(2), &l),
            Err(ResourceError::MultisampleNotAllowed {
                reason: "the image has more than one mip level",
                ..
            })
        ));
        assert!(matches!(
            image_shape(&ms.clone().tiling(vk::ImageTiling::LINEAR), &l),
            Err(ResourceError::MultisampleNotAllowed { .. })
        ));
        assert_eq!(
            image_shape(&rgba(4, 4).initial_layout(vk::ImageLayout::GENERAL), &l),
            Err(ResourceError::InvalidInitialLayout {
                layout: vk::ImageLayout::GENERAL
            })
        );
        assert_eq!(
            image_shape(
                &rgba(4, 4).initial_layout(vk::ImageLayout::PREINITIALIZED),
                &l
            ),
            Ok(())
        );
        assert_eq!(
            image_shape(
                &rgba(4, 4).tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT),
                &l
            ),
            Err(ResourceError::UnsupportedTiling {
                tiling: vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT
            })
        );
        assert_eq!(
            image_shape(
                &rgba(4, 4).flags(
                    vk::ImageCreateFlags::SPARSE_BINDING | vk::ImageCreateFlags::MUTABLE_FORMAT
                ),
                &l
            ),
            Err(ResourceError::UnsupportedCreateFlags {
                flags: vk::ImageCreateFlags::SPARSE_BINDING
            })
        );
    }

    #[test]
    fn format_limits() {
        let props = vk::ImageFormatProperties {
            max_extent: vk::Extent3D {
                width: 64,
                height: 64,
                depth: 1,
            },
            max_mip_levels: 3,
            max_array_layers: 4,
            sample_counts: vk::SampleCountFlags::TYPE_1 | vk::SampleCountFlags::TYPE_4,
            max_resource_size: 1 << 30,
        };
        assert_eq!(
            image_format_limits(&rgba(64, 64).mip_levels(3), &props),
            Ok(())
        );
        assert!(matches!(
            image_format_limits(&rgba(128, 64), &props),
            Err(ResourceError::ExtentTooLarge {
                extent: vk::Extent3D { width: 128, .. },
                ..
            })
        ));
        assert!(matches!(
            image_format_limits(&rgba(64, 64).mip_levels(4), &props),
            Err(ResourceError::TooManyMipLevels {
                mip_levels: 4,
                max: 3,
                ..
            })
        ));
        assert!(matches!(
            image_format_limits(&rgba(4, 4).array_layers(5), &props),
            Err(ResourceError::TooManyArrayLayers {
                array_layers: 5,
                max: 4,
                ..
            })
        ));
        assert!(matches!(
            image_format_limits(&rgba(4, 4).samples(vk::SampleCountFlags::TYPE_2), &props),
            Err(ResourceError::SampleCountNotSupported { .. })
        ));
    }

    #[test]
    fn messages_name_values() {
        let e = ResourceError::InvalidMipLevels {
            mip_levels: 12,
            max: 11,
            extent: vk::Extent3D {
                width: 1024,
                height: 512,
                depth: 1,
            },
        };
        assert_eq!(
            e.to_string(),
            "mip_levels 12 is outside 1..=11 (the full chain of extent 1024x512x1)"
        );
        let e = ResourceError::BufferTooLarge { size: 5, max: 4 };
        assert_eq!(
            e.to_string(),
            "buffer size 5 exceeds the device's maxBufferSize 4"
        );
    }
}
