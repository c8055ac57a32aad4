//! Everything a handler needs, built once per Lambda instance (cold start) and shared by
//! reference across invocations: the validated config, the upstream HTTP client, the state store.

use std::sync::Arc;

use aws_types::SdkConfig;

use crate::{
    aws::{dynamodb_client, sdk_config_from_env, secrets_manager_client},
    challenge::ChallengeVerifier,
    ciba::CibaClient,
    clock::{Clock, SystemClock},
    config::{Config, Role, env_var},
    origins::BrowserOrigins,
    outbound,
    rotation::{ClientSecrets, SecretsManagerSecret},
    secret::ClientSecret,
    signed_result::{KeyRing, LOCAL_ISSUER, ResultSigner, SigningKeys},
    startup::StartupError,
    store::{DynamoStore, StateStore, Timed},
};

pub struct App {
    pub config: Config,
    pub ciba: CibaClient,
    /// Verifies the challenge tokens of clients that require one.
    pub challenges: ChallengeVerifier,
    pub store: Arc<dyn StateStore>,
    /// Where the flow's time comes from: the system's, or a test's [`crate::clock::ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// Pages of other origins that may end a session with its cookie (none unless set: `local-api`
    /// reads `BROWSER_ORIGINS`; in Lambda only the logout function needs them).
    pub browser_origins: BrowserOrigins,
    /// Signs `/sms/token`'s `verification_token` and publishes its keys: a key made at start
    /// (`local-api`, tests) and the issuer [`LOCAL_ISSUER`], unless [`Self::from_env`] reads them.
    pub results: ResultSigner,
}

impl App {
    pub fn new(config: Config, store: Arc<dyn StateStore>) -> Result<Self, StartupError> {
        Self::with_clock(config, store, Arc::new(SystemClock))
    }

    /// [`Self::new`] with another clock (tests move it instead of waiting).
    pub fn with_clock(
        config: Config,
        store: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        for warning in config.warnings() {
            tracing::warn!(event = "config_warning", warning);
        }
        let ciba = CibaClient::new(config.upstream)?;
        let challenges = ChallengeVerifier::new()?;
        // Every store call of the flow is timed for the request's log line (see crate::timings).
        let store = Arc::new(Timed(store));
        let results = ResultSigner {
            keys: KeyRing::fixed(SigningKeys::generate()),
            issuer: Some(config.issuer.clone().unwrap_or_else(|| LOCAL_ISSUER.to_owned())),
            ttl: config.verification_token_ttl,
        };
        let browser_origins = BrowserOrigins::default();
        Ok(Self { config, ciba, challenges, store, clock, browser_origins, results })
    }

    /// The Lambda instance's app: the client secret (`CLIENT_SECRET`, else the Secrets Manager
    /// secret `CLIENT_SECRET_ARN`, re-read when the upstream refuses it: [`crate::rotation`]),
    /// the config (see [`Config::from_env`]) and the DynamoDB table named by `TABLE_NAME`, with
    /// the AWS SDK configured by [`sdk_config_from_env`].
    pub async fn from_env(role: Role) -> Result<Self, StartupError> {
        let table = required_table_name()?;
        let sdk = sdk_config_from_env()?;
        let (secret, secrets) = match secret_source_from_env(&sdk) {
            None => (env_var("CLIENT_SECRET").map(ClientSecret::new), ClientSecrets::fixed()),
            Some(source) => {
                let initial = source
                    .read()
                    .await
                    .map_err(|cause| StartupError::Secret { arn: source.arn.clone(), cause })?;
                (Some(initial.clone()), ClientSecrets::rotating(source, initial))
            }
        };
        let config = Config::from_env(secret, role)?;
        let store = DynamoStore::new(dynamodb_client(&sdk), table);
        let mut app = Self::new(config, Arc::new(store))?;
        app.ciba.set_secrets(secrets);
        if role == Role::CompletesVerifications {
            app.results.keys = verification_keys_from_env(&sdk).await?;
            app.results.issuer = issuer_from_env(&app.config)?;
        }
        Ok(app)
    }
}

/// The signing keys of `/sms/token`: the Secrets Manager secret `VERIFICATION_KEYS_SECRET_ARN`
/// (a JWK Set, see [`crate::signed_result`]).
async fn verification_keys_from_env(sdk: &SdkConfig) -> Result<KeyRing, StartupError> {
    let arn = env_var("VERIFICATION_KEYS_SECRET_ARN");
    if arn.is_none() && outbound::under_sam_local() {
        // `sam local` (never Lambda): a key of its own, as `local-api` makes one.
        tracing::warn!(
            event = "verification_key_generated",
            why = "sam local without VERIFICATION_KEYS_SECRET_ARN"
        );
        return Ok(KeyRing::fixed(SigningKeys::generate()));
    }
    let arn = arn.ok_or(StartupError::MissingEnv {
        name: "VERIFICATION_KEYS_SECRET_ARN",
        why: "name the Secrets Manager secret with the verification_token signing keys (a JWK Set)",
    })?;
    let source = SecretsManagerSecret { client: secrets_manager_client(sdk), arn };
    KeyRing::from_secret(source).await.map_err(|err| StartupError::VerificationKeys(err.to_string()))
}

/// `issuer` from the config, else `API_BASE_URL` (the template sets it to the custom domain's
/// URL when there is one), else `None`: the URL each request came to.
fn issuer_from_env(config: &Config) -> Result<Option<String>, StartupError> {
    if let Some(issuer) = &config.issuer {
        return Ok(Some(issuer.clone()));
    }
    let Some(base) = env_var("API_BASE_URL") else { return Ok(None) };
    let mut problems = Vec::new();
    if !crate::config::check_issuer(&base, &mut problems) {
        return Err(StartupError::InvalidEnv {
            name: "API_BASE_URL",
            why: "must be the API's https base URL",
        });
    }
    Ok(Some(base))
}

/// The store of the functions that never call the upstream (`/user/info`, logout, `/sms/status`,
/// `/sms/cancel`): the
/// DynamoDB table named by `TABLE_NAME`, without the config's client secret or an upstream client,
/// its calls timed like the flow's ([`Timed`]).
pub fn session_store_from_env() -> Result<Timed, StartupError> {
    Ok(Timed(Arc::new(DynamoStore::from_env(required_table_name()?)?)))
}

fn required_table_name() -> Result<String, StartupError> {
    table_name_from_env().ok_or(StartupError::MissingEnv {
        name: "TABLE_NAME",
        why: "name the DynamoDB table that holds verifications and sessions",
    })
}

/// The Secrets Manager secret named by `CLIENT_SECRET_ARN`, unless `CLIENT_SECRET` gives the
/// secret itself (it wins) or neither is set (the config file must then hold it).
pub fn secret_source_from_env(sdk: &SdkConfig) -> Option<SecretsManagerSecret> {
    if env_var("CLIENT_SECRET").is_some() {
        return None;
    }
    let arn = env_var("CLIENT_SECRET_ARN")?;
    Some(SecretsManagerSecret { client: secrets_manager_client(sdk), arn })
}

/// `TABLE_NAME`, when set and not empty.
pub fn table_name_from_env() -> Option<String> {
    env_var("TABLE_NAME")
}
