//! Every file in `events/` is replayed through the handler its `routeKey` names, exactly as the
//! Lambda runtime would hand it over, and must answer the status the table below expects, in an
//! envelope that matches `openapi/openapi.yaml`.
//!
//! A file without a row here fails the test (so a new event cannot go unexercised), and so does
//! a row without its file (so the table cannot quietly cover less than it claims).
use contract::Spec;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use testkit::{PASSWORD, TestApp, envelope, post_json};

/// What a file needs before it is replayed.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// Nothing but the demo user (`videotube_demo`, `demo@example.com`, [`PASSWORD`]) that the
    /// login events log in as.
    DemoUser,
    /// The file carries the placeholder `REFRESH_TOKEN`; it is replaced by the refresh token of
    /// a real login of the demo user, as a developer would do before `cargo lambda invoke`.
    RealRefreshToken,
    /// The file carries the placeholder `ACCESS_TOKEN` (in its `cookies` or `Authorization`);
    /// it is replaced by the access token of a real login of the demo user.
    RealAccessToken,
}

use Setup::*;

/// file -> (expected status, setup).
const EXPECTED: &[(&str, u16, Setup)] = &[
    ("login.json", 200, DemoUser),
    ("login-form.json", 200, DemoUser),
    ("login-wrong-password.json", 401, DemoUser),
    ("login-missing-password.json", 400, DemoUser),
    ("login-operator-injection.json", 400, DemoUser),
    ("login-bad-base64.json", 400, DemoUser),
    ("login-text-plain.json", 415, DemoUser),
    ("refresh.json", 200, RealRefreshToken),
    ("refresh-body.json", 200, RealRefreshToken),
    ("refresh-no-token.json", 401, DemoUser),
    ("refresh-malformed-token.json", 401, DemoUser),
    ("refresh-alg-none.json", 401, DemoUser),
    ("refresh-operator-injection.json", 400, DemoUser),
    ("register.json", 201, DemoUser),
    ("register-not-multipart.json", 415, DemoUser),
    ("logout.json", 200, RealAccessToken),
    ("logout-all-devices.json", 200, RealAccessToken),
    ("logout-bad-body.json", 400, RealAccessToken),
    ("logout-no-token.json", 401, DemoUser),
    ("current-user.json", 200, RealAccessToken),
    ("current-user-no-token.json", 401, DemoUser),
    ("current-user-forged-token.json", 401, DemoUser),
    ("change-password.json", 200, RealAccessToken),
    ("change-password-form.json", 200, RealAccessToken),
    ("change-password-missing-fields.json", 400, RealAccessToken),
    ("change-password-no-token.json", 401, DemoUser),
    ("update-account.json", 200, RealAccessToken),
    ("update-account-form.json", 200, RealAccessToken),
    (
        "update-account-operator-injection.json",
        400,
        RealAccessToken,
    ),
    ("update-account-no-token.json", 401, DemoUser),
    ("avatar.json", 200, RealAccessToken),
    ("avatar-not-multipart.json", 415, RealAccessToken),
    ("cover-image.json", 200, RealAccessToken),
    ("cover-image-no-token.json", 401, DemoUser),
];

const REFRESH_PLACEHOLDER: &str = "REFRESH_TOKEN";
const ACCESS_PLACEHOLDER: &str = "ACCESS_TOKEN";

async fn dispatch(t: &TestApp, route_key: &str, req: Request) -> Response<Body> {
    match route_key {
        register::ROUTE => register::handle(t.app, req).await,
        login::ROUTE => login::handle(t.app, req).await,
        refresh::ROUTE => refresh::handle(t.app, req).await,
        logout::ROUTE => logout::handle(t.app, req).await,
        current_user::ROUTE => current_user::handle(t.app, req).await,
        change_password::ROUTE => change_password::handle(t.app, req).await,
        update_account::ROUTE => update_account::handle(t.app, req).await,
        avatar::ROUTE => avatar::handle(t.app, req).await,
        cover_image::ROUTE => cover_image::handle(t.app, req).await,
        other => panic!("no handler for routeKey {other:?}"),
    }
}

/// `"refreshToken"` or `"accessToken"` from a real login of the demo user.
async fn demo_token(t: &TestApp, kind: &str) -> String {
    let body = json!({"username": "videotube_demo", "password": PASSWORD});
    let resp = login::handle(t.app, post_json("/api/v1/users/login", &body)).await;
    envelope(&resp, 200)["data"][kind]
        .as_str()
        .expect("token")
        .to_owned()
}

#[test]
fn every_event_file_has_a_row_and_every_row_a_file() {
    let files = contract::events();
    let unlisted: Vec<&String> = files
        .iter()
        .filter(|f| !EXPECTED.iter().any(|(name, ..)| name == f))
        .collect();
    assert!(
        unlisted.is_empty(),
        "events without an expected status in dev/contract/tests/events.rs: {unlisted:?}"
    );
    let missing: Vec<&str> = EXPECTED
        .iter()
        .map(|(name, ..)| *name)
        .filter(|name| !files.iter().any(|f| f == name))
        .collect();
    assert!(
        missing.is_empty(),
        "rows without a file in events/: {missing:?}"
    );
}

#[test]
fn every_event_file_is_an_http_api_v2_event_for_a_documented_route() {
    let spec = Spec::load();
    for file in contract::events() {
        let v: Value = serde_json::from_str(&contract::event_text(&file))
            .unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
        assert_eq!(v["version"], "2.0", "{file}: payload format 2.0");
        let route_key = v["routeKey"].as_str().expect("routeKey");
        assert_eq!(
            v["requestContext"]["routeKey"], route_key,
            "{file}: routeKey twice, the same"
        );
        let (method, path) = route_key.split_once(' ').expect("METHOD /path");
        assert_eq!(v["rawPath"], path, "{file}: rawPath matches the route");
        spec.operation(path, &method.to_ascii_lowercase())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            v.get("headers").and_then(|h| h.get("cookie")).is_none(),
            "{file}: API Gateway v2 sends cookies in the `cookies` array, not a header"
        );
    }
}

#[tokio::test]
async fn every_event_file_replays_with_its_expected_status() {
    let spec = Spec::load();
    let mut failures = Vec::new();
    for file in contract::events() {
        let Some(&(_, status, setup)) = EXPECTED.iter().find(|(name, ..)| *name == file) else {
            failures.push(format!("{file}: no row in EXPECTED"));
            continue;
        };
        // A fresh database per file: register.json creates its user every time.
        let t = TestApp::spawn().await;
        t.seed_user("videotube_demo", "demo@example.com").await;
        let mut text = contract::event_text(&file);
        let placeholder = match setup {
            DemoUser => None,
            RealRefreshToken => Some((REFRESH_PLACEHOLDER, "refreshToken")),
            RealAccessToken => Some((ACCESS_PLACEHOLDER, "accessToken")),
        };
        if let Some((placeholder, kind)) = placeholder {
            assert!(
                text.contains(placeholder),
                "{file}: expected the {placeholder} placeholder"
            );
            text = text.replace(placeholder, &demo_token(&t, kind).await);
        }
        let event: Value = serde_json::from_str(&text).expect("JSON");
        let route_key = event["routeKey"].as_str().expect("routeKey").to_owned();
        let (method, path) = route_key.split_once(' ').expect("METHOD /path");
        let method = method.to_ascii_lowercase();
        let req = shared::http::request_from_event(&text)
            .unwrap_or_else(|e| panic!("{file}: not an API Gateway v2 event: {e}"));
        let resp = dispatch(&t, &route_key, req).await;
        let got = resp.status().as_u16();
        if got != status {
            failures.push(format!(
                "{file}: expected {status}, got {got}: {}",
                contract::body_text(&resp)
            ));
            continue;
        }
        envelope(&resp, status);
        if let Err(problems) = spec.check(path, &method, &resp) {
            failures.push(format!(
                "{file}: the answer does not match openapi/openapi.yaml: {problems:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
