//! The gateway binary over real loopback connections, in front of a stub Invoke API run here:
//! the stub records every event it is given and answers with a canned payload 2.0 response
//! chosen by the function name.
use std::{
    io::BufRead as _,
    net::{IpAddr, SocketAddr},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::post,
};
use base64::Engine as _;
use serde_json::{Value, json};

const ROUTES: &str = r#"
[workspace.metadata.lambda.watch.router]
"/echo" = [{ method = "POST", function = "echo" }, { method = "GET", function = "echo" }]
"/mirror" = [{ method = "POST", function = "mirror" }]
"/cookies" = [{ method = "GET", function = "cookies" }]
"/fail" = [{ method = "POST", function = "fail" }]
"/slow" = [{ method = "POST", function = "slow" }]
"/garbage" = [{ method = "POST", function = "garbage" }]
"/inferred" = [{ method = "GET", function = "inferred" }]
"#;

/// `(function, event)` for every invocation the stub received.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn invoke(
    State(seen): State<Seen>,
    Path(function): Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((function.clone(), event.clone()));
    let ok = |v: Value| (StatusCode::OK, v.to_string()).into_response();
    match function.as_str() {
        // The request body back, as it came, with its content type.
        "mirror" => ok(json!({
            "statusCode": 200,
            "headers": {"content-type": event["headers"]["content-type"]},
            "body": event["body"],
            "isBase64Encoded": event["isBase64Encoded"],
        })),
        "cookies" => ok(json!({
            "statusCode": 200,
            "headers": {"content-type": "application/json", "x-fn": "cookies"},
            "cookies": ["accessToken=a; Path=/; HttpOnly", "refreshToken=r; Path=/; Max-Age=0"],
            "body": "{}",
            "isBase64Encoded": false,
        })),
        // What cargo lambda watch 1.9.2 answers for a function error or a panic.
        "fail" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"errorType":"&alloc::boxed::Box<dyn core::error::Error>","errorMessage":"boom"}"#,
        )
            .into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(4)).await;
            ok(json!({"statusCode": 200, "body": "late"}))
        }
        "garbage" => (StatusCode::OK, "this is not JSON").into_response(),
        "inferred" => ok(json!({"hello": "world"})),
        _ => ok(json!({
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": "{\"ok\":true}",
        })),
    }
}

/// A stub Invoke API on a free loopback port.
async fn stub() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("stub port");
    let addr = listener.local_addr().expect("stub address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// The gateway binary, stopped (by its PID) when dropped.
struct Gateway {
    child: Child,
    v4: SocketAddr,
    v6: Option<SocketAddr>,
    seen: Seen,
    dir: tempfile::TempDir,
}

impl Gateway {
    async fn start() -> Self {
        Self::start_with(None, "1s").await
    }

    /// `routes`: a Cargo.toml to read the routes from (default: [`ROUTES`]).
    async fn start_with(routes: Option<std::path::PathBuf>, timeout: &str) -> Self {
        let (runtime, seen) = stub().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let routes = routes.unwrap_or_else(|| {
            let file = dir.path().join("Cargo.toml");
            std::fs::write(&file, ROUTES).expect("routes file");
            file
        });
        let v6 = ipv6_loopback();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_local-gateway"));
        cmd.args(["--listen", "127.0.0.1:0"]);
        if v6 {
            cmd.args(["--listen", "[::1]:0"]);
        }
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log");
        let mut child = cmd
            .args(["--runtime", &runtime, "--integration-timeout", timeout])
            .arg("--routes")
            .arg(&routes)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start local-gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut addrs = Vec::new();
        for _ in 0..(1 + usize::from(v6)) {
            let line = lines
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("the gateway did not start: {}", log_of(&dir)));
            let addr = line
                .strip_prefix("listening http://")
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            addrs.push(addr);
        }
        Self {
            child,
            v4: addrs[0],
            v6: addrs.get(1).copied(),
            seen,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.v4)
    }

    /// The events the stub received, in order.
    fn events(&self) -> Vec<(String, Value)> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The one event the stub received.
    fn only_event(&self) -> Value {
        let events = self.events();
        assert_eq!(events.len(), 1, "one invocation: {events:?}");
        events[0].1.clone()
    }

    fn log(&self) -> String {
        log_of(&self.dir)
    }
}

fn log_of(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default()
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client whose connections come from `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().expect("an address");
    reqwest::Client::builder()
        .local_address(ip)
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_is_the_loopback_address_the_client_connected_from() {
    let gw = Gateway::start().await;
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.1"] {
        let resp = client_from(ip)
            .post(gw.url("/echo"))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200, "{}", gw.log());
    }
    let sources: Vec<Value> = gw
        .events()
        .iter()
        .map(|(_, e)| e["requestContext"]["http"]["sourceIp"].clone())
        .collect();
    assert_eq!(
        sources,
        [json!("127.0.0.2"), json!("127.0.0.3"), json!("127.0.0.1")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_of_an_ipv6_loopback_client_is_1() {
    let gw = Gateway::start().await;
    let Some(v6) = gw.v6 else {
        println!("skipped: ::1 cannot be bound on this machine (no IPv6 loopback)");
        return;
    };
    let resp = client_from("::1")
        .post(format!("http://{v6}/echo"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200, "{}", gw.log());
    let e = gw.only_event();
    assert_eq!(e["requestContext"]["http"]["sourceIp"], "::1");
    assert_eq!(e["headers"]["x-forwarded-for"], "::1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_do_not_change_source_ip() {
    let gw = Gateway::start().await;
    let resp = client_from("127.0.0.4")
        .post(gw.url("/echo"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.10")
        .header("forwarded", "for=203.0.113.11")
        .header("true-client-ip", "203.0.113.12")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let e = gw.only_event();
    assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.4");
    // As API Gateway does: the client's value, then the address it really came from.
    assert_eq!(e["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.4");
    assert_eq!(e["headers"]["x-real-ip"], "203.0.113.10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_headers_become_the_cookies_array_and_leave_headers() {
    let gw = Gateway::start().await;
    reqwest::Client::new()
        .get(gw.url("/echo"))
        .header("cookie", "accessToken=a.b.c; theme=dark")
        .header("cookie", "refreshToken=r")
        .send()
        .await
        .expect("answer");
    let e = gw.only_event();
    assert_eq!(
        e["cookies"],
        json!(["accessToken=a.b.c", "theme=dark", "refreshToken=r"])
    );
    assert!(e["headers"].get("cookie").is_none(), "{}", e["headers"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_is_payload_2_0() {
    let gw = Gateway::start().await;
    let before = time_ms();
    reqwest::Client::new()
        .get(gw.url("/echo?a=1&a=2&q=%20x&empty="))
        .header("X-Mixed-Case", "v")
        .header("x-repeated", "one")
        .header("x-repeated", "two")
        .header("user-agent", "gateway-test/1")
        .send()
        .await
        .expect("answer");
    let e = gw.only_event();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /echo");
    assert_eq!(e["rawPath"], "/echo");
    assert_eq!(e["rawQueryString"], "a=1&a=2&q=%20x&empty=");
    assert_eq!(
        e["queryStringParameters"],
        json!({"a": "1,2", "q": " x", "empty": ""})
    );
    assert_eq!(e["headers"]["x-mixed-case"], "v");
    assert_eq!(e["headers"]["x-repeated"], "one,two");
    assert!(e.get("pathParameters").is_none());
    assert!(e.get("body").is_none());
    assert_eq!(e["isBase64Encoded"], false);
    let ctx = &e["requestContext"];
    assert_eq!(ctx["http"]["method"], "GET");
    assert_eq!(ctx["http"]["path"], "/echo");
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["http"]["userAgent"], "gateway-test/1");
    assert_eq!(ctx["routeKey"], "GET /echo");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["domainName"], "127.0.0.1");
    for field in ["accountId", "apiId", "domainPrefix", "requestId", "time"] {
        assert!(
            ctx[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {ctx}"
        );
    }
    let epoch = ctx["timeEpoch"].as_i64().expect("timeEpoch");
    assert!(
        (before - 1000..=time_ms() + 1000).contains(&epoch),
        "timeEpoch {epoch} in milliseconds"
    );
}

fn time_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_fresh_and_returned() {
    let gw = Gateway::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = reqwest::Client::new()
            .post(gw.url("/echo"))
            .send()
            .await
            .expect("answer");
        let header = resp
            .headers()
            .get("apigw-requestid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .expect("apigw-requestid");
        ids.push(header);
    }
    let events: Vec<String> = gw
        .events()
        .iter()
        .map(|(_, e)| {
            e["requestContext"]["requestId"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, events);
    ids.dedup();
    assert_eq!(ids.len(), 3, "fresh ids");
}

/// A multipart body holding every byte value, as a browser would send an image.
fn multipart_with_all_bytes() -> (String, Vec<u8>) {
    let boundary = "----gatewaytest0123456789";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nada\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    for _ in 0..64 {
        body.extend(0u8..=255);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_body_is_base64_and_its_bytes_survive_both_ways() {
    let gw = Gateway::start().await;
    let (content_type, body) = multipart_with_all_bytes();
    let resp = reqwest::Client::new()
        .post(gw.url("/mirror"))
        .header("content-type", &content_type)
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200, "{}", gw.log());
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(content_type.as_str())
    );
    let back = resp.bytes().await.expect("body");
    let e = gw.only_event();
    assert_eq!(e["isBase64Encoded"], true);
    let sent = base64::engine::general_purpose::STANDARD
        .decode(e["body"].as_str().expect("a body"))
        .expect("base64");
    assert_eq!(sent, body, "the event carries the exact bytes");
    assert_eq!(
        back.as_ref(),
        &body[..],
        "the answer carries the exact bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_bodies_are_text_and_others_base64() {
    let gw = Gateway::start().await;
    let client = reqwest::Client::new();
    let cases: [(Option<&str>, &[u8], bool); 6] = [
        (Some("application/json"), br#"{"username":"ada"}"#, false),
        (
            Some("application/x-www-form-urlencoded"),
            b"username=ada&password=x",
            false,
        ),
        (
            Some("text/plain; charset=utf-8"),
            "caf\u{e9}".as_bytes(),
            false,
        ),
        (Some("application/octet-stream"), b"\x00\x01", true),
        (Some("application/json"), b"{\"a\":\"\xff\"}", true),
        (None, br#"{"username":"ada"}"#, true),
    ];
    for (ct, body, _) in &cases {
        let mut req = client.post(gw.url("/echo")).body(body.to_vec());
        if let Some(ct) = ct {
            req = req.header("content-type", *ct);
        }
        assert_eq!(req.send().await.expect("answer").status(), 200);
    }
    let events = gw.events();
    assert_eq!(events.len(), cases.len());
    for ((ct, body, base64), (_, e)) in cases.iter().zip(&events) {
        assert_eq!(e["isBase64Encoded"], *base64, "{ct:?}");
        let carried = if *base64 {
            base64::engine::general_purpose::STANDARD
                .decode(e["body"].as_str().expect("body"))
                .expect("base64")
        } else {
            e["body"].as_str().expect("body").as_bytes().to_vec()
        };
        assert_eq!(&carried, body, "{ct:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_cookies_become_one_set_cookie_each() {
    let gw = Gateway::start().await;
    let resp = reqwest::Client::new()
        .get(gw.url("/cookies"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        cookies,
        [
            "accessToken=a; Path=/; HttpOnly",
            "refreshToken=r; Path=/; Max-Age=0"
        ]
    );
    assert_eq!(resp.headers()["x-fn"], "cookies");
    assert_eq!(resp.headers()["content-type"], "application/json");
}

async fn status_and_json(resp: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, ct, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_route_is_404_not_found() {
    let gw = Gateway::start().await;
    let client = reqwest::Client::new();
    for req in [
        client.post(gw.url("/nowhere")),
        client.get(gw.url("/")),
        client.delete(gw.url("/echo")),
        client.get(gw.url("/mirror")),
        client.post(gw.url("/echo/")),
        client.post(gw.url("/ECHO")),
        client.head(gw.url("/echo")),
    ] {
        let resp = req.send().await.expect("answer");
        let (status, ct, body) = status_and_json(resp).await;
        assert_eq!(status, 404);
        if body != Value::String(String::new()) {
            // (a HEAD answer has no body)
            assert_eq!(ct.as_deref(), Some("application/json"));
            assert_eq!(body, json!({"message": "Not Found"}));
        }
    }
    assert!(gw.events().is_empty(), "no function was invoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_or_malformed_answer_is_500() {
    let gw = Gateway::start().await;
    let client = reqwest::Client::new();
    for path in ["/fail", "/garbage"] {
        let resp = client.post(gw.url(path)).send().await.expect("answer");
        let (status, ct, body) = status_and_json(resp).await;
        assert_eq!(status, 500, "{path}");
        assert_eq!(ct.as_deref(), Some("application/json"));
        assert_eq!(body, json!({"message": "Internal Server Error"}), "{path}");
    }
    let log = gw.log();
    assert!(log.contains("function error"), "{log}");
    assert!(log.contains("malformed"), "{log}");
    // The inferred format: valid JSON without statusCode is a 200 JSON body.
    let resp = client
        .get(gw.url("/inferred"))
        .send()
        .await
        .expect("answer");
    let (status, ct, body) = status_and_json(resp).await;
    assert_eq!((status, ct.as_deref()), (200, Some("application/json")));
    assert_eq!(body, json!({"hello": "world"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_timeout_is_503() {
    let gw = Gateway::start().await;
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(gw.url("/slow"))
        .send()
        .await
        .expect("answer");
    let elapsed = started.elapsed();
    let (status, _, body) = status_and_json(resp).await;
    assert_eq!(status, 503);
    assert_eq!(body, json!({"message": "Service Unavailable"}));
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "answered after the 1 s integration timeout, not the function's 4 s: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_10_mb_is_413_and_10_mb_is_not() {
    let gw = Gateway::start().await;
    let client = reqwest::Client::new();
    let limit = local_gateway::MAX_BODY_BYTES;
    let resp = client
        .post(gw.url("/echo"))
        .header("content-type", "application/octet-stream")
        .body(vec![b'x'; limit + 1])
        .send()
        .await
        .expect("an answer, not a reset");
    let (status, _, body) = status_and_json(resp).await;
    assert_eq!(status, 413);
    assert_eq!(body, json!({"message": "Request Entity Too Large"}));
    assert!(gw.events().is_empty());

    let resp = client
        .post(gw.url("/echo"))
        .header("content-type", "application/octet-stream")
        .body(vec![b'x'; limit])
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200, "{}", gw.log());
    let e = gw.only_event();
    let carried = base64::engine::general_purpose::STANDARD
        .decode(e["body"].as_str().expect("body"))
        .expect("base64");
    assert_eq!(carried.len(), limit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_do_not_bring_it_down() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gw = Gateway::start().await;
    let oversized_header = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1_000_000)
    );
    let attempts: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
        b"GET /echo HTTP/9.9\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: \xff\xfe\r\nCookie: \xff=\xfe\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n\xff\xfe".to_vec(),
        b"POST /echo?%%%=%zz&&=&a HTTP/1.1\r\nHost: [::1\r\nContent-Length: 0\r\n\r\n".to_vec(),
        oversized_header.into_bytes(),
    ];
    for bytes in attempts {
        if let Ok(mut conn) = tokio::net::TcpStream::connect(gw.v4).await {
            let _ = conn.write_all(&bytes).await;
            let _ = conn.shutdown().await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut sink)).await;
        }
    }
    let resp = reqwest::Client::new()
        .post(gw.url("/echo"))
        .send()
        .await
        .expect("still answering");
    assert_eq!(resp.status(), 200, "{}", gw.log());
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
    for (_, e) in gw.events() {
        assert!(
            e["requestContext"]["http"]["sourceIp"] == "127.0.0.1",
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_router_table_routes_the_nine_functions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let gw = Gateway::start_with(Some(root), "5s").await;
    let client = reqwest::Client::new();
    let routes = [
        ("POST", "register", "register"),
        ("POST", "login", "login"),
        ("POST", "refresh-token", "refresh"),
        ("POST", "logout", "logout"),
        ("GET", "current-user", "current-user"),
        ("POST", "change-password", "change-password"),
        ("PATCH", "update-account", "update-account"),
        ("PATCH", "avatar", "avatar"),
        ("PATCH", "cover-image", "cover-image"),
    ];
    for (method, route, _) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = gw.url(&format!("/api/v1/users/{route}"));
        let resp = client.request(method, url).send().await.expect("answer");
        assert_eq!(resp.status(), 200, "{route}: {}", gw.log());
    }
    let invoked: Vec<(String, String)> = gw
        .events()
        .into_iter()
        .map(|(f, e)| (f, e["routeKey"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected: Vec<(String, String)> = routes
        .iter()
        .map(|(m, r, f)| (f.to_string(), format!("{m} /api/v1/users/{r}")))
        .collect();
    assert_eq!(invoked, expected);
    // A known path with another method is an unmatched route.
    let resp = client
        .get(gw.url("/api/v1/users/login"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 404);
    assert_eq!(gw.events().len(), routes.len());
}
