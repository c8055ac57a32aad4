//! Test support shared by the functions' `runtime.rs` tests (each includes this file with
//! `#[path]`): the local DynamoDB and Secrets Manager endpoints, a fresh table, a client secret in
//! Secrets Manager, the sandbox auth server, a verification started on the table, and a function
//! binary started against the Lambda emulator.
#![allow(dead_code)] // each test crate uses its own part

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use lambda_emulator::{Emulator, FunctionProcess};
use sandbox_auth::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use shared::store::DynamoStore;

pub const PHONE: &str = "+447400123456";
pub const CLIENT: &str = "sandbox-client";
/// The sandbox's secret for `sandbox-client`; it reaches the binaries only through Secrets Manager.
pub const CLIENT_SECRET: &str = "sandbox-secret";
/// Generous for a debug binary on a busy 2-core machine; a cold start takes milliseconds.
pub const COLD_START_LIMIT: Duration = Duration::from_secs(20);
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The DynamoDB Local server of `scripts/test.sh` / `scripts/with-test-services.sh`.
pub fn dynamodb_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok().filter(|url| !url.trim().is_empty()).expect(
        "AWS_ENDPOINT_URL_DYNAMODB is not set: these tests run the Lambda binaries against a local \
         DynamoDB Local server; run them with scripts/test.sh (or scripts/with-test-services.sh \
         cargo test ...)",
    )
}

/// The moto server (Secrets Manager) of `scripts/test.sh` / `scripts/with-test-services.sh`.
pub fn secrets_manager_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok().filter(|url| !url.trim().is_empty()).expect(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER is not set: these tests read the client secret from a local \
         moto server; run them with scripts/test.sh (or scripts/with-test-services.sh cargo test ...)",
    )
}

/// A fresh table on DynamoDB Local, named for this test run.
pub async fn fresh_table(function: &str) -> String {
    dynamodb_endpoint();
    let name = format!("{function}-runtime-{}", uuid::Uuid::new_v4().simple());
    DynamoStore::new(
        DynamoStore::client_from_env().expect("the SDK config from the environment"),
        name.clone(),
    )
    .create_table_if_missing()
    .await
    .expect("create the test table on DynamoDB Local");
    name
}

/// Stores `secret_string` as a new secret on moto's Secrets Manager; its ARN.
pub async fn create_secret(secret_string: &str) -> String {
    let sdk = shared::aws::sdk_config_from_env().expect("the SDK config from the environment");
    let config =
        aws_sdk_secretsmanager::config::Builder::from(&sdk).endpoint_url(secrets_manager_endpoint()).build();
    let output = aws_sdk_secretsmanager::Client::from_conf(config)
        .create_secret()
        .name(format!("sms-verify/client-secret-{}", uuid::Uuid::new_v4().simple()))
        .secret_string(secret_string)
        .send()
        .await
        .expect("create the client secret on moto's Secrets Manager");
    output.arn().expect("moto returns the secret's ARN").to_owned()
}

/// Puts a new value in the secret `arn` on moto's Secrets Manager (a rotation's last step).
pub async fn update_secret(arn: &str, secret_string: &str) {
    let sdk = shared::aws::sdk_config_from_env().expect("the SDK config from the environment");
    let config =
        aws_sdk_secretsmanager::config::Builder::from(&sdk).endpoint_url(secrets_manager_endpoint()).build();
    aws_sdk_secretsmanager::Client::from_conf(config)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(secret_string)
        .send()
        .await
        .expect("put the new secret value on moto's Secrets Manager");
}

pub async fn start_sandbox() -> Sandbox {
    Sandbox::start(
        SandboxConfig { quiet: true, interval: Some(1), ..SandboxConfig::default() },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("sandbox starts")
}

/// The service config for the sandbox, without a client secret (that comes from Secrets Manager).
pub fn config(sandbox: &Sandbox) -> Value {
    json!({
        "realm": sandbox.realm(),
        "auth_servers": [{ "id": "sandbox", "url": sandbox.url() }],
        "client_id": CLIENT,
        "clients": [{ "user_flow": "pvn_sms", "title": "SMS", "scope": "openid ip:phone_verify" }],
        "upstream": { "connect_timeout_ms": 1000, "request_timeout_ms": 3000, "token_budget_ms": 6000 },
        // The tests start several verifications of one number back to back: no resend delay.
        "limits": { "resend_delays_secs": [0] }
    })
}

/// An event of the repository's `events/`.
pub fn event(name: &str) -> Value {
    lambda_emulator::apigw::load_event(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name),
    )
}

/// The environment the deployment template gives the function (besides the runtime's): the
/// config, the table, the secret's ARN, and the `LoggingConfig` (JSON, INFO).
pub fn function_env(sandbox: &Sandbox, table: &str, secret_arn: &str) -> Vec<(String, String)> {
    [
        ("CONFIG_JSON", config(sandbox).to_string()),
        ("TABLE_NAME", table.to_owned()),
        ("CLIENT_SECRET_ARN", secret_arn.to_owned()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_manager_endpoint()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// `vars` and the function's `LoggingConfig` as the template sets it (JSON, INFO): the
/// environment of a function that needs no secret.
pub fn env_with_logging(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .copied()
        .chain([("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_LOG_LEVEL", "INFO")])
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Starts `binary` as function `name` against `emulator`. `CLIENT_SECRET` and `CONFIG_FILE` are
/// removed from the inherited environment, so the secret can only come from Secrets Manager.
pub fn spawn(binary: &str, name: &str, emulator: &Emulator, env: Vec<(String, String)>) -> FunctionProcess {
    let mut command = std::process::Command::new(binary);
    command.env_remove("CLIENT_SECRET").env_remove("CONFIG_FILE").env_remove("RUST_LOG");
    command.envs(emulator.function_env(name)).envs(env);
    FunctionProcess::spawn_command(command).unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

/// What `sam local invoke <function> --env-vars dev/sam-local/env-vars.json` gives the function
/// (its logical id in template.yaml), as this machine can run it without Docker: nothing
/// inherited, only the file's variables, SAM CLI's own (`AWS_SAM_LOCAL`, its default credentials
/// and region, the LoggingConfig) and the Lambda runtime's. The container's `host.docker.internal`
/// is this machine's loopback here: the file's DynamoDB Local and sandbox addresses become the
/// test's, and its table `table`. Every other value is the file's, unchanged.
pub fn sam_local_env(
    function: &str,
    sandbox: Option<&Sandbox>,
    table: Option<&str>,
) -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dev/sam-local/env-vars.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("the env-vars file"))
        .expect("the env-vars file is JSON");
    let vars =
        file[function].as_object().unwrap_or_else(|| panic!("{function} is not in {}", path.display()));
    let mut env: Vec<(String, String)> = vars
        .iter()
        .map(|(name, value)| {
            let mut value = value.as_str().expect("a string value").to_owned();
            if value.contains("http://host.docker.internal:8000") {
                value = value.replace("http://host.docker.internal:8000", &dynamodb_endpoint());
            }
            if let Some(sandbox) = sandbox {
                value = value.replace("http://host.docker.internal:3001/auth", &sandbox.url());
            }
            if let (Some(table), "TABLE_NAME") = (table, name.as_str()) {
                value = table.to_owned();
            }
            (name.clone(), value)
        })
        .collect();
    for (name, value) in [
        ("AWS_SAM_LOCAL", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "defaultkey"),
        ("AWS_SECRET_ACCESS_KEY", "defaultsecret"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
    ] {
        env.push((name.to_owned(), value.to_owned()));
    }
    env
}

/// Starts `binary` as [`spawn`] does, but with nothing inherited: only `env` and the runtime's.
pub fn spawn_clean(
    binary: &str,
    name: &str,
    emulator: &Emulator,
    env: Vec<(String, String)>,
) -> FunctionProcess {
    let mut command = std::process::Command::new(binary);
    command.env_clear().envs(emulator.function_env(name)).envs(env);
    FunctionProcess::spawn_command(command).unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

/// Waits for the function's first poll (its cold start done) and returns how long it took.
pub async fn cold_start(emulator: &Emulator, function: &mut FunctionProcess) -> Duration {
    match emulator.wait_first_poll(COLD_START_LIMIT).await {
        Some(at) => at - function.spawned_at(),
        None => panic!(
            "the function never asked for an invocation (exit status {:?}); stderr:\n{}",
            function.try_wait().ok().flatten(),
            function.stderr()
        ),
    }
}

/// Asserts that `function` failed its cold start as every function must: a non-zero exit,
/// exactly one `startup_failed` line at level ERROR, and never a poll for work. Returns the line's
/// `error`, for the caller to check it says what to fix.
pub async fn assert_startup_failed(function: &mut FunctionProcess, emulator: &Emulator) -> String {
    let status = function.wait_exit(COLD_START_LIMIT).await.expect("the process exits");
    assert!(!status.success(), "exit status {status}");
    assert!(
        function.wait_for_stdout(INVOKE_TIMEOUT, |out| out.contains("startup_failed")).await,
        "no startup_failed line; stderr:\n{}",
        function.stderr()
    );
    let failures = function.json_logs_with_event("startup_failed");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["level"], "ERROR");
    assert_eq!(emulator.polls(), 0, "a failed instance never asks for work");
    failures[0]["error"].as_str().unwrap_or_default().to_owned()
}

/// Asserts an API Gateway v2 error response: status, `error` code, the one error shape.
pub fn assert_error(response: &Value, status: u16, error: &str) {
    assert_eq!(response["statusCode"], status, "{response}");
    assert_eq!(lambda_emulator::apigw::header(response, "content-type"), Some("application/json"));
    let body = lambda_emulator::apigw::body_json(response);
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Asserts no line the function wrote holds any of `secrets` (without printing the output).
pub fn assert_output_free_of(function: &FunctionProcess, secrets: &[(&str, &str)]) {
    let output = format!("{}\n{}", function.stdout(), function.stderr());
    for (what, secret) in secrets {
        assert!(!secret.is_empty() && !output.contains(secret), "the function's output contains the {what}");
    }
}

/// A verification started on `table` as the `sms-auth` function starts one, by its handler in this
/// process (so it shares state with a function binary only through DynamoDB): the app it ran in,
/// for `/sms/token` calls on the same table, its `auth_req_id` and `nonce`, and the code texted.
pub struct Started {
    pub app: shared::App,
    pub auth_req_id: String,
    pub nonce: String,
    pub code: String,
}

pub async fn start_verification(sandbox: &Sandbox, table: &str) -> Started {
    let secret = Some(shared::secret::ClientSecret::new(CLIENT_SECRET));
    let config = shared::config::Config::parse(&config(sandbox).to_string(), secret).expect("valid config");
    let store = DynamoStore::new(DynamoStore::client_from_env().expect("the SDK config"), table);
    let app = shared::App::new(config, std::sync::Arc::new(store)).expect("app");
    let response = shared::api::sms_auth(&app, request("sms-auth.json", None)).await.expect("handled");
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
    let code = sandbox.messages_to(PHONE).first().expect("the SMS was sent").code.clone();
    let field = |name: &str| body[name].as_str().expect("auth_req_id and nonce").to_owned();
    Started { app, auth_req_id: field("auth_req_id"), nonce: field("nonce"), code }
}

/// The repository's event `name`, with `body` as its JSON body when given, as `lambda_http`
/// decodes it for a handler.
pub fn request(name: &str, body: Option<&Value>) -> lambda_http::Request {
    let event = match body {
        Some(body) => lambda_emulator::apigw::with_json_body(event(name), body),
        None => event(name),
    };
    lambda_http::request::from_str(&event.to_string()).expect("a v2 event")
}
