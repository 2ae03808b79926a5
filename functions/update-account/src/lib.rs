//! `PATCH /api/v1/users/update-account`: changes the signed-in user's full name and/or email.
//!
//! The body is JSON or urlencoded with `fullName` and/or `email`, each under register's rules;
//! other fields are ignored, as login ignores them. An email another account holds is a 409
//! decided by the unique index, so of two users racing for one free email exactly one gets it.
//! While `NODE_EMAIL_FALLBACK` is on, an email a Node-era account holds in another case
//! (`Bob@x.com` against `bob@x.com`) is refused too, as register refuses it. One's own current
//! email, in any case, is not taken.
//!
//! Access tokens carry the email and full name, so after the write every live session of the
//! user gets the new claims (each one's next refresh issues them), and this session gets a new
//! access token at once, in the `accessToken` cookie.
use lambda_http::{Body, Request, Response, http::StatusCode};
use shared::{
    ApiError, App, FieldError, auth,
    domain::{Email, FullName},
    http::{self, Reply, read_fields, take_string},
    sessions,
    store::StoreError,
    tokens::Grant,
    users::{self, ProfileChange, PublicUser},
};

pub const ROUTE: &str = "PATCH /api/v1/users/update-account";
/// Two short text fields; anything bigger is not an account update.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const FULL_NAME: &str = "fullName";
pub const EMAIL: &str = "email";
pub const NOTHING_TO_UPDATE: &str = "fullName or email is required";
pub const EMAIL_TAKEN: &str = "Email is already in use by another account";
pub const UPDATED: &str = "Account details updated successfully";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| update_account(app, req)).await
}

fn parse(req: &Request) -> Result<ProfileChange, ApiError> {
    let mut fields = read_fields(req, MAX_BODY_BYTES)?;
    let mut errors = Vec::new();
    let mut take = |name: &str| {
        take_string(&mut fields, name).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let (full_name, email) = (take(FULL_NAME), take(EMAIL));
    let nothing = errors.is_empty() && full_name.is_none() && email.is_none();
    // A field given as a string is parsed even when empty: `""` is an invalid value, not absent.
    let full_name = full_name.and_then(|raw| {
        FullName::parse(&raw)
            .map_err(|m| errors.push(FieldError::new(FULL_NAME, m)))
            .ok()
    });
    let email = email.and_then(|raw| {
        Email::parse(&raw)
            .map_err(|m| errors.push(FieldError::new(EMAIL, m)))
            .ok()
    });
    if nothing {
        errors.push(FieldError::new(FULL_NAME, NOTHING_TO_UPDATE));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ProfileChange { full_name, email })
}

fn email_taken() -> ApiError {
    ApiError::Conflict(vec![FieldError::new(EMAIL, EMAIL_TAKEN)])
}

#[tracing::instrument(name = "update_account", skip_all)]
async fn update_account(app: &App, req: Request) -> Result<Reply, ApiError> {
    let caller = auth::authenticate(app, &req).await?;
    let change = parse(&req)?;
    let store = app.store().await?;
    if let Some(email) = &change.email
        && app.config.node.email_fallback
        && users::email_held_by_another(store, email, caller.user_id).await?
    {
        return Err(email_taken());
    }
    let user = match users::update_profile(store, caller.user_id, &change).await {
        Ok(Some(user)) => user,
        // Deleted since `authenticate` read it: as if the token's user were gone.
        Ok(None) => return Err(ApiError::Unauthorized(auth::INVALID_TOKEN)),
        Err(StoreError::Duplicate(_)) => {
            tracing::info!("the email is held by another account (unique index)");
            return Err(email_taken());
        }
        Err(e) => return Err(e.into()),
    };
    let claims = user.claims();
    sessions::update_claims(store, caller.user_id, &claims).await?;
    let grant = Grant {
        claims: &claims,
        ..caller.session.grant()
    };
    let access = app.tokens.issue_access(grant).map_err(ApiError::internal)?;
    Ok(Reply::new(StatusCode::OK, PublicUser::from(&user), UPDATED)
        .with_cookie(access.cookie(&app.config.cookies)))
}
