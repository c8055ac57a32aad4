//! Structured JSON logs for CloudWatch: set up once at cold start, and one summary line per request.
//!
//! Each request logs exactly one line with a stable `event` name, so an operator can count and
//! filter flows with Logs Insights. Fields carry only what is safe to keep: a masked phone, a flow
//! id derived from (not equal to) the `auth_req_id`, ids of client and server, statuses, and where
//! the time went (total, store, each upstream call). README "Analysing flows" lists every field
//! and the Logs Insights queries (in `template.yaml`) that read them.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use tracing_subscriber::{
    EnvFilter,
    filter::LevelFilter,
    fmt::{
        SubscriberBuilder,
        format::{Format, Json, JsonFields},
    },
};

/// Installs the JSON log subscriber. The level comes from `RUST_LOG`, else from Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (set by the function's `LoggingConfig`), else `info`.
pub fn init() {
    let directives = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|level| level.to_lowercase()))
        .unwrap_or_else(|_| "info".to_owned());
    // The SDK and HTTP stack are chatty at info; their warnings still show.
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(format!("{directives},aws_smithy_runtime=warn,hyper=warn"));
    let _ = json_lines().with_env_filter(filter).try_init();
    crate::metrics::enable();
}

/// The format of every log line, to stdout: one JSON object, the event's fields at the top level
/// (where Logs Insights finds them), no spans, no target, no colours.
pub fn json_lines() -> SubscriberBuilder<JsonFields, Format<Json>> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
}

/// True until the first request of this process has started: the cold-start flag.
static FIRST_REQUEST: AtomicBool = AtomicBool::new(true);

/// An upstream call the flow makes; each has its own duration field on the summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamCall {
    /// The CIBA authentication request that sends the SMS (`upstream_auth_ms`).
    Auth,
    /// The SMS callback carrying the code (`upstream_callback_ms`).
    Callback,
    /// The token request, polling included (`upstream_token_ms`).
    Token,
    /// The userinfo request (`upstream_userinfo_ms`).
    Userinfo,
}

/// Where a request spent its time outside our own code. Milliseconds, summed over calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    pub store_ms: f64,
    pub upstream_auth_ms: Option<f64>,
    pub upstream_callback_ms: Option<f64>,
    pub upstream_token_ms: Option<f64>,
    pub upstream_userinfo_ms: Option<f64>,
}

impl Timings {
    fn upstream_slot(&mut self, call: UpstreamCall) -> &mut Option<f64> {
        match call {
            UpstreamCall::Auth => &mut self.upstream_auth_ms,
            UpstreamCall::Callback => &mut self.upstream_callback_ms,
            UpstreamCall::Token => &mut self.upstream_token_ms,
            UpstreamCall::Userinfo => &mut self.upstream_userinfo_ms,
        }
    }

    /// All upstream time of the request; `None` when it made no upstream call.
    pub fn upstream_ms(&self) -> Option<f64> {
        [self.upstream_auth_ms, self.upstream_callback_ms, self.upstream_token_ms, self.upstream_userinfo_ms]
            .into_iter()
            .flatten()
            .reduce(|a, b| a + b)
    }
}

/// What one request did, gathered as the flow runs and logged once at the end.
#[derive(Debug)]
pub struct Summary {
    endpoint: &'static str,
    started: Instant,
    cold_start: bool,
    pub flow_id: Option<String>,
    pub client_id: Option<String>,
    pub server_id: Option<String>,
    pub phone_masked: Option<String>,
    /// The phone's country calling code (44 for +44…): what conversion is grouped by.
    pub country_code: Option<u16>,
    /// A keyed digest of the caller's network (see [`crate::crypto::source_key`]): groups the
    /// starts of one source for the pumping query without logging its address.
    pub source: Option<String>,
    /// Which limit refused the request.
    pub limit: Option<&'static str>,
    /// Set for a configured test number.
    pub test_number: bool,
    pub upstream_status: Option<u16>,
    pub attempts_left: Option<u32>,
    pub request_id: Option<String>,
    pub timings: Timings,
}

impl Summary {
    pub fn new(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            started: Instant::now(),
            cold_start: FIRST_REQUEST.swap(false, Ordering::Relaxed),
            flow_id: None,
            client_id: None,
            server_id: None,
            phone_masked: None,
            country_code: None,
            source: None,
            limit: None,
            test_number: false,
            upstream_status: None,
            attempts_left: None,
            request_id: None,
            timings: Timings::default(),
        }
    }

    /// Runs one state-store call, adding its duration to `store_ms`.
    pub async fn store<T>(&mut self, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        self.timings.store_ms += elapsed_ms(started);
        result
    }

    /// Runs one upstream call, adding its duration to that call's field.
    pub async fn upstream<T>(&mut self, which: UpstreamCall, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        *self.timings.upstream_slot(which).get_or_insert(0.0) += elapsed_ms(started);
        result
    }

    /// Logs the line. `outcome` is the success word (`sent`, `verified`, `logged`, ...) or, for a
    /// failure (`status` ≥ 400), the error code, which is then also the `error` field.
    pub fn emit(&self, status: u16, outcome: &str) {
        let event = format!("{}_{}", self.endpoint, outcome);
        let duration_ms = elapsed_ms(self.started);
        let t = &self.timings;
        tracing::info!(
            event,
            endpoint = self.endpoint,
            outcome,
            status,
            error = (status >= 400).then_some(outcome),
            flow_id = self.flow_id.as_deref(),
            client_id = self.client_id.as_deref(),
            server_id = self.server_id.as_deref(),
            phone = self.phone_masked.as_deref(),
            country_code = self.country_code,
            source = self.source.as_deref(),
            limit = self.limit,
            test_number = self.test_number.then_some(true),
            upstream_status = self.upstream_status,
            attempts_left = self.attempts_left,
            request_id = self.request_id.as_deref(),
            cold_start = self.cold_start,
            duration_ms = round_ms(duration_ms),
            store_ms = (t.store_ms > 0.0).then(|| round_ms(t.store_ms)),
            upstream_ms = t.upstream_ms().map(round_ms),
            upstream_auth_ms = t.upstream_auth_ms.map(round_ms),
            upstream_callback_ms = t.upstream_callback_ms.map(round_ms),
            upstream_token_ms = t.upstream_token_ms.map(round_ms),
            upstream_userinfo_ms = t.upstream_userinfo_ms.map(round_ms),
        );
        crate::metrics::record_request(self.endpoint, outcome, duration_ms, t);
    }

    /// Logs a `/sms/log` request: the client's (already sanitised) data as one `sms_client_log`
    /// line, with the flow id when the client sent it.
    pub fn emit_client_log(&self, data: &str) {
        let duration_ms = elapsed_ms(self.started);
        tracing::info!(
            event = "sms_client_log",
            endpoint = self.endpoint,
            outcome = "logged",
            status = 200,
            flow_id = self.flow_id.as_deref(),
            request_id = self.request_id.as_deref(),
            cold_start = self.cold_start,
            duration_ms = round_ms(duration_ms),
            data,
        );
        crate::metrics::record_request(self.endpoint, "logged", duration_ms, &self.timings);
    }
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Microsecond precision is plenty for a log line, and keeps it short.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Logs why a Lambda instance could not start, as one structured line (the error text is written
/// for the operator: it names the setting to fix).
pub fn startup_failed(err: &impl std::fmt::Display) {
    tracing::error!(event = "startup_failed", error = %err);
}
