//! The main job end to end: runs the `upload_mesh` example binary (built by
//! `cargo test` alongside the tests) on lavapipe with validation and
//! synchronization validation on, on a small default scene and on a glTF
//! file the test writes itself, and on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example() -> PathBuf {
    // target/<profile>/deps/upload_mesh-HASH -> target/<profile>/examples/upload_mesh
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("upload_mesh");
    assert!(
        path.exists(),
        "{} not built: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

fn tmpdir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gpumem-upload-mesh-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(example())
        .args(args)
        .output()
        .expect("example runs")
}

/// Checks a successful run's JSON summary and its PNG.
fn check_success(out: Output, png: &PathBuf) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{stderr}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary on stdout");
    let objects = v["meshes"].as_u64().unwrap() * 2 + v["textures"].as_u64().unwrap();
    assert_eq!(v["verified_objects"].as_u64().unwrap(), objects, "{v}");
    assert_eq!(v["mismatched_objects"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["validation"], true);
    assert_eq!(v["validation_messages"], 0, "stderr:\n{stderr}");
    assert!(
        v["allocator"]["committed_bytes"].as_u64().unwrap()
            >= v["allocator"]["requested_bytes"].as_u64().unwrap()
    );
    let img = image::open(png).expect("PNG written").to_rgba8();
    assert_eq!((img.width(), img.height()), (320, 200));
    // The meshes sit in the middle of the frame: more than one colour there.
    let mut colors = std::collections::HashSet::new();
    for y in 50..150 {
        for x in 80..240 {
            colors.insert(img.get_pixel(x, y).0);
        }
    }
    assert!(
        colors.len() > 50,
        "the frame's centre is (nearly) blank: {} colours",
        colors.len()
    );
    v
}

#[test]
fn default_scene_uploads_verifies_and_renders_under_validation() {
    let dir = tmpdir("default");
    let png = dir.join("frame.png");
    let out = run(&[
        "--scale",
        "0.05",
        "--validation",
        "--json",
        "--force-staging",
        "--width",
        "320",
        "--height",
        "200",
        "--out",
        png.to_str().unwrap(),
    ]);
    let v = check_success(out, &png);
    assert!(
        v["belt"]["staged_bytes"].as_u64().unwrap() > 0,
        "forced staging copies through the ring"
    );
    assert!(v["textures"].as_u64().unwrap() >= 5);
    // The direct path (lavapipe memory is host-visible) also verifies.
    let out = run(&[
        "--scale",
        "0.02",
        "--validation",
        "--json",
        "--width",
        "320",
        "--height",
        "200",
        "--out",
        png.to_str().unwrap(),
    ]);
    let v = check_success(out, &png);
    assert!(v["belt"]["direct_bytes"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn gltf_file_uploads_verifies_and_renders_under_validation() {
    let dir = tmpdir("gltf");
    let gltf = mem_demo::write_test_gltf(&dir);
    let png = dir.join("frame.png");
    let out = run(&[
        gltf.to_str().unwrap(),
        "--validation",
        "--json",
        "--force-staging",
        "--width",
        "320",
        "--height",
        "200",
        "--out",
        png.to_str().unwrap(),
    ]);
    let v = check_success(out, &png);
    assert!(v["meshes"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message() {
    let dir = tmpdir("bad");
    let missing = dir.join("no-such-file.glb");
    let out = run(&[missing.to_str().unwrap(), "--validation"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no-such-file.glb"),
        "names the file: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");

    let not_gltf = dir.join("notes.gltf");
    std::fs::write(&not_gltf, "this is not json").unwrap();
    let out = run(&[not_gltf.to_str().unwrap(), "--validation"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notes.gltf") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
