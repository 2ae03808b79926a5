//! Bad input of every kind gets a 4xx JSON envelope, and leaves nothing behind: no staged file,
//! no image at the stand-in, no user (checked by `assert_rejected` after every request).

use super::common::*;
use testkit::{
    TestApp,
    multipart::{self, BOUNDARY, Part},
};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_json_body_is_415() {
    let t = TestApp::spawn().await;
    let json = serde_json::json!({"fullName": "A", "email": "a@example.com", "username": "abc", "password": testkit::PASSWORD});
    let body = assert_rejected(
        &t,
        raw_request(Some("application/json"), json.to_string().into_bytes()),
        415,
    )
    .await;
    assert_eq!(
        body["message"],
        "Content type must be multipart/form-data with a boundary"
    );
}

#[tokio::test]
async fn an_urlencoded_body_is_415() {
    let t = TestApp::spawn().await;
    let req = raw_request(
        Some("application/x-www-form-urlencoded"),
        b"fullName=A&username=abc".to_vec(),
    );
    assert_rejected(&t, req, 415).await;
}

#[tokio::test]
async fn multipart_without_a_boundary_or_without_a_content_type_is_415() {
    let t = TestApp::spawn().await;
    let form = multipart::body(&valid_parts(&unique_username()));
    assert_rejected(
        &t,
        raw_request(Some("multipart/form-data"), form.clone()),
        415,
    )
    .await;
    assert_rejected(
        &t,
        raw_request(
            Some(&format!("multipart/mixed; boundary={BOUNDARY}")),
            form.clone(),
        ),
        415,
    )
    .await;
    assert_rejected(&t, raw_request(None, form), 415).await;
}

#[tokio::test]
async fn a_truncated_multipart_body_is_400() {
    let t = TestApp::spawn().await;
    let form = multipart::body(&valid_parts(&unique_username()));
    let ct = multipart::content_type();
    // Cut inside the avatar's bytes (staging has begun), and just before the closing boundary.
    for cut in [form.len() - 60, form.len() - 10] {
        let body = assert_rejected(&t, raw_request(Some(&ct), form[..cut].to_vec()), 400).await;
        assert_eq!(
            body["message"],
            "Request body is not valid multipart/form-data"
        );
    }
    assert_rejected(&t, raw_request(Some(&ct), Vec::new()), 400).await;
}

#[tokio::test]
async fn a_body_with_another_boundary_than_announced_is_400() {
    let t = TestApp::spawn().await;
    let form = multipart::body(&valid_parts(&unique_username()));
    let req = raw_request(
        Some("multipart/form-data; boundary=not-the-boundary-used"),
        form,
    );
    assert_rejected(&t, req, 400).await;
}

#[tokio::test]
async fn an_unknown_field_is_400_and_named() {
    let t = TestApp::spawn().await;
    let mut parts = valid_parts(&unique_username());
    parts.push(Part::text("role", "admin"));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["role"]);
}

#[tokio::test]
async fn a_repeated_text_field_or_file_is_400_and_named() {
    let t = TestApp::spawn().await;
    let mut parts = valid_parts(&unique_username());
    parts.push(Part::text("username", "someone_else"));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["username"]);
    let mut parts = valid_parts(&unique_username());
    parts.push(Part::file(
        "avatar",
        "second.png",
        "image/png",
        avatar_png(),
    ));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["avatar"]);
}

#[tokio::test]
async fn a_text_value_where_a_file_belongs_is_400_and_named() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::text("avatar", "https://example.com/me.png"));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["avatar"]);
    assert_eq!(body["message"], "Avatar must be a file");
}

#[tokio::test]
async fn a_file_where_a_text_value_belongs_is_400_and_named() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "fullName");
    parts.push(Part::file(
        "fullName",
        "name.txt",
        "text/plain",
        b"Ada Lovelace".to_vec(),
    ));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["fullName"]);
    // Even a file far larger than a text field may be.
    let mut parts = without(valid_parts(&unique_username()), "fullName");
    parts.push(Part::file(
        "fullName",
        "name.png",
        "image/png",
        avatar_png().repeat(100),
    ));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["fullName"]);
}

#[tokio::test]
async fn each_missing_required_field_is_400_and_named() {
    let t = TestApp::spawn().await;
    for field in ["fullName", "email", "username", "password", "avatar"] {
        let parts = without(valid_parts(&unique_username()), field);
        let body = assert_rejected(&t, request(&parts), 400).await;
        assert_eq!(error_fields(&body), [field], "{body}");
    }
}

#[tokio::test]
async fn an_empty_form_reports_every_missing_field_at_once() {
    let t = TestApp::spawn().await;
    let body = assert_rejected(&t, request(&[]), 400).await;
    assert_eq!(
        error_fields(&body),
        ["fullName", "email", "username", "password", "avatar"]
    );
    assert_eq!(body["message"], "Some fields are invalid");
}

#[tokio::test]
async fn empty_and_whitespace_only_values_are_400_and_named() {
    let t = TestApp::spawn().await;
    for field in ["fullName", "email", "username", "password"] {
        let parts = with_text(valid_parts(&unique_username()), field, "");
        let body = assert_rejected(&t, request(&parts), 400).await;
        assert_eq!(error_fields(&body), [field]);
    }
    for field in ["fullName", "email", "username"] {
        let parts = with_text(valid_parts(&unique_username()), field, " \t  ");
        let body = assert_rejected(&t, request(&parts), 400).await;
        assert_eq!(error_fields(&body), [field]);
    }
}

#[tokio::test]
async fn an_invalid_email_is_400_and_named() {
    let t = TestApp::spawn().await;
    for email in [
        "plainaddress",
        "a@b",
        "two@@example.com",
        "a b@example.com",
        "\"quoted\"@example.com",
    ] {
        let parts = with_text(valid_parts(&unique_username()), "email", email);
        let body = assert_rejected(&t, request(&parts), 400).await;
        assert_eq!(error_fields(&body), ["email"], "{email}");
    }
}

#[tokio::test]
async fn usernames_with_spaces_look_alike_letters_or_invisible_characters_are_400() {
    let t = TestApp::spawn().await;
    // Latin letters with a Cyrillic о (U+043E), a zero-width space, a space, a slash, an operator.
    for username in [
        "j\u{043e}hndoe",
        "john\u{200b}doe",
        "john doe",
        "john/doe",
        "$where",
        "jöhn",
    ] {
        let parts = with_text(valid_parts(&unique_username()), "username", username);
        let body = assert_rejected(&t, request(&parts), 400).await;
        assert_eq!(error_fields(&body), ["username"], "{username:?}");
    }
}

#[tokio::test]
async fn too_short_and_too_long_values_are_400_and_named() {
    let t = TestApp::spawn().await;
    let cases = [
        ("username", "ab".to_owned()),
        ("username", "a".repeat(31)),
        ("password", "short77".to_owned()),
        ("password", "p".repeat(129)),
        ("fullName", "F".repeat(101)),
        ("email", format!("{}@example.com", "e".repeat(250))),
        // Over the 1 KiB text-field limit: refused by the multipart parser itself.
        ("fullName", "F".repeat(2000)),
    ];
    for (field, value) in cases {
        let parts = with_text(valid_parts(&unique_username()), field, value.clone());
        let body = assert_rejected(&t, request(&parts), 400).await;
        assert_eq!(
            error_fields(&body),
            [field],
            "{field} of {} characters",
            value.chars().count()
        );
    }
}

#[tokio::test]
async fn an_avatar_over_the_file_limit_is_413() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file(
        "avatar",
        "big.png",
        "image/png",
        multipart::png(4, 4, 2 * MIB + 1),
    ));
    let body = assert_rejected(&t, request(&parts), 413).await;
    assert_eq!(body["message"], "Avatar is larger than 2 MiB");
}

#[tokio::test]
async fn a_body_over_the_body_limit_is_413() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file(
        "avatar",
        "a.png",
        "image/png",
        multipart::png(4, 4, 2 * MIB - 4096),
    ));
    parts.push(Part::file(
        "coverImage",
        "c.png",
        "image/png",
        multipart::png(4, 4, 2 * MIB - 4096),
    ));
    parts.push(Part::text("padding", "x".repeat(MIB)));
    let body = assert_rejected(&t, request(&parts), 413).await;
    assert_eq!(body["message"], "Request body is larger than 4.5 MiB");
}

#[tokio::test]
async fn an_empty_avatar_file_is_400() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file("avatar", "empty.png", "image/png", Vec::new()));
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["avatar"]);
    assert_eq!(body["message"], "Avatar is empty");
}

#[tokio::test]
async fn a_text_file_named_avatar_png_is_415_whatever_its_content_type_says() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file(
        "avatar",
        "avatar.png",
        "image/png",
        b"just some text, honestly".to_vec(),
    ));
    let body = assert_rejected(&t, request(&parts), 415).await;
    assert_eq!(
        body["message"],
        "Avatar must be a JPEG, PNG, WebP or GIF image"
    );
}

#[tokio::test]
async fn an_html_file_as_avatar_or_cover_is_415() {
    let t = TestApp::spawn().await;
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec();
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file(
        "avatar",
        "avatar.html",
        "text/html",
        html.clone(),
    ));
    assert_rejected(&t, request(&parts), 415).await;
    let mut parts = valid_parts(&unique_username());
    parts.push(Part::file("coverImage", "cover.jpg", "image/jpeg", html));
    let body = assert_rejected(&t, request(&parts), 415).await;
    assert_eq!(
        body["message"],
        "Cover image must be a JPEG, PNG, WebP or GIF image"
    );
}

#[tokio::test]
async fn a_path_like_filename_with_text_bytes_is_415() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file(
        "avatar",
        "../../etc/passwd",
        "image/png",
        b"root:x:0:0:root:/root:/bin/bash\n".to_vec(),
    ));
    assert_rejected(&t, request(&parts), 415).await;
}

#[tokio::test]
async fn a_non_image_next_to_invalid_text_fields_is_listed_with_them_in_one_400() {
    let t = TestApp::spawn().await;
    let mut parts = without(valid_parts(&unique_username()), "avatar");
    parts.push(Part::file(
        "avatar",
        "a.png",
        "image/png",
        b"not an image".to_vec(),
    ));
    let parts = with_text(parts, "email", "nope");
    let body = assert_rejected(&t, request(&parts), 400).await;
    assert_eq!(error_fields(&body), ["email", "avatar"]);
}
