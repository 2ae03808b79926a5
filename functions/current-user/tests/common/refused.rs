//! Access tokens our authenticated routes must refuse, and a snapshot of what a refused request
//! must leave unchanged. Shared by the tests of current-user, logout, change-password and
//! update-account (included by `#[path]`), so every route meets the same list.
#![allow(dead_code)]

use mongodb::bson::{DateTime, Document, doc};
use serde_json::{Value, json};
use shared::{
    auth::{INVALID_TOKEN, MISSING_TOKEN},
    users::UserDoc,
};
use testkit::{
    SignedIn, TestApp,
    forge::{b64, sign},
};

/// A token to present (`None`: none at all) and why it must fail.
pub struct Refused {
    pub what: &'static str,
    pub token: Option<String>,
    pub message: &'static str,
}

/// The claims of a signed-in session's access token, as JSON, to forge variants of.
pub fn claims_of(t: &TestApp, s: &SignedIn) -> Value {
    serde_json::to_value(t.app.tokens.verify_access(&s.access_token).expect("valid")).expect("json")
}

/// Tokens refused without looking at the database: missing, malformed, forged, expired, of the
/// wrong kind. `s` is a live session whose claims the forgeries start from.
pub fn stateless(t: &TestApp, s: &SignedIn) -> Vec<Refused> {
    use jsonwebtoken::Algorithm::{HS256, HS512};
    let secret = t.var("ACCESS_TOKEN_SECRET").to_owned();
    let valid = claims_of(t, s);
    let now = shared::tokens::now_secs();
    let with = |changes: Value| {
        let mut c = valid.clone();
        for (k, v) in changes.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let payload = b64(valid.to_string());
    let refused = |what, token: String| Refused {
        what,
        token: Some(token),
        message: INVALID_TOKEN,
    };
    vec![
        Refused {
            what: "no token",
            token: None,
            message: MISSING_TOKEN,
        },
        refused("not a JWT", "not-a-jwt".into()),
        refused(
            "wrong secret",
            sign(HS256, Some("at+jwt"), &valid, "w".repeat(32)),
        ),
        refused(
            "expired",
            sign(
                HS256,
                Some("at+jwt"),
                &with(json!({"iat": now - 7200, "exp": now - 3600})),
                &secret,
            ),
        ),
        refused(
            "a refresh token used as access token",
            s.refresh_token.clone(),
        ),
        refused(
            "typ rt+jwt with the access secret",
            sign(HS256, Some("rt+jwt"), &valid, &secret),
        ),
        refused("typ JWT", sign(HS256, Some("JWT"), &valid, &secret)),
        refused("no typ", sign(HS256, None, &valid, &secret)),
        refused("HS512", sign(HS512, Some("at+jwt"), &valid, &secret)),
        refused(
            "alg none",
            format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#)),
        ),
        refused(
            "_id and sub differ",
            sign(
                HS256,
                Some("at+jwt"),
                &with(json!({"_id": mongodb::bson::oid::ObjectId::new().to_hex()})),
                &secret,
            ),
        ),
        refused(
            "sid that is no session id",
            sign(
                HS256,
                Some("at+jwt"),
                &with(json!({"sid": {"$ne": ""}})),
                &secret,
            ),
        ),
        refused(
            "a Node-era access token",
            testkit::node::node_jwt(
                &secret,
                &json!({"_id": valid["sub"], "email": valid["email"], "username": valid["username"],
                        "fullName": valid["fullName"], "iat": now, "exp": now + 600}),
            ),
        ),
        refused("oversized", "a".repeat(8192)),
    ]
}

/// Tokens that verify but whose session is revoked, past its end, gone or another user's, or
/// whose user is gone: refused by `auth::authenticate`, not by `auth::verify`. Each case gets
/// sessions (and users) of its own; `user` is a live user of `t`.
pub async fn stale(t: &TestApp, user: &UserDoc) -> Vec<Refused> {
    let sessions = t.db.collection::<Document>("sessions");
    let revoked = t.sign_in(user).await;
    sessions
        .update_one(
            doc! {"_id": &revoked.session_id},
            doc! {"$set": {"revokedAt": DateTime::now()}},
        )
        .await
        .expect("revoke");
    let ended = t.sign_in(user).await;
    sessions
        .update_one(
            doc! {"_id": &ended.session_id},
            doc! {"$set": {"expiresAt": DateTime::from_millis(DateTime::now().timestamp_millis() - 1000)}},
        )
        .await
        .expect("end");
    let gone = t.sign_in(user).await;
    sessions
        .delete_one(doc! {"_id": &gone.session_id})
        .await
        .expect("delete");
    let stranger = t
        .seed_user(
            &format!("x{}", testkit::random_suffix()),
            &format!("x{}@example.com", testkit::random_suffix()),
        )
        .await;
    let theirs = t.sign_in(&stranger).await;
    let mine = t.sign_in(user).await;
    let mut borrowed = claims_of(t, &mine);
    borrowed["sid"] = json!(theirs.session_id);
    let borrowed = sign(
        jsonwebtoken::Algorithm::HS256,
        Some("at+jwt"),
        &borrowed,
        t.var("ACCESS_TOKEN_SECRET"),
    );
    let deleted_user = t
        .seed_user(
            &format!("d{}", testkit::random_suffix()),
            &format!("d{}@example.com", testkit::random_suffix()),
        )
        .await;
    let orphan = t.sign_in(&deleted_user).await;
    t.db.collection::<Document>("users")
        .delete_one(doc! {"_id": deleted_user.id})
        .await
        .expect("delete user");
    let refused = |what, s: SignedIn| Refused {
        what,
        token: Some(s.access_token),
        message: INVALID_TOKEN,
    };
    vec![
        refused("revoked session", revoked),
        refused("session past its end", ended),
        refused("session gone", gone),
        Refused {
            what: "another user's session",
            token: Some(borrowed),
            message: INVALID_TOKEN,
        },
        refused("user gone", orphan),
    ]
}

/// Adds `token` (if any) to the request as the `accessToken` cookie.
pub fn presenting(req: lambda_http::Request, token: Option<&str>) -> lambda_http::Request {
    match token {
        Some(token) => testkit::with_cookie(req, "accessToken", token),
        None => req,
    }
}

/// Every document of `users`, `sessions` and `refresh_tokens`, in `_id` order: what a refused
/// request must leave exactly as it was.
pub async fn snapshot(t: &TestApp) -> Vec<Document> {
    use futures::TryStreamExt as _;
    let mut all = Vec::new();
    for name in ["users", "sessions", "refresh_tokens"] {
        let docs: Vec<Document> =
            t.db.collection::<Document>(name)
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .await
                .expect("read")
                .try_collect()
                .await
                .expect("read");
        all.extend(docs);
    }
    all
}

/// The `sessions` document of a signed-in session.
pub async fn session(t: &TestApp, s: &SignedIn) -> Document {
    t.find_one("sessions", doc! {"_id": &s.session_id})
        .await
        .expect("session exists")
}

pub async fn is_revoked(t: &TestApp, s: &SignedIn) -> bool {
    session(t, s).await.get_datetime("revokedAt").is_ok()
}

/// The placeholder an authenticated event file carries in its `cookies`.
pub const ACCESS_PLACEHOLDER: &str = "ACCESS_TOKEN";

/// An event file from `events/` with its `ACCESS_TOKEN` placeholder replaced by this session's
/// access token (as a developer would before `cargo lambda invoke`), converted as the runtime
/// converts it.
pub fn event_as(name: &str, s: &SignedIn) -> lambda_http::Request {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
    assert!(
        text.contains(ACCESS_PLACEHOLDER),
        "{name} carries the placeholder"
    );
    shared::http::request_from_event(&text.replace(ACCESS_PLACEHOLDER, &s.access_token))
        .expect("event parses")
}
