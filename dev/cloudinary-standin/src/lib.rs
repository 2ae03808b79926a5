//! A Cloudinary-compatible stand-in server for local development and tests.
//!
//! It answers the upload API as clients use it (signed `image/upload` and `image/destroy`),
//! serves delivery URLs, and has a control API under `/__standin` for fault injection, asset
//! listing and call counts. Every cloud name is accepted and all state is namespaced by cloud name, so tests run
//! in parallel by each using a cloud of their own. Never for production: nothing is persisted.
//!
//! Run it in-process with [`spawn`], or with [`serve`] on a listener of your own.

mod api;
mod control;
mod delivery;
mod error;
mod image;
mod params;
pub mod signature;
mod state;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use signature::{Algo, sign, string_to_sign};

/// Largest request body accepted (an upload is at most about three quarters of it as a data URI).
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Server configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The only API key accepted.
    pub api_key: String,
    /// Secret that signatures are checked with.
    pub api_secret: String,
    /// Keep uploaded bytes as files here instead of in memory (the index is always in memory).
    pub storage_dir: Option<PathBuf>,
}

/// The `http://HOST:PORT` base URL for a bound address (a wildcard address becomes loopback).
pub fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The stand-in's routes; `base_url` is where delivery URLs point.
pub fn router(settings: Settings, base_url: String) -> Router {
    let state = Arc::new(state::AppState::new(settings, base_url));
    Router::new()
        .route("/v1_1/{cloud}/image/upload", post(api::upload))
        .route("/v1_1/{cloud}/image/destroy", post(api::destroy))
        .route("/{cloud}/image/upload/{*path}", get(delivery::deliver))
        .route("/__standin/health", get(control::health))
        .route(
            "/__standin/{cloud}/fault",
            post(control::set_fault).get(control::get_fault),
        )
        .route("/__standin/{cloud}/assets", get(control::list_assets))
        .route("/__standin/{cloud}/calls", get(control::calls))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Resource not found") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: TcpListener, settings: Settings) -> io::Result<()> {
    serve_with_shutdown(listener, settings, std::future::pending()).await
}

/// Serves on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Some(dir) = &settings.storage_dir {
        tokio::fs::create_dir_all(dir).await?;
    }
    let base_url = base_url(listener.local_addr()?);
    axum::serve(listener, router(settings, base_url))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts a server on a free loopback port in the current Tokio runtime; returns its address.
///
/// The server runs until the runtime shuts down (for a `#[tokio::test]`, the end of the test).
pub async fn spawn(settings: Settings) -> io::Result<SocketAddr> {
    if let Some(dir) = &settings.storage_dir {
        tokio::fs::create_dir_all(dir).await?;
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(err) = serve(listener, settings).await {
            eprintln!("cloudinary-standin: server stopped: {err}");
        }
    });
    Ok(addr)
}
