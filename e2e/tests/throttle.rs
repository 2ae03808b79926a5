//! Password guessing over real HTTP, through the local gateway and `cargo lambda watch`: a
//! scripted guessing run is refused with 429, `Retry-After` and the envelope, runs no hash
//! while refused (the functions' own per-request log says so), and the right password works
//! again after the wait; another loopback address is another source address, and the owner's
//! browser behind the guesser's own address gets in at once with its device cookie.
use std::{net::IpAddr, time::Duration};

use e2e::{Api, Watch};
use serde_json::{Value, json};

fn client_from(ip: &str) -> reqwest::Client {
    e2e::client_from(ip.parse::<IpAddr>().expect("loopback address"))
}

/// One login as `guessed`; returns the status, `Retry-After` and the (checked) envelope.
async fn login(api: &Api, client: &reqwest::Client, password: &str) -> (u16, Option<u64>, Value) {
    login_on(api, client, None, password).await.0
}

/// [`login`] presenting `device` as the `loginDevice` cookie; also returns the `loginDevice`
/// cookie the answer sets.
async fn login_on(
    api: &Api,
    client: &reqwest::Client,
    device: Option<&str>,
    password: &str,
) -> ((u16, Option<u64>, Value), Option<String>) {
    let mut req = client
        .post(api.url("login"))
        .json(&json!({"username": "guessed", "password": password}));
    if let Some(device) = device {
        req = req.header("cookie", format!("loginDevice={device}"));
    }
    let resp = req.send().await.expect("the local API answers");
    let set: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let device = e2e::cookie(&set, "loginDevice").map(str::to_owned);
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (retry, ct) = (header("retry-after"), header("content-type"));
    let text = resp.text().await.expect("body");
    let body = testkit::envelope::assert_envelope_shape(status, ct.as_deref(), &text);
    ((status, retry.and_then(|r| r.parse().ok()), body), device)
}

#[tokio::test]
async fn a_guessing_run_is_refused_with_429_and_the_right_password_works_after_the_wait() {
    let mut vars = Watch::default_vars();
    vars.insert("THROTTLE_FREE_FAILURES".into(), "3".into());
    vars.insert("THROTTLE_DELAY".into(), "2s".into());
    vars.insert("THROTTLE_MAX_DELAY".into(), "8s".into());
    let watch = Watch::start(vars, &["login"]).await;
    let api = watch.api().await;
    testkit::seed_user(&api.db, "guessed", "guessed@example.com", testkit::PASSWORD).await;
    let guesser = client_from("127.0.0.1");
    // The owner's browser, behind the same address, signed in earlier and kept its cookie.
    let ((status, _, body), device) = login_on(&api, &guesser, None, testkit::PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let device = device.expect("a correct password sets loginDevice");

    let mut statuses = Vec::new();
    for guess in ["123456", "password", "qwerty"] {
        statuses.push(login(&api, &guesser, guess).await.0);
    }
    assert_eq!(statuses, [401, 401, 401]);
    let (status, retry, body) = login(&api, &guesser, "letmein").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry, Some(2), "the first wait");
    assert_eq!(
        body["message"],
        "Too many failed attempts; please try again later"
    );
    let (status, _, _) = login(&api, &guesser, testkit::PASSWORD).await;
    assert_eq!(status, 429, "even the right password waits");

    // The owner's browser at the guesser's address: its device has a budget of its own.
    let ((status, _, body), renewed) =
        login_on(&api, &guesser, Some(&device), testkit::PASSWORD).await;
    assert_eq!(
        status, 200,
        "the device cookie made it through the gateway: {body}"
    );
    assert!(renewed.is_some(), "and each sign-in renews it");

    // Another address is another budget: the owner elsewhere signs in at once.
    let owner = client_from("127.0.0.2");
    let (status, _, body) = login(&api, &owner, testkit::PASSWORD).await;
    assert_eq!(
        status, 200,
        "127.0.0.2 is a different source address through the local gateway: {body}"
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, _, body) = login(&api, &guesser, testkit::PASSWORD).await;
    assert_eq!(status, 200, "after the wait: {body}");

    // What the functions logged: no password hash for any refused request.
    let log = watch.request_log();
    let (refused, checked): (Vec<&Value>, Vec<&Value>) = log
        .iter()
        .filter(|l| l["route"].as_str().is_some_and(|r| r.contains("login")))
        .partition(|l| l["status"] == 429);
    assert_eq!(refused.len(), 2, "two refused calls: {log:?}");
    for l in &refused {
        assert_eq!(l["password_ms"].as_f64(), Some(0.0), "no hash: {l}");
    }
    assert!(
        checked
            .iter()
            .filter(|l| l["status"] == 401)
            .all(|l| l["password_ms"].as_f64().is_some_and(|ms| ms > 0.0)),
        "every 401 checked a password: {checked:?}"
    );
}
