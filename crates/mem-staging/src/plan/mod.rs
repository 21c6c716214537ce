//! Image upload planner: splits an image's data into buffer→image copies that
//! each fit a piece of staging space. Pure: no Vulkan calls.
//!
//! # The caller's data layout
//!
//! An upload's data is one byte slice, tightly packed, **level-major** (the
//! order KTX-like containers and engines produce):
//!
//! ```text
//! for level in 0..mip_levels            // level 0 = full size first
//!   for layer in 0..array_layers
//!     for z in 0..depth(level)          // depth slices (1 unless 3D)
//!       for block_row in 0..rows(level)
//!         for block_col in 0..cols(level)
//!           block_bytes bytes           // one texel block
//! ```
//!
//! where, with `(bw, bh)` the format's texel block extent
//! ([`FormatInfo`]) and `w, h, d` the image extent,
//! - `width(level) = max(1, w >> level)`, likewise `height` and `depth`;
//! - `cols(level) = ceil(width(level) / bw)`, `rows(level) = ceil(height(level) / bh)`:
//!   partial blocks at the right and bottom edges are whole blocks in the data
//!   (a 2x2 mip of BC1 is one 8-byte block);
//! - a block row is `cols * block_bytes` bytes with no padding, a slice is
//!   `rows` block rows, a subresource (one level of one layer) is `depth`
//!   slices, and nothing separates them.
//!
//! [`expected_data_size`] is the sum of all of it; [`plan_image_upload`]
//! refuses any other length.
//!
//! # The plan
//!
//! [`plan_image_upload`] returns one or more [`PlannedCopy`] per subresource,
//! in data order. Each copy is a box of the subresource: full width, block
//! rows `y0 .. y0 + rows` of depth slices `z0 .. z0 + slices`. Its staging
//! piece starts at a staging offset the belt picks, aligned to
//! [`ImagePlan::staging_alignment`], and is laid out with
//! [`PlannedCopy::dst_row_pitch`] bytes per block row (the tight pitch rounded
//! up for `optimalBufferCopyRowPitchAlignment`) and `dst_row_pitch * rows`
//! bytes per slice; [`PlannedCopy::write_into`] produces it and
//! [`PlannedCopy::region`] describes it to `vkCmdCopyBufferToImage` (with
//! `buffer_offset` 0: the belt adds the piece's staging offset).
//!
//! # Splitting and `minImageTransferGranularity`
//!
//! A subresource whose staging footprint fits `max_chunk` is one copy of the
//! whole subresource (offset 0, extent = the level's extent), which every
//! queue accepts whatever its granularity, even `(0,0,0)` ("whole mips only"),
//! because an extent reaching the subresource's edge is always allowed.
//!
//! A larger subresource is split. A 3D one is first cut into slabs of whole
//! depth slices whose `z` offsets are multiples of the granularity's depth;
//! when even one such slab does not fit, and always for 1D/2D images, each
//! slab (one slab of depth 1 for 1D/2D) is cut into bands of block rows whose
//! `y` offsets are multiples of the granularity's height. The last slab and
//! band of each subresource reach its edge. Vulkan counts the granularity in
//! texel blocks for block-compressed formats, so a band unit is
//! `granularity.height` block rows (`granularity.height * bh` texel rows):
//! a multiple of both the granularity in texels and the block height. Widths
//! are never split. A queue with granularity `(0,0,0)` (or any zero component)
//! cannot take partial copies: a subresource larger than `max_chunk` is then
//! [`PlanError::ChunkTooSmall`], as is one band unit larger than `max_chunk`.
//!
//! # Alignment
//!
//! Staging offsets: `lcm(4, block_bytes, optimalBufferCopyOffsetAlignment)`
//! (Vulkan requires `bufferOffset` to be a multiple of 4 on transfer-only
//! queues and for depth/stencil, and of the texel block size). Row pitch:
//! `round_up(tight, lcm(block_bytes, optimalBufferCopyRowPitchAlignment))`, so
//! the padded pitch is a whole number of blocks and `buffer_row_length` (in
//! texels) is exact; it is 0 when no padding was needed.
//! `buffer_image_height` is always 0: a piece's staging holds exactly the
//! block rows of its extent per slice.

use ash::vk;

use crate::format::{aspect_info, format_info, FormatInfo};

/// What an upload writes: an image's format, shape and the levels and layers
/// the data holds (levels `0..mip_levels`, layers `0..array_layers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// The image's format.
    pub format: vk::Format,
    /// 1D, 2D or 3D.
    pub image_type: vk::ImageType,
    /// Extent of mip level 0, in texels.
    pub extent: vk::Extent3D,
    /// Number of mip levels in the data, from level 0.
    pub mip_levels: u32,
    /// Number of array layers in the data, from layer 0 (1 for 3D images).
    pub array_layers: u32,
    /// The aspect to write; `None`: the format's own aspect. Combined
    /// depth/stencil formats need `Some(DEPTH)` or `Some(STENCIL)` (one
    /// aspect per upload; see [`aspect_info`]).
    pub aspect: Option<vk::ImageAspectFlags>,
}

impl ImageLayout {
    /// A 2D image (array) with `mip_levels` levels and `array_layers` layers.
    pub fn new_2d(
        format: vk::Format,
        width: u32,
        height: u32,
        mip_levels: u32,
        array_layers: u32,
    ) -> Self {
        Self {
            format,
            image_type: vk::ImageType::TYPE_2D,
            extent: vk::Extent3D {
                width,
                height,
                depth: 1,
            },
            mip_levels,
            array_layers,
            aspect: None,
        }
    }

    /// A 3D image with `mip_levels` levels.
    pub fn new_3d(format: vk::Format, extent: vk::Extent3D, mip_levels: u32) -> Self {
        Self {
            format,
            image_type: vk::ImageType::TYPE_3D,
            extent,
            mip_levels,
            array_layers: 1,
            aspect: None,
        }
    }
}

/// The device and queue limits a copy plan honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyLimits {
    /// `VkPhysicalDeviceLimits::optimalBufferCopyOffsetAlignment` (0 reads as 1).
    pub optimal_buffer_copy_offset_alignment: u64,
    /// `VkPhysicalDeviceLimits::optimalBufferCopyRowPitchAlignment` (0 reads as 1).
    pub optimal_buffer_copy_row_pitch_alignment: u64,
    /// `minImageTransferGranularity` of the queue family that records the
    /// copies; `(0,0,0)` allows whole mip levels only.
    pub min_image_transfer_granularity: vk::Extent3D,
}

impl Default for CopyLimits {
    /// No alignment preference and texel granularity (1,1,1).
    fn default() -> Self {
        Self {
            optimal_buffer_copy_offset_alignment: 1,
            optimal_buffer_copy_row_pitch_alignment: 1,
            min_image_transfer_granularity: vk::Extent3D {
                width: 1,
                height: 1,
                depth: 1,
            },
        }
    }
}

#[cfg(feature = "testing")]
fn limit_u64(table: &mem_core::fake::DeviceTable, name: &str) -> u64 {
    match table.limit(name) {
        // `as` saturates; NaN and values below 1 read as "no preference".
        Some(v) if v >= 1.0 => v as u64,
        _ => 1,
    }
}

impl CopyLimits {
    /// The limits of a device table (`optimalBufferCopyOffsetAlignment`,
    /// `optimalBufferCopyRowPitchAlignment`; 1 when the table lacks them) and
    /// of its queue family `queue_family`. A family the table does not have
    /// gets granularity `(0,0,0)`, the most restrictive value. Behind the
    /// `testing` feature (mem-core's device tables).
    #[cfg(feature = "testing")]
    pub fn from_table(table: &mem_core::fake::DeviceTable, queue_family: usize) -> Self {
        Self {
            optimal_buffer_copy_offset_alignment: limit_u64(
                table,
                "optimalBufferCopyOffsetAlignment",
            ),
            optimal_buffer_copy_row_pitch_alignment: limit_u64(
                table,
                "optimalBufferCopyRowPitchAlignment",
            ),
            min_image_transfer_granularity: table
                .queue_families
                .get(queue_family)
                .map(|f| f.min_image_transfer_granularity)
                .unwrap_or_default(),
        }
    }

    /// The limits from the structures Vulkan reports
    /// (`vkGetPhysicalDeviceProperties`, `vkGetPhysicalDeviceQueueFamilyProperties`).
    pub fn from_properties(
        limits: &vk::PhysicalDeviceLimits,
        queue_family: &vk::QueueFamilyProperties,
    ) -> Self {
        Self {
            optimal_buffer_copy_offset_alignment: limits.optimal_buffer_copy_offset_alignment,
            optimal_buffer_copy_row_pitch_alignment: limits.optimal_buffer_copy_row_pitch_alignment,
            min_image_transfer_granularity: queue_family.min_image_transfer_granularity,
        }
    }
}

/// Why an image upload cannot be planned. Messages name the values.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The format has no single-blob buffer layout (combined depth/stencil
    /// without an aspect, multi-planar, Y′CbCr, PVRTC, unknown).
    #[error("format {format:?} cannot be uploaded from one tightly packed buffer")]
    UnsupportedFormat {
        /// The format.
        format: vk::Format,
    },
    /// The aspect is not one the format's copies can address alone.
    #[error("aspect {aspect:?} of format {format:?} cannot be uploaded")]
    UnsupportedAspect {
        /// The format.
        format: vk::Format,
        /// The aspect asked for.
        aspect: vk::ImageAspectFlags,
    },
    /// Not 1D, 2D or 3D.
    #[error("unknown image type {image_type:?}")]
    UnsupportedImageType {
        /// The image type.
        image_type: vk::ImageType,
    },
    /// A zero width, height or depth.
    #[error("image extent {width}x{height}x{depth} has a zero dimension")]
    ZeroExtent {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Depth.
        depth: u32,
    },
    /// The extent does not fit the image type (1D: height = depth = 1; 2D: depth = 1).
    #[error("image extent {width}x{height}x{depth} is not valid for a {image_type:?} image")]
    ExtentForImageType {
        /// The image type.
        image_type: vk::ImageType,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Depth.
        depth: u32,
    },
    /// `mip_levels` is 0.
    #[error("mip_levels is 0")]
    ZeroMipLevels,
    /// `array_layers` is 0.
    #[error("array_layers is 0")]
    ZeroArrayLayers,
    /// More levels than the extent's full mip chain.
    #[error("{mip_levels} mip levels, but the extent's full chain has {max}")]
    TooManyMipLevels {
        /// Levels asked for.
        mip_levels: u32,
        /// `floor(log2(max(w, h, d))) + 1`.
        max: u32,
    },
    /// More array layers than any device allows (the planner would emit a
    /// copy per layer and mip level).
    #[error("{layers} array layers exceed the limit of {max} (maxImageArrayLayers is at most 2048 on known devices)")]
    TooManyArrayLayers {
        /// Layers asked for.
        layers: u32,
        /// The planner's limit, [`MAX_ARRAY_LAYERS`].
        max: u32,
    },
    /// The plan would need more than [`MAX_COPIES`] copy regions (an extent
    /// far beyond any device's limits, or a chunk far too small for it).
    #[error(
        "the upload would need more than {max} copy regions; use a larger chunk or a smaller image"
    )]
    TooManyCopies {
        /// The planner's limit, [`MAX_COPIES`].
        max: usize,
    },
    /// A 3D image with several array layers.
    #[error("a 3D image has 1 array layer, not {layers}")]
    Image3DWithLayers {
        /// Layers asked for.
        layers: u32,
    },
    /// The levels or layers asked for are empty or reach past the image.
    #[error("levels {levels:?} of layers {layers:?} are not inside an image of {mip_levels} levels and {array_layers} layers")]
    SubresourcesOutOfRange {
        /// Levels asked for.
        levels: std::ops::Range<u32>,
        /// Layers asked for.
        layers: std::ops::Range<u32>,
        /// The image's levels.
        mip_levels: u32,
        /// The image's layers.
        array_layers: u32,
    },
    /// The data's length is not the layout's size.
    #[error("image data is {actual} bytes, the layout needs {expected}")]
    DataSizeMismatch {
        /// Bytes the layout needs ([`expected_data_size`]).
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
    /// A piece that cannot be split further does not fit the staging space.
    #[error("a copy needs {needed} bytes of staging space in one piece, but chunks are at most {max_chunk}")]
    ChunkTooSmall {
        /// Bytes the smallest allowed piece needs.
        needed: u64,
        /// The chunk size given.
        max_chunk: u64,
    },
    /// A size, pitch or offset does not fit the integer Vulkan stores it in.
    #[error("the image is too large: {what} overflows")]
    Overflow {
        /// Which quantity overflowed.
        what: &'static str,
    },
}

/// One buffer→image copy of a plan and the staging piece it reads.
#[derive(Clone, Copy, Debug)]
pub struct PlannedCopy {
    /// Where this piece starts in the caller's data (its first block row).
    pub src_offset: u64,
    /// Bytes per block row in the caller's data: the tight pitch
    /// `ceil(width / bw) * block_bytes`. Also the bytes copied per row.
    pub src_row_pitch: u64,
    /// Bytes per block row in staging: `src_row_pitch` rounded up to
    /// `lcm(block_bytes, optimalBufferCopyRowPitchAlignment)`.
    pub dst_row_pitch: u64,
    /// Block rows copied per depth slice (`ceil(image_extent.height / bh)`).
    pub rows: u64,
    /// Depth slices copied (`image_extent.depth`; 1 for 1D/2D).
    pub slices: u64,
    /// Bytes per depth slice in the caller's data (the level's whole slice).
    pub src_slice_pitch: u64,
    /// Bytes per depth slice in staging: `dst_row_pitch * rows`.
    pub dst_slice_pitch: u64,
    /// Bytes of staging this piece needs:
    /// `dst_slice_pitch * (slices - 1) + dst_row_pitch * (rows - 1) + src_row_pitch`
    /// (the last row is not padded).
    pub staging_size: u64,
    /// The copy, with `buffer_offset` 0 (relative to the piece's staging
    /// offset), `buffer_row_length` in texels matching `dst_row_pitch` (0 when
    /// tight), `buffer_image_height` 0, one layer of one level.
    pub region: vk::BufferImageCopy,
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("piece offsets fit the address space")
}

impl PlannedCopy {
    /// True when staging holds the piece's bytes exactly as the caller's data
    /// lays them out (no row or slice padding), so they can be filled with
    /// one copy of [`src_span`](Self::src_span) bytes.
    pub fn is_contiguous(&self) -> bool {
        self.dst_row_pitch == self.src_row_pitch
            && (self.slices == 1 || self.dst_slice_pitch == self.src_slice_pitch)
    }

    /// Bytes of the caller's data this piece spans from
    /// [`src_offset`](Self::src_offset).
    pub fn src_span(&self) -> u64 {
        self.src_slice_pitch * (self.slices - 1) + self.src_row_pitch * self.rows
    }

    /// Copies the piece's rows from `data` (the whole upload, read at
    /// `src_offset` with the source pitches) into `staging` (from its start,
    /// with the destination pitches). Padding bytes are left untouched.
    ///
    /// # Panics
    /// When `data` is shorter than `src_offset + src_span()` or `staging`
    /// shorter than `staging_size`.
    pub fn write_into(&self, data: &[u8], staging: &mut [u8]) {
        let src = &data[to_usize(self.src_offset)..];
        let row = to_usize(self.src_row_pitch);
        let staging = &mut staging[..to_usize(self.staging_size)];
        let tight_rows = self.dst_row_pitch == self.src_row_pitch;
        if tight_rows && (self.slices == 1 || self.dst_slice_pitch == self.src_slice_pitch) {
            staging.copy_from_slice(&src[..staging.len()]);
            return;
        }
        let (src_row, dst_row) = (to_usize(self.src_row_pitch), to_usize(self.dst_row_pitch));
        let (src_slice, dst_slice) = (
            to_usize(self.src_slice_pitch),
            to_usize(self.dst_slice_pitch),
        );
        let rows = to_usize(self.rows);
        for z in 0..to_usize(self.slices) {
            let (s0, d0) = (z * src_slice, z * dst_slice);
            if tight_rows {
                let len = rows * row;
                staging[d0..d0 + len].copy_from_slice(&src[s0..s0 + len]);
                continue;
            }
            for r in 0..rows {
                let (s, d) = (s0 + r * src_row, d0 + r * dst_row);
                staging[d..d + row].copy_from_slice(&src[s..s + row]);
            }
        }
    }
}

impl PlannedCopy {
    /// The inverse of [`Self::write_into`]: copies the piece's rows from
    /// `staging` (from its start, with the destination pitches) into `data`
    /// (the whole readback, at `src_offset` with the source pitches).
    ///
    /// # Panics
    /// When `data` is shorter than `src_offset + src_span()` or `staging`
    /// shorter than `staging_size`.
    pub fn read_into(&self, staging: &[u8], data: &mut [u8]) {
        let dst = &mut data[to_usize(self.src_offset)..];
        let staging = &staging[..to_usize(self.staging_size)];
        let tight_rows = self.dst_row_pitch == self.src_row_pitch;
        if tight_rows && (self.slices == 1 || self.dst_slice_pitch == self.src_slice_pitch) {
            dst[..staging.len()].copy_from_slice(staging);
            return;
        }
        let row = to_usize(self.src_row_pitch);
        let (src_row, dst_row) = (to_usize(self.src_row_pitch), to_usize(self.dst_row_pitch));
        let (src_slice, dst_slice) = (
            to_usize(self.src_slice_pitch),
            to_usize(self.dst_slice_pitch),
        );
        for z in 0..to_usize(self.slices) {
            for r in 0..to_usize(self.rows) {
                let (d, s) = (z * src_slice + r * src_row, z * dst_slice + r * dst_row);
                dst[d..d + row].copy_from_slice(&staging[s..s + row]);
            }
        }
    }
}

/// The copies of one image upload, in data order.
#[derive(Clone, Debug)]
pub struct ImagePlan {
    /// The copies; each fits the `max_chunk` the plan was made for.
    pub copies: Vec<PlannedCopy>,
    /// Every piece's staging offset must be a multiple of this:
    /// `lcm(4, block_bytes, optimalBufferCopyOffsetAlignment)`.
    pub staging_alignment: u64,
}

impl ImagePlan {
    /// The largest `staging_size` of the plan.
    pub fn max_staging_size(&self) -> u64 {
        self.copies
            .iter()
            .map(|c| c.staging_size)
            .max()
            .unwrap_or(0)
    }
}

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// `lcm(a, b)` of non-zero values, `None` on overflow.
fn lcm(a: u64, b: u64) -> Option<u64> {
    (a / gcd(a, b)).checked_mul(b)
}

fn overflow(what: &'static str) -> PlanError {
    PlanError::Overflow { what }
}

/// A validated layout.
struct Checked {
    info: FormatInfo,
    extent: vk::Extent3D,
    mip_levels: u32,
    array_layers: u32,
}

/// The sizes of one mip level.
struct Level {
    width: u32,
    height: u32,
    /// Depth slices.
    depth: u64,
    /// Block rows per slice.
    rows: u64,
    /// Tight bytes per block row.
    row_bytes: u64,
    /// Bytes per slice.
    slice_bytes: u64,
    /// Bytes per subresource (one layer of this level).
    subresource_bytes: u64,
}

fn check(layout: &ImageLayout) -> Result<Checked, PlanError> {
    if layout.mip_levels == 0 {
        return Err(PlanError::ZeroMipLevels);
    }
    if layout.array_layers == 0 {
        return Err(PlanError::ZeroArrayLayers);
    }
    let format = layout.format;
    let info = match layout.aspect {
        None => format_info(format).ok_or(PlanError::UnsupportedFormat { format })?,
        Some(aspect) => aspect_info(format, aspect).ok_or_else(|| {
            if format_info(format).is_some()
                || aspect_info(format, vk::ImageAspectFlags::DEPTH).is_some()
            {
                PlanError::UnsupportedAspect { format, aspect }
            } else {
                PlanError::UnsupportedFormat { format }
            }
        })?,
    };
    let vk::Extent3D {
        width,
        height,
        depth,
    } = layout.extent;
    if width == 0 || height == 0 || depth == 0 {
        return Err(PlanError::ZeroExtent {
            width,
            height,
            depth,
        });
    }
    let image_type = layout.image_type;
    let shape_ok = match image_type {
        vk::ImageType::TYPE_1D => height == 1 && depth == 1,
        vk::ImageType::TYPE_2D => depth == 1,
        vk::ImageType::TYPE_3D => true,
        _ => return Err(PlanError::UnsupportedImageType { image_type }),
    };
    if !shape_ok {
        return Err(PlanError::ExtentForImageType {
            image_type,
            width,
            height,
            depth,
        });
    }
    if image_type == vk::ImageType::TYPE_3D && layout.array_layers != 1 {
        return Err(PlanError::Image3DWithLayers {
            layers: layout.array_layers,
        });
    }
    if layout.array_layers > MAX_ARRAY_LAYERS {
        return Err(PlanError::TooManyArrayLayers {
            layers: layout.array_layers,
            max: MAX_ARRAY_LAYERS,
        });
    }
    let max = 32 - width.max(height).max(depth).leading_zeros();
    if layout.mip_levels > max {
        return Err(PlanError::TooManyMipLevels {
            mip_levels: layout.mip_levels,
            max,
        });
    }
    Ok(Checked {
        info,
        extent: layout.extent,
        mip_levels: layout.mip_levels,
        array_layers: layout.array_layers,
    })
}

fn level(checked: &Checked, mip: u32) -> Result<Level, PlanError> {
    let dim = |d: u32| (d >> mip).max(1);
    let (width, height, depth) = (
        dim(checked.extent.width),
        dim(checked.extent.height),
        dim(checked.extent.depth),
    );
    let b = checked.info.block_extent;
    let cols = u64::from(width.div_ceil(b.width));
    let rows = u64::from(height.div_ceil(b.height));
    let row_bytes = cols
        .checked_mul(u64::from(checked.info.block_bytes))
        .ok_or(overflow("row pitch"))?;
    let slice_bytes = row_bytes.checked_mul(rows).ok_or(overflow("slice size"))?;
    let subresource_bytes = slice_bytes
        .checked_mul(u64::from(depth))
        .ok_or(overflow("subresource size"))?;
    Ok(Level {
        width,
        height,
        depth: u64::from(depth),
        rows,
        row_bytes,
        slice_bytes,
        subresource_bytes,
    })
}

fn data_size(
    checked: &Checked,
    levels: std::ops::Range<u32>,
    layers: u32,
) -> Result<u64, PlanError> {
    let mut total = 0u64;
    for mip in levels {
        let level_bytes = level(checked, mip)?
            .subresource_bytes
            .checked_mul(u64::from(layers))
            .ok_or(overflow("mip level size"))?;
        total = total
            .checked_add(level_bytes)
            .ok_or(overflow("data size"))?;
    }
    Ok(total)
}

/// Checks that `levels` x `layers` is a non-empty box inside the layout.
fn check_box(
    checked: &Checked,
    levels: &std::ops::Range<u32>,
    layers: &std::ops::Range<u32>,
) -> Result<(), PlanError> {
    if levels.is_empty()
        || layers.is_empty()
        || levels.end > checked.mip_levels
        || layers.end > checked.array_layers
    {
        return Err(PlanError::SubresourcesOutOfRange {
            levels: levels.clone(),
            layers: layers.clone(),
            mip_levels: checked.mip_levels,
            array_layers: checked.array_layers,
        });
    }
    Ok(())
}

/// The number of bytes an upload of `layout` must supply (see the module
/// documentation for the layout), after validating the layout.
pub fn expected_data_size(layout: &ImageLayout) -> Result<u64, PlanError> {
    let checked = check(layout)?;
    data_size(&checked, 0..checked.mip_levels, checked.array_layers)
}

/// The number of bytes an upload of mip levels `levels` of array layers
/// `layers` of an image of `layout` must supply: the module documentation's
/// layout over those levels and layers only.
pub fn expected_subresources_data_size(
    layout: &ImageLayout,
    levels: std::ops::Range<u32>,
    layers: std::ops::Range<u32>,
) -> Result<u64, PlanError> {
    let checked = check(layout)?;
    check_box(&checked, &levels, &layers)?;
    data_size(&checked, levels, layers.len() as u32)
}

/// A box of a subresource: slices `z0..z0 + slices`, block rows `y0..y0 + rows`.
#[derive(Clone, Copy)]
struct Piece {
    z0: u64,
    slices: u64,
    y0: u64,
    rows: u64,
}

/// Staging bytes of a piece of `rows` block rows times `slices` slices with
/// padded pitch `pitch` and tight row bytes `tight`.
fn footprint(pitch: u64, tight: u64, rows: u64, slices: u64) -> Option<u64> {
    pitch
        .checked_mul(rows.checked_mul(slices)?)?
        .checked_sub(pitch)?
        .checked_add(tight)
}

/// Splits one subresource (one layer of `lvl`) into pieces of at most
/// `max_chunk` staging bytes that honour `granularity` (in blocks).
fn split(
    lvl: &Level,
    pitch: u64,
    granularity: vk::Extent3D,
    max_chunk: u64,
    out: &mut Vec<Piece>,
) -> Result<(), PlanError> {
    let too_big = |what| overflow(what);
    let whole = footprint(pitch, lvl.row_bytes, lvl.rows, lvl.depth)
        .ok_or(too_big("subresource staging size"))?;
    if whole <= max_chunk {
        out.push(Piece {
            z0: 0,
            slices: lvl.depth,
            y0: 0,
            rows: lvl.rows,
        });
        return Ok(());
    }
    let vk::Extent3D {
        height: gran_rows,
        depth: gran_slices,
        width: gran_cols,
    } = granularity;
    if gran_rows == 0 || gran_slices == 0 || gran_cols == 0 {
        return Err(PlanError::ChunkTooSmall {
            needed: whole,
            max_chunk,
        });
    }
    let (gran_rows, gran_slices) = (u64::from(gran_rows), u64::from(gran_slices));
    // How many block rows (over all slices of a piece) fit:
    // pitch * (n - 1) + tight <= max_chunk.
    let fit_rows = match max_chunk.checked_sub(lvl.row_bytes) {
        Some(spare) => spare / pitch + 1,
        None => 0,
    };
    // 3D: slabs of whole slices, a multiple of the granularity's depth.
    let fit_slices = fit_rows / lvl.rows;
    let slab = if fit_slices >= lvl.depth {
        lvl.depth
    } else {
        fit_slices / gran_slices * gran_slices
    };
    if slab > 0 {
        let mut z0 = 0;
        while z0 < lvl.depth {
            let slices = slab.min(lvl.depth - z0);
            out.push(Piece {
                z0,
                slices,
                y0: 0,
                rows: lvl.rows,
            });
            if out.len() > MAX_COPIES {
                return Err(PlanError::TooManyCopies { max: MAX_COPIES });
            }
            z0 += slices;
        }
        return Ok(());
    }
    // Bands of rows, a multiple of the granularity's height, in slabs of one
    // granularity unit of depth.
    let mut z0 = 0;
    while z0 < lvl.depth {
        let slices = gran_slices.min(lvl.depth - z0);
        // A band reaching the edge needs no granularity multiple.
        let fit = fit_rows / slices;
        let band = if fit >= lvl.rows {
            lvl.rows
        } else {
            fit / gran_rows * gran_rows
        };
        if band == 0 {
            let needed = footprint(pitch, lvl.row_bytes, gran_rows.min(lvl.rows), slices)
                .ok_or(too_big("band staging size"))?;
            return Err(PlanError::ChunkTooSmall { needed, max_chunk });
        }
        let mut y0 = 0;
        while y0 < lvl.rows {
            let rows = band.min(lvl.rows - y0);
            out.push(Piece {
                z0,
                slices,
                y0,
                rows,
            });
            if out.len() > MAX_COPIES {
                return Err(PlanError::TooManyCopies { max: MAX_COPIES });
            }
            y0 += rows;
        }
        z0 += slices;
    }
    Ok(())
}

fn to_i32(value: u64, what: &'static str) -> Result<i32, PlanError> {
    i32::try_from(value).map_err(|_| overflow(what))
}

fn to_u32(value: u64, what: &'static str) -> Result<u32, PlanError> {
    u32::try_from(value).map_err(|_| overflow(what))
}

/// Most array layers the planner accepts: above every device's
/// `maxImageArrayLayers` (2048 on the devices in `device-tables/`), and low
/// enough that a plan (one copy per layer and level at least) stays small. A
/// fuzzed 1x1 image with 2^32 layers otherwise planned billions of copies.
pub const MAX_ARRAY_LAYERS: u32 = 1 << 16;

/// Most copy regions one plan may hold (about 100 MiB of plan). A fuzzed
/// 1x214x2^31 3D image whose 3-byte rows pad to 1536 bytes otherwise split
/// into billions of bands.
pub const MAX_COPIES: usize = 1 << 20;

/// Plans the upload of `data_len` bytes laid out as the module documentation
/// describes into an image of `layout`, as copies that each fit `max_chunk`
/// bytes of staging space and honour `limits`.
///
/// Validates the layout (format, aspect, image type against extent, mip and
/// layer counts) and `data_len` against [`expected_data_size`]. Never panics;
/// all arithmetic is checked.
pub fn plan_image_upload(
    layout: &ImageLayout,
    data_len: u64,
    limits: &CopyLimits,
    max_chunk: u64,
) -> Result<ImagePlan, PlanError> {
    plan_subresources_upload(
        layout,
        0..layout.mip_levels,
        0..layout.array_layers,
        data_len,
        limits,
        max_chunk,
    )
}

/// [`plan_image_upload`] for mip levels `levels` of array layers `layers`
/// only: `data_len` bytes laid out as the module documentation describes,
/// over those levels and layers (see [`expected_subresources_data_size`]).
/// The copies address the image's own level and layer numbers.
pub fn plan_subresources_upload(
    layout: &ImageLayout,
    levels: std::ops::Range<u32>,
    layers: std::ops::Range<u32>,
    data_len: u64,
    limits: &CopyLimits,
    max_chunk: u64,
) -> Result<ImagePlan, PlanError> {
    let checked = check(layout)?;
    check_box(&checked, &levels, &layers)?;
    let expected = data_size(&checked, levels.clone(), layers.len() as u32)?;
    if data_len != expected {
        return Err(PlanError::DataSizeMismatch {
            expected,
            actual: data_len,
        });
    }
    let info = checked.info;
    let block_bytes = u64::from(info.block_bytes);
    let staging_alignment = lcm(4, block_bytes)
        .and_then(|a| lcm(a, limits.optimal_buffer_copy_offset_alignment.max(1)))
        .ok_or(overflow("staging alignment"))?;
    let pitch_alignment = lcm(
        block_bytes,
        limits.optimal_buffer_copy_row_pitch_alignment.max(1),
    )
    .ok_or(overflow("row pitch alignment"))?;
    let (block_w, block_h) = (
        u64::from(info.block_extent.width),
        u64::from(info.block_extent.height),
    );

    let mut copies = Vec::new();
    let mut pieces = Vec::new();
    let mut offset = 0u64;
    for mip in levels {
        let lvl = level(&checked, mip)?;
        let pitch = lvl
            .row_bytes
            .div_ceil(pitch_alignment)
            .checked_mul(pitch_alignment)
            .ok_or(overflow("padded row pitch"))?;
        let buffer_row_length = if pitch == lvl.row_bytes {
            0
        } else {
            to_u32(pitch / block_bytes * block_w, "buffer_row_length")?
        };
        pieces.clear();
        split(
            &lvl,
            pitch,
            limits.min_image_transfer_granularity,
            max_chunk,
            &mut pieces,
        )?;
        let planned = (pieces.len() as u64).saturating_mul(layers.len() as u64);
        if copies.len() as u64 + planned > MAX_COPIES as u64 {
            return Err(PlanError::TooManyCopies { max: MAX_COPIES });
        }
        for layer in layers.clone() {
            for p in &pieces {
                // Every product below is bounded by the data size or the
                // level's texel extent, both already computed without overflow.
                let y_texels = p.y0 * block_h;
                let height = (p.rows * block_h).min(u64::from(lvl.height) - y_texels);
                let dst_slice_pitch = pitch * p.rows;
                copies.push(PlannedCopy {
                    src_offset: offset + p.z0 * lvl.slice_bytes + p.y0 * lvl.row_bytes,
                    src_row_pitch: lvl.row_bytes,
                    dst_row_pitch: pitch,
                    rows: p.rows,
                    slices: p.slices,
                    src_slice_pitch: lvl.slice_bytes,
                    dst_slice_pitch,
                    staging_size: dst_slice_pitch * (p.slices - 1)
                        + pitch * (p.rows - 1)
                        + lvl.row_bytes,
                    region: vk::BufferImageCopy {
                        buffer_offset: 0,
                        buffer_row_length,
                        buffer_image_height: 0,
                        image_subresource: vk::ImageSubresourceLayers {
                            aspect_mask: info.aspect,
                            mip_level: mip,
                            base_array_layer: layer,
                            layer_count: 1,
                        },
                        image_offset: vk::Offset3D {
                            x: 0,
                            y: to_i32(y_texels, "image_offset.y")?,
                            z: to_i32(p.z0, "image_offset.z")?,
                        },
                        image_extent: vk::Extent3D {
                            width: lvl.width,
                            height: to_u32(height, "image_extent.height")?,
                            depth: to_u32(p.slices, "image_extent.depth")?,
                        },
                    },
                });
            }
            offset += lvl.subresource_bytes;
        }
    }
    Ok(ImagePlan {
        copies,
        staging_alignment,
    })
}

#[cfg(test)]
mod tests;
