//! What a request's outcome can be: a success word of its endpoint, or one of the API's error
//! codes ([`ErrorCode`]). Together they are the `outcome` field of the summary line and the
//! `Outcome` dimension of the metrics, so both are derived from these two lists.

use crate::error::ErrorCode;

/// How a request succeeded, one word per endpoint's success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Success {
    /// `/sms/auth`: the SMS went out.
    Sent,
    /// `/sms/token`: the phone is verified and a session opened.
    Verified,
    /// `/sms/log`: the client's data was logged.
    Logged,
    /// `/user/info`: the session was read.
    Read,
    /// `/user/logout`: the session ended.
    LoggedOut,
    /// `/sms/clients`: the clients were listed.
    Listed,
    /// `/sms/status`: the verification waits for its code.
    Pending,
    /// `/sms/cancel`: the verification was ended.
    Cancelled,
    /// `/.well-known/jwks.json`: the public keys were given.
    Published,
}

impl Success {
    pub const ALL: &'static [Success] = &[
        Self::Sent,
        Self::Verified,
        Self::Logged,
        Self::Read,
        Self::LoggedOut,
        Self::Listed,
        Self::Pending,
        Self::Cancelled,
        Self::Published,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Verified => "verified",
            Self::Logged => "logged",
            Self::Read => "read",
            Self::LoggedOut => "logged_out",
            Self::Listed => "listed",
            Self::Pending => "pending",
            Self::Cancelled => "cancelled",
            Self::Published => "published",
        }
    }
}

/// The outcome as a metric dimension value: a success word or one of our error codes as it is;
/// anything else (an upstream's own OAuth error code, passed on to the caller) is counted as
/// `upstream_rejected`, so the number of metric series stays bounded.
pub fn bounded_outcome(outcome: &str) -> &str {
    Success::ALL
        .iter()
        .map(|success| success.as_str())
        .chain(ErrorCode::ALL.iter().map(|code| code.as_str()))
        .find(|known| *known == outcome)
        .unwrap_or(ErrorCode::UpstreamRejected.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_bounded() {
        assert_eq!(bounded_outcome("verified"), "verified");
        assert_eq!(bounded_outcome("rate_limited"), "rate_limited");
        assert_eq!(bounded_outcome("some_upstream_code"), "upstream_rejected");
        for code in ErrorCode::ALL {
            assert_eq!(bounded_outcome(code.as_str()), code.as_str());
        }
    }
}
