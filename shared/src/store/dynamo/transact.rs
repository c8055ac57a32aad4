//! Writes in DynamoDB's words: one transaction of conditional operations ([`Op`]), what a
//! cancelled one says of each condition ([`Transacted`]), and sending a write again when it met
//! another transaction in flight ([`send_retrying_conflicts`]).

use std::{collections::HashMap, future::Future, time::Duration};

use aws_sdk_dynamodb::{
    error::{BuildError, SdkError},
    operation::{
        delete_item::DeleteItemError, transact_write_items::TransactWriteItemsError,
        update_item::UpdateItemError,
    },
    types::{
        AttributeValue, ConditionCheck, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem, Update,
    },
};

use super::codec::{Item, PK, s};
use super::{DynamoStore, Units, charge};
use crate::store::StoreError;

/// How often a write that met an in-flight transaction on its item is sent in all.
const CONFLICT_ATTEMPTS: u32 = 4;

impl DynamoStore {
    /// Sends `ops` as one TransactWriteItems: all written, or none and what the failed conditions
    /// saw. Items still busy with other transactions after every retry are
    /// [`StoreError::Unavailable`].
    pub(super) async fn transact(&self, ops: Vec<Op>) -> Result<Transacted, StoreError> {
        match self.try_transact(ops).await? {
            Some(done) => Ok(done),
            None => Err(StoreError::Unavailable(format!(
                "DynamoDB TransactWriteItems on table {}: its items stayed busy with other transactions \
                 ({CONFLICT_ATTEMPTS} attempts)",
                self.table
            ))),
        }
    }

    /// Sends one update `op` alone, as an UpdateItem (cheaper than a transaction of one); a
    /// failed condition is [`StoreError::LeaseLost`], since every such write is under a lease.
    pub(super) async fn update_under_lease(&self, mut op: Op) -> Result<(), StoreError> {
        let (names, values) = op.mentioned();
        let Action::Update(update) = op.action else {
            return Err(StoreError::Unavailable("update_under_lease takes an update".to_owned()));
        };
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(op.pk))
            .update_expression(update)
            .set_condition_expression(op.condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        send_retrying_conflicts(|| request.clone().send())
            .await
            .map(|out| charge(Units::Write, out.consumed_capacity()))
            .map_err(|e| self.lease_write_failed("UpdateItem", e))
    }

    /// [`Self::transact`], answering `None` when its items stayed busy with other transactions.
    pub(super) async fn try_transact(&self, ops: Vec<Op>) -> Result<Option<Transacted>, StoreError> {
        let count = ops.len();
        let items = ops
            .into_iter()
            .map(|op| op.into_transact_item(&self.table))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.unavailable("TransactWriteItems", e))?;
        let request = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(out) => {
                charge(Units::Write, out.consumed_capacity());
                Ok(Some(Transacted::Written))
            }
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
}

/// What a cancelled transaction reports per operation (`ConditionalCheckFailed`).
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// What one TransactWriteItems did.
pub(super) enum Transacted {
    Written,
    /// Cancelled because conditions failed: per operation, in order, what its condition did.
    Refused(Vec<Check>),
}

pub(super) enum Check {
    /// Held (or the operation had none, or DynamoDB did not say).
    Held,
    /// Failed on this item as it stood; `None` when there was no such item.
    Failed(Option<Item>),
}

/// An expression's attribute names and values, by placeholder.
type Names = HashMap<String, String>;
type Values = HashMap<String, AttributeValue>;

/// One operation of a transaction, in DynamoDB's words. Values and names the expressions do not
/// mention are left out when it is sent (DynamoDB refuses unused ones).
#[derive(Clone, Debug)]
pub(super) struct Op {
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
}

impl Op {
    fn new(pk: String, action: Action) -> Self {
        Self { pk, action, condition: None, names: HashMap::new(), values: HashMap::new() }
    }

    pub(super) fn update(pk: String, expression: impl Into<String>) -> Self {
        Self::new(pk, Action::Update(expression.into()))
    }

    pub(super) fn check(pk: String, condition: impl Into<String>) -> Self {
        Self::new(pk, Action::Check).when(condition)
    }

    pub(super) fn put(item: Item) -> Self {
        let pk = item.get(PK).and_then(|pk| pk.as_s().ok()).cloned().unwrap_or_default();
        Self::new(pk, Action::Put(item))
    }

    /// The same operation as an update with another expression.
    pub(super) fn with_update(mut self, expression: impl Into<String>) -> Self {
        self.action = Action::Update(expression.into());
        self
    }

    pub(super) fn when(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    pub(super) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub(super) fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    /// The names and values the expressions mention (DynamoDB refuses unused ones), `None` for
    /// none.
    fn mentioned(&mut self) -> (Option<Names>, Option<Values>) {
        let expressions = match &self.action {
            Action::Update(update) => format!("{update} {}", self.condition.as_deref().unwrap_or_default()),
            _ => self.condition.clone().unwrap_or_default(),
        };
        let mut names = std::mem::take(&mut self.names);
        names.retain(|p, _| mentions(&expressions, p));
        let mut values = std::mem::take(&mut self.values);
        values.retain(|p, _| mentions(&expressions, p));
        ((!names.is_empty()).then_some(names), (!values.is_empty()).then_some(values))
    }

    fn into_transact_item(mut self, table: &str) -> Result<TransactWriteItem, BuildError> {
        let (names, values) = self.mentioned();
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
        })
    }
}

/// Whether `expression` uses `placeholder` (`:one` is not used by `:one_more`).
fn mentions(expression: &str, placeholder: &str) -> bool {
    expression.match_indices(placeholder).any(|(at, _)| {
        !expression[at + placeholder.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Sends a write, again after a short pause when it met an in-flight transaction on its item:
/// DynamoDB rejects it then (`TransactionConflict`) and the SDK does not retry that.
pub(super) async fn send_retrying_conflicts<T, E, R, F, Fut>(mut send: F) -> Result<T, SdkError<E, R>>
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

/// What an operation error says of its item: locked by another transaction (worth sending
/// again), or its condition failed.
pub(super) trait Conflict {
    fn is_conflict(&self) -> bool;

    fn is_condition_failed(&self) -> bool {
        false
    }
}

impl Conflict for UpdateItemError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::TransactionConflictException(_))
    }

    fn is_condition_failed(&self) -> bool {
        matches!(self, Self::ConditionalCheckFailedException(_))
    }
}

impl Conflict for DeleteItemError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::TransactionConflictException(_))
    }

    fn is_condition_failed(&self) -> bool {
        matches!(self, Self::ConditionalCheckFailedException(_))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mentioned_placeholders_count() {
        assert!(mentions("SET a = :one", ":one"));
        assert!(mentions("a = :one AND b = :one_more", ":one"));
        assert!(!mentions("b = :one_more", ":one"));
        assert!(!mentions("n BETWEEN :f10 AND :l10", ":f1"));
    }
}
