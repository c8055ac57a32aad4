//! The four upstream endpoints (CIBA auth, SMS callback, token, userinfo) plus discovery,
//! as described in the team's reference `../shared/reference/protocol.md` (the folder beside the
//! repository). Strict on purpose: anything the real server might reject is rejected here, so
//! the backend cannot come to depend on leniency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::to_bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::config::SandboxClient;
use crate::error::OAuthError;
use crate::faults::Endpoint;
use crate::outbox::Message;
use crate::store::{ACCESS_TOKEN_TTL, CodeOutcome, NewRequest, PollOutcome};
use crate::{Shared, lock, random};

pub(crate) const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

/// The callback body is `{"code":"123456"}`; anything near this size is not a callback.
const CALLBACK_BODY_LIMIT: usize = 16 * 1024;

type SharedState = State<Arc<Shared>>;
type Realm = Result<Path<String>, PathRejection>;
/// A normal or fault response, or an OAuth error.
type Answer = Result<Response, OAuthError>;

/// `POST …/ext/ciba/auth`: validate, create a pending request, "send" the SMS.
pub(crate) async fn ciba_auth(State(shared): SharedState, realm: Realm, request: Request) -> Answer {
    if let Some(fault) = shared.enter(Endpoint::Auth).await {
        return Ok(fault);
    }
    shared.check_realm(realm)?;
    let cfg = &shared.config;
    let headers = request.headers().clone();
    let params = Params::from_request(request).await?;
    let client = authenticate(&shared, &headers, &params)?;

    let scope = params.get("scope").ok_or_else(|| OAuthError::invalid_request("Missing parameter: scope"))?;
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    if scopes.is_empty() {
        return Err(OAuthError::invalid_request("Missing parameter: scope"));
    }
    if !scopes.contains(&"openid") {
        return Err(OAuthError::bad_request("invalid_scope", "scope must include openid"));
    }
    if let Some(bad) = scopes.iter().find(|s| !client.scopes.iter().any(|a| a == *s)) {
        return Err(OAuthError::bad_request(
            "invalid_scope",
            format!("scope not allowed for this client: {bad}"),
        ));
    }
    let login_hint = params
        .get("login_hint")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter: login_hint"))?;
    let phone_digits = cfg.login_hint_format.phone_digits(login_hint).ok_or_else(|| {
        OAuthError::bad_request("unknown_user_id", "login_hint is not a phone number in the accepted form")
    })?;
    if params.get("channel") != Some("sms") {
        return Err(OAuthError::invalid_request("channel must be sms"));
    }
    let template = params
        .get("message")
        .filter(|m| m.contains("{{code}}"))
        .ok_or_else(|| OAuthError::invalid_request("message is required and must contain {{code}}"))?;
    if params.raw("binding_message").is_some_and(|b| !valid_binding_message(b)) {
        return Err(OAuthError::bad_request(
            "invalid_binding_message",
            "binding_message must match ^[a-zA-Z0-9-._+/!?#]{1,50}$",
        ));
    }

    let auth_req_id = random::opaque(48).map_err(|_| OAuthError::server_error())?;
    let code = random::sms_code().map_err(|_| OAuthError::server_error())?;
    let text = template.replace("{{code}}", &code);
    let new = NewRequest {
        client_id: client.client_id.clone(),
        scope: scopes.join(" "),
        login_hint: login_hint.to_owned(),
        phone_digits: phone_digits.clone(),
        code: code.clone(),
    };
    lock(&shared.store).insert(auth_req_id.clone(), new, cfg, Instant::now());
    let message = Message { to: format!("+{phone_digits}"), text, code, sent_at: epoch_ms() };
    shared.outbox.deliver(message, cfg.quiet);

    let mut body = json!({ "auth_req_id": auth_req_id, "expires_in": cfg.expires_in });
    if let Some(interval) = cfg.interval {
        body["interval"] = json!(interval);
    }
    Ok(no_store(Json(body).into_response()))
}

/// `POST …/ext/bc/sms/callback`: the user's code, with the `auth_req_id` as bearer.
pub(crate) async fn sms_callback(State(shared): SharedState, realm: Realm, request: Request) -> Answer {
    if let Some(fault) = shared.enter(Endpoint::Callback).await {
        return Ok(fault);
    }
    shared.check_realm(realm)?;
    let cfg = &shared.config;
    // The bearer is judged before the body, as a protected resource would.
    let auth_req_id =
        bearer(request.headers()).ok_or_else(|| OAuthError::invalid_token("missing bearer auth_req_id"))?;
    lock(&shared.store).check_pending(&auth_req_id, Instant::now()).map_err(OAuthError::invalid_token)?;
    if !has_content_type(request.headers(), "application/json") {
        return Err(OAuthError::invalid_request("Content-Type must be application/json"));
    }
    let body = to_bytes(request.into_body(), CALLBACK_BODY_LIMIT)
        .await
        .map_err(|_| OAuthError::invalid_request("unreadable or oversized body"))?;
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(|c| c.as_str())
        .ok_or_else(|| OAuthError::invalid_request("body must be a JSON object with a string code"))?;

    match lock(&shared.store).submit_code(&auth_req_id, code, cfg, Instant::now()) {
        CodeOutcome::Approved => Ok(Json(json!({ "status": "ok" })).into_response()),
        CodeOutcome::NotPending(reason) => Err(OAuthError::invalid_token(reason)),
        CodeOutcome::CodeExpired => Err(OAuthError::bad_request("expired_token", "the code has expired")),
        CodeOutcome::WrongCode => Err(OAuthError::bad_request("invalid_code", "wrong code")),
        CodeOutcome::Denied => Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "too many wrong codes; the authentication request is cancelled",
        )),
    }
}

/// `POST …/token` with the CIBA grant: poll until approved, then redeem once.
pub(crate) async fn token(State(shared): SharedState, realm: Realm, request: Request) -> Answer {
    if let Some(fault) = shared.enter(Endpoint::Token).await {
        return Ok(fault);
    }
    shared.check_realm(realm)?;
    let cfg = &shared.config;
    let headers = request.headers().clone();
    let params = Params::from_request(request).await?;
    let client = authenticate(&shared, &headers, &params)?;
    match params.get("grant_type") {
        None => return Err(OAuthError::invalid_request("Missing form parameter: grant_type")),
        Some(CIBA_GRANT_TYPE) => {}
        Some(_) => {
            return Err(OAuthError::bad_request(
                "unsupported_grant_type",
                "only the CIBA grant is supported",
            ));
        }
    }
    let auth_req_id = params
        .get("auth_req_id")
        .ok_or_else(|| OAuthError::invalid_request("Missing parameter: auth_req_id"))?;
    let access_token = random::opaque(32).map_err(|_| OAuthError::server_error())?;
    let id_token = random::opaque(32).map_err(|_| OAuthError::server_error())?;

    let outcome =
        lock(&shared.store).poll(auth_req_id, &client.client_id, access_token.clone(), cfg, Instant::now());
    let (error, description) = match outcome {
        PollOutcome::Issued { scope } => {
            let body = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_TTL.as_secs(),
                "scope": scope,
                "id_token": id_token,
            });
            return Ok(no_store(Json(body).into_response()));
        }
        PollOutcome::InvalidGrant(reason) => ("invalid_grant", reason),
        PollOutcome::Expired => ("expired_token", "the authentication request has expired"),
        PollOutcome::Denied => ("access_denied", "the authentication request was denied"),
        PollOutcome::Pending => ("authorization_pending", "the user has not yet been authenticated"),
        PollOutcome::SlowDown => ("slow_down", "polling too fast; increase the interval by 5 s"),
    };
    Err(OAuthError::bad_request(error, description))
}

/// `GET …/userinfo` with a bearer token, or `POST` with the token as header or form field.
pub(crate) async fn userinfo(State(shared): SharedState, realm: Realm, request: Request) -> Answer {
    if let Some(fault) = shared.enter(Endpoint::Userinfo).await {
        return Ok(fault);
    }
    shared.check_realm(realm)?;
    let from_header = bearer(request.headers());
    let is_form = has_content_type(request.headers(), "application/x-www-form-urlencoded");
    let token = if request.method() == Method::POST && is_form {
        let params = Params::from_request(request).await?;
        match (from_header, params.get("access_token")) {
            // RFC 6750 §2: one method per request.
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request("access token sent both as header and form field"));
            }
            (header, form) => header.or_else(|| form.map(str::to_owned)),
        }
    } else {
        from_header
    };
    let token = token.ok_or_else(|| OAuthError::invalid_token("missing access token"))?;
    let grant = lock(&shared.store)
        .userinfo(&token, Instant::now())
        .ok_or_else(|| OAuthError::invalid_token("unknown or expired access token"))?;
    let verified = if shared.config.verified_claim_as_string { json!("true") } else { json!(true) };
    Ok(Json(json!({
        "sub": random::subject(&grant.phone_digits),
        "login_hint": grant.login_hint,
        "phone_number": format!("+{}", grant.phone_digits),
        "phone_number_verified": verified,
    }))
    .into_response())
}

/// `GET {url}/realms/{realm}/.well-known/openid-configuration`, so a backend that discovers
/// endpoints finds these ones. Not counted and not faultable: it is not one of the four calls.
pub(crate) async fn discovery(State(shared): SharedState, realm: Realm) -> Answer {
    shared.check_realm(realm)?;
    let issuer = format!("{}/realms/{}", shared.base_url, shared.config.realm);
    let oidc = format!("{issuer}/protocol/openid-connect");
    Ok(Json(json!({
        "issuer": issuer,
        "backchannel_authentication_endpoint": format!("{oidc}/ext/ciba/auth"),
        "token_endpoint": format!("{oidc}/token"),
        "userinfo_endpoint": format!("{oidc}/userinfo"),
        "grant_types_supported": [CIBA_GRANT_TYPE],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": false,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }))
    .into_response())
}

/// Form parameters, rejected up front if the body is not a form or repeats a parameter
/// (RFC 6749 §3.1: parameters MUST NOT be included more than once).
struct Params(Vec<(String, String)>);

impl Params {
    async fn from_request(request: Request) -> Result<Params, OAuthError> {
        let axum::Form(pairs) =
            axum::Form::<Vec<(String, String)>>::from_request(request, &()).await.map_err(|rejection| {
                OAuthError::invalid_request(format!(
                    "expected an application/x-www-form-urlencoded body: {rejection}"
                ))
            })?;
        // A set, not a pairwise scan: a 2 MB body of tiny parameters must stay cheap.
        let mut seen = HashSet::with_capacity(pairs.len());
        if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            return Err(OAuthError::invalid_request(format!("parameter repeated: {name}")));
        }
        Ok(Params(pairs))
    }

    /// The value, with an empty one treated as missing (as Keycloak does).
    fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    /// The value exactly as sent, empty included.
    fn raw(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// client_secret_basic or client_secret_post. Like Keycloak, a Basic header wins over form
/// fields, and a form `client_id` that disagrees with it is refused.
fn authenticate<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'a SandboxClient, OAuthError> {
    let (client_id, secret) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let (id, secret) = basic_credentials(value).ok_or_else(OAuthError::invalid_client)?;
            if params.get("client_id").is_some_and(|form_id| form_id != id) {
                return Err(OAuthError::invalid_client());
            }
            (id, secret)
        }
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => return Err(OAuthError::invalid_client()),
        },
    };
    shared
        .config
        .clients
        .iter()
        .find(|c| c.client_id == client_id && shared.secret_of(c) == secret)
        .ok_or_else(OAuthError::invalid_client)
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// application/x-www-form-urlencoded decoding of one component; `None` if malformed.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The token of an `Authorization: Bearer …` header, if that is what the header holds.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let (scheme, token) = headers.get(header::AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// Keycloak's rule for `binding_message`: `^[a-zA-Z0-9-._+/!?#]{1,50}$`.
fn valid_binding_message(s: &str) -> bool {
    (1..=50).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._+/!?#".contains(&b))
}

/// Responses carrying credentials must not be cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_message_rule() {
        assert!(valid_binding_message("Login-to_app.v2+/!?#"));
        assert!(valid_binding_message(&"a".repeat(50)));
        assert!(!valid_binding_message(&"a".repeat(51)));
        assert!(!valid_binding_message(""));
        assert!(!valid_binding_message("has space"));
        assert!(!valid_binding_message("code {{code}}"));
        assert!(!valid_binding_message("é"));
    }

    #[test]
    fn basic_and_bearer_parsing() {
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        let encoded = STANDARD.encode("my%3Aid:s+e%2Bcret");
        assert_eq!(
            basic_credentials(&header(&format!("Basic {encoded}"))),
            Some(("my:id".to_owned(), "s e+cret".to_owned()))
        );
        assert_eq!(basic_credentials(&header(&format!("Bearer {encoded}"))), None);
        assert_eq!(basic_credentials(&header("Basic !!!")), None);
        assert_eq!(basic_credentials(&header(&format!("Basic {}", STANDARD.encode("noseparator")))), None);
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%"), None);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, header("bearer abc"));
        assert_eq!(bearer(&headers).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, header("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
