//! The in-memory store: the default of `local-api` and the reference the DynamoDB store is tested
//! against. One mutex makes each operation atomic, as one conditional write is in DynamoDB. Like
//! the DynamoDB store it takes the time from its callers (`now`, a verification's `created_at`).

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;

use super::{
    Claim, ClaimOutcome, ConversionEvent, ConversionWindow, CounterKey, CountryPause, LeaseAfter, LeaseId,
    NumberKey, PhoneKey, PhoneRecord, Progress, SendReservation, Session, SessionKey, StateStore, StoreError,
    Verification, VerificationKey, judge_claim, judge_reservation,
};
use crate::fraud_guard::Conversion;
use crate::limits::{Counted, DAY_SECS, PhoneCounters, RateLimited, window_index};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    verifications: HashMap<VerificationKey, Verification>,
    sessions: HashMap<SessionKey, Session>,
    phones: HashMap<PhoneKey, Phone>,
    /// Per (number, day number): its sends and its wrong codes of that day.
    numbers: HashMap<(NumberKey, u64), NumberDay>,
    /// Window counts per (counter key, window number).
    counts: HashMap<(CounterKey, u64), Count>,
    /// Conversion windows per (key, window number): (the window's end, the counts, paused until).
    conversions: HashMap<(CounterKey, u64), (u64, Conversion, u64)>,
    /// The `now` of the last purge of expired items.
    purged_at: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    window_end: u64,
    counted: Counted,
}

#[derive(Clone, Copy, Debug, Default)]
struct NumberDay {
    sends: u32,
    failures: u32,
    last_sent_at: Option<u64>,
}

/// A phone record with its fixed windows as stored; [`State::counters`] reads it at a given time.
#[derive(Clone, Debug, Default)]
struct Phone {
    current: Option<VerificationKey>,
    window: (u64, u32),
    day: (u64, u32),
    last_sent_at: Option<u64>,
    failures: u32,
    failures_reset_at: u64,
    expires_at: u64,
}

impl Phone {
    /// Keeps the record for a day after its last use (DynamoDB: the TTL of the phone item).
    fn touch(&mut self, now: u64) {
        self.expires_at = self.expires_at.max(now + DAY_SECS);
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written record (every write is one
        // map operation), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// The counters of `phone_key` and its number at `now`.
    fn counters(
        &self,
        phone_key: &PhoneKey,
        number_key: &NumberKey,
        window_secs: u64,
        now: u64,
    ) -> PhoneCounters {
        let count_in = |(index, count): (u64, u32), current: u64| if index == current { count } else { 0 };
        let number =
            self.numbers.get(&(number_key.clone(), window_index(now, DAY_SECS))).copied().unwrap_or_default();
        let phone = self.phones.get(phone_key).cloned().unwrap_or_default();
        PhoneCounters {
            day_sends: number.sends,
            number_last_sent_at: number.last_sent_at,
            day_failures: number.failures,
            window_sends: count_in(phone.window, window_index(now, window_secs)),
            network_day_sends: count_in(phone.day, window_index(now, DAY_SECS)),
            last_sent_at: phone.last_sent_at,
            failures: phone.failures,
            failures_reset_at: phone.failures_reset_at,
        }
    }

    /// The verification, if the caller still holds its lease.
    fn leased(&mut self, key: &VerificationKey, lease_id: &LeaseId) -> Result<&mut Verification, StoreError> {
        self.verifications
            .get_mut(key)
            .filter(|v| v.lease.as_ref().is_some_and(|l| l.id == *lease_id))
            .ok_or(StoreError::LeaseLost)
    }

    /// What DynamoDB's TTL does for the table: a long-running local-api does not grow forever.
    /// Times are whole seconds, so one purge per second removes exactly what a purge on every
    /// write would; a purge scans every item, and on every write it made a busy local-api's
    /// requests cost time linear in the number of verifications of the last minutes
    /// (BENCHMARKS.md, "Tuning log").
    fn purge_expired(&mut self, now: u64) {
        if now <= self.purged_at {
            return;
        }
        self.purged_at = now;
        self.verifications.retain(|_, v| v.expires_at > now);
        self.sessions.retain(|_, s| s.expires_at > now);
        self.phones.retain(|_, p| p.expires_at > now);
        // A pause outlives its hour's count only as far as the next hour's count, which carries it too.
        self.counts.retain(|_, count| count.window_end > now);
        self.conversions.retain(|_, (window_end, ..)| *window_end > now);
        let today = window_index(now, DAY_SECS);
        self.numbers.retain(|(_, day), _| *day == today);
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn reserve_send(
        &self,
        reservation: &SendReservation,
    ) -> Result<Result<(), RateLimited>, StoreError> {
        let mut state = self.lock();
        let now = reservation.now;
        state.purge_expired(now);
        let slots: Vec<(CounterKey, u64)> = reservation
            .counts
            .iter()
            .map(|count| (count.key.clone(), window_index(now, count.window_secs)))
            .collect();
        let counted: Vec<Counted> =
            slots.iter().map(|slot| state.counts.get(slot).map(|c| c.counted).unwrap_or_default()).collect();
        let window_secs = reservation.limits.send_window_secs;
        let counters = state.counters(&reservation.phone_key, &reservation.number_key, window_secs, now);
        if let Err(limited) = judge_reservation(&counters, &counted, reservation) {
            return Ok(Err(limited));
        }
        let number =
            state.numbers.entry((reservation.number_key.clone(), window_index(now, DAY_SECS))).or_default();
        number.sends += 1;
        number.last_sent_at = Some(now);
        let phone = state.phones.entry(reservation.phone_key.clone()).or_default();
        phone.window = (window_index(now, window_secs), counters.window_sends + 1);
        phone.day = (window_index(now, DAY_SECS), counters.network_day_sends + 1);
        phone.last_sent_at = Some(now);
        phone.touch(now);
        for (slot, count) in slots.into_iter().zip(&reservation.counts) {
            let window_end = (slot.1 + 1) * count.window_secs;
            state.counts.entry(slot).or_insert(Count { window_end, ..Count::default() }).counted.n += 1;
        }
        Ok(Ok(()))
    }

    async fn count_conversion(
        &self,
        window: &ConversionWindow,
        event: ConversionEvent,
    ) -> Result<Conversion, StoreError> {
        let mut state = self.lock();
        let window_end = (window.window + 1) * window.window_secs;
        let slot = (window.key.clone(), window.window);
        let (_, conversion, _) =
            state.conversions.entry(slot).or_insert((window_end, Conversion::default(), 0));
        match event {
            ConversionEvent::Sent => conversion.sends += 1,
            ConversionEvent::Verified => conversion.verified += 1,
        }
        Ok(*conversion)
    }

    async fn pause_country(&self, pause: &CountryPause) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let window_end = (pause.window.window + 1) * pause.window.window_secs;
        let slot = (pause.window.key.clone(), pause.window.window);
        let (_, _, paused_until) =
            state.conversions.entry(slot).or_insert((window_end, Conversion::default(), 0));
        let starts = *paused_until <= pause.now;
        if starts {
            *paused_until = pause.until;
        }
        // The pause that is on (started here or before), never a later end.
        let until = *paused_until;
        for (key, window, window_secs) in &pause.counts {
            let window_end = (window + 1) * window_secs;
            let count = state
                .counts
                .entry((key.clone(), *window))
                .or_insert(Count { window_end, ..Count::default() });
            count.counted.paused_until = count.counted.paused_until.max(Some(until));
        }
        Ok(starts)
    }

    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.purge_expired(verification.created_at);
        let phone = state.phones.entry(verification.phone_key.clone()).or_default();
        phone.current = Some(verification.key.clone());
        phone.touch(verification.created_at);
        state.verifications.insert(verification.key.clone(), verification.clone());
        Ok(())
    }

    async fn get_verification(
        &self,
        key: &VerificationKey,
        now: u64,
    ) -> Result<Option<Verification>, StoreError> {
        Ok(self.lock().verifications.get(key).filter(|v| v.expires_at > now).cloned())
    }

    async fn phone_standing(
        &self,
        verification: &Verification,
        send_window_secs: u64,
        now: u64,
    ) -> Result<Option<PhoneRecord>, StoreError> {
        let state = self.lock();
        Ok(state.phones.get(&verification.phone_key).map(|p| PhoneRecord {
            current: p.current.clone(),
            counters: state.counters(
                &verification.phone_key,
                &verification.number_key(),
                send_window_secs,
                now,
            ),
        }))
    }

    async fn claim_verification(
        &self,
        key: &VerificationKey,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        let phone = state.verifications.get(key).map(|v| PhoneRecord {
            current: state.phones.get(&v.phone_key).and_then(|p| p.current.clone()),
            // Only the failure counts matter to a claim; windows do not.
            counters: state.counters(&v.phone_key, &v.number_key(), DAY_SECS, claim.now),
        });
        let stored = state.verifications.get_mut(key);
        if let Some(denied) = judge_claim(stored.as_deref(), phone.as_ref(), claim) {
            return Ok(denied);
        }
        let verification = stored.expect("judge_claim grants only an existing verification");
        verification.lease = Some(claim.lease.clone());
        Ok(ClaimOutcome::Claimed(verification.clone()))
    }

    async fn record_wrong_code(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        ends_verification: bool,
        now: u64,
    ) -> Result<u32, StoreError> {
        let mut state = self.lock();
        let stored = state.leased(&verification.key, lease_id)?;
        stored.wrong_codes = if ends_verification {
            stored.max_wrong_codes
        } else {
            (stored.wrong_codes + 1).min(stored.max_wrong_codes)
        };
        stored.lease = None;
        let attempts_left = stored.attempts_left();
        state
            .numbers
            .entry((verification.number_key(), window_index(now, DAY_SECS)))
            .or_default()
            .failures += 1;
        let phone = state.phones.entry(verification.phone_key.clone()).or_default();
        phone.failures = if phone.failures_reset_at > now { phone.failures + 1 } else { 1 };
        phone.failures_reset_at = now + DAY_SECS;
        phone.touch(now);
        Ok(attempts_left)
    }

    async fn save_progress(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
        progress: &Progress,
        lease: LeaseAfter,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let verification = state.leased(key, lease_id)?;
        verification.progress = progress.clone();
        if lease == LeaseAfter::Released {
            verification.lease = None;
        }
        Ok(())
    }

    async fn discard_verification(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.leased(key, lease_id)?;
        state.verifications.remove(key);
        Ok(())
    }

    async fn complete_verification(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        session: &Session,
        sealed_session: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let completed = state.leased(&verification.key, lease_id)?;
        completed.progress = Progress::Completed { sealed_session: sealed_session.to_owned() };
        completed.lease = None;
        // The phone's `current` still names it, so the same request retried finds it.
        if let Some(phone) = state.phones.get_mut(&verification.phone_key) {
            phone.failures = 0;
        }
        state.sessions.insert(session.key.clone(), session.clone());
        Ok(())
    }

    async fn get_session(&self, key: &SessionKey, now: u64) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.get(key).filter(|s| s.expires_at > now).cloned())
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.lock().sessions.remove(key);
        Ok(())
    }
}
