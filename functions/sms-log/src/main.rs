//! Lambda function for `POST /sms/log`: the client's flow data, sanitised, as one log line.
//! It needs no config, no upstream and no state.

use lambda_http::{Error, run, service_fn};

// Lambda sends an instance one event at a time, so one thread serves it; worker threads would
// only add cross-thread wake-ups (BENCHMARKS.md, "Tuning log").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    run(service_fn(shared::api::sms_log)).await
}
