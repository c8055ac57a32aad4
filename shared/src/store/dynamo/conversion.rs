//! The fraud guard's writes ([`crate::fraud_guard`]): a country's conversion window, counted by
//! single-item updates that are never part of a transaction (the item is hot: every send and
//! verification of the country passes it), and a pause written into the country's send counts.
//!
//! - count: UpdateItem `f#{country}#{secs}#{window}` ADD `sends` or `verified`, SET `expires_at` =
//!   the window's end + 1 h, returning the new counts (`ALL_NEW`).
//! - pause: UpdateItem of each count item SET `paused_until` under `attribute_not_exists(
//!   paused_until) OR paused_until < :until` (a pause is never shortened; a failed condition means
//!   a longer one is on), then of the window item under `attribute_not_exists(paused_until) OR
//!   paused_until <= :now`: the call whose condition holds started the pause. The counts are
//!   written every time, so a pause whose writer stopped half-way is completed by the next.

use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue};

use super::codec::{Attributes, count_pk, n, s};
use super::transact::{Conflict, send_retrying_conflicts};
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
        for (key, window, window_secs) in &pause.counts {
            let expires = (window + 1) * window_secs + MARGIN_SECS;
            let longer = "attribute_not_exists(paused_until) OR paused_until < :until";
            self.set_paused_until(count_pk(key, *window), longer, pause, expires).await?;
        }
        let window = &pause.window;
        let expires = (window.window + 1) * window.window_secs + MARGIN_SECS;
        let over = "attribute_not_exists(paused_until) OR paused_until <= :now";
        self.set_paused_until(count_pk(&window.key, window.window), over, pause, expires).await
    }

    /// SET `paused_until` on one item under `condition`: whether the condition held.
    async fn set_paused_until(
        &self,
        pk: String,
        condition: &str,
        pause: &CountryPause,
        expires: u64,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .update_expression("SET paused_until = :until, expires_at = if_not_exists(expires_at, :expires)")
            .condition_expression(condition)
            .expression_attribute_values(":until", n(pause.until))
            .expression_attribute_values(":expires", n(expires.max(pause.until)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if condition.contains(":now") {
            request = request.expression_attribute_values(":now", n(pause.now));
        }
        match send_retrying_conflicts(|| request.clone().send()).await {
            Ok(out) => {
                charge(Units::Write, out.consumed_capacity());
                Ok(true)
            }
            Err(e) if e.as_service_error().is_some_and(Conflict::is_condition_failed) => Ok(false),
            Err(e) => Err(self.unavailable("UpdateItem (pause)", e)),
        }
    }
}
