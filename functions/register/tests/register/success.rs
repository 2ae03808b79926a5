//! Registering through the handler: the 201 envelope, what is stored, what is uploaded, and
//! the events in `events/` replayed as the Lambda runtime would hand them over.

use super::common::*;
use mongodb::bson::doc;
use serde_json::Value;
use testkit::{TestApp, multipart::Part};

#[tokio::test]
async fn a_valid_form_registers_the_user_and_answers_201_with_the_public_user() {
    let t = TestApp::spawn().await;
    let suffix = testkit::random_suffix();
    let parts = vec![
        Part::text("fullName", "  Ada Lovelace "),
        Part::text("email", format!(" Ada.{suffix}@Example.COM ")),
        Part::text("username", format!("JohnDoe{suffix}")),
        Part::text("password", testkit::PASSWORD),
        Part::file("avatar", "me.png", "image/png", avatar_png()),
    ];
    let body = register_ok(&t, &parts).await;
    assert_eq!(body["message"], "User registered Successfully");
    let user = &body["data"];
    let username = format!("johndoe{suffix}");
    let email = format!("ada.{suffix}@example.com");
    assert_eq!(user["username"], username.as_str());
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["fullName"], "Ada Lovelace");
    assert_eq!(user["coverImage"], "", "no cover means an empty string");
    assert_eq!(user["watchHistory"], serde_json::json!([]));
    let id = user["_id"].as_str().expect("_id");
    assert!(
        id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(user["createdAt"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(user["updatedAt"].as_str().is_some());
    let keys: Vec<&str> = user
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for secret in ["password", "passwordHash", "refreshToken", "accessToken"] {
        assert!(!keys.contains(&secret), "{secret} must never be answered");
    }
    let text = body.to_string();
    assert!(!text.contains(testkit::PASSWORD) && !text.contains("argon2"));

    let stored = t
        .find_one("users", doc! {"username": &username})
        .await
        .expect("stored user");
    assert_eq!(stored.get_str("email").expect("email"), email);
    assert!(
        stored
            .get_str("password")
            .expect("hash")
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(stored.get("passwordHash").is_none() && stored.get("refreshToken").is_none());
    // The Node user model's shape: URL strings, public ids beside them, "" for no cover.
    assert_eq!(stored.get_str("coverImage").expect("coverImage"), "");
    assert!(stored.get("coverImagePublicId").is_none());
    assert_eq!(
        stored.get_str("avatar").expect("avatar is a URL string"),
        user["avatar"].as_str().expect("avatar url")
    );
    assert!(
        stored
            .get_array("watchHistory")
            .expect("watchHistory")
            .is_empty()
    );
    let avatar_id = stored.get_str("avatarPublicId").expect("avatarPublicId");

    let url = user["avatar"].as_str().expect("avatar url");
    assert_eq!(
        fetch(&t, url).await,
        avatar_png(),
        "the stand-in serves back the identical bytes"
    );
    assert_eq!(t.image_ids().await, [avatar_id]);
    assert!(avatar_id.starts_with("videotube/users/"));
    assert!(t.staged_files().is_empty());
}

#[tokio::test]
async fn a_cover_image_is_uploaded_and_answered_as_its_url() {
    let t = TestApp::spawn().await;
    let mut parts = valid_parts(&unique_username());
    parts.push(Part::file("coverImage", "cover.gif", "image/gif", gif()));
    let body = register_ok(&t, &parts).await;
    let cover = body["data"]["coverImage"].as_str().expect("cover url");
    assert!(cover.ends_with(".gif"), "{cover}");
    assert_eq!(fetch(&t, cover).await, gif());
    assert_eq!(t.image_ids().await.len(), 2);
    assert!(t.staged_files().is_empty());
}

#[tokio::test]
async fn an_unchosen_cover_input_counts_as_no_cover() {
    let t = TestApp::spawn().await;
    let mut parts = valid_parts(&unique_username());
    // What a browser sends for an empty <input type="file">.
    parts.push(Part::file(
        "coverImage",
        "",
        "application/octet-stream",
        Vec::new(),
    ));
    let body = register_ok(&t, &parts).await;
    assert_eq!(body["data"]["coverImage"], "");
    assert_eq!(t.image_ids().await.len(), 1);
}

#[tokio::test]
async fn a_path_like_filename_with_real_image_bytes_registers_and_the_name_is_used_nowhere() {
    let t = TestApp::spawn().await;
    let username = unique_username();
    let mut parts = without(valid_parts(&username), "avatar");
    parts.push(Part::file(
        "avatar",
        "../../etc/passwd",
        "text/plain",
        avatar_png(),
    ));
    let body = register_ok(&t, &parts).await;
    let url = body["data"]["avatar"].as_str().expect("avatar url");
    assert!(!url.contains("passwd") && !url.contains(".."), "{url}");
    for id in t.image_ids().await {
        assert!(!id.contains("passwd") && !id.contains(".."), "{id}");
    }
    let stored = t
        .find_one("users", doc! {"username": &username})
        .await
        .expect("stored user");
    assert!(!format!("{stored:?}").contains("passwd"));
    assert!(t.staged_files().is_empty());
    assert_eq!(fetch(&t, url).await, avatar_png());
}

#[tokio::test]
async fn an_account_configured_for_sha256_signs_its_uploads_with_sha256() {
    let t = TestApp::spawn_with(|v| {
        v.insert("CLOUDINARY_SIGNATURE_ALGORITHM".into(), "sha256".into());
    })
    .await;
    register_ok(&t, &valid_parts(&unique_username())).await;
    assert_eq!(t.image_ids().await.len(), 1);
}

#[tokio::test]
async fn a_taken_username_differing_only_in_case_is_409_before_anything_is_uploaded() {
    let t = TestApp::spawn().await;
    let username = unique_username();
    register_ok(&t, &valid_parts(&username)).await;
    let parts = with_text(
        valid_parts(&username),
        "email",
        format!("other.{username}@example.com"),
    );
    let parts = with_text(parts, "username", username.to_uppercase());
    let uploads = t.upload_calls().await;
    let body = assert_rejected(&t, request(&parts), 409).await;
    assert_eq!(
        t.upload_calls().await,
        uploads,
        "nothing was sent to Cloudinary"
    );
    assert_eq!(
        body["message"],
        "User with email or username already exists"
    );
    assert_eq!(error_fields(&body), ["username"]);
}

#[tokio::test]
async fn a_taken_email_differing_only_in_case_is_409_before_anything_is_uploaded() {
    let t = TestApp::spawn().await;
    let username = unique_username();
    register_ok(&t, &valid_parts(&username)).await;
    let parts = with_text(
        valid_parts(&unique_username()),
        "email",
        format!("{}@EXAMPLE.com", username.to_uppercase()),
    );
    let uploads = t.upload_calls().await;
    let body = assert_rejected(&t, request(&parts), 409).await;
    assert_eq!(
        t.upload_calls().await,
        uploads,
        "nothing was sent to Cloudinary"
    );
    assert_eq!(
        body["message"],
        "User with email or username already exists"
    );
    assert_eq!(error_fields(&body), ["email"]);
}

#[tokio::test]
async fn the_register_event_file_replays_to_a_201() {
    let t = TestApp::spawn().await;
    let resp = register::handle(t.app, testkit::event("register.json")).await;
    let body = testkit::envelope(&resp, 201);
    assert_eq!(body["data"]["username"], "eventuser");
    let url = body["data"]["avatar"].as_str().expect("avatar url");
    let png = fetch(&t, url).await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(t.staged_files().is_empty());
}

#[tokio::test]
async fn the_not_multipart_event_file_replays_to_a_415() {
    let t = TestApp::spawn().await;
    let body = assert_rejected(&t, testkit::event("register-not-multipart.json"), 415).await;
    assert_eq!(
        body["requestId"], "register-not-multipart-event",
        "the request id comes from the event"
    );
}

#[tokio::test]
async fn an_event_whose_base64_body_does_not_decode_is_400() {
    let t = TestApp::spawn().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/register.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("json");
    event["body"] = Value::from("this is %%% not base64 !!!");
    let req = shared::http::request_from_event(&event.to_string()).expect("event parses");
    let body = assert_rejected(&t, req, 400).await;
    assert_eq!(body["message"], "Request body is not valid base64");
}
