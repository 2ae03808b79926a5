//! Control API for tests, under `/__standin`: fault injection, asset listing and a health check.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::{AppState, Fault, FaultKind, Op};

/// Longest hang a fault may ask for.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// `GET /__standin/health`
pub async fn health() -> &'static str {
    "ok"
}

/// Body of `POST /__standin/{cloud}/fault`, or one element of an array of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    mode: String,
    status: Option<u16>,
    delay_ms: Option<u64>,
    ops: Option<Vec<String>>,
}

/// `POST /__standin/{cloud}/fault` with `{"mode":"fail","status":500}` (refuse the call),
/// `{"mode":"fail-after","status":504}` (do it, then answer the error anyway),
/// `{"mode":"hang","delay_ms":5000}` (wait, then do it, even when the client has stopped
/// waiting, as Cloudinary would) or `{"mode":"none"}`, and optionally
/// `"ops":["upload"|"destroy"]` (default both). An array of such faults sets one per op, say
/// `[{"mode":"fail-after","status":504,"ops":["upload"]},{"mode":"fail","ops":["destroy"]}]`.
/// Each request replaces every fault of the cloud. Answers the faults now in force.
pub async fn set_fault(
    State(state): State<Arc<AppState>>,
    Path(cloud): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let invalid =
        |err: serde_json::Error| ApiError::bad_request(format!("Invalid fault request: {err}"));
    let requests: Vec<FaultRequest> = if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice(&body).map_err(invalid)?
    } else {
        vec![serde_json::from_slice(&body).map_err(invalid)?]
    };
    let mut faults: Vec<Fault> = Vec::new();
    for request in requests {
        let Some(fault) = parse_fault(request)? else {
            continue;
        };
        if faults
            .iter()
            .any(|f| f.ops.iter().any(|op| fault.ops.contains(op)))
        {
            return Err(ApiError::bad_request(
                "two faults name the same op: give each op one fault",
            ));
        }
        faults.push(fault);
    }
    state.set_faults(&cloud, faults);
    Ok(Json(faults_json(&state.faults(&cloud))))
}

/// `GET /__standin/{cloud}/fault`: the fault in force.
pub async fn get_fault(
    State(state): State<Arc<AppState>>,
    Path(cloud): Path<String>,
) -> Json<Value> {
    Json(faults_json(&state.faults(&cloud)))
}

/// `GET /__standin/{cloud}/calls`: `{"upload": n, "destroy": n}`, the calls received so far,
/// whatever they were answered; a test tells "nothing was uploaded" from "uploaded, then
/// destroyed" by them.
pub async fn calls(State(state): State<Arc<AppState>>, Path(cloud): Path<String>) -> Json<Value> {
    let (upload, destroy) = state.calls(&cloud);
    Json(json!({ "upload": upload, "destroy": destroy }))
}

/// `GET /__standin/{cloud}/assets`: `[{"public_id","bytes","format"}]` sorted by public ID.
pub async fn list_assets(
    State(state): State<Arc<AppState>>,
    Path(cloud): Path<String>,
) -> Json<Value> {
    let assets = state
        .list(&cloud)
        .iter()
        .map(|asset| {
            json!({
                "public_id": asset.public_id,
                "bytes": asset.bytes,
                "format": asset.format.name(),
            })
        })
        .collect();
    Json(Value::Array(assets))
}

fn parse_fault(request: FaultRequest) -> Result<Option<Fault>, ApiError> {
    let kind = match request.mode.as_str() {
        "none" => return Ok(None),
        mode @ ("fail" | "fail-after") => {
            let code = request.status.unwrap_or(500);
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("fault status must be 400-599, got {code}"))
                })?;
            if mode == "fail" {
                FaultKind::Fail { status }
            } else {
                FaultKind::FailAfter { status }
            }
        }
        "hang" => {
            let delay_ms = request
                .delay_ms
                .ok_or_else(|| ApiError::bad_request("hang mode needs delay_ms"))?;
            let delay = Duration::from_millis(delay_ms);
            if delay > MAX_DELAY {
                return Err(ApiError::bad_request(format!(
                    "delay_ms must be at most {}",
                    MAX_DELAY.as_millis()
                )));
            }
            FaultKind::Hang { delay }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown fault mode {other:?}: use none, fail, fail-after or hang"
            )));
        }
    };
    let ops = match request.ops {
        None => vec![Op::Upload, Op::Destroy],
        Some(names) => names
            .iter()
            .map(|name| {
                Op::from_name(name).ok_or_else(|| {
                    ApiError::bad_request(format!("unknown op {name:?}: use upload or destroy"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if ops.is_empty() {
        return Err(ApiError::bad_request("ops must name upload and/or destroy"));
    }
    Ok(Some(Fault { kind, ops }))
}

/// `{"mode":"none"}`, the one fault, or an array of several.
fn faults_json(faults: &[Fault]) -> Value {
    match faults {
        [] => json!({ "mode": "none" }),
        [one] => fault_json(one),
        several => Value::Array(several.iter().map(fault_json).collect()),
    }
}

fn fault_json(fault: &Fault) -> Value {
    let ops: Vec<&str> = fault.ops.iter().map(|op| op.name()).collect();
    match fault.kind {
        FaultKind::Fail { status } => {
            json!({ "mode": "fail", "status": status.as_u16(), "ops": ops })
        }
        FaultKind::Hang { delay } => {
            json!({ "mode": "hang", "delay_ms": delay.as_millis() as u64, "ops": ops })
        }
        FaultKind::FailAfter { status } => {
            json!({ "mode": "fail-after", "status": status.as_u16(), "ops": ops })
        }
    }
}
