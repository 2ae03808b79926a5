//! The HTTP edge: the JSON envelope, cookies, body reading, and the wrapper every handler runs in.
//!
//! A handler is an `async fn(&App, Request) -> Result<Reply, ApiError>`. [`respond`] runs it,
//! catches panics, turns the outcome into the Node-compatible envelope (always JSON, `statusCode`
//! equal to the HTTP status), and writes one log line per request. [`serve`] plugs it into the
//! Lambda runtime, after repairing what in an event would make lambda_http panic while converting
//! it: bodies marked base64 that do not decode, and a Host, X-Forwarded-Proto, path or query that
//! do not form a URL (see [`sanitize_event`]).
use std::{convert::Infallible, panic::AssertUnwindSafe, time::Instant};

use base64::Engine as _;
use futures::FutureExt as _;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{
    Body, LambdaEvent, Request, RequestExt, Response, Service,
    aws_lambda_events::apigw::ApiGatewayV2httpRequest, request::LambdaRequest,
    request::RequestContext,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    error::{ApiError, RETRY_AFTER_SECS, chain},
    timing,
};

/// A successful outcome: status, `data`, `message` and the cookies to set.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub data: Value,
    pub message: String,
    pub cookies: Vec<cookie::Cookie<'static>>,
}

impl Reply {
    pub fn new(status: StatusCode, data: impl Serialize, message: impl Into<String>) -> Self {
        Self {
            status,
            // Serialising our own plain structs cannot fail; Null is a safe fallback regardless.
            data: serde_json::to_value(data).unwrap_or(Value::Null),
            message: message.into(),
            cookies: Vec::new(),
        }
    }

    pub fn with_cookie(mut self, c: cookie::Cookie<'static>) -> Self {
        self.cookies.push(c);
        self
    }
}

/// Header set by [`serve`] on events whose base64 body did not decode; stripped from client input.
const BAD_BASE64_MARKER: &str = "x-videotube-internal-bad-base64";

/// Runs one request through `handler` and renders the envelope. Never panics, never fails.
pub async fn respond<F>(
    route: &'static str,
    req: Request,
    handler: impl FnOnce(Request) -> F,
) -> Response<Body>
where
    F: Future<Output = Result<Reply, ApiError>>,
{
    let started = Instant::now();
    let request_id = request_id(&req);
    // "PATCH /api/v1/users/avatar": the route names its one method.
    let method = route.split_once(' ').map_or("POST", |(m, _)| m);
    let (outcome, spent) = timing::scope(async {
        if req.headers().contains_key(BAD_BASE64_MARKER) {
            Err(ApiError::BadRequest(
                "Request body is not valid base64".into(),
            ))
        } else if req.method().as_str() != method {
            Err(ApiError::MethodNotAllowed(method))
        } else {
            match AssertUnwindSafe(handler(req)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(ApiError::internal(format!("handler panicked: {what}")))
                }
            }
        }
    })
    .await;
    let response = match &outcome {
        Ok(reply) => success_response(reply),
        Err(e) => error_response(e, &request_id),
    };
    let status = response.status().as_u16();
    let latency_ms = timing::ms(started.elapsed());
    let (db_ms, password_ms, cloudinary_ms) = (
        timing::ms(spent.database),
        timing::ms(spent.password),
        timing::ms(spent.cloudinary),
    );
    match &outcome {
        Err(e) if e.is_server_side() => tracing::error!(
            route, status, latency_ms, db_ms, password_ms, cloudinary_ms, request_id,
            error = %chain(e), "request failed"
        ),
        Err(e) => tracing::info!(
            route, status, latency_ms, db_ms, password_ms, cloudinary_ms, request_id,
            reason = %e, "request rejected"
        ),
        Ok(_) => tracing::info!(
            route,
            status,
            latency_ms,
            db_ms,
            password_ms,
            cloudinary_ms,
            request_id,
            "request served"
        ),
    }
    response
}

fn request_id(req: &Request) -> String {
    if let Some(ctx) = req.lambda_context_ref()
        && !ctx.request_id.is_empty()
    {
        return ctx.request_id.clone();
    }
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(id) = &ctx.request_id
    {
        return id.clone();
    }
    hex::encode(rand::random::<[u8; 12]>())
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn success_response(reply: &Reply) -> Response<Body> {
    let body = json!({
        "statusCode": reply.status.as_u16(),
        "data": reply.data,
        "message": reply.message,
        "success": true,
    });
    let mut response = json_response(reply.status, &body);
    for c in &reply.cookies {
        // Cookie values are our own base64url tokens, so the rendered header is always valid.
        if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The error envelope. The single place where an [`ApiError`] becomes what a client sees.
pub fn error_response(e: &ApiError, request_id: &str) -> Response<Body> {
    let status = e.status();
    let body = json!({
        "statusCode": status.as_u16(),
        "data": Value::Null,
        "message": e.public_message(),
        "success": false,
        "errors": e.field_errors(),
        "requestId": request_id,
    });
    let mut response = json_response(status, &body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    if let ApiError::Throttled { retry_after_secs } = e {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    if let ApiError::MethodNotAllowed(method) = e {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(method));
    }
    response
}

/// Starts the Lambda runtime with `handler`. Used by every function's `main`.
pub async fn serve<'a, S>(handler: S) -> Result<(), lambda_http::Error>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'a,
{
    lambda_runtime::run(RejectUndecodableBase64(lambda_http::Adapter::from(handler))).await
}

/// Repairs events before lambda_http converts them (see [`sanitize_event`]): without it, a body
/// flagged base64 that is not, or a hostile Host header, would be a panic and a bare 500.
struct RejectUndecodableBase64<S>(S);

impl<S> Service<LambdaEvent<LambdaRequest>> for RejectUndecodableBase64<S>
where
    S: Service<LambdaEvent<LambdaRequest>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut event: LambdaEvent<LambdaRequest>) -> Self::Future {
        sanitize_event(&mut event.payload);
        self.0.call(event)
    }
}

/// Repairs, in place, every part of an event that lambda_http's conversion to a `Request` would
/// panic on (it unwraps `Url::parse` of scheme, host and path, and the final URI), so a hostile
/// header can never turn into a bare, non-JSON 500 that names the panic. None of these parts
/// matters to our handlers; they are dropped, not guessed. Also marks undecodable base64 bodies.
fn sanitize_event(event: &mut LambdaRequest) {
    #[allow(irrefutable_let_patterns)] // one variant with our feature set; the enum may grow
    if let LambdaRequest::ApiGatewayV2(req) = event {
        let proto_is_valid = req
            .headers
            .get(FORWARDED_PROTO)
            .map(|v| v.as_bytes())
            .is_none_or(|v| v.eq_ignore_ascii_case(b"https") || v.eq_ignore_ascii_case(b"http"));
        if !proto_is_valid {
            req.headers.remove(FORWARDED_PROTO);
        }
        let scheme = req
            .headers
            .get(FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("https")
            .to_owned();
        let path = match req.request_context.stage.as_deref() {
            Some(stage) if stage != "$default" => {
                let raw = req.raw_path.as_deref().unwrap_or_default();
                if raw.starts_with(&format!("/{stage}/")) {
                    raw.to_owned()
                } else {
                    format!("/{stage}{raw}")
                }
            }
            _ => req.raw_path.clone().unwrap_or_default(),
        };
        let header_host = req
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if header_host.is_some() && url_for(&scheme, header_host.as_deref(), &path).is_none() {
            req.headers.remove(header::HOST);
        }
        let host_from_header = req
            .headers
            .get(header::HOST)
            .is_some_and(|v| v.to_str().is_ok());
        if !host_from_header
            && req.request_context.domain_name.is_some()
            && url_for(&scheme, req.request_context.domain_name.as_deref(), &path).is_none()
        {
            req.request_context.domain_name = None;
        }
        let host = if host_from_header {
            header_host
        } else {
            req.request_context.domain_name.clone()
        };
        match url_for(&scheme, host.as_deref(), &path) {
            Some(mut uri) => {
                if let Some(query) = req.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
                    uri.push('?');
                    uri.push_str(query);
                    if http::Uri::try_from(uri).is_err() {
                        req.raw_query_string = None;
                    }
                }
            }
            // Only a path that is no URL path at all gets here (API Gateway always sends one).
            None => {
                req.raw_path = None;
                req.raw_query_string = None;
            }
        }
        mark_undecodable_base64(req);
    }
}

const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The URL lambda_http builds from these parts, or `None` where it would panic.
fn url_for(scheme: &str, host: Option<&str>, path: &str) -> Option<String> {
    let url = match host {
        None => url::Url::parse(&format!("http://localhost{path}"))
            .ok()?
            .path()
            .to_owned(),
        Some(host) => url::Url::parse(&format!("{scheme}://{host}{path}"))
            .ok()?
            .to_string(),
    };
    http::Uri::try_from(url.as_str()).ok().map(|_| url)
}

/// Marks (instead of passing on) a body that is flagged base64 but does not decode, because
/// lambda_http's conversion panics on it; [`respond`] answers such a request with a 400.
fn mark_undecodable_base64(req: &mut ApiGatewayV2httpRequest) {
    req.headers.remove(BAD_BASE64_MARKER);
    let undecodable = req.is_base64_encoded
        && req
            .body
            .as_deref()
            .is_some_and(|b| base64::engine::general_purpose::STANDARD.decode(b).is_err());
    if undecodable {
        req.body = None;
        req.is_base64_encoded = false;
        req.headers
            .insert(BAD_BASE64_MARKER, HeaderValue::from_static("1"));
    }
}

/// Turns an API Gateway HTTP API (v2) event, as JSON, into the `Request` a handler receives,
/// exactly as [`serve`] does at run time. Used to replay the files in `events/`.
pub fn request_from_event(json: &str) -> Result<Request, serde_json::Error> {
    let mut event: LambdaRequest = serde_json::from_str(json)?;
    sanitize_event(&mut event);
    Ok(Request::from(event))
}

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

/// The value of one request cookie, if present.
pub fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(ct: Option<&str>, body: &str) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/x");
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        b.body(Body::Text(body.to_owned())).expect("request")
    }

    #[tokio::test]
    async fn the_error_envelope_carries_status_message_errors_and_request_id() {
        let req = post(None, "");
        let resp = respond("t", req, |_| async {
            Err(ApiError::validation("email", "Email is invalid"))
        })
        .await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let Body::Text(text) = resp.body() else {
            panic!("text body")
        };
        let v: Value = serde_json::from_str(text).expect("json");
        assert_eq!(v["statusCode"], 400);
        assert_eq!(v["success"], false);
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["errors"][0]["field"], "email");
        assert!(v["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_json_500_without_detail() {
        let resp = respond("t", post(None, ""), |_| async { panic!("secret detail") }).await;
        assert_eq!(resp.status(), 500);
        let Body::Text(text) = resp.body() else {
            panic!("text body")
        };
        assert!(!text.contains("secret detail"));
        assert!(text.contains("\"statusCode\":500"));
    }

    #[tokio::test]
    async fn non_post_methods_are_405_in_the_envelope() {
        let req = http::Request::builder()
            .method("GET")
            .uri("/x")
            .body(Body::Empty)
            .expect("req");
        let resp = respond("t", req, |_| async {
            Ok(Reply::new(StatusCode::OK, (), "ok"))
        })
        .await;
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "POST");
    }

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

    fn event_with(host: &str, proto: &str, domain: &str, path: &str, query: &str) -> String {
        json!({
            "version": "2.0",
            "routeKey": "POST /api/v1/users/login",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {"host": host, "x-forwarded-proto": proto, "content-type": "application/json"},
            "requestContext": {
                "domainName": domain,
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
                "requestId": "r-1",
                "stage": "$default",
            },
            "isBase64Encoded": false,
            "body": "{}",
        })
        .to_string()
    }

    #[test]
    fn hostile_host_proto_path_or_query_never_make_the_event_conversion_panic() {
        let cases = [
            ("a b", "https", "api.example.com", "/x", ""),
            ("a:notaport", "https", "api.example.com", "/x", ""),
            ("[::1", "https", "api.example.com", "/x", ""),
            ("api.example.com", "ht tp", "api.example.com", "/x", ""),
            ("api.example.com", "", "api.example.com", "/x", ""),
            ("a b", "https", "c d", "/x", ""),
            ("a b", "https", "c d", ":99999", "q=\"{}\" x"),
            (
                "api.example.com",
                "https",
                "api.example.com",
                "/x",
                "a=\"b c\"&{}",
            ),
        ];
        for (host, proto, domain, path, query) in cases {
            let json = event_with(host, proto, domain, path, query);
            let req = std::panic::catch_unwind(|| request_from_event(&json))
                .unwrap_or_else(|_| panic!("conversion panicked for {json}"))
                .expect("event parses");
            assert_eq!(req.method(), http::Method::POST);
        }
        let good = request_from_event(&event_with(
            "api.example.com",
            "https",
            "api.example.com",
            "/api/v1/users/login",
            "a=1",
        ))
        .expect("event parses");
        assert_eq!(
            good.uri().to_string(),
            "https://api.example.com/api/v1/users/login?a=1",
            "valid parts are kept as they are"
        );
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
    }
}
