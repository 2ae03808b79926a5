//! Test helpers: an in-process stand-in, request signing, and tiny valid images.
#![allow(dead_code)] // Each test file uses its own subset.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use cloudinary_standin::{Algo, Settings};
use reqwest::multipart::{Form, Part};

pub const API_KEY: &str = "123456789012345";
pub const API_SECRET: &str = "standin-test-secret";

/// A running stand-in and a client for it.
pub struct Standin {
    pub base: String,
    pub http: reqwest::Client,
}

impl Standin {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a stand-in that keeps uploaded bytes in `storage_dir`, when given.
    pub async fn start_with(storage_dir: Option<PathBuf>) -> Self {
        let addr = cloudinary_standin::spawn(Settings {
            api_key: API_KEY.into(),
            api_secret: API_SECRET.into(),
            storage_dir,
        })
        .await
        .expect("the stand-in starts");
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    pub fn api(&self, cloud: &str, action: &str) -> String {
        format!("{}/v1_1/{cloud}/image/{action}", self.base)
    }

    /// Posts `fields` (already signed, or not) and an optional file as multipart.
    pub async fn post(
        &self,
        cloud: &str,
        action: &str,
        fields: &BTreeMap<String, String>,
        file: Option<(&[u8], &str)>,
    ) -> reqwest::Response {
        let mut form = Form::new();
        for (name, value) in fields {
            form = form.text(name.clone(), value.clone());
        }
        if let Some((bytes, filename)) = file {
            form = form.part(
                "file",
                Part::bytes(bytes.to_vec()).file_name(filename.to_owned()),
            );
        }
        self.http
            .post(self.api(cloud, action))
            .multipart(form)
            .send()
            .await
            .expect("the stand-in answers")
    }

    /// A SHA-1 signed upload of `bytes` with extra signed `params`.
    pub async fn upload(
        &self,
        cloud: &str,
        params: &[(&str, &str)],
        bytes: &[u8],
    ) -> reqwest::Response {
        let fields = signed(&with_timestamp(params), Algo::Sha1);
        self.post(cloud, "upload", &fields, Some((bytes, "photo.png")))
            .await
    }

    /// A signed upload that must succeed; returns its JSON.
    pub async fn upload_ok(
        &self,
        cloud: &str,
        params: &[(&str, &str)],
        bytes: &[u8],
    ) -> serde_json::Value {
        let response = self.upload(cloud, params, bytes).await;
        assert_eq!(response.status(), 200, "upload failed");
        response.json().await.expect("JSON body")
    }

    /// A SHA-1 signed destroy of `public_id`; returns status and JSON.
    pub async fn destroy(&self, cloud: &str, public_id: &str) -> (u16, serde_json::Value) {
        let fields = signed(&with_timestamp(&[("public_id", public_id)]), Algo::Sha1);
        let response = self.post(cloud, "destroy", &fields, None).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .send()
            .await
            .expect("the stand-in answers")
    }

    pub async fn set_fault(&self, cloud: &str, fault: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}/__standin/{cloud}/fault", self.base))
            .json(&fault)
            .send()
            .await
            .expect("the stand-in answers")
    }

    pub async fn assets(&self, cloud: &str) -> serde_json::Value {
        self.get(&format!("{}/__standin/{cloud}/assets", self.base))
            .await
            .json()
            .await
            .expect("JSON body")
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `params` plus a current `timestamp`.
pub fn with_timestamp(params: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("timestamp".into(), now().to_string());
    map
}

/// Signs `params` with the test secret and adds `api_key` and `signature`, as an SDK does
/// (`signature_algorithm`, if given, is sent but not signed).
pub fn signed(params: &BTreeMap<String, String>, algo: Algo) -> BTreeMap<String, String> {
    let mut to_sign = params.clone();
    to_sign.remove("signature_algorithm");
    let mut fields = params.clone();
    fields.insert(
        "signature".into(),
        cloudinary_standin::sign(&to_sign, API_SECRET, algo),
    );
    fields.insert("api_key".into(), API_KEY.into());
    fields
}

/// A valid RGB PNG of the given size (zlib stored block, no compression).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend([(x * 40) as u8, (y * 40) as u8, 200]);
        }
    }
    let len = u16::try_from(raw.len()).expect("a small image");
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend(len.to_le_bytes());
    zlib.extend((!len).to_le_bytes());
    zlib.extend(&raw);
    zlib.extend(adler32(&raw).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A 1x1 transparent GIF.
pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// The `error.message` of a Cloudinary error body.
pub async fn error_message(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    body["error"]["message"]
        .as_str()
        .expect("an error.message string")
        .to_owned()
}
