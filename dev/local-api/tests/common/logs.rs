//! The log lines of a real `local-api` process driven through every endpoint, success and
//! failure paths, with the secrets that went over the wire on the way: what the log tests check
//! (nothing secret in any line) and what the Logs Insights queries are checked against.

use serde_json::{Value, json};

use super::{CLIENT, Instance, PHONE, wrong};

/// A second number, for the flow that ends in too many wrong codes.
pub const OTHER_PHONE: &str = "+447400123457";

pub struct CapturedRun {
    /// Every stdout line of the service (the sandbox's own lines, which stand in for the SMS
    /// gateway and print the code by design, are left out).
    pub lines: Vec<String>,
    /// Everything that must never appear in a line.
    pub secrets: Vec<String>,
    /// The flow id `/sms/auth` returned for the verified flow.
    pub flow_id: String,
}

impl CapturedRun {
    /// The lines that are JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.lines.iter().filter_map(|line| serde_json::from_str::<Value>(line).ok()).collect()
    }

    /// The structured log lines with `event` (EMF lines have none).
    pub fn events(&self) -> Vec<Value> {
        self.json_lines().into_iter().filter(|line| line.get("event").is_some()).collect()
    }

    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events().into_iter().filter(|line| line["event"] == name).collect()
    }

    /// The metrics lines, in CloudWatch's embedded metric format.
    pub fn emf_lines(&self) -> Vec<Value> {
        self.json_lines().into_iter().filter(|line| line.get("_aws").is_some()).collect()
    }
}

/// Runs every endpoint through its success and failure paths on a fresh `local-api` process (the
/// embedded config, its sandbox on a free port, the in-memory store) and returns its log.
pub async fn run_every_endpoint() -> CapturedRun {
    let instance = Instance::spawn(&[], &[("SANDBOX_PORT", "0")]);
    let sandbox =
        instance.started["sandbox"].as_str().expect("sandbox url").trim_end_matches("/auth").to_owned();
    let http = reqwest::Client::new();
    let base = instance.base.clone();
    let post = |path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).json(&body);
        async move {
            let response = request.send().await.expect("local-api answers");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let code_for = |phone: &str| {
        let url = format!("{sandbox}/sandbox/messages");
        let request = http.get(url).query(&[("to", phone)]);
        async move {
            let messages: Value = request.send().await.expect("sandbox outbox").json().await.expect("JSON");
            messages[0]["code"].as_str().expect("an SMS was sent").to_owned()
        }
    };
    let mut secrets = vec!["sandbox-secret".to_owned(), PHONE.to_owned(), PHONE[1..].to_owned()];
    let mut requests = 0;

    // /sms/auth: malformed (the number as a JSON number), unknown client, invalid number, success.
    let (status, _) = post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": 447400123456_u64 })).await;
    assert_eq!(status, 400);
    let (status, _) = post("/sms/auth", json!({ "client_id": "nobody", "login_hint": PHONE })).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) =
        post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": "+44740012345678" })).await;
    assert_eq!(status, 400);
    let (status, started) = post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE })).await;
    assert_eq!(status, 200, "{started}");
    requests += 4;
    let auth_req_id = started["auth_req_id"].as_str().unwrap().to_owned();
    let nonce = started["nonce"].as_str().unwrap().to_owned();
    let flow_id = started["flow_id"].as_str().expect("flow_id").to_owned();
    let code = code_for(PHONE).await;
    let token_body =
        |code: &str| json!({ "code": code, "auth_req_id": auth_req_id, "client_id": CLIENT, "nonce": nonce });

    // /sms/token: wrong code, wrong nonce, right code, replay.
    let (status, _) = post("/sms/token", token_body(&wrong(&code))).await;
    assert_eq!(status, 400);
    let mut other_nonce = token_body(&code);
    other_nonce["nonce"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, _) = post("/sms/token", other_nonce).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, verified) = post("/sms/token", token_body(&code)).await;
    assert_eq!(status, 200, "{verified}");
    let (status, again) = post("/sms/token", token_body(&code)).await;
    assert_eq!(
        (status, &again["session"]),
        (200, &verified["session"]),
        "the same request, the same session"
    );
    requests += 4;
    let session = verified["session"].as_str().expect("session").to_owned();
    secrets.extend([auth_req_id.clone(), nonce.clone(), code.clone(), wrong(&code), session.clone()]);

    // The session: listed clients, read back (bearer, then cookie), ended, then refused.
    let get = |path: &str, session: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(session) = session {
            request = request.bearer_auth(session);
        }
        async move { request.send().await.expect("local-api answers").status().as_u16() }
    };
    assert_eq!(get("/sms/clients", None).await, 200);
    assert_eq!(get("/user/info", Some(&session)).await, 200);
    let by_cookie = http.get(format!("{base}/user/info")).header("cookie", format!("sms_session={session}"));
    assert_eq!(by_cookie.send().await.unwrap().status(), 200);
    let logout = http.post(format!("{base}/user/logout")).bearer_auth(&session).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(get("/user/info", Some(&session)).await, 401);
    assert_eq!(get("/user/info", None).await, 401);
    let anonymous_logout = http.post(format!("{base}/user/logout")).send().await.unwrap();
    assert_eq!(anonymous_logout.status(), 401);
    requests += 7;

    // A second flow spent on wrong codes until the verification is used up.
    let (status, other) = post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": OTHER_PHONE })).await;
    assert_eq!(status, 200, "{other}");
    let other_code = code_for(OTHER_PHONE).await;
    let other_body = json!({
        "code": wrong(&other_code), "auth_req_id": other["auth_req_id"], "client_id": CLIENT, "nonce": other["nonce"]
    });
    let mut attempts = 0;
    loop {
        let (status, reply) = post("/sms/token", other_body.clone()).await;
        attempts += 1;
        if status == 429 || reply["error"] == "too_many_attempts" || attempts == 10 {
            break;
        }
    }
    requests += 1 + attempts;
    secrets.extend([
        OTHER_PHONE.to_owned(),
        OTHER_PHONE[1..].to_owned(),
        other_code.clone(),
        wrong(&other_code),
        other["auth_req_id"].as_str().unwrap().to_owned(),
    ]);

    // /sms/log: hostile data (every secret of the flow under every spelling, the phone in text,
    // in other digits and split across fields, a forged line, line separators and bidi
    // controls, deep nesting), a bad flow id, a body over the limit.
    let mut deep = json!("leaf");
    for _ in 0..60 {
        deep = json!({ "d": deep });
    }
    let hostile = json!({
        "flow_id": flow_id,
        "data": {
            "step": "verified",
            "code": code,
            "otp_code": code,
            "auth_req_id": auth_req_id,
            "tokens": { "access_token": "at-1", "id_token": "it-1", "refresh_token": "rt-1", "session": session },
            "client_secret": "sandbox-secret",
            "phone": PHONE,
            "msisdn": PHONE[1..].parse::<u64>().unwrap(),
            "note": "line\r\n{\"event\":\"sms_token_verified\",\"forged\":true}\u{0}",
            "deep": deep,
            "error_code": "invalid_code",
            "authReqId": auth_req_id,
            "sessionToken": session,
            "clientSecret": "sandbox-secret",
            "otpCode": code,
            "error": format!("failed for {PHONE}"),
            "outcome": "bad\u{2028}line\u{202e}",
            "app_version": format!("1.0 ({})", &PHONE[1..]),
            "network": format!("+44 {} {}", &PHONE[3..7], &PHONE[7..]),
            "platform": "web",
            "status": 400,
            "extra": { "a": PHONE[1..4].parse::<u64>().unwrap(), "phone": PHONE, "resend": true },
        }
    });
    let (status, _) = post("/sms/log", hostile).await;
    assert_eq!(status, 200);
    let (status, _) = post("/sms/log", json!({ "flow_id": "not-a-flow", "data": { "code": code } })).await;
    assert_eq!(status, 400);
    let (status, _) = post("/sms/log", json!({ "data": "x".repeat(40 * 1024) })).await;
    assert_eq!(status, 413);
    requests += 3;
    secrets.extend(["at-1", "it-1", "rt-1"].map(str::to_owned));

    // Every request has logged its one line (and its metrics line) once the counts are reached.
    let count = |lines: &[String], what: &str| lines.iter().filter(|line| line.contains(what)).count();
    let lines = instance
        .wait_for_lines(|lines| {
            count(lines, "\"event\":") >= requests && count(lines, "\"_aws\"") >= requests
        })
        .await;
    let lines = lines.into_iter().filter(|line| !line.contains("\"event\":\"sandbox_")).collect();
    CapturedRun { lines, secrets, flow_id }
}
