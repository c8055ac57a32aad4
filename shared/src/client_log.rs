//! What of an app's `/sms/log` data reaches a log line: the documented fields only, each within
//! its shape, and the number of fields dropped.
//!
//! An allow-list, not a deny-list of secret-looking keys: a deny-list always misses a spelling
//! (`authReqId`, `session-token`, `ｃｏｄｅ`, a phone number as a key, in a sentence, in Arabic-Indic
//! digits, as a float, split across fields). Here a key outside the schema is dropped whatever it
//! is called, and every kept value is a bounded number, an enum or a short string of a small ASCII
//! alphabet, so no control, bidi or line-separator character can reach a line; in kept strings
//! every run of 4 or more digits is masked, and every digit of a string with 7 or more, so
//! neither a phone number (however it is separated) nor a code survives in one.
//!
//! | field | kept when |
//! |---|---|
//! | `event`, `step`, `outcome`, `error` | a token of `[a-z0-9_.-]`, 1–64 characters |
//! | `status` | an integer 100–599 |
//! | `duration_ms` | a number 0–86 400 000 (a day), kept as a whole number |
//! | `attempt` | an integer 0–100 |
//! | `platform` | `ios`, `android`, `web` or `other` (any case) |
//! | `app_version`, `os_version`, `sdk_version`, `locale`, `network` | 1–64 characters of `[A-Za-z0-9_.:/+() -]` |
//! | `extra` | an object; its first 16 entries whose key is `[a-z0-9_]`, 1–32 characters, and whose value is a boolean, a number of at most 3 digits, or a token of `[A-Za-z0-9_.:-]`, 1–64 characters |

use serde_json::{Map, Number, Value};

/// Most entries of `extra` kept.
pub const MAX_EXTRA_ENTRIES: usize = 16;
const MAX_TOKEN_CHARS: usize = 64;
const MAX_EXTRA_KEY_CHARS: usize = 32;
const MAX_DURATION_MS: f64 = 86_400_000.0;
const MAX_ATTEMPT: u64 = 100;
/// A run of this many digits in a kept string is masked.
const MASKED_RUN: usize = 4;
/// A kept string with this many digits in all has every digit masked: a phone number written
/// with separators (`+44 740 012 3456`) has no long run, but it has the digits.
const MASKED_TOTAL: usize = 7;

/// The kept fields, and how many were dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLog {
    pub data: Map<String, Value>,
    pub dropped: usize,
}

/// Keeps what the schema allows of `data` (dropping the whole of anything but an object).
pub fn sanitize(data: &Value) -> ClientLog {
    let Value::Object(fields) = data else {
        return ClientLog { data: Map::new(), dropped: 1 };
    };
    let mut log = ClientLog { data: Map::new(), dropped: 0 };
    for (key, value) in fields {
        match keep(key, value, &mut log.dropped) {
            Some(value) => {
                log.data.insert(key.clone(), value);
            }
            None => log.dropped += 1,
        }
    }
    log
}

/// The value kept for a top-level `key`, if it is a field of the schema in its shape.
fn keep(key: &str, value: &Value, dropped: &mut usize) -> Option<Value> {
    match key {
        "event" | "step" | "outcome" | "error" => {
            token(value, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        }
        "status" => integer(value, 100, 599),
        "duration_ms" => {
            let ms = value.as_f64().filter(|ms| (0.0..=MAX_DURATION_MS).contains(ms))?;
            Some(Value::Number(Number::from(ms.round() as u64)))
        }
        "attempt" => integer(value, 0, MAX_ATTEMPT),
        "platform" => {
            let platform = value.as_str()?.to_ascii_lowercase();
            ["ios", "android", "web", "other"].contains(&platform.as_str()).then_some(Value::String(platform))
        }
        "app_version" | "os_version" | "sdk_version" | "locale" | "network" => token(value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '+' | '(' | ')' | ' ' | '-')
        }),
        "extra" => Some(Value::Object(extra(value.as_object()?, dropped))),
        _ => None,
    }
}

/// `extra`'s entries of the allowed shape, at most [`MAX_EXTRA_ENTRIES`]; each other one counts
/// as dropped.
fn extra(entries: &Map<String, Value>, dropped: &mut usize) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in entries {
        let key_ok = (1..=MAX_EXTRA_KEY_CHARS).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let value = match value {
            Value::Bool(_) => Some(value.clone()),
            Value::Number(n) if digits_in(n) <= 3 => Some(value.clone()),
            _ => token(value, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')),
        };
        match value {
            Some(value) if key_ok && kept.len() < MAX_EXTRA_ENTRIES => {
                kept.insert(key.clone(), value);
            }
            _ => *dropped += 1,
        }
    }
    kept
}

/// A string of 1–64 characters that all pass `allowed`, its digit runs masked.
fn token(value: &Value, allowed: impl Fn(char) -> bool) -> Option<Value> {
    let text = value.as_str()?;
    let fits = (1..=MAX_TOKEN_CHARS).contains(&text.chars().count()) && text.chars().all(allowed);
    fits.then(|| Value::String(mask_digit_runs(text)))
}

fn integer(value: &Value, min: u64, max: u64) -> Option<Value> {
    value.as_u64().filter(|n| (min..=max).contains(n)).map(|n| Value::Number(n.into()))
}

/// How many digits a JSON number is written with (`1e3` is 4: an exponent is not a way around).
fn digits_in(n: &Number) -> usize {
    if n.is_f64() && n.as_f64().is_some_and(|f| f.abs() >= 1000.0) {
        return usize::MAX;
    }
    n.to_string().chars().filter(char::is_ascii_digit).count()
}

/// Every run of [`MASKED_RUN`] or more digits (in any script) replaced by as many `*`; every
/// digit, when the text has [`MASKED_TOTAL`] or more.
pub fn mask_digit_runs(text: &str) -> String {
    if text.chars().filter(|c| c.is_numeric()).count() >= MASKED_TOTAL {
        return text.chars().map(|c| if c.is_numeric() { '*' } else { c }).collect();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= MASKED_RUN {
            out.extend(run.chars().map(|_| '*'));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_numeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kept(data: Value) -> (Value, usize) {
        let log = sanitize(&data);
        (Value::Object(log.data), log.dropped)
    }

    #[test]
    fn the_documented_fields_are_kept() {
        let data = json!({
            "event": "sms_sent", "step": "code", "outcome": "ok", "error": "rate_limited",
            "status": 429, "duration_ms": 812.6, "attempt": 2, "platform": "iOS",
            "app_version": "3.2.1 (45)", "os_version": "17.4", "sdk_version": "1.0.0",
            "locale": "en-GB", "network": "wifi",
            "extra": { "resend": true, "attempts_left": 3, "ratio": 0.5, "country": "GB", "server_id": "sandbox" },
        });
        let (out, dropped) = kept(data);
        assert_eq!(dropped, 0, "{out}");
        assert_eq!(out["duration_ms"], 813);
        assert_eq!(out["platform"], "ios");
        assert_eq!(out["extra"]["country"], "GB");
        assert_eq!(out["app_version"], "3.2.1 (45)");
    }

    /// Every spelling of a secret a deny-list missed: none is a field of the schema.
    #[test]
    fn secrets_under_any_name_are_dropped() {
        let secret = "s3cr3t-value";
        let (out, dropped) = kept(json!({
            "authReqId": secret, "sessionToken": secret, "clientSecret": secret, "otpCode": secret,
            "auth-req-id": secret, "session token": secret, "ｃｏｄｅ": secret, "cоde": secret,
            "code": secret, "+447400123456": true, "447400123456": 1,
            "extra": { "authReqId": secret, "otp-code": secret, "Code": secret },
        }));
        assert_eq!(out, json!({ "extra": {} }));
        assert_eq!(dropped, 14);
    }

    /// A phone number or a code cannot pass in a kept string, in any script or shape.
    #[test]
    fn numbers_in_text_are_masked_or_refused() {
        let (out, dropped) = kept(json!({
            "error": "failed_for_447400123456",
            "step": "+44 7400 123456",
            "network": "+44 7400-123.456",
            "outcome": "at_3.2.1",
            "locale": "٤٤٧٤٠٠١٢٣٤٥٦",
            "app_version": "４４７４００１２３４５６",
            "os_version": "2024.1",
            "extra": { "code": "123456", "a": 447, "b": 400, "big": 1234, "float": 4.474001234e11, "exp": 1e3, "neg": -12 },
        }));
        assert_eq!(out["error"], "failed_for_************");
        assert_eq!(out["network"], "+** ****-***.***", "separated, but seven digits or more");
        assert_eq!(out["os_version"], "****.1");
        assert_eq!(out["outcome"], "at_3.2.1", "short runs of few digits stay");
        assert_eq!(out["extra"]["code"], "******");
        for gone in ["step", "locale", "app_version"] {
            assert!(out.get(gone).is_none(), "{gone}: {out}");
        }
        // Split across fields, a number gets through three digits at a time at most.
        assert_eq!(
            (&out["extra"]["a"], &out["extra"]["b"], &out["extra"]["neg"]),
            (&json!(447), &json!(400), &json!(-12))
        );
        for gone in ["big", "float", "exp"] {
            assert!(out["extra"].get(gone).is_none(), "{gone}: {out}");
        }
        assert_eq!(dropped, 6);
        for phone_as_number in [json!(447400123456_u64), json!(447400123456.0), json!(4.474e11)] {
            let (out, dropped) = kept(
                json!({ "duration_ms": phone_as_number, "status": phone_as_number, "attempt": phone_as_number }),
            );
            assert_eq!((out, dropped), (json!({}), 3));
        }
    }

    #[test]
    fn no_control_format_or_separator_character_is_kept() {
        for evil in [
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{202E}b",
            "a\u{2066}b",
            "a\u{200D}b",
            "a\u{FEFF}b",
            "a\nb",
            "a\u{0}b",
            "a\u{85}b",
        ] {
            let (out, dropped) = kept(json!({ "event": evil, "app_version": evil, "extra": { "k": evil } }));
            assert_eq!((out, dropped), (json!({ "extra": {} }), 3), "{evil:?}");
        }
    }

    #[test]
    fn shapes_and_bounds() {
        let mut many = Map::new();
        for i in 0..40 {
            many.insert(format!("k{i:02}"), json!(true));
        }
        let (out, dropped) = kept(json!({ "extra": many }));
        assert_eq!(out["extra"].as_object().unwrap().len(), MAX_EXTRA_ENTRIES);
        assert_eq!(dropped, 40 - MAX_EXTRA_ENTRIES);
        assert_eq!(kept(json!("a string")), (json!({}), 1));
        assert_eq!(kept(json!([1, 2])), (json!({}), 1));
        let (out, dropped) = kept(json!({
            "status": 99, "attempt": 101, "duration_ms": -1, "platform": "windows", "event": "x".repeat(65),
            "extra": "not an object", "deep": { "d": { "d": 1 } },
        }));
        assert_eq!((out, dropped), (json!({}), 7));
        assert_eq!(kept(json!({ "status": 599, "attempt": 0 })).0, json!({ "status": 599, "attempt": 0 }));
    }
}
