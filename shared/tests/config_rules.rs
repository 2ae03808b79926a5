//! Every configuration rule, exercised through the pure `Config::from_vars`.
//!
//! Each test starts from a minimal valid variable map and changes one thing, so a failure
//! points at one rule. Secrets in these maps are distinctive strings, so the tests can assert
//! that no error text or `Debug` output ever contains them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use cookie::SameSite;
use secrecy::ExposeSecret;
use shared::config::{Config, ConfigError, SignatureAlgorithm, VARIABLES};

const MONGO_PASSWORD: &str = "Mongo-Pa55word-Do-Not-Print";
const ACCESS_SECRET: &str = "access-secret-0123456789abcdefghijklmnop";
const REFRESH_SECRET: &str = "refresh-secret-0123456789abcdefghijklmno";
const CLOUDINARY_SECRET: &str = "Cl0udinarySecretValue_xyz";

fn minimal() -> HashMap<String, String> {
    [
        (
            "MONGODB_URI",
            format!("mongodb://app:{MONGO_PASSWORD}@127.0.0.1:27017/?authSource=admin"),
        ),
        ("ACCESS_TOKEN_SECRET", ACCESS_SECRET.to_owned()),
        ("REFRESH_TOKEN_SECRET", REFRESH_SECRET.to_owned()),
        (
            "CLOUDINARY_URL",
            format!("cloudinary://123456789012345:{CLOUDINARY_SECRET}@demo-cloud"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn with(changes: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars = minimal();
    for (name, value) in changes {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    vars
}

fn without(names: &[&str]) -> HashMap<String, String> {
    let mut vars = minimal();
    for name in names {
        vars.remove(*name);
    }
    vars
}

fn load(vars: &HashMap<String, String>) -> Config {
    Config::from_vars(vars).unwrap_or_else(|e| panic!("expected a valid config, got {e}"))
}

fn reject(vars: &HashMap<String, String>) -> ConfigError {
    let error = match Config::from_vars(vars) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(error) => error,
    };
    assert_no_secret_in(&error.to_string());
    assert_no_secret_in(&format!("{error:?}"));
    error
}

/// `variable` is mentioned, and is the only variable mentioned.
fn reject_only(vars: &HashMap<String, String>, variable: &str) -> ConfigError {
    let error = reject(vars);
    let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
    assert!(
        named.iter().all(|n| *n == variable) && !named.is_empty(),
        "expected only {variable}, got: {error}"
    );
    error
}

fn assert_no_secret_in(text: &str) {
    for secret in [
        MONGO_PASSWORD,
        ACCESS_SECRET,
        REFRESH_SECRET,
        CLOUDINARY_SECRET,
    ] {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_minimal_config_gets_every_default() {
    let config = load(&minimal());

    assert_eq!(
        config.mongodb.uri.expose_secret(),
        format!("mongodb://app:{MONGO_PASSWORD}@127.0.0.1:27017/?authSource=admin")
    );
    assert_eq!(config.mongodb.database, "videotube");
    assert_eq!(config.mongodb.server_selection_timeout, secs(2));
    assert_eq!(config.mongodb.connect_timeout, secs(2));

    assert_eq!(
        config
            .tokens
            .access_secret
            .as_ref()
            .expect("secret")
            .expose_secret(),
        ACCESS_SECRET
    );
    assert_eq!(
        config
            .tokens
            .refresh_secret
            .as_ref()
            .expect("secret")
            .expose_secret(),
        REFRESH_SECRET
    );
    assert_eq!(config.tokens.access_ttl, secs(15 * 60));
    assert_eq!(config.tokens.refresh_ttl, secs(10 * 86_400));
    assert_eq!(config.tokens.session_max_age, secs(30 * 86_400));
    assert_eq!(config.tokens.reuse_grace, secs(10));
    assert_eq!(config.tokens.leeway, secs(2));

    assert_eq!(
        config.cloudinary.as_ref().expect("images").cloud_name,
        "demo-cloud"
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").api_key,
        "123456789012345"
    );
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .api_secret
            .expose_secret(),
        CLOUDINARY_SECRET
    );
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .api_base
            .as_str(),
        "https://api.cloudinary.com/"
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").folder,
        "videotube/users"
    );
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .signature_algorithm,
        SignatureAlgorithm::Sha1
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").connect_timeout,
        secs(3)
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").timeout,
        secs(10)
    );

    assert_eq!(
        config.upload.as_ref().expect("images").tmp_dir,
        PathBuf::from("/tmp")
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_file_bytes,
        2_097_152
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_body_bytes,
        4_718_592
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_field_bytes,
        1_024
    );

    assert!(config.cookies.secure);
    assert_eq!(config.cookies.same_site, None);
    assert_eq!(config.cookies.access_same_site(), SameSite::Lax);
    assert_eq!(config.cookies.refresh_same_site(), SameSite::Strict);
}

#[test]
fn every_optional_variable_can_be_overridden() {
    let config = load(&with(&[
        ("MONGODB_DB", "videotube_test-7"),
        ("MONGODB_SERVER_SELECTION_TIMEOUT", "500ms"),
        ("MONGODB_CONNECT_TIMEOUT", "1.5s"),
        ("ACCESS_TOKEN_EXPIRY", "1h"),
        ("REFRESH_TOKEN_EXPIRY", "7 days"),
        ("SESSION_MAX_AGE", "1y"),
        ("REFRESH_REUSE_GRACE", "30s"),
        ("TOKEN_LEEWAY", "0s"),
        ("CLOUDINARY_API_BASE", "http://127.0.0.1:9100"),
        ("CLOUDINARY_FOLDER", "videotube/test-7"),
        ("CLOUDINARY_SIGNATURE_ALGORITHM", "SHA256"),
        ("CLOUDINARY_CONNECT_TIMEOUT", "1s"),
        ("CLOUDINARY_TIMEOUT", "2s"),
        ("UPLOAD_TMP_DIR", "/var/tmp/staging"),
        ("UPLOAD_MAX_FILE_BYTES", "1MiB"),
        ("UPLOAD_MAX_BODY_BYTES", "3145728"),
        ("UPLOAD_MAX_FIELD_BYTES", "512B"),
        ("COOKIE_SECURE", "false"),
        ("COOKIE_SAMESITE", "Lax"),
    ]));
    assert_eq!(config.mongodb.database, "videotube_test-7");
    assert_eq!(
        config.mongodb.server_selection_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(config.mongodb.connect_timeout, Duration::from_millis(1_500));
    assert_eq!(config.tokens.access_ttl, secs(3_600));
    assert_eq!(config.tokens.refresh_ttl, secs(7 * 86_400));
    assert_eq!(config.tokens.session_max_age, secs(31_557_600));
    assert_eq!(config.tokens.reuse_grace, secs(30));
    assert_eq!(config.tokens.leeway, Duration::ZERO);
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .api_base
            .as_str(),
        "http://127.0.0.1:9100/"
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").folder,
        "videotube/test-7"
    );
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .signature_algorithm,
        SignatureAlgorithm::Sha256
    );
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .signature_algorithm
            .as_str(),
        "sha256"
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").connect_timeout,
        secs(1)
    );
    assert_eq!(config.cloudinary.as_ref().expect("images").timeout, secs(2));
    assert_eq!(
        config.upload.as_ref().expect("images").tmp_dir,
        PathBuf::from("/var/tmp/staging")
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_file_bytes,
        1_048_576
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_body_bytes,
        3_145_728
    );
    assert_eq!(config.upload.as_ref().expect("images").max_field_bytes, 512);
    assert!(!config.cookies.secure);
    assert_eq!(config.cookies.same_site, Some(SameSite::Lax));
    assert_eq!(config.cookies.refresh_same_site(), SameSite::Lax);
}

#[test]
fn blank_optional_variables_take_their_defaults() {
    let config = load(&with(&[
        ("MONGODB_DB", ""),
        ("ACCESS_TOKEN_EXPIRY", "   "),
        ("COOKIE_SAMESITE", ""),
        ("UPLOAD_MAX_FILE_BYTES", ""),
    ]));
    assert_eq!(config.mongodb.database, "videotube");
    assert_eq!(config.tokens.access_ttl, secs(900));
    assert_eq!(config.cookies.same_site, None);
    assert_eq!(
        config.upload.as_ref().expect("images").max_file_bytes,
        2_097_152
    );
}

#[test]
fn non_secret_values_are_trimmed() {
    let config = load(&with(&[
        ("MONGODB_DB", " videotube2 "),
        ("ACCESS_TOKEN_EXPIRY", " 5m\n"),
    ]));
    assert_eq!(config.mongodb.database, "videotube2");
    assert_eq!(config.tokens.access_ttl, secs(300));
}

#[test]
fn every_builtin_default_is_valid_and_documented() {
    // `minimal()` sets only required variables, so every default was parsed above; here we
    // check that the table itself names every variable the loader reads exactly once.
    let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total, "a variable is listed twice");
    for required in ["MONGODB_URI", "ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET"] {
        let variable = VARIABLES.iter().find(|v| v.name == required);
        assert_eq!(variable.map(|v| v.default), Some(None), "{required}");
    }
    assert!(VARIABLES.iter().all(|v| !v.meaning.is_empty()));
}

#[test]
fn missing_required_variables_are_all_reported_together() {
    let error = reject(&HashMap::new());
    let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
    assert_eq!(
        named,
        [
            "MONGODB_URI",
            "ACCESS_TOKEN_SECRET",
            "REFRESH_TOKEN_SECRET",
            "CLOUDINARY_CLOUD_NAME",
            "CLOUDINARY_API_KEY",
            "CLOUDINARY_API_SECRET",
        ]
    );
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "invalid configuration (6 problems):");
    assert_eq!(lines.len(), 7, "{text}");
    for (line, variable) in lines[1..].iter().zip(&named) {
        assert!(
            line.trim_start().starts_with(&format!("{variable}: ")),
            "{line}"
        );
        assert!(line.contains("is required"), "{line}");
    }
    assert!(
        text.contains("CLOUDINARY_URL"),
        "the hint names the other form: {text}"
    );
}

#[test]
fn problems_in_every_section_are_collected_without_short_circuiting() {
    let error = reject(&with(&[
        ("MONGODB_URI", "postgres://x"),
        ("MONGODB_DB", "bad.name"),
        ("ACCESS_TOKEN_SECRET", "short"),
        ("ACCESS_TOKEN_EXPIRY", "900"),
        ("TOKEN_LEEWAY", "2 minutes"),
        ("CLOUDINARY_URL", "cloudinary://broken"),
        ("CLOUDINARY_FOLDER", "/abs"),
        ("UPLOAD_MAX_FILE_BYTES", "lots"),
        ("UPLOAD_TMP_DIR", "tmp"),
        ("COOKIE_SECURE", "perhaps"),
        ("COOKIE_SAMESITE", "sometimes"),
    ]));
    for variable in [
        "MONGODB_URI",
        "MONGODB_DB",
        "ACCESS_TOKEN_SECRET",
        "ACCESS_TOKEN_EXPIRY",
        "TOKEN_LEEWAY",
        "CLOUDINARY_URL",
        "CLOUDINARY_FOLDER",
        "UPLOAD_MAX_FILE_BYTES",
        "UPLOAD_TMP_DIR",
        "COOKIE_SECURE",
        "COOKIE_SAMESITE",
    ] {
        assert!(error.mentions(variable), "{variable} missing from: {error}");
    }
    assert_eq!(error.problems.len(), 11, "{error}");
}

#[test]
fn the_mongodb_uri_must_be_a_mongodb_url_and_is_never_quoted() {
    let error = reject_only(
        &with(&[("MONGODB_URI", &format!("http://u:{MONGO_PASSWORD}@host"))]),
        "MONGODB_URI",
    );
    assert!(error.to_string().contains("mongodb://"), "{error}");
    reject_only(&with(&[("MONGODB_URI", "mongodb://")]), "MONGODB_URI");
    reject_only(&with(&[("MONGODB_URI", "mongodb://a b")]), "MONGODB_URI");
    reject_only(&without(&["MONGODB_URI"]), "MONGODB_URI");
    let srv = load(&with(&[(
        "MONGODB_URI",
        "mongodb+srv://u:p@cluster0.example.mongodb.net/?retryWrites=true",
    )]));
    assert!(
        srv.mongodb
            .uri
            .expose_secret()
            .starts_with("mongodb+srv://")
    );
}

#[test]
fn the_database_name_must_be_valid_for_mongodb() {
    for bad in ["video.tube", "video tube", "a/b", "a$b", &"d".repeat(64)] {
        reject_only(&with(&[("MONGODB_DB", bad)]), "MONGODB_DB");
    }
}

#[test]
fn a_token_secret_shorter_than_32_bytes_is_rejected() {
    let short = "x".repeat(31);
    let error = reject_only(
        &with(&[("ACCESS_TOKEN_SECRET", &short)]),
        "ACCESS_TOKEN_SECRET",
    );
    assert!(error.to_string().contains("32 bytes"), "{error}");
    assert!(!error.to_string().contains(&short), "{error}");
    assert!(error.to_string().contains("gen-secrets"), "{error}");
    reject_only(
        &with(&[("REFRESH_TOKEN_SECRET", "too-short")]),
        "REFRESH_TOKEN_SECRET",
    );
}

#[test]
fn secret_length_is_counted_in_bytes() {
    load(&with(&[("ACCESS_TOKEN_SECRET", &"y".repeat(32))]));
    // 16 two-byte characters are 32 bytes.
    load(&with(&[("ACCESS_TOKEN_SECRET", &"é".repeat(16))]));
    reject_only(
        &with(&[("ACCESS_TOKEN_SECRET", &"é".repeat(15))]),
        "ACCESS_TOKEN_SECRET",
    );
}

#[test]
fn equal_token_secrets_are_rejected() {
    let error = reject_only(
        &with(&[("REFRESH_TOKEN_SECRET", ACCESS_SECRET)]),
        "REFRESH_TOKEN_SECRET",
    );
    assert!(
        error
            .to_string()
            .contains("must differ from ACCESS_TOKEN_SECRET")
    );
}

#[test]
fn secrets_with_surrounding_whitespace_are_rejected() {
    let padded = format!("{ACCESS_SECRET}\n");
    reject_only(
        &with(&[("ACCESS_TOKEN_SECRET", &padded)]),
        "ACCESS_TOKEN_SECRET",
    );
    let padded_uri = format!(" mongodb://u:{MONGO_PASSWORD}@h");
    reject_only(&with(&[("MONGODB_URI", &padded_uri)]), "MONGODB_URI");
}

#[test]
fn secret_references_left_unresolved_are_rejected() {
    let error = reject_only(
        &with(&[(
            "ACCESS_TOKEN_SECRET",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:access-secret-value-AbCdEf",
        )]),
        "ACCESS_TOKEN_SECRET",
    );
    assert!(error.to_string().contains("not resolved"), "{error}");
    reject_only(
        &with(&[("MONGODB_URI", "ssm:/videotube/uri")]),
        "MONGODB_URI",
    );
}

#[test]
fn the_refresh_token_must_outlive_the_access_token() {
    for (access, refresh) in [("15m", "15m"), ("1h", "30m"), ("1d", "24h")] {
        let error = reject_only(
            &with(&[
                ("ACCESS_TOKEN_EXPIRY", access),
                ("REFRESH_TOKEN_EXPIRY", refresh),
            ]),
            "REFRESH_TOKEN_EXPIRY",
        );
        assert!(error.to_string().contains("ACCESS_TOKEN_EXPIRY"), "{error}");
    }
    load(&with(&[
        ("ACCESS_TOKEN_EXPIRY", "15m"),
        ("REFRESH_TOKEN_EXPIRY", "16m"),
        ("REFRESH_REUSE_GRACE", "10s"),
    ]));
}

#[test]
fn the_session_must_last_at_least_as_long_as_the_refresh_token() {
    let error = reject_only(
        &with(&[("REFRESH_TOKEN_EXPIRY", "10d"), ("SESSION_MAX_AGE", "9d")]),
        "SESSION_MAX_AGE",
    );
    assert!(error.to_string().contains("is 9d, but"), "{error}");
    let equal = load(&with(&[
        ("REFRESH_TOKEN_EXPIRY", "10d"),
        ("SESSION_MAX_AGE", "240h"),
    ]));
    assert_eq!(equal.tokens.session_max_age, equal.tokens.refresh_ttl);
}

#[test]
fn bare_number_durations_are_rejected_naming_the_variable() {
    for variable in [
        "MONGODB_SERVER_SELECTION_TIMEOUT",
        "MONGODB_CONNECT_TIMEOUT",
        "ACCESS_TOKEN_EXPIRY",
        "REFRESH_TOKEN_EXPIRY",
        "SESSION_MAX_AGE",
        "REFRESH_REUSE_GRACE",
        "TOKEN_LEEWAY",
        "CLOUDINARY_CONNECT_TIMEOUT",
        "CLOUDINARY_TIMEOUT",
    ] {
        let error = reject_only(&with(&[(variable, "5")]), variable);
        let text = error.to_string();
        assert!(
            text.contains(&format!("{variable}: \"5\": a bare number is ambiguous")),
            "{text}"
        );
    }
}

#[test]
fn zero_negative_and_unknown_unit_durations_are_rejected() {
    for value in ["0s", "0", "-5m", "5 fortnights", "NaN", "soon"] {
        reject_only(
            &with(&[("ACCESS_TOKEN_EXPIRY", value)]),
            "ACCESS_TOKEN_EXPIRY",
        );
        reject_only(
            &with(&[("MONGODB_CONNECT_TIMEOUT", value)]),
            "MONGODB_CONNECT_TIMEOUT",
        );
    }
}

#[test]
fn the_leeway_may_be_zero_but_at_most_a_minute() {
    let zero = load(&with(&[("TOKEN_LEEWAY", "0s")]));
    assert_eq!(zero.tokens.leeway, Duration::ZERO);
    let max = load(&with(&[("TOKEN_LEEWAY", "60s")]));
    assert_eq!(max.tokens.leeway, secs(60));
    for bad in ["61s", "2m", "0", "-1s", "500ms", "1500ms"] {
        reject_only(&with(&[("TOKEN_LEEWAY", bad)]), "TOKEN_LEEWAY");
    }
}

#[test]
fn token_lifetimes_must_be_whole_seconds() {
    reject_only(
        &with(&[("ACCESS_TOKEN_EXPIRY", "1500ms")]),
        "ACCESS_TOKEN_EXPIRY",
    );
    reject_only(&with(&[("SESSION_MAX_AGE", "30.5s")]), "SESSION_MAX_AGE");
    let config = load(&with(&[("ACCESS_TOKEN_EXPIRY", "2000ms")]));
    assert_eq!(config.tokens.access_ttl, secs(2));
}

#[test]
fn absurdly_long_lifetimes_are_rejected() {
    reject_only(&with(&[("SESSION_MAX_AGE", "1000y")]), "SESSION_MAX_AGE");
    load(&with(&[("SESSION_MAX_AGE", "100y")]));
}

#[test]
fn the_reuse_grace_is_short_and_shorter_than_the_refresh_token() {
    reject_only(
        &with(&[("REFRESH_REUSE_GRACE", "6m")]),
        "REFRESH_REUSE_GRACE",
    );
    load(&with(&[("REFRESH_REUSE_GRACE", "5m")]));
    let off = load(&with(&[("REFRESH_REUSE_GRACE", "0s")]));
    assert_eq!(
        off.tokens.reuse_grace,
        Duration::ZERO,
        "0s turns the window off"
    );
    reject_only(
        &with(&[("REFRESH_REUSE_GRACE", "-1s")]),
        "REFRESH_REUSE_GRACE",
    );
    let error = reject_only(
        &with(&[
            ("ACCESS_TOKEN_EXPIRY", "10s"),
            ("REFRESH_TOKEN_EXPIRY", "20s"),
            ("SESSION_MAX_AGE", "1m"),
            ("REFRESH_REUSE_GRACE", "20s"),
        ]),
        "REFRESH_REUSE_GRACE",
    );
    assert!(
        error.to_string().contains("REFRESH_TOKEN_EXPIRY"),
        "{error}"
    );
}

#[test]
fn timeouts_cannot_exceed_a_lambda_invocation() {
    reject_only(
        &with(&[("MONGODB_SERVER_SELECTION_TIMEOUT", "16m")]),
        "MONGODB_SERVER_SELECTION_TIMEOUT",
    );
    reject_only(&with(&[("CLOUDINARY_TIMEOUT", "1h")]), "CLOUDINARY_TIMEOUT");
    load(&with(&[("CLOUDINARY_TIMEOUT", "15m")]));
}

#[test]
fn the_cloudinary_connect_timeout_cannot_exceed_the_request_timeout() {
    reject_only(
        &with(&[
            ("CLOUDINARY_CONNECT_TIMEOUT", "11s"),
            ("CLOUDINARY_TIMEOUT", "10s"),
        ]),
        "CLOUDINARY_CONNECT_TIMEOUT",
    );
    load(&with(&[
        ("CLOUDINARY_CONNECT_TIMEOUT", "10s"),
        ("CLOUDINARY_TIMEOUT", "10s"),
    ]));
}

#[test]
fn a_malformed_cloudinary_url_is_reported_without_its_secret() {
    for bad in [
        format!("cloudinary://123456789012345:{CLOUDINARY_SECRET}"),
        format!("cloudinary://{CLOUDINARY_SECRET}@demo-cloud"),
        format!("https://123456789012345:{CLOUDINARY_SECRET}@demo-cloud"),
        format!("cloudinary://123456789012345:{CLOUDINARY_SECRET}@demo-cloud/path"),
        format!("cloudinary://123456789012345:{CLOUDINARY_SECRET}@demo-cloud?secure=true"),
        format!("123456789012345:{CLOUDINARY_SECRET}@demo-cloud"),
        CLOUDINARY_SECRET.to_owned(),
    ] {
        let error = reject_only(&with(&[("CLOUDINARY_URL", &bad)]), "CLOUDINARY_URL");
        assert!(
            error
                .to_string()
                .contains("cloudinary://API_KEY:API_SECRET@CLOUD_NAME"),
            "{error}"
        );
    }
}

#[test]
fn the_three_separate_cloudinary_variables_work_instead_of_the_url() {
    let mut vars = without(&["CLOUDINARY_URL"]);
    vars.insert("CLOUDINARY_CLOUD_NAME".into(), "other-cloud".into());
    vars.insert("CLOUDINARY_API_KEY".into(), "987654".into());
    vars.insert("CLOUDINARY_API_SECRET".into(), CLOUDINARY_SECRET.into());
    let config = load(&vars);
    assert_eq!(
        config.cloudinary.as_ref().expect("images").cloud_name,
        "other-cloud"
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").api_key,
        "987654"
    );
    assert_eq!(
        config
            .cloudinary
            .as_ref()
            .expect("images")
            .api_secret
            .expose_secret(),
        CLOUDINARY_SECRET
    );
}

#[test]
fn each_missing_separate_cloudinary_variable_is_reported() {
    let mut vars = without(&["CLOUDINARY_URL"]);
    vars.insert("CLOUDINARY_CLOUD_NAME".into(), "demo-cloud".into());
    let error = reject(&vars);
    let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
    assert_eq!(named, ["CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET"]);
}

#[test]
fn separate_cloudinary_variables_are_validated() {
    let mut vars = without(&["CLOUDINARY_URL"]);
    vars.insert("CLOUDINARY_CLOUD_NAME".into(), "demo/../cloud".into());
    vars.insert("CLOUDINARY_API_KEY".into(), "12 34".into());
    vars.insert("CLOUDINARY_API_SECRET".into(), "has space".into());
    let error = reject(&vars);
    let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
    assert_eq!(
        named,
        [
            "CLOUDINARY_CLOUD_NAME",
            "CLOUDINARY_API_KEY",
            "CLOUDINARY_API_SECRET"
        ]
    );
    assert!(!error.to_string().contains("has space"), "{error}");
}

#[test]
fn both_cloudinary_forms_are_accepted_when_they_agree() {
    let config = load(&with(&[
        ("CLOUDINARY_CLOUD_NAME", "demo-cloud"),
        ("CLOUDINARY_API_KEY", "123456789012345"),
        ("CLOUDINARY_API_SECRET", CLOUDINARY_SECRET),
    ]));
    assert_eq!(
        config.cloudinary.as_ref().expect("images").cloud_name,
        "demo-cloud"
    );
}

#[test]
fn both_cloudinary_forms_disagreeing_is_a_problem_naming_each_difference() {
    let error = reject(&with(&[
        ("CLOUDINARY_CLOUD_NAME", "another-cloud"),
        ("CLOUDINARY_API_KEY", "123456789012345"),
        ("CLOUDINARY_API_SECRET", "a-different-secret-value"),
    ]));
    let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
    assert_eq!(named, ["CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_SECRET"]);
    assert!(error.to_string().contains("disagrees with"), "{error}");
    assert!(
        !error.to_string().contains("a-different-secret-value"),
        "{error}"
    );
}

#[test]
fn the_cloudinary_api_base_must_be_https_unless_on_loopback() {
    for ok in [
        "https://api.cloudinary.com",
        "https://cloudinary.internal.example/prefix",
        "http://localhost:9100",
        "http://127.0.0.1:9100",
        "http://[::1]:9100",
    ] {
        let config = load(&with(&[("CLOUDINARY_API_BASE", ok)]));
        assert!(
            config
                .cloudinary
                .as_ref()
                .expect("images")
                .api_base
                .path()
                .ends_with('/')
        );
    }
    for bad in [
        "http://api.cloudinary.com",
        "http://192.168.1.10:9100",
        "ftp://127.0.0.1",
        "not a url",
        "https://user:pw@api.cloudinary.com",
    ] {
        let error = reject_only(
            &with(&[("CLOUDINARY_API_BASE", bad)]),
            "CLOUDINARY_API_BASE",
        );
        assert!(!error.to_string().contains("user:pw"), "{error}");
    }
}

#[test]
fn the_cloudinary_folder_is_restricted() {
    for bad in [
        "/videotube",
        "videotube/",
        "video//tube",
        "video tube",
        "../x",
        "a.b",
    ] {
        reject_only(&with(&[("CLOUDINARY_FOLDER", bad)]), "CLOUDINARY_FOLDER");
    }
}

#[test]
fn the_signature_algorithm_is_sha1_or_sha256() {
    let sha1 = load(&with(&[("CLOUDINARY_SIGNATURE_ALGORITHM", "sha1")]));
    assert_eq!(
        sha1.cloudinary
            .as_ref()
            .expect("images")
            .signature_algorithm,
        SignatureAlgorithm::Sha1
    );
    reject_only(
        &with(&[("CLOUDINARY_SIGNATURE_ALGORITHM", "md5")]),
        "CLOUDINARY_SIGNATURE_ALGORITHM",
    );
}

#[test]
fn sizes_accept_byte_counts_and_binary_suffixes() {
    let config = load(&with(&[
        ("UPLOAD_MAX_FILE_BYTES", "1048576"),
        ("UPLOAD_MAX_BODY_BYTES", "4.5MiB"),
        ("UPLOAD_MAX_FIELD_BYTES", "2 KiB"),
    ]));
    assert_eq!(
        config.upload.as_ref().expect("images").max_file_bytes,
        1_048_576
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_body_bytes,
        4_718_592
    );
    assert_eq!(
        config.upload.as_ref().expect("images").max_field_bytes,
        2_048
    );
}

#[test]
fn sizes_must_be_positive_whole_byte_counts() {
    for bad in ["0", "-1", "1.5", "2MB", "lots", "0KiB", "1e6"] {
        reject_only(
            &with(&[("UPLOAD_MAX_FILE_BYTES", bad)]),
            "UPLOAD_MAX_FILE_BYTES",
        );
        reject_only(
            &with(&[("UPLOAD_MAX_FIELD_BYTES", bad)]),
            "UPLOAD_MAX_FIELD_BYTES",
        );
    }
}

#[test]
fn the_file_limit_cannot_exceed_the_body_limit() {
    let error = reject_only(
        &with(&[
            ("UPLOAD_MAX_FILE_BYTES", "5MiB"),
            ("UPLOAD_MAX_BODY_BYTES", "4MiB"),
        ]),
        "UPLOAD_MAX_FILE_BYTES",
    );
    assert!(
        error.to_string().contains("UPLOAD_MAX_BODY_BYTES"),
        "{error}"
    );
    load(&with(&[
        ("UPLOAD_MAX_FILE_BYTES", "4MiB"),
        ("UPLOAD_MAX_BODY_BYTES", "4MiB"),
    ]));
    reject_only(
        &with(&[
            ("UPLOAD_MAX_FIELD_BYTES", "5MiB"),
            ("UPLOAD_MAX_BODY_BYTES", "4.5MiB"),
        ]),
        "UPLOAD_MAX_FIELD_BYTES",
    );
}

#[test]
fn the_staging_directory_must_be_absolute() {
    reject_only(
        &with(&[("UPLOAD_TMP_DIR", "tmp/uploads")]),
        "UPLOAD_TMP_DIR",
    );
}

#[test]
fn cookie_secure_accepts_the_usual_spellings() {
    for (value, expected) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("Yes", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("no", false),
        ("NO", false),
    ] {
        let config = load(&with(&[("COOKIE_SECURE", value)]));
        assert_eq!(config.cookies.secure, expected, "{value}");
    }
    for bad in ["on", "off", "2", "y", "truthy"] {
        reject_only(&with(&[("COOKIE_SECURE", bad)]), "COOKIE_SECURE");
    }
}

#[test]
fn cookie_samesite_applies_one_value_to_both_cookies() {
    for (value, expected) in [
        ("strict", SameSite::Strict),
        ("LAX", SameSite::Lax),
        ("None", SameSite::None),
    ] {
        let config = load(&with(&[("COOKIE_SAMESITE", value)]));
        assert_eq!(config.cookies.same_site, Some(expected));
        assert_eq!(config.cookies.access_same_site(), expected);
        assert_eq!(config.cookies.refresh_same_site(), expected);
    }
    reject_only(&with(&[("COOKIE_SAMESITE", "lenient")]), "COOKIE_SAMESITE");
}

#[test]
fn samesite_none_without_secure_cookies_is_a_problem() {
    let error = reject_only(
        &with(&[("COOKIE_SECURE", "false"), ("COOKIE_SAMESITE", "none")]),
        "COOKIE_SAMESITE",
    );
    assert!(error.to_string().contains("COOKIE_SECURE"), "{error}");
    load(&with(&[
        ("COOKIE_SECURE", "false"),
        ("COOKIE_SAMESITE", "lax"),
    ]));
    load(&with(&[
        ("COOKIE_SECURE", "true"),
        ("COOKIE_SAMESITE", "none"),
    ]));
}

#[test]
fn debug_output_of_the_config_redacts_every_secret() {
    let mut vars = with(&[]);
    vars.remove("CLOUDINARY_URL");
    vars.insert("CLOUDINARY_CLOUD_NAME".into(), "demo-cloud".into());
    vars.insert("CLOUDINARY_API_KEY".into(), "123".into());
    vars.insert("CLOUDINARY_API_SECRET".into(), CLOUDINARY_SECRET.into());
    for config in [load(&minimal()), load(&vars)] {
        let debug = format!("{config:?}");
        let pretty = format!("{:#?}", config.clone());
        assert_no_secret_in(&debug);
        assert_no_secret_in(&pretty);
        assert!(debug.contains("REDACTED"), "{debug}");
        assert!(
            debug.contains("demo-cloud"),
            "non-secrets stay visible: {debug}"
        );
    }
}

#[test]
fn long_values_are_not_echoed_in_full() {
    let long = "z".repeat(10_000);
    let error = reject(&with(&[
        ("MONGODB_DB", &long),
        ("ACCESS_TOKEN_EXPIRY", &long),
        ("CLOUDINARY_FOLDER", &long),
    ]));
    assert!(error.to_string().len() < 1_000, "{error}");
}

#[tokio::test]
async fn load_from_without_references_never_loads_the_aws_sdk_config() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let called = AtomicBool::new(false);
    let config = Config::load_from(minimal(), || async {
        called.store(true, Ordering::SeqCst);
        aws_config::SdkConfig::builder().build()
    })
    .await;
    assert!(config.is_ok(), "{config:?}");
    assert!(
        !called.load(Ordering::SeqCst),
        "cold starts without references pay nothing"
    );
}

#[tokio::test]
async fn load_from_validates_exactly_like_from_vars() {
    let bad = with(&[("ACCESS_TOKEN_EXPIRY", "900")]);
    let from_load = Config::load_from(bad.clone(), || async {
        aws_config::SdkConfig::builder().build()
    })
    .await
    .expect_err("invalid");
    let from_vars = Config::from_vars(&bad).expect_err("invalid");
    assert_eq!(from_load, from_vars);
}

/// `Config::load` reads the real process environment. Tests run in parallel, so rather than
/// mutate this process's environment the test re-runs its own binary as a child with a
/// prepared one; in the child (marked by `CONFIG_RULES_CHILD`) it checks what `load` returns.
#[tokio::test]
async fn load_reads_the_process_environment() {
    const TEST_NAME: &str = "load_reads_the_process_environment";
    if let Ok(expectation) = std::env::var("CONFIG_RULES_CHILD") {
        let result = Config::load(shared::Needs::ALL).await;
        match expectation.as_str() {
            "valid" => {
                let config = result.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(config.mongodb.database, "from_the_environment");
                assert_eq!(
                    config
                        .tokens
                        .access_secret
                        .as_ref()
                        .expect("secret")
                        .expose_secret(),
                    ACCESS_SECRET
                );
            }
            "non-utf8" => {
                let error = result.expect_err("a non-UTF-8 value is a problem");
                let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
                assert_eq!(named, ["MONGODB_DB"], "{error}");
                assert!(error.to_string().contains("UTF-8"), "{error}");
            }
            other => panic!("unknown expectation {other}"),
        }
        return;
    }

    use std::os::unix::ffi::OsStrExt;
    let non_utf8 = std::ffi::OsStr::from_bytes(b"video\xfftube");
    for expectation in ["valid", "non-utf8"] {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"]);
        // Whatever the developer's shell exports must not leak into the child's view.
        for variable in VARIABLES {
            command.env_remove(variable.name);
        }
        command
            .envs(minimal())
            .env("CONFIG_RULES_CHILD", expectation);
        if expectation == "valid" {
            command.env("MONGODB_DB", "from_the_environment");
        } else {
            command.env("MONGODB_DB", non_utf8);
        }
        let output = command.output().expect("re-run the test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child ({expectation}) failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

mod per_function {
    use super::*;
    use shared::Needs;

    #[test]
    fn an_account_function_needs_neither_the_refresh_secret_nor_cloudinary() {
        let vars = without(&["REFRESH_TOKEN_SECRET", "CLOUDINARY_URL"]);
        let config = Config::from_vars_for(&vars, Needs::ACCOUNT).expect("valid for ACCOUNT");
        assert!(config.tokens.access_secret.is_some());
        assert!(config.tokens.refresh_secret.is_none());
        assert!(config.cloudinary.is_none() && config.upload.is_none());
        // The same variables are not enough for a function that signs sessions in.
        let error = Config::from_vars_for(&vars, Needs::SESSIONS).expect_err("needs refresh");
        assert!(error.mentions("REFRESH_TOKEN_SECRET"));
        assert!(!error.mentions("CLOUDINARY_URL"), "{error}");
    }

    #[test]
    fn what_a_function_does_not_use_is_not_read_even_when_set_badly() {
        let vars = with(&[
            ("CLOUDINARY_URL", "not a url"),
            ("UPLOAD_MAX_FILE_BYTES", "lots"),
            ("REFRESH_TOKEN_SECRET", "short"),
        ]);
        Config::from_vars_for(&vars, Needs::ACCOUNT).expect("unused variables are ignored");
        let error = Config::from_vars_for(&vars, Needs::IMAGES).expect_err("images read them");
        assert!(error.mentions("CLOUDINARY_URL") && error.mentions("UPLOAD_MAX_FILE_BYTES"));
        assert!(!error.mentions("REFRESH_TOKEN_SECRET"), "{error}");
    }

    #[test]
    fn the_node_refresh_secret_may_be_short_and_only_refresh_reads_it() {
        let vars = with(&[("NODE_REFRESH_TOKEN_SECRET", "chai-aur-backend")]);
        let config = Config::from_vars_for(&vars, Needs::SESSIONS).expect("any length");
        assert!(config.tokens.node_refresh_secret.is_some());
        let config = Config::from_vars_for(&vars, Needs::LOGIN).expect("not read by login");
        assert!(config.tokens.node_refresh_secret.is_none());
        assert!(Needs::SESSIONS.reads("NODE_REFRESH_TOKEN_SECRET"));
        assert!(!Needs::LOGIN.reads("NODE_REFRESH_TOKEN_SECRET"));
        let unset = Config::from_vars_for(&with(&[]), Needs::SESSIONS).expect("optional");
        assert!(unset.tokens.node_refresh_secret.is_none());
        let padded = with(&[("NODE_REFRESH_TOKEN_SECRET", "chai-aur-backend\n")]);
        let error = Config::from_vars_for(&padded, Needs::SESSIONS).expect_err("whitespace");
        assert!(error.mentions("NODE_REFRESH_TOKEN_SECRET"), "{error}");
    }

    #[test]
    fn only_the_functions_that_check_passwords_or_node_tokens_read_the_throttles() {
        let vars = with(&[("THROTTLE_DELAY", "soon"), ("THROTTLE_ENABLED", "true")]);
        for needs in [Needs::REGISTER, Needs::ACCOUNT, Needs::IMAGES] {
            let config = Config::from_vars_for(&vars, needs).expect("throttles not read");
            assert!(!config.throttle.enabled, "{needs:?}: off where not read");
        }
        for needs in [Needs::LOGIN, Needs::CHANGE_PASSWORD, Needs::SESSIONS] {
            let error = Config::from_vars_for(&vars, needs).expect_err("read there");
            assert!(error.mentions("THROTTLE_DELAY"), "{needs:?}: {error}");
        }
        let config = Config::from_vars_for(&with(&[]), Needs::LOGIN).expect("defaults");
        assert!(config.throttle.enabled, "on by default where they are read");
    }

    #[test]
    fn register_signs_nobody_in_so_needs_no_token_secret() {
        let vars = without(&["ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET"]);
        let config = Config::from_vars_for(&vars, Needs::REGISTER).expect("valid for REGISTER");
        assert!(config.tokens.access_secret.is_none() && config.cloudinary.is_some());
        let keys = shared::tokens::TokenKeys::new(&config.tokens);
        assert!(matches!(
            keys.verify_access("a.b.c"),
            Err(shared::tokens::TokenError::NotConfigured(
                "ACCESS_TOKEN_SECRET"
            ))
        ));
    }

    #[test]
    fn equal_secrets_are_refused_only_where_both_are_read() {
        let vars = with(&[("REFRESH_TOKEN_SECRET", ACCESS_SECRET)]);
        Config::from_vars_for(&vars, Needs::ACCOUNT).expect("refresh secret not read");
        assert!(
            Config::from_vars_for(&vars, Needs::SESSIONS)
                .expect_err("equal")
                .mentions("REFRESH_TOKEN_SECRET")
        );
    }

    #[test]
    fn the_environment_snapshot_skips_what_a_function_does_not_read() {
        assert!(!Needs::ACCOUNT.reads("CLOUDINARY_URL"));
        assert!(!Needs::ACCOUNT.reads("UPLOAD_TMP_DIR"));
        assert!(!Needs::ACCOUNT.reads("REFRESH_TOKEN_SECRET"));
        assert!(Needs::ACCOUNT.reads("ACCESS_TOKEN_SECRET"));
        assert!(!Needs::REGISTER.reads("ACCESS_TOKEN_SECRET"));
        for v in VARIABLES {
            assert!(Needs::ALL.reads(v.name), "{}", v.name);
            assert!(
                Needs::SESSIONS.reads(v.name)
                    || v.name.starts_with("CLOUDINARY_")
                    || v.name.starts_with("UPLOAD_")
                    || v.name.starts_with("THROTTLE_")
            );
        }
    }
}
