//! Whether a session still works, asked of the routes themselves: for the tests of routes that
//! end sessions (logout, change-password). Included with `#[path]` by their test crates, which
//! have current-user and refresh as dev-dependencies.
use testkit::{SignedIn, TestApp, request};

/// Whether current-user still accepts this session's access token.
pub async fn access_works(t: &TestApp, s: &SignedIn) -> bool {
    let req = s.cookie(request("GET", "/api/v1/users/current-user", None, ""));
    t.call(current_user::handle, req).await.0 == 200
}

/// Whether the refresh function still rotates this session's refresh token.
pub async fn refresh_works(t: &TestApp, s: &SignedIn) -> bool {
    t.refresh(refresh::handle, &s.refresh_token).await.0 == 200
}
