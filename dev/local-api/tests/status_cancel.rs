//! `/sms/status` and `/sms/cancel`, for an app that restarted mid-verification: where it stands
//! (attempts left, expiry, when a new SMS may be asked for), and ending it. Both find the
//! verification under exactly `/sms/token`'s rules, on both stores.

#[macro_use]
mod common;

use std::time::Duration;

use common::{CLIENT, PHONE, Started, StoreKind, System, wrong};
use serde_json::{Value, json};

/// The first resend delay of these tests' config, and its wrong-code limit.
const RESEND_DELAY: u64 = 30;
const MAX_WRONG_CODES: u64 = 3;

for_each_store!(
    status_follows_the_verification,
    status_finds_nothing_that_token_would_not,
    cancel_ends_the_verification_everywhere,
    cancel_refuses_what_token_refuses_and_keeps_a_completed_session,
);

async fn system(store: StoreKind, tweak: impl FnOnce(&mut Value)) -> System {
    System::start_with(store, common::sandbox_config(), |config| {
        config["limits"]["resend_delays_secs"] = json!([RESEND_DELAY, 2 * RESEND_DELAY]);
        config["limits"]["max_wrong_codes"] = json!(MAX_WRONG_CODES);
        tweak(config);
    })
    .await
}

fn reference(started: &Started) -> Value {
    json!({ "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce })
}

fn now(system: &System) -> u64 {
    use shared::clock::Clock;
    system.clock.now()
}

async fn status_follows_the_verification(store: StoreKind) {
    let system = system(store, |_| {}).await;
    let answer = system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await.json();
    let started = Started {
        auth_req_id: answer["auth_req_id"].as_str().unwrap().to_owned(),
        nonce: answer["nonce"].as_str().unwrap().to_owned(),
    };
    let sent_at = now(&system);
    // /sms/auth says when it expires; /sms/status says the same.
    assert_eq!(answer["expires_at"], sent_at + 120, "{answer}");

    let status = system.post("/sms/status", reference(&started)).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.headers["cache-control"], "no-store");
    // The sandbox's requests live 120 s; the resend delay runs from the SMS.
    let expected = json!({
        "status": "pending",
        "attempts_left": MAX_WRONG_CODES,
        "expires_at": sent_at + 120,
        "resend_after": sent_at + RESEND_DELAY,
    });
    assert_eq!(status.json(), expected);

    // A wrong code costs an attempt; the resend countdown has run down meanwhile.
    assert_eq!(system.token(&started, &wrong(&system.code_for(PHONE))).await.status, 400);
    system.clock.advance(Duration::from_secs(RESEND_DELAY));
    let status = system.post("/sms/status", reference(&started)).await.json();
    assert_eq!(status["attempts_left"], MAX_WRONG_CODES - 1, "{status}");
    assert_eq!(status["resend_after"], now(&system), "a new SMS may be asked for now: {status}");
    assert_eq!(status["expires_at"], sent_at + 120, "{status}");

    // Status reads only: asking again changes nothing, and the code still verifies.
    for _ in 0..3 {
        assert_eq!(system.post("/sms/status", reference(&started)).await.status, 200);
    }
    let verified = system.token(&started, &system.code_for(PHONE)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    // Used: found no more.
    let used = system.post("/sms/status", reference(&started)).await;
    assert_eq!((used.status.as_u16(), used.error()), (404, "verification_not_found".into()));
}

async fn status_finds_nothing_that_token_would_not(store: StoreKind) {
    // Several starts for one number back to back.
    let system = system(store, |config| config["limits"]["resend_delays_secs"] = json!([0])).await;
    let started = system.start_verification(PHONE).await;
    let not_found = |reply: common::Reply| {
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (404, "verification_not_found".into()),
            "{}",
            reply.text
        )
    };

    // Another nonce, or another auth_req_id: not found, and the body names neither.
    let mut other_nonce = reference(&started);
    other_nonce["nonce"] = json!("not-the-nonce");
    not_found(system.post("/sms/status", other_nonce).await);
    let mut other_id = reference(&started);
    other_id["auth_req_id"] = json!("not-the-auth-req-id");
    not_found(system.post("/sms/status", other_id).await);
    // Another client, another server: refused as /sms/token refuses them.
    let mut other_client = reference(&started);
    other_client["client_id"] = json!("another-client");
    assert_eq!(system.post("/sms/status", other_client).await.error(), "invalid_client");
    let mut other_server = reference(&started);
    other_server["server_id"] = json!("another-server");
    assert_eq!(system.post("/sms/status", other_server).await.error(), "unknown_server");
    // Bad bodies are 400s that name the field.
    let missing = system.post("/sms/status", json!({ "client_id": CLIENT, "nonce": "n" })).await;
    assert_eq!((missing.status.as_u16(), missing.error()), (400, "invalid_request".into()));

    // No attempts left: what /sms/token answers.
    for _ in 0..MAX_WRONG_CODES {
        system.token(&started, &wrong(&system.code_for(PHONE))).await;
    }
    let token = system.token(&started, &system.code_for(PHONE)).await;
    let status = system.post("/sms/status", reference(&started)).await;
    assert_eq!((status.status, status.error()), (token.status, token.error()), "{}", status.text);
    assert_eq!(status.error(), "too_many_attempts");

    // Replaced by a newer start for the number, and expired.
    let older = system.start_verification(PHONE).await;
    let newer = system.start_verification(PHONE).await;
    not_found(system.post("/sms/status", reference(&older)).await);
    assert_eq!(system.post("/sms/status", reference(&newer)).await.status, 200);
    system.clock.advance(Duration::from_secs(121));
    not_found(system.post("/sms/status", reference(&newer)).await);
}

async fn cancel_ends_the_verification_everywhere(store: StoreKind) {
    // One SMS per phone per window: a cancel must not give it back.
    let system = system(store, |config| config["limits"]["sends_per_phone_window"] = json!(1)).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);

    let cancelled = system.post("/sms/cancel", reference(&started)).await;
    assert_eq!(cancelled.status, 204, "{}", cancelled.text);
    assert_eq!(cancelled.text, "");
    assert_eq!(cancelled.headers["cache-control"], "no-store");

    for (path, body) in [
        ("/sms/token", System::token_body(&started, &code)),
        ("/sms/status", reference(&started)),
        ("/sms/cancel", reference(&started)),
    ] {
        let reply = system.post(path, body).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (404, "verification_not_found".into()), "{path}");
    }
    // The SMS it cost still counts.
    system.clock.advance(Duration::from_secs(RESEND_DELAY));
    let again = system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await;
    assert_eq!(again.status, 429, "{}", again.text);
    assert_eq!(again.json()["data"]["limit"], "phone_window_sends");
}

async fn cancel_refuses_what_token_refuses_and_keeps_a_completed_session(store: StoreKind) {
    let system = system(store, |_| {}).await;
    let started = system.start_verification(PHONE).await;

    // Another nonce cancels nothing: the code still verifies.
    let mut other_nonce = reference(&started);
    other_nonce["nonce"] = json!("not-the-nonce");
    assert_eq!(system.post("/sms/cancel", other_nonce).await.status, 404);
    let code = system.code_for(PHONE);
    let verified = system.token(&started, &code).await;
    assert_eq!(verified.status, 200, "{}", verified.text);

    // A used verification is not found, and cancelling it does not take the session from the
    // request that completed it: its retry after a lost answer still gets the same session.
    let cancel = system.post("/sms/cancel", reference(&started)).await;
    assert_eq!((cancel.status.as_u16(), cancel.error()), (404, "verification_not_found".into()));
    let replayed = system.token(&started, &code).await;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    assert_eq!(replayed.json()["session"], verified.json()["session"]);
}
