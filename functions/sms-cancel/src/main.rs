//! Lambda function for `POST /sms/cancel`: ends a pending verification. It needs the
//! config (its clients, servers and limits) and the rights to claim and delete a verification; no client secret and no
//! upstream.

use lambda_http::{Error, Request, run, service_fn};
use shared::{app::session_store_from_env, clock::SystemClock, config::Config, flow::Deps};

// Lambda sends an instance one event at a time, so one thread serves it; worker threads would
// only add cross-thread wake-ups (BENCHMARKS.md, "Tuning log").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env_without_secrets().inspect_err(shared::telemetry::startup_failed)?;
    let store = session_store_from_env().inspect_err(shared::telemetry::startup_failed)?;
    let (config, store) = (&config, &store);
    run(service_fn(move |request: Request| async move {
        shared::api::sms_cancel(Deps { config, store, clock: &SystemClock }, request).await
    }))
    .await
}
