//! Lambda entry point for `PATCH /api/v1/users/update-account`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::ACCOUNT, update_account::handle).await
}
