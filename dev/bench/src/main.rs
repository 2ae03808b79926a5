//! `make bench`: measures, side by side in one run, what a user of the functions pays for, and
//! prints it as a table with the targets beside the figures (the same figures go to
//! `bench-results/` as JSON).
//!
//! `dev/bin/bench` builds the release binaries, starts the local services and `cargo lambda
//! watch`, exports the functions' configuration and runs this program, which measures in order:
//! binary sizes, cold starts (release binaries under a runtime emulator, alternating with a
//! hello-world baseline), peak memory under real invocations, in-process latency against each
//! route's floor, and throughput through the local HTTP stack. A phase that cannot run is
//! reported as such; the others still run.
mod coldstart;
mod dbproxy;
mod floors;
mod load;
mod memory;
mod process;
mod profile;
mod report;
mod runtime_api;
mod stats;
mod throttle;
mod workload;

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use process::Bootstrap;
use report::{Machine, Report, Settings, Size};
use shared::{App, config::Config};

/// Fresh processes timed step by step for the cold-start profile.
const PHASE_PROFILE_RUNS: usize = 10;

/// Login and refresh pairs per `--pairs`: their medians need more pairs than register's to
/// settle on a noisy machine, and each pair is cheap (about 50 ms and 3 ms).
pub const LOGIN_PAIRS_FACTOR: usize = 3;
pub const REFRESH_PAIRS_FACTOR: usize = 5;

/// The cold-start baseline binary's name.
pub const BASELINE: &str = "hello-lambda";

const USAGE: &str = "usage: bench --baseline PATH --function NAME=PATH... [--arm64 NAME=PATH...] \
[--arm64-note TEXT] [--http-base http://127.0.0.1:PORT] [--http-instances N] [--rounds N] [--pairs N] \
[--http-seconds N] [--http-clients N] [--invocations N] [--function-env KEY=VALUE...] \
[--phases cold,memory,latency,http] [--out-dir DIR] [--command TEXT] [--commit TEXT] [--rustc TEXT]
The functions' configuration (MONGODB_URI, token secrets, CLOUDINARY_*, ...) comes from the environment;
--function-env adds a variable to every function process (to try a setting, e.g. MALLOC_ARENA_MAX=2);
a function named NAME@LABEL gets NAME's workload, to compare two builds of one function in one run.
--http-base is a `cargo lambda watch --only-lambda-apis` on loopback; the bench starts the instances.";

/// The measurements, in the order they run.
const PHASES: [&str; 4] = ["cold", "memory", "latency", "http"];

/// Command-line options. A hand-written parser: one script passes a dozen flags.
struct Options {
    baseline: Option<PathBuf>,
    functions: Vec<(String, PathBuf)>,
    arm64: Vec<(String, PathBuf)>,
    arm64_note: Option<String>,
    http_base: Option<String>,
    http_instances: usize,
    function_env: Vec<(String, String)>,
    phases: Vec<String>,
    rounds: usize,
    pairs: usize,
    http_seconds: u64,
    http_clients: usize,
    out_dir: PathBuf,
    command: String,
    commit: String,
    rustc: String,
    invocations: usize,
}

impl Options {
    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }

    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut o = Options {
            baseline: None,
            functions: Vec::new(),
            arm64: Vec::new(),
            arm64_note: None,
            http_base: None,
            http_instances: 1,
            function_env: Vec::new(),
            phases: PHASES.iter().map(|p| p.to_string()).collect(),
            invocations: 15,
            rounds: 20,
            pairs: 30,
            http_seconds: 10,
            http_clients: 4,
            out_dir: PathBuf::from("bench-results"),
            command: "make bench".to_owned(),
            commit: "unknown".to_owned(),
            rustc: "unknown".to_owned(),
        };
        let mut args = args.peekable();
        while let Some(flag) = args.next() {
            if flag == "-h" || flag == "--help" {
                return Err(USAGE.to_owned());
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = |v: &str| -> Result<u64, String> {
                v.parse()
                    .map_err(|_| format!("{flag}: {v} is not a whole number"))
            };
            let named = |v: &str| -> Result<(String, PathBuf), String> {
                v.split_once('=')
                    .map(|(n, p)| (n.to_owned(), PathBuf::from(p)))
                    .ok_or_else(|| format!("{flag}: expected NAME=PATH, got {v}"))
            };
            match flag.as_str() {
                "--baseline" => o.baseline = Some(PathBuf::from(value)),
                "--function" => o.functions.push(named(&value)?),
                "--arm64" => o.arm64.push(named(&value)?),
                "--arm64-note" => o.arm64_note = Some(value),
                "--http-base" => o.http_base = Some(value),
                "--http-instances" => o.http_instances = number(&value)?.clamp(1, 8) as usize,
                "--function-env" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or_else(|| format!("{flag}: expected KEY=VALUE, got {value}"))?;
                    o.function_env.push((k.to_owned(), v.to_owned()));
                }
                "--rounds" => o.rounds = number(&value)?.max(1) as usize,
                "--pairs" => o.pairs = number(&value)?.max(1) as usize,
                "--invocations" => o.invocations = number(&value)?.clamp(1, 100) as usize,
                "--http-seconds" => o.http_seconds = number(&value)?.clamp(1, 120),
                "--http-clients" => o.http_clients = number(&value)?.clamp(1, 64) as usize,
                "--phases" => {
                    o.phases = value.split(',').map(|p| p.trim().to_owned()).collect();
                    if let Some(bad) = o.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
                        return Err(format!("--phases: unknown phase {bad} (known: {PHASES:?})"));
                    }
                }
                "--out-dir" => o.out_dir = PathBuf::from(value),
                "--command" => o.command = value,
                "--commit" => o.commit = value,
                "--rustc" => o.rustc = value,
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        Ok(o)
    }
}

/// The Lambda memory sizes of template.yaml, passed to each process as Lambda would.
fn memory_mb(function: &str) -> u32 {
    match function {
        "login" | "register" | "change-password" => 1769,
        "authorizer" | BASELINE => 128,
        _ => 512,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(profile::FLAG) {
        return match profile::phases().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(report) => {
            print!("{}", report.render());
            if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("[bench] {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: Options) -> Result<Report, String> {
    let baseline = o.baseline.clone().ok_or("--baseline is required")?;
    // The functions' configuration: exactly the variables `Config` reads, from our environment.
    let mut config: Vec<(String, String)> = shared::config::VARIABLES
        .iter()
        .filter_map(|v| std::env::var(v.name).ok().map(|x| (v.name.to_owned(), x)))
        .collect();
    let vars: HashMap<String, String> = config.iter().cloned().collect();
    config.extend(o.function_env.iter().cloned());
    let parsed = Config::from_vars(&vars).map_err(|e| format!("configuration: {e}"))?;
    if let Some(dir) = vars.get("UPLOAD_TMP_DIR") {
        std::fs::create_dir_all(dir).map_err(|e| format!("UPLOAD_TMP_DIR {dir}: {e}"))?;
    }
    // The rows that time password checks themselves (login against its verify, refusals,
    // first logins) repeat failures from one address, which the throttles would refuse: their
    // app has them off. The throttle run compares login with them on and off; its app's delay
    // keeps the refused series refused for the whole run.
    let mut unthrottled = parsed.clone();
    unthrottled.throttle.enabled = false;
    let mut throttled = parsed;
    throttled.throttle.enabled = true;
    throttled.throttle.delay = std::time::Duration::from_secs(15 * 60);
    throttled.throttle.max_delay = throttled.throttle.delay.max(throttled.throttle.max_delay);
    throttled.throttle.forget_after = throttled
        .throttle
        .forget_after
        .max(throttled.throttle.max_delay);
    let build = |config| async move {
        App::new(config)
            .await
            .map(|app| &*Box::leak(Box::new(app)))
            .map_err(|e| format!("building the app: {e}"))
    };
    let app: &'static App = build(unthrottled).await?;
    let app_throttled: &'static App = build(throttled).await?;
    // Indexes exist before anything is timed, as on a database in service.
    let store = floors::store(app).await?;
    let database = database_server(store).await;
    let username = workload::unique_name("bench");
    testkit::seed_user(
        &store.db,
        &username,
        &format!("{username}@example.com"),
        workload::PASSWORD,
    )
    .await;

    let mut bins = vec![Bootstrap {
        name: BASELINE.to_owned(),
        path: baseline,
        memory_mb: memory_mb(BASELINE),
    }];
    bins.extend(o.functions.iter().map(|(name, path)| Bootstrap {
        name: name.clone(),
        path: path.clone(),
        memory_mb: memory_mb(name),
    }));
    let function_names: Vec<String> = o.functions.iter().map(|(n, _)| n.clone()).collect();
    let mut problems = Vec::new();

    let sizes = bins
        .iter()
        .map(|b| Size {
            function: b.name.clone(),
            x86_64_bytes: std::fs::metadata(&b.path).ok().map(|m| m.len()),
            arm64_bytes: o
                .arm64
                .iter()
                .find(|(n, _)| *n == b.name)
                .and_then(|(_, p)| std::fs::metadata(p).ok())
                .map(|m| m.len()),
        })
        .collect();

    let (mut cold_start, mut cold_start_phases) = (Vec::new(), Vec::new());
    if o.runs("cold") {
        eprintln!(
            "[bench] cold start: {} rounds of {} binaries",
            o.rounds,
            bins.len()
        );
        match coldstart::measure(&bins, &config, o.rounds).await {
            Ok(c) => cold_start = c,
            Err(e) => problems.push(format!("cold start: {e}")),
        }
        match profile::measure(&config, PHASE_PROFILE_RUNS).await {
            Ok(p) => cold_start_phases = p,
            Err(e) => problems.push(format!("cold start profile: {e}")),
        }
    }

    let mut memory = Vec::new();
    if o.runs("memory") {
        eprintln!("[bench] memory under real invocations");
        match memory::measure(&bins, &config, app, &username, o.invocations).await {
            Ok(m) => memory = m,
            Err(e) => problems.push(format!("memory: {e}")),
        }
    }

    let (mut latency, mut latency_breakdown, mut login_failures, mut login_throttle) =
        (Vec::new(), Vec::new(), None, None);
    if o.runs("latency") {
        eprintln!("[bench] in-process latency against the floors");
        let has = |f: &str| function_names.iter().any(|n| n == f);
        if has("login") {
            match floors::login(app, &username, o.pairs * LOGIN_PAIRS_FACTOR).await {
                Ok(c) => latency.push(c),
                Err(e) => problems.push(format!("login latency: {e}")),
            }
            eprintln!("[bench] login with the throttles on and off, against its floor");
            let rounds = o.pairs * LOGIN_PAIRS_FACTOR;
            match throttle::login(app_throttled, app, &username, rounds).await {
                Ok(t) => login_throttle = Some(t),
                Err(e) => problems.push(format!("login throttle: {e}")),
            }
        }
        if has("refresh") {
            match floors::refresh(app, &username, o.pairs * REFRESH_PAIRS_FACTOR).await {
                Ok(c) => latency.push(c),
                Err(e) => problems.push(format!("refresh latency: {e}")),
            }
        }
        if has("current-user") {
            match floors::current_user(app, &username, o.pairs * REFRESH_PAIRS_FACTOR).await {
                Ok(c) => latency.push(c),
                Err(e) => problems.push(format!("current-user latency: {e}")),
            }
        }
        if has("authorizer") {
            match floors::authorizer(app, &username, o.pairs * REFRESH_PAIRS_FACTOR).await {
                Ok(c) => latency.push(c),
                Err(e) => problems.push(format!("authorizer latency: {e}")),
            }
        }
        if has("register") {
            match floors::register(app, o.pairs).await {
                Ok(c) => latency.push(c),
                Err(e) => problems.push(format!("register latency: {e}")),
            }
        }
        eprintln!("[bench] where the handlers' time goes (database round trips through a proxy)");
        match breakdowns(&vars, &username, &function_names, o.pairs).await {
            Ok(b) => latency_breakdown = b,
            Err(e) => problems.push(format!("latency breakdown: {e}")),
        }
        // Last: it leaves one Node-era user behind, and FerretDB scans the users collection for
        // every lookup by name, so the rows above meet the collection as before.
        if has("login") {
            eprintln!("[bench] login refusals and Node-era first logins, round-robin");
            match floors::login_failures(app, &username, o.pairs * LOGIN_PAIRS_FACTOR).await {
                Ok(f) => login_failures = Some(f),
                Err(e) => problems.push(format!("login failures: {e}")),
            }
        }
    }

    let mut http = Vec::new();
    if let (Some(base), true) = (&o.http_base, o.runs("http")) {
        eprintln!(
            "[bench] HTTP through cargo lambda watch: {} s per route",
            o.http_seconds
        );
        let result = match load::Target::new(base) {
            Ok(target) => {
                load::run(
                    &target,
                    &bins[1..],
                    &config,
                    o.http_instances,
                    &username,
                    o.http_seconds,
                    o.http_clients,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(h) => http = h,
            Err(e) => problems.push(format!("HTTP: {e}")),
        }
    }

    let mut report = Report {
        generated_at: mongodb::bson::DateTime::now()
            .try_to_rfc3339_string()
            .unwrap_or_default(),
        command: o.command.clone(),
        machine: Machine::probe(o.rustc.clone(), o.commit.clone()),
        database,
        settings: Settings {
            cold_start_rounds: o.rounds,
            latency_pairs: o.pairs,
            http_seconds_per_route: o.http_seconds,
            http_clients: o.http_clients,
            http_instances: o.http_instances,
            function_env: o.function_env.clone(),
        },
        cold_start,
        cold_start_phases,
        latency,
        latency_breakdown,
        login_failures,
        login_throttle,
        http,
        sizes,
        arm64_note: o.arm64_note.clone(),
        memory,
        checks: Vec::new(),
        problems,
    };
    report.check_targets(&function_names);
    // The bench's database is its own (bench_<random>): on a server that outlives the run
    // (BENCH_MONGODB_URI) nothing of it stays behind.
    if let Err(e) = store.db.drop().await {
        let problem = format!("dropping the bench database: {e}");
        eprintln!("[bench] {problem}");
        report.problems.push(problem);
    }
    write_results(&o.out_dir, &report)?;
    Ok(report)
}

/// Each handler again, on a second app whose database connection goes through a [`DbProxy`]:
/// round trips and database wait per call, the rest being the handler's own time.
async fn breakdowns(
    vars: &HashMap<String, String>,
    username: &str,
    functions: &[String],
    calls: usize,
) -> Result<Vec<floors::Breakdown>, String> {
    let uri = vars
        .get("MONGODB_URI")
        .map(String::as_str)
        .unwrap_or_default();
    let upstream = dbproxy::upstream_of(uri)
        .ok_or("MONGODB_URI is not a plain mongodb://host:port URI; no proxy profile")?;
    let proxy = dbproxy::DbProxy::start(upstream)
        .await
        .map_err(|e| format!("database proxy: {e}"))?;
    let mut proxied = vars.clone();
    proxied.insert(
        "MONGODB_URI".to_owned(),
        format!("mongodb://{}/", proxy.addr()),
    );
    let config = Config::from_vars(&proxied).map_err(|e| e.to_string())?;
    let app: &'static App = Box::leak(Box::new(App::new(config).await.map_err(|e| e.to_string())?));
    let has = |f: &str| functions.iter().any(|n| n == f);
    let mut out = Vec::new();
    if has("login") {
        let mut caller = floors::Caller::login(app, username);
        let mut floor = floors::login_floor(floors::seeded_hash(app, username).await?);
        out.push(floors::breakdown("login", &mut caller, &proxy, calls, &mut floor).await?);
    }
    if has("refresh") {
        let mut caller = floors::Caller::refresh(app, username).await?;
        out.push(
            floors::breakdown("refresh", &mut caller, &proxy, calls, &mut floors::Nothing).await?,
        );
    }
    if has("register") {
        let avatar = bytes::Bytes::from(workload::png(workload::MIB));
        let mut caller = floors::Caller::register(app, avatar);
        out.push(
            floors::breakdown(
                "register (1 MiB avatar)",
                &mut caller,
                &proxy,
                calls,
                &mut floors::Nothing,
            )
            .await?,
        );
    }
    Ok(out)
}

/// `DIR/latest.{json,txt}` plus a timestamped copy of the JSON.
fn write_results(dir: &PathBuf, report: &Report) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let stamp: String = report
        .generated_at
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    for (name, text) in [
        (format!("bench-{stamp}.json"), &json),
        ("latest.json".to_owned(), &json),
        ("latest.txt".to_owned(), &report.render()),
    ] {
        std::fs::write(dir.join(&name), text).map_err(|e| format!("writing {name}: {e}"))?;
    }
    Ok(())
}

/// The server the bench measures against, from its `buildInfo`: FerretDB names itself beside the
/// MongoDB version it answers as.
async fn database_server(store: &shared::store::Store) -> String {
    let info = match store
        .db
        .run_command(mongodb::bson::doc! {"buildInfo": 1})
        .await
    {
        Ok(info) => info,
        Err(e) => return format!("unknown (buildInfo failed: {e})"),
    };
    let version = info.get_str("version").unwrap_or("?");
    match info.get_str("ferretdbVersion") {
        Ok(ferretdb) => format!("FerretDB {ferretdb} (answering as MongoDB {version})"),
        Err(_) => format!("MongoDB {version}"),
    }
}
