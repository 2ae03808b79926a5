//! Concurrent registrations of one username: the unique index picks exactly one winner, and
//! every loser destroys what it uploaded, or records it for a later destroy when Cloudinary
//! fails that destroy.

use super::common::*;
use mongodb::bson::doc;
use serde_json::json;
use testkit::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_registrations_of_one_username_give_one_201_and_nineteen_409s() {
    let t = TestApp::spawn().await;
    let username = unique_username();
    let app = t.app;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let parts = with_text(
                valid_parts(&username),
                "email",
                format!("racer{i}.{username}@example.com"),
            );
            let req = request(&parts);
            tokio::spawn(async move { register::handle(app, req).await })
        })
        .collect();
    let mut created = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let resp = task.await.expect("the task completes");
        match resp.status().as_u16() {
            201 => created.push(testkit::envelope(&resp, 201)),
            409 => {
                let body = testkit::envelope(&resp, 409);
                assert_eq!(error_fields(&body), ["username"], "{body}");
                conflicts += 1;
            }
            other => panic!("unexpected status {other}: {:?}", resp.body()),
        }
    }
    assert_eq!((created.len(), conflicts), (1, 19));
    assert_eq!(t.count("users").await, 1);
    let winner = t
        .find_one("users", doc! {"username": &username})
        .await
        .expect("the winner");
    let avatar = winner.get_str("avatarPublicId").expect("avatarPublicId");
    assert_eq!(
        t.image_ids().await,
        [avatar],
        "the stand-in holds exactly the winner's images"
    );
    assert_eq!(
        created[0]["data"]["email"],
        winner.get_str("email").expect("email")
    );
    assert!(t.staged_files().is_empty());
}

/// Losers of the insert race whose destroy Cloudinary fails record their uploads instead of
/// orphaning them, and a later registration destroys them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losers_whose_destroy_fails_record_their_uploads_and_a_later_registration_destroys_them() {
    let t = TestApp::spawn().await;
    t.set_fault(json!({"mode": "fail", "status": 500, "ops": ["destroy"]}))
        .await;
    let username = unique_username();
    let app = t.app;
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let parts = with_text(
                valid_parts(&username),
                "email",
                format!("loser{i}.{username}@example.com"),
            );
            let req = request(&parts);
            tokio::spawn(async move { register::handle(app, req).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("the task completes").status().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409]);
    let winner = t
        .find_one("users", doc! {"username": &username})
        .await
        .expect("the winner");
    let kept = winner.get_str("avatarPublicId").expect("avatarPublicId");
    let mut recorded = testkit::images::recorded_destroys(&t.db).await;
    assert!(!recorded.is_empty(), "no loser got as far as its upload");
    recorded.push(kept.to_owned());
    recorded.sort();
    assert_eq!(
        t.image_ids().await,
        recorded,
        "every image but the winner's is recorded"
    );

    t.set_fault(json!({"mode": "none"})).await;
    let resp = send(&t, request(&valid_parts(&unique_username()))).await;
    let other = testkit::envelope(&resp, 201)["data"]["username"].clone();
    let other = t
        .find_one("users", doc! {"username": other.as_str().expect("name")})
        .await
        .expect("the later user");
    let mut expected = vec![
        kept.to_owned(),
        other.get_str("avatarPublicId").expect("id").to_owned(),
    ];
    expected.sort();
    assert_eq!(t.image_ids().await, expected);
    assert_eq!(t.count("image_destroys").await, 0);
}
