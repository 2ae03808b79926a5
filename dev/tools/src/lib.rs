//! Developer tools for the videotube user-auth functions; nothing here is deployed.
//!
//! The library holds the logic so it is unit-tested; each binary in `src/bin/` is a thin
//! wrapper that prints the result.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rand_core::{OsError, OsRng};

/// 256 bits: the HS256 key size, and comfortably above the 32-byte minimum that the
/// configuration enforces for `ACCESS_TOKEN_SECRET` and `REFRESH_TOKEN_SECRET`.
pub const SECRET_BYTES: usize = 32;

/// A fresh secret: [`SECRET_BYTES`] bytes straight from the operating system's CSPRNG, encoded
/// as base64url without padding (43 characters, safe unquoted in `.env` files and shells).
pub fn random_secret() -> Result<String, OsError> {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng.try_fill_bytes(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `.env` lines with a fresh access-token and refresh-token secret, each ending in a newline.
///
/// The configuration refuses equal secrets; two independent 256-bit draws colliding is not a
/// practical concern, but the loop makes "always different" true by construction.
pub fn token_secret_lines() -> Result<String, OsError> {
    let access = random_secret()?;
    let mut refresh = random_secret()?;
    while refresh == access {
        refresh = random_secret()?;
    }
    Ok(format!(
        "ACCESS_TOKEN_SECRET={access}\nREFRESH_TOKEN_SECRET={refresh}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_32_random_bytes_in_unpadded_base64url() {
        let secret = random_secret().unwrap();
        assert_eq!(secret.len(), 43);
        assert!(
            secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), SECRET_BYTES);
    }

    #[test]
    fn secrets_do_not_repeat() {
        let secrets: std::collections::HashSet<String> =
            (0..100).map(|_| random_secret().unwrap()).collect();
        assert_eq!(secrets.len(), 100);
    }

    #[test]
    fn the_env_lines_name_both_variables() {
        let text = token_secret_lines().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ACCESS_TOKEN_SECRET="));
        assert!(lines[1].starts_with("REFRESH_TOKEN_SECRET="));
    }
}
