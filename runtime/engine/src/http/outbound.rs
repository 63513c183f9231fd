//! The outbound HTTP allow-list: which hosts a guest may call.
//!
//! Denied by default. Entries are host names (`api.example.com`), host and
//! port (`api.example.com:8443`), wildcard subdomains (`*.example.com`), or
//! `*` for any host.

use std::sync::Arc;

/// Hosts a component may send HTTP requests to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    entries: Arc<[AllowEntry]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AllowEntry {
    Any,
    Host { host: String, port: Option<u16> },
    Subdomains { suffix: String, port: Option<u16> },
}

/// A malformed allow-list entry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid outbound host `{0}` (expected HOST, HOST:PORT, *.DOMAIN or *)")]
pub struct InvalidAllowEntry(pub String);

impl OutboundPolicy {
    /// A policy that denies every outbound request.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Builds a policy from allow-list entries.
    pub fn allow<I, S>(entries: I) -> Result<Self, InvalidAllowEntry>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entries = entries
            .into_iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutboundPolicy {
            entries: entries.into(),
        })
    }

    /// Whether a request to `host` on `port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|entry| match entry {
            AllowEntry::Any => true,
            AllowEntry::Host { host: h, port: p } => *h == host && p.is_none_or(|p| p == port),
            AllowEntry::Subdomains { suffix, port: p } => {
                host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && p.is_none_or(|p| p == port)
            }
        })
    }
}

fn parse_entry(raw: &str) -> Result<AllowEntry, InvalidAllowEntry> {
    let bad = || InvalidAllowEntry(raw.to_string());
    let entry = raw.trim().to_ascii_lowercase();
    if entry == "*" {
        return Ok(AllowEntry::Any);
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| bad())?)),
        None => (entry.as_str(), None),
    };
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if let Some(suffix) = host.strip_prefix("*.") {
        if !valid_name(suffix) {
            return Err(bad());
        }
        return Ok(AllowEntry::Subdomains {
            suffix: suffix.to_string(),
            port,
        });
    }
    if !valid_name(host) {
        return Err(bad());
    }
    Ok(AllowEntry::Host {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_by_default() {
        assert!(!OutboundPolicy::deny_all().allows("example.com", 443));
    }

    #[test]
    fn matches_hosts_ports_and_wildcards() {
        let p = OutboundPolicy::allow(["api.example.com", "127.0.0.1:8080", "*.acme.io"]).unwrap();
        assert!(p.allows("api.example.com", 443));
        assert!(p.allows("API.Example.com.", 80));
        assert!(!p.allows("example.com", 443));
        assert!(!p.allows("evilapi.example.com", 443));
        assert!(p.allows("127.0.0.1", 8080));
        assert!(!p.allows("127.0.0.1", 8081));
        assert!(p.allows("x.acme.io", 443));
        assert!(p.allows("a.b.acme.io", 443));
        assert!(!p.allows("acme.io", 443));
        assert!(!p.allows("xacme.io", 443));
        assert!(OutboundPolicy::allow(["*"]).unwrap().allows("anything", 1));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in ["", "a..b", "host:port", "*.", "http://x.com", "a/b"] {
            assert!(OutboundPolicy::allow([bad]).is_err(), "{bad}");
        }
    }
}
