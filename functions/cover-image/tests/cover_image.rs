//! `PATCH /api/v1/users/cover-image` through the handler: the cover is replaced and the old one
//! destroyed; refused requests leave nothing behind; a cover and an avatar replaced
//! concurrently both end as the one image of their slot (one lease per user).
use lambda_http::{Body, Request, Response};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use shared::{domain::ImageRef, users::UserDoc};
use testkit::{
    SignedIn, TestApp,
    multipart::{self, Part},
    node,
};

const PATH: &str = "/api/v1/users/cover-image";

fn png(n: u32) -> Vec<u8> {
    multipart::png(4 + n, 2, 0)
}

fn form(parts: &[Part]) -> Request {
    testkit::request(
        "PATCH",
        PATH,
        Some(&multipart::content_type()),
        Body::Binary(multipart::body(parts)),
    )
}

fn cover_form(bytes: Vec<u8>) -> Request {
    form(&[Part::file("coverImage", "cover.png", "image/png", bytes)])
}

async fn send(t: &TestApp, req: Request) -> Response<Body> {
    cover_image::handle(t.app, req).await
}

/// A signed-in user with an avatar and a cover, both real images at the stand-in.
async fn user_with_images(t: &TestApp) -> (UserDoc, SignedIn, ImageRef, ImageRef) {
    let name = format!("user_{}", testkit::random_suffix());
    let user = t.seed_user(&name, &format!("{name}@example.com")).await;
    let avatar = t.upload_image(&png(0)).await;
    let cover = t.upload_image(&png(1)).await;
    t.db.collection::<Document>("users")
        .update_one(
            doc! {"_id": user.id},
            doc! {"$set": {
                "avatar": &avatar.url, "avatarPublicId": &avatar.public_id,
                "coverImage": &cover.url, "coverImagePublicId": &cover.public_id,
            }},
        )
        .await
        .expect("point the user at the images");
    let signed_in = t.sign_in(&user).await;
    (user, signed_in, avatar, cover)
}

async fn stored(t: &TestApp, user: &UserDoc, field: &str) -> String {
    t.user_document(user.id)
        .await
        .get_str(field)
        .unwrap_or_default()
        .to_owned()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Sends `req`, expects `status`, and checks nothing was staged, uploaded, destroyed or written.
async fn assert_refused(t: &TestApp, user: &UserDoc, req: Request, status: u16) -> Value {
    let doc_before = t.user_document(user.id).await;
    let images_before = t.image_ids().await;
    let resp = send(t, req).await;
    let body = testkit::envelope(&resp, status);
    assert!(t.staged_files().is_empty(), "{:?}", t.staged_files());
    assert_eq!(t.image_ids().await, images_before, "the stand-in changed");
    assert_eq!(
        t.user_document(user.id).await,
        doc_before,
        "the user changed"
    );
    assert_eq!(t.count("image_leases").await, 0, "a lease was left");
    body
}

fn event(name: &str, token: Option<&str>) -> Request {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the event file");
    let text = match token {
        Some(token) => text.replace("ACCESS_TOKEN", token),
        None => text,
    };
    shared::http::request_from_event(&text).expect("event parses")
}

#[tokio::test]
async fn a_new_cover_is_stored_the_old_one_destroyed_and_the_avatar_untouched() {
    let t = TestApp::spawn().await;
    let (user, signed_in, avatar, old) = user_with_images(&t).await;
    let resp = send(&t, signed_in.cookie(cover_form(png(2)))).await;
    let body = testkit::envelope(&resp, 200);
    assert_eq!(body["message"], "Cover image updated successfully");
    let cover_id = stored(&t, &user, "coverImagePublicId").await;
    let cover_url = stored(&t, &user, "coverImage").await;
    assert_ne!(cover_id, old.public_id);
    assert_eq!(body["data"]["coverImage"], cover_url.as_str());
    assert_eq!(body["data"]["avatar"], avatar.url.as_str());
    assert_eq!(
        t.image_ids().await,
        sorted(vec![avatar.public_id.clone(), cover_id])
    );
    assert_eq!(stored(&t, &user, "avatarPublicId").await, avatar.public_id);
    let served = t.http.get(&cover_url).send().await.expect("served");
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), png(2));
    assert!(t.staged_files().is_empty());
}

#[tokio::test]
async fn a_first_cover_destroys_nothing() {
    let t = TestApp::spawn().await;
    let name = format!("user_{}", testkit::random_suffix());
    let user = t.seed_user(&name, &format!("{name}@example.com")).await;
    let signed_in = t.sign_in(&user).await;
    let resp = send(&t, signed_in.bearer(cover_form(png(2)))).await;
    testkit::envelope(&resp, 200);
    let cover_id = stored(&t, &user, "coverImagePublicId").await;
    assert_eq!(t.image_ids().await, [cover_id]);
    assert_eq!(t.count("image_destroys").await, 0);
}

/// The write is conditioned on the image just read; "none" must match a Node-era document
/// without the field as well as one holding "".
#[tokio::test]
async fn a_first_cover_of_a_node_era_user_without_the_field_is_stored() {
    let t = TestApp::spawn().await;
    let name = format!("node_{}", testkit::random_suffix());
    let node_user = node::node_user(&name)
        .cloud(t.cloud())
        .cover_image(node::CoverImage::Absent)
        .bcrypt_cost(4)
        .insert(&t.db)
        .await;
    assert!(
        !t.user_document(node_user.id)
            .await
            .contains_key("coverImage")
    );
    let user: UserDoc =
        mongodb::bson::from_document(t.user_document(node_user.id).await).expect("user");
    let signed_in = t.sign_in(&user).await;
    testkit::envelope(&send(&t, signed_in.cookie(cover_form(png(2)))).await, 200);
    let cover_id = stored(&t, &user, "coverImagePublicId").await;
    assert_eq!(t.image_ids().await, [cover_id]);
}

#[tokio::test]
async fn a_node_era_cover_is_destroyed_by_the_id_derived_from_its_url() {
    let t = TestApp::spawn().await;
    let old = t.upload_image(&png(0)).await;
    let name = format!("node_{}", testkit::random_suffix());
    let node_user = node::node_user(&name)
        .cloud(t.cloud())
        .cover_image(node::CoverImage::Url(
            old.url.replacen("https://", "http://", 1),
        ))
        .bcrypt_cost(4)
        .insert(&t.db)
        .await;
    let user: UserDoc =
        mongodb::bson::from_document(t.user_document(node_user.id).await).expect("user");
    assert!(user.cover_image_public_id.is_none());
    let signed_in = t.sign_in(&user).await;
    testkit::envelope(&send(&t, signed_in.cookie(cover_form(png(2)))).await, 200);
    let cover_id = stored(&t, &user, "coverImagePublicId").await;
    assert_eq!(
        t.image_ids().await,
        [cover_id],
        "the Node-era cover is destroyed"
    );
}

#[tokio::test]
async fn no_cover_file_is_400_cover_image_file_is_missing() {
    let t = TestApp::spawn().await;
    let (user, signed_in, ..) = user_with_images(&t).await;
    let body = assert_refused(&t, &user, signed_in.cookie(form(&[])), 400).await;
    assert_eq!(body["message"], "Cover image file is missing");
    let req = form(&[Part::file("avatar", "me.png", "image/png", png(2))]);
    let body = assert_refused(&t, &user, signed_in.cookie(req), 400).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["avatar", "coverImage"]);
}

#[tokio::test]
async fn two_covers_a_non_image_and_an_oversized_cover_are_refused() {
    let t = TestApp::spawn().await;
    let (user, signed_in, ..) = user_with_images(&t).await;
    let two = form(&[
        Part::file("coverImage", "a.png", "image/png", png(2)),
        Part::file("coverImage", "b.png", "image/png", png(3)),
    ]);
    let body = assert_refused(&t, &user, signed_in.cookie(two), 400).await;
    assert_eq!(body["message"], "Cover image must be given only once");
    let text = cover_form(b"<html><body>not an image</body></html>".to_vec());
    let body = assert_refused(&t, &user, signed_in.cookie(text), 415).await;
    assert_eq!(
        body["message"],
        "Cover image must be a JPEG, PNG, WebP or GIF image"
    );
    let big = cover_form(multipart::png(8, 8, 2 * 1024 * 1024 + 1));
    let body = assert_refused(&t, &user, signed_in.cookie(big), 413).await;
    assert_eq!(body["message"], "Cover image is larger than 2 MiB");
    let json = testkit::request(
        "PATCH",
        PATH,
        Some("application/json"),
        Body::Text("{}".into()),
    );
    assert_refused(&t, &user, signed_in.cookie(json), 415).await;
}

#[tokio::test]
async fn no_token_a_bad_token_or_a_revoked_session_is_401() {
    let t = TestApp::spawn().await;
    let (user, signed_in, ..) = user_with_images(&t).await;
    let body = assert_refused(&t, &user, cover_form(png(2)), 401).await;
    assert_eq!(body["message"], "Unauthorized request");
    let mut tampered = signed_in.clone();
    tampered.access_token.insert(10, 'A');
    assert_refused(&t, &user, tampered.cookie(cover_form(png(2))), 401).await;
    t.db.collection::<Document>("sessions")
        .update_one(
            doc! {"_id": &signed_in.session_id},
            doc! {"$set": {"revokedAt": mongodb::bson::DateTime::now()}},
        )
        .await
        .expect("revoke");
    let body = assert_refused(&t, &user, signed_in.cookie(cover_form(png(2))), 401).await;
    assert_eq!(body["message"], "Invalid access token");
}

#[tokio::test]
async fn cloudinary_failing_on_upload_is_502_and_nothing_changes() {
    let t = TestApp::spawn().await;
    let (user, signed_in, ..) = user_with_images(&t).await;
    t.set_fault(json!({"mode": "fail", "status": 503, "ops": ["upload"]}))
        .await;
    assert_refused(&t, &user, signed_in.cookie(cover_form(png(2))), 502).await;
}

#[tokio::test]
async fn the_cover_image_event_replays_to_a_200_with_a_real_token() {
    let t = TestApp::spawn().await;
    let (user, signed_in, avatar, _) = user_with_images(&t).await;
    let resp = send(&t, event("cover-image.json", Some(&signed_in.access_token))).await;
    let body = testkit::envelope(&resp, 200);
    let cover_id = stored(&t, &user, "coverImagePublicId").await;
    assert_eq!(
        body["data"]["coverImage"],
        stored(&t, &user, "coverImage").await.as_str()
    );
    assert_eq!(
        t.image_ids().await,
        sorted(vec![avatar.public_id, cover_id])
    );
}

#[tokio::test]
async fn the_cover_image_events_without_a_token_replay_to_401s() {
    let t = TestApp::spawn().await;
    let (user, ..) = user_with_images(&t).await;
    let body = assert_refused(&t, &user, event("cover-image-no-token.json", None), 401).await;
    assert_eq!(body["message"], "Unauthorized request");
    assert_eq!(body["requestId"], "cover-image-no-token-event");
    let body = assert_refused(&t, &user, event("cover-image.json", None), 401).await;
    assert_eq!(body["message"], "Invalid access token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_avatar_and_cover_replacements_leave_one_image_per_slot() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old_avatar, old_cover) = user_with_images(&t).await;
    let app = t.app;
    let mut tasks = Vec::new();
    for n in 0..6 {
        let cover = signed_in.cookie(cover_form(png(10 + n)));
        tasks.push(tokio::spawn(async move {
            cover_image::handle(app, cover).await
        }));
        let avatar = signed_in.cookie(testkit::request(
            "PATCH",
            "/api/v1/users/avatar",
            Some(&multipart::content_type()),
            Body::Binary(multipart::body(&[Part::file(
                "avatar",
                "me.png",
                "image/png",
                png(20 + n),
            )])),
        ));
        tasks.push(tokio::spawn(
            async move { avatar::handle(app, avatar).await },
        ));
    }
    for resp in futures::future::join_all(tasks).await {
        testkit::envelope(&resp.expect("no panic"), 200);
    }
    let avatar_id = stored(&t, &user, "avatarPublicId").await;
    let cover_id = stored(&t, &user, "coverImagePublicId").await;
    assert!(avatar_id != old_avatar.public_id && cover_id != old_cover.public_id);
    assert_eq!(
        t.image_ids().await,
        sorted(vec![avatar_id, cover_id]),
        "exactly one image per slot, the ones the user points at"
    );
    assert_eq!(t.count("image_leases").await, 0);
    assert_eq!(t.count("image_destroys").await, 0);
}
