//! The SMS verification flow, in the order the protocol runs it.
//!
//! `/sms/auth` → [`start`]: check client, server, phone and country; count the send against the
//! limits (per phone, per source network: see [`crate::limits`]); ask the upstream to send the
//! SMS; remember a pending verification under the digest of the `auth_req_id`, as the phone's
//! current one (a new start replaces the old).
//!
//! `/sms/token` → [`complete`]: claim the pending verification (it must match client, server and
//! nonce, be alive and current, have attempts left, and its phone must not be locked by wrong
//! codes; the claim is a lease, so two calls never work on one verification at once); submit the
//! code; exchange the `auth_req_id` for a token; read userinfo; then, in one atomic store step,
//! complete the verification and create the verified session.
//!
//! A client's test numbers take the same path with the upstream left out: a fixed code, no SMS,
//! and a synthetic userinfo marked `"test": true`.
//!
//! Both return what happened in domain words: a result or a [`FlowError`], and the [`Facts`] of
//! the request (which client, which phone, masked, …) for the log line the edge writes. HTTP
//! and logging live in [`crate::api`] and [`crate::telemetry`]; this file only runs the protocol.
//!
//! `/sms/token`'s steps and the rules that keep a right code from being burned by a time-out,
//! a crash or a lost answer are in `flow/complete.rs`; what userinfo must say for a session to
//! open is in `flow/claims.rs`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    App,
    ciba::{AuthStarted, DEFAULT_POLL_INTERVAL_SECS, UpstreamError},
    config::{AuthServer, Config, SmsClient},
    crypto,
    fraud_guard::PauseStarted,
    limits::{RateLimited, ip_bucket},
    phone::{self, NumberRefused, NumberType, PhoneNumber},
    secret::{AuthReqId, Nonce, OtpCode, SessionToken, VerificationToken},
    store::{ClaimOutcome, Progress, SendReservation, StoreError, Verification, VerificationKey},
};

mod claims;
mod complete;
mod guard;
mod status;

pub use status::{Deps, Pending, VerificationRef, cancel, status};

/// How long a test number's verification lives (no upstream says otherwise).
const TEST_VERIFICATION_TTL_SECS: u64 = 300;

/// Everything that can end a request to the flow early, in the flow's words. The API's answer
/// to each is chosen in one place: `From<FlowError> for ApiError` in [`crate::error`].
#[derive(Debug)]
pub enum FlowError {
    /// No SMS client with this `client_id`.
    UnknownClient,
    /// No auth server with the requested id (`None`: none is configured).
    UnknownServer { server_id: Option<String> },
    /// Not a valid international number; the text says why (it quotes nothing of the input).
    InvalidPhoneNumber(String),
    /// The client's country allow-list does not include the number's country.
    CountryNotAllowed,
    /// The client does not send an SMS to numbers of this type (or to global-service numbers).
    NumberNotAllowed(NumberType),
    /// A limit against pumping or guessing said no; nothing was sent or counted.
    RateLimited(RateLimited),
    /// The client requires a challenge and the request's token is missing or not good.
    ChallengeFailed,
    /// The challenge provider could not judge the token (unreachable, or a nonsense answer).
    ChallengeUnavailable,
    /// Unknown, expired, used, replaced, or another client's, server's or nonce's.
    VerificationNotFound,
    /// Another request holds the verification's lease.
    InProgress { retry_after: u64 },
    /// No wrong-code attempts left on this verification.
    TooManyAttempts,
    /// The code was wrong.
    InvalidCode { attempts_left: u32 },
    /// The request names a scope the client does not allow.
    InvalidScope,
    /// The upstream's userinfo does not say the phone is verified.
    PhoneNotVerified,
    /// The upstream's userinfo names another number than the one the SMS went to.
    PhoneMismatch,
    /// An upstream call failed: rejected, failed or timed out.
    Upstream(UpstreamError),
    /// The state store cannot be reached; nothing was changed.
    StoreUnavailable,
}

impl From<UpstreamError> for FlowError {
    fn from(err: UpstreamError) -> Self {
        Self::Upstream(err)
    }
}

impl From<StoreError> for FlowError {
    fn from(err: StoreError) -> Self {
        match err {
            // Our lease ran out and another call took the verification over.
            StoreError::LeaseLost => Self::InProgress { retry_after: 1 },
            StoreError::Unavailable(reason) => {
                tracing::error!(error = %reason, "state store unavailable");
                Self::StoreUnavailable
            }
        }
    }
}

/// What the flow learnt about a request, success or not: the facts of its log line. Nothing
/// here is secret (the phone is masked, the source network a keyed digest).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Facts {
    pub flow_id: Option<String>,
    pub client_id: Option<String>,
    pub server_id: Option<String>,
    pub phone_masked: Option<String>,
    /// The phone's country calling code (44 for +44…): what conversion is grouped by.
    pub country_code: Option<u16>,
    /// The phone's number type by libphonenumber (`mobile`, `premium_rate`, …).
    pub number_type: Option<&'static str>,
    /// The phone's region (`GB`; `001` for the global-service codes): what the country caps and
    /// the fraud guard count by.
    pub region: Option<String>,
    /// A keyed digest of the caller's network (see [`crypto::source_key`]).
    pub source: Option<String>,
    /// Set for a configured test number.
    pub test_number: bool,
    /// The status of the upstream answer the outcome rests on.
    pub upstream_status: Option<u16>,
    /// Attempts left after a wrong code.
    pub attempts_left: Option<u32>,
    /// A pause of the fraud guard this request's SMS started.
    pub pause_started: Option<PauseStarted>,
    /// The answer is a completed verification's session, given again to the same request.
    pub replayed: bool,
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub client_id: String,
    pub server_id: Option<String>,
    pub login_hint: String,
    pub scope: Option<String>,
    /// The CAPTCHA widget's token, for a client that requires a challenge.
    pub challenge_token: Option<String>,
    /// The user's language (a BCP 47 tag): which of the client's SMS templates is sent.
    pub locale: Option<String>,
    /// The caller's address as API Gateway saw it, for the per-network limit.
    pub source_ip: Option<String>,
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
    pub auth_req_id: AuthReqId,
    pub nonce: Nonce,
    /// Not a secret: what the client sends with its `/sms/log` data to join the flow's lines.
    pub flow_id: String,
    /// When the verification expires (Unix seconds): how long an app keeps its ids.
    pub expires_at: u64,
}

#[derive(Debug, Clone)]
pub struct CompleteRequest {
    pub code: OtpCode,
    pub auth_req_id: AuthReqId,
    pub client_id: String,
    pub nonce: Nonce,
    pub server_id: Option<String>,
    pub source_ip: Option<String>,
    /// When Lambda stops this invocation (none outside Lambda): the lease must outlive it.
    pub invocation_deadline: Option<std::time::SystemTime>,
    /// The API's URL as API Gateway says the request came to it: the signed result's issuer
    /// unless one is configured.
    pub api_base_url: Option<String>,
}

#[derive(Debug)]
pub struct Verified {
    pub auth_server: ServerRef,
    pub claims: Map<String, Value>,
    pub session_token: SessionToken,
    pub session_ttl_secs: u64,
    /// The signed result for the app's backend ([`crate::signed_result`]).
    pub verification_token: VerificationToken,
}

/// Ties the log lines of one verification together without revealing its `auth_req_id`.
pub fn flow_id(auth_req_id: &AuthReqId) -> String {
    crypto::digest("flow", auth_req_id.expose())[..16].to_owned()
}

/// Whether `id` has the shape of a [`flow_id`].
pub fn is_flow_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `/sms/auth`: sends the SMS and records the pending verification.
pub async fn start(app: &App, request: StartRequest) -> (Facts, Result<Started, FlowError>) {
    let mut facts = Facts::default();
    let result = run_start(app, request, &mut facts).await;
    (facts, result)
}

async fn run_start(app: &App, request: StartRequest, facts: &mut Facts) -> Result<Started, FlowError> {
    let (client, server) =
        client_and_server(&app.config, &request.client_id, request.server_id.as_deref(), facts)?;
    let scope = client.scope_for(request.scope.as_deref()).ok_or(FlowError::InvalidScope)?;
    let phone = PhoneNumber::parse(&request.login_hint).map_err(FlowError::InvalidPhoneNumber)?;
    facts.phone_masked = Some(phone.masked());
    facts.country_code = Some(phone.country_code());
    facts.number_type = Some(phone::number_type_name(phone.number_type()));
    facts.region = Some(phone.region_or_global().to_owned());
    let test_number = client.test_numbers.iter().any(|t| t.phone == phone.e164());
    // A configured test number sends nothing; every other number must be one the client pays for.
    if !test_number {
        client.numbers.judge(&phone).map_err(|refused| match refused {
            NumberRefused::Country => FlowError::CountryNotAllowed,
            NumberRefused::Type(number_type) => FlowError::NumberNotAllowed(number_type),
        })?;
    }
    // The challenge is spent by verifying it, so it comes after the checks that cost nothing and
    // before anything is counted or sent.
    if let Some(challenge) = &client.challenge {
        let token = request.challenge_token.as_deref().ok_or(FlowError::ChallengeFailed)?;
        match app.challenges.verify(challenge, token, request.source_ip.as_deref()).await {
            Ok(true) => {}
            Ok(false) => return Err(FlowError::ChallengeFailed),
            Err(err) => {
                tracing::warn!(event = "challenge_unavailable", client_id = %client.client_id, error = %err);
                return Err(FlowError::ChallengeUnavailable);
            }
        }
    }
    let now = app.clock.now();
    let network = note_source(facts, client, request.source_ip.as_deref());
    let reservation =
        SendReservation::new(&client.client_id, &phone, network.as_deref(), &client.limits, now);
    let phone_key = reservation.phone_key.clone();

    let started = if test_number {
        // No SMS and no cost: no upstream call and no send limits; every use is logged.
        facts.test_number = true;
        tracing::warn!(event = "sms_test_number_used", client_id = %client.client_id, phone = %phone.masked());
        AuthStarted {
            auth_req_id: format!("test-{}", crypto::new_token()),
            expires_in: TEST_VERIFICATION_TTL_SECS,
            interval: DEFAULT_POLL_INTERVAL_SECS,
        }
    } else {
        app.store.reserve_send(&reservation).await?.map_err(FlowError::RateLimited)?;
        let message = client.sms.message(request.locale.as_deref());
        send_sms(app, server, client, &phone, scope, message, facts).await?
    };
    let auth_req_id = AuthReqId::new(started.auth_req_id);
    let flow_id = flow_id(&auth_req_id);
    facts.flow_id = Some(flow_id.clone());

    let nonce = Nonce::new(crypto::new_nonce());
    let verification = Verification {
        key: VerificationKey::of(&auth_req_id),
        flow_id: flow_id.clone(),
        nonce_digest: crypto::digest("nonce", nonce.expose()),
        client_id: client.client_id.clone(),
        server_id: server.id.clone(),
        phone: phone.e164().to_owned(),
        region: phone.region_or_global().to_owned(),
        phone_key,
        test: test_number,
        created_at: now,
        // Both clamped where they were read (see `ciba::AuthStarted`).
        expires_at: now + started.expires_in,
        poll_interval_secs: started.interval,
        wrong_codes: 0,
        max_wrong_codes: client.limits.max_wrong_codes,
        progress: Progress::AwaitingCode,
        lease: None,
    };
    // The SMS has left: it counts for the fraud guard whether or not the put succeeds, and the
    // two writes are independent, so they go together.
    let counted = async {
        if test_number {
            None
        } else {
            guard::after_send(app.store.as_ref(), client.guarded(), &phone, now).await
        }
    };
    let (put, pause_started) = tokio::join!(app.store.put_verification(&verification), counted);
    facts.pause_started = pause_started;
    put?;

    let expires_at = verification.expires_at;
    Ok(Started { auth_server: server.into(), auth_req_id, nonce, flow_id, expires_at })
}

/// Asks the upstream to send the SMS (CIBA authentication request with `channel=sms`).
async fn send_sms(
    app: &App,
    server: &AuthServer,
    client: &SmsClient,
    phone: &PhoneNumber,
    scope: &str,
    message: &str,
    facts: &mut Facts,
) -> Result<AuthStarted, FlowError> {
    let login_hint = phone.login_hint(server.login_hint_format);
    let started = app
        .ciba
        .start(server, client, login_hint, scope, message)
        .await
        .inspect_err(|err| facts.upstream_status = err.status())?;
    facts.upstream_status = Some(200);
    Ok(started)
}

/// `/sms/token`: verifies the code upstream and turns the verification into a session.
pub async fn complete(app: &App, request: CompleteRequest) -> (Facts, Result<Verified, FlowError>) {
    let mut facts = Facts::default();
    let result = complete::run(app, request, &mut facts).await;
    (facts, result)
}

fn client_and_server<'a>(
    config: &'a Config,
    client_id: &str,
    server_id: Option<&str>,
    facts: &mut Facts,
) -> Result<(&'a SmsClient, &'a AuthServer), FlowError> {
    let client = config.sms_client(client_id).ok_or(FlowError::UnknownClient)?;
    facts.client_id = Some(client.client_id.clone());
    let server = config
        .auth_server(server_id)
        .ok_or_else(|| FlowError::UnknownServer { server_id: server_id.map(str::to_owned) })?;
    facts.server_id = Some(server.id.clone());
    Ok((client, server))
}

/// Notes the caller's network as a keyed digest (for the pumping query) and returns the network,
/// which the per-network limit counts.
fn note_source(facts: &mut Facts, client: &SmsClient, source_ip: Option<&str>) -> Option<String> {
    let network = source_ip.and_then(ip_bucket)?;
    facts.source = Some(crypto::source_key(&client.client_secret, &network));
    Some(network)
}

/// What a claim that was not granted means to the caller: `/sms/token`, `/sms/status` and
/// `/sms/cancel` answer alike.
fn refused(outcome: ClaimOutcome) -> FlowError {
    match outcome {
        ClaimOutcome::NotFound | ClaimOutcome::Claimed(_) => FlowError::VerificationNotFound,
        ClaimOutcome::Busy { retry_after } => {
            FlowError::InProgress { retry_after: retry_after.min(MAX_BUSY_RETRY_AFTER_SECS) }
        }
        ClaimOutcome::Exhausted => FlowError::TooManyAttempts,
        ClaimOutcome::PhoneLocked(limited) => FlowError::RateLimited(limited),
    }
}

/// A `409` asks for a retry this soon at most: the lease is the longest the holder can take, but
/// it is usually done in a second or two.
const MAX_BUSY_RETRY_AFTER_SECS: u64 = 3;
