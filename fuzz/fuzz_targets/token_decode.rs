//! Token decoding: whatever bytes arrive as a token (cookie or body), `verify_refresh` and
//! `verify_access` return an error without panicking, and nothing unsigned is ever accepted.
#![no_main]

use std::{sync::OnceLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use shared::{config::TokenConfig, tokens::TokenKeys};

fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        TokenKeys::new(&TokenConfig {
            access_secret: SecretString::from("fuzz-access-secret-0123456789abcdef".to_owned()),
            refresh_secret: SecretString::from("fuzz-refresh-secret-0123456789abcdef".to_owned()),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(864_000),
            session_max_age: Duration::from_secs(2_592_000),
            reuse_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(2),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    // The fuzzer cannot know the secrets, so any acceptance would be a forgery.
    assert!(
        keys().verify_refresh(&token).is_err(),
        "forged refresh token accepted: {token:?}"
    );
    assert!(
        keys().verify_access(&token).is_err(),
        "forged access token accepted: {token:?}"
    );
});
