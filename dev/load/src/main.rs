//! `make load`: a bounded load test of the three routes, and a login timing comparison.
//!
//! ```text
//! load run    --base URL [--seconds 60] [--clients 32]
//! load timing --base URL [--attempts 200]
//! ```
//!
//! `run` starts `--clients` simulated clients on loopback for `--seconds`. Each registers an
//! account and logs in, then loops over a mix of 70 % refreshes (always with its newest token),
//! 20 % logins (switching to the new session) and 10 % registrations of further accounts. It
//! prints throughput, p50/p99 latency and status counts per route, and the number of lost
//! sessions: a refresh refused although the client only ever presented its newest token. It
//! exits non-zero on any 5xx, transport error or lost session.
//!
//! `timing` registers one account, then alternates a login of an unknown user with a wrong
//! password for the real one, `--attempts` of each after a warm-up, and reports both medians and
//! how far apart they are. It is a measurement, not an assertion: it always exits 0 when every
//! attempt got its 401.
//!
//! `dev/bin/load` starts the stack and a `cargo lambda watch` for it and stops them afterwards.
use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
/// A valid 1x1 greyscale PNG: every registration's avatar.
const AVATAR_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x7e, 0x9b,
    0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0x48, 0xaf, 0xa4, 0x71, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
const ROUTES: [&str; 3] = ["register", "login", "refresh-token"];

struct Args {
    mode: String,
    base: String,
    seconds: u64,
    clients: usize,
    attempts: usize,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("usage: load run|timing --base URL [options]")?;
    let mut a = Args {
        mode,
        base: String::new(),
        seconds: 60,
        clients: 32,
        attempts: 200,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--base" => a.base = value.trim_end_matches('/').to_owned(),
            "--seconds" => a.seconds = number()?.clamp(1, 600),
            "--clients" => a.clients = number()?.clamp(1, 256) as usize,
            "--attempts" => a.attempts = number()?.clamp(50, 2_000) as usize,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"];
    if !loopback.iter().any(|p| a.base.starts_with(p)) {
        return Err(
            "--base must be a loopback http URL (this tool only loads the local stack)".into(),
        );
    }
    Ok(a)
}

/// What happened to the requests of one route.
#[derive(Default)]
struct RouteStats {
    latencies_ms: Vec<f64>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
}

#[derive(Default)]
struct Stats {
    routes: BTreeMap<&'static str, RouteStats>,
    sessions: u64,
    lost_sessions: u64,
    lost_examples: Vec<String>,
}

struct Client {
    http: reqwest::Client,
    base: String,
    stats: Arc<Mutex<Stats>>,
}

impl Client {
    /// Sends one request, records its status and latency, and returns status and JSON body.
    async fn send(
        &self,
        route: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Option<(u16, Value)> {
        let started = Instant::now();
        let outcome = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.json::<Value>().await.ok().map(|body| (status, body))
            }
            Err(_) => None,
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = stats.routes.entry(route).or_default();
        match &outcome {
            Some((status, _)) => {
                r.latencies_ms.push(ms);
                *r.statuses.entry(*status).or_default() += 1;
            }
            None => r.transport_errors += 1,
        }
        outcome
    }

    async fn register(&self, username: &str) -> Option<u16> {
        let avatar = Part::bytes(AVATAR_PNG)
            .file_name("avatar.png")
            .mime_str("image/png")
            .ok()?;
        let form = Form::new()
            .text("fullName", "Load Test")
            .text("email", format!("{username}@example.com"))
            .text("username", username.to_owned())
            .text("password", PASSWORD)
            .part("avatar", avatar);
        let req = self
            .http
            .post(format!("{}/api/v1/users/register", self.base))
            .multipart(form);
        self.send("register", req).await.map(|(s, _)| s)
    }

    async fn login(&self, username: &str, password: &str) -> Option<(u16, Value)> {
        let body = json!({"username": username, "password": password});
        let req = self
            .http
            .post(format!("{}/api/v1/users/login", self.base))
            .json(&body);
        self.send("login", req).await
    }

    async fn refresh(&self, token: &str) -> Option<(u16, Value)> {
        let req = self
            .http
            .post(format!("{}/api/v1/users/refresh-token", self.base))
            .json(&json!({"refreshToken": token}));
        self.send("refresh-token", req).await
    }

    fn token_of(body: &Value) -> Option<String> {
        body["data"]["refreshToken"].as_str().map(str::to_owned)
    }

    fn note_session(&self) {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sessions += 1;
    }

    /// One simulated client until `deadline`.
    async fn run(self, index: usize, deadline: Instant) {
        let mut rng = StdRng::from_os_rng();
        let fresh_name =
            |rng: &mut StdRng| format!("ld{index}_{}", hex::encode(rng.random::<[u8; 5]>()));
        let me = fresh_name(&mut rng);
        let mut token: Option<String> = None;
        let mut registered = false;
        while Instant::now() < deadline {
            if !registered {
                registered = self.register(&me).await == Some(201);
                continue;
            }
            let roll = rng.random_range(0..100);
            match (&token, roll) {
                (Some(_), 0..10) => {
                    let other = fresh_name(&mut rng);
                    self.register(&other).await;
                }
                (None, _) | (Some(_), 10..30) => {
                    if let Some((200, body)) = self.login(&me, PASSWORD).await {
                        token = Self::token_of(&body);
                        self.note_session();
                    }
                }
                (Some(current), _) => match self.refresh(current).await {
                    Some((200, body)) => token = Self::token_of(&body),
                    Some((401, body)) => {
                        // Only the newest token was ever presented: this session was lost.
                        let mut stats = self
                            .stats
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        stats.lost_sessions += 1;
                        if stats.lost_examples.len() < 5 {
                            stats
                                .lost_examples
                                .push(body["message"].as_str().unwrap_or("").to_owned());
                        }
                        drop(stats);
                        token = None;
                    }
                    // A 503 or a transport error: the same token is tried again.
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                },
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(256)
        .build()
        .expect("an HTTP client")
}

async fn run(a: &Args) -> ExitCode {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let http = http_client();
    println!(
        "load: {} clients for {} s against {} (70% refresh, 20% login, 10% register)",
        a.clients, a.seconds, a.base
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| {
            let client = Client {
                http: http.clone(),
                base: a.base.clone(),
                stats: stats.clone(),
            };
            tokio::spawn(client.run(i, deadline))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut stats = stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    println!();
    println!(
        "| route | requests | req/s | p50 ms | p99 ms | max ms | 2xx | 4xx | 5xx | transport errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = RouteStats::default();
    let mut five_xx = 0;
    let mut transport = 0;
    let mut rows = Vec::new();
    for route in ROUTES {
        let r = stats.routes.remove(route).unwrap_or_default();
        all.latencies_ms.extend(&r.latencies_ms);
        for (s, n) in &r.statuses {
            *all.statuses.entry(*s).or_default() += n;
        }
        all.transport_errors += r.transport_errors;
        rows.push((route, r));
    }
    rows.push(("all", all));
    for (route, mut r) in rows {
        r.latencies_ms.sort_by(f64::total_cmp);
        let class = |lo: u16| {
            r.statuses
                .iter()
                .filter(|(s, _)| (lo..lo + 100).contains(*s))
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        let n = r.latencies_ms.len() as u64 + r.transport_errors;
        if route != "all" {
            five_xx += class(500);
            transport += r.transport_errors;
        }
        println!(
            "| {route} | {n} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
            n as f64 / elapsed,
            percentile(&r.latencies_ms, 50.0),
            percentile(&r.latencies_ms, 99.0),
            r.latencies_ms.last().copied().unwrap_or(f64::NAN),
            class(200),
            class(400),
            class(500),
            r.transport_errors
        );
    }
    println!();
    println!(
        "sessions opened: {}; lost sessions: {}{}",
        stats.sessions,
        stats.lost_sessions,
        if stats.lost_examples.is_empty() {
            String::new()
        } else {
            format!(" ({:?})", stats.lost_examples)
        }
    );
    let ok = five_xx == 0 && transport == 0 && stats.lost_sessions == 0;
    println!(
        "verdict: {} (expected: zero 5xx, zero transport errors, zero lost sessions)",
        if ok { "PASS" } else { "FAIL" }
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn timing(a: &Args) -> ExitCode {
    let http = http_client();
    let client = Client {
        http,
        base: a.base.clone(),
        stats: Arc::new(Mutex::new(Stats::default())),
    };
    let mut rng = StdRng::from_os_rng();
    let user = format!("tm_{}", hex::encode(rng.random::<[u8; 6]>()));
    if client.register(&user).await != Some(201) {
        eprintln!("timing: could not register the account to time against");
        return ExitCode::FAILURE;
    }
    let warmup = 10;
    let (mut unknown, mut wrong, mut paired) = (Vec::new(), Vec::new(), Vec::new());
    let mut unexpected = 0;
    for i in 0..(warmup + a.attempts) {
        // Alternate which kind goes first, so drift over time affects both alike.
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut pair = [0.0; 2];
        for unknown_user in order {
            let name = if unknown_user {
                format!("nobody_{}", hex::encode(rng.random::<[u8; 6]>()))
            } else {
                user.clone()
            };
            let started = Instant::now();
            let outcome = client.login(&name, "wrong horse battery staple").await;
            pair[usize::from(!unknown_user)] = started.elapsed().as_secs_f64() * 1000.0;
            if !matches!(outcome, Some((401, _))) {
                unexpected += 1;
            }
        }
        if i >= warmup {
            unknown.push(pair[0]);
            wrong.push(pair[1]);
            paired.push(pair[0] - pair[1]);
        }
    }
    for v in [&mut unknown, &mut wrong, &mut paired] {
        v.sort_by(f64::total_cmp);
    }
    let (mu, mw) = (percentile(&unknown, 50.0), percentile(&wrong, 50.0));
    let diff = (mu - mw).abs() / mu.min(mw) * 100.0;
    println!();
    println!(
        "login timing: {} attempts of each kind, alternating, after {warmup} warm-up pairs",
        a.attempts
    );
    println!("| attempt | median ms | p10 ms | p90 ms |");
    println!("|---|---:|---:|---:|");
    for (label, v) in [("unknown user", &unknown), ("wrong password", &wrong)] {
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} |",
            percentile(v, 50.0),
            percentile(v, 10.0),
            percentile(v, 90.0)
        );
    }
    println!(
        "difference of the medians: {diff:.1}% ({} the 10% target); median of the paired \
         differences (unknown - wrong): {:+.1} ms",
        if diff <= 10.0 { "within" } else { "OUTSIDE" },
        percentile(&paired, 50.0)
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let one_minute = load.split_whitespace().next().unwrap_or("?");
        println!(
            "(load average {one_minute} on {} CPUs during the run; other work on the machine widens both spreads)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    if unexpected > 0 {
        eprintln!("timing: {unexpected} attempts did not get a 401");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            return ExitCode::from(2);
        }
    };
    match a.mode.as_str() {
        "run" => run(&a).await,
        "timing" => timing(&a).await,
        other => {
            eprintln!("load: unknown mode {other}: use run or timing");
            ExitCode::from(2)
        }
    }
}
