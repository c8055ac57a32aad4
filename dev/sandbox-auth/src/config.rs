//! The sandbox's configuration: which realm and clients exist, and the knobs that let tests
//! reproduce the upstream behaviours the protocol leaves open (timings, attempt limits,
//! phone-number form, the shape of `phone_number_verified`).

use serde::{Deserialize, Serialize};

/// Everything the sandbox can be told. Every field has a default, so `{}` is a valid config file;
/// unknown fields are rejected so that a typo in a test config fails loudly instead of being ignored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// The one realm that exists; any other realm in a URL answers 404 `realm_not_found`.
    pub realm: String,
    /// Registered clients (confidential, client_secret_post or HTTP Basic).
    pub clients: Vec<SandboxClient>,
    /// Lifetime of an `auth_req_id`, in seconds, as announced in the auth response.
    pub expires_in: u64,
    /// Poll interval announced in the auth response; `None` omits it (clients then use 5 s).
    pub interval: Option<u64>,
    /// How long the SMS code can be submitted, in seconds, counted from the auth request.
    pub code_ttl_secs: u64,
    /// The wrong code that brings the count to this number cancels the request.
    pub max_wrong_codes: u32,
    /// After approval, the token endpoint keeps saying `authorization_pending` this long,
    /// to exercise clients that poll right after submitting the code.
    pub approval_delay_ms: u64,
    /// Which phone-number form `login_hint` must take (whether upstream accepts `+` is unconfirmed).
    pub login_hint_format: LoginHintFormat,
    /// Send `phone_number_verified` as the string `"true"` instead of a JSON boolean;
    /// both forms appear in public material.
    pub verified_claim_as_string: bool,
    /// Don't print the `sandbox_sms` line to stdout (tests read the outbox instead).
    pub quiet: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            realm: "ipification".to_owned(),
            clients: vec![SandboxClient::default()],
            // Keycloak's CIBA defaults.
            expires_in: 120,
            interval: Some(5),
            code_ttl_secs: 120,
            max_wrong_codes: 3,
            approval_delay_ms: 0,
            login_hint_format: LoginHintFormat::Any,
            verified_claim_as_string: false,
            quiet: false,
        }
    }
}

/// A registered client and the scopes it may request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxClient {
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

impl Default for SandboxClient {
    fn default() -> Self {
        SandboxClient {
            client_id: "sandbox-client".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            scopes: default_scopes(),
        }
    }
}

fn default_scopes() -> Vec<String> {
    ["openid", "ip:phone_verify", "ip:phone", "ip:mobile_id"].into_iter().map(str::to_owned).collect()
}

/// The accepted shape of `login_hint`. In every form the number has 2..=15 digits
/// (E.164's maximum) and does not start with 0 (a country code never does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginHintFormat {
    /// Digits only or E.164 with a leading `+`.
    #[default]
    Any,
    /// Digits only; a leading `+` is rejected (what IPification's own front ends send).
    Digits,
    /// E.164; the leading `+` is required.
    E164,
}

impl LoginHintFormat {
    /// The bare digits of an acceptable `login_hint`, or `None` when it is not a phone number
    /// in this form. No trimming or separators: upstream is strict, so the sandbox is too.
    pub(crate) fn phone_digits(self, login_hint: &str) -> Option<String> {
        let (plus, digits) = match login_hint.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, login_hint),
        };
        let form_ok = match self {
            LoginHintFormat::Any => true,
            LoginHintFormat::Digits => !plus,
            LoginHintFormat::E164 => plus,
        };
        let shape_ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        (form_ok && shape_ok).then(|| digits.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_hint_forms() {
        use LoginHintFormat::*;
        assert_eq!(Any.phone_digits("447700900123").as_deref(), Some("447700900123"));
        assert_eq!(Any.phone_digits("+447700900123").as_deref(), Some("447700900123"));
        assert_eq!(Digits.phone_digits("+447700900123"), None);
        assert_eq!(E164.phone_digits("447700900123"), None);
        assert_eq!(E164.phone_digits("+447700900123").as_deref(), Some("447700900123"));
        for bad in ["", "+", "4", "0447700900123", "44 7700", "++44", "4477009001234567", "44a", "٤٤٤"] {
            assert_eq!(Any.phone_digits(bad), None, "{bad:?}");
        }
        assert_eq!(Any.phone_digits("44").as_deref(), Some("44"));
        assert_eq!(Any.phone_digits("447700900123456").as_deref(), Some("447700900123456"));
    }

    #[test]
    fn config_defaults_and_strictness() {
        let cfg: SandboxConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg.realm, "ipification");
        assert_eq!(cfg.clients.len(), 1);
        assert_eq!(cfg.interval, Some(5));
        let cfg: SandboxConfig = serde_json::from_str(
            r#"{"interval":null,"login_hint_format":"e164","clients":[{"client_id":"a","client_secret":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.interval, None);
        assert_eq!(cfg.login_hint_format, LoginHintFormat::E164);
        assert_eq!(cfg.clients[0].scopes.len(), 4);
        assert!(serde_json::from_str::<SandboxConfig>(r#"{"relm":"x"}"#).is_err());
    }
}
