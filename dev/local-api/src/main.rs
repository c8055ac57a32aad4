//! `local-api`: run the product on this machine.
//!
//! With no arguments: the sandbox auth server on 127.0.0.1:3001, the in-memory store, and the API
//! on 127.0.0.1:3000 with a config that points at the sandbox. With `--config PATH`: that config
//! (and no sandbox unless `--sandbox`). With `TABLE_NAME` set: the DynamoDB store (and with
//! `--create-table`, the table is created when missing, e.g. on DynamoDB Local). With
//! `--check-config FILE`: checks that config as the Lambda functions will at cold start, prints
//! every problem and exits, non-zero when there is one (before `sam deploy`).

use std::{io::Read, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::Parser;
use sandbox_auth::{Sandbox, SandboxConfig};
use serde_json::Value;
use shared::{
    App,
    config::{self, Config},
    origins::BrowserOrigins,
    secret::ClientSecret,
    signed_result::SigningKeys,
    store::{DynamoStore, MemoryStore, StateStore},
};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "Serves the SMS verification API locally, as API Gateway and Lambda would")]
struct Args {
    /// Service config file (the seed's JSON shape). Without it, an embedded config for the sandbox.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start the sandbox auth server even when --config is given.
    #[arg(long)]
    sandbox: bool,
    /// Port of the API on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Port of the sandbox auth server on 127.0.0.1.
    #[arg(long, env = "SANDBOX_PORT", default_value_t = 3001)]
    sandbox_port: u16,
    /// With TABLE_NAME: create the DynamoDB table (with TTL) if it is missing, e.g. on DynamoDB Local.
    #[arg(long)]
    create_table: bool,
    /// Check a service config (the JSON of template.yaml's ServiceConfig parameter, `-` for
    /// standard input) as the Lambda functions will at cold start, print every problem, and exit:
    /// 0 when it is valid, 1 when not. Starts nothing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "sandbox", "create_table"])]
    check_config: Option<PathBuf>,
    /// Print a new Ed25519 signing key named KID as a private JWK Set, the value of the
    /// VerificationKeysSecretArn secret (README, "The signed result"), and exit. Starts nothing.
    #[arg(long, value_name = "KID", conflicts_with_all = ["config", "sandbox", "create_table", "check_config"])]
    new_verification_key: Option<String>,
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(path) = &args.check_config {
        return Ok(check_config(path));
    }
    if let Some(kid) = &args.new_verification_key {
        println!("{}", SigningKeys::generate_named(kid).private_jwks().expose());
        return Ok(ExitCode::SUCCESS);
    }
    shared::telemetry::init();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

/// `--check-config`: the config's problems one per line on standard error, or a summary of what
/// it configures on standard output.
fn check_config(path: &std::path::Path) -> ExitCode {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text).map_err(|e| e.to_string())
    } else {
        config::read_file(path).map_err(|e| e.to_string())
    };
    let checked =
        text.map_err(|e| vec![e]).and_then(|text| Config::check(&text).map_err(|e| e.problems().to_vec()));
    match checked {
        Ok(config) => {
            for warning in config.warnings() {
                eprintln!("  warning: {warning}");
            }
            let servers: Vec<&str> = config.auth_servers.iter().map(|s| s.id.as_str()).collect();
            let clients: Vec<&str> = config.sms_clients.iter().map(|c| c.client_id.as_str()).collect();
            println!(
                "{}: valid; auth servers {servers:?} (the first is the default), SMS clients {clients:?}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{}: {} problem(s) to fix:", path.display(), problems.len());
            for problem in problems {
                eprintln!("  - {problem}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = if args.config.is_none() || args.sandbox {
        let addr = SocketAddr::from(([127, 0, 0, 1], args.sandbox_port));
        Some(Sandbox::start(SandboxConfig::default(), addr).await?)
    } else {
        None
    };
    let config = match &args.config {
        Some(path) => config::read_file(path)?,
        None => local_config(sandbox.as_ref().map(Sandbox::url))?,
    };
    let secret = config::env_var("CLIENT_SECRET").map(ClientSecret::new);
    let config = Config::parse(&config, secret)?;

    let (store, store_name): (Arc<dyn StateStore>, String) = match shared::app::table_name_from_env() {
        Some(table) => {
            let dynamo = DynamoStore::from_env(table.clone())?;
            if args.create_table && dynamo.create_table_if_missing().await? {
                tracing::info!(event = "table_created", table);
            }
            (Arc::new(dynamo), format!("dynamodb:{table}"))
        }
        None if args.create_table => return Err("--create-table needs TABLE_NAME".into()),
        None => (Arc::new(MemoryStore::new()), "memory".to_owned()),
    };
    let mut app = App::new(config, store)?;
    app.browser_origins = BrowserOrigins::from_env()?;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    // The signed results name this API as their issuer, unless the config names another; their
    // key was made at start, so a restart changes it (a backend refetches the JWKS by `kid`).
    if app.config.issuer.is_none() {
        app.results.issuer = Some(format!("http://{}", listener.local_addr()?));
    }
    let app = Arc::new(app);

    tracing::info!(
        event = "local_api_started",
        url = format!("http://{}", listener.local_addr()?),
        sandbox = sandbox.as_ref().map(Sandbox::url),
        store = store_name,
    );
    local_api::serve(listener, app, shutdown_signal()).await?;
    Ok(())
}

/// The embedded config, pointed at the sandbox actually started.
fn local_config(sandbox_url: Option<String>) -> Result<String, serde_json::Error> {
    let mut config: Value = serde_json::from_str(local_api::LOCAL_CONFIG)?;
    if let Some(url) = sandbox_url {
        config["auth_servers"][0]["url"] = Value::String(url);
    }
    Ok(config.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
