//! Where one request spent its time outside our own code (the state store and each upstream
//! call) and the DynamoDB capacity it consumed, for the request's summary line and metrics.
//!
//! The adapters record their own calls ([`crate::ciba`] each upstream call,
//! [`crate::store::Timed`] each store call) into the request's [`Timings`], which live in a Tokio
//! task-local that the handler opens with [`measure`]. So the flow, which only calls the
//! adapters, never handles a stopwatch, and a call made outside a measured request (a test, a
//! tool) is simply not recorded.

use std::{cell::RefCell, future::Future, time::Instant};

tokio::task_local! {
    static CURRENT: RefCell<Timings>;
}

/// An upstream call the flow makes; each has its own duration field on the summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamCall {
    /// The CIBA authentication request that sends the SMS (`upstream_auth_ms`).
    Auth,
    /// The SMS callback carrying the code (`upstream_callback_ms`).
    Callback,
    /// The token request, polling included (`upstream_token_ms`).
    Token,
    /// The userinfo request (`upstream_userinfo_ms`).
    Userinfo,
}

/// Milliseconds, summed over the calls of one request, and the DynamoDB capacity units the calls
/// consumed as DynamoDB reported them (what on-demand tables bill: read and write request units).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Timings {
    pub store_ms: f64,
    pub store_read_units: f64,
    pub store_write_units: f64,
    pub upstream_auth_ms: Option<f64>,
    pub upstream_callback_ms: Option<f64>,
    pub upstream_token_ms: Option<f64>,
    pub upstream_userinfo_ms: Option<f64>,
}

impl Timings {
    fn upstream_slot(&mut self, call: UpstreamCall) -> &mut Option<f64> {
        match call {
            UpstreamCall::Auth => &mut self.upstream_auth_ms,
            UpstreamCall::Callback => &mut self.upstream_callback_ms,
            UpstreamCall::Token => &mut self.upstream_token_ms,
            UpstreamCall::Userinfo => &mut self.upstream_userinfo_ms,
        }
    }

    /// All upstream time of the request; `None` when it made no upstream call.
    pub fn upstream_ms(&self) -> Option<f64> {
        [self.upstream_auth_ms, self.upstream_callback_ms, self.upstream_token_ms, self.upstream_userinfo_ms]
            .into_iter()
            .flatten()
            .reduce(|a, b| a + b)
    }
}

/// Runs one request's work and returns what it spent in the store and upstream.
pub async fn measure<T>(work: impl Future<Output = T>) -> (T, Timings) {
    CURRENT
        .scope(RefCell::new(Timings::default()), async {
            let output = work.await;
            (output, CURRENT.with(|timings| *timings.borrow()))
        })
        .await
}

/// Runs one state-store call, adding its duration to the request's `store_ms`.
pub async fn store_call<T>(call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = call.await;
    record(|timings| timings.store_ms += elapsed_ms(started));
    output
}

/// Adds what DynamoDB says one call consumed to the request's capacity units.
pub fn store_capacity(read_units: f64, write_units: f64) {
    record(|timings| {
        timings.store_read_units += read_units;
        timings.store_write_units += write_units;
    });
}

/// Runs one upstream call, adding its duration to that call's field.
pub async fn upstream_call<T>(which: UpstreamCall, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let output = call.await;
    record(|timings| *timings.upstream_slot(which).get_or_insert(0.0) += elapsed_ms(started));
    output
}

fn record(add: impl FnOnce(&mut Timings)) {
    // Outside `measure` (a test, a tool) there is no request to charge: nothing to record.
    let _ = CURRENT.try_with(|timings| add(&mut timings.borrow_mut()));
}

pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_charged_to_the_measured_request_only() {
        let ((), timings) = measure(async {
            store_call(async {}).await;
            store_capacity(1.0, 0.0);
            store_capacity(0.5, 4.0);
            upstream_call(UpstreamCall::Token, async {}).await;
            upstream_call(UpstreamCall::Token, async {}).await;
        })
        .await;
        assert!(timings.store_ms >= 0.0);
        assert_eq!((timings.store_read_units, timings.store_write_units), (1.5, 4.0));
        assert!(timings.upstream_token_ms.is_some() && timings.upstream_auth_ms.is_none());
        assert!(timings.upstream_ms().is_some());
        // Unmeasured: recorded nowhere, and no panic.
        store_call(async {}).await;
        store_capacity(1.0, 1.0);
        assert_eq!(measure(async {}).await.1, Timings::default());
    }
}
