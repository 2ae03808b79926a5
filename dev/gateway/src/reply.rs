//! From the Invoke API's answer to the HTTP response, as API Gateway HTTP API does for payload
//! format 2.0.
//!
//! A function's answer that is a JSON object with `statusCode` is read as `statusCode`,
//! `headers`, `multiValueHeaders` (if any), `cookies` (one `Set-Cookie` each), `body` and
//! `isBase64Encoded`. Any other valid JSON is API Gateway's inferred format: 200,
//! `content-type: application/json`, the JSON as the body. Anything else is a malformed answer.
//!
//! How `cargo lambda watch` 1.9.2 reports a function error on the Invoke API (measured): HTTP 500
//! with `{"errorType": "...", "errorMessage": "..."}`, for a returned error and for a panic
//! alike, and no `X-Amz-Function-Error` header. AWS Lambda itself answers 200 with
//! `X-Amz-Function-Error: Unhandled`; both are read as a function error. An unknown function is
//! a 404 `{"title": "Missing function", ...}`. A function process that exits during an
//! invocation is never answered: only the integration timeout ends that request.
//!
//! A function error, a malformed answer and anything else wrong with the invocation are API
//! Gateway's 500 `{"message":"Internal Server Error"}`; the caller only logs the difference.
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use serde_json::Value;

/// The HTTP response to send.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why an invocation did not yield a response (all of them a 500 to the client).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The function returned an error or panicked.
    Function(String),
    /// The runtime does not know the function.
    MissingFunction(String),
    /// The function's answer is not a payload 2.0 response.
    Malformed(String),
    /// The runtime answered something else.
    Runtime(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Function(m) => write!(f, "function error: {m}"),
            Self::MissingFunction(m) => write!(f, "no such function in the runtime: {m}"),
            Self::Malformed(m) => write!(f, "malformed Lambda proxy response: {m}"),
            Self::Runtime(m) => write!(f, "runtime error: {m}"),
        }
    }
}

/// Reads the Invoke API's answer (its HTTP status, headers and body).
pub fn from_invocation(status: u16, headers: &HeaderMap, body: &[u8]) -> Result<Reply, Failure> {
    let text = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(500)
            .collect::<String>()
    };
    match status {
        200 if headers.contains_key("x-amz-function-error") => Err(Failure::Function(text())),
        200 => from_payload(body).map_err(Failure::Malformed),
        500 => Err(Failure::Function(text())),
        404 => Err(Failure::MissingFunction(text())),
        other => Err(Failure::Runtime(format!("HTTP {other}: {}", text()))),
    }
}

/// Headers a function cannot set: they describe the connection or the framing, which the
/// gateway owns.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Reads a payload 2.0 function response.
pub fn from_payload(payload: &[u8]) -> Result<Reply, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON ({e})"))?;
    let Some(obj) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // The inferred format: any valid JSON without statusCode is a 200 JSON body.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(Reply {
            status: StatusCode::OK,
            headers,
            body: Bytes::copy_from_slice(payload),
        });
    };
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("statusCode is not an HTTP status")?;

    let mut headers = HeaderMap::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let name = header_name(name)?;
                if let Some(value) = scalar(value) {
                    headers.insert(name, header_value(&value)?);
                } else if !value.is_null() {
                    return Err(format!("header {name} is not a string"));
                }
            }
        }
        Some(_) => return Err("headers is not an object".into()),
    }
    match obj.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, values) in map {
                let name = header_name(name)?;
                let Some(values) = values.as_array() else {
                    return Err(format!("multiValueHeaders {name} is not a list"));
                };
                // A name in both: the list wins, as one source of that header.
                headers.remove(&name);
                for value in values {
                    let value =
                        scalar(value).ok_or(format!("multiValueHeaders {name}: not a string"))?;
                    headers.append(name.clone(), header_value(&value)?);
                }
            }
        }
        Some(_) => return Err("multiValueHeaders is not an object".into()),
    }
    for hop in HOP_BY_HOP {
        headers.remove(*hop);
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let cookie = cookie.as_str().ok_or("a cookie is not a string")?;
                headers.append(header::SET_COOKIE, header_value(cookie)?);
            }
        }
        Some(_) => return Err("cookies is not a list".into()),
    }

    let base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("isBase64Encoded is not a boolean".into()),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(|e| format!("body is not base64 ({e})"))?,
        Some(Value::String(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Some(_) => return Err("body is not a string".into()),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name:?}"))
}

fn header_value(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("bad header value {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(v: Value) -> Result<Reply, String> {
        from_payload(v.to_string().as_bytes())
    }

    #[test]
    fn a_full_response() {
        let r = reply(json!({
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-N": 3, "content-length": "999"},
            "multiValueHeaders": {"vary": ["origin", "accept"]},
            "cookies": ["a=1; Path=/; HttpOnly", "b=2"],
            "body": "{\"ok\":true}",
            "isBase64Encoded": false,
        }))
        .expect("reply");
        assert_eq!(r.status, 201);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-n"], "3");
        assert!(r.headers.get("content-length").is_none());
        let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
        assert_eq!(vary, ["origin", "accept"]);
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/; HttpOnly", "b=2"]);
        assert_eq!(&r.body[..], b"{\"ok\":true}");
    }

    #[test]
    fn base64_bodies_and_empty_ones() {
        let r = reply(json!({"statusCode": 200, "body": "AAH/", "isBase64Encoded": true}))
            .expect("reply");
        assert_eq!(&r.body[..], &[0, 1, 255]);
        let r = reply(json!({"statusCode": 204})).expect("reply");
        assert!(r.body.is_empty());
        assert!(r.headers.is_empty());
    }

    #[test]
    fn the_inferred_format() {
        for v in [
            json!({"message": "hi"}),
            json!("text"),
            json!([1, 2]),
            json!(3),
        ] {
            let r = reply(v.clone()).expect("reply");
            assert_eq!(r.status, 200);
            assert_eq!(r.headers["content-type"], "application/json");
            assert_eq!(&r.body[..], v.to_string().as_bytes());
        }
    }

    #[test]
    fn malformed_answers() {
        assert!(from_payload(b"not json").is_err());
        assert!(from_payload(b"").is_err());
        for v in [
            json!({"statusCode": "200"}),
            json!({"statusCode": 99}),
            json!({"statusCode": 600}),
            json!({"statusCode": -1}),
            json!({"statusCode": 200.5}),
            json!({"statusCode": 200, "headers": []}),
            json!({"statusCode": 200, "headers": {"bad name": "x"}}),
            json!({"statusCode": 200, "headers": {"x": "line\nbreak"}}),
            json!({"statusCode": 200, "headers": {"x": {"y": 1}}}),
            json!({"statusCode": 200, "cookies": "a=1"}),
            json!({"statusCode": 200, "cookies": [1]}),
            json!({"statusCode": 200, "body": {"a": 1}}),
            json!({"statusCode": 200, "body": "***", "isBase64Encoded": true}),
            json!({"statusCode": 200, "isBase64Encoded": "yes"}),
            json!({"statusCode": 200, "multiValueHeaders": {"x": "y"}}),
        ] {
            assert!(reply(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn invocation_outcomes() {
        let none = HeaderMap::new();
        let ok = from_invocation(200, &none, br#"{"statusCode":418}"#).expect("reply");
        assert_eq!(ok.status, 418);
        let watch_error = br#"{"errorType":"x","errorMessage":"boom"}"#;
        assert!(matches!(
            from_invocation(500, &none, watch_error),
            Err(Failure::Function(_))
        ));
        let mut aws = HeaderMap::new();
        aws.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
        assert!(matches!(
            from_invocation(200, &aws, watch_error),
            Err(Failure::Function(_))
        ));
        assert!(matches!(
            from_invocation(404, &none, b"{\"title\":\"Missing function\"}"),
            Err(Failure::MissingFunction(_))
        ));
        assert!(matches!(
            from_invocation(502, &none, b""),
            Err(Failure::Runtime(_))
        ));
        assert!(matches!(
            from_invocation(200, &none, b"\xff"),
            Err(Failure::Malformed(_))
        ));
    }
}
