//! The dump's shape, as `mem_core::Allocator::dump_json` writes it, checked
//! and counted without naming mem-core's types, and the JSON text made safe
//! to embed in the page.
//!
//! ```text
//! { "stats": { "total": {...}, "heaps": [{...}], "memory_types": [{...}] },
//!   "blocks": [ { "memory_type_index": 1, "class": "linear small", "dedicated": false,
//!                 "size": 268435456,
//!                 "ranges": [ { "offset": 0, "size": 4096, "requested": 4000,
//!                               "kind": "Allocated", "name": "vertex #3" },
//!                             { "offset": 4096, ..., "kind": "Free", "name": null } ] } ] }
//! ```
//!
//! `blocks` is present in a detailed dump only (`dump_json(true)`). Fields
//! the page does not know are kept and ignored, so a newer dump still draws.

use serde_json::Value;

use crate::ViewerError;

/// What a dump holds, counted the way the page counts it (the page sets the
/// same numbers as `data-*` attributes of its `<body>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpCounts {
    /// Heaps in `stats.heaps`.
    pub heaps: usize,
    /// Memory types in `stats.memory_types`.
    pub memory_types: usize,
    /// Block maps (`VkDeviceMemory` objects: pooled blocks and memory of
    /// their own) in `blocks`; 0 for a dump without block maps.
    pub blocks: usize,
    /// Allocated ranges over all block maps.
    pub allocations: usize,
    /// Free ranges over all block maps.
    pub free_ranges: usize,
}

impl DumpCounts {
    /// Checks that `dump` has the shape above and counts it.
    ///
    /// # Errors
    ///
    /// [`ViewerError::Shape`] naming the first value (as a JSON pointer)
    /// that is missing or of the wrong type.
    pub fn of(dump: &Value) -> Result<Self, ViewerError> {
        let doc = Doc("the dump");
        let root = doc.object(dump, String::new)?;
        let stats = doc.object(doc.field(root, "stats", String::new)?, || "/stats".into())?;
        let heaps = doc.array(doc.field(stats, "heaps", || "/stats".into())?, || {
            "/stats/heaps".into()
        })?;
        for (i, h) in heaps.iter().enumerate() {
            doc.object(h, || format!("/stats/heaps/{i}"))?;
        }
        let types = doc.array(
            doc.field(stats, "memory_types", || "/stats".into())?,
            || "/stats/memory_types".into(),
        )?;
        for (i, t) in types.iter().enumerate() {
            doc.object(t, || format!("/stats/memory_types/{i}"))?;
        }
        let mut counts = DumpCounts {
            heaps: heaps.len(),
            memory_types: types.len(),
            ..DumpCounts::default()
        };
        let Some(blocks) = root.get("blocks") else {
            return Ok(counts);
        };
        // Paths are formatted only on error: a dump may hold 10^5 ranges.
        for (i, block) in doc.array(blocks, || "/blocks".into())?.iter().enumerate() {
            let at = || format!("/blocks/{i}");
            let b = doc.object(block, at)?;
            for name in ["memory_type_index", "size"] {
                doc.number(doc.field(b, name, at)?, || format!("{}/{name}", at()))?;
            }
            let ranges = doc.array(doc.field(b, "ranges", at)?, || format!("{}/ranges", at()))?;
            for (j, range) in ranges.iter().enumerate() {
                let at = || format!("/blocks/{i}/ranges/{j}");
                let r = doc.object(range, at)?;
                for name in ["offset", "size"] {
                    doc.number(doc.field(r, name, at)?, || format!("{}/{name}", at()))?;
                }
                match doc.field(r, "kind", at)?.as_str() {
                    Some("Allocated") => counts.allocations += 1,
                    Some("Free") => counts.free_ranges += 1,
                    _ => {
                        return Err(doc.error(format!("{}/kind", at()), "\"Allocated\" or \"Free\""))
                    }
                }
                if let Some(name) = r.get("name") {
                    if !(name.is_null() || name.is_string()) {
                        return Err(doc.error(format!("{}/name", at()), "a string or null"));
                    }
                }
            }
            counts.blocks += 1;
        }
        Ok(counts)
    }
}

/// Checks that `leaks` is a list of objects (what
/// `serde_json::to_value(allocator.leak_report())` gives).
pub(crate) fn check_leaks(leaks: &Value) -> Result<usize, ViewerError> {
    let doc = Doc("the leak report");
    let list = doc.array(leaks, String::new)?;
    for (i, l) in list.iter().enumerate() {
        doc.object(l, || format!("/{i}"))?;
    }
    Ok(list.len())
}

/// `value` as compact JSON that can sit inside a `<script>` element: every
/// `<`, `>` and `&` (which JSON allows only inside strings) is written as a
/// `\u` escape, so no `</script>` or `<!--` can end or confuse the element.
pub(crate) fn script_json(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("a serde_json::Value serializes");
    let mut out = String::with_capacity(text.len() + text.len() / 64);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Valid in JSON, but a line terminator in older JavaScript
            // parsers; escaped for any tool that evaluates the text.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Which document a shape error is in.
#[derive(Clone, Copy)]
struct Doc(&'static str);

impl Doc {
    fn error(self, at: String, expected: &'static str) -> ViewerError {
        ViewerError::Shape {
            document: self.0,
            at,
            expected,
        }
    }

    fn object(
        self,
        v: &Value,
        at: impl Fn() -> String,
    ) -> Result<&serde_json::Map<String, Value>, ViewerError> {
        v.as_object().ok_or_else(|| self.error(at(), "an object"))
    }

    fn array(self, v: &Value, at: impl Fn() -> String) -> Result<&Vec<Value>, ViewerError> {
        v.as_array().ok_or_else(|| self.error(at(), "an array"))
    }

    fn number(self, v: &Value, at: impl Fn() -> String) -> Result<u64, ViewerError> {
        v.as_u64()
            .ok_or_else(|| self.error(at(), "a non-negative integer"))
    }

    /// `o[name]`, where `o` is at `at`.
    fn field<'a>(
        self,
        o: &'a serde_json::Map<String, Value>,
        name: &str,
        at: impl Fn() -> String,
    ) -> Result<&'a Value, ViewerError> {
        o.get(name)
            .ok_or_else(|| self.error(format!("{}/{name}", at()), "a value, found none"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({ "stats": { "total": {}, "heaps": [{}], "memory_types": [{}, {}] } })
    }

    #[test]
    fn counts_a_summary_dump() {
        let c = DumpCounts::of(&minimal()).unwrap();
        assert_eq!(
            c,
            DumpCounts {
                heaps: 1,
                memory_types: 2,
                ..DumpCounts::default()
            }
        );
    }

    #[test]
    fn counts_ranges() {
        let mut d = minimal();
        d["blocks"] = json!([
            { "memory_type_index": 0, "size": 100, "ranges": [
                { "offset": 0, "size": 10, "kind": "Allocated", "name": "a" },
                { "offset": 10, "size": 90, "kind": "Free", "name": null } ] },
            { "memory_type_index": 1, "size": 5, "ranges": [
                { "offset": 0, "size": 5, "kind": "Allocated" } ] }
        ]);
        let c = DumpCounts::of(&d).unwrap();
        assert_eq!((c.blocks, c.allocations, c.free_ranges), (2, 2, 1));
    }

    #[test]
    fn names_the_bad_value() {
        let mut d = minimal();
        d["blocks"] = json!([{ "memory_type_index": 0, "size": 1, "ranges": [
            { "offset": 0, "size": 1, "kind": "Used" } ] }]);
        match DumpCounts::of(&d) {
            Err(ViewerError::Shape { document, at, .. }) => {
                assert_eq!(
                    (document, at.as_str()),
                    ("the dump", "/blocks/0/ranges/0/kind")
                )
            }
            other => panic!("{other:?}"),
        }
        match DumpCounts::of(&json!({ "stats": { "heaps": [] } })) {
            Err(ViewerError::Shape { at, expected, .. }) => {
                assert_eq!(
                    (at.as_str(), expected),
                    ("/stats/memory_types", "a value, found none")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(DumpCounts::of(&json!([])).is_err());
        d["blocks"] = json!([{ "memory_type_index": -1, "size": 1, "ranges": [] }]);
        assert!(DumpCounts::of(&d).is_err());
    }

    #[test]
    fn script_json_cannot_close_the_element() {
        let v = json!({ "name": "</script><script>alert(1)</script><!-- & \u{2028}" });
        let s = script_json(&v);
        assert!(
            !s.contains('<') && !s.contains('>') && !s.contains('&'),
            "{s}"
        );
        assert!(!s.contains('\u{2028}'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
