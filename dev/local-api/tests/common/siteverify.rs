//! A CAPTCHA provider's siteverify endpoint on 127.0.0.1, speaking the protocol Turnstile,
//! hCaptcha and reCAPTCHA share: a form POST of `secret`, `response` and `remoteip`, answered with
//! JSON `success`. With the right secret a token starting `pass` is good, once (tokens are
//! single-use); `fail-500`, `huge` and `redirect` make it answer as a broken or hostile provider.
//! Every request is recorded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;
use tokio::sync::oneshot;

/// The variable the test config's `secret_env` names, and the secret it holds.
pub const SECRET_ENV: &str = "TEST_CHALLENGE_SECRET";
pub const SECRET: &str = "siteverify-secret";

type Requests = Arc<Mutex<Vec<HashMap<String, String>>>>;

#[derive(Clone, Default)]
struct Shared {
    requests: Requests,
    spent: Arc<Mutex<Vec<String>>>,
}

pub struct Siteverify {
    /// The siteverify URL (`…/siteverify`).
    pub url: String,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl Siteverify {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/siteverify", post(siteverify))
            .route("/elsewhere", post(elsewhere))
            .with_state(shared.clone());
        let (addr, stop) = super::serve_on_loopback(app).await;
        let url = format!("http://{addr}/siteverify");
        Self { url, shared, _stop: stop }
    }

    /// The forms received so far, in order (`/elsewhere`'s too, marked `"path": "/elsewhere"`).
    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn siteverify(State(shared): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    shared.requests.lock().unwrap().push(form.clone());
    let token = form.get("response").cloned().unwrap_or_default();
    match token.as_str() {
        "fail-500" => return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        "huge" => {
            let padding = "x".repeat(64 * 1024);
            return (
                [(header::CONTENT_TYPE, "application/json")],
                format!("{{\"success\":true,\"p\":\"{padding}\"}}"),
            )
                .into_response();
        }
        "redirect" => {
            return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/elsewhere")]).into_response();
        }
        _ => {}
    }
    let fresh = !shared.spent.lock().unwrap().contains(&token);
    let success =
        form.get("secret").map(String::as_str) == Some(SECRET) && token.starts_with("pass") && fresh;
    if success {
        shared.spent.lock().unwrap().push(token);
    }
    let codes: Vec<&str> = if success { vec![] } else { vec!["invalid-input-response"] };
    axum::Json(json!({ "success": success, "error-codes": codes })).into_response()
}

/// Where `redirect` points: a provider that followed it would hand this the secret.
async fn elsewhere(State(shared): State<Shared>, Form(mut form): Form<HashMap<String, String>>) -> Response {
    form.insert("path".into(), "/elsewhere".into());
    shared.requests.lock().unwrap().push(form);
    axum::Json(json!({ "success": true })).into_response()
}
