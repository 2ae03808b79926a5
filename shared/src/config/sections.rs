//! One reader per section of [`super::Config`]: the rules of its variables, alone and together.
use std::path::PathBuf;

use cookie::SameSite;
use secrecy::{ExposeSecret, SecretString};

use super::{
    CloudinaryConfig, CookieConfig, MongoConfig, Needs, NodeCompatConfig, ThrottleConfig,
    TokenConfig, UploadConfig,
    reader::{
        DurationRule, LIFETIME, MAX_LEEWAY, MAX_REUSE_GRACE, MIN_SECRET_BYTES, Reader, TIMEOUT,
    },
    values,
};
use crate::duration::format_duration;

pub(super) fn mongo(r: &mut Reader) -> Option<MongoConfig> {
    let uri = r.secret("MONGODB_URI", "").and_then(|uri| {
        match values::check_mongo_uri(uri.expose_secret()) {
            Ok(()) => Some(uri),
            Err(message) => {
                r.report("MONGODB_URI", message);
                None
            }
        }
    });
    let database = r.value("MONGODB_DB", |v| {
        values::check_database_name(v).map(|()| v.to_owned())
    });
    let server_selection_timeout = r.duration("MONGODB_SERVER_SELECTION_TIMEOUT", TIMEOUT);
    let connect_timeout = r.duration("MONGODB_CONNECT_TIMEOUT", TIMEOUT);
    Some(MongoConfig {
        uri: uri?,
        database: database?,
        server_selection_timeout: server_selection_timeout?,
        connect_timeout: connect_timeout?,
    })
}

pub(super) fn tokens(r: &mut Reader, needs: Needs) -> Option<TokenConfig> {
    let hint = ": generate one with `cargo run -q -p devtools --bin gen-secrets`";
    let long_enough = |r: &mut Reader, name: &str| {
        r.secret(name, hint).and_then(|secret| {
            let len = secret.expose_secret().len();
            if len >= MIN_SECRET_BYTES {
                Some(secret)
            } else {
                r.report(
                    name,
                    format!("must be at least {MIN_SECRET_BYTES} bytes (it is {len}){hint}"),
                );
                None
            }
        })
    };
    // `Some(None)`: not needed, so not read.
    let access_secret = if needs.access_tokens {
        long_enough(r, "ACCESS_TOKEN_SECRET").map(Some)
    } else {
        Some(None)
    };
    let refresh_secret = if needs.refresh_tokens {
        long_enough(r, "REFRESH_TOKEN_SECRET").map(Some)
    } else {
        Some(None)
    };
    if let (Some(Some(access)), Some(Some(refresh))) = (&access_secret, &refresh_secret)
        && access.expose_secret() == refresh.expose_secret()
    {
        r.report(
            "REFRESH_TOKEN_SECRET",
            "must differ from ACCESS_TOKEN_SECRET, so that one kind of token can never be \
             verified as the other",
        );
    }

    // Any length: it verifies only Node-era tokens that must also equal a stored one.
    let node_refresh_secret = if needs.node_exchange {
        r.secret_if_set("NODE_REFRESH_TOKEN_SECRET")
            .transpose()
            .ok()
    } else {
        Some(None)
    };

    let access_ttl = r.duration("ACCESS_TOKEN_EXPIRY", LIFETIME);
    let refresh_ttl = r.duration("REFRESH_TOKEN_EXPIRY", LIFETIME);
    let session_max_age = r.duration("SESSION_MAX_AGE", LIFETIME);
    // `0s` turns the window off: any reuse of a replaced token revokes its session.
    let reuse_grace = r.duration(
        "REFRESH_REUSE_GRACE",
        DurationRule {
            allow_zero: true,
            max: MAX_REUSE_GRACE,
            whole_seconds: false,
        },
    );
    // JWT times are whole seconds, and so is the decoder's leeway: `500ms` would be 0.
    let leeway = r.duration(
        "TOKEN_LEEWAY",
        DurationRule {
            allow_zero: true,
            max: MAX_LEEWAY,
            whole_seconds: true,
        },
    );

    if let (Some(access), Some(refresh)) = (access_ttl, refresh_ttl)
        && refresh <= access
    {
        r.report(
            "REFRESH_TOKEN_EXPIRY",
            format!(
                "is {}, but must be longer than ACCESS_TOKEN_EXPIRY ({})",
                format_duration(refresh),
                format_duration(access)
            ),
        );
    }
    if let (Some(refresh), Some(session)) = (refresh_ttl, session_max_age)
        && session < refresh
    {
        r.report(
            "SESSION_MAX_AGE",
            format!(
                "is {}, but must be at least REFRESH_TOKEN_EXPIRY ({})",
                format_duration(session),
                format_duration(refresh)
            ),
        );
    }
    if let (Some(refresh), Some(grace)) = (refresh_ttl, reuse_grace)
        && grace >= refresh
    {
        r.report(
            "REFRESH_REUSE_GRACE",
            format!(
                "is {}, but must be shorter than REFRESH_TOKEN_EXPIRY ({})",
                format_duration(grace),
                format_duration(refresh)
            ),
        );
    }

    let config = TokenConfig {
        access_secret: access_secret?,
        refresh_secret: refresh_secret?,
        node_refresh_secret: node_refresh_secret?,
        access_ttl: access_ttl?,
        refresh_ttl: refresh_ttl?,
        session_max_age: session_max_age?,
        reuse_grace: reuse_grace?,
        leeway: leeway?,
    };
    // The relations above were reported without making anything `None`.
    if config.refresh_ttl <= config.access_ttl
        || config.session_max_age < config.refresh_ttl
        || config.reuse_grace >= config.refresh_ttl
        || matches!(
            (&config.access_secret, &config.refresh_secret),
            (Some(a), Some(r)) if a.expose_secret() == r.expose_secret()
        )
    {
        return None;
    }
    Some(config)
}

/// `(cloud_name, api_key, api_secret)` from either `CLOUDINARY_URL` or the three separate
/// variables. When both forms are present they must agree: silently preferring one would let
/// a stale leftover decide which account receives uploads.
pub(super) fn cloudinary_credentials(r: &mut Reader) -> Option<(String, String, SecretString)> {
    let cloud_name = r.get("CLOUDINARY_CLOUD_NAME");
    let api_key = r.get("CLOUDINARY_API_KEY");
    let api_secret = r.secret_if_set("CLOUDINARY_API_SECRET");

    let Some(url) = r.secret_if_set("CLOUDINARY_URL") else {
        let hint = " (or set CLOUDINARY_URL=cloudinary://API_KEY:API_SECRET@CLOUD_NAME)";
        let cloud_name = match cloud_name {
            None => {
                r.report("CLOUDINARY_CLOUD_NAME", format!("is required{hint}"));
                None
            }
            Some(v) => values::check_cloud_name(v)
                .map_err(|m| r.report("CLOUDINARY_CLOUD_NAME", m))
                .ok()
                .map(|()| v.to_owned()),
        };
        let api_key = match api_key {
            None => {
                r.report("CLOUDINARY_API_KEY", format!("is required{hint}"));
                None
            }
            Some(v) => values::check_api_key(v)
                .map_err(|m| r.report("CLOUDINARY_API_KEY", m))
                .ok()
                .map(|()| v.to_owned()),
        };
        let api_secret = match api_secret {
            None => {
                r.report("CLOUDINARY_API_SECRET", format!("is required{hint}"));
                None
            }
            Some(Err(())) => None,
            Some(Ok(secret)) => values::check_api_secret(secret.expose_secret())
                .map_err(|m| r.report("CLOUDINARY_API_SECRET", m))
                .ok()
                .map(|()| secret),
        };
        return Some((cloud_name?, api_key?, api_secret?));
    };

    let parsed = match url {
        Ok(url) => values::parse_cloudinary_url(url.expose_secret())
            .map_err(|m| r.report("CLOUDINARY_URL", m))
            .ok()?,
        Err(()) => return None,
    };
    let disagreement = |part: &str| {
        format!(
            "disagrees with the {part} in CLOUDINARY_URL: set only one of the two forms, or \
             make them match"
        )
    };
    let mut consistent = true;
    if cloud_name.is_some_and(|v| v != parsed.cloud_name) {
        r.report("CLOUDINARY_CLOUD_NAME", disagreement("cloud name"));
        consistent = false;
    }
    if api_key.is_some_and(|v| v != parsed.api_key) {
        r.report("CLOUDINARY_API_KEY", disagreement("API key"));
        consistent = false;
    }
    match api_secret {
        Some(Ok(secret)) if secret.expose_secret() != parsed.api_secret.expose_secret() => {
            r.report("CLOUDINARY_API_SECRET", disagreement("API secret"));
            consistent = false;
        }
        Some(Err(())) => consistent = false,
        _ => {}
    }
    consistent.then_some((parsed.cloud_name, parsed.api_key, parsed.api_secret))
}

pub(super) fn cloudinary(r: &mut Reader) -> Option<CloudinaryConfig> {
    let credentials = cloudinary_credentials(r);
    let api_base = r.value("CLOUDINARY_API_BASE", values::parse_api_base);
    let folder = r.value("CLOUDINARY_FOLDER", |v| {
        values::check_folder(v).map(|()| v.to_owned())
    });
    let signature_algorithm = r.value(
        "CLOUDINARY_SIGNATURE_ALGORITHM",
        values::parse_signature_algorithm,
    );
    let connect_timeout = r.duration("CLOUDINARY_CONNECT_TIMEOUT", TIMEOUT);
    let timeout = r.duration("CLOUDINARY_TIMEOUT", TIMEOUT);
    if let (Some(connect), Some(total)) = (connect_timeout, timeout)
        && connect > total
    {
        r.report(
            "CLOUDINARY_CONNECT_TIMEOUT",
            format!(
                "is {}, but must not exceed CLOUDINARY_TIMEOUT ({})",
                format_duration(connect),
                format_duration(total)
            ),
        );
        return None;
    }
    let (cloud_name, api_key, api_secret) = credentials?;
    Some(CloudinaryConfig {
        cloud_name,
        api_key,
        api_secret,
        api_base: api_base?,
        folder: folder?,
        signature_algorithm: signature_algorithm?,
        connect_timeout: connect_timeout?,
        timeout: timeout?,
    })
}

pub(super) fn upload(r: &mut Reader) -> Option<UploadConfig> {
    let tmp_dir = r.value("UPLOAD_TMP_DIR", |v| {
        let path = PathBuf::from(v);
        if path.is_absolute() {
            Ok(path)
        } else {
            Err(format!("{} must be an absolute path", values::excerpt(v)))
        }
    });
    let max_file_bytes = r.bytes("UPLOAD_MAX_FILE_BYTES");
    let max_body_bytes = r.bytes("UPLOAD_MAX_BODY_BYTES");
    let max_field_bytes = r.bytes("UPLOAD_MAX_FIELD_BYTES");
    let mut consistent = true;
    if let (Some(file), Some(body)) = (max_file_bytes, max_body_bytes)
        && file > body
    {
        r.report(
            "UPLOAD_MAX_FILE_BYTES",
            format!("is {file} bytes, but must not exceed UPLOAD_MAX_BODY_BYTES ({body} bytes)"),
        );
        consistent = false;
    }
    if let (Some(field), Some(body)) = (max_field_bytes, max_body_bytes)
        && field > body
    {
        r.report(
            "UPLOAD_MAX_FIELD_BYTES",
            format!("is {field} bytes, but must not exceed UPLOAD_MAX_BODY_BYTES ({body} bytes)"),
        );
        consistent = false;
    }
    let config = UploadConfig {
        tmp_dir: tmp_dir?,
        max_file_bytes: max_file_bytes?,
        max_body_bytes: max_body_bytes?,
        max_field_bytes: max_field_bytes?,
    };
    consistent.then_some(config)
}

pub(super) fn cookies(r: &mut Reader) -> Option<CookieConfig> {
    let secure = r.value("COOKIE_SECURE", values::parse_bool);
    let same_site = match r.get("COOKIE_SAMESITE") {
        None => Some(None),
        Some(v) => values::parse_same_site(v)
            .map_err(|m| r.report("COOKIE_SAMESITE", m))
            .ok()
            .map(Some),
    };
    if secure == Some(false) && same_site == Some(Some(SameSite::None)) {
        r.report(
            "COOKIE_SAMESITE",
            "none requires COOKIE_SECURE=true: browsers reject SameSite=None cookies without \
             Secure",
        );
        return None;
    }
    Some(CookieConfig {
        secure: secure?,
        same_site: same_site?,
    })
}

pub(super) fn node_compat(r: &mut Reader) -> Option<NodeCompatConfig> {
    let refresh_exchange = r.value("NODE_REFRESH_EXCHANGE", values::parse_bool);
    let email_fallback = r.value("NODE_EMAIL_FALLBACK", values::parse_bool);
    Some(NodeCompatConfig {
        refresh_exchange: refresh_exchange?,
        email_fallback: email_fallback?,
    })
}

/// Longest a throttle window, delay or trust may be: the documents that carry them expire then.
const MAX_THROTTLE_PERIOD: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);
const THROTTLE_PERIOD: DurationRule = DurationRule {
    allow_zero: false,
    max: MAX_THROTTLE_PERIOD,
    whole_seconds: false,
};

pub(super) fn throttle(r: &mut Reader) -> Option<ThrottleConfig> {
    let enabled = r.value("THROTTLE_ENABLED", values::parse_bool);
    let free_failures = r.value("THROTTLE_FREE_FAILURES", |v| {
        values::parse_count(v, 1, 1000)
    });
    let delay = r.duration("THROTTLE_DELAY", THROTTLE_PERIOD);
    let max_delay = r.duration("THROTTLE_MAX_DELAY", THROTTLE_PERIOD);
    let forget_after = r.duration("THROTTLE_FORGET_AFTER", THROTTLE_PERIOD);
    let address_failures = r.value("THROTTLE_ADDRESS_FAILURES", |v| {
        values::parse_count(v, 1, 1_000_000)
    });
    let address_window = r.duration("THROTTLE_ADDRESS_WINDOW", THROTTLE_PERIOD);
    let account_failures = r.value("THROTTLE_ACCOUNT_FAILURES", |v| {
        values::parse_count(v, 1, 1_000_000)
    });
    let account_window = r.duration("THROTTLE_ACCOUNT_WINDOW", THROTTLE_PERIOD);
    let trusted_for = r.duration(
        "THROTTLE_TRUSTED_FOR",
        DurationRule {
            allow_zero: true,
            ..THROTTLE_PERIOD
        },
    );
    let mut consistent = true;
    if let (Some(delay), Some(max)) = (delay, max_delay)
        && max < delay
    {
        r.report(
            "THROTTLE_MAX_DELAY",
            format!(
                "must be at least THROTTLE_DELAY ({})",
                format_duration(delay)
            ),
        );
        consistent = false;
    }
    if let (Some(max), Some(forget)) = (max_delay, forget_after)
        && forget < max
    {
        r.report(
            "THROTTLE_FORGET_AFTER",
            format!(
                "must be at least THROTTLE_MAX_DELAY ({}): failures forgotten sooner would \
                 end the longest wait early",
                format_duration(max)
            ),
        );
        consistent = false;
    }
    let config = ThrottleConfig {
        enabled: enabled?,
        free_failures: free_failures?,
        delay: delay?,
        max_delay: max_delay?,
        forget_after: forget_after?,
        address_failures: address_failures?,
        address_window: address_window?,
        account_failures: account_failures?,
        account_window: account_window?,
        trusted_for: trusted_for?,
    };
    consistent.then_some(config)
}
