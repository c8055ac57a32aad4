//! Where the flow gets the time: one clock, injected through [`crate::App`], so the rules that
//! depend on it (expiry, limit windows, leases, lockouts) can be tested by moving time instead
//! of waiting for it.
//!
//! Wall-clock seconds only: the unit of every `*_at` field and of DynamoDB's TTL. Time-outs of
//! upstream calls use Tokio's monotonic clock and are not affected.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Seconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now(&self) -> u64;
}

/// The system's clock: what every deployed function uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        now_epoch_secs()
    }
}

/// Seconds since the Unix epoch by the system's clock.
pub fn now_epoch_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A clock for tests: starts at the system's time and moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new() -> Self {
        Self(AtomicU64::new(now_epoch_secs()))
    }

    /// Moves the clock forward, as if `by` had passed.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert!(start.abs_diff(SystemClock.now()) <= 1);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + 90);
    }
}
