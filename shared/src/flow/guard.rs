//! The fraud guard's steps in the flow ([`crate::fraud_guard`] has the rule): after an SMS,
//! count it and pause its country when the window's conversion has collapsed (a pause it started
//! goes to the request's log line and metric); after a verification,
//! count it. Neither ever fails the request: its SMS has already left.

use crate::{
    fraud_guard::{Guarded, PauseStarted},
    limits::{HOUR_SECS, shards_for, window_index},
    phone::PhoneNumber,
    store::{
        ConversionEvent, ConversionWindow, CounterKey, CountryPause, StateStore, StoreError, Verification,
    },
};

/// After an SMS went to `phone` at `now`: the pause it started, if it did.
pub(super) async fn after_send(
    store: &dyn StateStore,
    client: Guarded<'_>,
    phone: &PhoneNumber,
    now: u64,
) -> Option<PauseStarted> {
    let region = phone.region_or_global();
    let window = window(client, region, now);
    let conversion = match store.count_conversion(&window, ConversionEvent::Sent).await {
        Ok(conversion) => conversion,
        Err(err) => {
            unavailable(client.client_id, region, &err);
            return None;
        }
    };
    if !client.guard.trips(conversion) {
        return None;
    }
    let pause = pause(client, region, window, now);
    match store.pause_country(&pause).await {
        Ok(true) => Some(PauseStarted {
            region: region.to_owned(),
            conversion,
            min_conversion: client.guard.min_conversion,
            until: pause.until,
        }),
        Ok(false) => None,
        Err(err) => {
            unavailable(client.client_id, region, &err);
            None
        }
    }
}

/// After `verification` completed: counted in the window its SMS was sent in.
pub(super) async fn after_verified(store: &dyn StateStore, client: Guarded<'_>, verification: &Verification) {
    let region = &verification.region;
    let window = window(client, region, verification.created_at);
    if let Err(err) = store.count_conversion(&window, ConversionEvent::Verified).await {
        unavailable(client.client_id, region, &err);
    }
}

fn unavailable(client_id: &str, region: &str, err: &StoreError) {
    tracing::warn!(event = "fraud_guard_unavailable", client_id, country = region, error = %err);
}

/// The window of `region`'s conversion that `at` falls in.
fn window(client: Guarded<'_>, region: &str, at: u64) -> ConversionWindow {
    let secs = client.guard.window_secs;
    ConversionWindow {
        key: CounterKey::conversion(client.client_id, region, secs),
        window: window_index(at, secs),
        window_secs: secs,
    }
}

/// The pause of `region` that `window` tripped at `now`: every share of the country's hourly
/// count, in every hour until the pause ends.
fn pause(client: Guarded<'_>, region: &str, window: ConversionWindow, now: u64) -> CountryPause {
    let until = now + client.guard.pause_secs;
    let shards = shards_for(client.limits.sends_per_country_hour);
    let hours = window_index(now, HOUR_SECS)..=window_index(until - 1, HOUR_SECS);
    let counts = hours
        .flat_map(|hour| (0..shards).map(move |shard| (shard, hour)))
        .map(|(shard, hour)| (CounterKey::country(client.client_id, region, shard), hour, HOUR_SECS))
        .collect();
    CountryPause { window, counts, until, now }
}
