//! The signed reply, and its verification by a partner.
//!
//! Every reply — success or refusal — is `application/json` of exactly this
//! shape, with no whitespace outside strings:
//!
//! ```text
//! {"response":RESPONSE,"sign":"SIGNATURE"}
//! ```
//!
//! `RESPONSE` is a JSON object `{"code": …, "msg": …, "result": …}`: `code`
//! is `"ok"` or an error code (see [`crate::error::PartnerError::code`]),
//! `msg` a human-readable text, and `result` the function's result (present
//! only on success when the function returns a value). `SIGNATURE` is the
//! base64 SHA256withRSA signature, by the platform key, over **the exact
//! bytes of `RESPONSE` as they appear in the body** — not a re-serialisation
//! of it. A partner verifies it by taking the bytes after the leading
//! `{"response":` up to the last `,"sign":"` (or by reading the raw text of
//! the `response` member with a JSON parser that exposes it), checking the
//! signature over them with the platform's public key, and only then
//! parsing them. [`verify_reply`] does exactly this.
//!
//! This is the Alipay reply convention (`{"<method>_response": {…},
//! "sign": "…"}`) with a fixed member name.

use crate::sign::{SignError, sign_bytes, verify_bytes};
use bytes::Bytes;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::value::RawValue;

/// The `code` of a successful reply.
pub const CODE_OK: &str = "ok";

/// A verified reply, as a partner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerReply {
    /// `"ok"` or an error code.
    pub code: String,
    /// The human-readable message.
    pub msg: String,
    /// The function's result, if any.
    pub result: Option<Json>,
}

impl PartnerReply {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.code == CODE_OK
    }
}

/// Why a reply could not be accepted by a partner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The body is not a reply of the documented shape.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// The reply's signature does not verify with the platform's key.
    #[error("reply signature: {0}")]
    BadSignature(SignError),
}

/// Builds the response object of a reply.
pub(crate) fn response_object(code: &str, msg: &str, result: Option<Json>) -> Json {
    let mut response = serde_json::Map::new();
    response.insert("code".into(), Json::String(code.into()));
    response.insert("msg".into(), Json::String(msg.into()));
    if let Some(result) = result {
        response.insert("result".into(), result);
    }
    Json::Object(response)
}

/// Serialises `response` and signs it: the complete reply body.
pub fn signed_reply(platform_key: &RsaPrivateKey, response: &Json) -> Result<Bytes, SignError> {
    let text = response.to_string();
    let sign = sign_bytes(platform_key, text.as_bytes())?;
    // The signature is base64: no character needs escaping.
    Ok(Bytes::from(format!(
        r#"{{"response":{text},"sign":"{sign}"}}"#
    )))
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    response: &'a RawValue,
    sign: String,
}

/// Verifies a reply body with the platform's public key and parses it.
/// Refuses a reply whose signature does not cover the exact `response`
/// text, before reading anything from it.
pub fn verify_reply(
    platform_public_key: &RsaPublicKey,
    reply: &[u8],
) -> Result<PartnerReply, ReplyError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(reply).map_err(|e| ReplyError::Malformed(e.to_string()))?;
    let signed = envelope.response.get();
    verify_bytes(platform_public_key, signed.as_bytes(), &envelope.sign)
        .map_err(ReplyError::BadSignature)?;
    let mut response: serde_json::Map<String, Json> =
        serde_json::from_str(signed).map_err(|e| ReplyError::Malformed(e.to_string()))?;
    let mut text = |name: &str| match response.remove(name) {
        Some(Json::String(s)) => Ok(s),
        _ => Err(ReplyError::Malformed(format!(
            "response has no string `{name}`"
        ))),
    };
    Ok(PartnerReply {
        code: text("code")?,
        msg: text("msg")?,
        // An explicit `"result": null` (an option's none) stays `Some(Null)`.
        result: response.remove("result"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parse_private_key;
    use serde_json::json;

    fn platform() -> RsaPrivateKey {
        parse_private_key(include_str!("../testdata/platform.key.pem")).expect("fixture")
    }

    #[test]
    fn replies_verify_and_parse() {
        let key = platform();
        let body = signed_reply(&key, &response_object("ok", "done", Some(json!({"n": 1}))))
            .expect("sign");
        let text = std::str::from_utf8(&body).expect("utf8");
        assert!(
            text.starts_with(r#"{"response":{"code":"ok","msg":"done","result":{"n":1}},"sign":""#),
            "{text}"
        );
        let reply = verify_reply(&key.to_public_key(), &body).expect("verifies");
        assert!(reply.is_ok());
        assert_eq!(reply.result, Some(json!({"n": 1})));
        // A null result is kept apart from no result.
        let body = signed_reply(&key, &response_object("ok", "", Some(Json::Null))).expect("sign");
        let reply = verify_reply(&key.to_public_key(), &body).expect("verifies");
        assert_eq!(reply.result, Some(Json::Null));
        let body = signed_reply(&key, &response_object("replayed", "again", None)).expect("sign");
        let reply = verify_reply(&key.to_public_key(), &body).expect("verifies");
        assert_eq!((reply.code.as_str(), reply.result), ("replayed", None));
    }

    #[test]
    fn the_exact_response_bytes_are_signed() {
        let key = platform();
        let body = signed_reply(&key, &response_object("ok", "x", Some(json!(5)))).expect("sign");
        let text = std::str::from_utf8(&body).expect("utf8");
        // What a partner without a raw-value JSON parser does.
        let start = r#"{"response":"#.len();
        let end = text.rfind(r#","sign":""#).expect("sign member");
        let sign = &text[end + 9..text.len() - 2];
        verify_bytes(&key.to_public_key(), &text.as_bytes()[start..end], sign).expect("verifies");
        // Re-formatting the response (same JSON value) breaks the signature.
        let spaced = text.replace(r#""code":"ok""#, r#""code": "ok""#);
        assert!(matches!(
            verify_reply(&key.to_public_key(), spaced.as_bytes()),
            Err(ReplyError::BadSignature(_))
        ));
        let tampered = text.replace(r#""result":5"#, r#""result":6"#);
        assert!(matches!(
            verify_reply(&key.to_public_key(), tampered.as_bytes()),
            Err(ReplyError::BadSignature(_))
        ));
        let other = parse_private_key(include_str!("../testdata/other.key.pem")).expect("fixture");
        assert!(matches!(
            verify_reply(&other.to_public_key(), &body),
            Err(ReplyError::BadSignature(_))
        ));
        assert!(matches!(
            verify_reply(&key.to_public_key(), b"{}"),
            Err(ReplyError::Malformed(_))
        ));
    }
}
