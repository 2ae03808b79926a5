//! Lambda entry point for `GET /api/v1/users/current-user`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::ACCOUNT, current_user::handle).await
}
