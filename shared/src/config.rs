//! Typed configuration, read from the environment once per cold start.
//!
//! [`Config::load`] snapshots the variables listed in [`VARIABLES`], resolves secret references
//! (see [`resolve_references`]) and validates everything with [`Config::from_vars`]. Validation
//! collects every problem before failing, so one cold start tells the operator everything that
//! is wrong; each [`ConfigProblem`] names its variable and never contains a secret value.
//!
//! Conventions shared by every variable:
//! - An unset or blank variable takes its default (see [`VARIABLES`]); a required one is
//!   reported. Non-secret values are trimmed; secret values are used byte for byte, and leading
//!   or trailing whitespace in them is reported (it is nearly always a pasted newline).
//! - Durations use the `ms` package syntax of [`crate::duration::parse_duration`].
//! - Sizes are byte counts, optionally with a binary suffix: `2097152`, `2MiB`, `4.5 MiB`,
//!   `1KiB`, `512B` (`KB`/`MB` are refused as ambiguous).

mod reader;
mod references;
mod sections;
mod values;
mod variables;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use cookie::SameSite;
use secrecy::SecretString;

use self::{
    reader::Reader,
    sections::{cloudinary, cookies, mongo, node_compat, throttle, tokens, upload},
};

pub use references::{
    FETCH_TIMEOUT, SECRET_VARIABLES, has_references, is_reference, resolve_references,
};
pub use variables::{VARIABLES, Variable};

/// Everything the functions need to know about their environment. The sections a function does
/// not use (see [`Needs`]) are not read, not required and `None` here.
#[derive(Debug, Clone)]
pub struct Config {
    pub mongodb: MongoConfig,
    pub tokens: TokenConfig,
    /// `Some` exactly when [`Needs::images`].
    pub cloudinary: Option<CloudinaryConfig>,
    /// `Some` exactly when [`Needs::images`].
    pub upload: Option<UploadConfig>,
    pub cookies: CookieConfig,
    pub node: NodeCompatConfig,
    /// Read when [`Needs::throttles`]; otherwise the defaults, switched off.
    pub throttle: ThrottleConfig,
}

/// What a function uses of the configuration: each is given, and granted, only that. Every
/// function reads the database settings, the token lifetimes, the cookie settings and the Node
/// switches (all with defaults); the secrets, the Cloudinary account and the password throttles
/// only where needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `ACCESS_TOKEN_SECRET`: signs or verifies access tokens.
    pub access_tokens: bool,
    /// `REFRESH_TOKEN_SECRET`: signs and verifies refresh tokens (login, refresh).
    pub refresh_tokens: bool,
    /// `CLOUDINARY_*` and `UPLOAD_*`: stages and uploads images.
    pub images: bool,
    /// `THROTTLE_*`: checks passwords (login, change-password) or Node-era refresh tokens.
    pub throttles: bool,
    /// `NODE_REFRESH_TOKEN_SECRET`: exchanges Node-era refresh tokens (refresh).
    pub node_exchange: bool,
}

impl Needs {
    /// Everything: tests, tools and the bench.
    pub const ALL: Needs = Needs {
        access_tokens: true,
        refresh_tokens: true,
        images: true,
        throttles: true,
        node_exchange: true,
    };
    /// login: both kinds of token and the throttles.
    pub const LOGIN: Needs = Needs {
        node_exchange: false,
        ..Self::SESSIONS
    };
    /// refresh: both kinds of token, the Node-era exchange and the throttles it is behind.
    pub const SESSIONS: Needs = Needs {
        access_tokens: true,
        refresh_tokens: true,
        images: false,
        throttles: true,
        node_exchange: true,
    };
    /// register: images, no tokens (it signs nobody in) and no password check (it hashes one).
    pub const REGISTER: Needs = Needs {
        access_tokens: false,
        refresh_tokens: false,
        images: true,
        throttles: false,
        node_exchange: false,
    };
    /// logout, current-user, update-account: access tokens only.
    pub const ACCOUNT: Needs = Needs {
        access_tokens: true,
        refresh_tokens: false,
        images: false,
        throttles: false,
        node_exchange: false,
    };
    /// change-password: access tokens and the throttles.
    pub const CHANGE_PASSWORD: Needs = Needs {
        throttles: true,
        ..Self::ACCOUNT
    };
    /// avatar, cover-image: access tokens and images.
    pub const IMAGES: Needs = Needs {
        access_tokens: true,
        refresh_tokens: false,
        images: true,
        throttles: false,
        node_exchange: false,
    };

    /// Whether a function with these needs reads `variable` at all.
    pub fn reads(&self, variable: &str) -> bool {
        match variable {
            "ACCESS_TOKEN_SECRET" => self.access_tokens,
            "REFRESH_TOKEN_SECRET" => self.refresh_tokens,
            v if v.starts_with("CLOUDINARY_") || v.starts_with("UPLOAD_") => self.images,
            v if v.starts_with("THROTTLE_") => self.throttles,
            "NODE_REFRESH_TOKEN_SECRET" => self.node_exchange,
            _ => true,
        }
    }
}

/// The switch-over from the Node version: what is accepted from it while its accounts and
/// sessions move over. Both default to on; turn them off once the migration is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCompatConfig {
    /// Exchange a refresh token the Node version issued, once, for a session of ours.
    pub refresh_exchange: bool,
    /// Look an email up case-insensitively when it is not stored lowercased (Node-era accounts
    /// that `migrate-node --apply` has not lowercased yet).
    pub email_fallback: bool,
}

/// Password-guessing throttles (see [`crate::throttle`] for how they are kept and enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Failures of one address at one account before each next check waits.
    pub free_failures: u32,
    /// The first wait after the free failures; each further failure doubles it.
    pub delay: Duration,
    /// At least `delay`.
    pub max_delay: Duration,
    /// Failures of one address at one account older than this are forgotten; at least
    /// `max_delay`.
    pub forget_after: Duration,
    pub address_failures: u32,
    pub address_window: Duration,
    pub account_failures: u32,
    pub account_window: Duration,
    /// Zero: no address is ever exempt from the account-wide budget.
    pub trusted_for: Duration,
}

#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// Starts with `mongodb://` or `mongodb+srv://`; holds the database password.
    pub uri: SecretString,
    pub database: String,
    pub server_selection_timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// At least 32 bytes, different from `refresh_secret`. `None` where not needed.
    pub access_secret: Option<SecretString>,
    /// At least 32 bytes. `None` where not needed.
    pub refresh_secret: Option<SecretString>,
    /// The Node version's refresh secret, where it is not `refresh_secret`: verifies Node-era
    /// refresh tokens only (refresh's exchange), any length. `None`: `refresh_secret` does.
    pub node_refresh_secret: Option<SecretString>,
    /// Whole seconds, shorter than `refresh_ttl`.
    pub access_ttl: Duration,
    /// Whole seconds, at most `session_max_age`.
    pub refresh_ttl: Duration,
    /// Whole seconds: the absolute lifetime of a session, however often it is refreshed.
    pub session_max_age: Duration,
    /// 0 (off) to 5 minutes, and shorter than `refresh_ttl`.
    pub reuse_grace: Duration,
    /// 0 to 60 seconds.
    pub leeway: Duration,
}

#[derive(Debug, Clone)]
pub struct CloudinaryConfig {
    /// Letters, digits, `_` and `-` only: safe in a URL path.
    pub cloud_name: String,
    pub api_key: String,
    pub api_secret: SecretString,
    /// `https`, or `http` on a loopback host; its path always ends in `/`, so
    /// `api_base.join("v1_1/{cloud}/image/upload")` keeps any prefix.
    pub api_base: url::Url,
    /// `[A-Za-z0-9_/-]`, no leading, trailing or doubled `/`.
    pub folder: String,
    pub signature_algorithm: SignatureAlgorithm,
    pub connect_timeout: Duration,
    /// Whole-request timeout, at least `connect_timeout`.
    pub timeout: Duration,
}

/// The digest Cloudinary signs requests with (the account setting must match).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignatureAlgorithm {
    #[default]
    Sha1,
    Sha256,
}

impl SignatureAlgorithm {
    /// The value Cloudinary expects in its `signature_algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::Sha1 => "sha1",
            SignatureAlgorithm::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// An absolute path; whether it exists is checked where files are staged.
    pub tmp_dir: PathBuf,
    /// Per file; at most `max_body_bytes`.
    pub max_file_bytes: u64,
    /// The whole multipart body.
    pub max_body_bytes: u64,
    /// Per text field; at most `max_body_bytes`.
    pub max_field_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieConfig {
    pub secure: bool,
    /// `None` = per-cookie defaults (access `Lax`, refresh `Strict`). Never
    /// `Some(SameSite::None)` when `secure` is false: browsers drop such cookies.
    pub same_site: Option<SameSite>,
}

impl CookieConfig {
    /// SameSite for the `accessToken` cookie.
    pub fn access_same_site(&self) -> SameSite {
        self.same_site.unwrap_or(SameSite::Lax)
    }

    /// SameSite for the `refreshToken` cookie.
    pub fn refresh_same_site(&self) -> SameSite {
        self.same_site.unwrap_or(SameSite::Strict)
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: String,
    /// What is wrong and how to fix it; never contains a secret value.
    pub message: String,
}

impl ConfigProblem {
    pub fn new(variable: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            variable: variable.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Every problem found, in a stable order (the order of [`VARIABLES`], roughly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// The problems about `variable`.
    pub fn about<'a>(&'a self, variable: &'a str) -> impl Iterator<Item = &'a ConfigProblem> {
        self.problems.iter().filter(move |p| p.variable == variable)
    }

    /// True if some problem is about `variable`.
    pub fn mentions(&self, variable: &str) -> bool {
        self.about(variable).next().is_some()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "invalid configuration ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Snapshot of the process environment, references resolved, validated.
    ///
    /// The AWS SDK configuration is loaded only if some secret variable holds a reference, so
    /// cold starts without references make no AWS calls.
    pub async fn load(needs: Needs) -> Result<Config, ConfigError> {
        let (vars, problems) = snapshot_environment(needs);
        load_with(vars, problems, needs, || {
            aws_config::defaults(BehaviorVersion::latest()).load()
        })
        .await
    }

    /// [`Config::load`] for an explicit variable map: resolves references with the SDK
    /// configuration from `sdk_loader` (called only if there is a reference), then validates.
    /// Problems from resolution and validation are reported together.
    pub async fn load_from<F, Fut>(
        vars: HashMap<String, String>,
        sdk_loader: F,
    ) -> Result<Config, ConfigError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = SdkConfig>,
    {
        load_with(vars, Vec::new(), Needs::ALL, sdk_loader).await
    }

    /// Pure: validate an already-resolved variable map (used by tests and by load()).
    ///
    /// A secret variable that still holds a reference is a problem here: treating the
    /// reference text as the secret would start the service with a guessable key.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Self::from_vars_for(vars, Needs::ALL)
    }

    /// [`Config::from_vars`] for a function with `needs`: what it does not use is not read.
    pub fn from_vars_for(
        vars: &HashMap<String, String>,
        needs: Needs,
    ) -> Result<Config, ConfigError> {
        let mut r = Reader {
            vars,
            problems: Vec::new(),
        };
        let mongodb = mongo(&mut r);
        let tokens = tokens(&mut r, needs);
        let (cloudinary, upload) = if needs.images {
            (cloudinary(&mut r).map(Some), upload(&mut r).map(Some))
        } else {
            (Some(None), Some(None))
        };
        let cookies = cookies(&mut r);
        let node = node_compat(&mut r);
        let throttle = if needs.throttles {
            throttle(&mut r)
        } else {
            // Not read here: the defaults, off (this function checks no password).
            let unread = HashMap::new();
            let mut defaults = Reader {
                vars: &unread,
                problems: Vec::new(),
            };
            throttle(&mut defaults).map(|t| ThrottleConfig {
                enabled: false,
                ..t
            })
        };
        match (mongodb, tokens, cloudinary, upload, cookies, node, throttle) {
            (
                Some(mongodb),
                Some(tokens),
                Some(cloudinary),
                Some(upload),
                Some(cookies),
                Some(node),
                Some(throttle),
            ) if r.problems.is_empty() => Ok(Config {
                mongodb,
                tokens,
                cloudinary,
                upload,
                cookies,
                node,
                throttle,
            }),
            _ => {
                if r.problems.is_empty() {
                    // Every `None` above is paired with a problem; this keeps the error
                    // meaningful should that invariant ever break.
                    r.problems.push(ConfigProblem::new(
                        "(internal)",
                        "a section was rejected without a reported problem",
                    ));
                }
                Err(ConfigError {
                    problems: r.problems,
                })
            }
        }
    }
}

/// The known variables from the process environment; a non-UTF-8 value is a problem.
fn snapshot_environment(needs: Needs) -> (HashMap<String, String>, Vec<ConfigProblem>) {
    let mut vars = HashMap::new();
    let mut problems = Vec::new();
    for variable in VARIABLES.iter().filter(|v| needs.reads(v.name)) {
        match std::env::var(variable.name) {
            Ok(value) => {
                vars.insert(variable.name.to_owned(), value);
            }
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                problems.push(ConfigProblem::new(variable.name, "is not valid UTF-8"));
            }
        }
    }
    (vars, problems)
}

async fn load_with<F, Fut>(
    mut vars: HashMap<String, String>,
    mut problems: Vec<ConfigProblem>,
    needs: Needs,
    sdk_loader: F,
) -> Result<Config, ConfigError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = SdkConfig>,
{
    if has_references(&vars) {
        let sdk = sdk_loader().await;
        problems.extend(resolve_references(&mut vars, &sdk).await);
    }
    let validated = Config::from_vars_for(&vars, needs);
    if problems.is_empty() {
        return validated;
    }
    if let Err(error) = validated {
        // A variable that failed earlier (not UTF-8, unresolvable) would also fail validation
        // ("required", "unresolved reference"); its first problem is the useful one.
        let earlier: Vec<String> = problems.iter().map(|p| p.variable.clone()).collect();
        problems.extend(
            error
                .problems
                .into_iter()
                .filter(|p| !earlier.contains(&p.variable)),
        );
    }
    Err(ConfigError { problems })
}
