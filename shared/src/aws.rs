//! The AWS SDK's clients of a Lambda instance, configured from what Lambda puts in its
//! environment, with the HTTPS client of [`crate::tls`].
//!
//! `aws-config`'s default chains (profile files, SSO, STS web identity, container and instance
//! metadata) are not used: a Lambda instance never needs them, and leaving them out makes the
//! binaries smaller and their cold start shorter (BENCHMARKS.md, "Tuning log").

use std::{sync::OnceLock, time::Duration};

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

/// The longest one DynamoDB call may take, retries included (each attempt half of it).
/// DynamoDB answers in milliseconds; without a bound a stalled connection would hold a
/// `/sms/token` (and the lease on its verification) until Lambda's time-out, and
/// `flow/complete.rs` sizes the lease and the upstream work by it.
/// `DYNAMODB_OPERATION_TIMEOUT_MS` replaces it, for a slow local server (DynamoDB Local on a
/// loaded test machine); a Lambda function leaves it unset.
pub const DEFAULT_DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
const OPERATION_TIMEOUT_ENV: &str = "DYNAMODB_OPERATION_TIMEOUT_MS";
static DYNAMODB_OPERATION_TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// The DynamoDB operation time-out of this process (see [`DEFAULT_DYNAMODB_OPERATION_TIMEOUT`]),
/// read once; [`check_dynamodb_operation_timeout`] refuses a bad value at cold start.
pub fn dynamodb_operation_timeout() -> Duration {
    *DYNAMODB_OPERATION_TIMEOUT
        .get_or_init(|| operation_timeout_from_env().unwrap_or(DEFAULT_DYNAMODB_OPERATION_TIMEOUT))
}

/// Whether `DYNAMODB_OPERATION_TIMEOUT_MS`, if set, is a number of milliseconds from 100 to 60000.
pub fn check_dynamodb_operation_timeout() -> Result<(), StartupError> {
    operation_timeout_from_env().map(drop)
}

fn operation_timeout_from_env() -> Result<Duration, StartupError> {
    let Some(value) = env_var(OPERATION_TIMEOUT_ENV) else { return Ok(DEFAULT_DYNAMODB_OPERATION_TIMEOUT) };
    match value.trim().parse::<u64>() {
        Ok(ms) if (100..=60_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(StartupError::InvalidEnv {
            name: OPERATION_TIMEOUT_ENV,
            why: "must be a number of milliseconds from 100 to 60000 (leave it unset in Lambda: 2000)",
        }),
    }
}

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
            .connect_timeout(dynamodb_operation_timeout() / 2)
            .operation_attempt_timeout(dynamodb_operation_timeout() / 2)
            .operation_timeout(dynamodb_operation_timeout())
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
