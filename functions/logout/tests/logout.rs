//! logout handler tests against the real database: this session or every session ends, both
//! cookies are cleared with the attributes they were set with, a retry still succeeds, and
//! nothing else is touched.
#[path = "../../current-user/tests/common/logs.rs"]
mod logs;
#[path = "../../current-user/tests/common/probes.rs"]
mod probes;
#[path = "../../current-user/tests/common/refused.rs"]
mod refused;
use probes::{access_works, refresh_works};

use cookie::{Cookie, SameSite};
use logout::handle;
use refused::{is_revoked, presenting, snapshot};
use serde_json::{Value, json};
use testkit::{TestApp, envelope, event, post, post_json, request, set_cookies};

const PATH: &str = "/api/v1/users/logout";

fn bare() -> lambda_http::Request {
    post(PATH, None, "")
}

/// The cleared cookies: both names, empty, Max-Age=0, with the Path and attributes login sets.
fn assert_cleared(cookies: &[Cookie<'static>]) {
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let find = |name: &str| {
        cookies
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("{name} cleared in {cookies:?}"))
    };
    for (name, path, same_site) in [
        ("accessToken", "/", SameSite::Lax),
        ("refreshToken", "/api/v1/users", SameSite::Strict),
    ] {
        let c = find(name);
        assert_eq!(c.value(), "", "{c}");
        assert_eq!(c.max_age().map(|d| d.whole_seconds()), Some(0), "{c}");
        assert_eq!(c.path(), Some(path), "{c}");
        assert_eq!(c.http_only(), Some(true), "{c}");
        assert_eq!(c.secure(), Some(true), "{c}");
        assert_eq!(c.same_site(), Some(same_site), "{c}");
    }
}

fn assert_logged_out(resp: &lambda_http::Response<lambda_http::Body>) {
    let v = envelope(resp, 200);
    assert_eq!(v["message"], "User logged Out");
    assert_eq!(v["data"], json!({}));
    assert_cleared(&set_cookies(resp));
}

#[tokio::test]
async fn logout_ends_only_this_session_clears_both_cookies_and_answers_200() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("alice", "alice@example.com").await;
    let (phone, laptop) = (t.sign_in(&user).await, t.sign_in(&user).await);
    let resp = handle(t.app, phone.cookie(bare())).await;
    assert_logged_out(&resp);
    assert!(is_revoked(&t, &phone).await);
    assert!(
        !is_revoked(&t, &laptop).await,
        "the other device stays signed in"
    );
    assert!(
        !access_works(&t, &phone).await,
        "refused at once on our routes"
    );
    assert!(!refresh_works(&t, &phone).await);
    assert!(access_works(&t, &laptop).await);
    assert!(refresh_works(&t, &laptop).await);
}

#[tokio::test]
async fn the_token_may_come_as_a_bearer_header() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("bob", "bob@example.com").await;
    let s = t.sign_in(&user).await;
    assert_logged_out(&handle(t.app, s.bearer(bare())).await);
    assert!(is_revoked(&t, &s).await);
}

#[tokio::test]
async fn the_event_file_logs_out_once_a_live_token_is_injected() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("carol", "carol@example.com").await;
    let s = t.sign_in(&user).await;
    assert_logged_out(&handle(t.app, refused::event_as("logout.json", &s)).await);
    assert!(is_revoked(&t, &s).await);
}

#[tokio::test]
async fn all_devices_ends_every_session_of_the_user_and_no_one_elses() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("dave", "dave@example.com").await;
    let other = t.seed_user("erin", "erin@example.com").await;
    let mine = [
        t.sign_in(&user).await,
        t.sign_in(&user).await,
        t.sign_in(&user).await,
    ];
    let theirs = t.sign_in(&other).await;
    let resp = handle(
        t.app,
        refused::event_as("logout-all-devices.json", &mine[0]),
    )
    .await;
    assert_logged_out(&resp);
    for s in &mine {
        assert!(is_revoked(&t, s).await);
        assert!(!access_works(&t, s).await);
        assert!(!refresh_works(&t, s).await);
    }
    assert!(!is_revoked(&t, &theirs).await);
    assert!(access_works(&t, &theirs).await);
}

/// A Node-era refresh token left on the account (login removes it, but only best effort) would
/// be exchanged for a new session by its next refresh: every device includes that one.
#[tokio::test]
async fn all_devices_also_ends_a_node_era_refresh_token_still_stored() {
    let t = TestApp::spawn().await;
    let node = testkit::node::node_user("olga")
        .logged_in(
            t.var("REFRESH_TOKEN_SECRET"),
            std::time::Duration::from_secs(3600),
        )
        .insert(&t.db)
        .await;
    let node_token = node.refresh_token.clone().expect("a Node-era token");
    let user = t.user(node.id).await.expect("exists");
    let this_device = t.sign_in(&user).await;
    let resp = handle(t.app, this_device.cookie(bare())).await;
    assert_logged_out(&resp);
    assert!(
        t.user_document(node.id).await.contains_key("refreshToken"),
        "this device only: the Node-era session is another device"
    );
    let s = t.sign_in(&user).await;
    let all = post_json(PATH, &json!({"allDevices": true}));
    assert_logged_out(&handle(t.app, s.cookie(all)).await);
    let stored = t.user_document(node.id).await;
    assert!(!stored.contains_key("refreshToken"), "{stored}");
    let exchange = refresh::handle(t.app, testkit::refresh_request(&node_token)).await;
    assert_eq!(
        exchange.status().as_u16(),
        401,
        "the Node-era token no longer opens a session"
    );
}

/// The exchange of a Node-era token races a logout of every device: the logout's removal of
/// the token stalls (a proxy holds it) while the exchange opens its session and takes the
/// token. The revoke must come after the removal, or it misses that session.
#[tokio::test]
async fn an_exchange_racing_a_logout_of_every_device_is_signed_out_too() {
    use std::time::Duration;
    let proxy = testkit::wire::Proxy::start(&testkit::Services::from_env().mongodb_uri).await;
    let uri = proxy.uri();
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), uri);
    })
    .await;
    let node = testkit::node::node_user("pat")
        .logged_in(t.var("REFRESH_TOKEN_SECRET"), Duration::from_secs(3600))
        .insert(&t.db)
        .await;
    let node_token = node.refresh_token.clone().expect("a Node-era token");
    let user = t.user(node.id).await.expect("exists");
    let s = t.sign_in(&user).await;
    proxy.hold_next("update", "users", Duration::from_secs(2));
    let app = t.app;
    let all = s.cookie(post_json(PATH, &json!({"allDevices": true})));
    let pending = tokio::spawn(async move { handle(app, all).await });
    proxy.wait_held("the token's removal").await;
    let exchange = refresh::handle(t.app, testkit::refresh_request(&node_token)).await;
    envelope(&exchange, 200);
    assert_logged_out(&pending.await.expect("the handler does not panic"));
    let live =
        t.db.collection::<mongodb::bson::Document>("sessions")
            .count_documents(mongodb::bson::doc! {"revokedAt": null})
            .await
            .expect("count");
    assert_eq!(
        live, 0,
        "the exchanged session was signed out with the rest"
    );
}

#[tokio::test]
async fn all_devices_from_a_form_or_as_false_or_an_empty_body_behave_as_written() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("fay", "fay@example.com").await;
    let form = "application/x-www-form-urlencoded";
    let this_only: [(&str, Option<&str>, &str); 5] = [
        ("empty JSON object", Some("application/json"), "{}"),
        (
            "allDevices false",
            Some("application/json"),
            r#"{"allDevices":false}"#,
        ),
        (
            "allDevices null",
            Some("application/json"),
            r#"{"allDevices":null}"#,
        ),
        ("form false", Some(form), "allDevices=false"),
        ("no body", None, ""),
    ];
    for (what, ct, body) in this_only {
        let (s, bystander) = (t.sign_in(&user).await, t.sign_in(&user).await);
        assert_logged_out(&handle(t.app, s.cookie(post(PATH, ct, body))).await);
        assert!(is_revoked(&t, &s).await, "{what}");
        assert!(!is_revoked(&t, &bystander).await, "{what}");
    }
    let (s, bystander) = (t.sign_in(&user).await, t.sign_in(&user).await);
    assert_logged_out(&handle(t.app, s.cookie(post(PATH, Some(form), "allDevices=true"))).await);
    assert!(
        is_revoked(&t, &bystander).await,
        "form true ends every session"
    );
}

#[tokio::test]
async fn a_retried_logout_of_a_revoked_ended_or_gone_session_still_answers_200_and_clears_cookies()
{
    let t = TestApp::spawn().await;
    let user = t.seed_user("gus", "gus@example.com").await;
    let s = t.sign_in(&user).await;
    assert_logged_out(&handle(t.app, s.cookie(bare())).await);
    let revoked_at = refused::session(&t, &s)
        .await
        .get_datetime("revokedAt")
        .copied();
    assert_logged_out(&handle(t.app, s.cookie(bare())).await);
    assert_eq!(
        refused::session(&t, &s)
            .await
            .get_datetime("revokedAt")
            .copied(),
        revoked_at,
        "the first revocation stands"
    );
    for case in refused::stale(&t, &user).await {
        if case.what == "another user's session" {
            continue; // only a token forged with our secret can say that
        }
        let resp = handle(t.app, presenting(bare(), case.token.as_deref())).await;
        assert_logged_out(&resp);
    }
}

#[tokio::test]
async fn all_devices_from_a_session_that_already_ended_revokes_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("hal", "hal@example.com").await;
    let (stale, live) = (t.sign_in(&user).await, t.sign_in(&user).await);
    assert_logged_out(&handle(t.app, stale.cookie(bare())).await);
    let before = snapshot(&t).await;
    let body = json!({"allDevices": true});
    assert_logged_out(&handle(t.app, stale.cookie(post_json(PATH, &body))).await);
    assert_eq!(snapshot(&t).await, before);
    assert!(
        access_works(&t, &live).await,
        "a signed-out device cannot sign others out"
    );
}

#[tokio::test]
async fn refused_tokens_are_401_without_cookies_and_write_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("ivy", "ivy@example.com").await;
    let s = t.sign_in(&user).await;
    let before = snapshot(&t).await;
    for case in refused::stateless(&t, &s) {
        let resp = handle(t.app, presenting(bare(), case.token.as_deref())).await;
        let v = envelope(&resp, 401);
        assert_eq!(v["message"], case.message, "{}", case.what);
        assert!(set_cookies(&resp).is_empty(), "{}", case.what);
    }
    let resp = handle(t.app, event("logout-no-token.json")).await;
    assert_eq!(envelope(&resp, 401)["message"], "Unauthorized request");
    assert_eq!(snapshot(&t).await, before);
    assert!(!is_revoked(&t, &s).await);
}

#[tokio::test]
async fn any_body_but_all_devices_is_refused_and_nothing_is_revoked() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("jay", "jay@example.com").await;
    let s = t.sign_in(&user).await;
    let json_ct = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let cases: Vec<(&str, lambda_http::Request, u16, Vec<&str>)> = vec![
        (
            "allDevices a string",
            post(PATH, json_ct, r#"{"allDevices":"true"}"#),
            400,
            vec!["allDevices"],
        ),
        (
            "allDevices a number",
            post(PATH, json_ct, r#"{"allDevices":1}"#),
            400,
            vec!["allDevices"],
        ),
        (
            "operator object",
            post(PATH, json_ct, r#"{"allDevices":{"$ne":false}}"#),
            400,
            vec!["allDevices"],
        ),
        (
            "unknown field",
            post(PATH, json_ct, r#"{"everywhere":true}"#),
            400,
            vec!["everywhere"],
        ),
        (
            "form yes",
            post(PATH, form, "allDevices=yes"),
            400,
            vec!["allDevices"],
        ),
        (
            "form repeated",
            post(PATH, form, "allDevices=true&allDevices=false"),
            400,
            vec!["allDevices"],
        ),
        ("an array", post(PATH, json_ct, "[true]"), 400, vec![]),
        ("not JSON", post(PATH, json_ct, "{allDevices"), 400, vec![]),
        (
            "text/plain",
            post(PATH, Some("text/plain"), "allDevices"),
            415,
            vec![],
        ),
        (
            "too large",
            post(PATH, json_ct, format!(r#"{{"x":"{}"}}"#, "a".repeat(2048))),
            413,
            vec![],
        ),
        (
            "the event file",
            refused::event_as("logout-bad-body.json", &s),
            400,
            vec!["allDevices", "everywhere"],
        ),
    ];
    let before = snapshot(&t).await;
    for (what, req, status, fields) in cases {
        let resp = handle(t.app, s.cookie(req)).await;
        let v = envelope(&resp, status);
        let named: Vec<&str> = v["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(named, fields, "{what}: {v}");
        assert!(set_cookies(&resp).is_empty(), "{what}");
    }
    assert_eq!(
        snapshot(&t).await,
        before,
        "a refused logout writes nothing"
    );
    assert!(access_works(&t, &s).await);
}

#[tokio::test]
async fn other_methods_are_405() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("kim", "kim@example.com").await;
    let s = t.sign_in(&user).await;
    let resp = handle(t.app, s.cookie(request("GET", PATH, None, ""))).await;
    let v: Value = envelope(&resp, 405);
    assert_eq!(v["success"], false);
    assert!(!is_revoked(&t, &s).await);
}

#[tokio::test]
async fn no_token_or_email_is_ever_logged() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("quiet", "quiet.user@example.com").await;
    let (a, b) = (t.sign_in(&user).await, t.sign_in(&user).await);
    let (log, _guard) = logs::Captured::start();
    envelope(
        &handle(t.app, presenting(bare(), Some(&a.refresh_token))).await,
        401,
    );
    let bad = post_json(PATH, &json!({"allDevices": "quiet.user@example.com"}));
    envelope(&handle(t.app, a.cookie(bad)).await, 400);
    assert_logged_out(&handle(t.app, a.cookie(bare())).await);
    assert_logged_out(
        &handle(
            t.app,
            b.bearer(post_json(PATH, &json!({"allDevices": true}))),
        )
        .await,
    );
    let mut secrets = vec!["quiet.user@example.com"];
    for s in [&a, &b] {
        secrets.extend([s.access_token.as_str(), s.refresh_token.as_str()]);
    }
    log.assert_free_of(&secrets);
}

/// Only a token signed with our secret can name a session that is not its user's; even then a
/// logout (of this device or of every device) must end nothing of the other user.
#[tokio::test]
async fn a_token_whose_session_belongs_to_another_user_ends_nothing() {
    let t = TestApp::spawn().await;
    let mallory = t.seed_user("mallory", "mallory@example.com").await;
    let victim = t.seed_user("victor", "victor@example.com").await;
    let theirs = t.sign_in(&victim).await;
    let now = shared::tokens::now_secs();
    let forged = shared::tokens::AccessClaims {
        id: mallory.id.to_hex(),
        sub: mallory.id.to_hex(),
        sid: theirs.session_id.clone(),
        username: mallory.username.clone(),
        email: mallory.email.clone(),
        full_name: mallory.full_name.clone(),
        iat: now,
        exp: now + 60,
        jti: shared::tokens::new_jti(),
    };
    let token = t.app.tokens.sign_access(&forged).expect("sign");
    let before = snapshot(&t).await;
    for body in [None, Some(json!({"allDevices": true}))] {
        let req = match &body {
            None => bare(),
            Some(b) => post_json(PATH, b),
        };
        assert_logged_out(&handle(t.app, presenting(req, Some(&token))).await);
        assert_eq!(snapshot(&t).await, before, "{body:?}");
    }
    assert!(!is_revoked(&t, &theirs).await, "the victim's session lives");
}
