//! The real `sms-status` binary as Lambda runs it, against a local Lambda Runtime API: it starts
//! with the config and the table only (no client secret: it never calls the upstream), and answers
//! where a verification that `/sms/auth` (run in this process on the same table) started stands.
//! Run by `scripts/test.sh`, which starts DynamoDB Local.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use lambda_emulator::{Emulator, apigw};
use serde_json::json;
use shared::clock::now_epoch_secs;
use support::{CLIENT, INVOKE_TIMEOUT, PHONE, assert_error, event, request};

const BINARY: &str = env!("CARGO_BIN_EXE_sms-status");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_where_a_verification_stands_without_the_client_secret() {
    let sandbox = support::start_sandbox().await;
    let table = support::fresh_table("sms-status").await;
    let before = now_epoch_secs();
    let support::Started { app, auth_req_id, nonce, code } =
        support::start_verification(&sandbox, &table).await;
    let (auth_req_id, nonce) = (auth_req_id.as_str(), nonce.as_str());

    let emulator = Emulator::start().await.expect("emulator starts");
    let config = support::config(&sandbox).to_string();
    let env = support::env_with_logging(&[("CONFIG_JSON", &config), ("TABLE_NAME", &table)]);
    let mut function = support::spawn(BINARY, "sms-status", &emulator, env);
    support::cold_start(&emulator, &mut function).await;

    // As shipped, the event's placeholders name no verification.
    assert_error(
        &emulator.invoke(&event("sms-status.json"), INVOKE_TIMEOUT).await.unwrap(),
        404,
        "verification_not_found",
    );

    let reference = json!({ "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce });
    let status_event = apigw::with_json_body(event("sms-status.json"), &reference);
    let pending = emulator.invoke(&status_event, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(pending["statusCode"], 200, "{pending}");
    let body = apigw::body_json(&pending);
    assert_eq!(
        (body["status"].as_str(), body["attempts_left"].as_u64()),
        (Some("pending"), Some(5)),
        "{body}"
    );
    // The sandbox's requests live 120 s; the test config has no resend delay.
    let expires_at = body["expires_at"].as_u64().expect("expires_at");
    assert!((before + 120..=now_epoch_secs() + 120).contains(&expires_at), "{body}");
    assert!(body["resend_after"].as_u64().is_some_and(|at| at <= now_epoch_secs()), "{body}");

    // A wrong code on the same table costs an attempt; the right one uses the verification up.
    let first = if code.starts_with('9') { '1' } else { '9' };
    let wrong = format!("{first}{}", &code[1..]);
    let token = |code: &str| {
        request(
            "sms-token.json",
            Some(&json!({ "code": code, "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce })),
        )
    };
    assert_eq!(shared::api::sms_token(&app, token(&wrong)).await.unwrap().status(), 400);
    let after_wrong = emulator.invoke(&status_event, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(apigw::body_json(&after_wrong)["attempts_left"], 4, "{after_wrong}");
    assert_eq!(shared::api::sms_token(&app, token(&code)).await.unwrap().status(), 200);
    assert_error(
        &emulator.invoke(&status_event, INVOKE_TIMEOUT).await.unwrap(),
        404,
        "verification_not_found",
    );
    assert_eq!(emulator.init_error(), None);

    assert!(function.wait_for_stdout(INVOKE_TIMEOUT, |out| out.matches("sms_status_").count() >= 4).await);
    let lines = function.json_logs_with_event("sms_status_pending");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["phone"], "+44********56", "{lines:?}");
    support::assert_output_free_of(
        &function,
        &[("auth_req_id", auth_req_id), ("nonce", nonce), ("phone number", PHONE)],
    );
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let table = support::fresh_table("sms-status-sam-local").await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("SmsStatusFunction", None, Some(table.as_str()));
    let mut function = support::spawn_clean(BINARY, "sms-status", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    let read = emulator.invoke(&event("sms-status.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&read, 404, "verification_not_found");
    assert_eq!(emulator.init_error(), None);
}
