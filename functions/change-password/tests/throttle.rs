//! change-password's old-password check sits behind the login throttles: guessing with a
//! stolen session is refused with a 429 like guessing at login, and runs no hash.
//!
//! Its own test binary: `shared::password::verifications()` counts every check in the process,
//! so its tests take turns (`TURN`).
use change_password::handle;
use serde_json::json;
use shared::password::verifications;
use testkit::{PASSWORD, TestApp, envelope, from_address, post_json};

const PATH: &str = "/api/v1/users/change-password";

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn old_password_guesses_are_throttled_per_address_and_a_refusal_runs_no_hash() {
    let _turn = TURN.lock().await;
    let t = TestApp::spawn_with(|v| {
        v.insert("THROTTLE_FREE_FAILURES".into(), "2".into());
        v.insert("THROTTLE_DELAY".into(), "1m".into());
        v.insert("THROTTLE_MAX_DELAY".into(), "1m".into());
    })
    .await;
    let user = t.seed_user("erin", "erin@example.com").await;
    let session = t.sign_in(&user).await;
    let change = |old: &str, ip: &str| {
        let body = json!({"oldPassword": old, "newPassword": "a brand new passphrase"});
        from_address(session.cookie(post_json(PATH, &body)), ip)
    };
    let thief = "203.0.113.66";
    for _ in 0..2 {
        let resp = handle(t.app, change("guess", thief)).await;
        assert_eq!(envelope(&resp, 400)["message"], "Invalid old password");
    }
    let before = verifications();
    let hash_before = t
        .user_document(user.id)
        .await
        .get_str("password")
        .map(str::to_owned);
    let resp = handle(t.app, change(PASSWORD, thief)).await;
    let v = envelope(&resp, 429);
    assert_eq!(
        v["message"],
        "Too many failed attempts; please try again later"
    );
    assert_eq!(resp.headers()["retry-after"], "60");
    assert_eq!(verifications(), before, "no hash for a refused check");
    assert_eq!(
        t.user_document(user.id)
            .await
            .get_str("password")
            .map(str::to_owned),
        hash_before,
        "nothing changed"
    );

    let resp = handle(t.app, change(PASSWORD, "192.0.2.44")).await;
    envelope(&resp, 200);
    assert_eq!(
        verifications() - before,
        1,
        "from another address the owner's old password is checked, once"
    );
}

#[tokio::test]
async fn the_owners_device_cookie_outlasts_a_stranger_spending_their_shared_address() {
    let _turn = TURN.lock().await;
    let t = TestApp::spawn_with(|v| {
        v.insert("THROTTLE_ADDRESS_FAILURES".into(), "3".into());
    })
    .await;
    let owner = t.seed_user("frank", "frank@example.com").await;
    let stranger = t.seed_user("mallory", "mallory@example.com").await;
    let (owner_session, stranger_session) = (t.sign_in(&owner).await, t.sign_in(&stranger).await);
    // The device cookie frank's login handed his browser.
    let signed_in = login::handle(
        t.app,
        post_json(
            "/api/v1/users/login",
            &json!({"username": "frank", "password": PASSWORD}),
        ),
    )
    .await;
    envelope(&signed_in, 200);
    let device = testkit::set_cookies(&signed_in)
        .into_iter()
        .find(|c| c.name() == "loginDevice")
        .expect("login sets the device cookie");
    let body = json!({"oldPassword": PASSWORD, "newPassword": "a brand new passphrase"});
    let shared = "100.64.0.9";
    for _ in 0..3 {
        let guess = json!({"oldPassword": "guess", "newPassword": "a brand new passphrase"});
        let req = from_address(stranger_session.cookie(post_json(PATH, &guess)), shared);
        envelope(&handle(t.app, req).await, 400);
    }
    let before = verifications();
    let req = from_address(owner_session.cookie(post_json(PATH, &body)), shared);
    envelope(&handle(t.app, req).await, 429);
    assert_eq!(
        verifications(),
        before,
        "the shared address's budget is spent"
    );

    let req = from_address(owner_session.cookie(post_json(PATH, &body)), shared);
    let req = testkit::with_cookie(req, "loginDevice", device.value());
    envelope(&handle(t.app, req).await, 200);
    assert_eq!(verifications() - before, 1, "checked on the owner's device");
}
