//! The limits against SMS pumping and code guessing, and request hygiene, through `local-api`
//! over HTTP on both stores; then the same limits hit from several `local-api` processes sharing
//! one DynamoDB table.

#[macro_use]
mod common;

use std::time::Duration;

use common::{
    CLIENT, DynamoCalls, Instance, PHONE, Reply, StoreKind, System, dynamo_client, post_parallel,
    sandbox_config, service_config, wrong,
};
use sandbox_auth::Sandbox;
use serde_json::{Value, json};
use shared::store::DynamoStore;

for_each_store!(
    one_number_written_two_ways_counts_once,
    sends_per_phone_window_and_day,
    resend_delay_grows,
    starts_per_source_ip,
    client_country_and_range_caps,
    the_fraud_guard_pauses_a_country_that_stops_converting,
    consecutive_wrong_codes_lock_the_phone,
    a_stranger_cannot_lock_the_owner_out,
    wrong_codes_per_phone_are_capped_per_day_across_networks,
    a_verified_number_starts_counting_again,
    a_new_start_replaces_the_old_verification,
    country_allow_list,
    number_types_an_sms_pumper_picks_are_refused,
    number_types_and_global_numbers_per_client,
    test_numbers_verify_without_upstream,
    request_hygiene,
);

/// A system whose client has these `limits` (the rest of the test defaults stay).
async fn with_limits(store: StoreKind, limits: Value) -> System {
    System::start_with(store, sandbox_config(), move |config| {
        for (key, value) in limits.as_object().expect("limits object") {
            config["limits"][key] = value.clone();
        }
    })
    .await
}

async fn start(system: &System, phone: &str) -> Reply {
    system.post("/sms/auth", json!({ "client_id": CLIENT, "login_hint": phone })).await
}

/// A 429 `rate_limited` naming `limit`, with the retry time in the header and the body.
fn assert_limited(reply: &Reply, limit: &str) -> u64 {
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (429, "rate_limited"), "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["data"]["limit"], limit, "{body}");
    let retry_after = body["retry_after"].as_u64().expect("retry_after in the body");
    assert!(retry_after >= 1);
    assert_eq!(reply.headers["retry-after"].to_str().unwrap(), retry_after.to_string());
    retry_after
}

async fn one_number_written_two_ways_counts_once(store: StoreKind) {
    let system = with_limits(store, json!({ "sends_per_phone_window": 1 })).await;
    assert_eq!(start(&system, "+44 7400 123456").await.status, 200);
    assert_limited(&start(&system, "+447400123456").await, "phone_window_sends");
    assert_limited(&start(&system, "+44-7400-123-456").await, "phone_window_sends");
    assert_eq!(system.sandbox.stats().requests.auth, 1, "no upstream call when a limit says no");
    assert_eq!(system.sandbox.messages_to(PHONE)[0].to, PHONE, "the SMS went to the E.164 form");
}

async fn sends_per_phone_window_and_day(store: StoreKind) {
    let system = with_limits(store, json!({ "sends_per_phone_window": 3, "sends_per_phone_day": 5 })).await;
    for _ in 0..3 {
        assert_eq!(start(&system, PHONE).await.status, 200);
    }
    let retry_after = assert_limited(&start(&system, PHONE).await, "phone_window_sends");
    assert!(retry_after <= 600);
    assert_eq!(system.sandbox.stats().requests.auth, 3);
    assert_eq!(start(&system, "+447400123457").await.status, 200, "another number is not limited");

    let system = with_limits(store, json!({ "sends_per_phone_window": 2, "sends_per_phone_day": 2 })).await;
    assert_eq!(start(&system, PHONE).await.status, 200);
    assert_eq!(start(&system, PHONE).await.status, 200);
    let retry_after = assert_limited(&start(&system, PHONE).await, "phone_daily_sends");
    assert!(retry_after <= 86_400);
}

async fn resend_delay_grows(store: StoreKind) {
    let system = with_limits(store, json!({ "resend_delays_secs": [2, 3600] })).await;
    assert_eq!(start(&system, PHONE).await.status, 200);
    let first = assert_limited(&start(&system, PHONE).await, "resend_delay");
    assert!(first <= 2, "the first resend waits 2 s: {first}");
    system.clock.advance(Duration::from_secs(2));
    assert_eq!(start(&system, PHONE).await.status, 200, "after the delay a resend goes out");
    let second = assert_limited(&start(&system, PHONE).await, "resend_delay");
    assert!(second > 3000, "the next delay is longer: {second}");
}

async fn starts_per_source_ip(store: StoreKind) {
    let system = with_limits(store, json!({ "starts_per_ip_hour": 2 })).await;
    assert_eq!(start(&system, "+447400123401").await.status, 200);
    assert_eq!(start(&system, "+447400123402").await.status, 200);
    let retry_after = assert_limited(&start(&system, "+447400123403").await, "ip_hourly_starts");
    assert!(retry_after <= 3600);
    assert_eq!(system.sandbox.stats().requests.auth, 2);
}

/// The caps against pumping: the numbers the SMS really went to are the ones below each cap.
async fn client_country_and_range_caps(store: StoreKind) {
    let system = with_limits(store, json!({ "sends_per_client_day": 3 })).await;
    let numbers = ["+447400123456", "+4915123456789", "+33612345678"];
    for number in numbers {
        assert_eq!(start(&system, number).await.status, 200, "{number}");
    }
    let retry_after = assert_limited(&start(&system, "+447400654321").await, "client_daily_sends");
    assert!(retry_after <= 86_400);
    let sent: usize = numbers.iter().map(|n| system.sandbox.messages_to(n).len()).sum();
    assert_eq!((sent, system.sandbox.stats().requests.auth), (3, 3), "three SMS and no fourth");

    let system = with_limits(store, json!({ "sends_per_country_hour": 2 })).await;
    assert_eq!(start(&system, "+447400111111").await.status, 200);
    assert_eq!(start(&system, "+447400222222").await.status, 200);
    assert!(assert_limited(&start(&system, "+447400333333").await, "country_hourly_sends") <= 3600);
    assert!(system.sandbox.messages_to("+447400333333").is_empty());
    assert_eq!(start(&system, "+4915123456789").await.status, 200, "another country");
    assert_eq!(system.sandbox.messages_to("+4915123456789").len(), 1);

    // A bot walking through one range: the range's tenth send is its last this hour.
    let system = with_limits(store, json!({ "sends_per_range_hour": 10 })).await;
    for last in 0..10 {
        assert_eq!(start(&system, &format!("+447400123{last:03}")).await.status, 200);
    }
    assert_limited(&start(&system, "+447400123999").await, "range_hourly_sends");
    assert!(system.sandbox.messages_to("+447400123999").is_empty());
    assert_eq!(start(&system, "+447400124000").await.status, 200, "the next range");
    assert_eq!(system.sandbox.stats().requests.auth, 11);
}

/// Pumped codes are never entered: once a country's SMS stop turning into verifications, its
/// sends pause by themselves until the pause ends. Test numbers neither count nor get paused.
async fn the_fraud_guard_pauses_a_country_that_stops_converting(store: StoreKind) {
    const TEST: &str = "+447400999999";
    let system = System::start_with(store, sandbox_config(), |config| {
        config["fraud_guard"] = json!({ "min_sends": 4, "min_conversion": 0.5, "pause_secs": 600 });
        config["test_numbers_enabled"] = json!(true);
        config["clients"][0]["test_numbers"] = json!([{ "phone": TEST, "code": "123456" }]);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(start(&system, TEST).await.status, 200, "a test number: no SMS, not counted");
    }
    for verified in ["+447400111111", "+447400222222"] {
        let started = system.start_verification(verified).await;
        assert_eq!(system.token(&started, &system.code_for(verified)).await.status, 200);
    }
    // 4 sent and 2 verified is 50%, not below: the country stays open. (Had the test number's
    // three starts counted, 2 of 7 would have paused it here.)
    for unverified in ["+447400333333", "+447400444444"] {
        assert_eq!(start(&system, unverified).await.status, 200, "{unverified}");
    }
    // The fifth SMS leaves, and 2 of 5 (40%) pauses the country.
    assert_eq!(start(&system, "+447400555555").await.status, 200);
    let retry_after = assert_limited(&start(&system, "+447400666666").await, "country_paused");
    assert_eq!(retry_after, 600, "until the pause ends");
    assert!(system.sandbox.messages_to("+447400666666").is_empty(), "no SMS while paused");
    assert_limited(&start(&system, "+447400111111").await, "country_paused");
    assert_eq!(start(&system, "+4915123456789").await.status, 200, "another country is not paused");
    assert_eq!(start(&system, TEST).await.status, 200, "test numbers are not paused");
    assert_eq!(system.sandbox.stats().requests.auth, 6, "five GB SMS and one German");

    system.clock.advance(Duration::from_secs(600));
    assert_eq!(start(&system, "+447400666666").await.status, 200, "the pause is over");
    assert_eq!(system.sandbox.messages_to("+447400666666").len(), 1);
}

async fn consecutive_wrong_codes_lock_the_phone(store: StoreKind) {
    let system = with_limits(store, json!({ "max_wrong_codes": 2, "max_failures_per_phone": 3 })).await;
    let first = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&first, &wrong(&code)).await.status, 400);
    assert_eq!(system.token(&first, &wrong(&code)).await.status, 429, "this verification is used up");
    // A new code does not reset the phone's count.
    let second = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&second, &wrong(&code)).await.json()["data"]["attempts_left"], 1);
    assert_limited(&system.token(&second, &code).await, "phone_failures");
    assert_limited(&start(&system, PHONE).await, "phone_failures");
    assert_eq!(start(&system, "+447400123457").await.status, 200, "only that phone is locked");
}

/// A stranger who knows the number guesses from one network until it is locked; its owner, on
/// another network, still gets an SMS and verifies.
async fn a_stranger_cannot_lock_the_owner_out(store: StoreKind) {
    let mut system = System::start(store).await;
    system.connect_from("127.0.0.1");
    let mut wrong_codes = 0;
    while wrong_codes < 20 {
        let guessed = system.start_verification(PHONE).await;
        let code = system.code_for(PHONE);
        for _ in 0..5 {
            let reply = system.token(&guessed, &wrong(&code)).await;
            assert!(matches!(reply.status.as_u16(), 400 | 429), "{}", reply.text);
            wrong_codes += 1;
        }
    }
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 4, "20 wrong codes took 4 SMS");
    assert_limited(&start(&system, PHONE).await, "phone_failures");
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 4, "the stranger's network is locked");

    system.connect_from("127.0.0.2");
    let owner = system.start_verification(PHONE).await;
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 5, "the owner's SMS went out");
    let reply = system.token(&owner, &system.code_for(PHONE)).await;
    assert_eq!(reply.status, 200, "the owner verifies: {}", reply.text);
}

/// However many networks guess, a number takes at most `max_failures_per_phone_day` wrong codes
/// a day; then nobody gets a code for it until the next UTC day.
async fn wrong_codes_per_phone_are_capped_per_day_across_networks(store: StoreKind) {
    let limits =
        json!({ "max_wrong_codes": 2, "max_failures_per_phone": 4, "max_failures_per_phone_day": 6 });
    let mut system = with_limits(store, limits).await;
    // Four wrong codes lock the first network; two more from the second use up the day.
    for (network, verifications) in [("127.0.0.1", 2), ("127.0.0.2", 1)] {
        system.connect_from(network);
        for _ in 0..verifications {
            let guessed = system.start_verification(PHONE).await;
            let code = system.code_for(PHONE);
            assert_eq!(system.token(&guessed, &wrong(&code)).await.status, 400);
            assert_eq!(system.token(&guessed, &wrong(&code)).await.status, 429);
        }
    }
    let sent = system.sandbox.messages_to(PHONE).len();
    assert_eq!(sent, 3);
    for network in ["127.0.0.2", "127.0.0.3"] {
        system.connect_from(network);
        let retry_after = assert_limited(&start(&system, PHONE).await, "phone_daily_failures");
        assert!(retry_after <= 86_400);
    }
    assert_eq!(system.sandbox.messages_to(PHONE).len(), sent, "no SMS after the cap");
    assert_eq!(start(&system, "+447400123457").await.status, 200, "another number is not capped");
}

async fn a_verified_number_starts_counting_again(store: StoreKind) {
    let system = with_limits(store, json!({ "max_wrong_codes": 2, "max_failures_per_phone": 2 })).await;
    let first = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&first, &wrong(&code)).await.status, 400);
    assert_eq!(system.token(&first, &code).await.status, 200);
    let second = system.start_verification(PHONE).await;
    let code = system.code_for(PHONE);
    assert_eq!(system.token(&second, &wrong(&code)).await.status, 400, "the count was reset");
    assert_eq!(system.token(&second, &code).await.status, 200);
}

async fn a_new_start_replaces_the_old_verification(store: StoreKind) {
    let system = System::start(store).await;
    let old = system.start_verification(PHONE).await;
    let old_code = system.code_for(PHONE);
    let new = system.start_verification(PHONE).await;
    let reply = system.token(&old, &old_code).await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (404, "verification_not_found"));
    assert_eq!(system.token(&new, &system.code_for(PHONE)).await.status, 200);
}

async fn country_allow_list(store: StoreKind) {
    let system = System::start_with(store, sandbox_config(), |config| {
        config["clients"][0]["allowed_countries"] = json!(["DE", "FR"]);
    })
    .await;
    let reply = start(&system, PHONE).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error().as_str()),
        (403, "country_not_allowed"),
        "{}",
        reply.text
    );
    assert_eq!(start(&system, "+4915123456789").await.status, 200, "a German mobile number");
    assert_eq!(system.sandbox.stats().requests.auth, 1);
}

/// The numbers SMS pumping uses get a 403 naming their type before anything is counted or sent;
/// a mobile still gets its SMS.
async fn number_types_an_sms_pumper_picks_are_refused(store: StoreKind) {
    let system = System::start(store).await;
    for (number, number_type) in [
        ("+979123456789", "premium_rate"),
        ("+449098790000", "premium_rate"),
        ("+881612345678", "mobile"),
        ("+870773111632", "mobile"),
        ("+18002345678", "toll_free"),
        ("+442079460000", "fixed_line"),
    ] {
        let reply = start(&system, number).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error().as_str()),
            (403, "number_not_allowed"),
            "{number}: {}",
            reply.text
        );
        assert_eq!(reply.json()["data"]["number_type"], number_type, "{number}");
        assert!(system.sandbox.messages_to(number).is_empty(), "{number}: no SMS");
    }
    assert_eq!(system.sandbox.stats().requests.auth, 0, "the upstream was never asked");
    // Nothing was counted against the phone: a refused number leaves every limit as it was.
    assert_eq!(start(&system, PHONE).await.status, 200);
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 1);
    assert_eq!(start(&system, "+12025550123").await.status, 200, "a US number: fixed line or mobile");
}

async fn number_types_and_global_numbers_per_client(store: StoreKind) {
    let system = System::start_with(store, sandbox_config(), |config| {
        config["clients"][0]["number_types"] = json!(["mobile", "fixed_line"]);
        config["clients"][0]["allow_global_numbers"] = json!(true);
    })
    .await;
    for number in ["+442079460000", "+881612345678", PHONE] {
        assert_eq!(start(&system, number).await.status, 200, "{number}");
        assert_eq!(system.sandbox.messages_to(number).len(), 1, "{number}: one SMS");
    }
    let reply = start(&system, "+979123456789").await;
    assert_eq!(
        (reply.status.as_u16(), reply.json()["data"]["number_type"].clone()),
        (403, json!("premium_rate"))
    );
    let reply = start(&system, "+12025550123").await;
    assert_eq!(reply.json()["data"]["number_type"], "fixed_line_or_mobile", "not listed: {}", reply.text);
}

async fn test_numbers_verify_without_upstream(store: StoreKind) {
    let test_phone = "+447400123999";
    let system = System::start_with(store, sandbox_config(), |config| {
        config["test_numbers_enabled"] = json!(true);
        config["clients"][0]["test_numbers"] = json!([{ "phone": "+44 7400 123999", "code": "246810" }]);
    })
    .await;
    let started = system.start_verification(test_phone).await;
    assert!(system.sandbox.messages_to(test_phone).is_empty(), "no SMS");
    let reply = system.token(&started, "135790").await;
    assert_eq!((reply.status.as_u16(), reply.error().as_str()), (400, "invalid_code"));
    let reply = system.token(&started, "246810").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!((body["test"].clone(), body["phone_number"].clone()), (json!(true), json!(test_phone)));
    assert_eq!(body["phone_number_verified"], true);
    assert!(body["session"].is_string());
    let stats = system.sandbox.stats().requests;
    assert_eq!(
        (stats.auth, stats.callback, stats.token, stats.userinfo),
        (0, 0, 0, 0),
        "the upstream saw nothing"
    );
}

async fn request_hygiene(store: StoreKind) {
    let system = System::start(store).await;
    let body = json!({ "client_id": CLIENT, "login_hint": PHONE }).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let reply = system.post_raw("/sms/auth", content_type, body.clone()).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error().as_str()),
            (415, "unsupported_media_type"),
            "{content_type:?}"
        );
    }
    let reply = system.post_raw("/sms/auth", "application/json; charset=utf-8", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let cases = [
        (json!({ "client_id": "app\r\nforged log line", "login_hint": PHONE }), "field `client_id`"),
        (json!({ "client_id": "x".repeat(200), "login_hint": PHONE }), "field `client_id`"),
        (json!({ "client_id": CLIENT, "login_hint": PHONE, "scope": "openid\u{7}" }), "field `scope`"),
        (json!({ "client_id": CLIENT, "login_hint": PHONE, "server_id": "" }), "field `server_id`"),
        (json!({ "client_id": CLIENT, "login_hint": "+447400123456\n" }), "field `login_hint`"),
    ];
    for (body, expected) in cases {
        let reply = system.post("/sms/auth", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(reply.json()["message"].as_str().unwrap().contains(expected), "{body}: {}", reply.text);
    }
    let started = system.start_verification(PHONE).await;
    let long_nonce = common::Started { nonce: "n".repeat(100), ..started.clone() };
    let reply = system.token(&long_nonce, "123456").await;
    assert!(reply.json()["message"].as_str().unwrap().contains("field `nonce`"), "{}", reply.text);
    assert_eq!(system.sandbox.messages_to(PHONE).len(), 2, "only the two valid starts sent an SMS");
}

/// One limit, three processes, one table: the count holds across Lambda instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_across_processes_sharing_one_table() {
    let sandbox = Sandbox::start(sandbox_config(), ([127, 0, 0, 1], 0).into()).await.unwrap();
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    DynamoStore::new(dynamo_client(&DynamoCalls::default()).await, &table)
        .create_table_if_missing()
        .await
        .expect("table on DynamoDB Local");
    let mut config = service_config(&sandbox.url());
    config["limits"] = json!({
        "sends_per_phone_window": 3, "sends_per_phone_day": 100, "resend_delays_secs": [0], "starts_per_ip_hour": 8
    });
    let config_path = std::env::temp_dir().join(format!("{table}.json"));
    std::fs::write(&config_path, config.to_string()).unwrap();
    let config = config_path.to_str().unwrap();
    let instances: Vec<Instance> =
        (0..3).map(|_| Instance::spawn(&["--config", config], &[("TABLE_NAME", &table)])).collect();
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();

    // 12 starts for one number at once, over three processes: exactly 3 SMS.
    let replies =
        post_parallel(&bases, "/sms/auth", json!({ "client_id": CLIENT, "login_hint": PHONE }), 12).await;
    let sent = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(sent, 3, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    for reply in replies.iter().filter(|r| r.status != 200) {
        // Each request judges with the second it started in. When a send in another process
        // was stamped with the next second, this request's clock puts that SMS 1 s in the future,
        // and the resend rule (delay 0) refuses for that 1 s before the window's count is seen.
        let limit = reply.json()["data"]["limit"].clone();
        if limit == "resend_delay" {
            assert_eq!(assert_limited(reply, "resend_delay"), 1, "{}", reply.text);
        } else {
            assert_limited(reply, "phone_window_sends");
        }
    }
    assert_eq!(sandbox.stats().requests.auth, 3);

    // All from 127.0.0.1: 8 starts an hour, whatever the number, whichever the process.
    let phones: Vec<String> = (10..22).map(|i| format!("+4474001234{i}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, phone) in phones.into_iter().enumerate() {
        let base = bases[i % bases.len()].clone();
        tasks.spawn(async move {
            post_parallel(&[base], "/sms/auth", json!({ "client_id": CLIENT, "login_hint": phone }), 1)
                .await
                .remove(0)
        });
    }
    let replies = tasks.join_all().await;
    let allowed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(allowed, 8 - 3, "the first three starts of this address already counted");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_limited(reply, "ip_hourly_starts");
    }
    let _ = std::fs::remove_file(config_path);
}
