//! The error type of mem-resources.

use ash::vk;
use mem_core::AllocError;
use smallvec::SmallVec;

use crate::desc::ImageKind;
use crate::retire::RetirePoint;

/// Shows Vulkan flags as ash's `Debug` does (`A | B`), or `none` when empty
/// (ash prints nothing), so messages never have a hole.
struct Flags<'a, T>(&'a T);

impl<T: std::fmt::Debug + Default + PartialEq> std::fmt::Display for Flags<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self.0 == T::default() {
            f.write_str("none")
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// Why creating, destroying or accessing a resource failed.
///
/// Validation variants (everything up to [`ResourceError::InvalidName`]) are
/// found before Vulkan sees the desc and name the offending values. When a
/// step after `vkCreate*` fails ([`ResourceError::Vulkan`],
/// [`ResourceError::Alloc`]), every earlier step has been undone: no object
/// and no memory is left behind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A buffer of size 0.
    #[error("buffer size is 0")]
    ZeroBufferSize,
    /// A buffer without usage flags.
    #[error("buffer usage is empty")]
    EmptyBufferUsage,
    /// A buffer larger than the device's `maxBufferSize`
    /// (`VkPhysicalDeviceMaintenance4Properties`).
    #[error("buffer size {size} exceeds the device's maxBufferSize {max}")]
    BufferTooLarge {
        /// The size asked for.
        size: u64,
        /// The device limit.
        max: u64,
    },
    /// An image with a zero width, height or depth.
    #[error("image extent {}x{}x{} has a zero dimension", .extent.width, .extent.height, .extent.depth)]
    ZeroExtent {
        /// The extent asked for.
        extent: vk::Extent3D,
    },
    /// An extent the image kind cannot have (1D with height or depth other
    /// than 1, 2D or cube with depth other than 1).
    #[error(
        "image extent {}x{}x{} is not valid for a {kind:?} image \
         (1D: height and depth 1; 2D and cube: depth 1)",
        .extent.width, .extent.height, .extent.depth
    )]
    ExtentDoesNotFitKind {
        /// The image kind.
        kind: ImageKind,
        /// The extent asked for.
        extent: vk::Extent3D,
    },
    /// An image without usage flags.
    #[error("image usage is empty")]
    EmptyImageUsage,
    /// `VK_FORMAT_UNDEFINED`.
    #[error("image format is UNDEFINED")]
    UndefinedFormat,
    /// A mip level count of 0 or beyond the full chain of the extent.
    #[error(
        "mip_levels {mip_levels} is outside 1..={max} (the full chain of extent {}x{}x{})",
        .extent.width, .extent.height, .extent.depth
    )]
    InvalidMipLevels {
        /// The count asked for.
        mip_levels: u32,
        /// The full chain's length, `floor(log2(max dimension)) + 1`.
        max: u32,
        /// The extent of level 0.
        extent: vk::Extent3D,
    },
    /// An array layer count of 0.
    #[error("array_layers is 0")]
    ZeroArrayLayers,
    /// A 3D image with more than one array layer.
    #[error("a 3D image has array_layers {array_layers}; 3D images have exactly 1")]
    LayeredVolume {
        /// The count asked for.
        array_layers: u32,
    },
    /// A cube whose faces are not square.
    #[error("cube faces must be square, extent is {width}x{height}")]
    CubeNotSquare {
        /// The width asked for.
        width: u32,
        /// The height asked for.
        height: u32,
    },
    /// A cube whose layer count is not a multiple of 6.
    #[error("a cube needs array_layers a multiple of 6, got {array_layers}")]
    CubeLayerCount {
        /// The count asked for.
        array_layers: u32,
    },
    /// A sample count that is not exactly one `VkSampleCountFlagBits`.
    #[error("samples {} is not a single sample count bit", Flags(.samples))]
    InvalidSampleCount {
        /// The flags given.
        samples: vk::SampleCountFlags,
    },
    /// Multisampling where the spec forbids it.
    #[error(
        "samples {samples:?} needs a 2D, non-cube, OPTIMAL image with one mip level ({reason})"
    )]
    MultisampleNotAllowed {
        /// The sample count asked for.
        samples: vk::SampleCountFlags,
        /// Which rule is broken.
        reason: &'static str,
    },
    /// An initial layout other than `UNDEFINED` or `PREINITIALIZED`.
    #[error("initial layout {layout:?} is not UNDEFINED or PREINITIALIZED")]
    InvalidInitialLayout {
        /// The layout given.
        layout: vk::ImageLayout,
    },
    /// A tiling other than `OPTIMAL` or `LINEAR` (DRM format modifiers
    /// need information a desc does not carry).
    #[error("image tiling {tiling:?} is not supported (use OPTIMAL or LINEAR)")]
    UnsupportedTiling {
        /// The tiling given.
        tiling: vk::ImageTiling,
    },
    /// Create flags the manager cannot honour (sparse binding, `DISJOINT`).
    #[error("image create flags {} are not supported (sparse and DISJOINT images need their own binding)", Flags(.flags))]
    UnsupportedCreateFlags {
        /// The unsupported flags.
        flags: vk::ImageCreateFlags,
    },
    /// `vkGetPhysicalDeviceImageFormatProperties` rejected the combination.
    #[error(
        "format {format:?} is not supported for a {image_type:?} image with {tiling:?} tiling, \
         usage {} and flags {} (the format's {tiling:?} features: {})",
        Flags(.usage), Flags(.flags), Flags(.features)
    )]
    FormatNotSupported {
        /// The format.
        format: vk::Format,
        /// The image type.
        image_type: vk::ImageType,
        /// The tiling.
        tiling: vk::ImageTiling,
        /// The usage.
        usage: vk::ImageUsageFlags,
        /// The create flags.
        flags: vk::ImageCreateFlags,
        /// What `vkGetPhysicalDeviceFormatProperties` reports for this
        /// tiling, to see which feature is missing.
        features: vk::FormatFeatureFlags,
    },
    /// The extent exceeds `VkImageFormatProperties::maxExtent`.
    #[error(
        "extent {}x{}x{} exceeds the maximum {}x{}x{} for format {format:?} with these usage/tiling",
        .extent.width, .extent.height, .extent.depth, .max.width, .max.height, .max.depth
    )]
    ExtentTooLarge {
        /// The format.
        format: vk::Format,
        /// The extent asked for.
        extent: vk::Extent3D,
        /// The format's maximum extent.
        max: vk::Extent3D,
    },
    /// More mip levels than `VkImageFormatProperties::maxMipLevels`.
    #[error("mip_levels {mip_levels} exceeds the maximum {max} for format {format:?} with these usage/tiling")]
    TooManyMipLevels {
        /// The format.
        format: vk::Format,
        /// The count asked for.
        mip_levels: u32,
        /// The format's maximum.
        max: u32,
    },
    /// More layers than `VkImageFormatProperties::maxArrayLayers`.
    #[error("array_layers {array_layers} exceeds the maximum {max} for format {format:?} with these usage/tiling")]
    TooManyArrayLayers {
        /// The format.
        format: vk::Format,
        /// The count asked for.
        array_layers: u32,
        /// The format's maximum.
        max: u32,
    },
    /// A sample count not in `VkImageFormatProperties::sampleCounts`.
    #[error("samples {samples:?} is not supported for format {format:?} with these usage/tiling (supported: {supported:?})")]
    SampleCountNotSupported {
        /// The format.
        format: vk::Format,
        /// The count asked for.
        samples: vk::SampleCountFlags,
        /// The supported counts.
        supported: vk::SampleCountFlags,
    },
    /// Concurrent sharing with fewer than two distinct queue families.
    #[error("concurrent sharing needs at least 2 distinct queue families, got {families:?}")]
    ConcurrentSharingNeedsTwoFamilies {
        /// The families given.
        families: SmallVec<[u32; 4]>,
    },
    /// A queue family index the device does not have.
    #[error("queue family {family} does not exist (the device has {family_count})")]
    InvalidQueueFamily {
        /// The index given.
        family: u32,
        /// How many families the device has.
        family_count: u32,
    },
    /// A name with a NUL byte (debug utils takes C strings).
    #[error("resource name {name:?} contains a NUL byte")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A Vulkan call failed; everything done before it was undone.
    #[error("{call} failed: {result:?}")]
    Vulkan {
        /// The Vulkan command, e.g. `"vkCreateBuffer"`.
        call: &'static str,
        /// Its result code (`ERROR_OUT_OF_DEVICE_MEMORY` and
        /// `ERROR_OUT_OF_HOST_MEMORY` keep device and host apart).
        result: vk::Result,
    },
    /// Memory could not be allocated (or a host access failed in mem-core);
    /// the object was destroyed again.
    #[error("memory: {0}")]
    Alloc(#[from] AllocError),
    /// Resource `index` of a batch failed; nothing of the batch was kept.
    #[error("resource {index} of the batch: {source}")]
    Batch {
        /// Index in the descs slice.
        index: usize,
        /// What went wrong with it.
        source: Box<ResourceError>,
    },
    /// Host access to a resource whose memory is not host-visible.
    #[error("resource {name:?} is in memory type {memory_type_index}, which is not host-visible")]
    NotHostVisible {
        /// The resource's name.
        name: Option<String>,
        /// Its memory type.
        memory_type_index: u32,
    },
    /// A host access range outside the resource.
    #[error("range {offset}+{len} is outside the resource's {size} bytes")]
    OutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// The resource's size.
        size: u64,
    },
    /// Host access to an image that is not linearly tiled.
    #[error("host access needs a LINEAR image, this one is {tiling:?}")]
    NotLinear {
        /// The image's tiling.
        tiling: vk::ImageTiling,
    },
    /// A mip level or array layer the image does not have.
    #[error("subresource mip {mip_level} layer {array_layer} is outside the image's {mip_levels} levels x {array_layers} layers")]
    SubresourceOutOfRange {
        /// Mip level asked for.
        mip_level: u32,
        /// Array layer asked for.
        array_layer: u32,
        /// The image's mip levels.
        mip_levels: u32,
        /// The image's array layers.
        array_layers: u32,
    },
    /// A resource to create at a chosen allocation (a defragmentation
    /// move) does not fit it: the driver's requirements for the new object
    /// differ from what the allocation offers.
    #[error("allocation of {size} bytes at offset {offset} in memory type {memory_type_index} does not meet the requirements (size {required_size}, alignment {required_alignment}, memoryTypeBits {memory_type_bits:#b}, dedicated {dedicated})")]
    AllocationMismatch {
        /// The allocation's reserved size.
        size: u64,
        /// Its offset.
        offset: u64,
        /// Its memory type.
        memory_type_index: u32,
        /// `VkMemoryRequirements::size` of the new object.
        required_size: u64,
        /// `VkMemoryRequirements::alignment` of the new object.
        required_alignment: u64,
        /// `VkMemoryRequirements::memoryTypeBits` of the new object.
        memory_type_bits: u32,
        /// The driver requires a dedicated allocation for it.
        dedicated: bool,
    },
    /// The resource was created by another manager.
    #[error("resource belongs to resource manager #{owner}, not to this one (#{this})")]
    ForeignResource {
        /// The id of the manager that created it.
        owner: u64,
        /// This manager's id.
        this: u64,
    },
}

impl ResourceError {
    /// The error of one resource, looking through [`ResourceError::Batch`].
    pub fn root(&self) -> &ResourceError {
        match self {
            ResourceError::Batch { source, .. } => source.root(),
            other => other,
        }
    }

    /// True when the device ran out of memory: `vkCreate*`/`vkBind*`
    /// returned `ERROR_OUT_OF_DEVICE_MEMORY` or the allocator found no room.
    pub fn is_out_of_device_memory(&self) -> bool {
        matches!(
            self.root(),
            ResourceError::Vulkan {
                result: vk::Result::ERROR_OUT_OF_DEVICE_MEMORY,
                ..
            } | ResourceError::Alloc(AllocError::OutOfDeviceMemory { .. })
        )
    }

    /// True when the host ran out of memory inside a Vulkan call.
    pub fn is_out_of_host_memory(&self) -> bool {
        matches!(
            self.root(),
            ResourceError::Vulkan {
                result: vk::Result::ERROR_OUT_OF_HOST_MEMORY,
                ..
            } | ResourceError::Alloc(AllocError::OutOfHostMemory)
        )
    }
}

/// An invariant [`crate::ResourceManager::validate`] found broken, with the
/// values that disagree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerValidationError {
    /// The registry's used and free slots do not add up to its slots.
    #[error("registry: {slots} slots, {used} used and {free} free")]
    SlotCount {
        /// Slots.
        slots: usize,
        /// Slots holding a resource.
        used: usize,
        /// Slots on the free list.
        free: usize,
    },
    /// A slot on the free list holds a resource or does not exist.
    #[error("registry: free slot {slot} is in use or out of range")]
    FreeSlotInUse {
        /// The slot.
        slot: u32,
    },
    /// A resource in the retire queue is not registered as retired to the
    /// same point.
    #[error("retired resource in slot {slot} (queued until {queued}) is registered as {}", match .registered { Some(Some(p)) => format!("retired until {p}"), Some(None) => "live".to_owned(), None => "absent".to_owned() })]
    RetiredMismatch {
        /// Its registry slot.
        slot: u32,
        /// Its point in the queue.
        queued: RetirePoint,
        /// What the registry holds: `None` for an empty slot, `Some(None)`
        /// for a live resource.
        registered: Option<Option<RetirePoint>>,
    },
    /// More or fewer resources are registered as retired than are queued.
    #[error("{registered} resources registered as retired, {queued} queued")]
    RetiredCount {
        /// Registered as retired.
        registered: usize,
        /// In the retire queue.
        queued: usize,
    },
    /// The allocator's own invariants ([`mem_core::Allocator::validate`]).
    #[error("allocator: {0}")]
    Allocator(#[from] mem_core::ValidationError),
}
