//! `sandbox-auth [--port 3001] [--config PATH]`: the sandbox as a standalone dev server on
//! 127.0.0.1, for running the backend locally against it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sandbox_auth::{Sandbox, SandboxConfig};

#[derive(Parser)]
#[command(version, about = "A local stand-in for the IPification auth server (CIBA + SMS)")]
struct Args {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long, env = "PORT", default_value_t = 3001)]
    port: u16,
    /// JSON file with the SandboxConfig shape; defaults apply to anything it leaves out.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config.as_deref().map(load_config).transpose() {
        Ok(config) => config.unwrap_or_default(),
        Err(message) => {
            eprintln!("sandbox-auth: {message}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let sandbox = match Sandbox::start(config, addr).await {
        Ok(sandbox) => sandbox,
        Err(err) => {
            eprintln!("sandbox-auth: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let started = Started { event: "sandbox_started", url: sandbox.url(), realm: sandbox.realm() };
    match serde_json::to_string(&started) {
        Ok(line) => println!("{line}"),
        Err(err) => eprintln!("sandbox-auth: {err}"),
    }
    if let Err(err) = tokio::signal::ctrl_c().await {
        eprintln!("sandbox-auth: cannot wait for Ctrl-C: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The start line; a struct so the fields print in this order.
#[derive(serde::Serialize)]
struct Started<'a> {
    event: &'static str,
    url: String,
    realm: &'a str,
}

fn load_config(path: &std::path::Path) -> Result<SandboxConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
}
