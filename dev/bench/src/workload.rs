//! What the bench asks of each route: the request bodies, as in-process `Request`s and as the
//! API Gateway (HTTP API, payload 2.0) events the Lambda runtime hands a function.
//!
//! Every phase sends the same requests: a login of one seeded user by username, a refresh with
//! the newest refresh token in the `refreshToken` cookie, and a registration of a fresh user with
//! generated PNG images of an exact size. The latency phase also sends logins that fail (an
//! unknown name, [`WRONG_PASSWORD`]).
use base64::Engine as _;
use serde_json::{Value, json};
use testkit::multipart::{self, Part};

pub use testkit::PASSWORD;

pub const LOGIN_PATH: &str = "/api/v1/users/login";
pub const REFRESH_PATH: &str = "/api/v1/users/refresh-token";
pub const REGISTER_PATH: &str = "/api/v1/users/register";

pub const MIB: usize = 1024 * 1024;

/// A name no earlier run used: `prefix` plus 48 random bits, lowercase, valid as a username.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// A password no bench user has: long enough for any rule, so only the verify can refuse it.
pub const WRONG_PASSWORD: &str = "not the password of anyone here";

/// The path of current-user.
pub const CURRENT_USER_PATH: &str = "/api/v1/users/current-user";

/// An HTTP API authorizer event (payload 2.0) presenting `access_token` in the cookie.
pub fn authorizer_event(access_token: &str) -> Value {
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:bench/$default/GET/api/v1/videos",
        "routeKey": "GET /api/v1/videos",
        "rawPath": "/api/v1/videos",
        "rawQueryString": "",
        "cookies": [format!("accessToken={access_token}")],
        "headers": {"host": "127.0.0.1", "user-agent": "videotube-bench"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "http": {"method": "GET", "path": "/api/v1/videos", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "videotube-bench"},
            "requestId": hex::encode(rand::random::<[u8; 8]>()),
            "routeKey": "GET /api/v1/videos",
            "stage": "$default",
            "timeEpoch": 1_767_225_600_000u64
        }
    })
}

pub fn login_json(username: &str) -> Value {
    login_json_with(username, PASSWORD)
}

pub fn login_json_with(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// A valid PNG of exactly `bytes` bytes.
pub fn png(bytes: usize) -> Vec<u8> {
    multipart::png(64, 64, bytes)
}

/// A complete registration form: (content type, body).
pub fn register_form(username: &str, avatar: &[u8], cover: Option<&[u8]>) -> (String, Vec<u8>) {
    let mut parts = vec![
        Part::text("fullName", "Bench User"),
        Part::text("email", format!("{username}@example.com")),
        Part::text("username", username),
        Part::text("password", PASSWORD),
        Part::file("avatar", "avatar.png", "image/png", avatar.to_vec()),
    ];
    if let Some(cover) = cover {
        parts.push(Part::file(
            "coverImage",
            "cover.png",
            "image/png",
            cover.to_vec(),
        ));
    }
    (multipart::content_type(), multipart::body(&parts))
}

/// The refresh token a login or refresh answer carries in `data`.
pub fn refresh_token_of(body: &Value) -> Option<String> {
    body["data"]["refreshToken"].as_str().map(str::to_owned)
}

/// An API Gateway HTTP API event for `POST path`, as Lambda delivers it to the runtime.
pub fn event(path: &str, content_type: Option<&str>, cookies: &[String], body: &[u8]) -> Value {
    event_with("POST", path, content_type, cookies, body)
}

/// [`event`] with another method.
pub fn event_with(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    cookies: &[String],
    body: &[u8],
) -> Value {
    let mut headers = json!({"host": "127.0.0.1", "user-agent": "videotube-bench"});
    if let Some(ct) = content_type {
        headers["content-type"] = json!(ct);
    }
    // API Gateway base64-encodes bodies that are not text, multipart among them.
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) if !content_type.is_some_and(|c| c.starts_with("multipart/")) => {
            (text.to_owned(), false)
        }
        _ => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let request_id = hex::encode(rand::random::<[u8; 8]>());
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "127.0.0.1",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "videotube-bench"
            },
            "requestId": request_id,
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1_767_225_600_000u64
        },
        "isBase64Encoded": encoded,
        "body": body,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_images_have_the_exact_size_asked_for() {
        assert_eq!(png(MIB).len(), MIB);
        assert_eq!(png(2 * MIB).len(), 2 * MIB);
    }

    #[test]
    fn multipart_events_are_base64_encoded_and_json_events_are_not() {
        let (ct, body) = register_form("someone", &png(1024), None);
        let e = event(REGISTER_PATH, Some(&ct), &[], &body);
        assert_eq!(e["isBase64Encoded"], true);
        let e = event(LOGIN_PATH, Some("application/json"), &[], b"{}");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["body"], "{}");
        let e = event(REFRESH_PATH, None, &["refreshToken=x".into()], b"");
        assert_eq!(e["cookies"][0], "refreshToken=x");
    }
}
