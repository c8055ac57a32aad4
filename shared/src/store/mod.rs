//! The state that makes the flow safe, behind one small interface.
//!
//! Four kinds of record, all expiring:
//! - a [`Verification`]: one pending `/sms/auth` → `/sms/token` flow, keyed by the digest of its
//!   `auth_req_id`;
//! - a [`Session`]: a verified phone, keyed by the digest of its session token;
//! - a phone record, per client, phone and source network: send counters, consecutive wrong
//!   codes, and which verification is the phone's current one (a new start from the network
//!   replaces the older); and per client and number, across networks, its sends and wrong codes
//!   of the day;
//! - fixed-window counters a send counts on besides its phone's: starts per source network and
//!   hour, sends per client and day, per client and country and hour, per number range and hour.
//!
//! Every change that races with another request is one atomic step of the store (a conditional
//! write in DynamoDB, one lock in memory), and the rules of those steps are written once here, in
//! [`judge_claim`], so both implementations decide alike. Expired records read as absent even
//! before the store deletes them.

pub mod dynamo;
mod keys;
pub mod memory;
mod timed;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{
    crypto,
    fraud_guard::Conversion,
    limits::{
        Counted, DAY_SECS, HOUR_SECS, Limit, Limits, PhoneCounters, RateLimited, WindowCount, judge_failures,
        judge_send, number_range, shard,
    },
    phone::PhoneNumber,
};

pub use dynamo::DynamoStore;
pub use keys::{CounterKey, LeaseId, NumberKey, PhoneKey, SessionKey, VerificationKey};
pub use memory::MemoryStore;
pub use timed::Timed;

/// How far a verification got, saved before each next upstream call (and under the lease), so a
/// retried `/sms/token`, even after a crash, resumes there instead of resubmitting a code the
/// upstream already accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    #[default]
    AwaitingCode,
    /// The SMS callback accepted the code; the token exchange is next.
    CodeAccepted,
    /// The token exchange succeeded; the access token is kept sealed under the `auth_req_id`
    /// (see [`crypto::seal`]) because the upstream redeems an `auth_req_id` only once.
    TokenIssued { sealed_access_token: String },
    /// Done: the session is open. Its token is kept sealed under a key only the caller who
    /// completed it holds (see [`crypto::seal_completion`]), so the same request retried after a
    /// lost answer gets the same session, for the rest of the verification's lifetime.
    Completed { sealed_session: String },
}

/// What a progress save does with the caller's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAfter {
    /// Kept: the caller goes on to the next upstream step.
    Kept,
    /// Released: the caller stops here; a retry may claim the verification at once.
    Released,
}

/// A `/sms/token` call's exclusive right to work on a verification until `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    pub until: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub key: VerificationKey,
    pub flow_id: String,
    pub nonce_digest: String,
    pub client_id: String,
    pub server_id: String,
    /// E.164; kept for the session, never logged in full.
    pub phone: String,
    /// The phone's region ([`PhoneNumber::region_or_global`]), kept so completing the
    /// verification needs no second parse.
    pub region: String,
    /// The phone record this verification counts against: the phone as the network it was
    /// started from sees it.
    pub phone_key: PhoneKey,
    /// Started for a configured test number: no upstream, a fixed code.
    pub test: bool,
    pub created_at: u64,
    pub expires_at: u64,
    pub poll_interval_secs: u64,
    pub wrong_codes: u32,
    pub max_wrong_codes: u32,
    pub progress: Progress,
    pub lease: Option<Lease>,
}

impl Verification {
    /// The number across networks, whose wrong codes of the day this verification's count too.
    pub fn number_key(&self) -> NumberKey {
        NumberKey::of(&self.client_id, &self.phone)
    }

    pub fn attempts_left(&self) -> u32 {
        self.max_wrong_codes.saturating_sub(self.wrong_codes)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub key: SessionKey,
    pub flow_id: String,
    pub client_id: String,
    pub server_id: String,
    pub phone: String,
    pub userinfo: Map<String, Value>,
    pub verified_at: u64,
    pub expires_at: u64,
}

/// Who asks to work on a verification, and the lease they want.
#[derive(Clone, Debug)]
pub struct Claim {
    pub client_id: String,
    pub server_id: String,
    pub nonce_digest: String,
    pub lease: Lease,
    pub now: u64,
    /// The client's limits (those of wrong codes per phone apply to a claim).
    pub limits: Limits,
}

/// A phone record as it stands at some `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhoneRecord {
    /// Key of the phone's current verification; older ones are replaced.
    pub current: Option<VerificationKey>,
    pub counters: PhoneCounters,
}

impl PhoneRecord {
    /// A phone record that lets `verification` be claimed: it is current, and nothing is locked.
    /// Judging with it first tells what the verification alone says (not found, exhausted, busy)
    /// before the phone's records are read.
    pub fn allowing(verification: &Verification) -> Self {
        Self { current: Some(verification.key.clone()), counters: PhoneCounters::default() }
    }
}

/// One SMS about to be sent: counted against the phone and every [`WindowCount`], or refused.
#[derive(Clone, Debug)]
pub struct SendReservation {
    pub phone_key: PhoneKey,
    pub number_key: NumberKey,
    /// In the order they are judged: the client's day, its country's hour, the number range's
    /// hour, then (with a source network) the network's starts.
    pub counts: Vec<WindowCount<CounterKey>>,
    pub limits: Limits,
    pub now: u64,
}

impl SendReservation {
    /// The reservation for an SMS from `client_id` to `phone`, started from `network` (an
    /// [`ip_bucket`](crate::limits::ip_bucket)) if known.
    pub fn new(
        client_id: &str,
        phone: &PhoneNumber,
        network: Option<&str>,
        limits: &Limits,
        now: u64,
    ) -> Self {
        let phone_key = PhoneKey::of(client_id, phone.e164(), network);
        let number_key = NumberKey::of(client_id, phone.e164());
        let pick = number_key.spread();
        let (client_shard, client_share) = shard(limits.sends_per_client_day, pick);
        let (country_shard, country_share) = shard(limits.sends_per_country_hour, pick);
        let region = phone.region_or_global();
        let count = |limit, key, window_secs, max| WindowCount { limit, key, window_secs, max };
        let mut counts = vec![
            count(Limit::ClientDaily, CounterKey::client(client_id, client_shard), DAY_SECS, client_share),
            count(
                Limit::CountryHourly,
                CounterKey::country(client_id, region, country_shard),
                HOUR_SECS,
                country_share,
            ),
            count(
                Limit::RangeHourly,
                CounterKey::range(client_id, number_range(phone.e164())),
                HOUR_SECS,
                limits.sends_per_range_hour,
            ),
        ];
        if let Some(bucket) = network {
            counts.push(count(
                Limit::IpHourly,
                CounterKey::ip(client_id, bucket),
                HOUR_SECS,
                limits.starts_per_ip_hour,
            ));
        }
        Self { phone_key, number_key, counts, limits: limits.clone(), now }
    }
}

/// One window of a client's conversion in a country ([`crate::fraud_guard`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionWindow {
    pub key: CounterKey,
    pub window: u64,
    pub window_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversionEvent {
    Sent,
    Verified,
}

/// A country's sends paused until `until`: each of `counts` (key, window, window length) carries
/// the pause, and `window` records it, so one call starts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountryPause {
    pub window: ConversionWindow,
    pub counts: Vec<(CounterKey, u64, u64)>,
    pub until: u64,
    pub now: u64,
}

#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "short-lived return value; boxing buys nothing")]
pub enum ClaimOutcome {
    /// The lease is ours; the record is returned as it now stands.
    Claimed(Verification),
    /// Unknown, expired, or not this caller's (client, server or nonce differ): one outcome for
    /// all, so the answer reveals nothing.
    NotFound,
    /// Another call holds a live lease.
    Busy { retry_after: u64 },
    /// No wrong-code attempts left.
    Exhausted,
    /// Too many wrong codes for this phone: in a row from its network, or today.
    PhoneLocked(RateLimited),
}

/// The one rule for claims, shared by every store: `None` grants the claim. `phone` is the
/// verification's phone record.
pub fn judge_claim(
    stored: Option<&Verification>,
    phone: Option<&PhoneRecord>,
    claim: &Claim,
) -> Option<ClaimOutcome> {
    let Some(v) = stored.filter(|v| v.expires_at > claim.now) else {
        return Some(ClaimOutcome::NotFound);
    };
    // Every comparison runs, in constant time, so timing does not tell which one failed.
    let same_client = crypto::constant_time_eq(&v.client_id, &claim.client_id);
    let same_server = crypto::constant_time_eq(&v.server_id, &claim.server_id);
    let same_nonce = crypto::constant_time_eq(&v.nonce_digest, &claim.nonce_digest);
    // A newer start for the same phone and client replaced this one.
    let current = phone.and_then(|p| p.current.as_ref()) == Some(&v.key);
    if !(same_client & same_server & same_nonce & current) {
        return Some(ClaimOutcome::NotFound);
    }
    let completed = matches!(v.progress, Progress::Completed { .. });
    if v.wrong_codes >= v.max_wrong_codes {
        // A completed one has no attempts to offer: it is used, as far as a guesser can tell.
        return Some(if completed { ClaimOutcome::NotFound } else { ClaimOutcome::Exhausted });
    }
    let counters = phone.map(|p| &p.counters).cloned().unwrap_or_default();
    if let Err(limited) = judge_failures(&counters, &claim.limits, claim.now) {
        return Some(ClaimOutcome::PhoneLocked(limited));
    }
    match &v.lease {
        Some(lease) if lease.until > claim.now => {
            Some(ClaimOutcome::Busy { retry_after: lease.until - claim.now })
        }
        _ => None,
    }
}

/// The one rule for sends, shared by every store: each of the reservation's window counts (with
/// `counted[i]` what the item of `counts[i]` holds), then the phone's counters. `Ok` means the
/// send may be counted.
pub fn judge_reservation(
    phone: &PhoneCounters,
    counted: &[Counted],
    reservation: &SendReservation,
) -> Result<(), RateLimited> {
    for (count, counted) in reservation.counts.iter().zip(counted) {
        count.judge(*counted, reservation.now)?;
    }
    judge_send(phone, &reservation.limits, reservation.now)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller's lease ended and another call took over (or finished) the verification.
    #[error("the lease on this verification was lost")]
    LeaseLost,
    /// The store could not be reached or refused the call; nothing was changed.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// The state store. Implementations: [`MemoryStore`] (local runs, tests) and [`DynamoStore`].
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Counts one SMS against the phone and the source network if [`judge_reservation`] allows
    /// it; otherwise changes nothing and says which limit refused.
    async fn reserve_send(
        &self,
        reservation: &SendReservation,
    ) -> Result<Result<(), RateLimited>, StoreError>;

    /// Counts one event in a conversion window (made on first use, expiring after it) and returns
    /// the window's counts with it.
    async fn count_conversion(
        &self,
        window: &ConversionWindow,
        event: ConversionEvent,
    ) -> Result<Conversion, StoreError>;

    /// Pauses a country's sends: `pause.window` records the pause unless one is on, and every
    /// count of `pause.counts` carries the end of the pause that is on (this one, or the one
    /// already on: never later, never shortened), so reservations refuse them. True when this call
    /// started the pause.
    async fn pause_country(&self, pause: &CountryPause) -> Result<bool, StoreError>;

    /// Saves a new pending verification and makes it its phone's current one (replacing any
    /// older verification of the same phone and client).
    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError>;

    /// A verification as stored, `None` when unknown or expired at `now`; read without a write
    /// (`/sms/status`).
    async fn get_verification(
        &self,
        key: &VerificationKey,
        now: u64,
    ) -> Result<Option<Verification>, StoreError>;

    /// The phone record of `verification` as it stands at `now`, its counters in full: what a new
    /// send to the phone from the verification's network would be judged on (`send_window_secs`:
    /// the client's window). Read without a write (`/sms/status`).
    async fn phone_standing(
        &self,
        verification: &Verification,
        send_window_secs: u64,
        now: u64,
    ) -> Result<Option<PhoneRecord>, StoreError>;

    /// Atomically grants `claim.lease` if [`judge_claim`] allows it.
    async fn claim_verification(
        &self,
        key: &VerificationKey,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Under the caller's lease: counts one wrong code (or, when `ends_verification`, uses up all
    /// attempts), counts a failure for the phone (they reset a day after the last) and one for
    /// its number's day, and releases the lease. Returns the attempts left. Never counts past the limit.
    async fn record_wrong_code(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        ends_verification: bool,
        now: u64,
    ) -> Result<u32, StoreError>;

    /// Under the caller's lease: saves `progress`, and keeps or releases the lease, so the same
    /// request retried (after this call gives up, or crashes) resumes from there.
    async fn save_progress(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
        progress: &Progress,
        lease: LeaseAfter,
    ) -> Result<(), StoreError>;

    /// Under the caller's lease: deletes a verification the upstream has ended.
    async fn discard_verification(&self, key: &VerificationKey, lease_id: &LeaseId)
    -> Result<(), StoreError>;

    /// Under the caller's lease, in one atomic step: marks the verification completed (with the
    /// sealed session token, lease released; it expires as it would have), creates the session,
    /// and clears the phone's failure count. Either all happen or none.
    async fn complete_verification(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        session: &Session,
        sealed_session: &str,
    ) -> Result<(), StoreError>;

    /// A live session, or `None` when unknown or expired.
    async fn get_session(&self, key: &SessionKey, now: u64) -> Result<Option<Session>, StoreError>;

    async fn delete_session(&self, key: &SessionKey) -> Result<(), StoreError>;
}
