//! The real `sms-log` binary as Lambda runs it: started against a local Lambda Runtime API (the
//! `lambda-emulator`) with nothing but the runtime's environment (it needs no config, no secret
//! and no table), and invoked with the repository's API Gateway v2 events.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use std::{path::PathBuf, process::Command, time::Duration};

use lambda_emulator::{Emulator, FunctionProcess, apigw};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_sms-log");
const TIMEOUT: Duration = Duration::from_secs(10);

fn event(name: &str) -> Value {
    apigw::load_event(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_client_data_as_one_sanitised_line() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut command = Command::new(BINARY);
    // Nothing of the other functions' setup: the runtime's environment and the LoggingConfig only.
    for name in ["CONFIG_JSON", "CONFIG_FILE", "TABLE_NAME", "CLIENT_SECRET", "CLIENT_SECRET_ARN", "RUST_LOG"]
    {
        command.env_remove(name);
    }
    command
        .envs(emulator.function_env("sms-log"))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO");
    let function = FunctionProcess::spawn_command(command).expect("spawn sms-log");
    let Some(first_poll) = emulator.wait_first_poll(Duration::from_secs(20)).await else {
        panic!("sms-log never asked for an invocation; stderr:\n{}", function.stderr());
    };
    println!("sms-log cold start (debug build): {:?}", first_poll - function.spawned_at());

    let logged = emulator.invoke(&event("sms-log.json"), TIMEOUT).await.expect("sms-log.json is answered");
    assert_eq!(logged["statusCode"], 200, "{logged}");
    assert_eq!(apigw::body_text(&logged), "OK");
    assert_eq!(logged["isBase64Encoded"], false);
    assert_eq!(logged["cookies"], json!([]));
    assert!(apigw::header(&logged, "content-type").is_some_and(|t| t.starts_with("text/plain")), "{logged}");

    let missing = emulator.invoke(&event("sms-log-missing-data.json"), TIMEOUT).await.unwrap();
    assert_eq!(missing["statusCode"], 400, "{missing}");
    let error = apigw::body_json(&missing);
    assert_eq!(error["error"], "invalid_request", "{error}");
    assert!(error["message"].as_str().unwrap_or_default().contains("data"), "names the field: {error}");
    assert_eq!(emulator.init_error(), None);

    // The second request's summary line comes after the first's client line: wait for it, then
    // the client line is there exactly once.
    assert!(function.wait_for_stdout(TIMEOUT, |out| out.contains("sms_log_invalid_request")).await);
    // Each request, logged or refused, left its metrics in CloudWatch's embedded metric format.
    let metrics: Vec<Value> = function
        .json_logs()
        .into_iter()
        .filter(|line| line.get("_aws").is_some() && line["Endpoint"] == "sms_log")
        .collect();
    let outcomes: Vec<_> = metrics.iter().map(|m| (m["Outcome"].clone(), m["Requests"].clone())).collect();
    assert_eq!(
        outcomes,
        [(json!("logged"), json!(1)), (json!("invalid_request"), json!(1))],
        "one EMF line per request: {metrics:?}"
    );
    assert!(metrics.iter().all(|m| m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SmsVerify"));
    let lines = function.json_logs_with_event("sms_client_log");
    assert_eq!(lines.len(), 1, "one sms_client_log line: {lines:?}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    let data: Value =
        serde_json::from_str(line["data"].as_str().expect("data as JSON text")).expect("JSON data");
    // The shipped event fits the schema: all of it is kept.
    assert_eq!(
        data,
        json!({ "event": "code_entered", "step": "code", "duration_ms": 5120, "platform": "android",
                "os_version": "15", "app_version": "2.4.0", "extra": { "screen": "verify" } })
    );
    assert_eq!(line["dropped_fields"], 0);
    let request_id = line["request_id"].as_str().unwrap_or_default();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "the Lambda request id is logged: {line}");
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("SmsLogFunction", None, None);
    let mut function = support::spawn_clean(BINARY, "sms-log", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    let logged = emulator.invoke(&event("sms-log.json"), TIMEOUT).await.expect("answered");
    assert_eq!(logged["statusCode"], 200, "{logged}");
    assert_eq!(emulator.init_error(), None);
}
