//! The one request flow of `PATCH /avatar` and `PATCH /cover-image`, which differ only in their
//! [`Slot`]: authenticated first (nothing of the body is read for a refused caller), then the
//! one-file form is read and staged, and [`profile_images::replace`] uploads the image, points the
//! user at it under the user's image lease and destroys the one it replaced (see that module for
//! the protocol). Answers 200 with the user.
use lambda_http::{Request, http::StatusCode};

use crate::{
    app::App,
    auth,
    error::ApiError,
    http::Reply,
    profile_images::{self, Slot},
    users::PublicUser,
};

#[tracing::instrument(name = "replace_image", skip_all, fields(slot = ?slot))]
pub async fn replace_image(app: &App, req: Request, slot: Slot) -> Result<Reply, ApiError> {
    let caller = auth::authenticate(app, &req).await?;
    let media = app.media()?;
    let image = profile_images::read_image(req, media, slot).await?;
    let store = app.store().await?;
    let user = profile_images::replace(store, media, &caller.user, slot, image).await?;
    Ok(Reply::new(
        StatusCode::OK,
        PublicUser::from(&user),
        slot.updated_message(),
    ))
}
