//! Structured JSON logs for CloudWatch: set up once at cold start, and one summary line per request.
//!
//! Each request logs exactly one line with a stable `event` name, so an operator can count and
//! filter flows with Logs Insights. Fields carry only what is safe to keep: a masked phone, a flow
//! id derived from (not equal to) the `auth_req_id`, ids of client and server, statuses, timings.

use std::time::Instant;

use tracing_subscriber::{EnvFilter, filter::LevelFilter};

/// Installs the JSON log subscriber. The level comes from `RUST_LOG`, else from Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (set by the function's `LoggingConfig`), else `info`.
pub fn init() {
    let directives = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|level| level.to_lowercase()))
        .unwrap_or_else(|_| "info".to_owned());
    // The SDK and HTTP stack are chatty at info; their warnings still show.
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(format!("{directives},aws_config=warn,aws_smithy_runtime=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    crate::metrics::enable();
}

/// What one request did, gathered as the flow runs and logged once at the end.
#[derive(Debug)]
pub struct Summary {
    endpoint: &'static str,
    started: Instant,
    pub flow_id: Option<String>,
    pub client_id: Option<String>,
    pub server_id: Option<String>,
    pub phone_masked: Option<String>,
    /// The phone's country calling code (44 for +44…): what conversion is grouped by.
    pub country_code: Option<u16>,
    /// Which limit refused the request.
    pub limit: Option<&'static str>,
    /// Set for a configured test number.
    pub test_number: bool,
    pub upstream_status: Option<u16>,
    pub attempts_left: Option<u32>,
    pub request_id: Option<String>,
}

impl Summary {
    pub fn new(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            started: Instant::now(),
            flow_id: None,
            client_id: None,
            server_id: None,
            phone_masked: None,
            country_code: None,
            limit: None,
            test_number: false,
            upstream_status: None,
            attempts_left: None,
            request_id: None,
        }
    }

    /// Logs the line. `outcome` is the success word (`sent`, `verified`, `logged`) or the error code.
    pub fn emit(&self, status: u16, outcome: &str) {
        let event = format!("{}_{}", self.endpoint, outcome);
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            event,
            status,
            flow_id = self.flow_id.as_deref(),
            client_id = self.client_id.as_deref(),
            server_id = self.server_id.as_deref(),
            phone = self.phone_masked.as_deref(),
            country_code = self.country_code,
            limit = self.limit,
            test_number = self.test_number.then_some(true),
            upstream_status = self.upstream_status,
            attempts_left = self.attempts_left,
            request_id = self.request_id.as_deref(),
            duration_ms,
        );
        crate::metrics::record_request(self.endpoint, outcome, duration_ms);
    }
}

/// Logs why a Lambda instance could not start, as one structured line (the error text is written
/// for the operator: it names the setting to fix).
pub fn startup_failed(err: &crate::StartupError) {
    tracing::error!(event = "startup_failed", error = %err);
}
