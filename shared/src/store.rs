//! The MongoDB connection: one client per cold start, bounded timeouts, index helpers, error
//! kinds. It knows no collection: those live in `users` and `sessions`.
//!
//! The client is built without touching the network, so a function starts even while the
//! database is down and answers 503 until it returns (the driver reconnects by itself). Indexes
//! are ensured once per process, on the first request that reaches the database (and eagerly,
//! best-effort, at cold start), so a fresh database works on the very first request.
use std::{future::Future, time::Duration};

use futures::TryStreamExt as _;
use mongodb::{
    Client, Collection, Database, IndexModel,
    bson::doc,
    error::{ErrorKind, WriteFailure},
    options::{ClientOptions, IndexOptions},
};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::{config::MongoConfig, error::ApiError};

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

/// FerretDB 1.x answers a unique-index violation by an *update* (not an insert) with a command
/// error of code 1 (InternalError) whose message is SQLite's, e.g. "constraint failed: UNIQUE
/// constraint failed: index 'users_5e7cc513_email_unique' (2067)". MongoDB says 11000 for both.
const FERRETDB_INTERNAL: i32 = 1;
const SQLITE_UNIQUE: &str = "UNIQUE constraint failed";

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => {
            c.code == DUPLICATE_KEY
                || (c.code == FERRETDB_INTERNAL && c.message.contains(SQLITE_UNIQUE))
        }
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

/// The database handle and whether this process has ensured its indexes. Each collection's
/// module (`users`, `sessions`) owns its name, document, indexes and queries and asks the store
/// only for the database; [`crate::schema`] lists every collection's indexes.
pub struct Store {
    pub db: Database,
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
            db,
            indexes: OnceCell::new(),
        }
    }

    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.db.collection(name)
    }

    /// Runs `ensure` (the indexes, [`crate::schema::ensure_indexes`]) once per process;
    /// retried on the next call after a failure.
    pub async fn ready<'a, F, Fut>(&'a self, ensure: F) -> Result<&'a Self, StoreError>
    where
        F: FnOnce(&'a Self) -> Fut,
        Fut: Future<Output = Result<(), StoreError>> + 'a,
    {
        self.indexes.get_or_try_init(|| ensure(self)).await?;
        Ok(self)
    }
}

/// Ensures a unique ascending index on `field`, named `name`. An existing unique index on
/// exactly that key, under any name (the Node version's mongoose made `username_1` and
/// `email_1`), is the same constraint and is kept rather than fought or duplicated.
pub async fn ensure_unique<T: Send + Sync>(
    collection: &Collection<T>,
    field: &str,
    name: &str,
) -> Result<(), StoreError> {
    // A collection that does not exist yet has no indexes (code 26, NamespaceNotFound).
    let indexes = match collection.list_indexes().await {
        Ok(cursor) => cursor.try_collect::<Vec<_>>().await?,
        Err(e) if matches!(&*e.kind, ErrorKind::Command(c) if c.code == 26) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for index in indexes {
        let same_key = index.keys.len() == 1 && index.keys.get_i32(field).ok() == Some(1);
        let unique = index.options.as_ref().and_then(|o| o.unique) == Some(true);
        if same_key && unique {
            return Ok(());
        }
    }
    let options = IndexOptions::builder()
        .unique(true)
        .name(name.to_owned())
        .build();
    let model = IndexModel::builder()
        .keys(doc! {field: 1})
        .options(options)
        .build();
    collection.create_index(model).await?;
    Ok(())
}

/// A plain ascending index on `field`.
pub async fn ensure_index<T: Send + Sync>(
    collection: &Collection<T>,
    field: &str,
) -> Result<(), StoreError> {
    let model = IndexModel::builder().keys(doc! {field: 1}).build();
    collection.create_index(model).await?;
    Ok(())
}

/// A plain ascending compound index on `keys` (e.g. `{pair: 1, at: 1}`).
pub async fn ensure_compound<T: Send + Sync>(
    collection: &Collection<T>,
    keys: mongodb::bson::Document,
) -> Result<(), StoreError> {
    let model = IndexModel::builder().keys(keys).build();
    collection.create_index(model).await?;
    Ok(())
}

/// A TTL index that removes documents once their `expiresAt` has passed. Returns `false` when
/// the server does not support TTL indexes (FerretDB 1.x answers code 238): every query refuses
/// what has expired anyway, so TTL indexes only tidy up.
pub async fn ensure_expiry<T: Send + Sync>(collection: &Collection<T>) -> Result<bool, StoreError> {
    let options = IndexOptions::builder()
        .expire_after(Duration::ZERO)
        .name("expiresAt_ttl".to_owned())
        .build();
    let model = IndexModel::builder()
        .keys(doc! {"expiresAt": 1})
        .options(options)
        .build();
    let Err(e) = collection.create_index(model).await else {
        return Ok(true);
    };
    let reason = match &*e.kind {
        ErrorKind::Command(c) => format!("code {}: {}", c.code, c.message),
        _ => e.to_string(),
    };
    let e = StoreError::from(e);
    if matches!(e, StoreError::Unavailable(_)) {
        return Err(e);
    }
    tracing::warn!(%reason, "TTL index not supported by this server; continuing without it");
    Ok(false)
}
