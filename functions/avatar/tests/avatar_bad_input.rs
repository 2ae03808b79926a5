//! Every refused avatar request: 4xx envelope, nothing staged, uploaded, destroyed or written.
mod common;

use common::*;
use lambda_http::Body;
use mongodb::bson::{DateTime, doc};
use testkit::envelope::error_fields;
use testkit::{TestApp, multipart::Part};

#[tokio::test]
async fn no_file_is_400_avatar_file_is_missing() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let body = assert_refused(&t, &user, signed_in.cookie(form(&[])), 400).await;
    assert_eq!(body["message"], "Avatar file is missing");
    assert_eq!(error_fields(&body), ["avatar"]);
}

#[tokio::test]
async fn an_unchosen_file_input_is_400_avatar_file_is_missing() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let req = form(&[Part::file(
        "avatar",
        "",
        "application/octet-stream",
        Vec::new(),
    )]);
    let body = assert_refused(&t, &user, signed_in.cookie(req), 400).await;
    assert_eq!(body["message"], "Avatar file is missing");
}

#[tokio::test]
async fn a_file_under_another_field_is_400_naming_it_and_the_missing_avatar() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    for name in ["image", "coverImage"] {
        let req = form(&[Part::file(name, "me.png", "image/png", png(1))]);
        let body = assert_refused(&t, &user, signed_in.cookie(req), 400).await;
        assert_eq!(error_fields(&body), [name, "avatar"], "{body}");
    }
}

#[tokio::test]
async fn two_avatar_files_are_400() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let req = form(&[
        Part::file("avatar", "a.png", "image/png", png(1)),
        Part::file("avatar", "b.png", "image/png", png(2)),
    ]);
    let body = assert_refused(&t, &user, signed_in.cookie(req), 400).await;
    assert_eq!(body["message"], "Avatar must be given only once");
}

#[tokio::test]
async fn a_text_value_as_avatar_is_400() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let req = form(&[Part::text("avatar", "https://example.com/me.png")]);
    let body = assert_refused(&t, &user, signed_in.cookie(req), 400).await;
    assert_eq!(body["message"], "Avatar must be a file");
}

#[tokio::test]
async fn a_file_that_is_not_an_image_is_415_whatever_it_is_called() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    for bytes in [
        b"hello, I am a text file named avatar.png".to_vec(),
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
        b"%PDF-1.7\n".to_vec(),
    ] {
        let req = form(&[Part::file("avatar", "me.png", "image/png", bytes)]);
        let body = assert_refused(&t, &user, signed_in.cookie(req), 415).await;
        assert_eq!(
            body["message"],
            "Avatar must be a JPEG, PNG, WebP or GIF image"
        );
    }
}

#[tokio::test]
async fn an_avatar_over_the_file_limit_is_413() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let big = testkit::multipart::png(8, 8, 2 * 1024 * 1024 + 1);
    let body = assert_refused(&t, &user, signed_in.cookie(avatar_form(big)), 413).await;
    assert_eq!(body["message"], "Avatar is larger than 2 MiB");
}

#[tokio::test]
async fn a_body_over_the_body_limit_is_413() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let req = testkit::request(
        "PATCH",
        PATH,
        Some(&testkit::multipart::content_type()),
        Body::Binary(vec![b'x'; 5 * 1024 * 1024]),
    );
    assert_refused(&t, &user, signed_in.cookie(req), 413).await;
}

#[tokio::test]
async fn json_urlencoded_and_boundaryless_bodies_are_415() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    for ct in [
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data"),
        None,
    ] {
        let req = testkit::request("PATCH", PATH, ct, Body::Text(r#"{"avatar":"x"}"#.into()));
        assert_refused(&t, &user, signed_in.cookie(req), 415).await;
    }
}

#[tokio::test]
async fn a_truncated_multipart_body_is_400() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let mut body = testkit::multipart::body(&[Part::file("avatar", "a.png", "image/png", png(1))]);
    body.truncate(body.len() - 30);
    let req = testkit::request(
        "PATCH",
        PATH,
        Some(&testkit::multipart::content_type()),
        Body::Binary(body),
    );
    assert_refused(&t, &user, signed_in.cookie(req), 400).await;
}

#[tokio::test]
async fn another_method_is_405() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let mut req = signed_in.cookie(avatar_form(png(1)));
    *req.method_mut() = lambda_http::http::Method::POST;
    assert_refused(&t, &user, req, 405).await;
}

#[tokio::test]
async fn no_token_is_401_unauthorized_request_and_the_body_is_never_read() {
    let t = TestApp::spawn().await;
    let (user, _, _) = user_with_avatar(&t).await;
    let body = assert_refused(&t, &user, avatar_form(png(1)), 401).await;
    assert_eq!(body["message"], "Unauthorized request");
    // Not even a malformed body is looked at before authentication.
    let req = testkit::request(
        "PATCH",
        PATH,
        Some("application/json"),
        Body::Text("{".into()),
    );
    assert_refused(&t, &user, req, 401).await;
}

#[tokio::test]
async fn a_bad_or_foreign_token_is_401() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let mut tampered = signed_in.clone();
    tampered.access_token.push('x');
    let other_app = TestApp::spawn().await;
    let (_, foreign, _) = user_with_avatar(&other_app).await;
    for s in [tampered, foreign] {
        let body = assert_refused(&t, &user, s.cookie(avatar_form(png(1))), 401).await;
        assert_eq!(body["message"], "Invalid access token");
    }
    let req = testkit::with_cookie(avatar_form(png(1)), "accessToken", "not.a.jwt");
    assert_refused(&t, &user, req, 401).await;
}

#[tokio::test]
async fn a_revoked_session_is_401() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    t.db.collection::<mongodb::bson::Document>("sessions")
        .update_one(
            doc! {"_id": &signed_in.session_id},
            doc! {"$set": {"revokedAt": DateTime::now()}},
        )
        .await
        .expect("revoke");
    let body = assert_refused(&t, &user, signed_in.cookie(avatar_form(png(1))), 401).await;
    assert_eq!(body["message"], "Invalid access token");
}
