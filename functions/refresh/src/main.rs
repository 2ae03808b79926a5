//! Lambda entry point for `POST /api/v1/users/refresh-token`.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::run(shared::Needs::SESSIONS, refresh::handle).await
}
