//! The one shape of every HTTP call this service makes to a third party (the upstream auth
//! server, the challenge providers): what it trusts of the other side, which is nothing but
//! the bytes it asked for, within bounds.
//!
//! - **No redirect is followed.** Both kinds of request carry a secret (the client secret, the
//!   challenge secret, a bearer `auth_req_id` or access token) and the user's phone; a `3xx`
//!   would re-send them to wherever `Location` points. A `3xx` is just an unsuccessful answer.
//! - **Only `https`**, except to a loopback host for local work ([`is_safe_url`]); the config
//!   check at cold start refuses any other URL.
//! - **Bodies are read up to a cap, never more** ([`read_capped`]): a declared length over the
//!   cap is refused before reading, and a streamed body is read chunk by chunk and dropped at the
//!   cap, so a hostile server cannot make a 256 MB function buffer 64 MiB.
//! - rustls with compiled-in roots ([`crate::tls`]), one client per kind built at cold start.

use std::{net::IpAddr, time::Duration};

use reqwest::{Response, Url, redirect};

/// What every outbound client shares: timeouts, no redirects, our user agent, rustls.
pub fn client(connect: Duration, request: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(request)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(redirect::Policy::none())
        .user_agent(concat!("sms-verify/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(crate::tls::upstream_client_config())
        .build()
}

/// `https`, or `http` to a loopback host (127.0.0.0/8, ::1, `localhost`) for local work, or,
/// inside a `sam local` container, to `host.docker.internal` (see [`SAM_LOCAL_HOST`]).
pub fn is_safe_url(url: &Url) -> bool {
    is_safe_url_for(url, under_sam_local())
}

/// The host machine as a `sam local` container reaches it: where the sandbox auth server of a
/// local run is (README, "Invoke the functions locally"). Allowed over `http` only when SAM CLI
/// has marked the process `AWS_SAM_LOCAL=true`, which Lambda never sets.
pub const SAM_LOCAL_HOST: &str = "host.docker.internal";

/// Whether SAM CLI runs this process (`sam local`).
pub fn under_sam_local() -> bool {
    std::env::var("AWS_SAM_LOCAL").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn is_safe_url_for(url: &Url, sam_local: bool) -> bool {
    let Some(host) = url.host_str() else { return false };
    match url.scheme() {
        "https" => true,
        "http" => {
            let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
            host.eq_ignore_ascii_case("localhost")
                || ip.is_ok_and(|ip| ip.is_loopback())
                || (sam_local && host.eq_ignore_ascii_case(SAM_LOCAL_HOST))
        }
        _ => false,
    }
}

/// Why a body was not read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is (or says it is) longer than the cap.
    TooLarge,
    /// The connection broke off, or the time ran out, mid-body.
    Broken { timed_out: bool },
}

/// Reads `response`'s body, at most `max_bytes` of it.
pub async fn read_capped(mut response: Response, max_bytes: usize) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > max_bytes as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared as usize);
    loop {
        let chunk =
            response.chunk().await.map_err(|err| BodyError::Broken { timed_out: err.is_timeout() })?;
        let Some(chunk) = chunk else { return Ok(body) };
        if body.len() + chunk.len() > max_bytes {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_safe() {
        for safe in [
            "https://api.example.com/auth",
            "http://127.0.0.1:3001/auth",
            "http://127.8.0.1/x",
            "http://[::1]:8080/",
            "http://LOCALHOST:3000/",
        ] {
            assert!(is_safe_url(&Url::parse(safe).unwrap()), "{safe}");
        }
        for unsafe_url in [
            "http://api.example.com/auth",
            "http://10.0.0.1/auth",
            "http://localhost.example.com/",
            "http://0.0.0.0/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
        ] {
            assert!(!is_safe_url(&Url::parse(unsafe_url).unwrap()), "{unsafe_url}");
        }
    }

    #[test]
    fn the_docker_host_is_safe_over_http_only_under_sam_local() {
        let sandbox = Url::parse("http://host.docker.internal:3001/auth").unwrap();
        assert!(is_safe_url_for(&sandbox, true));
        assert!(!is_safe_url_for(&sandbox, false), "in Lambda it is just another host");
        assert!(!is_safe_url_for(&Url::parse("http://docker.internal/").unwrap(), true));
    }
}
