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
    /// A phone as one source network sees it, per client, phone (its E.164 form) and network
    /// ([`crate::limits::ip_bucket`]): its record (current verification, consecutive wrong
    /// codes) and its window and resend counters.
    PhoneKey;
    /// A phone number across every network, per client: its sends and wrong codes of the day.
    NumberKey;
    /// A fixed-window counter's key ([`crate::limits::WindowCount`]), without its window: it
    /// names its kind (`i#` source network, `c#` client, `g#` client and country, `r#` client and
    /// number range, `f#` a country's conversion) and, for a sharded counter, its shard.
    CounterKey;
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
    /// `network` is `None` when the source address is unknown (all such requests are one network).
    pub fn of(client_id: &str, e164: &str, network: Option<&str>) -> Self {
        let network = network.unwrap_or("");
        Self(crypto::digest("phone", &format!("{client_id}\0{e164}\0{network}")))
    }
}

impl NumberKey {
    pub fn of(client_id: &str, e164: &str) -> Self {
        Self(crypto::digest("number", &format!("{client_id}\0{e164}")))
    }

    /// A number spread evenly over phone numbers, to pick a number's shard of a sharded counter.
    pub fn spread(&self) -> u64 {
        self.0.get(..16).and_then(|hex| u64::from_str_radix(hex, 16).ok()).unwrap_or(0)
    }
}

impl CounterKey {
    /// A source network's starts, per client (see [`crate::limits::ip_bucket`]).
    pub fn ip(client_id: &str, ip_bucket: &str) -> Self {
        Self(format!("i#{}", crypto::digest("ip", &format!("{client_id}\0{ip_bucket}"))))
    }

    /// One shard of a client's sends.
    pub fn client(client_id: &str, shard: u32) -> Self {
        Self(format!("c#{}#{shard}", crypto::digest("client", client_id)))
    }

    /// One shard of a client's sends to a region (`001` for the global-service codes).
    pub fn country(client_id: &str, region: &str, shard: u32) -> Self {
        Self(format!("g#{}#{shard}", crypto::digest("country", &format!("{client_id}\0{region}"))))
    }

    /// A client's conversion in a region, in windows of `window_secs` ([`crate::fraud_guard`]).
    pub fn conversion(client_id: &str, region: &str, window_secs: u64) -> Self {
        Self(format!("f#{}#{window_secs}", crypto::digest("country", &format!("{client_id}\0{region}"))))
    }

    /// A client's sends to a number range ([`crate::limits::number_range`]).
    pub fn range(client_id: &str, range: &str) -> Self {
        Self(format!("r#{}", crypto::digest("range", &format!("{client_id}\0{range}"))))
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
            PhoneKey::of("client", "+15550100", Some("192.0.2.1")).as_str(),
            crypto::digest("phone", "client\0+15550100\x00192.0.2.1")
        );
        assert_ne!(
            PhoneKey::of("client", "+15550100", None),
            PhoneKey::of("client", "+15550100", Some("::/64"))
        );
        assert_eq!(
            NumberKey::of("client", "+15550100").as_str(),
            crypto::digest("number", "client\0+15550100")
        );
        assert_eq!(
            CounterKey::ip("client", "192.0.2.0/24").as_str(),
            format!("i#{}", crypto::digest("ip", "client\x00192.0.2.0/24"))
        );
        assert_ne!(CounterKey::client("client", 0), CounterKey::client("client", 1));
        assert_ne!(CounterKey::country("client", "GB", 0), CounterKey::country("client", "DE", 0));
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
