//! The `accessToken` and `refreshToken` cookies, named as the Node API named them, and our
//! `loginDevice` cookie.
//!
//! All are HttpOnly and (by default) Secure, with a Max-Age equal to the token's lifetime. The
//! refresh cookie is SameSite=Strict and scoped to the users routes, so browsers send it only to
//! the refresh endpoint and its siblings; the access cookie is SameSite=Lax on `/`. The device
//! cookie (see `throttle`'s device cookies) has the refresh cookie's scope and SameSite: it is
//! read only by login and change-password.
use std::time::Duration;

use cookie::{Cookie, SameSite};

use crate::config::CookieConfig;

pub use crate::access::ACCESS_COOKIE;
pub const REFRESH_COOKIE: &str = "refreshToken";
pub const REFRESH_COOKIE_PATH: &str = "/api/v1/users";
/// Names the browser's device to the password throttles; not a credential.
pub const DEVICE_COOKIE: &str = "loginDevice";

pub fn access(cfg: &CookieConfig, token: String, lifetime: Duration) -> Cookie<'static> {
    build(
        ACCESS_COOKIE,
        token,
        "/",
        cfg.secure,
        cfg.access_same_site(),
        lifetime,
    )
}

pub fn refresh(cfg: &CookieConfig, token: String, lifetime: Duration) -> Cookie<'static> {
    build(
        REFRESH_COOKIE,
        token,
        REFRESH_COOKIE_PATH,
        cfg.secure,
        cfg.refresh_same_site(),
        lifetime,
    )
}

pub fn device(cfg: &CookieConfig, value: String, lifetime: Duration) -> Cookie<'static> {
    build(
        DEVICE_COOKIE,
        value,
        REFRESH_COOKIE_PATH,
        cfg.secure,
        cfg.refresh_same_site(),
        lifetime,
    )
}

/// Both cookies cleared, as logout answers: the same name, Path and attributes as when they
/// were set (or the browser keeps the old one), an empty value and Max-Age=0.
pub fn cleared(cfg: &CookieConfig) -> [Cookie<'static>; 2] {
    [
        access(cfg, String::new(), Duration::ZERO),
        refresh(cfg, String::new(), Duration::ZERO),
    ]
}

fn build(
    name: &'static str,
    value: String,
    path: &'static str,
    secure: bool,
    same_site: SameSite,
    lifetime: Duration,
) -> Cookie<'static> {
    let max_age =
        cookie::time::Duration::seconds(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    Cookie::build((name, value))
        .http_only(true)
        .secure(secure)
        .same_site(same_site)
        .path(path)
        .max_age(max_age)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cookies_carry_every_safety_attribute() {
        let cfg = CookieConfig {
            secure: true,
            same_site: None,
        };
        let a = access(&cfg, "a.b.c".into(), Duration::from_secs(900)).to_string();
        assert_eq!(
            a,
            "accessToken=a.b.c; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=900"
        );
        let r = refresh(&cfg, "d.e.f".into(), Duration::from_secs(864_000)).to_string();
        assert_eq!(
            r,
            "refreshToken=d.e.f; HttpOnly; SameSite=Strict; Secure; Path=/api/v1/users; Max-Age=864000"
        );
        let d = device(&cfg, "d1.x".into(), Duration::from_secs(2_592_000)).to_string();
        assert_eq!(
            d,
            "loginDevice=d1.x; HttpOnly; SameSite=Strict; Secure; Path=/api/v1/users; Max-Age=2592000"
        );
    }

    #[test]
    fn local_http_use_can_drop_secure_and_override_same_site() {
        let cfg = CookieConfig {
            secure: false,
            same_site: Some(SameSite::Lax),
        };
        let r = refresh(&cfg, "t".into(), Duration::from_secs(60)).to_string();
        assert!(!r.contains("Secure"));
        assert!(r.contains("SameSite=Lax"));
    }
}
