//! The JWT pair: short-lived access tokens and longer-lived, rotating refresh tokens.
//!
//! Both are HS256 with separate secrets, the algorithm pinned on decode, and a `typ` header
//! (`at+jwt` / `rt+jwt`) that is checked, so one kind can never pass as the other even if the
//! secrets were misconfigured to be equal. Expiry is checked with a small explicit leeway rather
//! than the crate's 60 s default. Claims are typed structs: a claim of the wrong type fails decode.
//!
//! Access tokens carry `_id` beside `sub` because the Node platform's `verifyJWT` reads the user
//! id from `_id`; with the same `ACCESS_TOKEN_SECRET` the Node routes accept ours as they are.
//!
//! Issuing is deterministic given a refresh token id and a time: HS256 is deterministic, and the
//! access token's id is derived from the refresh token's with a key of ours. Rotation relies on
//! that (see `sessions`): every instance that answers a retried refresh rebuilds the very pair
//! the first answer carried, from what the database holds, without any token stored at rest.
use std::time::Duration;

use cookie::Cookie;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use mongodb::bson::oid::ObjectId;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    access::decode,
    config::{CookieConfig, TokenConfig},
    cookies,
};

pub use crate::access::{ACCESS_TYP, AccessClaims, AccessVerifier, REFRESH_TYP, TokenError};

/// The user fields an access token carries (snapshotted in each session, so a refresh needs no
/// user lookup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    pub username: String,
    pub email: String,
    #[serde(rename = "fullName")]
    pub full_name: String,
}

/// What a pair is issued for: a user's session, with the claims it carries and its end.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub user_id: ObjectId,
    pub session_id: &'a str,
    pub claims: &'a UserClaims,
    /// The session's absolute end, Unix seconds.
    pub session_ends: i64,
}

/// Claims of a refresh token: smaller on purpose; everything else lives in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Claims of a refresh token the Node version issued (`jwt.sign({_id}, REFRESH_TOKEN_SECRET,
/// {expiresIn})`): exactly these three, no `typ` header of ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRefreshClaims {
    #[serde(rename = "_id")]
    pub id: String,
    pub iat: i64,
    pub exp: i64,
}

/// A refresh token as presented: ours, or one the Node version issued before the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedRefresh {
    Ours(RefreshClaims),
    Node(NodeRefreshClaims),
}

/// The keys and rules for both kinds, built once per cold start. A function holds only the
/// secrets it needs (`config::Needs`); using a missing one is [`TokenError::NotConfigured`].
pub struct TokenKeys {
    access: Option<AccessKeys>,
    refresh: Option<RefreshKeys>,
    /// `NODE_REFRESH_TOKEN_SECRET`, where set: Node-era refresh tokens are verified with it.
    node_refresh: Option<DecodingKey>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    leeway: u64,
}

struct AccessKeys {
    enc: EncodingKey,
    /// The same rules as the authorizer's.
    verifier: AccessVerifier,
}

struct RefreshKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    /// Derives token ids (see [`TokenKeys::successor_jti`]); a subkey of the refresh secret.
    derive: SecretSlice<u8>,
}

impl TokenKeys {
    pub fn new(cfg: &TokenConfig) -> Self {
        let access = cfg.access_secret.as_ref().map(|a| {
            let a = a.expose_secret().as_bytes();
            AccessKeys {
                enc: EncodingKey::from_secret(a),
                verifier: AccessVerifier::new(a, cfg.leeway),
            }
        });
        let refresh = cfg.refresh_secret.as_ref().map(|r| {
            let r = r.expose_secret().as_bytes();
            RefreshKeys {
                enc: EncodingKey::from_secret(r),
                dec: DecodingKey::from_secret(r),
                derive: SecretSlice::from(hmac_sha256(r, b"videotube/token-id-key/v1").to_vec()),
            }
        });
        let node_refresh = cfg
            .node_refresh_secret
            .as_ref()
            .map(|n| DecodingKey::from_secret(n.expose_secret().as_bytes()));
        Self {
            access,
            refresh,
            node_refresh,
            access_ttl: cfg.access_ttl,
            refresh_ttl: cfg.refresh_ttl,
            leeway: cfg.leeway.as_secs(),
        }
    }

    fn access_keys(&self) -> Result<&AccessKeys, TokenError> {
        self.access
            .as_ref()
            .ok_or(TokenError::NotConfigured("ACCESS_TOKEN_SECRET"))
    }

    fn refresh_keys(&self) -> Result<&RefreshKeys, TokenError> {
        self.refresh
            .as_ref()
            .ok_or(TokenError::NotConfigured("REFRESH_TOKEN_SECRET"))
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        sign(ACCESS_TYP, claims, &self.access_keys()?.enc)
    }

    pub fn sign_refresh(&self, claims: &RefreshClaims) -> Result<String, TokenError> {
        sign(REFRESH_TYP, claims, &self.refresh_keys()?.enc)
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.access_keys()?.verifier.verify(token)
    }

    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        decode(
            token,
            Some(REFRESH_TYP),
            &self.refresh_keys()?.dec,
            self.leeway,
        )
    }

    /// A refresh token of ours, or (by its header: no `typ` of ours) one the Node version
    /// signed with its refresh secret (`NODE_REFRESH_TOKEN_SECRET`, else ours). Whether a Node
    /// one is still accepted is decided by the caller against the user's stored `refreshToken`.
    pub fn verify_presented_refresh(&self, token: &str) -> Result<PresentedRefresh, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        match header.typ.as_deref() {
            Some(REFRESH_TYP) => self.verify_refresh(token).map(PresentedRefresh::Ours),
            None | Some("JWT") => decode(
                token,
                header.typ.as_deref(),
                match &self.node_refresh {
                    Some(node) => node,
                    None => &self.refresh_keys()?.dec,
                },
                self.leeway,
            )
            .map(PresentedRefresh::Node),
            Some(_) => Err(TokenError::WrongType),
        }
    }

    /// The id of the refresh token that replaces token `jti` in a rotation: derived, not drawn,
    /// so every instance that handles a retry of that rotation issues the same token. Without
    /// the key nobody can compute it, and the database holds only its SHA-256.
    pub fn successor_jti(&self, jti: &str) -> Result<String, TokenError> {
        self.derive_id(b"rt-successor", jti)
    }

    /// The id of the access token issued beside refresh token `refresh_jti`.
    fn access_jti(&self, refresh_jti: &str) -> Result<String, TokenError> {
        self.derive_id(b"at-for", refresh_jti)
    }

    fn derive_id(&self, purpose: &[u8], input: &str) -> Result<String, TokenError> {
        let mut message = Vec::with_capacity(purpose.len() + 1 + input.len());
        message.extend_from_slice(purpose);
        message.push(0);
        message.extend_from_slice(input.as_bytes());
        let digest = hmac_sha256(self.refresh_keys()?.derive.expose_secret(), &message);
        Ok(encode_id(&digest[..16]))
    }

    /// Signs the pair for `grant`: a refresh token with id `refresh_jti`, and an access token
    /// carrying the session's claims, both issued at `issued_at` (Unix seconds). The refresh
    /// token never outlives its session: its `exp`, and its cookie's Max-Age, are capped at the
    /// session's absolute end.
    pub fn issue(
        &self,
        grant: Grant<'_>,
        refresh_jti: &str,
        issued_at: i64,
    ) -> Result<TokenPair, TokenError> {
        let refresh_exp = (issued_at + secs(self.refresh_ttl)).min(grant.session_ends);
        let access_exp = issued_at + secs(self.access_ttl);
        let user_id = grant.user_id.to_hex();
        let access = AccessClaims {
            id: user_id.clone(),
            sub: user_id.clone(),
            sid: grant.session_id.to_owned(),
            username: grant.claims.username.clone(),
            email: grant.claims.email.clone(),
            full_name: grant.claims.full_name.clone(),
            iat: issued_at,
            exp: access_exp,
            jti: self.access_jti(refresh_jti)?,
        };
        let refresh = RefreshClaims {
            sub: user_id,
            sid: grant.session_id.to_owned(),
            jti: refresh_jti.to_owned(),
            iat: issued_at,
            exp: refresh_exp,
        };
        // Cookie lifetimes count from now, so a pair rebuilt for a retry expires with its token.
        let now = now_secs();
        let left = |exp: i64| Duration::from_secs(u64::try_from(exp - now).unwrap_or(0).max(1));
        Ok(TokenPair {
            access_token: self.sign_access(&access)?,
            refresh_token: self.sign_refresh(&refresh)?,
            access_ttl: left(access_exp),
            refresh_ttl: left(refresh_exp),
        })
    }
}

impl TokenKeys {
    /// A new access token alone for `grant`, with a fresh id: for a user whose claims just
    /// changed. The refresh token in hand stays as it is (it carries no profile claims, and the
    /// session's `claims`, which its next rotation issues from, are updated by the caller).
    pub fn issue_access(&self, grant: Grant<'_>) -> Result<AccessToken, TokenError> {
        let issued_at = now_secs();
        let exp = issued_at + secs(self.access_ttl);
        let user_id = grant.user_id.to_hex();
        let claims = AccessClaims {
            id: user_id.clone(),
            sub: user_id,
            sid: grant.session_id.to_owned(),
            username: grant.claims.username.clone(),
            email: grant.claims.email.clone(),
            full_name: grant.claims.full_name.clone(),
            iat: issued_at,
            exp,
            jti: new_jti(),
        };
        Ok(AccessToken {
            token: self.sign_access(&claims)?,
            ttl: self.access_ttl,
        })
    }
}

/// A freshly signed access token on its own.
#[derive(Debug)]
pub struct AccessToken {
    pub token: String,
    ttl: Duration,
}

impl AccessToken {
    /// The `accessToken` cookie carrying it.
    pub fn cookie(&self, cfg: &CookieConfig) -> Cookie<'static> {
        cookies::access(cfg, self.token.clone(), self.ttl)
    }
}

/// A freshly signed pair and the lifetimes left to each.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    #[serde(rename = "accessToken")]
    pub access_token: String,
    #[serde(rename = "refreshToken")]
    pub refresh_token: String,
    #[serde(skip)]
    access_ttl: Duration,
    #[serde(skip)]
    refresh_ttl: Duration,
}

impl TokenPair {
    /// The `accessToken` and `refreshToken` cookies carrying this pair.
    pub fn cookies(&self, cfg: &CookieConfig) -> [Cookie<'static>; 2] {
        [
            cookies::access(cfg, self.access_token.clone(), self.access_ttl),
            cookies::refresh(cfg, self.refresh_token.clone(), self.refresh_ttl),
        ]
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// HMAC-SHA256 of `message` under `key`: the one MAC the crate derives ids and keys with.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    hmac(key, message).finalize().into_bytes().into()
}

/// Whether `tag` is [`hmac_sha256`] of `message` under `key`, compared in constant time.
pub(crate) fn hmac_sha256_verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    hmac(key, message).verify_slice(tag).is_ok()
}

fn hmac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; the error exists only for fixed-key-size MACs.
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(message);
    mac
}

fn sign<T: Serialize>(typ: &str, claims: &T, key: &EncodingKey) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, key).map_err(TokenError::Sign)
}

fn encode_id(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh random token id: 128 bits, base64url.
pub fn new_jti() -> String {
    encode_id(&rand::random::<[u8; 16]>())
}

/// Seconds since the Unix epoch (the one clock, [`crate::timing::unix_secs`]).
pub fn now_secs() -> i64 {
    crate::timing::unix_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use secrecy::SecretString;

    fn cfg() -> TokenConfig {
        TokenConfig {
            access_secret: Some(SecretString::from("a".repeat(32))),
            refresh_secret: Some(SecretString::from("r".repeat(32))),
            node_refresh_secret: None,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(864_000),
            session_max_age: Duration::from_secs(2_592_000),
            reuse_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(2),
        }
    }

    fn refresh_claims(exp_in: i64) -> RefreshClaims {
        let now = now_secs();
        RefreshClaims {
            sub: "u".into(),
            sid: "s".into(),
            jti: new_jti(),
            iat: now,
            exp: now + exp_in,
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn a_refresh_token_round_trips_and_carries_its_typ() {
        let keys = TokenKeys::new(&cfg());
        let c = refresh_claims(60);
        let t = keys.sign_refresh(&c).expect("sign");
        let header = jsonwebtoken::decode_header(&t).expect("header");
        assert_eq!(header.typ.as_deref(), Some(REFRESH_TYP));
        assert_eq!(keys.verify_refresh(&t).expect("verify"), c);
    }

    #[test]
    fn an_access_token_is_never_accepted_as_a_refresh_token() {
        let keys = TokenKeys::new(&TokenConfig {
            // Even with equal secrets (refused by config, but defence in depth) typ tells them apart.
            refresh_secret: Some(SecretString::from("a".repeat(32))),
            ..cfg()
        });
        let now = now_secs();
        let access = AccessClaims {
            id: "u".into(),
            sub: "u".into(),
            sid: "s".into(),
            username: "x".into(),
            email: "x@y.z".into(),
            full_name: "X".into(),
            iat: now,
            exp: now + 60,
            jti: new_jti(),
        };
        let t = keys.sign_access(&access).expect("sign");
        assert!(keys.verify_refresh(&t).is_err());
    }

    #[test]
    fn expired_tokens_fail_beyond_the_small_leeway() {
        let keys = TokenKeys::new(&cfg());
        let t = keys.sign_refresh(&refresh_claims(-10)).expect("sign");
        assert!(matches!(keys.verify_refresh(&t), Err(TokenError::Expired)));
        let t = keys.sign_refresh(&refresh_claims(-1)).expect("sign");
        assert!(keys.verify_refresh(&t).is_ok(), "within the 2 s leeway");
    }

    #[test]
    fn forged_tokens_are_rejected() {
        let keys = TokenKeys::new(&cfg());
        let good = keys.sign_refresh(&refresh_claims(60)).expect("sign");
        let parts: Vec<&str> = good.split('.').collect();
        let payload = parts[1];
        let forged = [
            // alg none, in several spellings, with and without a signature
            format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"rt+jwt"}"#)),
            format!("{}.{payload}.", b64(r#"{"alg":"NONE","typ":"rt+jwt"}"#)),
            format!(
                "{}.{payload}.{}",
                b64(r#"{"alg":"None","typ":"rt+jwt"}"#),
                parts[2]
            ),
            // another algorithm in the header
            format!(
                "{}.{payload}.{}",
                b64(r#"{"alg":"HS512","typ":"rt+jwt"}"#),
                parts[2]
            ),
            // tampered payload
            format!(
                "{}.{}.{}",
                parts[0],
                b64(r#"{"sub":"admin","sid":"s","jti":"j","iat":1,"exp":9999999999}"#),
                parts[2]
            ),
            // wrong types of claims, correctly signed below
            "garbage".to_owned(),
            String::new(),
            "a.b.c".to_owned(),
        ];
        for t in forged {
            assert!(keys.verify_refresh(&t).is_err(), "{t} must be rejected");
        }
        let mut h = Header::new(Algorithm::HS384);
        h.typ = Some(REFRESH_TYP.into());
        let hs384 = jsonwebtoken::encode(
            &h,
            &refresh_claims(60),
            &EncodingKey::from_secret("r".repeat(32).as_bytes()),
        )
        .expect("sign");
        assert!(keys.verify_refresh(&hs384).is_err(), "HS384 is not HS256");
        let wrong_secret = TokenKeys::new(&TokenConfig {
            refresh_secret: Some(SecretString::from("z".repeat(32))),
            ..cfg()
        });
        assert!(
            keys.verify_refresh(
                &wrong_secret
                    .sign_refresh(&refresh_claims(60))
                    .expect("sign")
            )
            .is_err()
        );
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some(REFRESH_TYP.into());
        let typed_wrong =
            serde_json::json!({"sub": 5, "sid": "s", "jti": "j", "iat": 1, "exp": now_secs() + 60});
        let t = jsonwebtoken::encode(
            &h,
            &typed_wrong,
            &EncodingKey::from_secret("r".repeat(32).as_bytes()),
        )
        .expect("sign");
        assert!(keys.verify_refresh(&t).is_err(), "sub must be a string");
        let missing_sid =
            serde_json::json!({"sub": "u", "jti": "j", "iat": 1, "exp": now_secs() + 60});
        let t = jsonwebtoken::encode(
            &h,
            &missing_sid,
            &EncodingKey::from_secret("r".repeat(32).as_bytes()),
        )
        .expect("sign");
        assert!(keys.verify_refresh(&t).is_err(), "sid is required");
    }

    #[test]
    fn token_ids_are_unique_and_128_bits() {
        let a = new_jti();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&a)
                .expect("b64")
                .len(),
            16
        );
        assert_ne!(a, new_jti());
    }
}
