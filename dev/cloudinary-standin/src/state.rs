//! Server state: the assets and fault mode of each cloud, and where asset bytes are kept.
//!
//! Everything is namespaced by cloud name, so parallel tests using their own cloud names never
//! see each other's assets or faults. The index lives in memory; bytes are kept in memory, or as
//! files in the storage directory when one is configured.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;

use crate::Settings;
use crate::error::ApiError;
use crate::image::Format;

/// One stored image.
#[derive(Clone, Debug)]
pub struct Asset {
    pub public_id: String,
    pub asset_id: String,
    pub version: i64,
    pub version_id: String,
    pub format: Format,
    pub width: usize,
    pub height: usize,
    pub bytes: usize,
    pub etag: String,
    pub created_at: String,
    pub folder: Option<String>,
    pub original_filename: String,
    pub tags: Vec<String>,
    pub content: Content,
}

/// Where an asset's bytes are.
#[derive(Clone, Debug)]
pub enum Content {
    Memory(Bytes),
    Disk(PathBuf),
}

/// The calls a fault mode can apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Upload,
    Destroy,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Destroy => "destroy",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "upload" => Some(Self::Upload),
            "destroy" => Some(Self::Destroy),
            _ => None,
        }
    }
}

/// What a faulty cloud does to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer this status with a Cloudinary-style error body.
    Fail { status: StatusCode },
    /// Wait this long, then handle the call normally.
    Hang { delay: Duration },
    /// Handle the call (its effect happens), then answer this status with an error body anyway:
    /// a proxy in front of a Cloudinary that did the work, timing out (504) or failing (502).
    FailAfter { status: StatusCode },
}

/// A cloud's fault mode and the calls it applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub ops: Vec<Op>,
}

/// The outcome of [`AppState::put`].
pub enum Put {
    /// The public ID was free.
    Created(Asset),
    /// The public ID was taken and has been overwritten; `previous` held the old bytes.
    Replaced { asset: Asset, previous: Content },
    /// The public ID was taken and `overwrite` was false: the existing asset is kept.
    Kept(Asset),
}

#[derive(Default)]
struct Cloud {
    assets: BTreeMap<String, Asset>,
    /// The faults in force, each for its own ops.
    faults: Vec<Fault>,
    /// Calls received, answered or not: (uploads, destroys).
    calls: (u64, u64),
}

/// State shared by every request.
pub struct AppState {
    pub settings: Settings,
    /// `http://HOST:PORT` of this server, the base of delivery URLs.
    pub base_url: String,
    clouds: Mutex<HashMap<String, Cloud>>,
}

impl AppState {
    pub fn new(settings: Settings, base_url: String) -> Self {
        Self {
            settings,
            base_url,
            clouds: Mutex::new(HashMap::new()),
        }
    }

    /// The lock is never held across an await, and its data stays consistent after a panic.
    fn clouds(&self) -> MutexGuard<'_, HashMap<String, Cloud>> {
        self.clouds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault that applies to `op` on `cloud`, if any.
    pub fn fault_for(&self, cloud: &str, op: Op) -> Option<FaultKind> {
        let clouds = self.clouds();
        let faults = &clouds.get(cloud)?.faults;
        faults.iter().find(|f| f.ops.contains(&op)).map(|f| f.kind)
    }

    /// Counts a call to `op` on `cloud`, as it arrives (before any check or fault).
    pub fn count_call(&self, cloud: &str, op: Op) {
        let mut clouds = self.clouds();
        let calls = &mut clouds.entry(cloud.to_owned()).or_default().calls;
        match op {
            Op::Upload => calls.0 += 1,
            Op::Destroy => calls.1 += 1,
        }
    }

    /// The calls `cloud` has received: (uploads, destroys).
    pub fn calls(&self, cloud: &str) -> (u64, u64) {
        self.clouds()
            .get(cloud)
            .map(|c| c.calls)
            .unwrap_or_default()
    }

    pub fn faults(&self, cloud: &str) -> Vec<Fault> {
        self.clouds()
            .get(cloud)
            .map(|c| c.faults.clone())
            .unwrap_or_default()
    }

    /// Replaces every fault of `cloud` (none: no fault).
    pub fn set_faults(&self, cloud: &str, faults: Vec<Fault>) {
        self.clouds().entry(cloud.to_owned()).or_default().faults = faults;
    }

    pub fn get(&self, cloud: &str, public_id: &str) -> Option<Asset> {
        self.clouds().get(cloud)?.assets.get(public_id).cloned()
    }

    /// The cloud's assets, sorted by public ID.
    pub fn list(&self, cloud: &str) -> Vec<Asset> {
        self.clouds()
            .get(cloud)
            .map(|c| c.assets.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores an asset under `public_id`; `build` gets the asset it replaces, if any.
    pub fn put(
        &self,
        cloud: &str,
        public_id: &str,
        overwrite: bool,
        build: impl FnOnce(Option<&Asset>) -> Asset,
    ) -> Put {
        let mut clouds = self.clouds();
        let assets = &mut clouds.entry(cloud.to_owned()).or_default().assets;
        match assets.get(public_id) {
            Some(existing) if !overwrite => Put::Kept(existing.clone()),
            existing => {
                let asset = build(existing);
                match assets.insert(public_id.to_owned(), asset.clone()) {
                    Some(previous) => Put::Replaced {
                        asset,
                        previous: previous.content,
                    },
                    None => Put::Created(asset),
                }
            }
        }
    }

    pub fn remove(&self, cloud: &str, public_id: &str) -> Option<Asset> {
        self.clouds().get_mut(cloud)?.assets.remove(public_id)
    }

    /// Keeps `bytes` for a new asset version: in memory, or in the storage directory.
    pub async fn keep(
        &self,
        version_id: &str,
        format: Format,
        bytes: Bytes,
    ) -> Result<Content, ApiError> {
        let Some(dir) = &self.settings.storage_dir else {
            return Ok(Content::Memory(bytes));
        };
        // Version IDs are random hex, so file names never clash and never leave the directory.
        let path = dir.join(format!("{version_id}.{}", format.name()));
        tokio::fs::write(&path, &bytes).await.map_err(|err| {
            ApiError::internal(format!("Could not store {}: {err}", path.display()))
        })?;
        Ok(Content::Disk(path))
    }

    /// Frees the bytes of an asset version that is no longer stored.
    pub async fn discard(&self, content: &Content) {
        if let Content::Disk(path) = content {
            // A file already gone is fine: the goal is that it is gone.
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

/// Reads an asset's bytes.
pub async fn read(content: &Content) -> std::io::Result<Bytes> {
    match content {
        Content::Memory(bytes) => Ok(bytes.clone()),
        Content::Disk(path) => tokio::fs::read(path).await.map(Bytes::from),
    }
}
