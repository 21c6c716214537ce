//! What the browser tests share: a headless Chromium, and dumps of known
//! counts built without an allocator.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Set to `1` to skip the parts of the tests that need a browser.
pub const SKIP_VAR: &str = "GPUMEM_SKIP_BROWSER";
/// Set to a browser's path to use it instead of the first found on `PATH`.
pub const BROWSER_VAR: &str = "GPUMEM_CHROMIUM";

/// Names of Chromium's executable on the distributions gpumem is tested on
/// (Debian's package `chromium`, Ubuntu's `chromium-browser`, Google's
/// builds).
const NAMES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// A folder of its own for one test's files.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mem-viewer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium.
pub struct Browser {
    exe: PathBuf,
}

/// The browser, or `None` when [`SKIP_VAR`] is set. Panics, saying how to
/// install it, when none is found.
pub fn browser() -> Option<Browser> {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("{SKIP_VAR}=1: skipping the headless-browser part of this test");
        return None;
    }
    let exe = match std::env::var_os(BROWSER_VAR).filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => NAMES.iter().find_map(|n| on_path(n)),
    };
    match exe {
        Some(exe) => Some(Browser { exe }),
        None => panic!(
            "no Chromium found (looked for {} on PATH and {BROWSER_VAR}): the memory viewer \
             is tested in a real browser. Install it (Debian: `apt-get install -y \
             --no-install-recommends chromium`; .ci/run does), name it with \
             {BROWSER_VAR}=/path/to/chrome, or set {SKIP_VAR}=1 to skip these checks",
            NAMES.join(", ")
        ),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The `file://` URL of `path`.
pub fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap();
    format!("file://{}", abs.display())
}

impl Browser {
    /// Runs the browser headless on `url` with `args`, its output in
    /// `dir`; panics if it does not finish within `timeout`. Returns
    /// (stdout, seconds taken).
    fn run(&self, dir: &Path, url: &str, args: &[String], timeout: Duration) -> (Vec<u8>, f64) {
        let profile = dir.join(format!(
            "profile-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let stdout_path = profile.with_extension("stdout");
        let stderr_path = profile.with_extension("stderr");
        let stdout = std::fs::File::create(&stdout_path).unwrap();
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let start = Instant::now();
        let mut child = Command::new(&self.exe)
            .args([
                "--headless",
                // Root in a container has no user namespace for the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--force-color-profile=srgb",
                // The page must need no network: any host fails to resolve.
                "--host-resolver-rules=MAP * ~NOTFOUND",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.exe.display()));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not finish {url} within {timeout:?}; stderr:\n{}",
                    self.exe.display(),
                    tail(&std::fs::read(&stderr_path).unwrap_or_default())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let seconds = start.elapsed().as_secs_f64();
        let out = std::fs::read(&stdout_path).unwrap();
        assert!(
            status.success(),
            "{} exited with {status}; stderr:\n{}",
            self.exe.display(),
            tail(&std::fs::read(&stderr_path).unwrap_or_default())
        );
        let _ = std::fs::remove_dir_all(&profile);
        let _ = std::fs::remove_file(&stdout_path);
        let _ = std::fs::remove_file(&stderr_path);
        (out, seconds)
    }

    /// The DOM of `url` after its scripts ran (`--dump-dom`), waiting at
    /// most `budget_ms` of the page's virtual time for timers, and
    /// `timeout` of wall time for the browser. Returns (DOM, seconds).
    pub fn dump_dom(
        &self,
        dir: &Path,
        url: &str,
        budget_ms: u64,
        timeout: Duration,
    ) -> (String, f64) {
        self.dump_dom_with(dir, url, &[], budget_ms, timeout)
    }

    /// As [`Self::dump_dom`], with more command-line switches.
    pub fn dump_dom_with(
        &self,
        dir: &Path,
        url: &str,
        switches: &[&str],
        budget_ms: u64,
        timeout: Duration,
    ) -> (String, f64) {
        let mut args = vec![
            "--dump-dom".to_owned(),
            format!("--virtual-time-budget={budget_ms}"),
        ];
        args.extend(switches.iter().map(|s| (*s).to_owned()));
        let (out, seconds) = self.run(dir, url, &args, timeout);
        (String::from_utf8(out).expect("the DOM is UTF-8"), seconds)
    }

    /// A PNG of `url` in a `width` x `height` window at `scale` device
    /// pixels per CSS pixel, decoded.
    pub fn screenshot(
        &self,
        dir: &Path,
        url: &str,
        png: &Path,
        (width, height): (u32, u32),
        scale: u32,
    ) -> image::RgbaImage {
        let _ = std::fs::remove_file(png);
        self.run(
            dir,
            url,
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={width},{height}"),
                format!("--force-device-scale-factor={scale}"),
                "--virtual-time-budget=2000".to_owned(),
            ],
            Duration::from_secs(120),
        );
        image::open(png)
            .unwrap_or_else(|e| panic!("{}: {e}", png.display()))
            .to_rgba8()
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The attributes of the DOM's `<body>` tag, as (name, value) pairs.
pub fn body_attributes(dom: &str) -> Vec<(String, String)> {
    let start = dom.find("<body").expect("a <body> in the DOM");
    let end = start + dom[start..].find('>').expect("<body ...>");
    let tag = &dom[start + 5..end];
    let mut attrs = Vec::new();
    let mut rest = tag.trim();
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().to_owned();
        let after = &rest[eq + 2..];
        let close = after.find('"').expect("closing quote");
        attrs.push((name, after[..close].to_owned()));
        rest = after[close + 1..].trim();
    }
    attrs
}

/// The value of `<body>`'s attribute `name`.
pub fn body_attr(dom: &str, name: &str) -> Option<String> {
    body_attributes(dom)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Panics unless the page's script finished without error.
pub fn assert_ready(dom: &str) {
    if let Some(e) = body_attr(dom, "data-error") {
        panic!("the page's script failed: {e}");
    }
    assert_eq!(
        body_attr(dom, "data-ready").as_deref(),
        Some("1"),
        "the page's script did not finish; <body> has {:?}",
        body_attributes(dom)
    );
}

/// A dump built by hand, with its counts.
pub struct Synthetic {
    /// `Allocator::dump_json(true)`'s shape.
    pub dump: Value,
    /// Block maps.
    pub blocks: usize,
    /// Allocated ranges.
    pub allocations: usize,
    /// Free ranges.
    pub free_ranges: usize,
    /// Allocation names, in dump order.
    pub names: Vec<String>,
}

/// Kinds of allocation the synthetic dumps name their allocations after.
pub const KINDS: &[&str] = &["texture", "vertex", "index", "uniform", "staging"];

/// A dump with `pooled` blocks of `block_size` bytes holding
/// `per_block` allocations each (separated by free ranges), `dedicated`
/// allocations of memory of their own, over two heaps and three memory
/// types; `first_name` names the very first allocation (the one the page
/// selects at start).
pub fn synthetic(pooled: usize, per_block: usize, dedicated: usize, first_name: &str) -> Synthetic {
    const BLOCK: u64 = 256 << 20;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut names = Vec::new();
    let mut blocks = Vec::new();
    let mut free_ranges = 0;
    let mut per_type = [(0u64, 0u64, 0u64, 0u64); 3]; // committed, requested, allocated, count
    let slot = BLOCK / per_block.max(1) as u64;
    for b in 0..pooled {
        let memory_type = if b % 3 == 2 { 2 } else { 1 };
        let mut ranges = Vec::new();
        let mut offset = 0u64;
        for i in 0..per_block {
            let n = names.len();
            let name = if n == 0 {
                first_name.to_owned()
            } else {
                format!("{} #{n}", KINDS[n % KINDS.len()])
            };
            // Most of the slot, 256-byte granular; a free range after some.
            let size = ((slot / 4 + next() % (slot / 2).max(1)) / 256).max(1) * 256;
            let requested = size - next() % 200;
            ranges.push(
                json!({ "offset": offset, "size": size, "requested": requested,
                                "kind": "Allocated", "name": name }),
            );
            names.push(name);
            let t = &mut per_type[memory_type];
            t.1 += requested;
            t.2 += size;
            t.3 += 1;
            offset += size;
            let end = if i + 1 == per_block {
                BLOCK
            } else {
                (offset + slot / 4).min(BLOCK)
            };
            if end > offset {
                ranges.push(
                    json!({ "offset": offset, "size": end - offset, "requested": 0,
                                    "kind": "Free", "name": null }),
                );
                free_ranges += 1;
                offset = end;
            }
        }
        per_type[memory_type].0 += BLOCK;
        let class = if memory_type == 1 {
            "optimal small"
        } else {
            "linear small"
        };
        blocks.push(json!({ "memory_type_index": memory_type, "class": class,
                            "dedicated": false, "size": BLOCK, "ranges": ranges }));
    }
    for d in 0..dedicated {
        let size = (1 << 20) + (next() % (24 << 20)) / 4096 * 4096;
        let name = format!("texture big #{d}");
        blocks.push(
            json!({ "memory_type_index": 1, "class": "dedicated", "dedicated": true,
            "size": size, "ranges": [{ "offset": 0, "size": size, "requested": size,
                                       "kind": "Allocated", "name": name }] }),
        );
        names.push(name);
        let t = &mut per_type[1];
        t.0 += size;
        t.1 += size;
        t.2 += size;
        t.3 += 1;
    }
    let types: Vec<Value> = per_type
        .iter()
        .enumerate()
        .map(|(i, &(committed, requested, allocated, count))| {
            json!({ "memory_type_index": i, "heap_index": if i == 2 { 1 } else { 0 },
                    "flags": if i == 2 { "HOST_VISIBLE | HOST_COHERENT" } else { "DEVICE_LOCAL" },
                    "block_count": 0, "empty_block_count": 0, "dedicated_count": 0,
                    "committed_bytes": committed, "allocated_bytes": allocated,
                    "requested_bytes": requested, "allocation_count": count,
                    "largest_free_block": 0, "free_block_histogram": {},
                    "host_metadata_bytes": 4096, "cached_bytes": 0, "cached_count": 0 })
        })
        .collect();
    let heap = |i: usize, committed: u64, requested: u64, allocated: u64, count: u64| {
        json!({ "heap_index": i, "size": 16u64 << 30, "flags": if i == 0 { "DEVICE_LOCAL" } else { "" },
                "budget": 12u64 << 30, "driver_usage": committed + (100 << 20),
                "block_count": 0, "dedicated_count": 0, "committed_bytes": committed,
                "allocated_bytes": allocated, "requested_bytes": requested, "allocation_count": count })
    };
    let (a, b) = (per_type[1], per_type[2]);
    let heaps = vec![heap(0, a.0, a.1, a.2, a.3), heap(1, b.0, b.1, b.2, b.3)];
    let committed = a.0 + b.0;
    let requested = a.1 + b.1;
    let dump = json!({
        "stats": {
            "total": { "block_count": pooled, "dedicated_count": dedicated,
                       "committed_bytes": committed, "allocated_bytes": a.2 + b.2,
                       "requested_bytes": requested, "allocation_count": names.len(),
                       "allocate_memory_calls": pooled + dedicated, "corruptions_detected": 0,
                       "efficiency": requested as f64 / committed.max(1) as f64 },
            "heaps": heaps,
            "memory_types": types,
        },
        "blocks": blocks,
    });
    Synthetic {
        dump,
        blocks: pooled + dedicated,
        allocations: names.len(),
        free_ranges,
        names,
    }
}
