//! The Lambda Invoke API client: `POST {runtime}/2015-03-31/functions/{function}/invocations`
//! with the event as the body, as `cargo lambda watch` serves it on its invoke port (it builds
//! and starts the function on first use and passes the event through as it is).
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

/// The runtime that runs the functions.
#[derive(Clone)]
pub struct Runtime {
    base: String,
    client: reqwest::Client,
    timeout: Duration,
}

/// What an invocation came to.
pub enum Outcome {
    /// The Invoke API answered (a response, or a reported error: see [`crate::reply`]).
    Answered {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    /// No complete answer within the integration timeout.
    TimedOut,
    /// The runtime could not be reached, or the answer broke off.
    Unreachable(String),
}

impl Runtime {
    /// `base` is `http://HOST:PORT` of the Invoke API; `timeout` is the integration timeout.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let base = base.trim_end_matches('/').to_owned();
        let url = url::Url::parse(&base).map_err(|e| format!("--runtime {base:?}: {e}"))?;
        if url.scheme() != "http" || url.host().is_none() || url.path() != "/" {
            return Err(format!(
                "--runtime {base:?}: expected http://HOST:PORT (the invoke address of cargo lambda watch)"
            ));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            base,
            client,
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Invokes `function` with `event` and waits at most the integration timeout for the whole
    /// answer.
    pub async fn invoke(&self, function: &str, event: Vec<u8>) -> Outcome {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base);
        let exchange = async {
            let resp = self
                .client
                .post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(event)
                .send()
                .await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::TimedOut,
            Ok(Err(e)) => Outcome::Unreachable(format!("{url}: {e}")),
            Ok(Ok((status, headers, body))) => Outcome::Answered {
                status,
                headers,
                body,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_addresses() {
        let t = Duration::from_secs(1);
        assert!(Runtime::new("http://127.0.0.1:9001", t).is_ok());
        assert!(Runtime::new("http://127.0.0.1:9001/", t).is_ok());
        assert!(Runtime::new("https://127.0.0.1:9001", t).is_err());
        assert!(Runtime::new("http://127.0.0.1:9001/x", t).is_err());
        assert!(Runtime::new("127.0.0.1:9001", t).is_err());
    }
}
