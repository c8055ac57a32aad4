//! Everything a handler needs, built once per Lambda instance (cold start) and shared by
//! reference across invocations: the validated config, the upstream HTTP client, the state store.

use std::sync::Arc;

use crate::{
    ciba::CibaClient,
    config::{Config, ConfigError},
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
}

impl App {
    pub fn new(config: Config, store: Arc<dyn StateStore>) -> Result<Self, StartupError> {
        let ciba = CibaClient::new(config.upstream)?;
        Ok(Self { config, ciba, store })
    }

    /// The Lambda instance's app: config from the environment (see [`Config::from_env`]) and the
    /// DynamoDB table named by `TABLE_NAME` (the SDK finds region and credentials, and honours
    /// `AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let table = table_name_from_env().ok_or(StartupError::MissingEnv {
            name: "TABLE_NAME",
            why: "name the DynamoDB table that holds verifications and sessions",
        })?;
        Self::new(config, Arc::new(DynamoStore::from_env(table).await))
    }
}

/// `TABLE_NAME`, when set and not empty.
pub fn table_name_from_env() -> Option<String> {
    std::env::var("TABLE_NAME").ok().filter(|name| !name.trim().is_empty())
}
