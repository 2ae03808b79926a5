//! The HTTP edge: the JSON envelope, cookies, body reading, and the wrapper every handler runs in.
//!
//! A handler is an `async fn(&App, Request) -> Result<Reply, ApiError>`. [`respond`] runs it,
//! catches panics, turns the outcome into the Node-compatible envelope (always JSON, `statusCode`
//! equal to the HTTP status), and writes one log line per request; that, and the envelope, is this
//! file. [`serve`] plugs it into the Lambda runtime, after repairing what in an event would make
//! lambda_http panic while converting it: bodies marked base64 that do not decode, and a Host,
//! X-Forwarded-Proto, path or query that do not form a URL (`http/event.rs`). Reading the request's
//! body, fields and cookies is `http/body.rs`. Callers use the re-exports here
//! (`shared::http::read_fields`), never those private modules.
mod body;
mod event;

use std::{panic::AssertUnwindSafe, time::Instant};

use futures::FutureExt as _;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext};
use serde::Serialize;
use serde_json::{Value, json};

pub use body::{body_bytes, content_type, cookie_value, read_fields, take_string};
pub use event::{request_from_event, serve};

use crate::{
    error::{ApiError, RETRY_AFTER_SECS, chain},
    timing,
};
use event::BAD_BASE64_MARKER;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A POST to `/x` with this content type and body; the body tests use it too.
    pub(super) fn post(ct: Option<&str>, body: &str) -> Request {
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
}
