//! Helpers for end-to-end tests: the base URL of the functions under `cargo lambda watch`
//! behind the local API Gateway stand-in (`dev/gateway`, both started by `make test`), and
//! direct access to the database and stand-in they use.
//!
//! The gateway records the TCP peer address as `requestContext.http.sourceIp`, as API Gateway
//! does, so a test acts as another client address by connecting from another loopback address:
//! [`client_from`], [`Api::from_address`].
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

    /// This API as seen from another client address: its requests leave from `ip` (any of
    /// 127.0.0.0/8, or `::1`), which the functions then see as `sourceIp`. For `::1` the base URL
    /// becomes `[::1]` (the gateways `make test` and [`Watch`] start listen there too, where the
    /// machine has IPv6 loopback).
    pub fn from_address(&self, ip: std::net::IpAddr) -> Api {
        let base = if ip.is_ipv6() {
            self.base.replacen("127.0.0.1", "[::1]", 1)
        } else {
            self.base.clone()
        };
        Api {
            base,
            http: client_from(ip),
            db: self.db.clone(),
            cloud: self.cloud.clone(),
            standin: self.standin.clone(),
            staging: self.staging.clone(),
        }
    }

    /// Sends a request and returns (status, `Set-Cookie` values, JSON body), checking the envelope.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Vec<String>, Value) {
        let resp = req.send().await.expect("the local API answers");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let text = resp.text().await.expect("body");
        let body = testkit::envelope::assert_envelope_shape(status, ct.as_deref(), &text);
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

/// An HTTP client whose connections leave from `ip` (a loopback address: 127.0.0.x or `::1`), so
/// that behind the local gateway the functions see `ip` as `sourceIp`.
pub fn client_from(ip: std::net::IpAddr) -> reqwest::Client {
    assert!(
        ip.is_loopback(),
        "{ip}: the tests act only as loopback addresses"
    );
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .expect("http client")
}

/// Whether this machine can bind the IPv6 loopback address.
pub fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// The value of cookie `name` among `Set-Cookie` header values.
pub fn cookie<'a>(set_cookies: &'a [String], name: &str) -> Option<&'a str> {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or(""))
}

/// Everything a rejected request must leave unchanged: every non-empty collection of the database
/// (count and a SHA-256 over its full contents; always users and sessions), our files in the
/// staging directory, and the images the stand-in holds for the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// `(collection, documents, sha256)`, by name.
    pub collections: Vec<(String, u64, String)>,
    pub staged: Vec<String>,
    pub images: Vec<Value>,
}

impl Api {
    /// The current [`Footprint`] of this API's database, staging directory and cloud.
    pub async fn footprint(&self) -> Footprint {
        let mut names = self
            .db
            .list_collection_names()
            .await
            .expect("list collections");
        for always in ["users", "sessions"] {
            if !names.iter().any(|n| n == always) {
                names.push(always.to_owned());
            }
        }
        names.sort();
        let mut collections = Vec::new();
        for name in names {
            let (count, sha) = collection_digest(&self.db, &name).await;
            // An empty collection appears when its indexes are created; that is not data.
            if count > 0 || name == "users" || name == "sessions" {
                collections.push((name, count, sha));
            }
        }
        Footprint {
            collections,
            staged: staged_files(&self.staging),
            images: self.stored_images().await,
        }
    }
}

/// Number of documents and a SHA-256 over all of them in `_id` order (extended JSON text).
pub async fn collection_digest(db: &mongodb::Database, name: &str) -> (u64, String) {
    use futures::TryStreamExt as _;
    let docs: Vec<mongodb::bson::Document> = db
        .collection::<mongodb::bson::Document>(name)
        .find(mongodb::bson::doc! {})
        .sort(mongodb::bson::doc! {"_id": 1})
        .await
        .expect("read the collection")
        .try_collect()
        .await
        .expect("read the collection");
    let text: String = docs.iter().map(|d| format!("{d}\n")).collect();
    (docs.len() as u64, shared::sessions::token_hash(&text))
}

/// Our staged files (named [`shared::media::STAGING_PREFIX`]...) in `dir`, sorted.
pub fn staged_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(shared::media::STAGING_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads what a log file gained after a point, e.g. the `cargo lambda watch` log during a test.
pub struct LogCursor {
    path: std::path::PathBuf,
    start: u64,
}

impl LogCursor {
    /// A cursor at the current end of `path` (which may not exist yet).
    pub fn at_end(path: impl Into<std::path::PathBuf>) -> Self {
        let path = path.into();
        let start = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self { path, start }
    }

    /// The text written since the cursor was made (lossy UTF-8).
    pub fn new_text(&self) -> String {
        use std::io::{Read as _, Seek as _};
        let mut out = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.path)
            && f.seek(std::io::SeekFrom::Start(self.start)).is_ok()
        {
            let _ = f.read_to_end(&mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The lines written since the cursor that report a panic.
    pub fn panics(&self) -> Vec<String> {
        self.new_text()
            .lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_owned)
            .collect()
    }
}

/// A private `cargo lambda watch` serving the functions with its own configuration, behind its
/// own local gateway (`dev/gateway`), for tests that break a dependency (database, stand-in
/// cloud, staging directory) or need a configuration of their own and must not disturb the
/// shared instance `make test` started. The gateway and the whole process group of watch are
/// stopped, by PID, when it is dropped.
pub struct Watch {
    /// The gateway, as clients reach the functions (`sourceIp` is the client's address).
    pub base: String,
    /// `cargo lambda watch` itself (its own events always say `sourceIp` 127.0.0.1).
    pub watch_base: String,
    /// The log of `cargo lambda watch` and the functions.
    pub log: std::path::PathBuf,
    /// The gateway's log, one line per request.
    pub gateway_log: std::path::PathBuf,
    pub vars: std::collections::HashMap<String, String>,
    child: Option<std::process::Child>,
    gateway: Option<std::process::Child>,
}

impl Watch {
    /// A complete function configuration on the test services: a fresh database on the shared
    /// server, a fresh cloud on the stand-in, fresh secrets and a fresh staging directory.
    pub fn default_vars() -> std::collections::HashMap<String, String> {
        let mut vars = testkit::test_vars(&testkit::Services::from_env());
        vars.insert("REFRESH_REUSE_GRACE".into(), "2s".into());
        vars.insert("COOKIE_SECURE".into(), "false".into());
        // One JSON object per log line, so tests can read each request's status and latency.
        vars.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
        vars
    }

    /// Starts `cargo lambda watch` with `vars` (and nothing else of the configuration from this
    /// process's environment), waits until each of `routes` has answered once on its own port,
    /// so that the functions are running, then starts the gateway in front of it (on 127.0.0.1,
    /// and on `[::1]` at the same port where the machine has it). The binaries are normally
    /// already built by `make test`.
    pub async fn start(vars: std::collections::HashMap<String, String>, routes: &[&str]) -> Self {
        use std::os::unix::process::CommandExt as _;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let suffix = testkit::random_suffix();
        let log = std::env::temp_dir().join(format!("videotube-watch-{suffix}.log"));
        let gateway_log = std::env::temp_dir().join(format!("videotube-gateway-{suffix}.log"));
        let out = std::fs::File::create(&log).expect("watch log");
        if let Some(dir) = vars.get("UPLOAD_TMP_DIR") {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut cmd = std::process::Command::new("cargo");
        cmd.args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--ignore-changes")
        .current_dir(&root)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("log handle"))
        .stderr(out)
        .process_group(0);
        for v in shared::config::VARIABLES {
            cmd.env_remove(v.name);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || k.starts_with("CARGO_BIN_")
            {
                cmd.env_remove(k);
            }
        }
        cmd.envs(&vars);
        let child = cmd
            .spawn()
            .expect("start cargo lambda watch (installed by make test)");
        let mut watch = Self {
            base: String::new(),
            watch_base: format!("http://127.0.0.1:{port}"),
            log,
            gateway_log,
            vars,
            child: Some(child),
            gateway: None,
        };
        watch.wait_ready(port, routes).await;
        watch.start_gateway(&root).await;
        watch
    }

    /// The gateway in front of this watch, on a port free on 127.0.0.1 (and on ::1, if any).
    async fn start_gateway(&mut self, root: &std::path::Path) {
        let v6 = has_ipv6_loopback();
        let port = (0..50)
            .find_map(|_| {
                let v4 = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
                let port = v4.local_addr().ok()?.port();
                (!v6 || std::net::TcpListener::bind(("::1", port)).is_ok()).then_some(port)
            })
            .expect("a port free on 127.0.0.1 and ::1");
        let mut cmd = std::process::Command::new(required_env("TEST_GATEWAY_BIN"));
        cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
        if v6 {
            cmd.arg("--listen").arg(format!("[::1]:{port}"));
        }
        let out = std::fs::File::create(&self.gateway_log).expect("gateway log");
        let child = cmd
            .arg("--runtime")
            .arg(&self.watch_base)
            .arg("--routes")
            .arg(root.join("Cargo.toml"))
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start the local gateway (TEST_GATEWAY_BIN, built by make test)");
        self.gateway = Some(child);
        self.base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = self.gateway.as_mut().map(std::process::Child::try_wait)
            {
                panic!(
                    "the local gateway exited ({status}); log:\n{}",
                    std::fs::read_to_string(&self.gateway_log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the local gateway did not listen"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn wait_ready(&mut self, port: u16, routes: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(std::process::Child::try_wait) {
                panic!(
                    "cargo lambda watch exited ({status}); log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cargo lambda watch did not listen"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The first request to a function builds (if needed) and starts it.
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .expect("http client");
        for route in routes {
            // Straight to watch: a first call that builds the function may outlast the
            // gateway's 30 s.
            let url = format!("{}/api/v1/users/{route}", self.watch_base);
            let method = match *route {
                "current-user" => reqwest::Method::GET,
                "update-account" | "avatar" | "cover-image" => reqwest::Method::PATCH,
                _ => reqwest::Method::POST,
            };
            let answered = http.request(method, &url).send().await;
            let json = answered
                .as_ref()
                .ok()
                .and_then(|r| r.headers().get("content-type"))
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            assert!(
                json,
                "{route} did not start: {answered:?}; log:\n{}",
                self.log_text()
            );
        }
    }

    pub fn url(&self, route: &str) -> String {
        format!("{}/api/v1/users/{route}", self.base)
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The `fields` of every per-request log line the functions wrote (route, status,
    /// latency_ms, request_id, ...), in order.
    pub fn request_log(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .filter_map(|v| v.get("fields").cloned())
            .filter(|f| f.get("status").is_some() && f.get("latency_ms").is_some())
            .collect()
    }

    /// How many times a function process completed a cold start under this watch.
    pub fn cold_starts(&self) -> usize {
        self.log_text().matches("cold start complete").count()
    }

    /// An [`Api`] on this instance: its URL, database, cloud and staging directory.
    pub async fn api(&self) -> Api {
        let client = mongodb::Client::with_uri_str(&self.vars["MONGODB_URI"])
            .await
            .expect("mongodb client");
        Api {
            base: self.base.clone(),
            http: reqwest::Client::builder().build().expect("http client"),
            db: client.database(&self.vars["MONGODB_DB"]),
            cloud: self.vars["CLOUDINARY_CLOUD_NAME"].clone(),
            standin: required_env("TEST_CLOUDINARY_API_BASE"),
            staging: self.vars["UPLOAD_TMP_DIR"].clone().into(),
        }
    }

    /// Stops the gateway, then the whole process group of watch (cargo lambda and the functions
    /// it runs), by PID.
    pub fn stop(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            let _ = gateway.kill();
            let _ = gateway.wait();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        // cargo lambda starts each function in a process group of its own: note their PIDs
        // first, so they can be stopped by PID even if cargo lambda does not stop them itself.
        let functions = descendants(child.id());
        let signal = |sig: &str, target: &str| {
            let _ = std::process::Command::new("kill")
                .args([sig, "--", target])
                .stderr(std::process::Stdio::null())
                .status();
        };
        signal("-TERM", &format!("-{}", child.id()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        signal("-KILL", &format!("-{}", child.id()));
        let _ = child.wait();
        for pid in functions {
            // Only if it is still the process we noted (same PID, same parent chain gone).
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                signal("-KILL", &pid.to_string());
            }
        }
    }
}

/// The PIDs of every process descended from `root`, from `/proc/*/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    // The command name (field 2) may hold spaces; the parent follows its ')'.
                    let ppid = stat
                        .rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()?;
                    Some((pid, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
            let _ = std::fs::remove_file(&self.gateway_log);
        }
        // The staging directory made by `default_vars`, only when empty: a leftover stays visible.
        if let Some(dir) = self.vars.get("UPLOAD_TMP_DIR").map(std::path::Path::new)
            && dir.starts_with(std::env::temp_dir())
            && dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("videotube-test-staging-"))
        {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Sends a request and returns status, headers, JSON body and how long the answer took,
/// checking the error envelope's schema for every 4xx and 5xx.
pub async fn send_timed(
    req: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, Value, std::time::Duration) {
    let started = std::time::Instant::now();
    let resp = req.send().await.expect("the local API answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let elapsed = started.elapsed();
    let body = testkit::envelope::of_http(status, &headers, &text);
    (status, headers, body, elapsed)
}

/// The documented error envelope: `statusCode` equal to the HTTP status, `success: false`,
/// `data: null`, a string `message`, `errors` as `[{field, message}]` of strings, a `requestId`.
pub fn assert_error_envelope(status: u16, body: &Value) {
    assert!(status >= 400, "an error status: {status}");
    testkit::envelope::assert_envelope_shape(status, Some("application/json"), &body.to_string());
}
