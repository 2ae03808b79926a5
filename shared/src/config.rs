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

mod references;
mod values;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use cookie::SameSite;
use secrecy::{ExposeSecret, SecretString};

use crate::duration::{DurationError, format_duration, parse_duration};

pub use references::{
    FETCH_TIMEOUT, SECRET_VARIABLES, has_references, is_reference, resolve_references,
};

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
}

/// What a function uses of the configuration: each is given, and granted, only that. Every
/// function reads the database settings, the token lifetimes, the cookie settings and the Node
/// switches (all with defaults); the secrets and the Cloudinary account only where needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `ACCESS_TOKEN_SECRET`: signs or verifies access tokens.
    pub access_tokens: bool,
    /// `REFRESH_TOKEN_SECRET`: signs and verifies refresh tokens (login, refresh).
    pub refresh_tokens: bool,
    /// `CLOUDINARY_*` and `UPLOAD_*`: stages and uploads images.
    pub images: bool,
}

impl Needs {
    /// Everything: tests, tools and the bench.
    pub const ALL: Needs = Needs {
        access_tokens: true,
        refresh_tokens: true,
        images: true,
    };
    /// login, refresh: both kinds of token, no images.
    pub const SESSIONS: Needs = Needs {
        access_tokens: true,
        refresh_tokens: true,
        images: false,
    };
    /// register: images, no tokens (it signs nobody in).
    pub const REGISTER: Needs = Needs {
        access_tokens: false,
        refresh_tokens: false,
        images: true,
    };
    /// logout, current-user, change-password, update-account: access tokens only.
    pub const ACCOUNT: Needs = Needs {
        access_tokens: true,
        refresh_tokens: false,
        images: false,
    };
    /// avatar, cover-image: access tokens and images.
    pub const IMAGES: Needs = Needs {
        access_tokens: true,
        refresh_tokens: false,
        images: true,
    };

    /// Whether a function with these needs reads `variable` at all.
    pub fn reads(&self, variable: &str) -> bool {
        match variable {
            "ACCESS_TOKEN_SECRET" => self.access_tokens,
            "REFRESH_TOKEN_SECRET" => self.refresh_tokens,
            v if v.starts_with("CLOUDINARY_") || v.starts_with("UPLOAD_") => self.images,
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

/// One variable the configuration reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// The text used when the variable is unset or blank, parsed exactly like a value from the
    /// environment. `None` where there is no default: required variables, the Cloudinary
    /// credentials (one of their two forms is required) and `COOKIE_SAMESITE` (unset means
    /// per-cookie defaults).
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: Option<&'static str>, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// Every variable [`Config`] reads, with its default: the single source for defaults.
pub const VARIABLES: &[Variable] = &[
    var(
        "MONGODB_URI",
        None,
        "MongoDB connection string (mongodb:// or mongodb+srv://); may be a secret reference",
    ),
    var("MONGODB_DB", Some("videotube"), "database name"),
    var(
        "MONGODB_SERVER_SELECTION_TIMEOUT",
        Some("2s"),
        "how long to wait for a usable server before answering 503",
    ),
    var(
        "MONGODB_CONNECT_TIMEOUT",
        Some("2s"),
        "TCP/TLS connect timeout",
    ),
    var(
        "ACCESS_TOKEN_SECRET",
        None,
        "HS256 key for access tokens, >= 32 bytes; may be a secret reference",
    ),
    var(
        "REFRESH_TOKEN_SECRET",
        None,
        "HS256 key for refresh tokens, >= 32 bytes, different from the access secret; may be a \
         secret reference",
    ),
    var("ACCESS_TOKEN_EXPIRY", Some("15m"), "access token lifetime"),
    var(
        "REFRESH_TOKEN_EXPIRY",
        Some("10d"),
        "refresh token lifetime, longer than the access token's",
    ),
    var(
        "SESSION_MAX_AGE",
        Some("30d"),
        "absolute session lifetime, >= the refresh token's",
    ),
    var(
        "REFRESH_REUSE_GRACE",
        Some("10s"),
        "how long the refresh token a rotation just replaced still gets the same new pair \
         (a lost answer, a second tab) instead of revoking the session; 0s to 5m, 0s = off",
    ),
    var(
        "TOKEN_LEEWAY",
        Some("2s"),
        "clock skew allowed when checking exp (0s to 60s)",
    ),
    var(
        "CLOUDINARY_URL",
        None,
        "cloudinary://API_KEY:API_SECRET@CLOUD_NAME (or the three variables below); may be a \
         secret reference",
    ),
    var(
        "CLOUDINARY_CLOUD_NAME",
        None,
        "cloud name, if CLOUDINARY_URL is not set",
    ),
    var(
        "CLOUDINARY_API_KEY",
        None,
        "API key, if CLOUDINARY_URL is not set",
    ),
    var(
        "CLOUDINARY_API_SECRET",
        None,
        "API secret, if CLOUDINARY_URL is not set; may be a secret reference",
    ),
    var(
        "CLOUDINARY_API_BASE",
        Some("https://api.cloudinary.com"),
        "API endpoint (https; http only on loopback, for the local stand-in)",
    ),
    var(
        "CLOUDINARY_FOLDER",
        Some("videotube/users"),
        "folder for uploaded images",
    ),
    var(
        "CLOUDINARY_SIGNATURE_ALGORITHM",
        Some("sha1"),
        "sha1 or sha256, as set in the Cloudinary account",
    ),
    var(
        "CLOUDINARY_CONNECT_TIMEOUT",
        Some("3s"),
        "connect timeout for Cloudinary",
    ),
    var(
        "CLOUDINARY_TIMEOUT",
        Some("10s"),
        "whole-request timeout for Cloudinary",
    ),
    var(
        "UPLOAD_TMP_DIR",
        Some("/tmp"),
        "absolute directory where uploads are staged",
    ),
    var(
        "UPLOAD_MAX_FILE_BYTES",
        Some("2MiB"),
        "largest accepted image file",
    ),
    var(
        "UPLOAD_MAX_BODY_BYTES",
        Some("4.5MiB"),
        "largest accepted multipart body, >= the file limit",
    ),
    var(
        "UPLOAD_MAX_FIELD_BYTES",
        Some("1KiB"),
        "largest accepted text field",
    ),
    var(
        "COOKIE_SECURE",
        Some("true"),
        "Secure flag on cookies (true/false, 1/0, yes/no)",
    ),
    var(
        "COOKIE_SAMESITE",
        None,
        "strict, lax or none for both cookies; unset: access Lax, refresh Strict",
    ),
    var(
        "NODE_REFRESH_EXCHANGE",
        Some("true"),
        "accept a refresh token the Node version issued, once, while it equals the user's \
         stored refreshToken, to open a session of ours; false once the switch is over",
    ),
    var(
        "NODE_EMAIL_FALLBACK",
        Some("true"),
        "find Node-era accounts whose email is stored in the case it was typed (login, \
         sign-up checks); false after `make migrate-node ARGS=--apply` lowercased them",
    ),
];

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
        match (mongodb, tokens, cloudinary, upload, cookies, node) {
            (
                Some(mongodb),
                Some(tokens),
                Some(cloudinary),
                Some(upload),
                Some(cookies),
                Some(node),
            ) if r.problems.is_empty() => Ok(Config {
                mongodb,
                tokens,
                cloudinary,
                upload,
                cookies,
                node,
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

/// Reads variables from the map and records problems; every method that returns `None`
/// has recorded one.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    problems: Vec<ConfigProblem>,
}

/// Extra limits for one duration variable.
#[derive(Clone, Copy)]
struct DurationRule {
    allow_zero: bool,
    max: Duration,
    /// JWT `exp` and cookie `Max-Age` count whole seconds; a fractional lifetime would be
    /// silently truncated.
    whole_seconds: bool,
}

/// A Lambda invocation lasts at most 15 minutes, so a longer timeout can never fire.
const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Caps token and session lifetimes so `now + lifetime` can never overflow a JWT `exp` or a
/// BSON date, whatever the variable says.
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 31_557_600);
/// A longer grace lets a stolen refresh token be replayed for longer without revoking the
/// session; the grace exists only for a client racing itself.
const MAX_REUSE_GRACE: Duration = Duration::from_secs(5 * 60);
const MAX_LEEWAY: Duration = Duration::from_secs(60);
const MIN_SECRET_BYTES: usize = 32;

const TIMEOUT: DurationRule = DurationRule {
    allow_zero: false,
    max: MAX_TIMEOUT,
    whole_seconds: false,
};
const LIFETIME: DurationRule = DurationRule {
    allow_zero: false,
    max: MAX_LIFETIME,
    whole_seconds: true,
};

impl<'a> Reader<'a> {
    fn report(&mut self, variable: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(variable, message));
    }

    /// The trimmed value, or `None` if unset or blank.
    fn get(&self, name: &str) -> Option<&'a str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value, else the default from [`VARIABLES`], through `parse`.
    fn value<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
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

    fn duration(&mut self, name: &str, rule: DurationRule) -> Option<Duration> {
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

    fn bytes(&mut self, name: &str) -> Option<u64> {
        self.value(name, values::parse_byte_size)
    }

    /// A secret value, byte for byte, or `None` when unset or blank (nothing reported).
    /// Reports unresolved references and surrounding whitespace; never quotes the value.
    fn secret_if_set(&mut self, name: &str) -> Option<Result<SecretString, ()>> {
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

    fn secret(&mut self, name: &str, hint: &str) -> Option<SecretString> {
        match self.secret_if_set(name) {
            Some(result) => result.ok(),
            None => {
                self.report(name, format!("is required{hint}"));
                None
            }
        }
    }
}

fn mongo(r: &mut Reader) -> Option<MongoConfig> {
    let uri = r.secret("MONGODB_URI", "").and_then(|uri| {
        match values::check_mongo_uri(uri.expose_secret()) {
            Ok(()) => Some(uri),
            Err(message) => {
                r.report("MONGODB_URI", message);
                None
            }
        }
    });
    let database = r.value("MONGODB_DB", |v| {
        values::check_database_name(v).map(|()| v.to_owned())
    });
    let server_selection_timeout = r.duration("MONGODB_SERVER_SELECTION_TIMEOUT", TIMEOUT);
    let connect_timeout = r.duration("MONGODB_CONNECT_TIMEOUT", TIMEOUT);
    Some(MongoConfig {
        uri: uri?,
        database: database?,
        server_selection_timeout: server_selection_timeout?,
        connect_timeout: connect_timeout?,
    })
}

fn tokens(r: &mut Reader, needs: Needs) -> Option<TokenConfig> {
    let hint = ": generate one with `cargo run -q -p devtools --bin gen-secrets`";
    let long_enough = |r: &mut Reader, name: &str| {
        r.secret(name, hint).and_then(|secret| {
            let len = secret.expose_secret().len();
            if len >= MIN_SECRET_BYTES {
                Some(secret)
            } else {
                r.report(
                    name,
                    format!("must be at least {MIN_SECRET_BYTES} bytes (it is {len}){hint}"),
                );
                None
            }
        })
    };
    // `Some(None)`: not needed, so not read.
    let access_secret = if needs.access_tokens {
        long_enough(r, "ACCESS_TOKEN_SECRET").map(Some)
    } else {
        Some(None)
    };
    let refresh_secret = if needs.refresh_tokens {
        long_enough(r, "REFRESH_TOKEN_SECRET").map(Some)
    } else {
        Some(None)
    };
    if let (Some(Some(access)), Some(Some(refresh))) = (&access_secret, &refresh_secret)
        && access.expose_secret() == refresh.expose_secret()
    {
        r.report(
            "REFRESH_TOKEN_SECRET",
            "must differ from ACCESS_TOKEN_SECRET, so that one kind of token can never be \
             verified as the other",
        );
    }

    let access_ttl = r.duration("ACCESS_TOKEN_EXPIRY", LIFETIME);
    let refresh_ttl = r.duration("REFRESH_TOKEN_EXPIRY", LIFETIME);
    let session_max_age = r.duration("SESSION_MAX_AGE", LIFETIME);
    // `0s` turns the window off: any reuse of a replaced token revokes its session.
    let reuse_grace = r.duration(
        "REFRESH_REUSE_GRACE",
        DurationRule {
            allow_zero: true,
            max: MAX_REUSE_GRACE,
            whole_seconds: false,
        },
    );
    let leeway = r.duration(
        "TOKEN_LEEWAY",
        DurationRule {
            allow_zero: true,
            max: MAX_LEEWAY,
            whole_seconds: false,
        },
    );

    if let (Some(access), Some(refresh)) = (access_ttl, refresh_ttl)
        && refresh <= access
    {
        r.report(
            "REFRESH_TOKEN_EXPIRY",
            format!(
                "is {}, but must be longer than ACCESS_TOKEN_EXPIRY ({})",
                format_duration(refresh),
                format_duration(access)
            ),
        );
    }
    if let (Some(refresh), Some(session)) = (refresh_ttl, session_max_age)
        && session < refresh
    {
        r.report(
            "SESSION_MAX_AGE",
            format!(
                "is {}, but must be at least REFRESH_TOKEN_EXPIRY ({})",
                format_duration(session),
                format_duration(refresh)
            ),
        );
    }
    if let (Some(refresh), Some(grace)) = (refresh_ttl, reuse_grace)
        && grace >= refresh
    {
        r.report(
            "REFRESH_REUSE_GRACE",
            format!(
                "is {}, but must be shorter than REFRESH_TOKEN_EXPIRY ({})",
                format_duration(grace),
                format_duration(refresh)
            ),
        );
    }

    let config = TokenConfig {
        access_secret: access_secret?,
        refresh_secret: refresh_secret?,
        access_ttl: access_ttl?,
        refresh_ttl: refresh_ttl?,
        session_max_age: session_max_age?,
        reuse_grace: reuse_grace?,
        leeway: leeway?,
    };
    // The relations above were reported without making anything `None`.
    if config.refresh_ttl <= config.access_ttl
        || config.session_max_age < config.refresh_ttl
        || config.reuse_grace >= config.refresh_ttl
        || matches!(
            (&config.access_secret, &config.refresh_secret),
            (Some(a), Some(r)) if a.expose_secret() == r.expose_secret()
        )
    {
        return None;
    }
    Some(config)
}

/// `(cloud_name, api_key, api_secret)` from either `CLOUDINARY_URL` or the three separate
/// variables. When both forms are present they must agree: silently preferring one would let
/// a stale leftover decide which account receives uploads.
fn cloudinary_credentials(r: &mut Reader) -> Option<(String, String, SecretString)> {
    let cloud_name = r.get("CLOUDINARY_CLOUD_NAME");
    let api_key = r.get("CLOUDINARY_API_KEY");
    let api_secret = r.secret_if_set("CLOUDINARY_API_SECRET");

    let Some(url) = r.secret_if_set("CLOUDINARY_URL") else {
        let hint = " (or set CLOUDINARY_URL=cloudinary://API_KEY:API_SECRET@CLOUD_NAME)";
        let cloud_name = match cloud_name {
            None => {
                r.report("CLOUDINARY_CLOUD_NAME", format!("is required{hint}"));
                None
            }
            Some(v) => values::check_cloud_name(v)
                .map_err(|m| r.report("CLOUDINARY_CLOUD_NAME", m))
                .ok()
                .map(|()| v.to_owned()),
        };
        let api_key = match api_key {
            None => {
                r.report("CLOUDINARY_API_KEY", format!("is required{hint}"));
                None
            }
            Some(v) => values::check_api_key(v)
                .map_err(|m| r.report("CLOUDINARY_API_KEY", m))
                .ok()
                .map(|()| v.to_owned()),
        };
        let api_secret = match api_secret {
            None => {
                r.report("CLOUDINARY_API_SECRET", format!("is required{hint}"));
                None
            }
            Some(Err(())) => None,
            Some(Ok(secret)) => values::check_api_secret(secret.expose_secret())
                .map_err(|m| r.report("CLOUDINARY_API_SECRET", m))
                .ok()
                .map(|()| secret),
        };
        return Some((cloud_name?, api_key?, api_secret?));
    };

    let parsed = match url {
        Ok(url) => values::parse_cloudinary_url(url.expose_secret())
            .map_err(|m| r.report("CLOUDINARY_URL", m))
            .ok()?,
        Err(()) => return None,
    };
    let disagreement = |part: &str| {
        format!(
            "disagrees with the {part} in CLOUDINARY_URL: set only one of the two forms, or \
             make them match"
        )
    };
    let mut consistent = true;
    if cloud_name.is_some_and(|v| v != parsed.cloud_name) {
        r.report("CLOUDINARY_CLOUD_NAME", disagreement("cloud name"));
        consistent = false;
    }
    if api_key.is_some_and(|v| v != parsed.api_key) {
        r.report("CLOUDINARY_API_KEY", disagreement("API key"));
        consistent = false;
    }
    match api_secret {
        Some(Ok(secret)) if secret.expose_secret() != parsed.api_secret.expose_secret() => {
            r.report("CLOUDINARY_API_SECRET", disagreement("API secret"));
            consistent = false;
        }
        Some(Err(())) => consistent = false,
        _ => {}
    }
    consistent.then_some((parsed.cloud_name, parsed.api_key, parsed.api_secret))
}

fn cloudinary(r: &mut Reader) -> Option<CloudinaryConfig> {
    let credentials = cloudinary_credentials(r);
    let api_base = r.value("CLOUDINARY_API_BASE", values::parse_api_base);
    let folder = r.value("CLOUDINARY_FOLDER", |v| {
        values::check_folder(v).map(|()| v.to_owned())
    });
    let signature_algorithm = r.value(
        "CLOUDINARY_SIGNATURE_ALGORITHM",
        values::parse_signature_algorithm,
    );
    let connect_timeout = r.duration("CLOUDINARY_CONNECT_TIMEOUT", TIMEOUT);
    let timeout = r.duration("CLOUDINARY_TIMEOUT", TIMEOUT);
    if let (Some(connect), Some(total)) = (connect_timeout, timeout)
        && connect > total
    {
        r.report(
            "CLOUDINARY_CONNECT_TIMEOUT",
            format!(
                "is {}, but must not exceed CLOUDINARY_TIMEOUT ({})",
                format_duration(connect),
                format_duration(total)
            ),
        );
        return None;
    }
    let (cloud_name, api_key, api_secret) = credentials?;
    Some(CloudinaryConfig {
        cloud_name,
        api_key,
        api_secret,
        api_base: api_base?,
        folder: folder?,
        signature_algorithm: signature_algorithm?,
        connect_timeout: connect_timeout?,
        timeout: timeout?,
    })
}

fn upload(r: &mut Reader) -> Option<UploadConfig> {
    let tmp_dir = r.value("UPLOAD_TMP_DIR", |v| {
        let path = PathBuf::from(v);
        if path.is_absolute() {
            Ok(path)
        } else {
            Err(format!("{} must be an absolute path", values::excerpt(v)))
        }
    });
    let max_file_bytes = r.bytes("UPLOAD_MAX_FILE_BYTES");
    let max_body_bytes = r.bytes("UPLOAD_MAX_BODY_BYTES");
    let max_field_bytes = r.bytes("UPLOAD_MAX_FIELD_BYTES");
    let mut consistent = true;
    if let (Some(file), Some(body)) = (max_file_bytes, max_body_bytes)
        && file > body
    {
        r.report(
            "UPLOAD_MAX_FILE_BYTES",
            format!("is {file} bytes, but must not exceed UPLOAD_MAX_BODY_BYTES ({body} bytes)"),
        );
        consistent = false;
    }
    if let (Some(field), Some(body)) = (max_field_bytes, max_body_bytes)
        && field > body
    {
        r.report(
            "UPLOAD_MAX_FIELD_BYTES",
            format!("is {field} bytes, but must not exceed UPLOAD_MAX_BODY_BYTES ({body} bytes)"),
        );
        consistent = false;
    }
    let config = UploadConfig {
        tmp_dir: tmp_dir?,
        max_file_bytes: max_file_bytes?,
        max_body_bytes: max_body_bytes?,
        max_field_bytes: max_field_bytes?,
    };
    consistent.then_some(config)
}

fn cookies(r: &mut Reader) -> Option<CookieConfig> {
    let secure = r.value("COOKIE_SECURE", values::parse_bool);
    let same_site = match r.get("COOKIE_SAMESITE") {
        None => Some(None),
        Some(v) => values::parse_same_site(v)
            .map_err(|m| r.report("COOKIE_SAMESITE", m))
            .ok()
            .map(Some),
    };
    if secure == Some(false) && same_site == Some(Some(SameSite::None)) {
        r.report(
            "COOKIE_SAMESITE",
            "none requires COOKIE_SECURE=true: browsers reject SameSite=None cookies without \
             Secure",
        );
        return None;
    }
    Some(CookieConfig {
        secure: secure?,
        same_site: same_site?,
    })
}

fn node_compat(r: &mut Reader) -> Option<NodeCompatConfig> {
    let refresh_exchange = r.value("NODE_REFRESH_EXCHANGE", values::parse_bool);
    let email_fallback = r.value("NODE_EMAIL_FALLBACK", values::parse_bool);
    Some(NodeCompatConfig {
        refresh_exchange: refresh_exchange?,
        email_fallback: email_fallback?,
    })
}
