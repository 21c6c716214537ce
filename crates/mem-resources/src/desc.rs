//! Descriptions of buffers and images: plain structs with constructors for
//! the common cases and builder methods for the rest.
//!
//! A desc says what the engine wants; [`crate::ResourceManager`] checks it
//! against the device (see [`crate::validate`]) before Vulkan sees it, so a
//! bad asset is a [`crate::ResourceError`], never a validation-layer error or
//! a crash.

use ash::vk;
use mem_core::MemoryUsage;
use smallvec::SmallVec;

/// How queue families share a resource (`VkSharingMode` plus the family
/// list).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sharing {
    /// `VK_SHARING_MODE_EXCLUSIVE`: one family owns the resource at a time;
    /// moving it to another family takes an ownership-transfer barrier pair.
    /// The fastest mode, and the default.
    #[default]
    Exclusive,
    /// `VK_SHARING_MODE_CONCURRENT` between these queue families. The spec
    /// requires at least two distinct families, each below the device's
    /// family count; duplicates are removed before Vulkan sees the list.
    Concurrent(SmallVec<[u32; 4]>),
}

impl Sharing {
    /// Concurrent sharing between `families`.
    pub fn concurrent(families: impl IntoIterator<Item = u32>) -> Self {
        Sharing::Concurrent(families.into_iter().collect())
    }

    /// The distinct families of a concurrent sharing in first-seen order
    /// (empty for exclusive).
    pub fn distinct_families(&self) -> SmallVec<[u32; 4]> {
        let mut out = SmallVec::new();
        if let Sharing::Concurrent(families) = self {
            for &f in families {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    pub(crate) fn mode(&self) -> vk::SharingMode {
        match self {
            Sharing::Exclusive => vk::SharingMode::EXCLUSIVE,
            Sharing::Concurrent(_) => vk::SharingMode::CONCURRENT,
        }
    }
}

/// What a buffer is: size, usage, memory intent, sharing and name.
///
/// ```
/// use ash::vk;
/// use mem_core::MemoryUsage;
/// use mem_resources::BufferDesc;
///
/// let desc = BufferDesc::new(64 << 10, vk::BufferUsageFlags::VERTEX_BUFFER, MemoryUsage::GpuOnly)
///     .usage_add(vk::BufferUsageFlags::TRANSFER_DST)
///     .name("terrain vertices");
/// assert_eq!(desc.size, 65536);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferDesc {
    /// Size in bytes; not zero, at most the device's `maxBufferSize`.
    pub size: u64,
    /// `VkBufferCreateInfo::usage`; not empty.
    pub usage: vk::BufferUsageFlags,
    /// What the CPU and GPU will do with the memory (mem-core ranks memory
    /// types from it).
    pub memory: MemoryUsage,
    /// Queue-family sharing. Default [`Sharing::Exclusive`].
    pub sharing: Sharing,
    /// Name for `VK_EXT_debug_utils`, statistics and leak reports. Must not
    /// contain NUL bytes. Default none.
    pub name: Option<String>,
    /// Memory of its own: a `VkDeviceMemory` of exactly this buffer's size
    /// instead of a range of a block. For a large buffer that lives as long
    /// as the device and may be alone in its memory type (a staging ring in
    /// host-visible memory, say), where a block would keep the rest of
    /// itself unused. Default false.
    pub own_memory: bool,
}

impl BufferDesc {
    /// A buffer of `size` bytes for `usage`, memory for `memory`; exclusive,
    /// unnamed.
    pub fn new(size: u64, usage: vk::BufferUsageFlags, memory: MemoryUsage) -> Self {
        Self {
            size,
            usage,
            memory,
            sharing: Sharing::Exclusive,
            name: None,
            own_memory: false,
        }
    }

    /// A host-visible staging buffer the GPU copies from
    /// (`TRANSFER_SRC`, [`MemoryUsage::Upload`]).
    pub fn staging(size: u64) -> Self {
        Self::new(
            size,
            vk::BufferUsageFlags::TRANSFER_SRC,
            MemoryUsage::Upload,
        )
    }

    /// A host-visible buffer the GPU copies into for the CPU to read
    /// (`TRANSFER_DST`, [`MemoryUsage::Readback`]).
    pub fn readback(size: u64) -> Self {
        Self::new(
            size,
            vk::BufferUsageFlags::TRANSFER_DST,
            MemoryUsage::Readback,
        )
    }

    /// Sets the size.
    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// Replaces the usage flags.
    pub fn usage(mut self, usage: vk::BufferUsageFlags) -> Self {
        self.usage = usage;
        self
    }

    /// Adds usage flags.
    pub fn usage_add(mut self, usage: vk::BufferUsageFlags) -> Self {
        self.usage |= usage;
        self
    }

    /// Sets the memory usage.
    pub fn memory(mut self, memory: MemoryUsage) -> Self {
        self.memory = memory;
        self
    }

    /// Sets the sharing mode.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// Names the buffer.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives the buffer memory of its own ([`Self::own_memory`]).
    pub fn own_memory(mut self) -> Self {
        self.own_memory = true;
        self
    }
}

/// The shape of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// `VK_IMAGE_TYPE_1D`: height and depth are 1.
    D1,
    /// `VK_IMAGE_TYPE_2D`: depth is 1.
    D2,
    /// `VK_IMAGE_TYPE_3D`: one array layer.
    D3,
    /// A 2D image with `VK_IMAGE_CREATE_CUBE_COMPATIBLE_BIT`: square, array
    /// layers a multiple of 6 (one cube per 6 layers).
    Cube,
}

impl ImageKind {
    /// The `VkImageType` of this kind.
    pub fn image_type(self) -> vk::ImageType {
        match self {
            ImageKind::D1 => vk::ImageType::TYPE_1D,
            ImageKind::D2 | ImageKind::Cube => vk::ImageType::TYPE_2D,
            ImageKind::D3 => vk::ImageType::TYPE_3D,
        }
    }

    /// Create flags this kind implies (`CUBE_COMPATIBLE` for cubes).
    pub fn implied_flags(self) -> vk::ImageCreateFlags {
        match self {
            ImageKind::Cube => vk::ImageCreateFlags::CUBE_COMPATIBLE,
            _ => vk::ImageCreateFlags::empty(),
        }
    }
}

/// The number of mip levels of a full chain for `extent`:
/// `floor(log2(max(width, height, depth))) + 1` (the spec's limit on
/// `VkImageCreateInfo::mipLevels`). An all-zero extent gives 1.
///
/// ```
/// use ash::vk;
/// use mem_resources::full_mip_chain;
///
/// assert_eq!(full_mip_chain(vk::Extent3D { width: 1024, height: 512, depth: 1 }), 11);
/// assert_eq!(full_mip_chain(vk::Extent3D { width: 1, height: 1, depth: 1 }), 1);
/// assert_eq!(full_mip_chain(vk::Extent3D { width: 1000, height: 1, depth: 1 }), 10);
/// ```
pub fn full_mip_chain(extent: vk::Extent3D) -> u32 {
    let max = extent.width.max(extent.height).max(extent.depth).max(1);
    32 - max.leading_zeros()
}

/// What an image is.
///
/// The constructors give an optimally tiled, single-sampled, GPU-only image
/// in `UNDEFINED` layout with `SAMPLED | TRANSFER_DST` usage (a texture to
/// upload into); change any field with the builder methods.
///
/// ```
/// use ash::vk;
/// use mem_resources::ImageDesc;
///
/// let desc = ImageDesc::texture_2d(vk::Format::R8G8B8A8_UNORM, 1024, 512, 1)
///     .full_mip_chain()
///     .name("albedo");
/// assert_eq!(desc.mip_levels, 11);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDesc {
    /// 1D, 2D, 3D or cube.
    pub kind: ImageKind,
    /// Texel format; not `UNDEFINED`.
    pub format: vk::Format,
    /// Size of mip level 0 in texels; no dimension zero; 1D images have height
    /// and depth 1, 2D and cube images depth 1; cubes are square.
    pub extent: vk::Extent3D,
    /// Mip levels, 1 to [`full_mip_chain`]`(extent)`.
    pub mip_levels: u32,
    /// Array layers, at least 1; 3D images have 1; cubes a multiple of 6.
    pub array_layers: u32,
    /// Samples per texel (one bit of `VkSampleCountFlags`). Default 1.
    pub samples: vk::SampleCountFlags,
    /// `OPTIMAL` (default) or `LINEAR`. Linear images are allocated in the
    /// linear class, like buffers (`bufferImageGranularity`).
    pub tiling: vk::ImageTiling,
    /// `VkImageCreateInfo::usage`; not empty.
    pub usage: vk::ImageUsageFlags,
    /// Extra create flags (e.g. `MUTABLE_FORMAT`); the kind adds its own
    /// ([`ImageKind::implied_flags`]). Sparse and `DISJOINT` flags are
    /// refused: the manager binds one allocation to the whole image.
    pub flags: vk::ImageCreateFlags,
    /// `UNDEFINED` (default) or `PREINITIALIZED` (the only two the spec
    /// allows).
    pub initial_layout: vk::ImageLayout,
    /// What the CPU and GPU will do with the memory.
    pub memory: MemoryUsage,
    /// Queue-family sharing. Default [`Sharing::Exclusive`].
    pub sharing: Sharing,
    /// Name for `VK_EXT_debug_utils`, statistics and leak reports. Must not
    /// contain NUL bytes.
    pub name: Option<String>,
    /// Memory of its own: a `VkDeviceMemory` of exactly this image's size
    /// instead of a range of a block (see [`BufferDesc::own_memory`]).
    /// Default false.
    pub own_memory: bool,
}

impl ImageDesc {
    /// An image of `kind`, `format` and `extent` with the defaults above, one
    /// mip level and one array layer (6 for a cube).
    pub fn new(kind: ImageKind, format: vk::Format, extent: vk::Extent3D) -> Self {
        Self {
            kind,
            format,
            extent,
            mip_levels: 1,
            array_layers: if kind == ImageKind::Cube { 6 } else { 1 },
            samples: vk::SampleCountFlags::TYPE_1,
            tiling: vk::ImageTiling::OPTIMAL,
            usage: vk::ImageUsageFlags::SAMPLED | vk::ImageUsageFlags::TRANSFER_DST,
            flags: vk::ImageCreateFlags::empty(),
            initial_layout: vk::ImageLayout::UNDEFINED,
            memory: MemoryUsage::GpuOnly,
            sharing: Sharing::Exclusive,
            name: None,
            own_memory: false,
        }
    }

    /// A 1D texture `width` texels wide with `mip_levels` levels.
    pub fn texture_1d(format: vk::Format, width: u32, mip_levels: u32) -> Self {
        Self::new(
            ImageKind::D1,
            format,
            vk::Extent3D {
                width,
                height: 1,
                depth: 1,
            },
        )
        .mip_levels(mip_levels)
    }

    /// A 2D texture of `width` x `height` with `mip_levels` levels.
    pub fn texture_2d(format: vk::Format, width: u32, height: u32, mip_levels: u32) -> Self {
        Self::new(
            ImageKind::D2,
            format,
            vk::Extent3D {
                width,
                height,
                depth: 1,
            },
        )
        .mip_levels(mip_levels)
    }

    /// A 2D array texture of `layers` layers.
    pub fn texture_2d_array(
        format: vk::Format,
        width: u32,
        height: u32,
        layers: u32,
        mip_levels: u32,
    ) -> Self {
        Self::texture_2d(format, width, height, mip_levels).array_layers(layers)
    }

    /// A 3D texture of `width` x `height` x `depth` with `mip_levels` levels.
    pub fn texture_3d(
        format: vk::Format,
        width: u32,
        height: u32,
        depth: u32,
        mip_levels: u32,
    ) -> Self {
        Self::new(
            ImageKind::D3,
            format,
            vk::Extent3D {
                width,
                height,
                depth,
            },
        )
        .mip_levels(mip_levels)
    }

    /// A cube map with faces of `size` x `size` and `mip_levels` levels (6
    /// layers; use [`Self::array_layers`] with a multiple of 6 for a cube
    /// array).
    pub fn cube(format: vk::Format, size: u32, mip_levels: u32) -> Self {
        Self::new(
            ImageKind::Cube,
            format,
            vk::Extent3D {
                width: size,
                height: size,
                depth: 1,
            },
        )
        .mip_levels(mip_levels)
    }

    /// A 2D render target (`COLOR_ATTACHMENT | SAMPLED`, or
    /// `DEPTH_STENCIL_ATTACHMENT | SAMPLED` for depth/stencil formats), one
    /// level.
    pub fn render_target(format: vk::Format, width: u32, height: u32) -> Self {
        let attachment = if format_aspect(format)
            .intersects(vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL)
        {
            vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT
        } else {
            vk::ImageUsageFlags::COLOR_ATTACHMENT
        };
        Self::texture_2d(format, width, height, 1).usage(attachment | vk::ImageUsageFlags::SAMPLED)
    }

    /// Sets the kind (and nothing else: fix the layers for a cube).
    pub fn kind(mut self, kind: ImageKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the format.
    pub fn format(mut self, format: vk::Format) -> Self {
        self.format = format;
        self
    }

    /// Sets the extent of level 0.
    pub fn extent(mut self, extent: vk::Extent3D) -> Self {
        self.extent = extent;
        self
    }

    /// Sets the mip level count.
    pub fn mip_levels(mut self, mip_levels: u32) -> Self {
        self.mip_levels = mip_levels;
        self
    }

    /// Sets the mip level count to the full chain of the current extent
    /// ([`full_mip_chain`]).
    pub fn full_mip_chain(mut self) -> Self {
        self.mip_levels = full_mip_chain(self.extent);
        self
    }

    /// Sets the array layer count.
    pub fn array_layers(mut self, array_layers: u32) -> Self {
        self.array_layers = array_layers;
        self
    }

    /// Sets the sample count.
    pub fn samples(mut self, samples: vk::SampleCountFlags) -> Self {
        self.samples = samples;
        self
    }

    /// Sets the tiling.
    pub fn tiling(mut self, tiling: vk::ImageTiling) -> Self {
        self.tiling = tiling;
        self
    }

    /// Replaces the usage flags.
    pub fn usage(mut self, usage: vk::ImageUsageFlags) -> Self {
        self.usage = usage;
        self
    }

    /// Adds usage flags.
    pub fn usage_add(mut self, usage: vk::ImageUsageFlags) -> Self {
        self.usage |= usage;
        self
    }

    /// Sets the extra create flags.
    pub fn flags(mut self, flags: vk::ImageCreateFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the initial layout.
    pub fn initial_layout(mut self, layout: vk::ImageLayout) -> Self {
        self.initial_layout = layout;
        self
    }

    /// Sets the memory usage.
    pub fn memory(mut self, memory: MemoryUsage) -> Self {
        self.memory = memory;
        self
    }

    /// Sets the sharing mode.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// Names the image.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives the image memory of its own ([`Self::own_memory`]).
    pub fn own_memory(mut self) -> Self {
        self.own_memory = true;
        self
    }

    /// The create flags Vulkan gets: [`Self::flags`] plus the kind's.
    pub fn create_flags(&self) -> vk::ImageCreateFlags {
        self.flags | self.kind.implied_flags()
    }

    /// The aspects of the format ([`format_aspect`]).
    pub fn aspect(&self) -> vk::ImageAspectFlags {
        format_aspect(self.format)
    }

    /// The subresource range covering every mip level and layer.
    pub fn full_subresource_range(&self) -> vk::ImageSubresourceRange {
        vk::ImageSubresourceRange {
            aspect_mask: self.aspect(),
            base_mip_level: 0,
            level_count: self.mip_levels,
            base_array_layer: 0,
            layer_count: self.array_layers,
        }
    }
}

/// The aspects a format has: `DEPTH` and/or `STENCIL` for depth/stencil
/// formats, `COLOR` for everything else (multi-planar formats included: the
/// spec allows `COLOR` for the whole image in barriers and views).
pub fn format_aspect(format: vk::Format) -> vk::ImageAspectFlags {
    use vk::Format as F;
    use vk::ImageAspectFlags as A;
    match format {
        F::D16_UNORM | F::X8_D24_UNORM_PACK32 | F::D32_SFLOAT => A::DEPTH,
        F::S8_UINT => A::STENCIL,
        F::D16_UNORM_S8_UINT | F::D24_UNORM_S8_UINT | F::D32_SFLOAT_S8_UINT => {
            A::DEPTH | A::STENCIL
        }
        _ => A::COLOR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mip_chain_lengths() {
        let e = |w, h, d| vk::Extent3D {
            width: w,
            height: h,
            depth: d,
        };
        assert_eq!(full_mip_chain(e(0, 0, 0)), 1);
        assert_eq!(full_mip_chain(e(1, 1, 1)), 1);
        assert_eq!(full_mip_chain(e(2, 1, 1)), 2);
        assert_eq!(full_mip_chain(e(3, 1, 1)), 2);
        assert_eq!(full_mip_chain(e(4, 4, 1)), 3);
        assert_eq!(full_mip_chain(e(1, 1, 256)), 9);
        assert_eq!(full_mip_chain(e(16384, 16384, 1)), 15);
        assert_eq!(full_mip_chain(e(u32::MAX, 1, 1)), 32);
    }

    #[test]
    fn sharing_dedup() {
        let s = Sharing::concurrent([2, 0, 2, 1, 0]);
        assert_eq!(s.distinct_families().as_slice(), &[2, 0, 1]);
        assert!(Sharing::Exclusive.distinct_families().is_empty());
        assert_eq!(s.mode(), vk::SharingMode::CONCURRENT);
    }

    #[test]
    fn constructors() {
        let c = ImageDesc::cube(vk::Format::R8G8B8A8_UNORM, 64, 1).full_mip_chain();
        assert_eq!(c.array_layers, 6);
        assert_eq!(c.mip_levels, 7);
        assert!(c
            .create_flags()
            .contains(vk::ImageCreateFlags::CUBE_COMPATIBLE));
        let d = ImageDesc::render_target(vk::Format::D24_UNORM_S8_UINT, 8, 8);
        assert!(d
            .usage
            .contains(vk::ImageUsageFlags::DEPTH_STENCIL_ATTACHMENT));
        assert_eq!(
            d.full_subresource_range().aspect_mask,
            vk::ImageAspectFlags::DEPTH | vk::ImageAspectFlags::STENCIL
        );
        let a = ImageDesc::texture_2d_array(vk::Format::R8_UNORM, 4, 4, 3, 2);
        assert_eq!((a.array_layers, a.mip_levels), (3, 2));
        let b = BufferDesc::staging(10).name("x");
        assert_eq!(b.memory, MemoryUsage::Upload);
        assert_eq!(b.name.as_deref(), Some("x"));
    }
}
