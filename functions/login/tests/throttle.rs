//! The login throttles against the real database: the growing delay of one address at one
//! account, the address and account budgets, unknown accounts, 50 concurrent guesses, and
//! device cookies.
//!
//! Password checks are counted with `shared::password::verifications()`, a process-wide
//! counter, so the tests of this binary take turns (`TURN`) rather than run side by side.
use std::{collections::HashMap, time::Duration};

use lambda_http::{Body, Response};
use login::handle;
use serde_json::{Value, json};
use shared::password::verifications;
use testkit::{PASSWORD, TestApp, envelope, from_address, post_json, set_cookies, with_cookie};

const ROUTE: &str = "/api/v1/users/login";
const WRONG: &str = "not the password at all";

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn app(vars: &[(&str, &str)]) -> TestApp {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TestApp::spawn_with(|v| v.extend(vars)).await
}

/// One login by `username` with `password` from `ip`.
async fn login(t: &TestApp, ip: &str, username: &str, password: &str) -> Response<Body> {
    let body = json!({"username": username, "password": password});
    handle(t.app, from_address(post_json(ROUTE, &body), ip)).await
}

/// One login as [`login`], presenting `device` as the `loginDevice` cookie.
async fn login_on(
    t: &TestApp,
    device: &str,
    ip: &str,
    username: &str,
    password: &str,
) -> Response<Body> {
    let body = json!({"username": username, "password": password});
    let req = with_cookie(post_json(ROUTE, &body), "loginDevice", device);
    handle(t.app, from_address(req, ip)).await
}

/// The value of the `loginDevice` cookie a response sets, if it sets one.
fn device_cookie(resp: &Response<Body>) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.name() == "loginDevice")
        .map(|c| c.value().to_owned())
}

async fn status(t: &TestApp, ip: &str, username: &str, password: &str) -> u16 {
    login(t, ip, username, password).await.status().as_u16()
}

/// A 429 with its envelope; returns `Retry-After` in seconds.
fn throttled(resp: &Response<Body>) -> u64 {
    let v = envelope(resp, 429);
    assert_eq!(
        v["message"], "Too many failed attempts; please try again later",
        "{v}"
    );
    assert_eq!(v["errors"], json!([]));
    resp.headers()
        .get("retry-after")
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in whole seconds")
}

#[tokio::test]
async fn the_delay_grows_after_the_free_failures_and_a_correct_password_resets_it() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "2"),
        ("THROTTLE_DELAY", "1s"),
        ("THROTTLE_MAX_DELAY", "4s"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    let ip = "198.51.100.2";
    for _ in 0..2 {
        assert_eq!(status(&t, ip, "alice", WRONG).await, 401);
    }
    let before = verifications();
    let refused = login(&t, ip, "alice", PASSWORD).await;
    assert_eq!(throttled(&refused), 1, "the first wait is THROTTLE_DELAY");
    assert_eq!(
        verifications(),
        before,
        "a throttled request runs no password hash, not even for the right password"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        status(&t, ip, "alice", WRONG).await,
        401,
        "checked after the wait"
    );
    let refused = login(&t, ip, "alice", WRONG).await;
    assert_eq!(throttled(&refused), 2, "the wait doubles");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let still = login(&t, ip, "alice", PASSWORD).await;
    assert!(
        (1..=2).contains(&throttled(&still)),
        "halfway through the second wait"
    );

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        status(&t, ip, "alice", PASSWORD).await,
        200,
        "after the wait"
    );
    for _ in 0..2 {
        assert_eq!(
            status(&t, ip, "alice", WRONG).await,
            401,
            "the success reset the count: free failures again"
        );
    }
    let refused = login(&t, ip, "alice", WRONG).await;
    assert_eq!(
        throttled(&refused),
        1,
        "and the delay starts from the beginning"
    );
}

#[tokio::test]
async fn another_address_is_unaffected_until_the_account_budget_and_the_owner_never_locked_out() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "3"),
        ("THROTTLE_DELAY", "1m"),
        ("THROTTLE_MAX_DELAY", "1m"),
        ("THROTTLE_ACCOUNT_FAILURES", "5"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    let home = "192.0.2.9";
    assert_eq!(
        status(&t, home, "alice", PASSWORD).await,
        200,
        "the owner signs in at home"
    );

    let (first, second, third) = ("203.0.113.1", "203.0.113.2", "203.0.113.3");
    for _ in 0..3 {
        assert_eq!(status(&t, first, "alice", WRONG).await, 401);
    }
    throttled(&login(&t, first, "alice", WRONG).await);
    assert_eq!(
        status(&t, second, "alice", WRONG).await,
        401,
        "another address is not held to the first one's delay"
    );
    assert_eq!(status(&t, second, "alice", WRONG).await, 401);
    // Five failures at the account now: the account-wide budget.
    let before = verifications();
    throttled(&login(&t, second, "alice", WRONG).await);
    throttled(&login(&t, third, "alice", WRONG).await);
    throttled(&login(&t, third, "alice", PASSWORD).await);
    assert_eq!(verifications(), before, "no hash for any of them");

    assert_eq!(
        status(&t, home, "alice", PASSWORD).await,
        200,
        "the owner's address signed in before: the strangers' failures do not lock it out"
    );
    assert_eq!(
        status(&t, home, "alice", WRONG).await,
        401,
        "a typo at home is still checked"
    );
}

#[tokio::test]
async fn the_address_budget_stops_spraying_one_password_across_fifty_accounts() {
    let _turn = TURN.lock().await;
    let t = app(&[("THROTTLE_ADDRESS_FAILURES", "10")]).await;
    for i in 0..25 {
        t.seed_user(&format!("user{i:02}"), &format!("user{i:02}@example.com"))
            .await;
    }
    let sprayer = "198.51.100.77";
    let before = verifications();
    let mut statuses = Vec::new();
    // Half the names exist, half do not: the budget counts them alike.
    for i in 0..50 {
        let name = if i % 2 == 0 {
            format!("user{:02}", i / 2)
        } else {
            format!("ghost{i:02}")
        };
        statuses.push(status(&t, sprayer, &name, "Summer2026!").await);
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 40], "{statuses:?}");
    assert_eq!(verifications() - before, 10, "40 refusals, no hash");
    assert_eq!(
        status(&t, "198.51.100.78", "user00", WRONG).await,
        401,
        "another address has its own budget"
    );
    assert_eq!(
        t.count(shared::throttle::ATTEMPTS).await,
        11,
        "refusals leave no record; each check does"
    );
}

/// Everything a client sees of one answer but its request id.
fn seen(resp: &Response<Body>) -> (u16, Option<String>, Value) {
    let status = resp.status().as_u16();
    let mut v = envelope(resp, status);
    v.as_object_mut().map(|o| o.remove("requestId"));
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    (status, retry, v)
}

#[tokio::test]
async fn an_unknown_account_is_throttled_exactly_like_a_known_one() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "3"),
        ("THROTTLE_DELAY", "1m"),
        ("THROTTLE_MAX_DELAY", "1m"),
        ("THROTTLE_ACCOUNT_FAILURES", "6"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    // From two addresses each, past the pair delay and into the account budget.
    for ip in ["203.0.113.10", "203.0.113.11", "203.0.113.12"] {
        for _ in 0..4 {
            known.push(seen(&login(&t, ip, "alice", WRONG).await));
            unknown.push(seen(&login(&t, ip, "nobody", WRONG).await));
        }
    }
    let statuses: Vec<u16> = known.iter().map(|s| s.0).collect();
    assert_eq!(
        statuses,
        [401, 401, 401, 429, 401, 401, 401, 429, 429, 429, 429, 429],
        "both budgets were reached"
    );
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!((k.0, &k.2), (u.0, &u.2), "the same status and body");
        // Each Retry-After counts down from its own attempt's time, a few milliseconds apart,
        // so the rounding up to whole seconds may differ by one; more would be a difference.
        let secs = |s: &Option<String>| s.as_deref().map(|v| v.parse::<i64>().expect("seconds"));
        match (secs(&k.1), secs(&u.1)) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1, "Retry-After {a} vs {b}"),
            other => panic!("Retry-After on one only: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_wrong_passwords_get_no_more_checks_than_the_budget() {
    let _turn = TURN.lock().await;
    let free = 5;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "5"),
        ("THROTTLE_DELAY", "1m"),
        ("THROTTLE_MAX_DELAY", "1m"),
    ])
    .await;
    let (mut slack, mut checked) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let name = format!("victim{round}");
        t.seed_user(&name, &format!("{name}@example.com")).await;
        let before = verifications();
        let answers =
            futures::future::join_all((0..50).map(|_| login(&t, "198.51.100.50", &name, WRONG)))
                .await;
        let checks = verifications() - before;
        let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
        let unauthorized = statuses.iter().filter(|&&s| s == 401).count() as u64;
        assert_eq!(
            unauthorized + statuses.iter().filter(|&&s| s == 429).count() as u64,
            50,
            "{statuses:?}"
        );
        assert_eq!(
            checks, unauthorized,
            "each check answered 401, each refusal 429"
        );
        slack.push(checks.saturating_sub(free));
        checked.push(checks);
        assert!(
            checks <= free,
            "round {round}: {checks} checks for a budget of {free}"
        );
    }
    println!(
        "50 concurrent guesses, budget {free}: checks per round {checked:?}, beyond the budget \
         {slack:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_guesses_across_accounts_get_no_more_checks_than_the_address_budget() {
    let _turn = TURN.lock().await;
    let t = app(&[("THROTTLE_ADDRESS_FAILURES", "10")]).await;
    let before = verifications();
    let answers = futures::future::join_all((0..50).map(|i| {
        let t = &t;
        async move { login(t, "198.51.100.60", &format!("spray{i}"), WRONG).await }
    }))
    .await;
    let checks = verifications() - before;
    println!("concurrent checks for an address budget of 10: {checks}");
    assert!(checks <= 10, "{checks} checks");
    assert_eq!(
        answers.iter().filter(|r| r.status() == 429).count() as u64,
        50 - checks
    );
}

#[tokio::test]
async fn with_the_throttle_off_every_guess_is_checked() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_ENABLED", "false"),
        ("THROTTLE_FREE_FAILURES", "1"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    let before = verifications();
    for _ in 0..8 {
        assert_eq!(status(&t, "198.51.100.9", "alice", WRONG).await, 401);
    }
    assert_eq!(verifications() - before, 8);
    assert_eq!(t.count(shared::throttle::ATTEMPTS).await, 0);
}

#[tokio::test]
async fn when_the_records_cannot_be_written_the_password_is_checked_as_without_throttling() {
    let _turn = TURN.lock().await;
    let t = app(&[("THROTTLE_FREE_FAILURES", "1")]).await;
    t.seed_user("alice", "alice@example.com").await;
    assert_eq!(status(&t, "198.51.100.3", "alice", WRONG).await, 401);
    // A unique index on `pair` makes every further attempt's insert fail.
    t.db.collection::<mongodb::bson::Document>(shared::throttle::ATTEMPTS)
        .create_index(
            mongodb::IndexModel::builder()
                .keys(mongodb::bson::doc! {"pair": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .name("break_inserts".to_owned())
                        .build(),
                )
                .build(),
        )
        .await
        .expect("index");
    let before = verifications();
    for _ in 0..3 {
        assert_eq!(status(&t, "198.51.100.3", "alice", WRONG).await, 401);
    }
    assert_eq!(verifications() - before, 3, "checked, untracked");
    assert_eq!(status(&t, "198.51.100.3", "alice", PASSWORD).await, 200);
}

/// The pair's trust document: its time, and how many attempt records are left.
async fn trust_and_records(t: &TestApp) -> (Vec<mongodb::bson::DateTime>, u64) {
    use futures::TryStreamExt as _;
    let trusts: Vec<mongodb::bson::Document> =
        t.db.collection(shared::throttle::TRUSTED)
            .find(mongodb::bson::doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("read");
    let times = trusts
        .iter()
        .map(|d| *d.get_datetime("at").expect("at"))
        .collect();
    (times, t.count(shared::throttle::ATTEMPTS).await)
}

#[tokio::test]
async fn a_returning_sign_in_leaves_the_trust_as_it_was_and_a_reset_rewrites_it() {
    let _turn = TURN.lock().await;
    let t = app(&[("THROTTLE_FREE_FAILURES", "3")]).await;
    t.seed_user("alice", "alice@example.com").await;
    let ip = "198.51.100.4";
    assert_eq!(status(&t, ip, "alice", PASSWORD).await, 200);
    let (first, records) = trust_and_records(&t).await;
    assert_eq!(first.len(), 1, "the first sign-in from here is trusted");
    assert_eq!(records, 0, "and leaves no attempt record");

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(status(&t, ip, "alice", PASSWORD).await, 200);
    assert_eq!(
        trust_and_records(&t).await,
        (first.clone(), 0),
        "nothing to reset, trusted within the day: the sign-in writes no trust"
    );

    for _ in 0..2 {
        assert_eq!(status(&t, ip, "alice", WRONG).await, 401);
    }
    assert_eq!(trust_and_records(&t).await.1, 2, "two failure records");
    assert_eq!(status(&t, ip, "alice", PASSWORD).await, 200);
    let (reset, records) = trust_and_records(&t).await;
    assert!(
        reset.len() == 1 && reset[0] > first[0],
        "the failures since called for a reset: {reset:?} after {first:?}"
    );
    assert_eq!(records, 2, "the failures stay for the other budgets");
    for _ in 0..2 {
        assert_eq!(
            status(&t, ip, "alice", WRONG).await,
            401,
            "the reset gave the free failures back"
        );
    }
}

#[tokio::test]
async fn a_stranger_behind_the_owners_address_cannot_lock_out_the_owners_device() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "2"),
        ("THROTTLE_DELAY", "1m"),
        ("THROTTLE_MAX_DELAY", "1m"),
        ("THROTTLE_ADDRESS_FAILURES", "6"),
        ("THROTTLE_ACCOUNT_FAILURES", "4"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    t.seed_user("bob", "bob@example.com").await;
    // A carrier-grade NAT: the owner and a stranger share one public address.
    let shared = "100.64.0.1";
    let signed_in = login(&t, shared, "alice", PASSWORD).await;
    envelope(&signed_in, 200);
    let cookie = set_cookies(&signed_in)
        .into_iter()
        .find(|c| c.name() == "loginDevice")
        .expect("a correct password hands out the device cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    assert_eq!(cookie.path(), Some("/api/v1/users"));
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::days(30)),
        "THROTTLE_TRUSTED_FOR"
    );
    let device = cookie.value().to_owned();

    // The stranger: the pair's delay at alice from the shared address, then the address's
    // budget across accounts, then (from two more addresses) the account's budget.
    for _ in 0..2 {
        assert_eq!(status(&t, shared, "alice", WRONG).await, 401);
    }
    throttled(&login(&t, shared, "alice", WRONG).await);
    for i in 0..4 {
        assert_eq!(status(&t, shared, &format!("ghost{i}"), WRONG).await, 401);
    }
    throttled(&login(&t, shared, "ghost9", WRONG).await);
    for _ in 0..2 {
        assert_eq!(status(&t, "203.0.113.50", "alice", WRONG).await, 401);
    }
    throttled(&login(&t, "203.0.113.51", "alice", WRONG).await);

    let before = verifications();
    throttled(&login(&t, shared, "alice", PASSWORD).await);
    throttled(&login(&t, "198.51.100.200", "alice", PASSWORD).await);
    assert_eq!(
        verifications(),
        before,
        "without the cookie the owner is refused like anyone, and nothing is hashed"
    );

    let on_device = login_on(&t, &device, shared, "alice", PASSWORD).await;
    envelope(&on_device, 200);
    assert!(
        device_cookie(&on_device).is_some(),
        "renewed by every sign-in"
    );
    assert_eq!(
        login_on(&t, &device, "198.51.100.200", "alice", PASSWORD)
            .await
            .status(),
        200,
        "the device counts as itself wherever it connects from"
    );
    assert_eq!(
        login_on(&t, &device, shared, "alice", WRONG).await.status(),
        401,
        "a typo on the device is checked"
    );
    assert_eq!(verifications() - before, 3);

    // The cookie is alice's alone, and only as it was issued.
    let before = verifications();
    throttled(&login_on(&t, &device, shared, "bob", PASSWORD).await);
    let mut altered = device.into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    throttled(&login_on(&t, &altered, shared, "alice", PASSWORD).await);
    assert_eq!(
        verifications(),
        before,
        "neither is a device of the account"
    );
}

#[tokio::test]
async fn a_device_meets_its_own_delay_wherever_it_connects_from() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "2"),
        ("THROTTLE_DELAY", "1m"),
        ("THROTTLE_MAX_DELAY", "1m"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    let home = "192.0.2.30";
    let device = device_cookie(&login(&t, home, "alice", PASSWORD).await).expect("cookie");
    // Whoever holds the cookie (a stolen one, say) is slowed like one address at the account.
    for ip in ["198.51.100.31", "198.51.100.32"] {
        assert_eq!(
            login_on(&t, &device, ip, "alice", WRONG).await.status(),
            401
        );
    }
    let before = verifications();
    throttled(&login_on(&t, &device, "198.51.100.33", "alice", PASSWORD).await);
    throttled(&login_on(&t, &device, home, "alice", PASSWORD).await);
    assert_eq!(
        verifications(),
        before,
        "the device's delay, at every address"
    );
    assert_eq!(
        status(&t, home, "alice", PASSWORD).await,
        200,
        "the device's failures are not the home address's"
    );
    // The same cookie, logging in by email: it was issued for every name of the account. The
    // address's pair at the email is delayed; the device's is not.
    let by_email = |password: &str, device: Option<&str>| {
        let body = json!({"email": "ALICE@example.com", "password": password});
        let req = post_json(ROUTE, &body);
        let req = match device {
            Some(d) => with_cookie(req, "loginDevice", d),
            None => req,
        };
        from_address(req, "198.51.100.34")
    };
    for _ in 0..2 {
        assert_eq!(handle(t.app, by_email(WRONG, None)).await.status(), 401);
    }
    throttled(&handle(t.app, by_email(PASSWORD, None)).await);
    assert_eq!(
        handle(t.app, by_email(PASSWORD, Some(&device)))
            .await
            .status(),
        200,
        "by email too the device counts as itself"
    );
}

#[tokio::test]
async fn cookies_minted_by_many_sign_ins_share_one_budget_at_the_account() {
    let _turn = TURN.lock().await;
    let t = app(&[
        ("THROTTLE_FREE_FAILURES", "5"),
        ("THROTTLE_ACCOUNT_FAILURES", "3"),
    ])
    .await;
    t.seed_user("alice", "alice@example.com").await;
    // Someone who had the password signs in four times and keeps four devices.
    let mut devices = Vec::new();
    for _ in 0..4 {
        let resp = login(&t, "203.0.113.70", "alice", PASSWORD).await;
        devices.push(device_cookie(&resp).expect("cookie"));
    }
    // Then guesses with each: one failure per device, three in all.
    for device in &devices[..3] {
        assert_eq!(
            login_on(&t, device, "203.0.113.70", "alice", WRONG)
                .await
                .status(),
            401
        );
    }
    let before = verifications();
    throttled(&login_on(&t, &devices[3], "203.0.113.71", "alice", WRONG).await);
    assert_eq!(
        verifications(),
        before,
        "the devices' account budget is spent, for every one of them"
    );
    assert_eq!(
        status(&t, "203.0.113.72", "alice", PASSWORD).await,
        200,
        "which is not the budget of logins without a cookie"
    );
}

#[tokio::test]
async fn no_device_cookie_when_the_throttles_are_off_or_trust_is_zero() {
    let _turn = TURN.lock().await;
    for vars in [
        [("THROTTLE_ENABLED", "false")],
        [("THROTTLE_TRUSTED_FOR", "0s")],
    ] {
        let t = app(&vars).await;
        t.seed_user("alice", "alice@example.com").await;
        let resp = login(&t, "192.0.2.40", "alice", PASSWORD).await;
        envelope(&resp, 200);
        assert_eq!(device_cookie(&resp), None, "{vars:?}");
        assert_eq!(set_cookies(&resp).len(), 2, "the two token cookies");
    }
}
