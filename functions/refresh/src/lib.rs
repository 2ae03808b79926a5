//! `POST /api/v1/users/refresh-token`: trades a refresh token for a new pair.
//!
//! The token comes from the `refreshToken` cookie, else from the body's `refreshToken`. After
//! full JWT validation, the unique insert of its successor rotates it (see `shared::sessions`).
//! The token that was just replaced, presented again within `REFRESH_REUSE_GRACE` (a lost
//! answer, a second tab), gets the same new pair again, from any instance; any other token that
//! is no longer current is reuse: 401, the session is revoked and a security event is logged.
//!
//! A refresh token the Node version issued (no `typ` of ours, claims `_id`, `iat`, `exp`) is
//! exchanged once for a session of ours while it still equals the user's stored `refreshToken`
//! and `NODE_REFRESH_EXCHANGE` is on: see [`exchange_node_token`].
use lambda_http::{Body, Request, Response, http::StatusCode};
use sha2::{Digest, Sha256};
use shared::{
    ApiError, App,
    cookies::REFRESH_COOKIE,
    domain::{SessionId, UserId},
    error::chain,
    http::{self, Reply, cookie_value, read_fields, take_string},
    sessions::{self, Refusal},
    store::{Store, StoreError},
    tokens::{NodeRefreshClaims, PresentedRefresh, TokenError, TokenPair, new_jti, now_secs},
    users,
};

pub const ROUTE: &str = "POST /api/v1/users/refresh-token";
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const NO_TOKEN: &str = "Unauthorized request";
pub const INVALID_TOKEN: &str = "Invalid refresh token";
pub const EXPIRED_OR_USED: &str = "Refresh token is expired or used";

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
    let presented = app.tokens.verify_presented_refresh(&token).map_err(|e| {
        tracing::info!(reason = %e, "refresh token rejected");
        match e {
            TokenError::Expired => ApiError::Unauthorized(EXPIRED_OR_USED),
            _ => ApiError::Unauthorized(INVALID_TOKEN),
        }
    })?;
    let store = app.store().await?;
    let pair = match presented {
        PresentedRefresh::Ours(claims) => {
            let grace = app.config.tokens.reuse_grace;
            match sessions::rotate(store, &app.tokens, &claims, grace).await? {
                Ok(rotated) => app
                    .tokens
                    .issue(rotated.session.grant(), &rotated.jti, rotated.issued_at)
                    .map_err(ApiError::internal)?,
                Err(Refusal::Reused) => {
                    tracing::warn!(
                        security_event = "refresh_token_reuse",
                        user_id = %claims.sub,
                        session_id = %claims.sid,
                        "a replaced refresh token was used again; the session is revoked"
                    );
                    return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
                }
                Err(Refusal::Unknown | Refusal::Ended) => {
                    return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
                }
            }
        }
        PresentedRefresh::Node(claims) if app.config.node.refresh_exchange => {
            exchange_node_token(app, store, &token, &claims).await?
        }
        PresentedRefresh::Node(_) => {
            tracing::info!("a Node-era refresh token was presented; NODE_REFRESH_EXCHANGE is off");
            return Err(ApiError::Unauthorized(INVALID_TOKEN));
        }
    };
    let [access_cookie, refresh_cookie] = pair.cookies(&app.config.cookies);
    Ok(Reply::new(StatusCode::OK, &pair, "Access token refreshed")
        .with_cookie(access_cookie)
        .with_cookie(refresh_cookie))
}

/// Opens a session of ours for a refresh token the Node version issued, once.
///
/// The token must still equal the user's stored `refreshToken` (compared as SHA-256 digests, so
/// the comparison's time says nothing about the stored value). The session's id is derived from
/// the token, so the session's insert is the compare-and-swap: of any number of concurrent
/// exchanges of one token exactly one inserts it, on MongoDB and FerretDB alike, and every
/// later one meets a duplicate `_id` (401) even if removing the stored field failed. The id
/// reveals nothing of the token (a hash of it), and is no credential.
async fn exchange_node_token(
    app: &App,
    store: &Store,
    token: &str,
    claims: &NodeRefreshClaims,
) -> Result<TokenPair, ApiError> {
    let Ok(user_id) = UserId::parse(&claims.id) else {
        return Err(ApiError::Unauthorized(INVALID_TOKEN));
    };
    let user = users::find_by_id(store, user_id).await?;
    let digest = |t: &str| Sha256::digest(t.as_bytes());
    let Some(user) = user.filter(|u| {
        u.refresh_token
            .as_deref()
            .is_some_and(|stored| digest(stored) == digest(token))
    }) else {
        tracing::info!("a Node-era refresh token that is not the user's stored one was refused");
        return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
    };
    let sid = node_session_id(token);
    let jti = new_jti();
    let max_age = app.config.tokens.session_max_age;
    let session = match sessions::create(store, sid, user_id, user.claims(), &jti, max_age).await {
        Ok(session) => session,
        Err(StoreError::Duplicate(_)) => {
            tracing::info!(user_id = %user_id, "a Node-era refresh token was exchanged already");
            return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
        }
        Err(e) => return Err(e.into()),
    };
    // The session exists; a failure here only leaves a token that can no longer be exchanged.
    if let Err(e) = users::drop_node_refresh_token(store, user_id, token).await {
        tracing::warn!(error = %chain(&e), "could not remove an exchanged Node-era refresh token");
    }
    tracing::info!(user_id = %user_id, session_id = %session.id, "exchanged a Node-era refresh token for a session");
    app.tokens
        .issue(session.grant(), &jti, now_secs())
        .map_err(ApiError::internal)
}

/// The session id an exchanged Node-era refresh token opens: 128 bits of a hash of the token.
pub fn node_session_id(token: &str) -> SessionId {
    let mut h = Sha256::new();
    h.update(b"videotube/node-refresh-session/v1\0");
    h.update(token.as_bytes());
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    SessionId::from_bytes(id)
}
