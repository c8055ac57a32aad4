//! `bench`: the figures of BENCHMARKS.md, taken on this machine. Run it through `scripts/bench.sh`,
//! which builds the release binaries, the arm64 deployment zips and the criterion benches, and
//! starts DynamoDB Local (and moto); then:
//!
//! 1. sizes of the stripped binaries and zips;
//! 2. cold starts of each function binary against a local Lambda Runtime API;
//! 3. one warm instance of each function serving a run of invocations: peak RSS, CPU per
//!    invocation, TCP connections to the upstream;
//! 4. the full flow through `local-api` and the `sandbox-auth` upstream at concurrency 1, 16 and 32,
//!    on the in-memory store and on DynamoDB (DynamoDB Local), with the CPU time of every process;
//! 5. criterion's estimates of the handler cost;
//!
//! and writes them between the markers of BENCHMARKS.md (the rest of the file is kept). Every
//! server binds 127.0.0.1; nothing else is contacted.

mod artifacts;
mod cost;
mod functions;
mod load;
mod machine;
mod procfs;
mod report;
mod server;
mod stats;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, SystemTime},
};

use clap::Parser;

use crate::{
    functions::{FUNCTIONS, Setup},
    load::Watched,
    report::Report,
    server::Server,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[derive(Parser)]
#[command(about = "Cold start, warm throughput, handler cost, memory, sizes and connection reuse")]
struct Args {
    /// Fewer samples and shorter runs (for a quick look, not for BENCHMARKS.md).
    #[arg(long)]
    quick: bool,
    /// Where the release binaries are (sms-auth, sms-token, sms-log, local-api, sandbox-auth).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// cargo-lambda's output directory holding <function>/bootstrap.zip for arm64.
    #[arg(long)]
    arm64_dir: Option<PathBuf>,
    /// criterion's output directory.
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// The Markdown file whose generated part is replaced.
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,
    /// Print the figures only; leave the Markdown file alone.
    #[arg(long)]
    no_write: bool,
    /// Where configs and server logs go.
    #[arg(long, default_value = ".tmp/bench")]
    work_dir: PathBuf,
    /// Cold starts per function (at least 20).
    #[arg(long)]
    starts: Option<usize>,
    /// Invocations of each warm function instance (at most 999: the sandbox outbox keeps 1000 codes).
    #[arg(long)]
    invocations: Option<usize>,
    /// Seconds of measured load per configuration.
    #[arg(long)]
    seconds: Option<u64>,
    /// The functions whose cold starts are measured, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<String>,
    /// Phases to run, comma-separated: sizes, cold, warm, load, criterion.
    #[arg(long, value_delimiter = ',', default_value = "sizes,cold,warm,load,criterion")]
    phases: Vec<String>,
    /// The stores of the load phase, comma-separated: memory, dynamodb.
    #[arg(long, value_delimiter = ',', default_value = "memory,dynamodb")]
    stores: Vec<String>,
    /// The client counts of the load phase, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = LOAD_CONCURRENCY)]
    concurrency: Vec<usize>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let root = PathBuf::from(ROOT);
    let at_root = |path: &PathBuf| if path.is_absolute() { path.clone() } else { root.join(path) };
    let bin_dir = at_root(&args.bin_dir);
    let work = at_root(&args.work_dir);
    std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    let phase = |name: &str| args.phases.iter().any(|p| p == name);
    let starts = args.starts.unwrap_or(if args.quick { 20 } else { 30 }).max(1);
    let invocations = args.invocations.unwrap_or(if args.quick { 200 } else { 500 }).max(1);
    let seconds = Duration::from_secs(args.seconds.unwrap_or(if args.quick { 3 } else { 10 }).max(1));
    let warmup = Duration::from_secs(if args.quick { 1 } else { 2 });

    let template =
        std::fs::read_to_string(root.join("template.yaml")).map_err(|e| format!("template.yaml: {e}"))?;
    let mut report = Report {
        machine: Some(machine::describe()),
        quick: args.quick,
        memory_mb: cost::template_memory_mb(&template),
        ..Report::default()
    };
    println!("bench: {}", report.machine.as_ref().map(|m| format!("{m:?}")).unwrap_or_default());

    if phase("sizes") {
        let arm64 = args.arm64_dir.as_ref().map(at_root);
        for function in FUNCTIONS {
            let native = functions::binary_size(&bin_dir, function);
            let package = arm64.as_ref().and_then(|dir| artifacts::package(dir, function));
            report.sizes.push((function.to_owned(), native, package));
        }
        println!("bench: sizes {:?}", report.sizes);
    }

    let needs_dynamodb = phase("cold") || phase("warm") || phase("load");
    let dynamodb = if needs_dynamodb { Some(dynamodb_local()?) } else { None };
    let phones = Arc::new(AtomicU64::new(0));

    if phase("cold") || phase("warm") {
        let table = create_table(&bin_dir, &work)?;
        let setup = Setup {
            bin_dir: bin_dir.clone(),
            table,
            events_dir: root.join("events"),
            phones: phones.clone(),
            dynamodb_port: dynamodb.as_ref().and_then(|(endpoint, _)| endpoint_port(endpoint)),
        };
        if phase("cold") {
            println!("bench: {starts} cold starts of each function");
            let measured: Vec<String> = if args.functions.is_empty() {
                FUNCTIONS.iter().map(|f| (*f).to_owned()).collect()
            } else {
                args.functions.clone()
            };
            report.cold = functions::cold_starts(&setup, &measured, starts).await?;
            for c in &report.cold {
                println!(
                    "  {:<10} first poll p50 {:.2} ms (p10 {:.2}, p90 {:.2}); first response p50 {:.2} ms",
                    c.function, c.first_poll.p50, c.first_poll.p10, c.first_poll.p90, c.first_response.p50
                );
            }
        }
        if phase("warm") {
            println!("bench: one warm instance of each function, {invocations} invocations each");
            report.warm = functions::warm_instances(&setup, invocations).await?;
            for i in &report.warm {
                println!(
                    "  {:<10} peak RSS {} KiB, p50 {:.2} ms, CPU {:.0} µs/invocation, upstream connections {:?}",
                    i.function,
                    i.peak_rss_kib,
                    i.latency.p50,
                    i.cpu_per_invocation_us,
                    i.upstream_connections
                );
            }
        }
    }

    if phase("load") {
        let sandbox = server::start_sandbox(&bin_dir, &work)?;
        let table = format!("bench-load-{}", unique());
        for store in ["memory", "dynamodb"].into_iter().filter(|s| args.stores.iter().any(|a| a == s)) {
            let api = server::start_local_api(
                &bin_dir,
                &work,
                &sandbox.url(),
                (store == "dynamodb").then_some(&*table),
            )?;
            let mut watched = vec![
                Watched { role: "ours", pid: Some(api.pid()), ceiling_cores: cores() },
                Watched { role: "sandbox", pid: Some(sandbox.pid()), ceiling_cores: cores() },
            ];
            if store == "dynamodb" {
                let (_, pid) = dynamodb.as_ref().ok_or("no DynamoDB Local")?;
                // Its JVM can use every core, although it runs its database operations one at a
                // time (its flows per second barely change from c=1 to c=32).
                watched.push(Watched { role: "DynamoDB Local", pid: *pid, ceiling_cores: cores() });
            }
            watched.push(Watched { role: "load generator", pid: None, ceiling_cores: cores() });
            println!("bench: local-api on {store} is pid {}", api.pid());
            for &concurrency in &args.concurrency {
                println!("bench: load on {store}, c={concurrency}, {} s", seconds.as_secs());
                let result = load::run(
                    if store == "memory" { "memory" } else { "DynamoDB (DynamoDB Local)" },
                    api.url(),
                    sandbox.url(),
                    phones.clone(),
                    concurrency,
                    warmup,
                    seconds,
                    &watched,
                    &api.log,
                )
                .await?;
                println!(
                    "  {:.0} flows/s, auth p50 {:.2} p99 {:.2} ms, token p50 {:.2} p99 {:.2} ms, errors {}; {}",
                    result.flows_per_sec(),
                    result.auth.p50,
                    result.auth.p99,
                    result.token.p50,
                    result.token.p99,
                    result.errors,
                    result.verdict
                );
                println!(
                    "    log {:.0} bytes and {:.1} lines per flow; DynamoDB {:.1} read + {:.1} write units per flow",
                    result.logged.bytes_per_flow,
                    result.logged.lines_per_flow,
                    result.logged.read_units_per_flow,
                    result.logged.write_units_per_flow
                );
                for p in &result.processes {
                    println!(
                        "    {:<15} {:.2} cores, {:.3} ms CPU per flow",
                        p.role, p.cores, p.cpu_ms_per_flow
                    );
                }
                if result.flows == 0 {
                    return Err(format!("no flow completed: {}", result.first_error.unwrap_or_default()));
                }
                report.load.push(result);
            }
            drop(api);
        }
    }

    if phase("criterion") {
        report.estimates = artifacts::criterion_estimates(&at_root(&args.criterion_dir));
        if report.estimates.is_empty() {
            println!(
                "bench: no criterion results in {} (run cargo bench -p shared)",
                args.criterion_dir.display()
            );
        }
    }

    let figures = report.markdown();
    println!("\n{figures}");
    if !args.no_write {
        let output = at_root(&args.output);
        let existing = std::fs::read_to_string(&output).ok();
        let document = report::splice(existing.as_deref(), &figures, TEMPLATE);
        std::fs::write(&output, document).map_err(|e| format!("write {}: {e}", output.display()))?;
        println!("bench: wrote {}", output.display());
    }
    Ok(())
}

/// BENCHMARKS.md when there is none yet.
const TEMPLATE: &str = "# Benchmarks\n\nRun `scripts/bench.sh` to take the figures below.\n";

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn unique() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// DynamoDB Local's endpoint (from `scripts/with-test-services.sh`) and the pid of the process
/// serving it.
/// The clients of the load runs: one, the level the targets are set at (16), and a busy one.
const LOAD_CONCURRENCY: [usize; 3] = [1, 16, 32];

fn dynamodb_local() -> Result<(String, Option<u32>), String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .ok()
        .filter(|url| url.starts_with("http://127.0.0.1:"))
        .ok_or("AWS_ENDPOINT_URL_DYNAMODB does not name a DynamoDB Local server on 127.0.0.1: run scripts/bench.sh")?;
    let port =
        endpoint_port(&endpoint).ok_or_else(|| format!("no port in AWS_ENDPOINT_URL_DYNAMODB={endpoint}"))?;
    Ok((endpoint, procfs::pid_listening_on(port)))
}

fn endpoint_port(endpoint: &str) -> Option<u16> {
    endpoint.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok())
}

/// A fresh DynamoDB table on DynamoDB Local, created (with TTL) by `local-api --create-table`, which serves
/// once the table is ready; the process is stopped right away.
fn create_table(bin_dir: &std::path::Path, work: &std::path::Path) -> Result<String, String> {
    let table = format!("bench-{}", unique());
    let server: Server = server::start_local_api(bin_dir, work, "http://127.0.0.1:9", Some(&table))?;
    drop(server);
    Ok(table)
}
