//! The Node platform that adopters keep running beside us verifies our access tokens and reads
//! our `users` documents with its own `verifyJWT` middleware (npm `jsonwebtoken` 9, `mongoose` 8,
//! the Node user model; see `js/check.mjs`). These tests log in through our real handler and ask
//! that middleware, run by Node itself, what it makes of the result.
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mongodb::bson::{Bson, doc};
use node_compat::{Input, Output, Verdict, check};
use serde_json::{Value, json};
use testkit::{PASSWORD, TestApp, envelope, post_json, set_cookies};

const USERNAME: &str = "ada";
const EMAIL: &str = "ada@example.com";

/// Logs `USERNAME` in through our login handler: (access token, refresh token).
async fn login(t: &TestApp) -> (String, String) {
    let resp = login::handle(
        t.app,
        post_json(
            "/api/v1/users/login",
            &json!({"username": USERNAME, "password": PASSWORD}),
        ),
    )
    .await;
    let body = envelope(&resp, 200);
    let access = body["data"]["accessToken"]
        .as_str()
        .expect("login answers an access token")
        .to_owned();
    let refresh = body["data"]["refreshToken"]
        .as_str()
        .expect("login answers a refresh token")
        .to_owned();
    // Node's middleware reads `req.cookies.accessToken` first: the cookie must carry the same token.
    let cookie = set_cookies(&resp)
        .into_iter()
        .find(|c| c.name() == "accessToken")
        .expect("login sets the accessToken cookie");
    assert_eq!(
        cookie.value(),
        access,
        "the accessToken cookie is the token"
    );
    (access, refresh)
}

fn input(t: &TestApp, tokens: Vec<String>, expect_rejected: Vec<String>) -> Input {
    Input {
        mongodb_uri: t.var("MONGODB_URI").to_owned(),
        db: t.var("MONGODB_DB").to_owned(),
        access_token_secret: t.var("ACCESS_TOKEN_SECRET").to_owned(),
        tokens,
        expect_rejected,
    }
}

fn sign(claims: &Value, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// The payload of a JWT, unverified (to re-sign our own claims differently).
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("payload is base64url");
    serde_json::from_slice(&bytes).expect("payload is JSON")
}

fn now_secs() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(now.as_secs()).expect("seconds fit")
}

/// Everything Node should see of a user we stored: found, the stored fields, no secrets.
fn check_user(
    problems: &mut Vec<String>,
    what: &str,
    verdict: &Verdict,
    id: &str,
    stored: &mongodb::bson::Document,
) {
    if let Some(e) = &verdict.error {
        problems.push(format!(
            "{what}: Node's middleware refused it at {}: {}: {}",
            e.stage.as_deref().unwrap_or("?"),
            e.name,
            e.message
        ));
    }
    let Some(user) = &verdict.user else {
        problems.push(format!("{what}: the mongoose read found no user"));
        return;
    };
    if user.get("_id") != Some(&json!(id)) {
        problems.push(format!(
            "{what}: toJSON()._id is {:?}, not {id}",
            user.get("_id")
        ));
    }
    for hidden in ["password", "refreshToken"] {
        if user.contains_key(hidden) {
            problems.push(format!(
                "{what}: toJSON() shows `{hidden}` despite select(\"-password -refreshToken\")"
            ));
        }
    }
    // Whatever field it is stored under, the hash must not reach Node's routes.
    for (key, value) in user {
        if let Some(s) = value.as_str()
            && (s.starts_with("$argon2") || s.starts_with("$2"))
        {
            problems.push(format!(
                "{what}: toJSON() shows a password hash under `{key}`: the Node model's \
                 `-password` hides only a field named `password`"
            ));
        }
    }
    match user.get("avatar").and_then(Value::as_str) {
        Some(url) if url.starts_with("https://") => {}
        other => problems.push(format!(
            "{what}: toJSON().avatar is {other:?}, not an https URL string (stored: {:?}; \
             mongoose drops a value it cannot cast to its String path)",
            stored.get("avatar")
        )),
    }
    if !user.get("coverImage").is_some_and(Value::is_string) {
        problems.push(format!(
            "{what}: toJSON().coverImage is {:?}, not a string (stored: {:?})",
            user.get("coverImage"),
            stored.get("coverImage")
        ));
    }
    for field in ["username", "email", "fullName"] {
        let ours = stored.get_str(field).ok();
        let node = user.get(field).and_then(Value::as_str);
        if ours.is_none() || node != ours {
            problems.push(format!(
                "{what}: toJSON().{field} is {node:?}, we stored {ours:?}"
            ));
        }
    }
}

fn fail_on(problems: &[String], out: &Output) {
    assert!(
        problems.is_empty(),
        "Node's verifyJWT middleware disagrees with us:\n- {}\n\nwhat Node saw: {}",
        problems.join("\n- "),
        out.raw
    );
}

#[tokio::test]
async fn the_node_verify_jwt_middleware_accepts_our_access_token_and_finds_the_user() {
    let t = TestApp::spawn().await;
    t.seed_user(USERNAME, EMAIL).await;
    let stored = t
        .find_one("users", doc! {"username": USERNAME})
        .await
        .expect("the seeded user is stored");
    let id = match stored.get("_id") {
        Some(Bson::ObjectId(oid)) => oid.to_hex(),
        other => panic!("users._id must be an ObjectId for User.findById, is {other:?}"),
    };
    let (access, _refresh) = login(&t).await;
    let secret = t.var("ACCESS_TOKEN_SECRET").to_owned();

    // A token as the Node version itself signs them (only `_id`), so that the read of our
    // document is checked even while our own token's claims are wrong.
    let now = now_secs();
    let node_style = sign(&json!({"_id": id, "iat": now, "exp": now + 600}), &secret);
    // Our own claims, re-signed with another secret, and pushed an hour into the past.
    let ours = payload(&access);
    let other_secret = sign(&ours, "not-the-access-token-secret-of-this-deployment");
    let mut stale = ours.clone();
    stale["iat"] = json!(now - 7200);
    stale["exp"] = json!(now - 3600);
    let expired = sign(&stale, &secret);

    let out = check(&input(
        &t,
        vec![access, node_style],
        vec![other_secret, expired],
    ))
    .await;

    let mut problems = Vec::new();
    let ours = &out.tokens[0];
    match ours.decoded.as_ref() {
        None => problems.push("jwt.verify refused our access token".to_owned()),
        Some(decoded) => {
            let claim = decoded.get("_id");
            if claim != Some(&json!(id)) {
                problems.push(format!(
                    "our access token: decoded._id is {claim:?}, not the user's id \"{id}\" \
                     (User.findById(decoded._id) needs it)"
                ));
            }
        }
    }
    check_user(&mut problems, "our access token", ours, &id, &stored);
    check_user(
        &mut problems,
        "a Node-style token for the user",
        &out.tokens[1],
        &id,
        &stored,
    );
    for (what, r) in ["another secret", "expired an hour ago"]
        .iter()
        .zip(&out.expect_rejected)
    {
        if !r.rejected {
            problems.push(format!(
                "jwt.verify accepted our claims signed with {what}: {:?}",
                r.decoded
            ));
        }
    }
    let (bad_sig, stale) = (&out.expect_rejected[0], &out.expect_rejected[1]);
    if bad_sig.rejected
        && bad_sig.error.as_ref().map(|e| e.message.as_str()) != Some("invalid signature")
    {
        problems.push(format!(
            "another secret: refused, but not for its signature: {:?}",
            bad_sig.error
        ));
    }
    if stale.rejected && stale.error.as_ref().map(|e| e.name.as_str()) != Some("TokenExpiredError")
    {
        problems.push(format!(
            "expired: refused, but not as expired: {:?}",
            stale.error
        ));
    }
    fail_on(&problems, &out);
}

#[tokio::test]
async fn our_refresh_token_is_not_accepted_by_the_node_verify_jwt_middleware() {
    let t = TestApp::spawn().await;
    t.seed_user(USERNAME, EMAIL).await;
    assert_ne!(
        t.var("ACCESS_TOKEN_SECRET"),
        t.var("REFRESH_TOKEN_SECRET"),
        "the two token kinds must have different secrets"
    );
    let (_access, refresh) = login(&t).await;

    let out = check(&input(&t, vec![refresh.clone()], vec![refresh])).await;

    let mut problems = Vec::new();
    let r = &out.expect_rejected[0];
    if !r.rejected {
        problems.push(format!(
            "jwt.verify with ACCESS_TOKEN_SECRET accepted our refresh token: {:?}",
            r.decoded
        ));
    } else if r.error.as_ref().map(|e| e.message.as_str()) != Some("invalid signature") {
        problems.push(format!(
            "our refresh token was refused, but not for its signature: {:?}",
            r.error
        ));
    }
    let v = &out.tokens[0];
    if v.user.is_some() {
        problems.push("the middleware let our refresh token through to a user".to_owned());
    }
    match &v.error {
        Some(e) if e.stage.as_deref() == Some("jwt.verify") => {}
        other => problems.push(format!(
            "the middleware did not stop our refresh token at jwt.verify: {other:?}"
        )),
    }
    fail_on(&problems, &out);
}
