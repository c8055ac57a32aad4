//! The store's keys as types, so one cannot be passed where another is meant (a session's key
//! where a verification's goes, a phone's where a source network's goes).
//!
//! Every key but [`LeaseId`] is a hex SHA-256 digest ([`crypto::digest`]) within its own domain,
//! never the credential or phone number it stands for, so a key is not secret and prints in
//! `Debug`. The only ways to a key are its constructor and, for a key read back from a stored
//! item, `from_stored`.

use std::fmt;

use crate::{
    crypto,
    secret::{AuthReqId, SessionToken},
};

macro_rules! key_types {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The key as a stored item holds it (DynamoDB), read back as it was written.
            #[allow(dead_code, reason = "not every key is read back from an item")]
            pub(crate) fn from_stored(stored: String) -> Self {
                Self(stored)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    )*};
}

key_types! {
    /// A verification's key: the digest of its `auth_req_id`, a bearer credential.
    VerificationKey;
    /// A session's key: the digest of its token.
    SessionKey;
    /// A phone record's key, per client and phone: limits count the E.164 form.
    PhoneKey;
    /// A source network's start counter, per client (see [`crate::limits::ip_bucket`]).
    IpKey;
    /// The id of a lease on a verification (see [`super::Lease`]): random, not a digest.
    LeaseId;
}

impl VerificationKey {
    pub fn of(auth_req_id: &AuthReqId) -> Self {
        Self(crypto::digest("verification", auth_req_id.expose()))
    }
}

impl SessionKey {
    pub fn of(token: &SessionToken) -> Self {
        Self(crypto::digest("session", token.expose()))
    }
}

impl PhoneKey {
    pub fn of(client_id: &str, e164: &str) -> Self {
        Self(crypto::digest("phone", &format!("{client_id}\0{e164}")))
    }
}

impl IpKey {
    pub fn of(client_id: &str, ip_bucket: &str) -> Self {
        Self(crypto::digest("ip", &format!("{client_id}\0{ip_bucket}")))
    }
}

impl LeaseId {
    /// A fresh lease id for one claim ([`crypto::new_token`]).
    pub fn new_random() -> Self {
        Self(crypto::new_token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_digests_they_always_were() {
        let auth_req_id = AuthReqId::new("req-1");
        assert_eq!(VerificationKey::of(&auth_req_id).as_str(), crypto::digest("verification", "req-1"));
        let token = SessionToken::new("token-1");
        assert_eq!(SessionKey::of(&token).as_str(), crypto::digest("session", "token-1"));
        assert_eq!(
            PhoneKey::of("client", "+15550100").as_str(),
            crypto::digest("phone", "client\0+15550100")
        );
        assert_eq!(
            IpKey::of("client", "192.0.2.0/24").as_str(),
            crypto::digest("ip", "client\x00192.0.2.0/24")
        );
        assert_ne!(LeaseId::new_random(), LeaseId::new_random());
        assert!(crypto::is_token(LeaseId::new_random().as_str()));
    }

    #[test]
    fn keys_print_their_type_and_digest() {
        let key = PhoneKey::from_stored("abc123".into());
        assert_eq!(format!("{key:?}"), "PhoneKey(\"abc123\")");
        // A key never shows the credential it digests.
        let auth_req_id = AuthReqId::new("req-secret");
        assert!(!format!("{:?}", VerificationKey::of(&auth_req_id)).contains("req-secret"));
    }
}
