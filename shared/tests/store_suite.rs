//! The one suite every [`StateStore`] must pass, run against the in-memory store and against the
//! DynamoDB store on a local DynamoDB Local server (a fresh table per test).
//!
//! The DynamoDB half needs that server: run the suite as
//! `scripts/with-test-services.sh cargo test -p shared --test store_suite`; without it those tests
//! fail.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use serde_json::{Map, json};
use shared::{
    clock::now_epoch_secs,
    fraud_guard::Conversion,
    limits::{DAY_SECS, HOUR_SECS, Limit, Limits, RateLimited, WindowCount, shard},
    phone::PhoneNumber,
    secret::{AuthReqId, SessionToken},
    store::{
        Claim, ClaimOutcome, ConversionEvent, ConversionWindow, CounterKey, CountryPause, DynamoStore, Lease,
        LeaseAfter, LeaseId, MemoryStore, NumberKey, PhoneKey, Progress, SendReservation, Session,
        SessionKey, StateStore, StoreError, Verification, VerificationKey,
    },
};
use tokio::sync::Barrier;

type Store = Arc<dyn StateStore>;

const LEASE_SECS: u64 = 30;
/// The phone failure limit of [`claim`].
const MAX_FAILURES: u32 = 20;

fn memory_store() -> Store {
    Arc::new(MemoryStore::new())
}

/// The DynamoDB tests run only on the harness: they fail, not pass, without it.
fn require_dynamodb_local() {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: the DynamoDB store tests need a local DynamoDB \
             Local server; run them through scripts/with-test-services.sh, e.g. \
             `scripts/with-test-services.sh cargo test -p shared --test store_suite`"
        );
    }
}

async fn dynamo_on_fresh_table() -> DynamoStore {
    require_dynamodb_local();
    let table = format!("store-suite-{}", uuid::Uuid::new_v4().simple());
    let store =
        DynamoStore::new(DynamoStore::client_from_env().expect("the SDK config from the environment"), table);
    let created = store.create_table_if_missing().await.expect("create the test table");
    assert!(created, "a fresh table name must not exist yet");
    store
}

async fn dynamo_store() -> Store {
    Arc::new(dynamo_on_fresh_table().await)
}

/// A fresh key, as the flow makes them.
fn new_key() -> VerificationKey {
    VerificationKey::of(&AuthReqId::new(uuid::Uuid::new_v4().to_string()))
}

/// A fresh phone record key: every test phone is its own.
fn new_phone() -> PhoneKey {
    PhoneKey::of("client-a", &format!("+1555{}", uuid::Uuid::new_v4().simple()), None)
}

/// A fresh source network key.
fn new_ip() -> CounterKey {
    CounterKey::ip("client-a", &uuid::Uuid::new_v4().to_string())
}

/// The key of a session whose token is `token`.
fn session_key(token: &str) -> SessionKey {
    SessionKey::of(&SessionToken::new(token))
}

/// The lease id the cases call `name`. Lease ids are random ([`LeaseId::new_random`]), never made
/// from text; here one name is one id for the whole run, as one string was.
fn lease_named(name: &str) -> LeaseId {
    static NAMED: LazyLock<Mutex<HashMap<String, LeaseId>>> = LazyLock::new(Mutex::default);
    let mut named = NAMED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    named.entry(name.to_owned()).or_insert_with(LeaseId::new_random).clone()
}

fn verification(now: u64) -> Verification {
    Verification {
        key: new_key(),
        flow_id: "flow-1".into(),
        nonce_digest: "nonce-digest".into(),
        client_id: "client-a".into(),
        server_id: "server-a".into(),
        // Every verification its own number: the numbers' wrong codes of the day are their own.
        phone: format!("+1555{}", uuid::Uuid::new_v4().simple()),
        region: "US".into(),
        phone_key: new_phone(),
        test: false,
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
        lease: Lease { id: lease_named(lease_id), until: now + LEASE_SECS },
        now,
        limits: Limits { max_failures_per_phone: MAX_FAILURES, ..Limits::default() },
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
            lease: Some(Lease { id: lease_named("lease-1"), until: now + LEASE_SECS }),
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
            test: i != 1,
            created_at: now - 10,
            expires_at: now + 300 + i as u64,
            poll_interval_secs: 7,
            wrong_codes: 2,
            max_wrong_codes: 3,
            progress,
            // An old lease, already over, as a retried request leaves it.
            lease: Some(Lease { id: lease_named("old"), until: now - 1 }),
            ..verification(now)
        };
        store.put_verification(&v).await.unwrap();
        let got = claimed(&store, &v, "lease-2", now).await;
        assert_eq!(
            got,
            Verification { lease: Some(Lease { id: lease_named("lease-2"), until: now + LEASE_SECS }), ..v }
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

    // A second to live: gone two seconds later, although nothing deleted it (no sleep: the store
    // takes the time from its caller).
    let short = Verification { expires_at: now + 1, ..verification(now) };
    store.put_verification(&short).await.unwrap();
    assert_eq!(outcome(&store, &short, "lease", now + 2).await, ClaimOutcome::NotFound);
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
    assert_eq!(claimed(&store, &v, "owner", now).await.lease.unwrap().id, lease_named("owner"));
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
    store
        .save_progress(&v.key, &lease_named("first"), &Progress::AwaitingCode, LeaseAfter::Released)
        .await
        .unwrap();
}

async fn claim_after_lease_expiry_succeeds(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "first", now).await;
    let later = now + LEASE_SECS;
    let got = claimed(&store, &v, "second", later).await;
    assert_eq!(got.lease, Some(Lease { id: lease_named("second"), until: later + LEASE_SECS }));
    // The first caller's lease is gone.
    assert_lease_lost(store.record_wrong_code(&v, &lease_named("first"), false, now).await);
    assert_lease_lost(
        store
            .save_progress(&v.key, &lease_named("first"), &Progress::CodeAccepted, LeaseAfter::Released)
            .await,
    );
    assert_eq!(store.record_wrong_code(&v, &lease_named("second"), false, now).await.unwrap(), 4);
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
        assert_eq!(
            store.record_wrong_code(&v, &lease_named(&lease), false, now).await.unwrap(),
            expected_left
        );
        // Recording released the lease.
        assert_lease_lost(store.record_wrong_code(&v, &lease_named(&lease), false, now).await);
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
    assert_eq!(store.record_wrong_code(&v, &lease_named("lease"), true, now).await.unwrap(), 0);
    assert_eq!(outcome(&store, &v, "next", now).await, ClaimOutcome::Exhausted);
    assert_lease_lost(store.record_wrong_code(&v, &lease_named("lease"), true, now).await);
}

async fn a_wrong_lease_is_lease_lost(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    let s = session(now);

    // Not leased at all yet.
    assert_lease_lost(store.record_wrong_code(&v, &lease_named("nobody"), false, now).await);
    assert_lease_lost(store.record_wrong_code(&v, &lease_named("nobody"), true, now).await);
    assert_lease_lost(
        store
            .save_progress(&v.key, &lease_named("nobody"), &Progress::CodeAccepted, LeaseAfter::Released)
            .await,
    );
    assert_lease_lost(store.discard_verification(&v.key, &lease_named("nobody")).await);
    assert_lease_lost(store.complete_verification(&v, &lease_named("nobody"), &s, "sealed-session").await);

    // Leased by someone else.
    claimed(&store, &v, "owner", now).await;
    assert_lease_lost(store.record_wrong_code(&v, &lease_named("other"), false, now).await);
    assert_lease_lost(store.record_wrong_code(&v, &lease_named("other"), true, now).await);
    assert_lease_lost(
        store
            .save_progress(&v.key, &lease_named("other"), &Progress::CodeAccepted, LeaseAfter::Released)
            .await,
    );
    assert_lease_lost(store.discard_verification(&v.key, &lease_named("other")).await);
    assert_lease_lost(store.complete_verification(&v, &lease_named("other"), &s, "sealed-session").await);

    // An unknown verification.
    let unknown = verification(now);
    assert_lease_lost(store.record_wrong_code(&unknown, &lease_named("owner"), false, now).await);
    assert_lease_lost(
        store
            .save_progress(&unknown.key, &lease_named("owner"), &Progress::AwaitingCode, LeaseAfter::Released)
            .await,
    );
    assert_lease_lost(store.discard_verification(&unknown.key, &lease_named("owner")).await);
    assert_lease_lost(
        store.complete_verification(&unknown, &lease_named("owner"), &s, "sealed-session").await,
    );

    // None of that changed anything: no session, the owner still holds an untouched record.
    assert_eq!(store.get_session(&s.key, now).await.unwrap(), None);
    assert_eq!(outcome(&store, &v, "other", now).await, ClaimOutcome::Busy { retry_after: LEASE_SECS });
    store
        .save_progress(&v.key, &lease_named("owner"), &Progress::AwaitingCode, LeaseAfter::Released)
        .await
        .unwrap();
    let after = claimed(&store, &v, "check", now).await;
    assert_eq!((after.wrong_codes, after.progress), (0, Progress::AwaitingCode));
}

async fn release_saves_progress(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();

    claimed(&store, &v, "one", now).await;
    store
        .save_progress(&v.key, &lease_named("one"), &Progress::CodeAccepted, LeaseAfter::Released)
        .await
        .unwrap();
    assert_eq!(claimed(&store, &v, "two", now).await.progress, Progress::CodeAccepted);

    let issued = Progress::TokenIssued { sealed_access_token: "sealed-token".into() };
    store.save_progress(&v.key, &lease_named("two"), &issued, LeaseAfter::Released).await.unwrap();
    let got = claimed(&store, &v, "three", now).await;
    assert_eq!(got.progress, issued);
    assert_eq!(got.wrong_codes, 0);
    assert_eq!(got.lease.map(|l| l.id), Some(lease_named("three")));

    // Releasing drops the lease: the same lease cannot release twice.
    store
        .save_progress(&v.key, &lease_named("three"), &Progress::AwaitingCode, LeaseAfter::Released)
        .await
        .unwrap();
    assert_lease_lost(
        store
            .save_progress(&v.key, &lease_named("three"), &Progress::AwaitingCode, LeaseAfter::Released)
            .await,
    );
    // ... and a stage without a token leaves none behind.
    assert_eq!(claimed(&store, &v, "four", now).await.progress, Progress::AwaitingCode);
}

/// A step done upstream is saved before the next one, the lease kept: nobody else may claim it
/// meanwhile, and a crash after the save resumes from it once the lease has run out.
async fn saving_progress_keeps_the_lease(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "runner", now).await;
    store
        .save_progress(&v.key, &lease_named("runner"), &Progress::CodeAccepted, LeaseAfter::Kept)
        .await
        .unwrap();
    let issued = Progress::TokenIssued { sealed_access_token: "sealed-token".into() };
    store.save_progress(&v.key, &lease_named("runner"), &issued, LeaseAfter::Kept).await.unwrap();
    assert_eq!(outcome(&store, &v, "retry", now).await, ClaimOutcome::Busy { retry_after: LEASE_SECS });
    assert_lease_lost(
        store.save_progress(&v.key, &lease_named("retry"), &Progress::AwaitingCode, LeaseAfter::Kept).await,
    );
    // The runner crashed: after its lease, the retry finds the token it saved.
    let resumed = claimed(&store, &v, "retry", now + LEASE_SECS).await;
    assert_eq!(resumed.progress, issued);
}

async fn discard_removes_the_verification(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    store.discard_verification(&v.key, &lease_named("lease")).await.unwrap();
    assert_eq!(outcome(&store, &v, "again", now).await, ClaimOutcome::NotFound);
    assert_lease_lost(store.discard_verification(&v.key, &lease_named("lease")).await);
}

/// A completed verification keeps its session sealed, for the same request retried after a
/// lost answer (the flow opens it); it is claimed like any other, and expires as it would have.
async fn complete_seals_the_session_and_creates_it(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let s = session(now);
    store.complete_verification(&v, &lease_named("lease"), &s, "sealed-session").await.unwrap();
    assert_eq!(store.get_session(&s.key, now).await.unwrap(), Some(s.clone()));
    // Done once: the lease went with the completion.
    let other = session(now);
    assert_lease_lost(store.complete_verification(&v, &lease_named("lease"), &other, "sealed-session").await);
    assert_eq!(store.get_session(&other.key, now).await.unwrap(), None);
    let again = claimed(&store, &v, "again", now).await;
    assert_eq!(again.progress, Progress::Completed { sealed_session: "sealed-session".into() });
    let mut stranger = claim(&v, "stranger", now);
    stranger.nonce_digest = "another nonce's digest".into();
    assert_eq!(store.claim_verification(&v.key, &stranger).await.unwrap(), ClaimOutcome::NotFound);
    // Releasing the replay's lease keeps the sealed session.
    store.save_progress(&v.key, &lease_named("again"), &again.progress, LeaseAfter::Released).await.unwrap();
    assert_eq!(claimed(&store, &v, "third", now).await.progress, again.progress);
    assert_eq!(outcome(&store, &v, "late", v.expires_at).await, ClaimOutcome::NotFound);
}

/// Wrong codes against a completed verification count, and once they are used up it is not
/// found (no guessing a way to its session).
async fn a_completed_verification_ends_after_its_wrong_codes(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    store.complete_verification(&v, &lease_named("lease"), &session(now), "sealed-session").await.unwrap();
    for i in 0..v.max_wrong_codes {
        let got = claimed(&store, &v, &format!("guess-{i}"), now).await;
        store.record_wrong_code(&got, &lease_named(&format!("guess-{i}")), false, now).await.unwrap();
    }
    assert_eq!(outcome(&store, &v, "after", now).await, ClaimOutcome::NotFound);
}

async fn sessions_expire_and_can_be_deleted(store: Store) {
    let now = now_epoch_secs();
    assert_eq!(store.get_session(&session_key("unknown"), now).await.unwrap(), None);
    store.delete_session(&session_key("unknown")).await.unwrap();

    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let s = Session { expires_at: now + 100, ..session(now) };
    store.complete_verification(&v, &lease_named("lease"), &s, "sealed-session").await.unwrap();

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
    store
        .save_progress(&v.key, &lease_named(&winners[0]), &Progress::AwaitingCode, LeaseAfter::Released)
        .await
        .unwrap();
}

async fn concurrent_wrong_codes_under_one_lease_count_once(store: Store) {
    let now = now_epoch_secs();
    let v = verification(now);
    store.put_verification(&v).await.unwrap();
    claimed(&store, &v, "lease", now).await;
    let results = race(20, |_| {
        let (store, v) = (Arc::clone(&store), v.clone());
        async move { store.record_wrong_code(&v, &lease_named("lease"), false, now).await }
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
                        match store.record_wrong_code(&v, &lease_named(&lease), false, now).await {
                            Ok(left) => left_seen.push(left),
                            Err(e) => panic!("the lease holder lost its lease: {e}"),
                        }
                    }
                    Ok(ClaimOutcome::Busy { .. }) => tokio::time::sleep(Duration::from_millis(2)).await,
                    Ok(ClaimOutcome::Exhausted) => return Ok(left_seen),
                    Ok(ClaimOutcome::NotFound) => panic!("the verification vanished"),
                    Ok(ClaimOutcome::PhoneLocked(_)) => panic!("five failures locked the phone"),
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
        let (store, last) = (Arc::clone(&store), last.clone());
        async move { store.record_wrong_code(&last, &lease_named("lease"), i % 2 == 0, now).await }
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
        let (store, v, s) = (Arc::clone(&store), v.clone(), sessions[i].clone());
        async move { store.complete_verification(&v, &lease_named("lease"), &s, "sealed-session").await }
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
    let completed = claimed(&store, &v, "again", now).await;
    assert_eq!(completed.progress, Progress::Completed { sealed_session: "sealed-session".into() });
}

// ---- abuse limits ----------------------------------------------------------------------------

/// The start of a UTC day, far from today: time-based limits are tested at explicit times
/// instead of by sleeping.
const DAY_START: u64 = 1_900_000_000 / DAY_SECS * DAY_SECS;
/// 10:00 UTC that day: the start of an hour and of every window that divides it.
const T0: u64 = DAY_START + 10 * HOUR_SECS;

/// A send to `phone` counted on the phone and, when given, the source network `ip` only.
fn reservation(phone: &PhoneKey, ip: Option<&CounterKey>, limits: &Limits, now: u64) -> SendReservation {
    let counts = ip
        .map(|key| WindowCount {
            limit: Limit::IpHourly,
            key: key.clone(),
            window_secs: HOUR_SECS,
            max: limits.starts_per_ip_hour,
        })
        .into_iter()
        .collect();
    // The phone record's own number: no other phone's sends count against it.
    let number_key = NumberKey::of("client-a", phone.as_str());
    SendReservation { phone_key: phone.clone(), number_key, counts, limits: limits.clone(), now }
}

async fn reserve(
    store: &Store,
    phone: &PhoneKey,
    ip: Option<&CounterKey>,
    limits: &Limits,
    now: u64,
) -> Result<(), RateLimited> {
    store.reserve_send(&reservation(phone, ip, limits, now)).await.expect("reserve_send")
}

fn limited(limit: Limit, retry_after: u64) -> Result<(), RateLimited> {
    Err(RateLimited { limit, retry_after })
}

/// A claim under a phone failure limit other than [`MAX_FAILURES`].
fn claim_with(v: &Verification, lease_id: &str, now: u64, max_failures_per_phone: u32) -> Claim {
    let limits = Limits { max_failures_per_phone, ..Limits::default() };
    Claim { limits, ..claim(v, lease_id, now) }
}

async fn claim_outcome(store: &Store, v: &Verification, wanted: &Claim) -> ClaimOutcome {
    store.claim_verification(&v.key, wanted).await.expect("claim")
}

async fn sends_are_limited_per_window_and_per_day(store: Store) {
    let limits = Limits {
        sends_per_phone_window: 2,
        send_window_secs: 600,
        sends_per_phone_day: 3,
        resend_delays_secs: vec![0],
        ..Limits::default()
    };
    let phone = new_phone();
    let t = T0 + 100;
    assert_eq!(reserve(&store, &phone, None, &limits, t).await, Ok(()));
    assert_eq!(reserve(&store, &phone, None, &limits, t + 1).await, Ok(()));
    // The window [T0, T0 + 600) is full until its end.
    assert_eq!(reserve(&store, &phone, None, &limits, t + 2).await, limited(Limit::PhoneWindow, 600 - 102));
    assert_eq!(
        reserve(&store, &new_phone(), None, &limits, t + 2).await,
        Ok(()),
        "another phone is not limited"
    );
    // The next window counts from 0, the day goes on: its third send is its last.
    assert_eq!(reserve(&store, &phone, None, &limits, T0 + 600).await, Ok(()));
    let day_end = DAY_START + DAY_SECS;
    assert_eq!(
        reserve(&store, &phone, None, &limits, T0 + 601).await,
        limited(Limit::PhoneDaily, day_end - T0 - 601)
    );
    assert_eq!(
        reserve(&store, &phone, None, &limits, T0 + 1800).await,
        limited(Limit::PhoneDaily, day_end - T0 - 1800),
        "a new window does not help"
    );
    // The next UTC day starts again.
    assert_eq!(reserve(&store, &phone, None, &limits, day_end + 5).await, Ok(()));
    assert_eq!(reserve(&store, &phone, None, &limits, day_end + 6).await, Ok(()));
    assert_eq!(
        reserve(&store, &phone, None, &limits, day_end + 7).await,
        limited(Limit::PhoneWindow, 600 - 7)
    );
}

async fn the_resend_delay_grows_with_each_send_of_the_day(store: Store) {
    let limits = Limits {
        sends_per_phone_window: 10,
        send_window_secs: 3600,
        sends_per_phone_day: 10,
        resend_delays_secs: vec![0, 60, 3600],
        ..Limits::default()
    };
    let phone = new_phone();
    assert_eq!(reserve(&store, &phone, None, &limits, T0).await, Ok(()));
    assert_eq!(reserve(&store, &phone, None, &limits, T0).await, Ok(()), "no delay after the first");
    assert_eq!(reserve(&store, &phone, None, &limits, T0 + 10).await, limited(Limit::ResendDelay, 50));
    assert_eq!(reserve(&store, &phone, None, &limits, T0 + 60).await, Ok(()), "60 s after the second");
    assert_eq!(reserve(&store, &phone, None, &limits, T0 + 100).await, limited(Limit::ResendDelay, 3560));
    assert_eq!(reserve(&store, &phone, None, &limits, T0 + 3660).await, Ok(()), "an hour after the third");
    assert_eq!(
        reserve(&store, &phone, None, &limits, T0 + 3700).await,
        limited(Limit::ResendDelay, 3560),
        "the last delay repeats"
    );
    // A new day has no delay to wait for.
    assert_eq!(reserve(&store, &phone, None, &limits, DAY_START + DAY_SECS).await, Ok(()));
}

async fn starts_are_limited_per_source_network_and_hour(store: Store) {
    let limits = Limits { starts_per_ip_hour: 2, ..Limits::default() };
    let (ip, t) = (new_ip(), T0 + 1800);
    assert_eq!(reserve(&store, &new_phone(), Some(&ip), &limits, t).await, Ok(()));
    assert_eq!(reserve(&store, &new_phone(), Some(&ip), &limits, t).await, Ok(()));
    assert_eq!(reserve(&store, &new_phone(), Some(&ip), &limits, t).await, limited(Limit::IpHourly, 1800));
    assert_eq!(reserve(&store, &new_phone(), Some(&new_ip()), &limits, t).await, Ok(()), "another network");
    assert_eq!(reserve(&store, &new_phone(), None, &limits, t).await, Ok(()), "no network, no network limit");
    assert_eq!(
        reserve(&store, &new_phone(), Some(&ip), &limits, T0 + HOUR_SECS).await,
        Ok(()),
        "the next hour"
    );
}

async fn a_refused_send_counts_nothing(store: Store) {
    let limits = Limits {
        sends_per_phone_window: 2,
        resend_delays_secs: vec![0],
        starts_per_ip_hour: 3,
        ..Limits::default()
    };
    let (a, b, c, ip) = (new_phone(), new_phone(), new_phone(), new_ip());
    assert_eq!(reserve(&store, &a, Some(&ip), &limits, T0).await, Ok(()));
    assert_eq!(reserve(&store, &a, Some(&ip), &limits, T0).await, Ok(()));
    // Refused by the phone's window: the network's count stays at 2 ...
    assert_eq!(reserve(&store, &a, Some(&ip), &limits, T0).await, limited(Limit::PhoneWindow, 600));
    assert_eq!(reserve(&store, &b, Some(&ip), &limits, T0).await, Ok(()));
    // ... and refused by the network's hour: phone c's count stays at 0.
    assert_eq!(reserve(&store, &c, Some(&ip), &limits, T0).await, limited(Limit::IpHourly, HOUR_SECS));
    assert_eq!(reserve(&store, &c, None, &limits, T0).await, Ok(()));
    assert_eq!(reserve(&store, &c, None, &limits, T0).await, Ok(()));
    assert_eq!(reserve(&store, &c, None, &limits, T0).await, limited(Limit::PhoneWindow, 600));
}

/// A send as `/sms/auth` reserves it: the client's, the country's and the range's counts too.
async fn send(
    store: &Store,
    client_id: &str,
    phone: &str,
    limits: &Limits,
    now: u64,
) -> Result<(), RateLimited> {
    let phone = PhoneNumber::parse(phone).expect("a valid number");
    let wanted = SendReservation::new(client_id, &phone, None, limits, now);
    store.reserve_send(&wanted).await.expect("reserve_send")
}

async fn sends_are_capped_per_client_country_and_range(store: Store) {
    let lenient = Limits {
        sends_per_phone_window: 100,
        sends_per_phone_day: 100,
        resend_delays_secs: vec![0],
        ..Limits::default()
    };
    let t = DAY_START + 2 * HOUR_SECS + 100;
    let hour_left = HOUR_SECS - 100;

    let budget = Limits { sends_per_client_day: 3, ..lenient.clone() };
    for phone in ["+447400123456", "+4915123456789", "+33612345678"] {
        assert_eq!(send(&store, "budget", phone, &budget, t).await, Ok(()), "{phone}");
    }
    assert_eq!(
        send(&store, "budget", "+447400654321", &budget, t).await,
        limited(Limit::ClientDaily, DAY_SECS - 2 * HOUR_SECS - 100)
    );
    assert_eq!(send(&store, "another-client", "+447400654321", &budget, t).await, Ok(()), "per client");
    assert_eq!(
        send(&store, "budget", "+447400654321", &budget, DAY_START + DAY_SECS).await,
        Ok(()),
        "the next day"
    );

    let country = Limits { sends_per_country_hour: 2, ..lenient.clone() };
    assert_eq!(send(&store, "country", "+447400111111", &country, t).await, Ok(()));
    assert_eq!(send(&store, "country", "+447400222222", &country, t).await, Ok(()));
    assert_eq!(
        send(&store, "country", "+447400333333", &country, t).await,
        limited(Limit::CountryHourly, hour_left)
    );
    assert_eq!(send(&store, "country", "+4915123456789", &country, t).await, Ok(()), "another country");
    assert_eq!(
        send(&store, "country", "+447400333333", &country, t + hour_left).await,
        Ok(()),
        "the next hour"
    );

    let range = Limits { sends_per_range_hour: 2, ..lenient };
    assert_eq!(send(&store, "range", "+447400123001", &range, t).await, Ok(()));
    assert_eq!(send(&store, "range", "+447400123002", &range, t).await, Ok(()));
    assert_eq!(
        send(&store, "range", "+447400123999", &range, t).await,
        limited(Limit::RangeHourly, hour_left)
    );
    assert_eq!(send(&store, "range", "+447400124000", &range, t).await, Ok(()), "the next range");
    assert_eq!(send(&store, "range", "+447400123001", &range, t + hour_left).await, Ok(()), "the next hour");
}

/// The fraud guard's writes: a window's counts, and a pause every send to the country meets.
async fn a_paused_country_refuses_sends_until_the_pause_ends(store: Store) {
    let t = DAY_START + 5 * HOUR_SECS + 600;
    let window = ConversionWindow {
        key: CounterKey::conversion("client-a", "GB", 3600),
        window: t / 3600,
        window_secs: 3600,
    };
    assert_eq!(
        store.count_conversion(&window, ConversionEvent::Sent).await.unwrap(),
        Conversion { sends: 1, verified: 0 }
    );
    store.count_conversion(&window, ConversionEvent::Sent).await.unwrap();
    assert_eq!(
        store.count_conversion(&window, ConversionEvent::Verified).await.unwrap(),
        Conversion { sends: 2, verified: 1 }
    );

    let limits = Limits { sends_per_phone_window: 100, resend_delays_secs: vec![0], ..Limits::default() };
    assert_eq!(send(&store, "client-a", "+447400111111", &limits, t).await, Ok(()));
    // Paused for 1 h from t: this hour's and the next hour's counts carry it.
    let until = t + HOUR_SECS;
    let counts = (t / HOUR_SECS..=(until - 1) / HOUR_SECS)
        .map(|hour| (CounterKey::country("client-a", "GB", 0), hour, HOUR_SECS))
        .collect();
    let pause = CountryPause { window: window.clone(), counts, until, now: t };
    assert!(store.pause_country(&pause).await.unwrap(), "this call started the pause");
    // A send reserved just before the pause trips it again a second later: the pause that is on
    // is not made longer than its log line says.
    assert!(
        !store.pause_country(&CountryPause { now: t + 1, until: until + 1, ..pause.clone() }).await.unwrap(),
        "started once"
    );
    let paused = |at: u64| limited(Limit::CountryPaused, until - at);
    assert_eq!(send(&store, "client-a", "+447400222222", &limits, t + 1).await, paused(t + 1));
    assert_eq!(
        send(&store, "client-a", "+447400111111", &limits, t + 2).await,
        paused(t + 2),
        "every GB number"
    );
    let next_hour = (t / HOUR_SECS + 1) * HOUR_SECS;
    assert_eq!(
        send(&store, "client-a", "+447400222222", &limits, next_hour).await,
        paused(next_hour),
        "into the next hour"
    );
    assert_eq!(send(&store, "client-a", "+4915123456789", &limits, t + 2).await, Ok(()), "another country");
    assert_eq!(send(&store, "client-b", "+447400222222", &limits, t + 2).await, Ok(()), "another client");
    assert_eq!(send(&store, "client-a", "+447400222222", &limits, until).await, Ok(()), "the pause is over");
}

/// The growing delay is the network's; across networks the number waits the first delay.
async fn the_number_waits_the_first_delay_across_networks(store: Store) {
    let limits = Limits { resend_delays_secs: vec![30, 3600], ..Limits::default() };
    let number = PhoneNumber::parse("+447400123456").unwrap();
    let from = |network: &str, at: u64| SendReservation::new("client-a", &number, Some(network), &limits, at);
    let t = DAY_START + 600;
    assert_eq!(store.reserve_send(&from("198.51.100.7", t)).await.unwrap(), Ok(()));
    assert_eq!(
        store.reserve_send(&from("203.0.113.9", t + 10)).await.unwrap(),
        limited(Limit::ResendDelay, 20)
    );
    assert_eq!(store.reserve_send(&from("203.0.113.9", t + 30)).await.unwrap(), Ok(()), "the first delay");
    assert_eq!(
        store.reserve_send(&from("198.51.100.7", t + 60)).await.unwrap(),
        Ok(()),
        "30 s since the last"
    );
    assert_eq!(
        store.reserve_send(&from("198.51.100.7", t + 120)).await.unwrap(),
        limited(Limit::ResendDelay, 3540),
        "the first network's own delay grows with its sends"
    );
}

async fn a_new_start_replaces_the_older_verification(store: Store) {
    let now = now_epoch_secs();
    let old = verification(now);
    store.put_verification(&old).await.unwrap();
    claimed(&store, &old, "before", now).await;
    store
        .save_progress(&old.key, &lease_named("before"), &Progress::AwaitingCode, LeaseAfter::Released)
        .await
        .unwrap();
    let other_phone = verification(now);
    store.put_verification(&other_phone).await.unwrap();

    let new =
        Verification { flow_id: "flow-2".into(), phone_key: old.phone_key.clone(), ..verification(now) };
    store.put_verification(&new).await.unwrap();
    assert_eq!(outcome(&store, &old, "after", now).await, ClaimOutcome::NotFound);
    assert_eq!(claimed(&store, &new, "new", now).await.flow_id, "flow-2");
    assert_eq!(
        claimed(&store, &other_phone, "other", now).await.key,
        other_phone.key,
        "other phones keep theirs"
    );
}

async fn wrong_codes_across_verifications_lock_the_phone(store: Store) {
    let now = now_epoch_secs();
    let phone = new_phone();
    let limits = Limits { max_wrong_codes: 2, max_failures_per_phone: 3, ..Limits::default() };
    let first = Verification { phone_key: phone.clone(), max_wrong_codes: 2, ..verification(now) };
    store.put_verification(&first).await.unwrap();
    for (lease, left) in [("a", 1), ("b", 0)] {
        let got = claim_outcome(&store, &first, &claim_with(&first, lease, now, 3)).await;
        assert!(matches!(got, ClaimOutcome::Claimed(_)), "{got:?}");
        assert_eq!(store.record_wrong_code(&first, &lease_named(lease), false, now).await.unwrap(), left);
    }
    // A new code does not reset the phone's count: its first wrong code is the phone's third.
    let second = Verification { phone_key: phone.clone(), ..verification(now) };
    store.put_verification(&second).await.unwrap();
    let got = claim_outcome(&store, &second, &claim_with(&second, "c", now, 3)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "{got:?}");
    assert_eq!(store.record_wrong_code(&second, &lease_named("c"), false, now).await.unwrap(), 4);
    assert_eq!(
        claim_outcome(&store, &second, &claim_with(&second, "d", now, 3)).await,
        ClaimOutcome::PhoneLocked(RateLimited { limit: Limit::PhoneLocked, retry_after: DAY_SECS })
    );
    assert_eq!(
        claim_outcome(&store, &second, &claim_with(&second, "d", now + 100, 3)).await,
        ClaimOutcome::PhoneLocked(RateLimited { limit: Limit::PhoneLocked, retry_after: DAY_SECS - 100 })
    );
    // Locked for sends too; not found still wins for someone else's claim.
    assert_eq!(reserve(&store, &phone, None, &limits, now).await, limited(Limit::PhoneLocked, DAY_SECS));
    assert_eq!(reserve(&store, &new_phone(), None, &limits, now).await, Ok(()), "only that phone is locked");
    let intruder = Claim { nonce_digest: "other-nonce".into(), ..claim_with(&second, "e", now, 3) };
    assert_eq!(claim_outcome(&store, &second, &intruder).await, ClaimOutcome::NotFound);

    // A day after the last failure the lock is over, and a failure after that counts from 1.
    let later = now + DAY_SECS;
    assert_eq!(reserve(&store, &phone, None, &limits, later).await, Ok(()));
    let third = Verification { phone_key: phone.clone(), ..verification(later) };
    store.put_verification(&third).await.unwrap();
    let got = claim_outcome(&store, &third, &claim_with(&third, "f", later, 3)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "{got:?}");
    assert_eq!(store.record_wrong_code(&third, &lease_named("f"), false, later).await.unwrap(), 4);
    let got = claim_outcome(&store, &third, &claim_with(&third, "g", later, 2)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "one failure counted, not four: {got:?}");
    assert_eq!(store.record_wrong_code(&third, &lease_named("g"), false, later).await.unwrap(), 3);
    assert_eq!(
        claim_outcome(&store, &third, &claim_with(&third, "h", later, 2)).await,
        ClaimOutcome::PhoneLocked(RateLimited { limit: Limit::PhoneLocked, retry_after: DAY_SECS })
    );
}

async fn a_verified_number_starts_counting_failures_again(store: Store) {
    let now = now_epoch_secs();
    let phone = new_phone();
    let first = Verification { phone_key: phone.clone(), ..verification(now) };
    store.put_verification(&first).await.unwrap();
    let got = claim_outcome(&store, &first, &claim_with(&first, "a", now, 2)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "{got:?}");
    assert_eq!(store.record_wrong_code(&first, &lease_named("a"), false, now).await.unwrap(), 4);
    let got = claim_outcome(&store, &first, &claim_with(&first, "b", now, 2)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "{got:?}");
    store.complete_verification(&first, &lease_named("b"), &session(now), "sealed-session").await.unwrap();

    let second = Verification { phone_key: phone.clone(), ..verification(now) };
    store.put_verification(&second).await.unwrap();
    let got = claim_outcome(&store, &second, &claim_with(&second, "c", now, 2)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "{got:?}");
    assert_eq!(store.record_wrong_code(&second, &lease_named("c"), false, now).await.unwrap(), 4);
    let got = claim_outcome(&store, &second, &claim_with(&second, "d", now, 2)).await;
    assert!(matches!(got, ClaimOutcome::Claimed(_)), "the count restarted at the verification: {got:?}");
    let limits = Limits { max_failures_per_phone: 2, ..Limits::default() };
    assert_eq!(reserve(&store, &phone, None, &limits, now).await, Ok(()));
}

/// 32 users of one client in one country at once, four times: the client's day and the
/// country's hour are counted by every one of them, and none may be refused or fail for it.
async fn concurrent_sends_of_one_client_all_go_out(store: Store) {
    let now = now_epoch_secs();
    let limits = Limits::default();
    for round in 0..4 {
        let results = race(32, |i| {
            let store = Arc::clone(&store);
            let number = PhoneNumber::parse(&format!("+4474{round:02}{i:03}000"))
                .expect("a UK mobile, each of its own range");
            let wanted =
                SendReservation::new("client-a", &number, Some(&format!("10.0.{round}.{i}")), &limits, now);
            async move { store.reserve_send(&wanted).await }
        })
        .await;
        for result in results {
            assert_eq!(result.expect("no send may fail"), Ok(()), "round {round}");
        }
    }
}

/// Wrong codes lock the network they come from; from all networks together, a number takes only
/// its daily cap, and then neither a claim nor a send for it goes through anywhere.
async fn wrong_codes_lock_a_network_and_are_capped_per_number_and_day(store: Store) {
    let now = now_epoch_secs();
    let limits = Limits {
        max_wrong_codes: 10,
        max_failures_per_phone: 3,
        max_failures_per_phone_day: 5,
        ..Limits::default()
    };
    let number = format!("+1555{}", uuid::Uuid::new_v4().simple());
    let from = |network: &str| PhoneKey::of("client-a", &number, Some(network));
    let started = |phone_key| Verification {
        phone: number.clone(),
        phone_key,
        max_wrong_codes: 10,
        ..verification(now)
    };
    let claim_of = |v: &Verification, lease: &str| Claim { limits: limits.clone(), ..claim(v, lease, now) };
    let guess = async |v: &Verification, lease: &str| {
        let outcome = claim_outcome(&store, v, &claim_of(v, lease)).await;
        assert!(matches!(outcome, ClaimOutcome::Claimed(_)), "{outcome:?}");
        store.record_wrong_code(v, &lease_named(lease), false, now).await.unwrap();
    };

    let stranger = started(from("198.51.100.7"));
    store.put_verification(&stranger).await.unwrap();
    for lease in ["s1", "s2", "s3"] {
        guess(&stranger, lease).await;
    }
    let locked = claim_outcome(&store, &stranger, &claim_of(&stranger, "s4")).await;
    assert!(
        matches!(locked, ClaimOutcome::PhoneLocked(RateLimited { limit: Limit::PhoneLocked, .. })),
        "{locked:?}"
    );

    let owner = started(from("203.0.113.9"));
    store.put_verification(&owner).await.unwrap();
    guess(&owner, "o1").await;
    guess(&owner, "o2").await;
    let day_left = DAY_SECS - now % DAY_SECS;
    let capped =
        ClaimOutcome::PhoneLocked(RateLimited { limit: Limit::PhoneDailyFailures, retry_after: day_left });
    assert_eq!(claim_outcome(&store, &owner, &claim_of(&owner, "o3")).await, capped);
    let send = SendReservation {
        phone_key: from("192.0.2.1"),
        number_key: NumberKey::of("client-a", &number),
        counts: vec![],
        limits: limits.clone(),
        now,
    };
    assert_eq!(store.reserve_send(&send).await.unwrap(), limited(Limit::PhoneDailyFailures, day_left));
}

async fn concurrent_sends_stop_at_the_window_limit(store: Store) {
    let now = now_epoch_secs();
    let limits = Limits {
        sends_per_phone_window: 3,
        sends_per_phone_day: 10,
        resend_delays_secs: vec![0],
        starts_per_ip_hour: 4,
        ..Limits::default()
    };
    let (phone, ip) = (new_phone(), new_ip());
    let results = race(20, |_| {
        let (store, wanted) = (Arc::clone(&store), reservation(&phone, Some(&ip), &limits, now));
        async move { store.reserve_send(&wanted).await }
    })
    .await;
    let mut allowed = 0;
    for result in results {
        match result.expect("no reservation may fail") {
            Ok(()) => allowed += 1,
            Err(limited) => assert_eq!(limited.limit, Limit::PhoneWindow),
        }
    }
    assert_eq!(allowed, 3, "exactly the window's limit");
    // The network counted the three sends only.
    assert_eq!(reserve(&store, &new_phone(), Some(&ip), &limits, now).await, Ok(()));
    assert_eq!(
        reserve(&store, &new_phone(), Some(&ip), &limits, now).await.unwrap_err().limit,
        Limit::IpHourly
    );
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
    saving_progress_keeps_the_lease,
    discard_removes_the_verification,
    complete_seals_the_session_and_creates_it,
    a_completed_verification_ends_after_its_wrong_codes,
    sessions_expire_and_can_be_deleted,
    concurrent_claims_grant_one_lease,
    concurrent_wrong_codes_under_one_lease_count_once,
    concurrent_wrong_codes_never_pass_the_limit,
    concurrent_completes_create_one_session,
    sends_are_limited_per_window_and_per_day,
    the_resend_delay_grows_with_each_send_of_the_day,
    starts_are_limited_per_source_network_and_hour,
    a_refused_send_counts_nothing,
    sends_are_capped_per_client_country_and_range,
    a_paused_country_refuses_sends_until_the_pause_ends,
    the_number_waits_the_first_delay_across_networks,
    a_new_start_replaces_the_older_verification,
    wrong_codes_across_verifications_lock_the_phone,
    a_verified_number_starts_counting_failures_again,
    concurrent_sends_stop_at_the_window_limit,
    concurrent_sends_of_one_client_all_go_out,
    wrong_codes_lock_a_network_and_are_capped_per_number_and_day,
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
        dynamo.save_progress(&v.key, &lease_named("lease"), &issued, LeaseAfter::Released).await.unwrap();
        claimed(&dynamo, &v, "lease-2", now).await;

        let item = raw_get(&store, format!("v#{}", v.key.as_str())).await.expect("verification item");
        assert_eq!(attr_n(&item, "expires_at"), Some(v.expires_at.to_string()));
        assert_eq!(attr_s(&item, "stage").as_deref(), Some("token_issued"));
        assert_eq!(attr_s(&item, "sealed_access_token").as_deref(), Some("sealed"));
        assert_eq!(attr_s(&item, "lease_id").as_deref(), Some(lease_named("lease-2").as_str()));
        assert_eq!(attr_n(&item, "lease_until"), Some((now + LEASE_SECS).to_string()));
        assert_eq!(attr_n(&item, "wrong_codes").as_deref(), Some("0"));
        assert_eq!(attr_s(&item, "client_id"), Some(v.client_id.clone()));
        assert_eq!(attr_s(&item, "phone_key").as_deref(), Some(v.phone_key.as_str()));
        assert_eq!(attr_s(&item, "region"), Some(v.region.clone()));
        assert_eq!(item.get("test").and_then(|t| t.as_bool().ok()), Some(&false));
        assert!(attr_s(&item, "rev").is_some_and(|rev| rev.len() >= 16), "a revision token");
        let phone = raw_get(&store, format!("p#{}", v.phone_key.as_str())).await.expect("phone item");
        assert_eq!(attr_s(&phone, "current").as_deref(), Some(v.key.as_str()));
        assert_eq!(attr_n(&phone, "expires_at"), Some((now + DAY_SECS).to_string()), "a day after its use");

        let s = session(now);
        dynamo.complete_verification(&v, &lease_named("lease-2"), &s, "sealed-session").await.unwrap();
        let item =
            raw_get(&store, format!("v#{}", v.key.as_str())).await.expect("the completed verification");
        assert_eq!(attr_s(&item, "stage").as_deref(), Some("completed"));
        assert_eq!(attr_s(&item, "sealed_session").as_deref(), Some("sealed-session"));
        assert_eq!(
            attr_n(&item, "expires_at"),
            Some(v.expires_at.to_string()),
            "it expires as it would have"
        );
        for gone in ["sealed_access_token", "lease_id", "lease_until"] {
            assert!(!item.contains_key(gone), "{gone} is left on a completed verification");
        }
        let item = raw_get(&store, format!("s#{}", s.key.as_str())).await.expect("session item");
        assert_eq!(attr_n(&item, "expires_at"), Some(s.expires_at.to_string()));
        assert_eq!(attr_n(&item, "verified_at"), Some(s.verified_at.to_string()));
        let userinfo: serde_json::Value = serde_json::from_str(&attr_s(&item, "userinfo").unwrap()).unwrap();
        assert_eq!(userinfo, serde_json::Value::Object(s.userinfo.clone()));
    }

    /// The phone record and the counters, as the module docs describe them.
    #[tokio::test]
    async fn limit_items_follow_the_documented_layout() {
        let store = dynamo_on_fresh_table().await;
        let dynamo: Store = Arc::new(store.clone());
        let limits = Limits::default();
        let now = T0 + 1234;
        let number_e164 = "+447400123456";
        let number = PhoneNumber::parse(number_e164).unwrap();
        let wanted = SendReservation::new("client-a", &number, Some("203.0.113.7"), &limits, now);
        assert_eq!(dynamo.reserve_send(&wanted).await.unwrap(), Ok(()));
        let phone = wanted.phone_key.clone();
        let (hour, day) = (now / HOUR_SECS, now / DAY_SECS);
        let (client_shard, _) = shard(limits.sends_per_client_day, wanted.number_key.spread());
        let (country_shard, _) = shard(limits.sends_per_country_hour, wanted.number_key.spread());
        let counts = [
            (CounterKey::client("client-a", client_shard), day, DAY_SECS),
            (CounterKey::country("client-a", "GB", country_shard), hour, HOUR_SECS),
            (CounterKey::range("client-a", "+447400123"), hour, HOUR_SECS),
            (CounterKey::ip("client-a", "203.0.113.7"), hour, HOUR_SECS),
        ];
        for (key, window, secs) in counts {
            let item = raw_get(&store, format!("{}#{window}", key.as_str())).await.expect("a window count");
            assert_eq!(attr_n(&item, "n").as_deref(), Some("1"), "{key:?}");
            assert_eq!(attr_n(&item, "expires_at"), Some(((window + 1) * secs + HOUR_SECS).to_string()));
        }
        let window = now / 600;
        let item =
            raw_get(&store, format!("p#{}#w600#{window}", phone.as_str())).await.expect("window counter");
        assert_eq!(attr_n(&item, "n").as_deref(), Some("1"));
        assert_eq!(attr_n(&item, "expires_at"), Some(((window + 1) * 600 + HOUR_SECS).to_string()));
        let day = now / DAY_SECS;
        let item = raw_get(&store, format!("p#{}#d#{day}", phone.as_str())).await.expect("day counter");
        assert_eq!(attr_n(&item, "n").as_deref(), Some("1"));
        assert_eq!(attr_n(&item, "last_sent_at"), Some(now.to_string()));
        assert_eq!(attr_n(&item, "expires_at"), Some(((day + 1) * DAY_SECS + HOUR_SECS).to_string()));
        let number = format!("n#{}#d#{day}", wanted.number_key.as_str());
        let item = raw_get(&store, number.clone()).await.expect("the number's day");
        assert_eq!(attr_n(&item, "n").as_deref(), Some("1"));
        assert_eq!(attr_n(&item, "expires_at"), Some(((day + 1) * DAY_SECS + HOUR_SECS).to_string()));
        assert!(
            raw_get(&store, format!("p#{}", phone.as_str())).await.is_none(),
            "a send writes no phone record"
        );

        let now = now_epoch_secs();
        let v = Verification { phone_key: phone.clone(), phone: number_e164.into(), ..verification(now) };
        dynamo.put_verification(&v).await.unwrap();
        claimed(&dynamo, &v, "lease", now).await;
        assert_eq!(dynamo.record_wrong_code(&v, &lease_named("lease"), false, now).await.unwrap(), 4);
        let today = format!("n#{}#d#{}", wanted.number_key.as_str(), now / DAY_SECS);
        let item = raw_get(&store, today).await.expect("the number's day");
        assert_eq!(attr_n(&item, "failures").as_deref(), Some("1"), "a wrong code counts for the number");
        let item = raw_get(&store, format!("p#{}", phone.as_str())).await.expect("phone record");
        assert_eq!(attr_s(&item, "current").as_deref(), Some(v.key.as_str()));
        assert_eq!(attr_n(&item, "failures").as_deref(), Some("1"));
        assert_eq!(attr_n(&item, "failures_reset_at"), Some((now + DAY_SECS).to_string()));
        assert_eq!(attr_n(&item, "expires_at"), Some((now + DAY_SECS).to_string()));
        // An earlier clock never shortens the record's life.
        let early = Verification { key: new_key(), created_at: now - 500, ..v.clone() };
        dynamo.put_verification(&early).await.unwrap();
        let item = raw_get(&store, format!("p#{}", phone.as_str())).await.expect("phone record");
        assert_eq!(attr_s(&item, "current").as_deref(), Some(early.key.as_str()));
        assert_eq!(attr_n(&item, "expires_at"), Some((now + DAY_SECS).to_string()));
        claimed(&dynamo, &early, "lease", now).await;
        dynamo
            .complete_verification(&early, &lease_named("lease"), &session(now), "sealed-session")
            .await
            .unwrap();
        let item = raw_get(&store, format!("p#{}", phone.as_str())).await.expect("phone record");
        assert_eq!(attr_n(&item, "failures").as_deref(), Some("0"));
        assert_eq!(attr_n(&item, "expires_at"), Some((now + DAY_SECS).to_string()));
    }

    /// The call counts the README promises: `/sms/auth` is `reserve_send` + `put_verification`
    /// (2), `/sms/token` a claim and then `complete_verification` (3) or `record_wrong_code` (3).
    #[tokio::test]
    async fn dynamodb_calls_per_operation() {
        let calls = Calls::default();
        let sdk = shared::aws::sdk_config_from_env().expect("the SDK config from the environment");
        let config = shared::aws::dynamodb_config(&sdk).interceptor(calls.clone()).build();
        let table = format!("store-suite-{}", uuid::Uuid::new_v4().simple());
        let dynamo = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table);
        require_dynamodb_local();
        dynamo.create_table_if_missing().await.unwrap();
        let store: Store = Arc::new(dynamo);
        let now = now_epoch_secs();
        let limits = Limits::default();
        let v = verification(now);
        let counted = |before: usize| calls.count() - before;

        let before = calls.count();
        assert_eq!(reserve(&store, &v.phone_key, Some(&new_ip()), &limits, now).await, Ok(()));
        store.put_verification(&v).await.unwrap();
        assert_eq!(counted(before), 2, "/sms/auth");

        let before = calls.count();
        claimed(&store, &v, "a", now).await;
        store.record_wrong_code(&v, &lease_named("a"), false, now).await.unwrap();
        assert_eq!(counted(before), 3, "/sms/token with a wrong code");

        let before = calls.count();
        let got = claimed(&store, &v, "b", now).await;
        store.complete_verification(&got, &lease_named("b"), &session(now), "sealed-session").await.unwrap();
        assert_eq!(counted(before), 3, "/sms/token verified");

        // Refusals are answered from the failed write itself.
        let before = calls.count();
        let refused = Limits { sends_per_phone_window: 1, ..Limits::default() };
        assert_eq!(
            reserve(&store, &v.phone_key, None, &refused, now).await.unwrap_err().limit,
            Limit::PhoneWindow
        );
        assert_eq!(counted(before), 1, "a refused send");
    }

    /// Counts every DynamoDB request the SDK sends.
    #[derive(Clone, Debug, Default)]
    struct Calls(Arc<std::sync::atomic::AtomicUsize>);

    impl Calls {
        fn count(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl aws_sdk_dynamodb::config::Intercept for Calls {
        fn name(&self) -> &'static str {
            "Calls"
        }

        fn read_before_transmit(
            &self,
            _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
            _components: &aws_sdk_dynamodb::config::RuntimeComponents,
            _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
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
                format!("v#{}", v.key.as_str()),
                vec![
                    ("expires_at", AttributeValue::N((now + 60).to_string())),
                    ("stage", AttributeValue::S("no-such-stage".into())),
                ],
            ),
            (
                format!("s#{}", session_key("corrupt").as_str()),
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
        require_dynamodb_local();
        let store: Store = Arc::new(DynamoStore::new(
            DynamoStore::client_from_env().expect("the SDK config from the environment"),
            "store-suite-no-such-table",
        ));
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

    /// Needs no DynamoDB Local: the endpoint is a loopback port nothing listens on.
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
            .http_client(shared::tls::sdk_http_client().unwrap())
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
            ("record_wrong_code", store.record_wrong_code(&v, &lease_named("l"), false, now).await.map(drop)),
            (
                "record_wrong_code(ends)",
                store.record_wrong_code(&v, &lease_named("l"), true, now).await.map(drop),
            ),
            (
                "save_progress",
                store
                    .save_progress(&v.key, &lease_named("l"), &Progress::CodeAccepted, LeaseAfter::Released)
                    .await,
            ),
            ("discard_verification", store.discard_verification(&v.key, &lease_named("l")).await),
            (
                "complete_verification",
                store.complete_verification(&v, &lease_named("l"), &s, "sealed-session").await,
            ),
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

    /// What each store call consumed reaches the request's figures as DynamoDB reports it: reads
    /// for the consistent GetItems, writes for the rest (transactions included), nothing for an
    /// unmeasured call.
    #[tokio::test]
    async fn each_call_charges_the_capacity_dynamodb_reports() {
        use shared::timings::measure;
        let store = dynamo_store().await;
        let now = now_epoch_secs();
        let v = verification(now);
        let ((), put) = measure(async { store.put_verification(&v).await.unwrap() }).await;
        assert_eq!(put.store_read_units, 0.0, "{put:?}");
        // A two-item transaction: at least one unit for each of its items.
        assert!(put.store_write_units >= 2.0, "{put:?}");
        let (_, claim) = measure(async { claimed(&store, &v, "l", now).await }).await;
        assert!(claim.store_read_units >= 1.0 && claim.store_write_units >= 2.0, "{claim:?}");
        let s = session(now);
        let ((), completed) = measure(async {
            store.complete_verification(&v, &lease_named("l"), &s, "sealed-session").await.unwrap()
        })
        .await;
        assert!(completed.store_write_units >= 3.0 && completed.store_read_units == 0.0, "{completed:?}");
        let (_, read) = measure(async { store.get_session(&s.key, now).await.unwrap() }).await;
        assert_eq!(read.store_write_units, 0.0, "{read:?}");
        assert!(read.store_read_units > 0.0, "{read:?}");
        let ((), ended) = measure(async { store.delete_session(&s.key).await.unwrap() }).await;
        assert!(ended.store_write_units >= 1.0, "{ended:?}");
    }
}
