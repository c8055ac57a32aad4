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
        let ciba = CibaClient::new(config.upstream)?;
        let challenges = ChallengeVerifier::new()?;
        // Every store call of the flow is timed for the request's log line (see crate::timings).
        let store = Arc::new(Timed(store));
        Ok(Self { config, ciba, challenges, store, clock, browser_origins: BrowserOrigins::default() })
    }

    /// The Lambda instance's app: the client secret (`CLIENT_SECRET`, else the Secrets Manager
    /// secret `CLIENT_SECRET_ARN`), the config (see [`Config::from_env`]) and the DynamoDB table
    /// named by `TABLE_NAME`, with the AWS SDK configured by [`sdk_config_from_env`].
    pub async fn from_env(role: Role) -> Result<Self, StartupError> {
        let table = required_table_name()?;
        let sdk = sdk_config_from_env()?;
        let config = Config::from_env(client_secret_from_env(&sdk).await?, role)?;
        let store = DynamoStore::new(dynamodb_client(&sdk), table);
        Self::new(config, Arc::new(store))
    }
}

/// The store of the functions that only read or end sessions (`/user/info`, logout): the
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

/// The client secret from `CLIENT_SECRET`, or read once (at cold start) from the Secrets Manager
/// secret named by `CLIENT_SECRET_ARN`: either the plain secret, or a JSON object with a
/// `client_secret` key. `None` when neither is set (the config file must then hold it).
pub async fn client_secret_from_env(sdk: &SdkConfig) -> Result<Option<ClientSecret>, StartupError> {
    if let Some(secret) = env_var("CLIENT_SECRET") {
        return Ok(Some(ClientSecret::new(secret)));
    }
    let Some(arn) = env_var("CLIENT_SECRET_ARN") else {
        return Ok(None);
    };
    let fail = |cause: String| StartupError::Secret { arn: arn.clone(), cause };
    let output = secrets_manager_client(sdk)
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()))?;
    let text = output.secret_string().ok_or_else(|| fail("the secret has no SecretString".into()))?;
    let secret = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => {
            fields.get("client_secret").and_then(|v| v.as_str()).map(str::to_owned).ok_or_else(|| {
                fail("the secret is a JSON object without a string \"client_secret\"".into())
            })?
        }
        _ => text.trim().to_owned(),
    };
    if secret.is_empty() {
        return Err(fail("the secret is empty".into()));
    }
    Ok(Some(ClientSecret::new(secret)))
}

/// `TABLE_NAME`, when set and not empty.
pub fn table_name_from_env() -> Option<String> {
    env_var("TABLE_NAME")
}
