//! The fraud guard's writes ([`crate::fraud_guard`]): a country's conversion window, counted by
//! single-item updates that are never part of a transaction (the item is hot: every send and
//! verification of the country passes it), and a pause written into the country's send counts.
//!
//! - count: UpdateItem `f#{country}#{secs}#{window}` ADD `sends` or `verified`, SET `expires_at` =
//!   the window's end + 1 h, returning the new counts (`ALL_NEW`).
//! - pause: UpdateItem of the window item SET `paused_until` under `attribute_not_exists(
//!   paused_until) OR paused_until <= :now`: the call whose condition holds starts the pause; one
//!   whose condition fails reads the pause that is on (`ALL_OLD`). Then UpdateItem of each count
//!   item SET `paused_until` to that pause's end under `attribute_not_exists(paused_until) OR
//!   paused_until < :until` (never shortened). The counts are written by every call that finds
//!   the window tripped, with the end of the pause that is on, so a pause whose writer stopped
//!   half-way is completed by the next and never made longer than its log line says.

use aws_sdk_dynamodb::{
    operation::update_item::UpdateItemError,
    types::{ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure},
};

use super::codec::{Attributes, Item, count_pk, n, s};
use super::transact::send_retrying_conflicts;
use super::{DynamoStore, PK, Units, charge};
use crate::fraud_guard::Conversion;
use crate::limits::HOUR_SECS;
use crate::store::{ConversionEvent, ConversionWindow, CountryPause, StoreError};

/// How long an item outlives its window, so a slightly late clock still finds it.
const MARGIN_SECS: u64 = HOUR_SECS;

impl DynamoStore {
    pub(super) async fn count_conversion_item(
        &self,
        window: &ConversionWindow,
        event: ConversionEvent,
    ) -> Result<Conversion, StoreError> {
        let attribute = match event {
            ConversionEvent::Sent => "sends",
            ConversionEvent::Verified => "verified",
        };
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(count_pk(&window.key, window.window)))
            .update_expression(format!("ADD {attribute} :one SET expires_at = :expires"))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(
                ":expires",
                n((window.window + 1) * window.window_secs + MARGIN_SECS),
            )
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let out = send_retrying_conflicts(|| request.clone().send())
            .await
            .map_err(|e| self.unavailable("UpdateItem (conversion)", e))?;
        charge(Units::Write, out.consumed_capacity());
        let item = out.attributes.unwrap_or_default();
        let a = Attributes(&item);
        Ok(Conversion {
            sends: a.optional_number("sends")?.unwrap_or(0),
            verified: a.optional_number("verified")?.unwrap_or(0),
        })
    }

    pub(super) async fn pause_country_items(&self, pause: &CountryPause) -> Result<bool, StoreError> {
        let window = &pause.window;
        let expires = (window.window + 1) * window.window_secs + MARGIN_SECS;
        let over = "attribute_not_exists(paused_until) OR paused_until <= :now";
        let pk = count_pk(&window.key, window.window);
        let (started, until) = match self.set_paused_until(pk, over, pause.until, pause.now, expires).await? {
            Ok(()) => (true, pause.until),
            // Another call started the pause that is on: complete it, to its own end.
            Err(on) => {
                let on = on.unwrap_or_default();
                (false, Attributes(&on).optional_number("paused_until")?.unwrap_or(pause.until))
            }
        };
        for (key, window, window_secs) in &pause.counts {
            let expires = (window + 1) * window_secs + MARGIN_SECS;
            let longer = "attribute_not_exists(paused_until) OR paused_until < :until";
            // A failed condition: a pause that ends later is on this count already.
            let _longer_on =
                self.set_paused_until(count_pk(key, *window), longer, until, pause.now, expires).await?;
        }
        Ok(started)
    }

    /// SET `paused_until = until` on one item under `condition`: `Err` with the item as it stood
    /// when the condition failed.
    async fn set_paused_until(
        &self,
        pk: String,
        condition: &str,
        until: u64,
        now: u64,
        expires: u64,
    ) -> Result<Result<(), Option<Item>>, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .update_expression("SET paused_until = :until, expires_at = if_not_exists(expires_at, :expires)")
            .condition_expression(condition)
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":expires", n(expires.max(until)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if condition.contains(":now") {
            request = request.expression_attribute_values(":now", n(now));
        }
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(out) => {
                charge(Units::Write, out.consumed_capacity());
                Ok(Ok(()))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Err(failed.item().cloned()))
                }
                _ => Err(self.unavailable("UpdateItem (pause)", e)),
            },
        }
    }
}
