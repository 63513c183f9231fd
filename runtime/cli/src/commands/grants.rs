//! The capability flags of `cloudware deploy`: what the deployment is
//! granted, as the `capabilities` sections of the API (see the admin API's
//! `CreateDeployment`). Flags add to a `--capabilities` file.

use super::Failure;
use super::parse;
use clap::Args;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Capability grants of a deployment. Everything not granted is denied.
#[derive(Args, Debug, Default)]
pub struct GrantArgs {
    /// A file of grants, TOML or JSON, one table per capability, e.g.
    /// `[keyvalue] buckets = ["cart"]`, `[queues] send = ["orders"]`,
    /// `[[queues.consume]] queue = "orders"`, `[services.links]
    /// "acme:orders/api@1.0.0" = "orders"`, `[secrets] api_key = "…"`.
    #[arg(long = "capabilities", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Let the component open key-value bucket NAME of its tenant (repeatable).
    #[arg(long = "kv-bucket", value_name = "NAME")]
    pub kv_buckets: Vec<String>,
    /// A secret for the component (wasi:config), sealed at rest and never
    /// shown back; `NAME=@FILE` reads the value from FILE (repeatable).
    /// A deploy without any keeps the current version's secrets.
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = parse::config_pair)]
    pub secrets: Vec<(String, String)>,
    /// Let the component send to queue NAME (repeatable).
    #[arg(long = "send-queue", value_name = "NAME")]
    pub send_queues: Vec<String>,
    /// Deliver queue NAME's messages to this app (repeatable).
    #[arg(long = "consume", value_name = "QUEUE")]
    pub consume: Vec<String>,
    /// Let the component publish to topic NAME (repeatable).
    #[arg(long = "publish", value_name = "TOPIC")]
    pub publish: Vec<String>,
    /// Subscribe this app to TOPIC, optionally only to messages whose
    /// attributes match: `orders:kind=paid,region=eu` (repeatable).
    #[arg(long = "subscribe", value_name = "TOPIC[:KEY=VALUE,...]")]
    pub subscribe: Vec<String>,
    /// Link an imported interface to the app that exports it:
    /// `acme:orders/api@1.0.0=orders` (repeatable).
    #[arg(long = "link", value_name = "INTERFACE=APP")]
    pub links: Vec<String>,
}

impl GrantArgs {
    /// The sections to send.
    pub fn sections(self) -> anyhow::Result<BTreeMap<String, Value>> {
        let mut sections: BTreeMap<String, Value> = match &self.file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let mut push = |section: &str, key: &str, value: Value| {
            let entry = sections
                .entry(section.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = entry {
                let list = map.entry(key.to_owned()).or_insert_with(|| json!([]));
                if let Value::Array(items) = list {
                    items.push(value);
                }
            }
        };
        for bucket in self.kv_buckets {
            push("keyvalue", "buckets", json!(bucket));
        }
        for queue in self.send_queues {
            push("queues", "send", json!(queue));
        }
        for queue in self.consume {
            push("queues", "consume", json!({ "queue": queue }));
        }
        for topic in self.publish {
            push("topics", "publish", json!(topic));
        }
        for spec in self.subscribe {
            push("topics", "subscribe", subscription(&spec)?);
        }
        for (name, value) in self.secrets {
            let value = match value.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|err| {
                    Failure::usage(format!(
                        "cannot read the secret `{name}` from {path}: {err}"
                    ))
                })?,
                None => value,
            };
            object(&mut sections, "secrets").insert(name, Value::String(value));
        }
        for link in self.links {
            let Some((interface, app)) = link.rsplit_once('=') else {
                return Err(Failure::usage(format!(
                    "`--link {link}`: write INTERFACE=APP, e.g. acme:orders/api@1.0.0=orders"
                ))
                .into());
            };
            let services = object(&mut sections, "services");
            let links = services
                .entry("links".to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(links) = links {
                links.insert(interface.to_owned(), Value::String(app.to_owned()));
            }
        }
        Ok(sections)
    }
}

/// The object of section `name`, created if missing.
fn object<'a>(sections: &'a mut BTreeMap<String, Value>, name: &str) -> &'a mut Map<String, Value> {
    let entry = sections
        .entry(name.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// `TOPIC[:KEY=VALUE,...]` as a subscription.
fn subscription(spec: &str) -> anyhow::Result<Value> {
    let (topic, filter) = spec.split_once(':').unwrap_or((spec, ""));
    let mut pairs = Map::new();
    for pair in filter.split(',').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Failure::usage(format!(
                "`--subscribe {spec}`: a filter is KEY=VALUE pairs separated by commas"
            ))
            .into());
        };
        pairs.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(json!({ "topic": topic, "filter": pairs }))
}

/// Reads a TOML or JSON grants file.
fn read_file(path: &PathBuf) -> anyhow::Result<BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::usage(format!("cannot read {}: {err}", path.display())))?;
    let parsed: Result<BTreeMap<String, Value>, String> =
        if path.extension().is_some_and(|ext| ext == "json") {
            serde_json::from_str(&text).map_err(|err| err.to_string())
        } else {
            toml::from_str(&text).map_err(|err| err.to_string())
        };
    parsed.map_err(|err| Failure::usage(format!("{}: {err}", path.display())).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_sections() {
        let args = GrantArgs {
            kv_buckets: vec!["cart".into()],
            send_queues: vec!["orders".into()],
            consume: vec!["orders".into()],
            subscribe: vec!["events:kind=paid".into()],
            links: vec!["acme:orders/api@1.0.0=orders".into()],
            secrets: vec![("api_key".into(), "s3".into())],
            ..GrantArgs::default()
        };
        let sections = args.sections().expect("sections");
        assert_eq!(sections["keyvalue"], json!({"buckets": ["cart"]}));
        assert_eq!(
            sections["queues"],
            json!({"send": ["orders"], "consume": [{"queue": "orders"}]})
        );
        assert_eq!(
            sections["topics"],
            json!({"subscribe": [{"topic": "events", "filter": {"kind": "paid"}}]})
        );
        assert_eq!(
            sections["services"],
            json!({"links": {"acme:orders/api@1.0.0": "orders"}})
        );
        assert_eq!(sections["secrets"], json!({"api_key": "s3"}));
    }

    #[test]
    fn a_grants_file_is_read_and_flags_add_to_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("caps.toml");
        std::fs::write(
            &path,
            "[keyvalue]\nbuckets = [\"a\"]\n[[queues.consume]]\nqueue = \"q\"\nmax_attempts = 3\n",
        )
        .expect("write");
        let args = GrantArgs {
            file: Some(path),
            kv_buckets: vec!["b".into()],
            ..GrantArgs::default()
        };
        let sections = args.sections().expect("sections");
        assert_eq!(sections["keyvalue"], json!({"buckets": ["a", "b"]}));
        assert_eq!(sections["queues"]["consume"][0]["max_attempts"], json!(3));
    }
}
