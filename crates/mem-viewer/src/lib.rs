//! A memory viewer in one HTML file: gpumem's allocator dump
//! (`Allocator::dump_json(true)`) drawn for an engine programmer to open in
//! any browser, offline.
//!
//! # Quick start
//!
//! 1. Take a dump of the allocator, and its leak report if you want one.
//! 2. Optionally, sample committed and live bytes into a [`Timeline`] while
//!    the application runs.
//! 3. Turn them into a page with [`html_report`] (or write the file with
//!    [`write_html_report`]).
//!
//! ```
//! use mem_viewer::{html_report, ReportOptions, Timeline};
//! # let dump_json = r#"{"stats":{"total":{},"heaps":[],"memory_types":[]},"blocks":[]}"#;
//! // let dump_json = allocator.dump_json(true);
//! let mut timeline = Timeline::new();
//! timeline.sample(256 << 20, 200 << 20); // allocator.stats().total: committed, requested
//! let options = ReportOptions::new()
//!     .title("level 3 after load")
//!     .timeline(timeline)
//!     .leaks(serde_json::json!([])); // serde_json::to_value(allocator.leak_report())
//! let html = html_report(dump_json, &options)?;
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! # Ok::<(), mem_viewer::ViewerError>(())
//! ```
//!
//! # The page
//!
//! Per heap: the bytes this allocator committed against the heap's size and
//! its `VK_EXT_memory_budget` budget and usage, and what the committed
//! bytes hold (requested, rounding, free). Per memory type: every block
//! (`VkDeviceMemory`) drawn to scale with its allocations coloured by kind
//! (the first word of the name), the bytes kept beyond each request darker,
//! free space grey; memory of its own, the cache and the free-range
//! histogram. Hovering shows an allocation's name, size, offset, class and
//! resource; a click pins it; the side panel magnifies the block around it.
//! A search box highlights allocations by name (also from the address:
//! `report.html#search=texture`). The leak list and the timeline chart
//! follow.
//!
//! Blocks are painted on one `<canvas>` per memory type, ranges batched by
//! colour, with hover and selection on a second canvas above it: the page
//! stays responsive with 100,000 allocations. Canvases follow
//! `devicePixelRatio`, so the drawing is sharp on a 4K screen, and the
//! layout folds to one column on narrow windows. The keyboard reaches
//! everything: Tab to the search box, the block list and each memory type's
//! map; arrow keys move between allocations (← →) and blocks (↑ ↓); Enter
//! pins; `/` searches.
//!
//! The file is self-contained: inline CSS and script, system fonts, no
//! network request. The dump is embedded verbatim (compacted) as JSON in a
//! `<script type="application/json" id="gpumem-dump">` element, with `<`,
//! `>` and `&` escaped, so no allocation name can end the element; names
//! are put in the page as text, never as markup. The page's "Dump JSON"
//! link saves it again.
//!
//! Once the script has read the dump, `<body>` carries the counts as
//! attributes, for tests and tools (`chromium --headless --dump-dom`):
//! `data-blocks`, `data-allocations`, `data-free-ranges`, `data-heaps`,
//! `data-memory-types`, `data-leaks` (`unknown` without a leak report),
//! `data-timeline-samples`, `data-matches` (after a search), and
//! `data-ready="1"` once everything is drawn; `data-error` holds the
//! message if the script failed.
//!
//! The crate reads the dump's JSON only and names no mem-core type: a dump
//! written by another process, saved to disk, or from another version of
//! mem-core draws the same way. [`DumpCounts`] documents the shape it
//! expects.
#![deny(unsafe_code)]

mod dump;
mod timeline;

use std::path::{Path, PathBuf};

pub use dump::DumpCounts;
/// The JSON crate the options take values of (for
/// `serde_json::to_value(allocator.leak_report())`).
pub use serde_json;
pub use timeline::{Timeline, TimelineSample};

/// Title of a report whose [`ReportOptions::title`] is `None`.
pub const DEFAULT_TITLE: &str = "gpumem memory report";

const TEMPLATE: &str = include_str!("page.html");
const CSS: &str = include_str!("viewer.css");
const SCRIPT: &str = include_str!("viewer.js");

/// What a report shows besides the dump.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// The page's title and heading (plain text; escaped). Default: `None`,
    /// which shows [`DEFAULT_TITLE`].
    pub title: Option<String>,
    /// Committed and live bytes over time, drawn as a chart above the
    /// memory types. Default: `None` (no chart).
    pub timeline: Option<Timeline>,
    /// The leak report: a JSON array of objects with `name`, `size`,
    /// `memory_type_index`, `offset` and `dedicated`, as
    /// `serde_json::to_value(allocator.leak_report())` gives. Default:
    /// `None`, and the page says that it has no leak report; an empty array
    /// shows "no leak".
    pub leaks: Option<serde_json::Value>,
}

impl ReportOptions {
    /// No title, timeline or leak report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Self::title`].
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets [`Self::timeline`].
    pub fn timeline(mut self, timeline: Timeline) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// Sets [`Self::leaks`].
    pub fn leaks(mut self, leaks: serde_json::Value) -> Self {
        self.leaks = Some(leaks);
        self
    }
}

/// Why no report was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewerError {
    /// The dump's text is not JSON.
    #[error("the dump is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON does not have the dump's (or the leak report's) shape.
    #[error("{document} at JSON pointer {at:?}: expected {expected}")]
    Shape {
        /// `"the dump"` or `"the leak report"`.
        document: &'static str,
        /// JSON pointer to the value (`""` for the whole document).
        at: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The report could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The report of `dump_json` (the text of `Allocator::dump_json`) as one
/// self-contained HTML page.
///
/// # Errors
///
/// [`ViewerError::Json`] when `dump_json` is not JSON;
/// [`ViewerError::Shape`] when it (or [`ReportOptions::leaks`]) does not
/// have the shape described in [`DumpCounts`].
pub fn html_report(dump_json: &str, options: &ReportOptions) -> Result<String, ViewerError> {
    let dump: serde_json::Value = serde_json::from_str(dump_json)?;
    html_report_value(&dump, options)
}

/// As [`html_report`], from a parsed dump.
///
/// # Errors
///
/// [`ViewerError::Shape`] as for [`html_report`].
pub fn html_report_value(
    dump: &serde_json::Value,
    options: &ReportOptions,
) -> Result<String, ViewerError> {
    report(dump, options).map(|(html, _)| html)
}

/// Writes the report of `dump_json` to `path` (created or replaced) and
/// returns what the dump holds.
///
/// # Errors
///
/// As [`html_report`], and [`ViewerError::Write`] when the file cannot be
/// written.
pub fn write_html_report(
    path: impl AsRef<Path>,
    dump_json: &str,
    options: &ReportOptions,
) -> Result<DumpCounts, ViewerError> {
    let path = path.as_ref();
    let dump: serde_json::Value = serde_json::from_str(dump_json)?;
    let (html, counts) = report(&dump, options)?;
    std::fs::write(path, html).map_err(|source| ViewerError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(counts)
}

fn report(
    dump: &serde_json::Value,
    options: &ReportOptions,
) -> Result<(String, DumpCounts), ViewerError> {
    let counts = DumpCounts::of(dump)?;
    if let Some(leaks) = &options.leaks {
        dump::check_leaks(leaks)?;
    }
    let title = escape_html(options.title.as_deref().unwrap_or(DEFAULT_TITLE));
    let dump_text = dump::script_json(dump);
    let leaks = options
        .leaks
        .as_ref()
        .map_or_else(|| "null".to_owned(), dump::script_json);
    let timeline = options
        .timeline
        .as_ref()
        .map_or_else(|| "null".to_owned(), |t| dump::script_json(&t.to_json()));
    let html = fill(
        TEMPLATE,
        &[
            ("VERSION", env!("CARGO_PKG_VERSION")),
            ("TITLE", &title),
            ("CSS", CSS),
            ("DUMP", &dump_text),
            ("LEAKS", &leaks),
            ("TIMELINE", &timeline),
            ("JS", SCRIPT),
        ],
    );
    Ok((html, counts))
}

/// `template` with each `@@NAME@@` replaced by its value. Values are not
/// scanned again, so a dump holding `@@` stays as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let extra: usize = values.iter().map(|(_, v)| v.len()).sum();
    let mut out = String::with_capacity(template.len() + extra);
    let mut rest = template;
    while let Some(start) = rest.find("@@") {
        let after = &rest[start + 2..];
        let end = after.find("@@").expect("template markers come in pairs");
        let key = &after[..end];
        let value = values
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("template marker @@{key}@@ has no value"))
            .1;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"{"stats":{"total":{},"heaps":[],"memory_types":[]}}"#;

    #[test]
    fn assets_cannot_break_the_page() {
        // The script and style are inserted raw: they must not close their
        // element early.
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!SCRIPT.contains("<!--"));
        assert!(!CSS.to_ascii_lowercase().contains("</style"));
        // Every marker of the template has a value.
        let html = html_report(DUMP, &ReportOptions::new()).unwrap();
        assert!(!html.contains("@@"));
    }

    #[test]
    fn self_contained() {
        let html = html_report(DUMP, &ReportOptions::new()).unwrap();
        let lower = html.to_ascii_lowercase();
        for needle in [
            "http://",
            "https://",
            "<link",
            " src=",
            "@import",
            "fetch(",
            "xmlhttprequest",
            "websocket",
        ] {
            assert!(!lower.contains(needle), "the page refers to {needle}");
        }
        assert!(!CSS.contains("url("), "the style loads nothing");
    }

    #[test]
    fn title_is_text() {
        let html = html_report(DUMP, &ReportOptions::new().title("<b>level</b> & \"co\"")).unwrap();
        assert!(html.contains("<title>&lt;b&gt;level&lt;/b&gt; &amp; &quot;co&quot;</title>"));
        assert!(!html.contains("<b>level"));
        let default = html_report(DUMP, &ReportOptions::new()).unwrap();
        assert!(default.contains(&format!("<h1>{DEFAULT_TITLE}</h1>")));
    }

    #[test]
    fn dump_with_markers_is_kept() {
        let dump = r#"{"stats":{"total":{},"heaps":[],"memory_types":[]},"note":"@@JS@@"}"#;
        let html = html_report(dump, &ReportOptions::new()).unwrap();
        assert!(html.contains(r#""note":"@@JS@@""#));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            html_report("{", &ReportOptions::new()),
            Err(ViewerError::Json(_))
        ));
        let e = html_report("{}", &ReportOptions::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the dump at JSON pointer \"/stats\": expected a value, found none"
        );
        let e = html_report(
            DUMP,
            &ReportOptions::new().leaks(serde_json::json!([{}, 3])),
        )
        .unwrap_err();
        assert!(
            matches!(e, ViewerError::Shape { document: "the leak report", ref at, .. } if at == "/1"),
            "{e}"
        );
    }

    #[test]
    fn write_reports_the_path() {
        let dir = std::env::temp_dir().join(format!("mem-viewer-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let counts = write_html_report(dir.join("r.html"), DUMP, &ReportOptions::new()).unwrap();
        assert_eq!(counts, DumpCounts::default());
        let e = write_html_report(&dir, DUMP, &ReportOptions::new()).unwrap_err();
        assert!(matches!(e, ViewerError::Write { .. }), "{e}");
        assert!(e.to_string().starts_with("writing "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
