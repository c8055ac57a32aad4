//! The AWS SDK's clients of a Lambda instance, configured from what Lambda puts in its
//! environment, with the HTTPS client of [`crate::tls`].
//!
//! `aws-config`'s default chains (profile files, SSO, STS web identity, container and instance
//! metadata) are not used: a Lambda instance never needs them, and leaving them out makes the
//! binaries smaller and their cold start shorter (BENCHMARKS.md, "Tuning log").

use std::time::Duration;

use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider, retry::RetryConfig,
    timeout::TimeoutConfig,
};
use aws_types::SdkConfig;

use crate::{config::env_var, startup::StartupError, tls};

/// The SDK's configuration of a Lambda instance: the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), the region (`AWS_REGION`,
/// else `AWS_DEFAULT_REGION`), standard retries (3 attempts) and a 3.1 s connect time-out, as
/// `aws_config::load_defaults` sets them, and [`tls::sdk_http_client`]. Endpoint overrides
/// (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`) are applied per client, see
/// [`dynamodb_client`].
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
        .http_client(tls::sdk_http_client()?)
        .build())
}

/// The longest one DynamoDB call may take, retries included. DynamoDB answers in milliseconds;
/// without a bound a stalled connection would hold a `/sms/token` (and the lease on its
/// verification) until Lambda's time-out, and `flow/complete.rs` sizes the lease and the
/// upstream work by this.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one attempt of a DynamoDB call may take (the SDK retries within the operation's).
const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// A DynamoDB client on `sdk`, at `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`) when set.
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk).build())
}

/// The configuration of [`dynamodb_client`], for a caller that adds to it (tests count calls).
pub fn dynamodb_config(sdk: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    let mut config = aws_sdk_dynamodb::config::Builder::from(sdk);
    config.set_endpoint_url(endpoint_url_from_env("DYNAMODB"));
    config.set_timeout_config(Some(
        TimeoutConfig::builder()
            .connect_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
            .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
            .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
            .build(),
    ));
    config
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

/// A Secrets Manager client on `sdk`, at `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or
/// `AWS_ENDPOINT_URL`) when set.
pub fn secrets_manager_client(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let mut config = aws_sdk_secretsmanager::config::Builder::from(sdk);
    config.set_endpoint_url(endpoint_url_from_env("SECRETS_MANAGER"));
    aws_sdk_secretsmanager::Client::from_conf(config.build())
}
