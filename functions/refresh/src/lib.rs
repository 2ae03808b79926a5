//! `POST /api/v1/users/refresh-token`: trades a refresh token for a new pair, exactly once.
//!
//! The token comes from the `refreshToken` cookie, else from the body's `refreshToken`. After
//! full JWT validation, one atomic compare-and-swap on the session rotates it; a token that is
//! no longer current is either a client racing itself (401, session kept) or reuse (401, the
//! session is revoked and a security event is logged).
use lambda_http::{Body, Request, Response, http::StatusCode};
use shared::{
    ApiError, App, auth,
    cookies::REFRESH_COOKIE,
    domain::{SessionId, UserId},
    http::{self, Reply, cookie_value, read_fields, take_string},
    sessions::{self, Refusal},
    tokens::new_jti,
};

pub const ROUTE: &str = "POST /api/v1/users/refresh-token";
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const NO_TOKEN: &str = "Unauthorized request";
pub const INVALID_TOKEN: &str = "Invalid refresh token";
pub const EXPIRED_OR_USED: &str = "Refresh token is expired or used";
pub const ALREADY_USED: &str = "Refresh token was already used; use the newest one";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| refresh(app, req)).await
}

fn presented_token(req: &Request) -> Result<String, ApiError> {
    let token = match cookie_value(req, REFRESH_COOKIE) {
        Some(t) => Some(t),
        None => {
            let mut fields = read_fields(req, MAX_BODY_BYTES)?;
            take_string(&mut fields, "refreshToken").map_err(|e| ApiError::Validation(vec![e]))?
        }
    };
    match token {
        Some(t) if !t.trim().is_empty() => Ok(t),
        _ => Err(ApiError::Unauthorized(NO_TOKEN)),
    }
}

#[tracing::instrument(name = "refresh", skip_all)]
async fn refresh(app: &App, req: Request) -> Result<Reply, ApiError> {
    let token = presented_token(&req)?;
    let claims = app.tokens.verify_refresh(&token).map_err(|e| {
        tracing::info!(reason = %e, "refresh token rejected");
        match e {
            shared::tokens::TokenError::Expired => ApiError::Unauthorized(EXPIRED_OR_USED),
            _ => ApiError::Unauthorized(INVALID_TOKEN),
        }
    })?;
    let (Ok(user), Ok(sid)) = (UserId::parse(&claims.sub), SessionId::parse(&claims.sid)) else {
        return Err(ApiError::Unauthorized(INVALID_TOKEN));
    };
    let store = app.store().await?;
    let new_jti = new_jti();
    let grace = app.config.tokens.reuse_grace;
    let ttl = app.config.tokens.refresh_ttl;
    let rotated =
        match sessions::rotate(store, &sid, user, &claims.jti, &new_jti, grace, ttl).await? {
            Ok(rotated) => rotated,
            Err(Refusal::JustRotated) => return Err(ApiError::Unauthorized(ALREADY_USED)),
            Err(Refusal::Reused) => {
                tracing::warn!(
                    security_event = "refresh_token_reuse",
                    user_id = %user,
                    session_id = %sid,
                    "a refresh token was used again after rotation; the session is revoked"
                );
                return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
            }
            Err(Refusal::Unknown | Refusal::Ended) => {
                return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
            }
        };
    let session = &rotated.session;
    let pair = auth::issue(
        app,
        &claims.sub,
        &session.claims,
        &session.id,
        &rotated.jti,
        session.expires_at,
    )?;
    let [access_cookie, refresh_cookie] = pair.cookies(app);
    Ok(Reply::new(StatusCode::OK, &pair, "Access token refreshed")
        .with_cookie(access_cookie)
        .with_cookie(refresh_cookie))
}
