//! Parsing and validating a partner request.
//!
//! A request is a flat set of string fields, sent either as
//! `application/x-www-form-urlencoded` or as `application/json` (an object
//! whose values are all strings). A field may appear only once. The fields:
//!
//! | field | rule |
//! | --- | --- |
//! | `app_id` | required: the partner's id, at most [`MAX_APP_ID_LEN`] bytes |
//! | `method` | required: `APP.FUNCTION`, split at the first `.`; `APP` is an app name (a slug: `a-z`, `0-9`, `-`), `FUNCTION` a WIT kebab-case name |
//! | `timestamp` | required: `yyyy-MM-dd HH:mm:ss`, **read as UTC** (Alipay sends Beijing time; Cloudware partners send UTC), or unix milliseconds as digits |
//! | `sign_type` | required: `RSA2` |
//! | `sign` | required: base64 SHA256withRSA over the canonical string, see [`crate::sign`] |
//! | `biz_content` | optional JSON text; absent or empty means `{}` |
//! | `charset` | optional; `utf-8` if present (any case) |
//! | `version` | optional; `1.0` if present |
//! | `format` | optional; `JSON` if present (any case) |
//!
//! Any other field is allowed and is covered by the signature. Bodies over
//! [`MAX_BODY_BYTES`] are refused.

use crate::error::PartnerError;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest accepted request body, in bytes (1 MiB). The gateway should
/// stop reading a body at this size and still call the service, which
/// refuses it.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The longest accepted `app_id`, in bytes.
pub const MAX_APP_ID_LEN: usize = 128;

/// The `sign_type` this API accepts.
pub const SIGN_TYPE_RSA2: &str = "RSA2";

/// A parsed, syntactically valid partner request (not yet authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRequest {
    /// Every field of the request, including `sign`; the signature covers
    /// these (see [`crate::sign::canonical_string`]).
    pub fields: BTreeMap<String, String>,
    /// The partner's id.
    pub app_id: String,
    /// The method as sent, `APP.FUNCTION`.
    pub method: String,
    /// The app part of the method.
    pub app: String,
    /// The function part of the method.
    pub function: String,
    /// The timestamp as milliseconds since the unix epoch (UTC).
    pub timestamp_ms: i64,
    /// The `biz_content` JSON text (`{}` when absent or empty).
    pub biz_content: String,
    /// The base64 signature.
    pub sign: String,
}

/// Parses a body into its fields according to its content type.
pub fn parse_fields(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<BTreeMap<String, String>, PartnerError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(PartnerError::BadRequest(format!(
            "body larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let content_type = content_type.unwrap_or("");
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
            && !is_utf8_name(value.trim().trim_matches('"'))
        {
            return Err(PartnerError::BadRequest(
                "content type charset must be utf-8".into(),
            ));
        }
    }
    match media.as_str() {
        "application/x-www-form-urlencoded" => parse_form(body),
        "application/json" => parse_json(body),
        _ => Err(PartnerError::BadRequest(format!(
            "unsupported content type `{content_type}`; use application/x-www-form-urlencoded or application/json"
        ))),
    }
}

fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>, PartnerError> {
    if std::str::from_utf8(body).is_err() {
        return Err(PartnerError::BadRequest("body is not UTF-8".into()));
    }
    let mut fields = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        if key.is_empty() {
            continue;
        }
        if key.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            return Err(PartnerError::BadRequest(
                "form field is not UTF-8 once percent-decoded".into(),
            ));
        }
        insert_once(&mut fields, key.into_owned(), value.into_owned())?;
    }
    Ok(fields)
}

fn insert_once(
    fields: &mut BTreeMap<String, String>,
    key: String,
    value: String,
) -> Result<(), PartnerError> {
    if fields.contains_key(&key) {
        return Err(PartnerError::BadRequest(format!(
            "field `{key}` appears more than once"
        )));
    }
    fields.insert(key, value);
    Ok(())
}

/// A JSON object of string values, refusing duplicate keys.
struct StringFields(BTreeMap<String, String>);

impl<'de> serde::Deserialize<'de> for StringFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object whose values are strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringFields, A::Error> {
                let mut fields = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    insert_once(&mut fields, key, value).map_err(serde::de::Error::custom)?;
                }
                Ok(StringFields(fields))
            }
        }
        deserializer.deserialize_map(V)
    }
}

fn parse_json(body: &[u8]) -> Result<BTreeMap<String, String>, PartnerError> {
    serde_json::from_slice::<StringFields>(body)
        .map(|f| f.0)
        .map_err(|e| PartnerError::BadRequest(format!("JSON body: {e}")))
}

fn is_utf8_name(s: &str) -> bool {
    s.eq_ignore_ascii_case("utf-8") || s.eq_ignore_ascii_case("utf8")
}

fn required<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, PartnerError> {
    match fields.get(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(PartnerError::MissingField(name.into())),
    }
}

fn optional<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Parses a body and validates its fields (see the module documentation).
pub fn parse_request(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<PartnerRequest, PartnerError> {
    let fields = parse_fields(content_type, body)?;
    validate(fields)
}

/// Validates already-parsed fields into a [`PartnerRequest`].
pub fn validate(fields: BTreeMap<String, String>) -> Result<PartnerRequest, PartnerError> {
    let app_id = required(&fields, "app_id")?.to_string();
    if app_id.len() > MAX_APP_ID_LEN {
        return Err(PartnerError::BadRequest(format!(
            "app_id longer than {MAX_APP_ID_LEN} bytes"
        )));
    }
    let method = required(&fields, "method")?.to_string();
    let timestamp = required(&fields, "timestamp")?;
    let sign_type = required(&fields, "sign_type")?;
    let sign = required(&fields, "sign")?.to_string();
    if sign_type != SIGN_TYPE_RSA2 {
        return Err(PartnerError::BadRequest(format!(
            "unsupported sign_type `{sign_type}`; only RSA2"
        )));
    }
    if let Some(charset) = optional(&fields, "charset")
        && !is_utf8_name(charset)
    {
        return Err(PartnerError::BadRequest(format!(
            "unsupported charset `{charset}`; only utf-8"
        )));
    }
    if let Some(version) = optional(&fields, "version")
        && version != "1.0"
    {
        return Err(PartnerError::BadRequest(format!(
            "unsupported version `{version}`; only 1.0"
        )));
    }
    if let Some(format) = optional(&fields, "format")
        && !format.eq_ignore_ascii_case("json")
    {
        return Err(PartnerError::BadRequest(format!(
            "unsupported format `{format}`; only JSON"
        )));
    }
    let timestamp_ms = parse_timestamp(timestamp)?;
    let (app, function) = split_method(&method)?;
    let (app, function) = (app.to_string(), function.to_string());
    let biz_content = optional(&fields, "biz_content").unwrap_or("{}").to_string();
    Ok(PartnerRequest {
        app,
        function,
        fields,
        app_id,
        method,
        timestamp_ms,
        biz_content,
        sign,
    })
}

/// Splits `APP.FUNCTION` at the first `.`, checking that `APP` is a slug and
/// `FUNCTION` a WIT kebab-case name.
pub fn split_method(method: &str) -> Result<(&str, &str), PartnerError> {
    let bad = || {
        PartnerError::BadRequest(format!(
            "method `{method}` is not APP.FUNCTION (an app name, a dot, a kebab-case function name)"
        ))
    };
    let (app, function) = method.split_once('.').ok_or_else(bad)?;
    if !is_slug(app) || !is_kebab(function) {
        return Err(bad());
    }
    Ok((app, function))
}

/// An app name: 1–63 of `a-z0-9-`, not starting or ending with `-`.
fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

/// A WIT kebab-case name: words separated by single `-`, each starting with a
/// letter and either all lowercase/digits or all uppercase/digits.
fn is_kebab(s: &str) -> bool {
    s.len() <= 256
        && s.split('-').all(|word| {
            let mut chars = word.chars();
            let Some(first) = chars.next() else {
                return false;
            };
            first.is_ascii_alphabetic()
                && (word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    || word
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
        })
}

/// Parses a timestamp: `yyyy-MM-dd HH:mm:ss` read as UTC, or unix
/// milliseconds (1–16 digits). Returns milliseconds since the unix epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, PartnerError> {
    let bad = || {
        PartnerError::BadRequest(format!(
            "timestamp `{s}` is neither `yyyy-MM-dd HH:mm:ss` (UTC) nor unix milliseconds"
        ))
    };
    if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| bad());
    }
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, PartnerError> {
        let part = &s[range];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// Formats a time as `yyyy-MM-dd HH:mm:ss` in UTC (what [`parse_timestamp`]
/// reads). Times before the epoch are clamped to it.
pub fn format_timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
