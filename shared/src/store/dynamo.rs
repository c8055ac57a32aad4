//! The DynamoDB store: one table, string partition key `pk`, TTL on `expires_at` (epoch seconds).
//!
//! Items; `{…}` are the hex digests the caller passes, never a credential or a phone number:
//!
//! | item `pk`                        | holds                                   | `expires_at`          |
//! |----------------------------------|-----------------------------------------|-----------------------|
//! | `v#{key}`                        | a verification                          | the verification's    |
//! | `s#{key}`                        | a session                               | the session's         |
//! | `p#{phone_key}`                  | a phone: current verification, failures | ≥ 1 day after its use |
//! | `p#{phone_key}#w{secs}#{window}` | sends to the phone in one window        | window's end + 1 h    |
//! | `p#{phone_key}#d#{day}`          | sends to the phone in one UTC day       | day's end + 1 h       |
//! | `i#{ip_key}#{hour}`              | starts from a source network in an hour | hour's end + 1 h      |
//!
//! Window, day and hour numbers are [`window_index`] (epoch seconds / length): a new window is a
//! new item, so counts restart without a read, and the old item is never read again and expires.
//!
//! | method                  | calls (`TWI`: TransactWriteItems)                       | conditions         |
//! |-------------------------|---------------------------------------------------------|--------------------|
//! | `reserve_send`          | TWI: Update `i#` ADD n¹, ConditionCheck `p#`, Update    | ip; unlocked;      |
//! |                         | `p#…#w` ADD n, Update `p#…#d` ADD n SET last_sent_at    | window; day        |
//! | `put_verification`      | TWI: Put `v#`, Update `p#` SET current                  | none²              |
//! | `claim_verification`    | GetItem `v#` (consistent), then TWI: ConditionCheck     | current, unlocked; |
//! |                         | `p#`, Update `v#` SET lease                             | rev                |
//! | `record_wrong_code`     | TWI: Update `v#` SET wrong_codes REMOVE lease, Update   | lease, counted;    |
//! |                         | `p#` SET failures                                       | live³              |
//! | `release_verification`  | UpdateItem `v#` SET stage REMOVE lease                  | lease              |
//! | `discard_verification`  | DeleteItem `v#`                                         | lease              |
//! | `complete_verification` | TWI: Delete `v#`, Put `s#`, Update `p#` failures = 0    | lease; new `s#`    |
//! | `get_session`           | GetItem `s#` (consistent)                               | none               |
//! | `delete_session`        | DeleteItem `s#`                                         | none               |
//!
//! So `/sms/auth` makes 2 calls (`reserve_send`, `put_verification`) and `/sms/token` 3 (the claim's
//! 2, then `complete_verification` or `record_wrong_code`). A failed condition returns the item as
//! it stood (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), and the store's judges
//! ([`judge_reservation`], [`judge_claim`]) decide from those items what to answer, so both stores
//! answer alike; an item whose condition held counts as within every limit.
//!
//! - ip: `attribute_not_exists(n) OR n < :max` (`starts_per_ip_hour`). ¹ Only with a source network.
//! - unlocked: `attribute_not_exists(failures) OR attribute_not_exists(failures_reset_at) OR
//!   failures < :max_failures OR failures_reset_at <= :now`.
//! - window: `attribute_not_exists(n) OR n < :max` (`sends_per_phone_window`).
//! - day: `attribute_not_exists(n) OR (n < :max AND (attribute_not_exists(last_sent_at) OR
//!   n = :zero OR (n BETWEEN :f0 AND :l0 AND last_sent_at <= :t0) OR …))`: below
//!   `sends_per_phone_day`, and the resend delay after the n-th send of the day has passed, one
//!   tier per run of sends with the same delay, `:tᵢ = now - delay` computed here (the last tier
//!   reaches the daily limit: the last delay repeats). [`judge_send`](crate::limits::judge_send)
//!   in DynamoDB's words.
//! - ² `put_verification` extends the phone's `expires_at` to a day after `created_at` only under
//!   `attribute_not_exists(expires_at) OR expires_at <= :new` (an expiry is never shortened); when
//!   that fails it writes again without extending (2 calls, only when clocks disagree).
//! - current: `#current = :key` (`current` is a reserved word): a newer start for the phone
//!   replaced `current`, so an older verification is not found.
//! - rev: `rev = :rev`, the random token the GetItem read; every write of `v#` sets a new one, so
//!   the record a claim returns is exactly the one it read and judged. When the race is lost the
//!   returned item is judged; one still claimable is read and claimed again (4 tries, then busy).
//!   Items still busy with other transactions after the retries below answer busy too.
//! - lease: `lease_id = :lease`, the caller's; a failure is [`StoreError::LeaseLost`]. New `s#`:
//!   `attribute_not_exists(pk)`.
//! - counted: one more wrong code is `wrong_codes = :seen + 1` under `wrong_codes = :seen AND
//!   max_wrong_codes = :max`, the claimed record's values, so the attempts left are known without a
//!   read; should they differ under our lease, it is sent again with the values the failure
//!   returned. At the limit, or ending the verification: `wrong_codes = max_wrong_codes`.
//! - ³ live: one more failure for the phone is `failures = if_not_exists(failures, 0) + 1` under
//!   `attribute_not_exists(failures_reset_at) OR failures_reset_at > :now`; if the failures have
//!   expired instead, it is sent again as `failures = 1` under `failures_reset_at <= :now` (one more
//!   call, only for a phone whose last failure is over a day old). Both set `failures_reset_at =
//!   now + 1 day` and extend `expires_at` to it, never shortening it (as in `put_verification`).
//! - `complete_verification` sets `failures = 0` unconditionally and leaves `current` pointing at
//!   the consumed verification, whose item is gone: the pointer can match nothing.
//!
//! Attributes, one per field. Verification: `flow_id`, `nonce_digest`, `client_id`, `server_id`,
//! `phone`, `phone_key` (S); `test` (BOOL); `created_at`, `expires_at`, `poll_interval_secs`,
//! `wrong_codes`, `max_wrong_codes` (N); `stage` (S: `awaiting_code` | `code_accepted` |
//! `token_issued`) and `sealed_access_token` (S, with `token_issued` only); `lease_id` (S) and
//! `lease_until` (N) while leased; `rev` (S). Session: `flow_id`, `client_id`, `server_id`, `phone`
//! (S); `userinfo` (S, a JSON object); `verified_at`, `expires_at` (N). Phone: `current` (S, a
//! verification key); `failures`, `failures_reset_at`, `expires_at` (N). Counters: `n`,
//! `expires_at` (N); the day's also `last_sent_at` (N).
//!
//! DynamoDB deletes expired items lazily (up to days later), so reads and claims treat
//! `expires_at <= now` as absent (counters need not: their key names their window). A write that
//! meets an in-flight transaction on its item (`TransactionConflict`, which the SDK does not retry)
//! is sent again, up to 4 times in all. Every other error, after the SDK's own retries, and every
//! unreadable item is [`StoreError::Unavailable`].

use std::{collections::HashMap, fmt::Display, future::Future, str::FromStr, time::Duration};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    error::{BuildError, DisplayErrorContext, SdkError},
    operation::{
        create_table::CreateTableError, delete_item::DeleteItemError,
        transact_write_items::TransactWriteItemsError, update_item::UpdateItemError,
    },
    types::{
        AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement, KeyType,
        Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
        TimeToLiveStatus, TransactWriteItem, Update,
    },
};
use serde_json::{Map, Value};

use super::{
    Claim, ClaimOutcome, Lease, PhoneRecord, Progress, SendReservation, Session, StateStore, StoreError,
    Verification, judge_claim, judge_reservation,
};
use crate::limits::{DAY_SECS, HOUR_SECS, Limits, PhoneCounters, RateLimited, window_index};
use crate::startup::StartupError;

type Item = HashMap<String, AttributeValue>;

const PK: &str = "pk";
const TTL_ATTRIBUTE: &str = "expires_at";
const VERIFICATION_PREFIX: &str = "v#";
const SESSION_PREFIX: &str = "s#";
const PHONE_PREFIX: &str = "p#";
const IP_PREFIX: &str = "i#";

/// How often a write that met an in-flight transaction on its item is sent in all.
const CONFLICT_ATTEMPTS: u32 = 4;
/// How often a conditional write is sent again with what its failure showed (a lost race, or a
/// guess that was wrong) before the store gives up.
const RACE_ATTEMPTS: u32 = 4;
/// How long a counter outlives its window, so a slightly late clock still finds it.
const COUNTER_TTL_MARGIN_SECS: u64 = HOUR_SECS;
/// How long `create_table_if_missing` waits for the table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A phone is not locked by consecutive wrong codes (`:max_failures`, `:now`).
const NOT_LOCKED: &str = "attribute_not_exists(failures) OR attribute_not_exists(failures_reset_at) \
                          OR failures < :max_failures OR failures_reset_at <= :now";

/// The [`StateStore`] on one DynamoDB table (see the module docs for its layout).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// A client configured from the environment as a Lambda instance's is
    /// ([`crate::aws::sdk_config_from_env`]); `AWS_ENDPOINT_URL_DYNAMODB` points it elsewhere,
    /// e.g. at the local moto server of `scripts/with-moto.sh`.
    pub fn client_from_env() -> Result<Client, StartupError> {
        Ok(crate::aws::dynamodb_client(&crate::aws::sdk_config_from_env()?))
    }

    /// [`Self::new`] with [`Self::client_from_env`].
    pub fn from_env(table: impl Into<String>) -> Result<Self, StartupError> {
        Ok(Self::new(Self::client_from_env()?, table))
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// For local runs and tests (in AWS the table comes from the deployment template): creates the
    /// table (on-demand billing) unless it exists, waits until it is ACTIVE and makes sure TTL is
    /// on `expires_at`. Returns whether it created the table.
    pub async fn create_table_if_missing(&self) -> Result<bool, StoreError> {
        let created = match self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| self.unavailable("CreateTable", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| self.unavailable("CreateTable", e))?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if matches!(e.as_service_error(), Some(CreateTableError::ResourceInUseException(_))) => {
                false
            }
            Err(e) => return Err(self.unavailable("CreateTable", e)),
        };
        self.wait_until_active().await?;

        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.unavailable("DescribeTimeToLive", e))?;
        let ttl_on = ttl.time_to_live_description().is_some_and(|d| {
            d.attribute_name() == Some(TTL_ATTRIBUTE)
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
        if !ttl_on {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| self.unavailable("UpdateTimeToLive", e))?;
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| self.unavailable("UpdateTimeToLive", e))?;
        }
        Ok(created)
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.unavailable("DescribeTable", e))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB table {} is not ACTIVE after {}s",
                    self.table,
                    TABLE_ACTIVE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn unavailable(&self, operation: &str, error: impl std::error::Error + 'static) -> StoreError {
        StoreError::Unavailable(format!(
            "DynamoDB {operation} on table {} failed: {}",
            self.table,
            DisplayErrorContext(error)
        ))
    }

    /// A conditional write that kept failing although its failures said it should not: a lost race
    /// too often, or a condition that disagrees with the judge.
    fn gave_up(&self, operation: &str) -> StoreError {
        StoreError::Unavailable(format!(
            "DynamoDB {operation} on table {}: gave up after {RACE_ATTEMPTS} conditional writes",
            self.table
        ))
    }

    /// One item by its `pk`, read consistently.
    async fn get(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", e))?;
        Ok(out.item)
    }

    /// Sends `ops` as one TransactWriteItems: all written, or none and what the failed conditions
    /// saw. Items still busy with other transactions after every retry are
    /// [`StoreError::Unavailable`].
    async fn transact(&self, ops: Vec<Op>) -> Result<Transacted, StoreError> {
        match self.try_transact(ops).await? {
            Some(done) => Ok(done),
            None => Err(StoreError::Unavailable(format!(
                "DynamoDB TransactWriteItems on table {}: its items stayed busy with other transactions \
                 ({CONFLICT_ATTEMPTS} attempts)",
                self.table
            ))),
        }
    }

    /// [`Self::transact`], answering `None` when its items stayed busy with other transactions.
    async fn try_transact(&self, ops: Vec<Op>) -> Result<Option<Transacted>, StoreError> {
        let count = ops.len();
        let items = ops
            .into_iter()
            .map(|op| op.into_transact_item(&self.table))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.unavailable("TransactWriteItems", e))?;
        let request = self.client.transact_write_items().set_transact_items(Some(items));
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(Some(Transacted::Written)),
            Err(e) if e.as_service_error().is_some_and(Conflict::is_conflict) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some(CONDITION_FAILED)) =>
                {
                    let reasons = cancelled.cancellation_reasons();
                    Ok(Some(Transacted::Refused(
                        (0..count)
                            .map(|i| match reasons.get(i) {
                                Some(r) if r.code() == Some(CONDITION_FAILED) => {
                                    Check::Failed(r.item().cloned())
                                }
                                _ => Check::Held,
                            })
                            .collect(),
                    )))
                }
                _ => Err(self.unavailable("TransactWriteItems", e)),
            },
        }
    }

    /// The verification and its `rev`, as stored (expired or not).
    async fn stored_verification(
        &self,
        key: &str,
    ) -> Result<Option<(Verification, Option<String>)>, StoreError> {
        let Some(item) = self.get(verification_pk(key)).await? else { return Ok(None) };
        let verification = parse_verification(key, &item)?;
        Ok(Some((verification, Attributes(&item).optional_string("rev")?)))
    }
}

/// What a cancelled transaction reports per operation (`ConditionalCheckFailed`).
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// What one TransactWriteItems did.
enum Transacted {
    Written,
    /// Cancelled because conditions failed: per operation, in order, what its condition did.
    Refused(Vec<Check>),
}

enum Check {
    /// Held (or the operation had none, or DynamoDB did not say).
    Held,
    /// Failed on this item as it stood; `None` when there was no such item.
    Failed(Option<Item>),
}

/// One operation of a transaction, in DynamoDB's words. Values and names the expressions do not
/// mention are left out when it is sent (DynamoDB refuses unused ones).
#[derive(Clone, Debug)]
struct Op {
    pk: String,
    action: Action,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

#[derive(Clone, Debug)]
enum Action {
    Update(String),
    Check,
    Put(Item),
    Delete,
}

impl Op {
    fn new(pk: String, action: Action) -> Self {
        Self { pk, action, condition: None, names: HashMap::new(), values: HashMap::new() }
    }

    fn update(pk: String, expression: impl Into<String>) -> Self {
        Self::new(pk, Action::Update(expression.into()))
    }

    fn check(pk: String, condition: impl Into<String>) -> Self {
        Self::new(pk, Action::Check).when(condition)
    }

    fn put(item: Item) -> Self {
        let pk = item.get(PK).and_then(|pk| pk.as_s().ok()).cloned().unwrap_or_default();
        Self::new(pk, Action::Put(item))
    }

    fn delete(pk: String) -> Self {
        Self::new(pk, Action::Delete)
    }

    fn when(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    fn into_transact_item(self, table: &str) -> Result<TransactWriteItem, BuildError> {
        let expressions = match &self.action {
            Action::Update(update) => format!("{update} {}", self.condition.as_deref().unwrap_or_default()),
            _ => self.condition.clone().unwrap_or_default(),
        };
        let names: HashMap<_, _> =
            self.names.into_iter().filter(|(p, _)| mentions(&expressions, p)).collect();
        let values: HashMap<_, _> =
            self.values.into_iter().filter(|(p, _)| mentions(&expressions, p)).collect();
        let names = (!names.is_empty()).then_some(names);
        let values = (!values.is_empty()).then_some(values);
        let on_failure = self.condition.is_some().then_some(ReturnValuesOnConditionCheckFailure::AllOld);
        let key = HashMap::from([(PK.to_owned(), s(self.pk))]);
        let item = TransactWriteItem::builder();
        Ok(match self.action {
            Action::Update(update) => item
                .update(
                    Update::builder()
                        .table_name(table)
                        .set_key(Some(key))
                        .update_expression(update)
                        .set_condition_expression(self.condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values_on_condition_check_failure(on_failure)
                        .build()?,
                )
                .build(),
            Action::Check => item
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(table)
                        .set_key(Some(key))
                        .set_condition_expression(self.condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values_on_condition_check_failure(on_failure)
                        .build()?,
                )
                .build(),
            Action::Put(put) => item
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(put))
                        .set_condition_expression(self.condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values_on_condition_check_failure(on_failure)
                        .build()?,
                )
                .build(),
            Action::Delete => item
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .set_key(Some(key))
                        .set_condition_expression(self.condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .set_return_values_on_condition_check_failure(on_failure)
                        .build()?,
                )
                .build(),
        })
    }
}

/// Whether `expression` uses `placeholder` (`:one` is not used by `:one_more`).
fn mentions(expression: &str, placeholder: &str) -> bool {
    expression.match_indices(placeholder).any(|(at, _)| {
        !expression[at + placeholder.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn verification_pk(key: &str) -> String {
    format!("{VERIFICATION_PREFIX}{key}")
}

fn session_pk(key: &str) -> String {
    format!("{SESSION_PREFIX}{key}")
}

fn phone_pk(phone_key: &str) -> String {
    format!("{PHONE_PREFIX}{phone_key}")
}

fn window_pk(phone_key: &str, window_secs: u64, window: u64) -> String {
    format!("{PHONE_PREFIX}{phone_key}#w{window_secs}#{window}")
}

fn day_pk(phone_key: &str, day: u64) -> String {
    format!("{PHONE_PREFIX}{phone_key}#d#{day}")
}

fn ip_pk(ip_key: &str, hour: u64) -> String {
    format!("{IP_PREFIX}{ip_key}#{hour}")
}

/// A fresh `rev` for a verification item.
fn new_rev() -> AttributeValue {
    s(uuid::Uuid::new_v4().simple().to_string())
}

/// A counter of the window `[index * secs, (index + 1) * secs)`: one more, if below `max`.
fn counter_op(pk: String, max: u32, index: u64, secs: u64) -> Op {
    Op::update(pk, "ADD n :one SET expires_at = :expires")
        .when("attribute_not_exists(n) OR n < :max")
        .value(":one", n(1))
        .value(":max", n(max))
        .value(":expires", n((index + 1) * secs + COUNTER_TTL_MARGIN_SECS))
}

/// The day's send counter: one more if below the daily limit and the resend delay has passed.
fn day_op(phone_key: &str, limits: &Limits, now: u64) -> Op {
    let day = window_index(now, DAY_SECS);
    let mut op = counter_op(day_pk(phone_key, day), limits.sends_per_phone_day, day, DAY_SECS);
    op.action = Action::Update("ADD n :one SET last_sent_at = :now, expires_at = :expires".into());
    let mut spaced = vec!["attribute_not_exists(last_sent_at)".to_owned(), "n = :zero".to_owned()];
    for (i, (first, last, delay)) in resend_tiers(limits).into_iter().enumerate() {
        spaced.push(format!("(n BETWEEN :f{i} AND :l{i} AND last_sent_at <= :t{i})"));
        op = op
            .value(&format!(":f{i}"), n(first))
            .value(&format!(":l{i}"), n(last))
            .value(&format!(":t{i}"), n(i128::from(now) - i128::from(delay)));
    }
    op.when(format!("attribute_not_exists(n) OR (n < :max AND ({}))", spaced.join(" OR ")))
        .value(":now", n(now))
        .value(":zero", n(0))
}

/// The resend delay after the n-th send of a day, for every n that may still send (below the
/// daily limit), as runs `(first n, last n, delay)` of equal delays. The last listed delay repeats.
fn resend_tiers(limits: &Limits) -> Vec<(u32, u32, u64)> {
    let delays = &limits.resend_delays_secs;
    let repeat_from = delays.len().max(1); // the n whose delay is the last listed one
    let max_n = limits.sends_per_phone_day.saturating_sub(1);
    let mut tiers: Vec<(u32, u32, u64)> = Vec::new();
    let mut sends = 1;
    while sends <= max_n {
        let index = sends as usize - 1;
        let delay = delays.get(index.min(repeat_from - 1)).copied().unwrap_or(0);
        let last = if sends as usize >= repeat_from { max_n } else { sends };
        match tiers.last_mut() {
            Some(tier) if tier.2 == delay => tier.1 = last,
            _ => tiers.push((sends, last, delay)),
        }
        sends = last + 1;
    }
    tiers
}

/// One more consecutive failure for the phone: counted on (`restart` false: they are live or
/// there are none) or from 1 (`restart`: they have expired); `extend` also extends the expiry.
fn failure_op(phone_key: &str, now: u64, restart: bool, extend: bool) -> Op {
    let (failures, condition) = if restart {
        ("failures = :one", "failures_reset_at <= :now")
    } else {
        (
            "failures = if_not_exists(failures, :zero) + :one",
            "(attribute_not_exists(failures_reset_at) OR failures_reset_at > :now)",
        )
    };
    let (update, condition) = if extend {
        (
            format!("SET {failures}, failures_reset_at = :reset_at, expires_at = :reset_at"),
            format!("{condition} AND (attribute_not_exists(expires_at) OR expires_at <= :reset_at)"),
        )
    } else {
        (format!("SET {failures}, failures_reset_at = :reset_at"), condition.to_owned())
    };
    Op::update(phone_pk(phone_key), update)
        .when(condition)
        .value(":one", n(1))
        .value(":zero", n(0))
        .value(":now", n(now))
        .value(":reset_at", n(now + DAY_SECS))
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn reserve_send(
        &self,
        reservation: &SendReservation,
    ) -> Result<Result<(), RateLimited>, StoreError> {
        let (limits, now) = (&reservation.limits, reservation.now);
        let phone_key = &reservation.phone_key;
        let mut ops = Vec::with_capacity(4);
        if let Some(ip_key) = &reservation.ip_key {
            let hour = window_index(now, HOUR_SECS);
            ops.push(counter_op(ip_pk(ip_key, hour), limits.starts_per_ip_hour, hour, HOUR_SECS));
        }
        ops.push(
            Op::check(phone_pk(phone_key), NOT_LOCKED)
                .value(":max_failures", n(limits.max_failures_per_phone))
                .value(":now", n(now)),
        );
        let window = window_index(now, limits.send_window_secs);
        ops.push(counter_op(
            window_pk(phone_key, limits.send_window_secs, window),
            limits.sends_per_phone_window,
            window,
            limits.send_window_secs,
        ));
        ops.push(day_op(phone_key, limits, now));

        for _ in 0..RACE_ATTEMPTS {
            let checks = match self.transact(ops.clone()).await? {
                Transacted::Refused(checks) => checks,
                Transacted::Written => return Ok(Ok(())),
            };
            // The items whose conditions failed, as they stood; one whose condition held counts
            // as below every limit, which is all the judge needs to know of it.
            let mut checks = checks.into_iter();
            let mut next_failed = || match checks.next() {
                Some(Check::Failed(item)) => item.unwrap_or_default(),
                _ => Item::new(),
            };
            let ip_item = if reservation.ip_key.is_some() { next_failed() } else { Item::new() };
            let (phone, window, day) = (next_failed(), next_failed(), next_failed());
            let (phone, window, day) = (Attributes(&phone), Attributes(&window), Attributes(&day));
            let counters = PhoneCounters {
                window_sends: window.optional_number("n")?.unwrap_or(0),
                day_sends: day.optional_number("n")?.unwrap_or(0),
                last_sent_at: day.optional_number("last_sent_at")?,
                failures: phone.optional_number("failures")?.unwrap_or(0),
                failures_reset_at: phone.optional_number("failures_reset_at")?.unwrap_or(0),
            };
            let ip_starts = Attributes(&ip_item).optional_number("n")?.unwrap_or(0);
            if let Err(limited) = judge_reservation(&counters, ip_starts, reservation) {
                return Ok(Err(limited));
            }
            tracing::debug!("DynamoDB refused a send the judge allows (a race); sending it again");
        }
        Err(self.gave_up("TransactWriteItems (reserve_send)"))
    }

    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError> {
        let expires = (verification.created_at + DAY_SECS).max(verification.expires_at);
        let phone = Op::update(phone_pk(&verification.phone_key), "SET #current = :key")
            .name("#current", "current")
            .value(":key", s(&verification.key));
        let extended = Op {
            action: Action::Update("SET #current = :key, expires_at = :expires".into()),
            ..phone.clone()
        }
        .when("attribute_not_exists(expires_at) OR expires_at <= :expires")
        .value(":expires", n(expires));
        let put = || Op::put(verification_item(verification, new_rev()));
        if let Transacted::Written = self.transact(vec![put(), extended]).await? {
            return Ok(());
        }
        // The phone record already lives longer: keep its expiry.
        match self.transact(vec![put(), phone]).await? {
            Transacted::Written => Ok(()),
            Transacted::Refused(_) => Err(self.gave_up("TransactWriteItems (put_verification)")),
        }
    }

    async fn claim_verification(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        for _ in 0..RACE_ATTEMPTS {
            let Some((stored, rev)) = self.stored_verification(key).await? else {
                return Ok(ClaimOutcome::NotFound);
            };
            // Judged as if the phone allowed it: what the verification itself says.
            let allowing =
                PhoneRecord { current: Some(stored.key.clone()), counters: PhoneCounters::default() };
            match judge_claim(Some(&stored), Some(&allowing), claim) {
                Some(ClaimOutcome::NotFound) => return Ok(ClaimOutcome::NotFound),
                Some(_) => {
                    // Exhausted or busy, unless the phone record says not found or locked first.
                    let phone = match stored.phone_key.as_str() {
                        "" => None,
                        phone_key => {
                            self.get(phone_pk(phone_key)).await?.map(|item| parse_phone(&item)).transpose()?
                        }
                    };
                    let outcome = judge_claim(Some(&stored), phone.as_ref(), claim);
                    return Ok(outcome.unwrap_or(ClaimOutcome::Busy { retry_after: 1 }));
                }
                None if stored.phone_key.is_empty() => {
                    // Written before phone records existed: it cannot be its phone's current one.
                    return Ok(judge_claim(Some(&stored), None, claim).unwrap_or(ClaimOutcome::NotFound));
                }
                None => {}
            }

            let phone = Op::check(phone_pk(&stored.phone_key), format!("#current = :key AND ({NOT_LOCKED})"))
                .name("#current", "current")
                .value(":key", s(key))
                .value(":max_failures", n(claim.max_failures_per_phone))
                .value(":now", n(claim.now));
            let lease = Op::update(
                verification_pk(key),
                "SET lease_id = :lease_id, lease_until = :lease_until, rev = :new_rev",
            )
            .when(if rev.is_some() { "rev = :rev" } else { "attribute_not_exists(rev)" })
            .value(":lease_id", s(&claim.lease.id))
            .value(":lease_until", n(claim.lease.until))
            .value(":new_rev", new_rev())
            .value(":rev", s(rev.unwrap_or_default()));
            let checks = match self.try_transact(vec![phone, lease]).await? {
                // Other calls are writing this verification or its phone right now.
                None => return Ok(ClaimOutcome::Busy { retry_after: 1 }),
                Some(Transacted::Written) => {
                    return Ok(ClaimOutcome::Claimed(Verification {
                        lease: Some(claim.lease.clone()),
                        ..stored
                    }));
                }
                Some(Transacted::Refused(checks)) => checks,
            };
            let mut checks = checks.into_iter();
            let phone = match checks.next() {
                Some(Check::Failed(item)) => item.as_ref().map(parse_phone).transpose()?,
                _ => Some(allowing),
            };
            let verification = match checks.next() {
                Some(Check::Failed(item)) => {
                    item.as_ref().map(|item| parse_verification(key, item)).transpose()?
                }
                _ => Some(stored),
            };
            if let Some(outcome) = judge_claim(verification.as_ref(), phone.as_ref(), claim) {
                return Ok(outcome);
            }
            // Another write changed the verification, which is still claimable: try again.
        }
        Ok(ClaimOutcome::Busy { retry_after: 1 })
    }

    async fn record_wrong_code(
        &self,
        verification: &Verification,
        lease_id: &str,
        ends_verification: bool,
        now: u64,
    ) -> Result<u32, StoreError> {
        let pk = verification_pk(&verification.key);
        // Guesses, corrected by what a failed condition shows: the counts of the claimed record,
        // failures still live (or none), and an expiry to extend.
        let (mut seen, mut max) = (verification.wrong_codes, verification.max_wrong_codes);
        let (mut restart, mut extend) = (false, true);
        for _ in 0..RACE_ATTEMPTS {
            // At the limit already (only a record put used up gets here): released at the limit.
            let ends = ends_verification || seen >= max;
            let counted = if ends {
                Op::update(
                    pk.clone(),
                    "SET wrong_codes = max_wrong_codes, rev = :rev REMOVE lease_id, lease_until",
                )
                .when("lease_id = :lease")
            } else {
                Op::update(pk.clone(), "SET wrong_codes = :counted, rev = :rev REMOVE lease_id, lease_until")
                    .when("lease_id = :lease AND wrong_codes = :seen AND max_wrong_codes = :max")
                    .value(":counted", n(seen + 1))
                    .value(":seen", n(seen))
                    .value(":max", n(max))
            }
            .value(":lease", s(lease_id))
            .value(":rev", new_rev());
            let failure = failure_op(&verification.phone_key, now, restart, extend);
            let checks = match self.transact(vec![counted, failure]).await? {
                Transacted::Written => return Ok(if ends { 0 } else { max - (seen + 1) }),
                Transacted::Refused(checks) => checks,
            };
            let mut checks = checks.into_iter();
            if let Some(Check::Failed(item)) = checks.next() {
                let Some(item) = item else { return Err(StoreError::LeaseLost) };
                let a = Attributes(&item);
                if a.optional_string("lease_id")?.as_deref() != Some(lease_id) {
                    return Err(StoreError::LeaseLost);
                }
                (seen, max) = (a.number("wrong_codes")?, a.number("max_wrong_codes")?);
            }
            if let Some(Check::Failed(item)) = checks.next() {
                let item = item.unwrap_or_default();
                let a = Attributes(&item);
                restart = a.optional_number::<u64>("failures_reset_at")?.is_some_and(|at| at <= now);
                extend = a.optional_number::<u64>(TTL_ATTRIBUTE)?.is_none_or(|at| at <= now + DAY_SECS);
            }
        }
        Err(self.gave_up("TransactWriteItems (record_wrong_code)"))
    }

    async fn release_verification(
        &self,
        key: &str,
        lease_id: &str,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let (stage, sealed) = progress_attributes(progress);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(verification_pk(key)))
            .condition_expression("lease_id = :lease")
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":stage", s(stage))
            .expression_attribute_values(":rev", new_rev());
        request = match sealed {
            Some(sealed) => request
                .update_expression(
                    "SET stage = :stage, sealed_access_token = :sealed, rev = :rev \
                     REMOVE lease_id, lease_until",
                )
                .expression_attribute_values(":sealed", s(sealed)),
            None => request.update_expression(
                "SET stage = :stage, rev = :rev REMOVE lease_id, lease_until, sealed_access_token",
            ),
        };
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::LeaseLost)
            }
            Err(e) => Err(self.unavailable("UpdateItem", e)),
        }
    }

    async fn discard_verification(&self, key: &str, lease_id: &str) -> Result<(), StoreError> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(verification_pk(key)))
            .condition_expression("lease_id = :lease")
            .expression_attribute_values(":lease", s(lease_id));
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::LeaseLost)
            }
            Err(e) => Err(self.unavailable("DeleteItem", e)),
        }
    }

    async fn complete_verification(
        &self,
        verification: &Verification,
        lease_id: &str,
        session: &Session,
    ) -> Result<(), StoreError> {
        let ops = vec![
            Op::delete(verification_pk(&verification.key))
                .when("lease_id = :lease")
                .value(":lease", s(lease_id)),
            Op::put(session_item(session)?).when("attribute_not_exists(pk)"),
            // A verified number starts counting again. (Should the phone record be gone, this
            // writes one that expires like any other.)
            Op::update(
                phone_pk(&verification.phone_key),
                "SET failures = :zero, expires_at = if_not_exists(expires_at, :expires)",
            )
            .value(":zero", n(0))
            .value(":expires", n(session.verified_at + DAY_SECS)),
        ];
        match self.transact(ops).await? {
            Transacted::Written => Ok(()),
            Transacted::Refused(_) => Err(StoreError::LeaseLost),
        }
    }

    async fn get_session(&self, key: &str, now: u64) -> Result<Option<Session>, StoreError> {
        let Some(item) = self.get(session_pk(key)).await? else { return Ok(None) };
        let session = parse_session(key, &item)?;
        Ok((session.expires_at > now).then_some(session))
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        let request = self.client.delete_item().table_name(&self.table).key(PK, s(session_pk(key)));
        send_retrying_conflicts(|| request.clone().send())
            .await
            .map(drop)
            .map_err(|e| self.unavailable("DeleteItem", e))
    }
}

/// Sends a write, again after a short pause when it met an in-flight transaction on its item:
/// DynamoDB rejects it then (`TransactionConflict`) and the SDK does not retry that.
async fn send_retrying_conflicts<T, E, R, F, Fut>(mut send: F) -> Result<T, SdkError<E, R>>
where
    E: Conflict,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(e)
                if attempt < CONFLICT_ATTEMPTS && e.as_service_error().is_some_and(Conflict::is_conflict) =>
            {
                tracing::debug!(attempt, "DynamoDB write met a transaction in flight; sending it again");
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// An operation error that says the item was locked by another transaction.
trait Conflict {
    fn is_conflict(&self) -> bool;
}

impl Conflict for UpdateItemError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::TransactionConflictException(_))
    }
}

impl Conflict for DeleteItemError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::TransactionConflictException(_))
    }
}

impl Conflict for TransactWriteItemsError {
    /// Cancelled for a conflict only: a failed condition is an answer, not worth a retry.
    fn is_conflict(&self) -> bool {
        match self {
            Self::TransactionCanceledException(cancelled) => {
                let codes = || cancelled.cancellation_reasons().iter().filter_map(|r| r.code());
                codes().any(|c| c == "TransactionConflict") && !codes().any(|c| c == CONDITION_FAILED)
            }
            _ => false,
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn progress_attributes(progress: &Progress) -> (&'static str, Option<&str>) {
    match progress {
        Progress::AwaitingCode => ("awaiting_code", None),
        Progress::CodeAccepted => ("code_accepted", None),
        Progress::TokenIssued { sealed_access_token } => ("token_issued", Some(sealed_access_token)),
    }
}

fn verification_item(v: &Verification, rev: AttributeValue) -> Item {
    let (stage, sealed) = progress_attributes(&v.progress);
    let mut item = HashMap::from([
        (PK.to_owned(), s(verification_pk(&v.key))),
        ("flow_id".to_owned(), s(&v.flow_id)),
        ("nonce_digest".to_owned(), s(&v.nonce_digest)),
        ("client_id".to_owned(), s(&v.client_id)),
        ("server_id".to_owned(), s(&v.server_id)),
        ("phone".to_owned(), s(&v.phone)),
        ("phone_key".to_owned(), s(&v.phone_key)),
        ("test".to_owned(), AttributeValue::Bool(v.test)),
        ("created_at".to_owned(), n(v.created_at)),
        (TTL_ATTRIBUTE.to_owned(), n(v.expires_at)),
        ("poll_interval_secs".to_owned(), n(v.poll_interval_secs)),
        ("wrong_codes".to_owned(), n(v.wrong_codes)),
        ("max_wrong_codes".to_owned(), n(v.max_wrong_codes)),
        ("stage".to_owned(), s(stage)),
        ("rev".to_owned(), rev),
    ]);
    if let Some(sealed) = sealed {
        item.insert("sealed_access_token".to_owned(), s(sealed));
    }
    if let Some(lease) = &v.lease {
        item.insert("lease_id".to_owned(), s(&lease.id));
        item.insert("lease_until".to_owned(), n(lease.until));
    }
    item
}

fn session_item(session: &Session) -> Result<Item, StoreError> {
    let userinfo = serde_json::to_string(&session.userinfo)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode the session's userinfo: {e}")))?;
    Ok(HashMap::from([
        (PK.to_owned(), s(session_pk(&session.key))),
        ("flow_id".to_owned(), s(&session.flow_id)),
        ("client_id".to_owned(), s(&session.client_id)),
        ("server_id".to_owned(), s(&session.server_id)),
        ("phone".to_owned(), s(&session.phone)),
        ("userinfo".to_owned(), s(userinfo)),
        ("verified_at".to_owned(), n(session.verified_at)),
        (TTL_ATTRIBUTE.to_owned(), n(session.expires_at)),
    ]))
}

fn corrupt(what: impl Display) -> StoreError {
    StoreError::Unavailable(format!("corrupt DynamoDB item: {what}"))
}

/// Typed reads of one item's attributes; a missing or mistyped attribute is a corrupt item.
struct Attributes<'a>(&'a Item);

impl Attributes<'_> {
    fn string(&self, name: &str) -> Result<String, StoreError> {
        self.optional_string(name)?.ok_or_else(|| corrupt(format_args!("attribute {name} is missing")))
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.0
            .get(name)
            .map(|value| {
                value.as_s().cloned().map_err(|_| corrupt(format_args!("attribute {name} is not a string")))
            })
            .transpose()
    }

    fn optional_bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        self.0
            .get(name)
            .map(|value| {
                value
                    .as_bool()
                    .copied()
                    .map_err(|_| corrupt(format_args!("attribute {name} is not a boolean")))
            })
            .transpose()
    }

    fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.optional_number(name)?.ok_or_else(|| corrupt(format_args!("attribute {name} is missing")))
    }

    fn optional_number<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.0
            .get(name)
            .map(|value| {
                value
                    .as_n()
                    .ok()
                    .and_then(|number| number.parse().ok())
                    .ok_or_else(|| corrupt(format_args!("attribute {name} is not a number in range")))
            })
            .transpose()
    }
}

fn parse_verification(key: &str, item: &Item) -> Result<Verification, StoreError> {
    let a = Attributes(item);
    let progress = match a.string("stage")?.as_str() {
        "awaiting_code" => Progress::AwaitingCode,
        "code_accepted" => Progress::CodeAccepted,
        "token_issued" => Progress::TokenIssued { sealed_access_token: a.string("sealed_access_token")? },
        other => return Err(corrupt(format_args!("unknown stage {other:?}"))),
    };
    let lease = match (a.optional_string("lease_id")?, a.optional_number("lease_until")?) {
        (Some(id), Some(until)) => Some(Lease { id, until }),
        (None, None) => None,
        _ => return Err(corrupt("lease_id and lease_until must come together")),
    };
    Ok(Verification {
        key: key.to_owned(),
        flow_id: a.string("flow_id")?,
        nonce_digest: a.string("nonce_digest")?,
        client_id: a.string("client_id")?,
        server_id: a.string("server_id")?,
        phone: a.string("phone")?,
        // Absent only in items written before phone records: such a verification is nobody's
        // current one, so a claim finds it not found.
        phone_key: a.optional_string("phone_key")?.unwrap_or_default(),
        test: a.optional_bool("test")?.unwrap_or(false),
        created_at: a.number("created_at")?,
        expires_at: a.number(TTL_ATTRIBUTE)?,
        poll_interval_secs: a.number("poll_interval_secs")?,
        wrong_codes: a.number("wrong_codes")?,
        max_wrong_codes: a.number("max_wrong_codes")?,
        progress,
        lease,
    })
}

/// A phone record as a claim needs it: the current verification and the failures (the send
/// counters live in their own items).
fn parse_phone(item: &Item) -> Result<PhoneRecord, StoreError> {
    let a = Attributes(item);
    Ok(PhoneRecord {
        current: a.optional_string("current")?,
        counters: PhoneCounters {
            failures: a.optional_number("failures")?.unwrap_or(0),
            failures_reset_at: a.optional_number("failures_reset_at")?.unwrap_or(0),
            ..PhoneCounters::default()
        },
    })
}

fn parse_session(key: &str, item: &Item) -> Result<Session, StoreError> {
    let a = Attributes(item);
    let userinfo: Map<String, Value> = serde_json::from_str(&a.string("userinfo")?)
        .map_err(|e| corrupt(format_args!("attribute userinfo is not a JSON object: {e}")))?;
    Ok(Session {
        key: key.to_owned(),
        flow_id: a.string("flow_id")?,
        client_id: a.string("client_id")?,
        server_id: a.string("server_id")?,
        phone: a.string("phone")?,
        userinfo,
        verified_at: a.number("verified_at")?,
        expires_at: a.number(TTL_ATTRIBUTE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(day: u32, delays: &[u64]) -> Limits {
        Limits { sends_per_phone_day: day, resend_delays_secs: delays.to_vec(), ..Limits::default() }
    }

    #[test]
    fn resend_tiers_cover_every_send_below_the_daily_limit() {
        assert_eq!(
            resend_tiers(&limits(10, &[30, 60, 120, 300, 600, 1800])),
            vec![(1, 1, 30), (2, 2, 60), (3, 3, 120), (4, 4, 300), (5, 5, 600), (6, 9, 1800)]
        );
        assert_eq!(resend_tiers(&limits(10, &[0, 3600])), vec![(1, 1, 0), (2, 9, 3600)]);
        assert_eq!(resend_tiers(&limits(3, &[30, 60, 120, 300])), vec![(1, 1, 30), (2, 2, 60)]);
        assert_eq!(resend_tiers(&limits(5, &[60, 60, 120])), vec![(1, 2, 60), (3, 4, 120)]);
        assert_eq!(resend_tiers(&limits(1, &[30])), vec![]);
        assert_eq!(resend_tiers(&limits(u32::MAX, &[5])), vec![(1, u32::MAX - 1, 5)]);
    }

    #[test]
    fn only_mentioned_placeholders_count() {
        assert!(mentions("SET a = :one", ":one"));
        assert!(mentions("a = :one AND b = :one_more", ":one"));
        assert!(!mentions("b = :one_more", ":one"));
        assert!(!mentions("n BETWEEN :f10 AND :l10", ":f1"));
    }
}
