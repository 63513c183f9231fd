//! An HTTP front for the `acme:orders/api@1.0.0` service (see
//! `orders-service`): it imports the interface, and the platform links the
//! import to the app exporting it.
//!
//! - `POST /orders` with a JSON body
//!   `{"customer": "ada", "lines": [{"sku": "book", "quantity": 2}]}` calls
//!   `place` and answers the typed result as JSON: 200 with
//!   `{"customer", "lines": [{"sku", "quantity", "unit_cents", "cents"}],
//!   "total_cents"}`, 422 with `{"error": "unknown-sku", "detail": "…"}`
//!   for a refused order, 503 with `{"error": "platform", "detail": "…"}`
//!   when the platform could not complete the call.
//! - `GET /orders` answers the catalog as a JSON list.
//!
//! ```sh
//! cloudware deploy orders --package target/guests/wasm32-wasip2/release/orders_service.wasm
//! cloudware deploy shop --package target/guests/wasm32-wasip2/release/orders_client.wasm \
//!     --route /orders --link acme:orders/api@1.0.0=orders
//! curl -d '{"customer":"ada","lines":[{"sku":"book","quantity":2}]}' localhost:8080/orders
//! ```
//!
//! Without `--link`, the deploy is refused: the component imports
//! `acme:orders/api@1.0.0`, which is no platform interface.

wit_bindgen::generate!({
    path: ["../../wit", "../wit"],
    world: "acme:orders/client",
    generate_all,
});

use acme::orders::api::{self, Line, OrderError, OrderRequest};
use cloudware::platform::services::CallError;
use cloudware_sdk::http::{Error, Method, Request, Response};
use serde::{Deserialize, Serialize};

/// The JSON of an order to place.
#[derive(Deserialize)]
struct NewOrder {
    customer: String,
    lines: Vec<NewLine>,
}

#[derive(Deserialize)]
struct NewLine {
    sku: String,
    quantity: u32,
}

/// The JSON of a priced order.
#[derive(Serialize)]
struct PricedOrder {
    customer: String,
    lines: Vec<PricedLine>,
    total_cents: u64,
}

#[derive(Serialize)]
struct PricedLine {
    sku: String,
    quantity: u32,
    unit_cents: u64,
    cents: u64,
}

/// The JSON of a refusal.
#[derive(Serialize)]
struct Refusal {
    error: &'static str,
    detail: String,
}

fn handle(mut request: Request) -> Result<Response, Error> {
    match request.method() {
        Method::Get => Ok(Response::json(200, &api::catalog())),
        Method::Post => {
            let order: NewOrder = request.json()?;
            Ok(place(order))
        }
        _ => Ok(Response::text(405, "GET or POST\n").header("allow", "GET, POST")),
    }
}

cloudware_sdk::http_handler!(handle);

/// Calls the service and turns its typed answer into JSON.
fn place(order: NewOrder) -> Response {
    let request = OrderRequest {
        customer: order.customer,
        lines: order
            .lines
            .into_iter()
            .map(|line| Line {
                sku: line.sku,
                quantity: line.quantity,
            })
            .collect(),
    };
    match api::place(&request) {
        Ok(order) => Response::json(
            200,
            &PricedOrder {
                customer: order.customer,
                total_cents: order.total_cents,
                lines: order
                    .lines
                    .into_iter()
                    .map(|line| PricedLine {
                        sku: line.sku,
                        quantity: line.quantity,
                        unit_cents: line.unit_cents,
                        cents: line.cents,
                    })
                    .collect(),
            },
        ),
        Err(err) => {
            let (status, error, detail) = match err {
                OrderError::Empty => (422, "empty", "the order has no lines".to_owned()),
                OrderError::UnknownSku(sku) => (422, "unknown-sku", sku),
                OrderError::BadQuantity(detail) => (422, "bad-quantity", detail),
                OrderError::Platform(call) => (503, "platform", describe(&call)),
            };
            Response::json(status, &Refusal { error, detail })
        }
    }
}

/// A platform failure in words.
fn describe(err: &CallError) -> String {
    match err {
        CallError::Timeout => "the call timed out".to_owned(),
        CallError::DepthExceeded => "the chain of calls is too deep".to_owned(),
        CallError::Unavailable(reason) => format!("the service is unavailable: {reason}"),
        CallError::Failed(reason) => format!("the service failed: {reason}"),
    }
}
