//! Reading a request: its content type, body bytes, small form or JSON bodies as fields, the
//! string fields in them, and its cookies.
//!
//! Handlers read fields through [`read_fields`] and [`take_string`], so a body that is not an
//! object, a repeated form field or a non-string value (`{"$gt": ""}`) is a 4xx before any of it
//! reaches a domain type or a query.
use http::header;
use lambda_http::{Body, Request};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The essence of the request's content type, lowercased (`application/json`), if any.
pub fn content_type(req: &Request) -> Option<String> {
    let raw = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// The raw body bytes, whatever form lambda_http decoded them into.
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Reads a small JSON-object or urlencoded body into a map of fields. An empty body without a
/// content type is an empty map (so missing fields are reported as such, not as a 415).
pub fn read_fields(req: &Request, max_bytes: usize) -> Result<Map<String, Value>, ApiError> {
    let body = body_bytes(req);
    if body.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "Request body is larger than {max_bytes} bytes"
        )));
    }
    match content_type(req).as_deref() {
        Some("application/json") => parse_json_object(body),
        Some("application/x-www-form-urlencoded") => parse_urlencoded(body),
        None if body.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        _ => Err(ApiError::UnsupportedMediaType(
            "Send application/json or application/x-www-form-urlencoded".into(),
        )),
    }
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "Request body must be a JSON object".into(),
        )),
        Err(_) => Err(ApiError::BadRequest(
            "Request body is not valid JSON".into(),
        )),
    }
}

fn parse_urlencoded(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::BadRequest("Request body is not valid form data".into()))?;
    let mut map = Map::new();
    let mut repeated = Vec::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), Value::String(v)).is_some() {
            repeated.push(crate::error::FieldError::new(k, "must be given only once"));
        }
    }
    if repeated.is_empty() {
        Ok(map)
    } else {
        Err(ApiError::Validation(repeated))
    }
}

/// Takes an optional string field: absent or null is `None`; any other non-string (a number, an
/// object such as `{"$gt": ""}`) is a field error, so nothing but a string ever reaches a query.
pub fn take_string(
    fields: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, crate::error::FieldError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(crate::error::FieldError::new(
            name,
            format!("{name} must be a string"),
        )),
    }
}

/// The value of one request cookie: the first of that name that is not empty, as for the access
/// token (`access::presented_token`). An empty one is as good as none, so the caller looks where
/// it looks next (the Node version's `req.cookies.refreshToken || req.body.refreshToken`).
pub fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().trim().is_empty())
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::post;

    #[test]
    fn fields_are_read_from_json_and_urlencoded_bodies() {
        let m = read_fields(
            &post(Some("application/json; charset=utf-8"), r#"{"a":"1"}"#),
            100,
        )
        .expect("json");
        assert_eq!(m["a"], "1");
        let m = read_fields(
            &post(Some("application/x-www-form-urlencoded"), "a=1&b=%20x"),
            100,
        )
        .expect("form");
        assert_eq!(m["b"], " x");
    }

    #[test]
    fn unreadable_bodies_are_rejected_with_the_right_status() {
        let cases = [
            (post(Some("application/json"), "{"), 400),
            (post(Some("application/json"), "[1]"), 400),
            (post(Some("text/plain"), "a=1"), 415),
            (post(None, "a=1"), 415),
            (
                post(Some("application/x-www-form-urlencoded"), "a=1&a=2"),
                400,
            ),
            (post(Some("application/json"), &"x".repeat(101)), 413),
        ];
        for (req, status) in cases {
            let e = read_fields(&req, 100).expect_err("must fail");
            assert_eq!(e.status().as_u16(), status, "{e:?}");
        }
    }

    #[test]
    fn cookies_are_found_by_name_among_several() {
        let req = http::Request::builder()
            .header("cookie", "a=1; refreshToken=abc.def")
            .body(Body::Empty)
            .expect("req");
        assert_eq!(
            cookie_value(&req, "refreshToken").as_deref(),
            Some("abc.def")
        );
        assert_eq!(cookie_value(&req, "missing"), None);
        let req = http::Request::builder()
            .header("cookie", "refreshToken=; a=1")
            .header("cookie", "refreshToken=  ; refreshToken=abc.def")
            .body(Body::Empty)
            .expect("req");
        assert_eq!(
            cookie_value(&req, "refreshToken").as_deref(),
            Some("abc.def"),
            "empty ones are skipped"
        );
    }
}
