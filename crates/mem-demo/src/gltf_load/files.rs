//! Reading the files a glTF file names: URIs resolved and kept inside the
//! asset's folder, only regular files read, every read bounded and charged
//! to the budget beforehand (rules in the parent module's docs).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::Budget;
use crate::error::{DemoError, GltfItem};

/// Where buffer and image URIs may lead.
pub(super) struct Files<'a> {
    /// The glTF file, for errors.
    pub(super) path: &'a Path,
    /// Its folder as given: relative URIs are joined to it.
    pub(super) base: &'a Path,
    /// Its folder, canonical: files must lie inside unless `allow_outside`.
    pub(super) folder: PathBuf,
    pub(super) allow_outside: bool,
}

impl Files<'_> {
    /// The canonical path of the file `uri` names (`relative`: its decoded
    /// path), refused when it lies outside the folder and that is not
    /// allowed: first by its text alone, before the file system is asked,
    /// then once symbolic links are resolved.
    pub(super) fn locate(
        &self,
        item: GltfItem,
        uri: &str,
        relative: &Path,
    ) -> Result<PathBuf, DemoError> {
        let outside = || DemoError::UriOutsideFolder {
            path: self.path.to_owned(),
            item,
            uri: uri.to_owned(),
            folder: self.folder.clone(),
        };
        if !self.allow_outside && !lexically_inside(relative, &self.folder) {
            return Err(outside());
        }
        let joined = self.base.join(relative);
        let canonical =
            std::fs::canonicalize(&joined).map_err(|e| io_error(self.path, item, &joined, e))?;
        if !self.allow_outside && !canonical.starts_with(&self.folder) {
            return Err(outside());
        }
        Ok(canonical)
    }
}

/// Whether `p`, a URI's path (relative to the asset's folder, or absolute),
/// stays inside `folder` (canonical) by its text: a relative path must not
/// climb above its start with `..`; an absolute one, with `.` and `..`
/// applied, must start with `folder`.
fn lexically_inside(p: &Path, folder: &Path) -> bool {
    if p.is_absolute() {
        let mut normal = PathBuf::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                c => normal.push(c),
            }
        }
        return normal.starts_with(folder);
    }
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The error for `file` (read for `item`) failing with `e`.
fn io_error(path: &Path, item: GltfItem, file: &Path, e: std::io::Error) -> DemoError {
    let not_found = e.kind() == std::io::ErrorKind::NotFound;
    match item {
        GltfItem::Buffer(index) if not_found => DemoError::MissingBuffer {
            path: path.to_owned(),
            index,
            file: file.to_owned(),
        },
        GltfItem::Image(index) if not_found => DemoError::MissingImage {
            path: path.to_owned(),
            index,
            file: file.to_owned(),
        },
        GltfItem::Buffer(index) => DemoError::BadBuffer {
            path: path.to_owned(),
            index,
            reason: format!("cannot read {}: {e}", file.display()),
        },
        GltfItem::Image(index) => DemoError::BadImage {
            path: path.to_owned(),
            index,
            reason: format!("cannot read {}: {e}", file.display()),
        },
        _ if not_found => DemoError::MissingFile {
            path: file.to_owned(),
        },
        _ => DemoError::Io {
            path: file.to_owned(),
            source: e,
        },
    }
}

/// What a file that is not a regular file is.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

/// `O_NONBLOCK` of Linux's generic `fcntl.h`, which these architectures
/// use (MIPS, SPARC and Alpha differ; there the check before opening
/// stands alone).
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "powerpc64",
        target_arch = "s390x",
        target_arch = "loongarch64"
    )
))]
const O_NONBLOCK: i32 = 0o4000;

/// Options to open a file for reading without blocking on a FIFO that
/// replaced it after it was checked (regular files ignore the flag).
fn read_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64",
            target_arch = "powerpc64",
            target_arch = "s390x",
            target_arch = "loongarch64"
        )
    ))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    options
}

/// Reads `file` for `item`, charging the budget before a byte is read:
/// only a regular file (checked on the path, since opening a FIFO blocks,
/// and again on the opened handle, which is what is read), and only
/// `length` bytes (a buffer's `byteLength`: a shorter file is an error) or,
/// without `length`, the size the handle reports.
pub(super) fn read_file(
    path: &Path,
    budget: &mut Budget<'_>,
    item: GltfItem,
    file: &Path,
    length: Option<u64>,
) -> Result<Vec<u8>, DemoError> {
    let io = |e| io_error(path, item, file, e);
    let not_regular = |meta: &std::fs::Metadata| DemoError::NotRegularFile {
        path: path.to_owned(),
        item,
        file: file.to_owned(),
        kind: file_kind(meta),
    };
    let short = |size: u64, length: u64| match item {
        GltfItem::Buffer(index) => DemoError::BadBuffer {
            path: path.to_owned(),
            index,
            reason: format!("has {size} bytes but its byteLength is {length}"),
        },
        _ => io(std::io::ErrorKind::UnexpectedEof.into()),
    };
    let meta = std::fs::metadata(file).map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let handle = read_options().open(file).map_err(io)?;
    let meta = handle.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let want = match length {
        Some(length) if meta.len() < length => return Err(short(meta.len(), length)),
        Some(length) => length,
        None => meta.len(),
    };
    budget.charge(item, want)?;
    let mut data = Vec::new();
    let capacity = usize::try_from(want).map_err(|_| io(std::io::ErrorKind::OutOfMemory.into()))?;
    data.try_reserve_exact(capacity)
        .map_err(|_| io(std::io::ErrorKind::OutOfMemory.into()))?;
    handle.take(want).read_to_end(&mut data).map_err(io)?;
    if (data.len() as u64) < want {
        // The file shrank after it was measured.
        return Err(short(data.len() as u64, want));
    }
    Ok(data)
}

/// Where a URI points.
#[derive(Debug, PartialEq)]
pub(super) enum Uri<'u> {
    /// The base64 payload of a `data:` URI.
    Data(&'u str),
    /// A file: a path relative to the asset's folder, or an absolute one
    /// (an absolute path, or a `file:` URI).
    File(PathBuf),
    /// A scheme or encoding this loader does not read.
    Unsupported(String),
}

pub(super) fn parse_uri(uri: &str) -> Uri<'_> {
    if let Some(rest) = uri.strip_prefix("data:") {
        return match rest.split_once(";base64,") {
            Some((_, data)) => Uri::Data(data),
            None => Uri::Unsupported("data URI is not base64-encoded".to_owned()),
        };
    }
    let path = if let Some(rest) = uri.strip_prefix("file://") {
        // file:///path, or file://localhost/path; other hosts are remote.
        match rest.strip_prefix("localhost").unwrap_or(rest) {
            p if p.starts_with('/') => p,
            _ => {
                return Uri::Unsupported(format!(
                    "URI {uri:?} names a host; only local files are read"
                ))
            }
        }
    } else if let Some(rest) = uri.strip_prefix("file:") {
        rest
    } else {
        if let Some((scheme, _)) = uri.split_once(':') {
            if !scheme.contains('/') {
                return Uri::Unsupported(format!(
                    "URI scheme {scheme:?} is not supported (only relative paths, file: and data:)"
                ));
            }
        }
        uri
    };
    match percent_decode(path) {
        Some(p) => Uri::File(PathBuf::from(p)),
        None => Uri::Unsupported(format!("URI {uri:?} has bad percent-encoding")),
    }
}

/// At least the bytes `payload` decodes to (base64: 3 per 4 characters).
pub(super) fn base64_len(payload: &str) -> u64 {
    (payload.len() as u64 / 4 + 1) * 3
}

/// RFC 3986 percent-decoding into UTF-8; `None` for a bad escape.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b.bin").as_deref(), Some("a b.bin"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff%fe"), None); // not UTF-8
    }

    #[test]
    fn uri_schemes() {
        assert_eq!(parse_uri("x.bin"), Uri::File(PathBuf::from("x.bin")));
        assert_eq!(
            parse_uri("data:application/octet-stream;base64,AAEC"),
            Uri::Data("AAEC")
        );
        assert!(matches!(
            parse_uri("data:text/plain,hello"),
            Uri::Unsupported(_)
        ));
        assert!(matches!(
            parse_uri("https://example.invalid/x.bin"),
            Uri::Unsupported(_)
        ));
        assert_eq!(
            parse_uri("file:///a/b%20c"),
            Uri::File(PathBuf::from("/a/b c"))
        );
        assert_eq!(
            parse_uri("file://localhost/a"),
            Uri::File(PathBuf::from("/a"))
        );
        assert_eq!(parse_uri("file:/a"), Uri::File(PathBuf::from("/a")));
        assert!(matches!(parse_uri("file://server/a"), Uri::Unsupported(_)));
    }

    #[test]
    fn lexical_containment() {
        let folder = Path::new("/assets/car");
        for inside in ["a.bin", "./a.bin", "sub/../a.bin", "sub/./x/../../a.bin"] {
            assert!(lexically_inside(Path::new(inside), folder), "{inside}");
        }
        for outside in [
            "../a.bin",
            "sub/../../a.bin",
            "..",
            "/etc/passwd",
            "/assets/car/../x",
        ] {
            assert!(!lexically_inside(Path::new(outside), folder), "{outside}");
        }
        assert!(lexically_inside(Path::new("/assets/car/a.bin"), folder));
        assert!(lexically_inside(
            Path::new("/assets/car/x/../a.bin"),
            folder
        ));
        assert!(!lexically_inside(Path::new("/assets/carpet/a.bin"), folder));
    }
}
