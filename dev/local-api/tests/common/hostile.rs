//! A hostile or broken auth server on 127.0.0.1, over real HTTP: the four CIBA endpoints of the
//! protocol at `/ciba`, `/callback`, `/token` and `/userinfo`, answering well by default and, per
//! endpoint, with the scripted answers a test queues first (redirects, huge bodies, absurd
//! numbers, leaky error descriptions, claims for another number). `/capture` is where its
//! redirects point: whatever reaches it would be a followed redirect. Every request is recorded.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A status and a JSON body.
    Json(u16, Value),
    /// A redirect with this status to `/capture`.
    Redirect(u16),
    /// A JSON-looking body of `bytes` bytes, streamed in 64 KiB chunks; the server counts what it
    /// managed to write before the client hung up ([`Hostile::huge_bytes_written`]).
    Huge { status: u16, bytes: usize },
    /// This answer after a delay.
    Delayed(Duration, Box<Answer>),
}

/// A request as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    /// Form fields (or, for a JSON body, its top-level string fields).
    pub fields: HashMap<String, String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    queues: Mutex<HashMap<String, VecDeque<Answer>>>,
    requests: Mutex<Vec<Recorded>>,
    huge_written: Arc<AtomicUsize>,
}

pub struct Hostile {
    pub base: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Hostile {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(any(endpoint)).with_state(shared.clone());
        let (addr, stop) = super::serve_on_loopback(app).await;
        let base = format!("http://{addr}");
        Self { base, shared, _stop: stop }
    }

    /// Points the service config's first auth server at this server.
    pub fn configure(&self, config: &mut Value) {
        config["auth_servers"][0] = json!({
            "id": "sandbox",
            "url": format!("{}/auth", self.base),
            "endpoints": {
                "ciba_auth": format!("{}/ciba", self.base),
                "sms_callback": format!("{}/callback", self.base),
                "token": format!("{}/token", self.base),
                "userinfo": format!("{}/userinfo", self.base),
            }
        });
    }

    /// Queues `answer` for the next request to `endpoint` (`ciba`, `callback`, `token`,
    /// `userinfo`).
    pub fn then(&self, endpoint: &str, answer: Answer) {
        self.shared.queues.lock().unwrap().entry(format!("/{endpoint}")).or_default().push_back(answer);
    }

    pub fn requests_to(&self, endpoint: &str) -> Vec<Recorded> {
        let path = format!("/{endpoint}");
        self.shared.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    pub fn huge_bytes_written(&self) -> usize {
        self.shared.huge_written.load(Ordering::SeqCst)
    }
}

async fn endpoint(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    let fields: HashMap<String, String> = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => {
            map.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned()))).collect()
        }
        _ => reqwest::Url::parse(&format!("http://form/?{text}"))
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default(),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let login_hint = shared
        .requests
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|r| (r.path == "/ciba").then(|| r.fields.get("login_hint").cloned()).flatten());
    shared.requests.lock().unwrap().push(Recorded {
        path: path.clone(),
        fields: fields.clone(),
        authorization,
    });
    let scripted = shared.queues.lock().unwrap().get_mut(&path).and_then(VecDeque::pop_front);
    let answer = scripted.unwrap_or_else(|| well_behaved(&path, &fields, login_hint.as_deref()));
    respond(answer, &shared).await
}

/// What a correct auth server answers.
fn well_behaved(path: &str, fields: &HashMap<String, String>, login_hint: Option<&str>) -> Answer {
    let token = || shared::crypto::new_token();
    match path {
        "/ciba" => Answer::Json(200, json!({ "auth_req_id": token(), "expires_in": 120, "interval": 1 })),
        "/callback" => Answer::Json(200, json!({})),
        "/token" => Answer::Json(200, json!({ "access_token": token(), "token_type": "Bearer" })),
        "/userinfo" => {
            let digits = login_hint.unwrap_or_default().trim_start_matches('+');
            Answer::Json(
                200,
                json!({ "sub": "s-1", "phone_number": format!("+{digits}"), "phone_number_verified": true }),
            )
        }
        "/capture" => Answer::Json(
            200,
            json!({ "auth_req_id": "captured", "expires_in": 120, "captured": fields.len() }),
        ),
        _ => Answer::Json(404, json!({ "error": "not_found" })),
    }
}

async fn respond(answer: Answer, shared: &Shared) -> Response {
    let status = |code: u16| StatusCode::from_u16(code).expect("a valid status");
    match answer {
        Answer::Json(code, body) => (status(code), axum::Json(body)).into_response(),
        Answer::Redirect(code) => (status(code), [(header::LOCATION, "/capture")]).into_response(),
        Answer::Huge { status: code, bytes } => {
            let written = Arc::clone(&shared.huge_written);
            let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
            let stream = futures_util::stream::unfold(0usize, move |sent| {
                let (chunk, written) = (chunk.clone(), Arc::clone(&written));
                async move {
                    if sent >= bytes {
                        return None;
                    }
                    // Counted when the previous chunk has been taken by the connection.
                    written.store(sent, Ordering::SeqCst);
                    let part = if sent == 0 { Bytes::from_static(b"{\"auth_req_id\":\"") } else { chunk };
                    let next = sent + part.len();
                    Some((Ok::<_, std::io::Error>(part), next))
                }
            });
            Response::builder()
                .status(status(code))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Answer::Delayed(delay, answer) => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*answer, shared)).await
        }
    }
}
