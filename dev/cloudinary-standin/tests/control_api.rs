//! The `/__standin` control API: fault modes, per-cloud asset listings and the health check.

mod common;

use std::time::{Duration, Instant};

use common::{Standin, error_message, png};
use serde_json::json;

#[tokio::test]
async fn fail_fault_mode_answers_uploads_and_destroys_with_the_configured_status() {
    let standin = Standin::start().await;
    standin
        .upload_ok("failing", &[("public_id", "kept")], &png(1, 1))
        .await;
    let set = standin
        .set_fault("failing", json!({"mode": "fail", "status": 503}))
        .await;
    assert_eq!(set.status(), 200);

    let response = standin.upload("failing", &[], &png(1, 1)).await;
    assert_eq!(response.status(), 503);
    assert!(!error_message(response).await.is_empty());
    let (status, body) = standin.destroy("failing", "kept").await;
    assert_eq!(status, 503);
    assert!(body["error"]["message"].is_string());

    // Other clouds are unaffected, and mode none resets.
    assert_eq!(
        standin.upload("healthy", &[], &png(1, 1)).await.status(),
        200
    );
    assert_eq!(
        standin
            .set_fault("failing", json!({"mode": "none"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        standin.upload("failing", &[], &png(1, 1)).await.status(),
        200
    );
    assert_eq!(standin.destroy("failing", "kept").await.0, 200);
}

#[tokio::test]
async fn fail_after_mode_does_the_call_then_answers_the_error() {
    let standin = Standin::start().await;
    let set = standin
        .set_fault("late", json!({"mode": "fail-after", "status": 504}))
        .await;
    let set: serde_json::Value = set.json().await.expect("JSON");
    assert_eq!(
        set,
        json!({"mode": "fail-after", "status": 504, "ops": ["upload", "destroy"]})
    );
    let response = standin
        .upload("late", &[("public_id", "landed")], &png(1, 1))
        .await;
    assert_eq!(response.status(), 504);
    assert!(!error_message(response).await.is_empty());
    assert_eq!(
        standin.assets("late").await[0]["public_id"],
        "landed",
        "stored although the answer was an error"
    );
    let (status, _) = standin.destroy("late", "landed").await;
    assert_eq!(status, 504);
    assert_eq!(
        standin.assets("late").await,
        json!([]),
        "destroyed all the same"
    );
    let calls: serde_json::Value = standin
        .get(&format!("{}/__standin/late/calls", standin.base))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(calls, json!({"upload": 1, "destroy": 1}));
}

#[tokio::test]
async fn a_fault_restricted_to_uploads_leaves_destroy_alone() {
    let standin = Standin::start().await;
    standin
        .upload_ok("upload-only", &[("public_id", "x")], &png(1, 1))
        .await;
    let set = standin
        .set_fault(
            "upload-only",
            json!({"mode": "fail", "status": 500, "ops": ["upload"]}),
        )
        .await;
    let set: serde_json::Value = set.json().await.expect("JSON");
    assert_eq!(
        set,
        json!({"mode": "fail", "status": 500, "ops": ["upload"]})
    );

    assert_eq!(
        standin
            .upload("upload-only", &[], &png(1, 1))
            .await
            .status(),
        500
    );
    assert_eq!(
        standin.destroy("upload-only", "x").await,
        (200, json!({"result": "ok"}))
    );
}

#[tokio::test]
async fn hang_fault_mode_delays_the_answer_then_handles_the_call() {
    let standin = Standin::start().await;
    let delay = Duration::from_millis(1500);
    let set = standin
        .set_fault(
            "slow",
            json!({"mode": "hang", "delay_ms": delay.as_millis() as u64}),
        )
        .await;
    assert_eq!(set.status(), 200);

    let started = Instant::now();
    let response = standin
        .upload("slow", &[("public_id", "late")], &png(1, 1))
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(took >= delay * 9 / 10, "answered after {took:?}");
    assert_eq!(standin.assets("slow").await[0]["public_id"], "late");
}

/// As at Cloudinary, a call whose request arrived whole runs to completion when the client
/// stops waiting: a client timeout during a hang does not undo the upload.
#[tokio::test]
async fn a_hung_upload_whose_client_gave_up_is_still_stored() {
    let standin = Standin::start().await;
    let delay = Duration::from_millis(1200);
    standin
        .set_fault(
            "slow",
            json!({"mode": "hang", "delay_ms": delay.as_millis() as u64}),
        )
        .await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        standin.upload("slow", &[("public_id", "late")], &png(1, 1)),
    )
    .await;
    assert!(gave_up.is_err(), "the upload answered during the hang");
    assert_eq!(standin.assets("slow").await, json!([]), "stored too early");
    tokio::time::sleep(delay).await;
    assert_eq!(standin.assets("slow").await[0]["public_id"], "late");
}

/// One fault per op: here an upload that is stored and then answered 504, and a destroy that
/// is refused, so that what the upload stored stays.
#[tokio::test]
async fn an_array_sets_one_fault_per_op() {
    let standin = Standin::start().await;
    let faults = json!([
        {"mode": "fail-after", "status": 504, "ops": ["upload"]},
        {"mode": "fail", "status": 500, "ops": ["destroy"]},
    ]);
    let set = standin.set_fault("both", faults.clone()).await;
    assert_eq!(set.status(), 200);
    assert_eq!(set.json::<serde_json::Value>().await.ok(), Some(faults));
    let response = standin
        .upload("both", &[("public_id", "kept")], &png(1, 1))
        .await;
    assert_eq!(response.status(), 504);
    let (status, _) = standin.destroy("both", "kept").await;
    assert_eq!(status, 500);
    assert_eq!(standin.assets("both").await[0]["public_id"], "kept");

    let overlapping = json!([
        {"mode": "fail", "ops": ["upload"]},
        {"mode": "hang", "delay_ms": 10},
    ]);
    let response = standin.set_fault("both", overlapping).await;
    assert_eq!(response.status(), 400);
    assert!(error_message(response).await.contains("same op"));
    standin.set_fault("both", json!({"mode": "none"})).await;
    let (status, _) = standin.destroy("both", "kept").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_asset_listing_is_kept_per_cloud() {
    let standin = Standin::start().await;
    let image = png(2, 1);
    standin
        .upload_ok("cloud-a", &[("public_id", "b")], &image)
        .await;
    standin
        .upload_ok("cloud-a", &[("public_id", "a")], &image)
        .await;
    standin
        .upload_ok("cloud-b", &[("public_id", "c")], &image)
        .await;

    let bytes = image.len();
    assert_eq!(
        standin.assets("cloud-a").await,
        json!([
            {"public_id": "a", "bytes": bytes, "format": "png"},
            {"public_id": "b", "bytes": bytes, "format": "png"},
        ])
    );
    assert_eq!(
        standin.assets("cloud-b").await,
        json!([{"public_id": "c", "bytes": bytes, "format": "png"}])
    );
    assert_eq!(standin.assets("cloud-c").await, json!([]));
    // A public ID in one cloud is not served from another.
    let url = format!("{}/cloud-b/image/upload/v1/a.png", standin.base);
    assert_eq!(standin.get(&url).await.status(), 404);
}

#[tokio::test]
async fn an_invalid_fault_request_is_rejected() {
    let standin = Standin::start().await;
    for bad in [
        json!({"mode": "explode"}),
        json!({"mode": "fail", "status": 200}),
        json!({"mode": "hang"}),
        json!({"mode": "fail", "ops": ["list"]}),
        json!({"mode": "fail", "stauts": 500}),
    ] {
        let response = standin.set_fault("cloud", bad.clone()).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert!(!error_message(response).await.is_empty());
    }
    let current = standin
        .get(&format!("{}/__standin/cloud/fault", standin.base))
        .await;
    assert_eq!(
        current.json::<serde_json::Value>().await.ok(),
        Some(json!({"mode": "none"}))
    );
}

#[tokio::test]
async fn the_health_check_answers_ok() {
    let standin = Standin::start().await;
    let response = standin
        .get(&format!("{}/__standin/health", standin.base))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.ok().as_deref(), Some("ok"));
}
