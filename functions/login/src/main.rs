//! Lambda entry point for `POST /api/v1/users/login`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::LOGIN, login::handle).await
}
