//! The handlers as Lambda calls them: each test loads an API Gateway v2 event from `events/`,
//! turns it into a `lambda_http::Request` the way the runtime does, and calls the handler, with
//! the sandbox auth server as the upstream.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use lambda_http::{Body, Request, Response, http::header};
use sandbox_auth::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use shared::{App, api, config::Config, store::MemoryStore};

const PHONE: &str = "+447400123456";

fn event(name: &str) -> Request {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} is not an API Gateway v2 event: {e}"))
}

fn with_body(mut request: Request, body: Value) -> Request {
    *request.body_mut() = Body::Text(body.to_string());
    request
}

fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("JSON body")
}

fn header(response: &Response<Body>, name: header::HeaderName) -> &str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn setup() -> (Sandbox, App) {
    let sandbox = Sandbox::start(
        SandboxConfig { quiet: true, interval: Some(1), ..SandboxConfig::default() },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("sandbox starts");
    let config = json!({
        "realm": "ipification",
        "auth_servers": [{ "id": "sandbox", "url": sandbox.url() }],
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "clients": [{ "user_flow": "pvn_sms", "title": "SMS", "scope": "openid ip:phone_verify" }],
        "upstream": { "connect_timeout_ms": 500, "request_timeout_ms": 2000, "token_budget_ms": 4000 }
    });
    let config = Config::parse(&config.to_string(), None).expect("valid config");
    let app = App::new(config, Arc::new(MemoryStore::new())).expect("app");
    (sandbox, app)
}

#[tokio::test]
async fn sms_auth_event_sends_the_sms_and_returns_the_ids() {
    let (sandbox, app) = setup().await;
    let response = api::sms_auth(&app, event("sms-auth.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, header::CONTENT_TYPE), "application/json");
    assert_eq!(header(&response, header::CACHE_CONTROL), "no-store");
    let body = body_json(&response);
    assert_eq!(body["auth_server"], json!({ "id": "sandbox", "url": sandbox.url() }));
    assert!(body["auth_req_id"].as_str().is_some_and(|id| id.len() > 20));
    let nonce = uuid::Uuid::parse_str(body["nonce"].as_str().unwrap()).expect("nonce is a UUID");
    assert_eq!(nonce.get_version_num(), 4);

    let messages = sandbox.messages_to(PHONE);
    assert_eq!(messages.len(), 1, "exactly one SMS");
    assert_eq!(messages[0].text, format!("Your verification PIN is: {}", messages[0].code));
}

#[tokio::test]
async fn sms_token_event_verifies_and_opens_a_session() {
    let (sandbox, app) = setup().await;
    let started = body_json(&api::sms_auth(&app, event("sms-auth.json")).await.unwrap());
    let code = sandbox.messages_to(PHONE)[0].code.clone();
    let request = with_body(
        event("sms-token.json"),
        json!({ "code": code, "auth_req_id": started["auth_req_id"], "client_id": "sandbox-client", "nonce": started["nonce"] }),
    );
    let response = api::sms_token(&app, request).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let body = body_json(&response);
    assert_eq!(body["auth_server"]["id"], "sandbox");
    assert_eq!(body["phone_number"], PHONE);
    assert_eq!(body["phone_number_verified"], true);
    let session = body["session"].as_str().expect("session token");
    assert_eq!(session.len(), 43, "256-bit token, base64url");
    let cookie = header(&response, header::SET_COOKIE);
    assert!(cookie.starts_with(&format!("sms_session={session};")), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Max-Age=3600"] {
        assert!(cookie.contains(attribute), "{attribute} missing in {cookie}");
    }
}

#[tokio::test]
async fn sms_token_event_as_shipped_finds_no_verification() {
    let (_sandbox, app) = setup().await;
    let response = api::sms_token(&app, event("sms-token.json")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(body_json(&response)["error"], "verification_not_found");
}

#[tokio::test]
async fn error_events_get_the_one_error_shape() {
    let (sandbox, app) = setup().await;
    let cases = [
        ("sms-auth-invalid-phone.json", 400, "invalid_phone_number", "starting with '+'"),
        ("sms-auth-unknown-client.json", 401, "invalid_client", "client_id"),
        ("sms-auth-malformed.json", 400, "invalid_request", "not valid JSON"),
    ];
    for (name, status, error, message) in cases {
        let response = api::sms_auth(&app, event(name)).await.unwrap();
        let body = body_json(&response);
        assert_eq!(response.status(), status, "{name}: {body}");
        assert_eq!(body["error"], error, "{name}");
        assert_eq!(body["status"], status, "{name}");
        assert!(body["message"].as_str().unwrap().contains(message), "{name}: {body}");
    }
    let response = api::sms_token(&app, event("sms-token-wrong-type.json")).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(body_json(&response)["message"].as_str().unwrap().contains("field `code`"));
    assert!(sandbox.messages_to(PHONE).is_empty(), "no rejected request sent an SMS");
}

#[tokio::test]
async fn sms_log_events() {
    let response = api::sms_log(event("sms-log.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"OK");
    assert!(header(&response, header::CONTENT_TYPE).starts_with("text/plain"));
    assert_eq!(header(&response, header::CACHE_CONTROL), "no-store");

    let response = api::sms_log(event("sms-log-missing-data.json")).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(body_json(&response)["message"].as_str().unwrap().contains("missing field `data`"));

    let huge = with_body(event("sms-log.json"), json!({ "data": "x".repeat(40 * 1024) }));
    let response = api::sms_log(huge).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(body_json(&response)["error"], "payload_too_large");
}

/// Verifies `PHONE` through the `sms-auth.json` and `sms-token.json` events; the session token.
async fn verified_session(sandbox: &Sandbox, app: &App) -> String {
    let started = body_json(&api::sms_auth(app, event("sms-auth.json")).await.unwrap());
    let code = sandbox.messages_to(PHONE)[0].code.clone();
    let request = with_body(
        event("sms-token.json"),
        json!({ "code": code, "auth_req_id": started["auth_req_id"], "client_id": "sandbox-client", "nonce": started["nonce"] }),
    );
    let verified = body_json(&api::sms_token(app, request).await.unwrap());
    verified["session"].as_str().expect("a session").to_owned()
}

/// The event with its session token (bearer or cookie, as shipped) replaced by `token`.
fn with_session(mut request: Request, token: &str) -> Request {
    let headers = request.headers_mut();
    if headers.contains_key(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    } else {
        let cookie = headers.get(header::COOKIE).expect("the event has a cookie").to_str().unwrap();
        let replaced = cookie.replace(
            "sms_session=q0mFv3Zk8wXh1YtR5nB2sC7dL9eJ4uA6gP0iK3oM8zQ",
            &format!("sms_session={token}"),
        );
        headers.insert(header::COOKIE, replaced.parse().unwrap());
    }
    request
}

fn assert_unauthorized(response: &Response<Body>, message: &str, challenge: &str) {
    let body = body_json(response);
    assert_eq!(response.status(), 401, "{body}");
    assert_eq!((body["error"].as_str(), body["status"].as_u64()), (Some("unauthorized"), Some(401)));
    assert!(body["message"].as_str().unwrap().contains(message), "{body}");
    assert_eq!(header(response, header::WWW_AUTHENTICATE), challenge);
}

/// No token at all: RFC 6750's challenge without an error code.
fn assert_no_session(response: &Response<Body>) {
    assert_unauthorized(response, "no session", "Bearer");
}

/// A token no live session has: the challenge says the token is invalid.
fn assert_invalid_session(response: &Response<Body>) {
    assert_unauthorized(response, "unknown or has expired", r#"Bearer error="invalid_token""#);
}

#[tokio::test]
async fn user_info_events_read_the_verified_session_back() {
    let (sandbox, app) = setup().await;
    let session = verified_session(&sandbox, &app).await;
    for name in ["user-info.json", "user-info-cookie.json"] {
        let response = api::user_info(
            &app.config,
            app.store.as_ref(),
            app.clock.as_ref(),
            with_session(event(name), &session),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(header(&response, header::CACHE_CONTROL), "no-store");
        let body = body_json(&response);
        assert_eq!(body["userinfo"]["phone_number"], PHONE, "{name}: {body}");
        assert_eq!(body["userinfo"]["phone_number_verified"], true);
        assert_eq!(
            (body["client_id"].as_str(), body["client_title"].as_str()),
            (Some("sandbox-client"), Some("SMS"))
        );
        assert_eq!(body["server_id"], "sandbox");
        let (verified_at, expires_at) =
            (body["verified_at"].as_u64().unwrap(), body["expires_at"].as_u64().unwrap());
        assert_eq!(expires_at - verified_at, 3600, "the configured session lifetime");
        assert!(!body.to_string().contains(&session), "the token is not echoed");
    }
}

/// A browser may send a stale duplicate of the cookie first: the pair that can be a session wins.
#[tokio::test]
async fn user_info_finds_the_session_among_duplicate_cookies() {
    let (sandbox, app) = setup().await;
    let session = verified_session(&sandbox, &app).await;
    let mut request = event("user-info-cookie.json");
    let cookies = format!("sms_session=stale; theme=dark; sms_session={session}");
    request.headers_mut().insert(header::COOKIE, cookies.parse().unwrap());
    let response =
        api::user_info(&app.config, app.store.as_ref(), app.clock.as_ref(), request).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn user_info_without_a_live_session_is_401() {
    let (_sandbox, app) = setup().await;
    // As shipped, the events carry a well-formed token no session has.
    for name in ["user-info.json", "user-info-cookie.json"] {
        let response =
            api::user_info(&app.config, app.store.as_ref(), app.clock.as_ref(), event(name)).await.unwrap();
        assert_invalid_session(&response);
    }
    let mut missing = event("user-info.json");
    missing.headers_mut().remove(header::AUTHORIZATION);
    assert_no_session(
        &api::user_info(&app.config, app.store.as_ref(), app.clock.as_ref(), missing).await.unwrap(),
    );
    for malformed in ["Bearer", "Bearer short", "Basic dXNlcjpwYXNz", "Bearer a\u{7f}b"] {
        let mut request = event("user-info.json");
        if let Ok(value) = malformed.parse() {
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let response =
            api::user_info(&app.config, app.store.as_ref(), app.clock.as_ref(), request).await.unwrap();
        assert_eq!(response.status(), 401, "{malformed:?}");
    }
}

#[tokio::test]
async fn user_logout_event_ends_the_session() {
    let (sandbox, app) = setup().await;
    let session = verified_session(&sandbox, &app).await;
    let response = api::user_logout(
        &app.browser_origins,
        app.store.as_ref(),
        with_session(event("user-logout.json"), &session),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    let cookie = header(&response, header::SET_COOKIE);
    assert!(cookie.starts_with("sms_session=;") && cookie.contains("Max-Age=0"), "{cookie}");
    let after = api::user_info(
        &app.config,
        app.store.as_ref(),
        app.clock.as_ref(),
        with_session(event("user-info.json"), &session),
    )
    .await
    .unwrap();
    assert_invalid_session(&after);
    // A value that can be no session ends nothing, and its cookie is cleared all the same.
    let mut corrupt = event("user-logout.json");
    corrupt.headers_mut().remove(header::AUTHORIZATION);
    corrupt.headers_mut().insert(header::COOKIE, "sms_session=not-a-token".parse().unwrap());
    let response = api::user_logout(&app.browser_origins, app.store.as_ref(), corrupt).await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(header(&response, header::SET_COOKIE).starts_with("sms_session=;"));
    // Ending it again is not an error; without any token it is.
    let again = api::user_logout(
        &app.browser_origins,
        app.store.as_ref(),
        with_session(event("user-logout.json"), &session),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 204);
    let mut missing = event("user-logout.json");
    missing.headers_mut().remove(header::AUTHORIZATION);
    assert_no_session(&api::user_logout(&app.browser_origins, app.store.as_ref(), missing).await.unwrap());
}

/// Another site's page cannot end a session with the cookie (a form post carries it); the
/// API's own pages, configured origins and bearer tokens can.
#[tokio::test]
async fn user_logout_by_cookie_only_from_allowed_pages() {
    let (sandbox, mut app) = setup().await;
    app.browser_origins = shared::origins::BrowserOrigins::from_list("https://app.example.com").unwrap();
    let session = verified_session(&sandbox, &app).await;
    let by_cookie = |origin: Option<&str>, site: Option<&str>| {
        let mut request = event("user-logout.json");
        request.headers_mut().remove(header::AUTHORIZATION);
        request.headers_mut().insert(header::COOKIE, format!("sms_session={session}").parse().unwrap());
        if let Some(origin) = origin {
            request.headers_mut().insert(header::ORIGIN, origin.parse().unwrap());
        }
        if let Some(site) = site {
            request.headers_mut().insert("sec-fetch-site", site.parse().unwrap());
        }
        request
    };
    let still_there = || async {
        let read = with_session(event("user-info.json"), &session);
        api::user_info(&app.config, app.store.as_ref(), app.clock.as_ref(), read).await.unwrap().status()
    };
    for (origin, site) in
        [(Some("https://evil.example"), Some("cross-site")), (Some("null"), None), (None, Some("cross-site"))]
    {
        let response = api::user_logout(&app.browser_origins, app.store.as_ref(), by_cookie(origin, site))
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{origin:?} {site:?}");
        assert_eq!(body_json(&response)["error"], "cross_site_request");
        assert!(response.headers().get(header::SET_COOKIE).is_none(), "the cookie is left alone");
        assert_eq!(still_there().await, 200, "the session lives on");
    }
    // A bearer token is never sent by a browser on its own: the Origin does not matter.
    let mut bearer = with_session(event("user-logout.json"), &session);
    bearer.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    assert_eq!(
        api::user_logout(&app.browser_origins, app.store.as_ref(), bearer).await.unwrap().status(),
        204
    );
    // The configured page and the API's own origin may.
    for origin in ["https://app.example.com", "https://abcdef1234.execute-api.eu-west-1.amazonaws.com"] {
        let response = api::user_logout(
            &app.browser_origins,
            app.store.as_ref(),
            by_cookie(Some(origin), Some("same-site")),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 204, "{origin}");
    }
}

#[tokio::test]
async fn sms_clients_event_lists_ids_titles_and_challenges_only() {
    let (_sandbox, app) = setup().await;
    let response = api::sms_clients(&app.config, event("sms-clients.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, header::CACHE_CONTROL), "public, max-age=300");
    let body = body_json(&response);
    assert_eq!(
        body,
        json!({
            "auth_servers": [{ "id": "sandbox", "default": true }],
            "clients": [{ "client_id": "sandbox-client", "title": "SMS", "allowed_countries": null, "challenge": null }]
        })
    );
}
