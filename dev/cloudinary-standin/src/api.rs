//! The upload API: signed `image/upload` and `image/destroy` calls, answered as Cloudinary does.
//!
//! Checks run in this order: fault mode, `api_key`, `timestamp`, signature, request age, then the
//! call's own parameters. Every failure is a Cloudinary-style error body.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::request::Parts;
use rand::Rng;
use serde_json::{Map, Value, json};
use sha2::Digest;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::error::ApiError;
use crate::image;
use crate::params::{self, Params};
use crate::signature::{self, Algo};
use crate::state::{AppState, Asset, FaultKind, Op, Put};

/// How far a request's `timestamp` may be from the server's clock.
const MAX_REQUEST_AGE: Duration = Duration::from_secs(3600);

/// `POST /v1_1/{cloud}/image/upload`
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Path(cloud): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    run_detached(state, cloud, Op::Upload, request).await
}

/// `POST /v1_1/{cloud}/image/destroy`
pub async fn destroy(
    State(state): State<Arc<AppState>>,
    Path(cloud): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    run_detached(state, cloud, Op::Destroy, request).await
}

/// Runs a call in a task of its own, so that it completes even when the client stops waiting
/// for it: as at Cloudinary, an upload whose client timed out (during a `hang` fault, say)
/// is still stored, and a destroy still happens. Dropping the handler's future with the
/// connection would make every client timeout look clean.
async fn run_detached(
    state: Arc<AppState>,
    cloud: String,
    op: Op,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let call = tokio::spawn(async move {
        let result = match op {
            Op::Upload => upload_image(&state, &cloud, request).await,
            Op::Destroy => destroy_image(&state, &cloud, request).await,
        }
        .and_then(|answer| failed_after(&state, &cloud, op).map(|()| answer));
        log_rejection(&cloud, op, &result);
        result
    });
    match call.await {
        Ok(result) => result.map(Json),
        Err(e) => Err(ApiError::internal(format!("the call failed: {e}"))),
    }
}

async fn upload_image(state: &AppState, cloud: &str, request: Request) -> Result<Value, ApiError> {
    let params = receive(state, cloud, Op::Upload, request).await?;
    authenticate(state, &params)?;
    let file = params
        .file
        .as_ref()
        .ok_or_else(|| ApiError::missing("file"))?;
    let info =
        image::inspect(&file.bytes).ok_or_else(|| ApiError::bad_request("Invalid image file"))?;
    let folder = params
        .get("folder")
        .map(|folder| folder.trim().trim_matches('/').to_owned())
        .filter(|folder| !folder.is_empty());
    let public_id = public_id(params.get("public_id"), folder.as_deref())?;
    let overwrite = !matches!(params.get("overwrite"), Some("false" | "0"));
    let tags: Vec<String> = params
        .get("tags")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect();
    let original_filename = file
        .filename
        .as_deref()
        .map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name))
        .map(|name| name.rsplit_once('.').map_or(name, |(stem, _)| stem))
        .filter(|stem| !stem.is_empty())
        .unwrap_or("file")
        .to_owned();

    let version_id = random_hex(16);
    let content = state
        .keep(&version_id, info.format, file.bytes.clone())
        .await?;
    let now = OffsetDateTime::now_utc();
    let build = |previous: Option<&Asset>| Asset {
        public_id: public_id.clone(),
        asset_id: previous.map_or_else(|| random_hex(16), |p| p.asset_id.clone()),
        // Versions only grow, so a re-upload within the same second still gets a new URL.
        version: previous.map_or(now.unix_timestamp(), |p| {
            now.unix_timestamp().max(p.version + 1)
        }),
        version_id: version_id.clone(),
        format: info.format,
        width: info.width,
        height: info.height,
        bytes: file.bytes.len(),
        etag: hex::encode(&sha2::Sha256::digest(&file.bytes)[..16]),
        created_at: now
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default(),
        folder: folder.clone(),
        original_filename: original_filename.clone(),
        tags: tags.clone(),
        content: content.clone(),
    };
    let body = match state.put(cloud, &public_id, overwrite, build) {
        Put::Created(asset) => asset_json(state, cloud, &asset),
        Put::Replaced { asset, previous } => {
            state.discard(&previous).await;
            let mut body = asset_json(state, cloud, &asset);
            body.insert("overwritten".into(), true.into());
            body
        }
        Put::Kept(existing) => {
            state.discard(&content).await;
            let mut body = asset_json(state, cloud, &existing);
            body.insert("existing".into(), true.into());
            body
        }
    };
    Ok(Value::Object(body))
}

async fn destroy_image(state: &AppState, cloud: &str, request: Request) -> Result<Value, ApiError> {
    let params = receive(state, cloud, Op::Destroy, request).await?;
    authenticate(state, &params)?;
    let public_id = params
        .get("public_id")
        .ok_or_else(|| ApiError::missing("public_id"))?;
    Ok(match state.remove(cloud, public_id) {
        Some(asset) => {
            state.discard(&asset.content).await;
            json!({ "result": "ok" })
        }
        None => json!({ "result": "not found" }),
    })
}

/// Reads the whole body, applies the cloud's fault mode, then parses the parameters.
///
/// The body is read even when failing on purpose, so clients see the answer rather than a reset
/// connection while they are still sending.
async fn receive(
    state: &AppState,
    cloud: &str,
    op: Op,
    request: Request,
) -> Result<Params, ApiError> {
    state.count_call(cloud, op);
    let (parts, body) = request.into_parts();
    let body = Bytes::from_request(Request::from_parts(Parts::clone(&parts), body), &())
        .await
        .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    match state.fault_for(cloud, op) {
        Some(FaultKind::Fail { status }) => {
            return Err(ApiError::new(
                status,
                format!(
                    "Simulated failure (cloudinary-standin fault mode), HTTP {}",
                    status.as_u16()
                ),
            ));
        }
        Some(FaultKind::Hang { delay }) => tokio::time::sleep(delay).await,
        Some(FaultKind::FailAfter { .. }) | None => {}
    }
    params::read(parts, body).await
}

/// The error a `fail-after` fault answers once the call has taken effect.
fn failed_after(state: &AppState, cloud: &str, op: Op) -> Result<(), ApiError> {
    match state.fault_for(cloud, op) {
        Some(FaultKind::FailAfter { status }) => Err(ApiError::new(
            status,
            format!(
                "Simulated failure after the call took effect (cloudinary-standin fault mode), HTTP {}",
                status.as_u16()
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks the API key, timestamp and signature exactly as Cloudinary does.
fn authenticate(state: &AppState, params: &Params) -> Result<(), ApiError> {
    let api_key = params
        .get("api_key")
        .ok_or_else(|| ApiError::unauthorized("Must supply api_key"))?;
    if api_key != state.settings.api_key {
        return Err(ApiError::unauthorized(format!("Invalid api_key {api_key}")));
    }
    let timestamp = params
        .get("timestamp")
        .ok_or_else(|| ApiError::missing("timestamp"))?;
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid timestamp {timestamp}")))?;

    let given = params.get("signature").unwrap_or_default();
    let algo = match params.get("signature_algorithm") {
        Some(name) => Algo::from_name(name)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid signature_algorithm {name}")))?,
        None if given.len() == 64 => Algo::Sha256,
        None => Algo::Sha1,
    };
    let signed = signature::signed_params(&params.fields);
    let expected = signature::sign(&signed, &state.settings.api_secret, algo);
    if !given.eq_ignore_ascii_case(&expected) {
        let string_to_sign = signature::string_to_sign(&signed);
        return Err(ApiError::unauthorized(format!(
            "Invalid Signature {given}. String to sign - '{string_to_sign}'."
        )));
    }

    let now = OffsetDateTime::now_utc().unix_timestamp();
    let max_age = MAX_REQUEST_AGE.as_secs() as i64;
    let when = if now - timestamp > max_age {
        "ago"
    } else if timestamp - now > max_age {
        "in the future"
    } else {
        return Ok(());
    };
    let reported = OffsetDateTime::from_unix_timestamp(timestamp)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] +0000"
            ))
            .ok()
        })
        .unwrap_or_else(|| timestamp.to_string());
    Err(ApiError::bad_request(format!(
        "Stale request - reported time is {reported} which is more than 1 hour {when}"
    )))
}

/// The full public ID: the folder is prefixed unless the given ID has a folder of its own.
fn public_id(given: Option<&str>, folder: Option<&str>) -> Result<String, ApiError> {
    let id = match given.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => random_name(20),
    };
    let id = match folder {
        Some(folder) if !id.contains('/') => format!("{folder}/{id}"),
        _ => id,
    };
    let invalid = id
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        || id
            .chars()
            .any(|c| c.is_control() || matches!(c, '?' | '&' | '#' | '\\' | '%' | '<' | '>'));
    if invalid {
        return Err(ApiError::bad_request(format!("Invalid public_id {id}")));
    }
    Ok(id)
}

/// The upload response Cloudinary sends for `asset`.
fn asset_json(state: &AppState, cloud: &str, asset: &Asset) -> Map<String, Value> {
    let url = format!(
        "{}/{cloud}/image/upload/v{}/{}.{}",
        state.base_url,
        asset.version,
        asset.public_id,
        asset.format.name()
    );
    let mut body = json!({
        "asset_id": asset.asset_id,
        "public_id": asset.public_id,
        "version": asset.version,
        "version_id": asset.version_id,
        "signature": random_hex(20),
        "width": asset.width,
        "height": asset.height,
        "format": asset.format.name(),
        "resource_type": "image",
        "created_at": asset.created_at,
        "tags": asset.tags,
        "bytes": asset.bytes,
        "type": "upload",
        "etag": asset.etag,
        "placeholder": false,
        "url": url,
        "secure_url": url,
        "original_filename": asset.original_filename,
        "api_key": state.settings.api_key,
    });
    let mut map = match body.take() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Some(folder) = &asset.folder {
        map.insert("folder".into(), folder.clone().into());
    }
    map
}

/// `len` random bytes as lowercase hex.
fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill(bytes.as_mut_slice());
    hex::encode(bytes)
}

/// `len` random lowercase letters and digits, like Cloudinary's generated public IDs.
fn random_name(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Rejections go to stderr: a signature mismatch is far easier to debug with the string to sign.
fn log_rejection(cloud: &str, op: Op, result: &Result<Value, ApiError>) {
    if let Err(err) = result {
        eprintln!(
            "cloudinary-standin: {} on cloud {cloud} answered {}: {}",
            op.name(),
            err.status.as_u16(),
            err.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_prefixes_a_public_id_without_one() {
        assert_eq!(
            public_id(Some("cat"), Some("pets")).ok(),
            Some("pets/cat".into())
        );
        assert_eq!(
            public_id(Some("a/cat"), Some("pets")).ok(),
            Some("a/cat".into())
        );
        assert_eq!(public_id(Some("cat"), None).ok(), Some("cat".into()));
    }

    #[test]
    fn a_missing_public_id_is_twenty_random_lowercase_characters() {
        let id = public_id(None, Some("pets")).unwrap_or_default();
        let name = id.strip_prefix("pets/").unwrap_or_default();
        assert_eq!(name.len(), 20);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }

    #[test]
    fn public_ids_that_could_escape_a_path_are_refused() {
        for bad in ["../x", "a//b", "a/./b", "a?b", "a\\b", "a/"] {
            assert!(public_id(Some(bad), None).is_err(), "{bad}");
        }
    }
}
