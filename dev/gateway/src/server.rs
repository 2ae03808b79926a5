//! The HTTP side: accepts connections on loopback, reads each request (body at most
//! [`crate::MAX_BODY_BYTES`]), routes it, builds its event, invokes the function and answers.
//!
//! Nothing here panics on what a client sends: every request yields a response or a closed
//! connection. API Gateway's own answers are JSON `{"message": ...}` with the status it uses:
//! 404 for an unmatched route, 413 for a body over 10 MB, 500 for a function error or a
//! malformed or missing answer, 503 for an integration timeout. Every response carries
//! `apigw-requestid`, the event's `requestContext.requestId`.
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, StatusCode, Version, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::{
    event,
    invoke::{Outcome, Runtime},
    reply::{self, Reply},
    routes::Routes,
};

/// How long a client may take to send its headers, and then its body.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an oversized body is read (and dropped) before the 413, so that the client,
/// still sending, reads the answer instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

pub struct Gateway {
    routes: Routes,
    runtime: Runtime,
    max_body: usize,
}

enum BodyError {
    TooLarge,
    Broken,
}

impl Gateway {
    pub fn new(routes: Routes, runtime: Runtime, max_body: usize) -> Self {
        Self {
            routes,
            runtime,
            max_body,
        }
    }

    /// Answers one request that arrived over a connection from `peer` to `local`.
    pub async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = event::request_id();
        let (parts, body) = req.into_parts();
        let method = parts.method.as_str();
        let path = parts.uri.path();
        let source = event::source_ip(peer);
        let log = |status: StatusCode, function: &str, note: &str| {
            eprintln!(
                "[gateway] {source} \"{method} {path}\" -> {function} {} {}ms{}{note}",
                status.as_u16(),
                started.elapsed().as_millis(),
                if note.is_empty() { "" } else { ": " },
            );
        };

        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = match read_body(body, self.max_body, declared).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let status = StatusCode::PAYLOAD_TOO_LARGE;
                log(status, "-", "request body over 10 MB");
                let mut resp = gateway_answer(status, "Request Entity Too Large", &request_id);
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
            Err(BodyError::Broken) => {
                let status = StatusCode::BAD_REQUEST;
                log(status, "-", "the request body broke off or came too slowly");
                return gateway_answer(status, "Bad Request", &request_id);
            }
        };

        let Some(matched) = self.routes.find(method, path) else {
            let status = StatusCode::NOT_FOUND;
            log(status, "-", "no route");
            return gateway_answer(status, "Not Found", &request_id);
        };

        let protocol = match parts.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        };
        let request = event::Request {
            method,
            raw_path: path,
            raw_query: parts.uri.query().unwrap_or(""),
            protocol,
            headers: &parts.headers,
            body: &body,
            peer,
            local_port: local.port(),
        };
        let event = event::build(
            &request,
            &matched.route_key,
            &request_id,
            time::OffsetDateTime::now_utc(),
        );
        let Ok(event) = serde_json::to_vec(&event) else {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            log(status, matched.function, "the event did not serialise");
            return gateway_answer(status, "Internal Server Error", &request_id);
        };

        let (status, message, note) = match self.runtime.invoke(matched.function, event).await {
            Outcome::Answered {
                status,
                headers,
                body,
            } => match reply::from_invocation(status, &headers, &body) {
                Ok(reply) => {
                    log(reply.status, matched.function, "");
                    return answer(reply, &request_id);
                }
                Err(failure) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    failure.to_string(),
                ),
            },
            Outcome::TimedOut => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                format!(
                    "integration timeout ({:?}; under cargo lambda watch the first call to a \
                     function builds it: retry once it is built)",
                    self.runtime.timeout()
                ),
            ),
            Outcome::Unreachable(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                format!("the runtime did not answer: {e}"),
            ),
        };
        log(status, matched.function, &note);
        gateway_answer(status, message, &request_id)
    }
}

/// Accepts connections on `listener` for ever, one task per connection.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("[gateway] accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(req, peer, local).await) }
            });
            // A connection error (a client that hung up, sent garbage or was too slow) ends
            // that connection only.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn read_body(body: Incoming, max: usize, declared: Option<u64>) -> Result<Bytes, BodyError> {
    let max = max as u64;
    let read = async move {
        let mut body = body;
        let mut buf = BytesMut::new();
        let mut seen: u64 = 0;
        let mut too_large = declared.is_some_and(|n| n > max);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(data.len() as u64);
            if seen > max {
                too_large = true;
            }
            if too_large {
                buf.clear();
                if seen > DRAIN_LIMIT {
                    break;
                }
            } else {
                buf.extend_from_slice(&data);
            }
        }
        if too_large {
            Err(BodyError::TooLarge)
        } else {
            Ok(buf.freeze())
        }
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyError::Broken))
}

fn answer(reply: Reply, request_id: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(reply.body));
    *resp.status_mut() = reply.status;
    *resp.headers_mut() = reply.headers;
    if let Ok(id) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("apigw-requestid", id);
    }
    resp
}

/// One of API Gateway's own answers: `{"message": "..."}`.
fn gateway_answer(status: StatusCode, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer(
        Reply {
            status,
            headers,
            body: Bytes::from(body),
        },
        request_id,
    )
}
