//! # local-gateway: a local API Gateway (HTTP API) stand-in
//!
//! **Development and tests only. Never deployed, never part of a function.** In production the
//! functions sit behind the real API Gateway HTTP API that `template.yaml` declares; this crate
//! exists only so that `make dev`, `make test` and the end-to-end tests reach the functions the
//! way production does.
//!
//! Why it exists: `cargo lambda watch` 1.9.2 builds the payload 2.0 event itself and hard-codes
//! `requestContext.http.sourceIp` to `127.0.0.1` (and `userAgent` to `cargo-lambda`), whatever
//! address the client connects from, and ignores `X-Forwarded-For`. The login and
//! change-password throttles count by `sourceIp` and by nothing a client can write, so tests and
//! developers need another way to act as different addresses: connect from a different loopback
//! address (`127.0.0.x`, `::1`). This gateway listens on loopback, builds the event as API
//! Gateway does, with `sourceIp` taken from the TCP peer address of the connection, and invokes
//! the function through the Lambda Invoke API that `cargo lambda watch` serves
//! (`POST /2015-03-31/functions/{name}/invocations`), which passes the event through untouched.
//!
//! What it emulates: route matching on the `[workspace.metadata.lambda.watch.router]` table of
//! the root `Cargo.toml` (the one route table, checked against `template.yaml` by
//! `dev/contract`), with API Gateway's 404 for an unmatched route; the payload 2.0 request event
//! ([`event`]); the payload 2.0 response, including the inferred format ([`reply`]); and API
//! Gateway's own answers for a function error (500), an integration timeout (503) and a request
//! body over 10 MB (413). What it does not: TLS, custom domains and stages, CORS, authorizers,
//! throttling, access logs, header size limits, Lambda's 6 MB invocation payload limit.
pub mod event;
pub mod invoke;
pub mod reply;
pub mod routes;
pub mod server;

use std::time::Duration;

/// API Gateway HTTP API's largest request body: 10 MB, taken here as 10 MiB.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// API Gateway HTTP API's default (and largest) integration timeout.
pub const DEFAULT_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses `30s`, `500ms`, `2m`: a positive whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if d.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in [
            "",
            "s",
            "30",
            "0s",
            "1h",
            "-1s",
            "1.5s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
