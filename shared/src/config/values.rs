//! Parsers for single configuration values, each returning a message for the user on failure.
//!
//! They know nothing about variable names: [`super`] attaches the name when it records a
//! problem. Parsers of secret-bearing values (the MongoDB URI, the Cloudinary URL) never put
//! any part of their input into a message; the others quote at most a short excerpt via
//! [`excerpt`].

use cookie::SameSite;
use secrecy::SecretString;
use url::{Host, Url};

use super::SignatureAlgorithm;

/// How much of a non-secret value a message may quote.
const MAX_EXCERPT_CHARS: usize = 40;

/// A short, escaped, quoted excerpt of a non-secret value, for messages.
pub(super) fn excerpt(value: &str) -> String {
    let head: String = value.chars().take(MAX_EXCERPT_CHARS).collect();
    if value.chars().count() > MAX_EXCERPT_CHARS {
        format!("\"{}…\"", head.escape_debug())
    } else {
        format!("\"{}\"", head.escape_debug())
    }
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, any case.
pub(super) fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "{} is not a boolean: use true/false, 1/0 or yes/no",
            excerpt(value)
        )),
    }
}

/// `strict`, `lax` or `none`, any case.
pub(super) fn parse_same_site(value: &str) -> Result<SameSite, String> {
    match value.to_ascii_lowercase().as_str() {
        "strict" => Ok(SameSite::Strict),
        "lax" => Ok(SameSite::Lax),
        "none" => Ok(SameSite::None),
        _ => Err(format!(
            "{} is not a SameSite value: use strict, lax or none (or leave it unset for the \
             per-cookie defaults)",
            excerpt(value)
        )),
    }
}

/// `sha1` or `sha256` (also `sha-1`/`sha-256`), any case.
pub(super) fn parse_signature_algorithm(value: &str) -> Result<SignatureAlgorithm, String> {
    match value.to_ascii_lowercase().as_str() {
        "sha1" | "sha-1" => Ok(SignatureAlgorithm::Sha1),
        "sha256" | "sha-256" => Ok(SignatureAlgorithm::Sha256),
        _ => Err(format!(
            "{} is not a signature algorithm: use sha1 or sha256",
            excerpt(value)
        )),
    }
}

/// Binary multipliers accepted after a byte count. SI suffixes (`KB`, `MB`) are rejected
/// rather than guessed at, because people write `MB` meaning both 10^6 and 2^20.
const BYTE_SUFFIXES: &[(&str, u64)] = &[
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
];

/// A byte count: a plain integer (`2097152`), or a number with a binary suffix, any case,
/// optionally separated by whitespace (`2MiB`, `4.5 MiB`, `1kib`, `512B`). The result must be
/// a positive whole number of bytes.
///
/// Hand-written because it is a dozen lines and no crate in the dependency tree parses exactly
/// this (and only this) syntax.
/// A whole number from `min` to `max`.
pub(super) fn parse_count(value: &str, min: u32, max: u32) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{} is not a whole number from {min} to {max}",
            excerpt(value)
        )),
    }
}

pub(super) fn parse_byte_size(value: &str) -> Result<u64, String> {
    let usage = "use a byte count or a number with KiB, MiB or GiB, e.g. 2097152 or 2MiB";
    let number_len = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(number_len);
    let suffix = suffix.trim_start();
    let multiplier = if suffix.is_empty() {
        1
    } else {
        match BYTE_SUFFIXES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(suffix))
        {
            Some((_, m)) => *m,
            None => return Err(format!("{} is not a size: {usage}", excerpt(value))),
        }
    };
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) if !int.is_empty() && !frac.is_empty() && !suffix.is_empty() => {
            (int, frac.trim_end_matches('0'))
        }
        Some(_) => return Err(format!("{} is not a size: {usage}", excerpt(value))),
        None if number.is_empty() => {
            return Err(format!("{} is not a size: {usage}", excerpt(value)));
        }
        None => (number, ""),
    };
    let too_large = || format!("{} is too large", excerpt(value));
    // 28 digits times a GiB multiplier stays far inside u128; no real size needs more digits.
    if int.len() + frac.len() > 28 {
        return Err(format!("{} has too many digits", excerpt(value)));
    }
    let digits: u128 = format!("{int}{frac}").parse().map_err(|_| too_large())?;
    let denominator = 10u128.pow(frac.len() as u32);
    let scaled = digits
        .checked_mul(u128::from(multiplier))
        .ok_or_else(too_large)?;
    if !scaled.is_multiple_of(denominator) {
        return Err(format!("{} is not a whole number of bytes", excerpt(value)));
    }
    let bytes = u64::try_from(scaled / denominator).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err("must be greater than zero".to_owned());
    }
    Ok(bytes)
}

/// `mongodb://` or `mongodb+srv://` followed by something. The URI carries the database
/// password, so no message quotes it.
pub(super) fn check_mongo_uri(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("mongodb://")
        .or_else(|| value.strip_prefix("mongodb+srv://"))
        .ok_or("must start with mongodb:// or mongodb+srv://")?;
    if rest.is_empty() {
        return Err("names no host after the scheme".to_owned());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters".to_owned());
    }
    Ok(())
}

/// MongoDB's database-name rules, the stricter (Windows) set so a name works on every server:
/// 1 to 63 bytes, none of `/\. "$*<>:|?`, no control characters.
pub(super) fn check_database_name(value: &str) -> Result<(), String> {
    const FORBIDDEN: &[char] = &['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?'];
    if value.len() >= 64 {
        return Err(format!(
            "{} is too long for a MongoDB database name (at most 63 bytes)",
            excerpt(value)
        ));
    }
    if value
        .chars()
        .any(|c| FORBIDDEN.contains(&c) || c.is_control())
    {
        return Err(format!(
            "{} is not a valid MongoDB database name: it may not contain /\\. \"$*<>:|? or \
             control characters",
            excerpt(value)
        ));
    }
    Ok(())
}

/// True for `localhost` and loopback IP addresses (127.0.0.0/8, ::1).
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An `https` URL, or `http` on a loopback host (the local stand-in). No credentials, query or
/// fragment. The returned URL's path always ends in `/`, so `api_base.join("v1_1/...")` keeps
/// any path prefix of the base.
pub(super) fn parse_api_base(value: &str) -> Result<Url, String> {
    let mut url =
        Url::parse(value).map_err(|e| format!("{} is not a URL ({e})", excerpt(value)))?;
    let host_is_loopback = url.host().is_some_and(|h| is_loopback(&h));
    match url.scheme() {
        "https" => {}
        "http" if host_is_loopback => {}
        "http" => {
            return Err(format!(
                "{} uses plain http, which is only allowed for a loopback host (localhost, \
                 127.0.0.1, ::1); use https",
                excerpt(value)
            ));
        }
        _ => return Err(format!("{} is not an http(s) URL", excerpt(value))),
    }
    if url.host().is_none() {
        return Err(format!("{} has no host", excerpt(value)));
    }
    // No excerpt here: a URL with credentials is the one kind of base that holds a secret.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials (user:password@)".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{} must not have a query or fragment",
            excerpt(value)
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A Cloudinary folder: `[A-Za-z0-9_/-]`, no leading, trailing or doubled slash.
pub(super) fn check_folder(value: &str) -> Result<(), String> {
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
    {
        return Err(format!(
            "{} may only contain letters, digits, _, - and /",
            excerpt(value)
        ));
    }
    if value.starts_with('/') || value.ends_with('/') || value.contains("//") {
        return Err(format!(
            "{} must not start or end with / or contain an empty segment (//)",
            excerpt(value)
        ));
    }
    Ok(())
}

/// Cloud names go into the upload URL path, so only URL-safe characters are allowed.
pub(super) fn check_cloud_name(value: &str) -> Result<(), String> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "{} is not a Cloudinary cloud name: only letters, digits, _ and - are allowed",
            excerpt(value)
        ))
    }
}

/// API keys are sent as a form field; Cloudinary's are digits, stand-ins may use letters.
pub(super) fn check_api_key(value: &str) -> Result<(), String> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        Ok(())
    } else {
        Err(format!(
            "{} is not a Cloudinary API key: only letters, digits, _ and - are allowed",
            excerpt(value)
        ))
    }
}

/// The API secret is hashed into every signature, so stray whitespace would silently break all
/// uploads. Never quoted.
pub(super) fn check_api_secret(value: &str) -> Result<(), String> {
    if value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("may only contain printable ASCII characters without spaces".to_owned())
    }
}

/// The three parts of a `CLOUDINARY_URL`.
pub(super) struct CloudinaryCredentials {
    pub cloud_name: String,
    pub api_key: String,
    pub api_secret: SecretString,
}

/// `cloudinary://API_KEY:API_SECRET@CLOUD_NAME`, the format Cloudinary's console shows.
///
/// Every message is fixed text: the URL holds the API secret, so no part of it is quoted, not
/// even the parts that are not secret (a malformed URL may have them in the wrong places).
pub(super) fn parse_cloudinary_url(value: &str) -> Result<CloudinaryCredentials, String> {
    const SHAPE: &str = "must have the form cloudinary://API_KEY:API_SECRET@CLOUD_NAME";
    let url = Url::parse(value).map_err(|_| SHAPE.to_owned())?;
    if url.scheme() != "cloudinary" {
        return Err(format!("{SHAPE} (the scheme is not cloudinary://)"));
    }
    let api_key = url.username();
    let api_secret = url.password().unwrap_or_default();
    let cloud_name = url.host_str().unwrap_or_default();
    if api_key.is_empty() || api_secret.is_empty() || cloud_name.is_empty() {
        return Err(format!(
            "{SHAPE} (the API key, API secret or cloud name is missing)"
        ));
    }
    if url.port().is_some() || !matches!(url.path(), "" | "/") {
        return Err(format!("{SHAPE} (nothing may follow the cloud name)"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{SHAPE} (query parameters such as ?secure=true are not supported)"
        ));
    }
    // `Url` keeps userinfo percent-encoded. Real keys and secrets never need encoding, so
    // rather than decode we refuse, pointing at the three separate variables as the way out.
    if api_key.contains('%') || api_secret.contains('%') || cloud_name.contains('%') {
        return Err(format!(
            "{SHAPE} without percent-encoded characters; use CLOUDINARY_CLOUD_NAME, \
             CLOUDINARY_API_KEY and CLOUDINARY_API_SECRET instead"
        ));
    }
    if check_cloud_name(cloud_name).is_err()
        || check_api_key(api_key).is_err()
        || check_api_secret(api_secret).is_err()
    {
        return Err(format!(
            "{SHAPE} (the API key or cloud name contains characters that are not allowed)"
        ));
    }
    Ok(CloudinaryCredentials {
        cloud_name: cloud_name.to_owned(),
        api_key: api_key.to_owned(),
        api_secret: SecretString::from(api_secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn byte_sizes_accept_plain_counts_and_binary_suffixes() {
        let cases = [
            ("2097152", 2_097_152),
            ("2MiB", 2_097_152),
            ("2 mib", 2_097_152),
            ("4.5MiB", 4_718_592),
            ("1KiB", 1_024),
            ("1kib", 1_024),
            ("512B", 512),
            ("1GiB", 1_073_741_824),
            ("0.5KiB", 512),
            ("1.50KiB", 1_536),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_byte_size(input), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn byte_sizes_reject_zero_fractions_si_suffixes_and_junk() {
        for input in [
            "0",
            "0MiB",
            "1.5",
            "1.1B",
            "0.3KiB",
            "2MB",
            "2M",
            "2 KB",
            "-1",
            "+1",
            "MiB",
            ".5MiB",
            "5.MiB",
            "1.2.3KiB",
            "1e6",
            "",
            "99999999999999999999999999999999GiB",
            "18446744073709551616",
        ] {
            assert!(
                parse_byte_size(input).is_err(),
                "{input:?} was accepted as {:?}",
                parse_byte_size(input)
            );
        }
        assert_eq!(
            parse_byte_size("18446744073709551615"),
            Ok(u64::MAX),
            "the largest u64 is a valid count"
        );
    }

    #[test]
    fn database_names_follow_mongodb_rules() {
        for ok in ["videotube", "videotube_test-1", "a", &"x".repeat(63)] {
            assert_eq!(check_database_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "video.tube",
            "video tube",
            "a/b",
            "a\\b",
            "$x",
            "a:b",
            "a\0b",
            "a\nb",
            &"x".repeat(64),
        ] {
            assert!(check_database_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_base_allows_plain_http_only_on_loopback() {
        for ok in [
            "https://api.cloudinary.com",
            "https://api.cloudinary.com/",
            "http://127.0.0.1:9100",
            "http://127.0.0.2:9100",
            "http://localhost:9100",
            "http://LOCALHOST:9100",
            "http://[::1]:9100",
        ] {
            let url = parse_api_base(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(url.path().ends_with('/'), "{url}");
        }
        for bad in [
            "http://api.cloudinary.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "ftp://127.0.0.1",
            "api.cloudinary.com",
            "https://user:pw@api.cloudinary.com",
            "https://api.cloudinary.com/?x=1",
            "https://api.cloudinary.com/#x",
            "",
        ] {
            assert!(parse_api_base(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn api_base_gets_a_trailing_slash_so_joins_keep_its_prefix() {
        let url = parse_api_base("http://127.0.0.1:9100/cloudinary").unwrap();
        assert_eq!(
            url.join("v1_1/demo/image/upload").unwrap().as_str(),
            "http://127.0.0.1:9100/cloudinary/v1_1/demo/image/upload"
        );
    }

    #[test]
    fn folders_are_restricted_to_safe_path_characters() {
        for ok in ["videotube/users", "a", "a-b_c/D9"] {
            assert_eq!(check_folder(ok), Ok(()), "{ok:?}");
        }
        for bad in ["/a", "a/", "a//b", "a b", "a/../b", "a.b", "ä", "a\\b"] {
            assert!(check_folder(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cloudinary_url_splits_into_key_secret_and_cloud_name() {
        let creds = parse_cloudinary_url("cloudinary://123456:s3cr3t-_X@demo-cloud").unwrap();
        assert_eq!(creds.api_key, "123456");
        assert_eq!(creds.api_secret.expose_secret(), "s3cr3t-_X");
        assert_eq!(creds.cloud_name, "demo-cloud");
    }

    #[test]
    fn malformed_cloudinary_urls_are_rejected_without_quoting_them() {
        let secret = "TopSecretValue";
        for bad in [
            format!("cloudinary://123456:{secret}"),
            format!("cloudinary://123456@{secret}"),
            format!("cloudinary://:{secret}@demo"),
            format!("https://123456:{secret}@demo"),
            format!("cloudinary://123456:{secret}@demo/extra"),
            format!("cloudinary://123456:{secret}@demo:80"),
            format!("cloudinary://123456:{secret}@demo?secure=true"),
            format!("cloudinary://123456:{secret}%21@demo"),
            format!("cloudinary://12 34:{secret}@demo"),
            format!("cloudinary://123456:{secret}@de.mo"),
            secret.to_owned(),
            format!("cloudinary:123456:{secret}@demo"),
        ] {
            match parse_cloudinary_url(&bad) {
                Ok(_) => panic!("{bad:?} was accepted"),
                Err(message) => assert!(!message.contains(secret), "{message}"),
            }
        }
    }

    #[test]
    fn booleans_and_same_site_are_case_insensitive() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("Yes"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("No"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("").is_err());
        assert_eq!(parse_same_site("LAX"), Ok(SameSite::Lax));
        assert_eq!(parse_same_site("Strict"), Ok(SameSite::Strict));
        assert_eq!(parse_same_site("none"), Ok(SameSite::None));
        assert!(parse_same_site("lenient").is_err());
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("a\"b"), "\"a\\\"b\"");
        let long = excerpt(&"x".repeat(1_000));
        assert!(long.chars().count() < 50, "{long}");
    }
}
