//! glTF loading: the test asset loads as `.gltf` and `.glb`, and every kind
//! of bad input is a `DemoError` naming the file, never a panic.

use std::path::{Path, PathBuf};

use ash::vk;
use mem_demo::scene::{GlbProblem, GltfItem, LoadOptions};
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
        assert!(
            matches!(err, DemoError::NotGltf { .. } | DemoError::BadGlb { .. }),
            "{name}: {err:?}"
        );
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

// ---------------------------------------------------------------- hostile files

/// Runs `f` on another thread and fails the test if it has not returned
/// within `seconds` (a loader that blocks on a FIFO, or reads forever).
fn within<T: Send + 'static>(seconds: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(seconds))
        .unwrap_or_else(|_| panic!("did not return within {seconds} s"))
}

#[test]
fn image_without_uri_or_buffer_view_is_an_error() {
    let (path, result) = load_edited("image-no-source", |doc, _| doc["images"][0] = json!({}));
    let err = error_of(&path, result);
    assert!(
        matches!(err, DemoError::ImageWithoutSource { index: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn image_buffer_view_without_mime_type_is_an_error() {
    let (path, result) = load_edited("image-view-no-mime", |doc, _| {
        doc["images"][0] = json!({ "bufferView": 4 })
    });
    let err = error_of(&path, result);
    assert!(
        matches!(
            err,
            DemoError::ImageWithoutMimeType {
                index: 0,
                view: 4,
                ..
            }
        ),
        "{err:?}"
    );
}

/// `root/asset/test.gltf` with `root/outside.bin` and `root/outside.png`
/// beside the asset's folder.
fn outside_layout(name: &str) -> (PathBuf, PathBuf) {
    let root = dir(name);
    let asset = write_test_gltf(root.join("asset"));
    let folder = asset.parent().unwrap();
    std::fs::copy(folder.join("test.bin"), root.join("outside.bin")).unwrap();
    std::fs::copy(folder.join("test.png"), root.join("outside.png")).unwrap();
    (root, asset)
}

fn edit_and_load(path: &Path, edit: impl FnOnce(&mut Value)) -> Result<Scene, DemoError> {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    Scene::load_gltf(path)
}

#[test]
#[cfg(unix)]
fn uris_outside_the_asset_folder_are_refused() {
    let (root, asset) = outside_layout("outside");
    let outside_bin = std::fs::canonicalize(root.join("outside.bin")).unwrap();
    let folder = asset.parent().unwrap().to_owned();
    std::os::unix::fs::symlink(&outside_bin, folder.join("link.bin")).unwrap();
    let buffer_uris = [
        "../outside.bin".to_owned(),
        "sub/../../outside.bin".to_owned(),
        outside_bin.display().to_string(),
        format!("file://{}", outside_bin.display()),
        format!("file:{}", outside_bin.display()),
        "link.bin".to_owned(),
        "/etc/passwd".to_owned(),
        "file:///etc/passwd".to_owned(),
    ];
    for uri in &buffer_uris {
        let result = edit_and_load(&asset, |doc| doc["buffers"][0]["uri"] = json!(uri));
        let err = error_of(&asset, result);
        assert!(
            matches!(&err, DemoError::UriOutsideFolder { item: GltfItem::Buffer(0), uri: u, .. } if u == uri),
            "{uri}: {err:?}"
        );
    }
    let result = edit_and_load(&asset, |doc| {
        doc["buffers"][0]["uri"] = json!("test.bin");
        doc["images"][0]["uri"] = json!("../outside.png");
    });
    let err = error_of(&asset, result);
    assert!(
        matches!(
            err,
            DemoError::UriOutsideFolder {
                item: GltfItem::Image(0),
                ..
            }
        ),
        "{err:?}"
    );
    // Allowed explicitly, the same files load.
    let options = LoadOptions {
        allow_outside_uris: true,
        ..LoadOptions::default()
    };
    for uri in ["../outside.bin", "link.bin"] {
        edit_and_load(&asset, |doc| doc["buffers"][0]["uri"] = json!(uri)).unwrap_err();
        let scene = Scene::load_gltf_with(&asset, &options);
        assert_eq!(scene.unwrap().textures[0].width, 8, "{uri}");
    }
}

#[test]
#[cfg(unix)]
fn uris_inside_the_asset_folder_load() {
    let (_, asset) = outside_layout("inside");
    let folder = asset.parent().unwrap();
    std::fs::create_dir_all(folder.join("sub dir")).unwrap();
    std::fs::copy(folder.join("test.bin"), folder.join("sub dir/data.bin")).unwrap();
    std::os::unix::fs::symlink("sub dir/data.bin", folder.join("inner-link.bin")).unwrap();
    let absolute = std::fs::canonicalize(folder.join("test.bin")).unwrap();
    for uri in [
        "sub%20dir/data.bin".to_owned(),
        "./sub%20dir/../test.bin".to_owned(),
        "inner-link.bin".to_owned(),
        format!("file://{}", absolute.display()),
    ] {
        let result = edit_and_load(&asset, |doc| doc["buffers"][0]["uri"] = json!(uri));
        assert!(result.is_ok(), "{uri}: {result:?}");
    }
}

#[test]
#[cfg(unix)]
fn a_buffer_uri_naming_a_fifo_is_refused_without_blocking() {
    let d = dir("fifo");
    let asset = write_test_gltf(&d);
    let fifo = d.join("fifo.bin");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let path = asset.clone();
    let result = within(20, move || {
        edit_and_load(&path, |doc| doc["buffers"][0]["uri"] = json!("fifo.bin"))
    });
    let err = error_of(&asset, result);
    assert!(
        matches!(
            &err,
            DemoError::NotRegularFile {
                item: GltfItem::Buffer(0),
                kind: "a FIFO",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
#[cfg(unix)]
fn device_files_and_directories_are_refused_even_when_outside_uris_are_allowed() {
    let d = dir("devices");
    let asset = write_test_gltf(&d);
    std::fs::create_dir_all(d.join("folder.bin")).unwrap();
    let options = LoadOptions {
        allow_outside_uris: true,
        ..LoadOptions::default()
    };
    for (uri, kind) in [
        ("/dev/zero", "a character device"),
        ("file:///dev/urandom", "a character device"),
        ("folder.bin", "a directory"),
    ] {
        let path = asset.clone();
        let result = within(20, move || {
            edit_and_load(&path, |doc| doc["buffers"][0]["uri"] = json!(uri)).unwrap_err();
            Scene::load_gltf_with(&path, &options)
        });
        let err = error_of(&asset, result);
        assert!(
            matches!(&err, DemoError::NotRegularFile { kind: k, .. } if *k == kind),
            "{uri}: {err:?}"
        );
    }
    // The glTF file itself.
    for file in [Path::new("/dev/zero"), d.as_path()] {
        let err = Scene::load_gltf(file).unwrap_err();
        assert!(
            matches!(
                err,
                DemoError::NotRegularFile {
                    item: GltfItem::File,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

/// The test GLB with its header's length and chunks rewritten by `edit`.
fn load_glb_edited(
    name: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) -> (PathBuf, Result<Scene, DemoError>) {
    let path = write_test_glb(dir(name));
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let result = Scene::load_gltf(&path);
    (path, result)
}

fn set_glb_length(bytes: &mut [u8], length: u32) {
    bytes[8..12].copy_from_slice(&length.to_le_bytes());
}

fn push_chunk(bytes: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(kind);
    bytes.extend_from_slice(data);
    let len = bytes.len() as u32;
    set_glb_length(bytes, len);
}

#[test]
fn glb_header_length_must_match_the_file() {
    let (path, result) = load_glb_edited("glb-short-header", |bytes| {
        let len = bytes.len() as u32;
        set_glb_length(bytes, len - 8);
    });
    let err = error_of(&path, result);
    assert!(
        matches!(
            err,
            DemoError::BadGlb {
                problem: GlbProblem::LengthMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let (path, result) = load_glb_edited("glb-trailing", |bytes| {
        bytes.extend_from_slice(&[0; 8]);
    });
    let err = error_of(&path, result);
    assert!(
        matches!(
            err,
            DemoError::BadGlb {
                problem: GlbProblem::LengthMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn glb_with_a_second_json_chunk_is_refused_and_unknown_chunks_are_skipped() {
    let (path, result) = load_glb_edited("glb-two-json", |bytes| {
        push_chunk(bytes, b"JSON", br#"{"asset":{"version":"2.0"}}     "#);
    });
    let err = error_of(&path, result);
    assert!(
        matches!(
            err,
            DemoError::BadGlb {
                problem: GlbProblem::SecondJsonChunk { index: 2 },
                ..
            }
        ),
        "{err:?}"
    );
    let (_, result) = load_glb_edited("glb-unknown-chunk", |bytes| {
        push_chunk(bytes, b"XTRA", &[1, 2, 3, 4]);
    });
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn primitives_sharing_accessors_share_one_mesh() {
    let (_, result) = load_edited("shared-accessors", |doc, _| {
        let primitive = doc["meshes"][1]["primitives"][0].clone();
        doc["meshes"][1]["primitives"] = Value::Array(vec![primitive; 200]);
    });
    let scene = result.unwrap();
    // The cube, and one triangle mesh for the 200 primitives (flat normals
    // computed once), drawn 200 times by the triangle node.
    assert_eq!(scene.meshes.len(), 2, "{:?}", scene.meshes.len());
    assert_eq!(scene.draws.len(), 2 + 200);
    assert!(scene.draws[2..].iter().all(|d| d.mesh == 1));
}

#[test]
fn images_sharing_a_source_are_decoded_once() {
    // 40 images naming the same file, 40 textures, 40 materials.
    let (_, result) = load_edited("shared-image-uri", |doc, _| {
        let image = doc["images"][0].clone();
        doc["images"] = Value::Array(vec![image; 40]);
        doc["textures"] = Value::Array((0..40).map(|i| json!({ "source": i })).collect());
    });
    let scene = result.unwrap();
    assert_eq!(scene.textures.len(), 2, "{:?}", scene.textures);
    // The same through one buffer view of a GLB.
    let d = dir("shared-image-view");
    let glb = write_test_glb(&d);
    let bytes = std::fs::read(&glb).unwrap();
    let json_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut doc: Value = serde_json::from_slice(&bytes[20..20 + json_len]).unwrap();
    let image = doc["images"][0].clone();
    doc["images"] = Value::Array(vec![image; 40]);
    doc["textures"] = Value::Array((0..40).map(|i| json!({ "source": i })).collect());
    let mut json = serde_json::to_vec(&doc).unwrap();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let mut out = bytes[..12].to_vec();
    push_chunk(&mut out, b"JSON", &json);
    out.extend_from_slice(&bytes[20 + json_len..]);
    let len = out.len() as u32;
    set_glb_length(&mut out, len);
    std::fs::write(&glb, &out).unwrap();
    let scene = Scene::load_gltf(&glb).unwrap();
    assert_eq!(scene.textures.len(), 2, "{:?}", scene.textures);
}

/// A PNG of `width` x `height` RGBA8 pixels that is only a header: the
/// signature, IHDR, and an IDAT chunk with no valid data. Its size can be
/// read; decoding it fails.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0, 0]);
    png
}

#[test]
fn an_image_larger_than_the_budget_is_refused_from_its_header() {
    // 40000 x 40000 RGBA8 is 6.4 GB (8.5 GB with mips) in a 60-byte file.
    let (path, result) = load_edited("huge-png", |_, dir| {
        std::fs::write(dir.join("test.png"), png_header_only(40_000, 40_000)).unwrap();
    });
    match error_of(&path, result) {
        DemoError::OverBudget {
            item: GltfItem::Image(0),
            needed,
            limit,
            ..
        } => {
            assert!(needed > 40_000 * 40_000 * 4, "{needed}");
            assert_eq!(limit, LoadOptions::DEFAULT_MAX_DECODED_BYTES);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_budget_counts_buffers_images_accessors_and_expanded_meshes() {
    let path = write_test_gltf(dir("budget"));
    let with = |max_decoded_bytes| {
        Scene::load_gltf_with(
            &path,
            &LoadOptions {
                max_decoded_bytes,
                ..LoadOptions::default()
            },
        )
    };
    // Find the smallest budget that loads; every smaller one is a typed
    // error naming what did not fit, never a partial scene.
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(with(u64::MAX).is_ok());
    let mut items = std::collections::HashSet::new();
    let mut smallest = None;
    for limit in (0..file + 20_000).step_by(97) {
        match with(limit) {
            Ok(_) => {
                smallest = Some(limit);
                break;
            }
            Err(DemoError::OverBudget { item, limit: l, .. }) => {
                assert_eq!(l, limit);
                items.insert(std::mem::discriminant(&item));
            }
            Err(other) => panic!("{limit}: {other:?}"),
        }
    }
    let smallest = smallest.expect("loads within file + 20 000 bytes");
    // The file, the buffer, the image, an accessor and a primitive each
    // were the one that did not fit at some budget.
    for item in [
        GltfItem::File,
        GltfItem::Buffer(0),
        GltfItem::Image(0),
        GltfItem::Accessor(0),
        GltfItem::Primitive {
            mesh: 0,
            primitive: 0,
        },
    ] {
        assert!(
            items.contains(&std::mem::discriminant(&item)),
            "{item} never hit the budget"
        );
    }
    assert!(smallest > file + 876, "{smallest}");
}

#[test]
fn shared_images_fit_a_budget_that_holds_one_copy() {
    // An image of 512 x 512 (1.4 MB with mips) shared by 40 images through
    // one buffer view: decoded once, it fits a 4 MiB budget.
    let d = dir("shared-budget");
    let glb = write_test_glb(&d);
    let bytes = std::fs::read(&glb).unwrap();
    let json_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut doc: Value = serde_json::from_slice(&bytes[20..20 + json_len]).unwrap();
    let mut bin = bytes[20 + json_len + 8..].to_vec();
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &vec![90u8; 512 * 512 * 4],
        512,
        512,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    let offset = bin.len();
    bin.extend_from_slice(&png);
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    doc["buffers"][0]["byteLength"] = json!(bin.len());
    doc["bufferViews"][5] = json!({ "buffer": 0, "byteOffset": offset, "byteLength": png.len() });
    let image = doc["images"][0].clone();
    doc["images"] = Value::Array(vec![image; 40]);
    doc["textures"] = Value::Array((0..40).map(|i| json!({ "source": i })).collect());
    let mut json = serde_json::to_vec(&doc).unwrap();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let mut out = bytes[..12].to_vec();
    push_chunk(&mut out, b"JSON", &json);
    push_chunk(&mut out, b"BIN\0", &bin);
    std::fs::write(&glb, &out).unwrap();
    let options = LoadOptions {
        max_decoded_bytes: 4 << 20,
        ..LoadOptions::default()
    };
    let scene = Scene::load_gltf_with(&glb, &options).unwrap();
    assert_eq!(scene.textures.len(), 2);
    assert_eq!(scene.textures[0].width, 512);
}

#[test]
fn flat_normal_expansion_is_charged_before_it_is_made() {
    // 3 000 000 indices shared by 200 primitives without normals, made
    // distinct per primitive by 200 index accessors over the same view:
    // each expansion is 108 MB, and the budget stops them long before 200.
    let d = dir("expansion");
    let path = write_test_gltf(&d);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut bin = std::fs::read(d.join("test.bin")).unwrap();
    let offset = bin.len();
    bin.extend(std::iter::repeat_n([0u8, 1, 2], 1_000_000).flatten());
    doc["buffers"][0]["byteLength"] = json!(bin.len());
    std::fs::write(d.join("test.bin"), &bin).unwrap();
    doc["bufferViews"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "buffer": 0, "byteOffset": offset, "byteLength": 3_000_000 }));
    let accessors = doc["accessors"].as_array_mut().unwrap();
    let first = accessors.len();
    for _ in 0..200 {
        accessors.push(
            json!({ "bufferView": 5, "componentType": 5121, "count": 3_000_000, "type": "SCALAR" }),
        );
    }
    doc["meshes"][1]["primitives"] = Value::Array(
        (0..200)
            .map(|i| json!({ "attributes": { "POSITION": 4 }, "indices": first + i }))
            .collect(),
    );
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let options = LoadOptions {
        max_decoded_bytes: 1 << 30,
        ..LoadOptions::default()
    };
    match error_of(&path, Scene::load_gltf_with(&path, &options)) {
        DemoError::OverBudget {
            item: GltfItem::Primitive { mesh: 1, primitive },
            limit,
            used,
            ..
        } => {
            assert!((3..12).contains(&primitive), "{primitive}");
            assert_eq!(limit, 1 << 30);
            assert!(used <= limit);
        }
        other => panic!("{other:?}"),
    }
}
