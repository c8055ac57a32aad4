//! Everything a handler needs, built once per Lambda instance (cold start) and shared by
//! reference across invocations: the validated config, the upstream HTTP client, the state store.

use std::{sync::Arc, time::Duration};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{
    Credentials, SharedCredentialsProvider, retry::RetryConfig, timeout::TimeoutConfig,
};

use crate::{
    ciba::CibaClient,
    config::{Config, ConfigError, Secret, env_var},
    store::{DynamoStore, StateStore},
};

pub struct App {
    pub config: Config,
    pub ciba: CibaClient,
    pub store: Arc<dyn StateStore>,
}

/// Why an instance could not start; the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the upstream HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("missing environment variable {name}: {why}")]
    MissingEnv { name: &'static str, why: &'static str },
    #[error("cannot read the client secret {arn} from Secrets Manager: {cause}")]
    Secret { arn: String, cause: String },
}

impl App {
    pub fn new(config: Config, store: Arc<dyn StateStore>) -> Result<Self, StartupError> {
        let ciba = CibaClient::new(config.upstream)?;
        Ok(Self { config, ciba, store })
    }

    /// The Lambda instance's app: the client secret (`CLIENT_SECRET`, else the Secrets Manager
    /// secret `CLIENT_SECRET_ARN`), the config (see [`Config::from_env`]) and the DynamoDB table
    /// named by `TABLE_NAME`, with the AWS SDK configured by [`sdk_config_from_env`].
    pub async fn from_env() -> Result<Self, StartupError> {
        let table = required_table_name()?;
        let sdk = sdk_config_from_env()?;
        let config = Config::from_env(client_secret_from_env(&sdk).await?)?;
        let store = DynamoStore::new(dynamodb_client(&sdk), table);
        Self::new(config, Arc::new(store))
    }
}

/// The store of the functions that only read or end sessions (`/user/info`, logout): the
/// DynamoDB table named by `TABLE_NAME`, without the config's client secret or an upstream client.
pub async fn session_store_from_env() -> Result<DynamoStore, StartupError> {
    let table = required_table_name()?;
    let sdk = sdk_config_from_env()?;
    Ok(DynamoStore::new(dynamodb_client(&sdk), table))
}

/// The AWS SDK's configuration of a Lambda instance, from what Lambda puts in its environment:
/// the execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`) and the region (`AWS_REGION`, else `AWS_DEFAULT_REGION`); standard retries
/// (3 attempts) and a 3.1 s connect time-out, as `aws_config::load_defaults` sets them. Endpoint
/// overrides (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`) are applied per client, see
/// [`dynamodb_client`].
///
/// It does not run `aws_config`'s default chains (profile files, SSO, STS web identity, container
/// and instance metadata): a Lambda instance never needs them, and leaving them out of the
/// binary makes it much smaller and its cold start shorter (BENCHMARKS.md).
pub fn sdk_config_from_env() -> Result<SdkConfig, StartupError> {
    let access_key = env_var("AWS_ACCESS_KEY_ID").ok_or(StartupError::MissingEnv {
        name: "AWS_ACCESS_KEY_ID",
        why: "Lambda sets the execution role's credentials; elsewhere set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    })?;
    let secret_key = env_var("AWS_SECRET_ACCESS_KEY").ok_or(StartupError::MissingEnv {
        name: "AWS_SECRET_ACCESS_KEY",
        why: "Lambda sets the execution role's credentials; elsewhere set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    })?;
    let region =
        env_var("AWS_REGION").or_else(|| env_var("AWS_DEFAULT_REGION")).ok_or(StartupError::MissingEnv {
            name: "AWS_REGION",
            why: "Lambda sets the function's region; elsewhere set AWS_REGION",
        })?;
    let credentials =
        Credentials::new(access_key, secret_key, env_var("AWS_SESSION_TOKEN"), None, "Environment");
    Ok(SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .retry_config(RetryConfig::standard())
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_millis(3100)).build())
        .build())
}

/// A DynamoDB client on `sdk`, at `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`) when set.
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(sdk);
    config.set_endpoint_url(endpoint_url_from_env("DYNAMODB"));
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// The SDK's standard endpoint override for a service (its id in upper snake case):
/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`; neither when
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`.
pub fn endpoint_url_from_env(service: &str) -> Option<String> {
    if env_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    env_var(&format!("AWS_ENDPOINT_URL_{service}")).or_else(|| env_var("AWS_ENDPOINT_URL"))
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
pub async fn client_secret_from_env(sdk: &SdkConfig) -> Result<Option<Secret>, StartupError> {
    if let Some(secret) = env_var("CLIENT_SECRET") {
        return Ok(Some(Secret::new(secret)));
    }
    let Some(arn) = env_var("CLIENT_SECRET_ARN") else {
        return Ok(None);
    };
    let fail = |cause: String| StartupError::Secret { arn: arn.clone(), cause };
    let mut config = aws_sdk_secretsmanager::config::Builder::from(sdk);
    config.set_endpoint_url(endpoint_url_from_env("SECRETS_MANAGER"));
    let output = aws_sdk_secretsmanager::Client::from_conf(config.build())
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
    Ok(Some(Secret::new(secret)))
}

/// `TABLE_NAME`, when set and not empty.
pub fn table_name_from_env() -> Option<String> {
    env_var("TABLE_NAME")
}
