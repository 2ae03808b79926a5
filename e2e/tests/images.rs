//! `PATCH /api/v1/users/avatar` and `PATCH /api/v1/users/cover-image` over HTTP through a
//! private `cargo lambda watch`, as a browser's `fetch` with a `FormData` sends them: a user
//! registered and logged in over HTTP replaces both images, the stand-in ends with exactly the
//! images the user points at, and refused requests leave no trace.
use e2e::{Api, Watch};
use mongodb::bson::{Document, doc};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use testkit::{PASSWORD, multipart::png, random_suffix};

fn png_part(bytes: Vec<u8>) -> Part {
    Part::bytes(bytes)
        .file_name("picture.png")
        .mime_str("image/png")
        .expect("mime")
}

/// Registers (with an avatar and a cover) and logs in over HTTP; returns the user's id and
/// access token.
async fn register_and_log_in(api: &Api, username: &str) -> (String, String) {
    let form = Form::new()
        .text("fullName", "Image Owner")
        .text("email", format!("{username}@example.com"))
        .text("username", username.to_owned())
        .text("password", PASSWORD)
        .part("avatar", png_part(png(6, 6, 0)))
        .part("coverImage", png_part(png(12, 4, 0)));
    let (status, _, body) = api
        .send(api.http.post(api.url("register")).multipart(form))
        .await;
    assert_eq!(status, 201, "{body}");
    let login = json!({"username": username, "password": PASSWORD});
    let (status, _, body) = api.send(api.http.post(api.url("login")).json(&login)).await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["user"]["_id"].as_str().expect("id").to_owned();
    let token = body["data"]["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    (id, token)
}

async fn image_ids(api: &Api) -> Vec<String> {
    let mut ids: Vec<String> = api
        .stored_images()
        .await
        .iter()
        .filter_map(|i| i["public_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn user_doc(api: &Api, id: &str) -> Document {
    let oid = mongodb::bson::oid::ObjectId::parse_str(id).expect("id");
    api.db
        .collection::<Document>("users")
        .find_one(doc! {"_id": oid})
        .await
        .expect("read the user")
        .expect("the user exists")
}

fn field(d: &Document, name: &str) -> String {
    d.get_str(name).unwrap_or_default().to_owned()
}

/// PATCHes one file as `field` to `route`, with the token in the `accessToken` cookie.
async fn patch(
    api: &Api,
    route: &str,
    field: &'static str,
    token: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let req = api
        .http
        .patch(api.url(route))
        .header("cookie", format!("accessToken={token}"))
        .multipart(Form::new().part(field, png_part(bytes)));
    let (status, _, body) = api.send(req).await;
    (status, body)
}

#[tokio::test]
async fn an_avatar_and_a_cover_replaced_over_http_leave_exactly_the_images_the_user_points_at() {
    // The watch warms its routes with a POST; these two are PATCH-only, so they are warmed
    // here (the first request builds and starts the function).
    let watch = Watch::start(Watch::default_vars(), &["register", "login"]).await;
    let api = watch.api().await;
    let log = e2e::LogCursor::at_end(&watch.log);
    for route in ["avatar", "cover-image"] {
        let (status, _, _) = api.send(api.http.patch(api.url(route))).await;
        assert_eq!(status, 401, "{route} answers");
    }
    let (id, token) = register_and_log_in(&api, &format!("img_{}", random_suffix())).await;
    let registered = user_doc(&api, &id).await;
    assert_eq!(
        image_ids(&api).await.len(),
        2,
        "avatar and cover from registering"
    );

    // The avatar, by cookie.
    let new_avatar = png(7, 7, 0);
    let (status, body) = patch(&api, "avatar", "avatar", &token, new_avatar.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Avatar image updated successfully");
    let after_avatar = user_doc(&api, &id).await;
    assert_ne!(
        field(&after_avatar, "avatarPublicId"),
        field(&registered, "avatarPublicId")
    );
    assert_eq!(
        body["data"]["avatar"],
        field(&after_avatar, "avatar").as_str()
    );
    let served = api
        .http
        .get(field(&after_avatar, "avatar"))
        .send()
        .await
        .expect("the new avatar is served");
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), new_avatar);

    // The cover, by Bearer token.
    let req = api
        .http
        .patch(api.url("cover-image"))
        .bearer_auth(&token)
        .multipart(Form::new().part("coverImage", png_part(png(20, 5, 0))));
    let (status, _, body) = api.send(req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Cover image updated successfully");
    let after_cover = user_doc(&api, &id).await;
    assert_eq!(
        body["data"]["coverImage"],
        field(&after_cover, "coverImage").as_str()
    );
    assert_eq!(
        body["data"]["avatar"],
        field(&after_avatar, "avatar").as_str()
    );
    let mut expected = vec![
        field(&after_cover, "avatarPublicId"),
        field(&after_cover, "coverImagePublicId"),
    ];
    expected.sort();
    assert_eq!(
        image_ids(&api).await,
        expected,
        "the old avatar and cover are destroyed"
    );

    // Refusals over HTTP leave no trace.
    let baseline = api.footprint().await;
    let (status, body) = patch(&api, "avatar", "avatar", "not-a-token", png(3, 3, 0)).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Invalid access token"))
    );
    let req = api
        .http
        .patch(api.url("avatar"))
        .multipart(Form::new().part("avatar", png_part(png(3, 3, 0))));
    let (status, _, body) = api.send(req).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Unauthorized request"))
    );
    let text = b"just some text, named like a picture".to_vec();
    let (status, _) = patch(&api, "cover-image", "coverImage", &token, text).await;
    assert_eq!(status, 415);
    let (status, body) = patch(&api, "cover-image", "avatar", &token, png(3, 3, 0)).await;
    assert_eq!(status, 400, "{body}");
    let req = api
        .http
        .patch(api.url("avatar"))
        .header("cookie", format!("accessToken={token}"))
        .json(&json!({"avatar": "https://example.com/a.png"}));
    let (status, _, _) = api.send(req).await;
    assert_eq!(status, 415);
    assert_eq!(
        api.footprint().await,
        baseline,
        "refusals changed something"
    );

    // Five concurrent replacements over HTTP: one avatar is left, the one the user points at.
    let races = (0..5).map(|n| patch(&api, "avatar", "avatar", &token, png(30 + n, 2, 0)));
    for (status, body) in futures::future::join_all(races).await {
        assert_eq!(status, 200, "{body}");
    }
    let after_race = user_doc(&api, &id).await;
    let mut expected = vec![
        field(&after_race, "avatarPublicId"),
        field(&after_race, "coverImagePublicId"),
    ];
    expected.sort();
    assert_eq!(image_ids(&api).await, expected);
    assert!(e2e::staged_files(&api.staging).is_empty());
    assert!(log.panics().is_empty(), "{:?}", log.panics());
}
