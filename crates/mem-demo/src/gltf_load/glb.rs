//! The GLB container: a 12-byte header and chunks (rules in the parent
//! module's docs).

use std::ops::Range;

use crate::error::GlbProblem;

/// GLB chunk types: "JSON" and "BIN\0" as little-endian `u32`s.
const CHUNK_JSON: u32 = 0x4E4F_534A;
const CHUNK_BIN: u32 = 0x004E_4942;

/// Splits a GLB into the byte ranges of its JSON chunk and its BIN chunk
/// (the rules are in the module docs).
pub(super) fn split_glb(bytes: &[u8]) -> Result<(Range<usize>, Option<Range<usize>>), GlbProblem> {
    let le32 =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let len = bytes.len() as u64;
    if bytes.len() < 20 {
        return Err(GlbProblem::Truncated { len });
    }
    let version = le32(4);
    if version != 2 {
        return Err(GlbProblem::Version(version));
    }
    let header = le32(8);
    if u64::from(header) != len {
        return Err(GlbProblem::LengthMismatch { header, file: len });
    }
    let (mut json, mut bin) = (None, None);
    let (mut offset, mut index) = (12usize, 0usize);
    while offset < bytes.len() {
        let out_of_bounds = |length| GlbProblem::ChunkOutOfBounds {
            index,
            offset: offset as u64,
            length,
        };
        if bytes.len() - offset < 8 {
            return Err(out_of_bounds(0));
        }
        let length = le32(offset);
        let chunk_type = le32(offset + 4);
        let start = offset + 8;
        let end = start
            .checked_add(length as usize)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| out_of_bounds(length))?;
        match (index, chunk_type) {
            (0, CHUNK_JSON) => json = Some(start..end),
            (0, chunk_type) => return Err(GlbProblem::FirstChunkNotJson { chunk_type }),
            (_, CHUNK_JSON) => return Err(GlbProblem::SecondJsonChunk { index }),
            (1, CHUNK_BIN) => bin = Some(start..end),
            (_, CHUNK_BIN) => return Err(GlbProblem::MisplacedBinChunk { index }),
            // Unknown chunk types are skipped, as the specification asks of
            // readers (extensions may add chunks).
            _ => {}
        }
        offset = end;
        index += 1;
    }
    // At least one chunk header fits in 20 bytes, and chunk 0 is JSON.
    let json = json.ok_or(GlbProblem::Truncated { len })?;
    Ok((json, bin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glb_chunks() {
        fn glb(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
            let mut out = b"glTF\x02\0\0\0\0\0\0\0".to_vec();
            for (kind, data) in chunks {
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(*kind);
                out.extend_from_slice(data);
            }
            let len = out.len() as u32;
            out[8..12].copy_from_slice(&len.to_le_bytes());
            out
        }
        let good = glb(&[(b"JSON", b"{}  "), (b"BIN\0", b"abcd"), (b"XTRA", b"zz")]);
        assert_eq!(split_glb(&good), Ok((20..24, Some(32..36))));
        let mut short_header = good.clone();
        short_header[8] -= 4;
        assert!(matches!(
            split_glb(&short_header),
            Err(GlbProblem::LengthMismatch { .. })
        ));
        assert_eq!(
            split_glb(&glb(&[(b"JSON", b"{}  "), (b"JSON", b"{}  ")])),
            Err(GlbProblem::SecondJsonChunk { index: 1 })
        );
        assert_eq!(
            split_glb(&glb(&[(b"JSON", b"{}  "), (b"XTRA", b""), (b"BIN\0", b"")])),
            Err(GlbProblem::MisplacedBinChunk { index: 2 })
        );
        assert_eq!(
            split_glb(&glb(&[(b"BIN\0", b"{}  ")])),
            Err(GlbProblem::FirstChunkNotJson {
                chunk_type: CHUNK_BIN
            })
        );
        let mut cut = glb(&[(b"JSON", b"{}  ")]);
        cut[12] = 200;
        assert!(matches!(
            split_glb(&cut),
            Err(GlbProblem::ChunkOutOfBounds { index: 0, .. })
        ));
        let mut trailing = glb(&[(b"JSON", b"{}  ")]);
        trailing.extend_from_slice(&[0; 4]);
        let len = trailing.len() as u32;
        trailing[8..12].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            split_glb(&trailing),
            Err(GlbProblem::ChunkOutOfBounds { index: 1, .. })
        ));
    }
}
