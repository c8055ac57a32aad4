//! The `clients[]` entries this service serves (`"user_flow": "pvn_sms"`), validated into
//! [`SmsClient`]s: credentials, SMS template, limits, number policy, test numbers.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::{DEFAULT_SMS_TEMPLATE, FALLBACK_SCOPE, SMS_USER_FLOW, Secrets, is_code};
use crate::{
    challenge::{Challenge, RawChallenge},
    fraud_guard::{FraudGuard, Guarded, RawFraudGuard},
    limits::{Limits, RawLimits},
    phone::{NumberPolicy, NumberType, PhoneNumber},
    secret::{ClientSecret, OtpCode},
    sms_text::SmsText,
};

/// A client allowed to use the SMS flow, with its effective credentials and limits.
#[derive(Clone, Debug)]
pub struct SmsClient {
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub title: String,
    /// The scope sent upstream when a request names none (`openid` when the config names none).
    pub scope: String,
    /// The scopes a request may name instead (`allowed_scopes`; by default only `scope`).
    pub allowed_scopes: Vec<String>,
    /// What its SMS says: the template for the request's locale and the autofill lines.
    pub sms: SmsText,
    /// What the config check found that works but is worth fixing (an SMS over one segment).
    pub warnings: Vec<String>,
    pub limits: Limits,
    /// The conversion breaker ([`crate::fraud_guard`]).
    pub fraud_guard: FraudGuard,
    /// The CAPTCHA `/sms/auth` needs, if any ([`crate::challenge`]).
    pub challenge: Option<Challenge>,
    /// The countries and number types it sends an SMS to.
    pub numbers: NumberPolicy,
    /// Fixed numbers with fixed codes: no upstream call, no SMS (app-store review, demos).
    pub test_numbers: Vec<TestNumber>,
}

impl SmsClient {
    /// The scope to send upstream for a request that names `requested`: the client's own when it
    /// names none, else the requested one if it is allowed (compared as sets of scope tokens, as
    /// RFC 6749 §3.3 defines them), else `None`.
    pub fn scope_for<'a>(&'a self, requested: Option<&'a str>) -> Option<&'a str> {
        let Some(requested) = requested else { return Some(&self.scope) };
        let tokens = scope_tokens(requested);
        self.allowed_scopes.iter().any(|allowed| scope_tokens(allowed) == tokens).then_some(requested)
    }

    /// What the fraud guard judges this client by.
    pub fn guarded(&self) -> Guarded<'_> {
        Guarded { client_id: &self.client_id, guard: &self.fraud_guard, limits: &self.limits }
    }
}

fn scope_tokens(scope: &str) -> std::collections::BTreeSet<&str> {
    scope.split_ascii_whitespace().collect()
}

#[derive(Clone, Debug)]
pub struct TestNumber {
    /// E.164.
    pub phone: String,
    pub code: OtpCode,
}

/// At most this many test numbers per client (Firebase allows 10).
const MAX_TEST_NUMBERS: usize = 10;

#[derive(Deserialize)]
pub(super) struct RawClient {
    user_flow: String,
    title: Option<String>,
    scope: Option<String>,
    allowed_scopes: Option<Vec<String>>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    sms_template: Option<String>,
    sms_templates: Option<BTreeMap<String, String>>,
    otp_domain: Option<String>,
    android_app_hash: Option<String>,
    limits: Option<RawLimits>,
    fraud_guard: Option<RawFraudGuard>,
    challenge: Option<RawChallenge>,
    allowed_countries: Option<Vec<String>>,
    number_types: Option<Vec<NumberType>>,
    allow_global_numbers: Option<bool>,
    #[serde(default)]
    test_numbers: Vec<RawTestNumber>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestNumber {
    phone: String,
    code: String,
}

/// What the top level of the file gives every SMS client that does not set its own.
pub(super) struct ClientDefaults<'a> {
    pub(super) client_id: Option<String>,
    /// The `client_secret` from the environment, else the file's top-level one.
    pub(super) client_secret: Option<ClientSecret>,
    pub(super) limits: Limits,
    pub(super) fraud_guard: FraudGuard,
    /// Where secrets named by variable are read (the process's environment, or a test's).
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) test_numbers_enabled: bool,
    pub(super) secrets: Secrets,
}

pub(super) fn validate_default_limits(limits: &RawLimits, problems: &mut Vec<String>) -> Limits {
    let limits = limits.over(&Limits::default());
    problems.extend(limits.problems("limits"));
    limits
}

pub(super) fn validate_default_fraud_guard(guard: &RawFraudGuard, problems: &mut Vec<String>) -> FraudGuard {
    let guard = guard.over(&FraudGuard::default());
    problems.extend(guard.problems("fraud_guard"));
    guard
}

/// The `pvn_sms` entries of `clients`; the other flows' entries are not this service's.
pub(super) fn validate_sms_clients(
    clients: Vec<RawClient>,
    defaults: &ClientDefaults,
    problems: &mut Vec<String>,
) -> Vec<SmsClient> {
    let mut client_ids = HashSet::new();
    let mut sms_clients = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        if client.user_flow != SMS_USER_FLOW {
            continue;
        }
        let at = format!("clients[{i}]");
        if let Some(sms_client) = validate_sms_client(client, &at, defaults, &mut client_ids, problems) {
            sms_clients.push(sms_client);
        }
    }
    if sms_clients.is_empty() && problems.is_empty() {
        problems.push(format!(
            "`clients` has no client with \"user_flow\": \"{SMS_USER_FLOW}\"; the SMS endpoints need one"
        ));
    }
    sms_clients
}

/// One `pvn_sms` client at `at` (`clients[i]`); `None` when it has no usable credentials.
fn validate_sms_client(
    client: RawClient,
    at: &str,
    defaults: &ClientDefaults,
    client_ids: &mut HashSet<String>,
    problems: &mut Vec<String>,
) -> Option<SmsClient> {
    let (client_id, client_secret) =
        validate_credentials(client.client_id, client.client_secret, at, defaults, client_ids, problems)?;
    let mut warnings = Vec::new();
    let sms = SmsText::from_config(
        client.sms_template.unwrap_or_else(|| DEFAULT_SMS_TEMPLATE.to_owned()),
        client.sms_templates,
        client.otp_domain,
        client.android_app_hash,
        at,
        problems,
        &mut warnings,
    );
    let limits = client.limits.unwrap_or_default().over(&defaults.limits);
    problems.extend(limits.problems(&format!("{at}.limits")));
    let fraud_guard = client.fraud_guard.unwrap_or_default().over(&defaults.fraud_guard);
    problems.extend(fraud_guard.problems(&format!("{at}.fraud_guard")));
    let secret_needed = defaults.secrets == Secrets::All;
    let challenge = client
        .challenge
        .and_then(|raw| raw.resolve(&format!("{at}.challenge"), defaults.env, secret_needed, problems));
    let numbers = NumberPolicy::from_config(
        client.allowed_countries,
        client.number_types,
        client.allow_global_numbers,
        at,
        problems,
    );
    let test_numbers =
        validate_test_numbers(client.test_numbers, at, defaults.test_numbers_enabled, problems);
    let scope = client.scope.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| FALLBACK_SCOPE.to_owned());
    let allowed_scopes = validate_allowed_scopes(client.allowed_scopes, &scope, at, problems);
    Some(SmsClient {
        client_id,
        client_secret,
        title: client.title.unwrap_or_else(|| "SMS Phone Number Verification".to_owned()),
        scope,
        allowed_scopes,
        sms,
        warnings,
        limits,
        fraud_guard,
        challenge,
        numbers,
        test_numbers,
    })
}

/// The client's own `client_id`/`client_secret`, else the defaults. A function that never calls
/// the upstream gets an empty secret instead of a missing one.
fn validate_credentials(
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    at: &str,
    defaults: &ClientDefaults,
    client_ids: &mut HashSet<String>,
    problems: &mut Vec<String>,
) -> Option<(String, ClientSecret)> {
    let Some(client_id) = client_id.or_else(|| defaults.client_id.clone()).filter(|id| !id.is_empty()) else {
        problems.push(format!("`{at}` has no `client_id` and there is no top-level `client_id`"));
        return None;
    };
    if !client_ids.insert(client_id.clone()) {
        problems.push(format!("`{at}`: client_id \"{client_id}\" is used by two pvn_sms clients"));
    }
    let client_secret = match (client_secret.or_else(|| defaults.client_secret.clone()), defaults.secrets) {
        (Some(secret), _) => Some(secret),
        (None, Secrets::NotNeeded) => Some(ClientSecret::new("")),
        (None, Secrets::All | Secrets::Client) => None,
    };
    let Some(client_secret) = client_secret else {
        problems.push(format!(
            "`{at}` has no `client_secret`: set it on the client, as top-level `client_secret`, or in the CLIENT_SECRET environment variable"
        ));
        return None;
    };
    Some((client_id, client_secret))
}

/// `allowed_scopes`: non-empty scopes a request may name; the client's own is always one.
fn validate_allowed_scopes(
    allowed: Option<Vec<String>>,
    scope: &str,
    at: &str,
    problems: &mut Vec<String>,
) -> Vec<String> {
    let mut allowed = allowed.unwrap_or_default();
    for (j, entry) in allowed.iter().enumerate() {
        if entry.trim().is_empty() || entry.len() > 256 || entry.chars().any(|c| c.is_control()) {
            problems.push(format!("`{at}.allowed_scopes[{j}]` must be a scope of 1 to 256 characters"));
        }
    }
    if !allowed.iter().any(|entry| scope_tokens(entry) == scope_tokens(scope)) {
        allowed.push(scope.to_owned());
    }
    allowed
}

fn validate_test_numbers(
    tests: Vec<RawTestNumber>,
    at: &str,
    enabled: bool,
    problems: &mut Vec<String>,
) -> Vec<TestNumber> {
    if tests.len() > MAX_TEST_NUMBERS {
        problems.push(format!("`{at}.test_numbers` may list at most {MAX_TEST_NUMBERS} numbers"));
    }
    if !tests.is_empty() && !enabled {
        problems.push(format!(
            "`{at}.test_numbers` is set but `test_numbers_enabled` is not true (test numbers are refused unless enabled)"
        ));
    }
    let mut test_numbers = Vec::new();
    for (j, test) in tests.into_iter().enumerate() {
        let here = format!("{at}.test_numbers[{j}]");
        match PhoneNumber::parse(&test.phone) {
            Ok(phone) => test_numbers
                .push(TestNumber { phone: phone.e164().to_owned(), code: OtpCode::new(test.code.clone()) }),
            Err(why) => problems.push(format!("`{here}.phone`: {why}")),
        }
        if !is_code(&test.code) {
            problems.push(format!("`{here}.code` must be 4 to 10 digits"));
        }
    }
    test_numbers
}
