//! The errors a partner request can be refused with.
//!
//! Every refusal has a stable, machine-readable [`PartnerError::code`] (the
//! `code` field of the signed reply) and an HTTP status
//! ([`PartnerError::status`]). The codes are part of the public contract with
//! partners: they never change once released; the human-readable message
//! (`msg` in the reply) may.

use http::StatusCode;

/// Why a partner request was refused.
///
/// The `String` payloads are human-readable details that end up in the `msg`
/// field of the reply; they never contain secrets or internal paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerError {
    /// A required field (`app_id`, `method`, `timestamp`, `sign_type`, `sign`)
    /// is absent or empty.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// The request is malformed: unsupported content type, oversize body,
    /// undecodable body, bad field syntax, unsupported `sign_type`, `charset`
    /// or `version`.
    #[error("{0}")]
    BadRequest(String),
    /// No partner is registered with the request's `app_id`.
    #[error("unknown partner `{0}`")]
    UnknownPartner(String),
    /// The `sign` field does not verify against the partner's public key.
    #[error("signature does not verify")]
    BadSignature,
    /// The `timestamp` is outside the accepted window around the platform's
    /// clock.
    #[error("timestamp outside the accepted window of {window_secs} s")]
    StaleTimestamp {
        /// The half-width of the accepted window, in seconds.
        window_secs: u64,
    },
    /// The same signed request (same `app_id` and `sign`) was already
    /// accepted.
    #[error("request already seen (replay)")]
    Replayed,
    /// The method is not exposed to this partner, or does not exist (the two
    /// are deliberately indistinguishable).
    #[error("method `{0}` is not exposed")]
    MethodNotExposed(String),
    /// `biz_content` is not JSON, or does not match the function's parameter
    /// types; the message names the offending path.
    #[error("{0}")]
    BadBizContent(String),
    /// The function trapped, failed, timed out, or returned a value that
    /// cannot be written as JSON.
    #[error("{0}")]
    ServiceError(String),
    /// The app cannot serve right now (not deployed, overloaded, draining).
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl PartnerError {
    /// The stable error code, as sent in the reply's `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            PartnerError::MissingField(_) => "missing-field",
            PartnerError::BadRequest(_) => "bad-request",
            PartnerError::UnknownPartner(_) => "unknown-partner",
            PartnerError::BadSignature => "bad-signature",
            PartnerError::StaleTimestamp { .. } => "stale-timestamp",
            PartnerError::Replayed => "replayed",
            PartnerError::MethodNotExposed(_) => "method-not-exposed",
            PartnerError::BadBizContent(_) => "bad-biz-content",
            PartnerError::ServiceError(_) => "service-error",
            PartnerError::ServiceUnavailable(_) => "service-unavailable",
        }
    }

    /// The HTTP status of the reply carrying this error.
    pub fn status(&self) -> StatusCode {
        match self {
            PartnerError::MissingField(_)
            | PartnerError::BadRequest(_)
            | PartnerError::BadBizContent(_) => StatusCode::BAD_REQUEST,
            PartnerError::UnknownPartner(_)
            | PartnerError::BadSignature
            | PartnerError::StaleTimestamp { .. } => StatusCode::UNAUTHORIZED,
            PartnerError::Replayed => StatusCode::CONFLICT,
            PartnerError::MethodNotExposed(_) => StatusCode::FORBIDDEN,
            PartnerError::ServiceError(_) => StatusCode::BAD_GATEWAY,
            PartnerError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every error code, in declaration order (for documentation and tests).
    pub const CODES: [&'static str; 10] = [
        "missing-field",
        "bad-request",
        "unknown-partner",
        "bad-signature",
        "stale-timestamp",
        "replayed",
        "method-not-exposed",
        "bad-biz-content",
        "service-error",
        "service-unavailable",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<PartnerError> {
        vec![
            PartnerError::MissingField("sign".into()),
            PartnerError::BadRequest("x".into()),
            PartnerError::UnknownPartner("a".into()),
            PartnerError::BadSignature,
            PartnerError::StaleTimestamp { window_secs: 300 },
            PartnerError::Replayed,
            PartnerError::MethodNotExposed("a.b".into()),
            PartnerError::BadBizContent("x".into()),
            PartnerError::ServiceError("x".into()),
            PartnerError::ServiceUnavailable("x".into()),
        ]
    }

    #[test]
    fn codes_are_distinct_and_listed() {
        let codes: Vec<_> = all().iter().map(PartnerError::code).collect();
        assert_eq!(codes, PartnerError::CODES);
        let mut dedup = codes.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), codes.len());
    }

    #[test]
    fn statuses_match_the_contract() {
        let statuses: Vec<u16> = all().iter().map(|e| e.status().as_u16()).collect();
        assert_eq!(statuses, [400, 400, 401, 401, 401, 409, 403, 400, 502, 503]);
    }
}
