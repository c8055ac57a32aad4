//! OAuth-style errors: `{"error","error_description"}` as application/json, the only error
//! shape upstream uses and the one the backend parses.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer, built cheaply and turned into a response at the end of a handler
/// (small, unlike `Response`, so `Result<_, OAuthError>` stays cheap to pass around).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    /// `WWW-Authenticate` value for 401s (RFC 6749 §5.2, RFC 6750 §3).
    challenge: Option<&'static str>,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        OAuthError { status, error, description: description.into(), challenge: None }
    }

    pub(crate) fn bad_request(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    pub(crate) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request("invalid_request", description)
    }

    pub(crate) fn invalid_client() -> Self {
        OAuthError {
            challenge: Some("Basic realm=\"sandbox\""),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Invalid client or Invalid client credentials",
            )
        }
    }

    pub(crate) fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            challenge: Some("Bearer error=\"invalid_token\""),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
        }
    }

    /// The randomness source failed: nothing the client did, so 500 rather than a panic.
    pub(crate) fn server_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "random source unavailable")
    }

    pub(crate) fn realm_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "realm_not_found", "Realm does not exist")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
