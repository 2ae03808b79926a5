//! Lambda entry point for `PATCH /api/v1/users/cover-image`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::IMAGES, cover_image::handle).await
}
