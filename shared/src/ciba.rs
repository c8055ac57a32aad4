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

use std::{sync::Arc, time::Duration};

use reqwest::Response;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::{
    config::{AuthServer, MAX_VERIFICATION_TTL_SECS, SmsClient, UpstreamTimeouts},
    outbound::{self, BodyError},
    rotation::ClientSecrets,
    secret::{AccessToken, AuthReqId, ClientSecret, OtpCode},
    timings::{UpstreamCall, upstream_call},
};

const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";
/// CIBA Core §7.3: without an `interval` from the server, poll every 5 s.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// The longest poll interval taken from the upstream: a longer one would outlast any token
/// budget, and an absurd one (2⁶⁴−1) would overflow the clock.
pub const MAX_POLL_INTERVAL_SECS: u64 = 30;
/// Keycloak's default lifetime of a CIBA request, for an answer that says none.
const DEFAULT_EXPIRES_IN_SECS: u64 = 120;
/// CIBA Core §11: after `slow_down`, poll at least 5 s less often from then on.
const SLOW_DOWN_STEP_SECS: u64 = 5;
/// The most of an answer body that is read: CIBA's answers are a few hundred bytes, userinfo a
/// few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest `auth_req_id` taken: what `/sms/token` accepts back.
pub const MAX_AUTH_REQ_ID_CHARS: usize = 4096;
/// The longest access token taken (it is kept sealed in the verification until used).
const MAX_ACCESS_TOKEN_CHARS: usize = 16 * 1024;

/// The OAuth error codes the upstream answers with (RFC 6749 §5.2, CIBA Core §11 and §13),
/// parsed once from its error body. Only these are ever passed on, and only as the code: the
/// upstream's `error_description` is never read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    UnsupportedGrantType,
    InvalidScope,
    UnknownUserId,
    ExpiredLoginHintToken,
    InvalidBindingMessage,
    /// A 4xx without an OAuth error body, or with a code not in this list: answered as
    /// `upstream_rejected`, so nothing the upstream chose reaches a caller or a log line.
    Unrecognised,
}

impl OAuthError {
    const KNOWN: &[OAuthError] = &[
        Self::AuthorizationPending,
        Self::SlowDown,
        Self::ExpiredToken,
        Self::AccessDenied,
        Self::InvalidGrant,
        Self::InvalidToken,
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::UnknownUserId,
        Self::ExpiredLoginHintToken,
        Self::InvalidBindingMessage,
    ];

    pub fn parse(code: &str) -> Self {
        Self::KNOWN.iter().copied().find(|known| known.as_str() == code).unwrap_or(Self::Unrecognised)
    }

    pub const fn as_str(self) -> &'static str {
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
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnknownUserId => "unknown_user_id",
            Self::ExpiredLoginHintToken => "expired_login_hint_token",
            Self::InvalidBindingMessage => "invalid_binding_message",
            Self::Unrecognised => "upstream_rejected",
        }
    }

    /// After this answer the upstream request can never succeed (Keycloak cancels a CIBA
    /// request on a failed callback; CIBA Core §11 token errors), so the verification ends.
    pub fn ends_request(self) -> bool {
        matches!(self, Self::InvalidToken | Self::AccessDenied | Self::ExpiredToken | Self::InvalidGrant)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an upstream call failed without a definite answer, in our words: this (never the
/// upstream's text, nor a parser's, which quotes the upstream's values) is what a log line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made.
    Unreachable,
    /// The connection broke off before the whole answer arrived.
    BrokenOff,
    /// It answered 5xx.
    ServerError,
    /// It answered 3xx: never followed, the request carries secrets.
    Redirected,
    /// It answered another status that is neither success nor a client error (1xx).
    UnexpectedStatus,
    /// The body was longer than [`MAX_BODY_BYTES`].
    BodyTooLarge,
    /// The body was not the JSON this call expects (or a field was out of bounds).
    Unreadable,
}

impl Failure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::BrokenOff => "broken_off",
            Self::ServerError => "server_error",
            Self::Redirected => "redirect_refused",
            Self::UnexpectedStatus => "unexpected_status",
            Self::BodyTooLarge => "body_too_large",
            Self::Unreadable => "unreadable_body",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an upstream call failed, in the three ways the API answers differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered 4xx: a definite "no" that retrying will not change.
    #[error("upstream rejected the request: {status} {error}")]
    Rejected { status: u16, error: OAuthError },
    /// 5xx, 3xx, a body we cannot read, or no connection: the request may be retried.
    #[error("upstream failed: {reason}")]
    Failed { status: Option<u16>, reason: Failure },
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

    fn oauth_error(&self) -> Option<OAuthError> {
        match self {
            Self::Rejected { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// A 2xx whose body is not what the call expects.
    fn unreadable(status: u16) -> Self {
        Self::Failed { status: Some(status), reason: Failure::Unreadable }
    }
}

/// What the upstream answered to the start request, its numbers clamped to what this service
/// can work with.
#[derive(Debug, Clone)]
pub struct AuthStarted {
    pub auth_req_id: String,
    /// Seconds the upstream keeps the request, in `1..=MAX_VERIFICATION_TTL_SECS`.
    pub expires_in: u64,
    /// Seconds between token polls, in `1..=MAX_POLL_INTERVAL_SECS` (5 when not said).
    pub interval: u64,
}

/// The start answer as it arrives. The numbers are read leniently (the SMS has already gone
/// out, so a nonsense number must not throw the verification away): anything but a
/// non-negative number counts as not said.
#[derive(Deserialize)]
struct RawAuthStarted {
    auth_req_id: String,
    #[serde(default, deserialize_with = "lenient_secs")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "lenient_secs")]
    interval: Option<u64>,
}

impl RawAuthStarted {
    fn clamp(self, status: u16) -> Result<AuthStarted, UpstreamError> {
        // An auth_req_id goes back to the caller and comes back to us: printable ASCII of a
        // length `/sms/token` takes, as RFC 6749's VSCHAR tokens are.
        let id = &self.auth_req_id;
        if id.is_empty()
            || id.len() > MAX_AUTH_REQ_ID_CHARS
            || !id.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(UpstreamError::unreadable(status));
        }
        Ok(AuthStarted {
            auth_req_id: self.auth_req_id,
            expires_in: self
                .expires_in
                .unwrap_or(DEFAULT_EXPIRES_IN_SECS)
                .clamp(1, MAX_VERIFICATION_TTL_SECS),
            interval: self.interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS).clamp(1, MAX_POLL_INTERVAL_SECS),
        })
    }
}

/// A number of seconds, saturated into `u64`; `None` for anything that is not a non-negative
/// number (a string, a negative, `null`).
fn lenient_secs<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// The OAuth error body: `{"error", "error_description"}`. Only `error` is read.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// The upstream's userinfo claims, with `phone_number_verified` normalised to a JSON boolean
/// (it arrives as a bool, a string or a number depending on the deployment). Other claims pass
/// through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo(pub Map<String, Value>);

impl UserInfo {
    /// `phone_number_verified` becomes `true` only for the forms that say yes (JSON `true`, the
    /// string `"true"` in any case, the number 1); any other value becomes `false`.
    pub fn from_claims(mut claims: Map<String, Value>) -> Self {
        if let Some(value) = claims.get_mut("phone_number_verified") {
            let verified = match value {
                Value::Bool(b) => *b,
                Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
                Value::Number(n) => n.as_u64() == Some(1),
                _ => false,
            };
            *value = Value::Bool(verified);
        }
        Self(claims)
    }

    /// Whether the upstream says the phone is verified; saying nothing is not saying yes.
    pub fn phone_verified(&self) -> bool {
        self.0.get("phone_number_verified") == Some(&Value::Bool(true))
    }
}

#[derive(Clone)]
pub struct CibaClient {
    http: reqwest::Client,
    timeouts: UpstreamTimeouts,
    /// The client secrets to authenticate with, re-read after an `invalid_client`.
    secrets: Arc<ClientSecrets>,
}

impl CibaClient {
    pub fn new(timeouts: UpstreamTimeouts) -> Result<Self, reqwest::Error> {
        let http = outbound::client(timeouts.connect, timeouts.request)?;
        Ok(Self { http, timeouts, secrets: Arc::new(ClientSecrets::fixed()) })
    }

    /// Authenticates with `secrets` from now on (a Lambda instance's, from Secrets Manager).
    pub fn set_secrets(&mut self, secrets: ClientSecrets) {
        self.secrets = Arc::new(secrets);
    }

    /// Makes `call` with `client`'s secret; when the upstream refuses it (`invalid_client`) and
    /// the secret has been rotated ([`crate::rotation`]), once more with the new one. A refused
    /// client authentication happens before the upstream does anything, so the retry cannot
    /// send a second SMS or redeem anything twice.
    async fn authenticated<T, F>(
        &self,
        client: &SmsClient,
        call: impl Fn(ClientSecret) -> F,
    ) -> Result<T, UpstreamError>
    where
        F: Future<Output = Result<T, UpstreamError>>,
    {
        let secret = self.secrets.current_for(client);
        match call(secret.clone()).await {
            Err(refused) if refused.oauth_error() == Some(OAuthError::InvalidClient) => {
                match self.secrets.after_refusal(client, &secret).await {
                    Some(rotated) => call(rotated).await,
                    None => Err(refused),
                }
            }
            answer => answer,
        }
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
        let attempt = |secret: ClientSecret| async move {
            let form = [
                ("client_id", client.client_id.as_str()),
                ("client_secret", secret.expose()),
                ("scope", scope),
                ("login_hint", login_hint),
                ("channel", "sms"),
                ("message", message),
            ];
            let request = self.http.post(server.endpoints.ciba_auth.clone()).form(&form);
            let response = self.send(request, None).await?;
            let status = response.status().as_u16();
            read_json::<RawAuthStarted>(response).await?.clamp(status)
        };
        // Boxed (here and for the token): nested in a whole handler's future, this one would take
        // the compiler's layout computation past its depth limit. One allocation per HTTP request.
        upstream_call(UpstreamCall::Auth, Box::pin(self.authenticated(client, attempt))).await
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
            let mut interval = Duration::from_secs(interval_secs.clamp(1, MAX_POLL_INTERVAL_SECS));
            loop {
                match self.token_request(server, client, auth_req_id, deadline).await {
                    Ok(token) => return Ok(token),
                    Err(err) => match err.oauth_error() {
                        Some(OAuthError::AuthorizationPending) => {}
                        Some(OAuthError::SlowDown) => interval += Duration::from_secs(SLOW_DOWN_STEP_SECS),
                        _ => return Err(err),
                    },
                }
                if interval >= deadline.saturating_duration_since(Instant::now()) {
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
        let attempt = |secret: ClientSecret| async move {
            let form = [
                ("grant_type", CIBA_GRANT_TYPE),
                ("auth_req_id", auth_req_id.expose()),
                ("client_id", client.client_id.as_str()),
                ("client_secret", secret.expose()),
            ];
            let request = self.http.post(server.endpoints.token.clone()).form(&form);
            let response = self.send(request, Some(deadline)).await?;
            let status = response.status().as_u16();
            let token: TokenResponse = read_json(response).await?;
            if token.access_token.is_empty() || token.access_token.len() > MAX_ACCESS_TOKEN_CHARS {
                return Err(UpstreamError::unreadable(status));
            }
            Ok(AccessToken::new(token.access_token))
        };
        Box::pin(self.authenticated(client, attempt)).await
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
        // OpenID Connect requires `sub`: the session and the signed result name the user by it,
        // so a userinfo without one is not an answer this call can use.
        if claims.get("sub").and_then(Value::as_str).is_none_or(|sub| sub.trim().is_empty()) {
            return Err(UpstreamError::Failed { status: Some(200), reason: Failure::Unreadable });
        }
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
        UpstreamError::Failed { status: None, reason: Failure::Unreachable }
    }
}

/// Turns a non-2xx answer into the right error; returns the response of a 2xx. A 3xx is a
/// failure like a 5xx: no redirect is ever followed (see [`crate::outbound`]).
async fn check_status(response: Response) -> Result<Response, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if !status.is_client_error() {
        let reason = if status.is_server_error() {
            Failure::ServerError
        } else if status.is_redirection() {
            Failure::Redirected
        } else {
            Failure::UnexpectedStatus
        };
        return Err(UpstreamError::Failed { status: Some(status.as_u16()), reason });
    }
    // A 4xx without an OAuth error body we can read is still a rejection.
    let error = match read_body(response).await {
        Ok(body) => oauth_error(&body),
        Err(UpstreamError::Timeout) => return Err(UpstreamError::Timeout),
        Err(_) => OAuthError::Unrecognised,
    };
    Err(UpstreamError::Rejected { status: status.as_u16(), error })
}

/// The OAuth error code of a 4xx body, if it has one this service knows.
fn oauth_error(body: &[u8]) -> OAuthError {
    serde_json::from_slice::<ErrorBody>(body)
        .map_or(OAuthError::Unrecognised, |body| OAuthError::parse(&body.error))
}

/// The body of an answer, at most [`MAX_BODY_BYTES`] of it.
async fn read_body(response: Response) -> Result<Vec<u8>, UpstreamError> {
    let status = Some(response.status().as_u16());
    outbound::read_capped(response, MAX_BODY_BYTES).await.map_err(|err| match err {
        BodyError::TooLarge => UpstreamError::Failed { status, reason: Failure::BodyTooLarge },
        BodyError::Broken { timed_out: true } => UpstreamError::Timeout,
        BodyError::Broken { timed_out: false } => {
            UpstreamError::Failed { status, reason: Failure::BrokenOff }
        }
    })
}

/// A 2xx answer's JSON body. A parser's error quotes the upstream's values, so it is dropped
/// for [`Failure::Unreadable`].
async fn read_json<T: for<'de> Deserialize<'de>>(response: Response) -> Result<T, UpstreamError> {
    let response = check_status(response).await?;
    let status = response.status().as_u16();
    let body = read_body(response).await?;
    serde_json::from_slice(&body).map_err(|_| UpstreamError::unreadable(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn phone_number_verified_is_true_only_when_the_upstream_says_yes() {
        for (raw, expected) in [
            (json!(true), true),
            (json!("true"), true),
            (json!(" TRUE "), true),
            (json!(1), true),
            (json!(false), false),
            (json!("false"), false),
            (json!(0), false),
            (json!(2), false),
            (json!(0.5), false),
            (json!("yes"), false),
            (json!("maybe"), false),
            (Value::Null, false),
        ] {
            let info = UserInfo::from_claims(claims(json!({ "phone_number_verified": raw, "sub": "x" })));
            assert_eq!(info.0["phone_number_verified"], json!(expected), "from {raw}");
            assert_eq!(info.phone_verified(), expected, "from {raw}");
            assert_eq!(info.0["sub"], "x", "other claims pass through");
        }
        assert!(
            !UserInfo::from_claims(claims(json!({"mobile_id": "m"}))).phone_verified(),
            "absent is not yes"
        );
    }

    #[test]
    fn only_known_oauth_codes_are_passed_on() {
        assert_eq!(
            oauth_error(br#"{"error":"access_denied","error_description":"db=10.0.3.4"}"#),
            OAuthError::AccessDenied
        );
        for unknown in [
            &br#"{"error":"weird_vendor_code"}"#[..],
            br#"{"error":"<script>"}"#,
            b"<html>oops</html>",
            br#"{"error":42}"#,
            b"",
        ] {
            assert_eq!(
                oauth_error(unknown),
                OAuthError::Unrecognised,
                "{}",
                String::from_utf8_lossy(unknown)
            );
        }
        assert_eq!(OAuthError::Unrecognised.as_str(), "upstream_rejected");
        for known in OAuthError::KNOWN {
            assert_eq!(OAuthError::parse(known.as_str()), *known);
        }
    }

    #[test]
    fn the_upstreams_numbers_are_clamped() {
        let read = |body: Value| serde_json::from_value::<RawAuthStarted>(body).unwrap().clamp(200);
        let absurd = read(json!({"auth_req_id": "r", "expires_in": u64::MAX, "interval": u64::MAX})).unwrap();
        assert_eq!((absurd.expires_in, absurd.interval), (MAX_VERIFICATION_TTL_SECS, MAX_POLL_INTERVAL_SECS));
        let zero = read(json!({"auth_req_id": "r", "expires_in": 0, "interval": 0})).unwrap();
        assert_eq!((zero.expires_in, zero.interval), (1, 1));
        let nonsense = read(json!({"auth_req_id": "r", "expires_in": -5, "interval": "soon"})).unwrap();
        assert_eq!(
            (nonsense.expires_in, nonsense.interval),
            (DEFAULT_EXPIRES_IN_SECS, DEFAULT_POLL_INTERVAL_SECS)
        );
        let float = read(json!({"auth_req_id": "r", "expires_in": 1e300, "interval": 2.5})).unwrap();
        assert_eq!((float.expires_in, float.interval), (MAX_VERIFICATION_TTL_SECS, 2));
        for bad_id in ["", "with space", "new\nline", &"x".repeat(MAX_AUTH_REQ_ID_CHARS + 1)] {
            assert!(read(json!({"auth_req_id": bad_id})).is_err(), "{bad_id:?}");
        }
    }
}
