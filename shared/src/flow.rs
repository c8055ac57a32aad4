//! The SMS verification flow, in the order the protocol runs it.
//!
//! `/sms/auth` → [`start`]: check client, server and phone; ask the upstream to send the SMS;
//! remember a pending verification under the digest of the `auth_req_id`.
//!
//! `/sms/token` → [`complete`]: claim the pending verification (it must match client, server and
//! nonce, be alive and have attempts left; the claim is a lease, so two calls never work on one
//! verification at once); submit the code; exchange the `auth_req_id` for a token; read userinfo;
//! then, in one atomic store step, consume the verification and create the verified session.
//!
//! Failure rules, which keep a retry possible without a second SMS:
//! - a retryable upstream failure (5xx, time-out) saves how far the flow got and releases the
//!   lease: the same request retried resumes there (a code the upstream accepted is never resent);
//! - a wrong code counts against the verification's attempts;
//! - only an upstream answer that ends the upstream request discards the verification.

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::{
    App,
    ciba::{DEFAULT_POLL_INTERVAL_SECS, UpstreamError, UserInfo},
    config::{AuthServer, FALLBACK_SCOPE, MAX_VERIFICATION_TTL_SECS, Secret, SmsClient},
    crypto,
    error::ApiError,
    phone::PhoneNumber,
    store::{
        Claim, ClaimOutcome, Lease, Progress, Session, StoreError, Verification, now_epoch_secs, session_key,
        verification_key,
    },
    telemetry::Summary,
};

/// Upstream errors after which the upstream request can never succeed (Keycloak cancels a CIBA
/// request on a failed callback; CIBA Core §11 token errors).
const ENDING_ERRORS: [&str; 4] = ["invalid_token", "access_denied", "expired_token", "invalid_grant"];

/// Seconds a lease outlives the token budget, so a slow last step still finishes under it.
const LEASE_MARGIN_SECS: u64 = 5;

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub client_id: String,
    pub server_id: Option<String>,
    pub login_hint: String,
    pub scope: Option<String>,
}

/// The auth server as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRef {
    pub id: String,
    pub url: String,
}

impl From<&AuthServer> for ServerRef {
    fn from(server: &AuthServer) -> Self {
        Self { id: server.id.clone(), url: server.url.clone() }
    }
}

#[derive(Debug)]
pub struct Started {
    pub auth_server: ServerRef,
    pub auth_req_id: Secret,
    pub nonce: String,
}

#[derive(Debug, Clone)]
pub struct CompleteRequest {
    pub code: String,
    pub auth_req_id: Secret,
    pub client_id: String,
    pub nonce: String,
    pub server_id: Option<String>,
}

#[derive(Debug)]
pub struct Verified {
    pub auth_server: ServerRef,
    pub claims: Map<String, Value>,
    pub session_token: Secret,
    pub session_ttl_secs: u64,
}

/// Ties the log lines of one verification together without revealing its `auth_req_id`.
pub fn flow_id(auth_req_id: &str) -> String {
    crypto::digest("flow", auth_req_id)[..16].to_owned()
}

/// `/sms/auth`: sends the SMS and records the pending verification.
pub async fn start(app: &App, request: StartRequest, summary: &mut Summary) -> Result<Started, ApiError> {
    let (client, server) = client_and_server(app, &request.client_id, request.server_id.as_deref(), summary)?;
    let phone = PhoneNumber::parse_e164(&request.login_hint).map_err(ApiError::invalid_phone_number)?;
    summary.phone_masked = Some(phone.masked());
    let scope = request.scope.as_deref().or(client.scope.as_deref()).unwrap_or(FALLBACK_SCOPE);

    let login_hint = phone.login_hint(server.login_hint_format);
    let started = app
        .ciba
        .start(server, client, login_hint, scope, &client.sms_template)
        .await
        .inspect_err(|err| summary.upstream_status = err.status())?;
    summary.upstream_status = Some(200);
    if started.auth_req_id.is_empty() {
        return Err(UpstreamError::Failed { status: Some(200), reason: "empty auth_req_id".into() }.into());
    }
    summary.flow_id = Some(flow_id(&started.auth_req_id));

    let now = now_epoch_secs();
    let nonce = crypto::new_nonce();
    let verification = Verification {
        key: verification_key(&started.auth_req_id),
        flow_id: flow_id(&started.auth_req_id),
        nonce_digest: crypto::digest("nonce", &nonce),
        client_id: client.client_id.clone(),
        server_id: server.id.clone(),
        phone: phone.e164().to_owned(),
        created_at: now,
        expires_at: now + started.expires_in.clamp(1, MAX_VERIFICATION_TTL_SECS),
        poll_interval_secs: started.interval.unwrap_or(DEFAULT_POLL_INTERVAL_SECS),
        wrong_codes: 0,
        max_wrong_codes: app.config.max_wrong_codes,
        progress: Progress::AwaitingCode,
        lease: None,
    };
    app.store.put_verification(&verification).await.map_err(store_error)?;

    Ok(Started { auth_server: server.into(), auth_req_id: Secret::new(started.auth_req_id), nonce })
}

/// `/sms/token`: verifies the code upstream and turns the verification into a session.
pub async fn complete(
    app: &App,
    request: CompleteRequest,
    summary: &mut Summary,
) -> Result<Verified, ApiError> {
    let (client, server) = client_and_server(app, &request.client_id, request.server_id.as_deref(), summary)?;
    let auth_req_id = &request.auth_req_id;
    let key = verification_key(auth_req_id.expose());
    summary.flow_id = Some(flow_id(auth_req_id.expose()));

    // 1. Claim the verification: it must exist, be alive, be this caller's, and be free.
    let budget = app.ciba.timeouts().token_budget;
    let now = now_epoch_secs();
    let lease = Lease { id: crypto::new_token(), until: now + budget.as_secs() + LEASE_MARGIN_SECS };
    let claim = Claim {
        client_id: client.client_id.clone(),
        server_id: server.id.clone(),
        nonce_digest: crypto::digest("nonce", &request.nonce),
        lease: lease.clone(),
        now,
    };
    let verification = match app.store.claim_verification(&key, &claim).await.map_err(store_error)? {
        ClaimOutcome::Claimed(verification) => verification,
        ClaimOutcome::NotFound => return Err(ApiError::verification_not_found()),
        ClaimOutcome::Busy { retry_after } => return Err(ApiError::verification_in_progress(retry_after)),
        ClaimOutcome::Exhausted => return Err(ApiError::too_many_attempts()),
    };
    summary.phone_masked = PhoneNumber::parse_e164(&verification.phone).ok().map(|p| p.masked());
    let lifetime_left = std::time::Duration::from_secs(verification.expires_at.saturating_sub(now));
    let deadline = Instant::now() + budget.min(lifetime_left);
    let attempt = Attempt { app, key: &key, lease_id: &lease.id, summary };

    // 2. Submit the code, unless an earlier attempt already got it accepted.
    let mut ready_token = None;
    if verification.progress == Progress::AwaitingCode {
        match app.ciba.submit_code(server, auth_req_id, &request.code, deadline).await {
            Ok(()) => {}
            Err(err) if err.is_retryable() => return Err(attempt.pause(&Progress::AwaitingCode, err).await),
            // "No longer pending" may mean an earlier callback went through but its answer was
            // lost (a time-out): then the token is ready, and the user must not pay for our failure.
            Err(err) if ends_upstream_request(&err) => {
                match app.ciba.token_once(server, client, auth_req_id, deadline).await {
                    Ok(token) => ready_token = Some(token),
                    Err(_) => return Err(attempt.wrong_code(err).await),
                }
            }
            Err(err) => return Err(attempt.wrong_code(err).await),
        }
    }

    // 3. Exchange the auth_req_id for an access token (once: the upstream redeems it only once).
    let access_token = match (ready_token, &verification.progress) {
        (Some(token), _) => token,
        (None, Progress::TokenIssued { sealed_access_token }) => {
            match crypto::open(auth_req_id.expose(), sealed_access_token) {
                Some(token) => Secret::new(token),
                // Sealed under this very auth_req_id, so it opens unless the record was altered.
                None => {
                    attempt.discard().await;
                    return Err(ApiError::verification_not_found());
                }
            }
        }
        (None, _) => {
            match app.ciba.token(server, client, auth_req_id, verification.poll_interval_secs, deadline).await
            {
                Ok(token) => token,
                Err(err) => return Err(attempt.fail(&Progress::CodeAccepted, err).await),
            }
        }
    };

    // 4. Read what the upstream verified.
    let userinfo = match app.ciba.userinfo(server, &access_token, deadline).await {
        Ok(userinfo) => userinfo,
        Err(err) => {
            let sealed = crypto::seal(auth_req_id.expose(), access_token.expose());
            return Err(attempt.fail(&Progress::TokenIssued { sealed_access_token: sealed }, err).await);
        }
    };
    if userinfo.phone_verified() == Some(false) {
        attempt.discard().await;
        return Err(ApiError::phone_not_verified());
    }

    // 5. Consume the verification and create the session, in one atomic step.
    let session_token = Secret::new(crypto::new_token());
    let session_ttl_secs = app.config.session_ttl.as_secs();
    let now = now_epoch_secs();
    let UserInfo(claims) = userinfo;
    let session = Session {
        key: session_key(session_token.expose()),
        flow_id: verification.flow_id.clone(),
        client_id: verification.client_id,
        server_id: verification.server_id,
        phone: verification.phone,
        userinfo: claims.clone(),
        verified_at: now,
        expires_at: now + session_ttl_secs,
    };
    if let Err(err) = app.store.complete_verification(&key, &lease.id, &session).await {
        // Keep the redeemed token so the retry can still finish this verification.
        let sealed = crypto::seal(auth_req_id.expose(), access_token.expose());
        let progress = Progress::TokenIssued { sealed_access_token: sealed };
        if let Err(release_err) = app.store.release_verification(&key, &lease.id, &progress).await {
            tracing::warn!(error = %release_err, "could not save progress after a failed completion");
        }
        return Err(store_error(err));
    }

    Ok(Verified { auth_server: server.into(), claims, session_token, session_ttl_secs })
}

fn client_and_server<'a>(
    app: &'a App,
    client_id: &str,
    server_id: Option<&str>,
    summary: &mut Summary,
) -> Result<(&'a SmsClient, &'a AuthServer), ApiError> {
    let client = app.config.sms_client(client_id).ok_or_else(ApiError::invalid_client)?;
    summary.client_id = Some(client.client_id.clone());
    let server = app.config.auth_server(server_id).ok_or_else(|| ApiError::unknown_server(server_id))?;
    summary.server_id = Some(server.id.clone());
    Ok((client, server))
}

fn store_error(err: StoreError) -> ApiError {
    match err {
        // Our lease ran out and another call took the verification over.
        StoreError::LeaseLost => ApiError::verification_in_progress(1),
        StoreError::Unavailable(reason) => {
            tracing::error!(error = %reason, "state store unavailable");
            ApiError::store_unavailable()
        }
    }
}

fn ends_upstream_request(err: &UpstreamError) -> bool {
    matches!(err, UpstreamError::Rejected { error, .. } if ENDING_ERRORS.contains(&error.as_str()))
}

/// One `/sms/token` call holding the lease on a verification: the ways it can end early.
struct Attempt<'a> {
    app: &'a App,
    key: &'a str,
    lease_id: &'a str,
    summary: &'a mut Summary,
}

impl Attempt<'_> {
    /// The callback refused the code: count it (all attempts, if the upstream ended the request).
    async fn wrong_code(self, err: UpstreamError) -> ApiError {
        self.summary.upstream_status = err.status();
        let ends = ends_upstream_request(&err);
        match self.app.store.record_wrong_code(self.key, self.lease_id, ends).await {
            Ok(attempts_left) => {
                self.summary.attempts_left = Some(attempts_left);
                if attempts_left == 0 && !ends {
                    ApiError::too_many_attempts()
                } else {
                    ApiError::invalid_code(attempts_left)
                }
            }
            Err(err) => store_error(err),
        }
    }

    /// A later step failed: keep the verification for a retry unless the upstream ended it.
    async fn fail(self, progress: &Progress, err: UpstreamError) -> ApiError {
        if ends_upstream_request(&err) {
            self.summary.upstream_status = err.status();
            self.discard().await;
            return err.into();
        }
        self.pause(progress, err).await
    }

    /// Saves how far the flow got and releases the lease, so the same request can be retried.
    async fn pause(self, progress: &Progress, err: UpstreamError) -> ApiError {
        self.summary.upstream_status = err.status();
        if let Err(store_err) = self.app.store.release_verification(self.key, self.lease_id, progress).await {
            // The lease still expires on its own, after which a retry resumes from the last save.
            tracing::warn!(error = %store_err, "could not release the verification lease");
        }
        tracing::warn!(error = %err, "upstream call failed; the verification is kept for a retry");
        err.into()
    }

    async fn discard(&self) {
        if let Err(err) = self.app.store.discard_verification(self.key, self.lease_id).await {
            tracing::warn!(error = %err, "could not discard an ended verification");
        }
    }
}
