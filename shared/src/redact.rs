//! Makes client-sent JSON safe to log: secrets by key name are replaced at any depth, phone-like
//! strings are masked, control characters (log-line injection) are removed, and depth and string
//! length are bounded.

use serde_json::{Map, Value};

use crate::phone;

/// Keys whose values are never logged, compared case-insensitively.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "session",
    "code",
    "otp",
    "pin",
    "password",
    "client_secret",
    "auth_req_id",
    "nonce",
    "authorization",
];
/// Keys that end like a secret key but name something harmless the client flow reports.
const SAFE_KEYS: &[&str] = &["error_code", "country_code", "status_code", "http_code"];
const REDACTED: &str = "[redacted]";
const MAX_DEPTH: usize = 16;
const MAX_STRING_CHARS: usize = 1024;

pub fn sanitize(value: &Value) -> Value {
    sanitize_at(value, 0)
}

fn sanitize_at(value: &Value, depth: usize) -> Value {
    if depth >= MAX_DEPTH && (value.is_object() || value.is_array()) {
        return Value::String("[too deep]".into());
    }
    match value {
        Value::String(s) => Value::String(clean_string(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| sanitize_at(v, depth + 1)).collect()),
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, value) in map {
                let key = strip_controls(key);
                let value = if is_secret_key(&key) {
                    Value::String(REDACTED.into())
                } else {
                    sanitize_at(value, depth + 1)
                };
                out.insert(key, value);
            }
            Value::Object(out)
        }
        // A number can be a phone too (`"phone": 447400123456`).
        Value::Number(n) if n.as_u64().is_some_and(|n| (1_000_000..=999_999_999_999_999).contains(&n)) => {
            Value::String(phone::mask(&n.to_string()))
        }
        other => other.clone(),
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !SAFE_KEYS.contains(&key.as_str())
        && SECRET_KEYS.iter().any(|secret| key == *secret || key.ends_with(&format!("_{secret}")))
}

fn strip_controls(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

fn clean_string(s: &str) -> String {
    let mut clean = strip_controls(s);
    if looks_like_phone(&clean) {
        return phone::mask(&clean.chars().filter(|c| *c == '+' || c.is_ascii_digit()).collect::<String>());
    }
    if clean.chars().count() > MAX_STRING_CHARS {
        clean = clean.chars().take(MAX_STRING_CHARS).collect::<String>() + "…[truncated]";
    }
    clean
}

/// 7–15 digits, optionally with a leading `+` and the usual separators: a phone number or close
/// enough that it must not be logged in full.
fn looks_like_phone(s: &str) -> bool {
    let trimmed = s.trim();
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && body.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let input = json!({
            "step": "token",
            "auth_req_id": "abc",
            "nested": [{ "Access_Token": "t", "deeper": { "code": "123456", "user_code": "9", "ok": 1 } }],
        });
        let out = sanitize(&input);
        let text = out.to_string();
        for secret in ["abc", "\"t\"", "123456", "\"9\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(out["nested"][0]["deeper"]["ok"], 1);
        assert_eq!(out["step"], "token");
        // What a client reports about a failure stays readable.
        let out =
            sanitize(&json!({ "error_code": "invalid_code", "country_code": 44, "sms_code": "123456" }));
        assert_eq!(
            out,
            json!({ "error_code": "invalid_code", "country_code": 44, "sms_code": "[redacted]" })
        );
    }

    #[test]
    fn phone_numbers_written_as_numbers_are_masked() {
        let out = sanitize(&json!({ "msisdn": 447400123456_u64, "elapsed_ms": 5120 }));
        assert_eq!(out, json!({ "msisdn": "44********56", "elapsed_ms": 5120 }));
    }

    #[test]
    fn phones_are_masked_and_controls_stripped() {
        let out = sanitize(&json!({ "phone": "+44 7400 123456", "note": "a\r\nb\u{0}c", "n\nk": 1 }));
        assert_eq!(out["phone"], "+44********56");
        assert_eq!(out["note"], "abc");
        assert_eq!(out["nk"], 1);
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let mut deep = json!("leaf");
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        assert!(sanitize(&deep).to_string().contains("[too deep]"));
        let long = "x".repeat(10_000);
        let out = sanitize(&json!({ "s": long }));
        assert!(out["s"].as_str().unwrap().len() < 1100);
    }
}
