//! The item codec: how a [`Verification`], a [`Session`] and a phone record are written into
//! DynamoDB items and read back (the layout is in the [parent module](super)'s docs).

use std::{collections::HashMap, fmt::Display, str::FromStr};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use crate::limits::PhoneCounters;
use crate::phone;
use crate::store::{
    CounterKey, Lease, LeaseId, NumberKey, PhoneKey, PhoneRecord, Progress, Session, SessionKey, StoreError,
    Verification, VerificationKey,
};

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "pk";
pub(super) const TTL_ATTRIBUTE: &str = "expires_at";
const VERIFICATION_PREFIX: &str = "v#";
const SESSION_PREFIX: &str = "s#";
const PHONE_PREFIX: &str = "p#";
const NUMBER_PREFIX: &str = "n#";

pub(super) fn verification_pk(key: &VerificationKey) -> String {
    format!("{VERIFICATION_PREFIX}{}", key.as_str())
}

pub(super) fn session_pk(key: &SessionKey) -> String {
    format!("{SESSION_PREFIX}{}", key.as_str())
}

pub(super) fn phone_pk(phone_key: &PhoneKey) -> String {
    format!("{PHONE_PREFIX}{}", phone_key.as_str())
}

pub(super) fn window_pk(phone_key: &PhoneKey, window_secs: u64, window: u64) -> String {
    format!("{PHONE_PREFIX}{}#w{window_secs}#{window}", phone_key.as_str())
}

pub(super) fn day_pk(phone_key: &PhoneKey, day: u64) -> String {
    format!("{PHONE_PREFIX}{}#d#{day}", phone_key.as_str())
}

pub(super) fn number_day_pk(number_key: &NumberKey, day: u64) -> String {
    format!("{NUMBER_PREFIX}{}#d#{day}", number_key.as_str())
}

/// A window count's item: its key names its kind (`i#`, `c#`, `g#`, `r#`; see [`CounterKey`]).
pub(super) fn count_pk(key: &CounterKey, window: u64) -> String {
    format!("{}#{window}", key.as_str())
}

/// A fresh `rev` for a verification item.
pub(super) fn new_rev() -> AttributeValue {
    s(uuid::Uuid::new_v4().simple().to_string())
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The attributes that hold a sealed value, one per [`Progress`] that has one.
pub(super) const SEALED_ATTRIBUTES: [&str; 2] = ["sealed_access_token", "sealed_session"];

/// `Progress` as its `stage` and its sealed value's attribute and value, if it has one.
pub(super) fn progress_attributes(progress: &Progress) -> (&'static str, Option<(&'static str, &str)>) {
    match progress {
        Progress::AwaitingCode => ("awaiting_code", None),
        Progress::CodeAccepted => ("code_accepted", None),
        Progress::TokenIssued { sealed_access_token } => {
            ("token_issued", Some((SEALED_ATTRIBUTES[0], sealed_access_token)))
        }
        Progress::Completed { sealed_session } => ("completed", Some((SEALED_ATTRIBUTES[1], sealed_session))),
    }
}

pub(super) fn verification_item(v: &Verification, rev: AttributeValue) -> Item {
    let (stage, sealed) = progress_attributes(&v.progress);
    let mut item = HashMap::from([
        (PK.to_owned(), s(verification_pk(&v.key))),
        ("flow_id".to_owned(), s(&v.flow_id)),
        ("nonce_digest".to_owned(), s(&v.nonce_digest)),
        ("client_id".to_owned(), s(&v.client_id)),
        ("server_id".to_owned(), s(&v.server_id)),
        ("phone".to_owned(), s(&v.phone)),
        ("region".to_owned(), s(&v.region)),
        ("phone_key".to_owned(), s(v.phone_key.as_str())),
        ("test".to_owned(), AttributeValue::Bool(v.test)),
        ("created_at".to_owned(), n(v.created_at)),
        (TTL_ATTRIBUTE.to_owned(), n(v.expires_at)),
        ("poll_interval_secs".to_owned(), n(v.poll_interval_secs)),
        ("wrong_codes".to_owned(), n(v.wrong_codes)),
        ("max_wrong_codes".to_owned(), n(v.max_wrong_codes)),
        ("stage".to_owned(), s(stage)),
        ("rev".to_owned(), rev),
    ]);
    if let Some((attribute, sealed)) = sealed {
        item.insert(attribute.to_owned(), s(sealed));
    }
    if let Some(lease) = &v.lease {
        item.insert("lease_id".to_owned(), s(lease.id.as_str()));
        item.insert("lease_until".to_owned(), n(lease.until));
    }
    item
}

pub(super) fn session_item(session: &Session) -> Result<Item, StoreError> {
    let userinfo = serde_json::to_string(&session.userinfo)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode the session's userinfo: {e}")))?;
    Ok(HashMap::from([
        (PK.to_owned(), s(session_pk(&session.key))),
        ("flow_id".to_owned(), s(&session.flow_id)),
        ("client_id".to_owned(), s(&session.client_id)),
        ("server_id".to_owned(), s(&session.server_id)),
        ("phone".to_owned(), s(&session.phone)),
        ("userinfo".to_owned(), s(userinfo)),
        ("verified_at".to_owned(), n(session.verified_at)),
        (TTL_ATTRIBUTE.to_owned(), n(session.expires_at)),
    ]))
}

pub(super) fn corrupt(what: impl Display) -> StoreError {
    StoreError::Unavailable(format!("corrupt DynamoDB item: {what}"))
}

/// Typed reads of one item's attributes; a missing or mistyped attribute is a corrupt item.
pub(super) struct Attributes<'a>(pub(super) &'a Item);

impl Attributes<'_> {
    pub(super) fn string(&self, name: &str) -> Result<String, StoreError> {
        self.optional_string(name)?.ok_or_else(|| corrupt(format_args!("attribute {name} is missing")))
    }

    pub(super) fn optional_string(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.0
            .get(name)
            .map(|value| {
                value.as_s().cloned().map_err(|_| corrupt(format_args!("attribute {name} is not a string")))
            })
            .transpose()
    }

    pub(super) fn bool(&self, name: &str) -> Result<bool, StoreError> {
        let value = self.0.get(name).ok_or_else(|| corrupt(format_args!("attribute {name} is missing")))?;
        value.as_bool().copied().map_err(|_| corrupt(format_args!("attribute {name} is not a boolean")))
    }

    pub(super) fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.optional_number(name)?.ok_or_else(|| corrupt(format_args!("attribute {name} is missing")))
    }

    pub(super) fn optional_number<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.0
            .get(name)
            .map(|value| {
                value
                    .as_n()
                    .ok()
                    .and_then(|number| number.parse().ok())
                    .ok_or_else(|| corrupt(format_args!("attribute {name} is not a number in range")))
            })
            .transpose()
    }
}

pub(super) fn parse_verification(key: &VerificationKey, item: &Item) -> Result<Verification, StoreError> {
    let a = Attributes(item);
    let progress = match a.string("stage")?.as_str() {
        "awaiting_code" => Progress::AwaitingCode,
        "code_accepted" => Progress::CodeAccepted,
        "token_issued" => Progress::TokenIssued { sealed_access_token: a.string(SEALED_ATTRIBUTES[0])? },
        "completed" => Progress::Completed { sealed_session: a.string(SEALED_ATTRIBUTES[1])? },
        other => return Err(corrupt(format_args!("unknown stage {other:?}"))),
    };
    let lease = match (a.optional_string("lease_id")?, a.optional_number("lease_until")?) {
        (Some(id), Some(until)) => Some(Lease { id: LeaseId::from_stored(id), until }),
        (None, None) => None,
        _ => return Err(corrupt("lease_id and lease_until must come together")),
    };
    let phone = a.string("phone")?;
    // Items written before verifications kept their region have none.
    let region = a.optional_string("region")?.unwrap_or_else(|| phone::region_of(&phone));
    Ok(Verification {
        key: key.clone(),
        flow_id: a.string("flow_id")?,
        nonce_digest: a.string("nonce_digest")?,
        client_id: a.string("client_id")?,
        server_id: a.string("server_id")?,
        phone,
        region,
        phone_key: PhoneKey::from_stored(a.string("phone_key")?),
        test: a.bool("test")?,
        created_at: a.number("created_at")?,
        expires_at: a.number(TTL_ATTRIBUTE)?,
        poll_interval_secs: a.number("poll_interval_secs")?,
        wrong_codes: a.number("wrong_codes")?,
        max_wrong_codes: a.number("max_wrong_codes")?,
        progress,
        lease,
    })
}

/// A phone record as a claim needs it: the current verification and the failures (the send
/// counters live in their own items).
pub(super) fn parse_phone(item: &Item) -> Result<PhoneRecord, StoreError> {
    let a = Attributes(item);
    Ok(PhoneRecord {
        current: a.optional_string("current")?.map(VerificationKey::from_stored),
        counters: PhoneCounters {
            failures: a.optional_number("failures")?.unwrap_or(0),
            failures_reset_at: a.optional_number("failures_reset_at")?.unwrap_or(0),
            ..PhoneCounters::default()
        },
    })
}

pub(super) fn parse_session(key: &SessionKey, item: &Item) -> Result<Session, StoreError> {
    let a = Attributes(item);
    let userinfo: Map<String, Value> = serde_json::from_str(&a.string("userinfo")?)
        .map_err(|e| corrupt(format_args!("attribute userinfo is not a JSON object: {e}")))?;
    Ok(Session {
        key: key.clone(),
        flow_id: a.string("flow_id")?,
        client_id: a.string("client_id")?,
        server_id: a.string("server_id")?,
        phone: a.string("phone")?,
        userinfo,
        verified_at: a.number("verified_at")?,
        expires_at: a.number(TTL_ATTRIBUTE)?,
    })
}
