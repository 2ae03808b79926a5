//! Replacing an avatar through the handler: the 200 envelope, what is stored, what the stand-in
//! holds afterwards, Node-era users, and the events in `events/` replayed.
mod common;

use common::*;
use testkit::{TestApp, node};

#[tokio::test]
async fn a_new_avatar_is_stored_the_user_points_at_it_and_the_old_one_is_destroyed() {
    let t = TestApp::spawn().await;
    let (user, signed_in, old) = user_with_avatar(&t).await;
    let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
    let body = testkit::envelope(&resp, 200);
    assert_eq!(body["message"], "Avatar image updated successfully");
    let (public_id, url) = stored_avatar(&t, &user).await;
    assert_ne!(public_id, old.public_id);
    assert_eq!(body["data"]["avatar"], url.as_str());
    assert_eq!(body["data"]["_id"], user.id.to_hex().as_str());
    assert_eq!(body["data"]["username"], user.username.as_str());
    assert!(body["data"].get("password").is_none() && body["data"].get("avatarPublicId").is_none());
    assert_eq!(
        t.image_ids().await,
        std::slice::from_ref(&public_id),
        "only the new image is left"
    );
    let served = t.http.get(&url).send().await.expect("the URL answers");
    assert_eq!(served.bytes().await.expect("bytes").to_vec(), png(1));
    let stored = t.user_document(user.id).await;
    let updated = stored.get_datetime("updatedAt").expect("updatedAt");
    assert!(*updated > user.updated_at, "updatedAt moves forward");
    assert_eq!(
        stored.get_str("coverImage").ok(),
        Some(""),
        "the cover is untouched"
    );
    assert!(t.staged_files().is_empty());
    assert_eq!(t.count("image_leases").await, 0, "the lease is released");
}

#[tokio::test]
async fn a_bearer_token_works_as_well_as_the_cookie() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let resp = send(&t, signed_in.bearer(avatar_form(png(2)))).await;
    testkit::envelope(&resp, 200);
    let (public_id, _) = stored_avatar(&t, &user).await;
    assert_eq!(t.image_ids().await, [public_id]);
}

#[tokio::test]
async fn successive_replacements_each_destroy_the_one_before() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    for n in 1..=3 {
        let image = if n == 2 { gif() } else { png(n) };
        let resp = send(&t, signed_in.cookie(avatar_form(image))).await;
        testkit::envelope(&resp, 200);
        let (public_id, _) = stored_avatar(&t, &user).await;
        assert_eq!(t.image_ids().await, [public_id], "after replacement {n}");
    }
}

#[tokio::test]
async fn a_node_era_user_has_the_old_avatar_destroyed_by_the_id_derived_from_its_url() {
    let t = TestApp::spawn().await;
    // The Node version stored only Cloudinary's plain-http URL of an image of our cloud.
    let old = t.upload_image(&png(0)).await;
    let node_url = old.url.replacen("https://", "http://", 1);
    let name = format!("node_{}", testkit::random_suffix());
    let node_user = node::node_user(&name)
        .cloud(t.cloud())
        .avatar_url(&node_url)
        .bcrypt_cost(4)
        .insert(&t.db)
        .await;
    let stored = t.user_document(node_user.id).await;
    assert!(
        stored.get("avatarPublicId").is_none(),
        "a Node-era user has no public id"
    );
    let user: shared::users::UserDoc =
        mongodb::bson::from_document(stored).expect("our model reads a Node-era user");
    let signed_in = t.sign_in(&user).await;
    let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
    testkit::envelope(&resp, 200);
    let (public_id, _) = stored_avatar(&t, &user).await;
    assert_eq!(
        t.image_ids().await,
        [public_id],
        "the Node-era image is destroyed"
    );
    let after = t.user_document(node_user.id).await;
    assert_eq!(
        after.get_i32("__v").ok(),
        Some(0),
        "the Node fields are kept"
    );
}

#[tokio::test]
async fn an_old_avatar_of_another_cloud_or_not_at_cloudinary_is_left_alone() {
    let t = TestApp::spawn().await;
    // An image of ours with the same public id as the foreign URL names: never destroyed.
    let ours = t.upload_image(&png(0)).await;
    for foreign in [
        ours.url
            .replacen(&format!("/{}/", t.cloud()), "/someoneelse/", 1),
        "https://example.com/avatars/me.png".to_owned(),
    ] {
        let name = format!("node_{}", testkit::random_suffix());
        let node_user = node::node_user(&name)
            .cloud("someoneelse")
            .avatar_url(&foreign)
            .bcrypt_cost(4)
            .insert(&t.db)
            .await;
        let user: shared::users::UserDoc =
            mongodb::bson::from_document(t.user_document(node_user.id).await).expect("user");
        let signed_in = t.sign_in(&user).await;
        let resp = send(&t, signed_in.cookie(avatar_form(png(1)))).await;
        testkit::envelope(&resp, 200);
        let (public_id, _) = stored_avatar(&t, &user).await;
        assert!(t.image_ids().await.contains(&ours.public_id), "{foreign}");
        assert!(t.image_ids().await.contains(&public_id));
    }
}

#[tokio::test]
async fn the_avatar_event_replays_to_a_200_with_a_real_token_in_its_cookie() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let resp = send(&t, event("avatar.json", Some(&signed_in.access_token))).await;
    let body = testkit::envelope(&resp, 200);
    let (public_id, url) = stored_avatar(&t, &user).await;
    assert_eq!(body["data"]["avatar"], url.as_str());
    assert_eq!(t.image_ids().await, [public_id]);
    let served = t.http.get(&url).send().await.expect("served");
    let bytes = served.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(t.staged_files().is_empty());
}

#[tokio::test]
async fn the_avatar_event_as_stored_is_401_its_placeholder_is_no_token() {
    let t = TestApp::spawn().await;
    let (user, _, _) = user_with_avatar(&t).await;
    let body = assert_refused(&t, &user, event("avatar.json", None), 401).await;
    assert_eq!(body["message"], "Invalid access token");
    assert_eq!(
        body["requestId"], "avatar-event",
        "the request id comes from the event"
    );
}

#[tokio::test]
async fn the_not_multipart_avatar_event_is_415_with_a_real_bearer_token_and_401_without() {
    let t = TestApp::spawn().await;
    let (user, signed_in, _) = user_with_avatar(&t).await;
    let req = event("avatar-not-multipart.json", Some(&signed_in.access_token));
    let body = assert_refused(&t, &user, req, 415).await;
    assert_eq!(
        body["message"],
        "Content type must be multipart/form-data with a boundary"
    );
    assert_eq!(body["requestId"], "avatar-not-multipart-event");
    assert_refused(&t, &user, event("avatar-not-multipart.json", None), 401).await;
}

#[tokio::test]
async fn other_users_are_untouched() {
    let t = TestApp::spawn().await;
    let (_, signed_in, _) = user_with_avatar(&t).await;
    let (other, _, other_image) = user_with_avatar(&t).await;
    let before = t.user_document(other.id).await;
    testkit::envelope(&send(&t, signed_in.cookie(avatar_form(png(1)))).await, 200);
    assert_eq!(t.user_document(other.id).await, before);
    assert!(t.image_ids().await.contains(&other_image.public_id));
}
