//! `GET /api/v1/users/current-user`: who is signed in.
//!
//! Authenticated (see `shared::auth`): a verified access token whose session is live. The user
//! is read in the same round trip as the session, so this is two concurrent reads by `_id`.
use lambda_http::{Body, Request, Response, http::StatusCode};
use shared::{
    ApiError, App, auth,
    http::{self, Reply},
    users::PublicUser,
};

pub const ROUTE: &str = "GET /api/v1/users/current-user";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| current_user(app, req)).await
}

#[tracing::instrument(name = "current_user", skip_all)]
async fn current_user(app: &App, req: Request) -> Result<Reply, ApiError> {
    let caller = auth::authenticate(app, &req).await?;
    Ok(Reply::new(
        StatusCode::OK,
        PublicUser::from(&caller.user),
        "User fetched successfully",
    ))
}
