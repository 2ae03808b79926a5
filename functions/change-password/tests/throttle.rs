//! change-password's old-password check sits behind the login throttles: guessing with a
//! stolen session is refused with a 429 like guessing at login, and runs no hash.
//!
//! Its own test binary: `shared::password::verifications()` counts every check in the process.
use change_password::handle;
use serde_json::json;
use shared::password::verifications;
use testkit::{PASSWORD, TestApp, envelope, from_address, post_json};

const PATH: &str = "/api/v1/users/change-password";

#[tokio::test]
async fn old_password_guesses_are_throttled_per_address_and_a_refusal_runs_no_hash() {
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
