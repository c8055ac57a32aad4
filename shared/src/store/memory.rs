//! The in-memory store: the default of `local-api` and the reference the DynamoDB store is tested
//! against. One mutex makes each operation atomic, as one conditional write is in DynamoDB.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;

use super::{
    Claim, ClaimOutcome, Progress, Session, StateStore, StoreError, Verification, judge_claim, now_epoch_secs,
};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    verifications: HashMap<String, Verification>,
    sessions: HashMap<String, Session>,
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
    /// The verification, if the caller still holds its lease.
    fn leased(&mut self, key: &str, lease_id: &str) -> Result<&mut Verification, StoreError> {
        self.verifications
            .get_mut(key)
            .filter(|v| v.lease.as_ref().is_some_and(|l| l.id == lease_id))
            .ok_or(StoreError::LeaseLost)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError> {
        let mut state = self.lock();
        // What DynamoDB's TTL does for the table: a long-running local-api does not grow forever.
        let now = now_epoch_secs();
        state.verifications.retain(|_, v| v.expires_at > now);
        state.sessions.retain(|_, s| s.expires_at > now);
        state.verifications.insert(verification.key.clone(), verification.clone());
        Ok(())
    }

    async fn claim_verification(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        let stored = state.verifications.get_mut(key);
        if let Some(denied) = judge_claim(stored.as_deref(), claim) {
            return Ok(denied);
        }
        let verification = stored.expect("judge_claim grants only an existing verification");
        verification.lease = Some(claim.lease.clone());
        Ok(ClaimOutcome::Claimed(verification.clone()))
    }

    async fn record_wrong_code(
        &self,
        key: &str,
        lease_id: &str,
        ends_verification: bool,
    ) -> Result<u32, StoreError> {
        let mut state = self.lock();
        let verification = state.leased(key, lease_id)?;
        verification.wrong_codes = if ends_verification {
            verification.max_wrong_codes
        } else {
            (verification.wrong_codes + 1).min(verification.max_wrong_codes)
        };
        verification.lease = None;
        Ok(verification.attempts_left())
    }

    async fn release_verification(
        &self,
        key: &str,
        lease_id: &str,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let verification = state.leased(key, lease_id)?;
        verification.progress = progress.clone();
        verification.lease = None;
        Ok(())
    }

    async fn discard_verification(&self, key: &str, lease_id: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.leased(key, lease_id)?;
        state.verifications.remove(key);
        Ok(())
    }

    async fn complete_verification(
        &self,
        key: &str,
        lease_id: &str,
        session: &Session,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.leased(key, lease_id)?;
        state.verifications.remove(key);
        state.sessions.insert(session.key.clone(), session.clone());
        Ok(())
    }

    async fn get_session(&self, key: &str, now: u64) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.get(key).filter(|s| s.expires_at > now).cloned())
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.lock().sessions.remove(key);
        Ok(())
    }
}
