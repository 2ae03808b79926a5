//! The command line and environment of `migrate-node`: two flags, two variables, one help text.
//!
//! Parsed by hand like the other dev tools' (`bench`, the stand-in): three flags do not need a
//! parser crate.
use crate::MigrateError;

pub const HELP: &str = "\
migrate-node: bring a Node-era videotube `users` collection to our document shape, in place.

USAGE:
    migrate-node [--apply] [--remove-refresh-tokens]
    make migrate-node ARGS=\"--apply\"

Without --apply this is a dry run: it reads every user and reports what it would change, and
changes nothing. It reports, and with --apply fixes:
  - emails not trimmed and lowercased (lowercased; emails that would then collide, with each
    other or with an existing one, are listed by _id and left alone for a human);
  - plaintext `refreshToken` fields (counted and kept: logins exchange them once for a session
    of ours; --remove-refresh-tokens removes them, which logs those users out);
  - missing avatarPublicId / coverImagePublicId, set from the image URL (URLs from which none
    can be derived are listed by _id);
  - http:// Cloudinary image URLs (made https://);
  - the indexes of every collection (ensured; mongoose's username_1 and email_1 are kept).

Each document is updated on its own, by _id and only if the fields it changes still hold the
values it read, so a concurrent change by the live Node app is never overwritten. Running it
again changes nothing more. Output names documents by _id only: never an email, a hash, a
token or a URL.

OPTIONS:
    --apply                   make the changes (default: dry run)
    --remove-refresh-tokens   also remove the plaintext refreshToken fields
    -h, --help                print this help

ENVIRONMENT:
    MONGODB_URI   connection string, mongodb:// or mongodb+srv:// (required)
    MONGODB_DB    database name (default: videotube)

EXIT STATUS:
    0   done (or, in a dry run, nothing found that needs a human)
    1   something needs a human: colliding emails, underivable public ids, http URLs on other
        hosts, fields of the wrong type, or documents that changed during the run (re-run)
    2   usage, configuration, connection or database error
";

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Make the changes; without it, a dry run.
    pub apply: bool,
    /// Also remove plaintext `refreshToken` fields (previewed in a dry run).
    pub remove_refresh_tokens: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
}

impl Command {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, MigrateError> {
        let mut options = Options::default();
        for arg in args {
            match arg.as_str() {
                "--apply" => options.apply = true,
                "--remove-refresh-tokens" => options.remove_refresh_tokens = true,
                "-h" | "--help" => return Ok(Self::Help),
                other => {
                    return Err(MigrateError::Usage(format!(
                        "unknown argument {other:?}; run with --help for usage"
                    )));
                }
            }
        }
        Ok(Self::Run(options))
    }
}

/// Where to connect, from `MONGODB_URI` and `MONGODB_DB`.
pub struct Target {
    pub uri: String,
    pub database: String,
}

impl std::fmt::Debug for Target {
    // The URI may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Target {
    pub fn from_env() -> Result<Self, MigrateError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, MigrateError> {
        let uri = var("MONGODB_URI")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                MigrateError::Config(
                    "MONGODB_URI is not set: set it to the connection string of the database the \
                     Node version uses"
                        .to_owned(),
                )
            })?;
        if !uri.starts_with("mongodb://") && !uri.starts_with("mongodb+srv://") {
            return Err(MigrateError::Config(
                "MONGODB_URI must start with mongodb:// or mongodb+srv:// (secret references are \
                 not resolved by this command)"
                    .to_owned(),
            ));
        }
        let database = var("MONGODB_DB")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "videotube".to_owned());
        Ok(Self { uri, database })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, MigrateError> {
        Command::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn no_arguments_is_a_dry_run_that_keeps_refresh_tokens() {
        assert_eq!(parse(&[]).ok(), Some(Command::Run(Options::default())));
    }

    #[test]
    fn both_flags_are_understood_in_any_order() {
        let both = Command::Run(Options {
            apply: true,
            remove_refresh_tokens: true,
        });
        assert_eq!(
            parse(&["--remove-refresh-tokens", "--apply"]).ok(),
            Some(both)
        );
        assert_eq!(parse(&["--apply", "--help"]).ok(), Some(Command::Help));
    }

    #[test]
    fn an_unknown_argument_is_a_usage_error() {
        for bad in [["--aply"], ["apply"], ["--apply=yes"], [""]] {
            assert!(
                matches!(parse(&bad), Err(MigrateError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_database_defaults_to_the_node_versions_and_the_uri_is_required() {
        let t = Target::from_lookup(|n| (n == "MONGODB_URI").then(|| "mongodb://h/".to_owned()))
            .expect("valid");
        assert_eq!(t.database, "videotube");
        assert!(matches!(
            Target::from_lookup(|_| None),
            Err(MigrateError::Config(_))
        ));
        assert!(matches!(
            Target::from_lookup(|_| Some("arn:aws:secretsmanager:x".to_owned())),
            Err(MigrateError::Config(_))
        ));
    }

    #[test]
    fn a_target_never_prints_its_uri() {
        let t = Target {
            uri: "mongodb://user:hunter2@h/".to_owned(),
            database: "d".to_owned(),
        };
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
