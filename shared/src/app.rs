//! The state a function builds once per cold start and lends to every request.
//!
//! Everything expensive lives here: the validated configuration, the database client, the token
//! keys and the HTTP client for Cloudinary. [`run`] is the whole of a function's `main`.
use std::{future::Future, time::Instant};

use lambda_http::{Body, Request, Response, service_fn};

use crate::{
    config::{Config, ConfigError, Needs},
    error::ApiError,
    media::Media,
    schema,
    store::Store,
    throttle::Throttle,
    tokens::TokenKeys,
};

pub struct App {
    pub config: Config,
    store: Store,
    pub tokens: TokenKeys,
    /// Only in functions that handle images (`Needs::images`).
    media: Option<Media>,
    /// Only in functions that verify access tokens: its keys derive from that secret.
    throttle: Option<Throttle>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigError),
    #[error("MONGODB_URI could not be used: {0}")]
    Database(#[source] mongodb::error::Error),
}

impl App {
    /// Builds the state from an already-loaded configuration. Does no network I/O for plain
    /// `mongodb://` URIs, so it also works while the database is down.
    pub async fn new(config: Config) -> Result<Self, StartupError> {
        let store = Store::connect(&config.mongodb)
            .await
            .map_err(StartupError::Database)?;
        let media = match (&config.cloudinary, &config.upload) {
            (Some(cloudinary), Some(upload)) => Some(Media::new(cloudinary, upload)),
            _ => None,
        };
        let throttle = config
            .tokens
            .access_secret
            .as_ref()
            .map(|secret| Throttle::new(config.throttle, secret));
        Ok(Self {
            tokens: TokenKeys::new(&config.tokens),
            store,
            media,
            throttle,
            config,
        })
    }

    /// Loads the configuration from the environment (resolving secret references) and builds
    /// the state. No network round trip: indexes are ensured in the background by [`run`], or
    /// by the first request; the Cloudinary client and the staging sweep wait for first use.
    pub async fn cold_start(needs: Needs) -> Result<Self, StartupError> {
        let started = Instant::now();
        let config = Config::load(needs).await?;
        let app = Self::new(config).await?;
        tracing::info!(
            init_ms = started.elapsed().as_secs_f64() * 1000.0,
            "cold start complete"
        );
        Ok(app)
    }

    /// Staging and Cloudinary. An error only in a function built without `Needs::images`: a
    /// wiring mistake, answered as a 500.
    pub fn media(&self) -> Result<&Media, ApiError> {
        self.media.as_ref().ok_or_else(|| {
            ApiError::internal("this function is not configured for images (Needs::images)")
        })
    }

    /// The password-guessing throttles. An error only in a function built without
    /// `Needs::access_tokens`: a wiring mistake, answered as a 500.
    pub fn throttle(&self) -> Result<&Throttle, ApiError> {
        self.throttle.as_ref().ok_or_else(|| {
            ApiError::internal("this function has no throttle key (Needs::access_tokens)")
        })
    }

    /// The database, with indexes ensured (once per process).
    pub async fn store(&self) -> Result<&Store, ApiError> {
        Ok(self.store.ready(schema::ensure_indexes).await?)
    }
}

/// The whole `main` of a function: tracing, cold start with the configuration the function
/// `needs`, then the Lambda runtime loop.
pub async fn run<F, Fut>(needs: Needs, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    lambda_http::tracing::init_default_subscriber();
    keep_large_allocations_mmapped();
    let app = match App::cold_start(needs).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            return Err(e.into());
        }
    };
    // The state lives as long as the process; leaking it gives handlers a plain `&'static App`.
    let app: &'static App = Box::leak(Box::new(app));
    // Off the cold-start path: the runtime asks for its first event without waiting for the
    // database, and a request that arrives first simply waits for (or retries) the same init.
    tokio::spawn(async move {
        if let Err(e) = app.store().await {
            tracing::warn!(error = %crate::error::chain(&e), "indexes not ensured yet; the first request will retry");
        }
    });
    crate::http::serve(service_fn(|req| {
        let fut = handler(app, req);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    }))
    .await
}

/// Keeps large buffers (argon2's working memory, a multipart body of up to 4.5 MiB, 2 MiB
/// images) in their own mappings, returned to the kernel when freed.
///
/// glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), after
/// which such buffers come from the malloc arenas, and freed ones stay resident there. Measured
/// with `make bench` before this: peak RSS grew by about 20 MiB per registration, to 255 MiB
/// after twelve; with a fixed threshold it stays near 34 MiB. Setting the threshold turns the
/// dynamic adjustment off. An operator's `MALLOC_MMAP_THRESHOLD_` still wins.
fn keep_large_allocations_mmapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        const THRESHOLD: libc::c_int = 1 << 20;
        // SAFETY: mallopt only changes a parameter of glibc's allocator, under its own lock; it
        // touches no memory of ours and may be called at any time.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
        if ok != 1 {
            tracing::warn!("mallopt(M_MMAP_THRESHOLD) was refused; memory use may grow");
        }
    }
}
