//! `PATCH /api/v1/users/cover-image`: replaces the signed-in user's cover image with the uploaded `coverImage` file
//! (the flow shared with the other image route: `shared::image_routes`).
use lambda_http::{Body, Request, Response};
use shared::{App, http, image_routes, profile_images::Slot};

pub const ROUTE: &str = "PATCH /api/v1/users/cover-image";
pub const SLOT: Slot = Slot::CoverImage;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| {
        image_routes::replace_image(app, req, SLOT)
    })
    .await
}
