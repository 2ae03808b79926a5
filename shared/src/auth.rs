//! Authentication for our own routes (logout, current-user, change-password, update-account,
//! avatar, cover-image), in one place.
//!
//! The access token is taken as the Node platform takes it (the `accessToken` cookie, else
//! `Authorization: Bearer`) and fully verified ([`crate::access`]). Unlike the stateless
//! authorizer, our routes then require the token's session to be live, so a logout, a password
//! change or a detected refresh-token reuse takes effect at once here rather than at the token's
//! expiry: the session and the user are read concurrently, both by `_id`.
//!
//! Every refusal is a 401 with one of two messages: "Unauthorized request" when no token was
//! presented (the Node wording), "Invalid access token" for everything else. Why a token was
//! refused is logged, never the token.
use lambda_http::{Request, http::header};
use mongodb::bson::DateTime;

use crate::{
    access::{AccessClaims, Presented, TokenError, presented_token},
    app::App,
    domain::{SessionId, UserId},
    error::ApiError,
    sessions::{self, SessionDoc},
    users::{self, UserDoc},
};

pub const MISSING_TOKEN: &str = "Unauthorized request";
pub const INVALID_TOKEN: &str = "Invalid access token";

/// A caller whose access token verified, before any database read.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: AccessClaims,
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// A caller with a verified token, a live session and an existing user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: AccessClaims,
    pub user_id: UserId,
    pub session_id: SessionId,
    pub session: SessionDoc,
    pub user: UserDoc,
}

/// The access token a request presents, as the Node platform finds it.
pub fn presented(req: &Request) -> Presented<'_> {
    let cookies = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    presented_token(cookies, authorization)
}

fn refuse(reason: &dyn std::fmt::Display) -> ApiError {
    tracing::info!(reason = %reason, "access token refused");
    ApiError::Unauthorized(INVALID_TOKEN)
}

/// Verifies the request's access token (signature, `typ`, expiry, claim types and the ids in
/// it), without touching the database.
pub fn verify(app: &App, req: &Request) -> Result<Verified, ApiError> {
    let token = match presented(req) {
        Presented::Missing => return Err(ApiError::Unauthorized(MISSING_TOKEN)),
        Presented::Oversized => return Err(refuse(&"oversized token")),
        Presented::Token(t) => t,
    };
    let claims = app.tokens.verify_access(token).map_err(|e| match e {
        TokenError::NotConfigured(_) => ApiError::internal(e),
        e => refuse(&e),
    })?;
    let user_id = UserId::parse(&claims.sub).map_err(|_| refuse(&"sub is not a user id"))?;
    let session_id =
        SessionId::parse(&claims.sid).map_err(|_| refuse(&"sid is not a session id"))?;
    Ok(Verified {
        claims,
        user_id,
        session_id,
    })
}

/// [`verify`], then the session (live, this user's) and the user (still there), read
/// concurrently by `_id`.
pub async fn authenticate(app: &App, req: &Request) -> Result<Caller, ApiError> {
    let verified = verify(app, req)?;
    let store = app.store().await?;
    let (session, user) = tokio::try_join!(
        sessions::find(store, &verified.session_id, verified.user_id),
        users::find_by_id(store, verified.user_id),
    )?;
    let Some(session) = session else {
        return Err(refuse(&"no such session for this user"));
    };
    if !session.is_live(DateTime::now()) {
        return Err(refuse(&"session revoked or ended"));
    }
    let Some(user) = user else {
        return Err(refuse(&"user no longer exists"));
    };
    Ok(Caller {
        claims: verified.claims,
        user_id: verified.user_id,
        session_id: verified.session_id,
        session,
        user,
    })
}
