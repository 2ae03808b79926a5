//! Concurrent registrations of one username: the unique index picks exactly one winner, and
//! every loser destroys what it uploaded.

use super::common::*;
use mongodb::bson::doc;
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
