//! Reads the parameters of an upload API call from a multipart or URL-encoded form body.
//!
//! The `file` parameter is kept apart as bytes: a multipart file part is taken as is, and a
//! `data:...;base64,...` URI (as a text part or a URL-encoded value) is decoded.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use base64::Engine as _;

use crate::error::ApiError;

/// The uploaded file.
#[derive(Debug, Clone)]
pub struct FilePart {
    pub bytes: Bytes,
    /// The multipart filename, when the client sent one.
    pub filename: Option<String>,
}

/// Every parameter of a call; `file` is in [`Params::file`], never in [`Params::fields`].
#[derive(Debug, Default)]
pub struct Params {
    pub fields: BTreeMap<String, String>,
    pub file: Option<FilePart>,
}

impl Params {
    /// A parameter's value when present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

/// Reads the request body (honouring the router's body limit) into [`Params`].
///
/// Any content type other than multipart or URL-encoded form yields no parameters, so the call
/// then fails the way Cloudinary's does (no `api_key`).
pub async fn read(parts: Parts, body: Bytes) -> Result<Params, ApiError> {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        read_multipart(Request::from_parts(parts, Body::from(body))).await
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        read_urlencoded(&body)
    } else {
        Ok(Params::default())
    }
}

async fn read_multipart(request: Request) -> Result<Params, ApiError> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let mut params = Params::default();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|err| ApiError::new(err.status(), err.body_text()))?;
        let Some(field) = field else { break };
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        let filename = field.file_name().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|err| ApiError::new(err.status(), err.body_text()))?;
        if name == "file" {
            params.file = Some(if filename.is_none() && bytes.starts_with(b"data:") {
                file_from_text(&String::from_utf8_lossy(&bytes))?
            } else {
                FilePart { bytes, filename }
            });
        } else {
            let value = String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::bad_request(format!("Parameter {name} is not UTF-8")))?;
            params.fields.insert(name, value);
        }
    }
    Ok(params)
}

fn read_urlencoded(body: &[u8]) -> Result<Params, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|err| ApiError::bad_request(format!("Invalid form body: {err}")))?;
    let mut params = Params::default();
    for (name, value) in pairs {
        if name == "file" {
            params.file = Some(file_from_text(&value)?);
        } else {
            params.fields.insert(name, value);
        }
    }
    Ok(params)
}

/// A `file` given as text: a base64 data URI. Remote URLs cannot be fetched by the stand-in.
fn file_from_text(text: &str) -> Result<FilePart, ApiError> {
    let text = text.trim();
    if text.starts_with("http://") || text.starts_with("https://") {
        return Err(ApiError::bad_request(
            "Remote file URLs are not supported by the Cloudinary stand-in",
        ));
    }
    let bytes = decode_data_uri(text).ok_or_else(|| ApiError::bad_request("Invalid image file"))?;
    Ok(FilePart {
        bytes: Bytes::from(bytes),
        filename: None,
    })
}

/// Decodes `data:[<media type>];base64,<data>`; `None` for anything else.
fn decode_data_uri(text: &str) -> Option<Vec<u8>> {
    let (meta, data) = text.strip_prefix("data:")?.split_once(',')?;
    if !meta.to_ascii_lowercase().ends_with(";base64") {
        return None;
    }
    let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_data_uris_are_decoded() {
        assert_eq!(
            decode_data_uri("data:image/png;base64,aGVs\nbG8="),
            Some(b"hello".to_vec())
        );
    }

    #[test]
    fn data_uris_that_are_not_base64_are_refused() {
        assert_eq!(decode_data_uri("data:text/plain,hello"), None);
        assert_eq!(decode_data_uri("hello"), None);
    }
}
