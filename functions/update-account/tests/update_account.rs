//! update-account handler tests against the real database: the user, every live session's
//! claims and this session's access cookie change together; a taken email (also a Node-era one
//! in another case) is a 409; every bad input is a 400 that changes nothing; and two users racing
//! for one free email get exactly one 200 and one 409.
#[path = "../../current-user/tests/common/logs.rs"]
mod logs;
#[path = "../../current-user/tests/common/refused.rs"]
mod refused;

use mongodb::bson::{Document, doc};
use refused::{presenting, snapshot};
use serde_json::{Value, json};
use shared::users::UserDoc;
use testkit::{SignedIn, TestApp, envelope, event, request, set_cookies};
use update_account::handle;

const PATH: &str = "/api/v1/users/update-account";

fn patch(body: &Value) -> lambda_http::Request {
    request("PATCH", PATH, Some("application/json"), body.to_string())
}

fn raw(content_type: Option<&str>, body: impl Into<lambda_http::Body>) -> lambda_http::Request {
    request("PATCH", PATH, content_type, body)
}

fn fields(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect()
}

/// The access token in the answer's `accessToken` cookie, verified.
fn new_access(
    t: &TestApp,
    resp: &lambda_http::Response<lambda_http::Body>,
) -> (String, shared::tokens::AccessClaims) {
    let cookies = set_cookies(resp);
    assert_eq!(cookies.len(), 1, "only the access cookie: {cookies:?}");
    let c = &cookies[0];
    assert_eq!(c.name(), "accessToken");
    assert_eq!(c.path(), Some("/"));
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.max_age().map(|d| d.whole_seconds()), Some(15 * 60));
    let claims = t
        .app
        .tokens
        .verify_access(c.value())
        .expect("a valid access token");
    (c.value().to_owned(), claims)
}

async fn session_claims(t: &TestApp, s: &SignedIn) -> Document {
    refused::session(t, s)
        .await
        .get_document("claims")
        .expect("claims")
        .clone()
}

async fn node_user_doc(t: &TestApp, id: mongodb::bson::oid::ObjectId) -> UserDoc {
    t.user(id).await.expect("exists")
}

#[tokio::test]
async fn an_update_changes_the_user_every_live_sessions_claims_and_this_sessions_access_cookie() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("alice", "alice@example.com").await;
    let stranger = t.seed_user("bob", "bob@example.com").await;
    let (this, other, ended) = (
        t.sign_in(&user).await,
        t.sign_in(&user).await,
        t.sign_in(&user).await,
    );
    t.db.collection::<Document>("sessions")
        .update_one(
            doc! {"_id": &ended.session_id},
            doc! {"$set": {"revokedAt": mongodb::bson::DateTime::now()}},
        )
        .await
        .expect("revoke");
    let theirs = t.sign_in(&stranger).await;
    let (ended_before, theirs_before) = (
        session_claims(&t, &ended).await,
        session_claims(&t, &theirs).await,
    );

    let body = json!({"fullName": "  Alice Renamed ", "email": " Alice.New@Example.COM "});
    let resp = handle(t.app, this.cookie(patch(&body))).await;
    let v = envelope(&resp, 200);
    assert_eq!(v["message"], "Account details updated successfully");
    assert_eq!(v["data"]["email"], "alice.new@example.com");
    assert_eq!(v["data"]["fullName"], "Alice Renamed");
    assert_eq!(v["data"]["username"], "alice");
    assert!(!v.to_string().contains("password"));

    let stored = t.user_document(user.id).await;
    assert_eq!(
        stored.get_str("email").expect("email"),
        "alice.new@example.com"
    );
    assert_eq!(stored.get_str("fullName").expect("name"), "Alice Renamed");
    assert!(stored.get_datetime("updatedAt").expect("updatedAt") > &user.updated_at);

    let (token, claims) = new_access(&t, &resp);
    assert_eq!(claims.email, "alice.new@example.com");
    assert_eq!(claims.full_name, "Alice Renamed");
    assert_eq!(claims.sid, this.session_id, "for this session");
    assert_eq!(claims.sub, user.id.to_hex());
    let expected =
        doc! {"username": "alice", "email": "alice.new@example.com", "fullName": "Alice Renamed"};
    assert_eq!(session_claims(&t, &this).await, expected);
    assert_eq!(
        session_claims(&t, &other).await,
        expected,
        "every live session"
    );
    assert_eq!(
        session_claims(&t, &ended).await,
        ended_before,
        "not an ended one"
    );
    assert_eq!(
        session_claims(&t, &theirs).await,
        theirs_before,
        "nobody else's"
    );

    // The new cookie works on our routes, and the other device's next refresh carries the news.
    let me = current_user::handle(
        t.app,
        testkit::with_cookie(
            request("GET", "/api/v1/users/current-user", None, ""),
            "accessToken",
            &token,
        ),
    )
    .await;
    assert_eq!(envelope(&me, 200)["data"]["email"], "alice.new@example.com");
    let req = testkit::refresh_request(&other.refresh_token);
    let refreshed = envelope(&refresh::handle(t.app, req).await, 200);
    let access = refreshed["data"]["accessToken"].as_str().expect("access");
    let claims = t.app.tokens.verify_access(access).expect("valid");
    assert_eq!(
        (claims.email.as_str(), claims.full_name.as_str()),
        ("alice.new@example.com", "Alice Renamed")
    );
}

#[tokio::test]
async fn the_full_name_or_the_email_may_change_alone() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("carol", "carol@example.com").await;
    let s = t.sign_in(&user).await;
    let v = envelope(
        &handle(t.app, s.cookie(patch(&json!({"fullName": "Carol C"})))).await,
        200,
    );
    assert_eq!(
        (v["data"]["fullName"].as_str(), v["data"]["email"].as_str()),
        (Some("Carol C"), Some("carol@example.com"))
    );
    let v = envelope(
        &handle(
            t.app,
            s.cookie(patch(
                &json!({"email": "carol@new.example.com", "fullName": null}),
            )),
        )
        .await,
        200,
    );
    assert_eq!(
        (v["data"]["fullName"].as_str(), v["data"]["email"].as_str()),
        (Some("Carol C"), Some("carol@new.example.com"))
    );
}

#[tokio::test]
async fn the_event_files_update_with_json_and_with_a_form() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("videotube_demo", "demo@example.com").await;
    let s = t.sign_in(&user).await;
    let resp = handle(t.app, refused::event_as("update-account.json", &s)).await;
    let v = envelope(&resp, 200);
    assert_eq!(v["data"]["email"], "demo.renamed@example.com");
    assert_eq!(new_access(&t, &resp).1.email, "demo.renamed@example.com");
    let resp = handle(t.app, refused::event_as("update-account-form.json", &s)).await;
    let v = envelope(&resp, 200);
    assert_eq!(v["data"]["fullName"], "Demo Form User");
    assert_eq!(v["data"]["email"], "demo.renamed@example.com");
}

#[tokio::test]
async fn a_taken_email_in_any_case_is_a_409_naming_email_and_changes_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("dave", "dave@example.com").await;
    t.seed_user("erin", "erin@example.com").await;
    let s = t.sign_in(&user).await;
    let before = snapshot(&t).await;
    for email in ["erin@example.com", "ERIN@Example.com", " erin@example.com "] {
        let resp = handle(
            t.app,
            s.cookie(patch(&json!({"email": email, "fullName": "Dave D"}))),
        )
        .await;
        let v = envelope(&resp, 409);
        assert_eq!(fields(&v), ["email"], "{v}");
        assert!(
            !v.to_string().contains("erin@"),
            "no email in the answer: {v}"
        );
        assert!(set_cookies(&resp).is_empty());
    }
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn a_taken_email_is_still_a_409_from_the_unique_index_with_the_fallback_off() {
    let t = TestApp::spawn_with(|v| {
        v.insert("NODE_EMAIL_FALLBACK".into(), "false".into());
    })
    .await;
    assert!(!t.app.config.node.email_fallback);
    let user = t.seed_user("fred", "fred@example.com").await;
    t.seed_user("gina", "gina@example.com").await;
    let s = t.sign_in(&user).await;
    let before = snapshot(&t).await;
    let v = envelope(
        &handle(
            t.app,
            s.cookie(patch(&json!({"email": "GINA@example.com"}))),
        )
        .await,
        409,
    );
    assert_eq!(fields(&v), ["email"]);
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn a_node_era_account_holding_the_email_in_another_case_makes_it_taken_while_the_fallback_is_on()
 {
    for fallback in [true, false] {
        let t = TestApp::spawn_with(|v| {
            v.insert("NODE_EMAIL_FALLBACK".into(), fallback.to_string());
        })
        .await;
        testkit::node::node_user("mixed")
            .email("Mixed.Case@Example.com")
            .bcrypt_cost(4)
            .insert(&t.db)
            .await;
        let user = t.seed_user("hank", "hank@example.com").await;
        let s = t.sign_in(&user).await;
        let before = snapshot(&t).await;
        let resp = handle(
            t.app,
            s.cookie(patch(&json!({"email": "mixed.case@example.com"}))),
        )
        .await;
        if fallback {
            assert_eq!(fields(&envelope(&resp, 409)), ["email"]);
            assert_eq!(snapshot(&t).await, before);
        } else {
            // Only the exact (lowercased) value is unique once the migration is declared over.
            envelope(&resp, 200);
        }
    }
}

#[tokio::test]
async fn ones_own_current_email_is_not_taken_and_a_node_era_one_is_lowercased() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("ivan", "ivan@example.com").await;
    let s = t.sign_in(&user).await;
    let v = envelope(
        &handle(
            t.app,
            s.cookie(patch(&json!({"email": "IVAN@example.com"}))),
        )
        .await,
        200,
    );
    assert_eq!(v["data"]["email"], "ivan@example.com");

    let node = testkit::node::node_user("jules")
        .email("Jules@Example.com")
        .bcrypt_cost(4)
        .insert(&t.db)
        .await;
    let s = t.sign_in(&node_user_doc(&t, node.id).await).await;
    let resp = handle(
        t.app,
        s.cookie(patch(&json!({"email": "jules@example.com"}))),
    )
    .await;
    assert_eq!(envelope(&resp, 200)["data"]["email"], "jules@example.com");
    assert_eq!(
        t.user_document(node.id)
            .await
            .get_str("email")
            .expect("email"),
        "jules@example.com"
    );
    assert_eq!(new_access(&t, &resp).1.email, "jules@example.com");
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_that_changes_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("kate", "kate@example.com").await;
    let s = t.sign_in(&user).await;
    let j = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let (name, email) = ("fullName", "email");
    let cases: Vec<(&str, lambda_http::Request, u16, Vec<&str>)> = vec![
        (
            "operator objects (event file)",
            refused::event_as("update-account-operator-injection.json", &s),
            400,
            vec![email, name],
        ),
        (
            "email operator",
            patch(&json!({"email": {"$gt": ""}})),
            400,
            vec![email],
        ),
        ("empty object", patch(&json!({})), 400, vec![name]),
        ("no body", raw(None, ""), 400, vec![name]),
        (
            "both null",
            patch(&json!({"fullName": null, "email": null})),
            400,
            vec![name],
        ),
        (
            "only other fields",
            patch(&json!({"username": "someone", "password": "x"})),
            400,
            vec![name],
        ),
        (
            "empty strings",
            patch(&json!({"fullName": "", "email": ""})),
            400,
            vec![name, email],
        ),
        (
            "blank name",
            patch(&json!({"fullName": "   "})),
            400,
            vec![name],
        ),
        (
            "name too long",
            patch(&json!({"fullName": "n".repeat(101)})),
            400,
            vec![name],
        ),
        (
            "control characters",
            patch(&json!({"fullName": "a\u{0}b"})),
            400,
            vec![name],
        ),
        (
            "invalid email",
            patch(&json!({"email": "not-an-email"})),
            400,
            vec![email],
        ),
        (
            "email without a dotted domain",
            patch(&json!({"email": "kate@localhost"})),
            400,
            vec![email],
        ),
        (
            "look-alike letters",
            patch(&json!({"email": "kаte@example.com"})),
            400,
            vec![email],
        ),
        (
            "email too long",
            patch(&json!({"email": format!("{}@example.com", "a".repeat(250))})),
            400,
            vec![email],
        ),
        (
            "numbers",
            patch(&json!({"fullName": 7, "email": 8})),
            400,
            vec![name, email],
        ),
        (
            "a valid name but an invalid email",
            patch(&json!({"fullName": "Kate K", "email": "nope"})),
            400,
            vec![email],
        ),
        (
            "repeated form field",
            raw(form, "fullName=a&fullName=b"),
            400,
            vec![name],
        ),
        ("not JSON", raw(j, "{fullName"), 400, vec![]),
        ("an array", raw(j, "[]"), 400, vec![]),
        (
            "text/plain",
            raw(Some("text/plain"), "fullName=x"),
            415,
            vec![],
        ),
        (
            "too large",
            raw(j, format!(r#"{{"x":"{}"}}"#, "a".repeat(17 * 1024))),
            413,
            vec![],
        ),
    ];
    let before = snapshot(&t).await;
    for (what, req, status, expected) in cases {
        let resp = handle(t.app, s.cookie(req)).await;
        let v = envelope(&resp, status);
        let mut named = fields(&v);
        named.sort();
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(named, expected, "{what}: {v}");
        assert!(set_cookies(&resp).is_empty(), "{what}");
    }
    assert_eq!(snapshot(&t).await, before, "no bad input writes anything");
}

#[tokio::test]
async fn refused_tokens_are_401_and_change_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("liam", "liam@example.com").await;
    let s = t.sign_in(&user).await;
    let mut cases = refused::stateless(&t, &s);
    cases.extend(refused::stale(&t, &user).await);
    let before = snapshot(&t).await;
    for case in cases {
        let req = presenting(
            patch(&json!({"fullName": "Intruder"})),
            case.token.as_deref(),
        );
        let resp = handle(t.app, req).await;
        assert_eq!(
            envelope(&resp, 401)["message"],
            case.message,
            "{}",
            case.what
        );
        assert!(set_cookies(&resp).is_empty());
    }
    let resp = handle(t.app, event("update-account-no-token.json")).await;
    assert_eq!(envelope(&resp, 401)["message"], "Unauthorized request");
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_users_racing_for_one_free_email_exactly_one_gets_it() {
    race_for_one_email(true).await;
}

/// With the fallback off there is no pre-check at all: the unique index alone decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unique_index_alone_decides_the_race_with_the_fallback_off() {
    race_for_one_email(false).await;
}

async fn race_for_one_email(fallback: bool) {
    let t = TestApp::spawn_with(|v| {
        v.insert("NODE_EMAIL_FALLBACK".into(), fallback.to_string());
    })
    .await;
    for round in 0..8 {
        let a = t
            .seed_user(&format!("racer_a{round}"), &format!("a{round}@example.com"))
            .await;
        let b = t
            .seed_user(&format!("racer_b{round}"), &format!("b{round}@example.com"))
            .await;
        let (sa, sb) = (t.sign_in(&a).await, t.sign_in(&b).await);
        let wanted = format!("wanted{round}@example.com");
        let body = json!({"email": wanted});
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let go = |s: SignedIn| {
            let (barrier, req) = (barrier.clone(), s.cookie(patch(&body)));
            tokio::spawn(async move {
                barrier.wait().await;
                handle(t.app, req).await
            })
        };
        let (ra, rb) = tokio::join!(go(sa.clone()), go(sb.clone()));
        let (ra, rb) = (ra.expect("task"), rb.expect("task"));
        let (winner, loser, loser_session, loser_id, loser_email) =
            match (ra.status().as_u16(), rb.status().as_u16()) {
                (200, 409) => (a.id, &rb, &sb, b.id, b.email.clone()),
                (409, 200) => (b.id, &ra, &sa, a.id, a.email.clone()),
                other => panic!("round {round}: expected one 200 and one 409, got {other:?}"),
            };
        assert_eq!(fields(&envelope(loser, 409)), ["email"]);
        let holders =
            t.db.collection::<Document>("users")
                .count_documents(doc! {"email": &wanted})
                .await
                .expect("count");
        assert_eq!(holders, 1, "round {round}");
        assert_eq!(
            t.user_document(winner)
                .await
                .get_str("email")
                .expect("email"),
            wanted
        );
        assert_eq!(
            t.user_document(loser_id)
                .await
                .get_str("email")
                .expect("email"),
            loser_email
        );
        assert_eq!(
            session_claims(&t, loser_session)
                .await
                .get_str("email")
                .expect("email"),
            loser_email
        );
    }
}

#[tokio::test]
async fn other_methods_are_405() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("mia", "mia@example.com").await;
    let s = t.sign_in(&user).await;
    let before = snapshot(&t).await;
    for method in ["POST", "PUT", "GET"] {
        let req = request(
            method,
            PATH,
            Some("application/json"),
            r#"{"fullName":"X"}"#,
        );
        let resp = handle(t.app, s.cookie(req)).await;
        envelope(&resp, 405);
        assert_eq!(resp.headers()["allow"], "PATCH");
    }
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn no_email_or_token_is_ever_logged() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("quiet", "quiet.old@example.com").await;
    t.seed_user("other", "quiet.taken@example.com").await;
    let s = t.sign_in(&user).await;
    let (log, _guard) = logs::Captured::start();
    envelope(
        &handle(
            t.app,
            s.cookie(patch(&json!({"email": "quiet.taken@example.com"}))),
        )
        .await,
        409,
    );
    envelope(
        &handle(t.app, s.cookie(patch(&json!({"email": "quiet.invalid@"})))).await,
        400,
    );
    envelope(
        &handle(
            t.app,
            presenting(patch(&json!({"fullName": "X"})), Some(&s.refresh_token)),
        )
        .await,
        401,
    );
    let resp = handle(
        t.app,
        s.cookie(patch(&json!({"email": "quiet.new@example.com"}))),
    )
    .await;
    envelope(&resp, 200);
    let (token, _) = new_access(&t, &resp);
    log.assert_free_of(&[
        "quiet.old@",
        "quiet.taken@",
        "quiet.invalid@",
        "quiet.new@",
        &s.access_token,
        &s.refresh_token,
        &token,
        token.rsplit('.').next().expect("signature"),
    ]);
}
