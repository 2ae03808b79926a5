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
//! and `NODE_REFRESH_EXCHANGE` is on: see [`exchange_node_token`]. Its comparison is behind the
//! password throttles (`shared::throttle`): anyone who knows the Node refresh secret (the
//! tutorial's is public) can sign such tokens, and only their `iat` is unknown.
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
    throttle::{Admission, Limit, SourceAddress},
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
            exchange_node_token(app, store, &token, &claims, SourceAddress::of(&req)).await?
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
/// later one meets a duplicate `_id` (401). The id reveals nothing of the token (a hash of it),
/// and is no credential.
///
/// **Guessing.** A Node-era refresh token is `{_id, iat, exp}` signed with the Node refresh
/// secret, deterministic given those: a forger who knows the secret (the tutorial's sample is
/// public) and a user id needs only the `iat`, one of the 864,000 seconds of a 10-day lifetime.
/// So the comparison is a password check to the throttles: counted under the user id (`nrt:`,
/// a budget of its own) and the source address, refused with a 429 before the user is even
/// compared, and a token that is not the stored one is a failure. Once the account-wide budget
/// is spent the stored token is removed (see [`end_guessed_node_session`]): however many
/// addresses guess, no more than that budget of `iat`s are ever tried against one token.
///
/// **Then the stored token goes, or the session does.** The stored `refreshToken` is removed
/// only while it still holds this token. If it no longer does, something ended the Node-era
/// session between the read and the insert (a password change, which also signs out every
/// session of ours it can see, a Node logout or login): the session just opened goes too and
/// the answer is 401, as it would have been a moment later. If the removal cannot be made,
/// the session goes and the answer is 503: a retry, with the token still stored, exchanges it.
/// No token of the discarded session was ever handed out.
async fn exchange_node_token(
    app: &App,
    store: &Store,
    token: &str,
    claims: &NodeRefreshClaims,
    address: SourceAddress,
) -> Result<TokenPair, ApiError> {
    let Ok(user_id) = UserId::parse(&claims.id) else {
        return Err(ApiError::Unauthorized(INVALID_TOKEN));
    };
    let throttle = app.throttle()?;
    let subject = throttle.subject("refresh", &format!("nrt:{user_id}"), address, None);
    let (admission, user) = tokio::join!(
        throttle.check(store, &subject),
        users::find_by_id(store, user_id),
    );
    let attempt = match admission {
        Admission::Check(attempt) => attempt,
        Admission::Refused(refusal) => {
            if refusal.limits.contains(&Limit::Account) {
                end_guessed_node_session(store, user_id).await;
            }
            return Err(refusal.into());
        }
    };
    let user = user?;
    let digest = |t: &str| Sha256::digest(t.as_bytes());
    let Some(user) = user.filter(|u| {
        u.refresh_token
            .as_deref()
            .is_some_and(|stored| digest(stored) == digest(token))
    }) else {
        attempt.failed();
        tracing::info!("a Node-era refresh token that is not the user's stored one was refused");
        return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
    };
    let sid = node_session_id(token);
    let jti = new_jti();
    let max_age = app.config.tokens.session_max_age;
    let (created, ()) = tokio::join!(
        sessions::create(store, sid.clone(), user_id, user.claims(), &jti, max_age),
        attempt.succeeded(store),
    );
    let session = match created {
        Ok(session) => session,
        Err(StoreError::Duplicate(_)) => {
            tracing::info!(user_id = %user_id, "a Node-era refresh token was exchanged already");
            return Err(ApiError::Unauthorized(EXPIRED_OR_USED));
        }
        Err(e) => return Err(e.into()),
    };
    let dropped = users::drop_node_refresh_token(store, user_id, token).await;
    if !matches!(dropped, Ok(true)) {
        if let Err(e) = sessions::discard(store, &sid).await {
            tracing::warn!(error = %chain(&e), session_id = %session.id, "could not discard an unused session; none of its tokens was handed out");
        }
        return Err(match dropped {
            Ok(_) => {
                tracing::info!(user_id = %user_id, "a Node-era refresh token was replaced or removed during its exchange; the new session is discarded");
                ApiError::Unauthorized(EXPIRED_OR_USED)
            }
            Err(e) => e.into(),
        });
    }
    tracing::info!(user_id = %user_id, session_id = %session.id, "exchanged a Node-era refresh token for a session");
    app.tokens
        .issue(session.grant(), &jti, now_secs())
        .map_err(ApiError::internal)
}

/// Someone has guessed at a user's Node-era refresh token from many addresses: the account's
/// budget is spent. The Node-era session ends (its owner logs in again, as they would have
/// once it expired), so the guessing has nothing left to find. Best effort: if the removal
/// fails, the throttle still refuses every further guess for the window.
async fn end_guessed_node_session(store: &Store, user_id: UserId) {
    match users::forget_node_refresh_token(store, user_id).await {
        Ok(()) => tracing::warn!(
            security_event = "node_refresh_token_guessed",
            user_id = %user_id,
            "the account's budget of Node-era refresh token guesses is spent; its stored token is removed"
        ),
        Err(e) => tracing::warn!(
            security_event = "node_refresh_token_guessed",
            user_id = %user_id,
            error = %chain(&e),
            "the account's budget of Node-era refresh token guesses is spent; its stored token could not be removed"
        ),
    }
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
