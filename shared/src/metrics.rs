//! Request metrics in CloudWatch Embedded Metric Format (EMF): one JSON line per request on
//! stdout, which CloudWatch Logs turns into metrics without any API call from the function.
//!
//! Dimensions are bounded: the endpoint and the outcome (a success word or one of the API's
//! error codes, see [`crate::outcome`]), never a phone, an IP or an id. The namespace comes from `METRICS_NAMESPACE`
//! (default `SmsVerify`).

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

pub use crate::outcome::bounded_outcome;
use crate::timings::Timings;

pub const DEFAULT_NAMESPACE: &str = "SmsVerify";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns emission on; called by [`crate::telemetry::init`], so only real processes (Lambda
/// functions, `local-api`) print metrics, and library tests stay quiet.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn namespace() -> &'static str {
    static NAMESPACE: OnceLock<String> = OnceLock::new();
    NAMESPACE.get_or_init(|| {
        std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(DEFAULT_NAMESPACE.into())
    })
}

/// The EMF document for one request: `Requests` (Count) and `Duration` (Milliseconds), by
/// endpoint and outcome, and by endpoint alone; plus `StoreDuration` and `UpstreamDuration` when
/// the request used the store or the upstream (a metric is declared only with a value).
pub fn request_metrics(
    namespace: &str,
    endpoint: &str,
    outcome: &str,
    duration_ms: f64,
    timings: &Timings,
    timestamp_ms: u128,
) -> Value {
    let mut metrics = vec![
        json!({ "Name": "Requests", "Unit": "Count" }),
        json!({ "Name": "Duration", "Unit": "Milliseconds" }),
    ];
    let mut line = json!({
        "Endpoint": endpoint,
        "Outcome": bounded_outcome(outcome),
        "Requests": 1,
        "Duration": duration_ms,
    });
    let parts = [
        ("StoreDuration", (timings.store_ms > 0.0).then_some(timings.store_ms)),
        ("UpstreamDuration", timings.upstream_ms()),
    ];
    for (name, value) in parts {
        if let Some(value) = value {
            metrics.push(json!({ "Name": name, "Unit": "Milliseconds" }));
            line[name] = json!(value);
        }
    }
    line["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": namespace,
            "Dimensions": [["Endpoint", "Outcome"], ["Endpoint"]],
            "Metrics": metrics,
        }]
    });
    line
}

/// The EMF document for one pause of the fraud guard ([`crate::fraud_guard`]): `FraudGuardPauses`
/// (Count) by endpoint. The country is in the WARN line beside it, not a dimension: dimensions
/// stay bounded.
pub fn pause_metrics(namespace: &str, timestamp_ms: u128) -> Value {
    json!({
        "Endpoint": "sms_auth",
        "FraudGuardPauses": 1,
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Endpoint"]],
                "Metrics": [{ "Name": "FraudGuardPauses", "Unit": "Count" }],
            }]
        }
    })
}

/// Prints one pause's metrics line, when enabled.
pub fn record_pause() {
    if ENABLED.load(Ordering::Relaxed) {
        println!("{}", pause_metrics(namespace(), now_ms()));
    }
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Prints one request's metrics line, when enabled.
pub fn record_request(endpoint: &str, outcome: &str, duration_ms: f64, timings: &Timings) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    println!("{}", request_metrics(namespace(), endpoint, outcome, duration_ms, timings, now_ms()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format's rules: an `_aws` block with a millisecond timestamp and one directive whose
    /// namespace is a string, whose dimension names and metric names are all top-level members
    /// (dimensions with string values, metrics with numbers), and whose dimensions are bounded.
    #[test]
    fn request_metrics_follow_the_embedded_metric_format() {
        let timings = Timings { store_ms: 3.5, upstream_callback_ms: Some(4.0), ..Timings::default() };
        let line =
            request_metrics("SmsVerify", "sms_token", "invalid_code", 12.5, &timings, 1_795_925_411_000);
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], 1_795_925_411_000_u64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "SmsVerify");
        for set in directive["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(!set.is_empty() && set.len() <= 30);
            for name in set {
                assert!(line[name.as_str().unwrap()].is_string(), "dimension {name} is a top-level string");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "metric {name} is a top-level number");
            assert!(["Count", "Milliseconds"].contains(&metric["Unit"].as_str().unwrap()));
        }
        assert_eq!(
            (line["Endpoint"].clone(), line["Outcome"].clone()),
            (json!("sms_token"), json!("invalid_code"))
        );
        assert_eq!(
            (line["StoreDuration"].clone(), line["UpstreamDuration"].clone()),
            (json!(3.5), json!(4.0))
        );
    }

    /// A metric without a value is not declared (CloudWatch would reject the document's metric).
    #[test]
    fn only_measured_parts_are_declared() {
        let line = request_metrics("SmsVerify", "sms_log", "logged", 0.2, &Timings::default(), 1);
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Requests", "Duration"]);
        assert!(line.get("StoreDuration").is_none() && line.get("UpstreamDuration").is_none());
    }
}
