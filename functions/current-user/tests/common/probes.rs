//! Whether a session still works, asked of the routes themselves: for the tests of routes that
//! end sessions (logout, change-password). Included with `#[path]` by their test crates, which
//! have current-user and refresh as dev-dependencies.
use testkit::{SignedIn, TestApp, envelope, post, request};

/// Whether current-user still accepts this session's access token.
pub async fn access_works(t: &TestApp, s: &SignedIn) -> bool {
    let req = s.cookie(request("GET", "/api/v1/users/current-user", None, ""));
    let resp = current_user::handle(t.app, req).await;
    let status = resp.status().as_u16();
    envelope(&resp, status);
    status == 200
}

/// Whether the refresh function still rotates this session's refresh token.
pub async fn refresh_works(t: &TestApp, s: &SignedIn) -> bool {
    let req = testkit::with_cookie(
        post("/api/v1/users/refresh-token", None, ""),
        "refreshToken",
        &s.refresh_token,
    );
    let resp = refresh::handle(t.app, req).await;
    let status = resp.status().as_u16();
    envelope(&resp, status);
    status == 200
}
