//! Lambda entry point for `PATCH /api/v1/users/avatar`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::IMAGES, avatar::handle).await
}
