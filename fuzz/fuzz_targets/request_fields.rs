//! The HTTP edge's parsers for login and refresh: an API Gateway event whose client-controlled
//! parts come from the fuzzer converts without panicking, and its body, content type and cookies
//! give fields or an error of status 400, 413 or 415.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::http::{cookie_value, read_fields, request_from_event, take_string};

const CONTENT_TYPES: [&str; 5] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
];

fuzz_target!(|data: &[u8]| {
    // Layout: [selector] host \0 proto \0 cookie \0 query \0 body
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(5, '\0');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let (host, proto, cookie, query, body) = (next(), next(), next(), next(), next());
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let mut headers = serde_json::Map::new();
    headers.insert("host".into(), host.clone().into());
    headers.insert("x-forwarded-proto".into(), proto.into());
    if !content_type.is_empty() {
        headers.insert("content-type".into(), content_type.into());
    }
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /api/v1/users/login",
        "rawPath": "/api/v1/users/login",
        "rawQueryString": query,
        "cookies": [cookie],
        "headers": headers,
        "requestContext": {
            "domainName": host,
            "http": {"method": "POST", "path": "/api/v1/users/login", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
            "requestId": "fuzz",
            "stage": "$default",
        },
        "isBase64Encoded": selector & 0x80 != 0,
        "body": body,
    });
    let Ok(req) = request_from_event(&event.to_string()) else {
        return;
    };
    let _ = cookie_value(&req, "refreshToken");
    match read_fields(&req, 16 * 1024) {
        Ok(mut fields) => {
            for name in ["username", "email", "password", "refreshToken"] {
                let _ = take_string(&mut fields, name);
            }
        }
        Err(e) => assert!(
            [400, 413, 415].contains(&e.status().as_u16()),
            "unexpected status {} for {e:?}",
            e.status()
        ),
    }
});
