//! What a verified flow costs to run on AWS, from the measured figures and list prices: a model,
//! stated with its inputs, so that an operator can redo it with their own prices and latencies.
//!
//! One verification is `POST /sms/auth` and `POST /sms/token`: two API Gateway requests, two
//! Lambda invocations, the DynamoDB capacity the summary lines report, and the log bytes written.
//! The SMS itself, and fixed monthly costs (the secret, the alarms, custom metrics), are left out.

use std::fmt::Write as _;

use crate::{functions::WarmInstance, load::LoadResult};

/// US East (N. Virginia) list prices, as AWS's pricing pages publish them; see [`PRICES_AS_OF`].
pub const PRICES_AS_OF: &str = "AWS's pricing pages as stored on 2026-12-02 (DynamoDB's after its \
    November 2024 on-demand cut; this machine cannot reach aws.amazon.com to refresh them)";
/// Lambda, arm64, first pricing tier: per GB-second of billed duration.
const LAMBDA_ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda: per invocation.
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// API Gateway HTTP API, first 300 million a month: per request.
const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// DynamoDB on-demand: per write request unit and per read request unit.
const DYNAMODB_PER_WRITE_UNIT: f64 = 0.625 / 1e6;
const DYNAMODB_PER_READ_UNIT: f64 = 0.125 / 1e6;
/// CloudWatch Logs, standard class: ingestion per GB.
const LOGS_PER_GB: f64 = 0.50;
/// The memory at which Lambda gives a function one whole vCPU; below it, a proportional share.
const FULL_VCPU_MB: f64 = 1769.0;

/// The memory size of the SMS functions: `MemorySize` under `Globals.Function` in template.yaml.
pub fn template_memory_mb(template: &str) -> Option<f64> {
    let globals = template.split("\nGlobals:").nth(1)?;
    let globals = globals.split("\nResources:").next()?;
    globals.lines().find_map(|line| line.trim().strip_prefix("MemorySize:")?.trim().parse().ok())
}

struct Line {
    what: String,
    per_flow: f64,
}

/// The cost model as Markdown; empty when the figures it needs were not taken.
pub fn markdown(warm: &[WarmInstance], load: &[LoadResult], memory_mb: Option<f64>) -> String {
    let find = |name: &str| warm.iter().find(|w| w.function == name);
    let (Some(auth), Some(token), Some(memory_mb)) = (find("sms-auth"), find("sms-token"), memory_mb) else {
        return String::new();
    };
    // The DynamoDB run at the targets' level (c=16), else the busiest DynamoDB run.
    let dynamo: Vec<&LoadResult> = load.iter().filter(|l| l.store.starts_with("DynamoDB")).collect();
    let Some(run) = dynamo.iter().find(|l| l.concurrency == 16).or(dynamo.last()) else {
        return String::new();
    };
    let gb = memory_mb / 1024.0;
    let cpu_share = (memory_mb / FULL_VCPU_MB).min(1.0);
    // Billed duration: the warm invocation's wall time here, with its CPU time stretched to
    // Lambda's share of a vCPU at this memory size, rounded up to Lambda's 1 ms unit.
    let billed_ms = |w: &WarmInstance| {
        let cpu_ms = w.cpu_per_invocation_us / 1000.0;
        let waiting_ms = (w.latency.p50 - cpu_ms).max(0.0);
        (waiting_ms + cpu_ms / cpu_share).ceil()
    };
    let (auth_ms, token_ms) = (billed_ms(auth), billed_ms(token));
    let logged = &run.logged;
    let lines = [
        Line { what: "API Gateway HTTP API: 2 requests".into(), per_flow: 2.0 * HTTP_API_PER_REQUEST },
        Line { what: "Lambda: 2 invocations".into(), per_flow: 2.0 * LAMBDA_PER_REQUEST },
        Line {
            what: format!(
                "Lambda duration: sms-auth {auth_ms:.0} ms + sms-token {token_ms:.0} ms billed at {memory_mb:.0} MB arm64"
            ),
            per_flow: (auth_ms + token_ms) / 1000.0 * gb * LAMBDA_ARM64_PER_GB_SECOND,
        },
        Line {
            what: format!("DynamoDB on-demand: {:.1} write units", logged.write_units_per_flow),
            per_flow: logged.write_units_per_flow * DYNAMODB_PER_WRITE_UNIT,
        },
        Line {
            what: format!("DynamoDB on-demand: {:.1} read units", logged.read_units_per_flow),
            per_flow: logged.read_units_per_flow * DYNAMODB_PER_READ_UNIT,
        },
        Line {
            what: format!("CloudWatch Logs ingestion: {:.0} bytes", logged.bytes_per_flow),
            per_flow: logged.bytes_per_flow / 1e9 * LOGS_PER_GB,
        },
    ];
    let total: f64 = lines.iter().map(|l| l.per_flow).sum();
    let largest = lines.iter().max_by(|a, b| a.per_flow.total_cmp(&b.per_flow)).map_or("", |l| &l.what);
    let upstream_100ms = 0.1 * gb * LAMBDA_ARM64_PER_GB_SECOND;

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "### 7. What a verification costs to run\n\nOne verified flow (`/sms/auth` + `/sms/token`) at US East \
         list prices of {PRICES_AS_OF}: API Gateway HTTP API $1.00 per million requests, Lambda arm64 \
         $0.20 per million invocations and $0.0000133334 per GB-second, DynamoDB on-demand $0.625 per \
         million write and $0.125 per million read request units, CloudWatch Logs $0.50 per GB ingested. \
         Inputs measured above: the billed duration is each function's warm p50 (section 4) with its CPU \
         time stretched to the {share:.1} % of a vCPU Lambda gives {memory_mb:.0} MB (`MemorySize` in \
         template.yaml), rounded up to 1 ms; the capacity units and log bytes are what `local-api`'s \
         summary lines reported per flow in the DynamoDB run at c={c} (section 2). SMS excluded.\n",
        share = cpu_share * 100.0,
        c = run.concurrency,
    );
    let _ = writeln!(w, "| item | per verification | per million verifications |\n|---|---|---|");
    for line in &lines {
        let _ = writeln!(w, "| {} | ${:.8} | ${:.2} |", line.what, line.per_flow, line.per_flow * 1e6);
    }
    let _ = writeln!(w, "| **total** | **${total:.8}** | **${:.2}** |\n", total * 1e6);
    let _ = writeln!(
        w,
        "The largest item: {largest}. The upstream's own latency is not in these figures (the sandbox \
         answers in about a millisecond): every 100 ms a flow waits on the auth server adds ${:.2} per \
         million verifications in Lambda duration.\n",
        upstream_100ms * 1e6
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_global_memory_size_of_the_template() {
        let template = "Parameters:\n  X:\n    MemorySize: 1\n\nGlobals:\n  Function:\n    Timeout: 3\n    \
                        MemorySize: 256\n\nResources:\n  F:\n    Properties:\n      MemorySize: 128\n";
        assert_eq!(template_memory_mb(template), Some(256.0));
        assert_eq!(template_memory_mb("Resources:\n  MemorySize: 128\n"), None);
        let real =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap();
        assert!(template_memory_mb(&real).is_some_and(|mb| (128.0..=10240.0).contains(&mb)));
    }
}
