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

use crate::{
    flow::Facts,
    outcome::Success,
    timings::{Timings, elapsed_ms},
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

/// One request's log line, opened when the request arrives and written once at the end, from
/// the outcome and the flow's [`Facts`] (see [`crate::api`]'s `handle`).
#[derive(Debug)]
pub struct RequestLog {
    endpoint: &'static str,
    started: Instant,
    cold_start: bool,
    request_id: Option<String>,
}

impl RequestLog {
    pub fn start(endpoint: &'static str, request_id: Option<String>) -> Self {
        Self {
            endpoint,
            started: Instant::now(),
            cold_start: FIRST_REQUEST.swap(false, Ordering::Relaxed),
            request_id,
        }
    }

    /// Logs the summary line and its metrics. `outcome` is the success word (`sent`,
    /// `verified`, ...) or, for a failure (`status` ≥ 400), the error code, which is then also the
    /// `error` field; `limit` names the limit that refused it.
    pub fn emit(&self, status: u16, outcome: &str, limit: Option<&str>, facts: &Facts, timings: &Timings) {
        let event = format!("{}_{}", self.endpoint, outcome);
        let duration_ms = elapsed_ms(self.started);
        let t = timings;
        tracing::info!(
            event,
            endpoint = self.endpoint,
            outcome,
            status,
            error = (status >= 400).then_some(outcome),
            flow_id = facts.flow_id.as_deref(),
            client_id = facts.client_id.as_deref(),
            server_id = facts.server_id.as_deref(),
            phone = facts.phone_masked.as_deref(),
            country_code = facts.country_code,
            number_type = facts.number_type,
            region = facts.region.as_deref(),
            source = facts.source.as_deref(),
            limit,
            test_number = facts.test_number.then_some(true),
            replayed = facts.replayed.then_some(true),
            upstream_status = facts.upstream_status,
            attempts_left = facts.attempts_left,
            request_id = self.request_id.as_deref(),
            cold_start = self.cold_start,
            duration_ms = round_ms(duration_ms),
            store_ms = (t.store_ms > 0.0).then(|| round_ms(t.store_ms)),
            store_read_units = (t.store_read_units > 0.0).then_some(t.store_read_units),
            store_write_units = (t.store_write_units > 0.0).then_some(t.store_write_units),
            upstream_ms = t.upstream_ms().map(round_ms),
            upstream_auth_ms = t.upstream_auth_ms.map(round_ms),
            upstream_callback_ms = t.upstream_callback_ms.map(round_ms),
            upstream_token_ms = t.upstream_token_ms.map(round_ms),
            upstream_userinfo_ms = t.upstream_userinfo_ms.map(round_ms),
        );
        crate::metrics::record_request(self.endpoint, outcome, duration_ms, timings);
        if let Some(pause) = &facts.pause_started {
            tracing::warn!(
                event = "fraud_guard_country_paused",
                endpoint = self.endpoint,
                client_id = facts.client_id.as_deref(),
                country = pause.region,
                sends = pause.conversion.sends,
                verified = pause.conversion.verified,
                min_conversion = pause.min_conversion,
                until = pause.until,
            );
            crate::metrics::record_pause();
        }
    }

    /// Logs a `/sms/log` request: what [`crate::client_log`] kept of the client's data as one
    /// `sms_client_log` line, with how many fields it dropped and the flow id when the client
    /// sent it.
    pub fn emit_client_log(
        &self,
        flow_id: Option<&str>,
        data: &str,
        dropped_fields: usize,
        timings: &Timings,
    ) {
        let duration_ms = elapsed_ms(self.started);
        let outcome = Success::Logged.as_str();
        tracing::info!(
            event = "sms_client_log",
            endpoint = self.endpoint,
            outcome,
            status = 200,
            flow_id,
            request_id = self.request_id.as_deref(),
            cold_start = self.cold_start,
            duration_ms = round_ms(duration_ms),
            data,
            dropped_fields,
        );
        crate::metrics::record_request(self.endpoint, outcome, duration_ms, timings);
    }
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
