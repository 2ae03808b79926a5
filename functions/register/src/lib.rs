//! `POST /api/v1/users/register`: creates an account from a multipart form with an avatar.
//!
//! The pipeline (DESIGN.md section 7): read and stage the form ([`form`]), validate every field
//! at once, answer 409 early when the username or email is taken, upload the images while the
//! password hashes, insert the user (the unique indexes decide races), read it back, answer 201.
//! Every failure after an upload destroys what was uploaded, unless the user may exist (an
//! insert of unknown outcome: the images are then checked again later), and the staged files
//! are deleted on every path because the form owns them. An upload of unknown outcome (one we
//! stopped waiting for) is destroyed and also checked again later, under the user id chosen
//! before the uploads, since Cloudinary may store it after that destroy.
pub mod form;

use lambda_http::{Body, Request, Response, http::StatusCode};
use shared::{
    ApiError, App, FieldError,
    domain::{Email, ImageRef, UserId, Username},
    error::chain,
    http::{self, Reply},
    media::cloudinary::Leftover,
    password,
    profile_images::{self, Slot},
    store::{Store, StoreError},
    users::{self, NewUser, PublicUser},
};

use crate::form::Registration;

pub const ROUTE: &str = "POST /api/v1/users/register";
pub const CONFLICT: &str = "User with email or username already exists";
pub const REGISTERED: &str = "User registered Successfully";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| register(app, req)).await
}

#[tracing::instrument(name = "register", skip_all)]
async fn register(app: &App, req: Request) -> Result<Reply, ApiError> {
    let registration = form::read(req, app.media()?).await?.validate()?;
    let store = app.store().await?;
    let fallback = app.config.node.email_fallback;
    let taken = users::taken(store, &registration.username, &registration.email, fallback).await?;
    if !taken.is_empty() {
        return Err(conflict(&taken));
    }
    // Chosen first: images whose upload has an unknown outcome are recorded under it.
    let id = UserId::generate();
    let (avatar, cover_image, password_hash) =
        upload_and_hash(app, store, id, &registration).await?;
    let Registration {
        full_name,
        email,
        username,
        ..
    } = registration;
    let new_user = NewUser {
        username: username.clone(),
        email: email.clone(),
        full_name,
        avatar: avatar.clone(),
        cover_image: cover_image.clone(),
        password_hash,
    };
    let ids: Vec<(Slot, &str)> = [
        Some((Slot::Avatar, avatar.public_id.as_str())),
        cover_image
            .as_ref()
            .map(|c| (Slot::CoverImage, c.public_id.as_str())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let discard = || async {
        if let Ok(media) = app.media() {
            profile_images::discard(store, media, id, &ids).await;
        }
    };
    match users::insert(store, id, new_user).await {
        Ok(()) => {}
        // A concurrent registration won the unique index: nothing was written.
        Err(StoreError::Duplicate(_)) => {
            discard().await;
            tracing::info!("lost a registration race on a unique index");
            return Err(conflict(
                &taken_after_race(store, &username, &email, fallback).await,
            ));
        }
        // The insert may have been applied before the error (a connection lost after it was
        // sent): the id is ours, so ask before destroying images the user may point at.
        Err(e) => match users::find_by_id(store, id).await {
            Ok(Some(_)) => {
                tracing::warn!(error = %chain(&e), "the insert reported an error but was applied");
            }
            Ok(None) => {
                discard().await;
                return Err(e.into());
            }
            Err(_) => {
                profile_images::recheck_later(store, id, &ids).await;
                return Err(e.into());
            }
        },
    }
    // The user exists from here on and owns the images; a failed read is answered as such.
    let user = users::find_by_id(store, id).await?.ok_or_else(|| {
        ApiError::internal(std::io::Error::other(
            "the inserted user could not be read back",
        ))
    })?;
    Ok(Reply::new(
        StatusCode::CREATED,
        PublicUser::from(&user),
        REGISTERED,
    ))
}

/// Uploads the avatar and the cover concurrently with hashing the password. All three run to
/// completion (no early cancel that could leave an upload's outcome unknown); when any fails,
/// the uploads that succeeded are destroyed, and what is left (an upload of unknown outcome,
/// or one whose destroy failed) is recorded under the user's chosen `id` for a later check
/// (no user with that id will point at it).
async fn upload_and_hash(
    app: &App,
    store: &Store,
    id: UserId,
    r: &Registration,
) -> Result<(ImageRef, Option<ImageRef>, String), ApiError> {
    let media = app.media()?;
    let cover = async {
        match &r.cover_image {
            Some(image) => media.upload(image).await.map(Some),
            None => Ok(None),
        }
    };
    // Due destroys of earlier requests (this route's own uploads of unknown outcome among
    // them) are retried alongside, as the avatar and cover routes do.
    let (avatar, cover, hash, ()) = tokio::join!(
        media.upload(&r.avatar),
        cover,
        password::hash(&r.password),
        profile_images::retry_pending(store, media),
    );
    match (avatar, cover, hash) {
        (Ok(avatar), Ok(cover), Ok(hash)) => Ok((avatar, cover, hash)),
        (avatar, cover, hash) => {
            let uploaded: Vec<(Slot, &str)> = [
                (Slot::Avatar, avatar.as_ref().ok()),
                (
                    Slot::CoverImage,
                    cover.as_ref().ok().and_then(Option::as_ref),
                ),
            ]
            .into_iter()
            .filter_map(|(slot, image)| Some((slot, image?.public_id.as_str())))
            .collect();
            let leftovers: Vec<(Slot, &Leftover)> = [
                (Slot::Avatar, avatar.as_ref().err()),
                (Slot::CoverImage, cover.as_ref().err()),
            ]
            .into_iter()
            .filter_map(|(slot, failed)| Some((slot, failed?.leftover.as_ref()?)))
            .collect();
            tokio::join!(
                profile_images::discard(store, media, id, &uploaded),
                profile_images::record_leftovers(store, id, &leftovers),
            );
            match (avatar, cover, hash) {
                (Err(e), _, _) | (_, Err(e), _) => Err(e.into()),
                (_, _, Err(e)) => Err(ApiError::internal(e)),
                (Ok(_), Ok(_), Ok(_)) => Err(ApiError::internal(std::io::Error::other(
                    "unreachable: all succeeded",
                ))),
            }
        }
    }
}

fn conflict(fields: &[&str]) -> ApiError {
    ApiError::Conflict(
        fields
            .iter()
            .map(|f| FieldError::new(*f, CONFLICT))
            .collect(),
    )
}

/// Which field the winner of a race took. The duplicate-key error names an index, but its text
/// differs between servers; asking again is exact. Both fields if even that fails.
async fn taken_after_race(
    store: &Store,
    username: &Username,
    email: &Email,
    email_fallback: bool,
) -> Vec<&'static str> {
    match users::taken(store, username, email, email_fallback).await {
        Ok(fields) if !fields.is_empty() => fields,
        Ok(_) => vec![form::USERNAME, form::EMAIL],
        Err(e) => {
            tracing::warn!(error = %chain(&e), "could not tell which field a concurrent registration took");
            vec![form::USERNAME, form::EMAIL]
        }
    }
}
