//! Lambda entry point for `POST /api/v1/users/change-password`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::CHANGE_PASSWORD, change_password::handle).await
}
