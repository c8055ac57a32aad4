//! The real `sms-token` binary as Lambda runs it: started against a local Lambda Runtime API (the
//! `lambda-emulator`), with its secret in Secrets Manager (moto) and its state in DynamoDB
//! (DynamoDB Local), the sandbox as the auth server, and invoked with the repository's API Gateway
//! v2 events. The verification it completes is started in this test process by
//! `shared::api::sms_auth` on the same table and sandbox, so the two share state only through
//! DynamoDB, as the two functions do. Run by `scripts/test.sh`, which starts both.

#[path = "../../sms-auth/tests/support/mod.rs"]
mod support;

use lambda_emulator::{Emulator, apigw};
use sandbox_auth::Sandbox;
use serde_json::{Value, json};
use support::{CLIENT, CLIENT_SECRET, INVOKE_TIMEOUT, PHONE, assert_error, event};

const BINARY: &str = env!("CARGO_BIN_EXE_sms-token");

/// The signing keys' secret: RFC 8037's example Ed25519 key (appendix A.1), then another
/// published key, as during a rotation.
const KEYS_KID: &str = "test-2026-12";
const KEYS_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const KEYS: &str = r#"{"keys": [
  {"kty": "OKP", "crv": "Ed25519", "kid": "test-2026-12",
   "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
  {"kty": "OKP", "crv": "Ed25519", "kid": "test-2026-11", "x": "h8AA8Y2a_9ixC90K1sH_mXIVpxJDrvTHnnYO26Ge-zU"}
]}"#;

/// The function's environment as the template gives it: [`support::function_env`] and the
/// signing keys' secret (created in Secrets Manager).
async fn token_env(sandbox: &Sandbox, table: &str, secret_arn: &str) -> Vec<(String, String)> {
    let mut env = support::function_env(sandbox, table, secret_arn);
    let keys_arn = support::create_secret(KEYS).await;
    env.push(("VERIFICATION_KEYS_SECRET_ARN".to_owned(), keys_arn));
    env
}

/// The claims of `token` after checking its signature with the test key (RFC 8037's public `x`).
fn verified_claims(token: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({ "alg": "EdDSA", "kid": KEYS_KID, "typ": "JWT" }));
    let x: [u8; 32] = URL_SAFE_NO_PAD.decode(KEYS_X).unwrap().try_into().unwrap();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    VerifyingKey::from_bytes(&x).unwrap().verify(signed.as_bytes(), &signature).expect("signed by the key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// Starts a verification the way the `sms-auth` function does, on `table`: its `auth_req_id`,
/// `nonce` and the code the sandbox texted.
async fn start_verification(sandbox: &Sandbox, table: &str) -> (String, String, String) {
    let started = support::start_verification(sandbox, table).await;
    (started.auth_req_id, started.nonce, started.code)
}

/// One instance: the shipped event (placeholder ids) finds nothing, a wrongly typed body is
/// refused, the real ids and code verify and open a session (cookie included), a replay finds
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_a_number_on_one_warm_instance() {
    let table = support::fresh_table("sms-token").await;
    // The plain form of the secret.
    let secret_arn = support::create_secret(CLIENT_SECRET).await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut function =
        support::spawn(BINARY, "sms-token", &emulator, token_env(&sandbox, &table, &secret_arn).await);
    let (auth_req_id, nonce, code) = start_verification(&sandbox, &table).await;
    let cold_start = support::cold_start(&emulator, &mut function).await;
    println!("sms-token cold start (debug build, secret from Secrets Manager): {cold_start:?}");

    let shipped = emulator.invoke(&event("sms-token.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&shipped, 404, "verification_not_found");
    let wrong_type = emulator.invoke(&event("sms-token-wrong-type.json"), INVOKE_TIMEOUT).await.unwrap();
    assert_error(&wrong_type, 400, "invalid_request");

    let request = json!({ "code": code, "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce });
    let token_event = apigw::with_json_body(event("sms-token.json"), &request);
    let verified = emulator.invoke(&token_event, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(verified["statusCode"], 200, "{}", verified["body"]);
    assert_eq!(verified["isBase64Encoded"], false);
    assert_eq!(apigw::header(&verified, "content-type"), Some("application/json"));
    assert_eq!(apigw::header(&verified, "cache-control"), Some("no-store"));
    assert_eq!(apigw::header(&verified, "set-cookie"), None, "API Gateway v2 takes cookies in `cookies`");
    let body = apigw::body_json(&verified);
    assert_eq!(body["phone_number"], PHONE);
    assert_eq!(body["phone_number_verified"], true);
    assert_eq!(body["auth_server"], json!({ "id": "sandbox", "url": sandbox.url() }));
    assert!(body["sub"].as_str().is_some_and(|sub| !sub.is_empty()));
    let session = body["session"].as_str().expect("session").to_owned();
    assert!(session.len() >= 40, "a 256-bit token");
    // The signed result: the key's, the event's API's URL as issuer, the number the SMS went to.
    let region = std::env::var("AWS_REGION").expect("the tests' region");
    let issuer = format!("https://abcdef1234.execute-api.{region}.amazonaws.com");
    let claims = verified_claims(body["verification_token"].as_str().expect("a verification_token"));
    assert_eq!(
        (
            &claims["iss"],
            &claims["aud"],
            &claims["sub"],
            &claims["phone_number"],
            &claims["phone_number_verified"]
        ),
        (&json!(issuer), &json!(CLIENT), &body["sub"], &json!(PHONE), &json!(true)),
        "{claims}"
    );
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 300, "{claims}");
    let jwks = emulator.invoke(&event("jwks.json"), INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(jwks["statusCode"], 200, "{jwks}");
    assert_eq!(apigw::header(&jwks, "cache-control"), Some("public, max-age=300"));
    let published = apigw::body_json(&jwks);
    let kids: Vec<&str> =
        published["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [KEYS_KID, "test-2026-11"], "the signing key, then the other: {published}");
    assert_eq!(published["keys"][0]["x"], KEYS_X);
    assert!(!published.to_string().contains("\"d\""), "no private part: {published}");
    let cookies = apigw::cookies(&verified);
    assert_eq!(cookies.len(), 1, "one cookie");
    let cookie = &cookies[0];
    assert!(cookie.starts_with(&format!("sms_session={session};")), "the cookie carries the session");
    for attribute in ["Path=/", "Max-Age=3600", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(cookie.split("; ").any(|part| part == attribute), "cookie attribute {attribute} missing");
    }

    // The same request again (its answer lost, say): the same session, not a second one.
    let replay = emulator.invoke(&token_event, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(replay["statusCode"], 200, "{}", replay["body"]);
    assert_eq!(apigw::body_json(&replay)["session"], session);
    let replayed = verified_claims(apigw::body_json(&replay)["verification_token"].as_str().unwrap());
    assert_eq!(replayed["jti"], claims["jti"], "one jti per verification, a replay's too");
    assert!(function.try_wait().unwrap().is_none(), "the instance keeps running between invocations");
    assert_eq!(emulator.init_error(), None);

    let done =
        |out: &str| out.matches("\"event\":\"sms_token_").count() >= 4 && out.contains("jwks_published");
    assert!(function.wait_for_stdout(INVOKE_TIMEOUT, done).await, "4 summary lines");
    let events: Vec<String> = function
        .json_logs()
        .iter()
        .filter_map(|line| line["event"].as_str().filter(|e| e.starts_with("sms_token_")).map(str::to_owned))
        .collect();
    assert_eq!(
        events,
        [
            "sms_token_verification_not_found",
            "sms_token_invalid_request",
            "sms_token_verified",
            "sms_token_verified"
        ]
    );
    support::assert_output_free_of(
        &function,
        &[
            ("client secret", CLIENT_SECRET),
            ("auth_req_id", &auth_req_id),
            ("session token", &session),
            ("nonce", &nonce),
            ("verification_token", body["verification_token"].as_str().unwrap()),
            ("signing key", "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"),
        ],
    );
}

/// Without the signing keys' secret the function does not start, and says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_signing_keys_stop_the_cold_start() {
    let secret_arn = support::create_secret(CLIENT_SECRET).await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::function_env(&sandbox, "sms-token-no-table-needed", &secret_arn);
    let mut function = support::spawn(BINARY, "sms-token", &emulator, env);
    let error = support::assert_startup_failed(&mut function, &emulator).await;
    assert!(error.contains("VERIFICATION_KEYS_SECRET_ARN"), "{error}");
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
    let env = support::function_env(&sandbox, "sms-token-no-table-needed", &missing_arn);
    let mut function = support::spawn(BINARY, "sms-token", &emulator, env);

    let error = support::assert_startup_failed(&mut function, &emulator).await;
    assert!(error.contains(&missing_arn), "{error}");
}

/// The client secret rotates between the SMS and the code (on the auth server, then in Secrets
/// Manager) while the instance is warm: the token request is refused with `invalid_client`, the
/// function reads the secret again and redeems the code with the new one. The user's right code
/// is not lost to the rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_mid_verification_still_verifies_the_code() {
    const ROTATED: &str = "sandbox-secret-rotated";
    let table = support::fresh_table("sms-token").await;
    let secret_arn = support::create_secret(CLIENT_SECRET).await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let mut function =
        support::spawn(BINARY, "sms-token", &emulator, token_env(&sandbox, &table, &secret_arn).await);
    let (auth_req_id, nonce, code) = start_verification(&sandbox, &table).await;
    support::cold_start(&emulator, &mut function).await;

    sandbox.rotate_secret(CLIENT, ROTATED);
    support::update_secret(&secret_arn, ROTATED).await;
    let request = json!({ "code": code, "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce });
    let verified = emulator
        .invoke(&apigw::with_json_body(event("sms-token.json"), &request), INVOKE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(verified["statusCode"], 200, "{verified}");
    assert_eq!(apigw::body_json(&verified)["phone_number"], PHONE);
    assert!(
        function
            .wait_for_stdout(INVOKE_TIMEOUT, |_| function
                .json_logs()
                .iter()
                .any(|line| line["event"] == "client_secret_rotated"))
            .await,
        "the rotation is logged"
    );
    support::assert_output_free_of(
        &function,
        &[
            ("client secret", CLIENT_SECRET),
            ("rotated client secret", ROTATED),
            ("auth_req_id", &auth_req_id),
        ],
    );
}

/// The function starts and serves its event with exactly what dev/sam-local/env-vars.json gives
/// it for `sam local` (README, "Invoke the functions locally"), and nothing inherited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_sam_local_env_vars_file_alone() {
    let table = support::fresh_table("sms-token-sam-local").await;
    let sandbox = support::start_sandbox().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let env = support::sam_local_env("SmsTokenFunction", Some(&sandbox), Some(table.as_str()));
    let mut function = support::spawn_clean(BINARY, "sms-token", &emulator, env);
    support::cold_start(&emulator, &mut function).await;
    // The shipped event's placeholders: the table is read, and has no such verification.
    let shipped = emulator.invoke(&event("sms-token.json"), INVOKE_TIMEOUT).await.expect("answered");
    assert_error(&shipped, 404, "verification_not_found");
    assert_eq!(emulator.init_error(), None);
}

/// The signing keys as an instance holds them through a rotation (README, "The signed result"):
/// the secret read again once its interval is over (here at once), the new key signing after the
/// swap while the old stays published, and a secret that cannot be used leaving the keys as
/// they were rather than stopping the signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_keys_follow_a_rotation_and_survive_a_bad_secret() {
    use shared::{rotation::SecretsManagerSecret, signed_result::KeyRing};
    let arn = support::create_secret(KEYS).await;
    let sdk = shared::aws::sdk_config_from_env().expect("the SDK config");
    let config = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .endpoint_url(support::secrets_manager_endpoint())
        .build();
    let source =
        SecretsManagerSecret { client: aws_sdk_secretsmanager::Client::from_conf(config), arn: arn.clone() };
    let ring = KeyRing::from_secret(source).await.expect("the keys").reread_every(std::time::Duration::ZERO);
    assert_eq!(ring.current().await.kid(), KEYS_KID);

    // The swap: the other key signs now, this one stays published beside it.
    let other: Value = serde_json::from_str(KEYS).unwrap();
    let next_key = shared::signed_result::SigningKeys::generate_named("test-2027-01");
    let mut next: Value = serde_json::from_str(next_key.private_jwks().expose()).unwrap();
    next["keys"].as_array_mut().unwrap().push(other["keys"][0].clone());
    support::update_secret(&arn, &next.to_string()).await;
    let keys = ring.current().await;
    assert_eq!(keys.kid(), "test-2027-01");
    let published: Vec<String> = keys.public_jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, ["test-2027-01", KEYS_KID]);

    // A broken secret: the keys read last go on.
    support::update_secret(&arn, "{\"keys\": []}").await;
    assert_eq!(ring.current().await.kid(), "test-2027-01");
}
