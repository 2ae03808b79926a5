//! Media: staging uploaded files on local disk and storing them at Cloudinary.
//!
//! (Built out by the register pipeline; this holds the client every function constructs.)
use std::time::Duration;

use crate::config::{CloudinaryConfig, UploadConfig};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The Cloudinary client and staging rules, built once per cold start.
pub struct Media {
    pub http: reqwest::Client,
    pub cloudinary: CloudinaryConfig,
    pub upload: UploadConfig,
}

impl Media {
    pub fn new(cloudinary: &CloudinaryConfig, upload: &UploadConfig) -> Result<Self, MediaError> {
        let http = reqwest::Client::builder()
            .connect_timeout(cloudinary.connect_timeout)
            .timeout(cloudinary.timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(MediaError::Client)?;
        Ok(Self { http, cloudinary: cloudinary.clone(), upload: upload.clone() })
    }

    pub async fn sweep_staging_leftovers(&self) {}
}
