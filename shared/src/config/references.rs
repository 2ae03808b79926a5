//! Secret references: a secret-bearing variable may hold a pointer to the secret instead of the
//! secret itself, resolved once at cold start.
//!
//! Two forms are recognised, in the variables listed in [`SECRET_VARIABLES`] only:
//!
//! - `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME` — a Secrets Manager secret, read
//!   with `GetSecretValue` (current version) in the region named by the ARN, so a function can
//!   read a secret kept in another region.
//! - `ssm:NAME` (e.g. `ssm:/videotube/prod/mongodb-uri`) — a Systems Manager parameter, read with
//!   `GetParameter` and `WithDecryption=true`, so `SecureString` parameters arrive decrypted.
//!
//! Either form may end in `#KEY`: the secret (or parameter) must then be a JSON object and the
//! value is the string under its top-level `KEY`, e.g.
//! `arn:aws:secretsmanager:eu-west-1:123456789012:secret:videotube-AbCdEf#accessTokenSecret`.
//! Neither ARNs nor parameter names can contain `#`, so the split is unambiguous. Without a key,
//! a secret that is a JSON object is refused: using `{"a": ...}` verbatim as a token secret would
//! "work" and be wrong.
//!
//! Values are used exactly as stored (no trimming); validation then rejects stray whitespace.
//! Each distinct secret or parameter is fetched once, all of them concurrently, each bounded by
//! [`FETCH_TIMEOUT`]. Failures become [`ConfigProblem`]s naming the variable and the reference
//! (an ARN or parameter name is an identifier, not a secret); no message contains a value.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use secrecy::{ExposeSecret, SecretString};

use super::ConfigProblem;
pub use crate::secret_ref::is_reference;
use crate::secret_ref::{Reference, Source, parse_reference, select};

/// The variables whose values may be references. Other variables are never resolved: they are
/// not secret, so there is no reason to keep them in a secret store.
pub const SECRET_VARIABLES: [&str; 6] = [
    "MONGODB_URI",
    "ACCESS_TOKEN_SECRET",
    "REFRESH_TOKEN_SECRET",
    "NODE_REFRESH_TOKEN_SECRET",
    "CLOUDINARY_URL",
    "CLOUDINARY_API_SECRET",
];

/// Upper bound for one fetch, retries included. Lambda gives the whole init phase 10 s; a
/// secret store that has not answered in 5 s is better reported than waited for.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// True if any secret-bearing variable in `vars` holds a reference.
pub fn has_references(vars: &HashMap<String, String>) -> bool {
    SECRET_VARIABLES
        .iter()
        .filter_map(|name| vars.get(*name))
        .any(|value| is_reference(value))
}

/// Resolves every reference among the [`SECRET_VARIABLES`] in `vars`, replacing each with the
/// secret it points to. Variables that cannot be resolved keep their reference and get a
/// problem; [`super::Config::from_vars`] refuses unresolved references, so they never become a
/// secret by accident.
///
/// `sdk` supplies region, credentials and endpoint (`AWS_ENDPOINT_URL` when loaded from the
/// environment), so tests can point it at a local emulator.
pub async fn resolve_references(
    vars: &mut HashMap<String, String>,
    sdk: &SdkConfig,
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut wanted: Vec<(&'static str, Reference)> = Vec::new();
    for variable in SECRET_VARIABLES {
        let Some(value) = vars.get(variable) else {
            continue;
        };
        match parse_reference(value) {
            None => {}
            Some(Ok(reference)) => wanted.push((variable, reference)),
            Some(Err(message)) => problems.push(ConfigProblem::new(variable, message)),
        }
    }
    if wanted.is_empty() {
        return problems;
    }

    let mut sources: Vec<&Source> = Vec::new();
    for (_, reference) in &wanted {
        if !sources.contains(&&reference.source) {
            sources.push(&reference.source);
        }
    }
    let fetched =
        futures::future::join_all(sources.iter().map(|source| fetch_bounded(sdk, source))).await;
    let fetched: HashMap<&Source, Result<SecretString, String>> =
        sources.into_iter().zip(fetched).collect();

    for (variable, reference) in &wanted {
        let outcome = match fetched.get(&reference.source) {
            Some(Ok(raw)) => select(raw, reference.json_key.as_deref()),
            Some(Err(message)) => Err(message.clone()),
            None => Err("was not fetched (internal error)".to_owned()),
        };
        match outcome {
            Ok(value) => {
                tracing::info!(
                    variable = *variable,
                    source = %reference.source,
                    "resolved a secret reference"
                );
                vars.insert((*variable).to_owned(), value.expose_secret().to_owned());
            }
            Err(message) => problems.push(ConfigProblem::new(
                *variable,
                format!("could not be resolved from {}: {message}", reference.source),
            )),
        }
    }
    problems
}

async fn fetch_bounded(sdk: &SdkConfig, source: &Source) -> Result<SecretString, String> {
    match tokio::time::timeout(FETCH_TIMEOUT, fetch(sdk, source)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {}",
            crate::duration::format_duration(FETCH_TIMEOUT)
        )),
    }
}

async fn fetch(sdk: &SdkConfig, source: &Source) -> Result<SecretString, String> {
    match source {
        Source::SecretsManager { arn, region } => {
            let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
                .region(Region::new(region.clone()))
                .build();
            let output = aws_sdk_secretsmanager::Client::from_conf(config)
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            match output.secret_string() {
                Some(value) => Ok(SecretString::from(value)),
                None if output.secret_binary().is_some() => {
                    Err("the secret holds binary data; store it as a string".to_owned())
                }
                None => Err("the secret has no value".to_owned()),
            }
        }
        Source::Ssm { name } => {
            let output = aws_sdk_ssm::Client::new(sdk)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            output
                .parameter()
                .and_then(|p| p.value())
                .map(SecretString::from)
                .ok_or_else(|| "the parameter has no value".to_owned())
        }
    }
}

/// A one-line description of an AWS error: the service's code and message when there is one
/// (neither contains secret values), else the whole cause chain (e.g. a connection failure).
fn describe(error: &(impl ProvideErrorMetadata + Error + 'static)) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(error).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:videotube/prod-AbCdEf";

    #[test]
    fn plain_values_are_not_references() {
        for value in [
            "mongodb://localhost",
            "a-perfectly-ordinary-32-byte-secret!!",
            "cloudinary://1:2@c",
            "",
            "ARN:aws:secretsmanager:x",
            " ssm:/x",
        ] {
            assert_eq!(parse_reference(value), None, "{value:?}");
        }
    }

    #[test]
    fn secrets_manager_arns_are_parsed_with_their_region_and_optional_key() {
        assert_eq!(
            parse_reference(ARN),
            Some(Ok(Reference {
                source: Source::SecretsManager {
                    arn: ARN.to_owned(),
                    region: "eu-west-1".to_owned()
                },
                json_key: None,
            }))
        );
        let with_key = format!("{ARN}#accessTokenSecret");
        assert_eq!(
            parse_reference(&with_key),
            Some(Ok(Reference {
                source: Source::SecretsManager {
                    arn: ARN.to_owned(),
                    region: "eu-west-1".to_owned()
                },
                json_key: Some("accessTokenSecret".to_owned()),
            }))
        );
        let china = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x";
        assert!(matches!(parse_reference(china), Some(Ok(_))));
    }

    #[test]
    fn ssm_references_are_parsed_with_an_optional_key() {
        assert_eq!(
            parse_reference("ssm:/videotube/prod/uri"),
            Some(Ok(Reference {
                source: Source::Ssm {
                    name: "/videotube/prod/uri".to_owned()
                },
                json_key: None,
            }))
        );
        assert_eq!(
            parse_reference("ssm:/videotube/creds#uri"),
            Some(Ok(Reference {
                source: Source::Ssm {
                    name: "/videotube/creds".to_owned()
                },
                json_key: Some("uri".to_owned()),
            }))
        );
    }

    #[test]
    fn malformed_references_are_reported_not_used() {
        for value in [
            "arn:aws:ssm:eu-west-1:123456789012:parameter/x",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:x",
            "arn:aws:secretsmanager::123456789012:secret:x",
            "arn:aws:secretsmanager:eu-west-1:123456789012:key:x",
            "arn:aws:secretsmanager:eu-west-1",
            "arn:",
            "ssm:",
            "ssm:/a b",
            "ssm:/x#",
        ] {
            assert!(
                matches!(parse_reference(value), Some(Err(_))),
                "{value:?}: {:?}",
                parse_reference(value)
            );
        }
    }

    #[test]
    fn json_keys_select_string_values_only() {
        let raw = SecretString::from(r#"{"a": "alpha", "n": 5}"#);
        assert_eq!(select(&raw, Some("a")).unwrap().expose_secret(), "alpha");
        assert!(select(&raw, Some("n")).is_err());
        assert!(select(&raw, Some("missing")).is_err());
        assert!(select(&raw, None).is_err(), "a JSON object needs a key");

        let plain = SecretString::from("not json at all, definitely secret");
        assert_eq!(
            select(&plain, None).unwrap().expose_secret(),
            plain.expose_secret()
        );
        let message = select(&plain, Some("a")).unwrap_err();
        assert!(!message.contains("definitely"), "{message}");
    }

    #[test]
    fn has_references_looks_only_at_secret_variables() {
        let mut vars = HashMap::new();
        vars.insert(
            "MONGODB_DB".to_owned(),
            "ssm:/not-a-secret-variable".to_owned(),
        );
        assert!(!has_references(&vars));
        vars.insert("ACCESS_TOKEN_SECRET".to_owned(), "ssm:/x".to_owned());
        assert!(has_references(&vars));
    }
}
