//! Property tests of token decoding: whatever string arrives as a token, `verify_refresh` and
//! `verify_access` answer without panicking, and only a token we signed, of the right kind, with
//! the right algorithm and secret, unexpired and unaltered, is accepted.
//!
//! 256 cases per property (1,536 in all); about a second unoptimised.
use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use secrecy::SecretString;
use shared::{
    config::TokenConfig,
    tokens::{
        ACCESS_TYP, AccessClaims, REFRESH_TYP, RefreshClaims, TokenError, TokenKeys, now_secs,
    },
};

const ACCESS_SECRET: &str = "access-secret-for-property-tests-0123456789";
const REFRESH_SECRET: &str = "refresh-secret-for-property-tests-0123456789";

fn keys_with(access: &str, refresh: &str) -> TokenKeys {
    TokenKeys::new(&TokenConfig {
        access_secret: Some(SecretString::from(access.to_owned())),
        refresh_secret: Some(SecretString::from(refresh.to_owned())),
        node_refresh_secret: None,
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(864_000),
        session_max_age: Duration::from_secs(2_592_000),
        reuse_grace: Duration::from_secs(10),
        leeway: Duration::from_secs(2),
    })
}

fn keys() -> TokenKeys {
    keys_with(ACCESS_SECRET, REFRESH_SECRET)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any string a JSON claim could hold, including operator-looking and non-ASCII ones.
fn claim_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-f0-9]{24}",
        Just("{\"$gt\":\"\"}".to_owned()),
        "\\PC{0,64}",
    ]
}

fn refresh_claims() -> impl Strategy<Value = RefreshClaims> {
    (
        claim_string(),
        claim_string(),
        claim_string(),
        10i64..1_000_000_000,
    )
        .prop_map(|(sub, sid, jti, exp_in)| {
            let now = now_secs();
            RefreshClaims {
                sub,
                sid,
                jti,
                iat: now,
                exp: now + exp_in,
            }
        })
}

fn access_claims() -> impl Strategy<Value = AccessClaims> {
    (
        claim_string(),
        claim_string(),
        claim_string(),
        claim_string(),
        claim_string(),
        claim_string(),
        10i64..1_000_000,
    )
        .prop_map(|(sub, sid, username, email, full_name, jti, exp_in)| {
            let now = now_secs();
            AccessClaims {
                id: sub.clone(),
                sub,
                sid,
                username,
                email,
                full_name,
                iat: now,
                exp: now + exp_in,
                jti,
            }
        })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Three dot-separated parts of base64url-ish text, the shape every decoder first checks.
fn jwt_shaped() -> impl Strategy<Value = String> {
    let part = "[A-Za-z0-9_=+/-]{0,80}";
    (part, part, part, prop::collection::vec(part, 0..3)).prop_map(|(a, b, c, more)| {
        let mut t = format!("{a}.{b}.{c}");
        for m in more {
            t.push('.');
            t.push_str(&m);
        }
        t
    })
}

/// A header and payload that are base64 of arbitrary JSON, with an arbitrary signature.
fn json_parts() -> impl Strategy<Value = String> {
    let alg = prop_oneof![
        Just("none"),
        Just("None"),
        Just("NONE"),
        Just("nOnE"),
        Just("HS256"),
        Just("HS384"),
        Just("HS512"),
        Just("RS256"),
        Just("ES256"),
        Just("EdDSA"),
        Just(""),
    ];
    let typ = prop_oneof![
        Just(Some(REFRESH_TYP)),
        Just(Some(ACCESS_TYP)),
        Just(Some("JWT")),
        Just(Some("RT+JWT")),
        Just(None),
    ];
    (
        alg,
        typ,
        any::<i64>(),
        claim_string(),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(alg, typ, exp, sub, sig)| {
            let header = match typ {
                Some(t) => serde_json::json!({"alg": alg, "typ": t}),
                None => serde_json::json!({"alg": alg}),
            };
            let payload = serde_json::json!({"sub": sub, "sid": "0".repeat(32), "jti": "j", "iat": 0, "exp": exp});
            format!(
                "{}.{}.{}",
                b64(header.to_string().as_bytes()),
                b64(payload.to_string().as_bytes()),
                b64(&sig)
            )
        })
}

fn sign_with(
    alg: Algorithm,
    typ: Option<&str>,
    claims: &impl serde::Serialize,
    secret: &str,
) -> String {
    let mut h = Header::new(alg);
    h.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes())).expect("sign")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_are_rejected_without_panicking(
        token in prop_oneof![any::<String>(), jwt_shaped(), json_parts()],
    ) {
        let keys = keys();
        prop_assert!(keys.verify_refresh(&token).is_err(), "{token:?} was accepted as a refresh token");
        prop_assert!(keys.verify_access(&token).is_err(), "{token:?} was accepted as an access token");
    }

    #[test]
    fn signed_refresh_claims_round_trip_and_never_pass_as_access(claims in refresh_claims()) {
        let keys = keys();
        let token = keys.sign_refresh(&claims).expect("sign");
        prop_assert_eq!(keys.verify_refresh(&token).expect("our own token verifies"), claims);
        prop_assert!(keys.verify_access(&token).is_err());
        // Even with both secrets equal, the typ header keeps the kinds apart.
        let same = keys_with(REFRESH_SECRET, REFRESH_SECRET);
        prop_assert!(matches!(same.verify_access(&token), Err(TokenError::WrongType | TokenError::Invalid(_))));
    }

    #[test]
    fn signed_access_claims_round_trip_and_never_pass_as_refresh(claims in access_claims()) {
        let keys = keys();
        let token = keys.sign_access(&claims).expect("sign");
        prop_assert_eq!(keys.verify_access(&token).expect("our own token verifies"), claims);
        prop_assert!(keys.verify_refresh(&token).is_err());
        let same = keys_with(ACCESS_SECRET, ACCESS_SECRET);
        prop_assert!(same.verify_refresh(&token).is_err());
    }

    #[test]
    fn any_change_to_a_signed_token_is_detected(
        claims in refresh_claims(),
        position in any::<prop::sample::Index>(),
        replacement in "[A-Za-z0-9_.=-]",
        cut in any::<prop::sample::Index>(),
    ) {
        let keys = keys();
        let token = keys.sign_refresh(&claims).expect("sign");
        let at = position.index(token.len());
        let mut changed = token.clone();
        changed.replace_range(at..at + 1, &replacement);
        if changed != token {
            prop_assert!(keys.verify_refresh(&changed).is_err(), "a token changed at {at} was accepted");
        }
        let shorter = &token[..cut.index(token.len())];
        prop_assert!(keys.verify_refresh(shorter).is_err(), "a truncated token was accepted");
        let longer = format!("{token}x");
        prop_assert!(keys.verify_refresh(&longer).is_err());
    }

    #[test]
    fn other_algorithms_kinds_and_secrets_are_refused(
        claims in refresh_claims(),
        other_secret in "[ -~]{32,64}",
    ) {
        let keys = keys();
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let t = sign_with(alg, Some(REFRESH_TYP), &claims, REFRESH_SECRET);
            prop_assert!(keys.verify_refresh(&t).is_err(), "{alg:?} accepted");
        }
        for typ in [None, Some(ACCESS_TYP), Some("JWT"), Some("RT+JWT"), Some("rt+JWT")] {
            let t = sign_with(Algorithm::HS256, typ, &claims, REFRESH_SECRET);
            prop_assert!(matches!(keys.verify_refresh(&t), Err(TokenError::WrongType)), "typ {typ:?} accepted");
        }
        if other_secret != REFRESH_SECRET {
            let t = sign_with(Algorithm::HS256, Some(REFRESH_TYP), &claims, &other_secret);
            prop_assert!(keys.verify_refresh(&t).is_err(), "a token signed with another secret was accepted");
        }
        let t = sign_with(Algorithm::HS256, Some(REFRESH_TYP), &claims, ACCESS_SECRET);
        prop_assert!(keys.verify_refresh(&t).is_err(), "the access secret signed a refresh token");
        // alg none: the signed payload with an unsigned header, signature kept or dropped.
        let parts: Vec<&str> = t.split('.').collect();
        let none = b64(format!(r#"{{"alg":"none","typ":"{REFRESH_TYP}"}}"#).as_bytes());
        let unsigned = format!("{none}.{}.", parts[1]);
        let resigned = format!("{none}.{}.{}", parts[1], parts[2]);
        prop_assert!(keys.verify_refresh(&unsigned).is_err());
        prop_assert!(keys.verify_refresh(&resigned).is_err());
    }

    #[test]
    fn expiry_is_enforced_with_exactly_the_configured_leeway(
        claims in refresh_claims(),
        seconds_ago in 0i64..100_000,
    ) {
        let keys = keys();
        let now = now_secs();
        let claims = RefreshClaims { iat: now - seconds_ago - 10, exp: now - seconds_ago, ..claims };
        let verdict = keys.verify_refresh(&keys.sign_refresh(&claims).expect("sign"));
        // The leeway is 2 s; a second of slack either side covers the clock ticking mid-test.
        if seconds_ago >= 4 {
            prop_assert!(matches!(verdict, Err(TokenError::Expired)), "{seconds_ago} s ago: {verdict:?}");
        } else if seconds_ago <= 1 {
            prop_assert!(verdict.is_ok(), "{seconds_ago} s ago is within the leeway: {verdict:?}");
        }
    }
}
