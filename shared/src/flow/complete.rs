//! `/sms/token`, step by step: claim the verification, submit the code, exchange the token, read
//! userinfo, open the session.
//!
//! The rules that keep a right code from ever being burned by a time-out, a crash or a lost
//! answer:
//! - **The lease outlives the invocation.** In Lambda it lasts until the invocation's deadline
//!   (after which Lambda has stopped it) plus a margin; elsewhere (`local-api`, which runs every
//!   invocation to its end) until the token budget and the store calls' time-outs have passed.
//!   The upstream work ends early enough for the last store step to fit before the deadline.
//! - **Progress is saved before the next upstream call.** The code accepted, then the token
//!   issued (kept sealed: the upstream redeems an `auth_req_id` once), each written under the
//!   lease before the step after it, so a retry after a crash resumes there and never resubmits
//!   the code.
//! - **A retryable failure releases the lease** with the progress made, so the same request
//!   retried resumes at once.
//! - **Completion is idempotent.** The completed verification keeps its session token sealed
//!   under the `auth_req_id`, the nonce and the code ([`crypto::seal_completion`]): the same
//!   request retried after its answer was lost gets the same session, until the verification
//!   would have expired, and nobody without all three gets anything (a wrong code counts).
//! - Only an upstream answer that ends the upstream request, or claims that cannot open a
//!   session, discard the verification.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{
    CompleteRequest, Facts, FlowError, Verified, claims, client_and_server, flow_id, guard, note_source,
    refused,
};
use crate::{
    App,
    aws::dynamodb_operation_timeout,
    ciba::{UpstreamError, UserInfo},
    config::{AuthServer, SmsClient},
    crypto, phone,
    secret::{AccessToken, AuthReqId, OtpCode, SessionToken, VerificationToken},
    signed_result::VerifiedNumber,
    store::{
        Claim, ClaimOutcome, Lease, LeaseAfter, LeaseId, Progress, Session, SessionKey, StoreError,
        Verification, VerificationKey,
    },
};

/// Seconds a lease outlives the longest its holder can run, so clocks that disagree a little
/// never let two calls work at once.
const LEASE_MARGIN_SECS: u64 = 5;

/// The most store calls one `/sms/token` makes outside its upstream work (the claim's reads and
/// write, with a lost race or two, and the completion with the fraud guard's count), for the
/// lease of a run with no invocation deadline.
const STORE_CALLS_OUTSIDE_UPSTREAM: u32 = 6;

/// What the end of a run needs after the upstream work: the completion and the fraud guard's
/// count, each within the DynamoDB operation time-out.
fn finish_reserve() -> Duration {
    2 * dynamodb_operation_timeout()
}

/// How long one run may take: the lease it must hold, and when its upstream work must end.
struct Budget {
    lease_secs: u64,
    /// How long the upstream work may take from the claim (before the verification's own expiry
    /// is taken into account).
    upstream: Duration,
}

impl Budget {
    fn new(token_budget: Duration, invocation_deadline: Option<SystemTime>) -> Self {
        let invocation_left = invocation_deadline
            .map(|deadline| deadline.duration_since(SystemTime::now()).unwrap_or_default());
        let unbounded_run = token_budget + dynamodb_operation_timeout() * STORE_CALLS_OUTSIDE_UPSTREAM;
        let longest_run = invocation_left.unwrap_or(unbounded_run);
        let upstream = match invocation_left {
            Some(left) => token_budget.min(left.saturating_sub(finish_reserve())),
            None => token_budget,
        };
        Self { lease_secs: longest_run.as_secs_f64().ceil() as u64 + LEASE_MARGIN_SECS, upstream }
    }
}

pub(super) async fn run(
    app: &App,
    request: CompleteRequest,
    facts: &mut Facts,
) -> Result<Verified, FlowError> {
    let (client, server) =
        client_and_server(&app.config, &request.client_id, request.server_id.as_deref(), facts)?;
    note_source(facts, client, request.source_ip.as_deref());
    let auth_req_id = &request.auth_req_id;
    facts.flow_id = Some(flow_id(auth_req_id));

    // The signing keys, read again now if they are due, so nothing after the completion waits
    // on Secrets Manager.
    app.results.keys.current().await;

    // 1. Claim the verification: it must exist, be alive, be this caller's, and be free.
    let budget = Budget::new(app.ciba.timeouts().token_budget, request.invocation_deadline);
    let now = app.clock.now();
    let lease = Lease { id: LeaseId::new_random(), until: now + budget.lease_secs };
    let claim = Claim {
        client_id: client.client_id.clone(),
        server_id: server.id.clone(),
        nonce_digest: crypto::digest("nonce", request.nonce.expose()),
        lease: lease.clone(),
        now,
        limits: client.limits.clone(),
    };
    let verification = match app.store.claim_verification(&VerificationKey::of(auth_req_id), &claim).await? {
        ClaimOutcome::Claimed(verification) => verification,
        outcome => return Err(refused(outcome)),
    };
    facts.phone_masked = Some(phone::mask(&verification.phone));
    facts.country_code = phone::country_code_of(&verification.phone);
    facts.test_number = verification.test;
    let mut attempt =
        Attempt { app, verification: &verification, lease_id: &lease.id, facts, access_token: None };

    // Already completed: the same request again, after its answer was lost.
    if let Progress::Completed { sealed_session } = &verification.progress {
        return attempt.replay(&request, sealed_session, server).await;
    }

    // 2.–4. The code, the token, the userinfo: upstream, or the test number's fixed code.
    let lifetime_left = Duration::from_secs(verification.expires_at.saturating_sub(now));
    let deadline = Instant::now() + budget.upstream.min(lifetime_left);
    let userinfo = if verification.test {
        verify_test_code(client, &verification, &request.code, &mut attempt).await?
    } else {
        verify_upstream(server, client, auth_req_id, &request.code, deadline, &mut attempt).await?
    };

    // 5. Complete the verification and create the session, in one atomic step.
    let session_token = SessionToken::new(crypto::new_token());
    let session_ttl_secs = app.config.session_ttl.as_secs();
    let now = app.clock.now();
    let UserInfo(claims) = userinfo;
    let session = Session {
        key: SessionKey::of(&session_token),
        flow_id: verification.flow_id.clone(),
        client_id: verification.client_id.clone(),
        server_id: verification.server_id.clone(),
        phone: verification.phone.clone(),
        userinfo: claims.clone(),
        verified_at: now,
        expires_at: now + session_ttl_secs,
    };
    let sealed_session = crypto::seal_completion(
        auth_req_id.expose(),
        request.nonce.expose(),
        request.code.expose(),
        session_token.expose(),
    );
    if let Err(err) =
        app.store.complete_verification(&verification, &lease.id, &session, &sealed_session).await
    {
        return Err(attempt.completion_failed(auth_req_id, err).await);
    }
    if !verification.test {
        guard::after_verified(app.store.as_ref(), client.guarded(), &verification).await;
    }

    let verification_token =
        sign_result(app, request.api_base_url.as_deref(), &verification, &claims, now).await;
    Ok(Verified { auth_server: server.into(), claims, session_token, session_ttl_secs, verification_token })
}

/// The signed result for the app's backend: the verification's client and number, the upstream's
/// subject.
async fn sign_result(
    app: &App,
    api_base_url: Option<&str>,
    verification: &Verification,
    claims: &Map<String, Value>,
    now: u64,
) -> VerificationToken {
    // Named by the verification (a digest of its key, itself a digest): a replay's token has
    // the same `jti`, so one verification cannot pass as two.
    let jti = &crypto::digest("jti", verification.key.as_str())[..32];
    let verified = VerifiedNumber {
        client_id: &verification.client_id,
        // `ciba::userinfo` refuses a userinfo without one; a test number's has one.
        sub: claims.get("sub").and_then(Value::as_str).unwrap_or_default(),
        phone_number: &verification.phone,
        test: verification.test,
        jti,
    };
    app.results.sign(&verified, api_base_url, now).await
}

/// Steps 2–4 against the upstream: the SMS callback with the code, the token, the userinfo.
async fn verify_upstream(
    server: &AuthServer,
    client: &SmsClient,
    auth_req_id: &AuthReqId,
    code: &OtpCode,
    deadline: Instant,
    attempt: &mut Attempt<'_>,
) -> Result<UserInfo, FlowError> {
    let ciba = &attempt.app.ciba;
    let progress = attempt.verification.progress.clone();

    // 2. Submit the code, unless an earlier attempt already got it accepted.
    let mut ready_token = None;
    if progress == Progress::AwaitingCode {
        match ciba.submit_code(server, auth_req_id, code, deadline).await {
            Ok(()) => attempt.save(&Progress::CodeAccepted).await?,
            Err(err) if err.is_retryable() => return Err(attempt.pause(&Progress::AwaitingCode, err).await),
            // "No longer pending" may mean an earlier callback went through but its answer was
            // lost (a time-out): then the token is ready, and the user must not pay for our failure.
            Err(err) if err.ends_request() => {
                match ciba.token_once(server, client, auth_req_id, deadline).await {
                    Ok(token) => ready_token = Some(token),
                    Err(_) => return Err(attempt.wrong_code(true, err.status()).await),
                }
            }
            Err(err) => return Err(attempt.wrong_code(err.ends_request(), err.status()).await),
        }
    }

    // 3. Exchange the auth_req_id for an access token (once: the upstream redeems it only once).
    let access_token = match (ready_token, &progress) {
        (None, Progress::TokenIssued { sealed_access_token }) => {
            match crypto::open(auth_req_id.expose(), sealed_access_token) {
                Some(token) => AccessToken::new(token),
                // Sealed under this very auth_req_id, so it opens unless the record was altered.
                None => {
                    attempt.discard().await;
                    return Err(FlowError::VerificationNotFound);
                }
            }
        }
        (ready, _) => {
            let token = match ready {
                Some(token) => token,
                None => {
                    let interval = attempt.verification.poll_interval_secs;
                    match ciba.token(server, client, auth_req_id, interval, deadline).await {
                        Ok(token) => token,
                        Err(err) => return Err(attempt.fail(&Progress::CodeAccepted, err).await),
                    }
                }
            };
            attempt.save(&issued(auth_req_id, &token)).await?;
            token
        }
    };

    // 4. Read what the upstream verified.
    let userinfo = match ciba.userinfo(server, &access_token, deadline).await {
        Ok(userinfo) => userinfo,
        Err(err) => return Err(attempt.fail(&issued(auth_req_id, &access_token), err).await),
    };
    // The upstream's word is checked like any input: the session is for the SMS's number only.
    let userinfo = match claims::vouched_for(userinfo, &attempt.verification.phone) {
        Ok(userinfo) => userinfo,
        Err(refused) => {
            attempt.discard().await;
            return Err(match refused {
                claims::Refused::NotVerified => FlowError::PhoneNotVerified,
                claims::Refused::OtherNumber => FlowError::PhoneMismatch,
            });
        }
    };
    // Kept so a failed completion (step 5) can still be resumed.
    attempt.access_token = Some(access_token);
    Ok(userinfo)
}

/// The progress "token issued", its token sealed under the `auth_req_id`.
fn issued(auth_req_id: &AuthReqId, token: &AccessToken) -> Progress {
    Progress::TokenIssued { sealed_access_token: crypto::seal(auth_req_id.expose(), token.expose()) }
}

/// Steps 2–4 for a test number: its fixed code, and a userinfo that says it is a test.
async fn verify_test_code(
    client: &SmsClient,
    verification: &Verification,
    code: &OtpCode,
    attempt: &mut Attempt<'_>,
) -> Result<UserInfo, FlowError> {
    let expected = client.test_numbers.iter().find(|t| t.phone == verification.phone);
    tracing::warn!(event = "sms_test_number_used", client_id = %client.client_id, flow_id = %verification.flow_id);
    if !expected.is_some_and(|t| crypto::constant_time_eq(t.code.expose(), code.expose())) {
        // Logged as the upstream's 400 would be, so a test number's line reads like a real one.
        return Err(attempt.wrong_code(false, Some(400)).await);
    }
    let mut claims = Map::new();
    claims.insert(
        "sub".into(),
        Value::String(format!("test-{}", &crypto::digest("test-sub", &verification.phone)[..16])),
    );
    claims.insert("phone_number".into(), Value::String(verification.phone.clone()));
    claims.insert("phone_number_verified".into(), Value::Bool(true));
    claims.insert("test".into(), Value::Bool(true));
    Ok(UserInfo(claims))
}

/// One `/sms/token` call holding the lease on a verification: the ways it can end early.
struct Attempt<'a> {
    app: &'a App,
    verification: &'a Verification,
    lease_id: &'a LeaseId,
    facts: &'a mut Facts,
    /// The upstream access token once redeemed (never for test numbers).
    access_token: Option<AccessToken>,
}

impl Attempt<'_> {
    /// The same request as the one that completed the verification gets the same session; any
    /// other code counts as a wrong one and finds nothing.
    async fn replay(
        &mut self,
        request: &CompleteRequest,
        sealed_session: &str,
        server: &AuthServer,
    ) -> Result<Verified, FlowError> {
        let (auth_req_id, nonce, code) =
            (request.auth_req_id.expose(), request.nonce.expose(), request.code.expose());
        let Some(token) = crypto::open_completion(auth_req_id, nonce, code, sealed_session) else {
            self.wrong_code(false, None).await;
            return Err(FlowError::VerificationNotFound);
        };
        let session_token = SessionToken::new(token);
        let now = self.app.clock.now();
        let found = self.app.store.get_session(&SessionKey::of(&session_token), now).await;
        self.release(&self.verification.progress.clone()).await;
        // Ended (logged out) or expired since: there is nothing to give back.
        let session = found?.ok_or(FlowError::VerificationNotFound)?;
        self.facts.replayed = true;
        let base_url = request.api_base_url.as_deref();
        let verification_token =
            sign_result(self.app, base_url, self.verification, &session.userinfo, now).await;
        Ok(Verified {
            auth_server: server.into(),
            claims: session.userinfo,
            session_token,
            verification_token,
            session_ttl_secs: session.expires_at.saturating_sub(now),
        })
    }

    /// The code was refused: count it (all attempts, if the upstream ended the request).
    async fn wrong_code(&mut self, ends_request: bool, upstream_status: Option<u16>) -> FlowError {
        self.facts.upstream_status = upstream_status;
        let now = self.app.clock.now();
        let counted =
            self.app.store.record_wrong_code(self.verification, self.lease_id, ends_request, now).await;
        match counted {
            Ok(attempts_left) => {
                self.facts.attempts_left = Some(attempts_left);
                if attempts_left == 0 && !ends_request {
                    FlowError::TooManyAttempts
                } else {
                    FlowError::InvalidCode { attempts_left }
                }
            }
            Err(err) => err.into(),
        }
    }

    /// Saves a step that changed the upstream's state, keeping the lease for the next one. A
    /// store that cannot be reached does not stop the run (the step is already done upstream;
    /// a retry after a crash would find its way on from the earlier save); a lost lease does.
    async fn save(&mut self, progress: &Progress) -> Result<(), FlowError> {
        let saved = self
            .app
            .store
            .save_progress(&self.verification.key, self.lease_id, progress, LeaseAfter::Kept)
            .await;
        match saved {
            Ok(()) => Ok(()),
            Err(StoreError::LeaseLost) => Err(StoreError::LeaseLost.into()),
            Err(err) => {
                tracing::warn!(error = %err, "could not save the verification's progress; going on");
                Ok(())
            }
        }
    }

    /// A later step failed: keep the verification for a retry unless the upstream ended it.
    async fn fail(&mut self, progress: &Progress, err: UpstreamError) -> FlowError {
        if err.ends_request() {
            self.facts.upstream_status = err.status();
            self.discard().await;
            return err.into();
        }
        self.pause(progress, err).await
    }

    /// Saves how far the flow got and releases the lease, so the same request can be retried.
    async fn pause(&mut self, progress: &Progress, err: UpstreamError) -> FlowError {
        self.facts.upstream_status = err.status();
        self.release(progress).await;
        tracing::warn!(error = %err, "upstream call failed; the verification is kept for a retry");
        err.into()
    }

    /// The final store step failed: keep the redeemed token so the retry can still finish.
    async fn completion_failed(&mut self, auth_req_id: &AuthReqId, err: StoreError) -> FlowError {
        if let Some(token) = &self.access_token {
            self.release(&issued(auth_req_id, token)).await;
        }
        err.into()
    }

    async fn release(&mut self, progress: &Progress) {
        let released = self
            .app
            .store
            .save_progress(&self.verification.key, self.lease_id, progress, LeaseAfter::Released)
            .await;
        if let Err(err) = released {
            // The lease still expires on its own, after which a retry resumes from the last save.
            tracing::warn!(error = %err, "could not release the verification lease");
        }
    }

    async fn discard(&mut self) {
        if let Err(err) = self.app.store.discard_verification(&self.verification.key, self.lease_id).await {
            tracing::warn!(error = %err, "could not discard an ended verification");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_outlives_the_invocation_and_the_upstream_work_ends_before_it() {
        let budget = Duration::from_secs(20);
        let in_lambda = Budget::new(budget, Some(SystemTime::now() + Duration::from_secs(28)));
        assert!(in_lambda.lease_secs > 28, "{}", in_lambda.lease_secs);
        assert!(in_lambda.upstream + finish_reserve() <= Duration::from_secs(28));
        let late = Budget::new(budget, Some(SystemTime::now() + Duration::from_secs(10)));
        assert!(
            late.upstream <= Duration::from_secs(10).saturating_sub(finish_reserve()),
            "{:?}",
            late.upstream
        );
        let local = Budget::new(budget, None);
        assert_eq!(local.upstream, budget);
        let longest = budget + dynamodb_operation_timeout() * STORE_CALLS_OUTSIDE_UPSTREAM;
        assert!(Duration::from_secs(local.lease_secs) > longest);
    }
}
