//! change-password handler tests against the real database: the hash is replaced, this session
//! stays and every other one ends (on our routes and for refresh), every bad input is one 400
//! that changes nothing, Node-era accounts change theirs too, and concurrent changes race.
#[path = "../../current-user/tests/common/logs.rs"]
mod logs;
#[path = "../../current-user/tests/common/probes.rs"]
mod probes;
#[path = "../../current-user/tests/common/refused.rs"]
mod refused;
use probes::{access_works, refresh_works};

use change_password::handle;
use refused::{is_revoked, presenting, snapshot};
use serde_json::{Value, json};
use shared::password::{self, Verdict};
use testkit::{PASSWORD, TestApp, envelope, event, post, post_json, request};

const PATH: &str = "/api/v1/users/change-password";
const NEW: &str = "a brand new passphrase";

fn change(old: &str, new: &str) -> lambda_http::Request {
    post_json(PATH, &json!({"oldPassword": old, "newPassword": new}))
}

fn fields(v: &Value) -> Vec<(String, String)> {
    v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().expect("string").to_owned();
            (s("field"), s("message"))
        })
        .collect()
}

async fn stored_hash(t: &TestApp, id: mongodb::bson::oid::ObjectId) -> String {
    t.user_document(id)
        .await
        .get_str("password")
        .expect("hash")
        .to_owned()
}

async fn verifies(password: &str, hash: &str) -> bool {
    matches!(
        password::verify(password, Some(hash))
            .await
            .expect("verify"),
        Verdict::Match { .. }
    )
}

#[tokio::test]
async fn a_change_keeps_this_session_and_ends_every_other_session_of_the_user() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("alice", "alice@example.com").await;
    let stranger = t.seed_user("bob", "bob@example.com").await;
    let this = t.sign_in(&user).await;
    let others = [t.sign_in(&user).await, t.sign_in(&user).await];
    let theirs = t.sign_in(&stranger).await;

    let resp = handle(t.app, this.cookie(change(PASSWORD, NEW))).await;
    let v = envelope(&resp, 200);
    assert_eq!(v["message"], "Password changed successfully");
    assert_eq!(v["data"], json!({}));
    assert!(testkit::set_cookies(&resp).is_empty());

    let hash = stored_hash(&t, user.id).await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(verifies(NEW, &hash).await);
    assert!(!verifies(PASSWORD, &hash).await);
    assert!(!is_revoked(&t, &this).await, "this device stays signed in");
    assert!(access_works(&t, &this).await);
    for s in &others {
        assert!(is_revoked(&t, s).await);
        assert!(
            !access_works(&t, s).await,
            "their access tokens are refused at once"
        );
        assert!(
            !refresh_works(&t, s).await,
            "and so are their refresh tokens"
        );
    }
    assert!(refresh_works(&t, &this).await);
    assert!(access_works(&t, &theirs).await, "nobody else is signed out");
    let credentials = |password: &str| json!({"username": "alice", "password": password});
    assert_eq!(t.login(login::handle, credentials(PASSWORD)).await.0, 401);
    assert_eq!(t.login(login::handle, credentials(NEW)).await.0, 200);
}

#[tokio::test]
async fn the_event_files_change_the_password_with_json_and_with_a_form() {
    for name in ["change-password.json", "change-password-form.json"] {
        let t = TestApp::spawn().await;
        let user = t.seed_user("carol", "carol@example.com").await;
        let s = t.sign_in(&user).await;
        let resp = handle(t.app, refused::event_as(name, &s)).await;
        envelope(&resp, 200);
        assert!(
            verifies(NEW, &stored_hash(&t, user.id).await).await,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_wrong_old_password_is_a_400_naming_old_password_and_changes_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("dave", "dave@example.com").await;
    let this = t.sign_in(&user).await;
    let other = t.sign_in(&user).await;
    let before = snapshot(&t).await;
    let resp = handle(t.app, this.cookie(change("not my password", NEW))).await;
    let v = envelope(&resp, 400);
    assert_eq!(v["message"], "Invalid old password");
    assert_eq!(
        fields(&v),
        [("oldPassword".into(), "Invalid old password".into())]
    );
    assert_eq!(snapshot(&t).await, before);
    assert!(access_works(&t, &other).await);
}

#[tokio::test]
async fn every_field_problem_is_reported_in_one_400_and_nothing_changes() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("erin", "erin@example.com").await;
    let s = t.sign_in(&user).await;
    let j = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    let (old, new) = ("oldPassword", "newPassword");
    let long = "x".repeat(129);
    let cases: Vec<(&str, lambda_http::Request, u16, Vec<&str>)> = vec![
        (
            "the event file",
            refused::event_as("change-password-missing-fields.json", &s),
            400,
            vec![old, new],
        ),
        ("no body", post(PATH, None, ""), 400, vec![old, new]),
        (
            "new missing",
            post_json(PATH, &json!({"oldPassword": PASSWORD})),
            400,
            vec![new],
        ),
        (
            "old missing",
            post_json(PATH, &json!({"newPassword": NEW})),
            400,
            vec![old],
        ),
        ("empty strings", change("", ""), 400, vec![old, new]),
        ("new too short", change(PASSWORD, "short12"), 400, vec![new]),
        ("new too long", change(PASSWORD, &long), 400, vec![new]),
        ("old too long", change(&long, NEW), 400, vec![old]),
        (
            "same as the old",
            change(PASSWORD, PASSWORD),
            400,
            vec![new],
        ),
        (
            "wrong old and short new",
            change("wrong password", "short"),
            400,
            vec![old, new],
        ),
        (
            "operator objects",
            post_json(
                PATH,
                &json!({"oldPassword": {"$ne": ""}, "newPassword": {"$gt": ""}}),
            ),
            400,
            vec![old, new],
        ),
        (
            "numbers",
            post_json(
                PATH,
                &json!({"oldPassword": 12345678, "newPassword": 87654321}),
            ),
            400,
            vec![old, new],
        ),
        (
            "repeated form field",
            post(PATH, form, "oldPassword=a&oldPassword=b&newPassword=c"),
            400,
            vec![old],
        ),
        ("not JSON", post(PATH, j, "{oldPassword"), 400, vec![]),
        ("an array", post(PATH, j, "[]"), 400, vec![]),
        (
            "text/plain",
            post(PATH, Some("text/plain"), "x"),
            415,
            vec![],
        ),
        (
            "too large",
            post(PATH, j, format!(r#"{{"x":"{}"}}"#, "a".repeat(17 * 1024))),
            413,
            vec![],
        ),
    ];
    let before = snapshot(&t).await;
    for (what, req, status, expected) in cases {
        let resp = handle(t.app, s.cookie(req)).await;
        let v = envelope(&resp, status);
        let named: Vec<String> = fields(&v).into_iter().map(|(f, _)| f).collect();
        assert_eq!(named, expected, "{what}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains(PASSWORD) && !text.contains("wrong password"),
            "{what}: {text}"
        );
    }
    let resp = handle(t.app, s.cookie(change(PASSWORD, PASSWORD))).await;
    assert_eq!(
        fields(&envelope(&resp, 400)),
        [(
            "newPassword".into(),
            "New password must differ from the old password".into()
        )]
    );
    assert_eq!(snapshot(&t).await, before, "no bad input writes anything");
}

#[tokio::test]
async fn refused_tokens_are_401_and_change_nothing() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("fay", "fay@example.com").await;
    let s = t.sign_in(&user).await;
    let mut cases = refused::stateless(&t, &s);
    cases.extend(refused::stale(&t, &user).await);
    let before = snapshot(&t).await;
    for case in cases {
        let resp = handle(
            t.app,
            presenting(change(PASSWORD, NEW), case.token.as_deref()),
        )
        .await;
        assert_eq!(
            envelope(&resp, 401)["message"],
            case.message,
            "{}",
            case.what
        );
    }
    let resp = handle(t.app, event("change-password-no-token.json")).await;
    assert_eq!(envelope(&resp, 401)["message"], "Unauthorized request");
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn a_node_era_bcrypt_account_changes_its_password_and_loses_its_node_refresh_token() {
    let t = TestApp::spawn().await;
    let node = testkit::node::node_user("nodeuser")
        .email("Node.User@Example.com")
        .password("node-era pass")
        .logged_in("node-refresh-secret", std::time::Duration::from_secs(3600))
        .insert(&t.db)
        .await;
    assert!(node.password_hash.starts_with("$2b$10$"));
    let user = t.user(node.id).await.expect("exists");
    let s = t.sign_in(&user).await;
    let resp = handle(t.app, s.cookie(change("node-era pass", NEW))).await;
    envelope(&resp, 200);
    let stored = t.user_document(node.id).await;
    assert!(
        stored
            .get_str("password")
            .expect("hash")
            .starts_with("$argon2id$")
    );
    assert!(!stored.contains_key("refreshToken"), "{stored}");
    assert_eq!(
        stored.get_str("email").expect("email"),
        "Node.User@Example.com"
    );
    assert!(!is_revoked(&t, &s).await);
}

#[tokio::test]
async fn a_short_node_era_password_is_accepted_as_the_old_one() {
    let t = TestApp::spawn().await;
    let node = testkit::node::node_user("shorty")
        .password("abc")
        .bcrypt_cost(4)
        .insert(&t.db)
        .await;
    let user = t.user(node.id).await.expect("exists");
    let s = t.sign_in(&user).await;
    envelope(&handle(t.app, s.cookie(change("abc", NEW))).await, 200);
}

#[tokio::test]
async fn of_two_concurrent_changes_with_the_same_old_password_exactly_one_applies() {
    let t = TestApp::spawn().await;
    for round in 0..4 {
        let name = format!("racer{round}");
        let user = t.seed_user(&name, &format!("{name}@example.com")).await;
        let s = t.sign_in(&user).await;
        let (a, b) = ("first new passphrase", "second new passphrase");
        let (ra, rb) = tokio::join!(
            tokio::spawn(handle(t.app, s.cookie(change(PASSWORD, a)))),
            tokio::spawn(handle(t.app, s.cookie(change(PASSWORD, b)))),
        );
        let (ra, rb) = (ra.expect("task"), rb.expect("task"));
        let statuses = (ra.status().as_u16(), rb.status().as_u16());
        let winner = match statuses {
            (200, 400) => a,
            (400, 200) => b,
            other => panic!("round {round}: expected one 200 and one 400, got {other:?}"),
        };
        let loser = if winner == a { &rb } else { &ra };
        assert_eq!(envelope(loser, 400)["message"], "Invalid old password");
        let hash = stored_hash(&t, user.id).await;
        assert!(
            verifies(winner, &hash).await,
            "round {round}: the winner's password is stored"
        );
        assert!(!is_revoked(&t, &s).await);
    }
}

#[tokio::test]
async fn other_methods_are_405() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("gus", "gus@example.com").await;
    let s = t.sign_in(&user).await;
    let before = snapshot(&t).await;
    envelope(
        &handle(t.app, s.cookie(request("PUT", PATH, None, ""))).await,
        405,
    );
    assert_eq!(snapshot(&t).await, before);
}

#[tokio::test]
async fn no_password_hash_token_or_email_is_ever_logged() {
    let t = TestApp::spawn().await;
    let user = t.seed_user("quiet", "quiet.user@example.com").await;
    let s = t.sign_in(&user).await;
    let (log, _guard) = logs::Captured::start();
    envelope(
        &handle(t.app, s.cookie(change("not my password", NEW))).await,
        400,
    );
    envelope(
        &handle(t.app, s.cookie(change(PASSWORD, "short"))).await,
        400,
    );
    envelope(
        &handle(
            t.app,
            presenting(change(PASSWORD, NEW), Some(&s.refresh_token)),
        )
        .await,
        401,
    );
    envelope(&handle(t.app, s.cookie(change(PASSWORD, NEW))).await, 200);
    let signature = s.access_token.rsplit('.').next().expect("signature");
    log.assert_free_of(&[
        PASSWORD,
        NEW,
        "not my password",
        "short",
        "$argon2",
        &s.access_token,
        signature,
        &s.refresh_token,
        "quiet.user@example.com",
    ]);
}
