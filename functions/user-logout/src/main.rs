//! Lambda function for `POST /user/logout`: ends a verified session. It needs only the table
//! (delete on session items) and the browser origins that may use the cookie
//! (`BROWSER_ORIGINS`); no config, no client secret, no upstream.

use lambda_http::{Error, Request, run, service_fn};
use shared::{app::session_store_from_env, origins::BrowserOrigins};

// Lambda sends an instance one event at a time, so one thread serves it; worker threads would
// only add cross-thread wake-ups (BENCHMARKS.md, "Tuning log").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let origins = BrowserOrigins::from_env().inspect_err(shared::telemetry::startup_failed)?;
    let store = session_store_from_env().inspect_err(shared::telemetry::startup_failed)?;
    let (origins, store) = (&origins, &store);
    run(service_fn(
        move |request: Request| async move { shared::api::user_logout(origins, store, request).await },
    ))
    .await
}
