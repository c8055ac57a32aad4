//! The real `user-info` binary as Lambda runs it, against a local Lambda Runtime API: it starts
//! with the config and the table only (no client secret: it never calls the upstream), and reads
//! back a session that `/sms/auth` and `/sms/token` (run in this process on the same table)
//! created. Run by `scripts/test.sh`, which starts DynamoDB Local.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use lambda_emulator::{Emulator, apigw};
use serde_json::{Value, json};
use support::{CLIENT, INVOKE_TIMEOUT, PHONE, assert_error, event, request};

const BINARY: &str = env!("CARGO_BIN_EXE_user-info");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_verified_session_without_the_client_secret() {
    let sandbox = support::start_sandbox().await;
    let table = support::fresh_table("user-info").await;

    // A verified session on the table, made the way sms-auth and sms-token make it.
    let started = support::start_verification(&sandbox, &table).await;
    let body = json!({ "code": started.code, "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce });
    let verified =
        shared::api::sms_token(&started.app, request("sms-token.json", Some(&body))).await.unwrap();
    let verified: Value = serde_json::from_slice(verified.body().as_ref()).unwrap();
    let session = verified["session"].as_str().expect("a session").to_owned();

    // The function: config and table, nothing else.
    let emulator = Emulator::start().await.expect("emulator starts");
    let config = support::config(&sandbox).to_string();
    let env = support::env_with_logging(&[("CONFIG_JSON", &config), ("TABLE_NAME", &table)]);
    let mut function = support::spawn(BINARY, "user-info", &emulator, env);
    let cold_start = support::cold_start(&emulator, &mut function).await;
    println!("user-info cold start (debug build): {cold_start:?}");

    let mut with_session = event("user-info.json");
    with_session["headers"]["authorization"] = json!(format!("Bearer {session}"));
    let response = emulator.invoke(&with_session, INVOKE_TIMEOUT).await.expect("answered");
    assert_eq!(response["statusCode"], 200, "{response}");
    let info = apigw::body_json(&response);
    assert_eq!(info["userinfo"]["phone_number"], PHONE, "{info}");
    assert_eq!((info["client_id"].as_str(), info["client_title"].as_str()), (Some(CLIENT), Some("SMS")));

    // As shipped, the event's token belongs to no session.
    let unknown = emulator.invoke(&event("user-info.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&unknown, 401, "unauthorized");
    assert_eq!(apigw::header(&unknown, "www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    assert_eq!(emulator.init_error(), None);

    assert!(function.wait_for_stdout(INVOKE_TIMEOUT, |out| out.contains("user_info_unauthorized")).await);
    let read = function.json_logs_with_event("user_info_read");
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(
        (read[0]["phone"].as_str(), read[0]["cold_start"].as_bool()),
        (Some("+44********56"), Some(true))
    );
    support::assert_output_free_of(&function, &[("session token", &session), ("phone number", PHONE)]);
}

/// Without its config the function does not start: one `startup_failed` line that says what to
/// set, and a non-zero exit before the first poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_stops_the_cold_start() {
    let table = support::fresh_table("user-info").await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut function =
        support::spawn(BINARY, "user-info", &emulator, support::env_with_logging(&[("TABLE_NAME", &table)]));
    let error = support::assert_startup_failed(&mut function, &emulator).await;
    assert!(error.contains("CONFIG_JSON") && error.contains("CONFIG_FILE"), "{error}");
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let table = support::fresh_table("user-info-sam-local").await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("UserInfoFunction", None, Some(table.as_str()));
    let mut function = support::spawn_clean(BINARY, "user-info", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    // A well-formed token no session has: the table is read, and has none.
    let read = emulator.invoke(&event("user-info.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&read, 401, "unauthorized");
    assert_eq!(emulator.init_error(), None);
}
