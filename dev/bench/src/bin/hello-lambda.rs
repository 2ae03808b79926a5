//! The cold-start baseline: the smallest `lambda_http` function there is (the cargo-lambda
//! template: default tracing subscriber, one handler that answers "hello"). `make bench` builds it
//! with the workspace's release profile and starts it beside the real functions, so their
//! cold-start figures read as multiples of what any Rust `lambda_http` function pays.
use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
