//! Fault injection: make an upstream endpoint slow or failing for the next N requests,
//! so the backend's timeout and error paths can be tested against a real HTTP server.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::lock;

/// The upstream endpoints a fault can target (and that the stats count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    #[default]
    Auth,
    Callback,
    Token,
    Userinfo,
}

/// One injected fault. With `status`, the endpoint answers that status with `body` instead of
/// handling the request; with only `delay_ms`, it handles the request normally after the delay.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub endpoint: Endpoint,
    pub status: Option<u16>,
    /// Response body; default `{"error":"server_error","error_description":"injected fault"}`.
    pub body: Option<String>,
    /// Content-Type for a given `body`; default `text/plain`.
    pub content_type: Option<String>,
    pub delay_ms: Option<u64>,
    /// How many requests it applies to; absent = until cleared.
    pub times: Option<u32>,
}

impl Fault {
    /// Whether a fault received over HTTP can be applied as written.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(status) = self.status {
            // 1xx would confuse the HTTP layer rather than the client under test.
            if !(200..=599).contains(&status) {
                return Err(format!("status {status} is not in 200..=599"));
            }
        }
        if let Some(ct) = &self.content_type {
            HeaderValue::from_str(ct).map_err(|_| "content_type is not a valid header value".to_owned())?;
        }
        Ok(())
    }

    /// Sleeps the delay, then returns the response to send instead of normal handling, if any.
    pub(crate) async fn apply(self) -> Option<Response> {
        if let Some(ms) = self.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let status = self.status?;
        // `inject` does not validate, so an impossible status degrades to 500 instead of panicking.
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| !s.is_informational())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (content_type, body) = match self.body {
            None => (
                "application/json".to_owned(),
                r#"{"error":"server_error","error_description":"injected fault"}"#.to_owned(),
            ),
            Some(body) => (self.content_type.unwrap_or_else(|| "text/plain".to_owned()), body),
        };
        let content_type =
            HeaderValue::from_str(&content_type).unwrap_or_else(|_| HeaderValue::from_static("text/plain"));
        Some((status, [(header::CONTENT_TYPE, content_type)], body).into_response())
    }
}

/// Active faults in insertion order; the first active one for an endpoint wins.
#[derive(Default)]
pub(crate) struct Faults {
    active: Mutex<Vec<Fault>>,
}

impl Faults {
    pub(crate) fn add(&self, fault: Fault) {
        // `times: 0` would never apply; keeping it would only shadow nothing.
        if fault.times != Some(0) {
            lock(&self.active).push(fault);
        }
    }

    pub(crate) fn clear(&self) {
        lock(&self.active).clear();
    }

    /// Takes one use of the first fault for `endpoint`, dropping it when used up.
    pub(crate) fn take(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut active = lock(&self.active);
        let index = active.iter().position(|f| f.endpoint == endpoint)?;
        let fault = &mut active[index];
        match &mut fault.times {
            Some(left) if *left <= 1 => Some(active.remove(index)),
            Some(left) => {
                *left -= 1;
                Some(fault.clone())
            }
            None => Some(fault.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_order() {
        let faults = Faults::default();
        faults.add(Fault {
            endpoint: Endpoint::Token,
            status: Some(500),
            times: Some(2),
            ..Fault::default()
        });
        faults.add(Fault { endpoint: Endpoint::Token, status: Some(502), ..Fault::default() });
        faults.add(Fault { endpoint: Endpoint::Auth, times: Some(0), ..Fault::default() });
        assert!(faults.take(Endpoint::Auth).is_none());
        assert!(faults.take(Endpoint::Callback).is_none());
        let statuses: Vec<_> = (0..4).map(|_| faults.take(Endpoint::Token).and_then(|f| f.status)).collect();
        assert_eq!(statuses, [Some(500), Some(500), Some(502), Some(502)]);
        faults.clear();
        assert!(faults.take(Endpoint::Token).is_none());
    }

    #[test]
    fn validation() {
        assert!(Fault { status: Some(99), ..Fault::default() }.validate().is_err());
        assert!(Fault { status: Some(100), ..Fault::default() }.validate().is_err());
        assert!(Fault { content_type: Some("a\nb".into()), ..Fault::default() }.validate().is_err());
        assert!(Fault { status: Some(503), ..Fault::default() }.validate().is_ok());
    }
}
