//! Runs `js/check.mjs`, the Node videotube backend's `verifyJWT` middleware (npm `jsonwebtoken`
//! 9 and `mongoose` 8 with the Node user model), on tokens and a database of ours, and hands back
//! what Node saw. The tests in `tests/` make the assertions.
//!
//! Needs `node` on PATH and `js/node_modules` (installed by `dev/bin/ensure-tools all`, which
//! `make test` runs). Without them it fails loudly; it never skips.
use std::{path::PathBuf, process::Stdio, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

/// How long one run of the checker may take (it connects, reads a few documents, exits).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What the checker is asked. The secret goes over stdin, never on the command line, and is
/// left out of `Debug`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub mongodb_uri: String,
    pub db: String,
    pub access_token_secret: String,
    /// Run through the whole middleware: `jwt.verify`, then `User.findById(decoded._id)`.
    pub tokens: Vec<String>,
    /// Only `jwt.verify`: each should be refused.
    pub expect_rejected: Vec<String>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("mongodb_uri", &self.mongodb_uri)
            .field("db", &self.db)
            .field("access_token_secret", &"<redacted>")
            .field("tokens", &self.tokens)
            .field("expect_rejected", &self.expect_rejected)
            .finish()
    }
}

/// What Node made of each token of [`Input::tokens`], in order.
#[derive(Debug, Clone, Deserialize)]
pub struct Verdict {
    /// The payload `jwt.verify` returned, if it accepted the token.
    pub decoded: Option<Value>,
    /// `user.toJSON()` of what `User.findById(..).select("-password -refreshToken")` found.
    pub user: Option<Map<String, Value>>,
    /// Where the middleware gave up (`stage` is `jwt.verify` or `findById`).
    pub error: Option<NodeError>,
}

/// What `jwt.verify` made of each token of [`Input::expect_rejected`], in order.
#[derive(Debug, Clone, Deserialize)]
pub struct Rejection {
    pub rejected: bool,
    pub error: Option<NodeError>,
    /// The payload, if it was (wrongly) accepted.
    pub decoded: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeError {
    #[serde(default)]
    pub stage: Option<String>,
    pub name: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub tokens: Vec<Verdict>,
    pub expect_rejected: Vec<Rejection>,
    /// The whole answer as printed, for failure messages.
    #[serde(skip)]
    pub raw: Value,
}

/// `dev/node-compat/js`, where `check.mjs` and its pinned `node_modules` live.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Runs `node check.mjs` on `input`. Panics, saying what to do, if Node or the npm packages are
/// missing, if the checker crashes or hangs, or if its answer does not match the input.
pub async fn check(input: &Input) -> Output {
    let dir = js_dir();
    if !dir.join("node_modules/jsonwebtoken").is_dir()
        || !dir.join("node_modules/mongoose").is_dir()
    {
        panic!(
            "{} has no node_modules (jsonwebtoken, mongoose): run `dev/bin/ensure-tools all` \
             (as `make test` does), or `npm ci` in that folder.",
            dir.display()
        );
    }
    let mut child = tokio::process::Command::new("node")
        .arg("check.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `node` ({e}): the Node compatibility tests need Node.js 20 or later \
                 on PATH (on Debian: apt-get install nodejs npm), then `dev/bin/ensure-tools all`."
            )
        });
    let json = serde_json::to_vec(input).expect("input serialises");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(&json)
        .await
        .expect("write the checker's input");
    drop(stdin);
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("node check.mjs did not finish within {TIMEOUT:?}"))
        .expect("wait for node check.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node check.mjs crashed ({}); stderr:\n{stderr}\nstdout:\n{stdout}",
        out.status
    );
    let raw: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("node check.mjs printed no JSON ({e}); stdout:\n{stdout}\nstderr:\n{stderr}")
    });
    let mut parsed: Output = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("unexpected answer from node check.mjs ({e}): {raw}"));
    assert_eq!(
        (parsed.tokens.len(), parsed.expect_rejected.len()),
        (input.tokens.len(), input.expect_rejected.len()),
        "node check.mjs answered for a different number of tokens: {raw}"
    );
    parsed.raw = raw;
    parsed
}
