//! The Lambda authorizer for the rest of the platform: an API Gateway HTTP API authorizer
//! (REQUEST type, payload format 2.0, simple responses) that accepts our access tokens.
//!
//! It finds the token where our routes and the Node platform's `verifyJWT` look (the
//! `accessToken` cookie, else `Authorization: Bearer`) and verifies it with the same rules,
//! [`shared::access`]: HS256 pinned, `typ` `at+jwt`, expiry with `TOKEN_LEEWAY`, typed claims,
//! `_id` equal to `sub`. It is stateless: no database, so it cannot see a logout; a revoked
//! session's access token passes here until it expires (`ACCESS_TOKEN_EXPIRY`, 15 minutes by
//! default), plus whatever the API caches the answer for (README, "Authorizer").
//!
//! An allowed request reaches the route with `userId`, `username`, `email`, `fullName` and `sid`
//! in `requestContext.authorizer.lambda`. A refused one gets API Gateway's own 403; the caller
//! learns nothing of why, and the reason is logged, never the token.
//!
//! Configuration: `ACCESS_TOKEN_SECRET` (or a Secrets Manager / SSM reference to it, resolved
//! through the Parameters and Secrets Lambda extension, see [`extension`]) and `TOKEN_LEEWAY`.
//! Nothing else is read.
pub mod extension;

use std::{collections::HashMap, fmt, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::{
    access::{AccessVerifier, Presented, presented_token},
    duration::{DurationError, parse_duration},
    secret_ref::{is_reference, parse_reference, select},
};

use crate::extension::Extension;

pub const SECRET_VARIABLE: &str = "ACCESS_TOKEN_SECRET";
pub const LEEWAY_VARIABLE: &str = "TOKEN_LEEWAY";
const DEFAULT_LEEWAY: &str = "2s";
const MAX_LEEWAY: Duration = Duration::from_secs(60);
const MIN_SECRET_BYTES: usize = 32;

/// Everything wrong with the configuration, one line per problem, naming the variable and never
/// quoting a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for Problems {}

/// The verifier, built once per cold start.
pub struct Authorizer {
    verifier: AccessVerifier,
}

impl Authorizer {
    /// From the process environment; a reference is resolved through the extension.
    pub async fn cold_start() -> Result<Self, Problems> {
        let vars: HashMap<String, String> = [SECRET_VARIABLE, LEEWAY_VARIABLE]
            .into_iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_owned(), v)))
            .collect();
        Self::from_vars(&vars, &Extension::from_env()).await
    }

    /// From explicit variables, with `extension` resolving a reference.
    pub async fn from_vars(
        vars: &HashMap<String, String>,
        extension: &Extension,
    ) -> Result<Self, Problems> {
        let mut problems = Vec::new();
        let secret = secret(vars, extension)
            .await
            .map_err(|m| problems.push(format!("{SECRET_VARIABLE} {m}")))
            .ok();
        let leeway = leeway(vars)
            .map_err(|m| problems.push(format!("{LEEWAY_VARIABLE} {m}")))
            .ok();
        match (secret, leeway) {
            (Some(secret), Some(leeway)) if problems.is_empty() => Ok(Self {
                verifier: AccessVerifier::new(secret.expose_secret().as_bytes(), leeway),
            }),
            _ => Err(Problems(problems)),
        }
    }

    /// The simple response for one authorizer event (`{"isAuthorized": ..., "context": ...}`).
    /// Never fails: an event it cannot read is a refusal.
    pub fn authorize(&self, event: &Value) -> Value {
        match self.caller(event) {
            Ok(context) => json!({"isAuthorized": true, "context": context}),
            Err(reason) => {
                tracing::info!(reason, "request refused");
                json!({"isAuthorized": false})
            }
        }
    }

    fn caller(&self, event: &Value) -> Result<Value, &'static str> {
        let headers = event.get("headers").and_then(Value::as_object);
        let header = |name: &str| headers.and_then(|h| h.get(name)).and_then(Value::as_str);
        // Payload 2.0 puts cookies in `cookies`; a `cookie` header is read too, in case.
        let cookies = event
            .get("cookies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .chain(header("cookie"));
        let token = match presented_token(cookies, header("authorization")) {
            Presented::Missing => return Err("no token"),
            Presented::Oversized => return Err("oversized token"),
            Presented::Token(t) => t,
        };
        let claims = self.verifier.verify(token).map_err(|e| match e {
            shared::access::TokenError::Expired => "expired token",
            shared::access::TokenError::WrongType => "wrong typ",
            shared::access::TokenError::Inconsistent => "_id differs from sub",
            _ => "invalid token",
        })?;
        Ok(json!({
            "userId": claims.sub,
            "username": claims.username,
            "email": claims.email,
            "fullName": claims.full_name,
            "sid": claims.sid,
        }))
    }
}

/// The secret: the value itself, or what its reference points to; at least 32 bytes, without
/// surrounding whitespace (nearly always a pasted newline).
async fn secret(
    vars: &HashMap<String, String>,
    extension: &Extension,
) -> Result<SecretString, String> {
    let raw = match vars.get(SECRET_VARIABLE) {
        Some(v) if !v.trim().is_empty() => v,
        _ => return Err("is required".to_owned()),
    };
    let value = if is_reference(raw) {
        let reference = match parse_reference(raw) {
            Some(Ok(r)) => r,
            Some(Err(m)) => return Err(m),
            None => return Err("is not a reference".to_owned()),
        };
        let fetched = extension
            .fetch(&reference.source)
            .await
            .map_err(|m| format!("could not be resolved from {}: {m}", reference.source))?;
        select(&fetched, reference.json_key.as_deref())
            .map_err(|m| format!("could not be resolved from {}: {m}", reference.source))?
    } else {
        SecretString::from(raw.as_str())
    };
    let text = value.expose_secret();
    if text.trim() != text {
        return Err(
            "has leading or trailing whitespace (often a pasted newline); remove it".into(),
        );
    }
    if text.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "must be at least {MIN_SECRET_BYTES} bytes (it is {})",
            text.len()
        ));
    }
    Ok(value)
}

fn leeway(vars: &HashMap<String, String>) -> Result<Duration, String> {
    let text = vars
        .get(LEEWAY_VARIABLE)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_LEEWAY);
    let d = match parse_duration(text) {
        Ok(d) => d,
        Err(DurationError::Zero) => Duration::ZERO,
        Err(e) => return Err(e.to_string()),
    };
    if d > MAX_LEEWAY {
        return Err("is too long: at most 60s".to_owned());
    }
    // JWT times are whole seconds, and so is the decoder's leeway: `500ms` would be 0.
    if d.subsec_nanos() != 0 {
        return Err("must be a whole number of seconds".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    async fn build(pairs: &[(&str, &str)]) -> Result<Authorizer, Problems> {
        Authorizer::from_vars(&vars(pairs), &Extension::unreachable()).await
    }

    #[tokio::test]
    async fn every_problem_is_reported_at_once_without_the_secret() {
        let err = build(&[(SECRET_VARIABLE, "short-secret"), (LEEWAY_VARIABLE, "2m")])
            .await
            .err()
            .expect("refused");
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(
            err.to_string()
                .contains("ACCESS_TOKEN_SECRET must be at least 32 bytes")
        );
        assert!(err.to_string().contains("TOKEN_LEEWAY is too long"));
        assert!(!err.to_string().contains("short-secret"));
        let err = build(&[]).await.err().expect("refused");
        assert_eq!(err.0, ["ACCESS_TOKEN_SECRET is required"]);
        let padded = format!("{}\n", "s".repeat(40));
        assert!(build(&[(SECRET_VARIABLE, &padded)]).await.is_err());
        assert!(
            build(&[(SECRET_VARIABLE, &"s".repeat(40)), (LEEWAY_VARIABLE, "15")])
                .await
                .is_err()
        );
        let err = build(&[
            (SECRET_VARIABLE, &"s".repeat(40)),
            (LEEWAY_VARIABLE, "1500ms"),
        ])
        .await
        .err()
        .expect("refused");
        assert_eq!(err.0, ["TOKEN_LEEWAY must be a whole number of seconds"]);
    }

    #[tokio::test]
    async fn defaults_and_a_zero_leeway_are_accepted() {
        let secret = "s".repeat(32);
        assert!(build(&[(SECRET_VARIABLE, &secret)]).await.is_ok());
        assert!(
            build(&[(SECRET_VARIABLE, &secret), (LEEWAY_VARIABLE, "0s")])
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_malformed_reference_is_reported_as_such() {
        let err = build(&[(SECRET_VARIABLE, "arn:aws:s3:::bucket")])
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("not a Secrets Manager secret ARN"),
            "{err}"
        );
        let err = build(&[(SECRET_VARIABLE, "ssm:/x#")])
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("empty #key"), "{err}");
    }

    #[tokio::test]
    async fn an_event_it_cannot_read_is_a_refusal() {
        let a = build(&[(SECRET_VARIABLE, &"s".repeat(32))])
            .await
            .expect("built");
        for event in [
            json!(null),
            json!([]),
            json!({"headers": 5, "cookies": "x"}),
            json!({}),
        ] {
            assert_eq!(
                a.authorize(&event),
                json!({"isAuthorized": false}),
                "{event}"
            );
        }
    }
}
