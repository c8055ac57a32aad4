//! The challenge gate through `local-api` on both stores, against a siteverify server on
//! 127.0.0.1 that speaks the providers' protocol: no SMS leaves without a good token, a refusal
//! counts nothing, and a broken or hostile provider lets nothing through.

#[macro_use]
mod common;

use common::{
    CLIENT, PHONE, Reply, StoreKind, System, sandbox_config,
    siteverify::{SECRET, SECRET_ENV, Siteverify},
};
use serde_json::json;

for_each_store!(
    no_sms_without_a_good_token,
    a_broken_or_hostile_provider_lets_nothing_through,
    the_clients_list_says_which_widget_to_show,
);

async fn gated(store: StoreKind, siteverify: &Siteverify) -> System {
    let url = siteverify.url.clone();
    System::start_with(store, sandbox_config(), move |config| {
        config["clients"][0]["challenge"] = json!({
            "provider": "turnstile", "secret_env": SECRET_ENV, "verify_url": url, "site_key": "0x4AAAAtest"
        });
        // One SMS per window: a refusal that counted would show.
        config["limits"]["sends_per_phone_window"] = json!(1);
    })
    .await
}

async fn start(system: &System, token: Option<&str>) -> Reply {
    let mut body = json!({ "client_id": CLIENT, "login_hint": PHONE });
    if let Some(token) = token {
        body["challenge_token"] = json!(token);
    }
    system.post("/sms/auth", body).await
}

fn assert_refused(reply: &Reply, status: u16, error: &str) {
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (status, error), "{}", reply.text);
}

async fn no_sms_without_a_good_token(store: StoreKind) {
    let siteverify = Siteverify::start().await;
    let system = gated(store, &siteverify).await;
    assert_refused(&start(&system, None).await, 403, "challenge_failed");
    assert!(siteverify.requests().is_empty(), "no token, nothing to ask");
    assert_refused(&start(&system, Some("wrong-token")).await, 403, "challenge_failed");
    let asked = &siteverify.requests()[0];
    assert_eq!(
        (asked["secret"].as_str(), asked["response"].as_str(), asked["remoteip"].as_str()),
        (SECRET, "wrong-token", "127.0.0.1"),
        "the siteverify form"
    );
    assert!(system.sandbox.messages_to(PHONE).is_empty(), "no SMS");
    assert_eq!(system.sandbox.stats().requests.auth, 0, "the upstream was never asked");

    // Nothing was counted: the phone's one SMS of the window is still there.
    assert_eq!(start(&system, Some("pass-1")).await.status, 200);
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 1);
    // A token verifies once.
    system.clock.advance(std::time::Duration::from_secs(600));
    assert_refused(&start(&system, Some("pass-1")).await, 403, "challenge_failed");
    assert_eq!(start(&system, Some("pass-2")).await.status, 200);
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 2);
}

async fn a_broken_or_hostile_provider_lets_nothing_through(store: StoreKind) {
    let siteverify = Siteverify::start().await;
    let system = gated(store, &siteverify).await;
    for token in ["fail-500", "huge", "redirect"] {
        let reply = start(&system, Some(token)).await;
        assert_refused(&reply, 503, "challenge_unavailable");
        assert!(reply.text.contains("retry") && !reply.text.contains(SECRET), "{}", reply.text);
    }
    assert!(
        siteverify.requests().iter().all(|form| !form.contains_key("path")),
        "the redirect was not followed with the secret"
    );
    assert!(system.sandbox.messages_to(PHONE).is_empty());
    assert_eq!(start(&system, Some("pass-after")).await.status, 200, "nothing was counted");
}

async fn the_clients_list_says_which_widget_to_show(store: StoreKind) {
    let siteverify = Siteverify::start().await;
    let system = gated(store, &siteverify).await;
    let reply = system.get("/sms/clients").await;
    assert_eq!(reply.status, 200);
    let client = &reply.json()["clients"][0];
    assert_eq!(client["challenge"], json!({ "provider": "turnstile", "site_key": "0x4AAAAtest" }));
    assert!(!reply.text.contains(SECRET), "the secret stays on the server");
}
