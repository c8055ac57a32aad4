//! The sandbox over real HTTP: each test starts its own `Sandbox` on 127.0.0.1:0 and talks
//! to it with reqwest, as the backend will.

use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use sandbox_auth::{Endpoint, Fault, LoginHintFormat, Sandbox, SandboxClient, SandboxConfig};
use serde_json::{Value, json};

const PHONE: &str = "447700900123";
const CIBA: &str = "urn:openid:params:grant-type:ciba";

fn quiet() -> SandboxConfig {
    SandboxConfig { quiet: true, ..SandboxConfig::default() }
}

struct Harness {
    sandbox: Sandbox,
    http: Client,
}

async fn start(config: SandboxConfig) -> Harness {
    let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Harness { sandbox, http: Client::new() }
}

type Form = Vec<(&'static str, String)>;

/// A valid auth form; tests override or drop fields from it.
fn auth_form() -> Form {
    vec![
        ("client_id", "sandbox-client".into()),
        ("client_secret", "sandbox-secret".into()),
        ("scope", "openid ip:phone_verify".into()),
        ("login_hint", PHONE.into()),
        ("channel", "sms".into()),
        ("message", "Your verification PIN is: {{code}}".into()),
    ]
}

fn with(mut form: Form, key: &'static str, value: Option<&str>) -> Form {
    form.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        form.push((key, v.to_owned()));
    }
    form
}

impl Harness {
    fn oidc(&self) -> String {
        format!("{}/realms/ipification/protocol/openid-connect", self.sandbox.url())
    }

    async fn auth_with(&self, form: &[(&str, String)]) -> Response {
        self.http.post(format!("{}/ext/ciba/auth", self.oidc())).form(form).send().await.unwrap()
    }

    /// Starts a request and returns its auth_req_id and the code "sent" to `phone`.
    async fn begin(&self, phone: &str) -> (String, String) {
        let response = self.auth_with(&with(auth_form(), "login_hint", Some(phone))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let id = body["auth_req_id"].as_str().unwrap().to_owned();
        let code = self.sandbox.messages_to(phone)[0].code.clone();
        (id, code)
    }

    async fn callback(&self, auth_req_id: &str, code: &str) -> Response {
        self.http
            .post(format!("{}/ext/bc/sms/callback", self.oidc()))
            .bearer_auth(auth_req_id)
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap()
    }

    async fn token_as(&self, auth_req_id: &str, client_id: &str, secret: &str) -> Response {
        let form = [
            ("grant_type", CIBA),
            ("auth_req_id", auth_req_id),
            ("client_id", client_id),
            ("client_secret", secret),
        ];
        self.http.post(format!("{}/token", self.oidc())).form(&form).send().await.unwrap()
    }

    async fn token(&self, auth_req_id: &str) -> Response {
        self.token_as(auth_req_id, "sandbox-client", "sandbox-secret").await
    }

    async fn userinfo(&self, access_token: &str) -> Response {
        self.http.get(format!("{}/userinfo", self.oidc())).bearer_auth(access_token).send().await.unwrap()
    }
}

/// Asserts an OAuth error response and returns its body.
async fn expect_error(response: Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(response.status(), status, "expected {error}");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn happy_path() {
    let h = start(quiet()).await;
    let response = h.auth_with(&auth_form()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let auth_req_id = body["auth_req_id"].as_str().unwrap();
    assert!(auth_req_id.len() >= 48, "{auth_req_id}");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["interval"], 5);

    let messages = h.sandbox.messages_to("+447700900123");
    assert_eq!(messages.len(), 1);
    let code = &messages[0].code;
    assert_eq!(code.len(), 6);
    assert_eq!(messages[0].text, format!("Your verification PIN is: {code}"));
    assert_eq!(messages[0].to, "+447700900123");

    // Over HTTP too; a raw `+` in the query decodes to a space and must still match.
    let url = format!("{}/sandbox/messages?to=+447700900123", h.sandbox.addr());
    let listed: Value = h.http.get(format!("http://{url}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["code"], code.as_str());
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let response = h.callback(auth_req_id, code).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "status": "ok" }));

    let response = h.token(auth_req_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 300);
    assert_eq!(token["scope"], "openid ip:phone_verify");
    assert!(token["id_token"].is_string());
    let access_token = token["access_token"].as_str().unwrap();

    let response = h.userinfo(access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["login_hint"], PHONE);
    assert_eq!(claims["phone_number"], "+447700900123");
    assert_eq!(claims["phone_number_verified"], true);
    let sub = claims["sub"].as_str().unwrap().to_owned();

    // POST with the token as a form field, and the same subject for the same phone.
    let response = h
        .http
        .post(format!("{}/userinfo", h.oidc()))
        .form(&[("access_token", access_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["sub"], sub.as_str());
}

#[tokio::test]
async fn invalid_client_on_auth_and_token() {
    let h = start(quiet()).await;
    let wrong_secret = with(auth_form(), "client_secret", Some("nope"));
    expect_error(h.auth_with(&wrong_secret).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let unknown = with(auth_form(), "client_id", Some("someone"));
    expect_error(h.auth_with(&unknown).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let none = with(with(auth_form(), "client_id", None), "client_secret", None);
    expect_error(h.auth_with(&none).await, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // HTTP Basic is accepted instead of form fields.
    let response = h
        .http
        .post(format!("{}/ext/ciba/auth", h.oidc()))
        .basic_auth("sandbox-client", Some("sandbox-secret"))
        .form(&none)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = h
        .http
        .post(format!("{}/ext/ciba/auth", h.oidc()))
        .basic_auth("sandbox-client", Some("wrong"))
        .form(&none)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let (id, _) = h.begin(PHONE).await;
    expect_error(
        h.token_as(&id, "sandbox-client", "wrong").await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn auth_request_validation() {
    let h = start(quiet()).await;
    let cases: Vec<(Form, StatusCode, &str)> = vec![
        (with(auth_form(), "scope", None), StatusCode::BAD_REQUEST, "invalid_request"),
        (with(auth_form(), "scope", Some("ip:phone_verify")), StatusCode::BAD_REQUEST, "invalid_scope"),
        (with(auth_form(), "scope", Some("openid admin")), StatusCode::BAD_REQUEST, "invalid_scope"),
        (with(auth_form(), "login_hint", None), StatusCode::BAD_REQUEST, "invalid_request"),
        (with(auth_form(), "login_hint", Some("alice")), StatusCode::BAD_REQUEST, "unknown_user_id"),
        (with(auth_form(), "channel", None), StatusCode::BAD_REQUEST, "invalid_request"),
        (with(auth_form(), "channel", Some("voice")), StatusCode::BAD_REQUEST, "invalid_request"),
        (with(auth_form(), "message", None), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            with(auth_form(), "message", Some("Your PIN is {code}")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            with(auth_form(), "binding_message", Some("Your PIN is {{code}}")),
            StatusCode::BAD_REQUEST,
            "invalid_binding_message",
        ),
    ];
    for (form, status, error) in cases {
        expect_error(h.auth_with(&form).await, status, error).await;
    }
    assert!(h.sandbox.messages().is_empty(), "no SMS for a rejected request");

    let ok = with(auth_form(), "binding_message", Some("Login-to-Example"));
    assert_eq!(h.auth_with(&ok).await.status(), StatusCode::OK);

    // Every `{{code}}` is replaced.
    let twice = with(auth_form(), "message", Some("{{code}} is your code ({{code}})"));
    assert_eq!(h.auth_with(&twice).await.status(), StatusCode::OK);
    let m = &h.sandbox.messages_to(PHONE)[0];
    assert_eq!(m.text, format!("{0} is your code ({0})", m.code));

    let repeated = [auth_form(), vec![("scope", "openid".to_owned())]].concat();
    expect_error(h.auth_with(&repeated).await, StatusCode::BAD_REQUEST, "invalid_request").await;

    // A JSON body is not a form.
    let response = h
        .http
        .post(format!("{}/ext/ciba/auth", h.oidc()))
        .json(&json!({ "client_id": "sandbox-client" }))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    let response = h
        .http
        .post(format!("{}/realms/other/protocol/openid-connect/ext/ciba/auth", h.sandbox.url()))
        .form(&auth_form())
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "realm_not_found").await;
}

#[tokio::test]
async fn login_hint_format_setting() {
    let plus = "+447700900123";
    for (format, digits_ok, plus_ok) in [
        (LoginHintFormat::Any, true, true),
        (LoginHintFormat::Digits, true, false),
        (LoginHintFormat::E164, false, true),
    ] {
        let h = start(SandboxConfig { login_hint_format: format, ..quiet() }).await;
        for (hint, ok) in
            [(PHONE, digits_ok), (plus, plus_ok), ("0447700900123", false), ("+44 7700 900123", false)]
        {
            let response = h.auth_with(&with(auth_form(), "login_hint", Some(hint))).await;
            if ok {
                assert_eq!(response.status(), StatusCode::OK, "{format:?} {hint}");
            } else {
                expect_error(response, StatusCode::BAD_REQUEST, "unknown_user_id").await;
            }
        }
    }
}

#[tokio::test]
async fn userinfo_echoes_login_hint_as_sent() {
    let h = start(quiet()).await;
    let (id, code) = h.begin("+447700900123").await;
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);
    let token: Value = h.token(&id).await.json().await.unwrap();
    let claims: Value = h.userinfo(token["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(claims["login_hint"], "+447700900123");
    assert_eq!(claims["phone_number"], "+447700900123");
}

#[tokio::test]
async fn wrong_code_then_right_code() {
    let h = start(quiet()).await;
    let (id, code) = h.begin(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let body = expect_error(h.callback(&id, wrong).await, StatusCode::BAD_REQUEST, "invalid_code").await;
    assert_eq!(body["error_description"], "wrong code");
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);
    assert_eq!(h.token(&id).await.status(), StatusCode::OK);
    // Once approved, the request no longer takes codes.
    expect_error(h.callback(&id, &code).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn max_wrong_codes_denies() {
    let h = start(quiet()).await;
    let (id, code) = h.begin(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    expect_error(h.callback(&id, wrong).await, StatusCode::BAD_REQUEST, "invalid_code").await;
    expect_error(h.callback(&id, wrong).await, StatusCode::BAD_REQUEST, "invalid_code").await;
    expect_error(h.callback(&id, wrong).await, StatusCode::FORBIDDEN, "access_denied").await;
    expect_error(h.callback(&id, &code).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(h.token(&id).await, StatusCode::BAD_REQUEST, "access_denied").await;
}

#[tokio::test]
async fn callback_rejects_bad_bearer_and_body() {
    let h = start(quiet()).await;
    let url = format!("{}/ext/bc/sms/callback", h.oidc());
    let response = h.http.post(&url).json(&json!({ "code": "123456" })).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(h.callback("not-an-id", "123456").await, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let (id, code) = h.begin(PHONE).await;
    let response = h
        .http
        .post(&url)
        .bearer_auth(&id)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = h.http.post(&url).bearer_auth(&id).json(&json!({ "code": 123456 })).send().await.unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Malformed bodies don't count as wrong codes.
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn pending_then_slow_down() {
    let h = start(quiet()).await;
    let (id, code) = h.begin(PHONE).await;
    expect_error(h.token(&id).await, StatusCode::BAD_REQUEST, "authorization_pending").await;
    expect_error(h.token(&id).await, StatusCode::BAD_REQUEST, "slow_down").await;
    // Approval is honoured at once, whatever the poll rate.
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);
    assert_eq!(h.token(&id).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn approval_delay_keeps_pending() {
    let h = start(SandboxConfig { approval_delay_ms: 300, interval: Some(0), ..quiet() }).await;
    let (id, code) = h.begin(PHONE).await;
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);
    expect_error(h.token(&id).await, StatusCode::BAD_REQUEST, "authorization_pending").await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(h.token(&id).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_redeems_once_and_only_for_its_client() {
    let other = SandboxClient {
        client_id: "other".into(),
        client_secret: "other-secret".into(),
        ..SandboxClient::default()
    };
    let h = start(SandboxConfig { clients: vec![SandboxClient::default(), other], ..quiet() }).await;
    let (id, code) = h.begin(PHONE).await;
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);
    expect_error(h.token_as(&id, "other", "other-secret").await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    let token: Value = h.token(&id).await.json().await.unwrap();
    expect_error(h.token(&id).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    expect_error(h.token("never-issued").await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(h.userinfo(token["access_token"].as_str().unwrap()).await.status(), StatusCode::OK);
    expect_error(h.userinfo("bogus").await, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let response = h
        .http
        .post(format!("{}/token", h.oidc()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "sandbox-client"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

#[tokio::test]
async fn expiry_of_request_and_code() {
    let h = start(SandboxConfig { expires_in: 1, interval: None, ..quiet() }).await;
    let (expiring, _) = h.begin(PHONE).await;
    let h2 = start(SandboxConfig { code_ttl_secs: 1, ..quiet() }).await;
    let (stale_code_id, stale_code) = h2.begin(PHONE).await;

    // interval absent from the auth response when not configured.
    let body: Value = h.auth_with(&auth_form()).await.json().await.unwrap();
    assert!(body.get("interval").is_none(), "{body}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect_error(h.token(&expiring).await, StatusCode::BAD_REQUEST, "expired_token").await;
    expect_error(h.callback(&expiring, "123456").await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_error(h2.callback(&stale_code_id, &stale_code).await, StatusCode::BAD_REQUEST, "expired_token")
        .await;
}

#[tokio::test]
async fn faults_with_status_and_with_delay() {
    let h = start(quiet()).await;
    let (id, code) = h.begin(PHONE).await;
    assert_eq!(h.callback(&id, &code).await.status(), StatusCode::OK);

    h.sandbox.inject(Fault {
        endpoint: Endpoint::Token,
        status: Some(503),
        times: Some(1),
        ..Fault::default()
    });
    expect_error(h.token(&id).await, StatusCode::SERVICE_UNAVAILABLE, "server_error").await;
    // The fault was used up and did not touch the request: it still redeems.
    assert_eq!(h.token(&id).await.status(), StatusCode::OK);

    // Over HTTP: a custom body, then a delay-only fault that lets the request through.
    let faults = format!("http://{}/sandbox/faults", h.sandbox.addr());
    let fault = json!({ "endpoint": "auth", "status": 502, "body": "<html>bad gateway</html>", "content_type": "text/html", "times": 1 });
    assert_eq!(h.http.post(&faults).json(&fault).send().await.unwrap().status(), StatusCode::OK);
    let delay = json!({ "endpoint": "auth", "delay_ms": 300 });
    assert_eq!(h.http.post(&faults).json(&delay).send().await.unwrap().status(), StatusCode::OK);

    let response = h.auth_with(&auth_form()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().await.unwrap(), "<html>bad gateway</html>");

    let started = Instant::now();
    assert_eq!(h.auth_with(&auth_form()).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    assert_eq!(h.http.delete(&faults).send().await.unwrap().status(), StatusCode::OK);
    let started = Instant::now();
    assert_eq!(h.auth_with(&auth_form()).await.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(300));

    let bad = json!({ "endpoint": "auth", "status": 42 });
    expect_error(
        h.http.post(&faults).json(&bad).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let bad = json!({ "endpoint": "discovery" });
    expect_error(
        h.http.post(&faults).json(&bad).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn stats_count_requests_and_connections() {
    let h = start(quiet()).await;
    let (id, code) = h.begin(PHONE).await;
    h.callback(&id, &code).await;
    h.token(&id).await;
    let token: Value = h.token(&id).await.json().await.unwrap();
    assert_eq!(token["error"], "invalid_grant");
    h.userinfo("x").await;
    // Faulted requests count too.
    h.sandbox.inject(Fault { endpoint: Endpoint::Userinfo, status: Some(500), ..Fault::default() });
    h.userinfo("x").await;
    h.sandbox.clear_faults();

    let stats = h.sandbox.stats();
    assert_eq!(
        (stats.requests.auth, stats.requests.callback, stats.requests.token, stats.requests.userinfo),
        (1, 1, 2, 2)
    );
    assert!(stats.connections >= 1);

    let fresh = Client::new();
    fresh.get(format!("{}/userinfo", h.oidc())).send().await.unwrap();
    let over_http: Value = fresh
        .get(format!("http://{}/sandbox/stats", h.sandbox.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["requests"]["userinfo"], 3);
    assert!(over_http["connections"].as_u64().unwrap() > stats.connections);
}

#[tokio::test]
async fn verified_claim_as_string() {
    let h = start(SandboxConfig { verified_claim_as_string: true, ..quiet() }).await;
    let (id, code) = h.begin(PHONE).await;
    h.callback(&id, &code).await;
    let token: Value = h.token(&id).await.json().await.unwrap();
    let claims: Value = h.userinfo(token["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(claims["phone_number_verified"], "true");
}

#[tokio::test]
async fn discovery_and_unknown_paths() {
    let h = start(quiet()).await;
    let doc: Value = h
        .http
        .get(format!("{}/realms/ipification/.well-known/openid-configuration", h.sandbox.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["token_endpoint"], format!("{}/token", h.oidc()));
    assert_eq!(doc["backchannel_authentication_endpoint"], format!("{}/ext/ciba/auth", h.oidc()));
    let response = h.http.get(format!("{}/nothing", h.sandbox.url())).send().await.unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = h.http.get(format!("{}/token", h.oidc())).send().await.unwrap();
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
}

#[tokio::test]
async fn refuses_non_loopback_and_stops_on_drop() {
    let err = Sandbox::start(quiet(), "0.0.0.0:0".parse().unwrap()).await.err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    let h = start(quiet()).await;
    let addr = h.sandbox.addr();
    assert_eq!(h.sandbox.url(), format!("http://{addr}/auth"));
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "server still accepting after drop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
