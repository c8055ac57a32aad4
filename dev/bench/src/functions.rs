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

/// Every function of the stack, in `functions/`.
pub const FUNCTIONS: [&str; 6] =
    ["sms-auth", "sms-token", "sms-log", "sms-clients", "user-info", "user-logout"];
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
    /// Its TCP connections to DynamoDB Local after the warm-up invocation and after the last one
    /// (local ports: the same ones mean every call of the run went over them).
    pub store_connections: Option<(Vec<u16>, Vec<u16>)>,
}

/// Where the function binaries are, and the DynamoDB table they share (on DynamoDB Local).
pub struct Setup {
    pub bin_dir: PathBuf,
    pub table: String,
    pub events_dir: PathBuf,
    pub phones: Arc<AtomicU64>,
    /// DynamoDB Local's port on 127.0.0.1, whose connections from each instance are watched.
    pub dynamodb_port: Option<u16>,
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

    /// `user-info` or `user-logout` with the session as bearer token.
    fn session_event(&self, function: &str, session: &str) -> Value {
        let mut event = apigw::load_event(self.events_dir.join(format!("{function}.json")));
        event["headers"]["authorization"] = Value::String(format!("Bearer {session}"));
        event
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
    fn spawn(
        &self,
        function: &str,
        emulator: &Emulator,
        sandbox: &Sandbox,
    ) -> Result<FunctionProcess, String> {
        let mut command = Command::new(self.binary(function));
        command.env_remove("RUST_LOG").env_remove("CLIENT_SECRET_ARN").env_remove("CONFIG_FILE");
        command.envs(emulator.function_env(function));
        command.env("AWS_LAMBDA_LOG_FORMAT", "JSON").env("AWS_LAMBDA_LOG_LEVEL", "INFO");
        // What the deployment template gives each function.
        if matches!(function, "sms-auth" | "sms-token" | "sms-clients" | "user-info") {
            let mut config = service_config(&sandbox_base(sandbox));
            config.as_object_mut().map(|c| c.remove("client_secret"));
            command.env("CONFIG_JSON", config.to_string());
        }
        if matches!(function, "sms-auth" | "sms-token") {
            command.env("CLIENT_SECRET", CLIENT_SECRET);
        }
        if matches!(function, "sms-auth" | "sms-token" | "user-info" | "user-logout") {
            command.env("TABLE_NAME", &self.table);
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
        // Codes live 10 minutes (the most a verification may): a warm run starts all its
        // verifications before it completes the first.
        SandboxConfig {
            quiet: true,
            interval: Some(1),
            expires_in: 600,
            code_ttl_secs: 600,
            ..SandboxConfig::default()
        },
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
            Some(200..=299) => Ok(response),
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

/// Warm sms-auth and sms-token instances that prepare what another function's event needs: a
/// verification to complete, or a verified session.
struct Helpers<'a> {
    setup: &'a Setup,
    sandbox: &'a Sandbox,
    auth: Instance,
    token: Instance,
}

impl<'a> Helpers<'a> {
    async fn start(setup: &'a Setup, sandbox: &'a Sandbox) -> Result<Helpers<'a>, String> {
        let auth = Instance::start(setup, "sms-auth", sandbox).await?;
        let token = Instance::start(setup, "sms-token", sandbox).await?;
        Ok(Helpers { setup, sandbox, auth, token })
    }

    /// A started verification and the event that completes it.
    async fn token_event(&self) -> Result<Value, String> {
        let started = self.auth.start_flow(self.setup).await?;
        Ok(self.setup.token_event(&started, &code_for(self.sandbox, &started.phone)?))
    }

    /// A new verified session's token.
    async fn session(&self) -> Result<String, String> {
        let response = self.token.invoke(&self.token_event().await?).await?;
        session_of(&response)
    }

    /// The first event of a cold start of `function`, and what it does.
    async fn first_event(&self, function: &str) -> Result<Value, String> {
        Ok(match function {
            "sms-auth" => self.setup.auth_event(&self.setup.next_phone()),
            "sms-token" => self.token_event().await?,
            "user-info" | "user-logout" => self.setup.session_event(function, &self.session().await?),
            "sms-log" => self.setup.log_event(),
            _ => apigw::load_event(self.setup.events_dir.join(format!("{function}.json"))),
        })
    }
}

fn session_of(token_response: &Value) -> Result<String, String> {
    apigw::body_json(token_response)["session"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no session in {token_response}"))
}

fn first_event_description(function: &str) -> &'static str {
    match function {
        "sms-auth" => "a real /sms/auth: 3 DynamoDB calls (DynamoDB Local), 1 upstream call",
        "sms-token" => "a real /sms/token: 4 DynamoDB calls, 3 upstream calls",
        "user-info" => "a verified session read back: 1 DynamoDB call",
        "user-logout" => "a verified session ended (204): 1 DynamoDB call",
        "sms-clients" => "the client list, from the config",
        _ => "a client log line",
    }
}

/// `starts` cold starts of each function. Every start gets a new emulator with its first event
/// already queued, as an on-demand cold start has; the event is a real one (see
/// [`first_event_description`]), prepared by warm helper instances.
pub async fn cold_starts(
    setup: &Setup,
    functions: &[String],
    starts: usize,
) -> Result<Vec<ColdStarts>, String> {
    let sandbox = start_sandbox().await?;
    let helpers = Helpers::start(setup, &sandbox).await?;
    let mut results = Vec::new();
    for function in functions.iter().map(String::as_str) {
        let mut polls = Vec::new();
        let mut responses = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..starts {
            let event = helpers.first_event(function).await?;
            let emulator = Emulator::start().await.map_err(|e| format!("start the emulator: {e}"))?;
            let mut process = setup.spawn(function, &emulator, &sandbox)?;
            let spawned = process.spawned_at();
            let responded = async {
                let response = emulator.invoke(&event, INVOKE_TIMEOUT).await;
                (response, Instant::now())
            };
            let ((response, responded_at), first_poll) =
                tokio::join!(responded, emulator.wait_first_poll(INVOKE_TIMEOUT));
            let response =
                response.map_err(|e| format!("{function} cold start: {e}; stderr:\n{}", process.stderr()))?;
            if !response["statusCode"].as_u64().is_some_and(|status| (200..300).contains(&status)) {
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
            what: first_event_description(function),
        });
    }
    Ok(results)
}

/// One warm instance per function serving `flows` invocations in a row: sms-auth starts `flows`
/// verifications, sms-token completes all of them, user-info reads the sessions back and
/// user-logout ends them; sms-log and sms-clients answer their events.
pub async fn warm_instances(setup: &Setup, flows: usize) -> Result<Vec<WarmInstance>, String> {
    let sandbox = start_sandbox().await?;
    let mut results = Vec::new();

    let auth = Instance::start(setup, "sms-auth", &sandbox).await?;
    // One unmeasured invocation first in every instance: it pays the one-off work of a cold start
    // (libphonenumber's metadata on the first parse, the first connections and TLS handshakes),
    // which the cold-start figures carry; the meter is for the warm invocations after it.
    let mut started = Vec::with_capacity(flows + 1);
    let mut meter = Meter::begin(&auth, Some(&sandbox), setup.dynamodb_port);
    started.push(auth.start_flow(setup).await.map_err(|e| format!("sms-auth: {e}"))?);
    meter.warmed(Some(&sandbox));
    for _ in 0..flows {
        let at = Instant::now();
        started.push(auth.start_flow(setup).await.map_err(|e| format!("sms-auth: {e}"))?);
        meter.latencies.push(at.elapsed());
    }
    results.push(meter.finish("sms-auth", Some(&sandbox)));

    let token = Instance::start(setup, "sms-token", &sandbox).await?;
    let mut sessions = Vec::with_capacity(flows + 1);
    let (first, rest) = started.split_first().ok_or("no verification started")?;
    let mut meter = Meter::begin(&token, Some(&sandbox), setup.dynamodb_port);
    let response = token
        .invoke(&setup.token_event(first, &code_for(&sandbox, &first.phone)?))
        .await
        .map_err(|e| format!("sms-token: {e}"))?;
    sessions.push(session_of(&response)?);
    meter.warmed(Some(&sandbox));
    for flow in rest {
        let event = setup.token_event(flow, &code_for(&sandbox, &flow.phone)?);
        let at = Instant::now();
        let response = token.invoke(&event).await.map_err(|e| format!("sms-token: {e}"))?;
        meter.latencies.push(at.elapsed());
        sessions.push(session_of(&response)?);
    }
    results.push(meter.finish("sms-token", Some(&sandbox)));

    let events = |function: &str| -> Vec<Value> {
        match function {
            "user-info" | "user-logout" => {
                sessions.iter().map(|s| setup.session_event(function, s)).collect()
            }
            "sms-log" => vec![setup.log_event(); flows + 1],
            _ => vec![apigw::load_event(setup.events_dir.join(format!("{function}.json"))); flows + 1],
        }
    };
    for function in ["sms-log", "sms-clients", "user-info", "user-logout"] {
        let instance = Instance::start(setup, function, &sandbox).await?;
        let events = events(function);
        let (first, rest) = events.split_first().ok_or("no events")?;
        let mut meter = Meter::begin(&instance, None, setup.dynamodb_port);
        instance.invoke(first).await.map_err(|e| format!("{function}: {e}"))?;
        meter.warmed(None);
        for event in rest {
            let at = Instant::now();
            instance.invoke(event).await.map_err(|e| format!("{function}: {e}"))?;
            meter.latencies.push(at.elapsed());
        }
        results.push(meter.finish(function, None));
    }
    Ok(results)
}

/// Measures one warm instance over a run of invocations: its TCP connections from its start, the
/// rest from [`Meter::warmed`] on.
struct Meter {
    pid: u32,
    rss_at_start_kib: u64,
    connections_at_start: Option<u64>,
    stats_before: Option<sandbox_auth::Stats>,
    dynamodb_port: Option<u16>,
    store_connections_warm: Option<Vec<u16>>,
    cpu_before: f64,
    latencies: Vec<Duration>,
}

impl Meter {
    fn begin(instance: &Instance, sandbox: Option<&Sandbox>, dynamodb_port: Option<u16>) -> Meter {
        let pid = instance.process.id();
        Meter {
            dynamodb_port,
            store_connections_warm: None,
            pid,
            rss_at_start_kib: procfs::status_kib(pid, "VmRSS").unwrap_or(0),
            connections_at_start: sandbox.map(|s| s.stats().connections),
            stats_before: sandbox.map(Sandbox::stats),
            cpu_before: procfs::cpu_seconds(pid).unwrap_or(0.0),
            latencies: Vec::new(),
        }
    }

    /// The warm-up invocation is done: CPU, latencies and upstream requests count from here.
    fn warmed(&mut self, sandbox: Option<&Sandbox>) {
        self.cpu_before = procfs::cpu_seconds(self.pid).unwrap_or(0.0);
        self.stats_before = sandbox.map(Sandbox::stats);
        self.store_connections_warm =
            self.dynamodb_port.and_then(|port| procfs::connections_to(self.pid, port));
        self.latencies.clear();
    }

    fn finish(self, function: &str, sandbox: Option<&Sandbox>) -> WarmInstance {
        let cpu = procfs::cpu_seconds(self.pid).unwrap_or(0.0) - self.cpu_before;
        let count = self.latencies.len();
        let requests = |s: &sandbox_auth::Stats| {
            s.requests.auth + s.requests.callback + s.requests.token + s.requests.userinfo
        };
        let (upstream_connections, upstream_requests) =
            match (self.connections_at_start, self.stats_before, sandbox.map(Sandbox::stats)) {
                (Some(at_start), Some(before), Some(after)) => {
                    (Some(after.connections - at_start), Some(requests(&after) - requests(&before)))
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
            store_connections: self
                .store_connections_warm
                .clone()
                .zip(self.dynamodb_port.and_then(|port| procfs::connections_to(self.pid, port))),
        }
    }
}

/// Size of each function's stripped release binary (this machine's target).
pub fn binary_size(bin_dir: &Path, function: &str) -> Option<u64> {
    std::fs::metadata(bin_dir.join(function)).ok().map(|m| m.len())
}
