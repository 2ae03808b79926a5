//! The one error type the HTTP edge understands, and the one place that maps it to a status.
//!
//! Every layer has its own error enum (store, media, tokens, config); each converts into
//! [`ApiError`] here, and [`ApiError::status`] / [`ApiError::public_message`] decide what a client
//! sees. Sources are kept for the log, never for the response.
use http::StatusCode;
use serde::Serialize;

/// One problem with one input field, as listed in the envelope's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: one or more fields are invalid; every problem is listed.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// 400: the request as a whole is unreadable (bad JSON, broken multipart, bad base64).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: bad credentials or a bad, expired or reused token. The message is generic on purpose.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 405: the route exists, but only for this method.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 409: username or email already taken.
    #[error("conflict")]
    Conflict(Vec<FieldError>),
    /// 413: the body or a file is larger than allowed.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// 415: wrong content type, or a file that is not an allowed image.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 429: too many failed password checks; `Retry-After` says when to try again.
    #[error("throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// 502: Cloudinary failed or timed out.
    #[error("image service failed")]
    Upstream(#[source] Source),
    /// 503: the database cannot be reached; the client should retry.
    #[error("database unavailable")]
    Unavailable(#[source] Source),
    /// 500: anything unexpected. Details go to the log only.
    #[error("internal error")]
    Internal(#[source] Source),
}

/// Seconds a client is told to wait after a 503.
pub const RETRY_AFTER_SECS: u64 = 2;

impl ApiError {
    pub fn internal(e: impl Into<Source>) -> Self {
        Self::Internal(e.into())
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a client sees. Never contains internal detail, input values or secrets.
    pub fn public_message(&self) -> String {
        match self {
            Self::Validation(errors) if errors.len() == 1 => errors[0].message.clone(),
            Self::Validation(_) => "Some fields are invalid".to_owned(),
            Self::BadRequest(m) | Self::PayloadTooLarge(m) | Self::UnsupportedMediaType(m) => {
                m.clone()
            }
            Self::Unauthorized(m) => (*m).to_owned(),
            Self::MethodNotAllowed(method) => format!("Only {method} is allowed on this route"),
            // The Node API's wording, whichever field clashed; `errors` names them.
            Self::Conflict(_) => "User with email or username already exists".to_owned(),
            // The same words whichever budget refused and whether or not the account exists.
            Self::Throttled { .. } => "Too many failed attempts; please try again later".to_owned(),
            Self::Upstream(_) => "The image service failed; please try again".to_owned(),
            Self::Unavailable(_) => {
                "The service is temporarily unavailable; please retry".to_owned()
            }
            Self::Internal(_) => "Something went wrong on our side".to_owned(),
        }
    }

    /// The `errors` array of the envelope.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Validation(errors) | Self::Conflict(errors) => errors,
            _ => &[],
        }
    }

    /// Whether this outcome is our fault (logged at error level with its source chain).
    pub fn is_server_side(&self) -> bool {
        self.status().is_server_error()
    }
}

/// Renders an error and its whole `source()` chain on one line, for logs.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_documented_status() {
        let io = || std::io::Error::other("x");
        let cases = [
            (ApiError::validation("email", "bad"), 400),
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Unauthorized("x"), 401),
            (ApiError::MethodNotAllowed("POST"), 405),
            (ApiError::Conflict(vec![]), 409),
            (ApiError::PayloadTooLarge("x".into()), 413),
            (ApiError::UnsupportedMediaType("x".into()), 415),
            (
                ApiError::Throttled {
                    retry_after_secs: 3,
                },
                429,
            ),
            (ApiError::Upstream(io().into()), 502),
            (ApiError::Unavailable(io().into()), 503),
            (ApiError::internal(io()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(e.status().as_u16(), code, "{e:?}");
        }
    }

    #[test]
    fn internal_errors_never_leak_their_source_to_the_client() {
        let e = ApiError::internal(std::io::Error::other("mongodb://user:hunter2@host"));
        assert!(!e.public_message().contains("hunter2"));
        assert!(chain(&e).contains("hunter2"), "the log keeps the detail");
    }
}
