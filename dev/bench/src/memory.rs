//! Peak resident memory of each function process serving real invocations.
//!
//! Each release binary is started under the runtime emulator and handed real API Gateway events
//! (the register function: two 2 MiB images per registration, the largest body the limits
//! allow); the kernel's high-water mark of its resident set (`VmHWM` in `/proc/PID/status`) is
//! read after the cold start and after every answer. Fifteen invocations by default, because the
//! peak keeps climbing for the first ten or so (the allocator keeps freed multi-MiB blocks), and
//! a warm Lambda instance serves far more than that.
use serde::Serialize;
use serde_json::Value;
use shared::App;

use crate::{
    floors::fresh_refresh_token,
    process::{Bootstrap, Running},
    stats::Summary,
    workload::{self, MIB},
};

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub function: String,
    pub workload: String,
    /// `VmHWM` once the process asked for its first invocation.
    pub after_cold_start_kib: u64,
    /// `VmHWM` after the last invocation: the peak of the whole run.
    pub peak_kib: u64,
    /// `VmHWM` after each invocation: how the peak grew.
    pub after_each_kib: Vec<u64>,
    /// Threads in the process at the end (the runtime's workers plus its blocking pool).
    pub threads: u64,
    /// Median time from handing over an event to receiving its answer, through the runtime
    /// API: the release binary's latency, event parsing and response serialisation included.
    pub invocation_median_ms: f64,
}

pub async fn measure(
    bins: &[Bootstrap],
    config: &[(String, String)],
    app: &'static App,
    username: &str,
    invocations: usize,
) -> Result<Vec<Memory>, String> {
    let mut out = Vec::new();
    for bin in bins {
        let mut running = Running::start(bin, config).await?;
        let after_cold_start_kib = running.peak_rss_kib().unwrap_or(0);
        let mut after_each_kib = Vec::new();
        let outcome = drive(
            &mut running,
            &bin.name,
            app,
            username,
            invocations,
            &mut after_each_kib,
        )
        .await;
        let peak_kib = running.peak_rss_kib().unwrap_or(0);
        let threads = running.threads().unwrap_or(0);
        let invocation_median_ms = Summary::of(&running.invocation_times).median_ms;
        let log = running.stop().await;
        let workload = outcome.map_err(|e| {
            format!(
                "{}: {e}\nits output:\n{}",
                bin.name,
                crate::process::tail(&log, 20)
            )
        })?;
        out.push(Memory {
            function: bin.name.clone(),
            workload,
            after_cold_start_kib,
            peak_kib,
            after_each_kib,
            threads,
            invocation_median_ms,
        });
    }
    Ok(out)
}

/// Sends the function's workload, noting `VmHWM` after each answer; returns its description.
async fn drive(
    running: &mut Running,
    function: &str,
    app: &'static App,
    username: &str,
    invocations: usize,
    after_each: &mut Vec<u64>,
) -> Result<String, String> {
    let mut note = |running: &Running| after_each.push(running.peak_rss_kib().unwrap_or(0));
    // `login@patched` and the like: the same workload as `login`, for comparing builds.
    match function.split('@').next().unwrap_or_default() {
        "login" => {
            let body = workload::login_json(username).to_string();
            for _ in 0..invocations {
                let e = workload::event(
                    workload::LOGIN_PATH,
                    Some("application/json"),
                    &[],
                    body.as_bytes(),
                );
                expect(running.invoke(&e).await?, 200)?;
                note(running);
            }
            Ok(format!("{invocations} logins"))
        }
        "refresh" => {
            let mut token = fresh_refresh_token(app, username).await?;
            for _ in 0..invocations {
                let cookie = format!("refreshToken={token}");
                let e = workload::event(workload::REFRESH_PATH, None, &[cookie], b"");
                let body = expect(running.invoke(&e).await?, 200)?;
                token = workload::refresh_token_of(&body).ok_or("answer without a token")?;
                note(running);
            }
            Ok(format!("{invocations} refreshes"))
        }
        "register" => {
            let image = workload::png(2 * MIB);
            for _ in 0..invocations {
                let username = workload::unique_name("bm");
                let (ct, body) = workload::register_form(&username, &image, Some(&image));
                let e = workload::event(workload::REGISTER_PATH, Some(&ct), &[], &body);
                expect(running.invoke(&e).await?, 201)?;
                note(running);
            }
            Ok(format!("{invocations} registrations, 2x2 MiB images"))
        }
        "current-user" => {
            let body = crate::floors::login_body(app, username).await?;
            let token = body["data"]["accessToken"]
                .as_str()
                .ok_or("no access token")?;
            for _ in 0..invocations {
                let cookie = format!("accessToken={token}");
                let e =
                    workload::event_with("GET", workload::CURRENT_USER_PATH, None, &[cookie], b"");
                expect(running.invoke(&e).await?, 200)?;
                note(running);
            }
            Ok(format!("{invocations} current-user requests"))
        }
        "authorizer" => {
            let body = crate::floors::login_body(app, username).await?;
            let token = body["data"]["accessToken"]
                .as_str()
                .ok_or("no access token")?;
            for _ in 0..invocations {
                let answer = running.invoke(&workload::authorizer_event(token)).await?;
                if answer.body["isAuthorized"] != serde_json::Value::Bool(true) {
                    return Err(format!("the authorizer refused: {}", answer.body));
                }
                note(running);
            }
            Ok(format!("{invocations} authorizations"))
        }
        _ => {
            for _ in 0..invocations {
                let e = workload::event("/", None, &[], b"");
                expect(running.invoke(&e).await?, 200)?;
                note(running);
            }
            Ok(format!("{invocations} requests"))
        }
    }
}

fn expect(answer: crate::process::Answer, status: u16) -> Result<Value, String> {
    if answer.status == status {
        Ok(answer.body)
    } else {
        Err(format!(
            "answered {} instead of {status}: {}",
            answer.status, answer.body
        ))
    }
}
