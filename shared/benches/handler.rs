//! What one request costs in our code alone, with no network: `cargo bench -p shared --bench handler`.
//!
//! `request/*` is a whole request as a warm Lambda instance runs it: the API Gateway v2 event
//! decoded by `lambda_http`, the handler (body parsed and validated, phone parsed, digests and
//! random values, the state store — here the in-memory one — and the response built), its
//! summary log line formatted by the production JSON subscriber (into a sink) and its metrics
//! line built. The success paths use a configured test number, which takes the whole flow except
//! the upstream calls. `parts/*` are the pieces, to see where the time goes; `cold_start/*` runs
//! once per instance, not per request.
//!
//! BENCHMARKS.md reads the results from `target/criterion` (see `scripts/bench.sh`).

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use shared::{
    App, api,
    ciba::UserInfo,
    client_log,
    config::Config,
    crypto,
    error::ApiError,
    flow::FlowError,
    metrics,
    phone::PhoneNumber,
    secret::SessionToken,
    signed_result::SigningKeys,
    store::{MemoryStore, SessionKey},
    timings::Timings,
};

const TEST_PHONE: &str = "+447400123000";
const TEST_CODE: &str = "123456";

fn config_json() -> String {
    json!({
        "realm": "ipification",
        "test_numbers_enabled": true,
        "auth_servers": [{ "id": "sandbox", "url": "http://127.0.0.1:9/auth" }],
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "clients": [{
            "user_flow": "pvn_sms",
            "title": "Benchmark",
            "scope": "openid ip:phone_verify",
            "test_numbers": [{ "phone": TEST_PHONE, "code": TEST_CODE }]
        }],
        "limits": { "starts_per_ip_hour": u32::MAX, "resend_delays_secs": [0] }
    })
    .to_string()
}

/// The API Gateway HTTP API (v2) event of a JSON POST, as text (what the runtime receives).
fn event(route: &str, body: &Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": format!("POST {route}"),
        "rawPath": route,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "host": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "user-agent": "okhttp/4.12.0",
            "x-amzn-trace-id": "Root=1-6749a2b3-4c5d6e7f8a9b0c1d2e3f4a5b",
            "x-forwarded-for": "203.0.113.24",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": "POST",
                "path": route,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.24",
                "userAgent": "okhttp/4.12.0"
            },
            "requestId": "Aa1Bb2Cc3Dd4Ee5=",
            "routeKey": format!("POST {route}"),
            "stage": "$default",
            "time": "29/Nov/2026:02:10:11 +0000",
            "timeEpoch": 1_795_925_411_000_u64
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
    .to_string()
}

fn decode(event: &str) -> Request {
    lambda_http::request::from_str(event).expect("a valid API Gateway v2 event")
}

fn body_json(response: &lambda_http::Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
        other => panic!("unexpected body {other:?}"),
    }
}

/// The metrics line `record_request` prints for a request (built and serialised; not printed).
fn metrics_line(endpoint: &str, outcome: &str) -> String {
    let timings = Timings { store_ms: 0.4, ..Timings::default() };
    metrics::request_metrics("SmsVerify", endpoint, outcome, 1.2, &timings, 1_795_925_411_000).to_string()
}

/// The production log format (`telemetry::init`) writing into a sink, so formatting is counted.
fn install_log_subscriber() {
    let _ = shared::telemetry::json_lines().with_writer(std::io::sink).try_init();
}

fn benches(c: &mut Criterion) {
    install_log_subscriber();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let config = Config::parse(&config_json(), None).expect("the benchmark config is valid");
    let app =
        runtime.block_on(async { App::new(config, Arc::new(MemoryStore::new())) }).expect("the app builds");

    let auth_event = event("/sms/auth", &json!({ "client_id": "sandbox-client", "login_hint": TEST_PHONE }));
    let bad_phone_event =
        event("/sms/auth", &json!({ "client_id": "sandbox-client", "login_hint": "+44 12" }));
    let log_event = event(
        "/sms/log",
        &json!({ "data": {
            "flow_id": "0123456789abcdef", "step": "code_entered", "screen": "verify", "elapsed_ms": 5312,
            "phone": "+447400123456", "code": "123456", "auth_req_id": "ELGF-not-a-real-one",
            "device": { "os": "android", "version": "14", "app": "1.4.2", "model": "Pixel 8" },
            "steps": [ { "at": 0, "name": "start" }, { "at": 812, "name": "sms_sent" }, { "at": 5312, "name": "code" } ]
        }}),
    );
    // The /sms/token event that completes a start, and a fresh verification of the test number.
    let token_event_for = |started: &Value| {
        event(
            "/sms/token",
            &json!({
                "code": TEST_CODE,
                "auth_req_id": started["auth_req_id"],
                "client_id": "sandbox-client",
                "nonce": started["nonce"],
            }),
        )
    };
    let token_event = || {
        let response = runtime.block_on(api::sms_auth(&app, decode(&auth_event))).expect("sms_auth answers");
        let started = body_json(&response);
        assert_eq!(response.status(), 200, "{started}");
        token_event_for(&started)
    };
    // The whole flow works before anything is timed.
    let verified = runtime.block_on(api::sms_token(&app, decode(&token_event()))).expect("sms_token answers");
    assert_eq!(verified.status(), 200, "{}", body_json(&verified));

    let mut group = c.benchmark_group("request");
    // Each timed request is prepared and cleaned up untimed (the verification completed, the
    // session deleted), so the in-memory store stays the size a warm instance's would be: it
    // purges expired items on writes, in time linear in its size.
    let end_session = |verified: &lambda_http::Response<Body>| {
        let session = body_json(verified)["session"].as_str().map(SessionToken::new).expect("a session");
        runtime
            .block_on(app.store.delete_session(&SessionKey::of(&session)))
            .expect("the session is deleted");
    };
    let finish = |started: &Value| {
        let verified = runtime
            .block_on(api::sms_token(&app, decode(&token_event_for(started))))
            .expect("sms_token answers");
        end_session(&verified);
    };
    group.bench_function("sms_auth", |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let response = runtime.block_on(api::sms_auth(&app, decode(black_box(&auth_event))));
                black_box(metrics_line("sms_auth", "sent"));
                timed += started.elapsed();
                finish(&body_json(&response.expect("sms_auth answers")));
            }
            timed
        })
    });
    group.bench_function("sms_token", |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for _ in 0..iterations {
                let event = token_event();
                let started = Instant::now();
                let response = runtime.block_on(api::sms_token(&app, decode(&event)));
                black_box(metrics_line("sms_token", "verified"));
                timed += started.elapsed();
                end_session(&response.expect("sms_token answers"));
            }
            timed
        })
    });
    group.bench_function("sms_log", |b| {
        b.iter(|| {
            let response = runtime.block_on(api::sms_log(decode(black_box(&log_event))));
            (response.map(|r| r.status()).ok(), metrics_line("sms_log", "logged"))
        })
    });
    group.bench_function("sms_auth_invalid_phone", |b| {
        b.iter(|| {
            let response = runtime.block_on(api::sms_auth(&app, decode(black_box(&bad_phone_event))));
            (response.map(|r| r.status()).ok(), metrics_line("sms_auth", "invalid_phone_number"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("parts");
    group.bench_function("event_decode", |b| b.iter(|| decode(black_box(&auth_event))));
    group.bench_function("phone_parse", |b| b.iter(|| PhoneNumber::parse(black_box("+44 7400 123456"))));
    group.bench_function("digest", |b| {
        b.iter(|| crypto::digest("nonce", black_box("a7c5b81a-2f4e-4d7b-9c1a")))
    });
    group.bench_function("new_token", |b| b.iter(crypto::new_token));
    group.bench_function("new_nonce", |b| b.iter(crypto::new_nonce));
    let auth_req_id = "ELGFa8d0d1b4c6e8f0a2c4e6081a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9";
    let sealed = crypto::seal(auth_req_id, "an-upstream-access-token");
    group.bench_function("seal", |b| {
        b.iter(|| crypto::seal(black_box(auth_req_id), "an-upstream-access-token"))
    });
    group.bench_function("open", |b| b.iter(|| crypto::open(black_box(auth_req_id), black_box(&sealed))));
    group.bench_function("error_response", |b| {
        b.iter(|| {
            api::api_error_response(&ApiError::from(FlowError::InvalidCode { attempts_left: black_box(3) }))
        })
    });
    let client_data: Value = serde_json::from_str::<Value>(&log_event).map_or(Value::Null, |e| {
        serde_json::from_str::<Value>(e["body"].as_str().unwrap_or("{}")).unwrap_or_default()["data"].clone()
    });
    group.bench_function("client_log", |b| b.iter(|| client_log::sanitize(black_box(&client_data))));
    let claims = json!({ "sub": "d2fdc6c3-5f0c-4a54-9d6b-0f1d9a1b2c3d", "phone_number": "+447400123456",
                         "phone_number_verified": "true", "login_hint": "447400123456" });
    group.bench_function("userinfo", |b| {
        b.iter_batched(
            || claims.as_object().cloned().unwrap_or_default(),
            UserInfo::from_claims,
            BatchSize::SmallInput,
        )
    });
    group.bench_function("metrics_line", |b| b.iter(|| metrics_line("sms_token", "verified")));
    // `/sms/token`'s signed result: one Ed25519 signature over the claims.
    let keys = SigningKeys::generate();
    let claims = json!({
        "iss": "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/staging", "aud": "sandbox-client",
        "sub": "d2fdc6c3-8e7a-4f1b-9c2d-5a6b7c8d9e0f", "phone_number": TEST_PHONE,
        "phone_number_verified": true, "iat": 1_796_292_000u64, "exp": 1_796_292_300u64, "jti": crypto::new_token(),
    });
    group.bench_function("sign_result", |b| b.iter(|| keys.sign(black_box(&claims))));
    group.finish();

    let mut group = c.benchmark_group("cold_start");
    let config = config_json();
    group.bench_function("config_parse", |b| b.iter(|| Config::parse(black_box(&config), None)));
    group.finish();
}

criterion_group!(handler, benches);
criterion_main!(handler);
