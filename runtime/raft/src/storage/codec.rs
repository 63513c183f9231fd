//! On-disk layout of the raft store: sled keys and the encoding of each record.
//!
//! The log and its metadata live in one sled tree (`raft`) so that a whole `Ready` (entries,
//! hard state) is written with one atomic batch:
//!
//! | key | value |
//! | --- | --- |
//! | `e` + index (u64 big-endian) | `eraftpb::Entry` (protobuf) |
//! | `m/hard_state` | `eraftpb::HardState` (protobuf) |
//! | `m/conf_state` | `eraftpb::ConfState` (protobuf) |
//! | `m/conf_index` | u64 big-endian: the log index the conf state was applied at |
//! | `m/truncated` | u64 + u64 big-endian: index and term of the last compacted entry |
//!
//! The latest snapshot lives in a tree of its own (`raft-snapshot`), under `snapshot`, as an
//! `eraftpb::Snapshot` (protobuf, metadata + state machine data). Kept beside the hard state it
//! shared a sled leaf that is rewritten on every `Ready`, so each consolidation of that leaf
//! wrote the whole snapshot again (hundreds of KiB per committed write); on its own it is only
//! written when a new snapshot is taken or received, in one transaction with the truncation
//! marker. (Stores written before the split have it under `m/snapshot` in the log tree; it is
//! moved on open.)
//!
//! Big-endian index keys sort numerically, so sled's ordered iteration walks the log in order.

use crate::error::StorageError;

/// Prefix byte of log entry keys.
pub(crate) const ENTRY_PREFIX: u8 = b'e';
/// Key of the hard state (term, vote, commit).
pub(crate) const HARD_STATE_KEY: &[u8] = b"m/hard_state";
/// Key of the membership (voters, learners).
pub(crate) const CONF_STATE_KEY: &[u8] = b"m/conf_state";
/// Key of the index at which the stored membership was applied.
pub(crate) const CONF_INDEX_KEY: &[u8] = b"m/conf_index";
/// Key of the last compacted log position.
pub(crate) const TRUNCATED_KEY: &[u8] = b"m/truncated";
/// Key of the latest snapshot in the snapshot tree.
pub(crate) const SNAPSHOT_KEY: &[u8] = b"snapshot";
/// Where stores written before the snapshot tree existed kept the snapshot (in the log tree).
pub(crate) const LEGACY_SNAPSHOT_KEY: &[u8] = b"m/snapshot";

/// A log position: index and the term of the entry at that index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// Log index.
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
}

/// The sled key of the log entry at `index`.
pub(crate) fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ENTRY_PREFIX;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The log index encoded in an entry key.
pub(crate) fn entry_index(key: &[u8]) -> Result<u64, StorageError> {
    match key {
        [ENTRY_PREFIX, rest @ ..] => decode_u64(rest, || "log entry key".to_string()),
        _ => Err(StorageError::corrupt(
            "log entry key",
            format!("expected prefix 'e', found {key:?}"),
        )),
    }
}

/// Encodes a protobuf message.
pub(crate) fn encode<M: protobuf::Message>(
    what: &'static str,
    message: &M,
) -> Result<Vec<u8>, StorageError> {
    message
        .write_to_bytes()
        .map_err(|source| StorageError::Encode { what, source })
}

/// Decodes a protobuf message, naming the record on failure.
pub(crate) fn decode<M: protobuf::Message>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<M, StorageError> {
    M::parse_from_bytes(bytes).map_err(|e| StorageError::corrupt(what(), e.to_string()))
}

/// Decodes a big-endian u64.
pub(crate) fn decode_u64(bytes: &[u8], what: impl FnOnce() -> String) -> Result<u64, StorageError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        StorageError::corrupt(what(), format!("expected 8 bytes, found {}", bytes.len()))
    })?;
    Ok(u64::from_be_bytes(array))
}

/// Encodes a log position as 16 bytes.
pub(crate) fn encode_position(position: LogPosition) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&position.index.to_be_bytes());
    out[8..].copy_from_slice(&position.term.to_be_bytes());
    out
}

/// Decodes a log position written by [`encode_position`].
pub(crate) fn decode_position(bytes: &[u8], what: &str) -> Result<LogPosition, StorageError> {
    if bytes.len() != 16 {
        return Err(StorageError::corrupt(
            what,
            format!("expected 16 bytes, found {}", bytes.len()),
        ));
    }
    Ok(LogPosition {
        index: decode_u64(&bytes[..8], || what.to_string())?,
        term: decode_u64(&bytes[8..], || what.to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_sort_numerically_and_round_trip() {
        let keys: Vec<_> = [1u64, 2, 255, 256, 70_000, u64::MAX]
            .iter()
            .map(|i| entry_key(*i))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (key, index) in keys.iter().zip([1u64, 2, 255, 256, 70_000, u64::MAX]) {
            assert_eq!(entry_index(key).unwrap(), index);
        }
    }

    #[test]
    fn corrupt_records_are_named() {
        let err = decode_position(b"short", "truncated state").unwrap_err();
        assert!(err.to_string().contains("truncated state"), "{err}");
        let err = entry_index(b"x12345678").unwrap_err();
        assert!(err.to_string().contains("log entry key"), "{err}");
        let err = decode::<raft::eraftpb::HardState>(&[0xff, 0xff, 0xff], || "hard state".into())
            .unwrap_err();
        assert!(err.to_string().contains("hard state"), "{err}");
    }
}
