//! A local [Lambda Runtime API], for running the real function binaries (any `lambda_runtime` /
//! `lambda_http` program, or any custom runtime) the way Lambda runs them: the process starts
//! with the runtime's environment, asks `GET /2018-06-01/runtime/invocation/next` for work, and
//! posts each result back.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use lambda_emulator::{Emulator, FunctionProcess};
//!
//! let emulator = Emulator::start().await?;
//! let function = FunctionProcess::spawn("target/debug/sms-log", emulator.function_env("sms-log"))?;
//! // Cold start: from the process start to its first request for work.
//! let first_poll = emulator.wait_first_poll(Duration::from_secs(10)).await.expect("polls");
//! println!("init took {:?}", first_poll - function.spawned_at());
//! let event = lambda_emulator::apigw::load_event("events/sms-log.json");
//! let response = emulator.invoke(&event, Duration::from_secs(3)).await?;
//! assert_eq!(response["statusCode"], 200);
//! # Ok(()) }
//! ```
//!
//! What is served, as Lambda serves it:
//!
//! | route | answer |
//! |---|---|
//! | `GET /2018-06-01/runtime/invocation/next` | long-polls until an invocation is queued; the event as the body, with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` (epoch ms), `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id` |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | `202 {"status":"OK"}`; `400 InvalidRequestID` for an id not in flight (unknown or already answered); `410 InvokeTimeout` after its deadline; `413` over 6 MiB (the invocation then fails with `Function.ResponseSizeTooLarge`) |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | `202 {"status":"OK"}`; the same `400` / `410` |
//! | `POST /2018-06-01/runtime/init/error` | `202 {"status":"OK"}`; every waiting and later [`Emulator::invoke`] fails with [`InvokeError::InitError`] |
//!
//! One emulator stands for one execution environment (one instance): start one per function
//! process. Invocations are handed out one at a time, in order. Unlike Lambda, a time-out does not
//! kill the process (the test owns it, see [`FunctionProcess`]); the late answer gets `410`.
//!
//! [`FunctionProcess`] spawns a binary with that environment and captures its output; [`apigw`]
//! reads API Gateway HTTP API (v2) events and responses.
//!
//! [Lambda Runtime API]: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

pub mod apigw;
mod process;

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

pub use process::FunctionProcess;

/// Lambda's limit on a synchronous response payload.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// The account id in the function ARN the emulator hands out.
pub const ACCOUNT_ID: &str = "123456789012";
/// The memory size [`Emulator::function_env`] reports (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// Why [`Emulator::invoke`] got no response.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeError {
    /// The function posted `/invocation/{id}/error`: its body (`{"errorType", "errorMessage", ..}`).
    FunctionError(Value),
    /// The function posted `/init/error` (before or while this invocation waited): its body.
    InitError(Value),
    /// No answer within the time-out (the function never polled, hung, or died).
    Timeout,
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::FunctionError(body) => write!(f, "the function reported an error: {body}"),
            InvokeError::InitError(body) => write!(f, "the function failed to initialise: {body}"),
            InvokeError::Timeout => write!(f, "the function did not answer in time"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// A running Runtime API on `127.0.0.1:<random port>`. It stops serving when dropped: pending
/// long-polls are cut and the listener closes.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

enum Outcome {
    Response(Value),
    Error(Value),
}

/// An invocation waiting for the function's next poll.
struct Pending {
    request_id: String,
    event: Bytes,
    deadline_ms: u64,
    trace_id: String,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    function_name: Mutex<String>,
    region: String,
    queue: mpsc::UnboundedSender<Pending>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    /// Handed to the function, not answered yet.
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Answered ids, so a second answer is refused as Lambda refuses it.
    answered: Mutex<HashSet<String>>,
    /// Ids whose invoker gave up (time-out): a late answer is `410 Gone`.
    timed_out: Mutex<HashSet<String>>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
    polls: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Emulator {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (queue, next) = mpsc::unbounded_channel();
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let shared = Arc::new(Shared {
            function_name: Mutex::new("function".to_owned()),
            region,
            queue,
            next: tokio::sync::Mutex::new(next),
            in_flight: Mutex::default(),
            answered: Mutex::default(),
            timed_out: Mutex::default(),
            first_poll: watch::Sender::new(None),
            init_error: watch::Sender::new(None),
            polls: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "NotFound", "no such Runtime API route") })
            .with_state(Arc::clone(&shared));
        let mut stop = shared.shutdown.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
        });
        Ok(Emulator { shared, addr })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`, e.g. `"127.0.0.1:41234"`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// The environment Lambda gives a function process (`AWS_LAMBDA_RUNTIME_API`,
    /// `AWS_LAMBDA_FUNCTION_NAME`, `_MEMORY_SIZE` ([`DEFAULT_MEMORY_MB`]), `_VERSION`,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`, `AWS_LAMBDA_INITIALIZATION_TYPE`,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION` (this process's, else `us-east-1`), `TZ`). The
    /// function's own variables go after these (a later duplicate wins in `Command::envs`).
    ///
    /// It also names the function in the `Lambda-Runtime-Invoked-Function-Arn` handed out.
    pub fn function_env(&self, function_name: &str) -> Vec<(String, String)> {
        *self.shared.function_name.lock().unwrap() = function_name.to_owned();
        let (year, month, day) = civil_date(epoch_ms() / 86_400_000);
        let stream = format!("{year:04}/{month:02}/{day:02}/[$LATEST]{}", uuid::Uuid::new_v4().simple());
        [
            ("AWS_LAMBDA_RUNTIME_API", self.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_MEMORY_MB.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", self.shared.region.clone()),
            ("AWS_DEFAULT_REGION", self.shared.region.clone()),
            ("TZ", ":UTC".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The ARN handed out in `Lambda-Runtime-Invoked-Function-Arn`.
    pub fn function_arn(&self) -> String {
        let name = self.shared.function_name.lock().unwrap().clone();
        format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{name}", self.shared.region)
    }

    /// Queues `event` and waits, at most `timeout`, for the function's answer: the response
    /// payload as JSON (a payload that is not JSON comes back as a JSON string). `timeout` is also
    /// the invocation's deadline (`Lambda-Runtime-Deadline-Ms`), counted from now, so it includes
    /// any time the function still spends starting.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Value, InvokeError> {
        let mut init_error = self.shared.init_error.subscribe();
        let failed = init_error.borrow_and_update().clone();
        if let Some(body) = failed {
            return Err(InvokeError::InitError(body));
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let (reply, answer) = oneshot::channel();
        self.shared
            .queue
            .send(Pending {
                request_id: request_id.clone(),
                event: Bytes::from(event.to_string()),
                deadline_ms: epoch_ms() + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX / 2),
                trace_id: trace_id(),
                reply,
            })
            .expect("the emulator holds its own queue's receiver");
        let init_failed = async {
            loop {
                let failed = init_error.borrow_and_update().clone();
                if let Some(body) = failed {
                    return body;
                }
                if init_error.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let outcome = tokio::select! {
            answer = tokio::time::timeout(timeout, answer) => answer,
            body = init_failed => {
                self.shared.give_up(&request_id);
                return Err(InvokeError::InitError(body));
            }
        };
        match outcome {
            Ok(Ok(Outcome::Response(body))) => Ok(body),
            Ok(Ok(Outcome::Error(body))) => Err(InvokeError::FunctionError(body)),
            Ok(Err(_)) | Err(_) => {
                self.shared.give_up(&request_id);
                Err(InvokeError::Timeout)
            }
        }
    }

    /// When the function first asked for work (its first `GET .../invocation/next` reached the
    /// emulator), waiting at most `timeout`; `None` if it has not by then. For cold starts: compare
    /// with [`FunctionProcess::spawned_at`].
    pub async fn wait_first_poll(&self, timeout: Duration) -> Option<Instant> {
        let mut first_poll = self.shared.first_poll.subscribe();
        let polled = async {
            loop {
                let at = *first_poll.borrow_and_update();
                if let Some(at) = at {
                    return at;
                }
                if first_poll.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, polled).await.ok()
    }

    /// The first poll's time, if it happened (see [`Self::wait_first_poll`]).
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.borrow()
    }

    /// How many `GET .../invocation/next` requests arrived so far.
    pub fn polls(&self) -> u64 {
        self.shared.polls.load(Ordering::SeqCst)
    }

    /// The body the function posted to `/init/error`, if it did.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.borrow().clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl Shared {
    /// The invoker stopped waiting: a late answer for `request_id` is `410 Gone`.
    fn give_up(&self, request_id: &str) {
        self.in_flight.lock().unwrap().remove(request_id);
        self.timed_out.lock().unwrap().insert(request_id.to_owned());
    }

    /// Completes the in-flight invocation `request_id`, or says why it cannot be.
    fn complete(&self, request_id: &str, outcome: Outcome) -> Response {
        let reply = self.in_flight.lock().unwrap().remove(request_id);
        match reply {
            Some(reply) => {
                self.answered.lock().unwrap().insert(request_id.to_owned());
                // The invoker may have just given up; the answer is then simply dropped.
                let _ = reply.send(outcome);
                accepted()
            }
            None if self.timed_out.lock().unwrap().contains(request_id) => {
                error(StatusCode::GONE, "InvokeTimeout", "Invoke timeout")
            }
            None => error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID"),
        }
    }
}

async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    shared.polls.fetch_add(1, Ordering::SeqCst);
    shared.first_poll.send_if_modified(|at| {
        if at.is_none() {
            *at = Some(Instant::now());
            true
        } else {
            false
        }
    });
    let mut shutdown = shared.shutdown.subscribe();
    let mut queue = tokio::select! {
        queue = shared.next.lock() => queue,
        _ = shutdown.wait_for(|stopped| *stopped) => return shutting_down(),
    };
    loop {
        let pending = tokio::select! {
            pending = queue.recv() => pending,
            _ = shutdown.wait_for(|stopped| *stopped) => return shutting_down(),
        };
        let Some(pending) = pending else { return shutting_down() };
        // The invoker gave up before the function asked: Lambda would not deliver it either.
        if pending.reply.is_closed() {
            continue;
        }
        let Pending { request_id, event, deadline_ms, trace_id, reply } = pending;
        shared.in_flight.lock().unwrap().insert(request_id.clone(), reply);
        let arn = {
            let name = shared.function_name.lock().unwrap();
            format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{name}", shared.region)
        };
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("lambda-runtime-aws-request-id", request_id);
        set("lambda-runtime-deadline-ms", deadline_ms.to_string());
        set("lambda-runtime-invoked-function-arn", arn);
        set("lambda-runtime-trace-id", trace_id);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return (StatusCode::OK, headers, event).into_response();
    }
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_RESPONSE_BYTES).await else {
        let too_large = json!({
            "errorType": "Function.ResponseSizeTooLarge",
            "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        });
        let _ = shared.complete(&id, Outcome::Error(too_large));
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        );
    };
    let payload = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    shared.complete(&id, Outcome::Response(payload))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.complete(&id, Outcome::Error(diagnostic(&headers, &body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.init_error.send_replace(Some(diagnostic(&headers, &body)));
    accepted()
}

/// An error report as JSON: the posted object (with `errorType` from the
/// `Lambda-Runtime-Function-Error-Type` header when the body lacks it), or the text wrapped.
fn diagnostic(headers: &HeaderMap, body: &[u8]) -> Value {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut fields)) => {
            fields.entry("errorType").or_insert(Value::String(error_type));
            Value::Object(fields)
        }
        _ => json!({ "errorType": error_type, "errorMessage": String::from_utf8_lossy(body) }),
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "errorMessage": message, "errorType": error_type }))).into_response()
}

fn shutting_down() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "ShuttingDown", "the runtime API is shutting down")
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// An X-Ray trace header: `Root=1-<epoch secs hex>-<96 random bits>;Parent=<64 bits>;Sampled=0`.
fn trace_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{:08x}-{};Parent={};Sampled=0", epoch_ms() / 1000, &random[..24], &parent[..16])
}

/// (year, month, day) of a day counted from 1970-01-01 (H. Hinnant's `civil_from_days`).
pub fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: &str = "2018-06-01/runtime/invocation/next";

    fn url(emulator: &Emulator, path: &str) -> String {
        format!("http://{}/{path}", emulator.runtime_api())
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_786), (2026, 11, 29));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }

    #[test]
    fn trace_ids_have_the_xray_shape() {
        let id = trace_id();
        let parts: Vec<&str> = id.split(';').collect();
        assert_eq!(parts.len(), 3, "{id}");
        let root: Vec<&str> = parts[0].trim_start_matches("Root=").split('-').collect();
        assert_eq!((root[0], root[1].len(), root[2].len()), ("1", 8, 24), "{id}");
        assert_eq!(parts[1].len(), "Parent=".len() + 16);
    }

    #[tokio::test]
    async fn serves_an_invocation_and_records_the_response() {
        let emulator = Emulator::start().await.unwrap();
        let env: HashMap<String, String> = emulator.function_env("demo").into_iter().collect();
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], emulator.runtime_api());
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "demo");
        assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/demo");
        assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"].contains("/[$LATEST]"));
        assert!(emulator.first_poll().is_none());

        let http = reqwest::Client::new();
        let runtime = {
            let http = http.clone();
            let (next, base) = (url(&emulator, NEXT), url(&emulator, "2018-06-01/runtime/invocation"));
            tokio::spawn(async move {
                let event = http.get(&next).send().await.unwrap();
                assert_eq!(event.status(), 200);
                let headers = event.headers().clone();
                let id = headers["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
                let deadline: u64 = headers["lambda-runtime-deadline-ms"].to_str().unwrap().parse().unwrap();
                assert!(deadline > epoch_ms() && deadline <= epoch_ms() + 5_000);
                assert!(headers["lambda-runtime-trace-id"].to_str().unwrap().starts_with("Root=1-"));
                assert_eq!(headers["content-type"], "application/json");
                let arn = headers["lambda-runtime-invoked-function-arn"].to_str().unwrap().to_owned();
                let event: Value = event.json().await.unwrap();
                let answer = json!({ "echo": event, "arn": arn });
                let posted = http.post(format!("{base}/{id}/response")).json(&answer).send().await.unwrap();
                assert_eq!(posted.status(), 202);
                assert_eq!(posted.json::<Value>().await.unwrap(), json!({ "status": "OK" }));
                // A second answer for the same id is refused, as Lambda refuses it.
                let again = http.post(format!("{base}/{id}/response")).json(&answer).send().await.unwrap();
                assert_eq!(again.status(), 400);
                let unknown = http.post(format!("{base}/nope/error")).body("{}").send().await.unwrap();
                assert_eq!(unknown.status(), 400);
                assert_eq!(unknown.json::<Value>().await.unwrap()["errorType"], "InvalidRequestID");
            })
        };
        let answer = emulator.invoke(&json!({ "n": 1 }), Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer["echo"], json!({ "n": 1 }));
        assert_eq!(answer["arn"], emulator.function_arn());
        assert!(emulator.function_arn().ends_with(":123456789012:function:demo"));
        runtime.await.unwrap();
        assert!(emulator.wait_first_poll(Duration::ZERO).await.is_some());
        assert_eq!(emulator.polls(), 1);
    }

    #[tokio::test]
    async fn errors_time_outs_and_init_errors() {
        let emulator = Emulator::start().await.unwrap();
        let http = reqwest::Client::new();
        let base = url(&emulator, "2018-06-01/runtime");

        // Nobody polls: the invocation times out, and is not delivered later.
        assert_eq!(emulator.invoke(&json!(1), Duration::from_millis(50)).await, Err(InvokeError::Timeout));

        let runtime = {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let event = http.get(format!("{base}/invocation/next")).send().await.unwrap();
                let id = event.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
                assert_eq!(event.json::<Value>().await.unwrap(), json!(2), "the timed-out event is skipped");
                let posted = http
                    .post(format!("{base}/invocation/{id}/error"))
                    .header("lambda-runtime-function-error-type", "Runtime.Handler")
                    .body(r#"{"errorMessage":"boom"}"#)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(posted.status(), 202);

                // The next one is answered after its deadline: 410 Gone.
                let event = http.get(format!("{base}/invocation/next")).send().await.unwrap();
                let id = event.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
                tokio::time::sleep(Duration::from_millis(150)).await;
                let late =
                    http.post(format!("{base}/invocation/{id}/response")).body("{}").send().await.unwrap();
                assert_eq!(late.status(), 410);
            })
        };
        let failed = emulator.invoke(&json!(2), Duration::from_secs(5)).await;
        assert_eq!(
            failed,
            Err(InvokeError::FunctionError(
                json!({ "errorMessage": "boom", "errorType": "Runtime.Handler" })
            ))
        );
        assert_eq!(emulator.invoke(&json!(3), Duration::from_millis(100)).await, Err(InvokeError::Timeout));
        runtime.await.unwrap();

        let four = json!(4);
        let waiting = emulator.invoke(&four, Duration::from_secs(5));
        let report = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            http.post(format!("{base}/init/error"))
                .header("lambda-runtime-function-error-type", "Runtime.InitError")
                .body(r#"{"errorType":"Config","errorMessage":"bad config"}"#)
                .send()
                .await
                .unwrap()
        };
        let (waiting, report) = tokio::join!(waiting, report);
        assert_eq!(report.status(), 202);
        let body = json!({ "errorType": "Config", "errorMessage": "bad config" });
        assert_eq!(waiting, Err(InvokeError::InitError(body.clone())));
        assert_eq!(emulator.init_error(), Some(body.clone()));
        assert_eq!(
            emulator.invoke(&json!(5), Duration::from_secs(5)).await,
            Err(InvokeError::InitError(body))
        );
    }

    #[tokio::test]
    async fn dropping_the_emulator_ends_pending_polls() {
        let emulator = Emulator::start().await.unwrap();
        let next = url(&emulator, NEXT);
        let poll = tokio::spawn(async move { reqwest::get(next).await.map(|r| r.status()) });
        assert!(emulator.wait_first_poll(Duration::from_secs(5)).await.is_some());
        drop(emulator);
        let status = tokio::time::timeout(Duration::from_secs(5), poll).await.expect("poll ends").unwrap();
        assert!(status.is_err() || status.unwrap().is_server_error());
    }
}
