//! Consumes queue `jobs`: stores each job in key-value bucket `jobs-done`,
//! keyed by its message id (so a redelivery just stores it again).
//!
//! Two payloads misbehave on purpose, to show retries and dead-lettering:
//! `fail` returns an error (the message is retried, then dead-lettered
//! after the queue's maximum of attempts), and `trap` panics, trapping the
//! instance (the same, as the platform sees it).
//!
//! ```sh
//! cloudware deploy worker --package target/guests/wasm32-wasip2/release/queue_worker.wasm \
//!     --consume jobs --kv-bucket jobs-done
//! ```
//!
//! A consumer has no route. The retry policy can be set with a
//! capabilities file instead of `--consume`:
//!
//! ```toml
//! [keyvalue]
//! buckets = ["jobs-done"]
//! [[queues.consume]]
//! queue = "jobs"
//! max_attempts = 3
//! backoff_ms = 200
//! ```

use cloudware_sdk::kv::Bucket;
use cloudware_sdk::message::Message;

/// Where finished jobs are recorded.
const BUCKET: &str = "jobs-done";

fn handle(message: Message) -> Result<(), String> {
    match message.payload.as_slice() {
        b"fail" => {
            return Err(format!(
                "job {} asked to fail (attempt {})",
                message.id, message.attempt
            ));
        }
        b"trap" => panic!("job {} asked to trap", message.id),
        _ => {}
    }
    let bucket = Bucket::open(BUCKET).map_err(|err| err.to_string())?;
    bucket
        .set(&message.id.to_string(), &message.payload)
        .map_err(|err| err.to_string())?;
    cloudware_sdk::log::info!(
        "job {} from `{}` done (attempt {})",
        message.id,
        message.source,
        message.attempt
    );
    Ok(())
}

cloudware_sdk::message_handler!(handle);
