//! Time: where a request's went (the database, password hashing, Cloudinary), and the clock.
//!
//! [`http::respond`](crate::http::respond) runs each request inside [`scope`]; the steps that
//! cost time run inside [`step`], which opens a span named for the step (with the operation as
//! a field, never a secret or an email) and adds the step's wall time to the request's total
//! for its kind. The one log line per request then carries `db_ms`, `password_ms` and
//! `cloudinary_ms` beside `latency_ms`, so a slow request says where it waited. Concurrent steps
//! of one kind (a login's session insert beside its account update) each count in full, so a
//! kind's total can exceed the request's latency.
use std::{
    cell::Cell,
    future::Future,
    time::{Duration, Instant},
};

use tracing::Instrument as _;

/// The kinds of step whose time a request's log line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Database,
    Password,
    Cloudinary,
}

/// Time spent per kind during one request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub database: Duration,
    pub password: Duration,
    pub cloudinary: Duration,
}

tokio::task_local! {
    static SPENT: Cell<Spent>;
}

/// Runs `fut` (one request) and returns what its steps spent.
pub async fn scope<T>(fut: impl Future<Output = T>) -> (T, Spent) {
    SPENT
        .scope(Cell::new(Spent::default()), async {
            let out = fut.await;
            (out, SPENT.with(Cell::get))
        })
        .await
}

/// Runs one step of kind `kind` in a span named for it, and adds its time to the request's.
/// Outside a [`scope`] (tests calling a store function directly) only the span is kept.
pub async fn step<T>(kind: Kind, op: &'static str, fut: impl Future<Output = T>) -> T {
    let span = match kind {
        Kind::Database => tracing::info_span!("db", op),
        Kind::Password => tracing::info_span!("password", op),
        Kind::Cloudinary => tracing::info_span!("cloudinary", op),
    };
    let started = Instant::now();
    let out = fut.instrument(span).await;
    let took = started.elapsed();
    let _ = SPENT.try_with(|spent| {
        let mut s = spent.get();
        match kind {
            Kind::Database => s.database += took,
            Kind::Password => s.password += took,
            Kind::Cloudinary => s.cloudinary += took,
        }
        spent.set(s);
    });
    out
}

/// Seconds since the Unix epoch: the one clock for token times and signed requests.
pub fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds, for log fields.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_kind_adds_up_inside_a_scope_and_nothing_leaks_outside_it() {
        let pause = || tokio::time::sleep(Duration::from_millis(20));
        let ((), spent) = scope(async {
            step(Kind::Database, "a", pause()).await;
            step(Kind::Database, "b", pause()).await;
            step(Kind::Password, "c", pause()).await;
        })
        .await;
        assert!(spent.database >= Duration::from_millis(40), "{spent:?}");
        assert!(spent.password >= Duration::from_millis(20), "{spent:?}");
        assert_eq!(spent.cloudinary, Duration::ZERO);
        // Outside a scope a step still runs and returns its value.
        assert_eq!(step(Kind::Cloudinary, "d", async { 7 }).await, 7);
        let ((), fresh) = scope(async {}).await;
        assert_eq!(fresh, Spent::default(), "scopes do not share totals");
    }
}
