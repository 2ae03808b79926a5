//! The one envelope assertion every test uses, in-process or over HTTP.
//!
//! `assert_envelope_shape` states the contract on the parts any response has (status,
//! content type, body text), so handler tests (`lambda_http::Response`) and end-to-end
//! tests (`reqwest` answers) check the same invariants through thin adapters.

use lambda_http::{Body, Response};
use serde_json::Value;

/// The keys an error envelope may carry; anything else would be a leak.
const ERROR_KEYS: [&str; 6] = [
    "statusCode",
    "data",
    "message",
    "success",
    "errors",
    "requestId",
];

/// Asserts the documented envelope for an answer with `status`, whatever the status:
/// content type `application/json`, a JSON object whose `statusCode` equals the HTTP status,
/// `success` true exactly below 400, a string `message`; on errors also `data: null`, a
/// non-empty `message`, `errors` as `[{field, message}]` of strings, a non-empty `requestId`
/// and no other key. Returns the parsed body.
pub fn assert_envelope_shape(status: u16, content_type: Option<&str>, body: &str) -> Value {
    assert_eq!(
        content_type,
        Some("application/json"),
        "content type of HTTP {status}: {body}"
    );
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("HTTP {status}, body is not JSON ({e}): {body}"));
    assert!(v.is_object(), "the envelope is an object: {body}");
    assert_eq!(
        v["statusCode"], status,
        "statusCode must equal the HTTP status: {body}"
    );
    assert_eq!(v["success"], status < 400, "success: {body}");
    assert!(
        v.get("message").is_some_and(Value::is_string),
        "message is a string: {body}"
    );
    if status >= 400 {
        assert_error_body(&v);
    }
    v
}

/// [`assert_envelope_shape`], after asserting the status is `expected`.
pub fn assert_envelope(
    status: u16,
    content_type: Option<&str>,
    body: &str,
    expected: u16,
) -> Value {
    assert_eq!(status, expected, "unexpected status; body: {body}");
    assert_envelope_shape(status, content_type, body)
}

fn assert_error_body(body: &Value) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {body}"
    );
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors array: {body}"));
    for e in errors {
        let obj = e
            .as_object()
            .unwrap_or_else(|| panic!("error entry is an object: {body}"));
        assert!(
            obj.get("field").is_some_and(Value::is_string)
                && obj.get("message").is_some_and(Value::is_string),
            "{body}"
        );
        assert_eq!(obj.len(), 2, "only field and message: {body}");
    }
    assert!(
        body["requestId"].as_str().is_some_and(|s| !s.is_empty()),
        "requestId: {body}"
    );
    let keys = body.as_object().expect("an object");
    assert!(
        keys.keys().all(|k| ERROR_KEYS.contains(&k.as_str())),
        "extra keys: {body}"
    );
}

/// The body of an in-process response as text.
pub fn body_text(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Adapter for handler tests: the envelope of a `lambda_http::Response` with status `expected`.
pub fn of_response(resp: &Response<Body>, expected: u16) -> Value {
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or(""));
    assert_envelope(
        resp.status().as_u16(),
        content_type,
        &body_text(resp),
        expected,
    )
}

/// Adapter for HTTP answers: the envelope of an answer already split into status, headers
/// and body text (a `reqwest::Response` is consumed by reading its body).
pub fn of_http(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> Value {
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap_or(""));
    assert_envelope_shape(status, content_type, body)
}

/// The `field` of every entry in an error envelope's `errors`, in order.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}
