//! Where a cold start's time goes: the steps of `App::cold_start`, each timed on its own, in a
//! fresh process per sample (`bench --cold-start-phases`, run with the functions' configuration
//! only), so every sample pays what a real cold start pays: no warm pools, no cached clients.
//!
//! The steps are `Config::load`, `App::new` and the first `App::store` (the database readiness
//! every function awaits before its first query, in the background or on the first request);
//! the time before `main` (exec, dynamic linking, runtime start) is what the hello-world
//! baseline shows.
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use serde::Serialize;
use shared::{App, config::Config};

use crate::stats::median_sorted;

/// Each profiled process is stopped after this long (its database waits are bounded far below).
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The hidden flag that makes the bench binary run [`phases`] and print them as JSON.
pub const FLAG: &str = "--cold-start-phases";

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub step: String,
    pub median_ms: f64,
}

/// The child side: runs the steps once, prints `[[step, ms], ...]` as JSON. Only the stable,
/// public entry points are used, so the profile follows whatever `App` does inside them.
pub async fn phases() -> Result<(), String> {
    let mut out: Vec<(&str, f64)> = Vec::new();
    let mut t = Instant::now();
    let mut lap = |out: &mut Vec<(&str, f64)>, step| {
        out.push((step, t.elapsed().as_secs_f64() * 1e3));
        t = Instant::now();
    };
    let config = Config::load(shared::Needs::ALL)
        .await
        .map_err(|e| e.to_string())?;
    lap(&mut out, "Config::load (environment, validation)");
    let app = App::new(config).await.map_err(|e| e.to_string())?;
    lap(&mut out, "App::new (clients, keys)");
    app.store().await.map_err(|e| e.to_string())?;
    lap(
        &mut out,
        "first App::store (server selection, connect, ensure indexes)",
    );
    app.store().await.map_err(|e| e.to_string())?;
    lap(&mut out, "second App::store (what later requests pay)");
    println!(
        "{}",
        serde_json::to_string(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// The parent side: `runs` fresh processes, medians per step.
pub async fn measure(config: &[(String, String)], runs: usize) -> Result<Vec<Phase>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut samples: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        let child = tokio::process::Command::new(&exe)
            .arg(FLAG)
            .env_clear()
            .envs(config.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(CHILD_LIMIT, child)
            .await
            .map_err(|_| format!("a profiled cold start took more than {CHILD_LIMIT:?}"))?
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "phase profile failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let steps: Vec<(String, f64)> = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("phase profile output: {e}"))?;
        for (i, (step, ms)) in steps.into_iter().enumerate() {
            if samples.len() <= i {
                samples.push((step, Vec::new()));
            }
            samples[i].1.push(ms);
        }
    }
    Ok(samples
        .into_iter()
        .map(|(step, mut ms)| {
            ms.sort_by(f64::total_cmp);
            Phase {
                step,
                median_ms: median_sorted(&ms),
            }
        })
        .collect())
}
