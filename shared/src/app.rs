//! Everything a handler needs, built once per Lambda instance (cold start) and shared by
//! reference across invocations: the validated config, the upstream HTTP client, the state store.

use std::sync::Arc;

use crate::{
    ciba::CibaClient,
    config::{Config, ConfigError},
    store::StateStore,
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
}
