//! The servers the warm load runs against, each in its own process so that its CPU time can be
//! told apart: `sandbox-auth` (the upstream) and `local-api` (our handlers), both on 127.0.0.1.

use std::{
    fs::File,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A child process, killed and reaped when dropped; its output goes to a log file.
pub struct Server {
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
}

impl Server {
    /// Starts `command` (stdout and stderr to `log`) and waits until 127.0.0.1:`port` accepts.
    pub fn start(name: &str, mut command: Command, port: u16, log: &Path) -> Result<Server, String> {
        let out = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child =
            command.spawn().map_err(|e| format!("start {name} ({:?}): {e}", command.get_program()))?;
        let mut server = Server { port, log: log.to_owned(), child };
        let until = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{name} exited with {status} before listening; see {}", log.display()));
            }
            if Instant::now() > until {
                return Err(format!("{name} did not listen on 127.0.0.1:{port}; see {}", log.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// The `sandbox-auth` binary with a quiet outbox and a 1 s poll interval.
pub fn start_sandbox(bin_dir: &Path, work: &Path) -> Result<Server, String> {
    let config = work.join("sandbox.json");
    write_json(&config, &json!({ "quiet": true, "interval": 1 }))?;
    let port = free_port();
    let mut command = Command::new(bin_dir.join("sandbox-auth"));
    command.arg("--port").arg(port.to_string()).arg("--config").arg(&config);
    Server::start("sandbox-auth", command, port, &work.join("sandbox-auth.log"))
}

/// `local-api` on the sandbox with [`service_config`]: the in-memory store, or with `table` the
/// DynamoDB store (the endpoint, region and credentials come from this process's environment,
/// which `scripts/with-test-services.sh` points at DynamoDB Local), creating the table.
pub fn start_local_api(
    bin_dir: &Path,
    work: &Path,
    sandbox_url: &str,
    table: Option<&str>,
) -> Result<Server, String> {
    let config = work.join("local-api.json");
    write_json(&config, &service_config(sandbox_url))?;
    let port = free_port();
    let mut command = Command::new(bin_dir.join("local-api"));
    command.arg("--config").arg(&config).arg("--port").arg(port.to_string());
    command.env_remove("CLIENT_SECRET").env_remove("RUST_LOG").env_remove("PORT");
    match table {
        Some(table) => {
            command.env("TABLE_NAME", table).arg("--create-table");
        }
        None => {
            command.env_remove("TABLE_NAME");
        }
    }
    let name = if table.is_some() { "local-api-dynamodb" } else { "local-api-memory" };
    Server::start(name, command, port, &work.join(format!("{name}.log")))
}

/// The service config of every benchmark: one SMS client on the sandbox, with the abuse limits
/// opened wide (every request comes from 127.0.0.1, and a load test is not abuse). `sandbox_url`
/// is the sandbox's base URL without `/auth`.
pub fn service_config(sandbox_url: &str) -> Value {
    json!({
        "realm": "ipification",
        "auth_servers": [{ "id": "sandbox", "url": format!("{sandbox_url}/auth") }],
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "clients": [{ "user_flow": "pvn_sms", "title": "Benchmark", "scope": "openid ip:phone_verify" }],
        // The warm phase sends SMS nobody verifies: the breaker counts them but never pauses.
        "fraud_guard": { "min_conversion": 0 },
        "limits": {
            "starts_per_ip_hour": u32::MAX,
            // The bench's numbers are consecutive: one range per thousand numbers.
            "sends_per_range_hour": u32::MAX,
            "sends_per_country_hour": u32::MAX,
            "sends_per_client_day": u32::MAX,
            "sends_per_phone_window": 1000,
            "sends_per_phone_day": 1000,
            "resend_delays_secs": [0]
        }
    })
}

fn write_json(path: &PathBuf, value: &Value) -> Result<(), String> {
    std::fs::write(path, value.to_string()).map_err(|e| format!("write {}: {e}", path.display()))
}
