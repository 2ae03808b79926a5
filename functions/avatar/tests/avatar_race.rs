//! Concurrent replacements of one user's avatar: exactly one image is left at Cloudinary, the
//! one the user points at.
mod common;

use common::*;
use testkit::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_replacements_leave_exactly_one_avatar_the_one_the_user_points_at() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let app = t.app;
    let requests = (1..=10).map(|n| {
        let req = signed_in.cookie(avatar_form(png(n)));
        tokio::spawn(async move { avatar::handle(app, req).await })
    });
    let responses = futures::future::join_all(requests).await;
    let mut answered = Vec::new();
    for resp in responses {
        let resp = resp.expect("no panic");
        let body = testkit::envelope(&resp, 200);
        answered.push(
            body["data"]["avatar"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let (public_id, url) = stored_avatar(&t, &user).await;
    assert_ne!(public_id, old.public_id);
    assert_eq!(
        t.image_ids().await,
        [public_id],
        "exactly one image is left"
    );
    assert!(
        answered.contains(&url),
        "one of the answers is the final state"
    );
    answered.sort();
    answered.dedup();
    assert_eq!(
        answered.len(),
        10,
        "every request wrote its own image in turn"
    );
    assert_eq!(t.count("image_leases").await, 0);
    assert_eq!(t.count("image_destroys").await, 0);
    assert!(t.staged_files().is_empty());
}
