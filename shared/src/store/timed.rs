//! A store that charges the time of every call to the request being served (see
//! [`crate::timings`]), around any other store: what [`crate::App`] and the session functions
//! ([`crate::app::session_store_from_env`]) hold, so no handler or flow step times a store call
//! itself.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Claim, ClaimOutcome, ConversionEvent, ConversionWindow, CountryPause, LeaseAfter, LeaseId, PhoneRecord,
    Progress, SendReservation, Session, SessionKey, StateStore, StoreError, Verification, VerificationKey,
};
use crate::{fraud_guard::Conversion, limits::RateLimited, timings::store_call};

pub struct Timed(pub Arc<dyn StateStore>);

#[async_trait]
impl StateStore for Timed {
    async fn reserve_send(
        &self,
        reservation: &SendReservation,
    ) -> Result<Result<(), RateLimited>, StoreError> {
        store_call(self.0.reserve_send(reservation)).await
    }

    async fn put_verification(&self, verification: &Verification) -> Result<(), StoreError> {
        store_call(self.0.put_verification(verification)).await
    }

    async fn count_conversion(
        &self,
        window: &ConversionWindow,
        event: ConversionEvent,
    ) -> Result<Conversion, StoreError> {
        store_call(self.0.count_conversion(window, event)).await
    }

    async fn pause_country(&self, pause: &CountryPause) -> Result<bool, StoreError> {
        store_call(self.0.pause_country(pause)).await
    }

    async fn get_verification(
        &self,
        key: &VerificationKey,
        now: u64,
    ) -> Result<Option<Verification>, StoreError> {
        store_call(self.0.get_verification(key, now)).await
    }

    async fn phone_standing(
        &self,
        verification: &Verification,
        send_window_secs: u64,
        now: u64,
    ) -> Result<Option<PhoneRecord>, StoreError> {
        store_call(self.0.phone_standing(verification, send_window_secs, now)).await
    }

    async fn claim_verification(
        &self,
        key: &VerificationKey,
        claim: &Claim,
    ) -> Result<ClaimOutcome, StoreError> {
        store_call(self.0.claim_verification(key, claim)).await
    }

    async fn record_wrong_code(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        ends_verification: bool,
        now: u64,
    ) -> Result<u32, StoreError> {
        store_call(self.0.record_wrong_code(verification, lease_id, ends_verification, now)).await
    }

    async fn save_progress(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
        progress: &Progress,
        lease: LeaseAfter,
    ) -> Result<(), StoreError> {
        store_call(self.0.save_progress(key, lease_id, progress, lease)).await
    }

    async fn discard_verification(
        &self,
        key: &VerificationKey,
        lease_id: &LeaseId,
    ) -> Result<(), StoreError> {
        store_call(self.0.discard_verification(key, lease_id)).await
    }

    async fn complete_verification(
        &self,
        verification: &Verification,
        lease_id: &LeaseId,
        session: &Session,
        sealed_session: &str,
    ) -> Result<(), StoreError> {
        store_call(self.0.complete_verification(verification, lease_id, session, sealed_session)).await
    }

    async fn get_session(&self, key: &SessionKey, now: u64) -> Result<Option<Session>, StoreError> {
        store_call(self.0.get_session(key, now)).await
    }

    async fn delete_session(&self, key: &SessionKey) -> Result<(), StoreError> {
        store_call(self.0.delete_session(key)).await
    }
}
