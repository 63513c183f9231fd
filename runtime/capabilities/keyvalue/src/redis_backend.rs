//! The Redis backend, for nodes that share one cache (or want Redis's
//! memory management).
//!
//! # Layout
//!
//! An entry is the Redis string at `cw:{tenant}:{bucket}:{key}`, where
//! `tenant` and `bucket` are escaped (`%` → `%25`, `:` → `%3A`) so that
//! neither contains a `:`: the first two `:` after `cw:` end them, which
//! makes the mapping injective whatever the key holds.
//!
//! # Operations
//!
//! - TTLs are Redis's own (`SET … PX`); Redis hides and purges expired
//!   keys, so [`KvBackend::sweep_expired`] does nothing here.
//! - Increment is `INCRBY` (values are decimal ASCII, as in every
//!   backend), behind a check that the value is all digits, in one Lua
//!   script so that it stays atomic.
//! - Compare-and-swap is a small Lua script (`WATCH` does not mix with a
//!   multiplexed connection).
//! - Listing is `SCAN … MATCH cw:{tenant}:{bucket}:*`: **the cursor is a
//!   Redis `SCAN` cursor**. `SCAN` walks the whole database, so a page may
//!   hold fewer keys than asked (even none, with a cursor to go on), a few
//!   more than asked, or a key already returned during a rehash.
//!
//! One [`ConnectionManager`] (a multiplexed connection that reconnects)
//! carries every request.

use crate::backend::{
    BoxFuture, Found, KeyPage, KvBackend, KvError, KvResult, MAX_COUNTER, MAX_PAGE, Namespace,
    check_key, check_ttl, check_value, parse_counter,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisError, Script};
use std::collections::HashSet;
use std::time::Duration;

/// The most `SCAN` round trips one page of `list_keys` makes.
const MAX_SCANS_PER_PAGE: usize = 32;

/// Increments after checking the value is all digits (`INCRBY` itself
/// refuses leading zeros, a sign and values past `i64`). It answers the new
/// value as the stored string: Lua numbers are doubles, exact only up to
/// 2^53.
const INCREMENT: &str = r"
local v = redis.call('GET', KEYS[1])
if v and not string.match(v, '^%d+$') then
  return redis.error_reply('NOTCOUNTER the value is not a counter')
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
";

/// Sets `KEYS[1]` to `ARGV[3]` if its value is `ARGV[2]` (`ARGV[1]` = `1`)
/// or it does not exist (`ARGV[1]` = `0`).
const COMPARE_AND_SWAP: &str = r"
local v = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if v ~= ARGV[2] then return 0 end
elseif v then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

/// The Redis key-value backend.
pub struct RedisBackend {
    connection: ConnectionManager,
    increment: Script,
    compare_and_swap: Script,
}

impl RedisBackend {
    /// Connects to the Redis server at `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> KvResult<Self> {
        let client = redis::Client::open(url)
            .map_err(|err| KvError::Storage(format!("invalid redis url: {err}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(3);
        let connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|err| KvError::Storage(format!("cannot connect to redis: {err}")))?;
        Ok(RedisBackend {
            connection,
            increment: Script::new(INCREMENT),
            compare_and_swap: Script::new(COMPARE_AND_SWAP),
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> KvResult<T> {
        cmd.query_async(&mut self.connection.clone())
            .await
            .map_err(storage)
    }
}

impl KvBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn get<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
    ) -> BoxFuture<'a, KvResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            check_key(key)?;
            self.query(redis::cmd("GET").arg(redis_key(ns, key))).await
        })
    }

    fn set<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            check_key(key)?;
            check_value(&value)?;
            check_ttl(ttl)?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(redis_key(ns, key)).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl.as_millis().to_string());
            }
            self.query::<()>(&cmd).await
        })
    }

    fn delete<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            check_key(key)?;
            self.query::<()>(redis::cmd("DEL").arg(redis_key(ns, key)))
                .await
        })
    }

    fn exists<'a>(&'a self, ns: &'a Namespace, key: &'a str) -> BoxFuture<'a, KvResult<bool>> {
        Box::pin(async move {
            check_key(key)?;
            let count: u64 = self
                .query(redis::cmd("EXISTS").arg(redis_key(ns, key)))
                .await?;
            Ok(count > 0)
        })
    }

    fn list_keys<'a>(
        &'a self,
        ns: &'a Namespace,
        cursor: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'a, KvResult<KeyPage>> {
        Box::pin(async move {
            let limit = limit.clamp(1, MAX_PAGE);
            let prefix = bucket_prefix(ns);
            let pattern = [glob_escape(&prefix), b"*".to_vec()].concat();
            let mut page = KeyPage::default();
            let mut cursor = cursor.unwrap_or(0);
            for _ in 0..MAX_SCANS_PER_PAGE {
                let count = limit.saturating_sub(page.keys.len()).max(1);
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(count),
                    )
                    .await?;
                for key in keys {
                    let Some(user_key) = key.strip_prefix(prefix.as_slice()) else {
                        continue;
                    };
                    // Keys are written from `String`s only.
                    if let Ok(user_key) = String::from_utf8(user_key.to_vec()) {
                        page.keys.push(user_key);
                    }
                }
                cursor = next;
                if cursor == 0 || page.keys.len() >= limit.div_ceil(2) {
                    break;
                }
            }
            page.cursor = (cursor != 0).then_some(cursor);
            Ok(page)
        })
    }

    fn increment<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        delta: u64,
    ) -> BoxFuture<'a, KvResult<u64>> {
        Box::pin(async move {
            check_key(key)?;
            if delta > MAX_COUNTER {
                return Err(KvError::Overflow);
            }
            let value: Vec<u8> = self
                .increment
                .key(redis_key(ns, key))
                .arg(delta)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(|err| {
                    let text = err.to_string();
                    if text.contains("NOTCOUNTER") || text.contains("not an integer") {
                        KvError::NotACounter
                    } else if text.contains("overflow") {
                        KvError::Overflow
                    } else {
                        storage(err)
                    }
                })?;
            parse_counter(&value)
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        ns: &'a Namespace,
        key: &'a str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> BoxFuture<'a, KvResult<bool>> {
        Box::pin(async move {
            check_key(key)?;
            check_value(&value)?;
            let swapped: i64 = self
                .compare_and_swap
                .key(redis_key(ns, key))
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or_default())
                .arg(value)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(storage)?;
            Ok(swapped == 1)
        })
    }

    fn get_many<'a>(
        &'a self,
        ns: &'a Namespace,
        keys: Vec<String>,
    ) -> BoxFuture<'a, KvResult<Found>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            keys.iter().try_for_each(|key| check_key(key))?;
            let mut cmd = redis::cmd("MGET");
            for key in &keys {
                cmd.arg(redis_key(ns, key));
            }
            let values: Vec<Option<Vec<u8>>> = self.query(&cmd).await?;
            Ok(keys
                .into_iter()
                .zip(values)
                .map(|(key, value)| value.map(|value| (key, value)))
                .collect())
        })
    }

    fn set_many<'a>(
        &'a self,
        ns: &'a Namespace,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            if pairs.is_empty() {
                return Ok(());
            }
            for (key, value) in &pairs {
                check_key(key)?;
                check_value(value)?;
            }
            let mut pipe = redis::pipe();
            for (key, value) in pairs {
                pipe.cmd("SET").arg(redis_key(ns, &key)).arg(value).ignore();
            }
            pipe.query_async::<()>(&mut self.connection.clone())
                .await
                .map_err(storage)
        })
    }

    fn delete_many<'a>(
        &'a self,
        ns: &'a Namespace,
        keys: Vec<String>,
    ) -> BoxFuture<'a, KvResult<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            keys.iter().try_for_each(|key| check_key(key))?;
            let mut cmd = redis::cmd("DEL");
            for key in &keys {
                cmd.arg(redis_key(ns, key));
            }
            self.query::<()>(&cmd).await
        })
    }

    fn stored_bytes<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, KvResult<u64>> {
        Box::pin(async move {
            let prefix = tenant_prefix(tenant);
            let pattern = [glob_escape(&prefix), b"*".to_vec()].concat();
            let mut seen = HashSet::new();
            let mut total = 0u64;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000),
                    )
                    .await?;
                let fresh: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter(|k| seen.insert(k.clone()))
                    .collect();
                if !fresh.is_empty() {
                    let mut pipe = redis::pipe();
                    for key in &fresh {
                        pipe.cmd("STRLEN").arg(key);
                    }
                    let lengths: Vec<u64> = pipe
                        .query_async(&mut self.connection.clone())
                        .await
                        .map_err(storage)?;
                    for (key, len) in fresh.iter().zip(lengths) {
                        total += user_key_len(&key[prefix.len()..]) as u64 + len;
                    }
                }
                cursor = next;
                if cursor == 0 {
                    return Ok(total);
                }
            }
        })
    }
}

/// `cw:{tenant}:`, escaped.
fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut prefix = b"cw:".to_vec();
    escape_into(&mut prefix, tenant);
    prefix.push(b':');
    prefix
}

/// `cw:{tenant}:{bucket}:`, escaped.
fn bucket_prefix(ns: &Namespace) -> Vec<u8> {
    let mut prefix = tenant_prefix(&ns.tenant);
    escape_into(&mut prefix, &ns.bucket);
    prefix.push(b':');
    prefix
}

/// The Redis key of `key` in `ns`.
fn redis_key(ns: &Namespace, key: &str) -> Vec<u8> {
    let mut redis_key = bucket_prefix(ns);
    redis_key.extend_from_slice(key.as_bytes());
    redis_key
}

/// Appends `part` with `%` and `:` percent-encoded.
fn escape_into(buffer: &mut Vec<u8>, part: &str) {
    for byte in part.bytes() {
        match byte {
            b'%' => buffer.extend_from_slice(b"%25"),
            b':' => buffer.extend_from_slice(b"%3A"),
            _ => buffer.push(byte),
        }
    }
}

/// Escapes the characters special in a `MATCH` pattern.
fn glob_escape(literal: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(literal.len());
    for &byte in literal {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern
}

/// The length of the user key in what follows a tenant prefix
/// (`{bucket}:{key}`, the bucket holding no `:`).
fn user_key_len(rest: &[u8]) -> usize {
    rest.iter()
        .position(|&byte| byte == b':')
        .map_or(0, |colon| rest.len() - colon - 1)
}

fn storage(err: RedisError) -> KvError {
    KvError::Storage(format!("redis: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_injectively() {
        let a = redis_key(&Namespace::new("a:b", "c"), "k");
        let b = redis_key(&Namespace::new("a", "b:c"), "k");
        assert_eq!(a, b"cw:a%3Ab:c:k");
        assert_eq!(b, b"cw:a:b%3Ac:k");
        assert_eq!(redis_key(&Namespace::new("%3A", "c"), "k"), b"cw:%253A:c:k");
        assert_eq!(glob_escape(b"cw:t*[x]?\\:"), b"cw:t\\*\\[x\\]\\?\\\\:");
        assert_eq!(
            user_key_len(b"bucket:key:with:colons"),
            "key:with:colons".len()
        );
    }
}
