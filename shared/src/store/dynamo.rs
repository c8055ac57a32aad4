//! The DynamoDB store: one table, string partition key `pk`, TTL on `expires_at` (epoch seconds).
//!
//! | method                  | item `pk`   | the one call                              | condition        |
//! |-------------------------|-------------|-------------------------------------------|------------------|
//! | `put_verification`      | `v#{key}`   | PutItem                                   | none: overwrites |
//! | `claim_verification`    | `v#{key}`   | UpdateItem SET lease                      | claimable        |
//! | `record_wrong_code`     | `v#{key}`   | UpdateItem SET wrong_codes REMOVE lease   | lease¹           |
//! | `release_verification`  | `v#{key}`   | UpdateItem SET stage REMOVE lease         | lease            |
//! | `discard_verification`  | `v#{key}`   | DeleteItem                                | lease            |
//! | `complete_verification` | `v#` + `s#` | TransactWriteItems: Delete `v#`, Put `s#` | lease; new `s#`  |
//! | `get_session`           | `s#{key}`   | GetItem, consistent read                  | none             |
//! | `delete_session`        | `s#{key}`   | DeleteItem                                | none             |
//!
//! - `{key}`: the hex digest the caller passes ([`super::verification_key`], [`super::session_key`]),
//!   never a raw credential.
//! - lease: `lease_id = :lease`, the caller's; a failure is [`StoreError::LeaseLost`]. New `s#`:
//!   `attribute_not_exists(pk)`.
//! - claimable: `attribute_exists(pk) AND expires_at > :now AND client_id = :c AND server_id = :s AND
//!   nonce_digest = :n AND wrong_codes < max_wrong_codes AND (attribute_not_exists(lease_until) OR
//!   lease_until <= :now)`: [`judge_claim`] in DynamoDB's words. When it fails, the item returned with
//!   the failure (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) is judged by [`judge_claim`] itself
//!   for the answer (not found, busy, exhausted), so both stores answer alike.
//! - ¹ one more wrong code also needs `wrong_codes < max_wrong_codes`, so the count never passes the
//!   limit; ending the verification sets `wrong_codes = max_wrong_codes`. (A record put already leased
//!   and used up takes a second call to release its lease.)
//!
//! Attributes, one per field. Verification: `flow_id`, `nonce_digest`, `client_id`, `server_id`,
//! `phone` (S); `created_at`, `expires_at`, `poll_interval_secs`, `wrong_codes`, `max_wrong_codes` (N);
//! `stage` (S: `awaiting_code` | `code_accepted` | `token_issued`) and `sealed_access_token` (S, with
//! `token_issued` only); `lease_id` (S) and `lease_until` (N) while leased. Session: `flow_id`,
//! `client_id`, `server_id`, `phone` (S); `userinfo` (S, a JSON object); `verified_at`, `expires_at` (N).
//!
//! DynamoDB deletes expired items lazily (up to days later), so reads and claims treat
//! `expires_at <= now` as absent. A write that meets an in-flight transaction on its item
//! (`TransactionConflict`, which the SDK does not retry) is sent again, up to 4 times in all. Every
//! other error, after the SDK's own retries, and every unreadable item is [`StoreError::Unavailable`].

use std::{collections::HashMap, fmt::Display, future::Future, str::FromStr, time::Duration};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::{
    Client,
    error::{DisplayErrorContext, SdkError},
    operation::{
        create_table::CreateTableError, delete_item::DeleteItemError, put_item::PutItemError,
        transact_write_items::TransactWriteItemsError, update_item::UpdateItemError,
    },
    types::{
        AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
        ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
        TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
    },
};
use serde_json::{Map, Value};

use super::{
    Claim, ClaimOutcome, Lease, Progress, Session, StateStore, StoreError, Verification, judge_claim,
};

type Item = HashMap<String, AttributeValue>;

const PK: &str = "pk";
const TTL_ATTRIBUTE: &str = "expires_at";
const VERIFICATION_PREFIX: &str = "v#";
const SESSION_PREFIX: &str = "s#";

/// How often a write that met an in-flight transaction on its item is sent in all.
const CONFLICT_ATTEMPTS: u32 = 4;
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

    /// A client configured the standard way: region, credentials and retries from the
    /// environment (the Lambda role in AWS); `AWS_ENDPOINT_URL_DYNAMODB` points it elsewhere,
    /// e.g. at the local moto server of `scripts/with-moto.sh`.
    pub async fn client_from_env() -> Client {
        Client::new(&aws_config::load_defaults(BehaviorVersion::latest()).await)
    }

    /// [`Self::new`] with [`Self::client_from_env`].
    pub async fn from_env(table: impl Into<String>) -> Self {
        Self::new(Self::client_from_env().await, table)
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

    fn verification_key(key: &str) -> AttributeValue {
        AttributeValue::S(format!("{VERIFICATION_PREFIX}{key}"))
    }

    fn session_key(key: &str) -> AttributeValue {
        AttributeValue::S(format!("{SESSION_PREFIX}{key}"))
    }

    /// Sets `wrong_codes` to the limit and releases the caller's lease: used up at once.
    async fn exhaust(&self, key: &str, lease_id: &str) -> Result<u32, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, Self::verification_key(key))
            .update_expression("SET wrong_codes = max_wrong_codes REMOVE lease_id, lease_until")
            .condition_expression("lease_id = :lease")
            .expression_attribute_values(":lease", s(lease_id))
            .return_values(ReturnValue::AllNew);
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(out) => attempts_left(out.attributes()),
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
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError> {
        let request =
            self.client.put_item().table_name(&self.table).set_item(Some(verification_item(verification)));
        send_retrying_conflicts(|| request.clone().send())
            .await
            .map(drop)
            .map_err(|e| self.unavailable("PutItem", e))
    }

    async fn claim_verification(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, Self::verification_key(key))
            .update_expression("SET lease_id = :lease_id, lease_until = :lease_until")
            .condition_expression(
                "attribute_exists(pk) AND expires_at > :now \
                 AND client_id = :client AND server_id = :server AND nonce_digest = :nonce \
                 AND wrong_codes < max_wrong_codes \
                 AND (attribute_not_exists(lease_until) OR lease_until <= :now)",
            )
            .expression_attribute_values(":lease_id", s(&claim.lease.id))
            .expression_attribute_values(":lease_until", n(claim.lease.until))
            .expression_attribute_values(":now", n(claim.now))
            .expression_attribute_values(":client", s(&claim.client_id))
            .expression_attribute_values(":server", s(&claim.server_id))
            .expression_attribute_values(":nonce", s(&claim.nonce_digest))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(out) => {
                let item = out.attributes().ok_or_else(|| corrupt("UpdateItem returned no attributes"))?;
                Ok(ClaimOutcome::Claimed(parse_verification(key, item)?))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let old = failed.item().map(|item| parse_verification(key, item)).transpose()?;
                    // The condition is `judge_claim` written for DynamoDB, so judging the item it
                    // failed on gives the reason. Should the two ever disagree, deny for now.
                    Ok(judge_claim(old.as_ref(), claim).unwrap_or(ClaimOutcome::Busy { retry_after: 1 }))
                }
                _ => Err(self.unavailable("UpdateItem", e)),
            },
        }
    }

    async fn record_wrong_code(
        &self,
        key: &str,
        lease_id: &str,
        ends_verification: bool,
    ) -> Result<u32, StoreError> {
        if ends_verification {
            return self.exhaust(key, lease_id).await;
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, Self::verification_key(key))
            .update_expression("SET wrong_codes = wrong_codes + :one REMOVE lease_id, lease_until")
            .condition_expression("lease_id = :lease AND wrong_codes < max_wrong_codes")
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(out) => attempts_left(out.attributes()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    let still_ours = failed
                        .item()
                        .and_then(|item| item.get("lease_id"))
                        .is_some_and(|held| held.as_s().is_ok_and(|held| held == lease_id));
                    if still_ours {
                        // Our lease, no attempts left (only a record written leased and used up
                        // gets here): release it at the limit, as the in-memory store does.
                        self.exhaust(key, lease_id).await
                    } else {
                        Err(StoreError::LeaseLost)
                    }
                }
                _ => Err(self.unavailable("UpdateItem", e)),
            },
        }
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
            .key(PK, Self::verification_key(key))
            .condition_expression("lease_id = :lease")
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":stage", s(stage));
        request = match sealed {
            Some(sealed) => request
                .update_expression(
                    "SET stage = :stage, sealed_access_token = :sealed REMOVE lease_id, lease_until",
                )
                .expression_attribute_values(":sealed", s(sealed)),
            None => request
                .update_expression("SET stage = :stage REMOVE lease_id, lease_until, sealed_access_token"),
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
            .key(PK, Self::verification_key(key))
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
        key: &str,
        lease_id: &str,
        session: &Session,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, Self::verification_key(key))
            .condition_expression("lease_id = :lease")
            .expression_attribute_values(":lease", s(lease_id))
            .build()
            .map_err(|e| self.unavailable("TransactWriteItems", e))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(session_item(session)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| self.unavailable("TransactWriteItems", e))?;
        let request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().put(put).build());
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Err(StoreError::LeaseLost)
                }
                _ => Err(self.unavailable("TransactWriteItems", e)),
            },
        }
    }

    async fn get_session(&self, key: &str, now: u64) -> Result<Option<Session>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, Self::session_key(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", e))?;
        let Some(item) = out.item() else { return Ok(None) };
        let session = parse_session(key, item)?;
        Ok((session.expires_at > now).then_some(session))
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        let request = self.client.delete_item().table_name(&self.table).key(PK, Self::session_key(key));
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

impl Conflict for PutItemError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::TransactionConflictException(_))
    }
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
                codes().any(|c| c == "TransactionConflict") && !codes().any(|c| c == "ConditionalCheckFailed")
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

fn verification_item(v: &Verification) -> Item {
    let (stage, sealed) = progress_attributes(&v.progress);
    let mut item = HashMap::from([
        (PK.to_owned(), DynamoStore::verification_key(&v.key)),
        ("flow_id".to_owned(), s(&v.flow_id)),
        ("nonce_digest".to_owned(), s(&v.nonce_digest)),
        ("client_id".to_owned(), s(&v.client_id)),
        ("server_id".to_owned(), s(&v.server_id)),
        ("phone".to_owned(), s(&v.phone)),
        ("created_at".to_owned(), n(v.created_at)),
        (TTL_ATTRIBUTE.to_owned(), n(v.expires_at)),
        ("poll_interval_secs".to_owned(), n(v.poll_interval_secs)),
        ("wrong_codes".to_owned(), n(v.wrong_codes)),
        ("max_wrong_codes".to_owned(), n(v.max_wrong_codes)),
        ("stage".to_owned(), s(stage)),
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
        (PK.to_owned(), DynamoStore::session_key(&session.key)),
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
        created_at: a.number("created_at")?,
        expires_at: a.number(TTL_ATTRIBUTE)?,
        poll_interval_secs: a.number("poll_interval_secs")?,
        wrong_codes: a.number("wrong_codes")?,
        max_wrong_codes: a.number("max_wrong_codes")?,
        progress,
        lease,
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

/// The attempts left after a wrong code, from the item as UpdateItem left it.
fn attempts_left(item: Option<&Item>) -> Result<u32, StoreError> {
    let a = Attributes(item.ok_or_else(|| corrupt("UpdateItem returned no attributes"))?);
    let wrong_codes: u32 = a.number("wrong_codes")?;
    let max_wrong_codes: u32 = a.number("max_wrong_codes")?;
    Ok(max_wrong_codes.saturating_sub(wrong_codes))
}
