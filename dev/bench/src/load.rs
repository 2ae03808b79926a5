//! Through the local HTTP stack: a few concurrent clients per route against `cargo lambda watch`
//! on loopback, for a fixed time (and at most a fixed number of requests), one route at a time.
//!
//! The watcher runs with `--only-lambda-apis`: its HTTP server, router, API Gateway event
//! conversion and Runtime API serve the requests, and the function instances polling it are the
//! same release binaries as in the other phases (started here, one or more per function), so
//! nothing is rebuilt and no debug build is measured.
//!
//! Every request is a real one: logins of the seeded user, refreshes that each use the token the
//! previous one returned (one chain per client), registrations of fresh users with a 1 MiB
//! avatar. Latency is from sending to having read the whole answer; an answer with another status
//! than the expected one counts as an error, not as a latency.
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::{
    process::{Bootstrap, Instance},
    stats::Summary,
    workload::{self, MIB},
};

/// Upper bound per client and route, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;
/// The first request to each function also waits for its instance's cold start.
const FIRST_REQUEST_LIMIT: Duration = Duration::from_secs(30);
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
pub struct RouteLoad {
    pub route: String,
    pub clients: usize,
    pub seconds: f64,
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub requests_per_second: f64,
    pub latency: Summary,
    /// Function instances serving the route.
    pub instances: usize,
    /// The largest `VmHWM` among them after the run.
    pub peak_rss_kib: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Login,
    Refresh,
    Register,
}

impl Route {
    fn function(self) -> &'static str {
        match self {
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Register => "register",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Register => "register (1 MiB avatar)",
        }
    }
}

pub struct Target {
    base: String,
    http: reqwest::Client,
    avatar: Vec<u8>,
}

impl Target {
    /// `base` must be a loopback `http://127.0.0.1:PORT` URL: the bench never sends load anywhere else.
    pub fn new(base: &str) -> Result<Self, String> {
        let url = url_host(base);
        if url != Some("127.0.0.1") {
            return Err(format!(
                "refusing to load {base}: only 127.0.0.1 may be targeted"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            avatar: workload::png(MIB),
        })
    }

    /// Where `cargo lambda watch --only-lambda-apis` serves the Runtime API of `function`.
    fn runtime_api(&self, function: &str) -> String {
        format!("{}/.rt/{function}", self.base)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request of `route`, built (a registration's 1 MiB body included) before any clock
    /// starts, with the status its answer must have.
    fn request(
        &self,
        route: Route,
        username: &str,
        token: Option<&str>,
    ) -> (reqwest::RequestBuilder, u16) {
        match route {
            Route::Login => (
                self.http
                    .post(self.url(workload::LOGIN_PATH))
                    .json(&workload::login_json(username)),
                200,
            ),
            Route::Refresh => (
                self.http.post(self.url(workload::REFRESH_PATH)).header(
                    "cookie",
                    format!("refreshToken={}", token.unwrap_or_default()),
                ),
                200,
            ),
            Route::Register => {
                let (ct, body) = workload::register_form(username, &self.avatar, None);
                (
                    self.http
                        .post(self.url(workload::REGISTER_PATH))
                        .header("content-type", ct)
                        .body(body),
                    201,
                )
            }
        }
    }

    /// Sends a request and returns the JSON answer if its status is the expected one.
    async fn execute(req: reqwest::RequestBuilder, expected: u16) -> Result<Value, String> {
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if status != expected {
            return Err(format!("answered {status} instead of {expected}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("non-JSON answer ({e}): {text}"))
    }

    async fn send(
        &self,
        route: Route,
        username: &str,
        token: Option<&str>,
    ) -> Result<Value, String> {
        let (req, expected) = self.request(route, username, token);
        Self::execute(req, expected).await
    }
}

fn url_host(base: &str) -> Option<&str> {
    let rest = base.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':').map(|(h, _)| h)
}

/// Starts `instances` of each function against the watcher, wakes each once, then loads each
/// route in turn. The instances are stopped before returning, whatever happened.
pub async fn run(
    target: &Target,
    bins: &[Bootstrap],
    config: &[(String, String)],
    instances: usize,
    username: &str,
    seconds: u64,
    clients: usize,
) -> Result<Vec<RouteLoad>, String> {
    let selected: Vec<(Route, &Bootstrap)> = [Route::Login, Route::Refresh, Route::Register]
        .into_iter()
        .filter_map(|r| bins.iter().find(|b| b.name == r.function()).map(|b| (r, b)))
        .collect();
    let mut running: Vec<(Route, Instance)> = Vec::new();
    let mut outcome = Ok(Vec::new());
    for &(route, bin) in &selected {
        for _ in 0..instances {
            match Instance::spawn(bin, config, &target.runtime_api(bin.name.as_str())) {
                Ok(i) => running.push((route, i)),
                Err(e) => outcome = Err(e),
            }
        }
    }
    if outcome.is_ok() {
        outcome = load_all(target, &selected, username, seconds, clients).await;
        for r in outcome.iter_mut().flatten() {
            r.instances = instances;
        }
    }
    let mut results = outcome;
    for (route, instance) in running {
        let peak = instance.peak_rss_kib();
        let log = instance.stop().await;
        if let Ok(results) = &mut results {
            for r in results.iter_mut().filter(|r| r.route == route.name()) {
                r.peak_rss_kib = r.peak_rss_kib.max(peak);
            }
        } else if let Err(e) = &mut results {
            e.push_str(&format!(
                "\n{} instance output:\n{}",
                route.function(),
                crate::process::tail(&log, 10)
            ));
        }
    }
    results
}

async fn load_all(
    target: &Target,
    selected: &[(Route, &Bootstrap)],
    username: &str,
    seconds: u64,
    clients: usize,
) -> Result<Vec<RouteLoad>, String> {
    for &(route, _) in selected {
        let token = match route {
            Route::Refresh => Some(login_token(target, username).await?),
            _ => None,
        };
        let name = workload::unique_name("bw");
        let user = if route == Route::Register {
            name.as_str()
        } else {
            username
        };
        tokio::time::timeout(
            FIRST_REQUEST_LIMIT,
            target.send(route, user, token.as_deref()),
        )
        .await
        .map_err(|_| {
            format!(
                "{} did not answer within {FIRST_REQUEST_LIMIT:?}",
                route.name()
            )
        })?
        .map_err(|e| format!("warm-up request: {e}"))?;
    }
    let mut out = Vec::new();
    for &(route, _) in selected {
        out.push(load_route(target, route, username, seconds, clients).await?);
    }
    Ok(out)
}

async fn login_token(target: &Target, username: &str) -> Result<String, String> {
    let body = target.send(Route::Login, username, None).await?;
    workload::refresh_token_of(&body).ok_or_else(|| "login answer without a token".to_owned())
}

struct ClientRun {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

async fn load_route(
    target: &Target,
    route: Route,
    username: &str,
    seconds: u64,
    clients: usize,
) -> Result<RouteLoad, String> {
    // Refresh chains start from one login per client, made before the clock starts.
    let mut tokens = Vec::new();
    for _ in 0..clients {
        tokens.push(match route {
            Route::Refresh => Some(login_token(target, username).await?),
            _ => None,
        });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let runs = futures::future::join_all(tokens.into_iter().map(|mut token| async move {
        let mut run = ClientRun {
            latencies: Vec::new(),
            errors: 0,
            first_error: None,
        };
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            if Instant::now() >= deadline {
                break;
            }
            let name = workload::unique_name("bl");
            let user = if route == Route::Register {
                name.as_str()
            } else {
                username
            };
            let (req, expected) = target.request(route, user, token.as_deref());
            let sent = Instant::now();
            match Target::execute(req, expected).await {
                Ok(body) => {
                    run.latencies.push(sent.elapsed());
                    if route == Route::Refresh {
                        token = workload::refresh_token_of(&body);
                    }
                }
                Err(e) => {
                    run.errors += 1;
                    run.first_error.get_or_insert(e);
                    if route == Route::Refresh {
                        // A broken chain cannot continue; start a new one.
                        token = login_token(target, username).await.ok();
                    }
                }
            }
        }
        run
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let latencies: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.clone()).collect();
    Ok(RouteLoad {
        route: route.name().to_owned(),
        clients,
        seconds: elapsed,
        ok: latencies.len(),
        errors: runs.iter().map(|r| r.errors).sum(),
        first_error: runs.iter().find_map(|r| r.first_error.clone()),
        requests_per_second: latencies.len() as f64 / elapsed,
        latency: Summary::of(&latencies),
        instances: 0,
        peak_rss_kib: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(Target::new("http://127.0.0.1:9000").is_ok());
        assert!(Target::new("http://127.0.0.1:9000/").is_ok());
        assert!(Target::new("http://example.com:9000").is_err());
        assert!(Target::new("https://127.0.0.1.evil:443").is_err());
        assert!(Target::new("http://10.0.0.1:80").is_err());
    }
}
