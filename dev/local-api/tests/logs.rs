//! What operators read in CloudWatch: the real `local-api` process driven through every endpoint
//! (see `common::logs`), its stdout checked line by line.

mod common;

use common::logs::run_every_endpoint;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_line_carries_a_secret_and_every_request_logs_one_summary() {
    let run = run_every_endpoint().await;
    assert!(run.lines.len() > 20, "the run was logged: {:?}", run.lines);

    // Nothing secret, in any line, in any form the test knows.
    for line in &run.lines {
        for secret in &run.secrets {
            assert!(!line.contains(secret.as_str()), "a log line carries {secret:?}:\n{line}");
        }
    }
    // Every line is one JSON object (no forged or broken lines from the client's data).
    for line in &run.lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }

    // One summary per request, named `<endpoint>_<outcome>`, with the fields the queries use.
    let summaries: Vec<Value> =
        run.events().into_iter().filter(|line| line.get("endpoint").is_some()).collect();
    for line in &summaries {
        let (endpoint, outcome) = (line["endpoint"].as_str().unwrap(), line["outcome"].as_str().unwrap());
        if line["event"] != "sms_client_log" {
            assert_eq!(line["event"], format!("{endpoint}_{outcome}"), "{line}");
        }
        assert!(line["status"].is_u64() && line["duration_ms"].is_number(), "{line}");
        assert!(line["request_id"].is_string() && line["cold_start"].is_boolean(), "{line}");
        let failed = line["status"].as_u64().unwrap() >= 400;
        assert_eq!(line.get("error").is_some(), failed, "error is set exactly on failures: {line}");
    }
    let cold: Vec<&Value> = summaries.iter().filter(|line| line["cold_start"] == true).collect();
    assert_eq!(cold.len(), 1, "only the first request of the process is a cold start: {cold:?}");

    // The verified flow's lines are joined by the flow id, with the masked phone, its country,
    // the source key and where the time went.
    let flow: Vec<&Value> = summaries
        .iter()
        .filter(|line| line["flow_id"] == run.flow_id.as_str() && line["endpoint"] != "user_info")
        .collect();
    let events: Vec<&str> = flow.iter().map(|line| line["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "sms_auth_sent",
            "sms_token_invalid_code",
            "sms_token_verification_not_found",
            "sms_token_verified",
            "sms_token_verified",
            "sms_client_log"
        ],
        "{flow:?}"
    );
    let sent = flow[0];
    assert_eq!((sent["phone"].as_str(), sent["country_code"].as_u64()), (Some("+44********56"), Some(44)));
    assert_eq!(
        (sent["client_id"].as_str(), sent["server_id"].as_str()),
        (Some("sandbox-client"), Some("sandbox"))
    );
    assert!(sent["source"].as_str().is_some_and(|s| s.len() == 16), "{sent}");
    assert!(sent["upstream_auth_ms"].is_number() && sent["store_ms"].is_number(), "{sent}");
    assert_eq!(sent["upstream_status"], 200);
    let verified = flow[3];
    for field in
        ["upstream_callback_ms", "upstream_token_ms", "upstream_userinfo_ms", "upstream_ms", "store_ms"]
    {
        assert!(verified[field].is_number(), "{field}: {verified}");
    }
    assert_eq!(verified["source"], sent["source"], "one caller, one source key");
    assert_eq!(flow[1]["attempts_left"], 4, "{}", flow[1]);
    // The same request again got the same session: said on its line, and nothing went upstream.
    assert_eq!((verified.get("replayed"), &flow[4]["replayed"]), (None, &Value::Bool(true)), "{}", flow[4]);
    assert!(flow[4].get("upstream_ms").is_none(), "{}", flow[4]);

    // The session's reads and its end name the flow too; refusals name no one.
    let reads = run.events_named("user_info_read");
    assert_eq!(reads.len(), 2, "{reads:?}");
    for read in &reads {
        assert_eq!(
            (read["flow_id"].as_str(), read["phone"].as_str()),
            (Some(run.flow_id.as_str()), Some("+44********56"))
        );
    }
    assert_eq!(run.events_named("user_info_unauthorized").len(), 2);
    assert_eq!(run.events_named("user_logout_logged_out").len(), 1);
    assert_eq!(run.events_named("user_logout_unauthorized").len(), 1);
    assert_eq!(run.events_named("sms_clients_listed").len(), 1);

    // The client's line: sanitised data, the flow id it sent.
    let client = run.events_named("sms_client_log");
    assert_eq!(client.len(), 1, "{client:?}");
    let data: Value = serde_json::from_str(client[0]["data"].as_str().unwrap()).expect("data is JSON text");
    // Only the documented fields, in their shapes; the number in text masked; the rest dropped
    // and counted (every other key, the phone's string in `extra`, the fields that broke shape).
    assert_eq!(
        data,
        json!({
            "step": "verified",
            "network": "+** **** ******",
            "app_version": "*.* (************)",
            "platform": "web",
            "status": 400,
            "extra": { "a": 447, "resend": true },
        })
    );
    assert_eq!(client[0]["dropped_fields"], 17, "{}", client[0]);
    let line = client[0].to_string();
    assert!(!line.contains(['\u{2028}', '\u{202e}']), "{line}");
}

/// Every request leaves one metrics line, and each follows the embedded metric format: an `_aws`
/// block with a millisecond timestamp, every dimension and metric named there present as a
/// top-level member, and no dimension that could hold a phone, an address or an id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_a_valid_embedded_metric_format_line() {
    let run = run_every_endpoint().await;
    let emf = run.emf_lines();
    let summaries = run.events().into_iter().filter(|line| line.get("endpoint").is_some()).count();
    assert_eq!(emf.len(), summaries, "one metrics line per request");
    for line in &emf {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], "SmsVerify");
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                let name = name.as_str().unwrap();
                assert!(["Endpoint", "Outcome"].contains(&name), "bounded dimensions only: {name}");
                assert!(line[name].is_string(), "dimension {name} is a top-level string: {line}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "metric {name} is a top-level number: {line}");
        }
        for secret in &run.secrets {
            assert!(!line.to_string().contains(secret.as_str()));
        }
    }
    let outcomes: Vec<&str> = emf.iter().map(|line| line["Outcome"].as_str().unwrap()).collect();
    for expected in ["sent", "verified", "invalid_code", "logged", "payload_too_large"] {
        assert!(outcomes.contains(&expected), "{expected} in {outcomes:?}");
    }
}
