//! Every variable the configuration reads, with its default and meaning: the single source for
//! defaults and for the README's table.

/// One variable the configuration reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// The text used when the variable is unset or blank, parsed exactly like a value from the
    /// environment. `None` where there is no default: required variables, the Cloudinary
    /// credentials (one of their two forms is required) and `COOKIE_SAMESITE` (unset means
    /// per-cookie defaults).
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: Option<&'static str>, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// Every variable [`Config`] reads, with its default: the single source for defaults.
pub const VARIABLES: &[Variable] = &[
    var(
        "MONGODB_URI",
        None,
        "MongoDB connection string (mongodb:// or mongodb+srv://); may be a secret reference",
    ),
    var("MONGODB_DB", Some("videotube"), "database name"),
    var(
        "MONGODB_SERVER_SELECTION_TIMEOUT",
        Some("2s"),
        "how long to wait for a usable server before answering 503",
    ),
    var(
        "MONGODB_CONNECT_TIMEOUT",
        Some("2s"),
        "TCP/TLS connect timeout",
    ),
    var(
        "ACCESS_TOKEN_SECRET",
        None,
        "HS256 key for access tokens, >= 32 bytes; may be a secret reference",
    ),
    var(
        "REFRESH_TOKEN_SECRET",
        None,
        "HS256 key for refresh tokens, >= 32 bytes, different from the access secret; may be a \
         secret reference",
    ),
    var("ACCESS_TOKEN_EXPIRY", Some("15m"), "access token lifetime"),
    var(
        "REFRESH_TOKEN_EXPIRY",
        Some("10d"),
        "refresh token lifetime, longer than the access token's",
    ),
    var(
        "SESSION_MAX_AGE",
        Some("30d"),
        "absolute session lifetime, >= the refresh token's",
    ),
    var(
        "REFRESH_REUSE_GRACE",
        Some("10s"),
        "how long the refresh token a rotation just replaced still gets the same new pair \
         (a lost answer, a second tab) instead of revoking the session; 0s to 5m, 0s = off",
    ),
    var(
        "TOKEN_LEEWAY",
        Some("2s"),
        "clock skew allowed when checking exp (0s to 60s, whole seconds)",
    ),
    var(
        "CLOUDINARY_URL",
        None,
        "cloudinary://API_KEY:API_SECRET@CLOUD_NAME (or the three variables below); may be a \
         secret reference",
    ),
    var(
        "CLOUDINARY_CLOUD_NAME",
        None,
        "cloud name, if CLOUDINARY_URL is not set",
    ),
    var(
        "CLOUDINARY_API_KEY",
        None,
        "API key, if CLOUDINARY_URL is not set",
    ),
    var(
        "CLOUDINARY_API_SECRET",
        None,
        "API secret, if CLOUDINARY_URL is not set; may be a secret reference",
    ),
    var(
        "CLOUDINARY_API_BASE",
        Some("https://api.cloudinary.com"),
        "API endpoint (https; http only on loopback, for the local stand-in)",
    ),
    var(
        "CLOUDINARY_FOLDER",
        Some("videotube/users"),
        "folder for uploaded images",
    ),
    var(
        "CLOUDINARY_SIGNATURE_ALGORITHM",
        Some("sha1"),
        "sha1 or sha256, as set in the Cloudinary account",
    ),
    var(
        "CLOUDINARY_CONNECT_TIMEOUT",
        Some("3s"),
        "connect timeout for Cloudinary",
    ),
    var(
        "CLOUDINARY_TIMEOUT",
        Some("10s"),
        "whole-request timeout for Cloudinary",
    ),
    var(
        "UPLOAD_TMP_DIR",
        Some("/tmp"),
        "absolute directory where uploads are staged",
    ),
    var(
        "UPLOAD_MAX_FILE_BYTES",
        Some("2MiB"),
        "largest accepted image file",
    ),
    var(
        "UPLOAD_MAX_BODY_BYTES",
        Some("4.5MiB"),
        "largest accepted multipart body, >= the file limit",
    ),
    var(
        "UPLOAD_MAX_FIELD_BYTES",
        Some("1KiB"),
        "largest accepted text field",
    ),
    var(
        "COOKIE_SECURE",
        Some("true"),
        "Secure flag on cookies (true/false, 1/0, yes/no)",
    ),
    var(
        "COOKIE_SAMESITE",
        None,
        "strict, lax or none for both cookies; unset: access Lax, refresh Strict",
    ),
    var(
        "NODE_REFRESH_EXCHANGE",
        Some("true"),
        "accept a refresh token the Node version issued, once, while it equals the user's \
         stored refreshToken, to open a session of ours; false once the switch is over",
    ),
    var(
        "NODE_REFRESH_TOKEN_SECRET",
        None,
        "the Node version's REFRESH_TOKEN_SECRET, when ours is a new one (say the Node one was \
         shorter than 32 bytes): it only verifies the Node-era refresh tokens the exchange \
         accepts, each of which must also equal the user's stored refreshToken, so any length \
         will do; unset: REFRESH_TOKEN_SECRET; may be a secret reference",
    ),
    var(
        "NODE_EMAIL_FALLBACK",
        Some("true"),
        "find Node-era accounts whose email is stored in the case it was typed (login, \
         sign-up checks); false after `make migrate-node ARGS=--apply` lowercased them",
    ),
    var(
        "THROTTLE_ENABLED",
        Some("true"),
        "throttle password guessing at login, change-password and the Node-era refresh exchange (429 with Retry-After); \
         false only for benchmarks and emergencies",
    ),
    var(
        "THROTTLE_FREE_FAILURES",
        Some("5"),
        "failed password checks one address may make at one account before each next check \
         waits (1 to 1000)",
    ),
    var(
        "THROTTLE_DELAY",
        Some("1s"),
        "the wait after the free failures, doubled by each further failure",
    ),
    var(
        "THROTTLE_MAX_DELAY",
        Some("15m"),
        "the longest wait between two checks by one address at one account",
    ),
    var(
        "THROTTLE_FORGET_AFTER",
        Some("1d"),
        "failures of an address at an account older than this no longer count",
    ),
    var(
        "THROTTLE_ADDRESS_FAILURES",
        Some("100"),
        "failed checks one address may make across all accounts per THROTTLE_ADDRESS_WINDOW \
         (credential stuffing; 1 to 1000000)",
    ),
    var(
        "THROTTLE_ADDRESS_WINDOW",
        Some("1d"),
        "the sliding window of THROTTLE_ADDRESS_FAILURES",
    ),
    var(
        "THROTTLE_ACCOUNT_FAILURES",
        Some("100"),
        "failed checks at one account from addresses it has not signed in from, per \
         THROTTLE_ACCOUNT_WINDOW (1 to 1000000)",
    ),
    var(
        "THROTTLE_ACCOUNT_WINDOW",
        Some("1h"),
        "the sliding window of THROTTLE_ACCOUNT_FAILURES",
    ),
    var(
        "THROTTLE_TRUSTED_FOR",
        Some("30d"),
        "how long an address that signed in to an account is exempt from that account's \
         THROTTLE_ACCOUNT_FAILURES (0s: never)",
    ),
];
