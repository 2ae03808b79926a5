//! Login, refresh, refresh again and reuse detection over real HTTP, through `cargo lambda
//! watch` serving the compiled functions, as a browser or mobile client would use them.
use e2e::{Api, cookie};
use serde_json::json;
use testkit::{PASSWORD, random_suffix, seed_user};

async fn seeded(api: &Api) -> String {
    let name = format!("e2e_{}", random_suffix());
    seed_user(&api.db, &name, &format!("{name}@example.com"), PASSWORD).await;
    name
}

#[tokio::test]
async fn a_client_logs_in_refreshes_twice_and_a_replayed_token_is_caught() {
    let api = Api::connect().await;
    let name = seeded(&api).await;

    let (status, cookies, body) = api
        .send(
            api.http
                .post(api.url("login"))
                .json(&json!({"username": name.to_uppercase(), "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["user"]["username"], name.as_str());
    let first = cookie(&cookies, "refreshToken")
        .expect("refresh cookie")
        .to_owned();
    assert_eq!(body["data"]["refreshToken"], first.as_str());
    assert!(cookies.iter().any(|c| c.starts_with("accessToken=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Lax")));
    assert!(cookies.iter().any(|c| c.starts_with("refreshToken=")
        && c.contains("Path=/api/v1/users")
        && c.contains("SameSite=Strict")));

    // Refresh with the cookie, as a browser would.
    let (status, cookies, body) = api
        .send(
            api.http
                .post(api.url("refresh-token"))
                .header("cookie", format!("refreshToken={first}")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = cookie(&cookies, "refreshToken")
        .expect("rotated cookie")
        .to_owned();
    assert_ne!(second, first);

    // Refresh again with the body, as a mobile client would.
    let (status, _, body) = api
        .send(
            api.http
                .post(api.url("refresh-token"))
                .json(&json!({"refreshToken": second})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let third = body["data"]["refreshToken"]
        .as_str()
        .expect("third token")
        .to_owned();

    // `make test` runs the functions with REFRESH_REUSE_GRACE=2s: after it, replaying the first
    // token is theft, and the session dies with it.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _, body) = api
        .send(
            api.http
                .post(api.url("refresh-token"))
                .header("cookie", format!("refreshToken={first}")),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = api
        .send(
            api.http
                .post(api.url("refresh-token"))
                .json(&json!({"refreshToken": third})),
        )
        .await;
    assert_eq!(
        status, 401,
        "the current token of a revoked session stops working: {body}"
    );
}

#[tokio::test]
async fn bad_requests_over_http_get_json_envelopes_not_html() {
    let api = Api::connect().await;
    let name = seeded(&api).await;
    let cases = [
        (
            api.http
                .post(api.url("login"))
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            api.http
                .post(api.url("login"))
                .header("content-type", "text/html")
                .body("<b>x</b>"),
            415,
        ),
        (
            api.http
                .post(api.url("login"))
                .json(&json!({"username": {"$gt": ""}, "password": PASSWORD})),
            400,
        ),
        (
            api.http
                .post(api.url("login"))
                .json(&json!({"username": name, "password": "wrong password"})),
            401,
        ),
        (api.http.post(api.url("refresh-token")), 401),
        (
            api.http
                .post(api.url("refresh-token"))
                .header("cookie", "refreshToken=eyJhbGciOiJub25lIn0.e30."),
            401,
        ),
    ];
    for (req, expected) in cases {
        let (status, cookies, body) = api.send(req).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["success"], false);
        assert!(body["requestId"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(cookies.is_empty());
    }
}

/// A refresh whose answer was lost (here: the instance that rotated is gone) is retried on a
/// freshly started process, which rebuilds the very pair the lost answer carried.
#[tokio::test]
async fn a_lost_refresh_answer_retried_on_a_freshly_started_process_gets_the_same_pair() {
    let mut vars = e2e::Watch::default_vars();
    vars.insert("REFRESH_REUSE_GRACE".into(), "60s".into());
    let mut first = e2e::Watch::start(vars.clone(), &["login", "refresh-token"]).await;
    let api = first.api().await;
    let name = seeded(&api).await;
    let (status, _, body) = api
        .send(
            api.http
                .post(first.url("login"))
                .json(&json!({"username": name, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let old = body["data"]["refreshToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let refresh =
        |url: String, token: &str| api.http.post(url).json(&json!({"refreshToken": token}));
    let (status, _, lost) = api.send(refresh(first.url("refresh-token"), &old)).await;
    assert_eq!(status, 200, "{lost}");
    // Each request's log line says where its time went.
    let served = first.request_log();
    let line = |route: &str| {
        served
            .iter()
            .find(|f| f["route"].as_str().is_some_and(|r| r.ends_with(route)) && f["status"] == 200)
            .cloned()
            .unwrap_or_else(|| panic!("a served {route} in {served:?}"))
    };
    let (login_line, refresh_line) = (line("/login"), line("/refresh-token"));
    let ms = |f: &serde_json::Value, k: &str| f[k].as_f64().unwrap_or(-1.0);
    assert!(ms(&login_line, "password_ms") > 1.0, "{login_line}");
    assert!(ms(&login_line, "db_ms") > 0.0, "{login_line}");
    assert!(
        ms(&login_line, "latency_ms") >= ms(&login_line, "password_ms"),
        "{login_line}"
    );
    assert_eq!(ms(&refresh_line, "password_ms"), 0.0, "{refresh_line}");
    assert!(ms(&refresh_line, "db_ms") > 0.0, "{refresh_line}");
    first.stop();

    let second = e2e::Watch::start(vars, &["refresh-token"]).await;
    let (status, _, retried) = api.send(refresh(second.url("refresh-token"), &old)).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(
        retried["data"], lost["data"],
        "the pair the lost answer carried"
    );
    let next = retried["data"]["refreshToken"].as_str().expect("token");
    let (status, _, body) = api.send(refresh(second.url("refresh-token"), next)).await;
    assert_eq!(status, 200, "and it rotates on: {body}");
}
