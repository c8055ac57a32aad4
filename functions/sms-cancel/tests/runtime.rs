//! The real `sms-cancel` binary as Lambda runs it, against a local Lambda Runtime API: it starts
//! with the config and the table only (no client secret: it never calls the upstream), and ends a
//! verification that `/sms/auth` (run in this process on the same table) started, which
//! `/sms/token` then no longer finds. Run by `scripts/test.sh`, which starts DynamoDB Local.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use lambda_emulator::{Emulator, apigw};
use serde_json::json;
use support::{CLIENT, INVOKE_TIMEOUT, PHONE, assert_error, event, request};

const BINARY: &str = env!("CARGO_BIN_EXE_sms-cancel");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_a_verification_that_token_then_does_not_find() {
    let sandbox = support::start_sandbox().await;
    let table = support::fresh_table("sms-cancel").await;
    let support::Started { app, auth_req_id, nonce, code } =
        support::start_verification(&sandbox, &table).await;
    let (auth_req_id, nonce) = (auth_req_id.as_str(), nonce.as_str());

    let emulator = Emulator::start().await.expect("emulator starts");
    let config = support::config(&sandbox).to_string();
    let env = support::env_with_logging(&[("CONFIG_JSON", &config), ("TABLE_NAME", &table)]);
    let mut function = support::spawn(BINARY, "sms-cancel", &emulator, env);
    support::cold_start(&emulator, &mut function).await;

    // As shipped, the event's placeholders name no verification; another nonce cancels nothing.
    assert_error(
        &emulator.invoke(&event("sms-cancel.json"), INVOKE_TIMEOUT).await.unwrap(),
        404,
        "verification_not_found",
    );
    let other_nonce = json!({ "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": "not-the-nonce" });
    let refused_event = apigw::with_json_body(event("sms-cancel.json"), &other_nonce);
    let refused = emulator.invoke(&refused_event, INVOKE_TIMEOUT).await.unwrap();
    assert_error(&refused, 404, "verification_not_found");

    let reference = json!({ "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce });
    let cancel_event = apigw::with_json_body(event("sms-cancel.json"), &reference);
    let cancelled = emulator.invoke(&cancel_event, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(cancelled["statusCode"], 204, "{cancelled}");
    assert_error(
        &emulator.invoke(&cancel_event, INVOKE_TIMEOUT).await.unwrap(),
        404,
        "verification_not_found",
    );
    // The right code, on the same table, finds nothing now.
    let token = request(
        "sms-token.json",
        Some(&json!({ "code": code, "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce })),
    );
    assert_eq!(shared::api::sms_token(&app, token).await.unwrap().status(), 404);
    assert_eq!(emulator.init_error(), None);

    assert!(function.wait_for_stdout(INVOKE_TIMEOUT, |out| out.contains("sms_cancel_cancelled")).await);
    let lines = function.json_logs_with_event("sms_cancel_cancelled");
    assert_eq!(lines.len(), 1, "{lines:?}");
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
    let table = support::fresh_table("sms-cancel-sam-local").await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("SmsCancelFunction", None, Some(table.as_str()));
    let mut function = support::spawn_clean(BINARY, "sms-cancel", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    let cancel = emulator.invoke(&event("sms-cancel.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&cancel, 404, "verification_not_found");
    assert_eq!(emulator.init_error(), None);
}
