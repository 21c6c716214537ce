//! A CPU-side scene: meshes, textures with full mip chains, and draws.
//!
//! A scene comes from [`Scene::generate_default`] (procedural, deterministic,
//! no download; a few hundred MB at scale 1.0) or from
//! [`Scene::load_gltf`] (glTF 2.0, `.gltf` with external files or `.glb`).
//! It is plain data: uploading it is the caller's business (the
//! `upload_mesh` example does it through gpumem's staging belt), and
//! [`crate::render`] draws it once it is on the GPU.
//!
//! Conventions: vertices are [`Vertex`] (32 bytes, position/normal/uv),
//! indices `u32`, triangle lists with counter-clockwise front faces (glTF's),
//! Y up; textures are RGBA8 (sRGB unless stated) with every mip level down to
//! 1x1; matrices are column-major `[[f32; 4]; 4]` (`m[column][row]`, as glTF
//! stores them).

use std::fmt;
use std::path::Path;

use ash::vk;

use crate::error::DemoError;
pub use crate::error::{GlbProblem, GltfItem};
use crate::math::{self, Vec3};

/// How [`Scene::load_gltf_with`] treats files it cannot trust. The
/// defaults ([`LoadOptions::default`]) suit files from anywhere: at most
/// [`LoadOptions::DEFAULT_MAX_DECODED_BYTES`] of decoded data, and no file
/// outside the glTF file's folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The most bytes the loader holds at once: the glTF or GLB file,
    /// external and embedded buffers, encoded and decoded images (RGBA8
    /// with the full mip chain, plus the decoder's own buffer while it
    /// runs), decoded accessors, the meshes' vertices and indices (flat
    /// normals expanded), and the draws. Each amount is checked before it
    /// is read, decoded or expanded (image sizes come from the PNG or JPEG
    /// header), so a small file that decodes to gigabytes is refused with
    /// [`DemoError::OverBudget`] without allocating them. The parsed JSON
    /// document is not counted: it is proportional to the file, which is.
    ///
    /// Default: [`LoadOptions::DEFAULT_MAX_DECODED_BYTES`] (2 GiB). The
    /// scene returned is at most this size ([`Scene::total_bytes`] counts
    /// part of it).
    pub max_decoded_bytes: u64,
    /// Whether buffer and image URIs may name files outside the folder of
    /// the glTF file. Off (the default), a URI is resolved against that
    /// folder, made canonical (symbolic links followed), and refused with
    /// [`DemoError::UriOutsideFolder`] unless the result lies inside the
    /// folder: `../x.bin`, `/etc/passwd`, `file:///dev/zero` and a link
    /// pointing out are all refused. On, any local file may be named. Either
    /// way only regular files are read ([`DemoError::NotRegularFile`]).
    pub allow_outside_uris: bool,
}

impl LoadOptions {
    /// The default of [`LoadOptions::max_decoded_bytes`]: 2 GiB, well
    /// under the memory of a machine that renders, well over the largest
    /// common sample scenes.
    pub const DEFAULT_MAX_DECODED_BYTES: u64 = 2 << 30;
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES,
            allow_outside_uris: false,
        }
    }
}

/// One vertex as the GPU reads it: 32 bytes, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Vertex {
    /// Object-space position.
    pub position: [f32; 3],
    /// Object-space normal (unit length, or zero when unknown).
    pub normal: [f32; 3],
    /// Texture coordinate (0..1 spans the texture once; the sampler repeats).
    pub uv: [f32; 2],
}

// The layout the pipeline's vertex input (and `as_bytes`) relies on.
const _: () = assert!(std::mem::size_of::<Vertex>() == 32);

impl Vertex {
    /// Size of one vertex in bytes (the vertex buffer's stride).
    pub const SIZE: usize = std::mem::size_of::<Vertex>();

    /// The vertex's 32 bytes, in the host's byte order (little-endian on
    /// every platform Vulkan runs on).
    pub fn as_bytes(&self) -> &[u8] {
        Self::slice_as_bytes(std::slice::from_ref(self))
    }

    /// A slice of vertices as bytes, ready to copy into a vertex buffer.
    pub fn slice_as_bytes(vertices: &[Vertex]) -> &[u8] {
        // SAFETY: `Vertex` is `repr(C)` with eight `f32` fields and no
        // padding (size asserted above), so every byte is initialised; u8 has
        // alignment 1; the length covers exactly the slice's memory, and the
        // returned slice borrows `vertices`.
        unsafe {
            std::slice::from_raw_parts(
                vertices.as_ptr().cast::<u8>(),
                std::mem::size_of_val(vertices),
            )
        }
    }
}

/// A triangle-list mesh.
#[derive(Clone, PartialEq)]
pub struct MeshData {
    /// Name, for statistics and allocation names.
    pub name: String,
    /// Vertices.
    pub vertices: Vec<Vertex>,
    /// Indices into `vertices`, three per triangle.
    pub indices: Vec<u32>,
}

impl fmt::Debug for MeshData {
    // A summary: the data itself is megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshData")
            .field("name", &self.name)
            .field("vertices", &self.vertices.len())
            .field("indices", &self.indices.len())
            .finish()
    }
}

impl MeshData {
    /// The vertex buffer's contents.
    pub fn vertex_bytes(&self) -> &[u8] {
        Vertex::slice_as_bytes(&self.vertices)
    }

    /// The index buffer's contents (`u32`, host byte order).
    pub fn index_bytes(&self) -> &[u8] {
        // SAFETY: u32 has no padding and any bytes are valid u8; alignment of
        // u8 is 1; the length is exactly the slice's memory, borrowed from
        // `self`.
        unsafe {
            std::slice::from_raw_parts(
                self.indices.as_ptr().cast::<u8>(),
                std::mem::size_of_val(self.indices.as_slice()),
            )
        }
    }

    /// Bytes of vertex plus index data.
    pub fn byte_size(&self) -> u64 {
        (self.vertices.len() * Vertex::SIZE + self.indices.len() * 4) as u64
    }

    /// Axis-aligned bounds of the positions `(min, max)`; `None` without
    /// vertices.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        let first = self.vertices.first()?.position;
        Some(
            self.vertices
                .iter()
                .fold((first, first), |(mut lo, mut hi), v| {
                    for k in 0..3 {
                        lo[k] = lo[k].min(v.position[k]);
                        hi[k] = hi[k].max(v.position[k]);
                    }
                    (lo, hi)
                }),
        )
    }
}

/// A 2D RGBA8 texture with its full mip chain.
#[derive(Clone, PartialEq)]
pub struct TextureData {
    /// Name, for statistics and allocation names.
    pub name: String,
    /// Width of level 0 in texels.
    pub width: u32,
    /// Height of level 0 in texels.
    pub height: u32,
    /// `R8G8B8A8_SRGB` (colour) or `R8G8B8A8_UNORM` (data).
    pub format: vk::Format,
    /// Every level from 0 (full size) down to 1x1, each tightly packed
    /// (row pitch = width * 4); see [`mip_chain`].
    pub mips: Vec<Vec<u8>>,
}

impl fmt::Debug for TextureData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextureData")
            .field("name", &self.name)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .field("mip_levels", &self.mips.len())
            .finish()
    }
}

impl TextureData {
    /// Number of mip levels.
    pub fn mip_levels(&self) -> u32 {
        self.mips.len() as u32
    }

    /// Size of mip `level`: each side halved per level, rounded down, at
    /// least 1.
    pub fn mip_extent(&self, level: u32) -> (u32, u32) {
        mip_extent(self.width, self.height, level)
    }

    /// Bytes over all levels.
    pub fn byte_size(&self) -> u64 {
        self.mips.iter().map(|m| m.len() as u64).sum()
    }

    /// Fills `out` with bytes `[at, at + out.len())` of the levels laid end
    /// to end (level 0 first, each tightly packed: the layout image uploads
    /// take), as a writer that fills staging memory in place. Bytes past the
    /// last level are left as they are.
    pub fn copy_levels_into(&self, mut at: usize, mut out: &mut [u8]) {
        for level in &self.mips {
            if out.is_empty() {
                return;
            }
            if at >= level.len() {
                at -= level.len();
                continue;
            }
            let n = (level.len() - at).min(out.len());
            let (head, rest) = out.split_at_mut(n);
            head.copy_from_slice(&level[at..at + n]);
            out = rest;
            at = 0;
        }
    }
}

/// One instance of a mesh with a texture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// Index into [`Scene::meshes`].
    pub mesh: usize,
    /// Index into [`Scene::textures`].
    pub texture: usize,
    /// Model matrix (object to world), column-major.
    pub transform: [[f32; 4]; 4],
}

/// Meshes, textures and the draws that place them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scene {
    /// Meshes.
    pub meshes: Vec<MeshData>,
    /// Textures.
    pub textures: Vec<TextureData>,
    /// Draws: every draw's `mesh` and `texture` index is in range.
    pub draws: Vec<Draw>,
}

impl Scene {
    /// Loads a glTF 2.0 file (`.gltf` with external or embedded buffers and
    /// images, or `.glb`): every triangle primitive becomes a mesh (shared
    /// by primitives that use the same accessors), every image used by a
    /// texture becomes an sRGB texture with a CPU-built mip chain (shared by
    /// images stored in the same buffer view, file or data URI: each is
    /// decoded once), every node with a mesh of the default scene becomes
    /// draws, one per primitive.
    ///
    /// Details: missing normals become flat normals (the glTF rule), missing
    /// uvs zeros, missing indices `0..n`. The base colour texture of a
    /// primitive's material is its texture; a material without one gets a
    /// 4x4 texture of its base colour factor. Other material properties are
    /// ignored. When no node places a mesh, every mesh is drawn once at the
    /// origin.
    ///
    /// Loads with [`LoadOptions::default`]: at most 2 GiB of decoded data,
    /// files only from the glTF file's folder. See [`Scene::load_gltf_with`].
    ///
    /// # Errors
    ///
    /// A [`DemoError`] naming the file and the problem: missing file, not
    /// glTF, invalid glTF or GLB container, missing buffer or image file, a
    /// URI outside the folder, a file that is not a regular file, more data
    /// than the decoding budget, sparse accessors, unsupported required
    /// extensions (Draco, KTX2/Basis, meshopt, quantization), non-triangle
    /// primitives, bad accessors, undecodable images, no meshes. Bad input
    /// never panics.
    pub fn load_gltf(path: impl AsRef<Path>) -> Result<Scene, DemoError> {
        Self::load_gltf_with(path, &LoadOptions::default())
    }

    /// [`Scene::load_gltf`] with explicit [`LoadOptions`]: a different
    /// decoding budget, or URIs allowed outside the asset's folder.
    ///
    /// # Errors
    ///
    /// As [`Scene::load_gltf`].
    pub fn load_gltf_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Scene, DemoError> {
        crate::gltf_load::load(path.as_ref(), options)
    }

    /// Bytes of vertex data over all meshes.
    pub fn vertex_bytes(&self) -> u64 {
        self.meshes
            .iter()
            .map(|m| (m.vertices.len() * Vertex::SIZE) as u64)
            .sum()
    }

    /// Bytes of index data over all meshes.
    pub fn index_bytes(&self) -> u64 {
        self.meshes
            .iter()
            .map(|m| (m.indices.len() * 4) as u64)
            .sum()
    }

    /// Bytes of texture data over all textures and mip levels.
    pub fn texture_bytes(&self) -> u64 {
        self.textures.iter().map(TextureData::byte_size).sum()
    }

    /// Everything there is to upload, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.vertex_bytes() + self.index_bytes() + self.texture_bytes()
    }

    /// Triangles a frame of this scene submits: each draw's mesh's index
    /// count / 3, summed (a draw naming no mesh counts none).
    pub fn drawn_triangles(&self) -> u64 {
        self.draws
            .iter()
            .filter_map(|d| self.meshes.get(d.mesh))
            .map(|m| m.indices.len() as u64 / 3)
            .fold(0, u64::saturating_add)
    }

    /// About how many fragments a `width` x `height` frame through
    /// `view_proj` rasterizes: the screen area of every drawn triangle,
    /// overdraw included (no depth test, no culling: the renderer culls
    /// nothing), the cost a software rasterizer such as lavapipe pays.
    ///
    /// A triangle entirely off screen, behind the camera, or beyond the far
    /// plane counts 0; one that crosses the camera's plane counts the whole
    /// frame; the others their area in pixels, at most the frame. The sum
    /// stops growing once it passes `stop_at`, which bounds the time taken
    /// (one pass over the vertices and indices of each draw's mesh, up to
    /// that point). Meant as a guard before drawing: a file of millions of
    /// triangles that each fill the screen costs hours on a CPU rasterizer.
    pub fn estimated_fragments(
        &self,
        view_proj: &[[f32; 4]; 4],
        width: u32,
        height: u32,
        stop_at: u64,
    ) -> u64 {
        let frame = f64::from(width) * f64::from(height);
        let limit = stop_at as f64;
        let mut total = 0f64;
        let mut clip: Vec<[f32; 4]> = Vec::new();
        for draw in &self.draws {
            let Some(mesh) = self.meshes.get(draw.mesh) else {
                continue;
            };
            let mvp = math::mul(view_proj, &draw.transform);
            clip.clear();
            clip.extend(mesh.vertices.iter().map(|v| {
                let p = v.position;
                let mut c = [0f32; 4];
                for (row, out) in c.iter_mut().enumerate() {
                    *out =
                        mvp[0][row] * p[0] + mvp[1][row] * p[1] + mvp[2][row] * p[2] + mvp[3][row];
                }
                c
            }));
            for tri in mesh.indices.chunks_exact(3) {
                let corner = |k: usize| clip.get(tri[k] as usize).copied();
                let (Some(a), Some(b), Some(c)) = (corner(0), corner(1), corner(2)) else {
                    continue;
                };
                total += triangle_fragments(&[a, b, c], frame);
                if total > limit {
                    return stop_at.saturating_add(1).max(total as u64);
                }
            }
        }
        total as u64
    }

    /// A view-projection matrix (Vulkan clip space) from which every draw is
    /// in sight: the camera looks at the centre of the draws' bounds from
    /// above and in front (+Z, +Y), just far enough that every corner of
    /// every draw's bounding box is in the picture. `aspect` is width /
    /// height.
    pub fn view_proj(&self, aspect: f32) -> [[f32; 4]; 4] {
        let aspect = if aspect.is_finite() && aspect > 0.0 {
            aspect
        } else {
            1.0
        };
        // World-space corners of every draw's mesh bounds.
        let bounds: Vec<Option<([f32; 3], [f32; 3])>> =
            self.meshes.iter().map(MeshData::bounds).collect();
        let mut points = Vec::with_capacity(self.draws.len() * 8);
        for draw in &self.draws {
            let Some(Some((lo, hi))) = bounds.get(draw.mesh) else {
                continue;
            };
            for corner in 0..8 {
                let p = [
                    if corner & 1 == 0 { lo[0] } else { hi[0] },
                    if corner & 2 == 0 { lo[1] } else { hi[1] },
                    if corner & 4 == 0 { lo[2] } else { hi[2] },
                ];
                let w = math::transform_point(&draw.transform, p);
                if w.iter().all(|c| c.is_finite()) {
                    points.push(w);
                }
            }
        }
        let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
        for p in &points {
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let center = if points.is_empty() {
            [0.0; 3]
        } else {
            math::scale(math::add(lo, hi), 0.5)
        };

        // Camera basis: looking at the centre from above and in front.
        let fov_y = 45f32.to_radians();
        let tan_y = (fov_y * 0.5).tan();
        let tan_x = tan_y * aspect;
        let back = math::normalize_or([0.0, 0.62, 1.0], [0.0, 0.0, 1.0]);
        let right = math::normalize_or(math::cross([0.0, 1.0, 0.0], back), [1.0, 0.0, 0.0]);
        let up = math::cross(back, right);
        // The distance at which every corner is inside both fields of view:
        // a point at (x, y) across and z towards the camera needs
        // distance >= z + max(|x| / tan_x, |y| / tan_y).
        let (mut distance, mut z_min, mut z_max) = (1e-3f32, 0.0f32, 0.0f32);
        for p in &points {
            let q = math::sub(*p, center);
            let (x, y, z) = (math::dot(q, right), math::dot(q, up), math::dot(q, back));
            distance = distance.max(z + (x.abs() / tan_x).max(y.abs() / tan_y));
            (z_min, z_max) = (z_min.min(z), z_max.max(z));
        }
        let distance = if points.is_empty() {
            3.0
        } else {
            distance * 1.05
        };
        let eye = math::add(center, math::scale(back, distance));
        let near = ((distance - z_max) * 0.9).max(distance * 1e-3);
        let far = (distance - z_min) * 1.1 + near;
        let view = math::look_at(eye, center, [0.0, 1.0, 0.0]);
        math::mul(&math::perspective(fov_y, aspect, near, far), &view)
    }

    /// The built-in scene, generated procedurally (no download) and
    /// deterministically: the same `scale` gives the same bytes.
    ///
    /// At `scale` 1.0 (267 MB in all, measured): six meshes (a 768x768
    /// terrain grid, a UV sphere, a torus, a torus knot, a subdivided cube, a
    /// capped cylinder: 28 MB of vertices, 21 MB of indices) and fifteen
    /// sRGB textures with full mip chains (eight 2048², six 1024², one
    /// 1366x768 that is neither square nor a power of two: 218 MB); 21
    /// draws: the terrain and a 5x4 grid of objects above it.
    ///
    /// `scale` multiplies the byte count roughly linearly: tessellation and
    /// texture sides shrink with `sqrt(scale)` (square texture sides rounded
    /// down to a power of two). At 0.05 the scene is 6.1 MB, small enough
    /// for a CPU Vulkan driver. `scale` is clamped to `0.0001..=4.0` (NaN
    /// counts as 1.0); the draws are the same at every scale.
    ///
    /// Texture patterns are periodic and computed on one tile that is then
    /// repeated, but every texel carries an invisible per-row/per-column
    /// signature in its low bits, so no two regions of a texture are equal
    /// and a misplaced copy fails a byte comparison. Generation runs on all
    /// cores (one job per texture and mesh); the result does not depend on
    /// the number of threads. It takes about 0.8 s at scale 1.0 in a release
    /// build, 5 s in a debug build (two cores).
    pub fn generate_default(scale: f32) -> Scene {
        crate::scene::procedural::generate(scale)
    }
}

/// Pixels a triangle with clip-space corners `v` covers in a frame of
/// `frame` pixels (see [`Scene::estimated_fragments`]).
fn triangle_fragments(v: &[[f32; 4]; 3], frame: f64) -> f64 {
    if v.iter().all(|c| c[3] <= 0.0) {
        return 0.0; // behind the camera
    }
    if v.iter()
        .any(|c| c[3] <= 1e-6 || !c.iter().all(|x| x.is_finite()))
    {
        return frame; // crosses the camera's plane: it may fill the frame
    }
    let ndc = v.map(|c| {
        let w = f64::from(c[3]);
        [
            f64::from(c[0]) / w,
            f64::from(c[1]) / w,
            f64::from(c[2]) / w,
        ]
    });
    let outside = |k: usize, beyond: fn(f64) -> bool| ndc.iter().all(|p| beyond(p[k]));
    if outside(0, |x| x < -1.0)
        || outside(0, |x| x > 1.0)
        || outside(1, |y| y < -1.0)
        || outside(1, |y| y > 1.0)
        || outside(2, |z| z < 0.0)
        || outside(2, |z| z > 1.0)
    {
        return 0.0;
    }
    let (a, b, c) = (ndc[0], ndc[1], ndc[2]);
    let twice_area = ((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])).abs();
    // NDC spans 2 x 2 over the frame.
    (twice_area / 8.0 * frame).min(frame)
}

/// Size of mip `level` of a `width` x `height` image: each side halved per
/// level, rounded down, at least 1 (Vulkan's rule).
pub fn mip_extent(width: u32, height: u32, level: u32) -> (u32, u32) {
    let shift = level.min(31);
    ((width >> shift).max(1), (height >> shift).max(1))
}

/// Mip levels of a full chain for `width` x `height`:
/// `floor(log2(max(width, height))) + 1`.
pub fn mip_level_count(width: u32, height: u32) -> u32 {
    32 - width.max(height).max(1).leading_zeros()
}

/// The full mip chain of a tightly packed RGBA8 image, level 0 (a copy of
/// `rgba`) first, down to 1x1.
///
/// Each level halves each side (rounded down, at least 1) with a box filter:
/// a texel of level n+1 averages (rounding to nearest) the texels of level n
/// that its footprint touches: exactly 2x2 for even sides; for an odd side
/// the footprints of neighbouring texels share the middle row or column, so
/// no source texel is dropped. Channels are averaged as stored (in sRGB
/// space for sRGB textures; good enough for a demo, not for a renderer).
///
/// # Panics
///
/// If `rgba.len() != width * height * 4` or a side is zero.
pub fn mip_chain(width: u32, height: u32, rgba: &[u8]) -> Vec<Vec<u8>> {
    mip_chain_owned(width, height, rgba.to_vec())
}

/// [`mip_chain`] without copying level 0.
pub(crate) fn mip_chain_owned(width: u32, height: u32, level0: Vec<u8>) -> Vec<Vec<u8>> {
    assert!(
        width > 0 && height > 0,
        "mip_chain: zero-sized image {width}x{height}"
    );
    assert_eq!(
        level0.len() as u64,
        u64::from(width) * u64::from(height) * 4,
        "mip_chain: {} bytes is not a {width}x{height} RGBA8 image",
        level0.len()
    );
    let levels = mip_level_count(width, height);
    let mut chain = Vec::with_capacity(levels as usize);
    chain.push(level0);
    let (mut w, mut h) = (width, height);
    for _ in 1..levels {
        let (nw, nh) = ((w / 2).max(1), (h / 2).max(1));
        let next = downsample(
            chain.last().expect("level 0 pushed"),
            w as usize,
            h as usize,
            nw as usize,
            nh as usize,
        );
        chain.push(next);
        (w, h) = (nw, nh);
    }
    chain
}

/// Source range `[start, end)` of destination texel `i` when `src` texels
/// shrink to `dst`.
fn footprint(i: usize, src: usize, dst: usize) -> (usize, usize) {
    (i * src / dst, ((i + 1) * src).div_ceil(dst))
}

fn downsample(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    let mut out = vec![0u8; dw * dh * 4];
    if sw == dw * 2 && sh == dh * 2 {
        // The common case, kept tight: it runs over ~100 MB at scale 1.0.
        for (y, row) in out.chunks_exact_mut(dw * 4).enumerate() {
            let r0 = &src[(2 * y) * sw * 4..(2 * y + 1) * sw * 4];
            let r1 = &src[(2 * y + 1) * sw * 4..(2 * y + 2) * sw * 4];
            for (x, texel) in row.chunks_exact_mut(4).enumerate() {
                let i = x * 8;
                for c in 0..4 {
                    let sum = u32::from(r0[i + c])
                        + u32::from(r0[i + 4 + c])
                        + u32::from(r1[i + c])
                        + u32::from(r1[i + 4 + c]);
                    texel[c] = ((sum + 2) / 4) as u8;
                }
            }
        }
        return out;
    }
    for y in 0..dh {
        let (y0, y1) = footprint(y, sh, dh);
        for x in 0..dw {
            let (x0, x1) = footprint(x, sw, dw);
            let mut sum = [0u32; 4];
            for sy in y0..y1 {
                for sx in x0..x1 {
                    let i = (sy * sw + sx) * 4;
                    for c in 0..4 {
                        sum[c] += u32::from(src[i + c]);
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            let o = (y * dw + x) * 4;
            for c in 0..4 {
                out[o + c] = ((sum[c] + n / 2) / n) as u8;
            }
        }
    }
    out
}

mod procedural;
mod test_assets;

pub use test_assets::{write_test_glb, write_test_gltf};

pub(crate) fn flat_normal(a: Vec3, b: Vec3, c: Vec3) -> Vec3 {
    math::normalize_or(math::cross(math::sub(b, a), math::sub(c, a)), [0.0; 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quad_scene(z: f32, draws: usize) -> Scene {
        let v = |x: f32, y: f32| Vertex {
            position: [x, y, z],
            ..Vertex::default()
        };
        Scene {
            meshes: vec![MeshData {
                name: "quad".to_owned(),
                vertices: vec![v(-1.0, -1.0), v(1.0, -1.0), v(1.0, 1.0), v(-1.0, 1.0)],
                indices: vec![0, 1, 2, 0, 2, 3],
            }],
            textures: Vec::new(),
            draws: vec![
                Draw {
                    mesh: 0,
                    texture: 0,
                    transform: math::IDENTITY,
                };
                draws
            ],
        }
    }

    #[test]
    fn copy_levels_into_reads_the_levels_end_to_end() {
        let t = TextureData {
            name: "t".into(),
            width: 2,
            height: 2,
            format: vk::Format::R8G8B8A8_UNORM,
            mips: vec![(0..16).collect(), (16..20).collect()],
        };
        let mut out = [0u8; 7];
        t.copy_levels_into(13, &mut out[..6]);
        assert_eq!(out, [13, 14, 15, 16, 17, 18, 0]);
        let mut all = [0u8; 20];
        t.copy_levels_into(0, &mut all);
        assert_eq!(all.to_vec(), (0..20).collect::<Vec<u8>>());
        let mut past = [9u8; 3];
        t.copy_levels_into(19, &mut past);
        assert_eq!(past, [19, 9, 9]);
    }

    #[test]
    fn fragments_of_a_full_screen_quad() {
        // Identity view-projection: the quad is exactly the frame.
        let scene = quad_scene(0.5, 3);
        assert_eq!(scene.drawn_triangles(), 6);
        assert_eq!(
            scene.estimated_fragments(&math::IDENTITY, 100, 50, u64::MAX),
            3 * 5000
        );
        // Stops once past the limit.
        let est = scene.estimated_fragments(&math::IDENTITY, 100, 50, 6000);
        assert!((6001..=7500).contains(&est), "{est}");
        // Beyond the far plane, or moved off screen: nothing.
        assert_eq!(
            quad_scene(1.5, 1).estimated_fragments(&math::IDENTITY, 100, 50, u64::MAX),
            0
        );
        let mut off = quad_scene(0.5, 1);
        off.draws[0].transform = math::translation([3.0, 0.0, 0.0]);
        assert_eq!(
            off.estimated_fragments(&math::IDENTITY, 100, 50, u64::MAX),
            0
        );
        // Behind the camera (w < 0 everywhere) or crossing it.
        let mut flip = math::IDENTITY;
        flip[3][3] = -1.0;
        assert_eq!(
            quad_scene(0.5, 1).estimated_fragments(&flip, 100, 50, u64::MAX),
            0
        );
        let mut crossing = quad_scene(0.5, 1);
        crossing.meshes[0].vertices[0].position = [-1.0, -1.0, 0.5];
        let mut w_from_x = math::IDENTITY;
        w_from_x[0][3] = 1.0; // w = x + 1: zero at the first corner
        assert_eq!(
            crossing.estimated_fragments(&w_from_x, 100, 50, u64::MAX),
            2 * 5000
        );
    }
}
