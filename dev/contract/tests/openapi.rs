//! The real handlers' answers checked against `openapi/openapi.yaml`: every response body
//! validates against the schema documented for its route and status, the documented headers
//! are there, and every status a handler returned is documented for its route.
//!
//! Each test drives one route through its success and error paths against the real database
//! and the Cloudinary stand-in (`make test` starts them), and finally checks that it saw at
//! least the statuses it set out to exercise, so a case that silently changed its outcome
//! cannot shrink the coverage.
use std::collections::BTreeSet;

use base64::Engine as _;
use contract::Spec;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use testkit::{
    PASSWORD, TestApp,
    multipart::{self, Part},
    post, post_json, set_cookies, with_cookie,
};

const REGISTER: &str = "/api/v1/users/register";
const LOGIN: &str = "/api/v1/users/login";
const REFRESH: &str = "/api/v1/users/refresh-token";

/// One route's run: the document, and the statuses seen so far.
struct Route {
    spec: Spec,
    path: &'static str,
    /// Lowercase, as the document's path items name it.
    method: &'static str,
    seen: BTreeSet<u16>,
}

impl Route {
    fn new(path: &'static str) -> Self {
        Self::with_method("post", path)
    }

    fn with_method(method: &'static str, path: &'static str) -> Self {
        Self {
            spec: Spec::load(),
            path,
            method,
            seen: BTreeSet::new(),
        }
    }

    /// Asserts `resp` has `status` and conforms to the document; returns its body.
    fn conforms(&mut self, what: &str, resp: &Response<Body>, status: u16) -> Value {
        let got = resp.status().as_u16();
        assert_eq!(
            got,
            status,
            "{what}: unexpected status; body: {}",
            contract::body_text(resp)
        );
        self.seen.insert(got);
        match self.spec.check(self.path, self.method, resp) {
            Ok(body) => body,
            Err(problems) => panic!(
                "{what}: the {status} answer of {} {} does not match openapi/openapi.yaml:\n  {}",
                self.method,
                self.path,
                problems.join("\n  ")
            ),
        }
    }

    /// Every status seen is documented, and at least `wanted` were seen.
    fn finish(&self, wanted: &[u16]) {
        let documented: BTreeSet<u16> = self
            .spec
            .documented_statuses(self.path, self.method)
            .expect("documented statuses")
            .into_iter()
            .collect();
        let undocumented: Vec<&u16> = self.seen.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "{} {} returned undocumented statuses {undocumented:?}",
            self.method,
            self.path
        );
        let missed: Vec<&u16> = wanted.iter().filter(|s| !self.seen.contains(s)).collect();
        assert!(
            missed.is_empty(),
            "{} {}: the test meant to exercise {missed:?} but never saw them (saw {:?})",
            self.method,
            self.path,
            self.seen
        );
    }
}

fn get(path: &str) -> Request {
    http::Request::builder()
        .method("GET")
        .uri(format!("https://api.example.com{path}"))
        .body(Body::Empty)
        .expect("request")
}

fn assert_token_cookies(what: &str, resp: &Response<Body>, body: &Value) {
    let cookies = set_cookies(resp);
    for name in ["accessToken", "refreshToken"] {
        let c = cookies
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("{what}: no {name} cookie"));
        assert_eq!(
            c.value(),
            body["data"][name],
            "{what}: {name} cookie = body"
        );
        assert_eq!(c.http_only(), Some(true), "{what}: {name} HttpOnly");
    }
}

#[tokio::test]
async fn login_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    t.seed_user("ada", "ada@example.com").await;
    let mut r = Route::new(LOGIN);

    let request = json!({"username": "ada", "password": PASSWORD});
    r.spec
        .validate(&r.spec.schema("LoginRequest"), &request)
        .expect("the documented request schema accepts a real login");
    let resp = login::handle(t.app, post_json(LOGIN, &request)).await;
    let body = r.conforms("JSON login", &resp, 200);
    assert_token_cookies("JSON login", &resp, &body);

    let form = format!(
        "email=ada%40example.com&password={}",
        PASSWORD.replace(' ', "+")
    );
    let resp = login::handle(
        t.app,
        post(LOGIN, Some("application/x-www-form-urlencoded"), form),
    )
    .await;
    let body = r.conforms("form login", &resp, 200);
    assert_token_cookies("form login", &resp, &body);

    let cases: Vec<(&str, Request, u16)> = vec![
        (
            "missing password",
            post_json(LOGIN, &json!({"username": "ada"})),
            400,
        ),
        (
            "missing identifiers",
            post_json(LOGIN, &json!({"password": PASSWORD})),
            400,
        ),
        (
            "invalid JSON",
            post(LOGIN, Some("application/json"), "{\"username\":"),
            400,
        ),
        (
            "operator object",
            post_json(
                LOGIN,
                &json!({"username": {"$gt": ""}, "password": {"$ne": null}}),
            ),
            400,
        ),
        (
            "wrong password",
            post_json(
                LOGIN,
                &json!({"username": "ada", "password": "wrong password"}),
            ),
            401,
        ),
        (
            "unknown user",
            post_json(LOGIN, &json!({"username": "nobody", "password": PASSWORD})),
            401,
        ),
        (
            "body over 16 KiB",
            post_json(
                LOGIN,
                &json!({"username": "ada", "password": PASSWORD, "pad": "x".repeat(17 * 1024)}),
            ),
            413,
        ),
        (
            "text/plain",
            post(LOGIN, Some("text/plain"), "username=ada"),
            415,
        ),
        ("GET", get(LOGIN), 405),
    ];
    for (what, req, status) in cases {
        let resp = login::handle(t.app, req).await;
        let body = r.conforms(what, &resp, status);
        if status == 400 && what.starts_with("missing") {
            assert!(
                !body["errors"].as_array().expect("errors").is_empty(),
                "{what}: the field is listed"
            );
        }
    }
    // Guessing: failures until the throttle refuses (5 free per address and account).
    let guess = || post_json(LOGIN, &json!({"username": "ada", "password": "a guess"}));
    let mut refused = None;
    for _ in 0..6 {
        let resp = login::handle(t.app, guess()).await;
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
        r.conforms("a guess", &resp, 401);
    }
    let resp = refused.expect("the throttle refused a guess");
    r.conforms("throttled guess", &resp, 429);
    r.finish(&[200, 400, 401, 405, 413, 415, 429]);
}

#[tokio::test]
async fn refresh_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    t.seed_user("bea", "bea@example.com").await;
    let mut r = Route::new(REFRESH);
    let login = |t: &TestApp| {
        let app = t.app;
        async move {
            let body = json!({"username": "bea", "password": PASSWORD});
            let resp = login::handle(app, post_json(LOGIN, &body)).await;
            let v: Value = serde_json::from_str(&contract::body_text(&resp)).expect("json");
            v["data"]["refreshToken"]
                .as_str()
                .expect("refresh token")
                .to_owned()
        }
    };

    let token = login(&t).await;
    let resp = refresh::handle(
        t.app,
        with_cookie(post(REFRESH, None, ""), "refreshToken", &token),
    )
    .await;
    let body = r.conforms("cookie refresh", &resp, 200);
    assert_token_cookies("cookie refresh", &resp, &body);
    // The rotated token, sent in the body this time.
    let next = body["data"]["refreshToken"].as_str().expect("next token");
    let resp = refresh::handle(t.app, post_json(REFRESH, &json!({"refreshToken": next}))).await;
    let body = r.conforms("body refresh", &resp, 200);
    assert_token_cookies("body refresh", &resp, &body);
    // The token of the first refresh again: already rotated.
    let resp = refresh::handle(
        t.app,
        with_cookie(post(REFRESH, None, ""), "refreshToken", &token),
    )
    .await;
    r.conforms("reused token", &resp, 401);

    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"rt+jwt"}"#),
        b64(r#"{"sub":"65a1b2c3d4e5f60718293a4b","sid":"x","jti":"y","iat":1,"exp":9999999999}"#)
    );
    let cases: Vec<(&str, Request, u16)> = vec![
        ("no token", post(REFRESH, None, ""), 401),
        (
            "malformed token",
            with_cookie(post(REFRESH, None, ""), "refreshToken", "not.a.jwt"),
            401,
        ),
        (
            "alg none",
            with_cookie(post(REFRESH, None, ""), "refreshToken", &alg_none),
            401,
        ),
        (
            "operator object",
            post_json(REFRESH, &json!({"refreshToken": {"$ne": null}})),
            400,
        ),
        (
            "invalid JSON",
            post(REFRESH, Some("application/json"), "{"),
            400,
        ),
        (
            "body over 16 KiB",
            post_json(REFRESH, &json!({"refreshToken": "x".repeat(20_000)})),
            413,
        ),
        (
            "text/plain",
            post(REFRESH, Some("text/plain"), "token"),
            415,
        ),
        ("GET", get(REFRESH), 405),
    ];
    for (what, req, status) in cases {
        let resp = refresh::handle(t.app, req).await;
        r.conforms(what, &resp, status);
        assert!(
            set_cookies(&resp).is_empty(),
            "{what}: no cookies on failure"
        );
    }
    r.finish(&[200, 400, 401, 405, 413, 415]);
}

fn register_request(parts: &[Part]) -> Request {
    post(
        REGISTER,
        Some(&multipart::content_type()),
        Body::Binary(multipart::body(parts)),
    )
}

fn form(username: &str, avatar: Vec<u8>) -> Vec<Part> {
    vec![
        Part::text("fullName", "Ada Lovelace"),
        Part::text("email", format!("{username}@example.com")),
        Part::text("username", username),
        Part::text("password", PASSWORD),
        Part::file("avatar", "me.png", "image/png", avatar),
    ]
}

#[tokio::test]
async fn register_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    let mut r = Route::new(REGISTER);
    let png = || multipart::png(4, 3, 0);

    let resp = register::handle(t.app, register_request(&form("grace", png()))).await;
    let body = r.conforms("avatar only", &resp, 201);
    assert_eq!(body["data"]["coverImage"], "");

    let mut with_cover = form("hopper", png());
    with_cover.push(Part::file("coverImage", "cover.png", "image/png", png()));
    let resp = register::handle(t.app, register_request(&with_cover)).await;
    let body = r.conforms("with a cover image", &resp, 201);
    assert_ne!(body["data"]["coverImage"], "");

    let resp = register::handle(t.app, register_request(&form("grace", png()))).await;
    let body = r.conforms("username and email taken", &resp, 409);
    assert!(!body["errors"].as_array().expect("errors").is_empty());

    let cases: Vec<(&str, Request, u16)> = vec![
        (
            "missing fields",
            register_request(&[Part::file("avatar", "me.png", "image/png", png())]),
            400,
        ),
        (
            "invalid email and short password",
            register_request(&[
                Part::text("fullName", "Ada"),
                Part::text("email", "not-an-email"),
                Part::text("username", "ada_l"),
                Part::text("password", "short"),
                Part::file("avatar", "me.png", "image/png", png()),
            ]),
            400,
        ),
        (
            "JSON instead of multipart",
            post_json(REGISTER, &json!({"username": "x"})),
            415,
        ),
        (
            "an avatar that is not an image",
            register_request(&form("notimage", b"%PDF-1.7 not an image".to_vec())),
            415,
        ),
        (
            "an avatar over 2 MiB",
            register_request(&form("bigavatar", multipart::png(4, 3, 3 * 1024 * 1024))),
            413,
        ),
        ("GET", get(REGISTER), 405),
    ];
    for (what, req, status) in cases {
        let resp = register::handle(t.app, req).await;
        r.conforms(what, &resp, status);
    }

    t.set_fault(json!({"mode": "fail", "status": 500})).await;
    let resp = register::handle(t.app, register_request(&form("cloudfail", png()))).await;
    r.conforms("Cloudinary failing", &resp, 502);

    r.finish(&[201, 400, 405, 409, 413, 415, 502]);
}

#[tokio::test]
async fn answers_while_the_database_is_down_match_the_openapi_document() {
    let mut db = testkit::process::PrivateDatabase::start();
    let uri = db.uri();
    let t = TestApp::spawn_with(|v| {
        v.insert("MONGODB_URI".into(), uri);
        v.insert("MONGODB_SERVER_SELECTION_TIMEOUT".into(), "1s".into());
    })
    .await;
    t.seed_user("cleo", "cleo@example.com").await;
    db.kill();

    let mut login_route = Route::new(LOGIN);
    let resp = login::handle(
        t.app,
        post_json(LOGIN, &json!({"username": "cleo", "password": PASSWORD})),
    )
    .await;
    login_route.conforms("login, database down", &resp, 503);
    login_route.finish(&[503]);

    // A well-formed token, so that the handler gets as far as the database.
    let claims = json!({
        "sub": "65a1b2c3d4e5f60718293a4b", "sid": "0".repeat(32), "jti": "j".repeat(32),
        "iat": shared::tokens::now_secs(), "exp": shared::tokens::now_secs() + 60,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("rt+jwt".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(t.var("REFRESH_TOKEN_SECRET").as_bytes()),
    )
    .expect("sign");
    let mut refresh_route = Route::new(REFRESH);
    let resp = refresh::handle(
        t.app,
        with_cookie(post(REFRESH, None, ""), "refreshToken", &token),
    )
    .await;
    refresh_route.conforms("refresh, database down", &resp, 503);
    refresh_route.finish(&[503]);

    let mut register_route = Route::new(REGISTER);
    let resp = register::handle(
        t.app,
        register_request(&form("dana", multipart::png(4, 3, 0))),
    )
    .await;
    register_route.conforms("register, database down", &resp, 503);
    register_route.finish(&[503]);
}

const LOGOUT: &str = "/api/v1/users/logout";
const CURRENT_USER: &str = "/api/v1/users/current-user";
const CHANGE_PASSWORD: &str = "/api/v1/users/change-password";
const UPDATE_ACCOUNT: &str = "/api/v1/users/update-account";
const AVATAR: &str = "/api/v1/users/avatar";
const COVER_IMAGE: &str = "/api/v1/users/cover-image";

fn json_request(method: &str, path: &str, body: &Value) -> Request {
    testkit::request(
        method,
        path,
        Some("application/json"),
        Body::Text(body.to_string()),
    )
}

#[tokio::test]
async fn current_user_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("cuser", "cuser@example.com").await;
    let session = t.sign_in(&user).await;
    let mut r = Route::with_method("get", CURRENT_USER);
    let resp = current_user::handle(t.app, session.cookie(get(CURRENT_USER))).await;
    let body = r.conforms("with the cookie", &resp, 200);
    assert_eq!(body["data"]["username"], "cuser");
    let resp = current_user::handle(t.app, session.bearer(get(CURRENT_USER))).await;
    r.conforms("with a Bearer header", &resp, 200);
    let resp = current_user::handle(t.app, get(CURRENT_USER)).await;
    let body = r.conforms("no token", &resp, 401);
    assert_eq!(body["message"], "Unauthorized request");
    let resp = current_user::handle(
        t.app,
        with_cookie(get(CURRENT_USER), "accessToken", &session.refresh_token),
    )
    .await;
    let body = r.conforms("a refresh token as the access token", &resp, 401);
    assert_eq!(body["message"], "Invalid access token");
    let resp = current_user::handle(t.app, session.cookie(post(CURRENT_USER, None, ""))).await;
    r.conforms("POST", &resp, 405);
    assert_eq!(resp.headers()["allow"], "GET");
    r.finish(&[200, 401, 405]);
}

#[tokio::test]
async fn logout_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("louis", "louis@example.com").await;
    let mut r = Route::new(LOGOUT);
    let session = t.sign_in(&user).await;
    let resp = logout::handle(t.app, session.cookie(post(LOGOUT, None, ""))).await;
    let body = r.conforms("this device", &resp, 200);
    assert_eq!(body["message"], "User logged Out");
    let cleared = set_cookies(&resp);
    for name in ["accessToken", "refreshToken"] {
        let c = cleared
            .iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("{name} cleared"));
        assert_eq!(c.value(), "");
        assert_eq!(c.max_age(), Some(cookie::time::Duration::ZERO));
    }
    let other = t.sign_in(&user).await;
    let resp = logout::handle(
        t.app,
        other.bearer(json_request("POST", LOGOUT, &json!({"allDevices": true}))),
    )
    .await;
    r.conforms("every device", &resp, 200);
    let resp = logout::handle(
        t.app,
        other.bearer(json_request(
            "POST",
            LOGOUT,
            &json!({"allDevices": {"$ne": 1}}),
        )),
    )
    .await;
    r.conforms("an operator object", &resp, 400);
    let resp = logout::handle(t.app, post(LOGOUT, None, "")).await;
    r.conforms("no token", &resp, 401);
    let resp = logout::handle(t.app, other.cookie(get(LOGOUT))).await;
    r.conforms("GET", &resp, 405);
    r.finish(&[200, 400, 401, 405]);
}

#[tokio::test]
async fn change_password_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("chad", "chad@example.com").await;
    let session = t.sign_in(&user).await;
    let mut r = Route::new(CHANGE_PASSWORD);
    let resp = change_password::handle(
        t.app,
        session.cookie(post_json(
            CHANGE_PASSWORD,
            &json!({"oldPassword": "not the password", "newPassword": "a brand new passphrase"}),
        )),
    )
    .await;
    let body = r.conforms("wrong old password", &resp, 400);
    assert_eq!(body["errors"][0]["field"], "oldPassword");
    let resp = change_password::handle(
        t.app,
        session.cookie(post_json(
            CHANGE_PASSWORD,
            &json!({"oldPassword": PASSWORD, "newPassword": "a brand new passphrase"}),
        )),
    )
    .await;
    let body = r.conforms("changed", &resp, 200);
    assert_eq!(body["message"], "Password changed successfully");
    let resp = change_password::handle(
        t.app,
        post_json(
            CHANGE_PASSWORD,
            &json!({"oldPassword": PASSWORD, "newPassword": "x"}),
        ),
    )
    .await;
    r.conforms("no token", &resp, 401);
    let resp = change_password::handle(
        t.app,
        session.cookie(post(CHANGE_PASSWORD, Some("text/plain"), "hello")),
    )
    .await;
    r.conforms("text/plain", &resp, 415);
    // Guessing the old password: 400s until the throttle refuses (5 free since the change,
    // whose correct old password reset the count).
    let guess = || {
        session.cookie(post_json(
            CHANGE_PASSWORD,
            &json!({"oldPassword": "a guess", "newPassword": "another new passphrase"}),
        ))
    };
    for _ in 0..5 {
        let resp = change_password::handle(t.app, guess()).await;
        r.conforms("a guess", &resp, 400);
    }
    let resp = change_password::handle(t.app, guess()).await;
    r.conforms("throttled guess", &resp, 429);
    r.finish(&[200, 400, 401, 415, 429]);
}

#[tokio::test]
async fn update_account_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("ursula", "ursula@example.com").await;
    t.seed_user("taken", "taken@example.com").await;
    let session = t.sign_in(&user).await;
    let mut r = Route::with_method("patch", UPDATE_ACCOUNT);
    let resp = update_account::handle(
        t.app,
        session.cookie(json_request(
            "PATCH",
            UPDATE_ACCOUNT,
            &json!({"fullName": "Ursula K", "email": "Ursula.K@Example.com"}),
        )),
    )
    .await;
    let body = r.conforms("updated", &resp, 200);
    assert_eq!(body["data"]["email"], "ursula.k@example.com");
    assert_eq!(body["message"], "Account details updated successfully");
    assert!(
        set_cookies(&resp).iter().any(|c| c.name() == "accessToken"),
        "a fresh access cookie"
    );
    let resp = update_account::handle(
        t.app,
        session.cookie(json_request(
            "PATCH",
            UPDATE_ACCOUNT,
            &json!({"email": "taken@example.com"}),
        )),
    )
    .await;
    r.conforms("a taken email", &resp, 409);
    let resp = update_account::handle(
        t.app,
        session.cookie(json_request(
            "PATCH",
            UPDATE_ACCOUNT,
            &json!({"email": "nope"}),
        )),
    )
    .await;
    r.conforms("an invalid email", &resp, 400);
    let resp = update_account::handle(
        t.app,
        json_request("PATCH", UPDATE_ACCOUNT, &json!({"fullName": "X"})),
    )
    .await;
    r.conforms("no token", &resp, 401);
    let resp = update_account::handle(
        t.app,
        session.cookie(post_json(UPDATE_ACCOUNT, &json!({"fullName": "X"}))),
    )
    .await;
    r.conforms("POST", &resp, 405);
    r.finish(&[200, 400, 401, 405, 409]);
}

fn image_request(path: &str, field: &'static str, bytes: Vec<u8>) -> Request {
    let body = multipart::body(&[Part::file(field, "image.png", "image/png", bytes)]);
    testkit::request(
        "PATCH",
        path,
        Some(&multipart::content_type()),
        Body::Binary(body),
    )
}

#[tokio::test]
async fn image_replacement_answers_match_the_openapi_document() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("imogen", "imogen@example.com").await;
    let session = t.sign_in(&user).await;
    for (path, field) in [(AVATAR, "avatar"), (COVER_IMAGE, "coverImage")] {
        let handle = |req: Request| async {
            if path == AVATAR {
                avatar::handle(t.app, req).await
            } else {
                cover_image::handle(t.app, req).await
            }
        };
        let mut r = Route::with_method("patch", path);
        let resp =
            handle(session.cookie(image_request(path, field, multipart::png(4, 4, 1)))).await;
        r.conforms("replaced", &resp, 200);
        let resp =
            handle(session.cookie(image_request(path, field, b"not an image".to_vec()))).await;
        r.conforms("not an image", &resp, 415);
        let resp =
            handle(session.cookie(image_request(path, "other", multipart::png(4, 4, 2)))).await;
        r.conforms("the wrong field", &resp, 400);
        let resp = handle(session.cookie(testkit::request(
            "PATCH",
            path,
            Some("application/json"),
            "{}",
        )))
        .await;
        r.conforms("not multipart", &resp, 415);
        let resp = handle(image_request(path, field, multipart::png(4, 4, 3))).await;
        r.conforms("no token", &resp, 401);
        t.set_fault(json!({"mode": "fail", "status": 500, "ops": ["upload"]}))
            .await;
        let resp =
            handle(session.cookie(image_request(path, field, multipart::png(4, 4, 4)))).await;
        r.conforms("Cloudinary failing", &resp, 502);
        t.set_fault(json!({"mode": "none"})).await;
        r.finish(&[200, 400, 401, 415, 502]);
    }
}
