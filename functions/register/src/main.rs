//! Lambda entry point for `POST /api/v1/users/register`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::REGISTER, register::handle).await
}
