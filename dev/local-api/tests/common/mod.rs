//! A whole system for a test: the sandbox auth server and `local-api` on free loopback ports,
//! with the chosen state store, talked to over real HTTP.

#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc};

use reqwest::{StatusCode, header::HeaderMap};
use sandbox_auth::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use shared::{
    App,
    config::Config,
    store::{MemoryStore, StateStore},
};
use tokio::{net::TcpListener, sync::oneshot};

pub const PHONE: &str = "+447700900123";
pub const CLIENT: &str = "sandbox-client";

#[derive(Clone, Copy, Debug)]
pub enum StoreKind {
    Memory,
}

pub struct System {
    pub sandbox: Sandbox,
    pub base: String,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// What `/sms/auth` returned.
#[derive(Clone, Debug)]
pub struct Started {
    pub auth_req_id: String,
    pub nonce: String,
}

/// The sandbox as most tests want it: quiet, quick to poll, with a higher wrong-code limit than
/// ours, so that our own limit is what a test meets.
pub fn sandbox_config() -> SandboxConfig {
    SandboxConfig { quiet: true, interval: Some(1), max_wrong_codes: 20, ..SandboxConfig::default() }
}

/// The service config for a sandbox at `url`, with short timeouts so fault tests are quick.
pub fn service_config(url: &str) -> Value {
    json!({
        "realm": "ipification",
        "auth_servers": [{ "id": "sandbox", "url": url }],
        "client_id": CLIENT,
        "client_secret": "sandbox-secret",
        "clients": [{ "user_flow": "pvn_sms", "title": "SMS", "scope": "openid ip:phone_verify" }],
        "upstream": { "connect_timeout_ms": 500, "request_timeout_ms": 1000, "token_budget_ms": 4000 }
    })
}

impl System {
    pub async fn start(store: StoreKind) -> Self {
        Self::start_with(store, sandbox_config(), |_| {}).await
    }

    pub async fn start_with(
        store: StoreKind,
        sandbox: SandboxConfig,
        tweak: impl FnOnce(&mut Value),
    ) -> Self {
        let sandbox = Sandbox::start(sandbox, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("sandbox");
        let mut config = service_config(&sandbox.url());
        tweak(&mut config);
        let config = Config::parse(&config.to_string(), None).expect("valid test config");
        let store: Arc<dyn StateStore> = match store {
            StoreKind::Memory => Arc::new(MemoryStore::new()),
        };
        let app = Arc::new(App::new(config, store).expect("app"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(local_api::serve(listener, app, async {
            let _ = stopped.await;
        }));
        Self { sandbox, base, http: reqwest::Client::new(), _stop: stop }
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("local-api answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Reply { status, headers, text }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_raw(path, "application/json", body.to_string()).await
    }

    /// `/sms/auth` for `phone` with the default client; panics unless it succeeds.
    pub async fn start_verification(&self, phone: &str) -> Started {
        let reply = self.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": phone })).await;
        assert_eq!(reply.status, 200, "sms/auth: {}", reply.text);
        let body = reply.json();
        Started {
            auth_req_id: body["auth_req_id"].as_str().unwrap().to_owned(),
            nonce: body["nonce"].as_str().unwrap().to_owned(),
        }
    }

    /// The code of the newest SMS the sandbox sent to `phone`.
    pub fn code_for(&self, phone: &str) -> String {
        self.sandbox.messages_to(phone).first().expect("an SMS was sent").code.clone()
    }

    pub async fn token(&self, started: &Started, code: &str) -> Reply {
        self.post(
            "/sms/token",
            json!({ "code": code, "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce }),
        )
        .await
    }
}

/// A 6-digit code that differs from `code`.
pub fn wrong(code: &str) -> String {
    let first = if code.starts_with('9') { '1' } else { '9' };
    format!("{first}{}", &code[1..])
}
