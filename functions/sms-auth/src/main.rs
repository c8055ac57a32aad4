//! Lambda function for `POST /sms/auth`: builds config, HTTP client and store once, then serves.

use lambda_http::{Error, Request, run, service_fn};

// Lambda sends an instance one event at a time, so one thread serves it; worker threads would
// only add cross-thread wake-ups (BENCHMARKS.md, "Tuning log").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env(shared::config::Role::SendsSms)
        .await
        .inspect_err(shared::telemetry::startup_failed)?;
    let app = &app;
    run(service_fn(move |request: Request| async move { shared::api::sms_auth(app, request).await })).await
}
