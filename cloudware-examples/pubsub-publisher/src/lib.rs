//! Publishes events to topic `events`.
//!
//! - `POST /…?kind=K` publishes the body to topic `events` with attribute
//!   `kind=K` (`kind` defaults to `none`) and answers how many
//!   subscriptions it reached, as plain text (`2`).
//! - `GET` answers a usage line.
//!
//! ```sh
//! cloudware deploy publisher --package target/guests/wasm32-wasip2/release/pubsub_publisher.wasm \
//!     --route /events --publish events
//! curl -d '{"order":7}' 'localhost:8080/events?kind=a'    # 2
//! ```
//!
//! Who receives an event is configuration: see `pubsub-subscriber`.

use cloudware_sdk::http::{Error, Method, Request, Response};
use cloudware_sdk::queue::SendError;
use cloudware_sdk::topic;

/// The topic events go to.
const TOPIC: &str = "events";

fn handle(mut request: Request) -> Result<Response, Error> {
    if *request.method() != Method::Post {
        return Ok(Response::text(
            200,
            "POST an event body with ?kind=K to publish it to topic `events`\n",
        ));
    }
    let kind = request
        .query_param("kind")
        .map_or_else(|| "none".to_owned(), |kind| kind.into_owned());
    let body = request.body()?;
    Ok(match topic::publish(TOPIC, &body, &[("kind", &kind)]) {
        Ok(reached) => Response::text(200, format!("{reached}\n")),
        Err(err @ SendError::Full(_)) => Response::text(503, format!("{err}\n")),
        Err(err) => Response::text(500, format!("not published: {err}\n")),
    })
}

cloudware_sdk::http_handler!(handle);
