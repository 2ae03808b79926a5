//! Order statistics over samples in milliseconds: what the report quotes (medians, p90, p99).
//!
//! Machines running the bench are noisy, so the report leans on medians and on ratios of medians
//! measured in one alternating run, never on single timings or means.
use std::time::Duration;

use serde::Serialize;

/// The summary of one series of timings.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Self {
            n: ms.len(),
            median_ms: median_sorted(&ms),
            p90_ms: nearest_rank(&ms, 0.90),
            p99_ms: nearest_rank(&ms, 0.99),
            min_ms: ms.first().copied().unwrap_or(f64::NAN),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The median of sorted values (mean of the middle two for an even count); NaN when empty.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The nearest-rank percentile (`q` in 0..=1) of sorted values; NaN when empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median_sorted(&[1.0, 2.0, 3.0, 10.0]), 2.5);
        assert_eq!(median_sorted(&[1.0, 2.0, 30.0]), 2.0);
        assert!(median_sorted(&[]).is_nan());
    }

    #[test]
    fn nearest_rank_percentiles_pick_a_real_sample() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.50), 50.0);
        assert_eq!(nearest_rank(&v, 0.99), 99.0);
        assert_eq!(nearest_rank(&v, 1.0), 100.0);
        assert_eq!(nearest_rank(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn a_summary_sorts_its_samples_first() {
        let s = Summary::of(&[
            Duration::from_millis(3),
            Duration::from_millis(1),
            Duration::from_millis(2),
        ]);
        assert_eq!((s.n, s.median_ms, s.min_ms, s.max_ms), (3, 2.0, 1.0, 3.0));
    }
}
