//! A local stand-in for the IPification auth server: Keycloak URL layout, OpenID CIBA in poll
//! mode with IPification's SMS channel. It is the upstream for every local run and test of the
//! backend, so it follows the protocol strictly; "sent" SMS land in an in-memory outbox, and
//! faults can be injected to exercise the backend's error paths.
//!
//! Start it in-process with [`Sandbox::start`], or run the `sandbox-auth` binary.

mod config;
mod control;
mod error;
mod faults;
mod outbox;
mod protocol;
mod random;
mod stats;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::{LoginHintFormat, SandboxClient, SandboxConfig};
pub use faults::{Endpoint, Fault};
pub use outbox::Message;
pub use stats::{RequestCounts, Stats};

use error::OAuthError;
use faults::Faults;
use outbox::Outbox;
use stats::Counters;
use store::Store;

/// A running sandbox. The server stops when this is dropped.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    // Dropping the sender resolves the server's shutdown future; nothing is ever sent.
    _shutdown: oneshot::Sender<()>,
}

impl Sandbox {
    /// Binds `addr` (tests pass "127.0.0.1:0"), spawns the server on the current tokio runtime
    /// and returns at once. Only loopback addresses are accepted: this server must never be
    /// reachable from outside the machine.
    pub async fn start(config: SandboxConfig, addr: SocketAddr) -> std::io::Result<Sandbox> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("sandbox-auth binds loopback addresses only, not {}", addr.ip()),
            ));
        }
        if config.realm.is_empty() || config.realm.contains('/') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "realm must be a non-empty path segment",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            base_url: format!("http://{addr}/auth"),
            store: Mutex::default(),
            outbox: Outbox::default(),
            faults: Faults::default(),
            counters: Counters::default(),
            rotated_secrets: Mutex::default(),
        });
        let counting = Arc::clone(&shared);
        let listener = listener.tap_io(move |_| counting.counters.connection());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&shared));
        tokio::spawn(async move {
            // Graceful: stop accepting, close idle keep-alive connections, let in-flight
            // requests finish. serve only fails on listener errors it cannot retry.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Sandbox { shared, addr, _shutdown: shutdown })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The auth server url to put in a backend config: "http://127.0.0.1:PORT/auth".
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The realm the sandbox serves (from its config).
    pub fn realm(&self) -> &str {
        &self.shared.config.realm
    }

    /// SMS sent to `phone` (matched by digits only), newest first.
    pub fn messages_to(&self, phone: &str) -> Vec<Message> {
        self.shared.outbox.list(Some(phone))
    }

    /// Every SMS sent, newest first.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.outbox.list(None)
    }

    /// Rotates `client_id`'s secret, as an operator does on the real auth server: from now on
    /// only `secret` authenticates it.
    pub fn rotate_secret(&self, client_id: &str, secret: &str) {
        lock(&self.shared.rotated_secrets).insert(client_id.to_owned(), secret.to_owned());
    }

    /// Adds a fault after those already active. A status outside 200..=599 answers 500.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.add(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }
}

// Other crates' tests move the handle across tasks and threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Sandbox>();
};

/// State shared by the handlers and the [`Sandbox`] handle.
pub(crate) struct Shared {
    config: SandboxConfig,
    base_url: String,
    store: Mutex<Store>,
    outbox: Outbox,
    faults: Faults,
    counters: Counters,
    /// Client secrets rotated since the start ([`Sandbox::rotate_secret`]), by client id: they
    /// replace the configured ones.
    rotated_secrets: Mutex<std::collections::HashMap<String, String>>,
}

impl Shared {
    /// What every upstream endpoint does first: count the request and apply a fault if one
    /// is active. `Some` is the fault's response, to send instead of handling the request.
    async fn enter(&self, endpoint: Endpoint) -> Option<Response> {
        self.counters.request(endpoint);
        self.faults.take(endpoint)?.apply().await
    }

    /// The secret that authenticates `client` now: its rotated one, else its configured one.
    fn secret_of(&self, client: &SandboxClient) -> String {
        lock(&self.rotated_secrets)
            .get(&client.client_id)
            .cloned()
            .unwrap_or_else(|| client.client_secret.clone())
    }

    fn check_realm(&self, realm: Result<Path<String>, PathRejection>) -> Result<(), OAuthError> {
        match realm {
            Ok(Path(realm)) if realm == self.config.realm => Ok(()),
            _ => Err(OAuthError::realm_not_found()),
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let oidc = "/auth/realms/{realm}/protocol/openid-connect";
    Router::new()
        .route(&format!("{oidc}/ext/ciba/auth"), post(protocol::ciba_auth))
        .route(&format!("{oidc}/ext/bc/sms/callback"), post(protocol::sms_callback))
        .route(&format!("{oidc}/token"), post(protocol::token))
        .route(&format!("{oidc}/userinfo"), get(protocol::userinfo).post(protocol::userinfo))
        .route("/auth/realms/{realm}/.well-known/openid-configuration", get(protocol::discovery))
        .route("/sandbox/messages", get(control::messages))
        .route("/sandbox/faults", post(control::add_fault).delete(control::clear_faults))
        .route("/sandbox/stats", get(control::stats))
        // Even unrouted requests get the JSON error shape clients parse.
        .fallback(|| async { OAuthError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            OAuthError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "method not allowed")
        })
        .with_state(shared)
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the data
/// consistent, so a panic elsewhere must not take the whole sandbox down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
