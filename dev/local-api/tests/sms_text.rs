//! The SMS as the user gets it (the sandbox's outbox): the client's template for the request's
//! `locale` (exact tag, then its language, then `sms_template`), with the autofill lines, and the
//! code in it still verifies.

mod common;

use common::{CLIENT, PHONE, StoreKind, System};
use serde_json::json;

const HASH: &str = "FA+9qCX9VSu";

async fn localized_system() -> System {
    System::start_with(StoreKind::Memory, common::sandbox_config(), |config| {
        let client = &mut config["clients"][0];
        client["sms_template"] = json!("Your code: {{code}}");
        client["sms_templates"] = json!({ "de": "Ihr Code: {{code}}", "pt-BR": "Seu código: {{code}}" });
        client["otp_domain"] = json!("app.example.com");
        client["android_app_hash"] = json!(HASH);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_is_in_the_users_language_and_ready_for_autofill() {
    let system = localized_system().await;
    for (n, (locale, text)) in [
        (Some("de-AT"), "Ihr Code: "),
        (Some("PT-br"), "Seu código: "),
        (Some("fr"), "Your code: "),
        (None, "Your code: "),
    ]
    .into_iter()
    .enumerate()
    {
        let phone = format!("+44740012345{n}");
        let mut body = json!({ "client_id": CLIENT, "login_hint": phone });
        if let Some(locale) = locale {
            body["locale"] = json!(locale);
        }
        let reply = system.post("/sms/auth", body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let sms = &system.sandbox.messages_to(&phone)[0];
        assert_eq!(
            sms.text,
            format!("{text}{code}\n{HASH}\n@app.example.com #{code}", code = sms.code),
            "{locale:?}: the template, then the SMS Retriever hash, then the origin-bound line last"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_of_a_localized_sms_verifies() {
    let system = localized_system().await;
    let reply =
        system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE, "locale": "de" })).await;
    let body = reply.json();
    let started = common::Started {
        auth_req_id: body["auth_req_id"].as_str().unwrap().to_owned(),
        nonce: body["nonce"].as_str().unwrap().to_owned(),
    };
    let verified = system.token(&started, &system.code_for(PHONE)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    // A locale that is not a string, or far too long, is refused before anything is sent.
    for locale in [json!(7), json!("x".repeat(36))] {
        let body = json!({ "client_id": CLIENT, "login_hint": "+447400123459", "locale": locale });
        assert_eq!(system.post("/sms/auth", body).await.status, 400);
    }
}
