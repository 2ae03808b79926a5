//! `PATCH /api/v1/users/avatar`: replaces the signed-in user's avatar with the uploaded `avatar` file.
//!
//! Authenticated first (nothing of the body is read for a refused caller), then the one-file
//! form is read and staged, and [`profile_images::replace`] uploads the image, points the user
//! at it under the user's image lease and destroys the one it replaced (see that module for the
//! protocol). Answers 200 with the user.
use lambda_http::{Body, Request, Response, http::StatusCode};
use shared::{
    ApiError, App, auth,
    http::{self, Reply},
    profile_images::{self, Slot},
    users::PublicUser,
};

pub const ROUTE: &str = "PATCH /api/v1/users/avatar";
pub const SLOT: Slot = Slot::Avatar;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| update_avatar(app, req)).await
}

#[tracing::instrument(name = "update_avatar", skip_all)]
async fn update_avatar(app: &App, req: Request) -> Result<Reply, ApiError> {
    let caller = auth::authenticate(app, &req).await?;
    let media = app.media()?;
    let image = profile_images::read_image(req, media, SLOT).await?;
    let store = app.store().await?;
    let user = profile_images::replace(store, media, &caller.user, SLOT, image).await?;
    Ok(Reply::new(
        StatusCode::OK,
        PublicUser::from(&user),
        SLOT.updated_message(),
    ))
}
