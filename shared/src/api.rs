//! The HTTP side of the endpoints: `lambda_http::Request` in, `Response` out.
//!
//! Each handler parses and bounds the body, calls the flow, and maps its result to the seed's
//! response shape (or, through [`ApiError`], the one error shape); `handle`, the one skeleton
//! they share, logs the request's one line from that answer and the flow's facts. The same functions run inside
//! Lambda (`functions/*`) and behind `local-api`, so there is no second implementation to drift.

use icu_properties::{CodePointMapData, props::GeneralCategory};
use lambda_http::{
    Body, Request, RequestExt, Response,
    http::{HeaderValue, StatusCode, header},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    App, client_log,
    clock::Clock,
    config::Config,
    crypto,
    error::ApiError,
    flow::{self, CompleteRequest, Facts, FlowError, StartRequest},
    limits::Limit,
    origins::BrowserOrigins,
    outcome::Success,
    phone,
    secret::{AuthReqId, Nonce, OtpCode, SessionToken},
    signed_result::{JWKS_MAX_AGE_SECS, ResultSigner},
    store::{SessionKey, StateStore},
    telemetry::RequestLog,
    timings::measure,
};

/// Largest body `/sms/auth` and `/sms/token` accept; theirs are a few hundred bytes.
pub const MAX_FLOW_BODY_BYTES: usize = 8 * 1024;
/// Largest body `/sms/log` accepts.
pub const MAX_LOG_BODY_BYTES: usize = 32 * 1024;
/// What a browser says of the site a request comes from (Fetch Metadata).
const SEC_FETCH_SITE: &str = "sec-fetch-site";
/// Name of the cookie that carries the session token for browser clients.
pub const SESSION_COOKIE: &str = "sms_session";

mod context;

use context::{api_base_url, request_id};
pub use context::{route_key, source_ip};

type HandlerResult = Result<Response<Body>, lambda_http::Error>;

#[derive(Deserialize)]
struct SmsAuthBody {
    client_id: String,
    server_id: Option<String>,
    login_hint: String,
    scope: Option<String>,
    challenge_token: Option<String>,
    locale: Option<String>,
}

#[derive(Deserialize)]
struct SmsTokenBody {
    code: String,
    auth_req_id: String,
    client_id: String,
    nonce: String,
    server_id: Option<String>,
}

/// `/sms/status` and `/sms/cancel`: the verification, as `/sms/auth` answered it.
#[derive(Deserialize)]
struct VerificationRefBody {
    auth_req_id: String,
    client_id: String,
    nonce: String,
    server_id: Option<String>,
}

#[derive(Deserialize)]
struct SmsLogBody {
    data: Value,
    /// The `flow_id` from `/sms/auth`, joining the client's lines to the flow's.
    flow_id: Option<String>,
}

/// `POST /sms/auth` → 200 `{auth_server, auth_req_id, nonce, flow_id, expires_at}`.
pub async fn sms_auth(app: &App, request: Request) -> HandlerResult {
    handle("sms_auth", &request, async {
        let start = match start_request(&request) {
            Ok(start) => start,
            Err(err) => return (Facts::default(), Err(err)),
        };
        let (facts, started) = flow::start(app, start).await;
        let answer = started.map_err(ApiError::from).map(|started| {
            let body = json!({
                "auth_server": started.auth_server,
                "auth_req_id": started.auth_req_id.expose(),
                "nonce": started.nonce.expose(),
                "flow_id": started.flow_id,
                "expires_at": started.expires_at,
            });
            Answer::summary(Success::Sent, json_response(StatusCode::OK, &body))
        });
        (facts, answer)
    })
    .await
}

fn start_request(request: &Request) -> Result<StartRequest, ApiError> {
    let body: SmsAuthBody = parse_json(request, MAX_FLOW_BODY_BYTES)?;
    check_field("client_id", &body.client_id, 128)?;
    check_field("login_hint", &body.login_hint, 32)?;
    check_optional_field("server_id", body.server_id.as_deref(), 64)?;
    check_optional_field("scope", body.scope.as_deref(), 256)?;
    // Turnstile's and hCaptcha's tokens are up to 2 KiB, reCAPTCHA's a little longer.
    check_optional_field("challenge_token", body.challenge_token.as_deref(), 4096)?;
    check_optional_field("locale", body.locale.as_deref(), 35)?;
    Ok(StartRequest {
        client_id: body.client_id,
        server_id: body.server_id,
        login_hint: body.login_hint,
        scope: body.scope,
        challenge_token: body.challenge_token,
        locale: body.locale,
        source_ip: source_ip(request),
    })
}

/// `POST /sms/token` → 200 `{auth_server, ...userinfo claims, session}` and the session cookie.
pub async fn sms_token(app: &App, request: Request) -> HandlerResult {
    handle("sms_token", &request, async {
        let complete = match complete_request(&request) {
            Ok(complete) => complete,
            Err(err) => return (Facts::default(), Err(err)),
        };
        let (facts, verified) = flow::complete(app, complete).await;
        let answer = verified.map_err(ApiError::from).map(|verified| {
            let mut body = verified.claims;
            body.insert("auth_server".into(), json!(verified.auth_server));
            body.insert("session".into(), json!(verified.session_token.expose()));
            body.insert("verification_token".into(), json!(verified.verification_token.expose()));
            let mut response = json_response(StatusCode::OK, &Value::Object(body));
            let cookie = session_cookie(verified.session_token.expose(), verified.session_ttl_secs);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            Answer::summary(Success::Verified, response)
        });
        (facts, answer)
    })
    .await
}

fn complete_request(request: &Request) -> Result<CompleteRequest, ApiError> {
    let body: SmsTokenBody = parse_json(request, MAX_FLOW_BODY_BYTES)?;
    check_code_format(&body.code)?;
    check_field("auth_req_id", &body.auth_req_id, 4096)?;
    check_field("client_id", &body.client_id, 128)?;
    check_field("nonce", &body.nonce, 64)?;
    check_optional_field("server_id", body.server_id.as_deref(), 64)?;
    Ok(CompleteRequest {
        code: OtpCode::new(body.code),
        auth_req_id: AuthReqId::new(body.auth_req_id),
        client_id: body.client_id,
        nonce: Nonce::new(body.nonce),
        server_id: body.server_id,
        source_ip: source_ip(request),
        invocation_deadline: request.lambda_context_ref().map(|context| context.deadline()),
        api_base_url: api_base_url(request),
    })
}

/// `POST /sms/status` → 200 `{status: "pending", attempts_left, expires_at, resend_after}`, or
/// `404` under `/sms/token`'s rules.
pub async fn sms_status(deps: flow::Deps<'_>, request: Request) -> HandlerResult {
    handle("sms_status", &request, async {
        let reference = match verification_ref(&request) {
            Ok(reference) => reference,
            Err(err) => return (Facts::default(), Err(err)),
        };
        let (facts, pending) = flow::status(deps, reference).await;
        let answer = pending.map_err(ApiError::from).map(|pending| {
            let body = json!({
                "status": "pending",
                "attempts_left": pending.attempts_left,
                "expires_at": pending.expires_at,
                "resend_after": pending.resend_after,
            });
            Answer::summary(Success::Pending, json_response(StatusCode::OK, &body))
        });
        (facts, answer)
    })
    .await
}

/// `POST /sms/cancel` → 204: the verification is ended (afterwards `404` everywhere).
pub async fn sms_cancel(deps: flow::Deps<'_>, request: Request) -> HandlerResult {
    handle("sms_cancel", &request, async {
        let reference = match verification_ref(&request) {
            Ok(reference) => reference,
            Err(err) => return (Facts::default(), Err(err)),
        };
        let (facts, cancelled) = flow::cancel(deps, reference).await;
        let answer = cancelled.map_err(ApiError::from).map(|()| {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Answer::summary(Success::Cancelled, response)
        });
        (facts, answer)
    })
    .await
}

fn verification_ref(request: &Request) -> Result<flow::VerificationRef, ApiError> {
    let body: VerificationRefBody = parse_json(request, MAX_FLOW_BODY_BYTES)?;
    check_field("auth_req_id", &body.auth_req_id, 4096)?;
    check_field("client_id", &body.client_id, 128)?;
    check_field("nonce", &body.nonce, 64)?;
    check_optional_field("server_id", body.server_id.as_deref(), 64)?;
    Ok(flow::VerificationRef {
        auth_req_id: AuthReqId::new(body.auth_req_id),
        client_id: body.client_id,
        nonce: Nonce::new(body.nonce),
        server_id: body.server_id,
    })
}

/// `POST /sms/log` → 200 `OK`: the client's flow data as one sanitised `sms_client_log` line.
pub async fn sms_log(request: Request) -> HandlerResult {
    handle("sms_log", &request, async {
        let body = parse_json::<SmsLogBody>(&request, MAX_LOG_BODY_BYTES).and_then(|body| {
            check_optional_flow_id(body.flow_id.as_deref())?;
            Ok(body)
        });
        let facts =
            Facts { flow_id: body.as_ref().ok().and_then(|body| body.flow_id.clone()), ..Facts::default() };
        let answer = body.map(|body| {
            let mut response = Response::new(Body::Text("OK".into()));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            let kept = client_log::sanitize(&body.data);
            let data = Value::Object(kept.data).to_string();
            Answer { line: Line::ClientLog { data, dropped_fields: kept.dropped }, response }
        });
        (facts, answer)
    })
    .await
}

/// A flow id is what `/sms/auth` returned: 16 lowercase hex digits. Anything else could be used
/// to forge or flood the flow's lines, so it is refused rather than logged.
fn check_optional_flow_id(flow_id: Option<&str>) -> Result<(), ApiError> {
    match flow_id {
        Some(id) if !flow::is_flow_id(id) => {
            Err(ApiError::invalid_request("field `flow_id`: must be the flow_id returned by /sms/auth"))
        }
        _ => Ok(()),
    }
}

/// `GET /sms/clients` → 200: the auth servers and SMS clients a page may offer. Ids, titles and
/// allowed countries only: nothing here is secret, and it changes only with a deployment.
pub async fn sms_clients(config: &Config, request: Request) -> HandlerResult {
    handle("sms_clients", &request, async {
        let servers: Vec<Value> = config
            .auth_servers
            .iter()
            .enumerate()
            .map(|(i, server)| json!({ "id": server.id, "default": i == 0 }))
            .collect();
        let clients: Vec<Value> = config
            .sms_clients
            .iter()
            .map(|client| {
                json!({
                    "client_id": client.client_id,
                    "title": client.title,
                    "allowed_countries": client.numbers.allowed_countries,
                    // What the page needs to show the widget; the secret stays here.
                    "challenge": client.challenge.as_ref().map(|c| json!({
                        "provider": c.provider.name(),
                        "site_key": c.site_key,
                    })),
                })
            })
            .collect();
        let body = json!({ "auth_servers": servers, "clients": clients });
        let mut response = json_response(StatusCode::OK, &body);
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        (Facts::default(), Ok(Answer::summary(Success::Listed, response)))
    })
    .await
}

/// `GET /.well-known/jwks.json` → 200: the public keys of `verification_token` (public, cacheable).
pub async fn jwks(results: &ResultSigner, request: Request) -> HandlerResult {
    handle("jwks", &request, async {
        let mut response = json_response(StatusCode::OK, &results.jwks().await);
        let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
        if let Ok(value) = HeaderValue::from_str(&cache) {
            response.headers_mut().insert(header::CACHE_CONTROL, value);
        }
        (Facts::default(), Ok(Answer::summary(Success::Published, response)))
    })
    .await
}

/// `GET /user/info` → 200: the verified session read back (its userinfo, client, server, when it
/// was verified and when it expires); 401 without a live session.
pub async fn user_info(
    config: &Config,
    store: &dyn StateStore,
    clock: &dyn Clock,
    request: Request,
) -> HandlerResult {
    handle("user_info", &request, async {
        let mut facts = Facts::default();
        let answer: Result<Answer, ApiError> = async {
            let token = session_token(&request)?;
            let found = store.get_session(&SessionKey::of(&token), clock.now()).await;
            let session = found.map_err(FlowError::from)?.ok_or_else(ApiError::invalid_session)?;
            facts.flow_id = Some(session.flow_id.clone());
            facts.client_id = Some(session.client_id.clone());
            facts.server_id = Some(session.server_id.clone());
            facts.phone_masked = Some(phone::mask(&session.phone));
            let client_title = config.sms_client(&session.client_id).map(|client| client.title.clone());
            let body = json!({
                "userinfo": session.userinfo,
                "client_id": session.client_id,
                "client_title": client_title,
                "server_id": session.server_id,
                "verified_at": session.verified_at,
                "expires_at": session.expires_at,
            });
            Ok(Answer::summary(Success::Read, json_response(StatusCode::OK, &body)))
        }
        .await;
        (facts, answer)
    })
    .await
}

/// `POST /user/logout` → 204: ends the session (deletes it) and clears the cookie. Ending a
/// session that has already ended (or never was) is not an error, so a retry is safe and a
/// corrupt cookie can always be cleared; calling without any session token is (401). With the
/// cookie alone, only from a page that may use it ([`BrowserOrigins`]): another site's form post
/// is `403 cross_site_request` and the session lives on.
pub async fn user_logout(
    origins: &BrowserOrigins,
    store: &dyn StateStore,
    request: Request,
) -> HandlerResult {
    handle("user_logout", &request, async {
        let presented = presented_session(&request);
        let by_cookie_alone = !matches!(presented, Presented::Nothing) && bearer_token(&request).is_none();
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        if by_cookie_alone && !origins.allow_cookie(header("origin"), header(SEC_FETCH_SITE), header("host"))
        {
            return (Facts::default(), Err(ApiError::cross_site_request()));
        }
        let ended = match presented {
            Presented::Token(token) => {
                store.delete_session(&SessionKey::of(&token)).await.map_err(FlowError::from)
            }
            // A value that can be no session names nothing to end; its cookie is still cleared.
            Presented::Malformed => Ok(()),
            Presented::Nothing => return (Facts::default(), Err(ApiError::no_session())),
        };
        let answer = ended.map_err(ApiError::from).map(|()| {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(cleared) = HeaderValue::from_str(&session_cookie("", 0)) {
                headers.insert(header::SET_COOKIE, cleared);
            }
            Answer::summary(Success::LoggedOut, response)
        });
        (Facts::default(), answer)
    })
    .await
}

/// What a handler answers, and the line its request is logged as.
struct Answer {
    line: Line,
    response: Response<Body>,
}

enum Line {
    /// The request's summary line, with this success word as its outcome.
    Summary(Success),
    /// `/sms/log`: the client's data, what the schema keeps of it, as an `sms_client_log` line,
    /// with the number of fields dropped.
    ClientLog { data: String, dropped_fields: usize },
}

impl Answer {
    fn summary(outcome: Success, response: Response<Body>) -> Self {
        Self { line: Line::Summary(outcome), response }
    }
}

/// The skeleton of every handler: opens the request's log line (its clock, cold-start flag and
/// request id) and its timings, runs the handler's work, then writes the one line and makes the
/// response, from what the work answered and the facts it learnt.
async fn handle(
    endpoint: &'static str,
    request: &Request,
    work: impl Future<Output = (Facts, Result<Answer, ApiError>)>,
) -> HandlerResult {
    let log = RequestLog::start(endpoint, request_id(request));
    let ((facts, answer), timings) = measure(work).await;
    Ok(match answer {
        Ok(Answer { line: Line::Summary(outcome), response }) => {
            log.emit(response.status().as_u16(), outcome.as_str(), None, &facts, &timings);
            response
        }
        Ok(Answer { line: Line::ClientLog { data, dropped_fields }, response }) => {
            log.emit_client_log(facts.flow_id.as_deref(), &data, dropped_fields, &timings);
            response
        }
        Err(err) => {
            log.emit(err.status, &err.error, err.limit.map(Limit::name), &facts, &timings);
            api_error_response(&err)
        }
    })
}

/// What a request presents as its session: `Authorization: Bearer …` if sent (an explicit
/// credential wins), else the session cookie.
enum Presented {
    Nothing,
    /// Something that cannot be a session token (see [`crypto::new_token`]): never looked up.
    Malformed,
    Token(SessionToken),
}

/// The token of an `Authorization: Bearer …` header, if sent.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn presented_session(request: &Request) -> Presented {
    let headers = request.headers();
    if let Some(token) = bearer_token(request) {
        return if crypto::is_token(token) {
            Presented::Token(SessionToken::new(token))
        } else {
            Presented::Malformed
        };
    }
    // API Gateway hands cookies over as one `Cookie` header, pairs separated by `;`. A browser
    // may hold a stale duplicate: the first pair that can be a token is the one to try.
    let cookies: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .map(|token| token.trim_matches('"'))
        .collect();
    match cookies.iter().find(|token| crypto::is_token(token)) {
        Some(token) => Presented::Token(SessionToken::new(*token)),
        None if cookies.is_empty() => Presented::Nothing,
        None => Presented::Malformed,
    }
}

/// The session token a session endpoint needs, or its `401`.
fn session_token(request: &Request) -> Result<SessionToken, ApiError> {
    match presented_session(request) {
        Presented::Token(token) => Ok(token),
        Presented::Malformed => Err(ApiError::invalid_session()),
        Presented::Nothing => Err(ApiError::no_session()),
    }
}

/// The session cookie: for browser clients, unreadable to scripts, sent back only to this API.
fn session_cookie(token: &str, max_age_secs: u64) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Lax")
}

/// Reads the body as JSON of type `T`, naming the offending field in the error. Unknown fields
/// are ignored, so clients can send more than this version reads.
fn parse_json<T: DeserializeOwned>(request: &Request, limit: usize) -> Result<T, ApiError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    if !is_json(request.headers().get(header::CONTENT_TYPE)) {
        return Err(ApiError::unsupported_media_type());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("the request body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            ApiError::invalid_request(format!(
                "the request body is not valid JSON of the expected shape: {inner}"
            ))
        } else {
            ApiError::invalid_request(format!("field `{path}`: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::invalid_request(format!("unexpected data after the JSON object: {err}")))?;
    Ok(value)
}

/// `application/json`, with or without parameters such as `charset=utf-8`.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// A text field within its length, without control or invisible format characters (which
/// could forge or hide parts of a log line, or make one string look like another).
fn check_field(name: &str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid_request(format!("field `{name}`: must not be empty")));
    }
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid_request(format!("field `{name}`: longer than {max_chars} characters")));
    }
    if value.chars().any(is_control_or_format) {
        return Err(ApiError::invalid_request(format!("field `{name}`: contains control characters")));
    }
    Ok(())
}

/// Whether `c` must not reach a log line from a caller: a control character (it breaks or forges
/// lines), a line or paragraph separator (U+2028/U+2029: line breaks to JavaScript and some log
/// viewers), or a format character (category Cf: bidi embeddings, overrides and isolates that make
/// a line read otherwise than it is, zero-width characters, the BOM, the Arabic letter mark, …).
/// The categories are ICU4X's Unicode tables, the same ones `url`'s IDNA already links in.
fn is_control_or_format(c: char) -> bool {
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

fn check_optional_field(name: &str, value: Option<&str>, max_chars: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |value| check_field(name, value, max_chars))
}

/// Codes are short runs of ASCII digits; anything else never reaches the upstream or the count.
fn check_code_format(code: &str) -> Result<(), ApiError> {
    if crate::config::is_code(code) {
        Ok(())
    } else {
        Err(ApiError::invalid_request("field `code`: must be 4 to 10 ASCII digits"))
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Bodies carry one-time values and tokens: never cache them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn api_error_response(err: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body =
        serde_json::to_value(err).unwrap_or_else(|_| json!({ "error": err.error, "status": err.status }));
    let mut response = json_response(status, &body);
    if let Some(seconds) = err.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(challenge) = err.www_authenticate {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Request {
        let mut request = Request::new(Body::Text(body.to_owned()));
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = parse_json::<SmsTokenBody>(&request(r#"{"code": 123456}"#), 1024).err().expect("rejected");
        assert_eq!(err.error, "invalid_request");
        assert!(err.message.unwrap().contains("field `code`"));
        let err = parse_json::<SmsTokenBody>(&request(r#"{"code": "1"}"#), 1024).err().expect("rejected");
        assert!(err.message.unwrap().contains("missing field `auth_req_id`"));
        let err = parse_json::<SmsAuthBody>(&request("{"), 1024).err().expect("rejected");
        assert!(err.message.unwrap().contains("not valid JSON"));
        let err =
            parse_json::<SmsAuthBody>(&request("x".repeat(2000).as_str()), 1024).err().expect("rejected");
        assert_eq!(err.status, 413);
        let err =
            parse_json::<SmsLogBody>(&request(r#"{"data": 1} {"data": 2}"#), 1024).err().expect("rejected");
        assert!(err.message.unwrap().contains("after the JSON object"));
    }

    #[test]
    fn only_json_bodies_are_read() {
        for good in ["application/json", "application/json; charset=utf-8", "Application/JSON"] {
            assert!(is_json(Some(&HeaderValue::from_static(good))), "{good}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""] {
            assert!(!is_json(Some(&HeaderValue::from_static(bad))), "{bad}");
        }
        assert!(!is_json(None));
        let mut form = request(r#"{"data": 1}"#);
        form.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(parse_json::<SmsLogBody>(&form, 1024).err().expect("rejected").status, 415);
    }

    #[test]
    fn text_fields_are_bounded_and_free_of_control_characters() {
        assert!(check_field("client_id", "app", 8).is_ok());
        for (value, expected) in [
            ("", "empty"),
            ("123456789", "longer than 8"),
            ("a\nb", "control"),
            ("a\u{0}", "control"),
            ("a\u{2028}b", "control"),
            ("a\u{202E}b", "control"),
            ("a\u{2066}b", "control"),
            ("a\u{200D}b", "control"),
            ("\u{FEFF}ab", "control"),
        ] {
            let err = check_field("client_id", value, 8).unwrap_err();
            let message = err.message.unwrap();
            assert!(
                message.contains("field `client_id`") && message.contains(expected),
                "{value:?}: {message}"
            );
        }
    }

    #[test]
    fn codes_are_four_to_ten_ascii_digits() {
        for good in ["1234", "123456", "1234567890"] {
            assert!(check_code_format(good).is_ok(), "{good}");
        }
        for bad in ["", "123", "12345678901", "12a456", "１２３４５６", "123 456", " 123456"] {
            assert!(check_code_format(bad).is_err(), "{bad:?}");
        }
    }
}
