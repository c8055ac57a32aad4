//! The one error shape every endpoint answers with: `{error, status, message?, data?}`.
//!
//! Every failure in the flow becomes an [`ApiError`] with a stable machine-readable `error` code
//! (what a client switches on) and a human `message` (what a developer reads). Internal causes are
//! logged where they happen and never copied into a response.

use serde::Serialize;
use serde_json::Value;

use crate::{ciba::UpstreamError, limits::RateLimited};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    pub error: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Seconds until a retry can succeed; also sent as the `Retry-After` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` header of a `401` for the session (RFC 6750), not in the body.
    #[serde(skip)]
    pub www_authenticate: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status,
            message: Some(message.into()),
            data: None,
            retry_after: None,
            www_authenticate: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Malformed JSON, a wrong type, a missing field: the message names the field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }

    pub fn invalid_phone_number(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_phone_number", message)
    }

    pub fn unknown_server(server_id: Option<&str>) -> Self {
        match server_id {
            Some(id) => Self::new(400, "unknown_server", format!("no auth server with server_id {id:?}")),
            None => Self::new(400, "unknown_server", "no auth server is configured"),
        }
    }

    pub fn invalid_client() -> Self {
        Self::new(401, "invalid_client", "unknown client_id, or the client may not use the SMS flow")
    }

    /// Unknown, expired, already used, or belonging to another client or nonce: one answer for all,
    /// so the API tells an attacker nothing about which `auth_req_id`s exist.
    pub fn verification_not_found() -> Self {
        Self::new(
            404,
            "verification_not_found",
            "no pending verification matches this auth_req_id, client_id, server_id and nonce; it may have expired or been used: start a new one",
        )
    }

    pub fn invalid_code(attempts_left: u32) -> Self {
        let message = if attempts_left == 0 {
            "the code was rejected and this verification has ended: start a new one".to_owned()
        } else {
            format!("the code is wrong; {attempts_left} attempt(s) left")
        };
        Self::new(400, "invalid_code", message)
            .with_data(serde_json::json!({ "attempts_left": attempts_left }))
    }

    pub fn too_many_attempts() -> Self {
        Self::new(429, "too_many_attempts", "too many wrong codes for this verification: start a new one")
    }

    /// Another `/sms/token` call is working on the same verification right now.
    pub fn verification_in_progress(retry_after: u64) -> Self {
        Self::new(
            409,
            "verification_in_progress",
            "this verification is being completed by another request; retry shortly",
        )
        .with_retry_after(retry_after)
    }

    /// A limit against SMS pumping or code guessing said no; nothing was sent or counted.
    pub fn rate_limited(limited: RateLimited) -> Self {
        Self::new(
            429,
            "rate_limited",
            format!("too many requests ({}); retry after {} s", limited.limit.name(), limited.retry_after),
        )
        .with_data(serde_json::json!({ "limit": limited.limit.name(), "retry_after": limited.retry_after }))
        .with_retry_after(limited.retry_after)
    }

    pub fn country_not_allowed() -> Self {
        Self::new(
            403,
            "country_not_allowed",
            "phone numbers of this country cannot be verified by this client",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "unsupported_media_type",
            "the request body must be JSON: send Content-Type: application/json",
        )
    }

    pub fn phone_not_verified() -> Self {
        Self::new(403, "phone_not_verified", "the auth server did not confirm the phone number")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(413, "payload_too_large", format!("the request body exceeds {limit} bytes"))
    }

    /// No session token: the challenge names the scheme and, as RFC 6750 asks of a request
    /// without credentials, no error.
    pub fn no_session() -> Self {
        let mut error = Self::new(
            401,
            "unauthorized",
            "no session: send Authorization: Bearer <session> or the session cookie",
        );
        error.www_authenticate = Some("Bearer");
        error
    }

    /// A session token that is malformed, unknown, expired or ended: one answer for all, and
    /// the challenge says the token is the problem.
    pub fn invalid_session() -> Self {
        let mut error = Self::new(
            401,
            "unauthorized",
            "the session is unknown or has expired: verify the phone number again",
        );
        error.www_authenticate = Some(r#"Bearer error="invalid_token""#);
        error
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such route")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, "method_not_allowed", "this route does not take that method")
    }

    /// The state store cannot be reached; nothing was changed, the same request can be retried.
    pub fn store_unavailable() -> Self {
        Self::new(503, "service_unavailable", "state storage is unavailable; retry shortly")
            .with_retry_after(1)
    }
}

impl From<UpstreamError> for ApiError {
    /// Upstream 4xx keeps the upstream's status and `error`; anything else is a gateway error.
    fn from(err: UpstreamError) -> Self {
        match err {
            UpstreamError::Rejected { status, error, description } => Self::new(
                status,
                error,
                description.unwrap_or_else(|| "the auth server rejected the request".to_owned()),
            ),
            UpstreamError::Failed { .. } => {
                Self::new(502, "upstream_error", "the auth server failed; the same request can be retried")
            }
            UpstreamError::Timeout => Self::new(
                504,
                "upstream_timeout",
                "the auth server did not answer in time; the same request can be retried",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_one_shape() {
        let body = serde_json::to_value(ApiError::invalid_code(2)).unwrap();
        assert_eq!(body["error"], "invalid_code");
        assert_eq!(body["status"], 400);
        assert_eq!(body["data"]["attempts_left"], 2);
        assert!(body["message"].as_str().unwrap().contains("2 attempt"));
        let plain = serde_json::to_value(ApiError::not_found()).unwrap();
        assert!(plain.get("data").is_none(), "absent data is omitted, not null");
    }

    #[test]
    fn upstream_rejection_keeps_status_and_error() {
        let err: ApiError = UpstreamError::Rejected {
            status: 403,
            error: "access_denied".into(),
            description: Some("denied by user".into()),
        }
        .into();
        assert_eq!((err.status, err.error.as_str()), (403, "access_denied"));
        assert_eq!(err.message.as_deref(), Some("denied by user"));
        assert_eq!(ApiError::from(UpstreamError::Timeout).status, 504);
        assert_eq!(
            ApiError::from(UpstreamError::Failed { status: Some(500), reason: "x".into() }).status,
            502
        );
    }
}
