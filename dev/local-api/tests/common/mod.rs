//! A whole system for a test: the sandbox auth server and `local-api` on free loopback ports,
//! with the chosen state store, talked to over real HTTP.

#![allow(dead_code)]

pub mod hostile;
pub mod logs;
pub mod siteverify;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use aws_sdk_dynamodb::config::{
    ConfigBag, Intercept, RuntimeComponents, interceptors::BeforeTransmitInterceptorContextRef,
};

use reqwest::{StatusCode, header::HeaderMap};
use sandbox_auth::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use shared::{
    App,
    clock::ManualClock,
    config::Config,
    store::{DynamoStore, MemoryStore, StateStore},
};
use tokio::{net::TcpListener, sync::oneshot};

/// Runs each named `async fn case(store: StoreKind)` once per state store, as its own test.
#[allow(unused_macros)] // not every test file runs per store
macro_rules! for_each_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::StoreKind::Memory).await })*
        }
        mod dynamo {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::StoreKind::Dynamo).await })*
        }
    };
}

pub const PHONE: &str = "+447400123456";
pub const CLIENT: &str = "sandbox-client";

#[derive(Clone, Copy, Debug)]
pub enum StoreKind {
    Memory,
    /// A fresh table on the DynamoDB Local server that `scripts/test.sh` starts.
    Dynamo,
}

pub struct System {
    pub sandbox: Sandbox,
    pub base: String,
    pub http: reqwest::Client,
    /// The DynamoDB store's table and the number of DynamoDB calls made so far (Dynamo only).
    pub dynamo: Option<(DynamoStore, DynamoCalls)>,
    /// The API's clock: a test moves it to see expiry and limit windows pass, without waiting.
    pub clock: Arc<ManualClock>,
    _stop: oneshot::Sender<()>,
}

/// Counts every DynamoDB request the SDK sends (each attempt, retries included), and records what
/// each asks IAM for: the action of every item it touches (a transaction's items are authorised
/// as their own `PutItem`, `UpdateItem`, ... ) and the item key's prefix (`v#`, `s#`, ...), which
/// is what `dynamodb:LeadingKeys` in `template.yaml` restricts.
#[derive(Clone, Debug, Default)]
pub struct DynamoCalls {
    count: Arc<AtomicUsize>,
    accesses: Arc<Mutex<Vec<(String, String)>>>,
}

impl DynamoCalls {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Every (IAM action, key prefix) requested so far, in order.
    pub fn accesses(&self) -> Vec<(String, String)> {
        self.accesses.lock().unwrap().clone()
    }
}

/// The (action, key prefix) pairs of one DynamoDB request, from its `X-Amz-Target` and body.
fn accesses_of(target: &str, body: &Value) -> Vec<(String, String)> {
    let prefix = |key: &Value| {
        let pk = key["pk"]["S"].as_str().unwrap_or_default();
        pk.find('#').map_or(pk, |at| &pk[..=at]).to_owned()
    };
    let operation = target.rsplit('.').next().unwrap_or(target);
    match operation {
        "GetItem" | "UpdateItem" | "DeleteItem" => vec![(operation.to_owned(), prefix(&body["Key"]))],
        "PutItem" => vec![(operation.to_owned(), prefix(&body["Item"]))],
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, inner) = item.as_object()?.iter().next()?;
                let action = format!("{kind}Item");
                let key = if kind == "Put" { &inner["Item"] } else { &inner["Key"] };
                Some((action, prefix(key)))
            })
            .collect(),
        // Table management (the tests' own CreateTable, DescribeTable, ...): no item.
        other => vec![(other.to_owned(), String::new())],
    }
}

impl Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "DynamoCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default().to_owned();
        let body = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        self.accesses.lock().unwrap().extend(accesses_of(&target, &body));
        Ok(())
    }
}

/// A DynamoDB client for the DynamoDB Local server of `scripts/test.sh`, counting its calls.
pub async fn dynamo_client(calls: &DynamoCalls) -> aws_sdk_dynamodb::Client {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
        "the DynamoDB tests need a DynamoDB Local server: run them through scripts/test.sh"
    );
    let sdk = shared::aws::sdk_config_from_env().expect("the SDK config from the environment");
    let config = shared::aws::dynamodb_config(&sdk).interceptor(calls.clone()).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A new, empty table on DynamoDB Local, with TTL.
pub async fn fresh_table() -> (DynamoStore, DynamoCalls) {
    let calls = DynamoCalls::default();
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(dynamo_client(&calls).await, table);
    store.create_table_if_missing().await.expect("create the test table on DynamoDB Local");
    (store, calls)
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

/// The service config for a sandbox at `url`, with short timeouts so fault tests are quick and
/// limits high enough not to interfere.
pub fn service_config(url: &str) -> Value {
    json!({
        "realm": "ipification",
        "auth_servers": [{ "id": "sandbox", "url": url }],
        "client_id": CLIENT,
        "client_secret": "sandbox-secret",
        "clients": [{ "user_flow": "pvn_sms", "title": "SMS", "scope": "openid ip:phone_verify" }],
        "upstream": { "connect_timeout_ms": 500, "request_timeout_ms": 1000, "token_budget_ms": 4000 },
        // Most tests start many verifications for one number from one address: limits out of
        // their way. The limit tests set their own.
        "limits": {
            "sends_per_phone_window": 1000, "sends_per_phone_day": 1000,
            "resend_delays_secs": [0], "starts_per_ip_hour": 1000, "sends_per_range_hour": 1000
        }
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
        let dynamo = match store {
            StoreKind::Memory => None,
            StoreKind::Dynamo => Some(fresh_table().await),
        };
        let state: Arc<dyn StateStore> = match &dynamo {
            None => Arc::new(MemoryStore::new()),
            Some((store, _)) => Arc::new(store.clone()),
        };
        let mut system = Self::start_with_store(state, sandbox, tweak).await;
        system.dynamo = dynamo;
        system
    }

    pub async fn start_with_store(
        store: Arc<dyn StateStore>,
        sandbox: SandboxConfig,
        tweak: impl FnOnce(&mut Value),
    ) -> Self {
        let sandbox = Sandbox::start(sandbox, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("sandbox");
        let mut config = service_config(&sandbox.url());
        tweak(&mut config);
        // The secrets a config names by variable come from the test, not the process's environment.
        let env = |name: &str| (name == siteverify::SECRET_ENV).then(|| siteverify::SECRET.to_owned());
        let config = Config::parse_with_env(&config.to_string(), None, &env).expect("valid test config");
        let clock = Arc::new(ManualClock::new());
        let app = Arc::new(App::with_clock(config, store, clock.clone()).expect("app"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(local_api::serve(listener, app, async {
            let _ = stopped.await;
        }));
        Self { sandbox, base, http: reqwest::Client::new(), dynamo: None, clock, _stop: stop }
    }

    /// Makes the following requests from `ip`, a loopback address: to the limits, every source
    /// address is its own network (`local-api` takes it from the connection, as API Gateway does).
    pub fn connect_from(&mut self, ip: &str) {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        self.http = reqwest::Client::builder().local_address(ip).build().expect("an HTTP client");
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

    pub async fn get(&self, path: &str) -> Reply {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.expect("local-api answers");
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

    /// Sends the same POST `n` times at once.
    pub async fn post_parallel(&self, path: &str, body: Value, n: usize) -> Vec<Reply> {
        post_parallel(std::slice::from_ref(&self.base), path, body, n).await
    }

    pub fn token_body(started: &Started, code: &str) -> Value {
        json!({ "code": code, "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce })
    }

    pub async fn token(&self, started: &Started, code: &str) -> Reply {
        self.post(
            "/sms/token",
            json!({ "code": code, "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce }),
        )
        .await
    }
}

/// Serves `app` on a free 127.0.0.1 port until the returned sender is dropped: the test servers'
/// (siteverify, the hostile upstream) one way to run.
pub async fn serve_on_loopback(app: axum::Router) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, stop)
}

/// A 6-digit code that differs from `code`.
pub fn wrong(code: &str) -> String {
    let first = if code.starts_with('9') { '1' } else { '9' };
    format!("{first}{}", &code[1..])
}

/// Sends the same POST `n` times at once, spread round-robin over the API instances at `bases`.
pub async fn post_parallel(bases: &[String], path: &str, body: Value, n: usize) -> Vec<Reply> {
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let request = http.post(format!("{}{path}", bases[i % bases.len()])).json(&body);
        tasks.spawn(async move {
            let response = request.send().await.expect("local-api answers");
            let status = response.status();
            let headers = response.headers().clone();
            Reply { status, headers, text: response.text().await.expect("body") }
        });
    }
    tasks.join_all().await
}

/// One `local-api` process on a free port, stopped when dropped.
pub struct Instance {
    child: Child,
    pub base: String,
    /// The `local_api_started` log line.
    pub started: Value,
    /// Every line it wrote to stdout after the start line, as CloudWatch would collect them.
    output: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_local-api"))
            .args(args)
            .env_remove("TABLE_NAME")
            .envs(env.iter().copied())
            .env("PORT", "0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start local-api");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = loop {
            let line = lines.next().expect("local-api printed its start line").expect("read stdout");
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["event"] == "local_api_started"
            {
                break event;
            }
        };
        // Keep reading its log so the process never blocks on a full pipe.
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, base: started["url"].as_str().expect("url").to_owned(), started, output }
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until `check` holds for the lines written so far, and returns them.
    pub async fn wait_for_lines(&self, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if check(&lines) || std::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
