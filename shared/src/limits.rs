//! Limits against SMS pumping and code guessing, and the one place that decides them.
//!
//! Every SMS costs money and every code can be guessed, so before the upstream is asked to send
//! anything the backend checks, per client:
//! - sends per phone per day (10), and, per phone and source network, in a short window (3 per
//!   10 min) with a resend delay that grows with each send of the day (30 s, 60 s, 120 s, … capped
//!   at 30 min);
//! - starts per source IP per hour (50; IPv6 counted per /64);
//! - against SMS pumping: sends per client per day (10000), per client and country per hour
//!   (1000), and per number range (the number but its last 3 digits) per hour (10);
//! - consecutive wrong codes per phone and source network across verifications (20, then locked
//!   for a day; a new code does not reset the count, a verified number does), and wrong codes per
//!   phone per day from all networks (100, NIST 800-63B's cap). Scoped to the network so that a
//!   stranger who knows the number and guesses from their network cannot lock out its owner,
//!   who verifies from another;
//! - wrong codes per verification (5).
//!
//! Defaults follow `../shared/reference/abuse-and-limits.md` (Twilio Verify, Auth0, NIST 800-63B).
//! The counters live in the state store; both stores call the `judge_*` functions here, so the
//! in-memory and the DynamoDB store decide alike.

use std::net::IpAddr;

use serde::Deserialize;

pub const DAY_SECS: u64 = 86_400;
pub const HOUR_SECS: u64 = 3_600;
const MAX_RESEND_DELAYS: usize = 20;

/// The limits of one client, every value resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_wrong_codes: u32,
    pub max_failures_per_phone: u32,
    pub max_failures_per_phone_day: u32,
    pub sends_per_phone_window: u32,
    pub send_window_secs: u64,
    pub sends_per_phone_day: u32,
    /// Delay before the 2nd, 3rd, … send of a day to one phone; the last value repeats.
    pub resend_delays_secs: Vec<u64>,
    pub starts_per_ip_hour: u32,
    pub sends_per_client_day: u32,
    pub sends_per_country_hour: u32,
    pub sends_per_range_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_wrong_codes: 5,
            max_failures_per_phone: 20,
            max_failures_per_phone_day: 100,
            sends_per_phone_window: 3,
            send_window_secs: 600,
            sends_per_phone_day: 10,
            resend_delays_secs: vec![30, 60, 120, 300, 600, 1800],
            starts_per_ip_hour: 50,
            sends_per_client_day: 10_000,
            sends_per_country_hour: 1_000,
            sends_per_range_hour: 10,
        }
    }
}

/// The limits as written in the config: every key optional; a client's keys override the
/// top-level `limits`, which override the defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_wrong_codes: Option<u32>,
    pub max_failures_per_phone: Option<u32>,
    pub max_failures_per_phone_day: Option<u32>,
    pub sends_per_phone_window: Option<u32>,
    pub send_window_secs: Option<u64>,
    pub sends_per_phone_day: Option<u32>,
    pub resend_delays_secs: Option<Vec<u64>>,
    pub starts_per_ip_hour: Option<u32>,
    pub sends_per_client_day: Option<u32>,
    pub sends_per_country_hour: Option<u32>,
    pub sends_per_range_hour: Option<u32>,
}

impl RawLimits {
    /// `self` over `base`, field by field.
    pub fn over(&self, base: &Limits) -> Limits {
        Limits {
            max_wrong_codes: self.max_wrong_codes.unwrap_or(base.max_wrong_codes),
            max_failures_per_phone: self.max_failures_per_phone.unwrap_or(base.max_failures_per_phone),
            max_failures_per_phone_day: self
                .max_failures_per_phone_day
                .unwrap_or(base.max_failures_per_phone_day),
            sends_per_phone_window: self.sends_per_phone_window.unwrap_or(base.sends_per_phone_window),
            send_window_secs: self.send_window_secs.unwrap_or(base.send_window_secs),
            sends_per_phone_day: self.sends_per_phone_day.unwrap_or(base.sends_per_phone_day),
            resend_delays_secs: self
                .resend_delays_secs
                .clone()
                .unwrap_or_else(|| base.resend_delays_secs.clone()),
            starts_per_ip_hour: self.starts_per_ip_hour.unwrap_or(base.starts_per_ip_hour),
            sends_per_client_day: self.sends_per_client_day.unwrap_or(base.sends_per_client_day),
            sends_per_country_hour: self.sends_per_country_hour.unwrap_or(base.sends_per_country_hour),
            sends_per_range_hour: self.sends_per_range_hour.unwrap_or(base.sends_per_range_hour),
        }
    }
}

impl Limits {
    /// What is wrong with these limits, for the config error (`at` names where they came from).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let rules = [
            ((1..=10).contains(&self.max_wrong_codes), "max_wrong_codes", "must be 1 to 10"),
            (
                self.max_failures_per_phone >= self.max_wrong_codes,
                "max_failures_per_phone",
                "must be at least max_wrong_codes",
            ),
            (
                self.max_failures_per_phone_day >= self.max_failures_per_phone,
                "max_failures_per_phone_day",
                "must be at least max_failures_per_phone",
            ),
            (self.sends_per_phone_window >= 1, "sends_per_phone_window", "must be at least 1"),
            ((60..=DAY_SECS).contains(&self.send_window_secs), "send_window_secs", "must be 60 to 86400"),
            (
                self.sends_per_phone_day >= self.sends_per_phone_window,
                "sends_per_phone_day",
                "must be at least sends_per_phone_window",
            ),
            (
                // DynamoDB writes one condition per delay: keep the expression well under its 4 KB.
                (1..=MAX_RESEND_DELAYS).contains(&self.resend_delays_secs.len())
                    && self.resend_delays_secs.iter().all(|d| *d <= DAY_SECS),
                "resend_delays_secs",
                "must list 1 to 20 delays of at most 86400 s",
            ),
            (self.starts_per_ip_hour >= 1, "starts_per_ip_hour", "must be at least 1"),
            (self.sends_per_client_day >= 1, "sends_per_client_day", "must be at least 1"),
            (self.sends_per_country_hour >= 1, "sends_per_country_hour", "must be at least 1"),
            (self.sends_per_range_hour >= 1, "sends_per_range_hour", "must be at least 1"),
        ];
        rules.iter().filter(|(ok, ..)| !ok).map(|(_, key, rule)| format!("`{at}.{key}` {rule}")).collect()
    }

    /// The delay required after the `sends_today`-th send of the day before the next one.
    fn resend_delay(&self, sends_today: u32) -> u64 {
        let index = (sends_today.max(1) as usize - 1).min(self.resend_delays_secs.len() - 1);
        self.resend_delays_secs[index]
    }
}

/// Which limit said no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    PhoneLocked,
    PhoneDailyFailures,
    PhoneDaily,
    PhoneWindow,
    ResendDelay,
    IpHourly,
    ClientDaily,
    CountryHourly,
    RangeHourly,
    CountryPaused,
}

impl Limit {
    /// Every limit, for what lists them (the query test, the docs' checks).
    pub const ALL: [Self; 10] = [
        Self::PhoneLocked,
        Self::PhoneDailyFailures,
        Self::PhoneDaily,
        Self::PhoneWindow,
        Self::ResendDelay,
        Self::IpHourly,
        Self::ClientDaily,
        Self::CountryHourly,
        Self::RangeHourly,
        Self::CountryPaused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::PhoneLocked => "phone_failures",
            Self::PhoneDailyFailures => "phone_daily_failures",
            Self::PhoneDaily => "phone_daily_sends",
            Self::PhoneWindow => "phone_window_sends",
            Self::ResendDelay => "resend_delay",
            Self::IpHourly => "ip_hourly_starts",
            Self::ClientDaily => "client_daily_sends",
            Self::CountryHourly => "country_hourly_sends",
            Self::RangeHourly => "range_hourly_sends",
            Self::CountryPaused => "country_paused",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub limit: Limit,
    /// Seconds until the limit allows the request again (at least 1).
    pub retry_after: u64,
}

impl RateLimited {
    fn new(limit: Limit, retry_after: u64) -> Self {
        Self { limit, retry_after: retry_after.max(1) }
    }
}

/// A phone's counters as they stand at `now` (a store maps its items onto this; counts of a
/// window or day that has ended read as 0): the number's own today, from every network, and the
/// rest as the source network the request comes from sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhoneCounters {
    /// SMS to the number today, from every network.
    pub day_sends: u32,
    /// Wrong codes for the number today, from every network.
    pub day_failures: u32,
    /// The last SMS to the number today, from any network.
    pub number_last_sent_at: Option<u64>,
    /// SMS to the number from this network in the current window.
    pub window_sends: u32,
    /// SMS to the number from this network today (the resend delay grows with them), and when
    /// the last of them was sent.
    pub network_day_sends: u32,
    pub last_sent_at: Option<u64>,
    /// Consecutive wrong codes from this network; they count until `failures_reset_at`.
    pub failures: u32,
    pub failures_reset_at: u64,
}

impl PhoneCounters {
    pub fn live_failures(&self, now: u64) -> u32 {
        if self.failures_reset_at > now { self.failures } else { 0 }
    }
}

/// Window and day numbers (start of time / length), the keys fixed-window counters are filed under.
pub fn window_index(now: u64, window_secs: u64) -> u64 {
    now / window_secs
}

/// May a code for this phone be tried (a send or a claim)? Not if its network has failed too
/// often in a row, or the number too often today.
pub fn judge_failures(phone: &PhoneCounters, limits: &Limits, now: u64) -> Result<(), RateLimited> {
    if phone.live_failures(now) >= limits.max_failures_per_phone {
        return Err(RateLimited::new(Limit::PhoneLocked, phone.failures_reset_at - now));
    }
    if phone.day_failures >= limits.max_failures_per_phone_day {
        return Err(RateLimited::new(Limit::PhoneDailyFailures, day_end(now) - now));
    }
    Ok(())
}

/// The end of the UTC day of `now`.
fn day_end(now: u64) -> u64 {
    (window_index(now, DAY_SECS) + 1) * DAY_SECS
}

/// May one more SMS go to this phone? The one rule for sends, applied by every store.
pub fn judge_send(phone: &PhoneCounters, limits: &Limits, now: u64) -> Result<(), RateLimited> {
    judge_failures(phone, limits, now)?;
    if phone.day_sends >= limits.sends_per_phone_day {
        return Err(RateLimited::new(Limit::PhoneDaily, day_end(now) - now));
    }
    if phone.window_sends >= limits.sends_per_phone_window {
        let window_end = (window_index(now, limits.send_window_secs) + 1) * limits.send_window_secs;
        return Err(RateLimited::new(Limit::PhoneWindow, window_end - now));
    }
    // The delay grows with this network's sends of the day; across networks the number still
    // waits the first delay between two SMS, so many networks cannot flood one number.
    let from_network = phone
        .last_sent_at
        .filter(|_| phone.network_day_sends > 0)
        .map(|last| last + limits.resend_delay(phone.network_day_sends));
    let from_any = phone.number_last_sent_at.map(|last| last + limits.resend_delay(1));
    if let Some(next) = from_network.max(from_any).filter(|next| *next > now) {
        return Err(RateLimited::new(Limit::ResendDelay, next - now));
    }
    Ok(())
}

/// A fixed-window count a send is counted on besides the phone's own: the source network's
/// starts, the client's day, the client's country hour, the number range's hour. The store keeps
/// one item per window (`K` is its key type), so a new window starts from 0 without a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowCount<K> {
    pub limit: Limit,
    pub key: K,
    pub window_secs: u64,
    /// The most this item may count in one window.
    pub max: u32,
}

/// What a window count's item holds in the current window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub n: u32,
    /// Set by the fraud guard on a country's counts (the only counts it pauses).
    pub paused_until: Option<u64>,
}

impl<K> WindowCount<K> {
    /// May one more be counted, with `counted` in the current window?
    pub fn judge(&self, counted: Counted, now: u64) -> Result<(), RateLimited> {
        if let Some(until) = counted.paused_until.filter(|until| *until > now) {
            return Err(RateLimited::new(Limit::CountryPaused, until - now));
        }
        if counted.n >= self.max {
            let window_end = (window_index(now, self.window_secs) + 1) * self.window_secs;
            return Err(RateLimited::new(self.limit, window_end - now));
        }
        Ok(())
    }
}

/// A counter every send of a client (or of a client's country) passes is a hot item: writes to one
/// DynamoDB item serialize, and transactions on it conflict. So a cap of `total` is split over
/// [`shards_for`] items, each with its share, and a send counts on the share `pick` (a digest of
/// its phone) selects. Shares add up to `total` exactly, so the cap is never exceeded; a send can
/// be refused while another share still has room, which is what the split costs in accuracy (see
/// the README's limits table). Returns (shard, its share).
pub fn shard(total: u32, pick: u64) -> (u32, u32) {
    let shards = shards_for(total);
    let index = (pick % u64::from(shards)) as u32;
    (index, total / shards + u32::from(index < total % shards))
}

/// Sends per shard that keep a shard's share large enough to be near the cap's accuracy.
pub const SENDS_PER_SHARD: u32 = 1_000;
/// More shards than this buy nothing at the stage's rate limits.
pub const MAX_SHARDS: u32 = 16;

/// How many items a cap of `total` is split over: one per [`SENDS_PER_SHARD`], 1 to [`MAX_SHARDS`].
pub fn shards_for(total: u32) -> u32 {
    (total / SENDS_PER_SHARD).clamp(1, MAX_SHARDS)
}

/// The range a number belongs to: its E.164 form without the last 3 digits (pumping bots walk
/// through consecutive numbers of one range).
pub fn number_range(e164: &str) -> &str {
    &e164[..e164.len().saturating_sub(3)]
}

/// The part of a source address that identifies one client network: the whole IPv4 address, or
/// the /64 of an IPv6 address (one subscriber gets a whole /64).
pub fn ip_bucket(ip: &str) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn sends_are_limited_per_window_and_day_and_spaced_by_a_growing_delay() {
        let limits = Limits::default();
        let fresh = PhoneCounters::default();
        assert_eq!(judge_send(&fresh, &limits, NOW), Ok(()));

        let just_sent = PhoneCounters {
            window_sends: 1,
            day_sends: 1,
            network_day_sends: 1,
            last_sent_at: Some(NOW - 10),
            ..fresh.clone()
        };
        assert_eq!(judge_send(&just_sent, &limits, NOW), Err(RateLimited::new(Limit::ResendDelay, 20)));
        let later = PhoneCounters { last_sent_at: Some(NOW - 30), ..just_sent.clone() };
        assert_eq!(judge_send(&later, &limits, NOW), Ok(()));
        let second = PhoneCounters {
            day_sends: 2,
            network_day_sends: 2,
            window_sends: 2,
            last_sent_at: Some(NOW - 30),
            ..fresh.clone()
        };
        assert_eq!(judge_send(&second, &limits, NOW).unwrap_err().retry_after, 30, "the delay doubles");
        let many = PhoneCounters {
            day_sends: 9,
            network_day_sends: 9,
            window_sends: 0,
            last_sent_at: Some(NOW - 1000),
            ..fresh.clone()
        };
        assert_eq!(judge_send(&many, &limits, NOW).unwrap_err().retry_after, 800, "capped at 30 min");

        let window_full = PhoneCounters {
            window_sends: 3,
            day_sends: 3,
            network_day_sends: 3,
            last_sent_at: Some(NOW - 3600),
            ..fresh.clone()
        };
        assert_eq!(judge_send(&window_full, &limits, NOW).unwrap_err().limit, Limit::PhoneWindow);
        let day_full = PhoneCounters { day_sends: 10, ..fresh.clone() };
        assert_eq!(judge_send(&day_full, &limits, NOW).unwrap_err().limit, Limit::PhoneDaily);
    }

    #[test]
    fn consecutive_failures_lock_the_phone_until_they_expire() {
        let limits = Limits::default();
        let locked = PhoneCounters { failures: 20, failures_reset_at: NOW + 500, ..PhoneCounters::default() };
        assert_eq!(judge_send(&locked, &limits, NOW), Err(RateLimited::new(Limit::PhoneLocked, 500)));
        let expired = PhoneCounters { failures_reset_at: NOW, ..locked };
        assert_eq!(judge_send(&expired, &limits, NOW), Ok(()));
        // Another network's sends do not delay this one's; the number's wrong codes of the day
        // from all networks are capped.
        let other_network =
            PhoneCounters { day_sends: 4, number_last_sent_at: Some(NOW - 30), ..PhoneCounters::default() };
        assert_eq!(judge_send(&other_network, &limits, NOW), Ok(()));
        let just_sent_elsewhere = PhoneCounters { number_last_sent_at: Some(NOW - 10), ..other_network };
        assert_eq!(
            judge_send(&just_sent_elsewhere, &limits, NOW),
            Err(RateLimited::new(Limit::ResendDelay, 20))
        );
        let guessed = PhoneCounters { day_failures: 100, ..PhoneCounters::default() };
        let limited = judge_send(&guessed, &limits, NOW).unwrap_err();
        assert_eq!(
            (limited.limit, limited.retry_after),
            (Limit::PhoneDailyFailures, DAY_SECS - NOW % DAY_SECS)
        );
    }

    #[test]
    fn window_counts_refuse_at_their_cap_until_the_window_ends() {
        let count = WindowCount { limit: Limit::IpHourly, key: (), window_secs: HOUR_SECS, max: 50 };
        let counted = |n| Counted { n, paused_until: None };
        assert_eq!(count.judge(counted(49), NOW), Ok(()));
        let paused = Counted { n: 0, paused_until: Some(NOW + 5) };
        assert_eq!(count.judge(paused, NOW), Err(RateLimited::new(Limit::CountryPaused, 5)));
        assert_eq!(
            count.judge(Counted { paused_until: Some(NOW), ..paused }, NOW),
            Ok(()),
            "the pause is over"
        );
        let limited = count.judge(counted(50), NOW).unwrap_err();
        assert_eq!(limited.limit, Limit::IpHourly);
        assert_eq!(limited.retry_after, HOUR_SECS - NOW % HOUR_SECS);
    }

    /// Apps and operators act on `data.limit`: the README's field table and the OpenAPI contract
    /// name every one.
    #[test]
    fn every_limit_is_documented() {
        let readme = include_str!("../../README.md");
        let row = readme.lines().find(|l| l.starts_with("| `limit` |")).expect("the README's `limit` row");
        let openapi = include_str!("../../openapi.yaml");
        let names: std::collections::BTreeSet<_> = Limit::ALL.iter().map(|l| l.name()).collect();
        assert_eq!(names.len(), Limit::ALL.len(), "listed once each");
        for name in names {
            assert!(row.contains(&format!("`{name}`")), "README: {name}");
            assert!(
                openapi.matches(&format!("`{name}`")).count() >= 2,
                "openapi.yaml (the 429 and data.limit): {name}"
            );
        }
    }

    #[test]
    fn shards_split_a_cap_exactly() {
        for total in [1, 7, 999, 1_000, 2_500, 10_000, 1_000_000] {
            let shards = shards_for(total);
            let shares: Vec<u32> = (0..u64::from(shards)).map(|pick| shard(total, pick).1).collect();
            assert_eq!(shares.iter().sum::<u32>(), total, "{total}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1, "{total}");
            assert_eq!(shard(total, u64::from(shards) + 1), shard(total, 1), "picks wrap around");
        }
        assert_eq!((shards_for(999), shards_for(10_000), shards_for(u32::MAX)), (1, 10, MAX_SHARDS));
        assert_eq!(number_range("+447400123456"), "+447400123");
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        assert_eq!(ip_bucket("2001:db8:1:2:aaaa::1"), ip_bucket("2001:db8:1:2:bbbb::2"));
        assert_ne!(ip_bucket("2001:db8:1:2::1"), ip_bucket("2001:db8:1:3::1"));
        assert_eq!(ip_bucket("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip_bucket("::ffff:203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip_bucket("not an ip"), None);
    }

    #[test]
    fn client_limits_override_top_level_limits_field_by_field() {
        let top =
            RawLimits { sends_per_phone_day: Some(20), ..RawLimits::default() }.over(&Limits::default());
        let client = RawLimits { max_wrong_codes: Some(3), ..RawLimits::default() }.over(&top);
        assert_eq!(
            (client.max_wrong_codes, client.sends_per_phone_day, client.starts_per_ip_hour),
            (3, 20, 50)
        );
        assert!(client.problems("clients[0].limits").is_empty());
        let bad = Limits { max_wrong_codes: 0, resend_delays_secs: vec![], ..Limits::default() };
        let problems = bad.problems("limits");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("`limits.max_wrong_codes` must be 1 to 10"), "{problems:?}");
    }
}
