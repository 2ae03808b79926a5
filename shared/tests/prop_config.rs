//! Property tests of the configuration parsers, through the pure `Config::from_vars`: byte
//! sizes, durations, booleans and SameSite values. Whatever a variable holds, loading never
//! panics, a refused value is reported under its own variable name (and only there), and no
//! problem ever quotes a secret.
//!
//! 256 cases per property (1,280 in all); about a second unoptimised.
use std::collections::HashMap;

use proptest::prelude::*;
use shared::config::Config;

const ACCESS_SECRET: &str = "access-secret-0123456789abcdefghijklmnop";
const REFRESH_SECRET: &str = "refresh-secret-0123456789abcdefghijklmno";
const CLOUDINARY_SECRET: &str = "Cl0udinarySecretValue_xyz";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn vars(changes: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
        ("ACCESS_TOKEN_SECRET", ACCESS_SECRET),
        ("REFRESH_TOKEN_SECRET", REFRESH_SECRET),
        (
            "CLOUDINARY_URL",
            "cloudinary://123456789012345:Cl0udinarySecretValue_xyz@demo-cloud",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in changes {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

/// Loads `vars`; on failure checks every problem names `variable` and quotes no secret.
fn load_checked(
    vars: &HashMap<String, String>,
    variable: &str,
) -> Result<Option<Config>, TestCaseError> {
    match Config::from_vars(vars) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            for p in &e.problems {
                prop_assert_eq!(&p.variable, variable, "{}", p.message);
                for secret in [ACCESS_SECRET, REFRESH_SECRET, CLOUDINARY_SECRET] {
                    prop_assert!(!p.message.contains(secret));
                }
            }
            Ok(None)
        }
    }
}

fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "-?[0-9.]{0,30} ?[a-zA-Z]{0,8}",
        Just("1e9".to_owned()),
        Just("NaN".to_owned()),
        Just("99999999999999999999999999999GiB".to_owned()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_size_value_loads_or_is_reported_against_its_own_variable(
        variable in prop::sample::select(&["UPLOAD_MAX_FILE_BYTES", "UPLOAD_MAX_BODY_BYTES", "UPLOAD_MAX_FIELD_BYTES"][..]),
        value in hostile_value(),
    ) {
        // The other two limits as small and as large as allowed, so only this value decides.
        let (small, large) = ("1B", "1024GiB");
        let mut changes = vec![("UPLOAD_MAX_FILE_BYTES", small), ("UPLOAD_MAX_FIELD_BYTES", small), ("UPLOAD_MAX_BODY_BYTES", large)];
        changes.retain(|(k, _)| *k != variable);
        changes.push((variable, value.as_str()));
        load_checked(&vars(&changes), variable)?;
    }

    #[test]
    fn byte_counts_and_binary_suffixes_give_exact_sizes(
        n in 1u64..1_000_000,
        suffix in prop::sample::select(&[("", 1u64), ("B", 1), (" KiB", 1 << 10), ("mib", 1 << 20), ("GiB", 1 << 30)][..]),
        tenths in 0u64..10,
    ) {
        let (name, multiplier) = suffix;
        let whole = format!("{n}{name}");
        let c = Config::from_vars(&vars(&[("UPLOAD_MAX_BODY_BYTES", &whole), ("UPLOAD_MAX_FILE_BYTES", "1B"), ("UPLOAD_MAX_FIELD_BYTES", "1B")]))
            .expect("a whole size loads");
        prop_assert_eq!(c.upload.as_ref().expect("images").max_body_bytes, n * multiplier);
        // A fraction is fine with a suffix when it comes to whole bytes, refused otherwise.
        let fractional = format!("{n}.{tenths}{name}");
        let loaded = Config::from_vars(&vars(&[("UPLOAD_MAX_BODY_BYTES", &fractional), ("UPLOAD_MAX_FILE_BYTES", "1B"), ("UPLOAD_MAX_FIELD_BYTES", "1B")]));
        let exact = (n * 10 + tenths) * multiplier;
        match loaded {
            Ok(c) => prop_assert!(!name.is_empty() && exact % 10 == 0 && c.upload.as_ref().expect("images").max_body_bytes == exact / 10),
            Err(e) => prop_assert!(e.mentions("UPLOAD_MAX_BODY_BYTES") && (name.is_empty() || exact % 10 != 0)),
        }
    }

    #[test]
    fn any_duration_value_loads_or_is_reported_against_its_own_variable(
        variable in prop::sample::select(&[
            "ACCESS_TOKEN_EXPIRY", "REFRESH_TOKEN_EXPIRY", "SESSION_MAX_AGE", "REFRESH_REUSE_GRACE",
            "TOKEN_LEEWAY", "MONGODB_SERVER_SELECTION_TIMEOUT", "MONGODB_CONNECT_TIMEOUT",
            "CLOUDINARY_CONNECT_TIMEOUT", "CLOUDINARY_TIMEOUT",
        ][..]),
        value in hostile_value(),
    ) {
        match Config::from_vars(&vars(&[(variable, value.as_str())])) {
            Ok(_) => {}
            Err(e) => {
                // Lifetimes are checked against each other, and so are the two timeouts, so a
                // bad value may also be reported against its partner.
                let related = [
                    "ACCESS_TOKEN_EXPIRY", "REFRESH_TOKEN_EXPIRY", "SESSION_MAX_AGE", "REFRESH_REUSE_GRACE",
                    "CLOUDINARY_CONNECT_TIMEOUT", "CLOUDINARY_TIMEOUT",
                ];
                for p in &e.problems {
                    let own = p.variable == variable;
                    let partner = related.contains(&variable) && related.contains(&p.variable.as_str());
                    prop_assert!(own || partner, "{} reported for {}: {}", p.variable, variable, p.message);
                    prop_assert!(!p.message.contains(ACCESS_SECRET) && !p.message.contains(REFRESH_SECRET));
                }
            }
        }
    }

    #[test]
    fn flags_accept_their_words_in_any_case_and_report_anything_else(
        variable in prop::sample::select(&["COOKIE_SECURE", "COOKIE_SAMESITE"][..]),
        value in prop_oneof![
            hostile_value(),
            prop::sample::select(&["true", "false", "TRUE", "False", "strict", "LAX", "None", " lax "][..]).prop_map(str::to_owned),
        ],
    ) {
        load_checked(&vars(&[(variable, value.as_str())]), variable)?;
    }

    #[test]
    fn secrets_of_any_content_are_never_quoted_back(
        variable in prop::sample::select(&["ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET"][..]),
        secret in "[ -~]{1,64}",
    ) {
        if let Err(e) = Config::from_vars(&vars(&[(variable, secret.as_str())])) {
            for p in &e.problems {
                if secret.trim().len() >= 6 {
                    prop_assert!(!p.message.contains(secret.trim()), "{}: {}", p.variable, p.message);
                }
            }
        }
    }
}
