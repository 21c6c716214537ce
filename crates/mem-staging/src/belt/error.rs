//! [`StagingError`]: why an upload or a wait failed. Bad input is reported
//! before anything is recorded; a failed device call makes the belt
//! unusable (sticky), since a streamed upload may be half on the GPU.

use super::*;

/// Why an upload failed. Every variant names the values; the belt stays
/// usable and nothing is half-recorded, except after [`StagingError::DeviceLost`]
/// or a failed submit, which are sticky.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagingError {
    /// An upload of zero bytes.
    #[error("upload of zero bytes")]
    EmptyData,
    /// The range reaches past the destination.
    #[error("upload of {len} bytes at offset {offset} does not fit a buffer of {size} bytes")]
    OutOfRange {
        /// Destination offset.
        offset: u64,
        /// Data length.
        len: u64,
        /// Destination size.
        size: u64,
    },
    /// The destination lacks `TRANSFER_DST` usage.
    #[error("destination {name:?} lacks TRANSFER_DST usage (has {usage})")]
    MissingTransferDst {
        /// The resource's name.
        name: Option<String>,
        /// Its usage flags, as text.
        usage: String,
    },
    /// A host image copy on a belt made without
    /// [`super::StagingBeltConfig::host_image_copy`].
    #[error("image {name:?}: the belt was made without host image copy (VK_EXT_host_image_copy)")]
    HostImageCopyUnavailable {
        /// The image's name.
        name: Option<String>,
    },
    /// A host image copy into an image without `HOST_TRANSFER_EXT` usage.
    #[error("image {name:?} lacks HOST_TRANSFER_EXT usage (has {usage})")]
    MissingHostTransfer {
        /// The image's name.
        name: Option<String>,
        /// Its usage flags, as text.
        usage: String,
    },
    /// The source of a readback lacks `TRANSFER_SRC` usage.
    #[error("readback source {name:?} lacks TRANSFER_SRC usage (has {usage})")]
    MissingTransferSrc {
        /// The resource's name.
        name: Option<String>,
        /// Its usage flags, as text.
        usage: String,
    },
    /// A [`super::Download`] larger than a chunk: use
    /// [`super::StagingBelt::read_buffer`], which streams.
    #[error(
        "a download of {len} bytes exceeds the chunk size ({max}); read_buffer streams any length"
    )]
    DownloadTooLarge {
        /// Bytes asked for.
        len: u64,
        /// [`super::StagingBeltConfig::chunk_size`].
        max: u64,
    },
    /// A readback of subresources nothing has written (`UNDEFINED`).
    #[error("image {name:?} level {level} layer {layer} holds nothing to read (UNDEFINED)")]
    NothingToRead {
        /// The image's name.
        name: Option<String>,
        /// The level.
        level: u32,
        /// The layer.
        layer: u32,
    },
    /// The ring is full of readback bytes the host has not read: read or
    /// drop the [`super::Download`]s first.
    #[error("no ring space for {len} bytes: {used} bytes are held by readbacks not yet read")]
    RingHeldByReadbacks {
        /// Bytes asked for.
        len: u64,
        /// Ring bytes in use.
        used: u64,
    },
    /// The image's usage does not allow the requested final layout (the
    /// spec ties e.g. `TRANSFER_SRC_OPTIMAL` to `TRANSFER_SRC` usage), or the
    /// layout cannot be transitioned to (`UNDEFINED`, `PREINITIALIZED`).
    #[error("final layout {layout} is not allowed for image {name:?} with usage {usage}")]
    LayoutNotAllowed {
        /// The image's name.
        name: Option<String>,
        /// The layout asked for, as text.
        layout: String,
        /// The image's usage flags, as text.
        usage: String,
    },
    /// The buffer or image was made by another [`ResourceManager`] than the
    /// belt's (another device, or another manager of the same device).
    #[error("{name:?} belongs to resource manager #{owner}, not to the belt's (#{manager})")]
    ForeignResource {
        /// The resource's name.
        name: Option<String>,
        /// The manager that made it.
        owner: u64,
        /// The belt's manager.
        manager: u64,
    },
    /// A multisampled image: copies from a buffer need one sample per texel.
    #[error("image {name:?} has {samples} samples per texel; uploads need 1")]
    Multisampled {
        /// The image's name.
        name: Option<String>,
        /// Its sample count.
        samples: u32,
    },
    /// The levels or layers of a partial upload are empty or reach past the
    /// image.
    #[error("{subresources:?} is not inside image {name:?} ({mip_levels} levels, {array_layers} layers)")]
    SubresourcesOutOfRange {
        /// The image's name.
        name: Option<String>,
        /// The box asked for.
        subresources: ImageSubresources,
        /// The image's levels.
        mip_levels: u32,
        /// The image's layers.
        array_layers: u32,
    },
    /// A partial update or a readback of an `EXCLUSIVE` image whose
    /// contents an earlier upload released to another queue family: the
    /// engine owns it there. Hand it back first
    /// ([`StagingBelt::release_image_to_belt`](crate::StagingBelt::release_image_to_belt)),
    /// upload the whole image (which discards the contents and needs no
    /// transfer), or give the image `CONCURRENT` sharing.
    #[error("image {name:?} level {level} layer {layer} is owned by queue family {family}; hand it to the belt's family first (release_image_to_belt)")]
    OwnedByAnotherFamily {
        /// The image's name.
        name: Option<String>,
        /// The first such level.
        level: u32,
        /// Its layer.
        layer: u32,
        /// The family that owns it.
        family: u32,
    },
    /// A resource offered for defragmentation is `EXCLUSIVE` while the
    /// belt copies on another queue family than the one that uses it: the
    /// move would need a round trip of ownership transfers through the
    /// engine's queue. Offer only `CONCURRENT` resources to such a belt, or
    /// defragment with a belt on the engine's own family.
    #[error("{name:?} is EXCLUSIVE to queue family {family}; a belt on family {belt_family} cannot move it")]
    MoveNeedsOwnershipTransfer {
        /// The resource's name.
        name: Option<String>,
        /// The family that uses it.
        family: u32,
        /// The belt's family.
        belt_family: u32,
    },
    /// The allocator refused the defragmentation pass (an allocation of
    /// another allocator was offered).
    #[error("defragmentation pass: {0}")]
    Defragmentation(#[source] mem_core::AllocError),
    /// Creating the resource a move copies into failed (out of memory, an
    /// injected fault): nothing of the pass is left.
    #[error("creating a moved resource: {0}")]
    MoveResource(#[source] ResourceError),
    /// The ticket's batch is still open: nothing will signal its value until
    /// [`StagingBelt::flush`] submits it.
    #[error("timeline value {value} is not submitted yet: flush the belt first")]
    NotSubmitted {
        /// The ticket's value.
        value: u64,
    },
    /// The image upload cannot be planned (format, data size, layout).
    #[error("image upload: {0}")]
    Plan(#[from] PlanError),
    /// A ticket of another belt.
    #[error("ticket belongs to belt #{ticket_belt}, not to this belt (#{belt})")]
    ForeignTicket {
        /// The ticket's belt.
        ticket_belt: u64,
        /// This belt.
        belt: u64,
    },
    /// Waiting took longer than the configured timeout.
    #[error("waited {waited:?} for timeline value {value} (completed: {completed})")]
    Timeout {
        /// The value waited for.
        value: u64,
        /// The value reached.
        completed: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// The device was lost; the belt cannot continue.
    #[error("the device was lost")]
    DeviceLost,
    /// A Vulkan call failed.
    #[error("{call} failed: {result:?}")]
    Vulkan {
        /// The call.
        call: &'static str,
        /// Its result.
        result: vk::Result,
    },
    /// Creating the ring buffer failed.
    #[error("creating the staging ring: {0}")]
    Resource(#[from] ResourceError),
    /// A configuration value is out of range.
    #[error("invalid belt configuration: {0}")]
    InvalidConfig(String),
    /// The writer or reader feeding an upload failed; nothing of the piece
    /// it was filling was copied (earlier pieces of a streamed upload may
    /// have reached the destination), and its ring space is free again.
    #[error("the upload's writer or reader failed: {0}")]
    Source(#[source] super::source::SourceError),
    /// Flushing the host's writes to non-coherent memory failed.
    #[error("flushing host writes to non-coherent memory: {0}")]
    Flush(#[source] mem_core::AllocError),
    /// An earlier device failure left the belt unusable (a streamed upload
    /// may be half on the GPU): every later call returns this. Drop the belt
    /// (which waits for or idles its queue and frees what it made) and make
    /// a new one.
    #[error("the belt failed earlier and cannot continue: {cause}")]
    Unusable {
        /// The earlier failure, as text.
        cause: String,
    },
}
impl StagingError {
    pub(super) fn vulkan(call: &'static str, result: vk::Result) -> Self {
        if result == vk::Result::ERROR_DEVICE_LOST {
            Self::DeviceLost
        } else {
            Self::Vulkan { call, result }
        }
    }

    pub(super) fn sticky_copy(&self) -> Self {
        match self {
            Self::DeviceLost => Self::DeviceLost,
            Self::Vulkan { call, result } => Self::Vulkan {
                call,
                result: *result,
            },
            Self::Unusable { cause } => Self::Unusable {
                cause: cause.clone(),
            },
            other => Self::Unusable {
                cause: other.to_string(),
            },
        }
    }
}
