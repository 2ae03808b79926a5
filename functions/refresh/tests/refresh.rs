//! Refresh handler tests against the real database: rotation, reuse detection, forged tokens,
//! and races with real concurrency.
use mongodb::bson::{DateTime, doc};
use refresh::handle;
use serde_json::{Value, json};
use testkit::{
    TestApp, envelope, event,
    forge::{b64, sign},
    post, post_json, refresh_request, with_cookie,
};

const ROUTE: &str = testkit::endpoints::REFRESH;

async fn session_doc(t: &TestApp, refresh_token: &str) -> mongodb::bson::Document {
    let sid = t
        .app
        .tokens
        .verify_refresh(refresh_token)
        .expect("valid")
        .sid;
    t.find_one("sessions", doc! {"_id": sid})
        .await
        .expect("session")
}

fn next_token(v: &Value) -> String {
    v["data"]["refreshToken"]
        .as_str()
        .expect("new refresh token")
        .to_owned()
}

#[tokio::test]
async fn each_new_refresh_token_works_for_the_next_refresh_and_the_one_after() {
    let t = TestApp::spawn().await;
    t.seed_user("alice", "alice@example.com").await;
    let (_, mut token) = t.log_in(login::handle, "alice").await;
    for round in 0..3 {
        let (status, v, cookies, _) = t.refresh(handle, &token).await;
        assert_eq!(status, 200, "round {round}: {v}");
        assert_eq!(v["message"], "Access token refreshed");
        let next = next_token(&v);
        let access = v["data"]["accessToken"].as_str().expect("new access token");
        assert_ne!(next, token);
        assert_eq!(
            t.app.tokens.verify_access(access).expect("access").username,
            "alice"
        );
        let rc = cookies
            .iter()
            .find(|c| c.name() == "refreshToken")
            .expect("refresh cookie");
        assert_eq!(rc.value(), next);
        assert!(
            cookies
                .iter()
                .any(|c| c.name() == "accessToken" && c.value() == access)
        );
        token = next;
    }
    assert_eq!(t.count("sessions").await, 1, "rotation keeps one session");
}

#[tokio::test]
async fn the_token_may_come_from_the_json_body_when_there_is_no_cookie() {
    let t = TestApp::spawn().await;
    t.seed_user("bob", "bob@example.com").await;
    let (_, token) = t.log_in(login::handle, "bob").await;
    let resp = handle(t.app, post_json(ROUTE, &json!({"refreshToken": &token}))).await;
    let v = envelope(&resp, 200);
    // An empty cookie is no token: the body's is used, as the Node version's
    // `req.cookies.refreshToken || req.body.refreshToken` does.
    let next = next_token(&v);
    let req = with_cookie(
        post_json(ROUTE, &json!({"refreshToken": &next})),
        "refreshToken",
        "",
    );
    let resp = handle(t.app, req).await;
    envelope(&resp, 200);
}

#[tokio::test]
async fn the_just_replaced_token_within_the_grace_gets_the_same_pair_again_and_it_works() {
    let t = TestApp::spawn().await;
    t.seed_user("carol", "carol@example.com").await;
    let (_, old) = t.log_in(login::handle, "carol").await;
    let (_, first, first_cookies, _) = t.refresh(handle, &old).await;
    let records = t.count("refresh_tokens").await;
    let (status, again, again_cookies, _) = t.refresh(handle, &old).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"], first["data"], "the very same pair");
    let cookie = |cs: &[cookie::Cookie<'static>], name: &str| {
        cs.iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    };
    assert_eq!(
        cookie(&again_cookies, "refreshToken"),
        cookie(&first_cookies, "refreshToken")
    );
    assert_eq!(
        t.count("refresh_tokens").await,
        records,
        "no second successor"
    );
    let new = next_token(&first);
    assert_eq!(
        session_doc(&t, &new).await.get("revokedAt"),
        Some(&mongodb::bson::Bson::Null),
        "not revoked"
    );
    let (status, ..) = t.refresh(handle, &new).await;
    assert_eq!(status, 200, "the handed-out pair rotates as usual");
}

#[tokio::test]
async fn a_lost_answer_retried_on_a_freshly_started_instance_gets_the_same_pair() {
    let t = TestApp::spawn().await;
    t.seed_user("cleo", "cleo@example.com").await;
    let (_, old) = t.log_in(login::handle, "cleo").await;
    let (_, first, ..) = t.refresh(handle, &old).await;
    // Another instance: its own configuration load, database client and keys, nothing shared
    // with the one that rotated but the database and the secrets.
    let config = shared::config::Config::from_vars(&t.vars).expect("config");
    let other: &'static shared::App =
        Box::leak(Box::new(shared::App::new(config).await.expect("app")));
    let resp = handle(other, refresh_request(&old)).await;
    let again = envelope(&resp, 200);
    assert_eq!(
        again["data"], first["data"],
        "the pair the lost answer carried"
    );
    let resp = handle(other, refresh_request(&next_token(&again))).await;
    envelope(&resp, 200);
}

#[tokio::test]
async fn the_grandparent_token_within_the_grace_revokes_the_session() {
    let t = TestApp::spawn().await;
    t.seed_user("cora", "cora@example.com").await;
    let (_, grandparent) = t.log_in(login::handle, "cora").await;
    let (_, v, ..) = t.refresh(handle, &grandparent).await;
    let parent = next_token(&v);
    let (_, v, ..) = t.refresh(handle, &parent).await;
    let current = next_token(&v);
    let (status, v, cookies, _) = t.refresh(handle, &grandparent).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["message"], refresh::EXPIRED_OR_USED);
    assert!(cookies.is_empty());
    assert!(
        session_doc(&t, &current)
            .await
            .get_datetime("revokedAt")
            .is_ok()
    );
    let (status, ..) = t.refresh(handle, &current).await;
    assert_eq!(status, 401, "the whole session ended");
}

#[tokio::test]
async fn a_revoked_sessions_just_replaced_token_within_the_grace_is_refused() {
    let t = TestApp::spawn().await;
    t.seed_user("cyd", "cyd@example.com").await;
    let (_, old) = t.log_in(login::handle, "cyd").await;
    let (_, v, ..) = t.refresh(handle, &old).await;
    let sid = t
        .app
        .tokens
        .verify_refresh(&next_token(&v))
        .expect("valid")
        .sid;
    let store = t.app.store().await.expect("store");
    let sid = shared::domain::SessionId::parse(&sid).expect("sid");
    shared::sessions::revoke(store, &sid).await.expect("revoke");
    let (status, v, cookies, _) = t.refresh(handle, &old).await;
    assert_eq!(status, 401, "{v}");
    assert!(cookies.is_empty());
}

#[tokio::test]
async fn a_token_reused_after_the_grace_period_revokes_the_whole_session() {
    let t = TestApp::spawn_with(|v| {
        v.insert("REFRESH_REUSE_GRACE".into(), "100ms".into());
    })
    .await;
    t.seed_user("dave", "dave@example.com").await;
    let (_, stolen) = t.log_in(login::handle, "dave").await;
    let (_, v, ..) = t.refresh(handle, &stolen).await;
    let current = next_token(&v);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, v, ..) = t.refresh(handle, &stolen).await;
    assert_eq!(status, 401);
    assert_eq!(v["message"], refresh::EXPIRED_OR_USED);
    assert!(
        session_doc(&t, &current)
            .await
            .get_datetime("revokedAt")
            .is_ok(),
        "revoked"
    );
    let (status, ..) = t.refresh(handle, &current).await;
    assert_eq!(
        status, 401,
        "the legitimate holder's current token stops working too"
    );
}

#[tokio::test]
async fn with_the_grace_off_any_reuse_of_a_replaced_token_revokes_the_session() {
    let t = TestApp::spawn_with(|v| {
        v.insert("REFRESH_REUSE_GRACE".into(), "0s".into());
    })
    .await;
    t.seed_user("zed", "zed@example.com").await;
    let (_, old) = t.log_in(login::handle, "zed").await;
    let (_, v, ..) = t.refresh(handle, &old).await;
    let current = next_token(&v);
    let (status, ..) = t.refresh(handle, &old).await;
    assert_eq!(status, 401, "no window");
    assert!(
        session_doc(&t, &current)
            .await
            .get_datetime("revokedAt")
            .is_ok()
    );
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_is_refused() {
    let t = TestApp::spawn().await;
    t.seed_user("erin", "erin@example.com").await;
    let (_, token) = t.log_in(login::handle, "erin").await;
    let sid = t.app.tokens.verify_refresh(&token).expect("valid").sid;
    let past = DateTime::from_millis(DateTime::now().timestamp_millis() - 1000);
    t.db.collection::<mongodb::bson::Document>("sessions")
        .update_one(doc! {"_id": &sid}, doc! {"$set": {"expiresAt": past}})
        .await
        .expect("age the session");
    let (status, v, ..) = t.refresh(handle, &token).await;
    assert_eq!(status, 401);
    assert_eq!(v["message"], refresh::EXPIRED_OR_USED);
}

#[tokio::test]
async fn the_refresh_token_never_outlives_its_session() {
    let t = TestApp::spawn_with(|v| {
        v.insert("REFRESH_TOKEN_EXPIRY".into(), "10d".into());
        v.insert("SESSION_MAX_AGE".into(), "10d".into());
    })
    .await;
    t.seed_user("fay", "fay@example.com").await;
    let (_, token) = t.log_in(login::handle, "fay").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, v, cookies, _) = t.refresh(handle, &token).await;
    let rt = next_token(&v);
    let claims = t.app.tokens.verify_refresh(&rt).expect("valid");
    let session = session_doc(&t, &rt).await;
    let ends = session
        .get_datetime("expiresAt")
        .expect("expiresAt")
        .timestamp_millis()
        / 1000;
    assert!(
        claims.exp <= ends,
        "exp {} beyond session end {ends}",
        claims.exp
    );
    let max_age = cookies
        .iter()
        .find(|c| c.name() == "refreshToken")
        .and_then(|c| c.max_age())
        .expect("max-age");
    assert!(max_age.whole_seconds() < 10 * 24 * 3600);
}

#[tokio::test]
async fn forged_malformed_and_stale_tokens_are_401_and_change_nothing() {
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    let t = TestApp::spawn().await;
    let user = t.seed_user("gus", "gus@example.com").await;
    let (access, good) = t.log_in(login::handle, "gus").await;
    let before = session_doc(&t, &good).await;
    let tokens_before = t.count("refresh_tokens").await;
    let c = t.app.tokens.verify_refresh(&good).expect("valid");
    let secret = t.var("REFRESH_TOKEN_SECRET").to_owned();
    let now = shared::tokens::now_secs();
    let sub = user.id.to_hex();
    let claims =
        |exp: i64, sid: &str| json!({"sub": sub, "sid": sid, "jti": c.jti, "iat": now, "exp": exp});
    let valid = claims(now + 60, &c.sid);
    let parts: Vec<&str> = good.split('.').collect();
    let (head, body, sig) = (parts[0], parts[1], parts[2]);
    let none = |alg: &str, sig: &str| {
        format!(
            "{}.{body}.{sig}",
            b64(format!(r#"{{"alg":"{alg}","typ":"rt+jwt"}}"#))
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("garbage", "garbage".into()),
        ("three empty parts", "..".into()),
        ("not base64", "!!!.@@@.###".into()),
        ("alg none", none("none", "")),
        ("alg None", none("None", "")),
        ("alg NONE with the real signature", none("NONE", sig)),
        ("alg nOnE", none("nOnE", "")),
        ("HS384", sign(HS384, Some("rt+jwt"), &valid, &secret)),
        ("HS512", sign(HS512, Some("rt+jwt"), &valid, &secret)),
        (
            "wrong secret",
            sign(HS256, Some("rt+jwt"), &valid, "w".repeat(32)),
        ),
        ("access token as refresh token", access.clone()),
        ("wrong typ", sign(HS256, Some("JWT"), &valid, &secret)),
        ("no typ", sign(HS256, None, &valid, &secret)),
        (
            "expired",
            sign(HS256, Some("rt+jwt"), &claims(now - 30, &c.sid), &secret),
        ),
        (
            "tampered payload",
            format!(
                "{head}.{}.{sig}",
                b64(claims(now + 9999, &c.sid).to_string())
            ),
        ),
        (
            "correctly signed, but an id this session never issued",
            sign(
                HS256,
                Some("rt+jwt"),
                &json!({"sub": sub, "sid": c.sid, "jti": shared::tokens::new_jti(), "iat": now, "exp": now + 60}),
                &secret,
            ),
        ),
        (
            "correctly signed, the session's own token id, but another user",
            sign(
                HS256,
                Some("rt+jwt"),
                &json!({"sub": mongodb::bson::oid::ObjectId::new().to_hex(), "sid": c.sid, "jti": c.jti, "iat": now, "exp": now + 60}),
                &secret,
            ),
        ),
        (
            "unknown session",
            sign(
                HS256,
                Some("rt+jwt"),
                &claims(now + 60, &"0".repeat(32)),
                &secret,
            ),
        ),
        (
            "operator-shaped session id",
            sign(
                HS256,
                Some("rt+jwt"),
                &claims(now + 60, "{\"$gt\":\"\"}"),
                &secret,
            ),
        ),
        (
            "numeric sub",
            sign(
                HS256,
                Some("rt+jwt"),
                &json!({"sub": 1, "sid": c.sid, "jti": c.jti, "iat": now, "exp": now + 60}),
                &secret,
            ),
        ),
        (
            "missing jti",
            sign(
                HS256,
                Some("rt+jwt"),
                &json!({"sub": sub, "sid": c.sid, "iat": now, "exp": now + 60}),
                &secret,
            ),
        ),
        (
            "extra claim",
            sign(
                HS256,
                Some("rt+jwt"),
                &json!({"sub": sub, "sid": c.sid, "jti": c.jti, "iat": now, "exp": now + 60, "admin": true}),
                &secret,
            ),
        ),
        ("a very long token", "a".repeat(20_000)),
    ];
    for (what, token) in &cases {
        let (status, v, cookies, _) = t.refresh(handle, token).await;
        assert_eq!(status, 401, "{what}: {v}");
        assert!(cookies.is_empty(), "{what}: no cookies on failure");
    }
    let after = session_doc(&t, &good).await;
    assert_eq!(before, after, "no forged token changed the session");
    assert_eq!(
        t.count("refresh_tokens").await,
        tokens_before,
        "nor left a token record behind"
    );
    let (status, ..) = t.refresh(handle, &good).await;
    assert_eq!(status, 200, "and the real token still works");
}

#[tokio::test]
async fn missing_empty_and_non_string_tokens_are_rejected() {
    let t = TestApp::spawn().await;
    let cases: Vec<(&str, lambda_http::Request, u16)> = vec![
        ("no token at all", post(ROUTE, None, ""), 401),
        ("empty cookie", refresh_request(""), 401),
        (
            "empty body token",
            post_json(ROUTE, &json!({"refreshToken": ""})),
            401,
        ),
        (
            "null body token",
            post_json(ROUTE, &json!({"refreshToken": null})),
            401,
        ),
        (
            "operator object",
            post_json(ROUTE, &json!({"refreshToken": {"$ne": null}})),
            400,
        ),
        (
            "number",
            post_json(ROUTE, &json!({"refreshToken": 12})),
            400,
        ),
        (
            "invalid JSON",
            post(ROUTE, Some("application/json"), "{"),
            400,
        ),
        (
            "wrong content type",
            post(ROUTE, Some("text/plain"), "token"),
            415,
        ),
        (
            "body too large",
            post_json(ROUTE, &json!({"refreshToken": "x".repeat(20_000)})),
            413,
        ),
    ];
    for (what, req, status) in cases {
        let resp = handle(t.app, req).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        envelope(&resp, status);
    }
    assert_eq!(t.count("sessions").await, 0);
}

#[tokio::test]
async fn a_revoked_session_is_refused() {
    let t = TestApp::spawn().await;
    t.seed_user("hal", "hal@example.com").await;
    let (_, token) = t.log_in(login::handle, "hal").await;
    let sid = t.app.tokens.verify_refresh(&token).expect("valid").sid;
    let store = t.app.store().await.expect("store");
    let sid = shared::domain::SessionId::parse(&sid).expect("sid");
    shared::sessions::revoke(store, &sid).await.expect("revoke");
    let (status, ..) = t.refresh(handle, &token).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_with_one_token_all_get_one_and_the_same_new_token() {
    let t = TestApp::spawn().await;
    t.seed_user("ivy", "ivy@example.com").await;
    let (_, token) = t.log_in(login::handle, "ivy").await;
    let app = t.app;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move {
                let resp = handle(app, refresh_request(&token)).await;
                let status = resp.status().as_u16();
                (status, envelope(&resp, status))
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mut tokens: Vec<String> = answers.iter().map(|(_, v)| next_token(v)).collect();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "one and the same refresh token for all 50");
    assert_eq!(
        t.count("refresh_tokens").await,
        1,
        "exactly one successor record"
    );
    let session = session_doc(&t, &token).await;
    assert_eq!(
        session.get("revokedAt"),
        Some(&mongodb::bson::Bson::Null),
        "a client racing itself keeps its session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_refresh_independently() {
    let t = TestApp::spawn().await;
    t.seed_user("joe", "joe@example.com").await;
    let (_, mut phone) = t.log_in(login::handle, "joe").await;
    let (_, mut laptop) = t.log_in(login::handle, "joe").await;
    for _ in 0..3 {
        let (a, b) = tokio::join!(t.refresh(handle, &phone), t.refresh(handle, &laptop));
        assert_eq!((a.0, b.0), (200, 200));
        phone = next_token(&a.1);
        laptop = next_token(&b.1);
    }
    assert_eq!(t.count("sessions").await, 2);
}

#[tokio::test]
async fn the_refresh_event_files_replay_through_the_handler() {
    let t = TestApp::spawn().await;
    t.seed_user("kim", "kim@example.com").await;
    // As shipped, the events carry a placeholder token: a clean 401.
    for file in ["refresh.json", "refresh-body.json"] {
        let resp = handle(t.app, event(file)).await;
        let v = envelope(&resp, 401);
        assert_eq!(v["message"], refresh::INVALID_TOKEN, "{file}");
    }
    let resp = handle(t.app, event("refresh-no-token.json")).await;
    envelope(&resp, 401);
    // With a real token in the `cookies` array, the same event rotates the session.
    let (_, token) = t.log_in(login::handle, "kim").await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/refresh.json");
    let json = std::fs::read_to_string(path)
        .expect("event")
        .replace("REFRESH_TOKEN", &token);
    let resp = handle(
        t.app,
        shared::http::request_from_event(&json).expect("event"),
    )
    .await;
    envelope(&resp, 200);
}
