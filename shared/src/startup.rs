//! Why a Lambda instance could not start: every cause, each message saying what to fix.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the upstream HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("missing environment variable {name}: {why}")]
    MissingEnv { name: &'static str, why: &'static str },
    #[error("environment variable {name} {why}")]
    InvalidEnv { name: &'static str, why: &'static str },
    #[error("cannot build the AWS SDK's HTTPS client: {0}")]
    SdkHttpClient(#[from] aws_smithy_http_client::HttpClientError),
    #[error("cannot read the client secret {arn} from Secrets Manager: {cause}")]
    Secret { arn: String, cause: String },
    #[error("cannot use {0}")]
    VerificationKeys(String),
}
