//! Images: where each is stored (checked in the raw JSON first), one
//! texture per distinct source, and decoding within the budget.

use std::path::PathBuf;

use ash::vk;
use serde_json::Value;

use super::files::{base64_len, parse_uri, read_file, Files, Uri};
use super::{mip_chain_bytes, view_slice, Loader};
use crate::error::{DemoError, GltfItem};
use crate::scene::{mip_chain_owned, TextureData};

/// `images[i]` as the raw JSON has it: which of `uri`, `bufferView` and
/// `mimeType` are present. [`gltf::Image::source`] unwraps on the two
/// combinations glTF forbids, so they are refused from this first.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RawImage {
    uri: bool,
    view: Option<u64>,
    mime: bool,
}

pub(super) fn raw_image_sources(raw: &Value) -> Vec<RawImage> {
    let present = |image: &Value, key: &str| image.get(key).is_some_and(|v| !v.is_null());
    raw.get("images")
        .and_then(Value::as_array)
        .map(|images| {
            images
                .iter()
                .map(|image| RawImage {
                    uri: present(image, "uri"),
                    view: present(image, "bufferView")
                        .then(|| image["bufferView"].as_u64().unwrap_or(u64::MAX)),
                    mime: present(image, "mimeType"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where an image's encoded bytes are.
pub(super) enum ImageSource<'d> {
    View(gltf::buffer::View<'d>, &'d str),
    File(PathBuf, Option<&'d str>),
    /// The whole URI and its base64 payload.
    Data(&'d str, &'d str, Option<&'d str>),
}

/// Images with equal keys decode to the same texture.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum ImageKey<'d> {
    View(usize),
    File(PathBuf),
    Data(&'d str),
}

impl<'d> ImageSource<'d> {
    pub(super) fn key(&self) -> ImageKey<'d> {
        match self {
            ImageSource::View(view, _) => ImageKey::View(view.index()),
            ImageSource::File(file, _) => ImageKey::File(file.clone()),
            ImageSource::Data(uri, _, _) => ImageKey::Data(uri),
        }
    }
}

/// Where `image` is stored, its file located; `raw` is its entry of
/// [`raw_image_sources`].
pub(super) fn image_source<'d>(
    files: &Files<'_>,
    image: &gltf::Image<'d>,
    raw: Option<&RawImage>,
) -> Result<ImageSource<'d>, DemoError> {
    let index = image.index();
    let path = files.path.to_owned();
    match raw.copied().unwrap_or_default() {
        RawImage {
            view: Some(view),
            mime: false,
            ..
        } => return Err(DemoError::ImageWithoutMimeType { path, index, view }),
        RawImage {
            uri: false,
            view: None,
            ..
        } => return Err(DemoError::ImageWithoutSource { path, index }),
        _ => {}
    }
    // `source()` unwraps exactly in the two cases refused above.
    Ok(match image.source() {
        gltf::image::Source::View { view, mime_type } => ImageSource::View(view, mime_type),
        gltf::image::Source::Uri { uri, mime_type } => match parse_uri(uri) {
            Uri::Data(payload) => ImageSource::Data(uri, payload, mime_type),
            Uri::Unsupported(reason) => {
                return Err(DemoError::BadImage {
                    path,
                    index,
                    reason,
                })
            }
            Uri::File(relative) => ImageSource::File(
                files.locate(GltfItem::Image(index), uri, &relative)?,
                mime_type,
            ),
        },
    })
}

impl Loader<'_> {
    pub(super) fn load_image(
        &mut self,
        image: &gltf::Image<'_>,
        source: ImageSource<'_>,
    ) -> Result<TextureData, DemoError> {
        let index = image.index();
        let item = GltfItem::Image(index);
        let path = self.path;
        let bad = |reason: String| DemoError::BadImage {
            path: path.to_owned(),
            index,
            reason,
        };
        let before = self.budget.used;
        let (encoded, mime, hint): (std::borrow::Cow<'_, [u8]>, Option<&str>, String) = match source
        {
            ImageSource::View(view, mime) => {
                let data = view_slice(&self.buffers, &view).ok_or_else(|| {
                    bad(format!(
                        "buffer view {} is outside its buffer",
                        view.index()
                    ))
                })?;
                (
                    data.into(),
                    Some(mime),
                    format!("buffer view {}", view.index()),
                )
            }
            ImageSource::Data(_, payload, mime) => {
                self.budget.charge(item, base64_len(payload))?;
                let data = base64::decode(payload)
                    .map_err(|e| bad(format!("bad base64 in data URI: {e}")))?;
                (data.into(), mime, "data URI".to_owned())
            }
            ImageSource::File(file, mime) => {
                let data = read_file(path, &mut self.budget, item, &file, None)?;
                (data.into(), mime, file.display().to_string())
            }
        };
        // The encoded bytes are dropped when this returns.
        let encoded_charge = self.budget.used - before;
        let result = self.decode_image(image, &encoded, mime, &hint);
        self.budget.release(encoded_charge);
        result
    }

    /// Decodes an image into RGBA8 with its mip chain, after checking its
    /// header's size against the budget.
    fn decode_image(
        &mut self,
        image: &gltf::Image<'_>,
        encoded: &[u8],
        mime: Option<&str>,
        hint: &str,
    ) -> Result<TextureData, DemoError> {
        let index = image.index();
        let item = GltfItem::Image(index);
        let path = self.path;
        let bad = |reason: String| DemoError::BadImage {
            path: path.to_owned(),
            index,
            reason,
        };
        let format = match mime {
            Some("image/png") => image::ImageFormat::Png,
            Some("image/jpeg") => image::ImageFormat::Jpeg,
            _ => match image::guess_format(encoded) {
                Ok(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => f,
                Ok(f) => {
                    return Err(bad(format!(
                        "{hint}: {f:?} images are not supported (PNG and JPEG are)"
                    )))
                }
                Err(_) => {
                    return Err(bad(format!(
                        "{hint}: unknown image format{} (PNG and JPEG are supported)",
                        mime.map(|m| format!(" {m}")).unwrap_or_default()
                    )))
                }
            },
        };
        // The header alone: the decoder is built, nothing decoded yet. Its
        // own allocations (PNG ancillary chunks) are held to the budget.
        let remaining = self.budget.remaining();
        // The decoder's own limit is what is left of the budget: when it
        // finds that short, the budget is exceeded by at least one byte.
        let decode_error = |e: image::ImageError| match e {
            image::ImageError::Limits(_) => DemoError::OverBudget {
                path: path.to_owned(),
                item,
                needed: remaining.saturating_add(1),
                used: self.budget.used,
                limit: self.budget.limit,
            },
            e => bad(format!("{hint}: cannot decode: {e}")),
        };
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(remaining);
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(encoded), format);
        reader.limits(limits.clone());
        let mut decoder = reader.into_decoder().map_err(decode_error)?;
        let (width, height) = image::ImageDecoder::dimensions(&decoder);
        if width == 0 || height == 0 {
            return Err(bad(format!("{hint}: image is empty")));
        }
        let held = mip_chain_bytes(width, height);
        // Pixels in another layout than RGBA8 are decoded into a buffer of
        // their own and converted; the JPEG decoder keeps a copy of its input.
        let mut transient = 0u64;
        if image::ImageDecoder::color_type(&decoder) != image::ColorType::Rgba8 {
            transient += image::ImageDecoder::total_bytes(&decoder);
        }
        if format == image::ImageFormat::Jpeg {
            transient += encoded.len() as u64;
        }
        self.budget.check(item, held, transient)?;
        image::ImageDecoder::set_limits(&mut decoder, limits).map_err(decode_error)?;
        let decoded = image::DynamicImage::from_decoder(decoder)
            .map_err(decode_error)?
            .into_rgba8();
        self.budget.charge(item, held)?;
        Ok(TextureData {
            name: image
                .name()
                .map_or_else(|| format!("image{index}"), str::to_owned),
            width,
            height,
            format: vk::Format::R8G8B8A8_SRGB,
            mips: mip_chain_owned(width, height, decoded.into_raw()),
        })
    }
}
