//! The syntax of secret references (`arn:…:secretsmanager:…[#KEY]`, `ssm:/path[#KEY]`) and the
//! choice of a value from what the store returned: one rule, shared by the functions' resolver
//! (`config::references`, through the AWS SDK) and the authorizer's (through the Parameters and
//! Secrets Lambda extension). No I/O here, and nothing heavy: the authorizer links it.
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

const SECRETS_MANAGER_PREFIX: &str = "arn:";
const SSM_PREFIX: &str = "ssm:";

/// True if `value` is meant as a reference (well-formed or not). Used to decide whether the
/// AWS SDK is needed at all, and by validation to refuse references nobody resolved.
pub fn is_reference(value: &str) -> bool {
    value.starts_with(SECRETS_MANAGER_PREFIX) || value.starts_with(SSM_PREFIX)
}

/// Where a secret lives; one fetch per distinct source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    SecretsManager { arn: String, region: String },
    Ssm { name: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::SecretsManager { arn, .. } => write!(f, "Secrets Manager secret {arn}"),
            Source::Ssm { name } => write!(f, "SSM parameter {name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub source: Source,
    pub json_key: Option<String>,
}

/// Parses a reference; `None` if `value` is a plain value.
pub fn parse_reference(value: &str) -> Option<Result<Reference, String>> {
    if !is_reference(value) {
        return None;
    }
    let (locator, json_key) = match value.split_once('#') {
        Some((_, "")) => {
            return Some(Err(
                "is a secret reference ending in an empty #key: name the JSON key after #"
                    .to_owned(),
            ));
        }
        Some((locator, key)) => (locator, Some(key.to_owned())),
        None => (value, None),
    };
    let source = if let Some(name) = locator.strip_prefix(SSM_PREFIX) {
        parse_parameter_name(name)
    } else {
        parse_secret_arn(locator)
    };
    Some(source.map(|source| Reference { source, json_key }))
}

/// Parameter names: letters, digits and `_ . - /`, at most 2048 characters (AWS's limits).
fn parse_parameter_name(name: &str) -> Result<Source, String> {
    let valid = !name.is_empty()
        && name.len() <= 2048
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if valid {
        Ok(Source::Ssm {
            name: name.to_owned(),
        })
    } else {
        Err(
            "is an ssm: reference without a valid parameter name: expected \
             ssm:/path/to/parameter (letters, digits, _ . - /)"
                .to_owned(),
        )
    }
}

/// `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`, the ARN the console shows.
fn parse_secret_arn(arn: &str) -> Result<Source, String> {
    let shape = "is an ARN but not a Secrets Manager secret ARN: expected \
                 arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME (or use ssm:/parameter)";
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let [_, partition, service, region, account, kind, name] = parts.as_slice() else {
        return Err(shape.to_owned());
    };
    let well_formed = !partition.is_empty()
        && *service == "secretsmanager"
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && *kind == "secret"
        && !name.is_empty();
    if well_formed {
        Ok(Source::SecretsManager {
            arn: arn.to_owned(),
            region: (*region).to_owned(),
        })
    } else {
        Err(shape.to_owned())
    }
}

/// The value to use: the raw secret, or the string under `json_key` in a JSON object secret.
/// Messages never include the secret or `serde_json`'s errors (which can quote the input).
pub fn select(raw: &SecretString, json_key: Option<&str>) -> Result<SecretString, String> {
    let object =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.expose_secret())
            .ok();
    let Some(key) = json_key else {
        return match object {
            Some(_) => Err(
                "the value is a JSON object: add #KEY to the reference to pick one of its keys"
                    .to_owned(),
            ),
            None => Ok(raw.clone()),
        };
    };
    let Some(object) = object else {
        return Err(format!(
            "the value is not a JSON object, so #{key} cannot select from it"
        ));
    };
    match object.get(key) {
        Some(serde_json::Value::String(value)) => Ok(SecretString::from(value.as_str())),
        Some(_) => Err(format!("the JSON key {key:?} does not hold a string")),
        None => Err(format!("the JSON object has no key {key:?}")),
    }
}
