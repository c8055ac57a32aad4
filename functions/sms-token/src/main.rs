//! Lambda function for `POST /sms/token` and `GET /.well-known/jwks.json`: builds config, HTTP
//! client, store and signing keys once, then serves. The JWKS is served here because this is the
//! one function that holds the keys that sign `verification_token`: no other role reads them.

use lambda_http::{Error, Request, run, service_fn};
use shared::api;

/// The route of the public keys (template.yaml routes it to this function).
const JWKS_ROUTE: &str = "GET /.well-known/jwks.json";

// Lambda sends an instance one event at a time, so one thread serves it; worker threads would
// only add cross-thread wake-ups (BENCHMARKS.md, "Tuning log").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env(shared::config::Role::CompletesVerifications)
        .await
        .inspect_err(shared::telemetry::startup_failed)?;
    let app = &app;
    run(service_fn(move |request: Request| async move {
        match api::route_key(&request) {
            Some(JWKS_ROUTE) => api::jwks(&app.results, request).await,
            _ => api::sms_token(app, request).await,
        }
    }))
    .await
}
