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
    rotation::{ClientSecrets, SecretsManagerSecret},
    secret::ClientSecret,
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
        Ok(Self { config, ciba, challenges, store, clock, browser_origins: BrowserOrigins::default() })
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
        Ok(app)
    }
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
