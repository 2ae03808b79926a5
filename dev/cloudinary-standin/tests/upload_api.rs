//! The upload API as clients use it: signed uploads, delivery URLs, destroy and error answers.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cloudinary_standin::Algo;
use common::{API_KEY, GIF, Standin, error_message, now, png, signed, with_timestamp};

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn a_sha1_signed_upload_succeeds_and_its_url_serves_identical_bytes() {
    let standin = Standin::start().await;
    let image = png(3, 2);
    let body = standin
        .upload_ok(
            "sha1-cloud",
            &[("public_id", "cat"), ("folder", "pets")],
            &image,
        )
        .await;

    assert_eq!(body["public_id"], "pets/cat");
    assert_eq!(body["folder"], "pets");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(body["format"], "png");
    assert_eq!(body["bytes"].as_u64(), Some(image.len() as u64));
    assert_eq!(body["resource_type"], "image");
    assert_eq!(body["type"], "upload");
    assert_eq!(body["original_filename"], "photo");
    assert_eq!(body["api_key"], API_KEY);
    assert_eq!(body["placeholder"], false);
    assert_eq!(body["tags"], serde_json::json!([]));
    assert!(is_hex(body["asset_id"].as_str().unwrap_or_default(), 32));
    assert!(is_hex(body["etag"].as_str().unwrap_or_default(), 32));
    assert!(
        body["created_at"]
            .as_str()
            .unwrap_or_default()
            .ends_with('Z')
    );
    let version = body["version"].as_i64().expect("an integer version");
    assert!((version - now()).abs() < 60);

    let url = body["secure_url"].as_str().expect("a secure_url");
    assert_eq!(
        url,
        format!(
            "{}/sha1-cloud/image/upload/v{version}/pets/cat.png",
            standin.base
        )
    );
    assert_eq!(body["url"], url);
    let served = standin.get(url).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        image.as_slice()
    );
}

#[tokio::test]
async fn a_sha256_signed_upload_succeeds_with_or_without_signature_algorithm() {
    let standin = Standin::start().await;
    let mut params = with_timestamp(&[("public_id", "explicit")]);
    params.insert("signature_algorithm".into(), "sha256".into());
    let fields = signed(&params, Algo::Sha256);
    let response = standin
        .post(
            "sha256-cloud",
            "upload",
            &fields,
            Some((&png(1, 1), "a.png")),
        )
        .await;
    assert_eq!(response.status(), 200);

    // A 64-hex signature is taken as SHA-256 even without signature_algorithm.
    let fields = signed(&with_timestamp(&[("public_id", "inferred")]), Algo::Sha256);
    let response = standin
        .post(
            "sha256-cloud",
            "upload",
            &fields,
            Some((&png(1, 1), "b.png")),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        standin
            .assets("sha256-cloud")
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn upload_with_a_bad_signature_is_rejected_with_the_string_to_sign() {
    let standin = Standin::start().await;
    let mut fields = BTreeMap::from([
        ("api_key".to_owned(), API_KEY.to_owned()),
        ("public_id".to_owned(), "cat".to_owned()),
        ("timestamp".to_owned(), now().to_string()),
        ("signature".to_owned(), "0".repeat(40)),
    ]);
    let response = standin
        .post("bad-sig", "upload", &fields, Some((&png(1, 1), "a.png")))
        .await;
    assert_eq!(response.status(), 401);
    let expected = format!(
        "Invalid Signature {}. String to sign - 'public_id=cat&timestamp={}'.",
        "0".repeat(40),
        fields["timestamp"]
    );
    assert_eq!(error_message(response).await, expected);

    fields.remove("signature");
    let response = standin
        .post("bad-sig", "upload", &fields, Some((&png(1, 1), "a.png")))
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn upload_with_a_stale_timestamp_is_rejected() {
    let standin = Standin::start().await;
    for offset in [-3700, 3700] {
        let mut params = BTreeMap::new();
        params.insert("timestamp".to_owned(), (now() + offset).to_string());
        let fields = signed(&params, Algo::Sha1);
        let response = standin
            .post("stale", "upload", &fields, Some((&png(1, 1), "a.png")))
            .await;
        assert_eq!(response.status(), 400);
        let message = error_message(response).await;
        assert!(
            message.starts_with("Stale request - reported time is "),
            "{message}"
        );
    }
}

#[tokio::test]
async fn upload_without_a_timestamp_is_rejected() {
    let standin = Standin::start().await;
    let fields = signed(
        &BTreeMap::from([("public_id".into(), "x".into())]),
        Algo::Sha1,
    );
    let response = standin
        .post("no-ts", "upload", &fields, Some((&png(1, 1), "a.png")))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        error_message(response).await,
        "Missing required parameter - timestamp"
    );
}

#[tokio::test]
async fn upload_with_a_wrong_or_missing_api_key_is_rejected() {
    let standin = Standin::start().await;
    let mut fields = signed(&with_timestamp(&[]), Algo::Sha1);
    fields.insert("api_key".into(), "999".into());
    let response = standin
        .post("keys", "upload", &fields, Some((&png(1, 1), "a.png")))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_message(response).await, "Invalid api_key 999");

    fields.remove("api_key");
    let response = standin
        .post("keys", "upload", &fields, Some((&png(1, 1), "a.png")))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_message(response).await, "Must supply api_key");
}

#[tokio::test]
async fn upload_of_a_file_that_is_not_an_image_is_rejected() {
    let standin = Standin::start().await;
    let response = standin
        .upload("not-image", &[], b"%PDF-1.7 this is certainly not an image")
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_message(response).await, "Invalid image file");
    assert_eq!(standin.assets("not-image").await, serde_json::json!([]));
}

#[tokio::test]
async fn upload_without_a_file_is_rejected() {
    let standin = Standin::start().await;
    let fields = signed(&with_timestamp(&[]), Algo::Sha1);
    let response = standin.post("no-file", "upload", &fields, None).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        error_message(response).await,
        "Missing required parameter - file"
    );
}

#[tokio::test]
async fn a_urlencoded_data_uri_upload_gets_a_generated_public_id() {
    let standin = Standin::start().await;
    let mut fields = signed(&with_timestamp(&[]), Algo::Sha1);
    fields.insert(
        "file".into(),
        format!("data:image/gif;base64,{}", STANDARD.encode(GIF)),
    );
    let response = standin
        .http
        .post(standin.api("data-uri", "upload"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&fields).expect("a form body"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON");
    let public_id = body["public_id"].as_str().expect("a public_id");
    assert_eq!(public_id.len(), 20);
    assert!(
        public_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(body["format"], "gif");
    assert_eq!(body["original_filename"], "file");
    let served = standin.get(body["url"].as_str().expect("a url")).await;
    assert_eq!(served.headers()["content-type"], "image/gif");
    assert_eq!(served.bytes().await.expect("bytes").as_ref(), GIF);
}

#[tokio::test]
async fn uploading_to_an_existing_public_id_overwrites_it() {
    let standin = Standin::start().await;
    let first = standin
        .upload_ok("overwrite", &[("public_id", "me")], &png(1, 1))
        .await;
    let second_image = png(4, 4);
    let second = standin
        .upload_ok("overwrite", &[("public_id", "me")], &second_image)
        .await;
    assert!(second["version"].as_i64() > first["version"].as_i64());
    assert_eq!(second["asset_id"], first["asset_id"]);
    assert_eq!(second["width"], 4);

    let listing = standin.assets("overwrite").await;
    assert_eq!(
        listing,
        serde_json::json!([{"public_id": "me", "bytes": second_image.len(), "format": "png"}])
    );
    // The version in a URL only busts caches: the old URL serves the current bytes.
    for url in [&first["url"], &second["url"]] {
        let served = standin.get(url.as_str().expect("a url")).await;
        assert_eq!(
            served.bytes().await.expect("bytes").as_ref(),
            second_image.as_slice()
        );
    }
}

#[tokio::test]
async fn destroy_removes_the_asset_and_its_url_then_404s() {
    let standin = Standin::start().await;
    let body = standin
        .upload_ok("destroy", &[("public_id", "a/b/c")], &png(2, 2))
        .await;
    let url = body["url"].as_str().expect("a url");
    assert_eq!(standin.get(url).await.status(), 200);

    assert_eq!(
        standin.destroy("destroy", "a/b/c").await,
        (200, serde_json::json!({"result": "ok"}))
    );
    assert_eq!(standin.get(url).await.status(), 404);
    assert_eq!(standin.assets("destroy").await, serde_json::json!([]));
    assert_eq!(
        standin.destroy("destroy", "a/b/c").await,
        (200, serde_json::json!({"result": "not found"}))
    );
}

#[tokio::test]
async fn a_delivery_url_of_an_unknown_asset_or_format_is_not_found() {
    let standin = Standin::start().await;
    standin
        .upload_ok("deliver", &[("public_id", "x")], &png(1, 1))
        .await;
    let base = format!("{}/deliver/image/upload", standin.base);
    assert_eq!(standin.get(&format!("{base}/v1/x.png")).await.status(), 200);
    assert_eq!(standin.get(&format!("{base}/x.png")).await.status(), 200);
    assert_eq!(standin.get(&format!("{base}/v1/x.jpg")).await.status(), 404);
    assert_eq!(standin.get(&format!("{base}/v1/y.png")).await.status(), 404);
    let other_cloud = format!("{}/elsewhere/image/upload/v1/x.png", standin.base);
    assert_eq!(standin.get(&other_cloud).await.status(), 404);
}

#[tokio::test]
async fn an_upload_of_twenty_mebibytes_is_accepted() {
    let standin = Standin::start().await;
    let mut image = png(2, 2);
    image.resize(20 * 1024 * 1024, 0); // trailing bytes after IEND, like metadata-heavy files
    let body = standin
        .upload_ok("big", &[("public_id", "big")], &image)
        .await;
    assert_eq!(body["bytes"].as_u64(), Some(image.len() as u64));
}

#[tokio::test]
async fn with_a_storage_dir_uploads_are_files_that_overwrite_and_destroy_remove() {
    let dir = std::env::temp_dir().join(format!("cloudinary-standin-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let standin = Standin::start_with(Some(dir.clone())).await;
    let files = || {
        std::fs::read_dir(&dir)
            .map(|d| d.count())
            .unwrap_or(usize::MAX)
    };

    standin
        .upload_ok("disk", &[("public_id", "x")], &png(1, 1))
        .await;
    assert_eq!(files(), 1);
    let image = png(2, 3);
    let body = standin
        .upload_ok("disk", &[("public_id", "x")], &image)
        .await;
    assert_eq!(files(), 1, "the overwritten version's file is removed");
    let served = standin.get(body["url"].as_str().expect("a url")).await;
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        image.as_slice()
    );

    assert_eq!(standin.destroy("disk", "x").await.0, 200);
    assert_eq!(files(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
