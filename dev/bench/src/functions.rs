//! The real function binaries as Lambda runs them, each against its own local Lambda Runtime API
//! (`lambda-emulator`): cold starts (process start → first poll → first response), then one warm
//! instance per function serving a stream of flows, for its peak RSS, its CPU per invocation and
//! the TCP connections it opens to the upstream.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use lambda_emulator::{Emulator, FunctionProcess, apigw};
use sandbox_auth::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::{procfs, server::service_config, stats::Spread};

pub const FUNCTIONS: [&str; 3] = ["sms-auth", "sms-token", "sms-log"];
const CLIENT: &str = "sandbox-client";
const CLIENT_SECRET: &str = "sandbox-secret";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// One function's cold starts.
#[derive(Debug, Default)]
pub struct ColdStarts {
    pub function: String,
    /// Process start → first `GET /runtime/invocation/next`.
    pub first_poll: Spread,
    /// Process start → the first invocation's response (the event was queued at the start).
    pub first_response: Spread,
    /// Peak RSS after the first response, KiB (median over the starts).
    pub rss_after_first_kib: u64,
    pub what: &'static str,
}

/// One warm instance of a function serving `invocations` in a row.
#[derive(Debug, Default)]
pub struct WarmInstance {
    pub function: String,
    pub invocations: usize,
    /// Emulator invoke → response, per invocation.
    pub latency: Spread,
    /// CPU time of the function process per invocation, µs.
    pub cpu_per_invocation_us: f64,
    /// Peak RSS (`VmHWM`) of the process after the load, KiB.
    pub peak_rss_kib: u64,
    /// RSS right after its cold start, KiB.
    pub rss_at_start_kib: u64,
    /// New TCP connections the sandbox accepted while this instance served (upstream functions).
    pub upstream_connections: Option<u64>,
    /// Upstream requests the sandbox answered meanwhile.
    pub upstream_requests: Option<u64>,
}

/// Where the function binaries are, and the DynamoDB table they share (on moto).
pub struct Setup {
    pub bin_dir: PathBuf,
    pub table: String,
    pub events_dir: PathBuf,
    pub phones: Arc<AtomicU64>,
}

impl Setup {
    fn binary(&self, function: &str) -> PathBuf {
        self.bin_dir.join(function)
    }

    /// The next phone number no flow has used: `+44 7401 nnnnnn` (a valid UK mobile range).
    fn next_phone(&self) -> String {
        format!("+447401{:06}", self.phones.fetch_add(1, Ordering::Relaxed) % 1_000_000)
    }

    fn event(&self, name: &str, body: &Value) -> Value {
        apigw::with_json_body(apigw::load_event(self.events_dir.join(name)), body)
    }

    fn auth_event(&self, phone: &str) -> Value {
        self.event("sms-auth.json", &json!({ "client_id": CLIENT, "login_hint": phone }))
    }

    fn token_event(&self, started: &Started, code: &str) -> Value {
        let body = json!({
            "code": code,
            "auth_req_id": started.auth_req_id,
            "client_id": CLIENT,
            "nonce": started.nonce,
        });
        self.event("sms-token.json", &body)
    }

    fn log_event(&self) -> Value {
        let body = json!({ "data": {
            "flow_id": "0123456789abcdef",
            "step": "code_entered",
            "screen": "verify",
            "elapsed_ms": 5312,
            "phone": "+447400123456",
            "code": "123456",
            "device": { "os": "android", "version": "14", "app": "1.4.2" }
        }});
        self.event("sms-log.json", &body)
    }

    /// Starts `function` against a new emulator, as Lambda starts an instance: the runtime's
    /// environment, the deployment's variables (config inline, secret, table), no `RUST_LOG`.
    fn spawn(&self, function: &str, emulator: &Emulator, sandbox: &Sandbox) -> Result<FunctionProcess, String> {
        let mut command = Command::new(self.binary(function));
        command.env_remove("RUST_LOG").env_remove("CLIENT_SECRET_ARN").env_remove("CONFIG_FILE");
        command.envs(emulator.function_env(function));
        command.env("AWS_LAMBDA_LOG_FORMAT", "JSON").env("AWS_LAMBDA_LOG_LEVEL", "INFO");
        if function != "sms-log" {
            let mut config = service_config(&sandbox_base(sandbox));
            config.as_object_mut().map(|c| c.remove("client_secret"));
            command.env("CONFIG_JSON", config.to_string());
            command.env("CLIENT_SECRET", CLIENT_SECRET).env("TABLE_NAME", &self.table);
        }
        FunctionProcess::spawn_command(command)
            .map_err(|e| format!("spawn {}: {e}", self.binary(function).display()))
    }
}

/// What `/sms/auth` answered.
struct Started {
    phone: String,
    auth_req_id: String,
    nonce: String,
}

fn sandbox_base(sandbox: &Sandbox) -> String {
    format!("http://{}", sandbox.addr())
}

pub async fn start_sandbox() -> Result<Sandbox, String> {
    Sandbox::start(
        SandboxConfig { quiet: true, interval: Some(1), ..SandboxConfig::default() },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .map_err(|e| format!("start the in-process sandbox: {e}"))
}

/// A running warm instance with its own emulator.
struct Instance {
    emulator: Emulator,
    process: FunctionProcess,
}

impl Instance {
    async fn start(setup: &Setup, function: &str, sandbox: &Sandbox) -> Result<Instance, String> {
        let emulator = Emulator::start().await.map_err(|e| format!("start the emulator: {e}"))?;
        let mut process = setup.spawn(function, &emulator, sandbox)?;
        if emulator.wait_first_poll(Duration::from_secs(30)).await.is_none() {
            let status = process.try_wait().ok().flatten();
            return Err(format!("{function} never polled (exit {status:?}); stderr:\n{}", process.stderr()));
        }
        Ok(Instance { emulator, process })
    }

    async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let response = self.emulator.invoke(event, INVOKE_TIMEOUT).await.map_err(|e| e.to_string())?;
        match response["statusCode"].as_u64() {
            Some(200) => Ok(response),
            _ => Err(format!("unexpected response: {response}")),
        }
    }

    async fn start_flow(&self, setup: &Setup) -> Result<Started, String> {
        let phone = setup.next_phone();
        let response = self.invoke(&setup.auth_event(&phone)).await?;
        let body = apigw::body_json(&response);
        Ok(Started {
            phone,
            auth_req_id: body["auth_req_id"].as_str().unwrap_or_default().to_owned(),
            nonce: body["nonce"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

fn code_for(sandbox: &Sandbox, phone: &str) -> Result<String, String> {
    sandbox
        .messages_to(phone)
        .first()
        .map(|message| message.code.clone())
        .ok_or_else(|| format!("no SMS to {phone} in the sandbox outbox"))
}

/// `starts` cold starts of each function. Every start gets a new emulator with its first event
/// already queued, as an on-demand cold start has: sms-auth a real start (moto + sandbox), sms-token
/// the completion of a verification a warm sms-auth instance started, sms-log a client log.
pub async fn cold_starts(setup: &Setup, starts: usize) -> Result<Vec<ColdStarts>, String> {
    let sandbox = start_sandbox().await?;
    let helper = Instance::start(setup, "sms-auth", &sandbox).await?;
    let mut results = Vec::new();
    for function in FUNCTIONS {
        let mut polls = Vec::new();
        let mut responses = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..starts {
            let event = match function {
                "sms-auth" => setup.auth_event(&setup.next_phone()),
                "sms-token" => {
                    let started = helper.start_flow(setup).await?;
                    setup.token_event(&started, &code_for(&sandbox, &started.phone)?)
                }
                _ => setup.log_event(),
            };
            let emulator = Emulator::start().await.map_err(|e| format!("start the emulator: {e}"))?;
            let mut process = setup.spawn(function, &emulator, &sandbox)?;
            let spawned = process.spawned_at();
            let responded = async {
                let response = emulator.invoke(&event, INVOKE_TIMEOUT).await;
                (response, Instant::now())
            };
            let ((response, responded_at), first_poll) =
                tokio::join!(responded, emulator.wait_first_poll(INVOKE_TIMEOUT));
            let response = response.map_err(|e| {
                format!("{function} cold start: {e}; stderr:\n{}", process.stderr())
            })?;
            if response["statusCode"] != 200 {
                return Err(format!("{function} cold start answered {response}"));
            }
            let first_poll = first_poll.ok_or_else(|| format!("{function} never polled"))?;
            polls.push(first_poll - spawned);
            responses.push(responded_at - spawned);
            rss.push(procfs::status_kib(process.id(), "VmHWM").unwrap_or(0));
            process.kill();
        }
        rss.sort_unstable();
        results.push(ColdStarts {
            function: function.to_owned(),
            first_poll: Spread::of_durations(&polls),
            first_response: Spread::of_durations(&responses),
            rss_after_first_kib: rss.get(rss.len() / 2).copied().unwrap_or(0),
            what: match function {
                "sms-auth" => "a real /sms/auth: 2 DynamoDB calls (moto), 1 upstream call",
                "sms-token" => "a real /sms/token: 3 DynamoDB calls, 3 upstream calls",
                _ => "a client log line",
            },
        });
    }
    Ok(results)
}

/// One warm instance per function serving `flows` invocations in a row: sms-auth starts `flows`
/// verifications, then sms-token completes all of them, then sms-log logs `flows` lines.
pub async fn warm_instances(setup: &Setup, flows: usize) -> Result<Vec<WarmInstance>, String> {
    let sandbox = start_sandbox().await?;
    let mut results = Vec::new();

    let auth = Instance::start(setup, "sms-auth", &sandbox).await?;
    let mut started = Vec::with_capacity(flows);
    let mut meter = Meter::begin(&auth, Some(&sandbox));
    for _ in 0..flows {
        let at = Instant::now();
        started.push(auth.start_flow(setup).await.map_err(|e| format!("sms-auth: {e}"))?);
        meter.latencies.push(at.elapsed());
    }
    results.push(meter.finish("sms-auth", Some(&sandbox)));

    let token = Instance::start(setup, "sms-token", &sandbox).await?;
    let mut meter = Meter::begin(&token, Some(&sandbox));
    for flow in &started {
        let event = setup.token_event(flow, &code_for(&sandbox, &flow.phone)?);
        let at = Instant::now();
        token.invoke(&event).await.map_err(|e| format!("sms-token: {e}"))?;
        meter.latencies.push(at.elapsed());
    }
    results.push(meter.finish("sms-token", Some(&sandbox)));

    let log = Instance::start(setup, "sms-log", &sandbox).await?;
    let event = setup.log_event();
    let mut meter = Meter::begin(&log, None);
    for _ in 0..flows {
        let at = Instant::now();
        log.invoke(&event).await.map_err(|e| format!("sms-log: {e}"))?;
        meter.latencies.push(at.elapsed());
    }
    results.push(meter.finish("sms-log", None));
    Ok(results)
}

/// Measures one warm instance over a run of invocations.
struct Meter {
    pid: u32,
    rss_at_start_kib: u64,
    stats_before: Option<sandbox_auth::Stats>,
    cpu_before: f64,
    latencies: Vec<Duration>,
}

impl Meter {
    fn begin(instance: &Instance, sandbox: Option<&Sandbox>) -> Meter {
        let pid = instance.process.id();
        Meter {
            pid,
            rss_at_start_kib: procfs::status_kib(pid, "VmRSS").unwrap_or(0),
            stats_before: sandbox.map(Sandbox::stats),
            cpu_before: procfs::cpu_seconds(pid).unwrap_or(0.0),
            latencies: Vec::new(),
        }
    }

    fn finish(self, function: &str, sandbox: Option<&Sandbox>) -> WarmInstance {
        let cpu = procfs::cpu_seconds(self.pid).unwrap_or(0.0) - self.cpu_before;
        let count = self.latencies.len();
        let requests =
            |s: &sandbox_auth::Stats| s.requests.auth + s.requests.callback + s.requests.token + s.requests.userinfo;
        let (upstream_connections, upstream_requests) = match (self.stats_before, sandbox.map(Sandbox::stats)) {
            (Some(before), Some(after)) => {
                (Some(after.connections - before.connections), Some(requests(&after) - requests(&before)))
            }
            _ => (None, None),
        };
        WarmInstance {
            function: function.to_owned(),
            invocations: count,
            latency: Spread::of_durations(&self.latencies),
            cpu_per_invocation_us: cpu / count.max(1) as f64 * 1e6,
            peak_rss_kib: procfs::status_kib(self.pid, "VmHWM").unwrap_or(0),
            rss_at_start_kib: self.rss_at_start_kib,
            upstream_connections,
            upstream_requests,
        }
    }
}

/// Size of each function's stripped release binary (this machine's target).
pub fn binary_size(bin_dir: &Path, function: &str) -> Option<u64> {
    std::fs::metadata(bin_dir.join(function)).ok().map(|m| m.len())
}
