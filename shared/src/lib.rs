//! The library every videotube user-auth function is built on.
//!
//! One concept per module: configuration, the HTTP edge (envelope, cookies, request parsing),
//! domain types, passwords, tokens, sessions, users, media (staging and Cloudinary) and the
//! database. Functions stay thin: their `main` is [`app::run`], and their handler composes these
//! modules with the [`App`] built once per cold start.
pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod cookies;
pub mod domain;
pub mod duration;
pub mod error;
pub mod http;
pub mod media;
pub mod password;
pub mod profile_images;
pub mod schema;
pub mod sessions;
pub mod store;
pub mod timing;
pub mod tokens;
pub mod users;

pub use app::{App, run};
pub use config::Needs;
pub use error::{ApiError, FieldError};
