//! Faults: Cloudinary failing or hanging, the database going away, the staging directory
//! unusable. Each answers its documented status quickly and leaves nothing behind.

use std::time::{Duration, Instant};

use super::common::*;
use mongodb::bson::{DateTime, Document, doc};
use serde_json::json;
use testkit::{TestApp, multipart::Part, process::PrivateDatabase};

#[tokio::test]
async fn cloudinary_answering_500_is_502_with_no_user_no_image_and_no_staged_file() {
    let t = TestApp::spawn().await;
    // Uploads only: with destroys failing too, the upload is recorded for a later destroy
    // (an_upload_answered_504_whose_destroy_fails_is_recorded_and_destroyed_later).
    t.set_fault(json!({"mode": "fail", "status": 500, "ops": ["upload"]}))
        .await;
    let mut parts = valid_parts(&unique_username());
    parts.push(Part::file("coverImage", "cover.gif", "image/gif", gif()));
    let body = assert_rejected(&t, request(&parts), 502).await;
    assert_eq!(
        body["message"],
        "The image service failed; please try again"
    );
    assert!(t.image_ids().await.is_empty());
}

/// An upload we stop waiting for may be stored after its compensating destroy (the stand-in,
/// like Cloudinary, finishes a call whose client went away). It is recorded under the id the
/// user would have had, and a later registration destroys it once its check is due.
#[tokio::test]
async fn cloudinary_hanging_past_the_timeout_is_502_within_the_timeout_and_the_late_image_is_destroyed()
 {
    let timeout = Duration::from_secs(1);
    let hang = Duration::from_millis(3000);
    let t = TestApp::spawn_with(|v| {
        v.insert("CLOUDINARY_TIMEOUT".into(), "1s".into());
        v.insert("CLOUDINARY_CONNECT_TIMEOUT".into(), "1s".into());
    })
    .await;
    // Uploads hang; the compensating destroy of the possibly stored upload still answers.
    t.set_fault(json!({"mode": "hang", "delay_ms": hang.as_millis() as u64, "ops": ["upload"]}))
        .await;
    let started = Instant::now();
    let resp = send(&t, request(&valid_parts(&unique_username()))).await;
    let elapsed = started.elapsed();
    testkit::envelope(&resp, 502);
    assert!(
        elapsed >= timeout,
        "answered before the timeout: {elapsed:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_millis(1500),
        "502 must come within the timeout, took {elapsed:?}"
    );
    assert!(t.staged_files().is_empty());
    assert_eq!(t.count("users").await, 0);
    let recorded = t
        .find_one("image_destroys", doc! {})
        .await
        .expect("the upload of unknown outcome is recorded");
    assert_eq!(recorded.get_str("slot").ok(), Some("avatar"));
    let late = recorded.get_str("_id").expect("public id").to_owned();
    let due = recorded.get_datetime("nextAttemptAt").expect("due");
    assert!(
        due.timestamp_millis() - DateTime::now().timestamp_millis() > 30_000,
        "checked too soon: Cloudinary may still be storing it"
    );

    // The hung upload lands after its destroy: without the record it would be orphaned.
    t.set_fault(json!({"mode": "none"})).await;
    let late = [late];
    assert_eq!(
        t.image_ids_once(&late, hang + Duration::from_secs(10))
            .await,
        late,
        "the late upload is stored"
    );

    // Once its check is due, the next registration destroys it.
    t.db.collection::<Document>("image_destroys")
        .update_many(doc! {}, doc! {"$set": {"nextAttemptAt": DateTime::now()}})
        .await
        .expect("make the record due");
    let resp = send(&t, request(&valid_parts(&unique_username()))).await;
    let body = testkit::envelope(&resp, 201);
    let avatar = body["data"]["avatar"].as_str().expect("avatar URL");
    let ids = t.image_ids().await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(avatar.contains(&ids[0]), "{avatar} is not {ids:?}");
    assert_eq!(t.count("image_destroys").await, 0);
}

/// A 5xx may come from a proxy in front of a Cloudinary that stored the image: its outcome is
/// unknown, so the upload is destroyed by the public id we chose.
#[tokio::test]
async fn an_upload_answered_504_after_it_was_stored_is_destroyed() {
    let t = TestApp::spawn().await;
    t.set_fault(json!({"mode": "fail-after", "status": 504, "ops": ["upload"]}))
        .await;
    let parts = valid_parts(&unique_username());
    assert_rejected(&t, request(&parts), 502).await;
    assert!(t.image_ids().await.is_empty(), "{:?}", t.image_ids().await);
}

/// Cloudinary stores the avatar, answers 504 in its own error format (so it had finished) and
/// refuses the destroy: the avatar is recorded for a destroy at once under the id the user
/// would have had, and the next registration destroys it.
#[tokio::test]
async fn an_upload_answered_504_whose_destroy_fails_is_recorded_and_destroyed_later() {
    let t = TestApp::spawn().await;
    t.set_fault(json!([
        {"mode": "fail-after", "status": 504, "ops": ["upload"]},
        {"mode": "fail", "status": 500, "ops": ["destroy"]},
    ]))
    .await;
    testkit::envelope(
        &send(&t, request(&valid_parts(&unique_username()))).await,
        502,
    );
    assert_eq!(t.count("users").await, 0);
    let recorded = t
        .find_one("image_destroys", doc! {})
        .await
        .expect("the upload whose destroy failed is recorded");
    let stray = recorded.get_str("_id").expect("public id").to_owned();
    assert_eq!(t.image_ids().await, [stray], "it is still stored");

    t.set_fault(json!({"mode": "none"})).await;
    let body = testkit::envelope(
        &send(&t, request(&valid_parts(&unique_username()))).await,
        201,
    );
    let avatar = body["data"]["avatar"].as_str().expect("avatar URL");
    let ids = t.image_ids().await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(avatar.contains(&ids[0]), "{avatar} is not {ids:?}");
    assert_eq!(t.count("image_destroys").await, 0);
}

/// The insert reaches the database and is applied, but its answer is lost with the connection:
/// the user exists and points at the images, so they must not be destroyed. Asked by `_id`
/// (which we chose), the database says the insert landed, and the answer is the 201 it was.
#[tokio::test]
async fn an_insert_whose_answer_is_lost_but_that_was_applied_is_answered_as_created() {
    let proxy = testkit::wire::Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), proxy.uri());
    })
    .await;
    proxy.lose_next("insert", "users");
    let username = unique_username();
    let resp = send(&t, request(&valid_parts(&username))).await;
    assert!(proxy.lost(), "the insert's answer was lost");
    let body = testkit::envelope(&resp, 201);
    assert_eq!(body["data"]["username"], username.as_str());
    let avatar = body["data"]["avatar"].as_str().expect("avatar URL");
    let images = t.image_ids().await;
    assert_eq!(images.len(), 1, "the avatar was kept: {images:?}");
    assert!(avatar.contains(&images[0]), "{avatar} is {images:?}");
    assert_eq!(t.count("users").await, 1);
}

#[tokio::test]
async fn a_failed_cover_upload_destroys_the_avatar_that_was_uploaded() {
    let t = TestApp::spawn().await;
    let mut parts = valid_parts(&unique_username());
    // GIF magic bytes (so we accept it) but no image inside: Cloudinary refuses this one only,
    // and the fault is the client's file, so it is a 415 naming it, not a 502.
    parts.push(Part::file(
        "coverImage",
        "cover.gif",
        "image/gif",
        b"GIF89a\x01".to_vec(),
    ));
    let body = assert_rejected(&t, request(&parts), 415).await;
    assert_eq!(
        body["message"],
        "Cover image could not be read as an image: the file is damaged or incomplete",
        "{body}"
    );
    assert!(
        t.image_ids().await.is_empty(),
        "the avatar must have been destroyed"
    );
}

#[tokio::test]
async fn an_unusable_staging_directory_is_500_with_nothing_written() {
    let t = TestApp::spawn_with(|v| {
        let missing =
            std::env::temp_dir().join(format!("videotube-missing-{}", testkit::random_suffix()));
        v.insert("UPLOAD_TMP_DIR".into(), missing.display().to_string());
    })
    .await;
    std::fs::remove_dir(t.staging_dir()).expect("remove the staging directory testkit created");
    let body = assert_rejected(&t, request(&valid_parts(&unique_username())), 500).await;
    assert_eq!(body["message"], "Something went wrong on our side");
}

#[tokio::test]
async fn the_database_going_away_is_a_fast_503_and_registration_recovers_without_a_restart() {
    let mut db = PrivateDatabase::start();
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), db.uri());
        v.insert("MONGODB_SERVER_SELECTION_TIMEOUT".into(), "1s".into());
        v.insert("MONGODB_CONNECT_TIMEOUT".into(), "1s".into());
    })
    .await;
    register_ok(&t, &valid_parts(&unique_username())).await;
    let images = t.image_ids().await;
    assert_eq!(images.len(), 1);

    db.kill();
    let username = unique_username();
    let uploads = t.upload_calls().await;
    let started = Instant::now();
    let resp = send(&t, request(&valid_parts(&username))).await;
    let elapsed = started.elapsed();
    testkit::envelope(&resp, 503);
    assert!(
        resp.headers().contains_key("retry-after"),
        "a 503 says when to retry"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "503 must be quick, took {elapsed:?}"
    );
    assert!(t.staged_files().is_empty());
    assert_eq!(t.image_ids().await, images);
    assert_eq!(
        t.upload_calls().await,
        uploads,
        "nothing is uploaded while the database is down"
    );

    db.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = send(&t, request(&valid_parts(&username))).await;
        match resp.status().as_u16() {
            201 => break,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            _ => panic!(
                "the same app must recover once the database is back: {:?}",
                testkit::envelope(&resp, 201)
            ),
        }
    }
    assert_eq!(t.count("users").await, 2);
    assert_eq!(t.image_ids().await.len(), 2);
    assert!(t.staged_files().is_empty());
}
