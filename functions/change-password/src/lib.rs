//! `POST /api/v1/users/change-password`: replaces the password of the signed-in user and signs
//! every other device out.
//!
//! The body is JSON or urlencoded with `oldPassword` and `newPassword`; other fields are ignored,
//! as login ignores them (front ends built for the Node version may send a `confirmPassword`).
//! Every problem is reported in one 400: shapes first, and the old password is verified whenever
//! it is well-formed, so a wrong old password is listed beside a too-short new one. The old
//! password is held to no minimum (Node-era accounts had none), the new one to register's rules
//! and must differ from the old. Node-era bcrypt hashes verify like ours.
//!
//! The new hash is written only while the stored hash is still the one the old password was
//! checked against (`users::set_password`): of two concurrent changes one applies, and the other
//! is answered as a wrong old password, because by then it is. Only after that write are the
//! other sessions ended; ending them first would let a login with the old password in between
//! survive the change. This session stays signed in.
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::json;
use shared::{
    ApiError, App, FieldError,
    auth::{self, Caller},
    cookies,
    domain::Password,
    http::{self, Reply, cookie_value, read_fields, take_string},
    password::{self, Verdict},
    sessions,
    throttle::{self, Admission, SourceAddress},
    users,
};

pub const ROUTE: &str = "POST /api/v1/users/change-password";
/// Two passwords of at most 128 characters; anything bigger is not a password change.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const OLD_PASSWORD: &str = "oldPassword";
pub const NEW_PASSWORD: &str = "newPassword";
/// The Node version's message for a wrong old password.
pub const INVALID_OLD_PASSWORD: &str = "Invalid old password";
pub const SAME_PASSWORD: &str = "New password must differ from the old password";
pub const CHANGED: &str = "Password changed successfully";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| change_password(app, req)).await
}

/// The two passwords as far as they parsed, and every problem found on the way.
struct Parsed {
    old: Option<Password>,
    new: Option<Password>,
    errors: Vec<FieldError>,
}

fn parse(req: &Request) -> Result<Parsed, ApiError> {
    let mut fields = read_fields(req, MAX_BODY_BYTES)?;
    let mut errors = Vec::new();
    let mut take = |name: &str, rule: fn(String) -> Result<Password, String>| match take_string(
        &mut fields,
        name,
    ) {
        Ok(value) => rule(value.unwrap_or_default())
            .map_err(|m| errors.push(FieldError::new(name, m)))
            .ok(),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let old = take(OLD_PASSWORD, Password::parse_presented);
    let new = take(NEW_PASSWORD, Password::parse);
    if let (Some(old), Some(new)) = (&old, &new)
        && old.expose() == new.expose()
    {
        errors.push(FieldError::new(NEW_PASSWORD, SAME_PASSWORD));
    }
    Ok(Parsed { old, new, errors })
}

/// Whether `presented` is the caller's current password; returns the stored hash it matched.
///
/// The one place a presented old password is checked, behind the same throttles as login
/// (`shared::throttle`), counted under the user's id and the caller's address: a stolen
/// session cannot be used to guess the password faster than a login could. A refusal is a 429.
async fn check_old_password<'a>(
    app: &App,
    req: &Request,
    caller: &'a Caller,
    presented: &Password,
) -> Result<Option<&'a str>, ApiError> {
    let store = app.store().await?;
    let throttle = app.throttle()?;
    let device = cookie_value(req, cookies::DEVICE_COOKIE);
    let subject = throttle.subject(
        "change-password",
        &throttle::account::user_id(caller.user_id),
        SourceAddress::of(req),
        device.as_deref(),
    );
    let attempt = match throttle.check(store, &subject).await {
        Admission::Check(attempt) => attempt,
        Admission::Refused(refusal) => return Err(refusal.into()),
    };
    let stored = caller.user.password.as_str();
    let verdict = password::verify(presented.expose(), Some(stored))
        .await
        .map_err(ApiError::internal)?;
    if matches!(verdict, Verdict::Match { .. }) {
        attempt.succeeded(store).await;
        Ok(Some(stored))
    } else {
        attempt.failed();
        Ok(None)
    }
}

#[tracing::instrument(name = "change_password", skip_all)]
async fn change_password(app: &App, req: Request) -> Result<Reply, ApiError> {
    let caller = auth::authenticate(app, &req).await?;
    let Parsed {
        old,
        new,
        mut errors,
    } = parse(&req)?;
    let checked = match &old {
        Some(old) => {
            let checked = check_old_password(app, &req, &caller, old).await?;
            if checked.is_none() {
                errors.push(FieldError::new(OLD_PASSWORD, INVALID_OLD_PASSWORD));
            }
            checked
        }
        None => None,
    };
    errors.sort_by_key(|e| e.field != OLD_PASSWORD);
    let (Some(checked), Some(new), true) = (checked, new, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let new_hash = password::hash(&new).await.map_err(ApiError::internal)?;
    let store = app.store().await?;
    if !users::set_password(store, caller.user_id, checked, &new_hash).await? {
        tracing::info!(user_id = %caller.user_id, "the password changed concurrently; refused as a wrong old password");
        return Err(ApiError::validation(OLD_PASSWORD, INVALID_OLD_PASSWORD));
    }
    let ended = sessions::revoke_all_of(store, caller.user_id, Some(&caller.session_id))
        .await
        .inspect_err(|_| {
            tracing::error!(user_id = %caller.user_id, "the password changed but the other sessions could not be ended");
        })?;
    tracing::info!(user_id = %caller.user_id, ended, "password changed; other sessions ended");
    Ok(Reply::new(StatusCode::OK, json!({}), CHANGED))
}
