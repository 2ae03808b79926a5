//! Delivery URLs: `GET /{cloud}/image/upload/[v{version}/]{public_id}[.{format}]` serves the bytes.
//!
//! As on Cloudinary the version segment only busts caches: the current asset is served whatever
//! version the URL names. No transformations exist, so an extension other than the asset's own
//! format is not found.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::state::{self, AppState, Asset};

/// `GET /{cloud}/image/upload/{*path}`
pub async fn deliver(
    State(state): State<Arc<AppState>>,
    Path((cloud, path)): Path<(String, String)>,
) -> Response {
    let Some(asset) = find(&state, &cloud, strip_version(&path)) else {
        return not_found(&path);
    };
    match state::read(&asset.content).await {
        Ok(bytes) => ([(CONTENT_TYPE, asset.format.content_type())], bytes).into_response(),
        // Deleted or overwritten between the lookup and the read.
        Err(_) => not_found(&path),
    }
}

fn find(state: &AppState, cloud: &str, path: &str) -> Option<Asset> {
    if let Some(asset) = state.get(cloud, path) {
        return Some(asset);
    }
    let (public_id, extension) = path.rsplit_once('.')?;
    if extension.contains('/') {
        return None;
    }
    state
        .get(cloud, public_id)
        .filter(|asset| asset.format.matches_extension(extension))
}

/// Drops a leading `v123/` segment.
fn strip_version(path: &str) -> &str {
    match path.split_once('/') {
        Some((first, rest))
            if first.len() > 1
                && first.starts_with('v')
                && first[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest
        }
        _ => path,
    }
}

/// Cloudinary answers a missing resource with an empty 404 and the reason in `x-cld-error`.
fn not_found(path: &str) -> Response {
    let reason = format!("Resource not found - {path}");
    let mut response = StatusCode::NOT_FOUND.into_response();
    if let Ok(value) = reason.parse() {
        response.headers_mut().insert("x-cld-error", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::strip_version;

    #[test]
    fn only_a_leading_version_segment_is_dropped() {
        assert_eq!(strip_version("v1700000000/pets/cat.png"), "pets/cat.png");
        assert_eq!(strip_version("pets/cat.png"), "pets/cat.png");
        assert_eq!(strip_version("v/cat.png"), "v/cat.png");
        assert_eq!(strip_version("cat.png"), "cat.png");
    }
}
