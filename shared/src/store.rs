//! The MongoDB connection: one client per cold start, bounded timeouts, indexes, error kinds.
//!
//! The client is built without touching the network, so a function starts even while the
//! database is down and answers 503 until it returns (the driver reconnects by itself). Indexes
//! are ensured once per process, on the first request that reaches the database (and eagerly,
//! best-effort, at cold start), so a fresh database works on the very first request.
use std::time::Duration;

use mongodb::{
    Client, Collection, Database, IndexModel,
    bson::doc,
    error::{ErrorKind, WriteFailure},
    options::{ClientOptions, IndexOptions},
};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::{
    config::MongoConfig,
    error::ApiError,
    sessions::{RefreshTokenDoc, SessionDoc},
    users::UserDoc,
};

pub const USERS: &str = "users";
pub const SESSIONS: &str = "sessions";
pub const REFRESH_TOKENS: &str = "refresh_tokens";
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unreachable")]
    Unavailable(#[source] mongodb::error::Error),
    #[error("duplicate key")]
    Duplicate(#[source] mongodb::error::Error),
    #[error("database operation failed")]
    Other(#[source] mongodb::error::Error),
}

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> Self {
        if is_duplicate_key(&e) {
            Self::Duplicate(e)
        } else if is_unavailable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Other(e)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable(Box::new(e)),
            // Callers that expect duplicates handle them before this conversion.
            StoreError::Duplicate(_) | StoreError::Other(_) => ApiError::internal(e),
        }
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => false,
    }
}

fn is_unavailable(e: &mongodb::error::Error) -> bool {
    matches!(
        &*e.kind,
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    ) || e.contains_label("RetryableWriteError")
}

/// The database handle plus typed collections.
pub struct Store {
    pub db: Database,
    pub users: Collection<UserDoc>,
    pub sessions: Collection<SessionDoc>,
    pub refresh_tokens: Collection<RefreshTokenDoc>,
    /// Rotations whose answer this process could not give (see [`crate::sessions::rotate`]).
    pub(crate) undelivered: crate::sessions::Undelivered,
    indexes: OnceCell<()>,
}

impl Store {
    /// Builds the client (no I/O for `mongodb://` URIs; SRV URIs resolve DNS here).
    pub async fn connect(cfg: &MongoConfig) -> Result<Self, mongodb::error::Error> {
        let mut opts = ClientOptions::parse(cfg.uri.expose_secret()).await?;
        opts.server_selection_timeout = Some(cfg.server_selection_timeout);
        opts.connect_timeout = Some(cfg.connect_timeout);
        opts.app_name
            .get_or_insert_with(|| "videotube-auth".to_owned());
        // Idle sockets die when a Lambda sandbox freezes; recycle them rather than trust them.
        opts.max_idle_time = Some(Duration::from_secs(60));
        let client = Client::with_options(opts)?;
        Ok(Self::from_database(client.database(&cfg.database)))
    }

    pub fn from_database(db: Database) -> Self {
        Self {
            users: db.collection(USERS),
            sessions: db.collection(SESSIONS),
            refresh_tokens: db.collection(REFRESH_TOKENS),
            db,
            undelivered: crate::sessions::Undelivered::default(),
            indexes: OnceCell::new(),
        }
    }

    /// Ensures the indexes exist, once per process; retried on the next call after a failure.
    pub async fn ready(&self) -> Result<&Self, StoreError> {
        self.indexes
            .get_or_try_init(|| self.create_indexes())
            .await?;
        Ok(self)
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = |name: &str| {
            IndexOptions::builder()
                .unique(true)
                .name(name.to_owned())
                .build()
        };
        // One index per command: FerretDB 1.24 (the local stand-in for Atlas) drops the
        // connection on a createIndexes that names several indexes of a new collection.
        for (field, name) in [("username", "username_unique"), ("email", "email_unique")] {
            let model = IndexModel::builder()
                .keys(doc! {field: 1})
                .options(unique(name))
                .build();
            self.users.create_index(model).await?;
        }
        self.sessions
            .create_index(IndexModel::builder().keys(doc! {"userId": 1}).build())
            .await?;
        // The compare-and-swap of refresh-token rotation: one successor per token.
        let parent = IndexModel::builder()
            .keys(doc! {"parent": 1})
            .options(unique("parent_unique"))
            .build();
        self.refresh_tokens.create_index(parent).await?;
        let ttl = || {
            let options = IndexOptions::builder()
                .expire_after(Duration::ZERO)
                .name("expiresAt_ttl".to_owned())
                .build();
            IndexModel::builder()
                .keys(doc! {"expiresAt": 1})
                .options(options)
                .build()
        };
        for result in [
            self.sessions.create_index(ttl()).await,
            self.refresh_tokens.create_index(ttl()).await,
        ] {
            let Err(e) = result else { continue };
            let reason = match &*e.kind {
                ErrorKind::Command(c) => format!("code {}: {}", c.code, c.message),
                _ => e.to_string(),
            };
            let e = StoreError::from(e);
            if matches!(e, StoreError::Unavailable(_)) {
                return Err(e);
            }
            // Every query refuses what has expired anyway; TTL indexes only tidy up.
            tracing::warn!(%reason, "TTL index not supported by this server; continuing without it");
            break;
        }
        Ok(())
    }
}
