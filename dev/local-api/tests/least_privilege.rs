//! The README's least-privilege table (section "State in DynamoDB", "What each function may
//! touch") is exactly what the code does: every endpoint is driven through its paths on DynamoDB
//! Local, each DynamoDB request the SDK sends is recorded as the IAM actions and item-key prefixes
//! it needs (a transaction's items each as their own action), and the set per function must equal
//! the table's. `scripts/deploy-check.py` checks that `template.yaml`'s policies (their
//! `dynamodb:LeadingKeys` conditions) grant exactly the same table.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{CLIENT, PHONE, StoreKind, System};
use sandbox_auth::{Endpoint, Fault};
use serde_json::json;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
const TABLE_HEADING: &str = "### What each function may touch";

type Grants = BTreeMap<String, BTreeSet<(String, String)>>;

/// The table's rows as route → (action, key prefix) pairs: each row grants its actions on its
/// prefixes.
fn documented() -> Grants {
    let readme = std::fs::read_to_string(README).expect("README.md");
    let section = &readme[readme.find(TABLE_HEADING).expect("the least-privilege table's heading")..];
    let mut grants = Grants::new();
    for row in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).skip(2)
    {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let [_function, route, actions, prefixes] = cells[..] else { panic!("a row of 4 cells: {row}") };
        let names = |cell: &str| -> Vec<String> {
            cell.split(',')
                .map(|name| name.trim().trim_matches('`').trim_end_matches('*').to_owned())
                .collect()
        };
        let route = route.trim_matches('`').to_owned();
        for action in names(actions) {
            for prefix in names(prefixes) {
                grants.entry(route.clone()).or_default().insert((action.clone(), prefix));
            }
        }
    }
    grants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_touches_exactly_what_the_readme_table_grants() {
    let system = System::start(StoreKind::Dynamo).await;
    let (_, calls) = system.dynamo.as_ref().expect("dynamo store");
    let mut observed = Grants::new();
    let mut seen = calls.accesses().len();
    let mut record = |route: &str| {
        let accesses = calls.accesses();
        observed.entry(route.to_owned()).or_default().extend(accesses[seen..].iter().cloned());
        seen = accesses.len();
    };

    // /sms/auth: the limits' counters, the phone's lock, the verification, the fraud guard's count.
    let started = system.start_verification(PHONE).await;
    record("POST /sms/auth");
    // /sms/token: a wrong code, the right one, the same request replayed.
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&started, &common::wrong(&code)).await.status, 400);
    let verified = system.token(&started, &code).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(system.token(&started, &code).await.status, 200, "the replay");
    record("POST /sms/token");
    // ... and an upstream that ends the request: the verification is discarded.
    let other = "+447400123457";
    let ended = system.start_verification(other).await;
    record("POST /sms/auth");
    system.sandbox.inject(Fault {
        endpoint: Endpoint::Token,
        status: Some(400),
        body: Some(json!({ "error": "access_denied" }).to_string()),
        content_type: Some("application/json".into()),
        times: Some(1),
        ..Fault::default()
    });
    let refused = system.token(&ended, &system.code_for(other)).await;
    assert_eq!(
        (refused.status.as_u16(), refused.error().as_str()),
        (400, "access_denied"),
        "{}",
        refused.text
    );
    record("POST /sms/token");

    // /sms/status and /sms/cancel: a pending verification read, then claimed and deleted.
    let pending = system.start_verification("+447400123458").await;
    record("POST /sms/auth");
    let reference =
        json!({ "auth_req_id": pending.auth_req_id, "client_id": CLIENT, "nonce": pending.nonce });
    assert_eq!(system.post("/sms/status", reference.clone()).await.status, 200);
    record("POST /sms/status");
    assert_eq!(system.post("/sms/cancel", reference.clone()).await.status, 204);
    // ... and a used one, whose completion a cancel gives back untouched.
    let used = json!({ "auth_req_id": started.auth_req_id, "client_id": CLIENT, "nonce": started.nonce });
    assert_eq!(system.post("/sms/cancel", used).await.status, 404);
    record("POST /sms/cancel");

    // ... and one with no attempts left: a claim of it reads the phone's and the number's
    // records to say why (exhausted, or the phone locked), on /sms/token and /sms/cancel alike.
    let spent_phone = "+447400123459";
    let spent = system.start_verification(spent_phone).await;
    record("POST /sms/auth");
    let wrong = common::wrong(&system.code_for(spent_phone));
    for _ in 0..4 {
        assert_eq!(system.token(&spent, &wrong).await.error(), "invalid_code");
    }
    // The last attempt, then a claim refused for it.
    for _ in 0..2 {
        assert_eq!(system.token(&spent, &wrong).await.error(), "too_many_attempts");
    }
    record("POST /sms/token");
    let spent_ref = json!({ "auth_req_id": spent.auth_req_id, "client_id": CLIENT, "nonce": spent.nonce });
    assert_eq!(system.post("/sms/cancel", spent_ref).await.error(), "too_many_attempts");
    record("POST /sms/cancel");

    // The session read back and ended.
    let session = verified.json()["session"].as_str().expect("session").to_owned();
    let info = system.http.get(format!("{}/user/info", system.base)).bearer_auth(&session).send().await;
    assert_eq!(info.expect("local-api answers").status(), 200);
    record("GET /user/info");
    let logout = system.http.post(format!("{}/user/logout", system.base)).bearer_auth(&session).send().await;
    assert_eq!(logout.expect("local-api answers").status(), 204);
    record("POST /user/logout");
    // Config only: no DynamoDB call at all.
    assert_eq!(system.get("/sms/clients").await.status, 200);
    record("GET /sms/clients");
    let log = json!({ "client_id": CLIENT, "data": { "event": "code_entered" } });
    assert_eq!(system.post("/sms/log", log).await.status, 200);
    record("POST /sms/log");

    observed.retain(|_, accesses| !accesses.is_empty());
    for (route, accesses) in &observed {
        println!("{route}: {accesses:?}");
    }
    let documented = documented();
    assert_eq!(
        observed, documented,
        "what the code touches (left) is not what the README's table \"{TABLE_HEADING}\" grants (right)"
    );
}
