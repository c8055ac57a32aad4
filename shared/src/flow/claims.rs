//! What a session may be opened on: the upstream's word that the phone is verified, for the very
//! number the SMS went to.
//!
//! Userinfo comes from the upstream, so it is checked like any input: a missing
//! `phone_number_verified` is not a yes, and a `phone_number` or `login_hint` claim for another
//! number (a misrouted token, a confused or hostile upstream) must not open a session for it. The
//! session and the answer then carry the number the SMS went to, in E.164, whatever spelling
//! the upstream used.

use serde_json::Value;

use crate::ciba::UserInfo;

/// The claims that name a number, each compared with the number the SMS went to.
const NUMBER_CLAIMS: [&str; 2] = ["phone_number", "login_hint"];

/// Why the claims cannot open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `phone_number_verified` is absent or not a yes.
    NotVerified,
    /// A claim names another number.
    OtherNumber,
}

/// The claims of a session for `phone` (E.164), if the upstream vouched for it.
pub fn vouched_for(userinfo: UserInfo, phone: &str) -> Result<UserInfo, Refused> {
    if !userinfo.phone_verified() {
        return Err(Refused::NotVerified);
    }
    let UserInfo(mut claims) = userinfo;
    let sent_to = e164_digits(phone);
    for name in NUMBER_CLAIMS {
        if let Some(claimed) = claims.get(name)
            && (sent_to.is_none() || claimed_digits(claimed) != sent_to)
        {
            return Err(Refused::OtherNumber);
        }
    }
    claims.insert("phone_number".into(), Value::String(phone.to_owned()));
    Ok(UserInfo(claims))
}

/// The digits of a number claim: a string in E.164 or with the usual separators (a `tel:` URI
/// too), or a JSON integer. Anything else names no number, so it cannot match.
fn claimed_digits(claimed: &Value) -> Option<String> {
    match claimed {
        Value::String(text) => e164_digits(text),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

fn e164_digits(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_prefix("tel:").unwrap_or(text);
    let text = text.strip_prefix('+').unwrap_or(text);
    if !text.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')')) {
        return None;
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    const PHONE: &str = "+447400123456";

    fn judge(claims: Value) -> Result<Map<String, Value>, Refused> {
        let info = UserInfo::from_claims(claims.as_object().unwrap().clone());
        vouched_for(info, PHONE).map(|UserInfo(claims)| claims)
    }

    #[test]
    fn only_a_yes_for_the_same_number_opens_a_session() {
        for same in [
            json!("+447400123456"),
            json!("447400123456"),
            json!("+44 7400 123456"),
            json!("tel:+44-7400-123456"),
            json!(447400123456_u64),
        ] {
            let claims = judge(
                json!({"sub": "s", "phone_number": same, "login_hint": same, "phone_number_verified": true}),
            );
            assert_eq!(claims.unwrap()["phone_number"], PHONE, "{same}");
        }
        let claims = judge(json!({"sub": "s", "phone_number_verified": "true"})).unwrap();
        assert_eq!(claims["phone_number"], PHONE, "a number the upstream left out is the SMS's");
        assert_eq!(claims["sub"], "s");
    }

    #[test]
    fn another_number_or_no_yes_is_refused() {
        for other in [
            json!("+15550001111"),
            json!("4474001234560"),
            json!("+44 7400 12345x"),
            json!(""),
            json!(null),
            json!(["+447400123456"]),
            json!(4.474001234560e11),
        ] {
            assert_eq!(
                judge(json!({"phone_number": other, "phone_number_verified": true})),
                Err(Refused::OtherNumber),
                "{other}"
            );
            assert_eq!(
                judge(json!({"login_hint": other, "phone_number_verified": true})),
                Err(Refused::OtherNumber),
                "{other}"
            );
        }
        for not_yes in [
            json!({}),
            json!({"phone_number_verified": false}),
            json!({"phone_number_verified": "no"}),
            json!({"phone_number_verified": 0}),
        ] {
            let mut claims = not_yes.clone();
            claims["phone_number"] = json!(PHONE);
            assert_eq!(judge(claims), Err(Refused::NotVerified), "{not_yes}");
        }
    }
}
