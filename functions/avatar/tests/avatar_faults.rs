//! Cloudinary and the database failing around an avatar replacement: no orphaned image, no
//! half-done write, and a failed destroy of the old image retried by a later request.
mod common;

use std::time::{Duration, Instant};

use common::*;
use mongodb::bson::{DateTime, Document, doc};
use serde_json::json;
use shared::profile_images;
use testkit::{TestApp, process::PrivateDatabase};

#[tokio::test]
async fn cloudinary_failing_on_upload_is_502_and_nothing_changes() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    t.set_fault(json!({"mode": "fail", "status": 500, "ops": ["upload"]}))
        .await;
    let body = assert_refused(&t, &user, signed_in.cookie(avatar_form(png(1))), 502).await;
    assert_eq!(
        body["message"],
        "The image service failed; please try again"
    );
}

/// PNG magic bytes, so we take it, but nothing Cloudinary can read: the client's file is at
/// fault, a 415 like any other file that is not an image we accept, not a 502 to retry.
#[tokio::test]
async fn a_damaged_image_cloudinary_cannot_read_is_415_and_nothing_changes() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let mut damaged = png(1);
    damaged.truncate(20);
    let body = assert_refused(&t, &user, signed_in.cookie(avatar_form(damaged)), 415).await;
    assert_eq!(
        body["message"],
        "Avatar could not be read as an image: the file is damaged or incomplete"
    );
}

/// An upload we stop waiting for may still be stored after its compensating destroy (the
/// stand-in, like Cloudinary, finishes a call whose client went away). It is recorded, and the
/// first request after its check is due destroys it.
#[tokio::test]
async fn cloudinary_hanging_past_the_timeout_is_502_within_the_timeout_and_the_late_image_is_destroyed()
 {
    let t = TestApp::spawn_with(|v| {
        v.insert("CLOUDINARY_TIMEOUT".into(), "1s".into());
        v.insert("CLOUDINARY_CONNECT_TIMEOUT".into(), "1s".into());
    })
    .await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let before = t.user_document(user.id).await;
    let hang = Duration::from_millis(2500);
    t.set_fault(json!({"mode": "hang", "delay_ms": hang.as_millis() as u64, "ops": ["upload"]}))
        .await;
    let started = Instant::now();
    let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
    let elapsed = started.elapsed();
    testkit::envelope(&resp, 502);
    assert!(elapsed < hang, "{elapsed:?}");
    assert!(t.staged_files().is_empty());
    assert_eq!(t.user_document(user.id).await, before, "the user changed");
    assert_eq!(t.count("image_leases").await, 0, "a lease was left");
    let recorded = t
        .find_one("image_destroys", doc! {})
        .await
        .expect("the upload of unknown outcome is recorded");
    assert_eq!(recorded.get_object_id("userId").ok(), Some(user.id));
    assert_eq!(recorded.get_str("slot").ok(), Some("avatar"));
    let late = recorded.get_str("_id").expect("public id").to_owned();
    let due = recorded.get_datetime("nextAttemptAt").expect("due");
    assert!(
        due.timestamp_millis() - DateTime::now().timestamp_millis() > 30_000,
        "checked too soon: Cloudinary may still be storing it"
    );

    // The hung upload lands after its destroy: without the record it would be orphaned.
    t.set_fault(json!({"mode": "none"})).await;
    let mut both = vec![late.clone(), old.public_id.clone()];
    both.sort();
    assert_eq!(
        t.image_ids_once(&both, hang + Duration::from_secs(10))
            .await,
        both,
        "the late upload is stored"
    );

    // Once the check is due, the next request destroys it beside its own replaced image.
    t.db.collection::<Document>("image_destroys")
        .update_many(doc! {}, doc! {"$set": {"nextAttemptAt": DateTime::now()}})
        .await
        .expect("make the record due");
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(2)))).await, 200);
    let (current, _) = stored_avatar(&t, &user).await;
    assert_eq!(t.image_ids().await, [current]);
    assert_eq!(t.count("image_destroys").await, 0);
}

/// Cloudinary stores the upload, answers 504 in its own error format (so it had finished) and
/// then refuses the destroy: the image is recorded for a destroy at once, not orphaned, and the
/// next request destroys it.
#[tokio::test]
async fn an_upload_answered_504_whose_destroy_fails_is_recorded_and_destroyed_by_the_next_request()
{
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    t.set_fault(json!([
        {"mode": "fail-after", "status": 504, "ops": ["upload"]},
        {"mode": "fail", "status": 500, "ops": ["destroy"]},
    ]))
    .await;
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(1)))).await, 502);
    let recorded = t
        .find_one("image_destroys", doc! {})
        .await
        .expect("the upload whose destroy failed is recorded");
    assert_eq!(recorded.get_object_id("userId").ok(), Some(user.id));
    let due = recorded.get_datetime("nextAttemptAt").expect("due");
    assert!(*due <= DateTime::now(), "due at once: {due}");
    let stray = recorded.get_str("_id").expect("public id").to_owned();
    let mut both = vec![stray, old.public_id.clone()];
    both.sort();
    assert_eq!(t.image_ids().await, both, "it is still stored");

    t.set_fault(json!({"mode": "none"})).await;
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(2)))).await, 200);
    let (current, _) = stored_avatar(&t, &user).await;
    assert_eq!(t.image_ids().await, [current]);
    assert_eq!(t.count("image_destroys").await, 0);
}

#[tokio::test]
async fn the_database_failing_after_the_upload_is_503_and_the_new_image_is_destroyed() {
    let mut db = PrivateDatabase::start();
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), db.uri());
        v.insert("MONGODB_SERVER_SELECTION_TIMEOUT".into(), "1s".into());
        v.insert("MONGODB_CONNECT_TIMEOUT".into(), "1s".into());
    })
    .await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let before = t.user_document(user.id).await;
    // The upload takes a while; the database dies while it runs.
    t.set_fault(json!({"mode": "hang", "delay_ms": 1500, "ops": ["upload"]}))
        .await;
    let uploads = t.upload_calls().await;
    let app = t.app;
    let req = signed_in.cookie(avatar_form(png(1)));
    let pending = tokio::spawn(async move { avatar::handle(app, req).await });
    // Once the upload has reached the stand-in (so authentication is over).
    t.await_upload_calls(uploads + 1, Duration::from_secs(10))
        .await;
    db.kill();
    let resp = pending.await.expect("the handler does not panic");
    testkit::envelope(&resp, 503);
    t.set_fault(json!({"mode": "none"})).await;
    assert_eq!(
        t.image_ids().await,
        std::slice::from_ref(&old.public_id),
        "the new image is destroyed, the old one kept"
    );
    assert!(t.staged_files().is_empty());
    db.resume();
    assert_eq!(
        t.user_document(user.id).await,
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_user_deleted_while_the_upload_runs_is_401_and_the_new_image_is_destroyed() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    t.set_fault(json!({"mode": "hang", "delay_ms": 800, "ops": ["upload"]}))
        .await;
    let uploads = t.upload_calls().await;
    let app = t.app;
    let req = signed_in.cookie(avatar_form(png(1)));
    let pending = tokio::spawn(async move { avatar::handle(app, req).await });
    t.await_upload_calls(uploads + 1, Duration::from_secs(10))
        .await;
    t.db.collection::<Document>("users")
        .delete_one(doc! {"_id": user.id})
        .await
        .expect("delete the user");
    let resp = pending.await.expect("no panic");
    testkit::envelope(&resp, 401);
    assert_eq!(t.image_ids().await, [old.public_id]);
    assert_eq!(t.count("users").await, 0, "no user is created by the write");
}

#[tokio::test]
async fn a_failed_destroy_of_the_old_image_is_200_recorded_and_retried_by_a_later_request() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    t.set_fault(json!({"mode": "fail", "status": 500, "ops": ["destroy"]}))
        .await;
    let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
    testkit::envelope(&resp, 200);
    let (first, _) = stored_avatar(&t, &user).await;
    let mut expected = vec![first.clone(), old.public_id.clone()];
    expected.sort();
    assert_eq!(
        t.image_ids().await,
        expected,
        "the old image is still there"
    );
    let recorded = t
        .find_one("image_destroys", doc! {"_id": &old.public_id})
        .await
        .expect("the failed destroy is recorded");
    assert_eq!(recorded.get_object_id("userId").ok(), Some(user.id));

    // While Cloudinary still fails, a later request keeps the record (and answers 200).
    let resp = send(&t, signed_in.cookie(avatar_form(png(2)))).await;
    testkit::envelope(&resp, 200);
    let (second, _) = stored_avatar(&t, &user).await;
    assert_eq!(
        t.count("image_destroys").await,
        2,
        "both replaced images wait"
    );
    assert!(t.image_ids().await.contains(&second));

    // Once Cloudinary is back, the next request destroys what is due besides its own old one.
    t.set_fault(json!({"mode": "none"})).await;
    t.db.collection::<Document>("image_destroys")
        .update_many(doc! {}, doc! {"$set": {"nextAttemptAt": DateTime::now()}})
        .await
        .expect("make every record due");
    let resp = send(&t, signed_in.cookie(avatar_form(png(3)))).await;
    testkit::envelope(&resp, 200);
    let (third, _) = stored_avatar(&t, &user).await;
    assert_eq!(t.image_ids().await, [third]);
    assert_eq!(t.count("image_destroys").await, 0);
}

#[tokio::test]
async fn a_recorded_image_a_user_points_at_again_is_never_destroyed() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let (_, _, kept) = user_with_avatar(&t).await;
    // A record naming an image that (some other writer says) a user points at.
    let other = t
        .find_one("users", doc! {"avatarPublicId": &kept.public_id})
        .await
        .expect("user");
    t.db.collection::<Document>("image_destroys")
        .insert_one(doc! {
            "_id": &kept.public_id, "userId": other.get_object_id("_id").expect("id"),
            "slot": "avatar", "attempts": 3_i64, "createdAt": DateTime::now(),
            "nextAttemptAt": DateTime::now(),
        })
        .await
        .expect("record");
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(1)))).await, 200);
    let ids = t.image_ids().await;
    assert!(ids.contains(&kept.public_id), "{ids:?}");
    assert!(!ids.contains(&old.public_id));
    assert_eq!(
        t.count("image_destroys").await,
        0,
        "the stale record is dropped"
    );
    let _ = user;
}

#[tokio::test]
async fn a_lease_left_by_a_crashed_request_is_taken_over_once_it_has_expired() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    t.db.collection::<Document>(profile_images::LEASES)
        .insert_one(doc! {
            "_id": profile_images::lease_id(user.id), "holder": "crashed",
            "userId": user.id,
            "expiresAt": DateTime::from_millis(DateTime::now().timestamp_millis() - 60_000),
        })
        .await
        .expect("a stale lease");
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(1)))).await, 200);
    let (public_id, _) = stored_avatar(&t, &user).await;
    assert_ne!(public_id, old.public_id);
    assert_eq!(t.image_ids().await, [public_id]);
    let lease = t
        .find_one(
            profile_images::LEASES,
            doc! {"_id": profile_images::lease_id(user.id)},
        )
        .await;
    assert!(
        lease.is_none(),
        "the stale lease is gone and ours released: {lease:?}"
    );
}

/// A request that won the takeover ticket and died before deleting the lease: the ticket is
/// older than a lease lives, so the next request takes the next ticket instead of waiting for
/// good (FerretDB has no TTL to remove either).
#[tokio::test]
async fn a_takeover_abandoned_halfway_is_taken_over_again() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let lease = profile_images::lease_id(user.id);
    let minute_ago = DateTime::now().timestamp_millis() - 60_000;
    let leases = t.db.collection::<Document>(profile_images::LEASES);
    leases
        .insert_many([
            doc! {
                "_id": &lease, "holder": "crashed", "userId": user.id,
                "expiresAt": DateTime::from_millis(minute_ago),
            },
            doc! {
                "_id": format!("{lease}/takeover/crashed"), "holder": "died-too",
                "userId": user.id,
                "expiresAt": DateTime::from_millis(minute_ago + 24 * 3_600_000),
            },
        ])
        .await
        .expect("a stale lease and its abandoned ticket");
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(1)))).await, 200);
    assert!(
        t.find_one(profile_images::LEASES, doc! {"_id": &lease})
            .await
            .is_none()
    );
    assert!(
        t.find_one(
            profile_images::LEASES,
            doc! {"_id": format!("{lease}/takeover/crashed/1")}
        )
        .await
        .is_some(),
        "the next ticket won it"
    );
}

#[tokio::test]
async fn a_lease_held_past_the_wait_is_503_and_the_upload_is_destroyed() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let live = DateTime::from_millis(DateTime::now().timestamp_millis() + 120_000);
    t.db.collection::<Document>(profile_images::LEASES)
        .insert_one(doc! {
            "_id": profile_images::lease_id(user.id), "holder": "busy",
            "userId": user.id, "expiresAt": live,
        })
        .await
        .expect("a live lease");
    let doc_before = t.user_document(user.id).await;
    let images_before = t.image_ids().await;
    let started = Instant::now();
    let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
    testkit::envelope(&resp, 503);
    assert!(resp.headers().contains_key("retry-after"));
    let waited = started.elapsed();
    assert!(
        waited >= profile_images::LEASE_WAIT && waited < profile_images::LEASE_WAIT * 2,
        "{waited:?}"
    );
    assert_eq!(t.image_ids().await, images_before);
    assert_eq!(t.user_document(user.id).await, doc_before);
    assert!(t.staged_files().is_empty());
}

/// The request fails after its upload and Cloudinary then fails the destroy as well: the
/// upload is recorded rather than orphaned, and the next request destroys it.
#[tokio::test]
async fn an_upload_whose_destroy_fails_after_a_503_is_recorded_and_destroyed_later() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let live = DateTime::from_millis(DateTime::now().timestamp_millis() + 120_000);
    let leases = t.db.collection::<Document>(profile_images::LEASES);
    leases
        .insert_one(doc! {
            "_id": profile_images::lease_id(user.id), "holder": "busy",
            "userId": user.id, "expiresAt": live,
        })
        .await
        .expect("a live lease");
    t.set_fault(json!({"mode": "fail", "status": 500, "ops": ["destroy"]}))
        .await;
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(1)))).await, 503);
    let recorded = t
        .find_one("image_destroys", doc! {})
        .await
        .expect("the upload whose destroy failed is recorded");
    assert_eq!(recorded.get_object_id("userId").ok(), Some(user.id));
    let stray = recorded.get_str("_id").expect("public id").to_owned();
    let mut both = vec![stray, old.public_id.clone()];
    both.sort();
    assert_eq!(t.image_ids().await, both, "it is still stored");

    t.set_fault(json!({"mode": "none"})).await;
    leases
        .delete_many(doc! {})
        .await
        .expect("release the lease");
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(2)))).await, 200);
    let (current, _) = stored_avatar(&t, &user).await;
    assert_eq!(t.image_ids().await, [current]);
    assert_eq!(t.count("image_destroys").await, 0);
}

/// Under the lease the current image is read, then the user is pointed at the new one. When
/// another writer changes the image in between (a request that took over a lease this one
/// held too long, because its write stalled), the write must not land on top of it: the
/// image the other writer put there would be orphaned. A proxy holds our write back while the
/// test writes, as that other request would.
#[tokio::test]
async fn an_image_changed_while_our_write_stalled_is_kept_and_ours_destroyed() {
    let proxy = testkit::wire::Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), proxy.uri());
    })
    .await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let theirs = t.upload_image(&png(7)).await;
    proxy.hold_next("findAndModify", "users", Duration::from_secs(3));
    let app = t.app;
    let req = signed_in.cookie(avatar_form(png(1)));
    let pending = tokio::spawn(async move { avatar::handle(app, req).await });
    proxy.wait_held("the write").await;
    t.db.collection::<Document>("users")
        .update_one(
            doc! {"_id": user.id},
            doc! {"$set": {"avatar": &theirs.url, "avatarPublicId": &theirs.public_id}},
        )
        .await
        .expect("the other writer's image");
    let resp = pending.await.expect("the handler does not panic");
    testkit::envelope(&resp, 503);
    assert!(resp.headers().contains_key("retry-after"));
    let (current, _) = stored_avatar(&t, &user).await;
    assert_eq!(current, theirs.public_id, "the other writer's image stays");
    let mut expected = vec![old.public_id, theirs.public_id];
    expected.sort();
    assert_eq!(t.image_ids().await, expected, "ours is destroyed");
    assert!(t.staged_files().is_empty());
    assert_eq!(t.count("image_leases").await, 0, "the lease is released");
}

/// The write lands but its answer is lost, and the database is then unreachable: the write
/// cannot be read back, nor its images recorded. The user points at the new image, so it must
/// not be destroyed (a broken avatar is worse than an orphan, which is logged), and neither
/// is the old one, which the user might still point at as far as the function can tell.
#[tokio::test]
async fn a_write_of_unknown_outcome_that_cannot_be_recorded_destroys_neither_image() {
    let proxy = testkit::wire::Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), proxy.uri());
        v.insert("MONGODB_SERVER_SELECTION_TIMEOUT".into(), "1s".into());
        v.insert("MONGODB_CONNECT_TIMEOUT".into(), "1s".into());
    })
    .await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    proxy.lose_next_then_go_dark("findAndModify", "users");
    let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
    assert!(proxy.lost(), "the write's answer was lost");
    testkit::envelope(&resp, 503);
    proxy.light();
    let (current, _) = stored_avatar(&t, &user).await;
    assert_ne!(current, old.public_id, "the write landed");
    let mut both = vec![current, old.public_id];
    both.sort();
    assert_eq!(t.image_ids().await, both, "neither image is destroyed");
    assert!(t.staged_files().is_empty());
}
