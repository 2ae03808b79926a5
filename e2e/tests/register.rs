//! `POST /api/v1/users/register` over HTTP through `cargo lambda watch`, as `curl -F` sends it.
use e2e::Api;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// The tests here share the server's staging directory and cloud, and check both are left
/// clean; one at a time, so one test's in-flight files are never seen by the other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `curl -F fullName=... -F email=... -F username=... -F password=... -F avatar=@file`.
fn form(username: &str, avatar: Part) -> Form {
    Form::new()
        .text("fullName", "End To End")
        .text("email", format!("{username}@example.com"))
        .text("username", username.to_owned())
        .text("password", testkit::PASSWORD)
        .part("avatar", avatar)
}

fn png_part(bytes: Vec<u8>) -> Part {
    Part::bytes(bytes)
        .file_name("avatar.png")
        .mime_str("image/png")
        .expect("mime")
}

fn staged(api: &Api) -> Vec<String> {
    std::fs::read_dir(&api.staging)
        .expect("TEST_E2E_STAGING exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

async fn image_count(api: &Api) -> usize {
    api.stored_images().await.len()
}

#[tokio::test]
async fn a_curl_style_multipart_registration_answers_201_and_the_avatar_is_served_back() {
    let _serial = SERIAL.lock().await;
    let api = Api::connect().await;
    let username = format!("e2e_{}", testkit::random_suffix());
    let png = testkit::multipart::png(16, 16, 0);
    let req = api
        .http
        .post(api.url("register"))
        .multipart(form(&username, png_part(png.clone())));
    let (status, cookies, body) = api.send(req).await;
    assert_eq!(status, 201, "{body}");
    assert!(cookies.is_empty(), "registering does not log in");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "User registered Successfully");
    assert_eq!(body["data"]["username"], username.as_str());
    assert_eq!(body["data"]["coverImage"], "");
    assert!(body["data"].get("passwordHash").is_none() && body["data"].get("password").is_none());
    let url = body["data"]["avatar"].as_str().expect("avatar url");
    let served = api.http.get(url).send().await.expect("avatar URL answers");
    assert!(served.status().is_success());
    assert_eq!(
        served.bytes().await.expect("bytes").to_vec(),
        png,
        "identical bytes"
    );
    assert!(
        staged(&api).is_empty(),
        "staged files left: {:?}",
        staged(&api)
    );
    let stored = api
        .db
        .collection::<Value>("users")
        .count_documents(mongodb::bson::doc! {"username": &username})
        .await;
    assert_eq!(stored.expect("count"), 1);
}

#[tokio::test]
async fn a_non_image_avatar_over_http_is_415_with_nothing_staged_or_uploaded() {
    let _serial = SERIAL.lock().await;
    let api = Api::connect().await;
    let images_before = image_count(&api).await;
    let username = format!("e2e_{}", testkit::random_suffix());
    let text = Part::bytes(b"definitely not a picture".to_vec())
        .file_name("avatar.png")
        .mime_str("image/png")
        .expect("mime");
    let req = api
        .http
        .post(api.url("register"))
        .multipart(form(&username, text));
    let (status, _, body) = api.send(req).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["success"], false);
    assert!(body["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        staged(&api).is_empty(),
        "staged files left: {:?}",
        staged(&api)
    );
    assert_eq!(image_count(&api).await, images_before);
    let stored = api
        .db
        .collection::<Value>("users")
        .count_documents(mongodb::bson::doc! {"username": &username})
        .await;
    assert_eq!(stored.expect("count"), 0);
}
