//! `local-gateway`: development and tests only, never deployed. A local stand-in for API
//! Gateway (HTTP API, payload 2.0) in front of `cargo lambda watch`, so that `sourceIp` is the
//! address the client really connected from (see the crate documentation for why).
//!
//! ```text
//! local-gateway --listen 127.0.0.1:9000 [--listen [::1]:9000] --runtime http://127.0.0.1:PORT
//!               [--routes Cargo.toml] [--integration-timeout 30s]
//! ```
//!
//! Prints `listening http://ADDR` on standard output for each listener once it is bound (port 0
//! picks a free one), and one line per request on standard error.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use local_gateway::{
    DEFAULT_INTEGRATION_TIMEOUT, MAX_BODY_BYTES, invoke::Runtime, parse_duration, routes::Routes,
    server::Gateway,
};

const USAGE: &str =
    "usage: local-gateway --listen ADDR [--listen ADDR ...] --runtime http://HOST:PORT \
[--routes Cargo.toml] [--integration-timeout 30s]

Development and tests only: a local API Gateway (HTTP API, payload 2.0) stand-in that invokes the
functions through the Lambda Invoke API of `cargo lambda watch` at --runtime, with sourceIp taken
from the TCP peer address. Routes come from [workspace.metadata.lambda.watch.router] of --routes.";

struct Args {
    listen: Vec<SocketAddr>,
    runtime: String,
    routes: PathBuf,
    timeout: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = Vec::new();
    let mut runtime = None;
    let mut routes = PathBuf::from("Cargo.toml");
    let mut timeout = DEFAULT_INTEGRATION_TIMEOUT;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                let addr: SocketAddr = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?}: expected IP:PORT or [IPv6]:PORT"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--listen {v:?}: a development stand-in listens on loopback only"
                    ));
                }
                listen.push(addr);
            }
            "--runtime" => runtime = Some(value()?),
            "--routes" => routes = PathBuf::from(value()?),
            "--integration-timeout" => {
                timeout =
                    parse_duration(&value()?).map_err(|e| format!("--integration-timeout {e}"))?
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if listen.is_empty() {
        return Err("at least one --listen is needed".into());
    }
    Ok(Args {
        listen,
        runtime: runtime.ok_or("--runtime is needed")?,
        routes,
        timeout,
    })
}

fn fail(message: &str) -> ! {
    if message.is_empty() {
        println!("{USAGE}");
        std::process::exit(0);
    }
    eprintln!("local-gateway: {message}\n\n{USAGE}");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| fail(&e));
    let routes = Routes::load(&args.routes).unwrap_or_else(|e| fail(&e));
    let runtime = Runtime::new(&args.runtime, args.timeout).unwrap_or_else(|e| fail(&e));
    let gateway = Arc::new(Gateway::new(routes, runtime, MAX_BODY_BYTES));

    let mut listeners = Vec::new();
    for addr in &args.listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("local-gateway: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    for listener in listeners {
        match listener.local_addr() {
            Ok(addr) => {
                println!("listening http://{addr}");
                eprintln!(
                    "[gateway] listening on http://{addr}, functions at {} (integration timeout {:?})",
                    args.runtime, args.timeout
                );
            }
            Err(e) => {
                eprintln!("local-gateway: {e}");
                std::process::exit(1);
            }
        }
        tokio::spawn(local_gateway::server::serve(gateway.clone(), listener));
    }

    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local-gateway: {e}");
            std::process::exit(1);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&[
            "--listen",
            "127.0.0.1:9000",
            "--listen",
            "[::1]:9000",
            "--runtime",
            "http://127.0.0.1:9001",
            "--integration-timeout",
            "2s",
        ])
        .expect("args");
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.timeout, Duration::from_secs(2));
        assert_eq!(a.routes, PathBuf::from("Cargo.toml"));
        assert!(parse(&["--runtime", "http://127.0.0.1:1"]).is_err());
        assert!(parse(&["--listen", "127.0.0.1:1"]).is_err());
        assert!(parse(&["--listen", "0.0.0.0:1", "--runtime", "http://127.0.0.1:1"]).is_err());
        assert!(parse(&["--listen", "localhost:1", "--runtime", "http://127.0.0.1:1"]).is_err());
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
