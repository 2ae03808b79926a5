//! Secret references resolved against a real AWS emulator (moto server).
//!
//! The emulator's URL comes from `TEST_AWS_ENDPOINT_URL`, which `make test` sets after starting
//! it. Without it every test here fails: a secret-resolution test that silently passes when its
//! server is missing would hide exactly the breakage it exists to catch.
//!
//! Region, credentials and endpoint are set on the SDK configuration itself (and the host
//! environment is ignored), because tests run in parallel and must not touch process-wide
//! environment variables. Every secret and parameter gets a unique name, so the tests can share
//! one long-running emulator and be re-run against it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::primitives::Blob;
use secrecy::ExposeSecret;
use shared::config::{Config, resolve_references};

const REGION: &str = "us-east-1";

fn endpoint() -> String {
    match std::env::var("TEST_AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "TEST_AWS_ENDPOINT_URL is not set: run the tests through `make test`, which starts \
             the local AWS emulator"
        ),
    }
}

async fn sdk_for(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .empty_test_environment()
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "config_secrets test",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

async fn sdk() -> SdkConfig {
    sdk_for(&endpoint(), REGION).await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Creates a string secret and returns its ARN.
async fn create_secret(sdk: &SdkConfig, value: &str) -> String {
    let output = aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(unique("videotube/test/secret"))
        .secret_string(value)
        .send()
        .await
        .expect("create a secret in the emulator");
    output
        .arn()
        .expect("the emulator returns an ARN")
        .to_owned()
}

/// Creates a SecureString parameter and returns its name.
async fn create_parameter(sdk: &SdkConfig, value: &str) -> String {
    let name = format!("/{}", unique("videotube/test/param"));
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(&name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("create a parameter in the emulator");
    name
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An ARN in the emulator's account that names no secret.
fn missing_arn() -> String {
    format!(
        "arn:aws:secretsmanager:{REGION}:123456789012:secret:{}",
        unique("does-not-exist")
    )
}

#[tokio::test]
async fn a_secrets_manager_arn_resolves_to_the_secret_string() {
    let sdk = sdk().await;
    let secret = "plain-secret-value-0123456789abcdef-XYZ";
    let arn = create_secret(&sdk, secret).await;
    let mut vars = vars(&[("ACCESS_TOKEN_SECRET", &arn)]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(vars["ACCESS_TOKEN_SECRET"], secret);
}

#[tokio::test]
async fn a_json_key_selects_one_value_of_a_json_secret() {
    let sdk = sdk().await;
    let arn = create_secret(
        &sdk,
        r#"{"access": "json-access-secret-0123456789abcdefgh", "refresh": "json-refresh-secret-0123456789abcdefg", "port": 27017}"#,
    )
    .await;
    let mut vars = vars(&[
        ("ACCESS_TOKEN_SECRET", &format!("{arn}#access")),
        ("REFRESH_TOKEN_SECRET", &format!("{arn}#refresh")),
    ]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        vars["ACCESS_TOKEN_SECRET"],
        "json-access-secret-0123456789abcdefgh"
    );
    assert_eq!(
        vars["REFRESH_TOKEN_SECRET"],
        "json-refresh-secret-0123456789abcdefg"
    );
}

#[tokio::test]
async fn an_ssm_reference_resolves_to_the_decrypted_securestring() {
    let sdk = sdk().await;
    let uri = "mongodb://app:ssm-stored-password@127.0.0.1:27017/";
    let name = create_parameter(&sdk, uri).await;
    let mut vars = vars(&[("MONGODB_URI", &format!("ssm:{name}"))]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(vars["MONGODB_URI"], uri);
}

#[tokio::test]
async fn an_ssm_reference_may_select_a_json_key_too() {
    let sdk = sdk().await;
    let name = create_parameter(&sdk, r#"{"secret": "cloudinary-api-secret-from-ssm"}"#).await;
    let mut vars = vars(&[("CLOUDINARY_API_SECRET", &format!("ssm:{name}#secret"))]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        vars["CLOUDINARY_API_SECRET"],
        "cloudinary-api-secret-from-ssm"
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_problem_naming_the_variable() {
    let sdk = sdk().await;
    let arn = missing_arn();
    let mut vars = vars(&[("REFRESH_TOKEN_SECRET", &arn)]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].variable, "REFRESH_TOKEN_SECRET");
    assert!(
        problems[0].message.contains("ResourceNotFoundException"),
        "{}",
        problems[0]
    );
    assert!(problems[0].message.contains(&arn), "names the reference");
    assert_eq!(vars["REFRESH_TOKEN_SECRET"], arn, "left unresolved");
}

#[tokio::test]
async fn a_missing_parameter_is_a_problem_naming_the_variable() {
    let sdk = sdk().await;
    let mut vars = vars(&[("MONGODB_URI", "ssm:/videotube/test/no-such-parameter")]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].variable, "MONGODB_URI");
    assert!(
        problems[0].message.contains("ParameterNotFound"),
        "{}",
        problems[0]
    );
}

#[tokio::test]
async fn a_missing_json_key_is_a_problem_that_does_not_quote_the_secret() {
    let sdk = sdk().await;
    let arn = create_secret(&sdk, r#"{"access": "do-not-print-this-secret-value"}"#).await;
    let mut vars = vars(&[
        ("REFRESH_TOKEN_SECRET", &format!("{arn}#refresh")),
        ("ACCESS_TOKEN_SECRET", &arn),
    ]);

    let problems = resolve_references(&mut vars, &sdk).await;

    let named: Vec<&str> = problems.iter().map(|p| p.variable.as_str()).collect();
    assert_eq!(named, ["ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET"]);
    assert!(problems[0].message.contains("#KEY"), "{}", problems[0]);
    assert!(problems[1].message.contains("no key"), "{}", problems[1]);
    for problem in &problems {
        assert!(!problem.message.contains("do-not-print"), "{problem}");
    }
}

#[tokio::test]
async fn a_binary_secret_is_a_problem() {
    let sdk = sdk().await;
    let arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(unique("videotube/test/binary"))
        .secret_binary(Blob::new(vec![0u8, 1, 2, 3]))
        .send()
        .await
        .expect("create a binary secret")
        .arn()
        .expect("an ARN")
        .to_owned();
    let mut vars = vars(&[("ACCESS_TOKEN_SECRET", &arn)]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.contains("binary"), "{}", problems[0]);
}

#[tokio::test]
async fn a_secret_in_another_region_is_read_from_the_region_in_its_arn() {
    let endpoint = endpoint();
    let eu = sdk_for(&endpoint, "eu-west-1").await;
    let arn = create_secret(&eu, "secret-kept-in-eu-west-1-0123456789abcdef").await;
    assert!(arn.contains(":eu-west-1:"), "{arn}");
    let mut vars = vars(&[("ACCESS_TOKEN_SECRET", &arn)]);

    // The function's own region is us-east-1; the emulator keeps regions apart like AWS does.
    let problems = resolve_references(&mut vars, &sdk().await).await;

    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        vars["ACCESS_TOKEN_SECRET"],
        "secret-kept-in-eu-west-1-0123456789abcdef"
    );
}

#[tokio::test]
async fn only_secret_variables_are_resolved() {
    let sdk = sdk().await;
    let name = create_parameter(&sdk, "videotube").await;
    let reference = format!("ssm:{name}");
    let mut vars = vars(&[("MONGODB_DB", &reference)]);

    let problems = resolve_references(&mut vars, &sdk).await;

    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(vars["MONGODB_DB"], reference, "left as it was");
}

#[tokio::test]
async fn an_unreachable_secret_store_is_a_problem_not_a_hang() {
    // Touch the emulator variable anyway, so this file fails as a whole when it is missing.
    let _ = endpoint();
    // Port 9 (discard) on loopback: nothing listens there, so connections are refused.
    let sdk = sdk_for("http://127.0.0.1:9", REGION).await;
    let mut vars = vars(&[("MONGODB_URI", "ssm:/videotube/unreachable")]);

    let started = Instant::now();
    let problems = resolve_references(&mut vars, &sdk).await;

    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].variable, "MONGODB_URI");
    assert!(
        started.elapsed() < shared::config::FETCH_TIMEOUT + Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// A full cold start: references of every kind, resolved and validated in one call.
#[tokio::test]
async fn load_from_resolves_every_reference_kind_and_validates_the_result() {
    let endpoint = endpoint();
    let setup = sdk().await;
    let tokens = create_secret(
        &setup,
        r#"{"access": "e2e-access-secret-0123456789abcdefghij", "refresh": "e2e-refresh-secret-0123456789abcdefghi"}"#,
    )
    .await;
    let cloudinary = create_secret(
        &setup,
        "cloudinary://123456789012345:E2eCloudinarySecret@e2e-cloud",
    )
    .await;
    let mongo = create_parameter(&setup, "mongodb://app:e2e-password@127.0.0.1:27017/").await;
    let vars = vars(&[
        ("MONGODB_URI", &format!("ssm:{mongo}")),
        ("MONGODB_DB", "videotube_e2e"),
        ("ACCESS_TOKEN_SECRET", &format!("{tokens}#access")),
        ("REFRESH_TOKEN_SECRET", &format!("{tokens}#refresh")),
        ("CLOUDINARY_URL", &cloudinary),
    ]);
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);

    let config = Config::load_from(vars, || async move {
        counter.fetch_add(1, Ordering::SeqCst);
        sdk_for(&endpoint, REGION).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the SDK config is loaded once"
    );
    assert_eq!(
        config.mongodb.uri.expose_secret(),
        "mongodb://app:e2e-password@127.0.0.1:27017/"
    );
    assert_eq!(config.mongodb.database, "videotube_e2e");
    assert_eq!(
        config
            .tokens
            .access_secret
            .as_ref()
            .expect("secret")
            .expose_secret(),
        "e2e-access-secret-0123456789abcdefghij"
    );
    assert_eq!(
        config
            .tokens
            .refresh_secret
            .as_ref()
            .expect("secret")
            .expose_secret(),
        "e2e-refresh-secret-0123456789abcdefghi"
    );
    assert_eq!(
        config.cloudinary.as_ref().expect("images").cloud_name,
        "e2e-cloud"
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
        "E2eCloudinarySecret"
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("e2e-password") && !debug.contains("E2eCloudinarySecret"));
}

#[tokio::test]
async fn load_from_reports_resolution_and_validation_problems_together() {
    let endpoint = endpoint();
    let setup = sdk().await;
    let short = create_secret(&setup, "too-short").await;
    let vars = vars(&[
        ("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
        ("ACCESS_TOKEN_SECRET", &missing_arn()),
        ("REFRESH_TOKEN_SECRET", &short),
        ("CLOUDINARY_URL", "cloudinary://1:2@c"),
        ("MONGODB_DB", "bad.name"),
    ]);

    let error = Config::load_from(vars, || sdk_for(&endpoint, REGION))
        .await
        .expect_err("the configuration is invalid");

    let named: Vec<&str> = error.problems.iter().map(|p| p.variable.as_str()).collect();
    // ACCESS_TOKEN_SECRET once (its resolution failure), not again as "unresolved".
    assert_eq!(
        named,
        ["ACCESS_TOKEN_SECRET", "MONGODB_DB", "REFRESH_TOKEN_SECRET"],
        "{error}"
    );
    assert!(
        error.to_string().contains("ResourceNotFoundException"),
        "{error}"
    );
    assert!(error.to_string().contains("32 bytes"), "{error}");
    assert!(!error.to_string().contains("too-short"), "{error}");
}
