//! Counters that let tests assert how the backend used upstream: how many calls per endpoint,
//! and how many TCP connections (connection reuse is part of the backend's performance work).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::faults::Endpoint;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub requests: RequestCounts,
    /// Accepted TCP connections since start.
    pub connections: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub auth: u64,
    pub callback: u64,
    pub token: u64,
    pub userinfo: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    auth: AtomicU64,
    callback: AtomicU64,
    token: AtomicU64,
    userinfo: AtomicU64,
    connections: AtomicU64,
}

impl Counters {
    pub(crate) fn request(&self, endpoint: Endpoint) {
        let counter = match endpoint {
            Endpoint::Auth => &self.auth,
            Endpoint::Callback => &self.callback,
            Endpoint::Token => &self.token,
            Endpoint::Userinfo => &self.userinfo,
        };
        // Plain counters with no ordering relation to other data: Relaxed is enough.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests: RequestCounts {
                auth: get(&self.auth),
                callback: get(&self.callback),
                token: get(&self.token),
                userinfo: get(&self.userinfo),
            },
            connections: get(&self.connections),
        }
    }
}
