//! The register route's multipart path: any body under any multipart boundary is read, staged
//! and validated by the real code (`register::form`) without panicking; every failure is a 4xx
//! (400, 413 or 415), and no staged file survives the request, whatever happened.
#![no_main]

use std::{collections::HashMap, path::PathBuf, sync::OnceLock};

use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use shared::{config::Config, media::Media};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    media: Media,
    staging: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Staged files go to memory-backed storage when there is some: the fuzzer writes a lot.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            std::env::temp_dir()
        };
        let staging = base.join(format!("videotube-fuzz-staging-{}", std::process::id()));
        std::fs::create_dir_all(&staging).expect("staging directory");
        let vars: HashMap<String, String> = [
            ("MONGODB_URI", "mongodb://127.0.0.1:9/"),
            ("ACCESS_TOKEN_SECRET", "fuzz-access-secret-0123456789abcdef"),
            (
                "REFRESH_TOKEN_SECRET",
                "fuzz-refresh-secret-0123456789abcdef",
            ),
            (
                "CLOUDINARY_URL",
                "cloudinary://123456789012345:fuzzsecret@fuzz",
            ),
            // Small limits, so the size checks are reachable by small inputs.
            ("UPLOAD_MAX_FILE_BYTES", "2KiB"),
            ("UPLOAD_MAX_BODY_BYTES", "8KiB"),
            ("UPLOAD_MAX_FIELD_BYTES", "256B"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("UPLOAD_TMP_DIR".to_owned(), staging.display().to_string())])
        .collect();
        let config = Config::from_vars(&vars).expect("fuzz configuration");
        let media = Media::new(&config.cloudinary, &config.upload);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture {
            runtime,
            media,
            staging,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // Layout: [boundary length] boundary body
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len % 72).min(rest.len());
    let (boundary, body) = rest.split_at(len);
    let boundary = String::from_utf8_lossy(boundary).replace(['\r', '\n', '"'], "");
    let f = fixture();
    let Ok(req) = http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/api/v1/users/register")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::Binary(body.to_vec()))
    else {
        return;
    };
    let req: Request = req;
    let outcome = f.runtime.block_on(async {
        register::form::read(req, &f.media)
            .await
            .and_then(|form| form.validate().map(drop))
    });
    if let Err(e) = outcome {
        let status = e.status().as_u16();
        assert!(
            [400, 413, 415].contains(&status),
            "status {status} for {e:?}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&f.staging)
        .expect("staging")
        .filter_map(Result::ok)
        .collect();
    assert!(left.is_empty(), "staged files left behind: {left:?}");
});
