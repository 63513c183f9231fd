//! Subscribes to topic `events`: counts the events of each kind in
//! key-value key `seen-<kind>` of bucket `events-<name>`, where `<name>` is
//! configuration value `name`. One package can so be deployed twice with
//! different subscriptions and buckets:
//!
//! ```sh
//! # every event
//! cloudware deploy audit --package target/guests/wasm32-wasip2/release/pubsub_subscriber.wasm \
//!     --subscribe events --config name=all --kv-bucket events-all
//! # only events with attribute kind=a
//! cloudware deploy only-a --package target/guests/wasm32-wasip2/release/pubsub_subscriber.wasm \
//!     --subscribe events:kind=a --config name=a --kv-bucket events-a
//! ```
//!
//! An event without attribute `kind` counts as `seen-none`.

use cloudware_sdk::kv::Bucket;
use cloudware_sdk::message::Message;

fn handle(message: Message) -> Result<(), String> {
    let name = cloudware_sdk::config::get("name")
        .ok_or("configuration value `name` is not set (deploy with --config name=…)")?;
    let kind = message.attribute("kind").unwrap_or("none");
    let bucket = Bucket::open(&format!("events-{name}")).map_err(|err| err.to_string())?;
    let seen = bucket
        .increment(&format!("seen-{kind}"), 1)
        .map_err(|err| err.to_string())?;
    cloudware_sdk::log::debug!("{name}: {seen} events of kind {kind}");
    Ok(())
}

cloudware_sdk::message_handler!(handle);
