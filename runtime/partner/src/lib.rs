//! Cloudware's external partner API: outside systems call chosen exported
//! functions of deployed components through signed requests, in the style of
//! Alipay's open API (`sign_type=RSA2`).
//!
//! # Protocol
//!
//! A partner is registered with its RSA public key (2048 bits or more) and
//! gets an `app_id`; the registration lists which methods (`APP.FUNCTION`)
//! it may call. It sends `POST /openapi` with a form
//! (`application/x-www-form-urlencoded`) or JSON (`application/json`, an
//! object of string values) body of these fields ([`request`]):
//! `app_id`, `method`, `timestamp` (`yyyy-MM-dd HH:mm:ss` **in UTC**, or
//! unix milliseconds), `sign_type=RSA2`, `biz_content` (a JSON object of the
//! function's arguments by parameter name; see [`codec`]), optionally
//! `charset=utf-8`, `version=1.0`, `format=JSON` and any other field, and
//! `sign`.
//!
//! `sign` is SHA256withRSA (RSASSA-PKCS1-v1_5, SHA-256) by the partner's key
//! over the canonical string — every non-empty field except `sign`, sorted
//! by key, `key=value` joined with `&`, values not URL-encoded — in base64
//! ([`sign`]).
//!
//! The platform checks, in this order, and refuses with the first failing
//! check's code ([`error::PartnerError`]):
//!
//! | check | code | HTTP |
//! | --- | --- | --- |
//! | required field present | `missing-field` | 400 |
//! | content type, size (1 MiB), field syntax | `bad-request` | 400 |
//! | `app_id` registered | `unknown-partner` | 401 |
//! | signature verifies with the partner's key | `bad-signature` | 401 |
//! | `timestamp` within ±5 minutes of the platform clock | `stale-timestamp` | 401 |
//! | `(app_id, sign)` not seen in the last 10 minutes ([`replay`]) | `replayed` | 409 |
//! | method exposed to the partner and existing (indistinguishable) | `method-not-exposed` | 403 |
//! | `biz_content` matches the parameter types | `bad-biz-content` | 400 |
//! | the function ran | `service-error` (trap, failure, timeout, unencodable result) / `service-unavailable` | 502 / 503 |
//!
//! A request is recorded against replays once its signature and timestamp
//! are valid, whatever happens next: to retry, a partner re-signs with a new
//! timestamp.
//!
//! # Replies
//!
//! Every reply, success or refusal, is JSON signed with the platform's key
//! ([`keys::PlatformKey`]) — the Alipay reply convention, not flat signed
//! fields:
//!
//! ```text
//! {"response":{"code":"ok","msg":"success","result":42},"sign":"<base64>"}
//! ```
//!
//! `sign` is SHA256withRSA over the exact bytes of the `response` value as
//! they appear in the body (from after `{"response":` to before the last
//! `,"sign":"`). `result` is the function's result (absent when it has
//! none). [`reply::verify_reply`] checks and parses a reply;
//! [`client::sign_request`] builds a signed request body.
//!
//! # Wiring
//!
//! The gateway calls [`service::OpenApi::handle`] with the `Content-Type`
//! and the body; the platform implements [`service::PartnerDirectory`]
//! (partners by `app_id`) and [`service::PartnerInvoker`] (function types and
//! calls of a tenant's deployed apps).

pub mod client;
pub mod codec;
pub mod error;
pub mod keys;
pub mod replay;
pub mod reply;
pub mod request;
pub mod service;
pub mod sign;

pub use client::{request_fields, sign_request};
pub use error::PartnerError;
pub use keys::{KeyError, PlatformKey, parse_private_key, parse_public_key, public_key_pem};
pub use replay::ReplayLedger;
pub use reply::{PartnerReply, ReplyError, verify_reply};
pub use service::{
    Clock, InvokeError, OpenApi, OpenApiConfig, PartnerDirectory, PartnerInfo, PartnerInvoker,
};
pub use sign::{SignError, canonical_string};
