//! One function binary running as on Lambda: a fresh process with only the Lambda variables and
//! the function's configuration in its environment, talking to its own [`Emulator`].
//!
//! [`Running::start`] takes the clock just before the process is spawned and returns once the
//! process asks for its first invocation (the cold start the user waits for); [`Running::invoke`]
//! then drives real invocations through it, and [`Running::peak_rss_kib`] reads the kernel's
//! high-water mark of its resident memory. [`Running::stop`] kills it (by its own PID) and
//! returns everything it logged.
use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::Value;
use tokio::{io::AsyncReadExt as _, process::Child, task::JoinHandle};

use crate::runtime_api::{Emulator, Outcome};

/// How long a process may take to reach its first `invocation/next`.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long one invocation may take (register uploads two images: well under this).
const INVOKE_LIMIT: Duration = Duration::from_secs(30);

/// A function binary and the memory size its Lambda is configured with (template.yaml).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub name: String,
    pub path: PathBuf,
    pub memory_mb: u32,
}

pub struct Running {
    child: Child,
    emulator: Emulator,
    output: Vec<JoinHandle<Vec<u8>>>,
    /// From just before spawning to the arrival of the first `GET invocation/next`.
    pub to_first_next: Duration,
    /// From queueing each answered invocation to receiving its answer.
    pub invocation_times: Vec<Duration>,
}

/// An invocation's answer: the HTTP status and the JSON body the function returned.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Running {
    /// Spawns `bin` with `config` as its only configuration and waits for its first request.
    pub async fn start(bin: &Bootstrap, config: &[(String, String)]) -> Result<Self, String> {
        let emulator = Emulator::start(&bin.name)
            .await
            .map_err(|e| format!("runtime emulator: {e}"))?;
        let spawned_at = Instant::now();
        let Instance { child, output } = Instance::spawn(bin, config, &emulator.runtime_api())?;
        let mut running = Self {
            child,
            emulator,
            output,
            to_first_next: Duration::ZERO,
            invocation_times: Vec::new(),
        };
        let arrived = tokio::select! {
            arrived = running.emulator.next_request(START_LIMIT) => arrived,
            _ = running.child.wait() => None,
        };
        match arrived {
            Some(at) => {
                running.to_first_next = at.duration_since(spawned_at);
                Ok(running)
            }
            None => {
                let log = running.stop().await;
                Err(format!(
                    "{} did not ask for an invocation within {START_LIMIT:?} (or exited); its output:\n{}",
                    bin.name,
                    tail(&log, 30)
                ))
            }
        }
    }

    /// `VmHWM` (peak resident set size) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status(self.child.id()?, "VmHWM:")
    }

    /// How many threads the process has now.
    pub fn threads(&self) -> Option<u64> {
        proc_status(self.child.id()?, "Threads:")
    }

    /// Hands the process one API Gateway event and waits for its answer.
    pub async fn invoke(&mut self, event: &Value) -> Result<Answer, String> {
        let payload = event.to_string().into_bytes();
        let queued = Instant::now();
        let id = self.emulator.invoke(payload);
        let outcome = tokio::select! {
            outcome = self.emulator.outcome(INVOKE_LIMIT) => outcome,
            _ = self.child.wait() => None,
        };
        match outcome {
            Some(Outcome::Response { id: got, body }) if got == id => {
                self.invocation_times.push(queued.elapsed());
                parse_answer(&body)
            }
            Some(Outcome::Error { id, body }) => Err(format!(
                "invocation {id} failed: {}",
                String::from_utf8_lossy(&body)
            )),
            Some(Outcome::InitError { body }) => Err(format!(
                "initialisation failed: {}",
                String::from_utf8_lossy(&body)
            )),
            Some(other) => Err(format!("unexpected runtime call: {other:?}")),
            None => Err(format!(
                "no answer within {INVOKE_LIMIT:?} (or the process exited)"
            )),
        }
    }

    /// Kills the process and returns what it wrote to stdout and stderr.
    pub async fn stop(self) -> String {
        Instance {
            child: self.child,
            output: self.output,
        }
        .stop()
        .await
    }
}

/// A function process talking to any Runtime API (ours, or `cargo lambda watch`'s).
pub struct Instance {
    child: Child,
    output: Vec<JoinHandle<Vec<u8>>>,
}

impl Instance {
    /// Spawns `bin` with a clean environment: the Lambda variables and `config`, nothing else.
    pub fn spawn(
        bin: &Bootstrap,
        config: &[(String, String)],
        runtime_api: &str,
    ) -> Result<Self, String> {
        let mut cmd = tokio::process::Command::new(&bin.path);
        cmd.env_clear()
            .envs(config.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_FUNCTION_NAME", &bin.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", bin.memory_mb.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.path.display()))?;
        let output = [
            child.stdout.take().map(drain),
            child.stderr.take().map(drain),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(Self { child, output })
    }

    /// `VmHWM` (peak resident set size) in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc_status(self.child.id()?, "VmHWM:")
    }

    /// Kills the process (by its PID) and returns what it wrote to stdout and stderr.
    pub async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let mut log = Vec::new();
        for task in self.output.drain(..) {
            log.extend(task.await.unwrap_or_default());
        }
        String::from_utf8_lossy(&log).into_owned()
    }
}

/// A numeric field of `/proc/PID/status` (`VmHWM:` in kB, `Threads:`).
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn drain(mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf).await;
        buf
    })
}

/// The API Gateway (payload 2.0) response lambda_http produces: status plus a JSON body.
fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("response is not JSON: {e}"))?;
    // The authorizer answers a simple response, not an HTTP one: status 0, the JSON as the body.
    if v.get("isAuthorized").is_some() {
        return Ok(Answer { status: 0, body: v });
    }
    let status = v["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| format!("response without statusCode: {v}"))?;
    let text = v["body"].as_str().unwrap_or_default();
    let bytes = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("bad base64 body: {e}"))?
    } else {
        text.as_bytes().to_vec()
    };
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Answer { status, body })
}

/// The last `lines` lines of a log.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `init_ms` the shared cold start logs ("cold start complete"), if the log has it.
pub fn logged_init_ms(log: &str) -> Option<f64> {
    let plain = strip_ansi(log);
    let rest = plain.split("init_ms=").nth(1)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The text without ANSI escape sequences (the default Lambda log format colours field names).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~
            if chars.next() == Some('[') {
                for f in chars.by_ref() {
                    if ('@'..='~').contains(&f) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_init_time_is_read_from_the_cold_start_line() {
        let log = " INFO cold start complete init_ms=12.5\n INFO other\n";
        assert_eq!(logged_init_ms(log), Some(12.5));
        assert_eq!(logged_init_ms("nothing here"), None);
        let coloured = "\u{1b}[32m INFO\u{1b}[0m cold start complete \u{1b}[3minit_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m26.01\n";
        assert_eq!(logged_init_ms(coloured), Some(26.01));
    }

    #[test]
    fn an_api_gateway_response_yields_its_status_and_json_body() {
        let raw = br#"{"statusCode":201,"headers":{},"body":"{\"a\":1}","isBase64Encoded":false}"#;
        let a = parse_answer(raw).expect("parses");
        assert_eq!(a.status, 201);
        assert_eq!(a.body["a"], 1);
    }
}
