//! Framing of the queue log's records (see [`crate::segments`]): a checksummed envelope per
//! record, so a reader can tell a complete record from a torn or stale one.
//!
//! ```text
//! frame = body length (u32 LE) | crc32c(segment number (u64 LE) ‖ body) (u32 LE) | body
//! body  = kind (u8) | destination length (u32 LE) | destination | id (u64 LE) | record
//! ```
//!
//! - `Put` (kind 1): message `id` of the queue with that destination; `record` is a message
//!   record ([`crate::store::encode_message`]). A later `Put` of the same id replaces it
//!   (a new attempt count, or a copy made by compaction).
//! - `Remove` (kind 2): message `id` left the queue (acknowledged or dead-lettered); no record.
//!
//! The checksum covers the segment's number, so the bytes of a deleted segment's file (or of
//! another segment) can never pass for records of this one. A frame whose length is zero or out
//! of range, or whose checksum does not match, ends the segment: everything after it was never
//! acknowledged (see `segments`). A frame with a valid checksum but a body that does not parse
//! is reported as corrupt and skipped.

use crate::store::Corrupt;

/// Bytes of a frame's header (length and checksum).
pub(crate) const HEADER: usize = 8;
/// The smallest valid body: kind, destination length, id.
const MIN_BODY: usize = 1 + 4 + 8;
/// Largest body a reader accepts (payloads are limited far below this).
pub(crate) const MAX_BODY: usize = 1 << 30;

const PUT: u8 = 1;
const REMOVE: u8 = 2;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Put,
    Remove,
}

/// A decoded frame body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub kind: Kind,
    pub dest: &'a [u8],
    pub id: u64,
    /// The message record of a `Put` (empty for a `Remove`).
    pub record: &'a [u8],
}

/// What [`next`] found at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<'a> {
    /// A complete frame of `len` bytes (header included) whose checksum matches; its body may
    /// still fail to parse.
    Frame(usize, Result<Record<'a>, Corrupt>),
    /// No valid frame: the end of the segment's records.
    End,
}

/// Appends a frame of segment `seg` to `out`; `write_record` appends the record part of the
/// body (nothing for a `Remove`). Returns the frame's length.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    seg: u64,
    kind: Kind,
    dest: &[u8],
    id: u64,
    write_record: impl FnOnce(&mut Vec<u8>),
) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(match kind {
        Kind::Put => PUT,
        Kind::Remove => REMOVE,
    });
    out.extend_from_slice(&(dest.len() as u32).to_le_bytes());
    out.extend_from_slice(dest);
    out.extend_from_slice(&id.to_le_bytes());
    write_record(out);
    let body_len = out.len() - start - HEADER;
    let crc = checksum(seg, &out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// Reads the frame at the start of `bytes`, a part of segment `seg`.
pub(crate) fn next(bytes: &[u8], seg: u64) -> Next<'_> {
    let Some(header) = bytes.get(..HEADER) else {
        return Next::End;
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(&header[..4]);
    let len = u32::from_le_bytes(len) as usize;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[4..]);
    let crc = u32::from_le_bytes(crc);
    if !(MIN_BODY..=MAX_BODY).contains(&len) {
        return Next::End;
    }
    let Some(body) = bytes.get(HEADER..HEADER + len) else {
        return Next::End;
    };
    if checksum(seg, body) != crc {
        return Next::End;
    }
    Next::Frame(HEADER + len, parse(body))
}

fn parse(body: &[u8]) -> Result<Record<'_>, Corrupt> {
    let kind = match body.first() {
        Some(&PUT) => Kind::Put,
        Some(&REMOVE) => Kind::Remove,
        other => return Err(Corrupt(format!("unknown log record kind {other:?}"))),
    };
    let dest_len = body
        .get(1..5)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| Corrupt("log record too short".into()))?;
    let dest = 5usize
        .checked_add(dest_len)
        .and_then(|end| body.get(5..end))
        .ok_or_else(|| Corrupt("log record destination truncated".into()))?;
    let id_at = 5 + dest_len;
    let mut id = [0u8; 8];
    id.copy_from_slice(
        body.get(id_at..id_at + 8)
            .ok_or_else(|| Corrupt("log record id truncated".into()))?,
    );
    let record = &body[id_at + 8..];
    if kind == Kind::Remove && !record.is_empty() {
        return Err(Corrupt("trailing bytes in a log removal".into()));
    }
    Ok(Record {
        kind,
        dest,
        id: u64::from_le_bytes(id),
        record,
    })
}

/// CRC-32C (Castagnoli) of `seg` (LE) followed by `body`.
fn checksum(seg: u64, body: &[u8]) -> u32 {
    !update(update(!0, &seg.to_le_bytes()), body)
}

/// The table of the reflected CRC-32C polynomial, eight bytes at a time ("slicing by 8").
const TABLE: [[u32; 256]; 8] = table();

const fn table() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut k = 1;
        while k < 8 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            k += 1;
        }
        i += 1;
    }
    t
}

fn update(mut crc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = TABLE[7][(lo & 0xff) as usize]
            ^ TABLE[6][((lo >> 8) & 0xff) as usize]
            ^ TABLE[5][((lo >> 16) & 0xff) as usize]
            ^ TABLE[4][(lo >> 24) as usize]
            ^ TABLE[3][c[4] as usize]
            ^ TABLE[2][c[5] as usize]
            ^ TABLE[1][c[6] as usize]
            ^ TABLE[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ TABLE[0][((crc ^ b as u32) & 0xff) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // CRC-32C of "123456789" is 0xE3069283.
        assert_eq!(!update(!0, b"123456789"), 0xE306_9283);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let bytewise = long.iter().fold(!0u32, |crc, &b| {
            (crc >> 8) ^ TABLE[0][((crc ^ b as u32) & 0xff) as usize]
        });
        assert_eq!(update(!0, &long), bytewise);
    }

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        let a = encode(&mut out, 3, Kind::Put, b"dest", 7, |o| o.extend(b"rec"));
        let b = encode(&mut out, 3, Kind::Remove, b"dest", 7, |_| {});
        assert_eq!(out.len(), a + b);
        let put = Record {
            kind: Kind::Put,
            dest: b"dest",
            id: 7,
            record: b"rec",
        };
        assert_eq!(next(&out, 3), Next::Frame(a, Ok(put)));
        match next(&out[a..], 3) {
            Next::Frame(len, Ok(r)) => assert_eq!((len, r.kind, r.id), (b, Kind::Remove, 7)),
            other => panic!("{other:?}"),
        }
        assert_eq!(next(&out[a + b..], 3), Next::End);
    }

    #[test]
    fn torn_stale_or_zeroed_frames_end_the_segment() {
        let mut out = Vec::new();
        let len = encode(&mut out, 1, Kind::Put, b"q", 1, |o| o.extend(b"payload"));
        for cut in 0..len {
            assert_eq!(next(&out[..cut], 1), Next::End, "cut at {cut}");
        }
        // Another segment's bytes do not pass.
        assert_eq!(next(&out, 2), Next::End);
        // A flipped bit does not pass.
        let mut bad = out.clone();
        bad[HEADER + 4] ^= 1;
        assert_eq!(next(&bad, 1), Next::End);
        // Zeroes (a preallocated or never written area) do not pass.
        assert_eq!(next(&[0u8; 64], 1), Next::End);
    }

    #[test]
    fn a_checksummed_but_malformed_body_is_corrupt_not_a_panic() {
        let bodies: [&[u8]; 3] = [
            &[9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            &[2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        ];
        for body in bodies {
            let mut frame = Vec::new();
            frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
            frame.extend_from_slice(&checksum(5, body).to_le_bytes());
            frame.extend_from_slice(body);
            match next(&frame, 5) {
                Next::Frame(len, Err(_)) => assert_eq!(len, frame.len()),
                other => panic!("{other:?}"),
            }
        }
    }
}
