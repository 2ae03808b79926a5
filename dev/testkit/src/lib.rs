//! The test harness: each test gets the real app against its own fresh database on the real
//! MongoDB-compatible server and its own cloud on the Cloudinary stand-in, plus helpers that
//! build requests and check envelopes, so tests read like user stories.
//!
//! Services are found through `TEST_*` variables that `make test` sets after starting them. A
//! test that needs a service that is not there fails loudly; it never passes by skipping.
use std::{collections::HashMap, path::Path};

use lambda_http::{Body, Request, Response};
use mongodb::bson::doc;
use serde_json::Value;
use shared::{App, config::Config};

pub use endpoints::{Answer, login_request, refresh_request};

pub mod endpoints;
pub mod envelope;
pub mod forge;
pub mod images;
pub mod multipart;
pub mod node;
pub mod process;
pub mod wire;

/// Where the test services listen, from the environment `make test` prepares.
#[derive(Debug, Clone)]
pub struct Services {
    pub mongodb_uri: String,
    pub cloudinary_api_base: String,
    pub cloudinary_api_key: String,
    pub cloudinary_api_secret: String,
}

/// Reads a required test variable or fails the test with instructions.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the local services. Run the tests through \
             `make test`, which installs and starts them (FerretDB, the Cloudinary stand-in, moto)."
        ),
    }
}

impl Services {
    pub fn from_env() -> Self {
        Self {
            mongodb_uri: required_env("TEST_MONGODB_URI"),
            cloudinary_api_base: required_env("TEST_CLOUDINARY_API_BASE"),
            cloudinary_api_key: required_env("TEST_CLOUDINARY_API_KEY"),
            cloudinary_api_secret: required_env("TEST_CLOUDINARY_API_SECRET"),
        }
    }
}

pub fn random_suffix() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

/// A complete, valid configuration for one test: fresh database, fresh cloud, fresh secrets.
pub fn test_vars(services: &Services) -> HashMap<String, String> {
    let suffix = random_suffix();
    let secret = || hex::encode(rand::random::<[u8; 32]>());
    let staging = std::env::temp_dir().join(format!("videotube-test-staging-{suffix}"));
    [
        ("MONGODB_URI", services.mongodb_uri.clone()),
        ("MONGODB_DB", format!("test_{suffix}")),
        ("ACCESS_TOKEN_SECRET", secret()),
        ("REFRESH_TOKEN_SECRET", secret()),
        ("CLOUDINARY_CLOUD_NAME", format!("cloud{suffix}")),
        ("CLOUDINARY_API_KEY", services.cloudinary_api_key.clone()),
        (
            "CLOUDINARY_API_SECRET",
            services.cloudinary_api_secret.clone(),
        ),
        ("CLOUDINARY_API_BASE", services.cloudinary_api_base.clone()),
        ("CLOUDINARY_TIMEOUT", "3s".to_owned()),
        ("UPLOAD_TMP_DIR", staging.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The app under test with handles on everything a test asserts about.
pub struct TestApp {
    pub app: &'static App,
    pub vars: HashMap<String, String>,
    pub services: Services,
    pub http: reqwest::Client,
    /// A separate client on the test's database, for assertions.
    pub db: mongodb::Database,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`spawn`](Self::spawn), after `tweak` has adjusted the configuration variables.
    pub async fn spawn_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let services = Services::from_env();
        let mut vars = test_vars(&services);
        tweak(&mut vars);
        if let Some(dir) = vars.get("UPLOAD_TMP_DIR") {
            std::fs::create_dir_all(dir).expect("create the staging directory");
        }
        let config = Config::from_vars(&vars).expect("test configuration is valid");
        let app = App::new(config).await.expect("app builds");
        let client = mongodb::Client::with_uri_str(&vars["MONGODB_URI"])
            .await
            .expect("assertion client");
        let db = client.database(&vars["MONGODB_DB"]);
        Self {
            app: Box::leak(Box::new(app)),
            vars,
            services,
            http: reqwest::Client::new(),
            db,
        }
    }

    pub fn var(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn cloud(&self) -> &str {
        self.var("CLOUDINARY_CLOUD_NAME")
    }

    pub fn staging_dir(&self) -> &Path {
        Path::new(self.var("UPLOAD_TMP_DIR"))
    }

    pub async fn count(&self, collection: &str) -> u64 {
        self.db
            .collection::<mongodb::bson::Document>(collection)
            .count_documents(doc! {})
            .await
            .expect("count documents")
    }

    pub async fn find_one(
        &self,
        collection: &str,
        filter: mongodb::bson::Document,
    ) -> Option<mongodb::bson::Document> {
        self.db
            .collection::<mongodb::bson::Document>(collection)
            .find_one(filter)
            .await
            .expect("find one")
    }

    /// The stored `users` document with this id, as the database holds it.
    pub async fn user_document(&self, id: mongodb::bson::oid::ObjectId) -> mongodb::bson::Document {
        self.find_one("users", doc! {"_id": id})
            .await
            .expect("the user document exists")
    }

    /// The images the stand-in holds for this test's cloud.
    pub async fn stored_images(&self) -> Vec<Value> {
        let v = self.standin_control("assets").await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// `GET /__standin/{cloud}/{what}` for this test's cloud.
    async fn standin_control(&self, what: &str) -> Value {
        let url = format!(
            "{}/__standin/{}/{what}",
            self.services.cloudinary_api_base,
            self.cloud()
        );
        self.http
            .get(url)
            .send()
            .await
            .expect("stand-in reachable")
            .json()
            .await
            .expect("json")
    }

    /// The upload calls this test's cloud has received so far, answered or not: "nothing was
    /// uploaded" is this unchanged, which a list of images cannot tell from "uploaded, then
    /// destroyed".
    pub async fn upload_calls(&self) -> u64 {
        self.standin_control("calls").await["upload"]
            .as_u64()
            .expect("an upload count")
    }

    /// Waits until the stand-in has received `calls` uploads for this test's cloud: an upload
    /// under way (under a hang fault, say) has reached it. Panics after `within`.
    pub async fn await_upload_calls(&self, calls: u64, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.upload_calls().await < calls {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stand-in did not get {calls} uploads within {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Switches the stand-in's fault mode for this test's cloud, e.g. `{"mode":"fail","status":500}`.
    pub async fn set_fault(&self, fault: Value) {
        let url = format!(
            "{}/__standin/{}/fault",
            self.services.cloudinary_api_base,
            self.cloud()
        );
        let r = self
            .http
            .post(url)
            .json(&fault)
            .send()
            .await
            .expect("stand-in reachable");
        assert!(
            r.status().is_success(),
            "stand-in refused the fault setting"
        );
    }

    /// Files left in the staging directory (must be none after any request).
    pub fn staged_files(&self) -> Vec<String> {
        std::fs::read_dir(self.staging_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A POST request with a body and content type, as API Gateway would hand it over.
pub fn post(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request {
    let mut b = http::Request::builder()
        .method("POST")
        .uri(format!("https://api.example.com{path}"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).expect("request builds")
}

pub fn post_json(path: &str, body: &Value) -> Request {
    post(path, Some("application/json"), Body::Text(body.to_string()))
}

/// Adds a `Cookie` header (API Gateway v2 joins the `cookies` array into one).
pub fn with_cookie(mut req: Request, name: &str, value: &str) -> Request {
    let v = http::HeaderValue::from_str(&format!("{name}={value}")).expect("cookie header");
    req.headers_mut().append(http::header::COOKIE, v);
    req
}

/// Marks `req` as coming from `ip`, as API Gateway records it (`requestContext.http.sourceIp`),
/// the only address the throttles count.
pub fn from_address(req: Request, ip: &str) -> Request {
    use lambda_http::{
        RequestExt as _, aws_lambda_events::apigw::ApiGatewayV2httpRequestContext,
        request::RequestContext,
    };
    let context: ApiGatewayV2httpRequestContext = serde_json::from_value(serde_json::json!({
        "routeKey": "$default",
        "stage": "$default",
        "requestId": random_suffix(),
        "http": {"method": req.method().as_str(), "path": req.uri().path(), "sourceIp": ip},
    }))
    .expect("request context");
    req.with_request_context(RequestContext::ApiGatewayV2(context))
}

/// Loads an event file from `events/` at the workspace root and converts it as the runtime does.
pub fn event(name: &str) -> Request {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let json =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    shared::http::request_from_event(&json).expect("event parses")
}

/// The JSON body of a response, after checking the envelope invariants every response keeps.
pub fn envelope(resp: &Response<Body>, expected_status: u16) -> Value {
    envelope::of_response(resp, expected_status)
}

/// The `Set-Cookie` headers of a response, parsed.
pub fn set_cookies(resp: &Response<Body>) -> Vec<cookie::Cookie<'static>> {
    resp.headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|s| cookie::Cookie::parse(s.to_owned()).ok())
        .collect()
}

/// A strong password that passes validation.
pub const PASSWORD: &str = "correct horse battery staple";

/// Inserts a user with `password` hashed as registration would, straight into `db`.
pub async fn seed_user(
    db: &mongodb::Database,
    username: &str,
    email: &str,
    password: &str,
) -> shared::users::UserDoc {
    use shared::{domain::*, schema, store::Store, users};
    let store = Store::from_database(db.clone());
    let store = store.ready(schema::ensure_indexes).await.expect("indexes");
    let hash = shared::password::rehash(password).await.expect("hash");
    let id = UserId::generate();
    users::insert(
        store,
        id,
        users::NewUser {
            username: Username::parse(username).expect("valid username"),
            email: Email::parse(email).expect("valid email"),
            full_name: FullName::parse("Test User").expect("valid name"),
            avatar: ImageRef {
                url: "https://res.cloudinary.com/demo/image/upload/avatar.png".into(),
                public_id: "avatar".into(),
            },
            cover_image: None,
            password_hash: hash,
        },
    )
    .await
    .expect("insert user");
    users::find_by_id(store, id)
        .await
        .expect("read back")
        .expect("user exists")
}

impl TestApp {
    /// A user with [`PASSWORD`] in this test's database.
    pub async fn seed_user(&self, username: &str, email: &str) -> shared::users::UserDoc {
        seed_user(&self.db, username, email, PASSWORD).await
    }
}

/// A session opened for a user as login opens one, without the login request.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user_id: mongodb::bson::oid::ObjectId,
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl SignedIn {
    /// The request with this session's access token in the `accessToken` cookie.
    pub fn cookie(&self, req: Request) -> Request {
        with_cookie(req, "accessToken", &self.access_token)
    }

    /// The request with this session's access token as `Authorization: Bearer`.
    pub fn bearer(&self, mut req: Request) -> Request {
        let v = http::HeaderValue::from_str(&format!("Bearer {}", self.access_token))
            .expect("authorization header");
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
        req
    }
}

impl TestApp {
    /// The user with this id, read as our code reads it (`None`: no such user).
    pub async fn user(&self, id: mongodb::bson::oid::ObjectId) -> Option<shared::users::UserDoc> {
        let store = self.app.store().await.expect("store ready");
        shared::users::find_by_id(store, shared::domain::UserId(id))
            .await
            .expect("read the user")
    }

    /// Opens a new session (a new device) for `user`, as a successful login does.
    pub async fn sign_in(&self, user: &shared::users::UserDoc) -> SignedIn {
        use shared::{domain::*, sessions, tokens};
        let store = self.app.store().await.expect("store ready");
        let jti = tokens::new_jti();
        let session = sessions::create(
            store,
            SessionId::generate(),
            UserId(user.id),
            user.claims(),
            &jti,
            self.app.config.tokens.session_max_age,
        )
        .await
        .expect("session created");
        let pair = self
            .app
            .tokens
            .issue(session.grant(), &jti, tokens::now_secs())
            .expect("pair issued");
        SignedIn {
            user_id: user.id,
            session_id: session.id,
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
        }
    }
}

/// A request with any method, path and optional body, as API Gateway would hand it over.
pub fn request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).expect("request builds")
}
