//! Issuing the token pair for a session, shared by login (new session) and refresh (rotation).
//!
//! The refresh token never outlives its session: its `exp`, and the cookie's Max-Age, are capped
//! at the session's absolute end (`SESSION_MAX_AGE` after login).
use std::time::Duration;

use cookie::Cookie;
use mongodb::bson::DateTime;
use serde::Serialize;

use crate::{
    App, cookies,
    error::ApiError,
    sessions::UserClaims,
    tokens::{AccessClaims, RefreshClaims, new_jti, now_secs},
};

/// A freshly signed pair and their lifetimes.
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

/// Signs an access token and a refresh token (with id `refresh_jti`) for session `sid`.
pub fn issue(
    app: &App,
    user_id: &str,
    user: &UserClaims,
    sid: &str,
    refresh_jti: &str,
    session_ends: DateTime,
) -> Result<TokenPair, ApiError> {
    let now = now_secs();
    let access_ttl = app.tokens.access_ttl;
    let session_left = (session_ends.timestamp_millis() / 1000 - now).max(1) as u64;
    let refresh_ttl = Duration::from_secs(app.tokens.refresh_ttl.as_secs().min(session_left));
    let access = AccessClaims {
        sub: user_id.to_owned(),
        username: user.username.clone(),
        email: user.email.clone(),
        full_name: user.full_name.clone(),
        iat: now,
        exp: now + access_ttl.as_secs() as i64,
        jti: new_jti(),
    };
    let refresh = RefreshClaims {
        sub: user_id.to_owned(),
        sid: sid.to_owned(),
        jti: refresh_jti.to_owned(),
        iat: now,
        exp: now + refresh_ttl.as_secs() as i64,
    };
    Ok(TokenPair {
        access_token: app
            .tokens
            .sign_access(&access)
            .map_err(ApiError::internal)?,
        refresh_token: app
            .tokens
            .sign_refresh(&refresh)
            .map_err(ApiError::internal)?,
        access_ttl,
        refresh_ttl,
    })
}

impl TokenPair {
    /// The `accessToken` and `refreshToken` cookies carrying this pair.
    pub fn cookies(&self, app: &App) -> [Cookie<'static>; 2] {
        let cfg = &app.config.cookies;
        [
            cookies::access(cfg, self.access_token.clone(), self.access_ttl),
            cookies::refresh(cfg, self.refresh_token.clone(), self.refresh_ttl),
        ]
    }
}
