//! glTF 2.0 loading for [`crate::Scene::load_gltf_with`].
//!
//! The `gltf` crate parses and validates the document; buffers, images and
//! accessors are resolved here rather than with `gltf::import` and the
//! `gltf` accessor reader, because those name no file in their errors, and
//! panic (`debug_assert!`, arithmetic overflow, an `unwrap` on
//! percent-decoding or on an image without source) on some malformed input,
//! which an engine loading assets must never do.
//!
//! # Files from anywhere
//!
//! A glTF file is input from outside, so nothing it says is trusted:
//!
//! - **Only regular files are read**, the glTF file itself included. The
//!   path is checked before it is opened (opening a FIFO for reading blocks
//!   until a writer comes), it is opened non-blocking where the platform
//!   allows, and the opened handle is checked again, so a file swapped for a
//!   FIFO or a device in between is refused too. Every read is bounded by a
//!   length known before it starts: the file's size for the glTF file and
//!   images, the buffer's `byteLength` for buffers.
//! - **URIs stay in the asset's folder** unless
//!   [`LoadOptions::allow_outside_uris`] is on: a relative URI that climbs
//!   out (`../`), an absolute path or a `file:` URI outside the folder is
//!   refused before the file system is asked (so the error does not tell
//!   whether such a file exists), and what is left is made canonical and
//!   checked again, so a symbolic link pointing out is refused as well.
//!   Other schemes (`http:`...) are not supported.
//! - **A budget of decoded bytes** ([`LoadOptions::max_decoded_bytes`])
//!   covers everything the loader holds; each amount is checked before it is
//!   read, decoded or expanded: image sizes come from the PNG or JPEG header
//!   (and the decoder is given the remaining budget as its own limit), an
//!   accessor's size from its count, a primitive's from its counts with flat
//!   normals expanded.
//! - **Shared data is decoded once**: an accessor by its index, an image by
//!   its source (buffer view, canonical file, or data URI), and primitives
//!   that use the same accessors share one mesh, drawn once per primitive.
//!
//! # GLB container
//!
//! A file starting with `glTF` is a GLB: a 12-byte header (magic, version
//! 2, length), then chunks (length, type, data). The header's length must
//! be the file's length (a shorter one would hide trailing data, a longer
//! one means a truncated file); chunk 0 must be JSON; a BIN chunk is
//! accepted only as chunk 1; a second JSON or BIN chunk is refused; chunks
//! of other types after them are skipped, as the specification requires of
//! readers; no chunk may run past the end. Errors are
//! [`DemoError::BadGlb`] with a [`crate::scene::GlbProblem`].
//!
//! # Order of checks
//!
//! So that the first error is the meaningful one: the file is a regular
//! file within the budget and is read; GLB container or JSON;
//! `asset.version` 2.x; `extensionsRequired` (Draco, KTX2, ... are refused
//! by name before the typed parse, which would fail on their missing fields
//! less clearly), and Draco primitives without uncompressed fallback; typed
//! parse and `gltf` validation; meshes present; buffers; images (their
//! source checked in the raw JSON first: `Image::source` of the `gltf`
//! crate unwraps); accessors per primitive; node hierarchy and draws.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use ash::vk;
use gltf::mesh::{Mode, Semantic};
use serde_json::Value;

use crate::error::{DemoError, GltfItem};
use crate::math;
use crate::scene::{
    flat_normal, mip_chain_owned, mip_level_count, Draw, LoadOptions, MeshData, Scene, TextureData,
    Vertex,
};

mod accessors;
mod files;
mod glb;
mod images;

use files::{base64_len, parse_uri, read_file, Files, Uri};
use glb::split_glb;
use images::{image_source, raw_image_sources, ImageKey};

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

pub(crate) fn load(path: &Path, options: &LoadOptions) -> Result<Scene, DemoError> {
    let mut budget = Budget {
        path,
        limit: options.max_decoded_bytes,
        used: 0,
    };
    let bytes = read_file(path, &mut budget, GltfItem::File, path, None)?;
    let not_gltf = |reason: String| DemoError::NotGltf {
        path: path.to_owned(),
        reason,
    };
    let invalid = |reason: String| DemoError::InvalidGltf {
        path: path.to_owned(),
        reason,
    };

    // Container.
    let (json_range, bin_range) = if bytes.starts_with(b"glTF") {
        split_glb(&bytes).map_err(|problem| DemoError::BadGlb {
            path: path.to_owned(),
            problem,
        })?
    } else {
        (0..bytes.len(), None)
    };
    let mut raw: Value = serde_json::from_slice(&bytes[json_range])
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
    let image_sources = raw_image_sources(&raw);

    let root: gltf::json::Root = serde_json::from_value(raw).map_err(|e| invalid(e.to_string()))?;
    let document = gltf::Document::from_json(root).map_err(|e| invalid(validation_message(&e)))?;
    if document.meshes().len() == 0 {
        return Err(DemoError::NoMeshes {
            path: path.to_owned(),
        });
    }

    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = std::fs::canonicalize(base).map_err(|source| DemoError::Io {
        path: base.to_owned(),
        source,
    })?;
    let files = Files {
        path,
        base,
        folder,
        allow_outside: options.allow_outside_uris,
    };
    let bin = bin_range.map(|r| &bytes[r]);
    let external = load_buffers(&files, &mut budget, &document, bin)?;
    let mut loader = Loader {
        path,
        buffers: external.iter().map(|b| b.bytes(bin)).collect(),
        budget,
        vec3: HashMap::new(),
        vec2: HashMap::new(),
        indices: HashMap::new(),
    };

    // Textures: every image some texture uses, decoded once per source.
    let mut scene = Scene::default();
    let mut image_texture: HashMap<usize, usize> = HashMap::new();
    let mut source_texture: HashMap<ImageKey<'_>, usize> = HashMap::new();
    let mut used_images: Vec<usize> = document.textures().map(|t| t.source().index()).collect();
    used_images.sort_unstable();
    used_images.dedup();
    for image in document
        .images()
        .filter(|i| used_images.binary_search(&i.index()).is_ok())
    {
        let source = image_source(&files, &image, image_sources.get(image.index()))?;
        let key = source.key();
        if let Some(&texture) = source_texture.get(&key) {
            image_texture.insert(image.index(), texture);
            continue;
        }
        let texture = loader.load_image(&image, source)?;
        source_texture.insert(key, scene.textures.len());
        image_texture.insert(image.index(), scene.textures.len());
        scene.textures.push(texture);
    }

    // Meshes: one MeshData per distinct set of accessors; remember each
    // primitive's mesh and texture.
    let mut primitive_mesh: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
    let mut accessor_mesh: HashMap<MeshKey, usize> = HashMap::new();
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
            let bad = |reason: String| DemoError::BadPrimitive {
                path: path.to_owned(),
                mesh: mesh.index(),
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
            let uvs = primitive
                .get(&Semantic::TexCoords(uv_set))
                .or_else(|| primitive.get(&Semantic::TexCoords(0)));
            let accessors = MeshKey {
                position: position.index(),
                normal: primitive.get(&Semantic::Normals).map(|a| a.index()),
                uv: uvs.as_ref().map(gltf::Accessor::index),
                indices: primitive.indices().map(|a| a.index()),
            };
            let index = match accessor_mesh.get(&accessors) {
                Some(&index) => index,
                None => {
                    let name = match (mesh.name(), count) {
                        (Some(n), 1) => n.to_owned(),
                        (Some(n), _) => format!("{n}/{}", primitive.index()),
                        (None, 1) => format!("mesh{}", mesh.index()),
                        (None, _) => format!("mesh{}/{}", mesh.index(), primitive.index()),
                    };
                    let data =
                        loader.load_primitive(&primitive, mesh.index(), name, &position, uvs)?;
                    scene.meshes.push(data);
                    accessor_mesh.insert(accessors, scene.meshes.len() - 1);
                    scene.meshes.len() - 1
                }
            };
            primitive_mesh.insert(key, (index, texture));
        }
    }
    // The decoded accessors are copied into the meshes: give them back.
    loader.drop_accessors();

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
            loader.budget.charge(
                GltfItem::Node(node.index()),
                bytes_of::<Draw>(mesh.primitives().len()),
            )?;
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
        all.dedup();
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

/// `count` values of `T` in bytes, saturating (a saturated amount is over
/// any budget).
fn bytes_of<T>(count: usize) -> u64 {
    (count as u64).saturating_mul(std::mem::size_of::<T>() as u64)
}

/// Bytes of an RGBA8 image with its full mip chain.
fn mip_chain_bytes(width: u32, height: u32) -> u64 {
    (0..mip_level_count(width, height))
        .map(|level| {
            let (w, h) = crate::scene::mip_extent(width, height, level);
            u64::from(w).saturating_mul(u64::from(h)).saturating_mul(4)
        })
        .fold(0u64, u64::saturating_add)
}

/// The decoding budget: bytes held against [`LoadOptions::max_decoded_bytes`].
struct Budget<'a> {
    path: &'a Path,
    limit: u64,
    used: u64,
}

impl Budget<'_> {
    /// Fails unless `held` more bytes can be held, and `transient` more on
    /// top of them for a while.
    fn check(&self, item: GltfItem, held: u64, transient: u64) -> Result<(), DemoError> {
        let needed = held.saturating_add(transient);
        if needed > self.remaining() {
            return Err(DemoError::OverBudget {
                path: self.path.to_owned(),
                item,
                needed,
                used: self.used,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Holds `bytes` more, or fails without holding anything.
    fn charge(&mut self, item: GltfItem, bytes: u64) -> Result<(), DemoError> {
        self.check(item, bytes, 0)?;
        self.used += bytes;
        Ok(())
    }

    /// Gives back bytes no longer held.
    fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
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

// ----------------------------------------------------------------- buffers

/// A buffer's bytes: the first `n` of the GLB's BIN chunk, or its own.
enum BufferBytes {
    Bin(usize),
    Own(Vec<u8>),
}

impl BufferBytes {
    fn bytes<'b>(&'b self, bin: Option<&'b [u8]>) -> &'b [u8] {
        match self {
            BufferBytes::Bin(n) => bin.and_then(|b| b.get(..*n)).unwrap_or_default(),
            BufferBytes::Own(v) => v,
        }
    }
}

fn load_buffers(
    files: &Files<'_>,
    budget: &mut Budget<'_>,
    document: &gltf::Document,
    bin: Option<&[u8]>,
) -> Result<Vec<BufferBytes>, DemoError> {
    let path = files.path;
    let mut bin_used = false;
    let mut out = Vec::new();
    for buffer in document.buffers() {
        let index = buffer.index();
        let item = GltfItem::Buffer(index);
        let length = buffer.length();
        let bad = |reason: String| DemoError::BadBuffer {
            path: path.to_owned(),
            index,
            reason,
        };
        let short = |len: usize| bad(format!("has {len} bytes but its byteLength is {length}"));
        let data = match buffer.source() {
            gltf::buffer::Source::Bin => {
                let bin = bin.filter(|_| !bin_used).ok_or_else(|| {
                    bad("refers to the GLB BIN chunk, which is missing (or used by an earlier buffer)"
                        .to_owned())
                })?;
                bin_used = true;
                if bin.len() < length {
                    return Err(short(bin.len()));
                }
                BufferBytes::Bin(length)
            }
            gltf::buffer::Source::Uri(uri) => match parse_uri(uri) {
                Uri::Data(payload) => {
                    budget.charge(item, base64_len(payload))?;
                    let mut data = base64::decode(payload)
                        .map_err(|e| bad(format!("bad base64 in data URI: {e}")))?;
                    if data.len() < length {
                        return Err(short(data.len()));
                    }
                    data.truncate(length);
                    BufferBytes::Own(data)
                }
                Uri::Unsupported(reason) => return Err(bad(reason)),
                Uri::File(relative) => {
                    let file = files.locate(item, uri, &relative)?;
                    BufferBytes::Own(read_file(path, budget, item, &file, Some(length as u64))?)
                }
            },
        };
        out.push(data);
    }
    Ok(out)
}

/// What [`MeshData`] a primitive becomes is decided by these accessors
/// alone: primitives with equal keys share one mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct MeshKey {
    position: usize,
    normal: Option<usize>,
    uv: Option<usize>,
    indices: Option<usize>,
}

/// Buffers, the budget and decoded accessors (each decoded once).
struct Loader<'a> {
    path: &'a Path,
    buffers: Vec<&'a [u8]>,
    budget: Budget<'a>,
    vec3: HashMap<usize, Rc<Vec<[f32; 3]>>>,
    vec2: HashMap<usize, Rc<Vec<[f32; 2]>>>,
    indices: HashMap<usize, Rc<Vec<u32>>>,
}

impl<'a> Loader<'a> {
    /// Gives back the decoded accessors: the meshes hold copies.
    fn drop_accessors(&mut self) {
        let bytes = self
            .vec3
            .values()
            .map(|v| bytes_of::<[f32; 3]>(v.len()))
            .sum::<u64>()
            + self
                .vec2
                .values()
                .map(|v| bytes_of::<[f32; 2]>(v.len()))
                .sum::<u64>()
            + self
                .indices
                .values()
                .map(|v| bytes_of::<u32>(v.len()))
                .sum::<u64>();
        self.vec3.clear();
        self.vec2.clear();
        self.indices.clear();
        self.budget.release(bytes);
    }

    /// One primitive as a mesh: its counts checked (whole triangles, 32-bit
    /// indices, equal attribute counts) and its size charged before
    /// anything is read or expanded.
    fn load_primitive(
        &mut self,
        primitive: &gltf::Primitive<'_>,
        mesh: usize,
        name: String,
        position: &gltf::Accessor<'_>,
        uv_accessor: Option<gltf::Accessor<'_>>,
    ) -> Result<MeshData, DemoError> {
        let path = self.path;
        let bad = |reason: String| DemoError::BadPrimitive {
            path: path.to_owned(),
            mesh,
            primitive: primitive.index(),
            reason,
        };
        let n = position.count();
        if n == 0 {
            return Err(bad("has no vertices".to_owned()));
        }
        let same_count = |accessor: &gltf::Accessor<'_>, role: &'static str| {
            if accessor.count() == n {
                Ok(())
            } else {
                Err(DemoError::BadAccessor {
                    path: path.to_owned(),
                    accessor: accessor.index(),
                    role,
                    reason: format!("has {} elements but POSITION has {n}", accessor.count()),
                })
            }
        };
        let normal_accessor = primitive.get(&Semantic::Normals);
        if let Some(a) = &normal_accessor {
            same_count(a, "NORMAL")?;
        }
        if let Some(a) = &uv_accessor {
            same_count(a, "TEXCOORD")?;
        }
        let index_accessor = primitive.indices();
        let index_count = index_accessor.as_ref().map_or(n, gltf::Accessor::count);
        if !index_count.is_multiple_of(3) {
            return Err(match &index_accessor {
                Some(a) => DemoError::BadAccessor {
                    path: path.to_owned(),
                    accessor: a.index(),
                    role: "indices",
                    reason: format!("{index_count} indices do not make whole triangles"),
                },
                None => bad(format!(
                    "{n} vertices without indices do not make whole triangles"
                )),
            });
        }
        if index_count == 0 {
            return Err(bad("has no triangles".to_owned()));
        }
        // Without normals every triangle gets three vertices of its own.
        let flat = normal_accessor.is_none();
        let out_vertices = if flat { index_count } else { n };
        let limit = u32::MAX as usize;
        if n > limit || out_vertices > limit || index_count > limit {
            return Err(DemoError::PrimitiveTooLarge {
                path: path.to_owned(),
                mesh,
                primitive: primitive.index(),
                vertices: out_vertices as u64,
                indices: index_count as u64,
            });
        }

        let positions = self.read_vec3(position, "POSITION")?;
        let normals = match &normal_accessor {
            Some(a) => Some(self.read_vec3(a, "NORMAL")?),
            None => None,
        };
        let uvs = match &uv_accessor {
            Some(a) => Some(self.read_uvs(a)?),
            None => None,
        };
        let indices = match &index_accessor {
            Some(a) => {
                let indices = self.read_indices(a)?;
                if let Some(&i) = indices.iter().find(|&&i| i as usize >= n) {
                    return Err(DemoError::BadAccessor {
                        path: path.to_owned(),
                        accessor: a.index(),
                        role: "indices",
                        reason: format!("index {i} is past the {n} vertices"),
                    });
                }
                Some(indices)
            }
            None => None,
        };
        self.budget.charge(
            GltfItem::Primitive {
                mesh,
                primitive: primitive.index(),
            },
            bytes_of::<Vertex>(out_vertices).saturating_add(bytes_of::<u32>(index_count)),
        )?;

        let uv = |i: usize| uvs.as_ref().map_or([0.0; 2], |u| u[i]);
        let index_at = |k: usize| indices.as_ref().map_or(k, |ix| ix[k] as usize);
        let mut data = MeshData {
            name,
            vertices: Vec::with_capacity(out_vertices),
            indices: Vec::with_capacity(index_count),
        };
        match normals {
            Some(normals) => {
                data.vertices.extend((0..n).map(|i| Vertex {
                    position: positions[i],
                    normal: normals[i],
                    uv: uv(i),
                }));
                data.indices
                    .extend((0..index_count).map(|k| index_at(k) as u32));
            }
            None => {
                // Flat normals, as glTF requires when NORMAL is absent: each
                // triangle gets its own three vertices.
                for t in 0..index_count / 3 {
                    let tri = [index_at(3 * t), index_at(3 * t + 1), index_at(3 * t + 2)];
                    let normal =
                        flat_normal(positions[tri[0]], positions[tri[1]], positions[tri[2]]);
                    data.vertices.extend(tri.iter().map(|&i| Vertex {
                        position: positions[i],
                        normal,
                        uv: uv(i),
                    }));
                }
                // `out_vertices` fits u32 (checked above).
                data.indices.extend(0..out_vertices as u32);
            }
        }
        Ok(data)
    }
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

fn view_slice<'a>(buffers: &[&'a [u8]], view: &gltf::buffer::View<'_>) -> Option<&'a [u8]> {
    let buffer = buffers.get(view.buffer().index())?;
    let end = view.offset().checked_add(view.length())?;
    buffer.get(view.offset()..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mip_chain_bytes_saturate() {
        assert_eq!(mip_chain_bytes(4, 4), (16 + 4 + 1) * 4);
        assert_eq!(mip_chain_bytes(8, 1), (8 + 4 + 2 + 1) * 4);
        assert!(mip_chain_bytes(u32::MAX, u32::MAX) > 1 << 60);
    }
}
