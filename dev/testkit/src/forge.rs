//! The one token forger of the tests: JWTs with any header, any claims and any HMAC, for the
//! attacks every token-checking route and the authorizer must refuse, and for the control that
//! the same forger, with everything right, is accepted.
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// base64url without padding, as JWTs encode their parts.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with exactly `header` (any JSON: `alg: none`, a foreign `typ`, ...), `claims` and an
/// HMAC signature of `alg` with `secret`.
pub fn jwt(header: &Value, claims: &Value, alg: Algorithm, secret: impl AsRef<[u8]>) -> String {
    let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_ref()),
        alg,
    )
    .expect("HMAC signs with any key");
    format!("{message}.{signature}")
}

/// A JWT with the header `{"alg": alg, "typ": typ}` (no `typ` when `None`).
pub fn sign(alg: Algorithm, typ: Option<&str>, claims: &Value, secret: impl AsRef<[u8]>) -> String {
    let mut header = Header::new(alg);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret.as_ref()))
        .expect("HMAC signs with any key")
}

/// The claims of a token, unverified: to copy into forgeries.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

/// `claims` with `changes` applied: each key set to its value, or removed where it is null.
pub fn changed(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().expect("changes are an object") {
        if v.is_null() {
            out.as_object_mut().expect("claims are an object").remove(k);
        } else {
            out[k] = v.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_forged_token_verifies_exactly_when_everything_is_right() {
        let claims = json!({"sub": "u", "iat": 1, "exp": 4_102_444_800u64, "jti": "j"});
        let token = sign(Algorithm::HS256, Some("at+jwt"), &claims, "k".repeat(32));
        assert_eq!(
            token,
            jwt(
                &json!({"typ": "at+jwt", "alg": "HS256"}),
                &claims,
                Algorithm::HS256,
                "k".repeat(32)
            )
        );
        let key = jsonwebtoken::DecodingKey::from_secret("k".repeat(32).as_bytes());
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        assert!(jsonwebtoken::decode::<Value>(&token, &key, &v).is_ok());
        let other = sign(Algorithm::HS256, None, &claims, "z".repeat(32));
        assert!(jsonwebtoken::decode::<Value>(&other, &key, &v).is_err());
        assert_eq!(claims_of(&token), claims);
        assert_eq!(changed(&claims, json!({"sub": null, "x": 1}))["x"], 1);
        assert!(changed(&claims, json!({"sub": null})).get("sub").is_none());
    }
}
