//! Error types of mem-demo: [`DemoError`] for assets and files,
//! [`RenderError`] for the headless frame.

use std::path::PathBuf;

use ash::vk;

/// Why a scene could not be loaded or a picture written. Every variant that
/// concerns a file names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The file does not exist.
    #[error("{path}: file not found", path = .path.display())]
    MissingFile {
        /// The file asked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("{path}: cannot read: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is neither glTF 2.0 JSON nor binary glTF (GLB).
    #[error("{path}: not a glTF 2.0 file: {reason}", path = .path.display())]
    NotGltf {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The file is glTF but breaks the specification (an index out of
    /// range, a missing required field, ...).
    #[error("{path}: invalid glTF: {reason}", path = .path.display())]
    InvalidGltf {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the JSON path of the offending value.
        reason: String,
    },
    /// The glTF requires an extension this loader does not implement
    /// (Draco mesh compression, KTX2/Basis textures, mesh quantization, ...).
    #[error(
        "{path}: requires glTF extension {extension}, which is not supported{hint}",
        path = .path.display(),
        hint = extension_hint(extension)
    )]
    UnsupportedExtension {
        /// The file.
        path: PathBuf,
        /// The extension's name, e.g. `KHR_draco_mesh_compression`.
        extension: String,
    },
    /// A buffer refers to an external file that does not exist.
    #[error("{path}: buffer {index} refers to {file}, which does not exist", path = .path.display(), file = .file.display())]
    MissingBuffer {
        /// The glTF file.
        path: PathBuf,
        /// Index of the buffer.
        index: usize,
        /// The missing file, resolved against the glTF's folder.
        file: PathBuf,
    },
    /// A buffer's data cannot be used (unreadable, shorter than its
    /// `byteLength`, bad data URI, missing GLB `BIN` chunk).
    #[error("{path}: buffer {index}: {reason}", path = .path.display())]
    BadBuffer {
        /// The glTF file.
        path: PathBuf,
        /// Index of the buffer.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// An image refers to an external file that does not exist.
    #[error("{path}: image {index} refers to {file}, which does not exist", path = .path.display(), file = .file.display())]
    MissingImage {
        /// The glTF file.
        path: PathBuf,
        /// Index of the image.
        index: usize,
        /// The missing file, resolved against the glTF's folder.
        file: PathBuf,
    },
    /// An image cannot be decoded (not PNG or JPEG, corrupt, unreadable).
    #[error("{path}: image {index}: {reason}", path = .path.display())]
    BadImage {
        /// The glTF file.
        path: PathBuf,
        /// Index of the image.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// An accessor uses sparse storage, which this loader does not support.
    #[error("{path}: accessor {accessor} uses sparse storage, which is not supported", path = .path.display())]
    SparseAccessor {
        /// The glTF file.
        path: PathBuf,
        /// Index of the accessor.
        accessor: usize,
    },
    /// An accessor's data cannot be used as the vertex attribute or index
    /// list it is bound to (wrong type, out of its buffer, index past the
    /// vertex count, ...).
    #[error("{path}: accessor {accessor} ({role}): {reason}", path = .path.display())]
    BadAccessor {
        /// The glTF file.
        path: PathBuf,
        /// Index of the accessor.
        accessor: usize,
        /// What it is used for: `POSITION`, `NORMAL`, `TEXCOORD_0`, `indices`.
        role: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A mesh primitive cannot be loaded (no positions, a topology other
    /// than triangles, ...).
    #[error("{path}: mesh {mesh} primitive {primitive}: {reason}", path = .path.display())]
    BadPrimitive {
        /// The glTF file.
        path: PathBuf,
        /// Index of the mesh.
        mesh: usize,
        /// Index of the primitive in the mesh.
        primitive: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file has no mesh to draw.
    #[error("{path}: contains no meshes", path = .path.display())]
    NoMeshes {
        /// The glTF file.
        path: PathBuf,
    },
    /// A file the loader was to read is not a regular file (a directory, a
    /// FIFO, a device such as `/dev/zero`, a socket): such files can block
    /// forever or never end, so they are refused before a byte is read.
    #[error("{path}: {item} is read from {file}, which is {kind}, not a regular file", path = .path.display(), file = .file.display())]
    NotRegularFile {
        /// The glTF file.
        path: PathBuf,
        /// What was to be read from it.
        item: GltfItem,
        /// The file, as resolved.
        file: PathBuf,
        /// What it is instead: "a directory", "a FIFO", "a character
        /// device", "a block device", "a socket" or "not a file".
        kind: &'static str,
    },
    /// A buffer or image URI names a file outside the glTF file's folder
    /// (`../`, an absolute path, a `file:` URI, a symbolic link pointing
    /// out), and [`crate::scene::LoadOptions::allow_outside_uris`] is off.
    #[error(
        "{path}: {item} refers to {uri:?}, which is outside the asset's folder {folder} (LoadOptions::allow_outside_uris permits it)",
        path = .path.display(),
        folder = .folder.display()
    )]
    UriOutsideFolder {
        /// The glTF file.
        path: PathBuf,
        /// The buffer or image.
        item: GltfItem,
        /// The URI as written in the file.
        uri: String,
        /// The folder URIs must stay in (canonical).
        folder: PathBuf,
    },
    /// Loading would hold more decoded bytes than
    /// [`crate::scene::LoadOptions::max_decoded_bytes`] allows. Checked
    /// before the bytes are read, decoded or expanded.
    #[error(
        "{path}: {item} needs {needed} more bytes, but {used} of the {limit}-byte decoding budget are in use (LoadOptions::max_decoded_bytes)",
        path = .path.display()
    )]
    OverBudget {
        /// The glTF file.
        path: PathBuf,
        /// What needed the bytes.
        item: GltfItem,
        /// Bytes it needed (held afterwards, or while decoding); a lower
        /// bound when the image decoder found the rest of the budget short
        /// before the image's size was known.
        needed: u64,
        /// Bytes held already.
        used: u64,
        /// The budget.
        limit: u64,
    },
    /// An image has neither `uri` nor `bufferView` (glTF requires one).
    #[error("{path}: image {index} has neither a uri nor a bufferView", path = .path.display())]
    ImageWithoutSource {
        /// The glTF file.
        path: PathBuf,
        /// Index of the image.
        index: usize,
    },
    /// An image is stored in a buffer view but has no `mimeType` (glTF
    /// requires it with `bufferView`).
    #[error("{path}: image {index} is stored in buffer view {view} but has no mimeType", path = .path.display())]
    ImageWithoutMimeType {
        /// The glTF file.
        path: PathBuf,
        /// Index of the image.
        index: usize,
        /// The buffer view it names.
        view: u64,
    },
    /// A binary glTF (GLB) container is malformed.
    #[error("{path}: bad GLB container: {problem}", path = .path.display())]
    BadGlb {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: GlbProblem,
    },
    /// A primitive has more vertices or indices than 32-bit indices can
    /// address (after flat normals are expanded, when NORMAL is absent).
    #[error("{path}: mesh {mesh} primitive {primitive}: {vertices} vertices and {indices} indices do not fit 32-bit indices", path = .path.display())]
    PrimitiveTooLarge {
        /// The glTF file.
        path: PathBuf,
        /// Index of the mesh.
        mesh: usize,
        /// Index of the primitive in the mesh.
        primitive: usize,
        /// Vertices it would have.
        vertices: u64,
        /// Indices it would have.
        indices: u64,
    },
    /// Pixels given to [`crate::save_png`] do not match the size.
    #[error("{len} bytes of pixels do not make a {width}x{height} RGBA8 image")]
    InvalidPixels {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// Bytes given.
        len: usize,
    },
    /// A PNG could not be written.
    #[error("cannot write {path}: {reason}", path = .path.display())]
    WritePng {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// The part of a glTF file an error or a charge against the decoding
/// budget concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GltfItem {
    /// The glTF or GLB file itself.
    File,
    /// `buffers[i]`.
    Buffer(usize),
    /// `images[i]`.
    Image(usize),
    /// `accessors[i]` (its decoded elements).
    Accessor(usize),
    /// `meshes[mesh].primitives[primitive]` (its vertices and indices).
    Primitive {
        /// Index of the mesh.
        mesh: usize,
        /// Index of the primitive in the mesh.
        primitive: usize,
    },
    /// `nodes[i]` (the draws it places).
    Node(usize),
}

impl std::fmt::Display for GltfItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GltfItem::File => write!(f, "the file"),
            GltfItem::Buffer(i) => write!(f, "buffer {i}"),
            GltfItem::Image(i) => write!(f, "image {i}"),
            GltfItem::Accessor(i) => write!(f, "accessor {i}"),
            GltfItem::Primitive { mesh, primitive } => {
                write!(f, "mesh {mesh} primitive {primitive}")
            }
            GltfItem::Node(i) => write!(f, "node {i}"),
        }
    }
}

/// What is wrong with a GLB container (see the loader's rules in
/// [`crate::Scene::load_gltf`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlbProblem {
    /// Shorter than the 12-byte header and one 8-byte chunk header.
    #[error("{len} bytes are too short for a GLB header and its JSON chunk")]
    Truncated {
        /// The file's length.
        len: u64,
    },
    /// A container version other than 2.
    #[error("container version {0}; only 2 is supported")]
    Version(u32),
    /// The header's length is not the file's length.
    #[error("the header says {header} bytes but the file has {file}")]
    LengthMismatch {
        /// The length in the header.
        header: u32,
        /// The file's length.
        file: u64,
    },
    /// A chunk runs past the end of the file, or fewer than 8 bytes follow
    /// the last chunk.
    #[error(
        "chunk {index} at byte {offset} ({length} bytes of data) runs past the end of the file"
    )]
    ChunkOutOfBounds {
        /// Index of the chunk (0 is the JSON chunk).
        index: usize,
        /// Byte offset of its header.
        offset: u64,
        /// Its declared data length (0 when the header itself is cut).
        length: u32,
    },
    /// The first chunk is not JSON.
    #[error("the first chunk has type {chunk_type:#010x}, not JSON")]
    FirstChunkNotJson {
        /// Its type, as the little-endian `u32` of its 4 bytes.
        chunk_type: u32,
    },
    /// A second JSON chunk.
    #[error("chunk {index} is a second JSON chunk")]
    SecondJsonChunk {
        /// Index of the chunk.
        index: usize,
    },
    /// A BIN chunk anywhere but right after the JSON chunk.
    #[error("chunk {index} is a BIN chunk; the only BIN chunk must be chunk 1")]
    MisplacedBinChunk {
        /// Index of the chunk.
        index: usize,
    },
}

fn extension_hint(extension: &str) -> &'static str {
    match extension {
        "KHR_draco_mesh_compression" => {
            " (Draco-compressed meshes need a Draco decoder; re-export without compression)"
        }
        "KHR_texture_basisu" => {
            " (KTX2/Basis Universal textures need a transcoder; re-export with PNG or JPEG images)"
        }
        "EXT_meshopt_compression" => " (meshopt-compressed buffers; re-export without compression)",
        "KHR_mesh_quantization" => {
            " (quantized vertex attributes; re-export with float attributes)"
        }
        "EXT_texture_webp" | "MSFT_texture_dds" => " (only PNG and JPEG images are decoded)",
        _ => "",
    }
}

/// Why the headless frame could not be rendered. Whatever the error, every
/// Vulkan object the renderer created has been destroyed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A Vulkan call failed.
    #[error("{call} failed: {result}")]
    Vulkan {
        /// The Vulkan command, e.g. `vkCreateGraphicsPipelines`.
        call: &'static str,
        /// Its result.
        result: vk::Result,
    },
    /// Device memory for an attachment or the readback buffer could not be
    /// allocated.
    #[error("cannot allocate memory for the {what}: {source}")]
    Alloc {
        /// What the memory was for.
        what: &'static str,
        /// The allocator's error.
        source: mem_core::AllocError,
    },
    /// Descriptor sets could not be allocated.
    #[error("cannot allocate descriptor sets: {0}")]
    Descriptor(gpu_descriptor::AllocationError),
    /// The output size is zero or beyond `maxImageDimension2D`.
    #[error("output size {width}x{height} is not supported (each side 1..={max})")]
    InvalidSize {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// The device's `maxImageDimension2D`.
        max: u32,
    },
    /// A draw names a mesh that was not given.
    #[error("draw {draw} uses mesh {mesh}, but {count} meshes were given")]
    MeshOutOfRange {
        /// Index of the draw.
        draw: usize,
        /// The mesh index it names.
        mesh: usize,
        /// Meshes given.
        count: usize,
    },
    /// A draw names a texture that was not given.
    #[error("draw {draw} uses texture {texture}, but {count} textures were given")]
    TextureOutOfRange {
        /// Index of the draw.
        draw: usize,
        /// The texture index it names.
        texture: usize,
        /// Textures given.
        count: usize,
    },
    /// A texture has zero mip levels.
    #[error("texture {index} has zero mip levels")]
    NoMipLevels {
        /// Index of the texture.
        index: usize,
    },
    /// The device supports none of D32_SFLOAT, D24_UNORM_S8_UINT, D16_UNORM
    /// as an optimally tiled depth attachment.
    #[error("no depth attachment format is supported")]
    NoDepthFormat,
    /// The GPU did not finish the frame in time.
    #[error("the frame did not finish within {seconds} s")]
    Timeout {
        /// The time waited.
        seconds: u64,
    },
}

impl RenderError {
    pub(crate) fn vk(call: &'static str) -> impl FnOnce(vk::Result) -> Self {
        move |result| RenderError::Vulkan { call, result }
    }
}
