//! Texel block sizes of the formats a buffer→image upload can express.
//!
//! [`format_info`] answers, for one `VkFormat`, how the format is laid out in
//! a buffer for `vkCmdCopyBufferToImage`: the extent of one texel block (1x1x1
//! for uncompressed formats, 4x4x1 for BC/ETC2/EAC, NxMx1 for ASTC), the bytes
//! of one block, and the one aspect a copy of the whole format addresses.
//!
//! Covered: every core uncompressed color format (R4G4 … R64G64B64A64, the
//! packed 16- and 32-bit formats, B10G11R11_UFLOAT, E5B9G9R9_UFLOAT, plus
//! `A4R4G4B4`/`A4B4G4R4`, `A8_UNORM_KHR`, `A1B5G5R5_UNORM_PACK16_KHR`), the
//! depth-only formats (D16_UNORM, X8_D24_UNORM_PACK32 — 4 bytes per texel in a
//! buffer, D32_SFLOAT), stencil-only S8_UINT, BC1–BC7, ETC2/EAC and ASTC (LDR,
//! sRGB and HDR `SFLOAT`, every block size).
//!
//! Not covered ([`format_info`] returns `None`): combined depth/stencil formats
//! (a copy addresses one aspect at a time, so one tightly packed blob cannot
//! describe both; [`aspect_info`] gives the per-aspect buffer layout when the
//! caller uploads one aspect), multi-planar and other Y′CbCr formats
//! (`G8_B8R8_2PLANE_420_UNORM`, `G8B8G8R8_422_UNORM`, `R10X6_UNORM_PACK16`, …),
//! PVRTC, and vendor formats such as `R16G16_S10_5_NV`.

use ash::vk;

/// How one format is laid out in a buffer for a buffer→image copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatInfo {
    /// Texel block extent in texels: 1x1x1 for uncompressed formats, 4x4x1 for
    /// BC/ETC2/EAC, NxMx1 for ASTC NxM.
    pub block_extent: vk::Extent3D,
    /// Bytes of one texel block in the buffer.
    pub block_bytes: u32,
    /// The aspect a copy of this format addresses (`COLOR`, `DEPTH` or `STENCIL`).
    pub aspect: vk::ImageAspectFlags,
}

const fn texel(block_bytes: u32, aspect: vk::ImageAspectFlags) -> FormatInfo {
    FormatInfo {
        block_extent: vk::Extent3D {
            width: 1,
            height: 1,
            depth: 1,
        },
        block_bytes,
        aspect,
    }
}

const fn color(block_bytes: u32) -> FormatInfo {
    texel(block_bytes, vk::ImageAspectFlags::COLOR)
}

const fn block(width: u32, height: u32, block_bytes: u32) -> FormatInfo {
    FormatInfo {
        block_extent: vk::Extent3D {
            width,
            height,
            depth: 1,
        },
        block_bytes,
        aspect: vk::ImageAspectFlags::COLOR,
    }
}

/// The buffer layout of `format` for a buffer→image copy, or `None` when one
/// tightly packed buffer cannot express a copy of the format (combined
/// depth/stencil, multi-planar and Y′CbCr formats, PVRTC, unknown values).
pub fn format_info(format: vk::Format) -> Option<FormatInfo> {
    use vk::Format as F;
    Some(match format {
        // 8-bit texels.
        F::R4G4_UNORM_PACK8
        | F::R8_UNORM
        | F::R8_SNORM
        | F::R8_USCALED
        | F::R8_SSCALED
        | F::R8_UINT
        | F::R8_SINT
        | F::R8_SRGB
        | F::A8_UNORM_KHR => color(1),
        // 16-bit texels.
        F::R4G4B4A4_UNORM_PACK16
        | F::B4G4R4A4_UNORM_PACK16
        | F::R5G6B5_UNORM_PACK16
        | F::B5G6R5_UNORM_PACK16
        | F::R5G5B5A1_UNORM_PACK16
        | F::B5G5R5A1_UNORM_PACK16
        | F::A1R5G5B5_UNORM_PACK16
        | F::A4R4G4B4_UNORM_PACK16
        | F::A4B4G4R4_UNORM_PACK16
        | F::A1B5G5R5_UNORM_PACK16_KHR
        | F::R8G8_UNORM
        | F::R8G8_SNORM
        | F::R8G8_USCALED
        | F::R8G8_SSCALED
        | F::R8G8_UINT
        | F::R8G8_SINT
        | F::R8G8_SRGB
        | F::R16_UNORM
        | F::R16_SNORM
        | F::R16_USCALED
        | F::R16_SSCALED
        | F::R16_UINT
        | F::R16_SINT
        | F::R16_SFLOAT => color(2),
        // 24-bit texels.
        F::R8G8B8_UNORM
        | F::R8G8B8_SNORM
        | F::R8G8B8_USCALED
        | F::R8G8B8_SSCALED
        | F::R8G8B8_UINT
        | F::R8G8B8_SINT
        | F::R8G8B8_SRGB
        | F::B8G8R8_UNORM
        | F::B8G8R8_SNORM
        | F::B8G8R8_USCALED
        | F::B8G8R8_SSCALED
        | F::B8G8R8_UINT
        | F::B8G8R8_SINT
        | F::B8G8R8_SRGB => color(3),
        // 32-bit texels.
        F::R8G8B8A8_UNORM
        | F::R8G8B8A8_SNORM
        | F::R8G8B8A8_USCALED
        | F::R8G8B8A8_SSCALED
        | F::R8G8B8A8_UINT
        | F::R8G8B8A8_SINT
        | F::R8G8B8A8_SRGB
        | F::B8G8R8A8_UNORM
        | F::B8G8R8A8_SNORM
        | F::B8G8R8A8_USCALED
        | F::B8G8R8A8_SSCALED
        | F::B8G8R8A8_UINT
        | F::B8G8R8A8_SINT
        | F::B8G8R8A8_SRGB
        | F::A8B8G8R8_UNORM_PACK32
        | F::A8B8G8R8_SNORM_PACK32
        | F::A8B8G8R8_USCALED_PACK32
        | F::A8B8G8R8_SSCALED_PACK32
        | F::A8B8G8R8_UINT_PACK32
        | F::A8B8G8R8_SINT_PACK32
        | F::A8B8G8R8_SRGB_PACK32
        | F::A2R10G10B10_UNORM_PACK32
        | F::A2R10G10B10_SNORM_PACK32
        | F::A2R10G10B10_USCALED_PACK32
        | F::A2R10G10B10_SSCALED_PACK32
        | F::A2R10G10B10_UINT_PACK32
        | F::A2R10G10B10_SINT_PACK32
        | F::A2B10G10R10_UNORM_PACK32
        | F::A2B10G10R10_SNORM_PACK32
        | F::A2B10G10R10_USCALED_PACK32
        | F::A2B10G10R10_SSCALED_PACK32
        | F::A2B10G10R10_UINT_PACK32
        | F::A2B10G10R10_SINT_PACK32
        | F::R16G16_UNORM
        | F::R16G16_SNORM
        | F::R16G16_USCALED
        | F::R16G16_SSCALED
        | F::R16G16_UINT
        | F::R16G16_SINT
        | F::R16G16_SFLOAT
        | F::R32_UINT
        | F::R32_SINT
        | F::R32_SFLOAT
        | F::B10G11R11_UFLOAT_PACK32
        | F::E5B9G9R9_UFLOAT_PACK32 => color(4),
        // 48-bit texels.
        F::R16G16B16_UNORM
        | F::R16G16B16_SNORM
        | F::R16G16B16_USCALED
        | F::R16G16B16_SSCALED
        | F::R16G16B16_UINT
        | F::R16G16B16_SINT
        | F::R16G16B16_SFLOAT => color(6),
        // 64-bit texels.
        F::R16G16B16A16_UNORM
        | F::R16G16B16A16_SNORM
        | F::R16G16B16A16_USCALED
        | F::R16G16B16A16_SSCALED
        | F::R16G16B16A16_UINT
        | F::R16G16B16A16_SINT
        | F::R16G16B16A16_SFLOAT
        | F::R32G32_UINT
        | F::R32G32_SINT
        | F::R32G32_SFLOAT
        | F::R64_UINT
        | F::R64_SINT
        | F::R64_SFLOAT => color(8),
        // 96-bit texels.
        F::R32G32B32_UINT | F::R32G32B32_SINT | F::R32G32B32_SFLOAT => color(12),
        // 128-bit texels.
        F::R32G32B32A32_UINT
        | F::R32G32B32A32_SINT
        | F::R32G32B32A32_SFLOAT
        | F::R64G64_UINT
        | F::R64G64_SINT
        | F::R64G64_SFLOAT => color(16),
        F::R64G64B64_UINT | F::R64G64B64_SINT | F::R64G64B64_SFLOAT => color(24),
        F::R64G64B64A64_UINT | F::R64G64B64A64_SINT | F::R64G64B64A64_SFLOAT => color(32),
        // Depth-only and stencil-only.
        F::D16_UNORM => texel(2, vk::ImageAspectFlags::DEPTH),
        F::X8_D24_UNORM_PACK32 | F::D32_SFLOAT => texel(4, vk::ImageAspectFlags::DEPTH),
        F::S8_UINT => texel(1, vk::ImageAspectFlags::STENCIL),
        // BC: 4x4 blocks of 8 (BC1, BC4) or 16 bytes.
        F::BC1_RGB_UNORM_BLOCK
        | F::BC1_RGB_SRGB_BLOCK
        | F::BC1_RGBA_UNORM_BLOCK
        | F::BC1_RGBA_SRGB_BLOCK
        | F::BC4_UNORM_BLOCK
        | F::BC4_SNORM_BLOCK => block(4, 4, 8),
        F::BC2_UNORM_BLOCK
        | F::BC2_SRGB_BLOCK
        | F::BC3_UNORM_BLOCK
        | F::BC3_SRGB_BLOCK
        | F::BC5_UNORM_BLOCK
        | F::BC5_SNORM_BLOCK
        | F::BC6H_UFLOAT_BLOCK
        | F::BC6H_SFLOAT_BLOCK
        | F::BC7_UNORM_BLOCK
        | F::BC7_SRGB_BLOCK => block(4, 4, 16),
        // ETC2 / EAC: 4x4 blocks of 8 or 16 bytes.
        F::ETC2_R8G8B8_UNORM_BLOCK
        | F::ETC2_R8G8B8_SRGB_BLOCK
        | F::ETC2_R8G8B8A1_UNORM_BLOCK
        | F::ETC2_R8G8B8A1_SRGB_BLOCK
        | F::EAC_R11_UNORM_BLOCK
        | F::EAC_R11_SNORM_BLOCK => block(4, 4, 8),
        F::ETC2_R8G8B8A8_UNORM_BLOCK
        | F::ETC2_R8G8B8A8_SRGB_BLOCK
        | F::EAC_R11G11_UNORM_BLOCK
        | F::EAC_R11G11_SNORM_BLOCK => block(4, 4, 16),
        // ASTC: every block is 16 bytes.
        F::ASTC_4X4_UNORM_BLOCK | F::ASTC_4X4_SRGB_BLOCK | F::ASTC_4X4_SFLOAT_BLOCK => {
            block(4, 4, 16)
        }
        F::ASTC_5X4_UNORM_BLOCK | F::ASTC_5X4_SRGB_BLOCK | F::ASTC_5X4_SFLOAT_BLOCK => {
            block(5, 4, 16)
        }
        F::ASTC_5X5_UNORM_BLOCK | F::ASTC_5X5_SRGB_BLOCK | F::ASTC_5X5_SFLOAT_BLOCK => {
            block(5, 5, 16)
        }
        F::ASTC_6X5_UNORM_BLOCK | F::ASTC_6X5_SRGB_BLOCK | F::ASTC_6X5_SFLOAT_BLOCK => {
            block(6, 5, 16)
        }
        F::ASTC_6X6_UNORM_BLOCK | F::ASTC_6X6_SRGB_BLOCK | F::ASTC_6X6_SFLOAT_BLOCK => {
            block(6, 6, 16)
        }
        F::ASTC_8X5_UNORM_BLOCK | F::ASTC_8X5_SRGB_BLOCK | F::ASTC_8X5_SFLOAT_BLOCK => {
            block(8, 5, 16)
        }
        F::ASTC_8X6_UNORM_BLOCK | F::ASTC_8X6_SRGB_BLOCK | F::ASTC_8X6_SFLOAT_BLOCK => {
            block(8, 6, 16)
        }
        F::ASTC_8X8_UNORM_BLOCK | F::ASTC_8X8_SRGB_BLOCK | F::ASTC_8X8_SFLOAT_BLOCK => {
            block(8, 8, 16)
        }
        F::ASTC_10X5_UNORM_BLOCK | F::ASTC_10X5_SRGB_BLOCK | F::ASTC_10X5_SFLOAT_BLOCK => {
            block(10, 5, 16)
        }
        F::ASTC_10X6_UNORM_BLOCK | F::ASTC_10X6_SRGB_BLOCK | F::ASTC_10X6_SFLOAT_BLOCK => {
            block(10, 6, 16)
        }
        F::ASTC_10X8_UNORM_BLOCK | F::ASTC_10X8_SRGB_BLOCK | F::ASTC_10X8_SFLOAT_BLOCK => {
            block(10, 8, 16)
        }
        F::ASTC_10X10_UNORM_BLOCK | F::ASTC_10X10_SRGB_BLOCK | F::ASTC_10X10_SFLOAT_BLOCK => {
            block(10, 10, 16)
        }
        F::ASTC_12X10_UNORM_BLOCK | F::ASTC_12X10_SRGB_BLOCK | F::ASTC_12X10_SFLOAT_BLOCK => {
            block(12, 10, 16)
        }
        F::ASTC_12X12_UNORM_BLOCK | F::ASTC_12X12_SRGB_BLOCK | F::ASTC_12X12_SFLOAT_BLOCK => {
            block(12, 12, 16)
        }
        _ => return None,
    })
}

/// The buffer layout of one `aspect` of `format` for a buffer→image copy.
///
/// For the formats [`format_info`] covers, `aspect` must be the format's own
/// aspect. For the combined depth/stencil formats a copy addresses one aspect
/// at a time, and the buffer holds that aspect alone (Vulkan's depth/stencil
/// buffer layout): `DEPTH` of `D16_UNORM_S8_UINT` is 2 bytes per texel, of
/// `D24_UNORM_S8_UINT` 4 bytes (the depth in the low 24 bits), of
/// `D32_SFLOAT_S8_UINT` 4 bytes; `STENCIL` of any of them is 1 byte per texel.
/// Anything else — several aspects at once, plane aspects, an aspect the format
/// lacks — is `None`.
pub fn aspect_info(format: vk::Format, aspect: vk::ImageAspectFlags) -> Option<FormatInfo> {
    use vk::Format as F;
    use vk::ImageAspectFlags as A;
    if let Some(info) = format_info(format) {
        return (info.aspect == aspect).then_some(info);
    }
    match (format, aspect) {
        (F::D16_UNORM_S8_UINT, A::DEPTH) => Some(texel(2, A::DEPTH)),
        (F::D24_UNORM_S8_UINT | F::D32_SFLOAT_S8_UINT, A::DEPTH) => Some(texel(4, A::DEPTH)),
        (F::D16_UNORM_S8_UINT | F::D24_UNORM_S8_UINT | F::D32_SFLOAT_S8_UINT, A::STENCIL) => {
            Some(texel(1, A::STENCIL))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vk::Format as F;
    use vk::ImageAspectFlags as A;

    fn check(format: vk::Format, w: u32, h: u32, bytes: u32, aspect: A) {
        let info = format_info(format).unwrap_or_else(|| panic!("{format:?} not covered"));
        assert_eq!(
            (
                info.block_extent.width,
                info.block_extent.height,
                info.block_extent.depth
            ),
            (w, h, 1),
            "{format:?}"
        );
        assert_eq!(info.block_bytes, bytes, "{format:?}");
        assert_eq!(info.aspect, aspect, "{format:?}");
    }

    #[test]
    fn uncompressed_color() {
        for (format, bytes) in [
            (F::R4G4_UNORM_PACK8, 1),
            (F::R8_UNORM, 1),
            (F::R8_SRGB, 1),
            (F::A8_UNORM_KHR, 1),
            (F::R5G6B5_UNORM_PACK16, 2),
            (F::A1R5G5B5_UNORM_PACK16, 2),
            (F::A4B4G4R4_UNORM_PACK16, 2),
            (F::R8G8_SNORM, 2),
            (F::R16_SFLOAT, 2),
            (F::R8G8B8_UNORM, 3),
            (F::B8G8R8_SRGB, 3),
            (F::R8G8B8A8_UNORM, 4),
            (F::B8G8R8A8_SRGB, 4),
            (F::A8B8G8R8_UINT_PACK32, 4),
            (F::A2B10G10R10_UNORM_PACK32, 4),
            (F::A2R10G10B10_SINT_PACK32, 4),
            (F::B10G11R11_UFLOAT_PACK32, 4),
            (F::E5B9G9R9_UFLOAT_PACK32, 4),
            (F::R16G16_SFLOAT, 4),
            (F::R32_SFLOAT, 4),
            (F::R16G16B16_UNORM, 6),
            (F::R16G16B16A16_SFLOAT, 8),
            (F::R32G32_UINT, 8),
            (F::R64_SFLOAT, 8),
            (F::R32G32B32_SFLOAT, 12),
            (F::R32G32B32A32_SFLOAT, 16),
            (F::R64G64_UINT, 16),
            (F::R64G64B64_SINT, 24),
            (F::R64G64B64A64_SFLOAT, 32),
        ] {
            check(format, 1, 1, bytes, A::COLOR);
        }
    }

    #[test]
    fn every_core_uncompressed_color_format_is_covered() {
        // R4G4_UNORM_PACK8 (1) ..= E5B9G9R9_UFLOAT_PACK32 (123) are all
        // single-plane uncompressed color formats.
        for raw in 1..=123 {
            let info = format_info(F::from_raw(raw)).unwrap_or_else(|| panic!("format {raw}"));
            assert_eq!(info.block_extent.width * info.block_extent.height, 1);
            assert_eq!(info.aspect, A::COLOR);
        }
    }

    #[test]
    fn depth_and_stencil_only() {
        check(F::D16_UNORM, 1, 1, 2, A::DEPTH);
        check(F::X8_D24_UNORM_PACK32, 1, 1, 4, A::DEPTH);
        check(F::D32_SFLOAT, 1, 1, 4, A::DEPTH);
        check(F::S8_UINT, 1, 1, 1, A::STENCIL);
    }

    #[test]
    fn combined_depth_stencil_and_planar_are_not_covered() {
        for format in [
            F::D16_UNORM_S8_UINT,
            F::D24_UNORM_S8_UINT,
            F::D32_SFLOAT_S8_UINT,
            F::G8_B8R8_2PLANE_420_UNORM,
            F::G8_B8_R8_3PLANE_444_UNORM,
            F::G8B8G8R8_422_UNORM,
            F::R10X6_UNORM_PACK16,
            F::PVRTC1_4BPP_UNORM_BLOCK_IMG,
            F::UNDEFINED,
            F::from_raw(-5),
            F::from_raw(i32::MAX),
        ] {
            assert_eq!(format_info(format), None, "{format:?}");
        }
    }

    #[test]
    fn per_aspect_layouts() {
        assert_eq!(
            aspect_info(F::D24_UNORM_S8_UINT, A::DEPTH).map(|i| i.block_bytes),
            Some(4)
        );
        assert_eq!(
            aspect_info(F::D32_SFLOAT_S8_UINT, A::DEPTH).map(|i| i.block_bytes),
            Some(4)
        );
        assert_eq!(
            aspect_info(F::D16_UNORM_S8_UINT, A::DEPTH).map(|i| i.block_bytes),
            Some(2)
        );
        for f in [
            F::D16_UNORM_S8_UINT,
            F::D24_UNORM_S8_UINT,
            F::D32_SFLOAT_S8_UINT,
        ] {
            let info = aspect_info(f, A::STENCIL).unwrap();
            assert_eq!((info.block_bytes, info.aspect), (1, A::STENCIL));
            assert_eq!(aspect_info(f, A::DEPTH | A::STENCIL), None);
            assert_eq!(aspect_info(f, A::COLOR), None);
        }
        assert_eq!(
            aspect_info(F::R8G8B8A8_UNORM, A::COLOR),
            format_info(F::R8G8B8A8_UNORM)
        );
        assert_eq!(aspect_info(F::R8G8B8A8_UNORM, A::DEPTH), None);
        assert_eq!(aspect_info(F::D32_SFLOAT, A::STENCIL), None);
        assert_eq!(aspect_info(F::G8_B8R8_2PLANE_420_UNORM, A::PLANE_0), None);
    }

    #[test]
    fn bc_all_variants() {
        for f in [
            F::BC1_RGB_UNORM_BLOCK,
            F::BC1_RGB_SRGB_BLOCK,
            F::BC1_RGBA_UNORM_BLOCK,
            F::BC1_RGBA_SRGB_BLOCK,
            F::BC4_UNORM_BLOCK,
            F::BC4_SNORM_BLOCK,
        ] {
            check(f, 4, 4, 8, A::COLOR);
        }
        for f in [
            F::BC2_UNORM_BLOCK,
            F::BC2_SRGB_BLOCK,
            F::BC3_UNORM_BLOCK,
            F::BC3_SRGB_BLOCK,
            F::BC5_UNORM_BLOCK,
            F::BC5_SNORM_BLOCK,
            F::BC6H_UFLOAT_BLOCK,
            F::BC6H_SFLOAT_BLOCK,
            F::BC7_UNORM_BLOCK,
            F::BC7_SRGB_BLOCK,
        ] {
            check(f, 4, 4, 16, A::COLOR);
        }
    }

    #[test]
    fn etc2_eac() {
        check(F::ETC2_R8G8B8_UNORM_BLOCK, 4, 4, 8, A::COLOR);
        check(F::ETC2_R8G8B8A1_SRGB_BLOCK, 4, 4, 8, A::COLOR);
        check(F::ETC2_R8G8B8A8_SRGB_BLOCK, 4, 4, 16, A::COLOR);
        check(F::EAC_R11_SNORM_BLOCK, 4, 4, 8, A::COLOR);
        check(F::EAC_R11G11_UNORM_BLOCK, 4, 4, 16, A::COLOR);
        // ETC2_R8G8B8_UNORM_BLOCK (147) ..= EAC_R11G11_SNORM_BLOCK (156).
        for raw in 147..=156 {
            let info = format_info(F::from_raw(raw)).unwrap();
            assert_eq!((info.block_extent.width, info.block_extent.height), (4, 4));
        }
    }

    #[test]
    fn astc_every_block_size() {
        let sizes = [
            (4, 4),
            (5, 4),
            (5, 5),
            (6, 5),
            (6, 6),
            (8, 5),
            (8, 6),
            (8, 8),
            (10, 5),
            (10, 6),
            (10, 8),
            (10, 10),
            (12, 10),
            (12, 12),
        ];
        // ASTC_4X4_UNORM_BLOCK (157) .. ASTC_12X12_SRGB_BLOCK (184): UNORM, SRGB pairs.
        for (i, &(w, h)) in sizes.iter().enumerate() {
            check(F::from_raw(157 + 2 * i as i32), w, h, 16, A::COLOR);
            check(F::from_raw(158 + 2 * i as i32), w, h, 16, A::COLOR);
            // HDR (SFLOAT) variants are contiguous from ASTC_4X4_SFLOAT_BLOCK.
            check(
                F::from_raw(F::ASTC_4X4_SFLOAT_BLOCK.as_raw() + i as i32),
                w,
                h,
                16,
                A::COLOR,
            );
        }
        check(F::ASTC_8X8_SRGB_BLOCK, 8, 8, 16, A::COLOR);
        check(F::ASTC_12X10_SFLOAT_BLOCK, 12, 10, 16, A::COLOR);
    }
}
