//! The on-disk layout: one sled tree, keys and record encodings.
//!
//! Message bodies of named queues (and of subscriptions' replayed dead letters) live in the
//! queue log ([`crate::segments`]), as [`encode_message`] records; sled holds everything else.
//! Stores written before the queue log existed kept them under `m` keys; opening such a store
//! moves them to the log (see `load`).
//!
//! Every key starts with a one-byte tag, followed by the queue's *destination* (its kind byte,
//! then length-prefixed tenant and names, so no destination is a prefix of another):
//!
//! | key | value |
//! | --- | --- |
//! | `m` dest id(u64 BE) | legacy: a message ([`encode_message`]), moved to the queue log at open |
//! | `d` dest id(u64 BE) | a dead letter: [`encode_dead`] wrapping the message record |
//! | `n` dest | queue meta: a lower bound of the next id ([`encode_next_id`]) |
//! | `t` tenant topic | a lower bound of a topic's next publication id (u64 BE) |
//! | `l` tenant topic id(u64 BE) | a topic log entry: [`encode_message`] (attempts 0) |
//! | `c` dest | a subscription's durable cursor ([`encode_next_id`]): every log entry up to it is settled |
//! | `f` dest | a subscription's configuration: [`encode_sub`] (filter, removal point) |
//! | `a` dest id(u64 BE) | failed attempts of a subscription's log entry ([`encode_attempts`]) |
//! | `g` | the highest deleted queue log segment number ([`encode_next_id`]) |
//!
//! Topics keep one log per topic (one write per publication); subscription queues are
//! cursors into it. A subscription's `m` keys hold only replayed dead letters.
//!
//! Ids are big-endian so sled iterates a queue's messages in id order. One tree means one sled
//! batch can move a message between stores atomically.
//!
//! Ids are never reused: on open a queue's next id is the largest of its meta value and every
//! id in the queue log or among its dead letters, plus one. The meta key is therefore written
//! only before the queue log deletes segments (with the maximum of its value and the log's next
//! id) and when dead letters are purged, not on every send. Records carry a version byte;
//! decoding
//! never panics on bad bytes, it returns [`Corrupt`].

use crate::{QueueId, QueueKind};

/// Tag of message keys.
pub(crate) const MSG: u8 = b'm';
/// Tag of dead-letter keys.
pub(crate) const DEAD: u8 = b'd';
/// Tag of queue meta keys.
pub(crate) const META: u8 = b'n';
/// Tag of topic sequence keys.
pub(crate) const TOPIC: u8 = b't';
/// Tag of topic log entries.
pub(crate) const LOG: u8 = b'l';
/// Tag of subscription cursors.
pub(crate) const CURSOR: u8 = b'c';
/// Tag of subscription configurations.
pub(crate) const SUB: u8 = b'f';
/// Tag of the attempt counts of subscriptions' log entries.
pub(crate) const ATTEMPTS: u8 = b'a';
/// The key (a lone tag) of the queue log's floor: the highest deleted segment number.
pub(crate) const LOG_FLOOR: u8 = b'g';

const KIND_QUEUE: u8 = b'q';
const KIND_SUBSCRIPTION: u8 = b's';
const VERSION: u8 = 1;
/// Offset of the attempts field in a message record.
const ATTEMPTS_AT: usize = 1;

/// A record or key that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt record: {}", self.0)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The destination bytes of a queue (kind, tenant, names), shared by all its keys.
pub(crate) fn dest(queue: &QueueId) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + queue.tenant.len() + queue.source().len());
    match &queue.kind {
        QueueKind::Queue { name } => {
            out.push(KIND_QUEUE);
            put_str(&mut out, &queue.tenant);
            put_str(&mut out, name);
        }
        QueueKind::Subscription { topic, subscriber } => {
            out.push(KIND_SUBSCRIPTION);
            put_str(&mut out, &queue.tenant);
            put_str(&mut out, topic);
            put_str(&mut out, subscriber);
        }
    }
    out
}

/// `tag` + `dest`: the prefix of all messages (or dead letters) of a queue.
pub(crate) fn prefix(tag: u8, dest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + dest.len() + 8);
    out.push(tag);
    out.extend_from_slice(dest);
    out
}

/// The key of message (or dead letter, by `tag`) `id` of the queue with destination `dest`.
pub(crate) fn item_key(tag: u8, dest: &[u8], id: u64) -> Vec<u8> {
    let mut out = prefix(tag, dest);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// The key of a queue's meta record.
pub(crate) fn meta_key(dest: &[u8]) -> Vec<u8> {
    prefix(META, dest)
}

/// The key of a topic's publication counter.
pub(crate) fn topic_key(tenant: &str, topic: &str) -> Vec<u8> {
    let mut out = vec![TOPIC];
    put_str(&mut out, tenant);
    put_str(&mut out, topic);
    out
}

/// The prefix of every entry of a topic's log.
pub(crate) fn log_prefix(tenant: &str, topic: &str) -> Vec<u8> {
    let mut out = vec![LOG];
    put_str(&mut out, tenant);
    put_str(&mut out, topic);
    out
}

/// The key of log entry `id` of the log with prefix `prefix`.
pub(crate) fn log_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 8);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// A subscription's durable configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubRecord {
    /// The last log id published while the subscription was configured, once it is removed.
    pub end: Option<u64>,
    /// Attributes an entry must carry.
    pub filter: std::collections::BTreeMap<String, String>,
}

/// Encodes a subscription's configuration.
pub(crate) fn encode_sub(rec: &SubRecord) -> Vec<u8> {
    let mut out = vec![VERSION];
    match rec.end {
        Some(end) => {
            out.push(1);
            out.extend_from_slice(&end.to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&(rec.filter.len() as u32).to_be_bytes());
    for (k, v) in &rec.filter {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    out
}

/// Decodes a subscription's configuration.
pub(crate) fn decode_sub(bytes: &[u8]) -> Result<SubRecord, Corrupt> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let end = match r.u8()? {
        0 => None,
        1 => Some(r.u64()?),
        f => return Err(Corrupt(format!("bad end flag {f}"))),
    };
    let mut filter = std::collections::BTreeMap::new();
    for _ in 0..r.u32()? {
        let k = r.string()?;
        filter.insert(k, r.string()?);
    }
    Ok(SubRecord { end, filter })
}

/// Encodes an attempt count.
pub(crate) fn encode_attempts(attempts: u32) -> [u8; 5] {
    let mut out = [VERSION; 5];
    out[1..].copy_from_slice(&attempts.to_be_bytes());
    out
}

/// Decodes an attempt count.
pub(crate) fn decode_attempts(bytes: &[u8]) -> Result<u32, Corrupt> {
    let mut r = Reader::new(bytes);
    r.version()?;
    r.u32()
}

/// A bounds-checked reader over a record.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| Corrupt(format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Corrupt> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, Corrupt> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self) -> Result<String, Corrupt> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Corrupt("string is not UTF-8".into()))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.at..];
        self.at = self.bytes.len();
        out
    }

    fn version(&mut self) -> Result<(), Corrupt> {
        match self.u8()? {
            VERSION => Ok(()),
            v => Err(Corrupt(format!("unknown record version {v}"))),
        }
    }
}

/// Decodes destination bytes (see [`dest`]).
pub(crate) fn decode_dest(bytes: &[u8]) -> Result<QueueId, Corrupt> {
    let mut r = Reader::new(bytes);
    let queue = read_dest(&mut r)?;
    if !r.rest().is_empty() {
        return Err(Corrupt("trailing bytes in a destination".into()));
    }
    Ok(queue)
}

fn read_dest(r: &mut Reader<'_>) -> Result<QueueId, Corrupt> {
    match r.u8()? {
        KIND_QUEUE => {
            let tenant = r.string()?;
            let name = r.string()?;
            Ok(QueueId::queue(tenant, name))
        }
        KIND_SUBSCRIPTION => {
            let tenant = r.string()?;
            let topic = r.string()?;
            let subscriber = r.string()?;
            Ok(QueueId::subscription(tenant, topic, subscriber))
        }
        k => Err(Corrupt(format!("unknown queue kind {k}"))),
    }
}

/// A decoded key of the tree.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// A message of a queue.
    Message(QueueId, u64),
    /// A dead letter of a queue.
    Dead(QueueId, u64),
    /// A queue's meta record.
    Meta(QueueId),
    /// A topic's publication counter.
    Topic(String, String),
    /// An entry of a topic's log.
    Log(String, String, u64),
    /// A subscription's cursor.
    Cursor(QueueId),
    /// A subscription's configuration.
    Sub(QueueId),
    /// The attempt count of a subscription's log entry.
    Attempts(QueueId, u64),
    /// The queue log's floor.
    LogFloor,
}

/// Decodes any key of the tree.
pub(crate) fn decode_key(key: &[u8]) -> Result<Key, Corrupt> {
    let mut r = Reader::new(key);
    let out = match r.u8()? {
        MSG => {
            let q = read_dest(&mut r)?;
            Key::Message(q, r.u64()?)
        }
        DEAD => {
            let q = read_dest(&mut r)?;
            Key::Dead(q, r.u64()?)
        }
        META => Key::Meta(read_dest(&mut r)?),
        TOPIC => {
            let tenant = r.string()?;
            Key::Topic(tenant, r.string()?)
        }
        LOG => {
            let tenant = r.string()?;
            let topic = r.string()?;
            Key::Log(tenant, topic, r.u64()?)
        }
        CURSOR => Key::Cursor(read_dest(&mut r)?),
        SUB => Key::Sub(read_dest(&mut r)?),
        ATTEMPTS => {
            let q = read_dest(&mut r)?;
            Key::Attempts(q, r.u64()?)
        }
        LOG_FLOOR => Key::LogFloor,
        t => return Err(Corrupt(format!("unknown key tag {t}"))),
    };
    if !r.rest().is_empty() {
        return Err(Corrupt("trailing bytes in key".into()));
    }
    Ok(out)
}

/// The id at the end of a message or dead-letter key.
pub(crate) fn key_id(key: &[u8]) -> Result<u64, Corrupt> {
    let start = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| Corrupt("key too short".into()))?;
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[start..]);
    Ok(u64::from_be_bytes(b))
}

/// A decoded message record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageRecord {
    /// Failed deliveries so far.
    pub attempts: u32,
    /// When the message was accepted, ms since the epoch.
    pub enqueued_ms: u64,
    pub attributes: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Encodes a message record.
pub(crate) fn encode_message(
    attempts: u32,
    enqueued_ms: u64,
    attributes: &[(String, String)],
    payload: &[u8],
) -> Vec<u8> {
    let attrs_len: usize = attributes.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(17 + attrs_len + payload.len());
    write_message(&mut out, attempts, enqueued_ms, attributes, payload);
    out
}

/// Appends a message record (see [`encode_message`]) to `out`.
pub(crate) fn write_message(
    out: &mut Vec<u8>,
    attempts: u32,
    enqueued_ms: u64,
    attributes: &[(String, String)],
    payload: &[u8],
) {
    out.push(VERSION);
    out.extend_from_slice(&attempts.to_be_bytes());
    out.extend_from_slice(&enqueued_ms.to_be_bytes());
    out.extend_from_slice(&(attributes.len() as u32).to_be_bytes());
    for (k, v) in attributes {
        put_str(out, k);
        put_str(out, v);
    }
    out.extend_from_slice(payload);
}

/// Decodes a message record.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<MessageRecord, Corrupt> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let attempts = r.u32()?;
    let enqueued_ms = r.u64()?;
    let n = r.u32()?;
    let mut attributes = Vec::with_capacity((n as usize).min(64));
    for _ in 0..n {
        let k = r.string()?;
        attributes.push((k, r.string()?));
    }
    Ok(MessageRecord {
        attempts,
        enqueued_ms,
        attributes,
        payload: r.rest().to_vec(),
    })
}

/// A copy of a valid message record with its attempt count replaced.
pub(crate) fn with_attempts(record: &[u8], attempts: u32) -> Result<Vec<u8>, Corrupt> {
    let mut r = Reader::new(record);
    r.version()?;
    r.u32()?;
    let mut out = record.to_vec();
    out[ATTEMPTS_AT..ATTEMPTS_AT + 4].copy_from_slice(&attempts.to_be_bytes());
    Ok(out)
}

/// A decoded dead-letter record: when, why, and the message record as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadRecord<'a> {
    pub dead_at_ms: u64,
    pub last_error: String,
    /// The wrapped message record (possibly itself corrupt).
    pub message: &'a [u8],
}

/// Wraps a message record into a dead-letter record.
pub(crate) fn encode_dead(dead_at_ms: u64, last_error: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + last_error.len() + message.len());
    out.push(VERSION);
    out.extend_from_slice(&dead_at_ms.to_be_bytes());
    put_str(&mut out, last_error);
    out.extend_from_slice(message);
    out
}

/// Decodes a dead-letter record (not the wrapped message).
pub(crate) fn decode_dead(bytes: &[u8]) -> Result<DeadRecord<'_>, Corrupt> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let dead_at_ms = r.u64()?;
    let last_error = r.string()?;
    Ok(DeadRecord {
        dead_at_ms,
        last_error,
        message: r.rest(),
    })
}

/// Encodes a queue's meta value: the id its next message will get (at least).
pub(crate) fn encode_next_id(next_id: u64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = VERSION;
    out[1..9].copy_from_slice(&next_id.to_be_bytes());
    out
}

/// Decodes a queue's meta value.
pub(crate) fn decode_next_id(bytes: &[u8]) -> Result<u64, Corrupt> {
    let mut r = Reader::new(bytes);
    r.version()?;
    r.u64()
}

/// Decodes a topic counter value.
pub(crate) fn decode_u64(bytes: &[u8]) -> Result<u64, Corrupt> {
    Reader::new(bytes).u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_do_not_collide() {
        let q = QueueId::queue("acme", "orders");
        let s = QueueId::subscription("acme", "orders", "x");
        assert_ne!(dest(&q), dest(&s));
        assert!(!dest(&s).starts_with(&dest(&q)));
        let k = item_key(MSG, &dest(&s), 7);
        assert_eq!(decode_key(&k), Ok(Key::Message(s.clone(), 7)));
        assert_eq!(key_id(&k), Ok(7));
        assert_eq!(decode_dest(&dest(&s)), Ok(s.clone()));
        assert!(decode_dest(&item_key(MSG, &dest(&s), 1)).is_err());
        assert_eq!(decode_key(&[LOG_FLOOR]), Ok(Key::LogFloor));
        assert_eq!(decode_key(&meta_key(&dest(&q))), Ok(Key::Meta(q)));
        assert_eq!(
            decode_key(&topic_key("acme", "t")),
            Ok(Key::Topic("acme".into(), "t".into()))
        );
        // Names that would collide under naive concatenation stay distinct.
        assert_ne!(
            dest(&QueueId::queue("ab", "c")),
            dest(&QueueId::queue("a", "bc"))
        );
    }

    #[test]
    fn records_round_trip_and_corruption_is_an_error() {
        let attrs = vec![("k".to_string(), "v".to_string())];
        let rec = encode_message(2, 99, &attrs, b"hello");
        let m = decode_message(&rec).unwrap();
        assert_eq!(
            (m.attempts, m.enqueued_ms, m.payload.as_slice()),
            (2, 99, &b"hello"[..])
        );
        assert_eq!(m.attributes, attrs);
        assert_eq!(
            decode_message(&with_attempts(&rec, 5).unwrap())
                .unwrap()
                .attempts,
            5
        );
        let dead = encode_dead(1, "boom", &rec);
        let d = decode_dead(&dead).unwrap();
        assert_eq!(
            (d.dead_at_ms, d.last_error.as_str(), d.message),
            (1, "boom", &rec[..])
        );
        for cut in 0..17 {
            assert!(decode_message(&rec[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_message(&[9, 0, 0]).is_err());
        assert!(decode_key(&[b'm', b'q', 0, 0, 0, 200]).is_err());
        assert!(decode_next_id(&[1, 2]).is_err());
        assert_eq!(decode_next_id(&encode_next_id(4)), Ok(4));
        let sub = SubRecord {
            end: Some(3),
            filter: [("a".to_string(), "b".to_string())].into(),
        };
        assert_eq!(decode_sub(&encode_sub(&sub)), Ok(sub));
        assert_eq!(decode_attempts(&encode_attempts(7)), Ok(7));
        let s = QueueId::subscription("t", "x", "y");
        let k = log_key(&log_prefix("t", "x"), 9);
        assert_eq!(decode_key(&k), Ok(Key::Log("t".into(), "x".into(), 9)));
        assert_eq!(
            decode_key(&prefix(CURSOR, &dest(&s))),
            Ok(Key::Cursor(s.clone()))
        );
        assert_eq!(
            decode_key(&item_key(ATTEMPTS, &dest(&s), 2)),
            Ok(Key::Attempts(s, 2))
        );
    }
}
