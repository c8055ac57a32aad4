//! The one suite every [`StateStore`] must pass, run against the in-memory store and against the
//! DynamoDB store on a local moto server (a fresh table per test).
//!
//! The DynamoDB half needs that server: run the suite as
//! `scripts/with-moto.sh cargo test -p shared --test store_suite`; without it those tests fail.

use std::{future::Future, sync::Arc, time::Duration};

use serde_json::{Map, json};
use shared::store::{
    Claim, ClaimOutcome, DynamoStore, Lease, MemoryStore, Progress, Session, StateStore, StoreError,
    Verification, now_epoch_secs, session_key, verification_key,
};
use tokio::sync::Barrier;

type Store = Arc<dyn StateStore>;

const LEASE_SECS: u64 = 30;

fn memory_store() -> Store {
    Arc::new(MemoryStore::new())
}

/// The DynamoDB tests run only on the harness: they fail, not pass, without it.
fn require_moto() {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: the DynamoDB store tests need a local moto server; \
             run them through scripts/with-moto.sh, e.g. \
             `scripts/with-moto.sh cargo test -p shared --test store_suite`"
        );
    }
}

async fn dynamo_on_fresh_table() -> DynamoStore {
    require_moto();
    let table = format!("store-suite-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(DynamoStore::client_from_env().await, table);
    let created = store.create_table_if_missing().await.expect("create the test table");
    assert!(created, "a fresh table name must not exist yet");
    store
}

async fn dynamo_store() -> Store {
    Arc::new(dynamo_on_fresh_table().await)
}

/// A fresh key, shaped like the real ones (a hex digest).
fn new_key() -> String {
    verification_key(&uuid::Uuid::new_v4().to_string())
}

fn verification(now: u64) -> Verification {
    Verification {
        key: new_key(),
        flow_id: "flow-1".into(),
        nonce_digest: "nonce-digest".into(),
        client_id: "client-a".into(),
        server_id: "server-a".into(),
        phone: "+15550100".into(),
        created_at: now,
        expires_at: now + 600,
        poll_interval_secs: 5,
        wrong_codes: 0,
        max_wrong_codes: 5,
        progress: Progress::AwaitingCode,
        lease: None,
    }
}

fn claim(v: &Verification, lease_id: &str, now: u64) -> Claim {
    Claim {
        client_id: v.client_id.clone(),
        server_id: v.server_id.clone(),
        nonce_digest: v.nonce_digest.clone(),
        lease: Lease { id: lease_id.into(), until: now + LEASE_SECS },
        now,
    }
}

fn session(now: u64) -> Session {
    let mut userinfo = Map::new();
    userinfo.insert("sub".into(), json!("user-1"));
    userinfo.insert("phone_number_verified".into(), json!(true));
    userinfo.insert("nested".into(), json!({"a": [1, 2.5, null, "x"]}));
    Session {
        key: session_key(&uuid::Uuid::new_v4().to_string()),
        flow_id: "flow-1".into(),
        client_id: "client-a".into(),
        server_id: "server-a".into(),
        phone: "+15550100".into(),
        userinfo,
        verified_at: now,
        expires_at: now + 3600,
    }
}

async fn claimed(store: &Store, v: &Verification, lease_id: &str, now: u64) -> Verification {
    match store.claim_verification(&v.key, &claim(v, lease_id, now)).await.expect("claim") {
        ClaimOutcome::Claimed(record) => record,
        other => panic!("expected Claimed, got {other:?}"),
    }
}

async fn outcome(store: &Store, v: &Verification, lease_id: &str, now: u64) -> ClaimOutcome {
    store.claim_verification(&v.key, &claim(v, lease_id, now)).await.expect("claim")
}

fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::LeaseLost)), "expected LeaseLost, got {result:?}");
}

/// Runs `n` calls at once (released together by a barrier) and returns their results in order.
async fn race<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let call = make(i);
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("a racing call panicked"));
    }
    results
}

// ---- the cases -------------------------------------------------------------------------------

async fn put_then_claim_returns_the_record(store: Store) {
    let now = now_epoch_secs();
    let plain = verification(now);
    store.put_verification(&plain).await.unwrap();
    let got = claimed(&store, &plain, "lease-1", now).await;
    assert_eq!(
        got,
        Verification {
            lease: Some(Lease { id: "lease-1".into(), until: now + LEASE_SECS }),
            ..plain.clone()
        }
    );

    // Every field and every progress stage survives the round trip.
    let stages = [
        Progress::CodeAccepted,
        Progress::TokenIssued { sealed_access_token: "c2VhbGVk.dG9rZW4".into() },
        Progress::AwaitingCode,
    ];
    for (i, progress) in stages.into_iter().enumerate() {
        let v = Verification {
            flow_id: format!("flow-{i}"),
            phone: "+447700900123".into(),
            created_at: now - 10,
            expires_at: now + 300 + i as u64,
            poll_interval_secs: 7,
            wrong_codes: 2,
            max_wrong_codes: 3,
            progress,
            // An old lease, already over, as a retried request leaves it.
            lease: Some(Lease { id: "old".into(), until: now - 1 }),
            ..verification(now)
        };
        store.put_verification(&v).await.unwrap();
        let got = claimed(&store, &v, "lease-2", now).await;
        assert_eq!(
            got,
            Verification { lease: Some(Lease { id: "lease-2".into(), until: now + LEASE_SECS }), ..v }
        );
    }

    // A second put replaces the record.
    let replaced = Verification { flow_id: "flow-replaced".into(), ..plain.clone() };
    store.put_verification(&replaced).await.unwrap();
    assert_eq!(claimed(&store, &replaced, "lease-3", now).await.flow_id, "flow-replaced");
}

async fn expired_verification_is_not_found(store: Store) {
    let now = now_epoch_secs();
    let unknown = verification(now);
    assert_eq!(outcome(&store, &unknown, "lease", now).await, ClaimOutcome::NotFound);

    let already = Verification { expires_at: now - 1, ..verification(now) };
    store.put_verification(&already).await.unwrap();
    assert_eq!(outcome(&store, &already, "lease", now).await, ClaimOutcome::NotFound);

    let at_the_second = Verification { expires_at: now, ..verification(now) };
    store.put_verification(&at_the_second).await.unwrap();
    assert_eq!(outcome(&store, &at_the_second, "lease", now).await, ClaimOutcome::NotFound);

    // In real time: live now, gone a little later, although nothing deleted it.
    let short = Verification { expires_at: now_epoch_secs() + 1, ..verification(now) };
    store.put_verification(&short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(outcome(&store, &short, "lease", now_epoch_secs()).await, ClaimOutcome::NotFound);
}

async fn claim_by_another_caller_is_not_found(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    let base = claim(&v, "intruder", now);
    let others = [
        Claim { nonce_digest: "other-nonce".into(), ..base.clone() },
        Claim { client_id: "client-b".into(), ..base.clone() },
        Claim { server_id: "server-b".into(), ..base.clone() },
    ];
    for other in &others {
        assert_eq!(store.claim_verification(&v.key, other).await.unwrap(), ClaimOutcome::NotFound);
    }
    // Not found for an exhausted or busy record either, when it is not the caller's.
    let exhausted = Verification { wrong_codes: 5, ..verification(now) };
    store.put_verification(&exhausted).await.unwrap();
    let not_theirs = Claim { nonce_digest: "other-nonce".into(), ..claim(&exhausted, "x", now) };
    assert_eq!(store.claim_verification(&exhausted.key, &not_theirs).await.unwrap(), ClaimOutcome::NotFound);
    // The failed claims took no lease.
    assert_eq!(claimed(&store, &v, "owner", now).await.lease.unwrap().id, "owner");
}

async fn second_claim_while_leased_is_busy(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "first", now).await;
    assert_eq!(outcome(&store, &v, "second", now).await, ClaimOutcome::Busy { retry_after: LEASE_SECS });
    assert_eq!(
        outcome(&store, &v, "second", now + 10).await,
        ClaimOutcome::Busy { retry_after: LEASE_SECS - 10 }
    );
    // The lease still belongs to the first caller.
    store.release_verification(&v.key, "first", &Progress::AwaitingCode).await.unwrap();
}

async fn claim_after_lease_expiry_succeeds(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "first", now).await;
    let later = now + LEASE_SECS;
    let got = claimed(&store, &v, "second", later).await;
    assert_eq!(got.lease, Some(Lease { id: "second".into(), until: later + LEASE_SECS }));
    // The first caller's lease is gone.
    assert_lease_lost(store.record_wrong_code(&v.key, "first", false).await);
    assert_lease_lost(store.release_verification(&v.key, "first", &Progress::CodeAccepted).await);
    assert_eq!(store.record_wrong_code(&v.key, "second", false).await.unwrap(), 4);
}

async fn wrong_codes_count_down_and_stop_at_the_limit(store: Store) {
    let now = now_epoch_secs();
    let v = Verification { max_wrong_codes: 3, ..verification(now) };
    store.put_verification(&v).await.unwrap();
    for (round, expected_left) in [2, 1, 0].into_iter().enumerate() {
        let lease = format!("lease-{round}");
        let got = claimed(&store, &v, &lease, now).await;
        assert_eq!(got.wrong_codes, round as u32);
        assert_eq!(got.attempts_left(), 3 - round as u32);
        assert_eq!(store.record_wrong_code(&v.key, &lease, false).await.unwrap(), expected_left);
        // Recording released the lease.
        assert_lease_lost(store.record_wrong_code(&v.key, &lease, false).await);
    }
    assert_eq!(outcome(&store, &v, "after", now).await, ClaimOutcome::Exhausted);
    // Exhausted wins over a live lease, and over a lease that has ended.
    assert_eq!(outcome(&store, &v, "after", now + 100).await, ClaimOutcome::Exhausted);
}

async fn ending_wrong_code_exhausts_at_once(store: Store) {
    let now = now_epoch_secs();
    let v = Verification { wrong_codes: 1, ..verification(now) };
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    assert_eq!(store.record_wrong_code(&v.key, "lease", true).await.unwrap(), 0);
    assert_eq!(outcome(&store, &v, "next", now).await, ClaimOutcome::Exhausted);
    assert_lease_lost(store.record_wrong_code(&v.key, "lease", true).await);
}

async fn a_wrong_lease_is_lease_lost(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    let s = session(now);

    // Not leased at all yet.
    assert_lease_lost(store.record_wrong_code(&v.key, "nobody", false).await);
    assert_lease_lost(store.record_wrong_code(&v.key, "nobody", true).await);
    assert_lease_lost(store.release_verification(&v.key, "nobody", &Progress::CodeAccepted).await);
    assert_lease_lost(store.discard_verification(&v.key, "nobody").await);
    assert_lease_lost(store.complete_verification(&v.key, "nobody", &s).await);

    // Leased by someone else.
    claimed(&store, &v, "owner", now).await;
    assert_lease_lost(store.record_wrong_code(&v.key, "other", false).await);
    assert_lease_lost(store.record_wrong_code(&v.key, "other", true).await);
    assert_lease_lost(store.release_verification(&v.key, "other", &Progress::CodeAccepted).await);
    assert_lease_lost(store.discard_verification(&v.key, "other").await);
    assert_lease_lost(store.complete_verification(&v.key, "other", &s).await);

    // An unknown verification.
    let unknown = new_key();
    assert_lease_lost(store.record_wrong_code(&unknown, "owner", false).await);
    assert_lease_lost(store.release_verification(&unknown, "owner", &Progress::AwaitingCode).await);
    assert_lease_lost(store.discard_verification(&unknown, "owner").await);
    assert_lease_lost(store.complete_verification(&unknown, "owner", &s).await);

    // None of that changed anything: no session, the owner still holds an untouched record.
    assert_eq!(store.get_session(&s.key, now).await.unwrap(), None);
    assert_eq!(outcome(&store, &v, "other", now).await, ClaimOutcome::Busy { retry_after: LEASE_SECS });
    store.release_verification(&v.key, "owner", &Progress::AwaitingCode).await.unwrap();
    let after = claimed(&store, &v, "check", now).await;
    assert_eq!((after.wrong_codes, after.progress), (0, Progress::AwaitingCode));
}

async fn release_saves_progress(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();

    claimed(&store, &v, "one", now).await;
    store.release_verification(&v.key, "one", &Progress::CodeAccepted).await.unwrap();
    assert_eq!(claimed(&store, &v, "two", now).await.progress, Progress::CodeAccepted);

    let issued = Progress::TokenIssued { sealed_access_token: "sealed-token".into() };
    store.release_verification(&v.key, "two", &issued).await.unwrap();
    let got = claimed(&store, &v, "three", now).await;
    assert_eq!(got.progress, issued);
    assert_eq!(got.wrong_codes, 0);
    assert_eq!(got.lease.map(|l| l.id), Some("three".into()));

    // Releasing drops the lease: the same lease cannot release twice.
    store.release_verification(&v.key, "three", &Progress::AwaitingCode).await.unwrap();
    assert_lease_lost(store.release_verification(&v.key, "three", &Progress::AwaitingCode).await);
    // ... and a stage without a token leaves none behind.
    assert_eq!(claimed(&store, &v, "four", now).await.progress, Progress::AwaitingCode);
}

async fn discard_removes_the_verification(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    store.discard_verification(&v.key, "lease").await.unwrap();
    assert_eq!(outcome(&store, &v, "again", now).await, ClaimOutcome::NotFound);
    assert_lease_lost(store.discard_verification(&v.key, "lease").await);
}

async fn complete_consumes_the_verification_and_creates_the_session(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let s = session(now);
    store.complete_verification(&v.key, "lease", &s).await.unwrap();
    assert_eq!(outcome(&store, &v, "again", now).await, ClaimOutcome::NotFound);
    assert_eq!(store.get_session(&s.key, now).await.unwrap(), Some(s.clone()));
    // Done once: the lease is gone with the verification.
    let other = session(now);
    assert_lease_lost(store.complete_verification(&v.key, "lease", &other).await);
    assert_eq!(store.get_session(&other.key, now).await.unwrap(), None);
}

async fn sessions_expire_and_can_be_deleted(store: Store) {
    let now = now_epoch_secs();
    assert_eq!(store.get_session(&session_key("unknown"), now).await.unwrap(), None);
    store.delete_session(&session_key("unknown")).await.unwrap();

    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let s = Session { expires_at: now + 100, ..session(now) };
    store.complete_verification(&v.key, "lease", &s).await.unwrap();

    assert_eq!(store.get_session(&s.key, now + 99).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session(&s.key, now + 100).await.unwrap(), None);
    assert_eq!(store.get_session(&s.key, now + 5000).await.unwrap(), None);

    store.delete_session(&s.key).await.unwrap();
    assert_eq!(store.get_session(&s.key, now).await.unwrap(), None);
    store.delete_session(&s.key).await.unwrap();
}

async fn concurrent_claims_grant_one_lease(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    let outcomes = race(20, |i| {
        let (store, key, wanted) = (Arc::clone(&store), v.key.clone(), claim(&v, &format!("lease-{i}"), now));
        async move { store.claim_verification(&key, &wanted).await }
    })
    .await;
    let mut winners = Vec::new();
    for (i, result) in outcomes.into_iter().enumerate() {
        match result.expect("no claim may fail") {
            ClaimOutcome::Claimed(_) => winners.push(format!("lease-{i}")),
            ClaimOutcome::Busy { retry_after } => assert!((1..=LEASE_SECS).contains(&retry_after)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    // And it is the winner's lease the store kept.
    store.release_verification(&v.key, &winners[0], &Progress::AwaitingCode).await.unwrap();
}

async fn concurrent_wrong_codes_under_one_lease_count_once(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let results = race(20, |_| {
        let (store, key) = (Arc::clone(&store), v.key.clone());
        async move { store.record_wrong_code(&key, "lease", false).await }
    })
    .await;
    let mut counted = Vec::new();
    for result in results {
        match result {
            Ok(left) => counted.push(left),
            Err(StoreError::LeaseLost) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    // Recording releases the lease, so one call counts and the rest find it gone.
    assert_eq!(counted, vec![4]);
    assert_eq!(claimed(&store, &v, "check", now).await.wrong_codes, 1);
}

async fn concurrent_wrong_codes_never_pass_the_limit(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    // 20 callers, each claiming and then spending an attempt, until none is left.
    let spent = race(20, |worker| {
        let (store, v) = (Arc::clone(&store), v.clone());
        async move {
            let mut left_seen = Vec::new();
            for round in 0..500 {
                let lease = format!("w{worker}-r{round}");
                match store.claim_verification(&v.key, &claim(&v, &lease, now)).await {
                    Ok(ClaimOutcome::Claimed(record)) => {
                        assert!(record.wrong_codes < record.max_wrong_codes);
                        match store.record_wrong_code(&v.key, &lease, false).await {
                            Ok(left) => left_seen.push(left),
                            Err(e) => panic!("the lease holder lost its lease: {e}"),
                        }
                    }
                    Ok(ClaimOutcome::Busy { .. }) => tokio::time::sleep(Duration::from_millis(2)).await,
                    Ok(ClaimOutcome::Exhausted) => return Ok(left_seen),
                    Ok(ClaimOutcome::NotFound) => panic!("the verification vanished"),
                    Err(e) => return Err(e),
                }
            }
            panic!("worker {worker} never saw the verification exhausted");
        }
    })
    .await;
    let mut all: Vec<u32> = Vec::new();
    for result in spent {
        all.extend(result.expect("no call may fail"));
    }
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3, 4], "each attempt is spent exactly once");
    assert_eq!(outcome(&store, &v, "after", now).await, ClaimOutcome::Exhausted);

    // The same at the limit under one lease: 20 at once, one counts, none goes past.
    let last = Verification { wrong_codes: 4, ..verification(now) };
    store.put_verification(&last).await.unwrap();
    claimed(&store, &last, "lease", now).await;
    let results = race(20, |i| {
        let (store, key) = (Arc::clone(&store), last.key.clone());
        async move { store.record_wrong_code(&key, "lease", i % 2 == 0).await }
    })
    .await;
    let counted: Vec<u32> = results
        .into_iter()
        .filter_map(|r| match r {
            Ok(left) => Some(left),
            Err(StoreError::LeaseLost) => None,
            Err(e) => panic!("unexpected error {e}"),
        })
        .collect();
    assert_eq!(counted, vec![0]);
    assert_eq!(outcome(&store, &last, "after", now).await, ClaimOutcome::Exhausted);
}

async fn concurrent_completes_create_one_session(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let sessions: Vec<Session> = (0..10).map(|_| session(now)).collect();
    let results = race(10, |i| {
        let (store, key, s) = (Arc::clone(&store), v.key.clone(), sessions[i].clone());
        async move { store.complete_verification(&key, "lease", &s).await }
    })
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => winners.push(i),
            Err(StoreError::LeaseLost) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one completion: {winners:?}");
    for (i, s) in sessions.iter().enumerate() {
        let expected = (i == winners[0]).then(|| s.clone());
        assert_eq!(store.get_session(&s.key, now).await.unwrap(), expected, "session {i}");
    }
    assert_eq!(outcome(&store, &v, "again", now).await, ClaimOutcome::NotFound);
}

macro_rules! suite {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::memory_store()).await;
                }
            )+
        }

        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::dynamo_store().await).await;
                }
            )+
        }
    };
}

suite!(
    put_then_claim_returns_the_record,
    expired_verification_is_not_found,
    claim_by_another_caller_is_not_found,
    second_claim_while_leased_is_busy,
    claim_after_lease_expiry_succeeds,
    wrong_codes_count_down_and_stop_at_the_limit,
    ending_wrong_code_exhausts_at_once,
    a_wrong_lease_is_lease_lost,
    release_saves_progress,
    discard_removes_the_verification,
    complete_consumes_the_verification_and_creates_the_session,
    sessions_expire_and_can_be_deleted,
    concurrent_claims_grant_one_lease,
    concurrent_wrong_codes_under_one_lease_count_once,
    concurrent_wrong_codes_never_pass_the_limit,
    concurrent_completes_create_one_session,
);

// ---- DynamoDB only ---------------------------------------------------------------------------

mod dynamo_only {
    use std::time::{Duration, Instant};

    use aws_sdk_dynamodb::{
        config::{BehaviorVersion, Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig},
        types::{AttributeValue, TimeToLiveStatus},
    };

    use super::*;

    fn attr_s(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
        item.get(name).and_then(|v| v.as_s().ok()).cloned()
    }

    fn attr_n(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
        item.get(name).and_then(|v| v.as_n().ok()).cloned()
    }

    async fn raw_get(
        store: &DynamoStore,
        pk: String,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        let out = store
            .client()
            .get_item()
            .table_name(store.table())
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .expect("raw GetItem");
        out.item().cloned()
    }

    /// The layout the module docs promise operators.
    #[tokio::test]
    async fn items_follow_the_documented_layout() {
        let store = dynamo_on_fresh_table().await;
        let ttl = store.client().describe_time_to_live().table_name(store.table()).send().await.unwrap();
        let ttl = ttl.time_to_live_description().expect("TTL description");
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
        assert!(matches!(
            ttl.time_to_live_status(),
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ));
        // Idempotent on an existing table.
        assert!(!store.create_table_if_missing().await.unwrap());

        let now = now_epoch_secs();
        let v = verification(now);
        let dynamo: Store = Arc::new(store.clone());
        dynamo.put_verification(&v).await.unwrap();
        claimed(&dynamo, &v, "lease", now).await;
        let issued = Progress::TokenIssued { sealed_access_token: "sealed".into() };
        dynamo.release_verification(&v.key, "lease", &issued).await.unwrap();
        claimed(&dynamo, &v, "lease-2", now).await;

        let item = raw_get(&store, format!("v#{}", v.key)).await.expect("verification item");
        assert_eq!(attr_n(&item, "expires_at"), Some(v.expires_at.to_string()));
        assert_eq!(attr_s(&item, "stage").as_deref(), Some("token_issued"));
        assert_eq!(attr_s(&item, "sealed_access_token").as_deref(), Some("sealed"));
        assert_eq!(attr_s(&item, "lease_id").as_deref(), Some("lease-2"));
        assert_eq!(attr_n(&item, "lease_until"), Some((now + LEASE_SECS).to_string()));
        assert_eq!(attr_n(&item, "wrong_codes").as_deref(), Some("0"));
        assert_eq!(attr_s(&item, "client_id"), Some(v.client_id.clone()));

        let s = session(now);
        dynamo.complete_verification(&v.key, "lease-2", &s).await.unwrap();
        assert!(raw_get(&store, format!("v#{}", v.key)).await.is_none());
        let item = raw_get(&store, format!("s#{}", s.key)).await.expect("session item");
        assert_eq!(attr_n(&item, "expires_at"), Some(s.expires_at.to_string()));
        assert_eq!(attr_n(&item, "verified_at"), Some(s.verified_at.to_string()));
        let userinfo: serde_json::Value = serde_json::from_str(&attr_s(&item, "userinfo").unwrap()).unwrap();
        assert_eq!(userinfo, serde_json::Value::Object(s.userinfo.clone()));
    }

    /// A corrupt item is an error of the store, never a panic or a wrong answer.
    #[tokio::test]
    async fn corrupt_items_are_unavailable() {
        let store = dynamo_on_fresh_table().await;
        let now = now_epoch_secs();
        let v = verification(now);
        let dynamo: Store = Arc::new(store.clone());
        for (pk, attrs) in [
            (
                format!("v#{}", v.key),
                vec![
                    ("expires_at", AttributeValue::N((now + 60).to_string())),
                    ("stage", AttributeValue::S("no-such-stage".into())),
                ],
            ),
            (
                format!("s#{}", session_key("corrupt")),
                vec![("expires_at", AttributeValue::N((now + 60).to_string()))],
            ),
        ] {
            let mut put =
                store.client().put_item().table_name(store.table()).item("pk", AttributeValue::S(pk));
            for (name, value) in attrs {
                put = put.item(name, value);
            }
            put.send().await.unwrap();
        }
        let claim_result = dynamo.claim_verification(&v.key, &claim(&v, "lease", now)).await;
        assert!(matches!(claim_result, Err(StoreError::Unavailable(_))), "{claim_result:?}");
        let session_result = dynamo.get_session(&session_key("corrupt"), now).await;
        assert!(matches!(session_result, Err(StoreError::Unavailable(_))), "{session_result:?}");
    }

    #[tokio::test]
    async fn a_missing_table_is_unavailable() {
        require_moto();
        let store: Store =
            Arc::new(DynamoStore::new(DynamoStore::client_from_env().await, "store-suite-no-such-table"));
        let now = now_epoch_secs();
        let result = store.put_verification(&verification(now)).await;
        match result {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("store-suite-no-such-table"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(matches!(store.get_session(&session_key("x"), now).await, Err(StoreError::Unavailable(_))));
    }

    /// Needs no moto: the endpoint is a loopback port nothing listens on.
    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "store-suite"))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .retry_config(
                RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(10)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        let dynamo = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "unreachable");
        let started = Instant::now();
        let now = now_epoch_secs();
        let v = verification(now);
        let s = session(now);
        let store: Store = Arc::new(dynamo.clone());
        let results: Vec<(&str, Result<(), StoreError>)> = vec![
            ("create_table_if_missing", dynamo.create_table_if_missing().await.map(drop)),
            ("put_verification", store.put_verification(&v).await),
            ("claim_verification", store.claim_verification(&v.key, &claim(&v, "l", now)).await.map(drop)),
            ("record_wrong_code", store.record_wrong_code(&v.key, "l", false).await.map(drop)),
            ("record_wrong_code(ends)", store.record_wrong_code(&v.key, "l", true).await.map(drop)),
            ("release_verification", store.release_verification(&v.key, "l", &Progress::CodeAccepted).await),
            ("discard_verification", store.discard_verification(&v.key, "l").await),
            ("complete_verification", store.complete_verification(&v.key, "l", &s).await),
            ("get_session", store.get_session(&s.key, now).await.map(drop)),
            ("delete_session", store.delete_session(&s.key).await),
        ];
        for (call, result) in results {
            match result {
                Err(StoreError::Unavailable(message)) => {
                    assert!(
                        message.contains("unreachable"),
                        "{call}: the message names the table: {message}"
                    );
                    assert!(message.len() > 40, "{call}: the message gives the cause: {message}");
                }
                other => panic!("{call}: expected Unavailable, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "failing took {:?}", started.elapsed());
    }
}
