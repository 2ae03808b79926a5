//! Media: staging uploaded files on local disk and storing them at Cloudinary.
//!
//! A request's multipart form is read by [`form`] under the upload limits; its files are
//! streamed into [`staging`] files (fresh, unpredictable, owner-only, and deleted when dropped,
//! whatever happens), recognised by their magic bytes in [`image`], and uploaded from disk by
//! [`cloudinary`] under a public id we choose. [`Media`] is the client every function builds
//! once per cold start; [`MediaError`] is this layer's error, mapped to a status in exactly one
//! place (its `From` impl below).
pub mod cloudinary;
pub mod form;
pub mod image;
pub mod public_id;
pub mod staging;

use std::{
    sync::{Once, OnceLock},
    time::Duration,
};

use crate::{
    config::{CloudinaryConfig, UploadConfig},
    error::ApiError,
};

pub use cloudinary::Op;
pub use image::{ImageKind, StagedImage};
pub use staging::{STAGING_PREFIX, StagedFile, Staging};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The HTTP client could not be built (cold start only).
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Creating, writing or reading a staged file failed.
    #[error("staging an uploaded file on local disk failed")]
    Staging(#[source] std::io::Error),
    /// Cloudinary answered the call with an error status.
    #[error("Cloudinary {op} failed with HTTP {status}: {message}")]
    Rejected {
        op: Op,
        status: u16,
        message: String,
    },
    /// The call could not be made or its answer could not be read.
    #[error("Cloudinary {op} request failed")]
    Request {
        op: Op,
        #[source]
        source: reqwest::Error,
    },
    /// No answer within `CLOUDINARY_TIMEOUT` (or no connection within the connect timeout).
    #[error("Cloudinary {op} timed out")]
    Timeout {
        op: Op,
        #[source]
        source: reqwest::Error,
    },
    /// Cloudinary could not read the file as an image, though its first bytes said it was one
    /// (damaged, truncated): the client's file, not Cloudinary, is at fault.
    #[error("Cloudinary could not read {label} as an image")]
    Unreadable { label: String },
    /// A success status with a body that is not what we asked for.
    #[error("Cloudinary {op} answered unexpectedly: {detail}")]
    BadResponse { op: Op, detail: String },
}

/// Local failures are ours (500, and nothing was written anywhere); a file Cloudinary cannot
/// read is the client's (415, like any other file that is not an image we take); everything
/// Cloudinary does wrong is a 502.
impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Client(_) | MediaError::Staging(_) => ApiError::internal(e),
            MediaError::Unreadable { label } => ApiError::UnsupportedMediaType(format!(
                "{label} could not be read as an image: the file is damaged or incomplete"
            )),
            MediaError::Rejected { .. }
            | MediaError::Request { .. }
            | MediaError::Timeout { .. }
            | MediaError::BadResponse { .. } => ApiError::Upstream(Box::new(e)),
        }
    }
}

/// The Cloudinary client and staging rules. Built with the [`App`](crate::App) at cold start,
/// but the parts that cost something (the TLS client, the staging sweep) are set up on first
/// use, so login and refresh, which never upload, never pay for them.
pub struct Media {
    http: OnceLock<reqwest::Client>,
    swept: Once,
    pub cloudinary: CloudinaryConfig,
    pub upload: UploadConfig,
}

impl Media {
    pub fn new(cloudinary: &CloudinaryConfig, upload: &UploadConfig) -> Self {
        Self {
            http: OnceLock::new(),
            swept: Once::new(),
            cloudinary: cloudinary.clone(),
            upload: upload.clone(),
        }
    }

    /// The HTTP client for Cloudinary, with the configured timeouts.
    pub fn http(&self) -> Result<&reqwest::Client, MediaError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.cloudinary.connect_timeout)
            .timeout(self.cloudinary.timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(MediaError::Client)?;
        Ok(self.http.get_or_init(|| client))
    }

    /// Starts a new staged file under `UPLOAD_TMP_DIR`. The first call in a process first
    /// removes what a crashed earlier process left there (see [`staging::sweep_leftovers`]):
    /// nothing of this process is staged yet at that point.
    pub fn stage(&self) -> Result<Staging, MediaError> {
        self.swept.call_once(|| self.sweep_staging_leftovers());
        Staging::create(&self.upload.tmp_dir)
    }

    fn sweep_staging_leftovers(&self) {
        let dir = &self.upload.tmp_dir;
        match staging::sweep_leftovers(dir, std::process::id(), staging::process_is_alive) {
            0 => {}
            n => tracing::info!(
                removed = n,
                "removed staged files left by an earlier process"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_failures_are_500_and_cloudinary_failures_are_502() {
        let staging = MediaError::Staging(std::io::Error::other("disk full"));
        assert_eq!(ApiError::from(staging).status().as_u16(), 500);
        let rejected = MediaError::Rejected {
            op: Op::Upload,
            status: 500,
            message: "x".into(),
        };
        assert_eq!(ApiError::from(rejected).status().as_u16(), 502);
        let bad = MediaError::BadResponse {
            op: Op::Destroy,
            detail: "x".into(),
        };
        assert_eq!(ApiError::from(bad).status().as_u16(), 502);
    }
}
