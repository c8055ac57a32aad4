//! A right code is never burned by a lost answer or a crash: a client that gives up and sends
//! the same request again gets its session, and a `local-api` killed between two upstream steps
//! leaves a verification the retry finishes without a second SMS or a second code.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{Instance, PHONE, StoreKind, System, fresh_table, service_config};
use sandbox_auth::{Endpoint, Fault, Sandbox};
use serde_json::Value;

for_each_store!(a_client_that_gives_up_gets_its_session_on_retry);

/// Sends `body` to `/sms/token` until the answer is not `409 verification_in_progress` (the
/// first call still holds the lease), at most `patience`.
async fn token_until_free(base: &str, body: &Value, patience: Duration) -> (u16, Value) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + patience;
    loop {
        let reply =
            http.post(format!("{base}/sms/token")).json(body).send().await.expect("local-api answers");
        let status = reply.status().as_u16();
        let json: Value = reply.json().await.expect("JSON");
        if status != 409 || Instant::now() > deadline {
            return (status, json);
        }
        assert!(json["retry_after"].as_u64().is_some_and(|s| (1..=3).contains(&s)), "{json}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn reads_back(base: &str, session: &str) -> bool {
    let reply = reqwest::Client::new().get(format!("{base}/user/info")).bearer_auth(session).send().await;
    reply.expect("local-api answers").status() == 200
}

/// The app's request times out while userinfo is slow (inside the token budget); the service
/// finishes the work anyway, as Lambda does, and the same request sent again gets the session,
/// again and again, while another code gets nothing.
async fn a_client_that_gives_up_gets_its_session_on_retry(store: StoreKind) {
    // Userinfo answers within its time-out (3 s here), after the app has given up (0.5 s).
    let system = System::start_with(store, common::sandbox_config(), |config| {
        config["upstream"]["request_timeout_ms"] = 3_000.into();
    })
    .await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    system.sandbox.inject(Fault {
        endpoint: Endpoint::Userinfo,
        delay_ms: Some(2_500),
        times: Some(1),
        ..Fault::default()
    });
    let body = System::token_body(&started, &code);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let gave_up = impatient.post(format!("{}/sms/token", system.base)).json(&body).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the client was to give up before the answer");

    let (status, verified) = token_until_free(&system.base, &body, Duration::from_secs(15)).await;
    assert_eq!(status, 200, "{verified}");
    let session = verified["session"].as_str().expect("a session").to_owned();
    assert!(reads_back(&system.base, &session).await);
    let again = system.post("/sms/token", body.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["session"], session.as_str(), "the same session, not a second one");
    let other_code = system.token(&started, &common::wrong(&code)).await;
    assert_eq!((other_code.status.as_u16(), other_code.error().as_str()), (404, "verification_not_found"));
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 1, "one SMS");
    let requests = system.sandbox.stats().requests;
    assert_eq!((requests.callback, requests.token, requests.userinfo), (1, 1, 1), "each step once");
}

/// A `local-api` process killed while userinfo is pending (the code accepted and the token
/// issued, both saved): a new process on the same table resumes once the dead one's lease has
/// run out, with no second SMS and no second code sent upstream. DynamoDB only: the memory store
/// dies with its process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_upstream_steps_resumes_without_a_second_code() {
    let sandbox = Sandbox::start(common::sandbox_config(), ([127, 0, 0, 1], 0).into()).await.unwrap();
    let (table, _) = fresh_table().await;
    let config_path = std::env::temp_dir().join(format!("{}.json", table.table()));
    std::fs::write(&config_path, service_config(&sandbox.url()).to_string()).unwrap();
    let config = config_path.to_str().unwrap();
    // The production time-out of DynamoDB calls (the test services may set a longer one), which
    // the dead call's lease is sized by.
    let env = [("TABLE_NAME", table.table()), ("DYNAMODB_OPERATION_TIMEOUT_MS", "2000")];
    let first = Instance::spawn(&["--config", config], &env);

    let http = reqwest::Client::new();
    let start = http
        .post(format!("{}/sms/auth", first.base))
        .json(&serde_json::json!({ "client_id": common::CLIENT, "login_hint": PHONE }))
        .send()
        .await
        .unwrap();
    let started: Value = start.json().await.unwrap();
    let started = common::Started {
        auth_req_id: started["auth_req_id"].as_str().unwrap().to_owned(),
        nonce: started["nonce"].as_str().unwrap().to_owned(),
    };
    let body = System::token_body(&started, &sandbox.messages_to(PHONE)[0].code);
    // Userinfo never answers before the kill.
    sandbox.inject(Fault {
        endpoint: Endpoint::Userinfo,
        delay_ms: Some(60_000),
        times: Some(1),
        ..Fault::default()
    });
    let pending = tokio::spawn(http.post(format!("{}/sms/token", first.base)).json(&body).send());
    let deadline = Instant::now() + Duration::from_secs(10);
    while sandbox.stats().requests.userinfo == 0 {
        assert!(Instant::now() < deadline, "userinfo was never asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first); // killed: no release, no completion
    assert!(pending.await.unwrap().is_err(), "the killed process answered");
    sandbox.clear_faults();

    let second = Instance::spawn(&["--config", config], &env);
    // The dead call's lease: the 4 s token budget, the store calls' time-outs and the margin.
    let (status, verified) = token_until_free(&second.base, &body, Duration::from_secs(40)).await;
    assert_eq!(status, 200, "{verified}");
    assert!(reads_back(&second.base, verified["session"].as_str().unwrap()).await);
    assert_eq!(sandbox.messages_to(PHONE).len(), 1, "no second SMS");
    let requests = sandbox.stats().requests;
    assert_eq!((requests.callback, requests.token), (1, 1), "the code and the token went upstream once");
    assert_eq!(requests.userinfo, 2, "userinfo again, with the saved token");
    let _ = std::fs::remove_file(config_path);
}
