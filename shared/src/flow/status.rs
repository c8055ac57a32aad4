//! `/sms/status` and `/sms/cancel`: an app that restarted mid-verification asks where it stands,
//! or ends it. Both find the verification under exactly the rules `/sms/token` claims it by
//! ([`judge_claim`]), so none of the three tells apart what the others do not: a verification
//! that `/sms/token` would not find is not found here either.

use super::{Facts, FlowError, client_and_server, flow_id, refused};
use crate::{
    clock::Clock,
    config::Config,
    crypto,
    limits::judge_send,
    phone,
    secret::{AuthReqId, Nonce},
    store::{
        Claim, ClaimOutcome, Lease, LeaseAfter, LeaseId, PhoneRecord, Progress, StateStore, Verification,
        VerificationKey, judge_claim,
    },
};

/// Seconds a cancel holds its lease: its one delete (or release) within the store's time-out.
const CANCEL_LEASE_SECS: u64 = 10;

/// Names a verification, as `/sms/auth` answered it.
#[derive(Debug, Clone)]
pub struct VerificationRef {
    pub auth_req_id: AuthReqId,
    pub client_id: String,
    pub nonce: Nonce,
    pub server_id: Option<String>,
}

/// Where a found verification stands: it waits for its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub attempts_left: u32,
    /// Unix seconds.
    pub expires_at: u64,
    /// When `/sms/auth` may next send the number an SMS from the same network (Unix seconds; at
    /// or before now when it may at once).
    pub resend_after: u64,
}

/// The stores a status and a cancel need; no upstream, no client secret.
pub struct Deps<'a> {
    pub config: &'a Config,
    pub store: &'a dyn StateStore,
    pub clock: &'a dyn Clock,
}

/// `/sms/status`: reads the verification and judges it as a claim would, without taking it.
pub async fn status(deps: Deps<'_>, request: VerificationRef) -> (Facts, Result<Pending, FlowError>) {
    let mut facts = Facts::default();
    let result = run_status(&deps, &request, &mut facts).await;
    (facts, result)
}

async fn run_status(
    deps: &Deps<'_>,
    request: &VerificationRef,
    facts: &mut Facts,
) -> Result<Pending, FlowError> {
    let now = deps.clock.now();
    let claim = claim_for(deps, request, now, now, facts)?;
    let key = VerificationKey::of(&request.auth_req_id);
    let Some(verification) = deps.store.get_verification(&key, now).await? else {
        return Err(FlowError::VerificationNotFound);
    };
    // What the verification alone says first (another nonce, client or server): one read, as
    // `/sms/token`'s claim, so the time taken tells nothing either.
    if let Some(ClaimOutcome::NotFound) =
        judge_claim(Some(&verification), Some(&PhoneRecord::allowing(&verification)), &claim)
    {
        return Err(FlowError::VerificationNotFound);
    }
    let window = claim.limits.send_window_secs;
    let phone = deps.store.phone_standing(&verification, window, now).await?;
    match judge_claim(Some(&verification), phone.as_ref(), &claim) {
        // A `/sms/token` call working on it does not change where it stands.
        None | Some(ClaimOutcome::Busy { .. }) => {}
        Some(outcome) => return Err(refused(outcome)),
    }
    note_found(facts, &verification);
    if matches!(verification.progress, Progress::Completed { .. }) {
        return Err(FlowError::VerificationNotFound);
    }
    let counters = phone.map(|p| p.counters).unwrap_or_default();
    let resend_after = match judge_send(&counters, &claim.limits, now) {
        Ok(()) => now,
        Err(limited) => now + limited.retry_after,
    };
    Ok(Pending {
        attempts_left: verification.attempts_left(),
        expires_at: verification.expires_at,
        resend_after,
    })
}

/// `/sms/cancel`: claims the verification as `/sms/token` would, then deletes it under the
/// lease. The sends it cost stay counted (they live on the phone's and the windows' records).
pub async fn cancel(deps: Deps<'_>, request: VerificationRef) -> (Facts, Result<(), FlowError>) {
    let mut facts = Facts::default();
    let result = run_cancel(&deps, &request, &mut facts).await;
    (facts, result)
}

async fn run_cancel(deps: &Deps<'_>, request: &VerificationRef, facts: &mut Facts) -> Result<(), FlowError> {
    let now = deps.clock.now();
    let claim = claim_for(deps, request, now, now + CANCEL_LEASE_SECS, facts)?;
    let key = VerificationKey::of(&request.auth_req_id);
    let verification = match deps.store.claim_verification(&key, &claim).await? {
        ClaimOutcome::Claimed(verification) => verification,
        outcome => return Err(refused(outcome)),
    };
    note_found(facts, &verification);
    if let Progress::Completed { .. } = &verification.progress {
        // Used: not found, as for `/sms/token`'s other callers; the completion stays as it was
        // for the request that completed it (its replay needs it).
        let progress = verification.progress.clone();
        deps.store.save_progress(&key, &claim.lease.id, &progress, LeaseAfter::Released).await?;
        return Err(FlowError::VerificationNotFound);
    }
    deps.store.discard_verification(&key, &claim.lease.id).await?;
    Ok(())
}

/// The claim this caller would make, with a lease until `lease_until`.
fn claim_for(
    deps: &Deps<'_>,
    request: &VerificationRef,
    now: u64,
    lease_until: u64,
    facts: &mut Facts,
) -> Result<Claim, FlowError> {
    let (client, server) =
        client_and_server(deps.config, &request.client_id, request.server_id.as_deref(), facts)?;
    facts.flow_id = Some(flow_id(&request.auth_req_id));
    Ok(Claim {
        client_id: client.client_id.clone(),
        server_id: server.id.clone(),
        nonce_digest: crypto::digest("nonce", request.nonce.expose()),
        lease: Lease { id: LeaseId::new_random(), until: lease_until },
        now,
        limits: client.limits.clone(),
    })
}

fn note_found(facts: &mut Facts, verification: &Verification) {
    facts.phone_masked = Some(phone::mask(&verification.phone));
    facts.country_code = phone::country_code_of(&verification.phone);
    facts.test_number = verification.test;
}
