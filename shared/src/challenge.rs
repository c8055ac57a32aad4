//! The challenge gate, optional per client: `/sms/auth` then needs a `challenge_token` from a
//! CAPTCHA widget in the app or page (Cloudflare Turnstile, hCaptcha or Google reCAPTCHA), and the
//! token is verified with the provider before any counter is touched or SMS sent. A bot that
//! cannot solve the challenge cannot make the client pay for an SMS.
//!
//! The three providers speak one siteverify protocol: a form POST of `secret`, `response` (the
//! token) and `remoteip` (the caller's address) to the provider's URL, answered with JSON whose
//! `success` says whether the token is good (and single-use: a token verifies once). The answer is
//! read up to [`MAX_ANSWER_BYTES`]; redirects are never followed (the form carries the secret).

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::{
    outbound::{self, BodyError, is_safe_url},
    secret::ChallengeSecret,
};

/// A siteverify answer is a few hundred bytes; anything longer is not one.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// A siteverify answers in well under a second; these keep `/sms/auth` inside its Lambda timeout
/// (template.yaml: 15 s) with the upstream call after it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Turnstile,
    Hcaptcha,
    Recaptcha,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Self::Turnstile => "turnstile",
            Self::Hcaptcha => "hcaptcha",
            Self::Recaptcha => "recaptcha",
        }
    }

    /// The provider's siteverify endpoint.
    pub fn verify_url(self) -> &'static str {
        match self {
            Self::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
            Self::Hcaptcha => "https://api.hcaptcha.com/siteverify",
            Self::Recaptcha => "https://www.google.com/recaptcha/api/siteverify",
        }
    }
}

/// A client's challenge, resolved: its secret read from the environment at cold start.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub provider: Provider,
    pub secret: ChallengeSecret,
    pub verify_url: Url,
    /// The widget's public site key, for the page (`/sms/clients`); not needed to verify.
    pub site_key: Option<String>,
}

/// `clients[].challenge` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChallenge {
    pub provider: Provider,
    /// The environment variable that holds the provider's secret key.
    pub secret_env: String,
    pub verify_url: Option<String>,
    pub site_key: Option<String>,
}

impl RawChallenge {
    /// The challenge at `at` (`clients[0].challenge`), its secret from `env`; `None` (and a problem
    /// named) when it cannot be used. `secret_needed` is false for functions that never send.
    pub fn resolve(
        self,
        at: &str,
        env: &dyn Fn(&str) -> Option<String>,
        secret_needed: bool,
        problems: &mut Vec<String>,
    ) -> Option<Challenge> {
        let text = self.verify_url.unwrap_or_else(|| self.provider.verify_url().to_owned());
        let verify_url = match Url::parse(&text) {
            Ok(url) if is_safe_url(&url) => url,
            _ => {
                problems.push(format!(
                    "`{at}.verify_url` \"{text}\" must be an https URL (http only to a loopback host, for local work)"
                ));
                return None;
            }
        };
        let secret = match env(&self.secret_env) {
            Some(secret) => ChallengeSecret::new(secret),
            None if !secret_needed => ChallengeSecret::new(""),
            None => {
                problems.push(format!(
                    "`{at}.secret_env` names the environment variable {:?}, which is not set: set it to the {} secret key",
                    self.secret_env,
                    self.provider.name()
                ));
                return None;
            }
        };
        Some(Challenge { provider: self.provider, secret, verify_url, site_key: self.site_key })
    }
}

/// Why a token could not be judged: the provider could not be asked or answered nonsense.
#[derive(Debug, thiserror::Error)]
#[error("challenge verification failed: {0}")]
pub struct ChallengeError(String);

/// Verifies tokens with the providers; one HTTP client, built at cold start.
#[derive(Clone)]
pub struct ChallengeVerifier {
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    success: bool,
}

impl ChallengeVerifier {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = outbound::client(CONNECT_TIMEOUT, REQUEST_TIMEOUT)?;
        Ok(Self { http })
    }

    /// Whether the provider accepts `token` from `remote_ip`.
    pub async fn verify(
        &self,
        challenge: &Challenge,
        token: &str,
        remote_ip: Option<&str>,
    ) -> Result<bool, ChallengeError> {
        let mut form = vec![("secret", challenge.secret.expose()), ("response", token)];
        if let Some(ip) = remote_ip {
            form.push(("remoteip", ip));
        }
        let fail = |what: &str| ChallengeError(format!("{} siteverify {what}", challenge.provider.name()));
        let response = self
            .http
            .post(challenge.verify_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| fail(if e.is_timeout() { "timed out" } else { "could not be reached" }))?;
        if !response.status().is_success() {
            return Err(fail(&format!("answered HTTP {}", response.status().as_u16())));
        }
        let body = outbound::read_capped(response, MAX_ANSWER_BYTES).await.map_err(|err| match err {
            BodyError::TooLarge => fail("answered more than 16 KiB"),
            BodyError::Broken { .. } => fail("broke off its answer"),
        })?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| fail("answered no JSON `success`"))?;
        Ok(answer.success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        json: serde_json::Value,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Option<Challenge>, Vec<String>) {
        let raw: RawChallenge = serde_json::from_value(json).unwrap();
        let mut problems = Vec::new();
        (raw.resolve("clients[0].challenge", env, true, &mut problems), problems)
    }

    #[test]
    fn the_secret_comes_from_the_named_variable_and_the_url_from_the_provider() {
        let env = |name: &str| (name == "TURNSTILE_SECRET").then(|| "s3cret".to_owned());
        let (challenge, problems) =
            resolve(serde_json::json!({"provider": "turnstile", "secret_env": "TURNSTILE_SECRET"}), &env);
        let challenge = challenge.expect("resolved");
        assert!(problems.is_empty());
        assert_eq!(
            challenge.verify_url.as_str(),
            "https://challenges.cloudflare.com/turnstile/v0/siteverify"
        );
        assert_eq!(challenge.secret.expose(), "s3cret");
        assert!(!format!("{challenge:?}").contains("s3cret"));
        for provider in [Provider::Hcaptcha, Provider::Recaptcha] {
            assert!(provider.verify_url().starts_with("https://"));
        }
    }

    #[test]
    fn a_missing_secret_or_an_unsafe_url_is_a_config_problem() {
        let none = |_: &str| None;
        let (challenge, problems) =
            resolve(serde_json::json!({"provider": "hcaptcha", "secret_env": "HCAPTCHA_SECRET"}), &none);
        assert!(challenge.is_none());
        assert!(problems[0].contains("\"HCAPTCHA_SECRET\", which is not set"), "{problems:?}");
        let some = |_: &str| Some("x".to_owned());
        for url in ["http://siteverify.example.com/", "ftp://127.0.0.1/", "not a url"] {
            let json = serde_json::json!({"provider": "recaptcha", "secret_env": "S", "verify_url": url});
            let (challenge, problems) = resolve(json, &some);
            assert!(
                challenge.is_none() && problems[0].contains("must be an https URL"),
                "{url}: {problems:?}"
            );
        }
        for url in [
            "http://127.0.0.1:9/siteverify",
            "http://[::1]/",
            "http://localhost/x",
            "https://verify.example/",
        ] {
            let json = serde_json::json!({"provider": "recaptcha", "secret_env": "S", "verify_url": url});
            assert!(resolve(json, &some).0.is_some(), "{url}");
        }
        let unknown: Result<RawChallenge, _> =
            serde_json::from_value(serde_json::json!({"provider": "other", "secret_env": "S"}));
        assert!(unknown.is_err());
    }
}
