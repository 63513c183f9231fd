//! Validation and normalization of the names, digests, hosts and paths that
//! commands carry.
//!
//! Every check here is pure and cheap, so the API layer may call the same
//! functions to reject bad input before proposing a command; the state
//! machine checks again when it applies the command.

use crate::error::{CommandError, NameKind};

/// The longest tenant or app name.
pub const MAX_NAME_LEN: usize = 63;
/// The longest token id.
pub const MAX_TOKEN_ID_LEN: usize = 128;
/// The longest route host (without the `*.` of a wildcard).
pub const MAX_HOST_LEN: usize = 253;
/// The longest route path prefix.
pub const MAX_PATH_PREFIX_LEN: usize = 1024;
/// The longest config key.
pub const MAX_CONFIG_KEY_LEN: usize = 256;

/// Whether `s` is a slug: 1–63 characters of `a-z`, `0-9` and `-`, neither
/// starting nor ending with `-`. Tenant names, app names and host labels are
/// slugs.
pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Checks that `name` is a valid tenant or app name (a slug, see [`is_slug`]).
pub fn check_name(kind: NameKind, name: &str) -> Result<(), CommandError> {
    if is_slug(name) {
        Ok(())
    } else {
        Err(CommandError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Whether `id` is a valid token id: 1–128 characters of `A-Z`, `a-z`,
/// `0-9`, `_` and `-` (e.g. `tok_3f9a…`).
pub fn is_token_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TOKEN_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is 64 lowercase hex digits, the form of a sha256 hash.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `digest` is a package digest: `sha256:` followed by 64 lowercase
/// hex digits.
pub fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

/// Checks that `digest` is a package digest (see [`is_digest`]).
pub fn check_digest(digest: &str) -> Result<(), CommandError> {
    if is_digest(digest) {
        Ok(())
    } else {
        Err(CommandError::InvalidDigest {
            digest: digest.to_owned(),
        })
    }
}

/// Validates a route host and returns its normalized (lowercase) form.
///
/// A host is either exact (`shop.example.com`) or a wildcard
/// (`*.example.com`, covering every host that ends in `.example.com`, at any
/// depth, but not `example.com` itself). Labels are slugs; there is no port
/// and no trailing dot; international names use their punycode form. A
/// wildcard must cover a domain of at least two labels, so no tenant can
/// claim a whole top-level domain.
pub fn normalize_host(host: &str) -> Result<String, CommandError> {
    let invalid = |reason: &str| CommandError::InvalidHost {
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    if host.is_empty() {
        return Err(invalid(
            "it is empty (leave the host out to match hosts no tenant owns)",
        ));
    }
    if host.contains(':') {
        return Err(invalid("it must not include a port"));
    }
    if !host.is_ascii() {
        return Err(invalid(
            "it must be ASCII (use the punycode form of international names)",
        ));
    }
    let lower = host.to_ascii_lowercase();
    let (wildcard, domain) = match lower.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, lower.as_str()),
    };
    if domain.contains('*') {
        return Err(invalid(
            "'*' may only be the whole first label, as in *.example.com",
        ));
    }
    if domain.len() > MAX_HOST_LEN {
        return Err(invalid("it is longer than 253 characters"));
    }
    if !domain.split('.').all(is_slug) {
        return Err(invalid(
            "each dot-separated label must be 1–63 characters of a-z, 0-9 and '-', \
             not starting or ending with '-'",
        ));
    }
    if wildcard && !domain.contains('.') {
        return Err(invalid(
            "a wildcard must cover a domain of at least two labels, as in *.example.com",
        ));
    }
    Ok(lower)
}

/// Validates a route path prefix and returns its normalized form (without a
/// trailing `/`, except for `/` itself).
///
/// A prefix starts with `/`, is printable ASCII (percent-encode anything
/// else), and has no `?`, `#`, empty segments or `.`/`..` segments.
pub fn normalize_path_prefix(path: &str) -> Result<String, CommandError> {
    let invalid = |reason: &str| CommandError::InvalidPathPrefix {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(invalid("it must start with '/'"));
    }
    if path.len() > MAX_PATH_PREFIX_LEN {
        return Err(invalid("it is longer than 1024 characters"));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(invalid(
            "it must be printable ASCII without spaces, '?' or '#' (percent-encode other characters)",
        ));
    }
    if path.contains("//") {
        return Err(invalid("it must not contain empty, '.' or '..' segments"));
    }
    let trimmed = match path.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    };
    if trimmed != "/"
        && trimmed[1..]
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(invalid("it must not contain empty, '.' or '..' segments"));
    }
    Ok(trimmed.to_owned())
}

/// Checks an entry of a deployment's `allow_outbound` list: non-empty,
/// printable ASCII without spaces. Its meaning (host, wildcard, URL) belongs
/// to the outbound-HTTP capability.
pub fn check_outbound(entry: &str) -> Result<(), CommandError> {
    if !entry.is_empty() && entry.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(CommandError::InvalidOutbound {
            entry: entry.to_owned(),
        })
    }
}

/// The largest capability section, in bytes of JSON.
pub const MAX_CAPABILITY_SECTION: usize = 64 * 1024;

/// Checks a deployment's capability section: a known-shaped name (a slug)
/// and a JSON object of bounded size. What the object holds is the
/// capability's to check.
pub fn check_capability(name: &str, section: &serde_json::Value) -> Result<(), CommandError> {
    let invalid = |reason: String| CommandError::InvalidCapability {
        capability: name.to_owned(),
        reason,
    };
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("not a capability name".into()));
    }
    if !section.is_object() {
        return Err(invalid("its grant must be a JSON object".into()));
    }
    let size = serde_json::to_string(section)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CAPABILITY_SECTION {
        return Err(invalid(format!(
            "its grant is {size} bytes of JSON, more than {MAX_CAPABILITY_SECTION}"
        )));
    }
    Ok(())
}

/// Checks a key of a deployment's config: 1–256 characters, none of them
/// whitespace or control characters.
pub fn check_config_key(key: &str) -> Result<(), CommandError> {
    if !key.is_empty()
        && key.len() <= MAX_CONFIG_KEY_LEN
        && !key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(())
    } else {
        Err(CommandError::InvalidConfigKey {
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "acme", "acme-2", "0", &"a".repeat(63)] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Acme", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(!is_slug(bad), "{bad}");
        }
        assert!(check_name(NameKind::Tenant, "acme").is_ok());
        let err = check_name(NameKind::App, "Shop").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`Shop` is not a valid app name: use 1–63 characters of a-z, 0-9 and '-', \
             not starting or ending with '-'"
        );
    }

    #[test]
    fn token_ids_and_hashes() {
        assert!(is_token_id("tok_AbC-123"));
        assert!(!is_token_id(""));
        assert!(!is_token_id("tok 1"));
        assert!(!is_token_id(&"t".repeat(129)));
        assert!(is_sha256_hex(&"ab".repeat(32)));
        assert!(!is_sha256_hex(&"AB".repeat(32)));
        assert!(!is_sha256_hex(&"ab".repeat(31)));
        assert!(!is_sha256_hex(&"zz".repeat(32)));
    }

    #[test]
    fn digests() {
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(is_digest(&format!("sha256:{hex}")));
        assert!(!is_digest(hex));
        assert!(!is_digest(&format!("sha512:{hex}")));
        assert!(!is_digest(&format!("sha256:{}", hex.to_uppercase())));
        assert!(!is_digest("sha256:"));
        assert!(!is_digest(&format!("sha256:{hex}0")));
        assert_eq!(
            check_digest("nope").unwrap_err().to_string(),
            "`nope` is not a package digest: expected `sha256:` followed by 64 lowercase hex digits"
        );
    }

    #[test]
    fn hosts_are_lowercased_and_validated() {
        assert_eq!(
            normalize_host("Shop.Example.COM").unwrap(),
            "shop.example.com"
        );
        assert_eq!(normalize_host("*.Example.com").unwrap(), "*.example.com");
        assert_eq!(
            normalize_host("*.a.b.example.com").unwrap(),
            "*.a.b.example.com"
        );
        assert_eq!(normalize_host("localhost").unwrap(), "localhost");
        assert_eq!(normalize_host("10.0.0.1").unwrap(), "10.0.0.1");
        for bad in [
            "",
            "shop.example.com:8080",
            "shop.example.com.",
            ".example.com",
            "shop..example.com",
            "*.com",
            "*",
            "*example.com",
            "a.*.example.com",
            "*.*.example.com",
            "shop_1.example.com",
            "-shop.example.com",
            "bücher.example.com",
            "shop example.com",
            "[::1]",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        assert!(normalize_host(&long).is_err());
        assert_eq!(
            normalize_host("shop.example.com:80")
                .unwrap_err()
                .to_string(),
            "`shop.example.com:80` is not a valid route host: it must not include a port"
        );
    }

    #[test]
    fn path_prefixes_are_normalized() {
        assert_eq!(normalize_path_prefix("/").unwrap(), "/");
        assert_eq!(normalize_path_prefix("/api").unwrap(), "/api");
        assert_eq!(normalize_path_prefix("/api/").unwrap(), "/api");
        assert_eq!(normalize_path_prefix("/api/v1/").unwrap(), "/api/v1");
        assert_eq!(normalize_path_prefix("/a%20b").unwrap(), "/a%20b");
        for bad in [
            "", "api", "//", "/api//", "//api", "/a//b", "/./a", "/a/..", "/a b", "/a?b", "/a#b",
            "/é", "/a\n",
        ] {
            assert!(
                normalize_path_prefix(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(normalize_path_prefix(&format!("/{}", "a".repeat(1024))).is_err());
        assert_eq!(
            normalize_path_prefix("api").unwrap_err().to_string(),
            "`api` is not a valid path prefix: it must start with '/'"
        );
    }

    #[test]
    fn outbound_entries_and_config_keys() {
        assert!(check_outbound("api.stripe.com").is_ok());
        assert!(check_outbound("https://*.example.com:443").is_ok());
        assert!(check_outbound("").is_err());
        assert!(check_outbound("a b").is_err());
        assert!(check_config_key("DATABASE_URL").is_ok());
        assert!(check_config_key("greeting.text").is_ok());
        assert!(check_config_key("").is_err());
        assert!(check_config_key("a b").is_err());
        assert!(check_config_key("a\u{0}").is_err());
        assert!(check_config_key(&"k".repeat(257)).is_err());
    }
}
