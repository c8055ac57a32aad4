//! Exactly-once under concurrency: many `/sms/token` calls at once on one verification, first
//! within one API instance (both stores), then spread over several `local-api` processes sharing
//! one DynamoDB table, as several Lambda instances would.
//!
//! The DynamoDB tests run on DynamoDB Local (`scripts/with-test-services.sh`), with nothing
//! serialising requests in front of it: the racing calls reach it at once, in any order, and only
//! the atomicity of each conditional write and transaction (DynamoDB's own) keeps them apart.

#[macro_use]
mod common;

use common::{
    DynamoCalls, Instance, PHONE, Reply, StoreKind, System, dynamo_client, post_parallel, service_config,
    wrong,
};
use sandbox_auth::Sandbox;
use shared::store::DynamoStore;

/// How many `/sms/token` calls are sent at once on one verification.
const PARALLEL: usize = 100;

for_each_store!(a_hundred_parallel_right_codes_open_one_session, parallel_wrong_codes_stop_at_the_limit);

async fn a_hundred_parallel_right_codes_open_one_session(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let replies = system.post_parallel("/sms/token", System::token_body(&started, &code), PARALLEL).await;
    assert_one_session(&replies);
    if let Some((store, _)) = &system.dynamo {
        assert_eq!(count_items(store.client(), store.table(), "s#").await, 1, "exactly one session");
        // Kept, completed, for the same request retried after a lost answer.
        assert_eq!(count_items(store.client(), store.table(), "v#").await, 1, "one verification");
    }
    assert_eq!(system.sandbox.stats().requests.token, 1, "the auth_req_id was redeemed once");
}

async fn parallel_wrong_codes_stop_at_the_limit(store: StoreKind) {
    let system = System::start(store).await;
    let started = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    let body = System::token_body(&started, &wrong(&code));
    let mut replies = Vec::new();
    for _ in 0..10 {
        let round = system.post_parallel("/sms/token", body.clone(), PARALLEL).await;
        let done = round.iter().any(|r| r.status == 429);
        replies.extend(round);
        if done {
            break;
        }
    }
    assert_wrong_codes_counted_to_the_limit(&replies);
    let reply = system.token(&started, &code).await;
    assert_eq!(reply.status, 429, "the verification is dead: {}", reply.text);
}

/// Several `local-api` processes (each like one Lambda instance) on one DynamoDB table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_processes_sharing_one_table_verify_once() {
    let sandbox = Sandbox::start(common::sandbox_config(), ([127, 0, 0, 1], 0).into()).await.unwrap();
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(dynamo_client(&DynamoCalls::default()).await, &table);
    let config_path = std::env::temp_dir().join(format!("{table}.json"));
    std::fs::write(&config_path, service_config(&sandbox.url()).to_string()).unwrap();
    let config = config_path.to_str().unwrap();
    // The first instance creates the table (with TTL), as `local-api --create-table` does on
    // DynamoDB Local.
    let instances: Vec<Instance> = (0..3)
        .map(|i| {
            let create = if i == 0 { &["--create-table"][..] } else { &[] };
            Instance::spawn(&[&["--config", config], create].concat(), &[("TABLE_NAME", &table)])
        })
        .collect();
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();

    // 100 right codes at once, over three processes: one verification, one session.
    let first = start_verification(&bases[0]).await;
    let code = sandbox.messages_to(PHONE)[0].code.clone();
    let replies = post_parallel(&bases, "/sms/token", System::token_body(&first, &code), PARALLEL).await;
    assert_one_session(&replies);
    assert_eq!(count_items(store.client(), store.table(), "s#").await, 1);

    // Wrong codes at once, over three processes: counted exactly to the limit.
    let second = start_verification(&bases[1]).await;
    let code = sandbox.messages_to(PHONE)[0].code.clone();
    let body = System::token_body(&second, &wrong(&code));
    let mut replies = Vec::new();
    for _ in 0..10 {
        let round = post_parallel(&bases, "/sms/token", body.clone(), PARALLEL).await;
        let done = round.iter().any(|r| r.status == 429);
        replies.extend(round);
        if done {
            break;
        }
    }
    assert_wrong_codes_counted_to_the_limit(&replies);
    let _ = std::fs::remove_file(config_path);
}

/// One call verified; the same request arriving after it got the same session (the completion
/// is idempotent), and the others were told someone else is on it.
fn assert_one_session(replies: &[Reply]) {
    let sessions: std::collections::BTreeSet<String> = replies
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["session"].as_str().expect("a session").to_owned())
        .collect();
    assert_eq!(sessions.len(), 1, "exactly one session for all who verified: {sessions:?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(reply.error(), "verification_in_progress", "{} {}", reply.status, reply.text);
    }
}

/// Each wrong code is counted once, in order, and the count stops at the limit of 5.
fn assert_wrong_codes_counted_to_the_limit(replies: &[Reply]) {
    let mut attempts_left: Vec<u64> = replies
        .iter()
        .filter(|r| r.status == 400)
        .map(|r| r.json()["data"]["attempts_left"].as_u64().expect("attempts_left"))
        .collect();
    attempts_left.sort_unstable();
    assert_eq!(attempts_left, [1, 2, 3, 4], "four wrong codes answered with attempts left");
    assert!(replies.iter().any(|r| r.status == 429), "the fifth ended it");
    for reply in replies.iter().filter(|r| ![400, 429].contains(&r.status.as_u16())) {
        assert_eq!(reply.error(), "verification_in_progress", "{}", reply.text);
    }
}

async fn start_verification(base: &str) -> common::Started {
    let reply = post_parallel(
        &[base.to_owned()],
        "/sms/auth",
        serde_json::json!({ "client_id": common::CLIENT, "login_hint": PHONE }),
        1,
    )
    .await
    .remove(0);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    common::Started {
        auth_req_id: body["auth_req_id"].as_str().unwrap().to_owned(),
        nonce: body["nonce"].as_str().unwrap().to_owned(),
    }
}

async fn count_items(client: &aws_sdk_dynamodb::Client, table: &str, prefix: &str) -> usize {
    let page = client
        .scan()
        .table_name(table)
        .filter_expression("begins_with(pk, :prefix)")
        .expression_attribute_values(":prefix", aws_sdk_dynamodb::types::AttributeValue::S(prefix.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("scan the test table");
    page.items().len()
}
