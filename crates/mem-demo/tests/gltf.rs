//! glTF loading: the test asset loads as `.gltf` and `.glb`, and every kind
//! of bad input is a `DemoError` naming the file, never a panic.

use std::path::{Path, PathBuf};

use ash::vk;
use mem_demo::{write_test_glb, write_test_gltf, DemoError, Scene};
use serde_json::{json, Value};

/// A fresh folder for one test.
fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mem-demo-gltf")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the test asset into a fresh folder, lets `edit` change its JSON,
/// and loads it.
fn load_edited(
    name: &str,
    edit: impl FnOnce(&mut Value, &Path),
) -> (PathBuf, Result<Scene, DemoError>) {
    let path = write_test_gltf(dir(name));
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut doc, path.parent().unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let result = Scene::load_gltf(&path);
    (path, result)
}

/// The error, after checking that its message names the file.
fn error_of(path: &Path, result: Result<Scene, DemoError>) -> DemoError {
    let err = result.expect_err("bad input must be an error");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
    eprintln!("{msg}");
    err
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn test_gltf_loads_meshes_textures_and_draws() {
    let path = write_test_gltf(dir("good"));
    let scene = Scene::load_gltf(&path).expect("the test asset loads");

    assert_eq!(scene.meshes.len(), 2);
    let cube = &scene.meshes[0];
    assert_eq!(
        (cube.name.as_str(), cube.vertices.len(), cube.indices.len()),
        ("cube", 24, 36)
    );
    assert!(cube
        .vertices
        .iter()
        .all(|v| (v.normal.iter().map(|c| c * c).sum::<f32>() - 1.0).abs() < 1e-5));
    assert!(cube
        .vertices
        .iter()
        .all(|v| v.position.iter().all(|c| c.abs() == 0.5)));
    // The triangle had positions only: flat normal (+Z), zero uvs, 0..3.
    let tri = &scene.meshes[1];
    assert_eq!(
        (tri.vertices.len(), tri.indices.as_slice()),
        (3, &[0, 1, 2][..])
    );
    assert!(tri
        .vertices
        .iter()
        .all(|v| v.normal == [0.0, 0.0, 1.0] && v.uv == [0.0, 0.0]));

    assert_eq!(scene.textures.len(), 2);
    let checker = &scene.textures[0];
    assert_eq!(
        (
            checker.name.as_str(),
            checker.width,
            checker.height,
            checker.mips.len()
        ),
        ("checker", 8, 8, 4)
    );
    assert_eq!(checker.format, vk::Format::R8G8B8A8_SRGB);
    assert_eq!(&checker.mips[0][0..4], &[220, 40, 30, 255]);
    let white = &scene.textures[1];
    assert_eq!(
        (white.name.as_str(), white.width, white.mips.len()),
        ("default-white", 4, 3)
    );
    assert!(white.mips.iter().flatten().all(|&b| b == 255));

    assert_eq!(scene.draws.len(), 3);
    let (cube_draw, child, tri_draw) = (&scene.draws[0], &scene.draws[1], &scene.draws[2]);
    assert_eq!((cube_draw.mesh, cube_draw.texture), (0, 0));
    assert_eq!((child.mesh, child.texture), (0, 0));
    assert_eq!((tri_draw.mesh, tri_draw.texture), (1, 1));
    // Cube turned 30 degrees about +Y: its x axis goes to (cos 30, 0, -sin 30).
    let (s, c) = 30f32.to_radians().sin_cos();
    assert!(close(cube_draw.transform[0][0], c) && close(cube_draw.transform[0][2], -s));
    // The child's translation (1.2, 0, 0) turns with its parent; its scale is 0.5.
    let t = child.transform[3];
    assert!(
        close(t[0], 1.2 * c) && close(t[1], 0.0) && close(t[2], -1.2 * s),
        "{t:?}"
    );
    assert!(close(child.transform[1][1], 0.5));
    assert!(close(tri_draw.transform[3][1], 0.8));
}

#[test]
fn test_glb_loads_the_same_scene() {
    let gltf = Scene::load_gltf(write_test_gltf(dir("same-gltf"))).unwrap();
    let glb = Scene::load_gltf(write_test_glb(dir("same-glb"))).unwrap();
    assert!(
        gltf == glb,
        "the .glb and the .gltf differ: {glb:?} vs {gltf:?}"
    );
}

#[test]
fn embedded_base64_buffer_loads() {
    let (_, result) = load_edited("base64", |doc, dir| {
        let bin = std::fs::read(dir.join("test.bin")).unwrap();
        std::fs::remove_file(dir.join("test.bin")).unwrap();
        doc["buffers"][0]["uri"] = json!(format!(
            "data:application/octet-stream;base64,{}",
            base64_encode(&bin)
        ));
    });
    assert_eq!(result.unwrap().meshes[0].vertices.len(), 24);
}

fn base64_encode(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn missing_file() {
    let path = dir("missing").join("nope.gltf");
    let err = error_of(&path, Scene::load_gltf(&path));
    assert!(matches!(err, DemoError::MissingFile { .. }), "{err:?}");
}

#[test]
fn not_gltf() {
    let d = dir("not-gltf");
    for (name, bytes) in [
        ("text.gltf", &b"this is not a model"[..]),
        (
            "truncated.glb",
            &b"glTF\x02\x00\x00\x00\xff\x00\x00\x00JSON"[..],
        ),
        ("empty.gltf", &b""[..]),
        ("array.gltf", &b"[1, 2, 3]"[..]),
    ] {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = error_of(&path, Scene::load_gltf(&path));
        assert!(matches!(err, DemoError::NotGltf { .. }), "{name}: {err:?}");
    }
    let (path, result) = load_edited("version", |doc, _| doc["asset"]["version"] = json!("1.0"));
    assert!(matches!(error_of(&path, result), DemoError::NotGltf { .. }));
}

#[test]
fn missing_buffer_file() {
    let (path, result) = load_edited("missing-bin", |_, dir| {
        std::fs::remove_file(dir.join("test.bin")).unwrap()
    });
    match error_of(&path, result) {
        DemoError::MissingBuffer { index: 0, file, .. } => assert!(file.ends_with("test.bin")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn short_buffer_file() {
    let (path, result) = load_edited("short-bin", |_, dir| {
        std::fs::write(dir.join("test.bin"), [0u8; 100]).unwrap()
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::BadBuffer { index: 0, .. }
    ));
}

#[test]
fn unsupported_uri_scheme() {
    let (path, result) = load_edited("https", |doc, _| {
        doc["buffers"][0]["uri"] = json!("https://example.invalid/test.bin")
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::BadBuffer { .. }
    ));
}

#[test]
fn missing_and_corrupt_image() {
    let (path, result) = load_edited("missing-png", |_, dir| {
        std::fs::remove_file(dir.join("test.png")).unwrap()
    });
    match error_of(&path, result) {
        DemoError::MissingImage { index: 0, file, .. } => assert!(file.ends_with("test.png")),
        other => panic!("{other:?}"),
    }
    let (path, result) = load_edited("corrupt-png", |_, dir| {
        std::fs::write(dir.join("test.png"), b"\x89PNG garbage").unwrap()
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::BadImage { index: 0, .. }
    ));
    let (path, result) = load_edited("ktx2-image", |doc, dir| {
        std::fs::write(dir.join("test.ktx2"), b"\xabKTX 20\xbb\r\n\x1a\n").unwrap();
        doc["images"][0] = json!({ "uri": "test.ktx2", "mimeType": "image/ktx2" });
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::BadImage { .. }
    ));
}

#[test]
fn sparse_accessor() {
    let (path, result) = load_edited("sparse", |doc, _| {
        doc["accessors"][0]["sparse"] = json!({
            "count": 1,
            "indices": { "bufferView": 3, "componentType": 5123 },
            "values": { "bufferView": 0 }
        });
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::SparseAccessor { accessor: 0, .. }
    ));
}

#[test]
fn required_extensions_draco_and_ktx2() {
    for ext in [
        "KHR_draco_mesh_compression",
        "KHR_texture_basisu",
        "EXT_meshopt_compression",
        "KHR_mesh_quantization",
    ] {
        let (path, result) = load_edited(ext, |doc, _| {
            doc["extensionsUsed"] = json!([ext]);
            doc["extensionsRequired"] = json!([ext]);
        });
        let err = error_of(&path, result);
        assert!(
            matches!(&err, DemoError::UnsupportedExtension { extension, .. } if extension == ext),
            "{err:?}"
        );
    }
    // KTX2 texture as required by the extension's own example: no `source`.
    let (path, result) = load_edited("basisu-no-source", |doc, _| {
        doc["extensionsUsed"] = json!(["KHR_texture_basisu"]);
        doc["extensionsRequired"] = json!(["KHR_texture_basisu"]);
        doc["textures"][0] = json!({ "extensions": { "KHR_texture_basisu": { "source": 0 } } });
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::UnsupportedExtension { .. }
    ));
    // Ignorable required extensions (material looks only) still load.
    let (_, result) = load_edited("unlit", |doc, _| {
        doc["extensionsUsed"] = json!(["KHR_materials_unlit"]);
        doc["extensionsRequired"] = json!(["KHR_materials_unlit"]);
    });
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn draco_without_fallback_data() {
    let (path, result) = load_edited("draco-used", |doc, _| {
        doc["extensionsUsed"] = json!(["KHR_draco_mesh_compression"]);
        doc["meshes"][0]["primitives"][0]["extensions"] = json!({ "KHR_draco_mesh_compression": { "bufferView": 0, "attributes": { "POSITION": 0 } } });
        doc["accessors"][0]
            .as_object_mut()
            .unwrap()
            .remove("bufferView");
    });
    let err = error_of(&path, result);
    assert!(
        matches!(&err, DemoError::UnsupportedExtension { extension, .. } if extension == "KHR_draco_mesh_compression")
    );
}

#[test]
fn non_triangle_primitive() {
    let (path, result) = load_edited("lines", |doc, _| {
        doc["meshes"][0]["primitives"][0]["mode"] = json!(1)
    });
    let err = error_of(&path, result);
    assert!(matches!(
        err,
        DemoError::BadPrimitive {
            mesh: 0,
            primitive: 0,
            ..
        }
    ));
    assert!(err.to_string().contains("TRIANGLES"));
}

#[test]
fn bad_accessors() {
    // An index past the vertex count.
    let (path, result) = load_edited("index-range", |_, dir| {
        let mut bin = std::fs::read(dir.join("test.bin")).unwrap();
        bin[768..770].copy_from_slice(&99u16.to_le_bytes());
        std::fs::write(dir.join("test.bin"), bin).unwrap();
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::BadAccessor {
            accessor: 3,
            role: "indices",
            ..
        }
    ));
    // More elements than the buffer view holds.
    let (path, result) = load_edited("overrun", |doc, _| {
        doc["accessors"][1]["count"] = json!(1000)
    });
    let err = error_of(&path, result);
    assert!(
        matches!(
            err,
            DemoError::BadAccessor { .. } | DemoError::InvalidGltf { .. }
        ),
        "{err:?}"
    );
    // Positions that are not float VEC3.
    let (path, result) = load_edited("u16-positions", |doc, _| {
        doc["accessors"][0]["componentType"] = json!(5123);
        doc["accessors"][0]["count"] = json!(24);
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::BadAccessor {
            accessor: 0,
            role: "POSITION",
            ..
        }
    ));
    // A stride smaller than the element.
    let (path, result) = load_edited("stride", |doc, _| {
        doc["bufferViews"][0]["byteStride"] = json!(8)
    });
    let err = error_of(&path, result);
    assert!(
        matches!(
            err,
            DemoError::BadAccessor { .. } | DemoError::InvalidGltf { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn invalid_references_and_hierarchy() {
    let (path, result) = load_edited("bad-index", |doc, _| doc["nodes"][0]["mesh"] = json!(7));
    assert!(matches!(
        error_of(&path, result),
        DemoError::InvalidGltf { .. }
    ));
    let (path, result) = load_edited("cycle", |doc, _| doc["nodes"][1]["children"] = json!([0]));
    assert!(matches!(
        error_of(&path, result),
        DemoError::InvalidGltf { .. }
    ));
}

#[test]
fn no_meshes() {
    let (path, result) = load_edited("no-meshes", |doc, _| {
        doc.as_object_mut().unwrap().remove("meshes");
        for node in doc["nodes"].as_array_mut().unwrap() {
            node.as_object_mut().unwrap().remove("mesh");
        }
    });
    assert!(matches!(
        error_of(&path, result),
        DemoError::NoMeshes { .. }
    ));
}

#[test]
fn no_node_draws_every_mesh_once() {
    let (_, result) = load_edited("no-nodes", |doc, _| {
        let obj = doc.as_object_mut().unwrap();
        for key in ["nodes", "scenes", "scene"] {
            obj.remove(key);
        }
    });
    let scene = result.unwrap();
    assert_eq!(scene.draws.len(), 2);
    assert!(scene
        .draws
        .iter()
        .all(|d| d.transform[3] == [0.0, 0.0, 0.0, 1.0]));
}

/// Truncations and byte flips of a valid GLB: each loads or fails with an
/// error, none panics.
#[test]
fn damaged_glb_never_panics() {
    let d = dir("damaged");
    let good = std::fs::read(write_test_glb(&d)).unwrap();
    let path = d.join("damaged.glb");
    let mut errors = 0;
    let mut attempt = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        if Scene::load_gltf(&path).is_err() {
            errors += 1;
        }
    };
    for len in (0..good.len()).step_by(5) {
        attempt(&good[..len]);
    }
    for i in (0..good.len()).step_by(3) {
        let mut bytes = good.clone();
        bytes[i] ^= 0xa5;
        attempt(&bytes);
    }
    assert!(
        errors > good.len() / 5,
        "most damaged files are errors ({errors})"
    );
}
