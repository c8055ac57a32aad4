//! The real `sms-clients` binary as Lambda runs it, against a local Lambda Runtime API, with only
//! the config (no table, no client secret). Run by `scripts/test.sh`.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use lambda_emulator::{Emulator, apigw};
use serde_json::json;
use support::{CLIENT, INVOKE_TIMEOUT, event};

const BINARY: &str = env!("CARGO_BIN_EXE_sms-clients");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_servers_and_clients_from_the_config_alone() {
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut config = support::config(&sandbox);
    config["clients"][0]["allowed_countries"] = json!(["GB", "IE"]);
    let env = support::env_with_logging(&[("CONFIG_JSON", &config.to_string())]);
    let mut function = support::spawn(BINARY, "sms-clients", &emulator, env);
    let cold_start = support::cold_start(&emulator, &mut function).await;
    println!("sms-clients cold start (debug build): {cold_start:?}");

    let response = emulator.invoke(&event("sms-clients.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        apigw::body_json(&response),
        json!({
            "auth_servers": [{ "id": "sandbox", "default": true }],
            "clients": [{ "client_id": CLIENT, "title": "SMS", "allowed_countries": ["GB", "IE"], "challenge": null }]
        })
    );
    assert_eq!(emulator.init_error(), None);
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("SmsClientsFunction", Some(&sandbox), None);
    let mut function = support::spawn_clean(BINARY, "sms-clients", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    let listed = emulator.invoke(&event("sms-clients.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_eq!(listed["statusCode"], 200, "{listed}");
    assert_eq!(emulator.init_error(), None);
}
