//! Repairing API Gateway events before lambda_http turns them into a `Request`.
//!
//! lambda_http's conversion unwraps `Url::parse` of scheme, host and path, the final URI, and the
//! base64 decoding of a body flagged as base64: a hostile header or body would be a panic and a
//! bare, non-JSON 500. [`serve`] runs [`sanitize_event`] on every event first, and
//! [`request_from_event`] does the same for the event files tests replay, so both see exactly
//! what production sees. An undecodable body is marked with a header that
//! [`respond`](super::respond) answers with a 400.
use std::convert::Infallible;

use base64::Engine as _;
use http::{HeaderValue, header};
use lambda_http::{
    Body, LambdaEvent, Request, Response, Service,
    aws_lambda_events::apigw::ApiGatewayV2httpRequest, request::LambdaRequest,
};

/// Header set by [`serve`] on events whose base64 body did not decode; stripped from client input.
pub(super) const BAD_BASE64_MARKER: &str = "x-videotube-internal-bad-base64";

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
/// lambda_http's conversion panics on it; [`respond`](super::respond) answers such a request with a 400.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
}
