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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replacements_through_three_instances_leave_exactly_one_avatar() {
    // As Lambda runs them: each instance has its own client and state, only the database and
    // the cloud are shared.
    let t = TestApp::spawn().await;
    // Same database, cloud and secrets; a staging directory each, as each instance has its own
    // /tmp (in one process, a second app's first staging sweep would take the first's files).
    let instance = |n: u32| {
        let mut vars = t.vars.clone();
        let dir = format!("{}-instance{n}", t.var("UPLOAD_TMP_DIR"));
        vars.insert("UPLOAD_TMP_DIR".into(), dir);
        move |v: &mut std::collections::HashMap<String, String>| *v = vars
    };
    let others = [
        TestApp::spawn_with(instance(1)).await,
        TestApp::spawn_with(instance(2)).await,
    ];
    let apps = [t.app, others[0].app, others[1].app];
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let requests = (0..9u32).map(|n| {
        let app = apps[n as usize % apps.len()];
        let req = signed_in.bearer(avatar_form(png(n + 1)));
        tokio::spawn(async move { avatar::handle(app, req).await })
    });
    for resp in futures::future::join_all(requests).await {
        testkit::envelope(&resp.expect("no panic"), 200);
    }
    let (public_id, _) = stored_avatar(&t, &user).await;
    assert_ne!(public_id, old.public_id);
    assert_eq!(t.image_ids().await, [public_id]);
    assert_eq!(t.count("image_leases").await, 0);
    for app in [&t, &others[0], &others[1]] {
        assert!(app.staged_files().is_empty());
    }
}
