//! Where an upload's bytes come from: a finished slice, a writer that fills
//! the ring (or a host-visible destination) in place, from several threads
//! when it is `Sync`, or a reader. Every source is asked for the upload's
//! bytes `[at, at + len)` of one piece at a time, in order for a reader.

use rayon::prelude::*;

use super::ring_space::{copy_piece, parallel_copy};

/// What a writer or reader returns when it cannot produce its bytes.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// A writer several threads may call at once.
type SharedWriter<'a> = &'a (dyn Fn(u64, &mut [u8]) -> Result<(), SourceError> + Sync);
/// A writer called once per piece, in order.
type ExclusiveWriter<'a> = &'a mut (dyn FnMut(u64, &mut [u8]) -> Result<(), SourceError> + Send);

/// The bytes of one upload.
pub(super) enum Source<'a> {
    /// A finished slice, copied with up to `threads` threads.
    Bytes(&'a [u8]),
    /// A writer called with (offset in the upload, bytes to fill), from
    /// several threads at once for large pieces.
    Shared(SharedWriter<'a>),
    /// A writer called once per piece, in order (a reader).
    Exclusive(ExclusiveWriter<'a>),
}

impl Source<'_> {
    /// Fills `dst` with the upload's bytes `[at, at + dst.len())`, with up to
    /// `threads` threads where the source allows.
    pub(super) fn fill(
        &mut self,
        at: u64,
        dst: &mut [u8],
        threads: usize,
    ) -> Result<(), SourceError> {
        match self {
            Source::Bytes(data) => {
                let start = at as usize;
                parallel_copy(dst, &data[start..start + dst.len()], threads);
                Ok(())
            }
            Source::Shared(write) => {
                let piece = copy_piece(dst.len(), threads);
                if piece >= dst.len() {
                    return write(at, dst);
                }
                dst.par_chunks_mut(piece)
                    .enumerate()
                    .try_for_each(|(i, d)| write(at + (i * piece) as u64, d))
            }
            Source::Exclusive(write) => write(at, dst),
        }
    }

    /// True for a slice (which the import path can take).
    pub(super) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Source::Bytes(data) => Some(data),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_shared_writer_fills_every_byte_once_from_several_threads() {
        let calls = AtomicUsize::new(0);
        let write = |at: u64, d: &mut [u8]| -> Result<(), SourceError> {
            calls.fetch_add(1, Ordering::Relaxed);
            for (i, b) in d.iter_mut().enumerate() {
                *b = ((at + i as u64) % 251) as u8;
            }
            Ok(())
        };
        let mut dst = vec![0u8; 1 << 20];
        Source::Shared(&write).fill(1000, &mut dst, 4).unwrap();
        assert!(dst
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((1000 + i as u64) % 251) as u8));
        assert_eq!(calls.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_failing_writer_reports_its_error() {
        let write = |at: u64, _: &mut [u8]| -> Result<(), SourceError> {
            if at > 0 {
                Err("decoder ran out of input".into())
            } else {
                Ok(())
            }
        };
        let mut dst = vec![0u8; 1 << 20];
        let e = Source::Shared(&write).fill(0, &mut dst, 4).unwrap_err();
        assert_eq!(e.to_string(), "decoder ran out of input");
    }
}
