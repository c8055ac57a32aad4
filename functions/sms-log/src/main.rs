//! Lambda function for `POST /sms/log`: the client's flow data, sanitised, as one log line.
//! It needs no config, no upstream and no state.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    run(service_fn(shared::api::sms_log)).await
}
