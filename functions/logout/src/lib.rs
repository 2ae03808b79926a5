//! `POST /api/v1/users/logout`: ends this device's session, or with `{"allDevices": true}`
//! every session of the user (and a Node-era refresh token still stored on the account), and
//! clears both cookies.
//!
//! The token is verified without the database (`auth::verify`): a logout whose session is
//! already revoked, past its end or gone still answers 200 and clears the cookies, so a retry
//! whose first answer was lost does not fail. Ending every session, though, is done only from a
//! session that is still live: a device that was signed out (say by a password change made
//! elsewhere) must not be able to sign out the device that signed it out.
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::{Value, json};
use shared::{
    ApiError, App, FieldError, auth, cookies,
    http::{self, Reply, content_type, read_fields},
    sessions, users,
};

pub const ROUTE: &str = "POST /api/v1/users/logout";
/// `{"allDevices": true}` is all a logout body can say.
pub const MAX_BODY_BYTES: usize = 1024;
pub const ALL_DEVICES: &str = "allDevices";
pub const LOGGED_OUT: &str = "User logged Out";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| logout(app, req)).await
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    ThisDevice,
    AllDevices,
}

/// The optional body: nothing, `{}`, or `allDevices` as a JSON boolean (`true`/`false` in a
/// urlencoded form, whose values are all strings). Anything else is a field error.
fn parse(req: &Request) -> Result<Scope, ApiError> {
    let mut fields = read_fields(req, MAX_BODY_BYTES)?;
    let form = content_type(req).as_deref() == Some("application/x-www-form-urlencoded");
    let mut errors = Vec::new();
    let all = match fields.remove(ALL_DEVICES) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) if form && (s == "true" || s == "false") => s == "true",
        Some(_) => {
            errors.push(FieldError::new(
                ALL_DEVICES,
                "allDevices must be true or false",
            ));
            false
        }
    };
    errors.extend(
        fields
            .keys()
            .map(|name| FieldError::new(name.as_str(), "Unknown field")),
    );
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(if all {
        Scope::AllDevices
    } else {
        Scope::ThisDevice
    })
}

#[tracing::instrument(name = "logout", skip_all)]
async fn logout(app: &App, req: Request) -> Result<Reply, ApiError> {
    let caller = auth::verify(app, &req)?;
    let scope = parse(&req)?;
    let store = app.store().await?;
    // The session by `_id` (FerretDB scans for anything else), and only if it is this user's: a
    // token whose `sid` names another user's session ends nothing.
    let session = sessions::find(store, &caller.session_id, caller.user_id).await?;
    let live = session.is_some_and(|s| s.is_live(mongodb::bson::DateTime::now()));
    match scope {
        // Nothing to do for a session already revoked, ended or gone.
        Scope::ThisDevice if live => sessions::revoke(store, &caller.session_id).await?,
        Scope::ThisDevice => tracing::info!("logout of a session that had ended: nothing revoked"),
        Scope::AllDevices => {
            if live {
                // The Node-era token first: an exchange that removes it before us has inserted
                // its session already, so the revoke below ends it; one that finds it gone
                // discards its session itself (see the refresh function). Concurrently, the
                // revoke could miss a session exchanged between the two.
                users::forget_node_refresh_token(store, caller.user_id).await?;
                let ended = sessions::revoke_all_of(store, caller.user_id, None).await?;
                tracing::info!(user_id = %caller.user_id, ended, "signed out of every device");
            } else {
                tracing::info!(
                    "logout of every device from a session that had ended: nothing revoked"
                );
            }
        }
    }
    let [access, refresh] = cookies::cleared(&app.config.cookies);
    Ok(Reply::new(StatusCode::OK, json!({}), LOGGED_OUT)
        .with_cookie(access)
        .with_cookie(refresh))
}
