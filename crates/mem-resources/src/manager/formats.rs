//! Checks of a desc against the device before Vulkan sees it, and the
//! format queries they need: `vkGetPhysicalDeviceImageFormatProperties`
//! answers cached per format, type, tiling, usage and flags (a cached
//! answer never changes for a device; out-of-memory answers are not
//! cached), and `vkGetPhysicalDeviceFormatProperties` for the features an
//! error names.

use super::*;

/// Key of the format-properties cache.
pub(super) type FormatKey = (
    vk::Format,
    vk::ImageType,
    vk::ImageTiling,
    vk::ImageUsageFlags,
    vk::ImageCreateFlags,
);

impl ResourceManager {
    /// Checks `desc` as [`Self::create_buffer`] would, without creating
    /// anything.
    pub fn validate_buffer_desc(&self, desc: &BufferDesc) -> Result<(), ResourceError> {
        validate::buffer(desc, &self.limits)
    }

    /// Checks `desc` as [`Self::create_image`] would (format support
    /// included), without creating anything.
    pub fn validate_image_desc(&self, desc: &ImageDesc) -> Result<(), ResourceError> {
        validate::image_shape(desc, &self.limits)?;
        let props = self.image_format_properties(desc)?;
        validate::image_format_limits(desc, &props)
    }

    /// `vkGetPhysicalDeviceImageFormatProperties` for the desc's format,
    /// type, tiling, usage and flags, cached. `FORMAT_NOT_SUPPORTED` becomes
    /// [`ResourceError::FormatNotSupported`] with the format's features.
    #[doc(alias = "vkGetPhysicalDeviceImageFormatProperties")]
    pub fn image_format_properties(
        &self,
        desc: &ImageDesc,
    ) -> Result<vk::ImageFormatProperties, ResourceError> {
        let key = (
            desc.format,
            desc.kind.image_type(),
            desc.tiling,
            desc.usage,
            desc.create_flags(),
        );
        if let Some(p) = self.format_cache.lock().get(&key) {
            return Ok(*p);
        }
        // SAFETY: valid instance and physical device (constructor contract);
        // the arguments are plain enums and flags, checked by image_shape.
        let result = unsafe {
            self.instance.get_physical_device_image_format_properties(
                self.physical_device,
                key.0,
                key.1,
                key.2,
                key.3,
                key.4,
            )
        };
        match result {
            Ok(p) => {
                self.format_cache.lock().insert(key, p);
                Ok(p)
            }
            Err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED) => {
                let features = self.format_features(desc.format, desc.tiling);
                Err(ResourceError::FormatNotSupported {
                    format: key.0,
                    image_type: key.1,
                    tiling: key.2,
                    usage: key.3,
                    flags: key.4,
                    features,
                })
            }
            // Out of memory is not an answer about the format: not cached.
            Err(result) => Err(ResourceError::Vulkan {
                call: "vkGetPhysicalDeviceImageFormatProperties",
                result,
            }),
        }
    }

    /// The features of `format` for `tiling`
    /// (`vkGetPhysicalDeviceFormatProperties`).
    #[doc(alias = "vkGetPhysicalDeviceFormatProperties")]
    pub fn format_features(
        &self,
        format: vk::Format,
        tiling: vk::ImageTiling,
    ) -> vk::FormatFeatureFlags {
        // SAFETY: valid instance and physical device (constructor contract).
        let p = unsafe {
            self.instance
                .get_physical_device_format_properties(self.physical_device, format)
        };
        if tiling == vk::ImageTiling::LINEAR {
            p.linear_tiling_features
        } else {
            p.optimal_tiling_features
        }
    }
}
