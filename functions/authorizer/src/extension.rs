//! Resolving a secret reference through the AWS Parameters and Secrets Lambda extension.
//!
//! The other functions resolve references with the AWS SDK; linking the SDK (about 2 MB of
//! code, and its credential chain at cold start) into the authorizer would undo the point of a
//! small, fast binary. The extension, a Lambda layer AWS publishes, answers on
//! `localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` (2773 by default) with the function's own
//! credentials, authenticated by the `X-Aws-Parameters-Secrets-Token` header carrying
//! `AWS_SESSION_TOKEN`. The request is plain HTTP/1.1 on loopback, made with the hyper client
//! that `lambda_runtime` already links for the Runtime API. Without a reference, nothing here
//! runs and the layer is not needed.
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use secrecy::SecretString;
use serde_json::Value;
use shared::secret_ref::Source;

/// The extension's documented default port.
pub const DEFAULT_PORT: u16 = 2773;
/// One fetch, start to end; the init phase has 10 s in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A secret is small; an answer bigger than this is not one.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Where the extension listens and the token it expects.
#[derive(Clone)]
pub struct Extension {
    host: String,
    port: u16,
    token: Option<SecretString>,
}

impl Extension {
    /// As Lambda sets it up: the port variable (or 2773) and the session token.
    pub fn from_env() -> Self {
        let port = std::env::var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_PORT);
        Self {
            host: "localhost".to_owned(),
            port,
            token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .map(SecretString::from),
        }
    }

    /// An extension at `127.0.0.1:port` (tests).
    pub fn at(port: u16, token: Option<&str>) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port,
            token: token.map(SecretString::from),
        }
    }

    /// One that is never there (tests of configurations without references).
    pub fn unreachable() -> Self {
        Self::at(1, None)
    }

    /// The secret string of a Secrets Manager secret, or the decrypted value of a parameter.
    pub async fn fetch(&self, source: &Source) -> Result<SecretString, String> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch_unbounded(source)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the Parameters and Secrets extension did not answer within {} s",
                FETCH_TIMEOUT.as_secs()
            )),
        }
    }

    async fn fetch_unbounded(&self, source: &Source) -> Result<SecretString, String> {
        use secrecy::ExposeSecret as _;
        let path = match source {
            Source::SecretsManager { arn, .. } => {
                format!("/secretsmanager/get?secretId={}", percent_encode(arn))
            }
            Source::Ssm { name } => format!(
                "/systemsmanager/parameters/get?name={}&withDecryption=true",
                percent_encode(name)
            ),
        };
        let uri = format!("http://{}:{}{path}", self.host, self.port);
        let mut request = http::Request::get(uri);
        if let Some(token) = &self.token {
            request = request.header("X-Aws-Parameters-Secrets-Token", token.expose_secret());
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("could not build the request: {e}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = client.request(request).await.map_err(|_| {
            format!(
                "the Parameters and Secrets extension is not reachable on port {} (is its \
                 layer attached? see README, \"Authorizer\")",
                self.port
            )
        })?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|_| "the extension's answer could not be read".to_owned())?
            .to_bytes();
        if !status.is_success() {
            // Its error bodies name the secret and the reason, never a value.
            return Err(format!("the extension answered {status}"));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| "the extension's answer is not JSON".to_owned())?;
        let value = match source {
            Source::SecretsManager { .. } => json.get("SecretString"),
            Source::Ssm { .. } => json.get("Parameter").and_then(|p| p.get("Value")),
        };
        match value.and_then(Value::as_str) {
            Some(v) => Ok(SecretString::from(v)),
            None => Err("the answer holds no string value (a binary secret?)".to_owned()),
        }
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, for a query value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("arn:aws:secretsmanager:eu-west-1:123:secret:a/b+c"),
            "arn%3Aaws%3Asecretsmanager%3Aeu-west-1%3A123%3Asecret%3Aa%2Fb%2Bc"
        );
        assert_eq!(
            percent_encode("/videotube/prod_x.y~"),
            "%2Fvideotube%2Fprod_x.y~"
        );
    }
}
