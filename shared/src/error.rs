//! The API's one error vocabulary, and the one error shape every endpoint answers with:
//! `{error, status, message?, data?, retry_after?}`.
//!
//! [`ErrorCode`] is the only list of error codes: each owns its wire string and its HTTP status,
//! and [`ErrorCode::ALL`] is what the metrics' bounded outcomes, the log lines and the OpenAPI
//! check are derived from. A new code is one line in the `error_codes!` table; every `match` on
//! the enum then tells the compiler where it must be handled. The flow's outcomes
//! ([`FlowError`]) become an [`ApiError`] in one exhaustive `match` ([`From<FlowError>`]), which
//! also writes each code's `message`. Internal causes are logged where they happen and never
//! copied into a response.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    ciba::{OAuthError, UpstreamError},
    flow::FlowError,
    limits::{Limit, RateLimited},
};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal, $status:literal;)*) => {
        /// A stable, machine-readable reason for a failed request: what a client switches on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code the API answers with, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant,)*];

            /// The `error` string on the wire (and the `outcome` of the request's log line).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }

            /// The HTTP status of a response with this code.
            pub const fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)*
                }
            }
        }
    };
}

error_codes! {
    /// Malformed JSON, a wrong type, a missing or oversized field: the message names the field.
    InvalidRequest => "invalid_request", 400;
    InvalidPhoneNumber => "invalid_phone_number", 400;
    UnknownServer => "unknown_server", 400;
    /// A wrong code; `data.attempts_left` says how many tries remain.
    InvalidCode => "invalid_code", 400;
    /// A `scope` the client does not allow (`clients[].allowed_scopes`); nothing was sent.
    InvalidScope => "invalid_scope", 400;
    InvalidClient => "invalid_client", 401;
    /// No live session (the session endpoints), with a `WWW-Authenticate` challenge.
    Unauthorized => "unauthorized", 401;
    CountryNotAllowed => "country_not_allowed", 403;
    /// A number type the client does not send SMS to; `data.number_type` names it.
    NumberNotAllowed => "number_not_allowed", 403;
    /// The auth server did not say the phone is verified; the verification has ended.
    PhoneNotVerified => "phone_not_verified", 403;
    /// The auth server vouched for another number than the one the SMS went to; ended.
    PhoneMismatch => "phone_mismatch", 403;
    /// The client requires a challenge (CAPTCHA) and `challenge_token` is missing or not good.
    ChallengeFailed => "challenge_failed", 403;
    /// A cookie-authenticated request from a page of another site; nothing was changed.
    CrossSiteRequest => "cross_site_request", 403;
    /// No such route.
    NotFound => "not_found", 404;
    /// Unknown, expired, used, or another client's or nonce's: one answer for all.
    VerificationNotFound => "verification_not_found", 404;
    MethodNotAllowed => "method_not_allowed", 405;
    VerificationInProgress => "verification_in_progress", 409;
    PayloadTooLarge => "payload_too_large", 413;
    UnsupportedMediaType => "unsupported_media_type", 415;
    TooManyAttempts => "too_many_attempts", 429;
    /// A limit said no; `data.limit` names it.
    RateLimited => "rate_limited", 429;
    InternalError => "internal_error", 500;
    /// The auth server refused with a 4xx: answered with its status and its OAuth error code
    /// when it is one of [`crate::ciba::OAuthError`]'s (this string otherwise).
    UpstreamRejected => "upstream_rejected", 400;
    UpstreamError => "upstream_error", 502;
    ServiceUnavailable => "service_unavailable", 503;
    /// The challenge provider could not judge the token; nothing was counted or sent.
    ChallengeUnavailable => "challenge_unavailable", 503;
    UpstreamTimeout => "upstream_timeout", 504;
}

impl ErrorCode {
    /// The code whose wire string is `wire`, if it is one of ours.
    pub fn from_wire(wire: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|code| code.as_str() == wire)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    /// The code's wire string, or the upstream's OAuth error code for [`ErrorCode::UpstreamRejected`].
    pub error: Cow<'static, str>,
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
    /// Which limit refused the request, for the log line (the body says it in `data`).
    #[serde(skip)]
    pub limit: Option<Limit>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: Cow::Borrowed(code.as_str()),
            status: code.status(),
            message: Some(message.into()),
            data: None,
            retry_after: None,
            www_authenticate: None,
            limit: None,
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
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON: send Content-Type: application/json",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, format!("the request body exceeds {limit} bytes"))
    }

    /// No session token: the challenge names the scheme and, as RFC 6750 asks of a request
    /// without credentials, no error.
    pub fn no_session() -> Self {
        let mut error = Self::new(
            ErrorCode::Unauthorized,
            "no session: send Authorization: Bearer <session> or the session cookie",
        );
        error.www_authenticate = Some("Bearer");
        error
    }

    /// A session token that is malformed, unknown, expired or ended: one answer for all, and
    /// the challenge says the token is the problem.
    pub fn invalid_session() -> Self {
        let mut error = Self::new(
            ErrorCode::Unauthorized,
            "the session is unknown or has expired: verify the phone number again",
        );
        error.www_authenticate = Some(r#"Bearer error="invalid_token""#);
        error
    }

    /// A request that acts with the session cookie from another site's page.
    pub fn cross_site_request() -> Self {
        Self::new(
            ErrorCode::CrossSiteRequest,
            "the session cookie is accepted only from this API's own pages and its configured browser origins; an app sends Authorization: Bearer <session>",
        )
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(ErrorCode::MethodNotAllowed, "this route does not take that method")
    }

    pub fn internal_error() -> Self {
        Self::new(ErrorCode::InternalError, "internal error")
    }

    fn invalid_code(attempts_left: u32) -> Self {
        let message = if attempts_left == 0 {
            "the code was rejected and this verification has ended: start a new one".to_owned()
        } else {
            format!("the code is wrong; {attempts_left} attempt(s) left")
        };
        Self::new(ErrorCode::InvalidCode, message).with_data(json!({ "attempts_left": attempts_left }))
    }

    /// A limit against SMS pumping or code guessing said no; nothing was sent or counted.
    fn rate_limited(limited: RateLimited) -> Self {
        let (name, retry_after) = (limited.limit.name(), limited.retry_after);
        let mut error = Self::new(
            ErrorCode::RateLimited,
            format!("too many requests ({name}); retry after {retry_after} s"),
        )
        .with_data(json!({ "limit": name, "retry_after": retry_after }))
        .with_retry_after(retry_after);
        error.limit = Some(limited.limit);
        error
    }
}

impl From<FlowError> for ApiError {
    /// What each outcome of the flow answers: the one place its status and message are chosen.
    fn from(err: FlowError) -> Self {
        use ErrorCode as C;
        match err {
            FlowError::UnknownClient => {
                Self::new(C::InvalidClient, "unknown client_id, or the client may not use the SMS flow")
            }
            FlowError::UnknownServer { server_id: Some(id) } => {
                Self::new(C::UnknownServer, format!("no auth server with server_id {id:?}"))
            }
            FlowError::UnknownServer { server_id: None } => {
                Self::new(C::UnknownServer, "no auth server is configured")
            }
            FlowError::InvalidPhoneNumber(why) => Self::new(C::InvalidPhoneNumber, why),
            FlowError::CountryNotAllowed => Self::new(
                C::CountryNotAllowed,
                "phone numbers of this country cannot be verified by this client",
            ),
            FlowError::NumberNotAllowed(number_type) => {
                let name = crate::phone::number_type_name(number_type);
                Self::new(
                    C::NumberNotAllowed,
                    format!(
                        "this client does not send SMS to numbers of this type ({name}); use a mobile number"
                    ),
                )
                .with_data(json!({ "number_type": name }))
            }
            FlowError::RateLimited(limited) => Self::rate_limited(limited),
            FlowError::ChallengeFailed => Self::new(
                C::ChallengeFailed,
                "this client requires a challenge: solve it again and send its token as challenge_token",
            ),
            FlowError::ChallengeUnavailable => {
                Self::new(C::ChallengeUnavailable, "the challenge could not be verified; retry shortly")
                    .with_retry_after(1)
            }
            // One answer for all, so the API tells an attacker nothing about which exist.
            FlowError::VerificationNotFound => Self::new(
                C::VerificationNotFound,
                "no pending verification matches this auth_req_id, client_id, server_id and nonce; it may have expired or been used: start a new one",
            ),
            FlowError::InProgress { retry_after } => Self::new(
                C::VerificationInProgress,
                "this verification is being completed by another request; retry shortly",
            )
            .with_retry_after(retry_after),
            FlowError::TooManyAttempts => {
                Self::new(C::TooManyAttempts, "too many wrong codes for this verification: start a new one")
            }
            FlowError::InvalidCode { attempts_left } => Self::invalid_code(attempts_left),
            FlowError::InvalidScope => Self::new(
                C::InvalidScope,
                "this client does not allow the requested scope; leave `scope` out to use the client's own",
            ),
            FlowError::PhoneNotVerified => Self::new(
                C::PhoneNotVerified,
                "the auth server did not confirm the phone number: start a new verification",
            ),
            FlowError::PhoneMismatch => Self::new(
                C::PhoneMismatch,
                "the auth server confirmed another number than the one the SMS went to: start a new verification",
            ),
            FlowError::Upstream(err) => err.into(),
            // Nothing was changed: the same request can be retried.
            FlowError::StoreUnavailable => {
                Self::new(C::ServiceUnavailable, "state storage is unavailable; retry shortly")
                    .with_retry_after(1)
            }
        }
    }
}

impl From<UpstreamError> for ApiError {
    /// An upstream 4xx keeps the upstream's status and OAuth `error` code; anything else is a
    /// gateway error. The message is always ours: the upstream's description may carry its
    /// internals, another user's data or markup.
    fn from(err: UpstreamError) -> Self {
        match err {
            UpstreamError::Rejected { status, error } => {
                let mut rejected = Self::new(ErrorCode::UpstreamRejected, upstream_rejection_message(error));
                rejected.status = status;
                rejected.error = Cow::Borrowed(error.as_str());
                rejected
            }
            UpstreamError::Failed { .. } => {
                Self::new(ErrorCode::UpstreamError, "the auth server failed; the same request can be retried")
            }
            UpstreamError::Timeout => Self::new(
                ErrorCode::UpstreamTimeout,
                "the auth server did not answer in time; the same request can be retried",
            ),
        }
    }
}

/// What the API says of each refusal the upstream can give.
fn upstream_rejection_message(error: OAuthError) -> &'static str {
    use OAuthError as E;
    match error {
        E::AuthorizationPending | E::SlowDown => "the auth server has not finished the verification yet",
        E::ExpiredToken | E::ExpiredLoginHintToken => {
            "the verification has expired at the auth server: start a new one"
        }
        E::AccessDenied => "the auth server denied the verification: start a new one",
        E::InvalidGrant | E::InvalidToken => {
            "the auth server no longer accepts this verification: start a new one"
        }
        E::InvalidRequest | E::UnsupportedGrantType | E::InvalidBindingMessage => {
            "the auth server refused the request as malformed"
        }
        E::InvalidClient | E::UnauthorizedClient => {
            "the auth server does not accept this service's client credentials for the SMS flow"
        }
        E::InvalidScope => "the auth server does not allow this scope for the client",
        E::UnknownUserId => "the auth server does not know this phone number",
        E::Unrecognised => "the auth server rejected the request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_one_shape() {
        let body = serde_json::to_value(ApiError::from(FlowError::InvalidCode { attempts_left: 2 })).unwrap();
        assert_eq!(body["error"], "invalid_code");
        assert_eq!(body["status"], 400);
        assert_eq!(body["data"]["attempts_left"], 2);
        assert!(body["message"].as_str().unwrap().contains("2 attempt"));
        let plain = serde_json::to_value(ApiError::not_found()).unwrap();
        assert!(plain.get("data").is_none(), "absent data is omitted, not null");
    }

    #[test]
    fn upstream_rejection_keeps_status_and_error() {
        let err: ApiError = UpstreamError::Rejected { status: 403, error: OAuthError::AccessDenied }.into();
        assert_eq!((err.status, err.error.as_ref()), (403, "access_denied"));
        assert_eq!(err.message.as_deref(), Some(upstream_rejection_message(OAuthError::AccessDenied)));
        let err: ApiError = UpstreamError::Rejected { status: 400, error: OAuthError::Unrecognised }.into();
        assert_eq!((err.status, err.error.as_ref()), (400, "upstream_rejected"));
        assert_eq!(ApiError::from(UpstreamError::Timeout).status, 504);
        let failed = UpstreamError::Failed { status: Some(307), reason: crate::ciba::Failure::Redirected };
        assert_eq!(
            (ApiError::from(failed).status, ApiError::from(failed).error.as_ref()),
            (502, "upstream_error")
        );
    }

    #[test]
    fn every_code_is_listed_once_with_an_error_status() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert!((400..600).contains(&code.status()), "{code:?}");
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(*code));
            assert!(!ErrorCode::ALL[..i].iter().any(|c| c.as_str() == code.as_str()), "{code:?} twice");
        }
    }
}
