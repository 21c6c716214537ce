//! Where an upload's bytes come from: a finished slice, a writer that fills
//! the ring (or a host-visible destination) in place, from several threads
//! when it is `Sync`, or a reader. Every source is asked for the upload's
//! bytes `[at, at + len)` of one piece at a time, in order for a reader.

use rayon::prelude::*;

use super::ring_space::{copy_piece, parallel_copy, stream_copy};

/// Bytes a writer fills at a time when the belt copies with streaming
/// stores: small enough to stay in the core's L2 cache between the writer's
/// stores and the streaming copy into the ring.
const BOUNCE: usize = 128 << 10;

/// Calls `write` for `dst`'s bytes in pieces of at most [`BOUNCE`] bytes
/// written into a cache-resident buffer, each then streamed into `dst`
/// ([`stream_copy`]): the writer's stores stay in the cache and the ring
/// gets whole lines without reading them first.
fn write_streamed(
    write: &mut dyn FnMut(u64, &mut [u8]) -> WriteResult,
    at: u64,
    dst: &mut [u8],
) -> Result<(), SourceError> {
    thread_local! {
        /// One bounce buffer per copy thread, kept for the thread's life.
        static BOUNCE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // Taken out while in use: a writer that runs rayon work of its own may
    // re-enter here on this thread, and then gets a buffer of its own.
    let mut bounce = BOUNCE_BUFFER.take();
    bounce.resize(BOUNCE, 0);
    let mut done = 0;
    let mut result = Ok(());
    for d in dst.chunks_mut(BOUNCE) {
        let b = &mut bounce[..d.len()];
        if let Err(e) = write(at + done as u64, b) {
            result = Err(e);
            break;
        }
        stream_copy(d, b);
        done += d.len();
    }
    BOUNCE_BUFFER.set(bounce);
    result
}

/// What a writer or reader returns when it cannot produce its bytes.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// What a writer returns for one piece.
type WriteResult = Result<(), SourceError>;

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
        streaming: bool,
    ) -> Result<(), SourceError> {
        match self {
            Source::Bytes(data) => {
                let start = at as usize;
                parallel_copy(dst, &data[start..start + dst.len()], threads, streaming);
                Ok(())
            }
            Source::Shared(write) => {
                let piece = copy_piece(dst.len(), threads);
                let fill = |at: u64, d: &mut [u8]| {
                    if streaming {
                        write_streamed(&mut |at, b| write(at, b), at, d)
                    } else {
                        write(at, d)
                    }
                };
                if piece >= dst.len() {
                    return fill(at, dst);
                }
                dst.par_chunks_mut(piece)
                    .enumerate()
                    .try_for_each(|(i, d)| fill(at + (i * piece) as u64, d))
            }
            Source::Exclusive(write) if streaming => write_streamed(&mut **write, at, dst),
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
        Source::Shared(&write)
            .fill(1000, &mut dst, 4, false)
            .unwrap();
        assert!(dst
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((1000 + i as u64) % 251) as u8));
        assert_eq!(calls.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn streaming_copies_every_byte_at_any_alignment_and_length() {
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..70 {
            for len in (0..300).chain([1000, 4000 - start]) {
                let mut dst = vec![0u8; 4096];
                stream_copy(&mut dst[start..start + len], &src[..len]);
                assert_eq!(
                    &dst[start..start + len],
                    &src[..len],
                    "start {start} len {len}"
                );
                assert!(dst[..start].iter().all(|&b| b == 0));
                assert!(dst[start + len..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn streamed_writers_and_slices_fill_every_byte_once() {
        let calls = AtomicUsize::new(0);
        let write = |at: u64, d: &mut [u8]| -> Result<(), SourceError> {
            calls.fetch_add(1, Ordering::Relaxed);
            for (i, b) in d.iter_mut().enumerate() {
                *b = ((at + i as u64) % 251) as u8;
            }
            Ok(())
        };
        let len = (3 << 20) + 77;
        let mut dst = vec![0u8; len];
        Source::Shared(&write).fill(5, &mut dst, 4, true).unwrap();
        assert!(dst
            .iter()
            .enumerate()
            .all(|(i, &b)| b == ((5 + i as u64) % 251) as u8));
        // Four pieces of at most 1 MiB, each in 128 KiB bounces.
        assert!(calls.load(Ordering::Relaxed) >= 25);

        let mut read = |at: u64, d: &mut [u8]| -> Result<(), SourceError> {
            d.fill((at / 1024 + 1) as u8);
            Ok(())
        };
        let mut dst = vec![0u8; 300 << 10];
        Source::Exclusive(&mut read)
            .fill(0, &mut dst, 1, true)
            .unwrap();
        // A reader is called once per bounce, in order.
        assert!(dst[..BOUNCE].iter().all(|&b| b == 1));
        assert!(dst[BOUNCE..2 * BOUNCE].iter().all(|&b| b == 129));
        assert!(dst[2 * BOUNCE..].iter().all(|&b| b == 1));

        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut dst = vec![0u8; len - 9];
        Source::Bytes(&data).fill(9, &mut dst, 4, true).unwrap();
        assert_eq!(dst, data[9..]);
    }

    #[test]
    fn a_streamed_writer_that_fails_reports_its_error() {
        let write = |at: u64, _: &mut [u8]| -> Result<(), SourceError> {
            if at >= BOUNCE as u64 {
                Err("truncated".into())
            } else {
                Ok(())
            }
        };
        let mut dst = vec![0u8; 1 << 20];
        let e = Source::Shared(&write)
            .fill(0, &mut dst, 1, true)
            .unwrap_err();
        assert_eq!(e.to_string(), "truncated");
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
        let e = Source::Shared(&write)
            .fill(0, &mut dst, 4, false)
            .unwrap_err();
        assert_eq!(e.to_string(), "decoder ran out of input");
    }
}
