//! `local-api --check-config`: what an operator runs on `ServiceConfig` before `sam deploy`.

use std::{io::Write, process::Stdio};

fn check(config: &str) -> (bool, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_local-api"))
        .args(["--check-config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("local-api starts");
    child.stdin.take().unwrap().write_all(config.as_bytes()).unwrap();
    let output = child.wait_with_output().expect("local-api exits");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn a_deployable_config_passes_without_its_secret() {
    // As samconfig.toml gives it: no client_secret (that comes from Secrets Manager).
    let config = r#"{"realm":"ipification","auth_servers":[{"id":"live","url":"https://api.ipification.com/auth"}],
        "client_id":"my-client","clients":[{"user_flow":"pvn_sms","title":"SMS","scope":"openid ip:phone_verify"}]}"#;
    let (passed, output) = check(config);
    assert!(passed, "{output}");
    assert!(output.contains("valid") && output.contains("my-client"), "{output}");
}

#[test]
fn every_problem_is_listed_on_its_own_line_and_the_exit_is_non_zero() {
    let config = r#"{"realm":"a/b","auth_servers":[{"id":"x","url":"http://auth.example.com"}],
        "client_id":"c","clients":[{"user_flow":"pvn_sms","title":"SMS","scope":"openid"}],
        "session_ttl_secs":5}"#;
    let (passed, output) = check(config);
    assert!(!passed, "{output}");
    let problems: Vec<&str> = output.lines().filter(|l| l.trim_start().starts_with("- ")).collect();
    assert_eq!(problems.len(), 3, "{output}");
    for key in ["`realm`", "`auth_servers[0]`", "`session_ttl_secs`"] {
        assert!(problems.iter().any(|p| p.contains(key)), "{key} in {output}");
    }
    // The first thing SAM CLI's parser used to deliver: not a config at all.
    let (passed, output) = check("{");
    assert!(!passed && output.contains("JSON"), "{output}");
}
