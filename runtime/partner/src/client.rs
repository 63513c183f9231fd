//! The partner's side: building signed requests.
//!
//! ```no_run
//! # fn demo(key: &rsa::RsaPrivateKey) -> Result<(), cloudware_partner::sign::SignError> {
//! use cloudware_partner::client::{request_fields, sign_request};
//! let fields = request_fields("2021000000000001", "shop.place-order", r#"{"order":{"id":7}}"#,
//!     std::time::SystemTime::now());
//! let body = sign_request(key, &fields)?; // POST it as application/x-www-form-urlencoded
//! # Ok(()) }
//! ```
//!
//! Replies are checked with [`crate::reply::verify_reply`].

use crate::request::{SIGN_TYPE_RSA2, format_timestamp};
use crate::sign::{SIGN_FIELD, SignError, sign};
use rsa::RsaPrivateKey;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The usual fields of a request: `app_id`, `method`, `biz_content`,
/// `timestamp` (formatted `yyyy-MM-dd HH:mm:ss` UTC), `charset=utf-8`,
/// `version=1.0`, `sign_type=RSA2`. Add any other field before signing.
pub fn request_fields(
    app_id: &str,
    method: &str,
    biz_content: &str,
    timestamp: SystemTime,
) -> BTreeMap<String, String> {
    [
        ("app_id", app_id.to_string()),
        ("method", method.to_string()),
        ("biz_content", biz_content.to_string()),
        ("timestamp", format_timestamp(timestamp)),
        ("charset", "utf-8".to_string()),
        ("version", "1.0".to_string()),
        ("sign_type", SIGN_TYPE_RSA2.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Signs `fields` (any `sign` already there is ignored and replaced) and
/// returns the complete `application/x-www-form-urlencoded` body, fields in
/// key order with `sign` among them.
pub fn sign_request(
    private_key: &RsaPrivateKey,
    fields: &BTreeMap<String, String>,
) -> Result<String, SignError> {
    let signature = sign(private_key, fields)?;
    let mut all = fields.clone();
    all.insert(SIGN_FIELD.to_string(), signature);
    Ok(form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&all)
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{parse_private_key, parse_public_key};
    use crate::request::parse_request;
    use crate::sign::verify;

    #[test]
    fn a_signed_request_parses_and_verifies() {
        let key = parse_private_key(include_str!("../testdata/partner.key.pem")).expect("key");
        let public = parse_public_key(include_str!("../testdata/partner.pub.pem")).expect("pub");
        let fields = request_fields(
            "p1",
            "shop.place-order",
            r#"{"note":"a&b=c +d%"}"#,
            SystemTime::now(),
        );
        let body = sign_request(&key, &fields).expect("sign");
        let request = parse_request(Some("application/x-www-form-urlencoded"), body.as_bytes())
            .expect("parses");
        assert_eq!(request.biz_content, r#"{"note":"a&b=c +d%"}"#);
        verify(&public, &request.fields, &request.sign).expect("verifies");
        // A stale `sign` in the input is replaced, not signed over.
        let mut with_sign = fields.clone();
        with_sign.insert("sign".into(), "old".into());
        assert_eq!(sign_request(&key, &with_sign).expect("sign"), body);
    }
}
