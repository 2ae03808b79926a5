//! Reading variables: each read either yields a value or records a problem naming the
//! variable, so one pass reports everything that is wrong.
use std::{collections::HashMap, time::Duration};

use secrecy::SecretString;

use super::{ConfigProblem, VARIABLES, is_reference, values};
use crate::duration::{DurationError, format_duration, parse_duration};

/// Reads variables from the map and records problems; every method that returns `None`
/// has recorded one.
pub(super) struct Reader<'a> {
    pub(super) vars: &'a HashMap<String, String>,
    pub(super) problems: Vec<ConfigProblem>,
}

/// Extra limits for one duration variable.
#[derive(Clone, Copy)]
pub(super) struct DurationRule {
    pub(super) allow_zero: bool,
    pub(super) max: Duration,
    /// JWT `exp` and cookie `Max-Age` count whole seconds; a fractional lifetime would be
    /// silently truncated.
    pub(super) whole_seconds: bool,
}

/// A Lambda invocation lasts at most 15 minutes, so a longer timeout can never fire.
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Caps token and session lifetimes so `now + lifetime` can never overflow a JWT `exp` or a
/// BSON date, whatever the variable says.
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(100 * 31_557_600);
/// A longer grace lets a stolen refresh token be replayed for longer without revoking the
/// session; the grace exists only for a client racing itself.
pub(super) const MAX_REUSE_GRACE: Duration = Duration::from_secs(5 * 60);
pub(super) const MAX_LEEWAY: Duration = Duration::from_secs(60);
pub(super) const MIN_SECRET_BYTES: usize = 32;

pub(super) const TIMEOUT: DurationRule = DurationRule {
    allow_zero: false,
    max: MAX_TIMEOUT,
    whole_seconds: false,
};
pub(super) const LIFETIME: DurationRule = DurationRule {
    allow_zero: false,
    max: MAX_LIFETIME,
    whole_seconds: true,
};

impl<'a> Reader<'a> {
    pub(super) fn report(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(variable, message));
    }

    /// The trimmed value, or `None` if unset or blank.
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value, else the default from [`VARIABLES`], through `parse`.
    pub(super) fn value<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let default = VARIABLES
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.default);
        let (text, is_default) = match (self.get(name), default) {
            (Some(text), _) => (text, false),
            (None, Some(default)) => (default, true),
            (None, None) => {
                self.report(name, "is required");
                return None;
            }
        };
        match parse(text) {
            Ok(value) => Some(value),
            Err(message) if is_default => {
                self.report(
                    name,
                    format!("built-in default is invalid (a bug): {message}"),
                );
                None
            }
            Err(message) => {
                self.report(name, message);
                None
            }
        }
    }

    pub(super) fn duration(&mut self, name: &str, rule: DurationRule) -> Option<Duration> {
        self.value(name, |text| {
            let d = match parse_duration(text) {
                Ok(d) => d,
                Err(DurationError::Zero) if rule.allow_zero => Duration::ZERO,
                Err(e) => return Err(format!("{}: {e}", values::excerpt(text))),
            };
            if d > rule.max {
                return Err(format!(
                    "{} is too long: at most {}",
                    values::excerpt(text),
                    format_duration(rule.max)
                ));
            }
            if rule.whole_seconds && d.subsec_nanos() != 0 {
                return Err(format!(
                    "{} must be a whole number of seconds (token and cookie lifetimes are \
                     counted in seconds)",
                    values::excerpt(text)
                ));
            }
            Ok(d)
        })
    }

    pub(super) fn bytes(&mut self, name: &str) -> Option<u64> {
        self.value(name, values::parse_byte_size)
    }

    /// A secret value, byte for byte, or `None` when unset or blank (nothing reported).
    /// Reports unresolved references and surrounding whitespace; never quotes the value.
    pub(super) fn secret_if_set(&mut self, name: &str) -> Option<Result<SecretString, ()>> {
        let raw = self.vars.get(name)?;
        if raw.trim().is_empty() {
            return None;
        }
        if is_reference(raw) {
            self.report(
                name,
                "is a secret reference that was not resolved: Config::load resolves ARNs and \
                 ssm: references, Config::from_vars expects resolved values",
            );
            return Some(Err(()));
        }
        if raw.trim() != raw {
            self.report(
                name,
                "has leading or trailing whitespace (often a pasted newline); remove it",
            );
            return Some(Err(()));
        }
        Some(Ok(SecretString::from(raw.as_str())))
    }

    pub(super) fn secret(&mut self, name: &str, hint: &str) -> Option<SecretString> {
        match self.secret_if_set(name) {
            Some(result) => result.ok(),
            None => {
                self.report(name, format!("is required{hint}"));
                None
            }
        }
    }
}
