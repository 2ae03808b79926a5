//! Shared helpers for the avatar handler tests: a signed-in user whose avatar really exists at
//! the stand-in, request builders, and the check every refused request must pass (nothing
//! staged, uploaded, destroyed or written).
#![allow(dead_code)] // each test binary uses its own subset

use lambda_http::{Body, Request, Response};
use mongodb::bson::{Document, doc};
use serde_json::Value;
use shared::{domain::ImageRef, users::UserDoc};
use testkit::{
    SignedIn, TestApp,
    multipart::{self, Part},
};

pub const PATH: &str = "/api/v1/users/avatar";

/// A real PNG; different `n` give different bytes.
pub fn png(n: u32) -> Vec<u8> {
    multipart::png(2 + n, 2, 0)
}

/// A real 1x1 GIF (header, logical screen, global colour table, image, trailer).
pub fn gif() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]);
    g.extend_from_slice(&[0, 0, 0, 0xff, 0xff, 0xff]);
    g.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]);
    g.push(0x3b);
    g
}

/// A PATCH with a multipart body of `parts`.
pub fn form(parts: &[Part]) -> Request {
    testkit::request(
        "PATCH",
        PATH,
        Some(&multipart::content_type()),
        Body::Binary(multipart::body(parts)),
    )
}

/// A PATCH with one `avatar` file.
pub fn avatar_form(bytes: Vec<u8>) -> Request {
    form(&[Part::file("avatar", "me.png", "image/png", bytes)])
}

pub async fn send(t: &TestApp, req: Request) -> Response<Body> {
    avatar::handle(t.app, req).await
}

/// A new user, signed in, whose avatar is an image stored at the stand-in under its id.
pub async fn user_with_avatar(t: &TestApp) -> (UserDoc, SignedIn, ImageRef) {
    let name = format!("user_{}", testkit::random_suffix());
    let user = t.seed_user(&name, &format!("{name}@example.com")).await;
    let old = t.upload_image(&png(0)).await;
    t.db.collection::<Document>("users")
        .update_one(
            doc! {"_id": user.id},
            doc! {"$set": {"avatar": &old.url, "avatarPublicId": &old.public_id}},
        )
        .await
        .expect("point the user at the image");
    let signed_in = t.sign_in(&user).await;
    (user, signed_in, old)
}

/// Sends `req`, expects `status` in a JSON error envelope, and checks that the request left
/// nothing behind: no staged file, the same images at the stand-in, the same user document,
/// no lease and nothing recorded for a later destroy. Returns the envelope.
pub async fn assert_refused(t: &TestApp, user: &UserDoc, req: Request, status: u16) -> Value {
    let doc_before = t.user_document(user.id).await;
    let images_before = t.image_ids().await;
    let resp = send(t, req).await;
    let body = testkit::envelope(&resp, status);
    assert!(
        t.staged_files().is_empty(),
        "staged files left behind: {:?}",
        t.staged_files()
    );
    assert_eq!(t.image_ids().await, images_before, "the stand-in changed");
    assert_eq!(
        t.user_document(user.id).await,
        doc_before,
        "the user changed"
    );
    assert_eq!(t.count("image_leases").await, 0, "a lease was left");
    assert_eq!(t.count("image_destroys").await, 0, "a destroy was recorded");
    body
}

/// The avatar public id and URL the user document holds.
pub async fn stored_avatar(t: &TestApp, user: &UserDoc) -> (String, String) {
    let d = t.user_document(user.id).await;
    (
        d.get_str("avatarPublicId").unwrap_or_default().to_owned(),
        d.get_str("avatar").unwrap_or_default().to_owned(),
    )
}

/// An event file from `events/`, with its `ACCESS_TOKEN` placeholder replaced by `token` (as a
/// developer does before `cargo lambda invoke`), or left as it is.
pub fn event(name: &str, token: Option<&str>) -> Request {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the event file");
    assert!(text.contains("ACCESS_TOKEN"), "{name} has the placeholder");
    let text = match token {
        Some(token) => text.replace("ACCESS_TOKEN", token),
        None => text,
    };
    shared::http::request_from_event(&text).expect("event parses")
}
