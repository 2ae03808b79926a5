//! The staging directory cannot be written, over HTTP.
//!
//! A private `cargo lambda watch` is configured with an `UPLOAD_TMP_DIR` in which no file can be
//! created, even by root (the tests may run as root, for whom permissions do not apply): a path
//! beneath a regular file, and `/proc`. A registration must then get a clean 500 envelope (no
//! detail, no panic), and nothing may be written anywhere: no user, no session, no image at
//! the stand-in, nothing next to the blocking file. Requests that never stage anything (a wrong
//! content type) are unaffected.
use e2e::{LogCursor, Watch, send_timed};
use reqwest::multipart::{Form, Part};
use testkit::{PASSWORD, multipart::png, random_suffix};

fn registration(username: &str) -> Form {
    Form::new()
        .text("fullName", "Staging Fault")
        .text("email", format!("{username}@example.com"))
        .text("username", username.to_owned())
        .text("password", PASSWORD)
        .part(
            "avatar",
            Part::bytes(png(16, 16, 0))
                .file_name("avatar.png")
                .mime_str("image/png")
                .expect("mime"),
        )
}

async fn unwritable_staging_gives_a_clean_500(staging: &str) {
    let mut vars = Watch::default_vars();
    vars.insert("UPLOAD_TMP_DIR".into(), staging.to_owned());
    let watch = Watch::start(vars, &["register"]).await;
    let api = watch.api().await;
    let log = LogCursor::at_end(&watch.log);
    let baseline = api.footprint().await;

    let username = format!("stagefault_{}", random_suffix());
    let req = api
        .http
        .post(api.url("register"))
        .multipart(registration(&username));
    let (status, _, body, _) = send_timed(req).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["message"], "Something went wrong on our side",
        "no detail: {body}"
    );
    assert!(
        !body.to_string().contains(staging),
        "the path is not revealed: {body}"
    );

    let req = api
        .http
        .post(api.url("register"))
        .header("content-type", "application/json")
        .body("{}");
    let (status, _, body, _) = send_timed(req).await;
    assert_eq!(status, 415, "{body}");

    assert_eq!(api.footprint().await, baseline, "nothing was written");
    assert!(log.panics().is_empty(), "{:?}", log.panics());
    assert!(
        log.new_text()
            .contains("staging an uploaded file on local disk failed"),
        "the cause is in the log"
    );
}

#[tokio::test]
async fn a_staging_path_beneath_a_regular_file_gives_a_clean_500_and_writes_nothing() {
    let parent = std::env::temp_dir().join(format!("videotube-staging-fault-{}", random_suffix()));
    std::fs::create_dir_all(&parent).expect("parent");
    let blocker = parent.join("not-a-directory");
    std::fs::write(&blocker, b"a regular file").expect("blocker");
    let staging = blocker.join("staging");
    unwritable_staging_gives_a_clean_500(staging.to_str().expect("utf-8 path")).await;
    let entries: Vec<_> = std::fs::read_dir(&parent)
        .expect("parent")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries,
        ["not-a-directory"],
        "nothing was created beside the file"
    );
    assert_eq!(std::fs::read(&blocker).expect("blocker"), b"a regular file");
    std::fs::remove_dir_all(&parent).expect("clean up");
}

#[tokio::test]
async fn a_staging_directory_nobody_can_write_to_gives_a_clean_500() {
    // procfs refuses new files whatever the caller's privileges.
    unwritable_staging_gives_a_clean_500("/proc").await;
}
