//! Accounts the Node version created log in through our login, exactly as mongoose left them:
//! bcrypt at any cost and prefix, the email as typed, `http://` URLs, `__v`, a plaintext
//! `refreshToken`, no `coverImage`. A successful login brings the document up to date.
use std::time::Duration;

use login::handle;
use mongodb::bson::Document;
use serde_json::json;
use testkit::{
    TestApp,
    node::{BcryptPrefix, CoverImage, create_node_indexes, node_user},
};

const TEN_DAYS: Duration = Duration::from_secs(10 * 24 * 3600);

#[tokio::test]
async fn a_node_era_account_logs_in_with_its_bcrypt_password_and_is_brought_up_to_date() {
    let t = TestApp::spawn().await;
    let node = node_user("nora")
        .email("Nora.Smith@Example.COM")
        .cover_image(CoverImage::Absent)
        .logged_in(t.var("REFRESH_TOKEN_SECRET"), TEN_DAYS)
        .insert(&t.db)
        .await;
    let before = t.user_document(node.id).await;
    assert!(
        before
            .get_str("password")
            .expect("hash")
            .starts_with("$2b$10$")
    );

    let (status, v, ..) = t
        .login(
            handle,
            json!({"username": "nora", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let user = &v["data"]["user"];
    assert_eq!(user["_id"], node.id.to_hex());
    assert_eq!(user["avatar"], node.avatar_url, "the Node URL, as stored");
    assert_eq!(user["coverImage"], "", "no coverImage field reads as none");
    assert!(user.get("password").is_none() && user.get("refreshToken").is_none());

    let after = t.user_document(node.id).await;
    let hash = after.get_str("password").expect("hash");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(
        after.get("refreshToken").is_none(),
        "the plaintext token is gone"
    );
    assert_eq!(
        after.get_str("email").expect("email"),
        "nora.smith@example.com"
    );
    assert_eq!(
        after.get_i32("__v").ok(),
        before.get_i32("__v").ok(),
        "other fields kept"
    );
    assert_eq!(after.get_str("avatar").ok(), before.get_str("avatar").ok());

    let (status, v, ..) = t
        .login(
            handle,
            json!({"username": "nora", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "and again, now on argon2id: {v}");
    assert_eq!(
        t.user_document(node.id).await.get_str("password").ok(),
        Some(hash)
    );
}

#[tokio::test]
async fn every_bcrypt_prefix_and_other_costs_verify() {
    let t = TestApp::spawn().await;
    for (name, cost, prefix) in [
        ("twoa", 4, BcryptPrefix::TwoA),
        ("twob", 12, BcryptPrefix::TwoB),
        ("twoy", 5, BcryptPrefix::TwoY),
    ] {
        let node = node_user(name)
            .bcrypt_cost(cost)
            .bcrypt_prefix(prefix)
            .insert(&t.db)
            .await;
        assert!(node.password_hash.starts_with(prefix.as_str()));
        let (status, v, ..) = t
            .login(handle, json!({"username": name, "password": node.password}))
            .await;
        assert_eq!(status, 200, "{name}: {v}");
        let (status, ..) = t
            .login(
                handle,
                json!({"username": name, "password": "not it at all"}),
            )
            .await;
        assert_eq!(status, 401, "{name}");
    }
}

#[tokio::test]
async fn a_node_era_account_logs_in_by_its_email_in_any_case() {
    let t = TestApp::spawn().await;
    let node = node_user("mixie")
        .email("Mixie.Case@Example.com")
        .insert(&t.db)
        .await;
    let (status, v, ..) = t
        .login(
            handle,
            json!({"email": "MIXIE.CASE@EXAMPLE.COM", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "before it is lowercased: {v}");
    assert_eq!(
        t.user_document(node.id).await.get_str("email").ok(),
        Some("mixie.case@example.com")
    );
    for typed in ["mixie.case@example.com", " Mixie.Case@Example.com "] {
        let (status, v, ..) = t
            .login(handle, json!({"email": typed, "password": node.password}))
            .await;
        assert_eq!(status, 200, "{typed}: {v}");
    }
    let node = node_user("both")
        .email("Both.Ways@Example.com")
        .insert(&t.db)
        .await;
    let (status, v, ..) = t.login(handle, json!({"username": "both", "email": "both.ways@example.com", "password": node.password})).await;
    assert_eq!(status, 200, "username and email together: {v}");
}

#[tokio::test]
async fn a_node_era_email_is_found_in_any_case_of_its_non_ascii_letters_too() {
    let t = TestApp::spawn().await;
    let node = node_user("jurgen")
        .email("Jürgen.Öz@Example.com")
        .insert(&t.db)
        .await;
    let (status, v, ..) = t
        .login(
            handle,
            json!({"email": "JÜRGEN.ÖZ@EXAMPLE.COM", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

/// A case-insensitive regex matches by case folding, under which `ſ` (long s) is an `s`; but
/// `ſam@…` lowercases to itself, so the throttles count it under a key of its own. It must not
/// reach `sam@…`, or every `s` in an email would double the budgets an attacker gets on it.
#[tokio::test]
async fn an_email_that_only_case_folds_to_a_stored_one_reaches_no_account() {
    let t = TestApp::spawn().await;
    let node = node_user("sam")
        .email("Sam.Smith@example.com")
        .insert(&t.db)
        .await;
    for other in ["ſam.smith@example.com", "ſam.ſmith@example.com"] {
        let (status, v, ..) = t
            .login(handle, json!({"email": other, "password": node.password}))
            .await;
        assert_eq!(status, 401, "{other}: {v}");
    }
    let (status, v, ..) = t
        .login(
            handle,
            json!({"email": "SAM.SMITH@EXAMPLE.COM", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "its own spelling in any case still works: {v}");
}

#[tokio::test]
async fn with_the_email_fallback_off_only_the_stored_lowercase_form_is_found() {
    let t = TestApp::spawn_with(|v| {
        v.insert("NODE_EMAIL_FALLBACK".into(), "false".into());
    })
    .await;
    let node = node_user("strict")
        .email("Strict@Example.com")
        .insert(&t.db)
        .await;
    let (status, ..) = t
        .login(
            handle,
            json!({"email": "strict@example.com", "password": node.password}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, v, ..) = t
        .login(
            handle,
            json!({"username": "strict", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "the username still works: {v}");
}

#[tokio::test]
async fn two_node_era_accounts_that_differ_only_in_email_case_log_in_by_neither_email() {
    let t = TestApp::spawn().await;
    let a = node_user("twin1")
        .email("Twin@Example.com")
        .insert(&t.db)
        .await;
    let b = node_user("twin2")
        .email("TWIN@example.com")
        .insert(&t.db)
        .await;
    for (who, typed) in [(&a, "twin@example.com"), (&b, "TWIN@example.com")] {
        let (status, v, ..) = t
            .login(handle, json!({"email": typed, "password": who.password}))
            .await;
        assert_eq!(status, 401, "ambiguous, never the wrong account: {v}");
    }
    let (status, v, ..) = t
        .login(handle, json!({"username": "twin2", "password": b.password}))
        .await;
    assert_eq!(status, 200, "each logs in by username: {v}");
}

#[tokio::test]
async fn unknown_users_and_wrong_bcrypt_or_argon2_passwords_get_the_same_answer_and_write_nothing()
{
    let t = TestApp::spawn().await;
    let node = node_user("brenda")
        .logged_in(t.var("REFRESH_TOKEN_SECRET"), TEN_DAYS)
        .insert(&t.db)
        .await;
    t.seed_user("argo", "argo@example.com").await;
    let before = t.user_document(node.id).await;
    let mut answers = Vec::new();
    for username in ["brenda", "argo", "nobody-here"] {
        let (status, mut v, ..) = t
            .login(
                handle,
                json!({"username": username, "password": "wrong password"}),
            )
            .await;
        assert_eq!(status, 401, "{username}");
        v.as_object_mut().expect("object").remove("requestId");
        answers.push(v);
    }
    assert_eq!(answers[0], answers[1], "wrong bcrypt = wrong argon2");
    assert_eq!(answers[1], answers[2], "wrong password = unknown user");
    assert_eq!(
        t.user_document(node.id).await,
        before,
        "nothing upgraded or removed"
    );
    assert_eq!(t.count("sessions").await, 0);
}

#[tokio::test]
async fn the_mongoose_indexes_of_a_node_database_are_kept_not_duplicated() {
    let t = TestApp::spawn().await;
    create_node_indexes(&t.db).await;
    let node = node_user("idx").insert(&t.db).await;
    let (status, v, ..) = t
        .login(
            handle,
            json!({"username": "idx", "password": node.password}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let names =
        t.db.collection::<Document>("users")
            .list_index_names()
            .await
            .expect("indexes");
    assert!(names.contains(&"username_1".to_owned()) && names.contains(&"email_1".to_owned()));
    assert!(
        !names
            .iter()
            .any(|n| n == "username_unique" || n == "email_unique"),
        "{names:?}"
    );
    // Still unique: a second account with the same username is refused by the index.
    let (dup, _) = node_user("idx").build();
    assert!(
        t.db.collection::<Document>("users")
            .insert_one(dup)
            .await
            .is_err()
    );
}
