//! The upstream is not trusted: what a redirecting, flooding, absurd, leaky or confused auth
//! server gets from the service (and what the caller and the logs get from it), over real HTTP
//! against the hostile test server of `common/hostile.rs`. The service config's token budget is
//! 4 s.

#[macro_use]
mod common;

use std::time::Duration;

use common::{
    CLIENT, Instance, PHONE, StoreKind, System,
    hostile::{Answer, Hostile},
};
use serde_json::{Value, json};

for_each_store!(
    a_redirect_is_never_followed,
    a_redirect_later_keeps_the_verification_for_a_retry,
    huge_bodies_are_never_read_whole,
    absurd_numbers_are_clamped_and_the_lease_is_released,
    no_upstream_text_reaches_the_caller,
    claims_for_another_number_or_without_a_yes_open_no_session,
    claims_for_the_same_number_in_another_spelling_open_the_sms_numbers_session,
    a_userinfo_without_a_subject_is_no_answer_and_a_retry_is_served,
    a_request_may_name_only_an_allowed_scope,
);

/// A system whose auth server is the hostile one; `tweak` edits the config further.
async fn hostile_system(store: StoreKind, tweak: impl FnOnce(&mut Value)) -> (System, Hostile) {
    let hostile = Hostile::start().await;
    let system = System::start_with(store, common::sandbox_config(), |config| {
        hostile.configure(config);
        tweak(config);
    })
    .await;
    (system, hostile)
}

fn status_and_error(reply: &common::Reply) -> (u16, String) {
    (reply.status.as_u16(), reply.error())
}

async fn start(system: &System) -> common::Reply {
    system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await
}

fn started(reply: &common::Reply) -> common::Started {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    common::Started {
        auth_req_id: body["auth_req_id"].as_str().unwrap().to_owned(),
        nonce: body["nonce"].as_str().unwrap().to_owned(),
    }
}

/// The CIBA form carries the client secret and the phone: a 307 must not re-send it anywhere.
async fn a_redirect_is_never_followed(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    for status in [307, 302, 308] {
        hostile.then("ciba", Answer::Redirect(status));
        assert_eq!(status_and_error(&start(&system).await), (502, "upstream_error".into()), "{status}");
    }
    assert!(hostile.requests_to("capture").is_empty(), "a redirect was followed");
}

/// A redirect on the token or userinfo call is a failure like a 5xx: nothing is sent to its
/// target, and the same request retried finishes without a second SMS or a second code.
async fn a_redirect_later_keeps_the_verification_for_a_retry(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    let verification = started(&start(&system).await);
    hostile.then("token", Answer::Redirect(307));
    let reply = system.token(&verification, "123456").await;
    assert_eq!(status_and_error(&reply), (502, "upstream_error".into()), "{}", reply.text);
    hostile.then("userinfo", Answer::Redirect(302));
    let reply = system.token(&verification, "123456").await;
    assert_eq!(status_and_error(&reply), (502, "upstream_error".into()), "{}", reply.text);
    let reply = system.token(&verification, "123456").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(hostile.requests_to("capture").is_empty(), "a redirect was followed");
    assert_eq!(hostile.requests_to("ciba").len(), 1, "one SMS");
    assert_eq!(hostile.requests_to("callback").len(), 1, "the code was submitted once");
    assert_eq!(hostile.requests_to("token").len(), 2, "the redirected one and the good one");
}

/// A 64 MiB answer is dropped at 64 KiB: the server cannot make the function buffer it.
async fn huge_bodies_are_never_read_whole(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    const HUGE: usize = 64 * 1024 * 1024;
    // Socket buffers take a few MiB before the server notices that nobody reads.
    const READ_AT_MOST: usize = 8 * 1024 * 1024;
    hostile.then("ciba", Answer::Huge { status: 200, bytes: HUGE });
    assert_eq!(status_and_error(&start(&system).await), (502, "upstream_error".into()));
    assert!(hostile.huge_bytes_written() < READ_AT_MOST, "{} bytes were taken", hostile.huge_bytes_written());
    // A huge 4xx is still a refusal, with no code we could read.
    hostile.then("ciba", Answer::Huge { status: 400, bytes: HUGE });
    assert_eq!(status_and_error(&start(&system).await), (400, "upstream_rejected".into()));
    assert!(hostile.huge_bytes_written() < READ_AT_MOST);
    // A huge userinfo: a failure the same request recovers from once the upstream behaves.
    let verification = started(&start(&system).await);
    hostile.then("userinfo", Answer::Huge { status: 200, bytes: HUGE });
    let reply = system.token(&verification, "123456").await;
    assert_eq!(status_and_error(&reply), (502, "upstream_error".into()), "{}", reply.text);
    assert!(hostile.huge_bytes_written() < READ_AT_MOST);
    assert_eq!(system.token(&verification, "123456").await.status, 200);
}

/// `interval` and `expires_in` of 2⁶⁴−1 once overflowed the clock and left the lease held.
async fn absurd_numbers_are_clamped_and_the_lease_is_released(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    let absurd = json!({ "auth_req_id": "absurd-request", "expires_in": u64::MAX, "interval": u64::MAX });
    hostile.then("ciba", Answer::Json(200, absurd));
    let verification = started(&start(&system).await);
    // Pending once: the next poll would be 30 s away (the clamp), past the 4 s budget.
    hostile.then("token", Answer::Json(400, json!({ "error": "authorization_pending" })));
    let reply = system.token(&verification, "123456").await;
    assert_eq!(status_and_error(&reply), (504, "upstream_timeout".into()), "{}", reply.text);
    // Released at once, not after a lease of 2⁶⁴ seconds: the retry finishes.
    let reply = system.token(&verification, "123456").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(hostile.requests_to("callback").len(), 1, "the code was submitted once");
}

const LEAKS: [&str; 5] = ["node=7", "db=10.0.3.4", "10.0.3.4", "447700900123", "<script>"];
const LEAKY: &str = "internal: node=7 db=10.0.3.4 user +447700900123 <script>alert(1)</script>";

/// Neither the message nor any part of the answer carries what the upstream wrote, beyond its
/// status and a known OAuth code.
async fn no_upstream_text_reaches_the_caller(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    let cases = [
        (
            Answer::Json(400, json!({ "error": "invalid_request", "error_description": LEAKY })),
            (400, "invalid_request"),
        ),
        (
            Answer::Json(403, json!({ "error": "access_denied", "error_description": LEAKY })),
            (403, "access_denied"),
        ),
        (
            Answer::Json(400, json!({ "error": "weird_vendor_code", "error_description": LEAKY })),
            (400, "upstream_rejected"),
        ),
        (Answer::Json(400, json!({ "error": LEAKY })), (400, "upstream_rejected")),
        (
            Answer::Json(500, json!({ "error": "server_error", "error_description": LEAKY })),
            (502, "upstream_error"),
        ),
        (
            Answer::Json(200, json!({ "auth_req_id": 987654321987_u64, "note": LEAKY })),
            (502, "upstream_error"),
        ),
    ];
    for (answer, (status, error)) in cases {
        hostile.then("ciba", answer.clone());
        let reply = start(&system).await;
        assert_eq!(status_and_error(&reply), (status, error.to_owned()), "{answer:?}: {}", reply.text);
        for leak in LEAKS.iter().chain(&["987654321987"]) {
            assert!(!reply.text.contains(leak), "{leak} reached the caller: {}", reply.text);
        }
    }
}

/// The same through a real `local-api` process: no log line carries the upstream's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_text_reaches_a_log_line() {
    let hostile = Hostile::start().await;
    let mut config = common::service_config("http://127.0.0.1:9/auth");
    hostile.configure(&mut config);
    let path = std::env::temp_dir().join(format!("hostile-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, config.to_string()).unwrap();
    let instance = Instance::spawn(&["--config", path.to_str().unwrap()], &[]);
    let http = reqwest::Client::new();
    let post = |body: Value| http.post(format!("{}/sms/auth", instance.base)).json(&body).send();
    hostile
        .then("ciba", Answer::Json(400, json!({ "error": "invalid_request", "error_description": LEAKY })));
    hostile.then("ciba", Answer::Json(500, json!({ "error": "server_error", "error_description": LEAKY })));
    hostile.then("ciba", Answer::Json(200, json!({ "auth_req_id": 987654321987_u64, "note": LEAKY })));
    hostile.then("ciba", Answer::Redirect(307));
    for _ in 0..4 {
        let reply = post(json!({ "client_id": CLIENT, "login_hint": PHONE })).await.unwrap();
        assert!(reply.status().is_client_error() || reply.status().is_server_error());
    }
    let summaries = |lines: &[String]| {
        lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["event"].as_str().is_some_and(|e| e.starts_with("sms_auth_")))
            .count()
    };
    let lines = instance.wait_for_lines(|lines| summaries(lines) >= 4).await;
    assert_eq!(summaries(&lines), 4, "{lines:?}");
    for line in &lines {
        for leak in LEAKS.iter().chain(&["987654321987", "sandbox-secret", &PHONE[1..]]) {
            assert!(!line.contains(leak), "{leak} in a log line: {line}");
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Userinfo that vouches for another number, or does not say yes, opens nothing, and the
/// verification is over.
async fn claims_for_another_number_or_without_a_yes_open_no_session(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    let cases = [
        (
            json!({ "sub": "x", "phone_number": "+15550001111", "phone_number_verified": true }),
            "phone_mismatch",
        ),
        (json!({ "sub": "x", "login_hint": "15550001111", "phone_number_verified": true }), "phone_mismatch"),
        (json!({ "sub": "x", "phone_number": PHONE }), "phone_not_verified"),
        (json!({ "sub": "x", "phone_number": PHONE, "phone_number_verified": false }), "phone_not_verified"),
        (json!({ "sub": "x", "phone_number": PHONE, "phone_number_verified": "yes" }), "phone_not_verified"),
    ];
    for (claims, error) in cases {
        let verification = started(&start(&system).await);
        hostile.then("userinfo", Answer::Json(200, claims.clone()));
        let reply = system.token(&verification, "123456").await;
        assert_eq!(status_and_error(&reply), (403, error.to_owned()), "{claims}: {}", reply.text);
        assert!(reply.json().get("session").is_none());
        let again = system.token(&verification, "123456").await;
        assert_eq!(status_and_error(&again), (404, "verification_not_found".into()), "{claims}");
    }
}

/// The upstream may spell the number its way and say yes in its way: the session is for the
/// number the SMS went to, in E.164, in the answer and read back.
async fn claims_for_the_same_number_in_another_spelling_open_the_sms_numbers_session(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    for claims in [
        json!({ "sub": "x", "phone_number": "447400123456", "phone_number_verified": "true" }),
        json!({ "sub": "x", "phone_number": "+44 7400 123456", "login_hint": "447400123456", "phone_number_verified": 1 }),
        json!({ "sub": "x", "phone_number_verified": true }),
    ] {
        let verification = started(&start(&system).await);
        hostile.then("userinfo", Answer::Json(200, claims.clone()));
        let reply = system.token(&verification, "123456").await;
        assert_eq!(reply.status, 200, "{claims}: {}", reply.text);
        let body = reply.json();
        assert_eq!(
            (&body["phone_number"], &body["phone_number_verified"]),
            (&json!(PHONE), &json!(true)),
            "{claims}"
        );
        let session = body["session"].as_str().unwrap();
        let info =
            system.http.get(format!("{}/user/info", system.base)).bearer_auth(session).send().await.unwrap();
        let info: Value = info.json().await.unwrap();
        assert_eq!(info["userinfo"]["phone_number"], PHONE, "{claims}");
    }
}

/// A userinfo without `sub` (or an empty one) cannot name the user of the session or of the
/// signed result: an unreadable answer (`502`), the verification kept, and the same request
/// retried once the upstream answers properly gets its session, with the token's `sub`.
async fn a_userinfo_without_a_subject_is_no_answer_and_a_retry_is_served(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    for claims in [
        json!({ "phone_number": PHONE, "phone_number_verified": true }),
        json!({ "sub": " ", "phone_number": PHONE, "phone_number_verified": true }),
        json!({ "sub": 7, "phone_number": PHONE, "phone_number_verified": true }),
    ] {
        let verification = started(&start(&system).await);
        hostile.then("userinfo", Answer::Json(200, claims.clone()));
        let reply = system.token(&verification, "123456").await;
        assert_eq!(status_and_error(&reply), (502, "upstream_error".into()), "{claims}: {}", reply.text);
        let retried = system.token(&verification, "123456").await;
        assert_eq!(retried.status, 200, "{claims}: {}", retried.text);
        assert!(retried.json()["verification_token"].as_str().is_some_and(|t| t.split('.').count() == 3));
    }
}

/// A caller cannot widen (or change) the scope the client sends upstream.
async fn a_request_may_name_only_an_allowed_scope(store: StoreKind) {
    let (system, hostile) = hostile_system(store, |_| {}).await;
    let with_scope = |scope: &str| json!({ "client_id": CLIENT, "login_hint": PHONE, "scope": scope });
    let reply = system.post("/sms/auth", with_scope("openid")).await;
    assert_eq!(status_and_error(&reply), (400, "invalid_scope".into()), "{}", reply.text);
    assert!(hostile.requests_to("ciba").is_empty(), "no SMS for a refused scope");
    started(&system.post("/sms/auth", with_scope("ip:phone_verify openid")).await);
    started(&start(&system).await);
    let scopes: Vec<String> = hostile.requests_to("ciba").iter().map(|r| r.fields["scope"].clone()).collect();
    assert_eq!(scopes, ["ip:phone_verify openid", "openid ip:phone_verify"]);

    let (system, hostile) = hostile_system(store, |config| {
        config["clients"][0]["allowed_scopes"] = json!(["openid"]);
    })
    .await;
    started(&system.post("/sms/auth", with_scope("openid")).await);
    assert_eq!(hostile.requests_to("ciba")[0].fields["scope"], "openid");
    let reply = system.post("/sms/auth", with_scope("openid ip:phone")).await;
    assert_eq!(status_and_error(&reply), (400, "invalid_scope".into()));
    assert_eq!(hostile.requests_to("ciba").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_answer_past_the_request_timeout_is_a_timeout_not_a_hang() {
    let (system, hostile) = hostile_system(StoreKind::Memory, |_| {}).await;
    // The config's request time-out is 1 s.
    hostile.then("ciba", Answer::Delayed(Duration::from_secs(3), Box::new(Answer::Json(200, json!({})))));
    assert_eq!(status_and_error(&start(&system).await), (504, "upstream_timeout".into()));
}
