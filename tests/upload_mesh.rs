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

// ------------------------------------------------------- hostile input, late errors

/// Runs the example, killing it after `seconds`; `None` when it had to be
/// killed.
fn run_within(seconds: u64, args: &[&str]) -> Option<Output> {
    let mut child = Command::new(example())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("example runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The one error line of a failed run, after checking: exit code 1, no
/// panic, nothing on stderr but that line (and the test context's line
/// naming the device), so no validation message and no leak report.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("mem-testkit: device ") && !l.starts_with("WARNING: lavapipe"))
        .collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

/// The test glTF with its 8x8 texture replaced by a `width`x1 PNG.
fn gltf_with_wide_texture(dir: &std::path::Path, width: u32) -> PathBuf {
    let gltf = mem_demo::write_test_gltf(dir);
    let rgba = vec![200u8; width as usize * 4];
    image::save_buffer(
        dir.join("test.png"),
        &rgba,
        width,
        1,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    gltf
}

#[test]
fn late_failures_free_everything_and_print_one_line() {
    let dir = tmpdir("late");
    // Wider than any device's maxImageDimension2D: the image cannot be
    // created, after the vertex and index buffers were.
    let gltf = gltf_with_wide_texture(&dir, 65537);
    let png = dir.join("frame.png");
    let common = ["--width", "320", "--height", "200", "--json"];
    for validation in ["--validation", "--no-validation"] {
        let mut args = vec![
            gltf.to_str().unwrap(),
            validation,
            "--out",
            png.to_str().unwrap(),
        ];
        args.extend(common);
        let line = error_line(&run(&args));
        assert!(
            line.contains("test.gltf") && line.contains("65537"),
            "{line}"
        );
    }
    // The frame cannot be written (its folder is a file): found after the
    // upload, the verification and the render.
    let good = tmpdir("late-good");
    let gltf = mem_demo::write_test_gltf(&good);
    let blocker = good.join("blocker");
    std::fs::write(&blocker, b"a file, not a folder").unwrap();
    let out = blocker.join("frame.png");
    let mut args = vec![
        gltf.to_str().unwrap(),
        "--validation",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(common);
    let line = error_line(&run(&args));
    assert!(line.contains("frame.png"), "{line}");
}

#[test]
fn bad_frame_sizes_out_paths_and_ring_sizes_are_refused() {
    let dir = tmpdir("args");
    let gltf = mem_demo::write_test_gltf(&dir);
    let png = dir.join("frame.png");
    let g = gltf.to_str().unwrap();
    let p = png.to_str().unwrap();
    for (args, needle) in [
        (vec![g, "--width", "0", "--out", p], "--width"),
        (vec![g, "--height", "0", "--out", p], "--height"),
        (vec![g, "--width", "100000", "--out", p], "100000"),
        (vec![g, "--out", dir.to_str().unwrap()], "directory"),
        (
            vec![g, "--ring-size", "17592186044417", "--no-render"],
            "--ring-size",
        ),
        (
            vec![g, "--ring-size", "18446744073709551615", "--no-render"],
            "--ring-size",
        ),
        (vec![g, "--ring-size", "0", "--no-render"], "--ring-size"),
    ] {
        let mut args = args;
        args.push("--validation");
        let line = error_line(&run(&args));
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

#[test]
fn loader_limits_are_options() {
    let root = tmpdir("options");
    let asset_dir = root.join("asset");
    let gltf = mem_demo::write_test_gltf(&asset_dir);
    let g = gltf.to_str().unwrap();
    let png = root.join("frame.png");
    let p = png.to_str().unwrap();
    let line = error_line(&run(&[
        g,
        "--max-decoded-bytes",
        "1000",
        "--no-render",
        "--validation",
    ]));
    assert!(
        line.contains("test.gltf") && line.contains("1000"),
        "{line}"
    );

    // A buffer beside the asset's folder: refused unless allowed.
    std::fs::rename(asset_dir.join("test.bin"), root.join("test.bin")).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&gltf).unwrap()).unwrap();
    doc["buffers"][0]["uri"] = serde_json::json!("../test.bin");
    std::fs::write(&gltf, serde_json::to_vec(&doc).unwrap()).unwrap();
    let line = error_line(&run(&[g, "--no-render", "--validation"]));
    assert!(
        line.contains("test.gltf") && line.contains("../test.bin"),
        "{line}"
    );
    let out = run(&[
        g,
        "--allow-outside-uris",
        "--validation",
        "--json",
        "--width",
        "320",
        "--height",
        "200",
        "--out",
        p,
    ]);
    check_success(out, &png);
}

/// A glTF of one mesh: a large triangle drawn `triangles` times through a
/// `u8` index list.
fn gltf_with_repeated_triangle(dir: &std::path::Path, triangles: usize) -> PathBuf {
    let mut bin = Vec::new();
    for f in [-1.0f32, -1.0, 0.0, 3.0, -1.0, 0.0, -1.0, 3.0, 0.0] {
        bin.extend_from_slice(&f.to_le_bytes());
    }
    for _ in 0..3 {
        for f in [0.0f32, 0.0, 1.0] {
            bin.extend_from_slice(&f.to_le_bytes());
        }
    }
    bin.extend(std::iter::repeat_n([0u8, 1, 2], triangles).flatten());
    std::fs::write(dir.join("tri.bin"), &bin).unwrap();
    let doc = serde_json::json!({
        "asset": { "version": "2.0" },
        "scene": 0,
        "scenes": [ { "nodes": [0] } ],
        "nodes": [ { "mesh": 0 } ],
        "meshes": [ { "primitives": [ {
            "attributes": { "POSITION": 0, "NORMAL": 1 }, "indices": 2 } ] } ],
        "buffers": [ { "uri": "tri.bin", "byteLength": bin.len() } ],
        "bufferViews": [
            { "buffer": 0, "byteOffset": 0, "byteLength": 36 },
            { "buffer": 0, "byteOffset": 36, "byteLength": 36 },
            { "buffer": 0, "byteOffset": 72, "byteLength": triangles * 3 }
        ],
        "accessors": [
            { "bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
              "min": [-1.0, -1.0, 0.0], "max": [3.0, 3.0, 0.0] },
            { "bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC3" },
            { "bufferView": 2, "componentType": 5121, "count": triangles * 3, "type": "SCALAR" }
        ]
    });
    let path = dir.join("tri.gltf");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}

#[test]
fn a_frame_too_costly_to_draw_is_refused_before_it_is_drawn() {
    let dir = tmpdir("costly");
    let gltf = gltf_with_repeated_triangle(&dir, 4_000_000);
    let png = dir.join("frame.png");
    let out = run_within(
        120,
        &[
            gltf.to_str().unwrap(),
            "--validation",
            "--out",
            png.to_str().unwrap(),
        ],
    )
    .expect("the run ends within 120 s");
    let line = error_line(&out);
    assert!(
        line.contains("tri.gltf") && line.contains("fragments"),
        "{line}"
    );
    assert!(!png.exists());
    let out = run(&[
        gltf.to_str().unwrap(),
        "--validation",
        "--max-frame-triangles",
        "1000000",
        "--out",
        png.to_str().unwrap(),
    ]);
    let line = error_line(&out);
    assert!(line.contains("4000000 triangles"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------ the memory report

/// The JSON text of the page's `<script type="application/json" id=ID>`.
fn embedded_json(html: &str, id: &str) -> serde_json::Value {
    let open = format!("<script type=\"application/json\" id=\"{id}\">");
    let start = html.find(&open).unwrap_or_else(|| panic!("no {id}")) + open.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

#[test]
fn report_shows_the_allocator_after_the_upload() {
    let dir = tmpdir("report");
    let png = dir.join("frame.png");
    let report = dir.join("memory.html");
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
        "--report",
        report.to_str().unwrap(),
    ]);
    let v = check_success(out, &png);
    // Every uploaded mesh buffer and texture is alive in the dump.
    let objects = v["meshes"].as_u64().unwrap() * 2 + v["textures"].as_u64().unwrap();
    assert_eq!(v["report"]["allocations"].as_u64(), Some(objects), "{v}");
    assert_eq!(v["report"]["path"].as_str(), Some(report.to_str().unwrap()));
    let html = std::fs::read_to_string(&report).expect("the report is written");
    let dump = embedded_json(&html, "gpumem-dump");
    let blocks = dump["blocks"].as_array().expect("a detailed dump");
    assert_eq!(
        Some(blocks.len() as u64),
        v["report"]["blocks"].as_u64(),
        "{v}"
    );
    assert_eq!(
        dump["stats"]["total"]["allocation_count"].as_u64(),
        Some(objects)
    );
    // The leak report taken at teardown is empty; the timeline covers the
    // run, marks included.
    assert_eq!(embedded_json(&html, "gpumem-leaks"), serde_json::json!([]));
    // One sample after the mesh buffers (uploaded in one call) and one
    // after each texture, at least.
    let timeline = embedded_json(&html, "gpumem-timeline");
    let textures = v["textures"].as_u64().unwrap() as usize;
    assert!(timeline["samples"].as_array().unwrap().len() > textures);
    let marks: Vec<&str> = timeline["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[1].as_str().unwrap())
        .collect();
    for m in [
        "uploaded",
        "verified",
        "trimmed: dump",
        "resources destroyed",
    ] {
        assert!(marks.contains(&m), "{m} not in {marks:?}");
    }
    // A folder is refused before the device is made.
    let line = error_line(&run(&["--report", dir.to_str().unwrap(), "--no-render"]));
    assert!(
        line.contains("--report") && line.contains("directory"),
        "{line}"
    );
}
