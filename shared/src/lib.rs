//! The library every videotube user-auth function is built on.
//!
//! One concept per module: configuration, the HTTP edge (envelope, cookies, request parsing),
//! domain types, passwords, tokens, sessions, users, media (staging and Cloudinary) and the
//! database. Functions stay thin: their `main` is [`app::run`], and their handler composes these
//! modules with the [`App`] built once per cold start.
//!
//! Without the default `service` feature only [`access`], [`duration`] and [`secret_ref`] are compiled: what the
//! stateless authorizer needs, and nothing it would not use.
pub mod access;
#[cfg(feature = "service")]
pub mod app;
#[cfg(feature = "service")]
pub mod auth;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod cookies;
#[cfg(feature = "service")]
pub mod domain;
pub mod duration;
#[cfg(feature = "service")]
pub mod error;
#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "service")]
pub mod image_routes;
#[cfg(feature = "service")]
pub mod media;
#[cfg(feature = "service")]
pub mod password;
#[cfg(feature = "service")]
pub mod profile_images;
#[cfg(feature = "service")]
pub mod schema;
pub mod secret_ref;
#[cfg(feature = "service")]
pub mod sessions;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod throttle;
#[cfg(feature = "service")]
pub mod timing;
#[cfg(feature = "service")]
pub mod tokens;
#[cfg(feature = "service")]
pub mod users;

#[cfg(feature = "service")]
pub use app::{App, run};
#[cfg(feature = "service")]
pub use config::Needs;
#[cfg(feature = "service")]
pub use error::{ApiError, FieldError};
