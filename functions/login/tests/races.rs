//! A login racing a password change. The change revokes the sessions it can see; a login that
//! read the old hash before the change but inserts its session after that revoke would keep a
//! session the change meant to end, so the login asks, once its session is in, whether the
//! hash it verified is still the account's. A proxy holds the login's session insert back
//! while the test changes the account, as a concurrent request would.
use std::time::Duration;

use lambda_http::{Body, Response};
use login::{INVALID_CREDENTIALS, handle};
use mongodb::bson::{Document, doc};
use serde_json::json;
use shared::{domain::UserId, sessions, users::UserDoc};
use testkit::{PASSWORD, TestApp, envelope, post_json, wire::Proxy};

/// Starts a login of `user` whose session insert the proxy holds, runs `meanwhile` while it is
/// held, and returns the login's answer.
async fn login_around<F: std::future::Future<Output = ()>>(
    proxy: &Proxy,
    t: &TestApp,
    user: &UserDoc,
    meanwhile: F,
) -> Response<Body> {
    proxy.hold_next("insert", "sessions", Duration::from_secs(2));
    let app = t.app;
    let body = json!({"username": user.username, "password": PASSWORD});
    let pending =
        tokio::spawn(async move { handle(app, post_json("/api/v1/users/login", &body)).await });
    proxy.wait_held("the session's insert").await;
    meanwhile.await;
    pending.await.expect("the handler does not panic")
}

/// Sets `user`'s stored hash to `hash`, then ends every session of the user, as
/// change-password does (its own session aside, which this user has none of).
async fn change_hash(t: &TestApp, user: &UserDoc, hash: String) {
    t.db.collection::<Document>("users")
        .update_one(doc! {"_id": user.id}, doc! {"$set": {"password": hash}})
        .await
        .expect("the new hash");
    let store = t.app.store().await.expect("store");
    sessions::revoke_all_of(store, UserId(user.id), None)
        .await
        .expect("the revoke");
}

async fn live_sessions(t: &TestApp) -> u64 {
    t.db.collection::<Document>("sessions")
        .count_documents(doc! {"revokedAt": null})
        .await
        .expect("count")
}

async fn app_behind(proxy: &Proxy) -> TestApp {
    let uri = proxy.uri();
    TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), uri);
    })
    .await
}

#[tokio::test]
async fn a_password_changed_while_the_login_opened_its_session_ends_that_login() {
    let proxy = Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = app_behind(&proxy).await;
    let user = t.seed_user("carol", "carol@example.com").await;
    let new_hash = shared::password::rehash("a brand new passphrase")
        .await
        .expect("hash");
    let resp = login_around(&proxy, &t, &user, change_hash(&t, &user, new_hash)).await;
    assert_eq!(envelope(&resp, 401)["message"], INVALID_CREDENTIALS);
    assert!(
        !resp.headers().contains_key("set-cookie"),
        "no tokens handed out"
    );
    assert_eq!(
        live_sessions(&t).await,
        0,
        "the session opened with the old password did not outlive the change"
    );
}

#[tokio::test]
async fn a_hash_upgraded_while_the_login_opened_its_session_keeps_the_login() {
    let proxy = Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = app_behind(&proxy).await;
    let user = t.seed_user("dave", "dave@example.com").await;
    // Another login's upgrade: a new hash of the same password. Nothing is revoked by it.
    let same_password = shared::password::rehash(PASSWORD).await.expect("hash");
    let upgrade = async {
        t.db.collection::<Document>("users")
            .update_one(
                doc! {"_id": user.id},
                doc! {"$set": {"password": same_password}},
            )
            .await
            .expect("the upgrade");
    };
    let resp = login_around(&proxy, &t, &user, upgrade).await;
    envelope(&resp, 200);
    assert_eq!(live_sessions(&t).await, 1, "the login's session stands");
}
