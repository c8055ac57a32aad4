//! Warm throughput of the full flow through `local-api`: `c` clients each run verifications back
//! to back (`POST /sms/auth`, read the code from the sandbox's outbox as the user reads the SMS,
//! `POST /sms/token`) for a fixed time, after a warm-up; the CPU time every process spent in
//! that window says which one limits the throughput.

use std::{
    io::{Read, Seek, SeekFrom},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{procfs, stats::Spread};

/// A process whose CPU time is attributed during a run.
#[derive(Clone, Debug)]
pub struct Watched {
    /// `ours`, `sandbox`, `DynamoDB Local` or `load generator`.
    pub role: &'static str,
    pub pid: Option<u32>,
    /// How many cores it can use at most.
    pub ceiling_cores: f64,
}

#[derive(Clone, Debug)]
pub struct ProcessLoad {
    pub role: &'static str,
    /// CPU cores it used on average over the window.
    pub cores: f64,
    /// CPU time per verified flow, ms.
    pub cpu_ms_per_flow: f64,
    pub ceiling_cores: f64,
}

#[derive(Clone, Debug)]
pub struct LoadResult {
    pub store: &'static str,
    pub concurrency: usize,
    pub seconds: f64,
    pub flows: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub auth: Spread,
    pub token: Spread,
    pub processes: Vec<ProcessLoad>,
    /// Who limits the throughput, in words.
    pub verdict: String,
    /// The role that limits it, when a process (or the machine's CPU, by the largest consumer) does.
    pub limited_by: Option<&'static str>,
    /// What `local-api` logged in the window (its lines are the functions' lines).
    pub logged: Logged,
}

/// The log lines `local-api` wrote during the measured window, per verified flow: their bytes
/// (CloudWatch Logs bills ingestion by the byte) and the DynamoDB capacity units the summary
/// lines report (`store_read_units`, `store_write_units`).
#[derive(Clone, Debug, Default)]
pub struct Logged {
    pub bytes_per_flow: f64,
    pub lines_per_flow: f64,
    pub read_units_per_flow: f64,
    pub write_units_per_flow: f64,
}

impl Logged {
    /// The part of `log` between the offsets `from` and `to`, divided over `flows`.
    fn of(log: &Path, from: u64, to: u64, flows: u64) -> Result<Logged, String> {
        let mut file = std::fs::File::open(log).map_err(|e| format!("open {}: {e}", log.display()))?;
        file.seek(SeekFrom::Start(from)).map_err(|e| e.to_string())?;
        let mut window = String::new();
        file.take(to.saturating_sub(from)).read_to_string(&mut window).map_err(|e| e.to_string())?;
        let (mut lines, mut read, mut write) = (0_u64, 0.0, 0.0);
        for line in window.lines() {
            lines += 1;
            let Ok(line) = serde_json::from_str::<Value>(line) else { continue };
            read += line["store_read_units"].as_f64().unwrap_or(0.0);
            write += line["store_write_units"].as_f64().unwrap_or(0.0);
        }
        let flows = flows.max(1) as f64;
        Ok(Logged {
            bytes_per_flow: window.len() as f64 / flows,
            lines_per_flow: lines as f64 / flows,
            read_units_per_flow: read / flows,
            write_units_per_flow: write / flows,
        })
    }
}

fn log_length(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

impl LoadResult {
    pub fn flows_per_sec(&self) -> f64 {
        self.flows as f64 / self.seconds
    }
}

struct Client {
    http: reqwest::Client,
    api: String,
    sandbox: String,
    phones: Arc<AtomicU64>,
}

#[derive(Default)]
struct Worker {
    auth: Vec<Duration>,
    token: Vec<Duration>,
    flows: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Client {
    /// One verification; records the two endpoints' latencies.
    async fn flow(&self, worker: &mut Worker) -> Result<(), String> {
        let phone = format!("+447400{:06}", self.phones.fetch_add(1, Ordering::Relaxed) % 1_000_000);
        let at = Instant::now();
        let started =
            self.post("/sms/auth", &json!({ "client_id": "sandbox-client", "login_hint": phone })).await?;
        worker.auth.push(at.elapsed());
        let messages: Value = self
            .http
            .get(format!("{}/sandbox/messages", self.sandbox))
            .query(&[("to", &phone)])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("read the outbox: {e}"))?
            .json()
            .await
            .map_err(|e| format!("read the outbox: {e}"))?;
        let code = messages[0]["code"].as_str().ok_or_else(|| format!("no SMS to {phone}"))?;
        let body = json!({
            "code": code,
            "auth_req_id": started["auth_req_id"],
            "client_id": "sandbox-client",
            "nonce": started["nonce"],
        });
        let at = Instant::now();
        self.post("/sms/token", &body).await?;
        worker.token.push(at.elapsed());
        Ok(())
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
        if status != 200 {
            return Err(format!("{path} answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
    }
}

/// Runs `concurrency` clients against `api` for `warmup` (not counted) then `duration`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: &'static str,
    api: String,
    sandbox: String,
    phones: Arc<AtomicU64>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    watched: &[Watched],
    log: &Path,
) -> Result<LoadResult, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let client = Arc::new(Client { http, api, sandbox, phones });
    drive(&client, concurrency, warmup).await;

    let cpu_before: Vec<Option<f64>> = watched.iter().map(cpu_of).collect();
    let log_before = log_length(log);
    let started = Instant::now();
    let workers = drive(&client, concurrency, duration).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after: Vec<Option<f64>> = watched.iter().map(cpu_of).collect();
    // Every flow of the window has ended (each worker finishes its flow), so its lines are in.
    let log_after = log_length(log);

    let mut all = Worker::default();
    for worker in workers {
        all.auth.extend(worker.auth);
        all.token.extend(worker.token);
        all.flows += worker.flows;
        all.errors += worker.errors;
        all.first_error = all.first_error.or(worker.first_error);
    }
    let processes: Vec<ProcessLoad> = watched
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .filter_map(|(w, (before, after))| {
            let cpu = after.as_ref()? - before.as_ref()?;
            Some(ProcessLoad {
                role: w.role,
                cores: cpu / seconds,
                cpu_ms_per_flow: cpu * 1000.0 / all.flows.max(1) as f64,
                ceiling_cores: w.ceiling_cores,
            })
        })
        .collect();
    let (limited_by, verdict) = verdict(&processes, concurrency);
    let logged = Logged::of(log, log_before, log_after, all.flows)?;
    Ok(LoadResult {
        store,
        concurrency,
        seconds,
        flows: all.flows,
        errors: all.errors,
        first_error: all.first_error,
        auth: Spread::of_durations(&all.auth),
        token: Spread::of_durations(&all.token),
        processes,
        verdict,
        limited_by,
        logged,
    })
}

fn cpu_of(watched: &Watched) -> Option<f64> {
    match watched.pid {
        Some(pid) => procfs::cpu_seconds(pid),
        None => procfs::own_cpu_seconds(),
    }
}

/// `concurrency` workers running flows until `duration` has passed.
async fn drive(client: &Arc<Client>, concurrency: usize, duration: Duration) -> Vec<Worker> {
    let until = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = Arc::clone(client);
            tokio::spawn(async move {
                let mut worker = Worker::default();
                while Instant::now() < until {
                    match client.flow(&mut worker).await {
                        Ok(()) => worker.flows += 1,
                        Err(err) => {
                            worker.errors += 1;
                            worker.first_error.get_or_insert(err);
                            // Do not spin on a broken server.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                worker
            })
        })
        .collect();
    let mut workers = Vec::with_capacity(concurrency);
    for task in tasks {
        workers.push(task.await.unwrap_or_default());
    }
    workers
}

/// Which process limits the throughput: one that runs at (nearly) its own ceiling saturates; else,
/// when the processes together use (nearly) every core, the machine's CPU is the limit and the
/// biggest consumer per flow is named; else nothing saturates and the clients' round trips set
/// the pace.
pub fn verdict(processes: &[ProcessLoad], concurrency: usize) -> (Option<&'static str>, String) {
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let total: f64 = processes.iter().map(|p| p.cores).sum();
    let describe = |p: &ProcessLoad| format!("{} ({:.2} of {:.0} core(s))", p.role, p.cores, p.ceiling_cores);
    if let Some(saturated) = processes
        .iter()
        .filter(|p| p.ceiling_cores < cores && p.cores >= 0.85 * p.ceiling_cores)
        .max_by(|a, b| a.cores.total_cmp(&b.cores))
    {
        return (Some(saturated.role), format!("{} saturates", describe(saturated)));
    }
    let servers = processes.iter().filter(|p| p.role != "load generator");
    let biggest = servers.max_by(|a, b| a.cpu_ms_per_flow.total_cmp(&b.cpu_ms_per_flow));
    match biggest {
        Some(biggest) if total >= 0.85 * cores => (
            Some(biggest.role),
            format!(
                "the machine's {cores:.0} cores are saturated ({total:.2} busy); the largest CPU per flow is {}'s ({:.2} ms)",
                biggest.role, biggest.cpu_ms_per_flow
            ),
        ),
        _ => (
            None,
            format!(
                "nothing saturates ({total:.2} of {cores:.0} cores busy): at c={concurrency} the round trips set the pace"
            ),
        ),
    }
}
