//! The real `sms-auth` binary as Lambda runs it: started against a local Lambda Runtime API (the
//! `lambda-emulator`), with its secret in Secrets Manager (moto) and its state in DynamoDB
//! (DynamoDB Local), the sandbox as the auth server, and invoked with the repository's API Gateway
//! v2 events.
//! Run by `scripts/test.sh`, which starts both.

mod support;

use lambda_emulator::{Emulator, apigw};
use serde_json::json;
use support::{CLIENT_SECRET, INVOKE_TIMEOUT, PHONE, assert_error, event};

const BINARY: &str = env!("CARGO_BIN_EXE_sms-auth");

/// One instance serves several events in a row (warm reuse): the SMS goes out, and each kind of
/// bad request gets its status and error code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_events_on_one_warm_instance() {
    let table = support::fresh_table("sms-auth").await;
    // The JSON form of the secret: {"client_secret": "..."}.
    let secret_arn = support::create_secret(&json!({ "client_secret": CLIENT_SECRET }).to_string()).await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut function =
        support::spawn(BINARY, "sms-auth", &emulator, support::function_env(&sandbox, &table, &secret_arn));
    let cold_start = support::cold_start(&emulator, &mut function).await;
    println!("sms-auth cold start (debug build, secret from Secrets Manager): {cold_start:?}");

    let sent =
        emulator.invoke(&event("sms-auth.json"), INVOKE_TIMEOUT).await.expect("sms-auth.json is answered");
    assert_eq!(sent["statusCode"], 200, "{sent}");
    assert_eq!(sent["isBase64Encoded"], false);
    assert_eq!(sent["cookies"], json!([]));
    assert_eq!(apigw::header(&sent, "content-type"), Some("application/json"));
    assert_eq!(apigw::header(&sent, "cache-control"), Some("no-store"));
    let body = apigw::body_json(&sent);
    assert_eq!(body["auth_server"], json!({ "id": "sandbox", "url": sandbox.url() }));
    let auth_req_id = body["auth_req_id"].as_str().expect("auth_req_id").to_owned();
    assert!(auth_req_id.len() > 20);
    let nonce = uuid::Uuid::parse_str(body["nonce"].as_str().expect("nonce")).expect("nonce is a UUID");
    assert_eq!(nonce.get_version_num(), 4);
    let messages = sandbox.messages_to(PHONE);
    assert_eq!(messages.len(), 1, "one SMS sent");
    assert_eq!(messages[0].text, format!("Your verification PIN is: {}", messages[0].code));

    let invalid_phone = emulator.invoke(&event("sms-auth-invalid-phone.json"), INVOKE_TIMEOUT).await.unwrap();
    assert_error(&invalid_phone, 400, "invalid_phone_number");
    let unknown_client =
        emulator.invoke(&event("sms-auth-unknown-client.json"), INVOKE_TIMEOUT).await.unwrap();
    assert_error(&unknown_client, 401, "invalid_client");
    let malformed = emulator.invoke(&event("sms-auth-malformed.json"), INVOKE_TIMEOUT).await.unwrap();
    assert_error(&malformed, 400, "invalid_request");

    // Still the same instance: a second verification, a second SMS.
    let again = emulator.invoke(&event("sms-auth.json"), INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(again["statusCode"], 200, "{again}");
    assert_ne!(apigw::body_json(&again)["auth_req_id"], auth_req_id.as_str());
    assert_eq!(sandbox.messages_to(PHONE).len(), 2);
    assert!(function.try_wait().unwrap().is_none(), "the instance keeps running between invocations");
    assert_eq!(emulator.init_error(), None);

    // One summary line per request, tied to the Lambda request id.
    let summaries = || {
        function
            .json_logs()
            .into_iter()
            .filter(|line| line["event"].as_str().is_some_and(|e| e.starts_with("sms_auth_")))
            .collect::<Vec<_>>()
    };
    assert!(function.wait_for_stdout(INVOKE_TIMEOUT, |_| summaries().len() == 5).await, "5 summary lines");
    let events: Vec<_> = summaries().iter().map(|line| line["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        events,
        [
            "sms_auth_sent",
            "sms_auth_invalid_phone_number",
            "sms_auth_invalid_client",
            "sms_auth_invalid_request",
            "sms_auth_sent"
        ]
    );
    for line in summaries() {
        let request_id = line["request_id"].as_str().unwrap_or_default();
        assert!(uuid::Uuid::parse_str(request_id).is_ok(), "the Lambda request id is logged: {line}");
    }
    support::assert_output_free_of(
        &function,
        &[("client secret", CLIENT_SECRET), ("auth_req_id", &auth_req_id), ("full phone number", PHONE)],
    );
}

/// A `CLIENT_SECRET_ARN` that names no secret stops the cold start: one `startup_failed` line that
/// names the ARN, and a non-zero exit before the first poll (Lambda reports `Runtime.ExitError`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_stops_the_cold_start() {
    support::secrets_manager_endpoint();
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let missing_arn = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:sms-verify/missing-{}",
        uuid::Uuid::new_v4().simple()
    );
    let env = support::function_env(&sandbox, "sms-auth-no-table-needed", &missing_arn);
    let mut function = support::spawn(BINARY, "sms-auth", &emulator, env);

    let error = support::assert_startup_failed(&mut function, &emulator).await;
    assert!(error.contains(&missing_arn) && error.contains("Secrets Manager"), "{error}");
    assert_eq!(emulator.init_error(), None, "the error is the exit, not /init/error");
    assert!(sandbox.messages().is_empty());
}

/// The operator rotates the client secret while an instance is warm: first on the auth server
/// (the sandbox), then in Secrets Manager. The next `/sms/auth` is refused with `invalid_client`,
/// the function reads the secret again, makes the call once more with the new one and sends the
/// SMS; later requests use the new secret without another read. A secret the auth server refuses
/// and Secrets Manager still holds is read once, not on every request, and answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_secret_is_read_again_after_invalid_client() {
    const ROTATED: &str = "sandbox-secret-rotated-1";
    let table = support::fresh_table("sms-auth").await;
    let secret_arn = support::create_secret(CLIENT_SECRET).await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut function =
        support::spawn(BINARY, "sms-auth", &emulator, support::function_env(&sandbox, &table, &secret_arn));
    support::cold_start(&emulator, &mut function).await;
    let send = || async { emulator.invoke(&event("sms-auth.json"), INVOKE_TIMEOUT).await.expect("answered") };
    assert_eq!(send().await["statusCode"], 200, "the secret read at cold start works");

    sandbox.rotate_secret(support::CLIENT, ROTATED);
    support::update_secret(&secret_arn, &json!({ "client_secret": ROTATED }).to_string()).await;
    let after_rotation = send().await;
    assert_eq!(after_rotation["statusCode"], 200, "{after_rotation}");
    assert_eq!(sandbox.stats().requests.auth, 3, "the refused request and its one retry");
    assert_eq!(send().await["statusCode"], 200);
    assert_eq!(sandbox.stats().requests.auth, 4, "the new secret is kept: no refusal, no retry");
    assert_eq!(sandbox.messages_to(PHONE).len(), 3, "one SMS per request");

    // Rotated on the auth server only: Secrets Manager still holds the refused secret. Within
    // the interval after the last read, nothing is read and nothing retried; after it, one read,
    // which finds the refused secret again. (Other numbers: this one has had its window's sends.)
    sandbox.rotate_secret(support::CLIENT, "sandbox-secret-rotated-2");
    let send_to = |phone: &'static str| {
        let mut other = event("sms-auth.json");
        let body = other["body"].as_str().expect("a JSON body").replace(PHONE, phone);
        other["body"] = body.into();
        let emulator = &emulator;
        async move { emulator.invoke(&other, INVOKE_TIMEOUT).await.expect("answered") }
    };
    assert_error(&send_to("+447400123457").await, 401, "invalid_client");
    assert_eq!(sandbox.stats().requests.auth, 5, "no read within the interval, so no retry");
    tokio::time::sleep(shared::rotation::MIN_REREAD_INTERVAL).await;
    assert_error(&send_to("+447400123458").await, 401, "invalid_client");
    assert_error(&send_to("+447400123458").await, 401, "invalid_client");
    assert_eq!(sandbox.stats().requests.auth, 7, "the read found no new secret: no retry");
    assert_eq!(sandbox.messages().len(), 3, "SMS only for the accepted requests");

    let events = |name: &str| {
        function.json_logs().into_iter().filter(|line| line["event"] == name).collect::<Vec<_>>()
    };
    assert!(function.wait_for_stdout(INVOKE_TIMEOUT, |_| !events("client_secret_refused").is_empty()).await);
    assert_eq!(events("client_secret_rotated").len(), 1, "one read found the new secret");
    assert_eq!(events("client_secret_refused").len(), 1, "one read, then none within the interval");
    support::assert_output_free_of(
        &function,
        &[("client secret", CLIENT_SECRET), ("rotated client secret", ROTATED), ("full phone number", PHONE)],
    );
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let table = support::fresh_table("sms-auth-sam-local").await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("SmsAuthFunction", Some(&sandbox), Some(table.as_str()));
    let mut function = support::spawn_clean(BINARY, "sms-auth", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    let sent = emulator.invoke(&event("sms-auth.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_eq!(sent["statusCode"], 200, "{sent}");
    assert_eq!(sandbox.messages_to(PHONE).len(), 1, "the SMS went out");
    assert_eq!(emulator.init_error(), None);
}

/// The SMS the real binary sends is the client's template for the request's `locale`, with the
/// autofill lines: the SMS Retriever hash, then `@<otp_domain> #<code>` as the last line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_the_localized_autofill_ready_sms() {
    let table = support::fresh_table("sms-auth").await;
    let secret_arn = support::create_secret(CLIENT_SECRET).await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut config = support::config(&sandbox);
    config["clients"][0]["sms_templates"] = json!({ "de": "Ihr Bestätigungscode: {{code}}" });
    config["clients"][0]["otp_domain"] = json!("app.example.com");
    config["clients"][0]["android_app_hash"] = json!("FA+9qCX9VSu");
    let mut env = support::function_env(&sandbox, &table, &secret_arn);
    env.retain(|(name, _)| name != "CONFIG_JSON");
    env.push(("CONFIG_JSON".into(), config.to_string()));
    let mut function = support::spawn(BINARY, "sms-auth", &emulator, env);
    support::cold_start(&emulator, &mut function).await;

    let request = json!({ "client_id": support::CLIENT, "login_hint": PHONE, "locale": "de-CH" });
    let sent = emulator
        .invoke(&apigw::with_json_body(event("sms-auth.json"), &request), INVOKE_TIMEOUT)
        .await
        .expect("answered");
    assert_eq!(sent["statusCode"], 200, "{sent}");
    let sms = &sandbox.messages_to(PHONE)[0];
    assert_eq!(sms.text, format!("Ihr Bestätigungscode: {0}\nFA+9qCX9VSu\n@app.example.com #{0}", sms.code));
}
