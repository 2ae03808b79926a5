//! Cloudinary request signing: the string to sign and its SHA-1 / SHA-256 hex digest.
//!
//! Cloudinary signs a request by sorting its parameters by name, joining the non-empty ones as
//! `k=v` with `&`, appending the API secret and hex-encoding a SHA-1 (default) or SHA-256 digest.

use std::collections::BTreeMap;

use sha2::Digest;

/// Digest algorithm of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Sha1,
    Sha256,
}

impl Algo {
    /// Parses a `signature_algorithm` value (`sha1` or `sha256`, any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// Request parameters that Cloudinary never includes in the string to sign.
pub const UNSIGNED_PARAMS: &[&str] = &[
    "file",
    "cloud_name",
    "resource_type",
    "api_key",
    "signature",
    "signature_algorithm",
];

/// Joins `params` as `k=v` pairs sorted by name with `&`, skipping empty values.
///
/// Every given parameter is used: apply [`signed_params`] first when signing a request.
pub fn string_to_sign(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Hex digest of [`string_to_sign`] followed by `secret`.
pub fn sign(params: &BTreeMap<String, String>, secret: &str, algo: Algo) -> String {
    let payload = string_to_sign(params) + secret;
    match algo {
        Algo::Sha1 => hex::encode(sha1::Sha1::digest(payload.as_bytes())),
        Algo::Sha256 => hex::encode(sha2::Sha256::digest(payload.as_bytes())),
    }
}

/// The subset of a request's parameters that Cloudinary signs (drops [`UNSIGNED_PARAMS`]).
pub fn signed_params(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(name, _)| !UNSIGNED_PARAMS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_values_are_left_out_of_the_string_to_sign() {
        let p = params(&[("timestamp", "1"), ("folder", ""), ("public_id", "a")]);
        assert_eq!(string_to_sign(&p), "public_id=a&timestamp=1");
    }

    #[test]
    fn request_only_params_are_not_signed() {
        let p = params(&[
            ("api_key", "k"),
            ("cloud_name", "c"),
            ("file", "f"),
            ("resource_type", "image"),
            ("signature", "s"),
            ("signature_algorithm", "sha256"),
            ("timestamp", "1"),
        ]);
        assert_eq!(string_to_sign(&signed_params(&p)), "timestamp=1");
    }

    #[test]
    fn algorithm_names_are_case_insensitive() {
        assert_eq!(Algo::from_name("SHA256"), Some(Algo::Sha256));
        assert_eq!(Algo::from_name("sha1"), Some(Algo::Sha1));
        assert_eq!(Algo::from_name("md5"), None);
    }
}
