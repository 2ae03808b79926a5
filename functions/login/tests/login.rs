//! Login handler tests against the real database: every success shape and every bad input.
use login::handle;
use mongodb::bson::doc;
use serde_json::json;
use testkit::{PASSWORD, TestApp, envelope, event, post, post_json, set_cookies};

const ROUTE: &str = testkit::endpoints::LOGIN;

#[tokio::test]
async fn login_with_a_username_returns_the_user_both_tokens_and_both_cookies() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("alice", "alice@example.com").await;
    let (_, v, _, resp) = t
        .login(handle, json!({"username": "alice", "password": PASSWORD}))
        .await;
    assert_eq!(resp.status(), 200, "{v}");
    assert_eq!(v["message"], "User logged In Successfully");
    assert_eq!(v["data"]["user"]["_id"], user.id.to_hex());
    assert_eq!(v["data"]["user"]["username"], "alice");
    assert_eq!(v["data"]["user"]["coverImage"], "");
    assert_eq!(v["data"]["user"]["watchHistory"], json!([]));
    let text = v.to_string();
    assert!(
        !text.contains("\"password\"") && !text.contains("argon2"),
        "no hash in the response"
    );
    let access = v["data"]["accessToken"].as_str().expect("access token");
    let refresh = v["data"]["refreshToken"].as_str().expect("refresh token");
    assert_eq!(
        t.app
            .tokens
            .verify_access(access)
            .expect("valid access token")
            .username,
        "alice"
    );
    let rc = t
        .app
        .tokens
        .verify_refresh(refresh)
        .expect("valid refresh token");

    let cookies = set_cookies(&resp);
    let a = cookies
        .iter()
        .find(|c| c.name() == "accessToken")
        .expect("access cookie");
    let r = cookies
        .iter()
        .find(|c| c.name() == "refreshToken")
        .expect("refresh cookie");
    assert_eq!(a.value(), access);
    assert_eq!(r.value(), refresh);
    assert_eq!((a.http_only(), a.secure()), (Some(true), Some(true)));
    assert_eq!((r.http_only(), r.secure()), (Some(true), Some(true)));
    assert_eq!(a.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(r.same_site(), Some(cookie::SameSite::Strict));
    assert_eq!((a.path(), r.path()), (Some("/"), Some("/api/v1/users")));
    assert_eq!(a.max_age().map(|d| d.whole_seconds()), Some(15 * 60));
    assert_eq!(r.max_age().map(|d| d.whole_seconds()), Some(10 * 24 * 3600));

    let session = t
        .find_one("sessions", doc! {"_id": &rc.sid})
        .await
        .expect("session stored");
    assert_eq!(session.get_object_id("userId").expect("userId"), user.id);
    assert_eq!(
        session.get_str("firstToken"),
        Ok(shared::sessions::token_hash(&rc.jti).as_str()),
        "only the hash of the token id is stored"
    );
    assert_eq!(
        t.count("refresh_tokens").await,
        0,
        "a login writes one document"
    );
    let stored = session.to_string();
    assert!(!stored.contains(refresh) && !stored.contains(&rc.jti));
}

#[tokio::test]
async fn login_by_email_ignores_case_and_surrounding_spaces() {
    let t = TestApp::spawn().await;
    t.seed_user("bob", "bob@example.com").await;
    let (.., resp) = t
        .login(
            handle,
            json!({"email": "  BOB@Example.com ", "password": PASSWORD}),
        )
        .await;
    envelope(&resp, 200);
    let (.., resp) = t
        .login(handle, json!({"username": " BoB ", "password": PASSWORD}))
        .await;
    envelope(&resp, 200);
}

#[tokio::test]
async fn login_accepts_a_urlencoded_form() {
    let t = TestApp::spawn().await;
    t.seed_user("carol", "carol@example.com").await;
    let body = format!("username=carol&password={}", PASSWORD.replace(' ', "+"));
    let resp = handle(
        t.app,
        post(ROUTE, Some("application/x-www-form-urlencoded"), body),
    )
    .await;
    envelope(&resp, 200);
}

#[tokio::test]
async fn username_and_email_must_name_the_same_account() {
    let t = TestApp::spawn().await;
    t.seed_user("dave", "dave@example.com").await;
    t.seed_user("erin", "erin@example.com").await;
    let (.., resp) = t
        .login(
            handle,
            json!({"username": "dave", "email": "dave@example.com", "password": PASSWORD}),
        )
        .await;
    envelope(&resp, 200);
    let (_, v, _, resp) = t
        .login(
            handle,
            json!({"username": "dave", "email": "erin@example.com", "password": PASSWORD}),
        )
        .await;
    envelope(&resp, 401);
    assert_eq!(v["message"], "Invalid user credentials");
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let t = TestApp::spawn().await;
    t.seed_user("frank", "frank@example.com").await;
    let (_, unknown, _, r1) = t
        .login(handle, json!({"username": "nobody", "password": PASSWORD}))
        .await;
    let (_, wrong, _, r2) = t
        .login(
            handle,
            json!({"username": "frank", "password": "not the password"}),
        )
        .await;
    envelope(&r1, 401);
    envelope(&r2, 401);
    assert_eq!(unknown["message"], wrong["message"]);
    assert_eq!(unknown["errors"], wrong["errors"]);
    assert_eq!(
        t.count("sessions").await,
        0,
        "failed logins open no session"
    );
}

#[tokio::test]
async fn every_login_opens_its_own_session_so_devices_coexist() {
    let t = TestApp::spawn().await;
    t.seed_user("gina", "gina@example.com").await;
    for _ in 0..3 {
        let (.., resp) = t
            .login(handle, json!({"username": "gina", "password": PASSWORD}))
            .await;
        envelope(&resp, 200);
    }
    assert_eq!(t.count("sessions").await, 3);
}

#[tokio::test]
async fn a_hash_with_weaker_parameters_is_upgraded_on_login() {
    use argon2::PasswordHasher as _;
    let t = TestApp::spawn().await;
    let user = t.seed_user("hank", "hank@example.com").await;
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).expect("params"),
    );
    let salt =
        argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let weak_hash = weak
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash")
        .to_string();
    t.db.collection::<mongodb::bson::Document>("users")
        .update_one(
            doc! {"_id": user.id},
            doc! {"$set": {"password": &weak_hash}},
        )
        .await
        .expect("weaken");
    let (.., resp) = t
        .login(handle, json!({"username": "hank", "password": PASSWORD}))
        .await;
    envelope(&resp, 200);
    let stored = t
        .find_one("users", doc! {"_id": user.id})
        .await
        .expect("user");
    let new_hash = stored.get_str("password").expect("hash");
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{new_hash}"
    );
    let (.., resp) = t
        .login(handle, json!({"username": "hank", "password": PASSWORD}))
        .await;
    envelope(&resp, 200);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_envelope_and_writes_nothing() {
    let t = TestApp::spawn().await;
    t.seed_user("ivan", "ivan@example.com").await;
    let json_ct = Some("application/json");
    let cases: Vec<(&str, lambda_http::Request, u16)> = vec![
        ("empty body", post(ROUTE, None, ""), 400),
        ("empty JSON body", post(ROUTE, json_ct, ""), 400),
        ("invalid JSON", post(ROUTE, json_ct, "{\"username\": "), 400),
        ("JSON array", post(ROUTE, json_ct, "[]"), 400),
        (
            "wrong content type",
            post(ROUTE, Some("text/plain"), "username=ivan"),
            415,
        ),
        (
            "multipart",
            post(ROUTE, Some("multipart/form-data; boundary=x"), "--x--"),
            415,
        ),
        (
            "missing password",
            post_json(ROUTE, &json!({"username": "ivan"})),
            400,
        ),
        (
            "empty password",
            post_json(ROUTE, &json!({"username": "ivan", "password": ""})),
            400,
        ),
        (
            "missing both identifiers",
            post_json(ROUTE, &json!({"password": PASSWORD})),
            400,
        ),
        (
            "blank identifiers",
            post_json(
                ROUTE,
                &json!({"username": "  ", "email": "", "password": PASSWORD}),
            ),
            400,
        ),
        (
            "numeric username",
            post_json(ROUTE, &json!({"username": 5, "password": PASSWORD})),
            400,
        ),
        (
            "array password",
            post_json(ROUTE, &json!({"username": "ivan", "password": [PASSWORD]})),
            400,
        ),
        (
            "boolean email",
            post_json(ROUTE, &json!({"email": true, "password": PASSWORD})),
            400,
        ),
        (
            "operator in username",
            post_json(
                ROUTE,
                &json!({"username": {"$gt": ""}, "password": PASSWORD}),
            ),
            400,
        ),
        (
            "operator in email",
            post_json(
                ROUTE,
                &json!({"email": {"$regex": ".*"}, "password": PASSWORD}),
            ),
            400,
        ),
        (
            "operator in password",
            post_json(
                ROUTE,
                &json!({"username": "ivan", "password": {"$ne": null}}),
            ),
            400,
        ),
        (
            "password over 128 characters",
            post_json(
                ROUTE,
                &json!({"username": "ivan", "password": "x".repeat(129)}),
            ),
            400,
        ),
        (
            "identifier over 254 characters",
            post_json(
                ROUTE,
                &json!({"username": "i".repeat(255), "password": PASSWORD}),
            ),
            400,
        ),
        (
            "body over 16 KiB",
            post_json(
                ROUTE,
                &json!({"username": "ivan", "password": PASSWORD, "pad": "x".repeat(17 * 1024)}),
            ),
            413,
        ),
        (
            "repeated form field",
            post(
                ROUTE,
                Some("application/x-www-form-urlencoded"),
                "username=ivan&username=x&password=p",
            ),
            400,
        ),
        (
            "unknown user",
            post_json(ROUTE, &json!({"username": "nobody", "password": PASSWORD})),
            401,
        ),
        (
            "wrong password",
            post_json(
                ROUTE,
                &json!({"username": "ivan", "password": "wrong password"}),
            ),
            401,
        ),
        (
            "regex-looking username",
            post_json(ROUTE, &json!({"username": ".*", "password": PASSWORD})),
            401,
        ),
    ];
    for (what, req, status) in cases {
        let resp = handle(t.app, req).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let v = envelope(&resp, status);
        if status == 400 {
            assert!(
                !v["errors"].as_array().expect("errors").is_empty() || v["message"].is_string(),
                "{what}"
            );
        }
        let text = v.to_string();
        assert!(
            !text.contains(PASSWORD),
            "{what}: the password is never echoed"
        );
    }
    assert_eq!(t.count("sessions").await, 0, "no session was written");
    assert_eq!(t.count("users").await, 1, "no user was written");
}

#[tokio::test]
async fn validation_reports_every_problem_at_once() {
    let t = TestApp::spawn().await;
    let (_, v, _, resp) = t
        .login(
            handle,
            json!({"username": {"$gt": ""}, "password": "x".repeat(200)}),
        )
        .await;
    envelope(&resp, 400);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"username") && fields.contains(&"password"),
        "{fields:?}"
    );
}

#[tokio::test]
async fn the_login_event_file_replays_through_the_handler() {
    let t = TestApp::spawn().await;
    t.seed_user("videotube_demo", "demo@example.com").await;
    let resp = handle(t.app, event("login.json")).await;
    let v = envelope(&resp, 200);
    assert_eq!(v["data"]["user"]["username"], "videotube_demo");
    let resp = handle(t.app, event("login-form.json")).await;
    envelope(&resp, 200);
    let resp = handle(t.app, event("login-wrong-password.json")).await;
    envelope(&resp, 401);
    let resp = handle(t.app, event("login-operator-injection.json")).await;
    envelope(&resp, 400);
    let resp = handle(t.app, event("login-bad-base64.json")).await;
    let v = envelope(&resp, 400);
    assert_eq!(v["message"], "Request body is not valid base64");
    assert_eq!(
        t.count("sessions").await,
        2,
        "only the two good events opened sessions"
    );
}

#[tokio::test]
async fn an_unreachable_database_answers_503_quickly_with_retry_after() {
    let mut db = testkit::process::PrivateDatabase::start();
    let uri = db.uri();
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), uri);
        v.insert("MONGODB_SERVER_SELECTION_TIMEOUT".into(), "1s".into());
    })
    .await;
    t.seed_user("judy", "judy@example.com").await;
    db.kill();
    let started = std::time::Instant::now();
    let (.., resp) = t
        .login(handle, json!({"username": "judy", "password": PASSWORD}))
        .await;
    envelope(&resp, 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "bounded by the selection timeout"
    );
    db.resume();
    let (.., resp) = t
        .login(handle, json!({"username": "judy", "password": PASSWORD}))
        .await;
    envelope(&resp, 200);
}
