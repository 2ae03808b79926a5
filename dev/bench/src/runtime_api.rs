//! A local Lambda Runtime API emulator, just enough of `/2018-06-01/runtime/...` to start a
//! function binary, note the moment it first asks for work, and hand it real invocations.
//!
//! One [`Emulator`] serves one function process on its own loopback port, so every arrival and
//! answer belongs to that process. `GET invocation/next` records its arrival time and then waits
//! for an event queued with [`Emulator::invoke`] (holding the request open until one comes, as
//! Lambda does between invocations); the function's `response`, `error` and `init/error` posts
//! come back as [`Outcome`]s. Dropping the emulator closes its port and every connection.
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    sync::{Mutex, mpsc},
    task::{JoinHandle, JoinSet},
};

const PREFIX: &str = "/2018-06-01/runtime/";
/// The deadline each invocation carries; generous, the bench bounds its own waits.
const INVOCATION_BUDGET: Duration = Duration::from_secs(30);

/// What the function posted back.
#[derive(Debug)]
pub enum Outcome {
    Response { id: String, body: Bytes },
    Error { id: String, body: Bytes },
    InitError { body: Bytes },
}

struct Invocation {
    id: String,
    payload: Bytes,
}

struct Shared {
    function_arn: String,
    arrivals: mpsc::UnboundedSender<Instant>,
    events: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

pub struct Emulator {
    addr: SocketAddr,
    arrivals: mpsc::UnboundedReceiver<Instant>,
    events: mpsc::UnboundedSender<Invocation>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    server: JoinHandle<()>,
    invoked: u64,
}

impl Emulator {
    /// Listens on a fresh loopback port.
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            arrivals: arrivals_tx,
            events: Mutex::new(events_rx),
            outcomes: outcomes_tx,
        });
        let server = tokio::spawn(serve(listener, shared));
        Ok(Self {
            addr,
            arrivals,
            events,
            outcomes,
            server,
            invoked: 0,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// When the next `GET invocation/next` arrived, waiting at most `limit` for it.
    pub async fn next_request(&mut self, limit: Duration) -> Option<Instant> {
        tokio::time::timeout(limit, self.arrivals.recv())
            .await
            .ok()
            .flatten()
    }

    /// Queues one invocation with `payload` as the event; returns its request id.
    pub fn invoke(&mut self, payload: Vec<u8>) -> String {
        self.invoked += 1;
        let id = format!(
            "bench-{:08}-{}",
            self.invoked,
            hex::encode(rand::random::<[u8; 6]>())
        );
        // The receiver lives as long as the server task, which lives as long as `self`.
        let _ = self.events.send(Invocation {
            id: id.clone(),
            payload: Bytes::from(payload),
        });
        id
    }

    /// The next thing the function posted, waiting at most `limit`.
    pub async fn outcome(&mut self, limit: Duration) -> Option<Outcome> {
        tokio::time::timeout(limit, self.outcomes.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| route(shared.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let Some(path) = req.uri().path().strip_prefix(PREFIX).map(str::to_owned) else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    if req.method() == Method::GET && path == "invocation/next" {
        let _ = shared.arrivals.send(arrived);
        let next = shared.events.lock().await.recv().await;
        return Ok(match next {
            Some(invocation) => event_response(&shared, invocation),
            None => status(StatusCode::GONE),
        });
    }
    if req.method() != Method::POST {
        return Ok(status(StatusCode::NOT_FOUND));
    }
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let outcome = if path == "init/error" {
        Outcome::InitError { body }
    } else if let Some(rest) = path.strip_prefix("invocation/") {
        if let Some(id) = rest.strip_suffix("/response") {
            Outcome::Response {
                id: id.to_owned(),
                body,
            }
        } else if let Some(id) = rest.strip_suffix("/error") {
            Outcome::Error {
                id: id.to_owned(),
                body,
            }
        } else {
            return Ok(status(StatusCode::NOT_FOUND));
        }
    } else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let _ = shared.outcomes.send(outcome);
    Ok(status(StatusCode::ACCEPTED))
}

fn event_response(shared: &Shared, invocation: Invocation) -> Response<Full<Bytes>> {
    let deadline = SystemTime::now() + INVOCATION_BUDGET;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let built = Response::builder()
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &invocation.id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", &shared.function_arn)
        .header(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Sampled=0",
        )
        .body(Full::new(invocation.payload));
    built.unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
    *r.status_mut() = code;
    r
}
