//! Sessions that were open on the Node version at the switch survive: its refresh token, while
//! it still equals the user's stored `refreshToken`, is exchanged once for a session of ours.
use std::time::Duration;

use mongodb::bson::{Document, doc};
use refresh::handle;
use serde_json::json;
use testkit::{
    TestApp, from_address,
    node::{NodeUser, node_jwt, node_refresh_token, node_user},
    refresh_request,
    wire::Proxy,
};

const TEN_DAYS: Duration = Duration::from_secs(10 * 24 * 3600);

/// A Node-era user logged in on the Node version with `secret`, and the refresh token it holds.
async fn logged_in_on_node(t: &TestApp, name: &str, secret: &str) -> (NodeUser, String) {
    let node = node_user(name)
        .logged_in(secret, TEN_DAYS)
        .insert(&t.db)
        .await;
    let token = node.refresh_token.clone().expect("logged in on Node");
    (node, token)
}

#[tokio::test]
async fn a_node_era_refresh_token_is_exchanged_once_for_a_session_of_ours() {
    let t = TestApp::spawn().await;
    let (node, token) = logged_in_on_node(&t, "nico", t.var("REFRESH_TOKEN_SECRET")).await;

    let (status, v, ..) = t.refresh(handle, &token).await;
    assert_eq!(status, 200, "{v}");
    let ours = v["data"]["refreshToken"].as_str().expect("a pair of ours");
    let claims = t
        .app
        .tokens
        .verify_refresh(ours)
        .expect("our refresh token");
    assert_eq!(claims.sub, node.id.to_hex());
    let access = t
        .app
        .tokens
        .verify_access(v["data"]["accessToken"].as_str().expect("access"))
        .expect("our access token");
    assert_eq!(
        (access.id.as_str(), access.username.as_str()),
        (claims.sub.as_str(), "nico")
    );
    assert!(
        t.user_document(node.id).await.get("refreshToken").is_none(),
        "removed in the same step"
    );
    assert_eq!(t.count("sessions").await, 1);

    let (status, ..) = t.refresh(handle, &token).await;
    assert_eq!(status, 401, "exchanged once");
    let (status, v, ..) = t.refresh(handle, ours).await;
    assert_eq!(status, 200, "the new session rotates as any other: {v}");
    assert_eq!(t.count("sessions").await, 1);
}

/// The tutorial's sample secrets are shorter than the 32 bytes ours must have, so a deployment
/// that used them switches to new secrets; its users logged in at the switch stay so when the
/// old refresh secret is given as NODE_REFRESH_TOKEN_SECRET, which verifies Node-era tokens only.
#[tokio::test]
async fn a_node_era_token_signed_with_a_short_old_secret_is_exchanged_with_node_refresh_token_secret()
 {
    let old_secret = "chai-aur-backend";
    let t = TestApp::spawn_with(|v| {
        v.insert("NODE_REFRESH_TOKEN_SECRET".into(), old_secret.into());
    })
    .await;
    let (_, token) = logged_in_on_node(&t, "tutor", old_secret).await;
    let (status, v, ..) = t.refresh(handle, &token).await;
    assert_eq!(status, 200, "{v}");
    let ours = v["data"]["refreshToken"].as_str().expect("a pair of ours");
    let (status, v, ..) = t.refresh(handle, ours).await;
    assert_eq!(
        status, 200,
        "ours still verify with REFRESH_TOKEN_SECRET: {v}"
    );
    // A token of ours signed with the old secret is not one of ours.
    let ours_claims = testkit::forge::claims_of(ours);
    let forged = testkit::forge::sign(
        jsonwebtoken::Algorithm::HS256,
        Some("rt+jwt"),
        &ours_claims,
        old_secret,
    );
    let (status, ..) = t.refresh(handle, &forged).await;
    assert_eq!(status, 401);

    // Without it, the same kind of token does not verify.
    let t = TestApp::spawn().await;
    let (_, token) = logged_in_on_node(&t, "tutor2", old_secret).await;
    let (status, ..) = t.refresh(handle, &token).await;
    assert_eq!(status, 401);
}

/// The session's insert is the compare-and-swap. The throttles are off here: with them on, a
/// burst from one address counts its own checks under way and may be refused whole (429, see
/// docs/decisions.md), which says nothing about the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_exchanges_of_one_node_token_have_exactly_one_winner() {
    let t = TestApp::spawn_with(|v| {
        v.insert("THROTTLE_ENABLED".into(), "false".into());
    })
    .await;
    let (_, token) = logged_in_on_node(&t, "racer", t.var("REFRESH_TOKEN_SECRET")).await;
    let app = t.app;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move {
                let req = refresh_request(&token);
                handle(app, req).await.status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(t.count("sessions").await, 1, "one session");
}

/// A Node-era refresh token is `{_id, iat, exp}` under the Node refresh secret: whoever knows
/// the secret (the tutorial's is public) and a user id needs only the `iat`. Guessing it is
/// throttled like guessing a password, before the stored token is even compared.
#[tokio::test]
async fn guessing_the_iat_of_a_node_era_token_is_throttled_per_address() {
    let t = TestApp::spawn_with(|v| {
        v.insert("THROTTLE_FREE_FAILURES".into(), "3".into());
        v.insert("THROTTLE_DELAY".into(), "1m".into());
        v.insert("THROTTLE_MAX_DELAY".into(), "1m".into());
    })
    .await;
    let secret = t.var("REFRESH_TOKEN_SECRET").to_owned();
    let (node, token) = logged_in_on_node(&t, "guessed", &secret).await;
    let before = t.user_document(node.id).await;
    let now = shared::tokens::now_secs();
    let forged = |iat: i64| {
        node_jwt(
            &secret,
            &json!({"_id": node.id.to_hex(), "iat": iat, "exp": iat + TEN_DAYS.as_secs() as i64}),
        )
    };
    let forger = "203.0.113.9";
    for k in 1..=3 {
        let req = from_address(refresh_request(&forged(now - 1000 - k)), forger);
        let (status, v, ..) = t.call(handle, req).await;
        assert_eq!(status, 401, "a wrong iat: {v}");
    }
    let req = from_address(refresh_request(&token), forger);
    let (status, v, _, resp) = t.call(handle, req).await;
    assert_eq!(status, 429, "even the right token waits now: {v}");
    assert_eq!(resp.headers()["retry-after"], "60");
    assert_eq!(t.user_document(node.id).await, before, "nothing changed");
    assert_eq!(t.count("sessions").await, 0);

    let req = from_address(refresh_request(&token), "192.0.2.80");
    let (status, v, ..) = t.call(handle, req).await;
    assert_eq!(status, 200, "the owner, elsewhere, exchanges it: {v}");
    assert_eq!(t.count("sessions").await, 1);
}

/// From many addresses, the guesses run into the account's budget, and then the stored token
/// goes: no more `iat`s than that budget are ever tried against one token.
#[tokio::test]
async fn guessing_from_many_addresses_ends_the_node_era_session_at_the_account_budget() {
    let t = TestApp::spawn_with(|v| {
        v.insert("THROTTLE_ACCOUNT_FAILURES".into(), "4".into());
    })
    .await;
    let secret = t.var("REFRESH_TOKEN_SECRET").to_owned();
    let (node, token) = logged_in_on_node(&t, "spread", &secret).await;
    let now = shared::tokens::now_secs();
    let ttl = TEN_DAYS.as_secs() as i64;
    for k in 1..=4 {
        let iat = now - 1000 - k;
        let forged = node_jwt(
            &secret,
            &json!({"_id": node.id.to_hex(), "iat": iat, "exp": iat + ttl}),
        );
        let req = from_address(refresh_request(&forged), &format!("198.51.100.{k}"));
        let (status, v, ..) = t.call(handle, req).await;
        assert_eq!(status, 401, "guess {k}: {v}");
    }
    assert!(t.user_document(node.id).await.get("refreshToken").is_some());
    let req = from_address(refresh_request(&token), "198.51.100.99");
    let (status, v, ..) = t.call(handle, req).await;
    assert_eq!(status, 429, "the account's budget is spent: {v}");
    assert!(
        t.user_document(node.id).await.get("refreshToken").is_none(),
        "the Node-era session is ended"
    );
    assert_eq!(t.count("sessions").await, 0);
}

/// The Node-era session ends (a password change, a Node logout) after the exchange compared
/// the token and before its session is in: the session it opened must not survive it.
#[tokio::test]
async fn a_node_era_token_removed_during_its_exchange_opens_no_session() {
    let proxy = Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), proxy.uri());
    })
    .await;
    let (node, token) = logged_in_on_node(&t, "midway", t.var("REFRESH_TOKEN_SECRET")).await;
    proxy.hold_next("insert", "sessions", Duration::from_secs(2));
    let app = t.app;
    let pending = tokio::spawn(async move { handle(app, refresh_request(&token)).await });
    proxy.wait_held("the session's insert").await;
    t.db.collection::<Document>("users")
        .update_one(doc! {"_id": node.id}, doc! {"$unset": {"refreshToken": ""}})
        .await
        .expect("the Node logout");
    let resp = pending.await.expect("the handler does not panic");
    assert_eq!(
        testkit::envelope(&resp, 401)["message"],
        refresh::EXPIRED_OR_USED
    );
    assert!(!resp.headers().contains_key("set-cookie"), "no tokens");
    assert_eq!(
        t.count("sessions").await,
        0,
        "the session opened is discarded"
    );
}

/// The removal of the stored token fails after the session is in (its answer lost): the
/// session goes, the client is told to retry, and nothing of the exchange is left.
#[tokio::test]
async fn an_exchange_whose_token_removal_fails_leaves_no_session() {
    let proxy = Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), proxy.uri());
    })
    .await;
    let (_, token) = logged_in_on_node(&t, "unlucky", t.var("REFRESH_TOKEN_SECRET")).await;
    proxy.lose_next("update", "users");
    let (status, v, cookies, resp) = t.refresh(handle, &token).await;
    assert!(proxy.lost());
    assert_eq!(status, 503, "{v}");
    assert!(resp.headers().contains_key("retry-after"));
    assert!(cookies.is_empty(), "no tokens");
    assert_eq!(
        t.count("sessions").await,
        0,
        "the session opened is discarded"
    );
}

#[tokio::test]
async fn any_other_node_era_token_is_refused_and_changes_nothing() {
    let t = TestApp::spawn().await;
    let secret = t.var("REFRESH_TOKEN_SECRET").to_owned();
    let node = node_user("nell")
        .logged_in(&secret, TEN_DAYS)
        .insert(&t.db)
        .await;
    let never = node_user("never").insert(&t.db).await;
    let before = t.user_document(node.id).await;
    let now = shared::tokens::now_secs();
    let id = node.id.to_hex();
    // A token from an earlier Node login: valid signature, but no longer the stored one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let earlier = node_refresh_token(&secret, node.id, TEN_DAYS);
    let cases = [
        ("an earlier Node token", earlier),
        (
            "a user who never logged in on Node",
            node_refresh_token(&secret, never.id, TEN_DAYS),
        ),
        (
            "another secret",
            node_refresh_token(&"x".repeat(40), node.id, TEN_DAYS),
        ),
        (
            "expired",
            node_jwt(
                &secret,
                &json!({"_id": id, "iat": now - 100, "exp": now - 50}),
            ),
        ),
        (
            "an extra claim",
            node_jwt(
                &secret,
                &json!({"_id": id, "iat": now, "exp": now + 60, "admin": true}),
            ),
        ),
        (
            "no _id",
            node_jwt(&secret, &json!({"iat": now, "exp": now + 60})),
        ),
        (
            "_id not an id",
            node_jwt(
                &secret,
                &json!({"_id": {"$gt": ""}, "iat": now, "exp": now + 60}),
            ),
        ),
        (
            "a Node access token",
            testkit::node::node_access_token(&secret, &node, TEN_DAYS),
        ),
    ];
    for (what, token) in &cases {
        let (status, v, ..) = t.refresh(handle, token).await;
        assert_eq!(status, 401, "{what}: {v}");
    }
    assert_eq!(
        t.user_document(node.id).await,
        before,
        "the stored token is untouched"
    );
    assert_eq!(t.count("sessions").await, 0);
    let (status, v, ..) = t
        .refresh(handle, node.refresh_token.as_deref().expect("token"))
        .await;
    assert_eq!(status, 200, "and the real one still exchanges: {v}");
}

#[tokio::test]
async fn with_the_exchange_turned_off_a_node_era_token_is_refused() {
    let t = TestApp::spawn_with(|v| {
        v.insert("NODE_REFRESH_EXCHANGE".into(), "false".into());
    })
    .await;
    let node = node_user("off")
        .logged_in(t.var("REFRESH_TOKEN_SECRET"), TEN_DAYS)
        .insert(&t.db)
        .await;
    let (status, v, ..) = t
        .refresh(handle, node.refresh_token.as_deref().expect("token"))
        .await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["message"], refresh::INVALID_TOKEN);
    assert!(t.user_document(node.id).await.get("refreshToken").is_some());
    assert_eq!(t.count("sessions").await, 0);
}
