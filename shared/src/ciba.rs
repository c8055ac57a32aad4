//! The client for the upstream IPification auth server: the four calls of CIBA with the SMS
//! channel, in protocol order (see `../shared/reference/protocol.md`).
//!
//! 1. [`CibaClient::start`]: backchannel authentication request with `channel=sms`; the SMS goes out.
//! 2. [`CibaClient::submit_code`]: the SMS callback with the user's code (`Bearer auth_req_id`).
//! 3. [`CibaClient::token`]: the CIBA grant, polled while the server says `authorization_pending`.
//! 4. [`CibaClient::userinfo`]: the claims about the verified phone.
//!
//! One `reqwest::Client` (rustls, connection pool) is built at cold start and reused, so a warm
//! Lambda instance keeps its TLS connection to the upstream.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::{
    config::{AuthServer, SmsClient, UpstreamTimeouts},
    secret::{AccessToken, AuthReqId, OtpCode},
    timings::{UpstreamCall, upstream_call},
};

const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";
/// CIBA Core §7.3: without an `interval` from the server, poll every 5 s.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// CIBA Core §11: after `slow_down`, poll at least 5 s less often from then on.
const SLOW_DOWN_STEP_SECS: u64 = 5;

/// The OAuth error codes the upstream answers with (RFC 6749 §5.2, CIBA Core §11 and §13),
/// parsed once from its error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OAuthError {
    /// The user has not finished yet: poll again after the interval.
    AuthorizationPending,
    /// Poll less often (5 s more from now on).
    SlowDown,
    ExpiredToken,
    AccessDenied,
    InvalidGrant,
    /// Keycloak's answer to a callback for a request it has cancelled.
    InvalidToken,
    InvalidRequest,
    InvalidClient,
    UnauthorizedClient,
    InvalidScope,
    UnknownUserId,
    /// A well-formed code this service has no meaning for, passed on as it came.
    Other(String),
    /// A 4xx without an OAuth error body we can read (or with a code that is not a short
    /// token): not passed on, named `upstream_rejected`.
    Unreadable,
}

impl OAuthError {
    pub fn parse(code: &str) -> Self {
        match code {
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "expired_token" => Self::ExpiredToken,
            "access_denied" => Self::AccessDenied,
            "invalid_grant" => Self::InvalidGrant,
            "invalid_token" => Self::InvalidToken,
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "unauthorized_client" => Self::UnauthorizedClient,
            "invalid_scope" => Self::InvalidScope,
            "unknown_user_id" => Self::UnknownUserId,
            // OAuth error codes are short ASCII tokens; anything else is not passed on to clients.
            other
                if (1..=64).contains(&other.len())
                    && other.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') =>
            {
                Self::Other(other.to_owned())
            }
            _ => Self::Unreadable,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidScope => "invalid_scope",
            Self::UnknownUserId => "unknown_user_id",
            Self::Other(code) => code,
            Self::Unreadable => "upstream_rejected",
        }
    }

    /// After this answer the upstream request can never succeed (Keycloak cancels a CIBA
    /// request on a failed callback; CIBA Core §11 token errors), so the verification ends.
    pub fn ends_request(&self) -> bool {
        matches!(self, Self::InvalidToken | Self::AccessDenied | Self::ExpiredToken | Self::InvalidGrant)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an upstream call failed, in the three ways the API answers differently.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered 4xx: a definite "no" that retrying will not change.
    #[error("upstream rejected the request: {status} {error}")]
    Rejected { status: u16, error: OAuthError, description: Option<String> },
    /// 5xx, a body we cannot read, or no connection: the request may be retried.
    #[error("upstream failed: {reason}")]
    Failed { status: Option<u16>, reason: String },
    /// No answer within the time allowed; the request may be retried.
    #[error("upstream timed out")]
    Timeout,
}

impl UpstreamError {
    /// Whether a later identical call can succeed (the verification should survive it).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }

    /// The upstream HTTP status, when there was an answer (for logs).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } => Some(*status),
            Self::Failed { status, .. } => *status,
            Self::Timeout => None,
        }
    }

    /// Whether the upstream said its request has ended (see [`OAuthError::ends_request`]).
    pub fn ends_request(&self) -> bool {
        self.oauth_error().is_some_and(OAuthError::ends_request)
    }

    fn oauth_error(&self) -> Option<&OAuthError> {
        match self {
            Self::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What the upstream answered to the start request.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthStarted {
    pub auth_req_id: String,
    pub expires_in: u64,
    #[serde(default)]
    pub interval: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// The OAuth error body: `{"error", "error_description"}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The upstream's userinfo claims, with `phone_number_verified` normalised to a JSON boolean
/// (it arrives as a bool, a string or a number depending on the deployment). Other claims pass
/// through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo(pub Map<String, Value>);

impl UserInfo {
    pub fn from_claims(mut claims: Map<String, Value>) -> Self {
        if let Some(value) = claims.get_mut("phone_number_verified") {
            let verified = match value {
                Value::Bool(b) => Some(*b),
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Some(true),
                    "false" | "0" | "no" => Some(false),
                    _ => None,
                },
                Value::Number(n) => n.as_f64().map(|n| n != 0.0),
                _ => None,
            };
            *value = verified.map_or(Value::Null, Value::Bool);
        }
        Self(claims)
    }

    /// `Some(false)` only when the upstream says the phone is not verified (or says it unreadably).
    pub fn phone_verified(&self) -> Option<bool> {
        match self.0.get("phone_number_verified") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => Some(false),
        }
    }
}

#[derive(Clone)]
pub struct CibaClient {
    http: reqwest::Client,
    timeouts: UpstreamTimeouts,
}

impl CibaClient {
    pub fn new(timeouts: UpstreamTimeouts) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("sms-verify/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(crate::tls::upstream_client_config())
            .build()?;
        Ok(Self { http, timeouts })
    }

    pub fn timeouts(&self) -> UpstreamTimeouts {
        self.timeouts
    }

    /// 1. Starts a CIBA authentication over SMS. The upstream sends the SMS, replacing
    ///    `{{code}}` in `message` with the code.
    pub async fn start(
        &self,
        server: &AuthServer,
        client: &SmsClient,
        login_hint: &str,
        scope: &str,
        message: &str,
    ) -> Result<AuthStarted, UpstreamError> {
        let form = [
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.client_secret.expose()),
            ("scope", scope),
            ("login_hint", login_hint),
            ("channel", "sms"),
            ("message", message),
        ];
        let request = self.http.post(server.endpoints.ciba_auth.clone()).form(&form);
        upstream_call(UpstreamCall::Auth, async { read_json(self.send(request, None).await?).await }).await
    }

    /// 2. Submits the user's code through the SMS callback. Any 2xx means accepted.
    pub async fn submit_code(
        &self,
        server: &AuthServer,
        auth_req_id: &AuthReqId,
        code: &OtpCode,
        deadline: Instant,
    ) -> Result<(), UpstreamError> {
        let request = self
            .http
            .post(server.endpoints.sms_callback.clone())
            .bearer_auth(auth_req_id.expose())
            .json(&serde_json::json!({ "code": code.expose() }));
        upstream_call(UpstreamCall::Callback, async {
            check_status(self.send(request, Some(deadline)).await?).await.map(drop)
        })
        .await
    }

    /// 3. Exchanges the `auth_req_id` for an access token, polling while the upstream says
    ///    `authorization_pending` (every `interval` s; 5 s more after each `slow_down`), until
    ///    `deadline`. Running out of time is a [`UpstreamError::Timeout`].
    pub async fn token(
        &self,
        server: &AuthServer,
        client: &SmsClient,
        auth_req_id: &AuthReqId,
        interval_secs: u64,
        deadline: Instant,
    ) -> Result<AccessToken, UpstreamError> {
        let poll = async {
            let mut interval = Duration::from_secs(interval_secs.max(1));
            loop {
                match self.token_request(server, client, auth_req_id, deadline).await {
                    Ok(token) => return Ok(token),
                    Err(err) => match err.oauth_error() {
                        Some(OAuthError::AuthorizationPending) => {}
                        Some(OAuthError::SlowDown) => interval += Duration::from_secs(SLOW_DOWN_STEP_SECS),
                        _ => return Err(err),
                    },
                }
                if Instant::now() + interval >= deadline {
                    return Err(UpstreamError::Timeout);
                }
                tokio::time::sleep(interval).await;
            }
        };
        upstream_call(UpstreamCall::Token, poll).await
    }

    /// One token request, without polling: also tells whether an earlier, unanswered callback
    /// went through (the token is then ready).
    pub async fn token_once(
        &self,
        server: &AuthServer,
        client: &SmsClient,
        auth_req_id: &AuthReqId,
        deadline: Instant,
    ) -> Result<AccessToken, UpstreamError> {
        upstream_call(UpstreamCall::Token, self.token_request(server, client, auth_req_id, deadline)).await
    }

    async fn token_request(
        &self,
        server: &AuthServer,
        client: &SmsClient,
        auth_req_id: &AuthReqId,
        deadline: Instant,
    ) -> Result<AccessToken, UpstreamError> {
        let form = [
            ("grant_type", CIBA_GRANT_TYPE),
            ("auth_req_id", auth_req_id.expose()),
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.client_secret.expose()),
        ];
        let request = self.http.post(server.endpoints.token.clone()).form(&form);
        let response = self.send(request, Some(deadline)).await?;
        let token: TokenResponse = read_json(response).await?;
        Ok(AccessToken::new(token.access_token))
    }

    /// 4. Reads the claims about the verified user.
    pub async fn userinfo(
        &self,
        server: &AuthServer,
        access_token: &AccessToken,
        deadline: Instant,
    ) -> Result<UserInfo, UpstreamError> {
        let request = self.http.get(server.endpoints.userinfo.clone()).bearer_auth(access_token.expose());
        let claims: Map<String, Value> = upstream_call(UpstreamCall::Userinfo, async {
            read_json(self.send(request, Some(deadline)).await?).await
        })
        .await?;
        Ok(UserInfo::from_claims(claims))
    }

    /// Sends a request with the per-request timeout, shortened so it never runs past `deadline`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Option<Instant>,
    ) -> Result<Response, UpstreamError> {
        let mut timeout = self.timeouts.request;
        if let Some(deadline) = deadline {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
            if timeout.is_zero() {
                return Err(UpstreamError::Timeout);
            }
        }
        request.timeout(timeout).send().await.map_err(transport_error)
    }
}

fn transport_error(err: reqwest::Error) -> UpstreamError {
    if err.is_timeout() {
        UpstreamError::Timeout
    } else {
        // The reqwest error text names the endpoint URL (no secret in it), never form or headers.
        UpstreamError::Failed { status: None, reason: err.to_string() }
    }
}

/// Turns a non-2xx answer into the right error; returns the response of a 2xx.
async fn check_status(response: Response) -> Result<Response, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.map_err(transport_error)?;
    Err(status_error(status, &body))
}

fn status_error(status: StatusCode, body: &[u8]) -> UpstreamError {
    if status.is_client_error() {
        // A 4xx without an OAuth error body is still a rejection; name it by its status.
        let (error, description) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(body) => match OAuthError::parse(&body.error) {
                OAuthError::Unreadable => (OAuthError::Unreadable, None),
                error => (error, body.error_description),
            },
            Err(_) => (OAuthError::Unreadable, None),
        };
        UpstreamError::Rejected { status: status.as_u16(), error, description }
    } else {
        UpstreamError::Failed { status: Some(status.as_u16()), reason: format!("upstream answered {status}") }
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(response: Response) -> Result<T, UpstreamError> {
    let response = check_status(response).await?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body).map_err(|e| UpstreamError::Failed {
        status: Some(status),
        reason: format!("upstream answered {status} with a body we cannot read: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn phone_number_verified_is_normalised_to_bool() {
        for (raw, expected) in [
            (json!(true), json!(true)),
            (json!("true"), json!(true)),
            (json!("TRUE"), json!(true)),
            (json!(1), json!(true)),
            (json!(false), json!(false)),
            (json!("false"), json!(false)),
            (json!(0), json!(false)),
            (json!("maybe"), Value::Null),
        ] {
            let info = UserInfo::from_claims(claims(json!({ "phone_number_verified": raw, "sub": "x" })));
            assert_eq!(info.0["phone_number_verified"], expected, "from {raw}");
            assert_eq!(info.0["sub"], "x", "other claims pass through");
        }
        assert_eq!(UserInfo::from_claims(claims(json!({"mobile_id": "m"}))).phone_verified(), None);
        assert_eq!(
            UserInfo::from_claims(claims(json!({"phone_number_verified": "no"}))).phone_verified(),
            Some(false)
        );
    }

    #[test]
    fn client_errors_keep_status_and_oauth_error() {
        let err =
            status_error(StatusCode::FORBIDDEN, br#"{"error":"access_denied","error_description":"no"}"#);
        assert_eq!(
            err,
            UpstreamError::Rejected {
                status: 403,
                error: OAuthError::AccessDenied,
                description: Some("no".into())
            }
        );
        let err = status_error(StatusCode::BAD_REQUEST, b"<html>oops</html>");
        assert!(matches!(err, UpstreamError::Rejected { status: 400, error: OAuthError::Unreadable, .. }));
        let err = status_error(StatusCode::BAD_REQUEST, br#"{"error":"<script>"}"#);
        assert!(
            matches!(err, UpstreamError::Rejected { ref error, .. } if error.as_str() == "upstream_rejected")
        );
        assert!(status_error(StatusCode::BAD_GATEWAY, b"").is_retryable());
    }
}
