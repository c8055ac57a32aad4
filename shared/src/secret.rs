//! Credentials as types. Each kind of secret the flow handles is its own type, so one cannot be
//! passed where another is meant (an `auth_req_id` where a session token goes), none prints in
//! `Debug`, and each is wiped from memory when dropped (`secrecy`). The only way to the text is
//! `expose()`, which is easy to find in a review: it is called where the value goes on the wire
//! or into a digest, nowhere else.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

macro_rules! secret_types {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Deserialize)]
        #[serde(transparent)]
        pub struct $name(SecretString);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret text, for the wire or a digest; never for a log line or a response
            /// other than the one that hands the credential to its owner.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    )*};
}

secret_types! {
    /// A client's secret towards the upstream (from the config or Secrets Manager).
    ClientSecret;
    /// The upstream's handle of one CIBA request: a bearer credential for its SMS callback.
    AuthReqId;
    /// What the caller must send back with its `auth_req_id`: binds a verification to the app
    /// instance that started it.
    Nonce;
    /// A verified session's bearer token.
    SessionToken;
    /// The upstream's access token for userinfo.
    AccessToken;
    /// A one-time code: what the user types, or a test number's fixed code.
    OtpCode;
    /// A CAPTCHA provider's secret key ([`crate::challenge`]).
    ChallengeSecret;
    /// The signed verification result for the app's backend ([`crate::signed_result`]): it
    /// proves a number to whoever holds it until it expires.
    VerificationToken;
    /// A Secrets Manager secret's text as stored (the verification keys' private JWK Set).
    SecretText;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let id = AuthReqId::new("req-123");
        assert_eq!(format!("{id:?}"), "AuthReqId([redacted])");
        assert_eq!(id.expose(), "req-123");
        let secret: ClientSecret = serde_json::from_str("\"s3cret\"").unwrap();
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
