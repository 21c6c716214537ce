//! The report in a real browser: headless Chromium loads the page from a
//! file, and the tests read what its script saw (`--dump-dom`: the counts
//! it sets on `<body>`) and what it drew (`--screenshot`).
//!
//! Chromium must be installed (`.ci/run` installs Debian's `chromium`);
//! without it these tests fail and say how to install it, unless
//! `GPUMEM_SKIP_BROWSER=1` is set. `GPUMEM_CHROMIUM` names another build.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{assert_ready, body_attr, browser, file_url, synthetic, test_dir};
use mem_viewer::{html_report, html_report_value, DumpCounts, ReportOptions, Timeline};
use serde_json::json;

/// The name of the first allocation of the synthetic dumps: the page shows
/// it in the details panel at start, so it must arrive there as text.
const HOSTILE: &str = "</script><script>document.body.dataset.injected='1'</script><!-- & <b>";

fn timeline(samples: u64) -> Timeline {
    let mut t = Timeline::new();
    for i in 0..samples {
        let live = (i % 50) * (4 << 20) + (64 << 20);
        t.push(i as f64 * 0.016, (i / 50 + 1) * (256 << 20), live);
    }
    t
}

#[test]
fn the_script_reads_every_block_and_allocation() {
    let s = synthetic(7, 150, 5, HOSTILE);
    let leaks = json!([
        { "name": "hero vertices", "size": 4096, "memory_type_index": 1, "offset": 0, "dedicated": false },
        { "name": null, "size": 65536, "memory_type_index": 2, "offset": 8192, "dedicated": false },
        { "name": "sky", "size": 1 << 24, "memory_type_index": 1, "offset": 0, "dedicated": true }
    ]);
    let options = ReportOptions::new()
        .title("synthetic <dump>")
        .timeline(timeline(200))
        .leaks(leaks);
    let html = html_report_value(&s.dump, &options).unwrap();
    assert_eq!(
        DumpCounts::of(&s.dump).unwrap(),
        DumpCounts {
            heaps: 2,
            memory_types: 3,
            blocks: s.blocks,
            allocations: s.allocations,
            free_ranges: s.free_ranges,
        }
    );
    let dir = test_dir("counts");
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let Some(browser) = browser() else { return };
    let (dom, _) = browser.dump_dom(&dir, &file_url(&page), 5_000, Duration::from_secs(120));
    assert_ready(&dom);
    let expect = [
        ("data-blocks", s.blocks.to_string()),
        ("data-allocations", s.allocations.to_string()),
        ("data-free-ranges", s.free_ranges.to_string()),
        ("data-heaps", "2".to_owned()),
        ("data-memory-types", "3".to_owned()),
        ("data-leaks", "3".to_owned()),
        ("data-timeline-samples", "200".to_owned()),
    ];
    for (name, value) in expect {
        assert_eq!(
            body_attr(&dom, name).as_deref(),
            Some(value.as_str()),
            "{name}"
        );
    }
    // The visible summary line says the same.
    assert!(
        dom.contains(&format!("<b>{} allocations</b>", fmt_int(s.allocations))),
        "summary line missing"
    );
    assert!(dom.contains(&format!("<b>{} blocks</b>", s.blocks)));
    // The hostile name ran nothing and shows as text in the details panel.
    assert_eq!(
        body_attr(&dom, "data-injected"),
        None,
        "a name was run as script"
    );
    assert!(
        dom.contains("&lt;/script&gt;&lt;script&gt;document.body.dataset.injected"),
        "the first allocation's name is not shown as text"
    );
    assert!(dom.contains("<h1>synthetic &lt;dump&gt;</h1>"));
    // One list entry per block, the leak table.
    assert_eq!(dom.matches("role=\"option\"").count(), s.blocks);
    assert!(dom.contains("hero vertices"));
    assert!(dom.contains("3 allocations still alive"));
}

#[test]
fn search_from_the_address_counts_matches() {
    let s = synthetic(4, 60, 3, "first");
    let html = html_report_value(&s.dump, &ReportOptions::new()).unwrap();
    let dir = test_dir("search");
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let Some(browser) = browser() else { return };
    for query in ["texture", "VERTEX #1", "no such name"] {
        let expected = s
            .names
            .iter()
            .filter(|n| n.to_lowercase().contains(&query.to_lowercase()))
            .count();
        let url = format!("{}#search={}", file_url(&page), query.replace(' ', "%20"));
        let (dom, _) = browser.dump_dom(&dir, &url, 2_000, Duration::from_secs(120));
        assert_ready(&dom);
        assert_eq!(
            body_attr(&dom, "data-matches").as_deref(),
            Some(expected.to_string().as_str()),
            "matches of {query:?}"
        );
        // The page opens on the first match (here in block #0, the first
        // block drawn).
        if let Some(first) = s
            .names
            .iter()
            .find(|n| n.to_lowercase().contains(&query.to_lowercase()))
        {
            assert!(
                dom.contains(&format!("<span class=\"name\">{first}</span>")),
                "the details do not show {first:?}"
            );
        }
    }
}

/// Colours of the page's palette, drawn for the kinds of allocation in
/// the order of their bytes, and the free-space grey.
const FIRST_KIND: [u8; 3] = [0x4f, 0x9c, 0xf0];
const SECOND_KIND: [u8; 3] = [0xf2, 0x8e, 0x2b];
const FREE: [u8; 3] = [0x2f, 0x32, 0x3b];
const BACKGROUND: [u8; 3] = [0x12, 0x14, 0x19];

fn count_near(img: &image::RgbaImage, rgb: [u8; 3]) -> usize {
    img.pixels()
        .filter(|p| (0..3).all(|i| p.0[i].abs_diff(rgb[i]) <= 6))
        .count()
}

/// Checks a screenshot shows the page drawn: several distinct colours,
/// none covering nearly everything, and the allocations' and free space's
/// colours from the canvases.
fn assert_drawn(img: &image::RgbaImage, what: &str) {
    let total = (img.width() * img.height()) as usize;
    let mut histogram: HashMap<[u8; 3], usize> = HashMap::new();
    for p in img.pixels() {
        // Quantized to 32 levels a channel, so antialiasing does not count.
        *histogram
            .entry([p.0[0] >> 3, p.0[1] >> 3, p.0[2] >> 3])
            .or_default() += 1;
    }
    let common: Vec<_> = histogram.values().filter(|&&n| n * 1000 >= total).collect();
    assert!(
        common.len() >= 6,
        "{what}: only {} colours cover 0.1% of the picture each",
        common.len()
    );
    let largest = histogram.values().max().copied().unwrap_or(0);
    assert!(
        largest * 100 < total * 90,
        "{what}: one colour covers {}% of the picture",
        largest * 100 / total
    );
    let scale = total / (1280 * 720);
    for (name, rgb, at_least) in [
        ("background", BACKGROUND, 20_000),
        ("first kind", FIRST_KIND, 500),
        ("second kind", SECOND_KIND, 200),
        ("free space", FREE, 500),
    ] {
        let n = count_near(img, rgb);
        assert!(
            n >= at_least * scale.max(1),
            "{what}: the {name} colour {rgb:?} covers {n} pixels"
        );
    }
}

#[test]
fn screenshots_at_1280x720_and_4k_are_drawn() {
    let s = synthetic(6, 200, 12, "first");
    let html = html_report_value(
        &s.dump,
        &ReportOptions::new()
            .timeline(timeline(300))
            .leaks(json!([])),
    )
    .unwrap();
    let dir = test_dir("screenshot");
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let Some(browser) = browser() else { return };
    let url = file_url(&page);
    let img = browser.screenshot(&dir, &url, &dir.join("720p.png"), (1280, 720), 1);
    assert_eq!((img.width(), img.height()), (1280, 720));
    assert_drawn(&img, "1280x720");
    // A 4K screen at 200%: the canvases draw at device pixels.
    let img = browser.screenshot(&dir, &url, &dir.join("4k.png"), (1920, 1080), 2);
    assert_eq!((img.width(), img.height()), (3840, 2160));
    assert_drawn(&img, "3840x2160 (1920x1080 at 2x)");
    // And at 4K at 100%.
    let img = browser.screenshot(&dir, &url, &dir.join("4k1.png"), (3840, 2160), 1);
    assert_eq!((img.width(), img.height()), (3840, 2160));
    assert_drawn(&img, "3840x2160 at 1x");
}

#[test]
fn a_hundred_thousand_allocations_stay_small_and_render() {
    // 200 blocks of 500 allocations, each followed by a free range.
    let s = synthetic(200, 500, 0, "first");
    assert_eq!(s.allocations, 100_000);
    let ranges = s.allocations + s.free_ranges;
    let html = html_report_value(&s.dump, &ReportOptions::new().timeline(timeline(4096))).unwrap();
    // The dump is embedded compact: about 90 bytes a range (offset, size,
    // requested, kind, name); the page itself is some 60 KiB.
    let per_range = html.len() / ranges;
    assert!(
        html.len() < 120 * ranges + (256 << 10),
        "{} bytes for {ranges} ranges ({per_range} a range)",
        html.len()
    );
    println!(
        "{} allocations, {} free ranges: {:.1} MiB of HTML ({per_range} bytes a range)",
        s.allocations,
        s.free_ranges,
        html.len() as f64 / (1 << 20) as f64
    );
    let dir = test_dir("large");
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let Some(browser) = browser() else { return };
    // Not a benchmark: a bound far above the few seconds it takes, so that
    // a page that hangs fails instead of stalling the test run.
    let (dom, seconds) = browser.dump_dom(&dir, &file_url(&page), 10_000, Duration::from_secs(240));
    println!("headless Chromium loaded, drew and serialized the page in {seconds:.1} s");
    assert_ready(&dom);
    assert_eq!(
        body_attr(&dom, "data-allocations").as_deref(),
        Some("100000")
    );
    assert_eq!(body_attr(&dom, "data-blocks").as_deref(), Some("200"));
    // A search over all of them, from the address.
    let url = format!("{}#search=texture", file_url(&page));
    let (dom, _) = browser.dump_dom(&dir, &url, 10_000, Duration::from_secs(240));
    assert_ready(&dom);
    let expected = s.names.iter().filter(|n| n.contains("texture")).count();
    assert_eq!(
        body_attr(&dom, "data-matches").as_deref(),
        Some(expected.to_string().as_str())
    );
}

#[test]
fn a_summary_dump_and_an_empty_allocator_show() {
    let Some(browser) = browser() else { return };
    let dir = test_dir("summary");
    // Without block maps (`dump_json(false)`), and with nothing allocated.
    let summary = r#"{"stats":{"total":{"block_count":2,"dedicated_count":1,"committed_bytes":1024,
        "allocation_count":7,"efficiency":0.5},"heaps":[{"heap_index":0,"size":4096,"flags":"DEVICE_LOCAL",
        "budget":null,"driver_usage":null,"committed_bytes":1024}],"memory_types":[{"memory_type_index":0,
        "heap_index":0,"flags":"DEVICE_LOCAL","committed_bytes":1024,"allocated_bytes":512}]}}"#;
    let empty = r#"{"stats":{"total":{},"heaps":[],"memory_types":[]},"blocks":[]}"#;
    for (name, dump, text) in [
        ("summary", summary, "a summary dump"),
        ("empty", empty, "<b>0 allocations</b>"),
    ] {
        let page = dir.join(format!("{name}.html"));
        std::fs::write(&page, html_report(dump, &ReportOptions::new()).unwrap()).unwrap();
        let (dom, _) = browser.dump_dom(&dir, &file_url(&page), 2_000, Duration::from_secs(120));
        assert_ready(&dom);
        assert_eq!(
            body_attr(&dom, "data-blocks").as_deref(),
            Some("0"),
            "{name}"
        );
        assert_eq!(body_attr(&dom, "data-leaks").as_deref(), Some("unknown"));
        assert!(dom.contains(text), "{name}: {text:?} not shown");
    }
}

fn fmt_int(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A page that loads the report in a frame, presses keys and moves the
/// mouse in it with script, and writes what the report showed after each
/// step into `<pre id="result">` as JSON (the browser runs with
/// `--allow-file-access-from-files`, so the frame's document is reachable).
const HARNESS: &str = r#"<!DOCTYPE html>
<html><body>
<iframe id="f" src="report.html" style="width:1280px;height:720px;border:0"></iframe>
<script>
const f = document.getElementById('f');
f.addEventListener('load', () => {
  const out = {};
  try {
    const d = f.contentDocument;
    const w = f.contentWindow;
    const key = (el, k, extra) =>
      el.dispatchEvent(new w.KeyboardEvent('keydown', Object.assign({ key: k, bubbles: true, cancelable: true }, extra || {})));
    const name = () => d.querySelector('#detail-body .name').textContent;
    const pinned = () => d.querySelector('#detail-body .pin') !== null;
    const block = () => d.getElementById('blocklist').getAttribute('aria-activedescendant');
    const list = d.getElementById('blocklist');
    list.focus();
    out.start = [name(), block()];
    key(list, 'ArrowRight');
    out.right = [name(), block()];
    key(list, 'Enter');
    out.enter = [name(), pinned()];
    key(list, 'Escape');
    out.escape = pinned();
    key(list, 'ArrowDown');
    out.down = block();
    key(list, 'End');
    out.end = name();
    key(list, 'ArrowRight');
    out.next_block = [name(), block()];
    key(list, 'ArrowLeft');
    out.back = [name(), block()];
    key(list, 'Home');
    out.home = name();
    key(list, 'ArrowUp');
    out.up = block();
    key(d.body, '/');
    out.slash = d.activeElement.id;
    const input = d.getElementById('search');
    input.value = '#7';
    key(input, 'Enter');
    out.search = [name(), d.body.dataset.matches];
    key(input, 'Escape');
    out.cleared = d.body.dataset.matches;
    // The pointer over the first memory type's map, 2 px into its first
    // block: the tooltip names the allocation; a click pins it.
    const map = d.querySelector('.map-wrap');
    const r = map.getBoundingClientRect();
    const at = { clientX: r.left + 2, clientY: r.top + 30, bubbles: true };
    map.dispatchEvent(new w.MouseEvent('mousemove', at));
    const tip = d.getElementById('tooltip');
    out.hover = [tip.hidden, tip.querySelector('.name') ? tip.querySelector('.name').textContent : null];
    map.dispatchEvent(new w.MouseEvent('click', at));
    out.click = [name(), pinned()];
  } catch (e) {
    out.error = String(e && e.stack || e);
  }
  const pre = document.createElement('pre');
  pre.id = 'result';
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
});
</script>
</body></html>
"#;

#[test]
fn keyboard_and_pointer_move_pin_and_search() {
    let per_block = 40;
    let s = synthetic(4, per_block, 2, "first");
    let dir = test_dir("keyboard");
    std::fs::write(
        dir.join("report.html"),
        html_report_value(&s.dump, &ReportOptions::new()).unwrap(),
    )
    .unwrap();
    let harness = dir.join("harness.html");
    std::fs::write(&harness, HARNESS).unwrap();
    let Some(browser) = browser() else { return };
    let (dom, _) = browser.dump_dom_with(
        &dir,
        &file_url(&harness),
        &["--allow-file-access-from-files"],
        5_000,
        Duration::from_secs(120),
    );
    let start = dom
        .find("<pre id=\"result\">")
        .expect("the harness finished")
        + 17;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let out: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(out.get("error").is_none(), "{}", out["error"]);
    // Blocks in the page's order: type 1's pooled blocks (#0, #1, #3) in
    // dump order, then its memory of its own; type 2's (#2) last.
    let n = |i: usize| json!(s.names[i]);
    assert_eq!(out["start"], json!([s.names[0], "block-0"]));
    assert_eq!(
        out["right"],
        json!([s.names[1], "block-0"]),
        "→: next allocation"
    );
    assert_eq!(out["enter"], json!([s.names[1], true]), "Enter pins");
    assert_eq!(out["escape"], json!(false), "Esc unpins");
    assert_eq!(out["down"], json!("block-1"), "↓: next block");
    assert_eq!(out["end"], n(2 * per_block - 1), "End: last of the block");
    assert_eq!(
        out["next_block"],
        json!([s.names[3 * per_block], "block-3"]),
        "→ at a block's end: the next block's first"
    );
    assert_eq!(out["back"], json!([s.names[2 * per_block - 1], "block-1"]));
    assert_eq!(out["home"], n(per_block), "Home: first of the block");
    assert_eq!(out["up"], json!("block-0"), "↑: previous block");
    assert_eq!(out["slash"], json!("search"), "/ focuses the search box");
    let first = s.names.iter().find(|m| m.contains("#7")).unwrap();
    let count = s.names.iter().filter(|m| m.contains("#7")).count();
    assert_eq!(
        out["search"],
        json!([first, count.to_string()]),
        "Enter in the search box selects the first match"
    );
    assert_eq!(out["cleared"], json!("0"), "Esc clears the search");
    assert_eq!(out["hover"], json!([false, s.names[0]]), "the tooltip");
    assert_eq!(out["click"], json!([s.names[0], true]), "a click pins");
}
