//! glTF 2.0 loading for [`crate::Scene::load_gltf`].
//!
//! The `gltf` crate parses and validates the document; buffers, images and
//! accessors are resolved here rather than with `gltf::import` and the
//! `gltf` accessor reader, because those name no file in their errors, and
//! panic (`debug_assert!`, arithmetic overflow, an `unwrap` on
//! percent-decoding) on some malformed input, which an engine loading
//! assets must never do.
//!
//! Order of checks, so the first error is the meaningful one: file exists
//! and is read; GLB container or JSON; `asset.version` 2.x;
//! `extensionsRequired` (Draco, KTX2, ... are refused by name before the
//! typed parse, which would fail on their missing fields less clearly), and
//! Draco primitives without uncompressed fallback;
//! typed parse and `gltf` validation; meshes present; buffers; accessors per
//! primitive; images; node hierarchy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ash::vk;
use gltf::accessor::{DataType, Dimensions};
use gltf::mesh::{Mode, Semantic};
use serde_json::Value;

use crate::error::DemoError;
use crate::math;
use crate::scene::{flat_normal, mip_chain_owned, Draw, MeshData, Scene, TextureData, Vertex};

/// Required extensions that change only how a material looks, not the data
/// this loader reads: the frame is approximate, the upload complete.
const IGNORABLE_REQUIRED: &[&str] = &[
    "KHR_materials_emissive_strength",
    "KHR_materials_ior",
    "KHR_materials_pbrSpecularGlossiness",
    "KHR_materials_specular",
    "KHR_materials_transmission",
    "KHR_materials_unlit",
    "KHR_materials_variants",
    "KHR_materials_volume",
    "KHR_materials_clearcoat",
    "KHR_materials_sheen",
    "KHR_texture_transform",
    "KHR_lights_punctual",
];

const DRACO: &str = "KHR_draco_mesh_compression";

pub(crate) fn load(path: &Path) -> Result<Scene, DemoError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            DemoError::MissingFile {
                path: path.to_owned(),
            }
        } else {
            DemoError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let not_gltf = |reason: String| DemoError::NotGltf {
        path: path.to_owned(),
        reason,
    };
    let invalid = |reason: String| DemoError::InvalidGltf {
        path: path.to_owned(),
        reason,
    };

    // Container.
    let (json_bytes, blob): (Vec<u8>, Option<Vec<u8>>) = if bytes.starts_with(b"glTF") {
        let glb = gltf::binary::Glb::from_slice(&bytes)
            .map_err(|e| not_gltf(format!("bad GLB container: {e}")))?;
        (glb.json.into_owned(), glb.bin.map(|b| b.into_owned()))
    } else {
        (bytes, None)
    };
    let mut raw: Value = serde_json::from_slice(&json_bytes)
        .map_err(|e| not_gltf(format!("neither GLB nor JSON ({e})")))?;
    let version = raw
        .get("asset")
        .and_then(|a| a.get("version"))
        .and_then(Value::as_str)
        .ok_or_else(|| not_gltf("JSON without asset.version".to_owned()))?;
    if !version.starts_with("2.") {
        return Err(not_gltf(format!(
            "asset.version is {version:?}; only glTF 2.x is supported"
        )));
    }

    // Required extensions, by name, before the typed parse.
    if let Some(required) = raw.get("extensionsRequired").and_then(Value::as_array) {
        for ext in required {
            let name = ext.as_str().unwrap_or("(not a string)");
            if !IGNORABLE_REQUIRED.contains(&name) {
                return Err(DemoError::UnsupportedExtension {
                    path: path.to_owned(),
                    extension: name.to_owned(),
                });
            }
        }
    }
    // The `gltf` crate refuses required extensions it was not built with;
    // the remaining ones are known to be ignorable (checked above).
    if let Some(obj) = raw.as_object_mut() {
        obj.remove("extensionsRequired");
    }
    if draco_without_fallback(&raw) {
        return Err(DemoError::UnsupportedExtension {
            path: path.to_owned(),
            extension: DRACO.to_owned(),
        });
    }

    let root: gltf::json::Root = serde_json::from_value(raw).map_err(|e| invalid(e.to_string()))?;
    let document = gltf::Document::from_json(root).map_err(|e| invalid(validation_message(&e)))?;
    if document.meshes().len() == 0 {
        return Err(DemoError::NoMeshes {
            path: path.to_owned(),
        });
    }

    let base = path.parent().unwrap_or(Path::new("."));
    let buffers = load_buffers(path, base, &document, blob)?;
    let ctx = Ctx {
        path,
        buffers: &buffers,
    };

    // Textures: every image some texture uses, in image order.
    let mut scene = Scene::default();
    let mut image_texture: HashMap<usize, usize> = HashMap::new();
    let mut used_images: Vec<usize> = document.textures().map(|t| t.source().index()).collect();
    used_images.sort_unstable();
    used_images.dedup();
    for image in document
        .images()
        .filter(|i| used_images.binary_search(&i.index()).is_ok())
    {
        let texture = load_image(&ctx, base, &image)?;
        image_texture.insert(image.index(), scene.textures.len());
        scene.textures.push(texture);
    }

    // Meshes: one MeshData per primitive; remember each primitive's texture.
    let mut primitive_mesh: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
    let mut factor_textures: HashMap<[u8; 4], usize> = HashMap::new();
    for mesh in document.meshes() {
        let count = mesh.primitives().len();
        for primitive in mesh.primitives() {
            let key = (mesh.index(), primitive.index());
            let pbr = primitive.material().pbr_metallic_roughness();
            let (texture, uv_set) = match pbr.base_color_texture() {
                Some(info) => match image_texture.get(&info.texture().source().index()) {
                    Some(&t) => (t, info.tex_coord()),
                    None => (
                        factor_texture(&mut scene, &mut factor_textures, [1.0; 4]),
                        0,
                    ),
                },
                None => (
                    factor_texture(&mut scene, &mut factor_textures, pbr.base_color_factor()),
                    0,
                ),
            };
            let name = match (mesh.name(), count) {
                (Some(n), 1) => n.to_owned(),
                (Some(n), _) => format!("{n}/{}", primitive.index()),
                (None, 1) => format!("mesh{}", mesh.index()),
                (None, _) => format!("mesh{}/{}", mesh.index(), primitive.index()),
            };
            let data = load_primitive(&ctx, &primitive, mesh.index(), name, uv_set)?;
            primitive_mesh.insert(key, (scene.meshes.len(), texture));
            scene.meshes.push(data);
        }
    }

    // Draws: walk the default scene (or the first, or every root node).
    let roots: Vec<gltf::Node<'_>> = match document
        .default_scene()
        .or_else(|| document.scenes().next())
    {
        Some(s) => s.nodes().collect(),
        None => {
            let mut is_child = vec![false; document.nodes().len()];
            for n in document.nodes() {
                for c in n.children() {
                    is_child[c.index()] = true;
                }
            }
            document.nodes().filter(|n| !is_child[n.index()]).collect()
        }
    };
    let mut visited = vec![false; document.nodes().len()];
    let mut stack: Vec<(gltf::Node<'_>, [[f32; 4]; 4])> = roots
        .into_iter()
        .rev()
        .map(|n| (n, math::IDENTITY))
        .collect();
    while let Some((node, parent)) = stack.pop() {
        if std::mem::replace(&mut visited[node.index()], true) {
            return Err(invalid(format!(
                "node {} is reached twice in the node hierarchy (a cycle or a node with two parents)",
                node.index()
            )));
        }
        let world = math::mul(&parent, &node.transform().matrix());
        if let Some(mesh) = node.mesh() {
            for primitive in mesh.primitives() {
                if let Some(&(mesh, texture)) =
                    primitive_mesh.get(&(mesh.index(), primitive.index()))
                {
                    scene.draws.push(Draw {
                        mesh,
                        texture,
                        transform: world,
                    });
                }
            }
        }
        stack.extend(node.children().map(|c| (c, world)));
    }
    if scene.draws.is_empty() {
        let mut all: Vec<_> = primitive_mesh.values().copied().collect();
        all.sort_unstable();
        scene.draws = all
            .into_iter()
            .map(|(mesh, texture)| Draw {
                mesh,
                texture,
                transform: math::IDENTITY,
            })
            .collect();
    }
    Ok(scene)
}

fn validation_message(e: &gltf::Error) -> String {
    match e {
        gltf::Error::Validation(errors) => {
            let mut parts: Vec<String> = errors
                .iter()
                .take(5)
                .map(|(p, err)| format!("{p}: {err}"))
                .collect();
            if errors.len() > 5 {
                parts.push(format!("and {} more", errors.len() - 5));
            }
            parts.join("; ")
        }
        other => other.to_string(),
    }
}

/// Whether a primitive carries Draco-compressed data without the
/// uncompressed fallback (its POSITION accessor has no buffer view): such a
/// file cannot be read without a Draco decoder even when the extension is
/// only "used", not "required".
fn draco_without_fallback(raw: &Value) -> bool {
    let accessors = raw.get("accessors").and_then(Value::as_array);
    let meshes = raw
        .get("meshes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    meshes
        .flat_map(|m| {
            m.get("primitives")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .any(|prim| {
            prim.get("extensions").and_then(|e| e.get(DRACO)).is_some()
                && prim
                    .get("attributes")
                    .and_then(|a| a.get("POSITION"))
                    .and_then(Value::as_u64)
                    .and_then(|i| accessors?.get(usize::try_from(i).ok()?))
                    .is_some_and(|acc| acc.get("bufferView").is_none())
        })
}

struct Ctx<'a> {
    path: &'a Path,
    buffers: &'a [Vec<u8>],
}

/// Where a URI points.
enum Uri {
    Data(Result<Vec<u8>, String>),
    File(PathBuf),
    Unsupported(String),
}

fn resolve_uri(base: &Path, uri: &str) -> Uri {
    if let Some(rest) = uri.strip_prefix("data:") {
        return Uri::Data(match rest.split_once(";base64,") {
            Some((_, data)) => {
                base64::decode(data).map_err(|e| format!("bad base64 in data URI: {e}"))
            }
            None => Err("data URI is not base64-encoded".to_owned()),
        });
    }
    if let Some(rest) = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
    {
        return match percent_decode(rest) {
            Some(p) => Uri::File(PathBuf::from(p)),
            None => Uri::Unsupported(format!("URI {uri:?} has bad percent-encoding")),
        };
    }
    if let Some((scheme, _)) = uri.split_once(':') {
        if !scheme.contains('/') {
            return Uri::Unsupported(format!(
                "URI scheme {scheme:?} is not supported (only relative paths, file: and data:)"
            ));
        }
    }
    match percent_decode(uri) {
        Some(p) => Uri::File(base.join(p)),
        None => Uri::Unsupported(format!("URI {uri:?} has bad percent-encoding")),
    }
}

/// RFC 3986 percent-decoding into UTF-8; `None` for a bad escape.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn load_buffers(
    path: &Path,
    base: &Path,
    document: &gltf::Document,
    mut blob: Option<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, DemoError> {
    let mut out = Vec::new();
    for buffer in document.buffers() {
        let index = buffer.index();
        let bad = |reason: String| DemoError::BadBuffer {
            path: path.to_owned(),
            index,
            reason,
        };
        let data = match buffer.source() {
            gltf::buffer::Source::Bin => blob.take().ok_or_else(|| {
                bad(
                    "refers to the GLB BIN chunk, which is missing (or used by an earlier buffer)"
                        .to_owned(),
                )
            })?,
            gltf::buffer::Source::Uri(uri) => match resolve_uri(base, uri) {
                Uri::Data(data) => data.map_err(bad)?,
                Uri::Unsupported(reason) => return Err(bad(reason)),
                Uri::File(file) => match std::fs::read(&file) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(DemoError::MissingBuffer {
                            path: path.to_owned(),
                            index,
                            file,
                        })
                    }
                    Err(e) => return Err(bad(format!("cannot read {}: {e}", file.display()))),
                },
            },
        };
        if data.len() < buffer.length() {
            return Err(bad(format!(
                "has {} bytes but its byteLength is {}",
                data.len(),
                buffer.length()
            )));
        }
        out.push(data);
    }
    Ok(out)
}

fn load_image(
    ctx: &Ctx<'_>,
    base: &Path,
    image: &gltf::Image<'_>,
) -> Result<TextureData, DemoError> {
    let index = image.index();
    let bad = |reason: String| DemoError::BadImage {
        path: ctx.path.to_owned(),
        index,
        reason,
    };
    let (encoded, mime, hint): (std::borrow::Cow<'_, [u8]>, Option<&str>, String) =
        match image.source() {
            gltf::image::Source::View { view, mime_type } => {
                let data = view_slice(ctx, &view).ok_or_else(|| {
                    bad(format!(
                        "buffer view {} is outside its buffer",
                        view.index()
                    ))
                })?;
                (
                    data.into(),
                    Some(mime_type),
                    format!("buffer view {}", view.index()),
                )
            }
            gltf::image::Source::Uri { uri, mime_type } => match resolve_uri(base, uri) {
                Uri::Data(data) => (data.map_err(bad)?.into(), mime_type, "data URI".to_owned()),
                Uri::Unsupported(reason) => return Err(bad(reason)),
                Uri::File(file) => match std::fs::read(&file) {
                    Ok(d) => (d.into(), mime_type, file.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(DemoError::MissingImage {
                            path: ctx.path.to_owned(),
                            index,
                            file,
                        })
                    }
                    Err(e) => return Err(bad(format!("cannot read {}: {e}", file.display()))),
                },
            },
        };
    let format = match mime {
        Some("image/png") => image::ImageFormat::Png,
        Some("image/jpeg") => image::ImageFormat::Jpeg,
        _ => match image::guess_format(&encoded) {
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
    let decoded = image::load_from_memory_with_format(&encoded, format)
        .map_err(|e| bad(format!("{hint}: cannot decode: {e}")))?
        .to_rgba8();
    let (width, height) = decoded.dimensions();
    if width == 0 || height == 0 {
        return Err(bad(format!("{hint}: image is empty")));
    }
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

/// A 4x4 texture of a material's base colour factor (linear RGBA, stored
/// sRGB-encoded), shared between materials of the same colour.
fn factor_texture(
    scene: &mut Scene,
    cache: &mut HashMap<[u8; 4], usize>,
    factor: [f32; 4],
) -> usize {
    let encode = |c: f32| {
        let c = if c.is_finite() {
            c.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let s = if c <= 0.003_130_8 {
            c * 12.92
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (s * 255.0 + 0.5) as u8
    };
    let alpha = if factor[3].is_finite() {
        (factor[3].clamp(0.0, 1.0) * 255.0 + 0.5) as u8
    } else {
        255
    };
    let rgba = [
        encode(factor[0]),
        encode(factor[1]),
        encode(factor[2]),
        alpha,
    ];
    *cache.entry(rgba).or_insert_with(|| {
        let name = if rgba == [255; 4] {
            "default-white".to_owned()
        } else {
            format!(
                "base-color-{:02x}{:02x}{:02x}{:02x}",
                rgba[0], rgba[1], rgba[2], rgba[3]
            )
        };
        scene.textures.push(TextureData {
            name,
            width: 4,
            height: 4,
            format: vk::Format::R8G8B8A8_SRGB,
            mips: mip_chain_owned(4, 4, rgba.repeat(16)),
        });
        scene.textures.len() - 1
    })
}

fn view_slice<'a>(ctx: &Ctx<'a>, view: &gltf::buffer::View<'_>) -> Option<&'a [u8]> {
    let buffer = ctx.buffers.get(view.buffer().index())?;
    let end = view.offset().checked_add(view.length())?;
    buffer.get(view.offset()..end)
}

/// `(bytes from the first element, stride, count)` of an accessor.
type Elements<'a> = (&'a [u8], usize, usize);

/// An accessor's elements as byte slices, bounds-checked: `(data from the
/// first element, stride, count)`; `None` when it has no buffer view (all
/// zeros, per the spec).
fn accessor_bytes<'a>(
    ctx: &Ctx<'a>,
    accessor: &gltf::Accessor<'_>,
    role: &'static str,
    allowed: &[(DataType, bool)],
    dims: Dimensions,
) -> Result<Option<Elements<'a>>, DemoError> {
    let bad = |reason: String| DemoError::BadAccessor {
        path: ctx.path.to_owned(),
        accessor: accessor.index(),
        role,
        reason,
    };
    if accessor.sparse().is_some() {
        return Err(DemoError::SparseAccessor {
            path: ctx.path.to_owned(),
            accessor: accessor.index(),
        });
    }
    let (data_type, normalized) = (accessor.data_type(), accessor.normalized());
    if accessor.dimensions() != dims || !allowed.contains(&(data_type, normalized)) {
        return Err(bad(format!(
            "is {:?} of {:?}{}; expected {dims:?} of {}",
            accessor.dimensions(),
            data_type,
            if normalized { " (normalized)" } else { "" },
            allowed
                .iter()
                .map(|(t, n)| format!("{t:?}{}", if *n { " (normalized)" } else { "" }))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    let count = accessor.count();
    let Some(view) = accessor.view() else {
        return Ok(None);
    };
    let elem = data_type.size() * dims.multiplicity();
    let stride = view.stride().unwrap_or(elem);
    if stride < elem {
        return Err(bad(format!(
            "byteStride {stride} is smaller than its {elem}-byte elements"
        )));
    }
    let slice = view_slice(ctx, &view).ok_or_else(|| {
        bad(format!(
            "buffer view {} (offset {}, length {}) is outside its buffer",
            view.index(),
            view.offset(),
            view.length()
        ))
    })?;
    if count == 0 {
        return Ok(Some((&[], stride, 0)));
    }
    let needed = (count - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(elem))
        .and_then(|n| n.checked_add(accessor.offset()));
    match needed {
        Some(end) if end <= slice.len() => Ok(Some((&slice[accessor.offset()..end], stride, count))),
        _ => Err(bad(format!(
            "{count} elements at offset {} with stride {stride} do not fit buffer view {} ({} bytes)",
            accessor.offset(),
            view.index(),
            slice.len()
        ))),
    }
}

fn f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn read_vec3(
    ctx: &Ctx<'_>,
    accessor: &gltf::Accessor<'_>,
    role: &'static str,
) -> Result<Vec<[f32; 3]>, DemoError> {
    let Some((data, stride, count)) = accessor_bytes(
        ctx,
        accessor,
        role,
        &[(DataType::F32, false)],
        Dimensions::Vec3,
    )?
    else {
        return Ok(vec![[0.0; 3]; accessor.count()]);
    };
    Ok((0..count)
        .map(|i| {
            let o = i * stride;
            [f32_at(data, o), f32_at(data, o + 4), f32_at(data, o + 8)]
        })
        .collect())
}

fn read_uvs(ctx: &Ctx<'_>, accessor: &gltf::Accessor<'_>) -> Result<Vec<[f32; 2]>, DemoError> {
    let allowed = [
        (DataType::F32, false),
        (DataType::U8, true),
        (DataType::U16, true),
    ];
    let Some((data, stride, count)) =
        accessor_bytes(ctx, accessor, "TEXCOORD", &allowed, Dimensions::Vec2)?
    else {
        return Ok(vec![[0.0; 2]; accessor.count()]);
    };
    let dt = accessor.data_type();
    Ok((0..count)
        .map(|i| {
            let o = i * stride;
            match dt {
                DataType::U8 => [f32::from(data[o]) / 255.0, f32::from(data[o + 1]) / 255.0],
                DataType::U16 => [
                    f32::from(u16::from_le_bytes([data[o], data[o + 1]])) / 65535.0,
                    f32::from(u16::from_le_bytes([data[o + 2], data[o + 3]])) / 65535.0,
                ],
                _ => [f32_at(data, o), f32_at(data, o + 4)],
            }
        })
        .collect())
}

fn read_indices(ctx: &Ctx<'_>, accessor: &gltf::Accessor<'_>) -> Result<Vec<u32>, DemoError> {
    let allowed = [
        (DataType::U8, false),
        (DataType::U16, false),
        (DataType::U32, false),
    ];
    let Some((data, stride, count)) =
        accessor_bytes(ctx, accessor, "indices", &allowed, Dimensions::Scalar)?
    else {
        return Ok(vec![0; accessor.count()]);
    };
    let dt = accessor.data_type();
    Ok((0..count)
        .map(|i| {
            let o = i * stride;
            match dt {
                DataType::U8 => u32::from(data[o]),
                DataType::U16 => u32::from(u16::from_le_bytes([data[o], data[o + 1]])),
                _ => u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]),
            }
        })
        .collect())
}

fn load_primitive(
    ctx: &Ctx<'_>,
    primitive: &gltf::Primitive<'_>,
    mesh: usize,
    name: String,
    uv_set: u32,
) -> Result<MeshData, DemoError> {
    let bad = |reason: String| DemoError::BadPrimitive {
        path: ctx.path.to_owned(),
        mesh,
        primitive: primitive.index(),
        reason,
    };
    if primitive.mode() != Mode::Triangles {
        return Err(bad(format!(
            "mode is {:?}; only TRIANGLES is supported",
            primitive.mode()
        )));
    }
    let position = primitive
        .get(&Semantic::Positions)
        .ok_or_else(|| bad("has no POSITION attribute".to_owned()))?;
    let positions = read_vec3(ctx, &position, "POSITION")?;
    if positions.is_empty() {
        return Err(bad("has no vertices".to_owned()));
    }
    let n = positions.len();
    let same_count = |accessor: &gltf::Accessor<'_>, role: &'static str| {
        if accessor.count() == n {
            Ok(())
        } else {
            Err(DemoError::BadAccessor {
                path: ctx.path.to_owned(),
                accessor: accessor.index(),
                role,
                reason: format!("has {} elements but POSITION has {n}", accessor.count()),
            })
        }
    };
    let normals = match primitive.get(&Semantic::Normals) {
        Some(a) => {
            same_count(&a, "NORMAL")?;
            Some(read_vec3(ctx, &a, "NORMAL")?)
        }
        None => None,
    };
    let uvs = match primitive
        .get(&Semantic::TexCoords(uv_set))
        .or_else(|| primitive.get(&Semantic::TexCoords(0)))
    {
        Some(a) => {
            same_count(&a, "TEXCOORD")?;
            read_uvs(ctx, &a)?
        }
        None => vec![[0.0; 2]; n],
    };
    let indices = match primitive.indices() {
        Some(a) => {
            let indices = read_indices(ctx, &a)?;
            if let Some(&i) = indices.iter().find(|&&i| i as usize >= n) {
                return Err(DemoError::BadAccessor {
                    path: ctx.path.to_owned(),
                    accessor: a.index(),
                    role: "indices",
                    reason: format!("index {i} is past the {n} vertices"),
                });
            }
            if indices.len() % 3 != 0 {
                return Err(DemoError::BadAccessor {
                    path: ctx.path.to_owned(),
                    accessor: a.index(),
                    role: "indices",
                    reason: format!("{} indices do not make whole triangles", indices.len()),
                });
            }
            indices
        }
        None => {
            if n % 3 != 0 {
                return Err(bad(format!(
                    "{n} vertices without indices do not make whole triangles"
                )));
            }
            (0..n as u32).collect()
        }
    };
    if indices.is_empty() {
        return Err(bad("has no triangles".to_owned()));
    }

    let mut data = MeshData {
        name,
        vertices: Vec::with_capacity(n),
        indices: Vec::new(),
    };
    match normals {
        Some(normals) => {
            data.vertices
                .extend(positions.iter().zip(&normals).zip(&uvs).map(
                    |((&position, &normal), &uv)| Vertex {
                        position,
                        normal,
                        uv,
                    },
                ));
            data.indices = indices;
        }
        None => {
            // Flat normals, as glTF requires when NORMAL is absent: each
            // triangle gets its own three vertices.
            data.vertices.reserve(indices.len().saturating_sub(n));
            for tri in indices.chunks_exact(3) {
                let p = [
                    positions[tri[0] as usize],
                    positions[tri[1] as usize],
                    positions[tri[2] as usize],
                ];
                let normal = flat_normal(p[0], p[1], p[2]);
                for &i in tri {
                    data.vertices.push(Vertex {
                        position: positions[i as usize],
                        normal,
                        uv: uvs[i as usize],
                    });
                }
            }
            data.indices = (0..data.vertices.len() as u32).collect();
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b.bin").as_deref(), Some("a b.bin"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff%fe"), None); // not UTF-8
    }

    #[test]
    fn uri_schemes() {
        let base = Path::new("/assets");
        assert!(
            matches!(resolve_uri(base, "x.bin"), Uri::File(p) if p == Path::new("/assets/x.bin"))
        );
        assert!(
            matches!(resolve_uri(base, "data:application/octet-stream;base64,AAEC"), Uri::Data(Ok(d)) if d == [0, 1, 2])
        );
        assert!(matches!(
            resolve_uri(base, "data:text/plain,hello"),
            Uri::Data(Err(_))
        ));
        assert!(matches!(
            resolve_uri(base, "https://example.invalid/x.bin"),
            Uri::Unsupported(_)
        ));
    }
}
