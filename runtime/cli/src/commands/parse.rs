//! Parsers for command-line values (clap `value_parser`s). They catch the
//! mistakes that need no server to see; the server validates fully.

use std::path::PathBuf;

/// A route, `[HOST]/PATH-PREFIX`: `shop.example.com/api`, `/api`,
/// `*.example.com/`. Returned as given (the server normalizes it).
pub fn route(text: &str) -> Result<String, String> {
    const EXPECTED: &str =
        "expected [HOST]/PATH-PREFIX, such as shop.example.com/api, /api or *.example.com/";
    let Some(slash) = text.find('/') else {
        return Err(format!("no '/': {EXPECTED}"));
    };
    let (host, path) = text.split_at(slash);
    if !host.is_empty() {
        check_host(host).map_err(|reason| format!("host `{host}` {reason}"))?;
    }
    check_path(path).map_err(|reason| format!("path `{path}` {reason}"))?;
    Ok(text.to_owned())
}

fn check_host(host: &str) -> Result<(), &'static str> {
    if host.contains(':') {
        return Err("must not include a port");
    }
    let (wildcard, domain) = match host.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, host),
    };
    if domain.contains('*') {
        return Err("may use '*' only as its whole first label, as in *.example.com");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(
            "is not a host name: use dot-separated labels of a-z, 0-9 and '-' (punycode for international names)",
        );
    }
    if wildcard && !domain.contains('.') {
        return Err("is too wide: a wildcard must cover at least two labels, as in *.example.com");
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(
            "must be printable ASCII without spaces, '?' or '#' (percent-encode other characters)",
        );
    }
    let inner = path[1..].strip_suffix('/').unwrap_or(&path[1..]);
    if !inner.is_empty()
        && inner
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err("must not contain empty, '.' or '..' segments");
    }
    if path == "//" {
        return Err("must not contain empty segments");
    }
    Ok(())
}

/// A `--config KEY=VALUE` pair (the value may be empty and contain `=`).
pub fn config_pair(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err("expected KEY=VALUE".to_owned());
    };
    if key.is_empty() {
        return Err("the key before '=' is empty".to_owned());
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the key `{key}` contains whitespace"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// A duration such as `30s`, `500ms` or `2m`, in whole milliseconds (> 0).
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|err| err.to_string())?;
    match u64::try_from(duration.as_millis()) {
        Ok(0) => Err("must be at least 1ms".to_owned()),
        Ok(ms) => Ok(ms),
        Err(_) => Err("is too long".to_owned()),
    }
}

/// A size such as `64MiB`, `512 KiB` or `1048576` (bytes), in bytes (> 0).
pub fn size_bytes(text: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = text
        .trim()
        .parse()
        .map_err(|err| format!("{err} (use e.g. 64MiB or 512KiB)"))?;
    match size.as_u64() {
        0 => Err("must be more than 0 bytes".to_owned()),
        u64::MAX => Err("is too large".to_owned()),
        bytes => Ok(bytes),
    }
}

/// An `--allow-outbound` entry: printable ASCII without spaces.
pub fn outbound(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_owned())
    } else {
        Err(
            "expected a host such as api.example.com, api.example.com:8443 or *.example.com"
                .to_owned(),
        )
    }
}

/// A non-empty name (app, tenant, token id); the server checks its form.
pub fn name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// What `deploy --package` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageRef {
    /// An already pushed package, `sha256:<hex>`.
    Digest(String),
    /// A `.wasm` file to push first.
    File(PathBuf),
}

/// A `--package FILE|DIGEST`: anything starting with `sha256:` is a digest.
pub fn package_ref(text: &str) -> Result<PackageRef, String> {
    match text.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(PackageRef::Digest(text.to_owned()))
        }
        Some(_) => Err(
            "not a package digest: expected sha256: followed by 64 lowercase hex digits".to_owned(),
        ),
        None if text.is_empty() => Err("expected a .wasm file or a sha256:… digest".to_owned()),
        None => Ok(PackageRef::File(PathBuf::from(text))),
    }
}

/// Parses a spread rule, `KEY=VALUE[,KEY=VALUE…][:WEIGHT]` (weight 1 when
/// left out), e.g. `zone=east:3`.
pub fn spread(text: &str) -> Result<cloudware_state::Spread, String> {
    let (labels, weight) = match text.rsplit_once(':') {
        Some((labels, weight)) => (
            labels,
            weight
                .parse::<u32>()
                .ok()
                .filter(|w| *w > 0)
                .ok_or_else(|| {
                    format!("`{text}`: the weight after `:` must be a whole number above 0")
                })?,
        ),
        None => (text, 1),
    };
    let mut requirements = std::collections::BTreeMap::new();
    for pair in labels.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected KEY=VALUE[,KEY=VALUE…][:WEIGHT]"))?;
        requirements.insert(key.to_string(), value.to_string());
    }
    if requirements.is_empty() {
        return Err(format!(
            "`{text}`: name at least one label, e.g. zone=east:3"
        ));
    }
    Ok(cloudware_state::Spread {
        requirements,
        weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        for ok in [
            "shop.example.com/api",
            "/api",
            "*.example.com/",
            "/",
            "Shop.Example.com/",
            "/api/",
            "/api/v1",
            "localhost/a%20b",
            "10.0.0.1/",
        ] {
            assert_eq!(route(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "noslash",
            "",
            "shop.example.com",
            "shop.example.com:8080/",
            "*.com/",
            "*/",
            "a.*.example.com/",
            "*example.com/",
            "shop..example.com/",
            "-shop.example.com/",
            "shop_1.example.com/",
            "bücher.example.com/",
            "//",
            "/api//v1",
            "//api",
            "/a/../b",
            "/./a",
            "/a b",
            "/a?b",
            "/a#b",
            "/é",
        ] {
            assert!(route(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            route("noslash").unwrap_err(),
            "no '/': expected [HOST]/PATH-PREFIX, such as shop.example.com/api, /api or *.example.com/"
        );
        assert_eq!(
            route("shop.example.com:80/").unwrap_err(),
            "host `shop.example.com:80` must not include a port"
        );
    }

    #[test]
    fn config_pairs() {
        assert_eq!(
            config_pair("GREETING=hello"),
            Ok(("GREETING".into(), "hello".into()))
        );
        assert_eq!(config_pair("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert_eq!(
            config_pair("URL=postgres://h/db?a=b"),
            Ok(("URL".into(), "postgres://h/db?a=b".into()))
        );
        assert_eq!(
            config_pair("greeting.text=hi there"),
            Ok(("greeting.text".into(), "hi there".into()))
        );
        assert_eq!(config_pair("novalue"), Err("expected KEY=VALUE".into()));
        assert!(config_pair("=value").is_err());
        assert!(config_pair("a b=c").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("30s"), Ok(30_000));
        assert_eq!(duration_ms("500ms"), Ok(500));
        assert_eq!(duration_ms("2m"), Ok(120_000));
        assert_eq!(duration_ms("1m 30s"), Ok(90_000));
        assert!(duration_ms("0s").is_err());
        assert!(duration_ms("500us").is_err());
        assert!(duration_ms("30").unwrap_err().contains("time unit needed"));
        assert!(duration_ms("soon").is_err());
        assert!(duration_ms("-5s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(size_bytes("64 MiB"), Ok(64 << 20));
        assert_eq!(size_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(size_bytes("1GB"), Ok(1_000_000_000));
        assert_eq!(size_bytes("4096"), Ok(4096));
        assert!(size_bytes("0").is_err());
        assert!(size_bytes("0MiB").is_err());
        assert!(size_bytes("lots").is_err());
        assert!(size_bytes("64 parsecs").is_err());
        assert!(size_bytes("-1MiB").is_err());
    }

    #[test]
    fn package_refs_and_names() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(package_ref(&digest), Ok(PackageRef::Digest(digest.clone())));
        assert_eq!(
            package_ref("target/app.wasm"),
            Ok(PackageRef::File("target/app.wasm".into()))
        );
        assert!(package_ref("sha256:abc").is_err());
        assert!(package_ref(&digest.to_uppercase().replace("SHA256", "sha256")).is_err());
        assert!(package_ref("").is_err());
        assert!(outbound("api.example.com").is_ok());
        assert!(outbound("*.example.com:443").is_ok());
        assert!(outbound("a b").is_err());
        assert!(outbound("").is_err());
        assert!(name("shop").is_ok());
        assert!(name(" ").is_err());
    }

    #[test]
    fn spread_rules() {
        let rule = spread("zone=east,disk=ssd:3").unwrap();
        assert_eq!(rule.weight, 3);
        assert_eq!(rule.requirements.len(), 2);
        assert_eq!(spread("zone=west").unwrap().weight, 1);
        for bad in ["zone=east:0", "zone=east:x", ":2", "zone"] {
            assert!(spread(bad).is_err(), "{bad}");
        }
    }
}
