//! current-user handler tests against the real database: who is signed in, from a cookie or a
//! Bearer token, and every token that must be refused.
mod common {
    pub mod refused;
}

use common::refused::{self, presenting, snapshot};
use current_user::handle;
use serde_json::Value;
use shared::{auth::MISSING_TOKEN, users::PublicUser};
use testkit::{TestApp, envelope, event, request};

const PATH: &str = "/api/v1/users/current-user";

fn get() -> lambda_http::Request {
    request("GET", PATH, None, "")
}

fn assert_no_secrets(v: &Value) {
    let text = v.to_string();
    for leak in ["password", "refreshToken", "$argon2", "$2b$"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn the_signed_in_user_is_returned_for_a_cookie_or_a_bearer_token() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("alice", "alice@example.com").await;
    let s = t.sign_in(&user).await;
    for req in [s.cookie(get()), s.bearer(get())] {
        let resp = handle(t.app, req).await;
        let v = envelope(&resp, 200);
        assert_eq!(v["message"], "User fetched successfully");
        let fetched: PublicUser = serde_json::from_value(v["data"].clone()).expect("a user");
        assert_eq!(fetched, PublicUser::from(&user));
        assert_no_secrets(&v);
        assert!(testkit::set_cookies(&resp).is_empty(), "no cookie is set");
    }
}

#[tokio::test]
async fn the_event_file_answers_200_once_a_live_token_is_injected() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("videotube_demo", "demo@example.com").await;
    let s = t.sign_in(&user).await;
    let resp = handle(t.app, refused::event_as("current-user.json", &s)).await;
    let v = envelope(&resp, 200);
    assert_eq!(v["data"]["username"], "videotube_demo");
}

#[tokio::test]
async fn the_event_file_without_a_token_is_401_unauthorized_request() {
    let t = TestApp::spawn().await;
    let resp = handle(t.app, event("current-user-no-token.json")).await;
    let v = envelope(&resp, 401);
    assert_eq!(v["message"], MISSING_TOKEN);
}

#[tokio::test]
async fn an_event_file_replayed_with_its_placeholder_unreplaced_is_401_invalid_access_token() {
    let t = TestApp::spawn().await;
    let resp = handle(t.app, event("current-user.json")).await;
    assert_eq!(envelope(&resp, 401)["message"], shared::auth::INVALID_TOKEN);
}

#[tokio::test]
async fn a_forged_token_in_the_event_file_is_401_invalid_access_token() {
    let t = TestApp::spawn().await;
    let resp = handle(t.app, event("current-user-forged-token.json")).await;
    let v = envelope(&resp, 401);
    assert_eq!(v["message"], shared::auth::INVALID_TOKEN);
}

#[tokio::test]
async fn every_refused_token_is_a_401_with_its_message_and_changes_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("bob", "bob@example.com").await;
    let s = t.sign_in(&user).await;
    let mut cases = refused::stateless(&t, &s);
    cases.extend(refused::stale(&t, &user).await);
    let before = snapshot(&t).await;
    for case in cases {
        let resp = handle(t.app, presenting(get(), case.token.as_deref())).await;
        let v = envelope(&resp, 401);
        assert_eq!(v["message"], case.message, "{}", case.what);
        assert!(
            v["errors"].as_array().is_some_and(Vec::is_empty),
            "{}",
            case.what
        );
        assert!(testkit::set_cookies(&resp).is_empty(), "{}", case.what);
    }
    assert_eq!(
        snapshot(&t).await,
        before,
        "a refused request writes nothing"
    );
    let resp = handle(t.app, s.cookie(get())).await;
    envelope(&resp, 200);
}

#[tokio::test]
async fn the_cookie_is_taken_before_the_bearer_header_as_the_node_platform_takes_it() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("carol", "carol@example.com").await;
    let s = t.sign_in(&user).await;
    let req = s.bearer(testkit::with_cookie(get(), "accessToken", "not-a-jwt"));
    envelope(&handle(t.app, req).await, 401);
}

#[tokio::test]
async fn a_node_era_user_signed_in_with_us_is_fetched_without_its_node_refresh_token() {
    let t = TestApp::spawn().await;
    let node = testkit::node::node_user("nodeuser")
        .email("Node.User@Example.com")
        .bcrypt_cost(4)
        .logged_in("node-refresh-secret", std::time::Duration::from_secs(3600))
        .insert(&t.db)
        .await;
    let user = t.user(node.id).await.expect("exists");
    let s = t.sign_in(&user).await;
    let v = envelope(&handle(t.app, s.cookie(get())).await, 200);
    assert_eq!(v["data"]["email"], "Node.User@Example.com");
    assert_no_secrets(&v);
}

#[tokio::test]
async fn other_methods_are_405() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("dave", "dave@example.com").await;
    let s = t.sign_in(&user).await;
    let resp = handle(t.app, s.cookie(request("POST", PATH, None, ""))).await;
    envelope(&resp, 405);
    assert_eq!(resp.headers()["allow"], "GET");
}
