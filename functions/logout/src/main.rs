//! Lambda entry point for `POST /api/v1/users/logout`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::ACCOUNT, logout::handle).await
}
