//! The real `user-logout` binary as Lambda runs it, against a local Lambda Runtime API, with only
//! the table (no config, no client secret). Run by `scripts/test.sh`, which starts DynamoDB Local.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use lambda_emulator::{Emulator, apigw};
use support::{INVOKE_TIMEOUT, assert_error, event};

const BINARY: &str = env!("CARGO_BIN_EXE_user-logout");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_sessions_with_only_the_table() {
    let table = support::fresh_table("user-logout").await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::env_with_logging(&[("TABLE_NAME", &table)]);
    let mut function = support::spawn(BINARY, "user-logout", &emulator, env);
    let cold_start = support::cold_start(&emulator, &mut function).await;
    println!("user-logout cold start (debug build): {cold_start:?}");

    // Ending a session that is already gone is done, and the cookie is cleared.
    let response = emulator.invoke(&event("user-logout.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_eq!(response["statusCode"], 204, "{response}");
    let cookies = response["cookies"].as_array().expect("cookies");
    assert!(cookies.iter().any(|c| c.as_str().is_some_and(|c| c.starts_with("sms_session=;"))), "{response}");

    let mut anonymous = event("user-logout.json");
    anonymous["headers"].as_object_mut().unwrap().remove("authorization");
    let response = emulator.invoke(&anonymous, INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&response, 401, "unauthorized");
    assert_eq!(apigw::header(&response, "www-authenticate"), Some("Bearer"));
    assert_eq!(emulator.init_error(), None);
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let table = support::fresh_table("user-logout-sam-local").await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("UserLogoutFunction", None, Some(table.as_str()));
    let mut function = support::spawn_clean(BINARY, "user-logout", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    let ended = emulator.invoke(&event("user-logout.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_eq!(ended["statusCode"], 204, "{ended}");
    assert_eq!(emulator.init_error(), None);
}
