//! The deployment grant sections of the two capabilities, as JSON:
//!
//! ```json
//! "queues": { "send": ["orders"],
//!             "consume": [{ "queue": "orders", "max_attempts": 5, "backoff_ms": 1000,
//!                           "max_depth": 100000, "concurrency": 4 }] }
//! "topics": { "publish": ["events"],
//!             "subscribe": [{ "topic": "events", "filter": { "kind": "order" } }] }
//! ```

use cloudware_bus::QueuePolicy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A grant section that does not parse or names something invalid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GrantError(pub String);

/// The `queues` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesSection {
    /// Queues the deployment may send to.
    #[serde(default)]
    pub send: Vec<String>,
    /// Queues the deployment consumes.
    #[serde(default)]
    pub consume: Vec<ConsumeSpec>,
}

/// One consumed queue and its delivery policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeSpec {
    /// The queue.
    pub queue: String,
    /// Deliveries before a message is dead-lettered (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds; doubles per attempt (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Messages the queue holds before senders get back-pressure (default 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u64>,
    /// Messages handled at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// The `topics` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsSection {
    /// Topics the deployment may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Topics the deployment subscribes to.
    #[serde(default)]
    pub subscribe: Vec<SubscribeSpec>,
}

/// One subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeSpec {
    /// The topic.
    pub topic: String,
    /// Attributes a message must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, String>,
    /// Deliveries before a message is dead-lettered (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

/// The largest `max_attempts`.
pub const MAX_ATTEMPTS: u32 = 100;
/// The largest `max_depth`.
pub const MAX_DEPTH: u64 = 10_000_000;
/// The largest `concurrency`.
pub const MAX_CONCURRENCY: u32 = 256;

impl QueuesSection {
    /// Parses and checks a section.
    pub fn parse(section: &serde_json::Value) -> Result<Self, GrantError> {
        let parsed: QueuesSection = serde_json::from_value(section.clone())
            .map_err(|err| GrantError(format!("queues: {err}")))?;
        for name in parsed
            .send
            .iter()
            .chain(parsed.consume.iter().map(|c| &c.queue))
        {
            check_name("queue", name)?;
        }
        for consume in &parsed.consume {
            if consume
                .max_attempts
                .is_some_and(|n| n == 0 || n > MAX_ATTEMPTS)
            {
                return Err(GrantError(format!(
                    "queues: max_attempts must be 1-{MAX_ATTEMPTS}"
                )));
            }
            if consume.max_depth.is_some_and(|n| n == 0 || n > MAX_DEPTH) {
                return Err(GrantError(format!(
                    "queues: max_depth must be 1-{MAX_DEPTH}"
                )));
            }
            if consume
                .concurrency
                .is_some_and(|n| n == 0 || n > MAX_CONCURRENCY)
            {
                return Err(GrantError(format!(
                    "queues: concurrency must be 1-{MAX_CONCURRENCY}"
                )));
            }
        }
        Ok(parsed)
    }
}

impl ConsumeSpec {
    /// The queue policy it asks for, over `defaults`.
    pub fn policy(&self, defaults: &QueuePolicy) -> QueuePolicy {
        policy(defaults, self.max_attempts, self.backoff_ms, self.max_depth)
    }
}

impl TopicsSection {
    /// Parses and checks a section.
    pub fn parse(section: &serde_json::Value) -> Result<Self, GrantError> {
        let parsed: TopicsSection = serde_json::from_value(section.clone())
            .map_err(|err| GrantError(format!("topics: {err}")))?;
        for name in parsed
            .publish
            .iter()
            .chain(parsed.subscribe.iter().map(|s| &s.topic))
        {
            check_name("topic", name)?;
        }
        for subscribe in &parsed.subscribe {
            if subscribe
                .max_attempts
                .is_some_and(|n| n == 0 || n > MAX_ATTEMPTS)
            {
                return Err(GrantError(format!(
                    "topics: max_attempts must be 1-{MAX_ATTEMPTS}"
                )));
            }
            if subscribe.filter.len() > 32
                || subscribe
                    .filter
                    .iter()
                    .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 1024)
            {
                return Err(GrantError(
                    "topics: a filter has at most 32 attributes, names of 1-128 bytes and values of at most 1 KiB".into(),
                ));
            }
        }
        Ok(parsed)
    }
}

impl SubscribeSpec {
    /// The subscription queue's policy, over `defaults`.
    pub fn policy(&self, defaults: &QueuePolicy) -> QueuePolicy {
        policy(defaults, self.max_attempts, self.backoff_ms, None)
    }
}

fn policy(
    defaults: &QueuePolicy,
    max_attempts: Option<u32>,
    backoff_ms: Option<u64>,
    max_depth: Option<u64>,
) -> QueuePolicy {
    let mut policy = defaults.clone();
    if let Some(n) = max_attempts {
        policy.max_attempts = n;
    }
    if let Some(ms) = backoff_ms {
        policy.backoff_initial = Duration::from_millis(ms);
    }
    if let Some(depth) = max_depth {
        policy.max_depth = depth;
    }
    policy
}

/// Queue and topic names: 1-128 of `[A-Za-z0-9._-]`.
fn check_name(kind: &str, name: &str) -> Result<(), GrantError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(GrantError(format!(
            "`{name}` is not a {kind} name (1-128 of A-Z a-z 0-9 . _ -)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sections_parse_and_bad_ones_are_refused() {
        let queues = QueuesSection::parse(&json!({
            "send": ["orders"], "consume": [{"queue": "orders", "max_attempts": 3}]
        }))
        .expect("valid");
        assert_eq!(queues.send, ["orders"]);
        assert_eq!(
            queues.consume[0]
                .policy(&QueuePolicy::default())
                .max_attempts,
            3
        );
        assert!(QueuesSection::parse(&json!({"sned": []})).is_err());
        assert!(QueuesSection::parse(&json!({"send": ["a b"]})).is_err());
        assert!(
            QueuesSection::parse(&json!({"consume": [{"queue": "q", "max_attempts": 0}]})).is_err()
        );
        let topics = TopicsSection::parse(&json!({
            "subscribe": [{"topic": "events", "filter": {"kind": "order"}}]
        }))
        .expect("valid");
        assert_eq!(topics.subscribe[0].filter["kind"], "order");
        assert!(TopicsSection::parse(&json!({"publish": [""]})).is_err());
    }
}
