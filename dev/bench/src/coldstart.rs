//! Cold start: from spawning a release binary to its first `GET /runtime/invocation/next`, for
//! every function and the hello-world baseline, in rounds that rotate their order.
//!
//! Each start is a fresh process with the real configuration and the real database reachable,
//! so the figure includes everything a function does before it can serve: loading and checking
//! its configuration, building its clients, sweeping staged leftovers and ensuring indexes. The
//! functions also log how long their own `App::cold_start` took (`init_ms`), which splits the
//! figure into "process and runtime" and "our initialisation".
use std::time::Duration;

use serde::Serialize;

use crate::{
    process::{Bootstrap, Running, logged_init_ms},
    stats::{Summary, median_sorted},
};

/// Unrecorded rounds first: they fault the binaries into the page cache.
const WARMUP_ROUNDS: usize = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub function: String,
    pub to_first_next: Summary,
    /// Median of the `init_ms` the function logged (None for the baseline, which logs none).
    pub logged_init_median_ms: Option<f64>,
    /// Median of this function divided by the baseline's median.
    pub vs_baseline: f64,
}

/// `bins[0]` is the baseline.
pub async fn measure(
    bins: &[Bootstrap],
    config: &[(String, String)],
    rounds: usize,
) -> Result<Vec<ColdStart>, String> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); bins.len()];
    let mut inits: Vec<Vec<f64>> = vec![Vec::new(); bins.len()];
    for round in 0..WARMUP_ROUNDS + rounds {
        for k in 0..bins.len() {
            let i = (round + k) % bins.len();
            let running = Running::start(&bins[i], config).await?;
            let took = running.to_first_next;
            let log = running.stop().await;
            if round >= WARMUP_ROUNDS {
                samples[i].push(took);
                inits[i].extend(logged_init_ms(&log));
            }
        }
    }
    let summaries: Vec<Summary> = samples.iter().map(|s| Summary::of(s)).collect();
    let baseline = summaries[0].median_ms;
    Ok(bins
        .iter()
        .zip(summaries)
        .zip(inits)
        .map(|((bin, s), mut init)| {
            init.sort_by(f64::total_cmp);
            ColdStart {
                function: bin.name.clone(),
                vs_baseline: s.median_ms / baseline,
                logged_init_median_ms: (!init.is_empty()).then(|| median_sorted(&init)),
                to_first_next: s,
            }
        })
        .collect())
}
