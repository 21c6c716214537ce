//! Small valid glTF files written by hand (serde_json), for tests and CI:
//! no asset is checked in or downloaded.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use serde_json::json;

/// Side of the test texture (a red and white checker).
const TEXTURE_SIDE: u32 = 8;

/// Binary data of the test asset and the JSON for it.
struct TestAsset {
    bin: Vec<u8>,
    png: Vec<u8>,
}

/// Vertex and index data: a unit cube (24 vertices with normals and uvs,
/// 36 `u16` indices), then a triangle with positions only.
fn test_asset() -> TestAsset {
    let mut positions = Vec::new();
    let mut normals = Vec::new();
    let mut uvs = Vec::new();
    let mut indices: Vec<u16> = Vec::new();
    // (normal, u axis, v axis) with u x v = normal: counter-clockwise outside.
    let faces: [([f32; 3], [f32; 3], [f32; 3]); 6] = [
        ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]),
        ([-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]),
        ([0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
        ([0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
        ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        ([0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    ];
    for (n, u, v) in faces {
        let base = (positions.len() / 3) as u16;
        for (s, t) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
            for k in 0..3 {
                positions.push(0.5 * n[k] + (s - 0.5) * u[k] + (t - 0.5) * v[k]);
            }
            normals.extend_from_slice(&n);
            uvs.extend_from_slice(&[s, 1.0 - t]);
        }
        indices.extend_from_slice(&[base, base + 1, base + 2, base + 2, base + 1, base + 3]);
    }
    let triangle: [f32; 9] = [-0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.8, 0.0];

    let mut bin = Vec::new();
    for f in positions.iter().chain(&normals).chain(&uvs) {
        bin.extend_from_slice(&f.to_le_bytes());
    }
    for i in &indices {
        bin.extend_from_slice(&i.to_le_bytes());
    }
    for f in &triangle {
        bin.extend_from_slice(&f.to_le_bytes());
    }
    debug_assert_eq!(bin.len(), 876);

    let mut rgba = Vec::new();
    for y in 0..TEXTURE_SIDE {
        for x in 0..TEXTURE_SIDE {
            rgba.extend_from_slice(if (x / 2 + y / 2) % 2 == 0 {
                &[220, 40, 30, 255]
            } else {
                &[240, 240, 230, 255]
            });
        }
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            &rgba,
            TEXTURE_SIDE,
            TEXTURE_SIDE,
            image::ExtendedColorType::Rgba8,
        )
        .expect("encoding a PNG in memory cannot fail");
    TestAsset { bin, png }
}

/// The glTF JSON; `images` and `buffers` differ between .gltf and .glb.
fn document(
    images: serde_json::Value,
    buffers: serde_json::Value,
    extra_views: &[serde_json::Value],
) -> serde_json::Value {
    let mut views = vec![
        json!({ "buffer": 0, "byteOffset": 0, "byteLength": 288, "target": 34962 }),
        json!({ "buffer": 0, "byteOffset": 288, "byteLength": 288, "target": 34962 }),
        json!({ "buffer": 0, "byteOffset": 576, "byteLength": 192, "target": 34962 }),
        json!({ "buffer": 0, "byteOffset": 768, "byteLength": 72, "target": 34963 }),
        json!({ "buffer": 0, "byteOffset": 840, "byteLength": 36, "target": 34962 }),
    ];
    views.extend_from_slice(extra_views);
    // The cube node is turned 30 degrees about Y; the small cube is its child.
    let half = 15f32.to_radians();
    json!({
        "asset": { "version": "2.0", "generator": "mem-demo write_test_gltf" },
        "scene": 0,
        "scenes": [ { "name": "test", "nodes": [0, 2] } ],
        "nodes": [
            { "name": "cube", "mesh": 0, "rotation": [0.0, half.sin(), 0.0, half.cos()], "children": [1] },
            { "name": "small cube", "mesh": 0, "translation": [1.2, 0.0, 0.0], "scale": [0.5, 0.5, 0.5] },
            { "name": "triangle", "mesh": 1, "translation": [0.0, 0.8, 0.0] }
        ],
        "meshes": [
            { "name": "cube", "primitives": [ {
                "attributes": { "POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2 },
                "indices": 3, "material": 0, "mode": 4
            } ] },
            { "name": "triangle", "primitives": [ { "attributes": { "POSITION": 4 } } ] }
        ],
        "materials": [ { "name": "checker", "pbrMetallicRoughness": { "baseColorTexture": { "index": 0 } } } ],
        "textures": [ { "source": 0, "sampler": 0 } ],
        "samplers": [ { "magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497 } ],
        "images": images,
        "buffers": buffers,
        "bufferViews": views,
        "accessors": [
            { "bufferView": 0, "componentType": 5126, "count": 24, "type": "VEC3",
              "min": [-0.5, -0.5, -0.5], "max": [0.5, 0.5, 0.5] },
            { "bufferView": 1, "componentType": 5126, "count": 24, "type": "VEC3" },
            { "bufferView": 2, "componentType": 5126, "count": 24, "type": "VEC2" },
            { "bufferView": 3, "componentType": 5123, "count": 36, "type": "SCALAR" },
            { "bufferView": 4, "componentType": 5126, "count": 3, "type": "VEC3",
              "min": [-0.5, 0.0, 0.0], "max": [0.5, 0.8, 0.0] }
        ]
    })
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Writes a small valid glTF 2.0 asset into `dir` (created if needed) and
/// returns the path of its `.gltf`: `test.gltf` (JSON), `test.bin` (vertex
/// and index data), `test.png` (an 8x8 red and white checker).
///
/// What it holds, for tests to check against: two meshes (a textured cube:
/// 24 vertices, 36 `u16` indices, normals and uvs; a triangle with positions
/// only, so the loader generates normals, uvs and indices), one image, one
/// material (the checker) and three nodes (the cube turned 30 degrees, a
/// half-size child cube, the triangle without material), hence three draws.
///
/// # Panics
///
/// If a file cannot be written (a test helper).
pub fn write_test_gltf(dir: impl AsRef<Path>) -> PathBuf {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let asset = test_asset();
    write(&dir.join("test.bin"), &asset.bin);
    write(&dir.join("test.png"), &asset.png);
    let doc = document(
        json!([ { "name": "checker", "uri": "test.png", "mimeType": "image/png" } ]),
        json!([ { "uri": "test.bin", "byteLength": asset.bin.len() } ]),
        &[],
    );
    let path = dir.join("test.gltf");
    write(
        &path,
        serde_json::to_string_pretty(&doc)
            .expect("JSON serializes")
            .as_bytes(),
    );
    path
}

/// Writes the asset of [`write_test_gltf`] as one binary glTF file,
/// `dir/test.glb`, the PNG embedded through a buffer view, and returns its
/// path.
///
/// # Panics
///
/// If the file cannot be written (a test helper).
pub fn write_test_glb(dir: impl AsRef<Path>) -> PathBuf {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let asset = test_asset();
    let mut bin = asset.bin.clone();
    let png_offset = bin.len();
    bin.extend_from_slice(&asset.png);
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let doc = document(
        json!([ { "name": "checker", "bufferView": 5, "mimeType": "image/png" } ]),
        json!([ { "byteLength": bin.len() } ]),
        &[json!({ "buffer": 0, "byteOffset": png_offset, "byteLength": asset.png.len() })],
    );
    let mut json_chunk = serde_json::to_vec(&doc).expect("JSON serializes");
    while !json_chunk.len().is_multiple_of(4) {
        json_chunk.push(b' ');
    }
    // GLB: 12-byte header, then JSON and BIN chunks (length, type, data).
    let total = 12 + 8 + json_chunk.len() + 8 + bin.len();
    let mut glb = Vec::with_capacity(total);
    glb.extend_from_slice(b"glTF");
    glb.extend_from_slice(&2u32.to_le_bytes());
    glb.extend_from_slice(&(total as u32).to_le_bytes());
    glb.extend_from_slice(&(json_chunk.len() as u32).to_le_bytes());
    glb.extend_from_slice(b"JSON");
    glb.extend_from_slice(&json_chunk);
    glb.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    glb.extend_from_slice(b"BIN\0");
    glb.extend_from_slice(&bin);
    let path = dir.join("test.glb");
    write(&path, &glb);
    path
}
