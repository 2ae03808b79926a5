//! The attack corpus: over a hundred malformed and hostile requests across the three routes,
//! sent over real HTTP to the functions under `cargo lambda watch`, as an attacker would.
//!
//! Each must get its documented 4xx in the error envelope (statusCode equal to the HTTP status,
//! `success: false`, `data: null`, a message, `errors` as `[{field, message}]`, a `requestId`),
//! set no cookie, panic nowhere (the functions' log is read for it), leave no staged file,
//! change nothing in the database (user and session counts and a SHA-256 over both
//! collections) and store no image at the stand-in. A second test sends arbitrary multipart
//! bodies (proptest) to the register route under the same rules.
//!
//! What `cargo lambda watch` itself cannot carry is left to the handler-level and property
//! tests: a text body (JSON, or no content type) that is not UTF-8, a header value that is not,
//! or more than 100 headers get the emulator's own 500 or 431 before any function runs (API
//! Gateway base64-encodes such bodies and has its own header limits).
//!
//! The corpus needs a few real tokens (a live session, a revoked one, a replayed one); they are
//! made before the baseline is taken, so every corpus request is held to "no write at all".
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use e2e::{Api, Footprint, LogCursor, assert_error_envelope};
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use serde_json::{Value, json};
use testkit::{
    PASSWORD,
    forge::{b64, changed, claims_of, jwt},
    multipart::{self, Part},
    random_suffix, required_env, seed_user,
};

/// How many documents a footprint holds in `collection`, and their digest.
fn collection<'a>(f: &'a Footprint, collection: &str) -> (u64, &'a str) {
    f.collections
        .iter()
        .find(|(name, ..)| name == collection)
        .map_or((0, ""), |(_, count, sha)| (*count, sha.as_str()))
}

/// A footprint without the throttles' records.
fn without_throttle(f: &Footprint) -> Footprint {
    let mut f = f.clone();
    f.collections.retain(|(name, ..)| {
        name != shared::throttle::ATTEMPTS && name != shared::throttle::TRUSTED
    });
    f
}

/// Whether the throttles' records changed as a case allows: a login that checked a password
/// and failed leaves exactly its failure record; a change-password refused with a 400 has
/// checked its old password when it was well-formed, leaving a failure record (wrong) or the
/// trust of a correct one; nothing else touches them.
fn throttle_change_allowed(case: &Case, before: &Footprint, after: &Footprint) -> bool {
    let (attempts_before, _) = collection(before, shared::throttle::ATTEMPTS);
    let (attempts_after, _) = collection(after, shared::throttle::ATTEMPTS);
    let trust_same = collection(before, shared::throttle::TRUSTED)
        == collection(after, shared::throttle::TRUSTED);
    let grew = attempts_after.checked_sub(attempts_before);
    match (case.route, case.expect) {
        ("login", 401) => grew == Some(1) && trust_same,
        ("change-password", 400) => (grew == Some(1) && trust_same) || (grew == Some(0)),
        _ => grew == Some(0) && trust_same,
    }
}

/// The tests here compare the shared instance's footprint before and after each request, so
/// they must not overlap each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// One request of the corpus.
struct Case {
    name: String,
    route: &'static str,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    expect: u16,
}

/// Builds the corpus one case at a time, keeping names unique.
#[derive(Default)]
struct Corpus(Vec<Case>);

impl Corpus {
    fn raw(
        &mut self,
        route: &'static str,
        name: impl Into<String>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        expect: u16,
    ) {
        self.0.push(Case {
            name: name.into(),
            route,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
            expect,
        });
    }

    fn json(&mut self, route: &'static str, name: &str, body: impl Into<Vec<u8>>, expect: u16) {
        self.raw(
            route,
            name,
            &[("content-type", "application/json")],
            Some(body.into()),
            expect,
        );
    }

    fn form(&mut self, route: &'static str, name: &str, body: impl Into<Vec<u8>>, expect: u16) {
        self.raw(
            route,
            name,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.into()),
            expect,
        );
    }

    /// A refresh with `token` in the `refreshToken` cookie.
    fn token(&mut self, name: &str, token: &str, expect: u16) {
        let cookie = format!("refreshToken={token}");
        self.raw(
            "refresh-token",
            name,
            &[("cookie", cookie.as_str())],
            None,
            expect,
        );
    }

    /// A register request with a well-formed multipart body made of `parts`.
    fn parts(&mut self, name: &str, parts: &[Part], expect: u16) {
        let ct = multipart::content_type();
        self.raw(
            "register",
            name,
            &[("content-type", ct.as_str())],
            Some(multipart::body(parts)),
            expect,
        );
    }

    fn multipart_raw(
        &mut self,
        name: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        expect: u16,
    ) {
        self.raw(
            "register",
            name,
            &[("content-type", content_type)],
            Some(body.into()),
            expect,
        );
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A valid registration form except for what `tweak` changes.
fn registration(username: &str, tweak: impl FnOnce(&mut Vec<Part>)) -> Vec<Part> {
    let mut parts = vec![
        Part::text("fullName", "Corpus Client"),
        Part::text("email", format!("{username}@example.com")),
        Part::text("username", username),
        Part::text("password", PASSWORD),
        Part::file("avatar", "avatar.png", "image/png", multipart::png(8, 8, 0)),
    ];
    tweak(&mut parts);
    parts
}

fn without(field: &'static str) -> impl FnOnce(&mut Vec<Part>) {
    move |parts| {
        parts.retain(|p| match p {
            Part::Text(n, _) => *n != field,
            Part::File { name, .. } => *name != field,
        })
    }
}

fn replacing(field: &'static str, with: Part) -> impl FnOnce(&mut Vec<Part>) {
    move |parts| {
        without(field)(parts);
        parts.push(with);
    }
}

/// Tokens and users the corpus refers to, made before the baseline.
struct Fixture {
    /// A user with [`PASSWORD`] and one live session.
    username: String,
    other_user_id: String,
    other_email: String,
    /// The live session's current refresh token: never presented by the corpus itself.
    live: String,
    access: String,
    /// The revoked session's first token (replayed after the grace, which revoked it) and
    /// its second one (current when the session died).
    replayed: String,
    revoked_current: String,
    /// An access token of the revoked session: unexpired and correctly signed, but its session
    /// is over, so our routes refuse it.
    revoked_access: String,
}

async fn fixture(api: &Api) -> Fixture {
    let username = format!("corpus_{}", random_suffix());
    seed_user(
        &api.db,
        &username,
        &format!("{username}@example.com"),
        PASSWORD,
    )
    .await;
    let other = format!("corpus_{}", random_suffix());
    let other_doc = seed_user(&api.db, &other, &format!("{other}@example.com"), PASSWORD).await;
    let login = || async {
        let req = api
            .http
            .post(api.url("login"))
            .json(&json!({"username": username, "password": PASSWORD}));
        let (status, _, body) = api.send(req).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let refresh = |token: String| async move {
        let req = api
            .http
            .post(api.url("refresh-token"))
            .json(&json!({"refreshToken": token}));
        let (status, _, body) = api.send(req).await;
        (status, body)
    };
    let first = login().await;
    let access = first["data"]["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    let (status, body) = refresh(
        first["data"]["refreshToken"]
            .as_str()
            .expect("rt")
            .to_owned(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let live = body["data"]["refreshToken"]
        .as_str()
        .expect("rt")
        .to_owned();

    let second = login().await;
    let revoked_access = second["data"]["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    let replayed = second["data"]["refreshToken"]
        .as_str()
        .expect("rt")
        .to_owned();
    let (status, body) = refresh(replayed.clone()).await;
    assert_eq!(status, 200, "{body}");
    let revoked_current = body["data"]["refreshToken"]
        .as_str()
        .expect("rt")
        .to_owned();
    // `make test` serves the functions with REFRESH_REUSE_GRACE=2s.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let (status, body) = refresh(replayed.clone()).await;
    assert_eq!(
        status, 401,
        "a replay after the grace revokes the session: {body}"
    );
    Fixture {
        username,
        other_user_id: other_doc.id.to_hex(),
        other_email: other_doc.email.clone(),
        live,
        access,
        replayed,
        revoked_current,
        revoked_access,
    }
}

fn corpus(f: &Fixture) -> Vec<Case> {
    let refresh_secret = required_env("TEST_E2E_REFRESH_TOKEN_SECRET");
    let access_secret = required_env("TEST_E2E_ACCESS_TOKEN_SECRET");
    let mut c = Corpus::default();
    login_requests(&mut c, f);
    refresh_carriers(&mut c, f);
    refresh_tokens(
        &mut c,
        f,
        refresh_secret.as_bytes(),
        access_secret.as_bytes(),
    );
    register_bodies(&mut c);
    register_fields(&mut c);
    register_files(&mut c);
    register_taken(&mut c, f);
    authenticated_routes(&mut c, f, access_secret.as_bytes());
    c.0
}

/// A fresh username no account has.
fn ok_name() -> String {
    format!("corpus_{}", random_suffix())
}

/// Login: bodies, content types, operator injection, sizes.
fn login_requests(c: &mut Corpus, f: &Fixture) {
    let login = "login";
    c.raw(login, "login: no body, no content type", &[], None, 400);
    c.json(login, "login: empty JSON object", "{}", 400);
    c.json(login, "login: broken JSON", "{\"username\": \"a\",", 400);
    c.json(
        login,
        "login: JSON array",
        "[\"username\", \"password\"]",
        400,
    );
    c.json(login, "login: JSON string", "\"username=a\"", 400);
    c.json(login, "login: JSON null", "null", 400);
    c.json(login, "login: JSON number", "12345", 400);
    c.json(
        login,
        "login: byte-order mark before JSON",
        b"\xef\xbb\xbf{}".to_vec(),
        400,
    );
    c.json(
        login,
        "login: lone surrogate escape in JSON",
        r#"{"username": "\ud800", "password": "x"}"#,
        400,
    );
    c.json(
        login,
        "login: 5000-deep nesting",
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        400,
    );
    c.raw(
        login,
        "login: text/plain",
        &[("content-type", "text/plain")],
        Some(b"username=a&password=b".to_vec()),
        415,
    );
    c.raw(
        login,
        "login: text/html",
        &[("content-type", "text/html")],
        Some(b"<script>alert(1)</script>".to_vec()),
        415,
    );
    c.raw(login, "login: XML", &[("content-type", "application/xml")], Some(b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>".to_vec()), 415);
    c.raw(
        login,
        "login: multipart",
        &[("content-type", "multipart/form-data; boundary=x")],
        Some(
            b"--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\na\r\n--x--\r\n"
                .to_vec(),
        ),
        415,
    );
    c.raw(
        login,
        "login: body without content type",
        &[],
        Some(b"{\"username\":\"a\",\"password\":\"b\"}".to_vec()),
        415,
    );
    c.json(
        login,
        "login: urlencoded body labelled JSON",
        "username=a&password=b",
        400,
    );
    c.json(
        login,
        "login: $gt operator as username",
        json!({"username": {"$gt": ""}, "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: $ne operator as email",
        json!({"email": {"$ne": null}, "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: $regex operator as password",
        json!({"username": f.username, "password": {"$regex": ".*"}}).to_string(),
        400,
    );
    c.json(
        login,
        "login: $where operator",
        json!({"username": f.username, "$where": "sleep(1000)", "password": {"$exists": true}})
            .to_string(),
        400,
    );
    c.json(
        login,
        "login: username array",
        json!({"username": [f.username, "x"], "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: username number",
        json!({"username": 12345, "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: username boolean",
        json!({"username": true, "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: password number",
        json!({"username": f.username, "password": 12345678}).to_string(),
        400,
    );
    c.json(
        login,
        "login: duplicate key, operator last",
        format!(
            "{{\"username\":\"{}\",\"username\":{{\"$gt\":\"\"}},\"password\":\"{PASSWORD}\"}}",
            f.username
        ),
        400,
    );
    c.json(
        login,
        "login: password missing",
        json!({"username": f.username}).to_string(),
        400,
    );
    c.json(
        login,
        "login: password empty",
        json!({"username": f.username, "password": ""}).to_string(),
        400,
    );
    c.json(
        login,
        "login: password null",
        json!({"username": f.username, "password": null}).to_string(),
        400,
    );
    c.json(
        login,
        "login: identifiers null",
        json!({"username": null, "email": null, "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: identifiers blank",
        json!({"username": "   ", "email": "", "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: password of 129 characters",
        json!({"username": f.username, "password": "p".repeat(129)}).to_string(),
        400,
    );
    c.json(
        login,
        "login: password of 10000 characters",
        json!({"username": f.username, "password": "p".repeat(10_000)}).to_string(),
        400,
    );
    c.json(
        login,
        "login: username of 300 characters",
        json!({"username": "u".repeat(300), "password": PASSWORD}).to_string(),
        400,
    );
    c.json(
        login,
        "login: email of 10000 characters",
        json!({"email": format!("{}@example.com", "e".repeat(10_000)), "password": PASSWORD})
            .to_string(),
        400,
    );
    c.json(
        login,
        "login: body just over 16 KiB",
        json!({"username": f.username, "password": PASSWORD, "pad": "x".repeat(16 * 1024)})
            .to_string(),
        413,
    );
    c.json(login, "login: 5 MB body", vec![b' '; 5_000_000], 413);
    c.form(
        login,
        "login: form with a repeated username",
        format!("username={}&username=other&password=x", f.username),
        400,
    );
    c.form(
        login,
        "login: form with bracket operator",
        "username[$gt]=&password[$ne]=x",
        400,
    );
    c.form(
        login,
        "login: form with broken percent escapes",
        "username=%ZZ%&password=%E0%A4%A",
        401,
    );
    c.form(
        login,
        "login: form with only a password",
        "password=correct+horse+battery+staple",
        400,
    );
    c.json(
        login,
        "login: unknown user",
        json!({"username": format!("nobody_{}", random_suffix()), "password": PASSWORD})
            .to_string(),
        401,
    );
    c.json(
        login,
        "login: wrong password",
        json!({"username": f.username, "password": "wrong horse battery staple"}).to_string(),
        401,
    );
    c.json(
        login,
        "login: username and email of different accounts",
        json!({"username": f.username, "email": "someone.else@example.com", "password": PASSWORD})
            .to_string(),
        401,
    );
    c.json(
        login,
        "login: NUL byte in username",
        json!({"username": format!("{}\u{0}", f.username), "password": PASSWORD}).to_string(),
        401,
    );
    c.json(
        login,
        "login: right-to-left override and emoji",
        json!({"username": "\u{202e}nimda\u{1f600}", "password": PASSWORD}).to_string(),
        401,
    );
    c.json(login, "login: extra fields are not privileges", json!({"username": f.username, "password": "wrong horse battery staple", "role": "admin", "__proto__": {"isAdmin": true}}).to_string(), 401);
    c.raw(
        login,
        "login: hostile Host header",
        &[("host", "a b"), ("content-type", "application/json")],
        Some(b"{}".to_vec()),
        400,
    );
    c.raw(
        login,
        "login: Host with a bad port",
        &[
            ("host", "api.example.com:notaport"),
            ("content-type", "application/json"),
        ],
        Some(b"{}".to_vec()),
        400,
    );
    c.raw(
        login,
        "login: hostile X-Forwarded-Proto",
        &[
            ("x-forwarded-proto", "ht tp"),
            ("content-type", "application/json"),
        ],
        Some(b"{}".to_vec()),
        400,
    );
}

/// Refresh: where the token comes from (cookie or body), and how each carrier is broken.
fn refresh_carriers(c: &mut Corpus, f: &Fixture) {
    let refresh = "refresh-token";
    c.raw(refresh, "refresh: no token at all", &[], None, 401);
    c.raw(
        refresh,
        "refresh: empty cookie",
        &[("cookie", "refreshToken=")],
        None,
        401,
    );
    c.raw(
        refresh,
        "refresh: other cookies only",
        &[("cookie", "accessToken=x; theme=dark")],
        None,
        401,
    );
    c.raw(
        refresh,
        "refresh: repeated cookie, both garbage",
        &[("cookie", "refreshToken=a.b.c; refreshToken=d.e.f")],
        None,
        401,
    );
    c.raw(
        refresh,
        "refresh: cookie of 100 KB",
        &[("cookie", &format!("refreshToken={}", "A".repeat(100_000)))],
        None,
        401,
    );
    c.json(
        refresh,
        "refresh: token blank in body",
        json!({"refreshToken": "   "}).to_string(),
        401,
    );
    c.json(
        refresh,
        "refresh: token as $gt operator",
        json!({"refreshToken": {"$gt": ""}}).to_string(),
        400,
    );
    c.json(
        refresh,
        "refresh: token as number",
        json!({"refreshToken": 42}).to_string(),
        400,
    );
    c.json(
        refresh,
        "refresh: token as array",
        json!({"refreshToken": [f.live]}).to_string(),
        400,
    );
    c.json(refresh, "refresh: broken JSON", "{\"refreshToken\":", 400);
    c.raw(
        refresh,
        "refresh: text/plain body",
        &[("content-type", "text/plain")],
        Some(f.live.clone().into_bytes()),
        415,
    );
    c.json(
        refresh,
        "refresh: body over 16 KiB",
        json!({"refreshToken": "x".repeat(17 * 1024)}).to_string(),
        413,
    );
    c.json(
        refresh,
        "refresh: live token with spaces around",
        json!({"refreshToken": format!(" {} ", f.live)}).to_string(),
        401,
    );
    c.raw(
        refresh,
        "refresh: hostile Host header",
        &[("host", "[::1"), ("cookie", "refreshToken=x")],
        None,
        401,
    );
}

/// Refresh: malformed and forged tokens, signed with the refresh secret `rs`, the access
/// secret, others or nothing, and the tokens of revoked or replayed sessions.
fn refresh_tokens(c: &mut Corpus, f: &Fixture, rs: &[u8], access_secret: &[u8]) {
    let refresh = "refresh-token";
    let live = claims_of(&f.live);
    let rt = |alg: &str| json!({"alg": alg, "typ": "rt+jwt"});
    let with = |changes: Value| changed(&live, changes);
    let parts: Vec<&str> = f.live.split('.').collect();
    let (live_header, live_payload, live_sig) = (parts[0], parts[1], parts[2]);
    let unsigned = |alg: &str, sig: &str| {
        format!(
            "{}.{live_payload}.{sig}",
            b64(rt(alg).to_string().as_bytes())
        )
    };

    c.token("token: garbage", "garbage", 401);
    c.token("token: three empty parts", "..", 401);
    c.token("token: a.b.c", "a.b.c", 401);
    c.token("token: four parts", &format!("{}.x", f.live), 401);
    c.token(
        "token: signature dropped",
        &format!("{live_header}.{live_payload}"),
        401,
    );
    c.token(
        "token: padding added to the signature",
        &format!("{}=", f.live),
        401,
    );
    c.token("token: not base64", "!!!.@@@.###", 401);
    c.token(
        "token: header is not JSON",
        &format!("{}.{live_payload}.{live_sig}", b64(b"not json")),
        401,
    );
    c.token(
        "token: 64 KB header",
        &format!(
            "{}.{live_payload}.{live_sig}",
            b64(
                json!({"alg": "HS256", "typ": "rt+jwt", "pad": "x".repeat(64_000)})
                    .to_string()
                    .as_bytes()
            )
        ),
        401,
    );
    c.token("token: alg none", &unsigned("none", ""), 401);
    c.token(
        "token: alg None with the real signature",
        &unsigned("None", live_sig),
        401,
    );
    c.token("token: alg NONE", &unsigned("NONE", ""), 401);
    c.token("token: alg nOnE", &unsigned("nOnE", ""), 401);
    c.token(
        "token: alg missing",
        &format!(
            "{}.{live_payload}.",
            b64(json!({"typ": "rt+jwt"}).to_string().as_bytes())
        ),
        401,
    );
    c.token(
        "token: HS384 with the refresh secret",
        &jwt(&rt("HS384"), &live, Algorithm::HS384, rs),
        401,
    );
    c.token(
        "token: HS512 with the refresh secret",
        &jwt(&rt("HS512"), &live, Algorithm::HS512, rs),
        401,
    );
    c.token(
        "token: RS256 header, HMAC signature (key confusion)",
        &jwt(&rt("RS256"), &live, Algorithm::HS256, rs),
        401,
    );
    c.token(
        "token: wrong secret",
        &jwt(
            &rt("HS256"),
            &live,
            Algorithm::HS256,
            b"an attacker's guess at the secret, 32+ bytes",
        ),
        401,
    );
    c.token(
        "token: empty secret",
        &jwt(&rt("HS256"), &live, Algorithm::HS256, b""),
        401,
    );
    c.token(
        "token: signed with the access secret",
        &jwt(&rt("HS256"), &live, Algorithm::HS256, access_secret),
        401,
    );
    c.token("token: an access token as refresh token", &f.access, 401);
    c.json(
        refresh,
        "token: an access token in the body",
        json!({"refreshToken": f.access}).to_string(),
        401,
    );
    c.token(
        "token: typ at+jwt",
        &jwt(
            &json!({"alg": "HS256", "typ": "at+jwt"}),
            &live,
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: typ JWT",
        &jwt(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &live,
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: typ RT+JWT",
        &jwt(
            &json!({"alg": "HS256", "typ": "RT+JWT"}),
            &live,
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: typ missing",
        &jwt(&json!({"alg": "HS256"}), &live, Algorithm::HS256, rs),
        401,
    );
    c.token("token: kid and jku pointing elsewhere", &jwt(&json!({"alg": "HS256", "typ": "rt+jwt", "kid": "../../../dev/null", "jku": "https://attacker.example/jwks.json"}), &live, Algorithm::HS256, b""), 401);
    c.token(
        "token: embedded jwk",
        &jwt(
            &json!({"alg": "HS256", "typ": "rt+jwt", "jwk": {"kty": "oct", "k": b64(b"attacker")}}),
            &live,
            Algorithm::HS256,
            b"attacker",
        ),
        401,
    );
    c.token(
        "token: expired an hour ago",
        &jwt(
            &rt("HS256"),
            &with(json!({"iat": now() - 7200, "exp": now() - 3600})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: expired a minute ago",
        &jwt(
            &rt("HS256"),
            &with(json!({"exp": now() - 60})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: exp missing",
        &jwt(
            &rt("HS256"),
            &with(json!({"exp": null})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: exp as a string",
        &jwt(
            &rt("HS256"),
            &with(json!({"exp": "9999999999"})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: exp beyond i64",
        &jwt(
            &rt("HS256"),
            &with(json!({"exp": 1e300})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: sub missing",
        &jwt(
            &rt("HS256"),
            &with(json!({"sub": null})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: jti missing",
        &jwt(
            &rt("HS256"),
            &with(json!({"jti": null})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: extra admin claim",
        &jwt(
            &rt("HS256"),
            &with(json!({"admin": true})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: sub is an operator",
        &jwt(
            &rt("HS256"),
            &with(json!({"sub": {"$ne": null}})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: sid is an operator",
        &jwt(
            &rt("HS256"),
            &with(json!({"sid": {"$gt": ""}})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: jti is an operator",
        &jwt(
            &rt("HS256"),
            &with(json!({"jti": {"$exists": true}})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: sub not an object id",
        &jwt(
            &rt("HS256"),
            &with(json!({"sub": "admin"})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: sid not a session id",
        &jwt(
            &rt("HS256"),
            &with(json!({"sid": "../sessions"})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: unknown session",
        &jwt(
            &rt("HS256"),
            &with(json!({"sid": "0123456789abcdef0123456789abcdef"})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: another user's session",
        &jwt(
            &rt("HS256"),
            &with(json!({"sub": f.other_user_id})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
    c.token(
        "token: payload tampered, signature kept",
        &format!(
            "{live_header}.{}.{live_sig}",
            b64(with(json!({"sub": f.other_user_id})).to_string().as_bytes())
        ),
        401,
    );
    let mut flipped = live_sig.to_owned().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    c.token(
        "token: one signature character changed",
        &format!(
            "{live_header}.{live_payload}.{}",
            String::from_utf8(flipped).expect("ascii")
        ),
        401,
    );
    c.token(
        "token: current token of a revoked session",
        &f.revoked_current,
        401,
    );
    c.token("token: replayed token, again", &f.replayed, 401);
    c.token(
        "token: revoked session, fresh jti",
        &jwt(
            &rt("HS256"),
            &with(json!({"sid": claims_of(&f.revoked_current)["sid"], "jti": "brand-new-jti"})),
            Algorithm::HS256,
            rs,
        ),
        401,
    );
}

/// Register: content types and broken multipart.
fn register_bodies(c: &mut Corpus) {
    let reg = "register";
    let boundary = multipart::BOUNDARY;
    c.raw(
        reg,
        "register: no content type",
        &[],
        Some(multipart::body(&registration(
            &ok_name(),
            without("avatar"),
        ))),
        415,
    );
    c.raw(
        reg,
        "register: JSON",
        &[("content-type", "application/json")],
        Some(
            json!({"username": ok_name(), "password": PASSWORD})
                .to_string()
                .into_bytes(),
        ),
        415,
    );
    c.raw(
        reg,
        "register: urlencoded",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"username=a&password=b".to_vec()),
        415,
    );
    c.multipart_raw(
        "register: multipart without a boundary",
        "multipart/form-data",
        multipart::body(&registration(&ok_name(), |_| {})),
        415,
    );
    // An empty boundary is no boundary (RFC 2046: 1 to 70 characters).
    c.multipart_raw(
        "register: empty boundary parameter",
        "multipart/form-data; boundary=",
        multipart::body(&registration(&ok_name(), |_| {})),
        415,
    );
    c.multipart_raw(
        "register: quoted boundary with a space, fields missing",
        "multipart/form-data; boundary=\"quoted boundary\"",
        "--quoted boundary\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nquoted_user\r\n--quoted boundary--\r\n",
        400,
    );
    c.multipart_raw(
        "register: multipart/mixed",
        &format!("multipart/mixed; boundary={boundary}"),
        multipart::body(&registration(&ok_name(), |_| {})),
        415,
    );
    c.multipart_raw(
        "register: boundary does not match the body",
        "multipart/form-data; boundary=someOtherBoundary",
        multipart::body(&registration(&ok_name(), |_| {})),
        400,
    );
    c.multipart_raw(
        "register: empty body",
        &multipart::content_type(),
        Vec::new(),
        400,
    );
    let mut truncated = multipart::body(&registration(&ok_name(), |_| {}));
    truncated.truncate(truncated.len() / 2);
    c.multipart_raw(
        "register: body cut in half",
        &multipart::content_type(),
        truncated,
        400,
    );
    c.multipart_raw(
        "register: closing boundary only",
        &multipart::content_type(),
        format!("--{boundary}--\r\n"),
        400,
    );
    c.multipart_raw(
        "register: part without a name",
        &multipart::content_type(),
        format!(
            "--{boundary}\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--{boundary}--\r\n"
        ),
        400,
    );
    c.multipart_raw(
        "register: part without headers",
        &multipart::content_type(),
        format!("--{boundary}\r\n\r\nvalue\r\n--{boundary}--\r\n"),
        400,
    );
    c.multipart_raw("register: CRLF injected into a part name", &multipart::content_type(), format!("--{boundary}\r\nContent-Disposition: form-data; name=\"username\r\nX-Injected: 1\"\r\n\r\nvalue\r\n--{boundary}--\r\n"), 400);
    let many: String = (0..1000)
        .map(|i| {
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n")
        })
        .collect::<String>()
        + &format!("--{boundary}--\r\n");
    c.multipart_raw(
        "register: a thousand unknown parts",
        &multipart::content_type(),
        many,
        400,
    );
    let long_boundary = "b".repeat(200);
    // RFC 2046 allows 1 to 70 characters: a longer boundary is no valid multipart type.
    c.multipart_raw("register: a 200-character boundary", &format!("multipart/form-data; boundary={long_boundary}"), format!("--{long_boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nx\r\n--{long_boundary}--\r\n"), 415);
}

/// Register: fields.
fn register_fields(c: &mut Corpus) {
    let boundary = multipart::BOUNDARY;
    c.parts(
        "register: nothing but an avatar",
        &registration(&ok_name(), |p| p.retain(|x| matches!(x, Part::File { .. }))),
        400,
    );
    c.parts(
        "register: avatar missing",
        &registration(&ok_name(), without("avatar")),
        400,
    );
    c.parts(
        "register: password missing",
        &registration(&ok_name(), without("password")),
        400,
    );
    c.parts(
        "register: password of 7 characters",
        &registration(
            &ok_name(),
            replacing("password", Part::text("password", "seven77")),
        ),
        400,
    );
    c.parts(
        "register: password of 129 characters",
        &registration(
            &ok_name(),
            replacing("password", Part::text("password", "p".repeat(129))),
        ),
        400,
    );
    c.parts(
        "register: username with a space",
        &registration(
            &ok_name(),
            replacing("username", Part::text("username", "john doe")),
        ),
        400,
    );
    c.parts(
        "register: username as an operator",
        &registration(
            &ok_name(),
            replacing("username", Part::text("username", "{\"$gt\":\"\"}")),
        ),
        400,
    );
    c.parts(
        "register: username with a NUL byte",
        &registration(
            &ok_name(),
            replacing("username", Part::text("username", "admin\u{0}x")),
        ),
        400,
    );
    c.parts(
        "register: username in Cyrillic look-alikes",
        &registration(
            &ok_name(),
            replacing("username", Part::text("username", "аdmin")),
        ),
        400,
    );
    c.parts(
        "register: email as an operator",
        &registration(
            &ok_name(),
            replacing("email", Part::text("email", "{\"$ne\":null}")),
        ),
        400,
    );
    c.parts(
        "register: email without a domain dot",
        &registration(
            &ok_name(),
            replacing("email", Part::text("email", "root@localhost")),
        ),
        400,
    );
    c.parts(
        "register: full name with control characters",
        &registration(
            &ok_name(),
            replacing(
                "fullName",
                Part::text("fullName", "Evil\u{7}\u{1b}[31mName"),
            ),
        ),
        400,
    );
    c.parts(
        "register: full name over 1 KiB",
        &registration(
            &ok_name(),
            replacing("fullName", Part::text("fullName", "n".repeat(2000))),
        ),
        400,
    );
    c.parts(
        "register: unknown role field",
        &registration(&ok_name(), |p| p.push(Part::text("role", "admin"))),
        400,
    );
    c.parts(
        "register: username given twice",
        &registration(&ok_name(), |p| p.push(Part::text("username", "second"))),
        400,
    );
    c.parts(
        "register: two avatars",
        &registration(&ok_name(), |p| {
            p.push(Part::file(
                "avatar",
                "b.png",
                "image/png",
                multipart::png(8, 8, 0),
            ))
        }),
        400,
    );
    c.parts(
        "register: avatar sent as text",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::text("avatar", "https://attacker.example/a.png"),
            ),
        ),
        400,
    );
    c.parts(
        "register: username sent as a file",
        &registration(
            &ok_name(),
            replacing(
                "username",
                Part::file("username", "u.txt", "text/plain", b"someone".to_vec()),
            ),
        ),
        400,
    );
    c.parts(
        "register: empty avatar file",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::file("avatar", "a.png", "image/png", Vec::new()),
            ),
        ),
        400,
    );
    let mut invalid_utf8 = multipart::body(&registration(&ok_name(), without("fullName")));
    let tail = format!("--{boundary}--\r\n");
    invalid_utf8.truncate(invalid_utf8.len() - tail.len());
    invalid_utf8.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"fullName\"\r\n\r\n")
            .as_bytes(),
    );
    invalid_utf8.extend_from_slice(b"\xff\xfe\xfd\r\n");
    invalid_utf8.extend_from_slice(tail.as_bytes());
    c.multipart_raw(
        "register: full name not UTF-8",
        &multipart::content_type(),
        invalid_utf8,
        400,
    );
}

/// Register: files.
fn register_files(c: &mut Corpus) {
    c.parts(
        "register: text file named .png",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::file(
                    "avatar",
                    "avatar.png",
                    "image/png",
                    b"definitely not a picture".to_vec(),
                ),
            ),
        ),
        415,
    );
    c.parts(
        "register: SVG with a script",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::file(
                    "avatar",
                    "a.svg",
                    "image/svg+xml",
                    b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"
                        .to_vec(),
                ),
            ),
        ),
        415,
    );
    c.parts(
        "register: HTML as a cover image",
        &registration(&ok_name(), |p| {
            p.push(Part::file(
                "coverImage",
                "c.jpg",
                "image/jpeg",
                b"<html><body>hi</body></html>".to_vec(),
            ))
        }),
        415,
    );
    c.parts(
        "register: ELF binary as avatar",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::file(
                    "avatar",
                    "a.gif",
                    "image/gif",
                    b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(),
                ),
            ),
        ),
        415,
    );
    c.parts(
        "register: path-traversal file name, not an image",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::file(
                    "avatar",
                    "../../../../etc/passwd",
                    "image/png",
                    b"root:x:0:0".to_vec(),
                ),
            ),
        ),
        415,
    );
    c.parts(
        "register: path-traversal file name, invalid email",
        &registration(&ok_name(), |p| {
            replacing(
                "avatar",
                Part::file(
                    "avatar",
                    "..\\..\\windows\\win.ini",
                    "image/png",
                    multipart::png(8, 8, 0),
                ),
            )(p);
            replacing("email", Part::text("email", "not an email"))(p);
        }),
        400,
    );
    c.parts(
        "register: avatar just over 2 MiB",
        &registration(
            &ok_name(),
            replacing(
                "avatar",
                Part::file(
                    "avatar",
                    "big.png",
                    "image/png",
                    multipart::png(8, 8, 2 * 1024 * 1024 + 1),
                ),
            ),
        ),
        413,
    );
    c.parts(
        "register: body over 4.5 MiB",
        &registration(&ok_name(), |p| {
            p.push(Part::file(
                "coverImage",
                "c1.png",
                "image/png",
                multipart::png(8, 8, 2 * 1024 * 1024 - 64),
            ));
            p.push(Part::file(
                "coverImage",
                "c2.png",
                "image/png",
                multipart::png(8, 8, 2 * 1024 * 1024 - 64),
            ));
            p.push(Part::file(
                "coverImage",
                "c3.png",
                "image/png",
                multipart::png(8, 8, 1024 * 1024),
            ));
        }),
        413,
    );
}

/// Register: taken accounts (answered before any upload).
fn register_taken(c: &mut Corpus, f: &Fixture) {
    let reg = "register";
    c.parts(
        "register: username taken",
        &registration(
            &f.username,
            replacing(
                "email",
                Part::text("email", format!("fresh_{}@example.com", random_suffix())),
            ),
        ),
        409,
    );
    c.parts(
        "register: email taken, in other case",
        &registration(
            &ok_name(),
            replacing(
                "email",
                Part::text(
                    "email",
                    format!("{}@EXAMPLE.com", f.username.to_uppercase()),
                ),
            ),
        ),
        409,
    );
    c.raw(
        reg,
        "register: hostile Host header",
        &[("host", "a:b:c"), ("content-type", "text/plain")],
        Some(b"x".to_vec()),
        415,
    );
}

/// The one method each route serves.
fn method_of(route: &str) -> reqwest::Method {
    match route {
        "current-user" => reqwest::Method::GET,
        "update-account" | "avatar" | "cover-image" => reqwest::Method::PATCH,
        _ => reqwest::Method::POST,
    }
}

fn request(api: &Api, case: &Case) -> reqwest::RequestBuilder {
    let mut req = api.http.request(method_of(case.route), api.url(case.route));
    for (k, v) in &case.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(body) = &case.body {
        req = req.body(body.clone());
    }
    req
}

/// Sends one request and checks everything the corpus promises about its answer.
async fn check(req: reqwest::RequestBuilder, expect: Option<u16>) -> Result<u16, String> {
    let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let set_cookie = resp.headers().get_all("set-cookie").iter().count();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    if let Some(expect) = expect
        && status != expect
    {
        return Err(format!("HTTP {status}, expected {expect}: {text}"));
    }
    if !(400..500).contains(&status) {
        return Err(format!("HTTP {status} is not a 4xx: {text}"));
    }
    if content_type.as_deref() != Some("application/json") {
        return Err(format!("content type {content_type:?}: {text}"));
    }
    if set_cookie != 0 {
        return Err(format!("{set_cookie} cookies set on a rejection"));
    }
    if text.contains("panicked") || text.contains("errorType") {
        return Err(format!("runtime error text in the body: {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|_| format!("not JSON: {text}"))?;
    std::panic::catch_unwind(|| assert_error_envelope(status, &body))
        .map_err(|_| format!("not the documented envelope: {text}"))?;
    Ok(status)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn every_request_of_the_attack_corpus_gets_its_4xx_envelope_and_changes_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    runtime().block_on(async {
        let api = Api::connect().await;
        let log = LogCursor::at_end(required_env("TEST_E2E_WATCH_LOG"));
        let fixture = fixture(&api).await;
        let cases = corpus(&fixture);
        let mut seen = std::collections::HashSet::new();
        for case in &cases {
            assert!(
                seen.insert(case.name.as_str()),
                "duplicate case name {}",
                case.name
            );
        }
        let distinct: std::collections::HashSet<_> = cases
            .iter()
            .map(|c| (c.route, &c.headers, &c.body))
            .collect();
        assert_eq!(
            distinct.len(),
            cases.len(),
            "every case is a distinct request"
        );
        assert!(cases.len() >= 80, "the corpus has {} requests", cases.len());
        for route in ["login", "refresh-token", "register"] {
            let n = cases.iter().filter(|c| c.route == route).count();
            assert!(n >= 20, "{route} has only {n} cases");
        }
        for route in AUTHENTICATED {
            let n = cases.iter().filter(|c| c.route == *route).count();
            assert!(n >= 12, "{route} has only {n} cases");
        }

        let mut baseline: Footprint = api.footprint().await;
        let mut failures = Vec::new();
        for case in &cases {
            let outcome = check(request(&api, case), Some(case.expect)).await;
            let after = api.footprint().await;
            let mut problems = Vec::new();
            if let Err(e) = outcome {
                problems.push(e);
            }
            if without_throttle(&after) != without_throttle(&baseline)
                || !throttle_change_allowed(case, &baseline, &after)
            {
                problems.push(format!("footprint changed: {baseline:?} -> {after:?}"));
            }
            baseline = after;
            let panics = log.panics();
            if !panics.is_empty() {
                problems.push(format!("panic in the functions' log: {panics:?}"));
            }
            if !problems.is_empty() {
                failures.push(format!("[{}] {}", case.name, problems.join("; ")));
            }
        }
        let per_route: Vec<String> = ["login", "refresh-token", "register"]
            .iter()
            .chain(AUTHENTICATED)
            .map(|r| format!("{r} {}", cases.iter().filter(|c| c.route == *r).count()))
            .collect();
        eprintln!(
            "attack corpus: {} requests ({}), {} failed",
            cases.len(),
            per_route.join(", "),
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{} of {} corpus requests failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );

        // None of it touched the live session: its current token still rotates.
        let req = api
            .http
            .post(api.url("refresh-token"))
            .json(&json!({"refreshToken": fixture.live}));
        let (status, _, body) = api.send(req).await;
        assert_eq!(status, 200, "the live session survived the corpus: {body}");
        // And its access token still works on our routes: nothing in the corpus logged it out.
        let req = api
            .http
            .get(api.url("current-user"))
            .bearer_auth(&fixture.access);
        let (status, _, body) = api.send(req).await;
        assert_eq!(
            status, 200,
            "the live access token survived the corpus: {body}"
        );
    });
}

/// Arbitrary bytes and structurally random multipart bodies for the register route.
fn multipart_bodies() -> impl Strategy<Value = (String, Vec<u8>)> {
    let boundary = prop_oneof![
        Just("B".to_owned()),
        Just(multipart::BOUNDARY.to_owned()),
        "[a-zA-Z0-9'()+_,./:=?-]{1,70}"
    ];
    let name = prop_oneof![
        prop::sample::select(
            &[
                "fullName",
                "email",
                "username",
                "password",
                "avatar",
                "coverImage",
                "role",
                ""
            ][..]
        )
        .prop_map(str::to_owned),
        "[ -~]{0,20}",
    ];
    let part = (
        name,
        prop::option::of("[ -~]{0,20}"),
        prop::option::of(prop::sample::select(
            &["image/png", "text/plain", "application/octet-stream"][..],
        )),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            "[ -~]{0,40}".prop_map(String::into_bytes),
            Just(b"GIF89a\x01\x00\x01\x00".to_vec()),
        ],
    );
    let structured = (
        boundary.clone(),
        prop::collection::vec(part, 0..8),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(b, parts, cut, at)| {
            let mut body = Vec::new();
            for (name, filename, ct, bytes) in parts {
                body.extend_from_slice(
                    format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
                );
                if let Some(f) = filename {
                    body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
                }
                if let Some(ct) = ct {
                    body.extend_from_slice(format!("\r\nContent-Type: {ct}").as_bytes());
                }
                body.extend_from_slice(b"\r\n\r\n");
                body.extend_from_slice(&bytes);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
            if cut {
                body.truncate(at.index(body.len() + 1));
            }
            (format!("multipart/form-data; boundary={b}"), body)
        });
    let noise = (boundary, prop::collection::vec(any::<u8>(), 0..512))
        .prop_map(|(b, bytes)| (format!("multipart/form-data; boundary={b}"), bytes));
    prop_oneof![3 => structured, 1 => noise]
}

/// 128 cases, each checked like a corpus request.
#[test]
fn arbitrary_multipart_bodies_never_get_a_5xx_and_change_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let rt = runtime();
    let api = rt.block_on(Api::connect());
    let log = LogCursor::at_end(required_env("TEST_E2E_WATCH_LOG"));
    let baseline = rt.block_on(api.footprint());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&multipart_bodies(), |(content_type, body)| {
        rt.block_on(async {
            let req = api
                .http
                .post(api.url("register"))
                .header("content-type", content_type.as_str())
                .body(body.clone());
            let outcome = check(req, None).await;
            prop_assert!(
                outcome.is_ok(),
                "{:?} for a body of {} bytes ({content_type})",
                outcome,
                body.len()
            );
            prop_assert_eq!(&api.footprint().await, &baseline);
            prop_assert!(log.panics().is_empty(), "{:?}", log.panics());
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The routes that require an access token.
const AUTHENTICATED: &[&str] = &[
    "logout",
    "current-user",
    "change-password",
    "update-account",
    "avatar",
    "cover-image",
];

/// A PATCH body for an image route: one part named `field`.
fn image_parts(field: &'static str, filename: &str, content_type: &str, bytes: Vec<u8>) -> Vec<u8> {
    multipart::body(&[Part::file(field, filename, content_type, bytes)])
}

/// Hostile tokens against every authenticated route, then hostile bodies with a valid token
/// (which must still change nothing: every one is refused before any write).
fn authenticated_routes(c: &mut Corpus, f: &Fixture, access_secret: &[u8]) {
    let live = claims_of(&f.access);
    let at = |alg: &str| json!({"alg": alg, "typ": "at+jwt"});
    let with = |changes: Value| changed(&live, changes);
    let parts: Vec<&str> = f.access.split('.').collect();
    let (payload, signature) = (parts[1], parts[2]);
    let other_secret = b"an-entirely-different-secret-0123456789";
    let tokens: Vec<(&str, String)> = vec![
        (
            "expired",
            jwt(
                &at("HS256"),
                &with(json!({"exp": now() - 3600})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "alg none",
            format!("{}.{payload}.", b64(at("none").to_string().as_bytes())),
        ),
        (
            "alg none with the real signature",
            format!(
                "{}.{payload}.{signature}",
                b64(at("none").to_string().as_bytes())
            ),
        ),
        (
            "HS384",
            jwt(&at("HS384"), &live, Algorithm::HS384, access_secret),
        ),
        (
            "another secret",
            jwt(&at("HS256"), &live, Algorithm::HS256, other_secret),
        ),
        (
            "wrong typ (rt+jwt)",
            jwt(
                &json!({"alg": "HS256", "typ": "rt+jwt"}),
                &live,
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "no typ (as the Node version signs)",
            jwt(
                &json!({"alg": "HS256"}),
                &live,
                Algorithm::HS256,
                access_secret,
            ),
        ),
        ("a refresh token as the access token", f.live.clone()),
        (
            "_id differs from sub",
            jwt(
                &at("HS256"),
                &with(json!({"_id": f.other_user_id})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "another user's id in both",
            jwt(
                &at("HS256"),
                &with(json!({"_id": f.other_user_id, "sub": f.other_user_id})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "sid missing",
            jwt(
                &at("HS256"),
                &with(json!({"sid": null})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "sid a number",
            jwt(
                &at("HS256"),
                &with(json!({"sid": 5})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "sid unknown",
            jwt(
                &at("HS256"),
                &with(json!({"sid": "0".repeat(32)})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        (
            "an extra claim",
            jwt(
                &at("HS256"),
                &with(json!({"admin": true})),
                Algorithm::HS256,
                access_secret,
            ),
        ),
        ("the revoked session's", f.revoked_access.clone()),
        (
            "tampered payload",
            format!(
                "{}.{}.{signature}",
                parts[0],
                b64(with(json!({"username": "admin"})).to_string().as_bytes())
            ),
        ),
        ("garbage", "not-a-token".to_owned()),
        ("oversized", "a".repeat(8 * 1024)),
    ];
    for route in AUTHENTICATED {
        c.raw(route, format!("{route}: no token"), &[], None, 401);
        c.raw(
            route,
            format!("{route}: empty accessToken cookie"),
            &[("cookie", "accessToken=")],
            None,
            401,
        );
        c.raw(
            route,
            format!("{route}: Basic authorization"),
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
            401,
        );
        c.raw(
            route,
            format!("{route}: Bearer without a token"),
            &[("authorization", "Bearer ")],
            None,
            401,
        );
        for (what, token) in &tokens {
            // Correctly signed tokens of ours whose session is gone, ended or not the user's:
            // logout answers them 200 and clears the cookies (a retried logout never fails),
            // changing nothing; its own tests hold it to that.
            let signed_by_us = matches!(
                *what,
                "another user's id in both" | "sid unknown" | "the revoked session's"
            );
            if *route == "logout" && signed_by_us {
                continue;
            }
            let cookie = format!("accessToken={token}");
            c.raw(
                route,
                format!("{route}: {what}, in the cookie"),
                &[("cookie", cookie.as_str())],
                None,
                401,
            );
        }
        for (what, token) in tokens.iter().take(6) {
            let bearer = format!("Bearer {token}");
            c.raw(
                route,
                format!("{route}: {what}, as Bearer"),
                &[("authorization", bearer.as_str())],
                None,
                401,
            );
        }
    }

    // Hostile bodies with the live session's valid token.
    let bearer = format!("Bearer {}", f.access);
    let auth = |ct: &str| -> Vec<(String, String)> {
        vec![
            ("authorization".into(), bearer.clone()),
            ("content-type".into(), ct.to_owned()),
        ]
    };
    let mut body = |route: &'static str, name: &str, ct: &str, bytes: Vec<u8>, expect: u16| {
        let headers = auth(ct);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        c.raw(
            route,
            format!("{route}: {name}"),
            &headers,
            Some(bytes),
            expect,
        );
    };
    let json = "application/json";
    body(
        "logout",
        "allDevices an operator object",
        json,
        br#"{"allDevices": {"$ne": false}}"#.to_vec(),
        400,
    );
    body(
        "logout",
        "allDevices a string",
        json,
        br#"{"allDevices": "true"}"#.to_vec(),
        400,
    );
    body(
        "logout",
        "unknown field",
        json,
        br#"{"everything": true}"#.to_vec(),
        400,
    );
    body(
        "logout",
        "broken JSON",
        json,
        b"{\"allDevices\":".to_vec(),
        400,
    );
    body("change-password", "empty object", json, b"{}".to_vec(), 400);
    body(
        "change-password",
        "oldPassword an operator object",
        json,
        br#"{"oldPassword": {"$gt": ""}, "newPassword": "a long new passphrase"}"#.to_vec(),
        400,
    );
    body(
        "change-password",
        "wrong old password",
        json,
        br#"{"oldPassword": "not the password", "newPassword": "a long new passphrase"}"#.to_vec(),
        400,
    );
    body(
        "change-password",
        "new password too short",
        json,
        format!(r#"{{"oldPassword": "{PASSWORD}", "newPassword": "short"}}"#).into_bytes(),
        400,
    );
    body(
        "change-password",
        "new password too long",
        json,
        format!(
            r#"{{"oldPassword": "{PASSWORD}", "newPassword": "{}"}}"#,
            "x".repeat(129)
        )
        .into_bytes(),
        400,
    );
    body(
        "change-password",
        "new password equal to the old",
        json,
        format!(r#"{{"oldPassword": "{PASSWORD}", "newPassword": "{PASSWORD}"}}"#).into_bytes(),
        400,
    );
    body(
        "change-password",
        "text/plain",
        "text/plain",
        b"oldPassword=x".to_vec(),
        415,
    );
    body(
        "change-password",
        "a 64 KiB body",
        json,
        format!(r#"{{"oldPassword": "{}"}}"#, "x".repeat(64 * 1024)).into_bytes(),
        413,
    );
    body("update-account", "empty object", json, b"{}".to_vec(), 400);
    body(
        "update-account",
        "email an operator object",
        json,
        br#"{"email": {"$ne": null}}"#.to_vec(),
        400,
    );
    body(
        "update-account",
        "fullName an array",
        json,
        br#"{"fullName": ["a", "b"]}"#.to_vec(),
        400,
    );
    body(
        "update-account",
        "invalid email",
        json,
        br#"{"email": "not-an-email"}"#.to_vec(),
        400,
    );
    body(
        "update-account",
        "blank fullName",
        json,
        br#"{"fullName": "   "}"#.to_vec(),
        400,
    );
    let taken = json!({"email": f.other_email.to_uppercase()}).to_string();
    body(
        "update-account",
        "email taken by another account, in other case",
        json,
        taken.into_bytes(),
        409,
    );
    body(
        "update-account",
        "text/plain",
        "text/plain",
        b"email=a@b.c".to_vec(),
        415,
    );
    let mp = multipart::content_type();
    for (route, field) in [("avatar", "avatar"), ("cover-image", "coverImage")] {
        body(route, "not multipart", json, b"{}".to_vec(), 415);
        body(
            route,
            "multipart without a boundary",
            "multipart/form-data",
            b"x".to_vec(),
            415,
        );
        body(route, "no file", &mp, multipart::body(&[]), 400);
        body(
            route,
            "the wrong field",
            &mp,
            image_parts("banner", "a.png", "image/png", multipart::png(4, 4, 0)),
            400,
        );
        body(
            route,
            "a text value instead of a file",
            &mp,
            multipart::body(&[Part::text(field, "hello")]),
            400,
        );
        body(
            route,
            "not an image (text named .png)",
            &mp,
            image_parts(field, "a.png", "image/png", b"hello, world".to_vec()),
            415,
        );
        body(
            route,
            "an SVG",
            &mp,
            image_parts(
                field,
                "a.svg",
                "image/svg+xml",
                b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            ),
            415,
        );
        body(
            route,
            "a file over the limit",
            &mp,
            image_parts(
                field,
                "big.png",
                "image/png",
                multipart::png(8, 8, 2 * 1024 * 1024 + 1),
            ),
            413,
        );
        body(
            route,
            "two files",
            &mp,
            multipart::body(&[
                Part::file(field, "a.png", "image/png", multipart::png(4, 4, 0)),
                Part::file(field, "b.png", "image/png", multipart::png(4, 4, 1)),
            ]),
            400,
        );
        body(
            route,
            "a path in the filename",
            &mp,
            image_parts(
                field,
                "../../etc/passwd",
                "image/png",
                b"root:x:0:0".to_vec(),
            ),
            415,
        );
    }
}
