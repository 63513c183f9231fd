//! Counts visits per path in the key-value bucket `counters`.
//!
//! - `GET /any/path` increments the counter of `/any/path` and answers
//!   `/any/path 3` (the new count) as plain text.
//! - `GET …?peek=1` answers the count without incrementing it.
//! - Other methods get 405.
//!
//! The platform's health probe (user agent `cloudware-health-probe`) is
//! answered without counting, so deploying does not count a visit.
//!
//! Deploy it, granted the bucket:
//!
//! ```sh
//! cloudware deploy kv-counter --package target/guests/wasm32-wasip2/release/kv_counter.wasm \
//!     --route /counter --kv-bucket counters
//! curl localhost:8080/counter/home    # /counter/home 1
//! curl localhost:8080/counter/home    # /counter/home 2
//! ```
//!
//! Without `--kv-bucket counters` the deploy is refused: the component
//! imports `wasi:keyvalue/store@0.2.0-draft`, which the deployment was not
//! granted.

use cloudware_sdk::http::{Method, Request, Response};
use cloudware_sdk::kv::Bucket;

/// The bucket the counters live in.
const BUCKET: &str = "counters";

fn handle(request: Request) -> Response {
    if *request.method() != Method::Get {
        return Response::text(405, "only GET counts\n").header("allow", "GET");
    }
    if request.header("user-agent") == Some("cloudware-health-probe") {
        return Response::text(200, "ok\n");
    }
    let path = request.path();
    let peek = request.query_param("peek").is_some();
    let counted = Bucket::open(BUCKET).and_then(|bucket| {
        if peek {
            Ok(bucket
                .get_string(path)?
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0))
        } else {
            bucket.increment(path, 1)
        }
    });
    match counted {
        Ok(count) => Response::text(200, format!("{path} {count}\n")),
        Err(err) => {
            cloudware_sdk::log::error!("counting {path}: {err}");
            Response::text(500, format!("{err}\n"))
        }
    }
}

cloudware_sdk::http_handler!(handle);
