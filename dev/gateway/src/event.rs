//! The payload format 2.0 request event, as API Gateway HTTP API builds it:
//!
//! - `version` `"2.0"`, `routeKey` (`POST /api/v1/users/login`), `rawPath` and `rawQueryString`
//!   exactly as received (still percent-encoded), `queryStringParameters` decoded, repeated keys
//!   joined with `,` (absent when there is no query string);
//! - `cookies`: the pairs of every `Cookie` header, which is then left out of `headers` (absent
//!   when there is none);
//! - `headers`: names in lower case, repeated headers joined with `,`, plus what API Gateway adds:
//!   `x-forwarded-for` (the client's value, if any, then the peer address), `x-forwarded-proto`,
//!   `x-forwarded-port` and `x-amzn-trace-id`;
//! - `requestContext`: `accountId`, `apiId`, `domainName` (the `Host`, without port) and
//!   `domainPrefix` (its first label), `http` {`method`, `path`, `protocol`, `sourceIp`,
//!   `userAgent`}, `requestId`, `routeKey`, `stage` `"$default"`, `time`
//!   (`02/Dec/2026:16:25:32 +0000`), `timeEpoch` (milliseconds);
//! - `body` (absent when empty) and `isBase64Encoded`: text for JSON, `text/*`, XML and
//!   urlencoded bodies that are valid UTF-8, base64 for everything else (multipart, binary, no
//!   content type).
//!
//! `sourceIp` is the TCP peer address of the connection and nothing else: no header can set it.
//! `pathParameters` and `stageVariables` are absent (the routes have no parameters, the stage
//! none).
use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value, json};

/// What the event is built from: the request as it arrived, and where it came from.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as received, percent-encoding kept.
    pub raw_path: &'a str,
    /// The query string as received, without `?`; empty when there is none.
    pub raw_query: &'a str,
    /// `HTTP/1.1`, `HTTP/1.0`.
    pub protocol: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The TCP peer address of the connection.
    pub peer: SocketAddr,
    /// The port the connection was accepted on.
    pub local_port: u16,
}

/// The account and API ids of the local API.
pub const ACCOUNT_ID: &str = "000000000000";
pub const API_ID: &str = "local";

/// The address API Gateway would record for a connection from `peer`: IPv4-mapped IPv6 shown as
/// IPv4.
pub fn source_ip(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// The payload 2.0 event for `req`, routed as `route_key`.
pub fn build(
    req: &Request<'_>,
    route_key: &str,
    request_id: &str,
    now: time::OffsetDateTime,
) -> Value {
    let source = source_ip(req.peer).to_string();
    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for name in req.headers.keys() {
        let values: Vec<String> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == http::header::COOKIE {
            for v in &values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.to_owned())),
                );
            }
        } else {
            headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
        }
    }
    let forwarded = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(client) if !client.trim().is_empty() => format!("{client}, {source}"),
        _ => source.clone(),
    };
    headers.insert("x-forwarded-for".into(), forwarded.into());
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("x-forwarded-port".into(), req.local_port.to_string().into());
    if !headers.contains_key("x-amzn-trace-id") {
        headers.insert("x-amzn-trace-id".into(), trace_id(now).into());
    }

    let user_agent = headers
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let domain = headers
        .get("host")
        .and_then(Value::as_str)
        .map(domain_of)
        .filter(|d| !d.is_empty())
        .unwrap_or("localhost")
        .to_owned();
    let prefix = domain.split('.').next().unwrap_or("").to_owned();

    let epoch_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.raw_path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": prefix,
            "http": {
                "method": req.method,
                "path": req.raw_path,
                "protocol": req.protocol,
                "sourceIp": source,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": request_time(now),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": false,
    });
    let Some(obj) = event.as_object_mut() else {
        return event;
    };
    if !cookies.is_empty() {
        obj.insert("cookies".into(), Value::Array(cookies));
    }
    if !req.raw_query.is_empty() {
        obj.insert(
            "queryStringParameters".into(),
            query_parameters(req.raw_query),
        );
    }
    if !req.body.is_empty() {
        let content_type = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let text = is_text(content_type.as_deref())
            .then(|| std::str::from_utf8(req.body).ok())
            .flatten();
        match text {
            Some(text) => {
                obj.insert("body".into(), text.into());
            }
            None => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(req.body);
                obj.insert("body".into(), encoded.into());
                obj.insert("isBase64Encoded".into(), true.into());
            }
        }
    }
    event
}

/// Whether a body of this content type is passed as text: JSON, `text/*`, XML, urlencoded forms
/// and JavaScript; everything else (multipart, images, octet streams, none) is base64.
pub fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = media.split_once('/') else {
        return false;
    };
    match kind {
        "text" => !sub.is_empty(),
        "application" => {
            matches!(
                sub,
                "json" | "xml" | "x-www-form-urlencoded" | "javascript" | "x-javascript"
            ) || sub.ends_with("+json")
                || sub.ends_with("+xml")
        }
        _ => false,
    }
}

/// `queryStringParameters`: decoded keys and values, repeated keys joined with `,`.
fn query_parameters(raw: &str) -> Value {
    let mut params = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match params.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    Value::Object(params)
}

/// The host of a `Host` header value, without its port; the value itself when it is not
/// `host:port` (it is the client's text and may be anything).
pub fn domain_of(host: &str) -> &str {
    let host = host.trim();
    if host.starts_with('[') {
        // "[::1]:9000" -> "[::1]"
        return match host.find(']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

/// `requestContext.time`: `02/Dec/2026:16:25:32 +0000`.
pub fn request_time(now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A fresh request id (a UUID, as the brief of this stand-in asks; API Gateway's own ids are
/// shorter opaque strings).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `Root=1-{epoch seconds, hex}-{24 random hex digits}`, the X-Ray trace header API Gateway adds.
fn trace_id(now: time::OffsetDateTime) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{}",
        now.unix_timestamp(),
        random.get(..24).unwrap_or(&random)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_bytes(v).expect("value"),
            );
        }
        h
    }

    fn event(h: &HeaderMap, query: &str, body: &[u8], peer: &str) -> Value {
        let req = Request {
            method: "POST",
            raw_path: "/api/v1/users/login",
            raw_query: query,
            protocol: "HTTP/1.1",
            headers: h,
            body,
            peer: peer.parse().expect("peer"),
            local_port: 9000,
        };
        let now = time::macros::datetime!(2026-12-02 16:25:32.123 UTC);
        build(&req, "POST /api/v1/users/login", "rid", now)
    }

    #[test]
    fn the_shape_of_an_event() {
        let h = headers(&[
            ("host", b"127.0.0.1:9000"),
            ("user-agent", b"curl/8"),
            ("content-type", b"application/json"),
            ("cookie", b"a=1; b=2"),
            ("cookie", b"c=3"),
            ("accept", b"text/html"),
            ("accept", b"application/json"),
        ]);
        let e = event(&h, "x=1&x=2&y=%20z", b"{\"k\":1}", "127.0.0.2:5555");
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "POST /api/v1/users/login");
        assert_eq!(e["rawQueryString"], "x=1&x=2&y=%20z");
        assert_eq!(e["queryStringParameters"], json!({"x": "1,2", "y": " z"}));
        assert_eq!(e["cookies"], json!(["a=1", "b=2", "c=3"]));
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["headers"]["accept"], "text/html,application/json");
        assert_eq!(e["headers"]["x-forwarded-for"], "127.0.0.2");
        assert_eq!(e["body"], "{\"k\":1}");
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("pathParameters").is_none());
        let ctx = &e["requestContext"];
        assert_eq!(ctx["http"]["sourceIp"], "127.0.0.2");
        assert_eq!(ctx["http"]["userAgent"], "curl/8");
        assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
        assert_eq!(ctx["http"]["path"], "/api/v1/users/login");
        assert_eq!(ctx["domainName"], "127.0.0.1");
        assert_eq!(ctx["domainPrefix"], "127");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["time"], "02/Dec/2026:16:25:32 +0000");
        assert_eq!(ctx["timeEpoch"], 1_796_228_732_123_i64);
        assert_eq!(ctx["requestId"], "rid");
    }

    #[test]
    fn no_query_no_cookies_no_body() {
        let e = event(&HeaderMap::new(), "", b"", "[::ffff:127.0.0.9]:1");
        for absent in ["queryStringParameters", "cookies", "body"] {
            assert!(e.get(absent).is_none(), "{absent}");
        }
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.9");
        assert_eq!(e["requestContext"]["http"]["userAgent"], "");
        assert_eq!(e["requestContext"]["domainName"], "localhost");
    }

    #[test]
    fn headers_never_set_the_source() {
        let h = headers(&[
            ("x-forwarded-for", b"203.0.113.9"),
            ("x-real-ip", b"203.0.113.10"),
            ("forwarded", b"for=203.0.113.11"),
        ]);
        let e = event(&h, "", b"", "[::1]:4000");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "::1");
        assert_eq!(e["headers"]["x-forwarded-for"], "203.0.113.9, ::1");
    }

    #[test]
    fn bodies_text_or_base64() {
        let bytes: Vec<u8> = (0..=255).collect();
        let h = headers(&[("content-type", b"application/octet-stream")]);
        let e = event(&h, "", &bytes, "127.0.0.1:1");
        assert_eq!(e["isBase64Encoded"], true);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().expect("body"))
            .expect("base64");
        assert_eq!(decoded, bytes);
        // Labelled JSON but not UTF-8: base64, so no byte is lost.
        let h = headers(&[("content-type", b"application/json")]);
        assert_eq!(
            event(&h, "", b"\xff\xfe", "127.0.0.1:1")["isBase64Encoded"],
            true
        );

        for text in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "text/plain",
            "text/html; charset=latin1",
            "application/x-www-form-urlencoded",
            "application/xml",
            "application/problem+json",
            "image/svg+xml",
        ] {
            assert_eq!(is_text(Some(text)), text != "image/svg+xml", "{text}");
        }
        for binary in [
            "multipart/form-data; boundary=x",
            "image/png",
            "application/octet-stream",
            "",
            "json",
            "text/",
        ] {
            assert!(!is_text(Some(binary)), "{binary}");
        }
        assert!(!is_text(None));
    }

    #[test]
    fn hostile_host_headers() {
        assert_eq!(domain_of("api.example.com:443"), "api.example.com");
        assert_eq!(domain_of("[::1]:9000"), "[::1]");
        assert_eq!(domain_of("[::1"), "[::1");
        assert_eq!(domain_of("a:b:c"), "a:b:c");
        assert_eq!(domain_of("a b"), "a b");
        assert_eq!(domain_of("x:notaport"), "x:notaport");
        assert_eq!(domain_of("x:"), "x:");
        assert_eq!(domain_of(""), "");
        let h = headers(&[("host", b"\xff\xfe:1")]);
        let e = event(&h, "", b"", "127.0.0.1:1");
        assert!(e["requestContext"]["domainName"].is_string());
    }
}
