//! mem-demo: the code behind gpumem's examples (`upload_mesh`,
//! `memory_report`), kept in a library so that it is tested on its own.
//!
//! - [`scene`]: a CPU-side scene (meshes, textures with full mip chains,
//!   draws), either generated procedurally ([`Scene::generate_default`]) or
//!   loaded from glTF 2.0 ([`Scene::load_gltf`]).
//! - [`render`]: one headless frame of a scene whose meshes and textures are
//!   already on the GPU, read back as RGBA8 pixels ([`render::render_frame`]),
//!   and [`save_png`].
//! - [`memory_map`]: a picture of every memory block of a
//!   [`mem_core::Allocator`] ([`memory_map::render_block_map`]).
//!
//! # Quick start
//!
//! ```
//! use mem_demo::Scene;
//!
//! let scene = Scene::generate_default(0.01);
//! assert!(!scene.meshes.is_empty() && !scene.textures.is_empty());
//! println!("{} bytes to upload", scene.total_bytes());
//! let view_proj = scene.view_proj(16.0 / 9.0); // a camera that sees every draw
//! # let _ = view_proj;
//! ```
//!
//! This crate is not published: it serves the examples and the tests.

pub mod memory_map;
pub mod render;
pub mod scene;

mod error;
mod gltf_load;
mod math;

pub use error::{DemoError, GlbProblem, GltfItem, RenderError};
pub use scene::{
    mip_chain, write_test_glb, write_test_gltf, Draw, LoadOptions, MeshData, Scene, TextureData,
    Vertex,
};

/// Writes tightly packed RGBA8 pixels as a PNG file.
///
/// # Errors
///
/// [`DemoError::InvalidPixels`] when `rgba` is not `width * height * 4`
/// bytes; [`DemoError::WritePng`] when the file cannot be written.
pub fn save_png(
    path: impl AsRef<std::path::Path>,
    width: u32,
    height: u32,
    rgba: &[u8],
) -> Result<(), DemoError> {
    let path = path.as_ref();
    let expected = u64::from(width) * u64::from(height) * 4;
    if rgba.len() as u64 != expected || expected == 0 {
        return Err(DemoError::InvalidPixels {
            width,
            height,
            len: rgba.len(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DemoError::WritePng {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    image::save_buffer_with_format(
        path,
        rgba,
        width,
        height,
        image::ExtendedColorType::Rgba8,
        image::ImageFormat::Png,
    )
    .map_err(|e| DemoError::WritePng {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
