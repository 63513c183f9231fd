//! Sends jobs to the durable queue `jobs`.
//!
//! - `POST /…` with a body sends the body to queue `jobs` (with attribute
//!   `content-type` when the request has one) and answers the message id
//!   as plain text (`17`).
//! - When the queue is full (back-pressure) it answers 503 with the
//!   platform's message; other send failures answer 500.
//! - `GET` answers a usage line (so the health probe sends nothing).
//!
//! ```sh
//! cloudware deploy producer --package target/guests/wasm32-wasip2/release/queue_producer.wasm \
//!     --route /jobs --send-queue jobs
//! curl -d 'resize photo 7' localhost:8080/jobs    # 1
//! ```
//!
//! The queue keeps the messages until a consumer is deployed (see
//! `queue-worker`), across restarts of the node.

use cloudware_sdk::http::{Error, Method, Request, Response};
use cloudware_sdk::queue::{self, SendError};

/// The queue jobs go to.
const QUEUE: &str = "jobs";

fn handle(mut request: Request) -> Result<Response, Error> {
    if *request.method() != Method::Post {
        return Ok(Response::text(
            200,
            "POST a job body to send it to queue `jobs`\n",
        ));
    }
    let content_type = request.header("content-type").map(str::to_owned);
    let body = request.body()?;
    let attributes: Vec<(&str, &str)> = content_type
        .as_deref()
        .map(|value| ("content-type", value))
        .into_iter()
        .collect();
    Ok(match queue::send(QUEUE, &body, &attributes) {
        Ok(id) => Response::text(200, format!("{id}\n")),
        Err(SendError::Full(message)) => {
            Response::text(503, format!("queue `{QUEUE}` is full: {message}\n"))
                .header("retry-after", "1")
        }
        Err(err) => Response::text(500, format!("not sent: {err}\n")),
    })
}

cloudware_sdk::http_handler!(handle);
