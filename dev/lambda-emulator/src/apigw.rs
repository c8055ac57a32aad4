//! API Gateway HTTP API (payload format 2.0) events and responses, as JSON: read a sample event,
//! give it another body, read a function's response back.

use std::path::Path;

use base64::Engine;
use serde_json::Value;

/// Reads an event file (e.g. one of the repository's `events/*.json`); panics with the path on a
/// missing or malformed file (this is test support).
pub fn load_event(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// `event` with `body` (serialised) as its text body, and a `content-length` header to match.
pub fn with_json_body(mut event: Value, body: &Value) -> Value {
    let text = body.to_string();
    if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut) {
        headers.insert("content-length".to_owned(), Value::String(text.len().to_string()));
    }
    event["body"] = Value::String(text);
    event["isBase64Encoded"] = Value::Bool(false);
    event
}

/// The response's body as text (decoded when `isBase64Encoded`); empty when there is none.
pub fn body_text(response: &Value) -> String {
    let body = response["body"].as_str().unwrap_or_default();
    if response["isBase64Encoded"] == true {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_else(|e| panic!("isBase64Encoded body is not base64: {e}"));
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    }
}

/// The response's body parsed as JSON; panics (naming the status) when it is not JSON.
pub fn body_json(response: &Value) -> Value {
    let text = body_text(response);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {text:?}", response["statusCode"]))
}

/// The value of response header `name` (case-insensitive), if present.
pub fn header<'a>(response: &'a Value, name: &str) -> Option<&'a str> {
    response["headers"]
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, value)| value.as_str())
}

/// The response's `cookies` (API Gateway v2 carries `Set-Cookie` values there).
pub fn cookies(response: &Value) -> Vec<String> {
    response["cookies"]
        .as_array()
        .map(|cookies| cookies.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_headers_and_cookies() {
        let event =
            with_json_body(json!({ "headers": { "content-length": "1" }, "body": "x" }), &json!({ "a": 1 }));
        assert_eq!(event["body"], r#"{"a":1}"#);
        assert_eq!(event["headers"]["content-length"], "7");

        let response = json!({
            "statusCode": 200, "headers": { "Content-Type": "text/plain" },
            "body": "T0s=", "isBase64Encoded": true, "cookies": ["a=b"],
        });
        assert_eq!(body_text(&response), "OK");
        assert_eq!(header(&response, "content-type"), Some("text/plain"));
        assert_eq!(cookies(&response), vec!["a=b".to_owned()]);
        assert_eq!(body_json(&json!({ "body": "[1]" })), json!([1]));
    }
}
