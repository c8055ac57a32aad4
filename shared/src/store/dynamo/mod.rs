//! The DynamoDB store: one table, string partition key `pk`, TTL on `expires_at` (epoch seconds).
//!
//! Items; `{…}` are the hex digests of the caller's keys ([`VerificationKey`], [`SessionKey`],
//! [`PhoneKey`](crate::store::PhoneKey), [`CounterKey`](crate::store::CounterKey)), never a
//! credential or a phone number; the window counts' shards are
//! [`limits::shard`](crate::limits::shard):
//!
//! | item `pk`                        | holds                                   | `expires_at`          |
//! |----------------------------------|-----------------------------------------|-----------------------|
//! | `v#{key}`                        | a verification                          | the verification's    |
//! | `s#{key}`                        | a session                               | the session's         |
//! | `p#{phone_key}`                  | a phone: current verification, failures | ≥ 1 day after its use |
//! | `p#{phone_key}#w{secs}#{window}` | sends to the phone in one window        | window's end + 1 h    |
//! | `p#{phone_key}#d#{day}`          | sends to the phone in one UTC day       | day's end + 1 h       |
//! | `n#{number_key}#d#{day}`         | the number's sends and wrong codes, day | day's end + 1 h       |
//! | `i#{ip}#{hour}`                  | starts from a source network in an hour | hour's end + 1 h      |
//! | `c#{client}#{shard}#{day}`       | one share of a client's sends in a day  | day's end + 1 h       |
//! | `g#{country}#{shard}#{hour}`     | one share of sends to a country         | hour's end + 1 h      |
//! | `r#{range}#{hour}`               | sends to a number range in an hour      | hour's end + 1 h      |
//!
//! Window, day and hour numbers are [`window_index`](crate::limits::window_index) (epoch seconds / length): a new window is a
//! new item, so counts restart without a read, and the old item is never read again and expires.
//!
//! | method                  | calls (`TWI`: TransactWriteItems)                       | conditions         |
//! |-------------------------|---------------------------------------------------------|--------------------|
//! | `reserve_send`          | TWI: Update `c#`, `g#`, `r#` and `i#`¹ ADD n,           | count; unlocked;   |
//! |                         | ConditionCheck `p#`, Update `p#…#w` ADD n, Update       | window; day        |
//! |                         | `p#…#d` ADD n SET last_sent_at, Update `n#` ADD n SET   | number             |
//! |                         | last_sent_at                                            |                    |
//! | `put_verification`      | TWI: Put `v#`, Update `p#` SET current                  | none²              |
//! | `get_verification`      | GetItem `v#` (consistent)                               | none               |
//! | `phone_standing`        | GetItem `p#`, `p#…#w`, `p#…#d`, `n#` at once (consistent)| none              |
//! | `claim_verification`    | GetItem `v#` (consistent), then TWI: ConditionCheck     | current, unlocked; |
//! |                         | `p#`, ConditionCheck `n#`, Update `v#` SET lease        | guessable; rev     |
//! | `record_wrong_code`     | TWI: Update `v#` SET wrong_codes REMOVE lease, Update   | lease, counted;    |
//! |                         | `p#` SET failures, Update `n#` ADD failures             | live³; none        |
//! | `save_progress`         | UpdateItem `v#` SET stage, sealed [REMOVE lease]        | lease              |
//! | `discard_verification`  | DeleteItem `v#`                                         | lease              |
//! | `complete_verification` | TWI: Update `v#` SET stage, sealed_session REMOVE lease,| lease; new `s#`    |
//! |                         | Put `s#`, Update `p#` failures = 0                      |                    |
//! | `get_session`           | GetItem `s#` (consistent)                               | none               |
//! | `delete_session`        | DeleteItem `s#`                                         | none               |
//!
//! So `/sms/auth` makes 3 calls (`reserve_send`, then `put_verification` and the fraud guard's
//! `count_conversion` at once) and a verified `/sms/token` 6 (the claim's 2, `save_progress` of
//! the code accepted and of the token issued, each before the next upstream call, then
//! `complete_verification`, and `count_conversion`); a wrong code ends after the claim's 2 with
//! `record_wrong_code` (for the fraud guard's calls see
//! `conversion.rs`; `pause_country` only when the breaker trips). A failed condition returns the item as
//! it stood (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), and the store's judges
//! ([`judge_reservation`], [`judge_claim`]) decide from those items what to answer, so both stores
//! answer alike; an item whose condition held counts as within every limit.
//!
//! - count: `attribute_not_exists(n) OR n < :max`, each window count's cap (`sends_per_client_day`,
//!   `sends_per_country_hour`, `sends_per_range_hour`, `starts_per_ip_hour`; a shard's share).
//!   ¹ `i#` only with a source network.
//! - number: `attribute_not_exists(n) OR n < :max` (`sends_per_phone_day`, from all networks) AND
//!   guessable AND `attribute_not_exists(last_sent_at) OR last_sent_at <= :spaced` (`now` less
//!   the first resend delay: between any two SMS to the number, from any network). guessable: `attribute_not_exists(failures) OR failures < :max_failures_day`
//!   (`max_failures_per_phone_day`, the number's wrong codes of the day from all networks).
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
//!   the completed verification, which stays (stage `completed`) until it expires, so the same
//!   request retried after a lost answer can claim it and open its sealed session.
//!
//! Attributes, one per field. Verification: `flow_id`, `nonce_digest`, `client_id`, `server_id`,
//! `phone`, `region`, `phone_key` (S); `test` (BOOL); `created_at`, `expires_at`, `poll_interval_secs`,
//! `wrong_codes`, `max_wrong_codes` (N); `stage` (S: `awaiting_code` | `code_accepted` |
//! `token_issued` | `completed`) and `sealed_access_token` (S, with `token_issued` only) or
//! `sealed_session` (S, with `completed` only); `lease_id` (S) and
//! `lease_until` (N) while leased; `rev` (S). Session: `flow_id`, `client_id`, `server_id`, `phone`
//! (S); `userinfo` (S, a JSON object); `verified_at`, `expires_at` (N). Phone: `current` (S, a
//! verification key); `failures`, `failures_reset_at`, `expires_at` (N). Counters: `n`,
//! `expires_at` (N); the phone's day also `last_sent_at`, the number's day also `failures` (N). A
//! verification or session item that lacks one of its attributes (but the lease's, the sealed
//! token and a verification's `region`, which items written before it had none of: read from the
//! number) is unreadable.
//!
//! DynamoDB deletes expired items lazily (up to days later), so reads and claims treat
//! `expires_at <= now` as absent (counters need not: their key names their window). A write that
//! meets an in-flight transaction on its item (`TransactionConflict`, which the SDK does not retry)
//! is sent again, up to 4 times in all. Every other error, after the SDK's own retries, and every
//! unreadable item is [`StoreError::Unavailable`].
//!
//! The files: this one has the store, its table and the [`StateStore`] methods, which decide what
//! to write and what a refusal means; `conditions.rs` builds each conditional write above (and
//! the resend tiers of `day`); `transact.rs` sends them (one transaction of `Op`s,
//! what a cancelled one says of each condition, the retries after `TransactionConflict`);
//! `codec.rs` turns records into items and back (keys with their prefixes, `Progress` as `stage`
//! and `sealed_access_token`, userinfo as JSON text).

mod codec;
mod conditions;
mod conversion;
mod transact;

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    error::{DisplayErrorContext, SdkError},
    operation::create_table::CreateTableError,
    types::{
        AttributeDefinition, BillingMode, ConsumedCapacity, KeySchemaElement, KeyType,
        ReturnConsumedCapacity, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    },
};

use self::codec::{
    Attributes, Item, PK, TTL_ATTRIBUTE, day_pk, new_rev, number_day_pk, parse_phone, parse_session,
    parse_verification, phone_pk, s, session_pk, verification_item, verification_pk, window_pk,
};
use self::conditions::{
    claim_ops, complete_ops, current_op, failure_op, number_failure_op, progress_op, reservation_ops,
    wrong_code_op,
};
use self::transact::{Check, Conflict, Op, Transacted, send_retrying_conflicts};
use super::{
    Claim, ClaimOutcome, ConversionEvent, ConversionWindow, CountryPause, LeaseAfter, LeaseId, PhoneRecord,
    Progress, SendReservation, Session, SessionKey, StateStore, StoreError, Verification, VerificationKey,
    judge_claim, judge_reservation,
};
use crate::fraud_guard::Conversion;
use crate::limits::{Counted, DAY_SECS, PhoneCounters, RateLimited, window_index};
use crate::startup::StartupError;
use crate::timings;

/// How often a conditional write is sent again with what its failure showed (a lost race, or a
/// guess that was wrong) before the store gives up.
const RACE_ATTEMPTS: u32 = 4;
/// How long `create_table_if_missing` waits for the table to become ACTIVE.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// e.g. at the DynamoDB Local server of `scripts/with-test-services.sh`.
    pub fn client_from_env() -> Result<Client, StartupError> {
        crate::aws::check_dynamodb_operation_timeout()?;
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
        self.ensure_ttl().await?;
        Ok(created)
    }

    /// Turns TTL on for `expires_at` unless it is on (or turning on).
    async fn ensure_ttl(&self) -> Result<(), StoreError> {
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
        Ok(())
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

    /// A write conditioned on the caller's lease that failed: [`StoreError::LeaseLost`] when the
    /// lease is no longer the caller's, else unavailable.
    fn lease_write_failed<E, R>(&self, operation: &str, error: SdkError<E, R>) -> StoreError
    where
        E: Conflict + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        if error.as_service_error().is_some_and(Conflict::is_condition_failed) {
            StoreError::LeaseLost
        } else {
            self.unavailable(operation, error)
        }
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
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", e))?;
        charge(Units::Read, out.consumed_capacity());
        Ok(out.item)
    }

    /// The verification and its `rev`, as stored (expired or not).
    async fn stored_verification(
        &self,
        key: &VerificationKey,
    ) -> Result<Option<(Verification, String)>, StoreError> {
        let Some(item) = self.get(verification_pk(key)).await? else { return Ok(None) };
        let verification = parse_verification(key, &item)?;
        Ok(Some((verification, Attributes(&item).string("rev")?)))
    }

    /// What a claim of `stored` answers without a write, if anything: judged as if the phone
    /// allowed it (what the verification itself says), and then, for an exhausted or busy one,
    /// with its phone record, which may say not found or locked first. `None` means try the write.
    async fn judge_before_claiming(
        &self,
        stored: &Verification,
        claim: &Claim,
    ) -> Result<Option<ClaimOutcome>, StoreError> {
        match judge_claim(Some(stored), Some(&PhoneRecord::allowing(stored)), claim) {
            None => Ok(None),
            Some(ClaimOutcome::NotFound) => Ok(Some(ClaimOutcome::NotFound)),
            Some(_) => {
                let phone = self.get(phone_pk(&stored.phone_key)).await?;
                let mut phone = phone.as_ref().map(parse_phone).transpose()?;
                if let Some(phone) = &mut phone {
                    let number_day = self
                        .get(number_day_pk(&stored.number_key(), window_index(claim.now, DAY_SECS)))
                        .await?;
                    phone.counters.day_failures = number_day_failures(number_day.as_ref())?;
                }
                let outcome = judge_claim(Some(stored), phone.as_ref(), claim);
                Ok(Some(outcome.unwrap_or(ClaimOutcome::Busy { retry_after: 1 })))
            }
        }
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn reserve_send(
        &self,
        reservation: &SendReservation,
    ) -> Result<Result<(), RateLimited>, StoreError> {
        let ops = reservation_ops(reservation);
        for _ in 0..RACE_ATTEMPTS {
            let checks = match self.transact(ops.clone()).await? {
                Transacted::Refused(checks) => checks,
                Transacted::Written => return Ok(Ok(())),
            };
            let (counters, counted) = refused_reservation(checks, reservation.counts.len())?;
            if let Err(limited) = judge_reservation(&counters, &counted, reservation) {
                return Ok(Err(limited));
            }
            tracing::debug!("DynamoDB refused a send the judge allows (a race); sending it again");
        }
        Err(self.gave_up("TransactWriteItems (reserve_send)"))
    }

    async fn count_conversion(
        &self,
        window: &ConversionWindow,
        event: ConversionEvent,
    ) -> Result<Conversion, StoreError> {
        self.count_conversion_item(window, event).await
    }

    async fn pause_country(&self, pause: &CountryPause) -> Result<bool, StoreError> {
        self.pause_country_items(pause).await
    }

    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError> {
        let put = || Op::put(verification_item(verification, new_rev()));
        if let Transacted::Written = self.transact(vec![put(), current_op(verification, true)]).await? {
            return Ok(());
        }
        // The phone record already lives longer: keep its expiry.
        match self.transact(vec![put(), current_op(verification, false)]).await? {
            Transacted::Written => Ok(()),
            Transacted::Refused(_) => Err(self.gave_up("TransactWriteItems (put_verification)")),
        }
    }

    async fn get_verification(
        &self,
        key: &VerificationKey,
        now: u64,
    ) -> Result<Option<Verification>, StoreError> {
        let stored = self.stored_verification(key).await?;
        Ok(stored.map(|(verification, _)| verification).filter(|v| v.expires_at > now))
    }

    async fn phone_standing(
        &self,
        verification: &Verification,
        send_window_secs: u64,
        now: u64,
    ) -> Result<Option<PhoneRecord>, StoreError> {
        let phone_key = &verification.phone_key;
        let day = window_index(now, DAY_SECS);
        // The items `reserve_send` would judge a new send to this phone on, read at once.
        let (phone, window, phone_day, number_day) = tokio::try_join!(
            self.get(phone_pk(phone_key)),
            self.get(window_pk(phone_key, send_window_secs, window_index(now, send_window_secs))),
            self.get(day_pk(phone_key, day)),
            self.get(number_day_pk(&verification.number_key(), day)),
        )?;
        let Some(phone) = phone.as_ref().map(parse_phone).transpose()? else { return Ok(None) };
        let (window, phone_day, number_day) = (window.as_ref(), phone_day.as_ref(), number_day.as_ref());
        let count = |item| Ok::<u32, StoreError>(number_of(item, "n")?.unwrap_or(0));
        let counters = PhoneCounters {
            day_sends: count(number_day)?,
            day_failures: number_day_failures(number_day)?,
            number_last_sent_at: number_of(number_day, "last_sent_at")?,
            window_sends: count(window)?,
            network_day_sends: count(phone_day)?,
            last_sent_at: number_of(phone_day, "last_sent_at")?,
            ..phone.counters
        };
        Ok(Some(PhoneRecord { counters, ..phone }))
    }

    async fn claim_verification(
        &self,
        key: &VerificationKey,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError> {
        for _ in 0..RACE_ATTEMPTS {
            let Some((stored, rev)) = self.stored_verification(key).await? else {
                return Ok(ClaimOutcome::NotFound);
            };
            if let Some(denied) = self.judge_before_claiming(&stored, claim).await? {
                return Ok(denied);
            }
            let checks = match self.try_transact(claim_ops(&stored, rev, claim)).await? {
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
            if let Some(outcome) = judge_refused_claim(checks, stored, claim)? {
                return Ok(outcome);
            }
            // Another write changed the verification, which is still claimable: try again.
        }
        Ok(ClaimOutcome::Busy { retry_after: 1 })
    }

    async fn record_wrong_code(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        ends_verification: bool,
        now: u64,
    ) -> Result<u32, StoreError> {
        // Guesses, corrected by what a failed condition shows: the counts of the claimed record,
        // failures still live (or none), and an expiry to extend.
        let (mut seen, mut max) = (verification.wrong_codes, verification.max_wrong_codes);
        let (mut restart, mut extend) = (false, true);
        for _ in 0..RACE_ATTEMPTS {
            // At the limit already (only a record put used up gets here): released at the limit.
            let ends = ends_verification || seen >= max;
            let counted = wrong_code_op(&verification.key, lease_id, seen, max, ends);
            let failure = failure_op(&verification.phone_key, now, restart, extend);
            let number = number_failure_op(&verification.number_key(), now);
            let checks = match self.transact(vec![counted, failure, number]).await? {
                Transacted::Written => return Ok(if ends { 0 } else { max - (seen + 1) }),
                Transacted::Refused(checks) => checks,
            };
            let mut checks = checks.into_iter();
            if let Some(Check::Failed(item)) = checks.next() {
                let Some(item) = item else { return Err(StoreError::LeaseLost) };
                let a = Attributes(&item);
                if a.optional_string("lease_id")?.as_deref() != Some(lease_id.as_str()) {
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

    async fn save_progress(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
        progress: &Progress,
        lease: LeaseAfter,
    ) -> Result<(), StoreError> {
        self.update_under_lease(progress_op(key, lease_id, progress, lease)).await
    }

    async fn discard_verification(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
    ) -> Result<(), StoreError> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(verification_pk(key)))
            .condition_expression("lease_id = :lease")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .expression_attribute_values(":lease", s(lease_id.as_str()));
        send_retrying_conflicts(|| request.clone().send())
            .await
            .map(|out| charge(Units::Write, out.consumed_capacity()))
            .map_err(|e| self.lease_write_failed("DeleteItem", e))
    }

    async fn complete_verification(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        session: &Session,
        sealed_session: &str,
    ) -> Result<(), StoreError> {
        let ops = complete_ops(verification, lease_id, session, sealed_session)?;
        match self.transact(ops).await? {
            Transacted::Written => Ok(()),
            Transacted::Refused(_) => Err(StoreError::LeaseLost),
        }
    }

    async fn get_session(&self, key: &SessionKey, now: u64) -> Result<Option<Session>, StoreError> {
        let Some(item) = self.get(session_pk(key)).await? else { return Ok(None) };
        let session = parse_session(key, &item)?;
        Ok((session.expires_at > now).then_some(session))
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<(), StoreError> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(session_pk(key)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        send_retrying_conflicts(|| request.clone().send())
            .await
            .map(|out| charge(Units::Write, out.consumed_capacity()))
            .map_err(|e| self.unavailable("DeleteItem", e))
    }
}

/// Which units a call consumed: reads (GetItem) or writes (everything else).
#[derive(Clone, Copy)]
pub(super) enum Units {
    Read,
    Write,
}

/// Charges what DynamoDB says a call consumed (each call asks for it with
/// `ReturnConsumedCapacity::Total`) to the request's read or write units, for its summary line
/// ([`timings::store_capacity`]). DynamoDB reports no capacity for a refused condition or a
/// cancelled transaction, although it bills them: the figures are a floor.
pub(super) fn charge<'a>(units: Units, consumed: impl IntoIterator<Item = &'a ConsumedCapacity>) {
    for consumed in consumed {
        let total = consumed.capacity_units().unwrap_or(0.0);
        match units {
            Units::Read => timings::store_capacity(consumed.read_capacity_units().unwrap_or(total), 0.0),
            Units::Write => timings::store_capacity(0.0, consumed.write_capacity_units().unwrap_or(total)),
        }
    }
}

/// The number attribute `name` of an item that may be absent (`None` without the item or the
/// attribute).
fn number_of<T: std::str::FromStr>(item: Option<&Item>, name: &str) -> Result<Option<T>, StoreError> {
    Ok(item.map(|item| Attributes(item).optional_number(name)).transpose()?.flatten())
}

/// The wrong codes a number's day item counts (none without the item).
fn number_day_failures(item: Option<&Item>) -> Result<u32, StoreError> {
    Ok(number_of(item, "failures")?.unwrap_or(0))
}

/// What a refused claim ([`claim_ops`]) answers, judged on the phone record and the verification
/// as the failed conditions returned them (one whose condition held is as it was); `None` when the
/// verification is still claimable, changed by another write meanwhile.
fn judge_refused_claim(
    checks: Vec<Check>,
    stored: Verification,
    claim: &Claim,
) -> Result<Option<ClaimOutcome>, StoreError> {
    let mut checks = checks.into_iter();
    let mut phone = match checks.next() {
        Some(Check::Failed(item)) => item.as_ref().map(parse_phone).transpose()?,
        _ => Some(PhoneRecord::allowing(&stored)),
    };
    if let (Some(phone), Some(Check::Failed(number_day))) = (&mut phone, checks.next()) {
        phone.counters.day_failures = number_day_failures(number_day.as_ref())?;
    }
    let verification = match checks.next() {
        Some(Check::Failed(item)) => {
            item.as_ref().map(|item| parse_verification(&stored.key, item)).transpose()?
        }
        _ => Some(stored),
    };
    Ok(judge_claim(verification.as_ref(), phone.as_ref(), claim))
}

/// The counters a refused reservation ([`reservation_ops`]) saw, and each window count:
/// the items whose conditions failed, as they stood; one whose condition held counts as below
/// every limit, which is all the judge needs to know of it.
fn refused_reservation(
    checks: Vec<Check>,
    counts: usize,
) -> Result<(PhoneCounters, Vec<Counted>), StoreError> {
    let mut checks = checks.into_iter();
    let mut next_failed = || match checks.next() {
        Some(Check::Failed(item)) => item.unwrap_or_default(),
        _ => Item::new(),
    };
    let counted = (0..counts)
        .map(|_| {
            let item = next_failed();
            let a = Attributes(&item);
            Ok(Counted {
                n: a.optional_number("n")?.unwrap_or(0),
                paused_until: a.optional_number("paused_until")?,
            })
        })
        .collect::<Result<Vec<Counted>, StoreError>>()?;
    let (phone, window, day, number) = (next_failed(), next_failed(), next_failed(), next_failed());
    let (phone, window, day) = (Attributes(&phone), Attributes(&window), Attributes(&day));
    let counters = PhoneCounters {
        day_sends: Attributes(&number).optional_number("n")?.unwrap_or(0),
        day_failures: number_day_failures(Some(&number))?,
        number_last_sent_at: Attributes(&number).optional_number("last_sent_at")?,
        window_sends: window.optional_number("n")?.unwrap_or(0),
        network_day_sends: day.optional_number("n")?.unwrap_or(0),
        last_sent_at: day.optional_number("last_sent_at")?,
        failures: phone.optional_number("failures")?.unwrap_or(0),
        failures_reset_at: phone.optional_number("failures_reset_at")?.unwrap_or(0),
    };
    Ok((counters, counted))
}
