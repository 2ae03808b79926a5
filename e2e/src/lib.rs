//! Helpers for end-to-end tests: the base URL of the functions under `cargo lambda watch`
//! (started by `make test`), and direct access to the database and stand-in they use.
use serde_json::Value;
use testkit::required_env;

/// The running local API, as `make test` started it.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub db: mongodb::Database,
    pub cloud: String,
    pub standin: String,
    pub staging: std::path::PathBuf,
}

impl Api {
    pub async fn connect() -> Self {
        let base = required_env("TEST_E2E_BASE_URL");
        let client = mongodb::Client::with_uri_str(required_env("TEST_MONGODB_URI"))
            .await
            .expect("mongodb client");
        Self {
            base,
            http: reqwest::Client::builder().build().expect("http client"),
            db: client.database(&required_env("TEST_E2E_MONGODB_DB")),
            cloud: required_env("TEST_E2E_CLOUD"),
            standin: required_env("TEST_CLOUDINARY_API_BASE"),
            staging: required_env("TEST_E2E_STAGING").into(),
        }
    }

    pub fn url(&self, route: &str) -> String {
        format!("{}/api/v1/users/{route}", self.base)
    }

    /// Sends a request and returns (status, `Set-Cookie` values, JSON body), checking the envelope.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Vec<String>, Value) {
        let resp = req.send().await.expect("the local API answers");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let text = resp.text().await.expect("body");
        assert!(
            ct.starts_with("application/json"),
            "content-type {ct:?} for body {text}"
        );
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert_eq!(
            body["statusCode"], status,
            "statusCode equals the HTTP status: {text}"
        );
        (status, cookies, body)
    }

    pub async fn stored_images(&self) -> Vec<Value> {
        let url = format!("{}/__standin/{}/assets", self.standin, self.cloud);
        self.http
            .get(url)
            .send()
            .await
            .expect("stand-in")
            .json()
            .await
            .expect("json")
    }
}

/// The value of cookie `name` among `Set-Cookie` header values.
pub fn cookie<'a>(set_cookies: &'a [String], name: &str) -> Option<&'a str> {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or(""))
}
