//! One request builder and one caller per endpoint, so a test reads as the client's story:
//! `t.login(handle, json!({...}))`, `t.refresh(handle, &token)`, `t.log_in(login::handle, "ada")`.
//!
//! Every function's tests depend on this crate, so it cannot depend on the functions: the test
//! hands in the handler it calls. Each caller returns an [`Answer`].
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::App;

use crate::{PASSWORD, TestApp, envelope, post, post_json, set_cookies, with_cookie};

/// The login route, as API Gateway routes it.
pub const LOGIN: &str = "/api/v1/users/login";
/// The refresh route, as API Gateway routes it.
pub const REFRESH: &str = "/api/v1/users/refresh-token";

/// What a handler answered: (status, envelope, cookies set, the response itself). The envelope
/// is already checked against the invariants every response keeps, at whatever status it has:
/// tests assert the status themselves. A tuple, so a test names only what it asserts about:
/// `let (status, v, ..) = t.login(handle, body).await;`.
pub type Answer = (u16, Value, Vec<cookie::Cookie<'static>>, Response<Body>);

/// A login with this JSON body.
pub fn login_request(body: &Value) -> Request {
    post_json(LOGIN, body)
}

/// A refresh presenting `token` in the `refreshToken` cookie, as a browser does.
pub fn refresh_request(token: &str) -> Request {
    with_cookie(post(REFRESH, None, ""), "refreshToken", token)
}

impl TestApp {
    /// Hands `req` to `handler` (a function's `handle`) and reads its answer.
    pub async fn call<F>(
        &self,
        handler: impl FnOnce(&'static App, Request) -> F,
        req: Request,
    ) -> Answer
    where
        F: Future<Output = Response<Body>>,
    {
        let response = handler(self.app, req).await;
        let status = response.status().as_u16();
        let body = envelope(&response, status);
        (status, body, set_cookies(&response), response)
    }

    /// A login with this JSON body, through `login` (the login function's `handle`).
    pub async fn login<F>(
        &self,
        login: impl FnOnce(&'static App, Request) -> F,
        body: Value,
    ) -> Answer
    where
        F: Future<Output = Response<Body>>,
    {
        self.call(login, login_request(&body)).await
    }

    /// A refresh presenting `token` in the cookie, through `refresh` (the refresh function's
    /// `handle`).
    pub async fn refresh<F>(
        &self,
        refresh: impl FnOnce(&'static App, Request) -> F,
        token: &str,
    ) -> Answer
    where
        F: Future<Output = Response<Body>>,
    {
        self.call(refresh, refresh_request(token)).await
    }

    /// Logs `username` in with [`PASSWORD`] through `login`, which must answer 200, and returns
    /// the (access, refresh) tokens it answered, as the client holding them would.
    pub async fn log_in<F>(
        &self,
        login: impl FnOnce(&'static App, Request) -> F,
        username: &str,
    ) -> (String, String)
    where
        F: Future<Output = Response<Body>>,
    {
        let body = json!({"username": username, "password": PASSWORD});
        let resp = login(self.app, login_request(&body)).await;
        let v = envelope(&resp, 200);
        let token = |k: &str| v["data"][k].as_str().expect("token").to_owned();
        (token("accessToken"), token("refreshToken"))
    }
}
