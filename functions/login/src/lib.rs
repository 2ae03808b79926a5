//! `POST /api/v1/users/login`: checks a password and opens a new session (one per device).
//!
//! The body is JSON or urlencoded with `username` and/or `email` plus `password`. Unknown
//! accounts and wrong passwords cost the same argon2id verification and get the same 401.
//! Passwords are not held to today's length minimum here, so accounts from the Node version,
//! which had none, can still log in; the 128-character maximum applies.
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::json;
use shared::{
    ApiError, App, FieldError, auth,
    domain::{Email, Password, UserId, Username},
    http::{self, Reply, read_fields, take_string},
    password::{self, Verdict},
    sessions::{self, UserClaims},
    tokens::new_jti,
    users::{self, Identifier, PublicUser},
};

pub const ROUTE: &str = "POST /api/v1/users/login";
/// Credentials are tiny; anything bigger is not a login attempt.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const INVALID_CREDENTIALS: &str = "Invalid user credentials";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| login(app, req)).await
}

struct Credentials {
    identifier: Identifier,
    password: String,
}

fn parse(req: &Request) -> Result<Credentials, ApiError> {
    let mut fields = read_fields(req, MAX_BODY_BYTES)?;
    let mut errors = Vec::new();
    let mut take = |name: &str| {
        take_string(&mut fields, name).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let username = take("username")
        .map(|u| Username::normalise_for_lookup(&u))
        .filter(|u| !u.is_empty());
    let email = take("email")
        .map(|e| Email::normalise_for_lookup(&e))
        .filter(|e| !e.is_empty());
    let password = take("password");
    for (field, value) in [("username", &username), ("email", &email)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 254) {
            errors.push(FieldError::new(
                field,
                format!("{field} must be at most 254 characters long"),
            ));
        }
    }
    let identifier = match (username, email) {
        (Some(username), Some(email)) => Some(Identifier::Both { username, email }),
        (Some(u), None) => Some(Identifier::Username(u)),
        (None, Some(e)) => Some(Identifier::Email(e)),
        (None, None) => {
            if !errors
                .iter()
                .any(|e| e.field == "username" || e.field == "email")
            {
                errors.push(FieldError::new("username", "username or email is required"));
            }
            None
        }
    };
    match password.as_deref() {
        None | Some("") => errors.push(FieldError::new("password", "Password is required")),
        Some(p) if p.chars().count() > Password::MAX_CHARS => errors.push(FieldError::new(
            "password",
            format!(
                "Password must be at most {} characters long",
                Password::MAX_CHARS
            ),
        )),
        Some(_) => {}
    }
    match (identifier, password) {
        (Some(identifier), Some(password)) if errors.is_empty() => Ok(Credentials {
            identifier,
            password,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

#[tracing::instrument(name = "login", skip_all)]
async fn login(app: &App, req: Request) -> Result<Reply, ApiError> {
    let creds = parse(&req)?;
    let store = app.store().await?;
    let user = users::find_for_login(store, &creds.identifier).await?;
    let verdict = password::verify(
        &creds.password,
        user.as_ref().map(|u| u.password_hash.as_str()),
    )
    .await
    .map_err(ApiError::internal)?;
    let (user, needs_rehash) = match (user, verdict) {
        (Some(user), Verdict::Match { needs_rehash }) => (user, needs_rehash),
        _ => return Err(ApiError::Unauthorized(INVALID_CREDENTIALS)),
    };
    let user_id = UserId(user.id);
    if needs_rehash {
        // Best effort: the login itself has succeeded either way.
        match password::rehash(&creds.password).await {
            Ok(h) => {
                if let Err(e) = users::set_password_hash(store, user_id, &h).await {
                    tracing::warn!(error = %shared::error::chain(&e), "could not store the upgraded password hash");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not upgrade the password hash"),
        }
    }
    let claims = UserClaims {
        username: user.username.clone(),
        email: user.email.clone(),
        full_name: user.full_name.clone(),
    };
    let jti = new_jti();
    let session = sessions::create(
        store,
        user_id,
        claims.clone(),
        &jti,
        app.config.tokens.session_max_age,
    )
    .await?;
    let pair = auth::issue(
        app,
        &user_id.to_string(),
        &claims,
        &session.id,
        &jti,
        session.expires_at,
    )?;
    let [access_cookie, refresh_cookie] = pair.cookies(app);
    let data = json!({
        "user": PublicUser::from(&user),
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
    });
    Ok(
        Reply::new(StatusCode::OK, data, "User logged In Successfully")
            .with_cookie(access_cookie)
            .with_cookie(refresh_cookie),
    )
}
