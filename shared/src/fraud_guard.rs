//! The conversion breaker against SMS pumping. Pumped codes are never entered, so when a
//! country's SMS stop turning into verifications its sends pause by themselves, and the log says
//! why and until when (Twilio's Fraud Guard does this without saying).
//!
//! Per client and country (region; the global-service codes count as one, `001`) the store
//! counts, in fixed windows of `window_secs`, the SMS sent and the verifications completed of the
//! SMS sent in that window. After each send, when the window holds at least `min_sends` sends and
//! verified / sent is below `min_conversion`, the country is paused for `pause_secs`. The pause is
//! written into the country's send counts (every share of `sends_per_country_hour`, every hour the
//! pause covers), so the next sends are refused by the reservation they make anyway
//! (`429 rate_limited`, `limit: country_paused`) at no extra cost per send. The call that starts a
//! pause logs one WARN line `fraud_guard_country_paused` and counts `FraudGuardPauses`. Test
//! numbers neither count nor get paused (they send nothing).
//!
//! The conversion counts are plain single-item updates, never part of a transaction, so the one
//! item per country and window serializes its writes instead of cancelling transactions. A count
//! or pause that fails is logged and the request goes on: its SMS has already left, and a failed
//! answer would only make the app ask for another.

use serde::Deserialize;

use crate::limits::{DAY_SECS, HOUR_SECS, Limits};

/// The breaker of one client, every value resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct FraudGuard {
    pub min_sends: u32,
    pub min_conversion: f64,
    pub window_secs: u64,
    pub pause_secs: u64,
}

impl Default for FraudGuard {
    fn default() -> Self {
        Self { min_sends: 30, min_conversion: 0.3, window_secs: HOUR_SECS, pause_secs: HOUR_SECS }
    }
}

/// `fraud_guard` as written at the top level or on a client: every key optional, a client's over
/// the top level's over the defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFraudGuard {
    pub min_sends: Option<u32>,
    pub min_conversion: Option<f64>,
    pub window_secs: Option<u64>,
    pub pause_secs: Option<u64>,
}

impl RawFraudGuard {
    pub fn over(&self, base: &FraudGuard) -> FraudGuard {
        FraudGuard {
            min_sends: self.min_sends.unwrap_or(base.min_sends),
            min_conversion: self.min_conversion.unwrap_or(base.min_conversion),
            window_secs: self.window_secs.unwrap_or(base.window_secs),
            pause_secs: self.pause_secs.unwrap_or(base.pause_secs),
        }
    }
}

/// What a conversion window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conversion {
    pub sends: u32,
    pub verified: u32,
}

impl FraudGuard {
    /// What is wrong with these settings, for the config error (`at` names where they came from).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let rules = [
            (self.min_sends >= 1, "min_sends", "must be at least 1"),
            (
                (0.0..=1.0).contains(&self.min_conversion),
                "min_conversion",
                "must be 0 to 1 (0 turns the breaker off)",
            ),
            ((60..=DAY_SECS).contains(&self.window_secs), "window_secs", "must be 60 to 86400"),
            ((60..=DAY_SECS).contains(&self.pause_secs), "pause_secs", "must be 60 to 86400"),
        ];
        rules.iter().filter(|(ok, ..)| !ok).map(|(_, key, rule)| format!("`{at}.{key}` {rule}")).collect()
    }

    /// Whether a window with these counts pauses its country.
    pub fn trips(&self, conversion: Conversion) -> bool {
        conversion.sends >= self.min_sends
            && f64::from(conversion.verified) < self.min_conversion * f64::from(conversion.sends)
    }
}

/// A pause this request started, for its log line and metric ([`crate::telemetry`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PauseStarted {
    pub region: String,
    pub conversion: Conversion,
    pub min_conversion: f64,
    pub until: u64,
}

/// The client a guard judges for: its id, its breaker and its limits (a pause goes into the
/// shares of its country cap).
#[derive(Clone, Copy)]
pub struct Guarded<'a> {
    pub client_id: &'a str,
    pub guard: &'a FraudGuard,
    pub limits: &'a Limits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_trips_on_enough_sends_and_too_few_verifications() {
        let guard = FraudGuard::default();
        assert!(!guard.trips(Conversion { sends: 29, verified: 0 }), "too few sends to judge");
        assert!(guard.trips(Conversion { sends: 30, verified: 8 }), "8 of 30 is below 30%");
        assert!(!guard.trips(Conversion { sends: 30, verified: 9 }), "9 of 30 is 30%");
        let off = FraudGuard { min_conversion: 0.0, ..guard.clone() };
        assert!(!off.trips(Conversion { sends: 1000, verified: 0 }), "0 turns it off");
    }

    #[test]
    fn client_settings_override_the_top_level_key_by_key() {
        let top =
            RawFraudGuard { min_sends: Some(50), ..RawFraudGuard::default() }.over(&FraudGuard::default());
        let client = RawFraudGuard { pause_secs: Some(600), ..RawFraudGuard::default() }.over(&top);
        assert_eq!((client.min_sends, client.pause_secs, client.window_secs), (50, 600, 3600));
        let bad = FraudGuard { min_conversion: 1.5, window_secs: 10, ..FraudGuard::default() };
        let problems = bad.problems("fraud_guard");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("`fraud_guard.min_conversion`"), "{problems:?}");
    }
}
