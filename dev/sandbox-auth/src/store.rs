//! The CIBA state machine, kept free of HTTP so its rules read in one place:
//! a request is issued pending, approved by the right SMS code (or denied by too many wrong
//! ones), and redeemed once at the token endpoint for an access token that userinfo accepts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::SandboxConfig;

/// Access tokens live 300 s (Keycloak's default access token lifespan).
pub(crate) const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);

/// How long a request outlives its expiry before it is forgotten: long enough that a late
/// poll still gets `expired_token` rather than `invalid_grant`, short enough to bound memory.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// CIBA Core §7.3: without an announced interval, clients wait 5 s.
const DEFAULT_INTERVAL_SECS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Approved { at: Instant },
    Denied,
    Redeemed,
}

struct AuthRequest {
    client_id: String,
    scope: String,
    login_hint: String,
    phone_digits: String,
    code: String,
    expires_at: Instant,
    code_expires_at: Instant,
    wrong_codes: u32,
    last_poll: Option<Instant>,
    status: Status,
}

/// What an issued access token stands for, i.e. what userinfo returns.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) scope: String,
    pub(crate) login_hint: String,
    pub(crate) phone_digits: String,
}

struct AccessToken {
    grant: Grant,
    expires_at: Instant,
}

/// A validated auth request, ready to be stored.
pub(crate) struct NewRequest {
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) login_hint: String,
    pub(crate) phone_digits: String,
    pub(crate) code: String,
}

/// Result of submitting an SMS code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CodeOutcome {
    Approved,
    /// Unknown, expired or no longer pending: the bearer is no good (401 `invalid_token`).
    NotPending(&'static str),
    CodeExpired,
    WrongCode,
    /// This wrong code used up the attempts; the request is now denied.
    Denied,
}

/// Result of a token poll.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PollOutcome {
    InvalidGrant(&'static str),
    Expired,
    Denied,
    Pending,
    SlowDown,
    Issued { scope: String },
}

#[derive(Default)]
pub(crate) struct Store {
    requests: HashMap<String, AuthRequest>,
    tokens: HashMap<String, AccessToken>,
}

impl Store {
    pub(crate) fn insert(&mut self, id: String, new: NewRequest, cfg: &SandboxConfig, now: Instant) {
        self.forget_old(now);
        let request = AuthRequest {
            client_id: new.client_id,
            scope: new.scope,
            login_hint: new.login_hint,
            phone_digits: new.phone_digits,
            code: new.code,
            expires_at: now + Duration::from_secs(cfg.expires_in),
            code_expires_at: now + Duration::from_secs(cfg.code_ttl_secs),
            wrong_codes: 0,
            last_poll: None,
            status: Status::Pending,
        };
        self.requests.insert(id, request);
    }

    fn forget_old(&mut self, now: Instant) {
        self.requests.retain(|_, r| now < r.expires_at + FORGET_AFTER);
        self.tokens.retain(|_, t| now < t.expires_at);
    }

    /// Whether `id` names a request that still accepts a code; the reason if not.
    pub(crate) fn check_pending(&self, id: &str, now: Instant) -> Result<(), &'static str> {
        let request = self.requests.get(id).ok_or("unknown auth_req_id")?;
        if now >= request.expires_at {
            return Err("auth_req_id expired");
        }
        if request.status != Status::Pending {
            return Err("authentication request is no longer pending");
        }
        Ok(())
    }

    pub(crate) fn submit_code(
        &mut self,
        id: &str,
        code: &str,
        cfg: &SandboxConfig,
        now: Instant,
    ) -> CodeOutcome {
        if let Err(reason) = self.check_pending(id, now) {
            return CodeOutcome::NotPending(reason);
        }
        let Some(request) = self.requests.get_mut(id) else {
            return CodeOutcome::NotPending("unknown auth_req_id");
        };
        if now >= request.code_expires_at {
            return CodeOutcome::CodeExpired;
        }
        if code == request.code {
            request.status = Status::Approved { at: now };
            return CodeOutcome::Approved;
        }
        request.wrong_codes = request.wrong_codes.saturating_add(1);
        if request.wrong_codes >= cfg.max_wrong_codes {
            request.status = Status::Denied;
            CodeOutcome::Denied
        } else {
            CodeOutcome::WrongCode
        }
    }

    /// One token-endpoint poll by `client_id`. On success the request is redeemed and
    /// `access_token` becomes valid for userinfo.
    pub(crate) fn poll(
        &mut self,
        id: &str,
        client_id: &str,
        access_token: String,
        cfg: &SandboxConfig,
        now: Instant,
    ) -> PollOutcome {
        let Some(request) = self.requests.get_mut(id) else {
            return PollOutcome::InvalidGrant("unknown auth_req_id");
        };
        // Another client's id is as good as unknown: don't reveal that it exists.
        if request.client_id != client_id {
            return PollOutcome::InvalidGrant("unknown auth_req_id");
        }
        if request.status == Status::Redeemed {
            return PollOutcome::InvalidGrant("auth_req_id already redeemed");
        }
        if now >= request.expires_at {
            return PollOutcome::Expired;
        }
        let approval_delay = Duration::from_millis(cfg.approval_delay_ms);
        match request.status {
            Status::Denied => return PollOutcome::Denied,
            Status::Approved { at } if now.duration_since(at) >= approval_delay => {
                request.status = Status::Redeemed;
                let grant = Grant {
                    scope: request.scope.clone(),
                    login_hint: request.login_hint.clone(),
                    phone_digits: request.phone_digits.clone(),
                };
                let scope = grant.scope.clone();
                self.tokens.insert(access_token, AccessToken { grant, expires_at: now + ACCESS_TOKEN_TTL });
                return PollOutcome::Issued { scope };
            }
            _ => {}
        }
        // Still pending from the client's point of view: enforce the poll interval.
        let interval = Duration::from_secs(cfg.interval.unwrap_or(DEFAULT_INTERVAL_SECS));
        let too_soon = request.last_poll.is_some_and(|last| now.duration_since(last) < interval);
        request.last_poll = Some(now);
        if too_soon { PollOutcome::SlowDown } else { PollOutcome::Pending }
    }

    pub(crate) fn userinfo(&self, access_token: &str, now: Instant) -> Option<Grant> {
        self.tokens.get(access_token).filter(|t| now < t.expires_at).map(|t| t.grant.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_request() -> NewRequest {
        NewRequest {
            client_id: "c".into(),
            scope: "openid".into(),
            login_hint: "447700900123".into(),
            phone_digits: "447700900123".into(),
            code: "123456".into(),
        }
    }

    #[test]
    fn lifecycle() {
        let cfg = SandboxConfig { approval_delay_ms: 100, ..SandboxConfig::default() };
        let t0 = Instant::now();
        let mut store = Store::default();
        store.insert("r".into(), new_request(), &cfg, t0);
        assert_eq!(
            store.poll("r", "other", "t".into(), &cfg, t0),
            PollOutcome::InvalidGrant("unknown auth_req_id")
        );
        assert_eq!(store.poll("r", "c", "t".into(), &cfg, t0), PollOutcome::Pending);
        assert_eq!(
            store.poll("r", "c", "t".into(), &cfg, t0 + Duration::from_secs(1)),
            PollOutcome::SlowDown
        );
        let approved = t0 + Duration::from_secs(6);
        assert_eq!(store.submit_code("r", "000000", &cfg, approved), CodeOutcome::WrongCode);
        assert_eq!(store.submit_code("r", "123456", &cfg, approved), CodeOutcome::Approved);
        assert!(matches!(store.submit_code("r", "123456", &cfg, approved), CodeOutcome::NotPending(_)));
        // Within the approval delay it still looks pending.
        let soon = approved + Duration::from_millis(50);
        assert_eq!(store.poll("r", "c", "t".into(), &cfg, soon), PollOutcome::Pending);
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(
            store.poll("r", "c", "t".into(), &cfg, t1),
            PollOutcome::Issued { scope: "openid".into() }
        );
        assert_eq!(
            store.poll("r", "c", "t".into(), &cfg, t1),
            PollOutcome::InvalidGrant("auth_req_id already redeemed")
        );
        assert_eq!(store.userinfo("t", t1).map(|g| g.phone_digits).as_deref(), Some("447700900123"));
        assert!(store.userinfo("t", t1 + ACCESS_TOKEN_TTL).is_none());
        assert!(store.userinfo("x", t1).is_none());
    }

    #[test]
    fn attempts_and_expiry() {
        let cfg = SandboxConfig {
            max_wrong_codes: 2,
            code_ttl_secs: 10,
            expires_in: 20,
            ..SandboxConfig::default()
        };
        let t0 = Instant::now();
        let mut store = Store::default();
        store.insert("a".into(), new_request(), &cfg, t0);
        assert_eq!(store.submit_code("a", "1", &cfg, t0), CodeOutcome::WrongCode);
        assert_eq!(store.submit_code("a", "2", &cfg, t0), CodeOutcome::Denied);
        assert!(matches!(store.submit_code("a", "123456", &cfg, t0), CodeOutcome::NotPending(_)));
        assert_eq!(store.poll("a", "c", "t".into(), &cfg, t0), PollOutcome::Denied);

        store.insert("b".into(), new_request(), &cfg, t0);
        assert_eq!(
            store.submit_code("b", "123456", &cfg, t0 + Duration::from_secs(10)),
            CodeOutcome::CodeExpired
        );
        assert!(matches!(
            store.submit_code("b", "123456", &cfg, t0 + Duration::from_secs(20)),
            CodeOutcome::NotPending(_)
        ));
        assert_eq!(
            store.poll("b", "c", "t".into(), &cfg, t0 + Duration::from_secs(20)),
            PollOutcome::Expired
        );
        // Long after expiry the request is forgotten.
        store.insert("c".into(), new_request(), &cfg, t0 + Duration::from_secs(20) + FORGET_AFTER);
        assert_eq!(
            store.poll("b", "c", "t".into(), &cfg, t0),
            PollOutcome::InvalidGrant("unknown auth_req_id")
        );
    }
}
