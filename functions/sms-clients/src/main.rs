//! Lambda function for `GET /sms/clients`: the auth servers and SMS clients a page may offer.
//! It needs only the config (no client secret, no table, no upstream).

use lambda_http::{Error, Request, run, service_fn};
use shared::config::Config;

// Lambda sends an instance one event at a time, so one thread serves it; worker threads would
// only add cross-thread wake-ups (BENCHMARKS.md, "Tuning log").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env_without_secrets().inspect_err(shared::telemetry::startup_failed)?;
    let config = &config;
    run(service_fn(move |request: Request| async move { shared::api::sms_clients(config, request).await }))
        .await
}
