//! Whole verifications through `local-api` and the sandbox over real HTTP: the paths a mobile
//! app takes, the mistakes and attacks it may make, and upstream failures with their recovery.
//! Every case runs against each state store.

#[macro_use]
mod common;

use std::time::Duration;

use std::sync::Arc;

use common::{CLIENT, Instance, PHONE, StoreKind, System, sandbox_config, wrong};
use sandbox_auth::{Endpoint, Fault, SandboxConfig};
use serde_json::{Value, json};

for_each_store!(
    verifies_a_number_end_to_end,
    wrong_code_then_right_code,
    wrong_codes_up_to_the_limit_end_the_verification,
    upstream_ending_the_request_ends_the_verification,
    wrong_nonce_is_not_found_and_changes_nothing,
    another_clients_auth_req_id_is_not_found,
    replay_after_success_returns_the_same_session,
    expired_verification_is_not_found,
    auth_upstream_failures_map_to_502_and_504,
    callback_failure_keeps_the_verification,
    callback_timeout_after_the_upstream_accepted_still_completes,
    token_failure_resumes_without_resending_the_code,
    userinfo_failure_resumes_without_a_second_token_exchange,
    token_polling_waits_for_approval_and_honours_slow_down,
    token_budget_exhausted_is_504_and_resumable,
    upstream_4xx_on_auth_keeps_its_status,
    request_validation,
    malformed_bodies_are_400_naming_the_problem,
    sms_log_accepts_any_json_data,
    unknown_routes_and_methods,
    session_is_read_back_then_ended_by_logout,
    sessions_of_two_verifications_are_apart,
);

/// The access patterns promise three DynamoDB calls on `/sms/auth` (the limits' reservation, the
/// verification with its phone's pointer, the fraud guard's count of the SMS) and six on
/// `/sms/token` (read, claim, the code accepted and the token issued saved before the next
/// upstream call, completion, the fraud guard's count of the verification), the abuse-limit
/// counters included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_calls_per_verified_flow() {
    let system = System::start(StoreKind::Dynamo).await;
    let (_, calls) = system.dynamo.as_ref().expect("dynamo store");
    let before = calls.count();
    let started = system.start_verification(PHONE).await;
    let on_auth = calls.count() - before;
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&started, &code).await.status, 200);
    let on_token = calls.count() - before - on_auth;
    println!("DynamoDB calls per verified flow: /sms/auth {on_auth}, /sms/token {on_token}");
    assert_eq!((on_auth, on_token), (3, 6));
}

async fn verifies_a_number_end_to_end(store: StoreKind) {
    let system = System::start_with(
        store,
        SandboxConfig { verified_claim_as_string: true, ..sandbox_config() },
        |_| {},
    )
    .await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["auth_server"], json!({ "id": "sandbox", "url": system.sandbox.url() }));
    assert_eq!(body["phone_number"], PHONE);
    assert_eq!(body["phone_number_verified"], true, "the string \"true\" upstream is a boolean here");
    assert!(body["sub"].is_string(), "userinfo claims pass through");
    let session = body["session"].as_str().expect("session token");
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with(&format!("sms_session={session};")));
    assert!(!reply.text.contains(&started.auth_req_id), "the auth_req_id is not echoed");
}

async fn wrong_code_then_right_code(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let reply = system.token(&started, &wrong(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error(), "invalid_code");
    assert_eq!(reply.json()["data"]["attempts_left"], 4);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 1, "no second SMS was needed");
}

async fn wrong_codes_up_to_the_limit_end_the_verification(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    for attempts_left in (1..=4).rev() {
        let reply = system.token(&started, &wrong(&code)).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.json()["data"]["attempts_left"], attempts_left);
    }
    let reply = system.token(&started, &wrong(&code)).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (429, "too_many_attempts"), "{}", reply.text);
    let callbacks = system.sandbox.stats().requests.callback;
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 429, "the right code no longer helps: {}", reply.text);
    assert_eq!(
        system.sandbox.stats().requests.callback,
        callbacks,
        "a dead verification never reaches upstream"
    );
}

async fn upstream_ending_the_request_ends_the_verification(store: StoreKind) {
    // The upstream cancels its request after 2 wrong codes, before our limit of 5.
    let system =
        System::start_with(store, SandboxConfig { max_wrong_codes: 2, ..sandbox_config() }, |_| {}).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&started, &wrong(&code)).await.json()["data"]["attempts_left"], 4);
    let reply = system.token(&started, &wrong(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["data"]["attempts_left"], 0, "the upstream ended it: start over");
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
}

async fn wrong_nonce_is_not_found_and_changes_nothing(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let forged = common::Started { nonce: shared::crypto::new_nonce(), ..started.clone() };
    let reply = system.token(&forged, &code).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "verification_not_found"));
    assert_eq!(system.sandbox.stats().requests.callback, 0, "nothing reached the upstream");
    assert_eq!(system.token(&started, &code).await.status, 200, "the real owner still completes");
}

async fn another_clients_auth_req_id_is_not_found(store: StoreKind) {
    let system = System::start_with(
        store,
        SandboxConfig {
            clients: vec![
                sandbox_auth::SandboxClient::default(),
                sandbox_auth::SandboxClient {
                    client_id: "other-client".into(),
                    client_secret: "other-secret".into(),
                    ..sandbox_auth::SandboxClient::default()
                },
            ],
            ..sandbox_config()
        },
        |config| {
            config["clients"].as_array_mut().unwrap().push(json!({
                "user_flow": "pvn_sms", "client_id": "other-client", "client_secret": "other-secret"
            }));
        },
    )
    .await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let stolen = json!({ "code": code, "auth_req_id": started.auth_req_id, "client_id": "other-client", "nonce": started.nonce });
    let reply = system.post("/sms/token", stolen).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "verification_not_found"));
    // The same answer as for an auth_req_id that never existed: no oracle.
    let unknown = system
        .token(&common::Started { auth_req_id: "nope".into(), nonce: started.nonce.clone() }, &code)
        .await;
    assert_eq!(unknown.json()["message"], reply.json()["message"]);
    assert_eq!(system.token(&started, &code).await.status, 200);
}

/// A client whose answer was lost sends the same request again: it gets the same session, while
/// anyone who lacks the code or the nonce finds nothing (and a wrong code counts).
async fn replay_after_success_returns_the_same_session(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let first = system.token(&started, &code).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = system.token(&started, &code).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["session"], first.json()["session"]);
    assert_eq!(again.json()["phone_number"], PHONE);
    let other_code = system.token(&started, &wrong(&code)).await;
    assert_eq!((other_code.status.as_u16(), other_code.error().as_str()), (404, "verification_not_found"));
    let other_nonce = common::Started { nonce: shared::crypto::new_nonce(), ..started.clone() };
    let reply = system.token(&other_nonce, &code).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "verification_not_found"));
    assert_eq!(system.sandbox.stats().requests.token, 1, "the auth_req_id was redeemed once");
    // Ended by the user: the retry no longer brings it back.
    let session = first.json()["session"].as_str().unwrap().to_owned();
    let logout = system.http.post(format!("{}/user/logout", system.base)).bearer_auth(&session).send().await;
    assert_eq!(logout.unwrap().status(), 204);
    let reply = system.token(&started, &code).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "verification_not_found"));
}

async fn expired_verification_is_not_found(store: StoreKind) {
    let system = System::start_with(store, SandboxConfig { expires_in: 1, ..sandbox_config() }, |_| {}).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    system.clock.advance(Duration::from_secs(2));
    let reply = system.token(&started, &code).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "verification_not_found"));
    assert_eq!(system.sandbox.stats().requests.callback, 0);
}

fn fault(endpoint: Endpoint, status: u16, delay_ms: Option<u64>) -> Fault {
    Fault { endpoint, status: Some(status), delay_ms, times: Some(1), ..Fault::default() }
}

/// A fault that holds the answer past our 1 s request timeout, then fails without effect.
fn hang(endpoint: Endpoint) -> Fault {
    fault(endpoint, 504, Some(1500))
}

async fn auth_upstream_failures_map_to_502_and_504(store: StoreKind) {
    let system = System::start(store).await;
    let start = json!({ "client_id": CLIENT, "login_hint": PHONE });
    system.sandbox.inject(fault(Endpoint::Auth, 503, None));
    let reply = system.post("/sms/auth", start.clone()).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (502, "upstream_error"), "{}", reply.text);
    system.sandbox.inject(hang(Endpoint::Auth));
    let reply = system.post("/sms/auth", start.clone()).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (504, "upstream_timeout"), "{}", reply.text);
    system.sandbox.inject(Fault {
        endpoint: Endpoint::Auth,
        status: Some(200),
        body: Some("<html>not json</html>".into()),
        times: Some(1),
        ..Fault::default()
    });
    let reply = system.post("/sms/auth", start.clone()).await;
    assert_eq!(reply.status, 502, "a garbage 200 is an upstream failure: {}", reply.text);
    system.sandbox.inject(Fault {
        endpoint: Endpoint::Auth,
        status: Some(200),
        body: Some(r#"{"expires_in": 120, "interval": 5}"#.into()),
        content_type: Some("application/json".into()),
        times: Some(1),
        ..Fault::default()
    });
    let reply = system.post("/sms/auth", start.clone()).await;
    assert_eq!(reply.status, 502, "a 200 without auth_req_id is an upstream failure: {}", reply.text);
    let started = system.start_verification(PHONE).await;
    assert_eq!(system.token(&started, &system.code_for(PHONE)).await.status, 200);
}

async fn callback_failure_keeps_the_verification(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    system.sandbox.inject(fault(Endpoint::Callback, 500, None));
    assert_eq!(system.token(&started, &code).await.status, 502);
    system.sandbox.inject(hang(Endpoint::Callback));
    assert_eq!(system.token(&started, &code).await.status, 504);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn callback_timeout_after_the_upstream_accepted_still_completes(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    // The upstream accepts the code, but only after our client gave up waiting.
    system.sandbox.inject(Fault {
        endpoint: Endpoint::Callback,
        delay_ms: Some(1500),
        times: Some(1),
        ..Fault::default()
    });
    assert_eq!(system.token(&started, &code).await.status, 504);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn token_failure_resumes_without_resending_the_code(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    system.sandbox.inject(fault(Endpoint::Token, 502, None));
    assert_eq!(system.token(&started, &code).await.status, 502);
    system.sandbox.inject(hang(Endpoint::Token));
    assert_eq!(system.token(&started, &code).await.status, 504);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(system.sandbox.stats().requests.callback, 1, "the accepted code was submitted once");
}

async fn userinfo_failure_resumes_without_a_second_token_exchange(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    system.sandbox.inject(fault(Endpoint::Userinfo, 500, None));
    assert_eq!(system.token(&started, &code).await.status, 502);
    system.sandbox.inject(hang(Endpoint::Userinfo));
    assert_eq!(system.token(&started, &code).await.status, 504);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let stats = system.sandbox.stats().requests;
    assert_eq!((stats.callback, stats.token), (1, 1), "the auth_req_id was redeemed once");
}

async fn token_polling_waits_for_approval_and_honours_slow_down(store: StoreKind) {
    let system =
        System::start_with(store, SandboxConfig { approval_delay_ms: 1200, ..sandbox_config() }, |_| {})
            .await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(system.sandbox.stats().requests.token >= 2, "polled while authorization_pending");

    // slow_down adds 5 s to the 1 s interval: give the token step the time to wait for it.
    let system = System::start_with(store, sandbox_config(), |config| {
        config["upstream"]["token_budget_ms"] = json!(10_000);
    })
    .await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    system.sandbox.inject(Fault {
        endpoint: Endpoint::Token,
        status: Some(400),
        body: Some(r#"{"error":"slow_down","error_description":"poll less often"}"#.into()),
        content_type: Some("application/json".into()),
        times: Some(1),
        ..Fault::default()
    });
    let begun = std::time::Instant::now();
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(begun.elapsed() >= Duration::from_secs(6), "waited interval + 5 s after slow_down");
}

async fn token_budget_exhausted_is_504_and_resumable(store: StoreKind) {
    // Approval takes longer than our 4 s budget for the token step.
    let system =
        System::start_with(store, SandboxConfig { approval_delay_ms: 5000, ..sandbox_config() }, |_| {})
            .await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let reply = system.token(&started, &code).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (504, "upstream_timeout"), "{}", reply.text);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(system.sandbox.stats().requests.callback, 1);
}

async fn upstream_4xx_on_auth_keeps_its_status(store: StoreKind) {
    // The upstream insists on E.164 login hints; the server config sends digits only.
    let system = System::start_with(
        store,
        SandboxConfig { login_hint_format: sandbox_auth::LoginHintFormat::E164, ..sandbox_config() },
        |_| {},
    )
    .await;
    let reply = system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (400, "unknown_user_id"), "{}", reply.text);

    let system = System::start_with(
        store,
        SandboxConfig { login_hint_format: sandbox_auth::LoginHintFormat::E164, ..sandbox_config() },
        |config| config["auth_servers"][0]["login_hint_format"] = json!("e164"),
    )
    .await;
    system.start_verification(PHONE).await;

    let system = System::start_with(store, sandbox_config(), |config| {
        config["client_secret"] = json!("wrong-secret");
    })
    .await;
    let reply = system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (401, "invalid_client"), "{}", reply.text);
    assert!(!reply.text.contains("wrong-secret"));
}

async fn request_validation(store: StoreKind) {
    let system = System::start(store).await;
    let cases = [
        (json!({ "client_id": "nobody", "login_hint": PHONE }), 401, "invalid_client"),
        (json!({ "client_id": CLIENT, "login_hint": PHONE, "server_id": "nowhere" }), 400, "unknown_server"),
        (json!({ "client_id": CLIENT, "login_hint": "447400123456" }), 400, "invalid_phone_number"),
        (json!({ "client_id": CLIENT, "login_hint": "+44 7400 12345" }), 400, "invalid_phone_number"),
        (json!({ "client_id": CLIENT, "login_hint": "+４４7400123456" }), 400, "invalid_phone_number"),
        (json!({ "client_id": CLIENT, "login_hint": "+0447400123456" }), 400, "invalid_phone_number"),
    ];
    for (body, status, error) in cases {
        let reply = system.post("/sms/auth", body.clone()).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error().as_str()),
            (status, error),
            "{body}: {}",
            reply.text
        );
    }
    // The default server can be named explicitly; unknown fields are ignored.
    let reply = system
        .post(
            "/sms/auth",
            json!({ "client_id": CLIENT, "login_hint": PHONE, "server_id": "sandbox", "extra": 1 }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 1, "only the valid request sent an SMS");
}

async fn malformed_bodies_are_400_naming_the_problem(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let base = json!({ "code": "123456", "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce });
    let mut code_number = base.clone();
    code_number["code"] = json!(123456);
    let mut code_short = base.clone();
    code_short["code"] = json!("12");
    let mut code_letters = base.clone();
    code_letters["code"] = json!("12ab56");
    let mut nonce_null = base.clone();
    nonce_null["nonce"] = json!(null);
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("auth_req_id");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "JSON object"),
        ("not json".into(), "not valid JSON"),
        ("[1,2]".into(), "invalid type"),
        ("\"text\"".into(), "invalid type"),
        ("{\"code\": ".into(), "not valid JSON"),
        (format!("{base} trailing"), "after the JSON object"),
        (r#"{"code":"1","code":"2"}"#.into(), "duplicate field `code`"),
        (code_number.to_string(), "field `code`"),
        (code_short.to_string(), "field `code`"),
        (code_letters.to_string(), "field `code`"),
        (nonce_null.to_string(), "field `nonce`"),
        (missing.to_string(), "missing field `auth_req_id`"),
        (format!("{}1{}", "[".repeat(200), "]".repeat(200)), "invalid type"),
    ];
    for (body, expected) in cases {
        let reply = system.post_raw("/sms/token", "application/json", body.clone()).await;
        assert_eq!(reply.status, 400, "{body:.60}: {}", reply.text);
        let json = reply.json();
        assert_eq!(json["error"], "invalid_request");
        assert_eq!(json["status"], 400);
        assert!(json["message"].as_str().unwrap().contains(expected), "{body:.60}: {json}");
    }
    let huge = json!({ "client_id": CLIENT, "login_hint": "x".repeat(20_000) });
    let reply = system.post("/sms/auth", huge).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (413, "payload_too_large"));
    let reply = system.post_raw("/sms/auth", "application/json", vec![0xff_u8, 0xfe, 0x00]).await;
    assert_eq!(reply.status, 400, "binary garbage: {}", reply.text);
    // None of it touched the verification: it still completes.
    assert_eq!(system.token(&started, &system.code_for(PHONE)).await.status, 200);
}

async fn sms_log_accepts_any_json_data(store: StoreKind) {
    let system = System::start(store).await;
    for data in [json!({"step": "started"}), json!([1, 2]), json!("text"), json!(null), json!(3.5)] {
        let reply = system.post("/sms/log", json!({ "data": data })).await;
        assert_eq!(reply.status, 200, "{data}: {}", reply.text);
        assert_eq!(reply.text, "OK");
    }
    let deep = format!("{{\"data\": {}1{}}}", "[".repeat(500), "]".repeat(500));
    let reply = system.post_raw("/sms/log", "application/json", deep).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (400, "invalid_request"), "deep nesting");
    let reply = system.post("/sms/log", json!({ "other": 1 })).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (400, "invalid_request"));
    let reply = system.post("/sms/log", json!({ "data": "x".repeat(40_000) })).await;
    assert_eq!(reply.status, 413);
}

async fn unknown_routes_and_methods(store: StoreKind) {
    let system = System::start(store).await;
    let reply = system.post("/sms/nothing", json!({})).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "not_found"));
    let response = system.http.get(format!("{}/sms/auth", system.base)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}

/// README command 1 and its curl walk-through, on the real binary: `local-api` with no
/// arguments starts the sandbox and serves a whole verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_on_the_local_api_binary() {
    let instance = Instance::spawn(&[], &[("SANDBOX_PORT", "0")]);
    assert_eq!(instance.started["store"], "memory");
    let sandbox_url = instance.started["sandbox"].as_str().expect("the sandbox was started");
    let sandbox_base = sandbox_url.trim_end_matches("/auth");
    let http = reqwest::Client::new();

    let auth: serde_json::Value = http
        .post(format!("{}/sms/auth", instance.base))
        .json(&json!({ "client_id": "sandbox-client", "login_hint": PHONE }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages: serde_json::Value = http
        .get(format!("{sandbox_base}/sandbox/messages?to=%2B447400123456"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = messages[0]["code"].as_str().expect("the SMS is in the outbox");
    assert_eq!(messages[0]["text"], format!("Your verification PIN is: {code}"));
    let response = http
        .post(format!("{}/sms/token", instance.base))
        .json(&json!({ "code": code, "auth_req_id": auth["auth_req_id"], "client_id": "sandbox-client", "nonce": auth["nonce"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let verified: serde_json::Value = response.json().await.unwrap();
    assert_eq!(verified["phone_number_verified"], true);
}

/// With DynamoDB unreachable, both flow endpoints answer 503 and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_503() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sdk = shared::aws::sdk_config_from_env().expect("the SDK config from the environment");
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(format!("http://127.0.0.1:{closed_port}"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2))
        .build();
    let store = shared::store::DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "unreachable");
    let system = System::start_with_store(Arc::new(store), sandbox_config(), |_| {}).await;

    let reply = system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error().as_str()),
        (503, "service_unavailable"),
        "{}",
        reply.text
    );
    assert_eq!(reply.headers["retry-after"], "1");
    let started = common::Started { auth_req_id: "any".into(), nonce: "any".into() };
    let reply = system.token(&started, "123456").await;
    assert_eq!(
        (reply.status.as_u16(), reply.error().as_str()),
        (503, "service_unavailable"),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains("127.0.0.1"), "internal causes stay in the logs");
}

/// What `/user/info` says about `session` (bearer), as (status, body).
async fn user_info(system: &System, session: &str) -> (u16, Value) {
    let response =
        system.http.get(format!("{}/user/info", system.base)).bearer_auth(session).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn verified_session(system: &System, phone: &str) -> String {
    let started = system.start_verification(phone).await;
    let reply = system.token(&started, &system.code_for(phone)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["session"].as_str().unwrap().to_owned()
}

async fn session_is_read_back_then_ended_by_logout(store: StoreKind) {
    let system = System::start(store).await;
    let session = verified_session(&system, PHONE).await;

    let (status, info) = user_info(&system, &session).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["userinfo"]["phone_number"], PHONE);
    assert_eq!((info["client_id"].as_str(), info["client_title"].as_str()), (Some(CLIENT), Some("SMS")));
    assert!(info["expires_at"].as_u64().unwrap() > info["verified_at"].as_u64().unwrap());
    // The browser's way: the cookie, as set by /sms/token.
    let by_cookie = system
        .http
        .get(format!("{}/user/info", system.base))
        .header("cookie", format!("theme=dark; sms_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);

    let logout =
        system.http.post(format!("{}/user/logout", system.base)).bearer_auth(&session).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    let (status, body) = user_info(&system, &session).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{body}");
    let ended =
        system.http.get(format!("{}/user/info", system.base)).bearer_auth(&session).send().await.unwrap();
    assert_eq!(ended.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
    let (status, _) = user_info(&system, "not-a-session").await;
    assert_eq!(status, 401);
    let anonymous = system.http.get(format!("{}/user/info", system.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
}

/// Ending one session leaves another (another phone's, or the same phone verified again) alone.
async fn sessions_of_two_verifications_are_apart(store: StoreKind) {
    let system = System::start(store).await;
    let first = verified_session(&system, PHONE).await;
    let second = verified_session(&system, "+447400123457").await;
    assert_ne!(first, second);
    let logout =
        system.http.post(format!("{}/user/logout", system.base)).bearer_auth(&first).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(user_info(&system, &first).await.0, 401);
    let (status, info) = user_info(&system, &second).await;
    assert_eq!((status, info["userinfo"]["phone_number"].as_str()), (200, Some("+447400123457")));
}
