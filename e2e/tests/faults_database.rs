//! The database dies in the middle of a stream of logins and refreshes, over HTTP.
//!
//! Two private `cargo lambda watch` processes (two instances of every function, as Lambda runs
//! them) serve the functions against a private FerretDB (so the shared one is never disturbed),
//! and each client sends its requests to them in turn, so the retry of a request whose answer
//! was lost reaches the other instance. Four clients log in and refresh in a loop; the server is killed as a
//! crash would, left down, then restarted on the same port and data. While it is down every
//! request must get a 503 envelope with `Retry-After`, quickly (the server selection timeout is
//! 1 s here); once it is back, requests succeed again with no restart of the functions; and no
//! session is lost or corrupted: every client's refresh chain continues, no session is revoked,
//! and each session's stored hash is that of the client's newest token.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use e2e::{Watch, send_timed};
use mongodb::bson::{Document, doc};
use serde_json::json;
use testkit::{PASSWORD, forge::claims_of, process::PrivateDatabase, random_suffix, seed_user};

const CLIENTS: usize = 4;
const HEALTHY: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(4);
/// The configured server selection timeout plus generous slack for a loaded machine.
const FAST_503: Duration = Duration::from_millis(2_500);

/// One request's outcome, with when it was sent and answered.
#[derive(Debug, Clone)]
struct Outcome {
    client: usize,
    route: &'static str,
    sent: Instant,
    done: Instant,
    status: u16,
    retry_after: bool,
}

/// A client: one account, its newest refresh token and what happened to its requests.
async fn client(
    bases: Vec<String>,
    index: usize,
    username: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
) -> Option<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut token: Option<String> = None;
    let mut n = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let base = &bases[n as usize % bases.len()];
        // Clients 0 and 1 also open a new session now and then; 2 and 3 only refresh.
        let login = token.is_none() || (index < 2 && n.is_multiple_of(4));
        let (route, req) = if login {
            let body = json!({"username": username, "password": PASSWORD});
            (
                "login",
                http.post(format!("{base}/api/v1/users/login")).json(&body),
            )
        } else {
            let body = json!({"refreshToken": token.clone().unwrap_or_default()});
            (
                "refresh-token",
                http.post(format!("{base}/api/v1/users/refresh-token"))
                    .json(&body),
            )
        };
        let sent = Instant::now();
        let (status, headers, body, _) = send_timed(req).await;
        let done = Instant::now();
        if status == 200 {
            token = body["data"]["refreshToken"].as_str().map(str::to_owned);
        }
        log.lock().expect("log").push(Outcome {
            client: index,
            route,
            sent,
            done,
            status,
            retry_after: headers.contains_key("retry-after"),
        });
        if status != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_database_mid_stream_gives_fast_503s_and_a_clean_recovery_without_restart() {
    let mut db = tokio::task::block_in_place(PrivateDatabase::start);
    let mut vars = Watch::default_vars();
    vars.insert("MONGODB_URI".into(), db.uri());
    vars.insert("MONGODB_SERVER_SELECTION_TIMEOUT".into(), "1s".into());
    vars.insert("MONGODB_CONNECT_TIMEOUT".into(), "1s".into());
    // A rotation whose answer was lost is completed by its retry within the grace; the outage
    // here lasts about 3 s, and the retry follows it.
    vars.insert("REFRESH_REUSE_GRACE".into(), "30s".into());
    let watch = Watch::start(vars.clone(), &["login", "refresh-token"]).await;
    let other = Watch::start(vars, &["login", "refresh-token"]).await;
    let api = watch.api().await;
    let mut users = Vec::new();
    for _ in 0..CLIENTS {
        let name = format!("dbfault_{}", random_suffix());
        seed_user(&api.db, &name, &format!("{name}@example.com"), PASSWORD).await;
        users.push(name);
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, name)| {
            tokio::spawn(client(
                vec![watch.base.clone(), other.base.clone()],
                i,
                name.clone(),
                stop.clone(),
                log.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(HEALTHY).await;
    // Requests that end while the kill is under way may already see it: only those that ended
    // before it began are held to 200.
    let killing = Instant::now();
    tokio::task::block_in_place(|| db.kill());
    let killed = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let resuming = Instant::now();
    tokio::task::block_in_place(|| db.resume());
    let resumed = Instant::now();
    tokio::time::sleep(AFTER).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(
            t.await
                .expect("client task")
                .expect("every client holds a token"),
        );
    }
    let log = log.lock().expect("log").clone();
    if std::env::var_os("FAULT_DEBUG").is_some() {
        let at = |t: Instant| {
            t.saturating_duration_since(killed).as_millis() as i64
                - killed.saturating_duration_since(t).as_millis() as i64
        };
        for o in &log {
            eprintln!(
                "c{} {} {} sent {} ms done {} ms",
                o.client,
                o.route,
                o.status,
                at(o.sent),
                at(o.done)
            );
        }
        eprintln!("resuming {} ms, resumed {} ms", at(resuming), at(resumed));
    }

    let unexpected: Vec<&Outcome> = log
        .iter()
        .filter(|o| o.status != 200 && o.status != 503)
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 200 and 503 are acceptable: {unexpected:#?}"
    );
    let before: Vec<&Outcome> = log.iter().filter(|o| o.done < killing).collect();
    assert!(
        before.len() >= CLIENTS && before.iter().all(|o| o.status == 200),
        "{before:#?}"
    );
    // Answered while the database was down (allowing a moment for answers already on their way).
    let down: Vec<&Outcome> = log
        .iter()
        .filter(|o| o.done > killed + Duration::from_millis(100) && o.done < resuming)
        .collect();
    assert!(
        down.len() >= 2,
        "requests were answered during the outage: {}",
        down.len()
    );
    for o in &down {
        assert_eq!(o.status, 503, "a request while the database is down: {o:?}");
    }
    for o in log.iter().filter(|o| o.status == 503) {
        assert!(o.retry_after, "a 503 carries Retry-After: {o:?}");
        // Over HTTP a 503 may also wait for those queued before it at its function: one
        // instance per function serves one request at a time, as on Lambda.
        let waited = o.done.duration_since(o.sent);
        assert!(waited <= FAST_503 * CLIENTS as u32, "{waited:?} for {o:?}");
    }
    // The functions' own time for each 503.
    let mut served = watch.request_log();
    served.extend(other.request_log());
    let handler_503: Vec<f64> = served
        .iter()
        .filter(|f| f["status"] == 503)
        .map(|f| f["latency_ms"].as_f64().unwrap_or(f64::MAX))
        .collect();
    assert!(!handler_503.is_empty(), "the functions answered 503s");
    let slowest_503 = handler_503.iter().copied().fold(0.0, f64::max);
    assert!(
        slowest_503 <= FAST_503.as_secs_f64() * 1000.0,
        "503s must be fast: {handler_503:?}"
    );

    // Recovery: after the first success following the restart, everything succeeds.
    let after: Vec<&Outcome> = log.iter().filter(|o| o.sent > resumed).collect();
    let first_ok = after
        .iter()
        .filter(|o| o.status == 200)
        .map(|o| o.done)
        .min()
        .expect("requests succeed again after the restart");
    let recovery = first_ok.duration_since(resumed);
    assert!(
        recovery < Duration::from_secs(3),
        "recovered in {recovery:?}"
    );
    let late_failures: Vec<&&Outcome> = after
        .iter()
        .filter(|o| o.sent > first_ok && o.status != 200)
        .collect();
    assert!(
        late_failures.is_empty(),
        "failures after recovery: {late_failures:#?}"
    );
    for c in 0..CLIENTS {
        assert!(
            after
                .iter()
                .any(|o| o.client == c && o.status == 200 && o.route == "refresh-token"),
            "client {c} refreshed successfully after the restart"
        );
    }

    // No restart: one cold start per function, ever.
    assert_eq!(
        (watch.cold_starts(), other.cold_starts()),
        (2, 2),
        "the functions were not restarted"
    );

    // No session lost or corrupted: none revoked, and each client's newest token is the one
    // its session expects next (it has a record and no successor), and it still rotates.
    let sessions: Vec<Document> = {
        use futures::TryStreamExt as _;
        api.db
            .collection::<Document>("sessions")
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("sessions")
    };
    let revoked = sessions
        .iter()
        .filter(|s| s.get_datetime("revokedAt").is_ok())
        .count();
    assert_eq!(revoked, 0, "no session was revoked");
    let records = api.db.collection::<Document>("refresh_tokens");
    for token in &tokens {
        let claims = claims_of(token);
        let sid = claims["sid"].as_str().expect("sid");
        assert!(
            sessions.iter().any(|s| s.get_str("_id").ok() == Some(sid)),
            "the client's session exists"
        );
        let hash = shared::sessions::token_hash(claims["jti"].as_str().expect("jti"));
        let record = records.find_one(doc! {"_id": &hash}).await.expect("find");
        let first = sessions.iter().any(|s| {
            s.get_str("_id").ok() == Some(sid) && s.get_str("firstToken").ok() == Some(&hash)
        });
        assert!(
            first || record.is_some_and(|r| r.get_str("sessionId").ok() == Some(sid)),
            "the newest token is on record (the session's first, or a rotation's)"
        );
        let successor = records
            .find_one(doc! {"parent": &hash})
            .await
            .expect("find");
        assert!(
            successor.is_none(),
            "and has not been replaced behind the client's back"
        );
        let req = api
            .http
            .post(watch.url("refresh-token"))
            .json(&json!({"refreshToken": token}));
        let (status, _, body, _) = send_timed(req).await;
        assert_eq!(status, 200, "the chain continues: {body}");
    }

    const SAME_PAIR: &str = "a just-replaced refresh token came back within the grace";
    let completed =
        watch.log_text().matches(SAME_PAIR).count() + other.log_text().matches(SAME_PAIR).count();
    let http_503_max = log
        .iter()
        .filter(|o| o.status == 503)
        .map(|o| o.done.duration_since(o.sent))
        .max()
        .unwrap_or_default();
    let count = |route: &str, status: u16| {
        log.iter()
            .filter(|o| o.route == route && o.status == status)
            .count()
    };
    let mut sorted = handler_503.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "database fault: {} requests (login 200/503: {}/{}, refresh 200/503: {}/{}); outage {:?}; \
         503s took the functions a median {:.0} ms (max {slowest_503:.0} ms), {http_503_max:?} at most over HTTP; \
         first success {recovery:?} after the restart; {completed} retried rotation(s) got the same pair again; \
         {} sessions, none revoked; cold starts {}",
        log.len(),
        count("login", 200),
        count("login", 503),
        count("refresh-token", 200),
        count("refresh-token", 503),
        resuming.duration_since(killed),
        sorted[sorted.len() / 2],
        sessions.len(),
        watch.cold_starts() + other.cold_starts(),
    );
}
