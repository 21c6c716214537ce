//! Turns a dump saved by an application (`Allocator::dump_json(true)`
//! written to a file) into the HTML report.
//!
//! ```text
//! cargo run --release -p mem-viewer --example dump_to_html -- DUMP.json [REPORT.html] [--leaks LEAKS.json] [--title TEXT]
//! ```
//!
//! `REPORT.html` defaults to the dump's path with `.html`; `LEAKS.json` is
//! `allocator.leak_report()` as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use mem_viewer::{write_html_report, ReportOptions};

const USAGE: &str =
    "usage: dump_to_html DUMP.json [REPORT.html] [--leaks LEAKS.json] [--title TEXT]";

fn main() -> ExitCode {
    match run() {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<String, String> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut options = ReportOptions::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--help" | "-h") => return Ok(USAGE.to_owned()),
            Some("--leaks") => {
                let path = PathBuf::from(args.next().ok_or(USAGE)?);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let leaks = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
                options = options.leaks(leaks);
            }
            Some("--title") => {
                let title = args.next().ok_or(USAGE)?;
                options = options.title(title.to_string_lossy());
            }
            _ => paths.push(arg.into()),
        }
    }
    let (dump, out) = match paths.as_slice() {
        [dump] => (dump.clone(), dump.with_extension("html")),
        [dump, out] => (dump.clone(), out.clone()),
        _ => return Err(USAGE.to_owned()),
    };
    let text = std::fs::read_to_string(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let counts =
        write_html_report(&out, &text, &options).map_err(|e| format!("{}: {e}", dump.display()))?;
    Ok(format!(
        "wrote {} ({} blocks, {} allocations)",
        out.display(),
        counts.blocks,
        counts.allocations
    ))
}
