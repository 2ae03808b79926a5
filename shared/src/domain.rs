//! Domain values that can only exist valid ("parse, don't validate").
//!
//! Raw strings stop at the edge: a handler parses each field once into one of these types, and
//! everything behind it trusts the type. Normalisation (trim, lowercase) happens here too, so the
//! same rule applies when storing and when querying.
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

macro_rules! string_newtype {
    ($name:ident) => {
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// 3 to 30 of `a-z 0-9 . _ -`, stored lowercased. Input is trimmed and lowercased first (the
/// Node version lowercased too), so `JohnDoe` registers as `johndoe`; anything outside ASCII is
/// refused, which rules out look-alike letters from other scripts and invisible characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_ascii_lowercase();
        let len = s.chars().count();
        if len == 0 {
            return Err("Username is required".into());
        }
        if !(3..=30).contains(&len) {
            return Err("Username must be 3 to 30 characters long".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
        {
            return Err("Username may only contain letters a-z, digits and . _ -".into());
        }
        Ok(Self(s))
    }

    /// The lookup form of a login identifier: same normalisation, no shape rules (an account
    /// that cannot exist simply is not found).
    pub fn normalise_for_lookup(raw: &str) -> String {
        raw.trim().to_ascii_lowercase()
    }
}

/// An email address by RFC 5322 syntax (the `email_address` crate), at most 254 characters,
/// stored trimmed and lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);
string_newtype!(Email);

impl Email {
    /// RFC 5321's limit on a forward path; no login identifier can be longer than this either.
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = Self::normalise_for_lookup(raw);
        if s.is_empty() {
            return Err("Email is required".into());
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "Email must be at most {} characters long",
                Self::MAX_CHARS
            ));
        }
        // The crate accepts quoted local parts and IP-literal domains; a sign-up form should not.
        let plain = !s.contains('"') && !s.contains('[') && s.is_ascii();
        let domain_has_dot = s.rsplit_once('@').is_some_and(|(_, d)| d.contains('.'));
        if !plain || !domain_has_dot || !email_address::EmailAddress::is_valid(&s) {
            return Err("Email is not a valid address".into());
        }
        Ok(Self(s))
    }

    pub fn normalise_for_lookup(raw: &str) -> String {
        raw.trim().to_lowercase()
    }
}

/// 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);
string_newtype!(FullName);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("Full name is required".into());
        }
        if s.chars().count() > 100 {
            return Err("Full name must be at most 100 characters long".into());
        }
        if s.chars().any(char::is_control) {
            return Err("Full name must not contain control characters".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// 8 to 128 characters, any characters, never trimmed or truncated. Secret: not printable.
#[derive(Clone)]
pub struct Password(SecretString);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    /// A new password: 8 to 128 characters.
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.chars().count() < Self::MIN_CHARS && !raw.is_empty() {
            return Err(format!(
                "Password must be at least {} characters long",
                Self::MIN_CHARS
            ));
        }
        Self::parse_presented(raw)
    }

    /// A password presented to be checked against a stored hash: any length up to 128, since
    /// accounts from the Node version, which had no minimum, must still be able to log in.
    pub fn parse_presented(raw: String) -> Result<Self, String> {
        let len = raw.chars().count();
        if len == 0 {
            return Err("Password is required".into());
        }
        if len > Self::MAX_CHARS {
            return Err(format!(
                "Password must be at most {} characters long",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A user's id: a MongoDB ObjectId, shown as 24 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserId(pub mongodb::bson::oid::ObjectId);

impl UserId {
    /// A fresh id for a new user.
    pub fn generate() -> Self {
        Self(mongodb::bson::oid::ObjectId::new())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        mongodb::bson::oid::ObjectId::parse_str(raw)
            .map(Self)
            .map_err(|_| "not a user id".to_owned())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_hex())
    }
}

/// A session id: 128 random bits as 32 lowercase hex characters (unguessable, unlike ObjectIds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId(String);
string_newtype!(SessionId);

impl SessionId {
    pub fn generate() -> Self {
        Self::from_bytes(rand::random::<[u8; 16]>())
    }

    /// The id for 128 bits chosen elsewhere (see `sessions::exchange_node_token`).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(hex::encode(bytes))
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() == 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("not a session id".into())
        }
    }
}

/// An image stored at Cloudinary: its delivery URL and the public id that destroys it. Both
/// are stored side by side in the user document (`avatar` / `avatarPublicId`), never one
/// inside the other, so the Node models keep reading `avatar` as the URL string they expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub url: String,
    pub public_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_lowercased_and_restricted_to_a_safe_alphabet() {
        assert_eq!(
            Username::parse("  John.Doe_1-x ").expect("valid").as_ref(),
            "john.doe_1-x"
        );
        for bad in [
            "",
            "ab",
            &"a".repeat(31),
            "john doe",
            "jöhn",
            "jоhn", /* Cyrillic o */
            "jo\u{200b}hn",
            "a/b",
            "$gt",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn emails_are_lowercased_and_checked_for_syntax_and_length() {
        assert_eq!(
            Email::parse(" John@Example.COM ").expect("valid").as_ref(),
            "john@example.com"
        );
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "plain",
            "a@",
            "@b.com",
            "a b@c.com",
            "a@localhost",
            "\"q\"@x.com",
            long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn full_names_are_trimmed_and_bounded() {
        assert_eq!(
            FullName::parse("  Ada Lovelace ").expect("valid").as_ref(),
            "Ada Lovelace"
        );
        assert!(FullName::parse("   ").is_err());
        assert!(FullName::parse(&"x".repeat(101)).is_err());
        assert!(FullName::parse("a\u{0}b").is_err());
        assert!(
            FullName::parse(&"é".repeat(100)).is_ok(),
            "limits count characters, not bytes"
        );
    }

    #[test]
    fn passwords_keep_every_character_and_never_print() {
        let p = Password::parse("  spaced  ".into()).expect("valid");
        assert_eq!(p.expose(), "  spaced  ");
        assert!(!format!("{p:?}").contains("spaced"));
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(129)).is_err());
        assert!(Password::parse("ü".repeat(128)).is_ok());
        assert!(
            Password::parse_presented("short".into()).is_ok(),
            "no minimum at login"
        );
        assert!(Password::parse_presented(String::new()).is_err());
        assert!(Password::parse_presented("x".repeat(129)).is_err());
    }

    #[test]
    fn session_ids_are_32_hex_and_unique() {
        let a = SessionId::generate();
        assert!(SessionId::parse(a.as_ref()).is_ok());
        assert_ne!(a, SessionId::generate());
        assert!(SessionId::parse("{\"$gt\":\"\"}").is_err());
    }
}
