//! Shared helpers for the register handler tests: a valid form, request builders, and the
//! checks every rejected request must pass (nothing staged, uploaded or written).

use lambda_http::{Body, Request, Response};
use serde_json::Value;
use testkit::{
    TestApp,
    multipart::{self, Part},
};

pub const ROUTE_PATH: &str = "/api/v1/users/register";

/// A small real PNG, as an avatar.
pub fn avatar_png() -> Vec<u8> {
    multipart::png(4, 3, 0)
}

/// A real 1x1 GIF (header, logical screen, global colour table, image, trailer).
pub fn gif() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1x1, global colour table of 2 entries
    g.extend_from_slice(&[0, 0, 0, 0xff, 0xff, 0xff]);
    g.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor
    g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW min code size 2, one data sub-block
    g.push(0x3b);
    g
}

/// A unique username for this test run (lowercase, valid).
pub fn unique_username() -> String {
    format!("user_{}", testkit::random_suffix())
}

/// The four text fields of a valid form for `username`.
pub fn text_parts(username: &str) -> Vec<Part> {
    vec![
        Part::text("fullName", "Ada Lovelace"),
        Part::text("email", format!("{username}@example.com")),
        Part::text("username", username),
        Part::text("password", testkit::PASSWORD),
    ]
}

/// A complete valid form (avatar, no cover) for `username`.
pub fn valid_parts(username: &str) -> Vec<Part> {
    let mut parts = text_parts(username);
    parts.push(Part::file("avatar", "me.png", "image/png", avatar_png()));
    parts
}

/// `parts` without the field `name`.
pub fn without(parts: Vec<Part>, name: &str) -> Vec<Part> {
    parts.into_iter().filter(|p| part_name(p) != name).collect()
}

/// `parts` with the text field `name` set to `value`.
pub fn with_text(parts: Vec<Part>, name: &'static str, value: impl Into<String>) -> Vec<Part> {
    let mut parts = without(parts, name);
    parts.push(Part::text(name, value));
    parts
}

fn part_name(p: &Part) -> &str {
    match p {
        Part::Text(name, _) | Part::File { name, .. } => name,
    }
}

/// A register request with a multipart body.
pub fn request(parts: &[Part]) -> Request {
    testkit::post(
        ROUTE_PATH,
        Some(&multipart::content_type()),
        Body::Binary(multipart::body(parts)),
    )
}

/// A register request with any content type and body.
pub fn raw_request(content_type: Option<&str>, body: Vec<u8>) -> Request {
    testkit::post(ROUTE_PATH, content_type, Body::Binary(body))
}

pub async fn send(t: &TestApp, req: Request) -> Response<Body> {
    register::handle(t.app, req).await
}

/// Registers `parts` and expects a 201; returns the envelope.
pub async fn register_ok(t: &TestApp, parts: &[Part]) -> Value {
    let resp = send(t, request(parts)).await;
    testkit::envelope(&resp, 201)
}

/// Sends `req`, expects `status` in a JSON error envelope, and checks that the request left
/// nothing behind: no staged file, no new image, no new user. Returns the envelope.
pub async fn assert_rejected(t: &TestApp, req: Request, status: u16) -> Value {
    let users_before = t.count("users").await;
    let images_before = t.image_ids().await;
    let recorded_before = t.count("image_destroys").await;
    let resp = send(t, req).await;
    let body = testkit::envelope(&resp, status);
    assert!(
        t.staged_files().is_empty(),
        "staged files left behind: {:?}",
        t.staged_files()
    );
    assert_eq!(
        t.image_ids().await,
        images_before,
        "the stand-in must hold no new image"
    );
    assert_eq!(
        t.count("users").await,
        users_before,
        "no user may be written"
    );
    assert_eq!(
        t.count("image_destroys").await,
        recorded_before,
        "nothing may be left for a later destroy"
    );
    body
}

pub use testkit::envelope::error_fields;

/// Fetches a delivery URL from the stand-in.
pub async fn fetch(t: &TestApp, url: &str) -> Vec<u8> {
    let resp = t.http.get(url).send().await.expect("the image URL answers");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.bytes().await.expect("image bytes").to_vec()
}
