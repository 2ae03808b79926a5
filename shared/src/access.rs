//! Access tokens as a caller presents them: where they are found, what they carry, how they are
//! verified. Stateless and dependent on nothing else in this crate, so the authorizer, which
//! runs in front of every request of the platform and touches no database, links this module
//! and nothing more (see `functions/authorizer`).
//!
//! The token comes from the `accessToken` cookie, else from `Authorization: Bearer`, as the
//! Node platform's `verifyJWT` looks for it. Verification pins HS256, requires our `typ`
//! (`at+jwt`), checks expiry with the configured leeway and decodes into a typed struct that
//! refuses unknown claims and claims of the wrong type.
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub const ACCESS_TYP: &str = "at+jwt";
pub const REFRESH_TYP: &str = "rt+jwt";
/// The cookie the Node API named, and its front ends read.
pub const ACCESS_COOKIE: &str = "accessToken";

/// Claims of an access token: enough for other services to know who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The user id, for the Node platform (`User.findById(decoded._id)`).
    #[serde(rename = "_id")]
    pub id: String,
    /// The same user id, as RFC 7519 names it.
    pub sub: String,
    /// The session this token belongs to; our routes check that it is still live.
    pub sid: String,
    pub username: String,
    pub email: String,
    #[serde(rename = "fullName")]
    pub full_name: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token has the wrong typ header")]
    WrongType,
    #[error("token is expired")]
    Expired,
    #[error("token could not be signed")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("the two user ids of the token differ")]
    Inconsistent,
    #[error("{0} is not configured for this function")]
    NotConfigured(&'static str),
}

/// Verifies access tokens; built once per cold start.
pub struct AccessVerifier {
    key: DecodingKey,
    leeway: u64,
}

impl AccessVerifier {
    pub fn new(secret: &[u8], leeway: Duration) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            leeway: leeway.as_secs(),
        }
    }

    /// The claims of a valid access token of ours. `_id` and `sub` must agree: the Node
    /// platform trusts one and we trust the other.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = decode(token, Some(ACCESS_TYP), &self.key, self.leeway)?;
        if claims.id != claims.sub {
            return Err(TokenError::Inconsistent);
        }
        Ok(claims)
    }
}

/// Decodes with HS256 pinned and `exp` checked with `leeway`; the `typ` header must be exactly
/// `typ` (`None`: absent).
pub fn decode<T: DeserializeOwned>(
    token: &str,
    typ: Option<&str>,
    key: &DecodingKey,
    leeway: u64,
) -> Result<T, TokenError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = leeway;
    v.validate_exp = true;
    v.validate_aud = false;
    let required: &[&str] = if typ.is_some_and(|t| t == ACCESS_TYP || t == REFRESH_TYP) {
        &["exp", "iat", "sub", "jti"]
    } else {
        &["exp", "iat"]
    };
    v.set_required_spec_claims(required);
    let data = jsonwebtoken::decode::<T>(token, key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
        _ => TokenError::Invalid(e),
    })?;
    // Compared exactly: RFC 9068 allows case-insensitive media types, but we only ever issue
    // these two spellings, so anything else did not come from us.
    if data.header.typ.as_deref() != typ {
        return Err(TokenError::WrongType);
    }
    Ok(data.claims)
}

/// Longest token we look at: ours are well under 1 KiB; anything far bigger is not one.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Where a request's access token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// Nothing usable: no cookie, no `Authorization: Bearer`.
    Missing,
    /// Something far longer than any token of ours; refused without decoding.
    Oversized,
    Token(&'a str),
}

/// The access token of a request, from its `Cookie` header values (the `accessToken` cookie,
/// first non-empty one) or else its `Authorization` header (`Bearer <token>`, scheme
/// case-insensitive as RFC 6750 says). The Node platform looks in the same two places in the
/// same order.
pub fn presented_token<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    authorization: Option<&'a str>,
) -> Presented<'a> {
    let from_cookie = cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| name.trim() == ACCESS_COOKIE && !value.trim().is_empty())
        .map(|(_, value)| value.trim().trim_matches('"'));
    let from_header = || {
        let value = authorization?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    };
    match from_cookie.or_else(from_header) {
        None => Presented::Missing,
        Some(t) if t.len() > MAX_TOKEN_BYTES => Presented::Oversized,
        Some(t) => Presented::Token(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_wins_over_the_header_as_on_the_node_platform() {
        assert_eq!(
            presented_token(
                ["a=1; accessToken=fromcookie; b=2"],
                Some("Bearer fromheader")
            ),
            Presented::Token("fromcookie")
        );
        assert_eq!(
            presented_token(["a=1"], Some("Bearer fromheader")),
            Presented::Token("fromheader")
        );
        assert_eq!(
            presented_token(["accessToken="], Some("bearer   spaced ")),
            Presented::Token("spaced"),
            "an empty cookie falls through, the scheme is case-insensitive"
        );
    }

    #[test]
    fn anything_else_is_missing_or_oversized() {
        for (cookies, auth) in [
            (vec![], None),
            (vec!["accessTokenX=1; other=2"], None),
            (vec![], Some("Basic dXNlcjpwYXNz")),
            (vec![], Some("Bearer")),
            (vec![], Some("Bearer    ")),
            (vec![], Some("token-without-scheme")),
        ] {
            assert_eq!(presented_token(cookies, auth), Presented::Missing);
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            presented_token([], Some(long.as_str())),
            Presented::Oversized
        );
    }
}
