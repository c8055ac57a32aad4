//! The service's configuration: the seed's JSON shape, validated once at cold start.
//!
//! The file keeps the seed's keys (`realm`, `auth_servers`, top-level `client_id`/`client_secret`,
//! `clients[]`) so a seed `config/default.json` loads as it is; everything this service adds
//! is optional with a default. Parsing turns the raw file into [`Config`], where every SMS client
//! has its effective credentials and every auth server its four endpoint URLs, so no request ever
//! has to deal with a half-configured value.

use std::{collections::HashSet, env, fs, path::Path, time::Duration};

use reqwest::Url;
use serde::Deserialize;

use crate::{
    fraud_guard::RawFraudGuard, limits::RawLimits, outbound, phone::LoginHintFormat, secret::ClientSecret,
};

mod clients;

use clients::{
    ClientDefaults, RawClient, validate_default_fraud_guard, validate_default_limits, validate_sms_clients,
};
pub use clients::{SmsClient, TestNumber};

/// The only `user_flow` allowed to use the SMS endpoints.
pub const SMS_USER_FLOW: &str = "pvn_sms";
pub use crate::sms_text::CODE_PLACEHOLDER;
pub const DEFAULT_SMS_TEMPLATE: &str = "Your verification PIN is: {{code}}";
/// Scope used when neither the request nor the client names one (OpenID needs at least this).
pub const FALLBACK_SCOPE: &str = "openid";
/// A verification never lives longer than this, whatever the upstream says (NIST 800-63B: ≤ 10 min).
pub const MAX_VERIFICATION_TTL_SECS: u64 = 600;
/// API Gateway ends every integration after 30 s; the token step must finish well before.
const API_GATEWAY_LIMIT: Duration = Duration::from_secs(30);

/// One upstream auth server with its resolved endpoint URLs.
#[derive(Clone, Debug)]
pub struct AuthServer {
    pub id: String,
    pub url: String,
    pub endpoints: Endpoints,
    pub login_hint_format: LoginHintFormat,
}

#[derive(Clone, Debug)]
pub struct Endpoints {
    pub ciba_auth: Url,
    pub sms_callback: Url,
    pub token: Url,
    pub userinfo: Url,
}

/// Timeouts for upstream calls. The token budget bounds the whole `/sms/token` upstream work
/// (callback, token polling, userinfo), so it must sit below the Lambda timeout and API Gateway's
/// 30 s limit.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub request: Duration,
    pub token_budget: Duration,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// In file order; the first is the default when a request names no `server_id`.
    pub auth_servers: Vec<AuthServer>,
    pub sms_clients: Vec<SmsClient>,
    pub session_ttl: Duration,
    pub upstream: UpstreamTimeouts,
    /// `iss` of the signed verification result ([`crate::signed_result`]); `None`: the API's base
    /// URL (`API_BASE_URL` in Lambda, the listening address in `local-api`).
    pub issuer: Option<String>,
    /// How long a signed verification result is valid (`exp` − `iat`).
    pub verification_token_ttl: Duration,
}

impl Config {
    /// Loads the config the way a Lambda function gets it: inline JSON in `CONFIG_JSON`, else the
    /// file named by `CONFIG_FILE`. `client_secret` (from `CLIENT_SECRET` or Secrets Manager, see
    /// [`crate::app::App::from_env`]) replaces the top-level `client_secret`, so the
    /// file never has to hold a secret; `SESSION_TTL_SECS` replaces `session_ttl_secs`.
    /// `role` says which of the secrets the config names by variable the function needs.
    pub fn from_env(client_secret: Option<ClientSecret>, role: Role) -> Result<Self, ConfigError> {
        let secrets = match role {
            Role::SendsSms => Secrets::All,
            Role::CompletesVerifications => Secrets::Client,
        };
        RawConfig::read(&config_json_from_env()?)?.validate(client_secret, secrets, &env_var)
    }

    /// Loads the config for a function that never calls the upstream (`/user/info`,
    /// `/sms/clients`, logout): the same document and checks, but no client secret is needed, so
    /// the function needs no access to it. Its clients' secrets are empty and never used.
    pub fn from_env_without_secrets() -> Result<Self, ConfigError> {
        RawConfig::read(&config_json_from_env()?)?.validate(None, Secrets::NotNeeded, &env_var)
    }

    /// Checks a config document as the deployed functions check it at cold start, but without its
    /// secrets (in Lambda the client secret comes from Secrets Manager and a challenge secret from
    /// its variable): what `local-api --check-config` runs on `ServiceConfig` before a deploy.
    pub fn check(json: &str) -> Result<Self, ConfigError> {
        RawConfig::read(json)?.validate(None, Secrets::NotNeeded, &|_| None)
    }

    /// Parses and validates a config document. Every problem found is listed in the error, each
    /// with the key to fix.
    pub fn parse(json: &str, client_secret: Option<ClientSecret>) -> Result<Self, ConfigError> {
        Self::parse_with_env(json, client_secret, &env_var)
    }

    /// [`Self::parse`], reading the secrets the config names by variable (`clients[].challenge.
    /// secret_env`) from `env` instead of the process's environment.
    pub fn parse_with_env(
        json: &str,
        client_secret: Option<ClientSecret>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        RawConfig::read(json)?.validate(client_secret, Secrets::All, env)
    }

    /// What works but is worth fixing, for the cold start's log and `--check-config`.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.sms_clients.iter().flat_map(|client| client.warnings.iter().map(String::as_str))
    }

    pub fn sms_client(&self, client_id: &str) -> Option<&SmsClient> {
        self.sms_clients.iter().find(|c| c.client_id == client_id)
    }

    /// The named auth server, or the default (first) one when `server_id` is `None`.
    pub fn auth_server(&self, server_id: Option<&str>) -> Option<&AuthServer> {
        match server_id {
            Some(id) => self.auth_servers.iter().find(|s| s.id == id),
            None => self.auth_servers.first(),
        }
    }
}

/// An environment variable that is set and not blank; a blank one counts as unset.
pub fn env_var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The shape of a one-time code: 4 to 10 ASCII digits.
pub fn is_code(code: &str) -> bool {
    (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

fn with_session_ttl(json: &str, ttl: &str) -> Result<String, ConfigError> {
    let ttl: u64 = ttl.trim().parse().map_err(|_| {
        ConfigError::new(format!("SESSION_TTL_SECS must be a whole number of seconds, not {ttl:?}"))
    })?;
    let mut document: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ConfigError::new(format!("config is not valid JSON: {e}")))?;
    match document.as_object_mut() {
        Some(object) => object.insert("session_ttl_secs".into(), ttl.into()),
        None => return Err(ConfigError::new("config must be a JSON object")),
    };
    Ok(document.to_string())
}

pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path)
        .map_err(|e| ConfigError::new(format!("cannot read config file {}: {e}", path.display())))
}

/// What is wrong with the configuration, written for the operator who has to fix it: every
/// problem found, each naming the key to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    problems: Vec<String>,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { problems: vec![message.into()] }
    }

    /// Several problems, found together. `problems` is not empty.
    pub fn all(problems: Vec<String>) -> Self {
        Self { problems }
    }

    /// Each problem on its own, for a list an operator reads (`local-api --check-config`).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

// ---- The file as written ---------------------------------------------------------------------

#[derive(Deserialize)]
struct RawConfig {
    /// The Keycloak realm: checked, and used only to build the default endpoint URLs.
    realm: String,
    #[serde(default)]
    auth_servers: Vec<RawAuthServer>,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    #[serde(default)]
    clients: Vec<RawClient>,
    /// Defaults for every client's limits (see [`crate::limits`]).
    #[serde(default)]
    limits: RawLimits,
    /// Defaults for every client's conversion breaker (see [`crate::fraud_guard`]).
    #[serde(default)]
    fraud_guard: RawFraudGuard,
    /// Test numbers are refused unless this is set: production configs leave it off.
    #[serde(default)]
    test_numbers_enabled: bool,
    #[serde(default = "defaults::session_ttl_secs")]
    session_ttl_secs: u64,
    #[serde(default)]
    upstream: RawUpstream,
    issuer: Option<String>,
    #[serde(default = "defaults::verification_token_ttl_secs")]
    verification_token_ttl_secs: u64,
}

#[derive(Deserialize)]
struct RawAuthServer {
    id: String,
    url: String,
    #[serde(default)]
    endpoints: RawEndpoints,
    #[serde(default)]
    login_hint_format: LoginHintFormat,
}

/// The config document from `CONFIG_JSON` or `CONFIG_FILE`, with `SESSION_TTL_SECS` applied.
fn config_json_from_env() -> Result<String, ConfigError> {
    let json = match (env_var("CONFIG_JSON"), env_var("CONFIG_FILE")) {
        (Some(json), _) => json,
        (None, Some(path)) => read_file(Path::new(&path))?,
        (None, None) => {
            return Err(ConfigError::new(
                "no configuration: set CONFIG_JSON to the config JSON, or CONFIG_FILE to the path of a config file",
            ));
        }
    };
    match env_var("SESSION_TTL_SECS") {
        Some(ttl) => with_session_ttl(&json, &ttl),
        None => Ok(json),
    }
}

/// What a function that calls the upstream does, and so which secrets its config needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Starts verifications (`/sms/auth`): every client's secret and challenge secret.
    SendsSms,
    /// Completes them (`/sms/token`): every client's secret; challenges are not its business.
    CompletesVerifications,
}

/// Which secrets the loading function needs: all (`/sms/auth`, and `local-api`, which serves
/// every endpoint), the client secrets (`/sms/token`), or none.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Secrets {
    All,
    Client,
    NotNeeded,
}

/// Per-server overrides of the upstream endpoint URLs; the Keycloak layout otherwise.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoints {
    ciba_auth: Option<String>,
    sms_callback: Option<String>,
    token: Option<String>,
    userinfo: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default = "defaults::connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "defaults::request_timeout_ms")]
    request_timeout_ms: u64,
    #[serde(default = "defaults::token_budget_ms")]
    token_budget_ms: u64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            connect_timeout_ms: defaults::connect_timeout_ms(),
            request_timeout_ms: defaults::request_timeout_ms(),
            token_budget_ms: defaults::token_budget_ms(),
        }
    }
}

mod defaults {
    pub fn verification_token_ttl_secs() -> u64 {
        300
    }

    pub fn session_ttl_secs() -> u64 {
        3600
    }
    pub fn connect_timeout_ms() -> u64 {
        2_000
    }
    pub fn request_timeout_ms() -> u64 {
        5_000
    }
    pub fn token_budget_ms() -> u64 {
        20_000
    }
}

impl RawConfig {
    /// The config's shape; an error names the key (`clients[0].number_types[1]: unknown variant …`).
    fn read(json: &str) -> Result<Self, ConfigError> {
        let mut json = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut json)
            .map_err(|e| ConfigError::new(format!("config is not valid JSON of the expected shape: {e}")))
    }

    /// Checks every section, collecting every problem before giving up, in file order.
    fn validate(
        self,
        secret_override: Option<ClientSecret>,
        secrets: Secrets,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();

        check_realm(&self.realm, &mut problems);
        let auth_servers = validate_auth_servers(self.auth_servers, &self.realm, &mut problems);
        let defaults = ClientDefaults {
            client_id: self.client_id,
            client_secret: secret_override.or(self.client_secret),
            limits: validate_default_limits(&self.limits, &mut problems),
            fraud_guard: validate_default_fraud_guard(&self.fraud_guard, &mut problems),
            test_numbers_enabled: self.test_numbers_enabled,
            secrets,
            env,
        };
        let sms_clients = validate_sms_clients(self.clients, &defaults, &mut problems);
        let session_ttl = validate_session_ttl(self.session_ttl_secs, &mut problems);
        let upstream = validate_upstream(&self.upstream, &mut problems);
        let issuer = self.issuer.filter(|issuer| check_issuer(issuer, &mut problems));
        let verification_token_ttl =
            validate_verification_token_ttl(self.verification_token_ttl_secs, &mut problems);

        if !problems.is_empty() {
            return Err(ConfigError::all(problems));
        }
        Ok(Config { auth_servers, sms_clients, session_ttl, upstream, issuer, verification_token_ttl })
    }
}

fn check_realm(realm: &str, problems: &mut Vec<String>) {
    if realm.trim().is_empty() || realm.contains('/') {
        problems.push("`realm` must be a non-empty name without '/' (usually \"ipification\")".to_owned());
    }
}

fn validate_auth_servers(
    servers: Vec<RawAuthServer>,
    realm: &str,
    problems: &mut Vec<String>,
) -> Vec<AuthServer> {
    if servers.is_empty() {
        problems.push("`auth_servers` must list at least one server as {\"id\", \"url\"}".to_owned());
    }
    let mut server_ids = HashSet::new();
    let mut auth_servers = Vec::new();
    for (i, server) in servers.into_iter().enumerate() {
        let at = format!("auth_servers[{i}]");
        if server.id.trim().is_empty() {
            problems.push(format!("`{at}.id` must not be empty"));
        } else if !server_ids.insert(server.id.clone()) {
            problems.push(format!("`{at}.id` \"{}\" is used twice", server.id));
        }
        match resolve_endpoints(&server, realm) {
            Ok(endpoints) => auth_servers.push(AuthServer {
                id: server.id,
                url: server.url,
                endpoints,
                login_hint_format: server.login_hint_format,
            }),
            Err(why) => problems.push(format!("`{at}`: {why}")),
        }
    }
    auth_servers
}

fn validate_session_ttl(secs: u64, problems: &mut Vec<String>) -> Duration {
    if !(60..=30 * 86_400).contains(&secs) {
        problems.push("`session_ttl_secs` must be between 60 and 2592000 (30 days)".to_owned());
    }
    Duration::from_secs(secs)
}

/// An issuer is what a backend compares `iss` with: an `https` URL (`http` only on loopback, for
/// local runs), without a query or fragment.
pub fn check_issuer(issuer: &str, problems: &mut Vec<String>) -> bool {
    let ok = Url::parse(issuer)
        .is_ok_and(|url| outbound::is_safe_url(&url) && url.query().is_none() && url.fragment().is_none());
    if !ok {
        problems.push(
            "`issuer` must be an https URL without a query (the API's base URL, as backends compare it)"
                .to_owned(),
        );
    }
    ok
}

fn validate_verification_token_ttl(secs: u64, problems: &mut Vec<String>) -> Duration {
    if !(30..=3600).contains(&secs) {
        problems.push("`verification_token_ttl_secs` must be between 30 and 3600".to_owned());
    }
    Duration::from_secs(secs)
}

fn validate_upstream(raw: &RawUpstream, problems: &mut Vec<String>) -> UpstreamTimeouts {
    let upstream = UpstreamTimeouts {
        connect: Duration::from_millis(raw.connect_timeout_ms),
        request: Duration::from_millis(raw.request_timeout_ms),
        token_budget: Duration::from_millis(raw.token_budget_ms),
    };
    if upstream.connect.is_zero() || upstream.request.is_zero() || upstream.token_budget.is_zero() {
        problems.push("`upstream` timeouts must be greater than 0".to_owned());
    }
    if upstream.connect > upstream.request {
        problems
            .push("`upstream.connect_timeout_ms` must not exceed `upstream.request_timeout_ms`".to_owned());
    }
    if upstream.token_budget >= API_GATEWAY_LIMIT {
        problems.push(format!(
            "`upstream.token_budget_ms` must be below API Gateway's {} s limit (and below the Lambda timeout)",
            API_GATEWAY_LIMIT.as_secs()
        ));
    }
    upstream
}

/// The server's endpoints: Keycloak's paths under `url`, or the `endpoints` overrides. Each
/// must be `https` (or `http` to a loopback host, for local work): the requests carry the client
/// secret, the phone and bearer credentials.
fn resolve_endpoints(server: &RawAuthServer, realm: &str) -> Result<Endpoints, String> {
    let base = server.url.trim_end_matches('/');
    let parsed = Url::parse(base).map_err(|e| format!("`url` \"{}\" is not a URL: {e}", server.url))?;
    if !outbound::is_safe_url(&parsed) {
        return Err(format!("`url` \"{}\" {MUST_BE_HTTPS}", server.url));
    }
    let keycloak = format!("{base}/realms/{realm}/protocol/openid-connect");
    let endpoint = |name: &str, value: &Option<String>, default: String| {
        let text = value.clone().unwrap_or(default);
        let url =
            Url::parse(&text).map_err(|e| format!("`endpoints.{name}` \"{text}\" is not a URL: {e}"))?;
        if !outbound::is_safe_url(&url) {
            return Err(format!("`endpoints.{name}` \"{text}\" {MUST_BE_HTTPS}"));
        }
        Ok(url)
    };
    Ok(Endpoints {
        ciba_auth: endpoint("ciba_auth", &server.endpoints.ciba_auth, format!("{keycloak}/ext/ciba/auth"))?,
        sms_callback: endpoint(
            "sms_callback",
            &server.endpoints.sms_callback,
            format!("{keycloak}/ext/bc/sms/callback"),
        )?,
        token: endpoint("token", &server.endpoints.token, format!("{keycloak}/token"))?,
        userinfo: endpoint("userinfo", &server.endpoints.userinfo, format!("{keycloak}/userinfo"))?,
    })
}

const MUST_BE_HTTPS: &str =
    "must be https (plain http only to a loopback host such as 127.0.0.1, for local work)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        limits::Limits,
        phone::{NumberPolicy, NumberType},
    };

    const SEED: &str = r#"{
        "realm": "ipification",
        "auth_servers": [ { "id": "stage", "url": "https://api.stage.ipification.com/auth" } ],
        "client_id": "seed-client", "client_secret": "seed-secret",
        "clients": [
            { "user_flow": "pvn_sms", "title": "SMS Phone Number Verification", "scope": "openid ip:phone_verify" },
            { "user_flow": "pvn_ip", "title": "Other flow" }
        ]
    }"#;

    /// `/sms/token` never verifies a challenge: its function gets no challenge secret and must
    /// still start, while `/sms/auth`'s refuses to start without it.
    #[test]
    fn only_the_sending_function_needs_the_challenge_secret() {
        let mut json: serde_json::Value = serde_json::from_str(SEED).unwrap();
        json["clients"][0]["challenge"] =
            serde_json::json!({"provider": "hcaptcha", "secret_env": "CHALLENGE_SECRET"});
        let json = json.to_string();
        let unset = |_: &str| None;
        let sending = RawConfig::read(&json).unwrap().validate(None, Secrets::All, &unset);
        assert!(sending.unwrap_err().to_string().contains("\"CHALLENGE_SECRET\", which is not set"));
        let completing = RawConfig::read(&json).unwrap().validate(None, Secrets::Client, &unset).unwrap();
        assert!(completing.sms_clients[0].challenge.is_some());
    }

    #[test]
    fn seed_config_loads_with_keycloak_endpoints_and_defaults() {
        let config = Config::parse(SEED, None).expect("seed config is valid");
        let server = config.auth_server(None).expect("default server");
        assert_eq!(server.id, "stage");
        assert_eq!(
            server.endpoints.ciba_auth.as_str(),
            "https://api.stage.ipification.com/auth/realms/ipification/protocol/openid-connect/ext/ciba/auth"
        );
        assert_eq!(
            server.endpoints.sms_callback.as_str(),
            "https://api.stage.ipification.com/auth/realms/ipification/protocol/openid-connect/ext/bc/sms/callback"
        );
        assert_eq!(server.login_hint_format, LoginHintFormat::Digits);
        assert_eq!(config.sms_clients.len(), 1, "only pvn_sms clients are SMS clients");
        let client = config.sms_client("seed-client").expect("top-level client_id applies");
        assert_eq!(client.client_secret.expose(), "seed-secret");
        assert_eq!(client.sms.message(None), DEFAULT_SMS_TEMPLATE);
        assert_eq!(client.limits, Limits::default());
        assert!(client.numbers == NumberPolicy::default() && client.test_numbers.is_empty());
        assert_eq!(config.session_ttl, Duration::from_secs(3600));
    }

    #[test]
    fn secret_from_environment_replaces_the_file_secret_and_never_prints() {
        let config = Config::parse(SEED, Some(ClientSecret::new("from-env"))).unwrap();
        let client = config.sms_client("seed-client").unwrap();
        assert_eq!(client.client_secret.expose(), "from-env");
        assert!(!format!("{config:?}").contains("from-env"));
        assert!(!format!("{config:?}").contains("seed-secret"));
    }

    #[test]
    fn endpoint_overrides_and_login_hint_format_are_per_server() {
        let json = SEED.replace(
            r#""url": "https://api.stage.ipification.com/auth" }"#,
            r#""url": "https://a.example/auth", "login_hint_format": "e164",
               "endpoints": { "token": "https://b.example/token" } }"#,
        );
        let config = Config::parse(&json, None).unwrap();
        let server = &config.auth_servers[0];
        assert_eq!(server.login_hint_format, LoginHintFormat::E164);
        assert_eq!(server.endpoints.token.as_str(), "https://b.example/token");
        assert!(server.endpoints.userinfo.as_str().starts_with("https://a.example/auth/realms/"));
    }

    #[test]
    fn every_problem_is_named_with_the_key_to_fix() {
        let json = r#"{
            "realm": "",
            "auth_servers": [ { "id": "a", "url": "not a url" }, { "id": "a", "url": "ftp://x" } ],
            "clients": [ { "user_flow": "pvn_sms", "client_id": "c", "sms_template": "no placeholder" } ],
            "upstream": { "token_budget_ms": 30000 }
        }"#;
        let err = Config::parse(json, None).unwrap_err().to_string();
        for expected in [
            "`realm`",
            "`auth_servers[0]`",
            "`auth_servers[1].id` \"a\" is used twice",
            "must be https",
            "`clients[0]` has no `client_secret`",
            "`upstream.token_budget_ms`",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in: {err}");
        }
    }

    /// The requests carry the client secret and the phone: plain http only to this machine.
    #[test]
    fn upstream_urls_must_be_https_except_to_loopback() {
        let with_server = |server: &str| {
            SEED.replace(r#"{ "id": "stage", "url": "https://api.stage.ipification.com/auth" }"#, server)
        };
        for bad in [
            r#"{ "id": "s", "url": "http://api.stage.ipification.com/auth" }"#,
            r#"{ "id": "s", "url": "http://10.0.3.4/auth" }"#,
            r#"{ "id": "s", "url": "https://a.example/auth", "endpoints": { "token": "http://a.example/token" } }"#,
            r#"{ "id": "s", "url": "https://a.example/auth", "endpoints": { "userinfo": "ftp://a.example/u" } }"#,
        ] {
            let err = Config::parse(&with_server(bad), None).unwrap_err().to_string();
            assert!(err.contains("must be https (plain http only to a loopback host"), "{bad}: {err}");
        }
        for good in [
            r#"{ "id": "s", "url": "http://127.0.0.1:3001/auth" }"#,
            r#"{ "id": "s", "url": "http://localhost:3001/auth" }"#,
            r#"{ "id": "s", "url": "https://a.example/auth", "endpoints": { "token": "http://[::1]:9/token" } }"#,
        ] {
            assert!(Config::parse(&with_server(good), None).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_request_may_name_only_an_allowed_scope() {
        let config = Config::parse(SEED, None).unwrap();
        let client = &config.sms_clients[0];
        assert_eq!(client.scope_for(None), Some("openid ip:phone_verify"));
        assert_eq!(client.scope_for(Some("ip:phone_verify  openid")), Some("ip:phone_verify  openid"));
        assert_eq!(client.scope_for(Some("openid")), None, "by default only the client's own scope");
        let json = SEED.replace(
            r#""scope": "openid ip:phone_verify" }"#,
            r#""scope": "openid ip:phone_verify", "allowed_scopes": ["openid"] }"#,
        );
        let config = Config::parse(&json, None).unwrap();
        let client = &config.sms_clients[0];
        assert_eq!(client.scope_for(Some("openid")), Some("openid"));
        assert_eq!(client.scope_for(None), Some("openid ip:phone_verify"), "its own scope stays allowed");
        assert_eq!(client.scope_for(Some("openid ip:phone")), None);
        let bad = SEED.replace(r#""title": "SMS Phone Number Verification","#, r#""allowed_scopes": [" "],"#);
        let err = Config::parse(&bad, None).unwrap_err().to_string();
        assert!(err.contains("`clients[0].allowed_scopes[0]`"), "{err}");
    }

    #[test]
    fn template_without_code_placeholder_is_rejected() {
        let json = SEED.replace(r#""scope": "openid ip:phone_verify""#, r#""sms_template": "Hello""#);
        let err = Config::parse(&json, None).unwrap_err().to_string();
        assert!(err.contains("`clients[0].sms_template` must contain {{code}}"), "{err}");
    }

    #[test]
    fn limits_countries_and_test_numbers_per_client() {
        let json = SEED.replace(
            r#""scope": "openid ip:phone_verify" }"#,
            r#""scope": "openid ip:phone_verify", "limits": { "max_wrong_codes": 3 },
               "allowed_countries": ["gb", "DE"],
               "test_numbers": [{ "phone": "+44 7400 123000", "code": "123456" }] }"#,
        )
        .replace(r#""realm": "ipification","#, r#""realm": "ipification", "test_numbers_enabled": true, "limits": { "starts_per_ip_hour": 10 },"#);
        let config = Config::parse(&json, None).unwrap();
        let client = &config.sms_clients[0];
        assert_eq!((client.limits.max_wrong_codes, client.limits.starts_per_ip_hour), (3, 10));
        assert_eq!(
            client.numbers.allowed_countries.as_deref(),
            Some(&["GB".to_owned(), "DE".to_owned()][..])
        );
        assert_eq!(client.test_numbers[0].phone, "+447400123000");
        let (countries, types) =
            (r#""allowed_countries": ["gb", "DE"]"#, r#""number_types": ["mobile", "voip"]"#);
        let typed = json.replace(countries, types);
        let numbers = &Config::parse(&typed, None).unwrap().sms_clients[0].numbers;
        assert_eq!(numbers.number_types, [NumberType::Mobile, NumberType::Voip]);
        let err = Config::parse(&typed.replace(r#""voip""#, r#""landline""#), None).unwrap_err().to_string();
        assert!(err.contains("clients[0].number_types[1]") && err.contains("fixed_line"), "{err}");

        let disabled = json.replace(r#""test_numbers_enabled": true"#, r#""test_numbers_enabled": false"#);
        let err = Config::parse(&disabled, None).unwrap_err().to_string();
        assert!(err.contains("`test_numbers_enabled` is not true"), "{err}");
        let bad = json
            .replace(r#"["gb", "DE"]"#, r#"["Britain"]"#)
            .replace(r#""code": "123456""#, r#""code": "12""#);
        let err = Config::parse(&bad, None).unwrap_err().to_string();
        assert!(
            err.contains("`clients[0].allowed_countries`")
                && err.contains("`clients[0].test_numbers[0].code`"),
            "{err}"
        );
    }

    #[test]
    fn a_config_without_sms_clients_is_rejected() {
        let json = SEED.replace("\"pvn_sms\"", "\"pvn_ip\"");
        let err = Config::parse(&json, None).unwrap_err().to_string();
        assert!(err.contains("no client with \"user_flow\": \"pvn_sms\""), "{err}");
    }

    #[test]
    fn malformed_json_says_where() {
        let err = Config::parse("{\"realm\": 3}", None).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }
}
