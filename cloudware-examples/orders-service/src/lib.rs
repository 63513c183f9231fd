//! An internal service: exports `acme:orders/api@1.0.0` (see
//! `cloudware-examples/wit/orders.wit`), pricing orders against a fixed
//! catalog. It serves no HTTP and needs no route; other apps of the same
//! tenant call it by importing the interface and being linked to it.
//!
//! ```sh
//! cloudware deploy orders --package target/guests/wasm32-wasip2/release/orders_service.wasm
//! cloudware deploy shop --package target/guests/wasm32-wasip2/release/orders_client.wasm \
//!     --route /orders --link acme:orders/api@1.0.0=orders
//! ```
//!
//! Refusals are typed: an empty order, an unknown SKU or a bad quantity is
//! an `order-error` case. A line with SKU `panic` makes the service trap,
//! which its caller receives as `order-error::platform(failed(…))`.

wit_bindgen::generate!({
    path: ["../../wit", "../wit"],
    world: "acme:orders/service",
    generate_all,
});

use exports::acme::orders::api::{Guest, Line, Order, OrderError, OrderRequest, PricedLine};

/// The catalog: SKU and unit price in cents, sorted by SKU.
const CATALOG: &[(&str, u64)] = &[("book", 1250), ("mug", 800), ("pen", 150)];

/// The most of one SKU a line may ask for.
const MAX_QUANTITY: u32 = 1000;

struct Service;

impl Guest for Service {
    fn place(request: OrderRequest) -> Result<Order, OrderError> {
        if request.lines.is_empty() {
            return Err(OrderError::Empty);
        }
        let lines = request
            .lines
            .into_iter()
            .map(price)
            .collect::<Result<Vec<_>, _>>()?;
        let total_cents = lines.iter().map(|line| line.cents).sum();
        Ok(Order {
            customer: request.customer,
            lines,
            total_cents,
        })
    }

    fn catalog() -> Vec<String> {
        CATALOG.iter().map(|(sku, _)| (*sku).to_owned()).collect()
    }
}

export!(Service);

/// Prices one line.
fn price(line: Line) -> Result<PricedLine, OrderError> {
    if line.sku == "panic" {
        panic!("asked to fail");
    }
    let Some(&(_, unit_cents)) = CATALOG.iter().find(|(sku, _)| *sku == line.sku) else {
        return Err(OrderError::UnknownSku(line.sku));
    };
    if line.quantity == 0 || line.quantity > MAX_QUANTITY {
        return Err(OrderError::BadQuantity(format!(
            "{}: {} is not between 1 and {MAX_QUANTITY}",
            line.sku, line.quantity
        )));
    }
    Ok(PricedLine {
        cents: unit_cents * u64::from(line.quantity),
        sku: line.sku,
        quantity: line.quantity,
        unit_cents,
    })
}
