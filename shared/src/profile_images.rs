//! Replacing a user's avatar or cover image, so that concurrent replacements end with exactly
//! one image per slot at Cloudinary: the one the user points at (DESIGN.md sections 7 and 10).
//!
//! A replacement uploads first, outside any lock, then takes a short **lease** on the user,
//! reads the current image, points the user at the new one, releases the lease, and only then
//! destroys the old image. Because every replacement of a user runs its read-and-write under
//! the lease, each one's "old" image is exactly the previous winner's "new" one, so every image
//! but the last is destroyed by its successor. The lease is a document inserted by `_id`
//! (`image_leases/{user}`): the one write that is a compare-and-swap on FerretDB 1.x as on
//! MongoDB (FerretDB runs updates and findAndModify as a read followed by a separate write, so a
//! conditional update would let two replacements both win there). It is one lease per user,
//! not per slot, because FerretDB writes whole documents: an avatar and a cover written
//! concurrently could each put back the other's old value.
//!
//! A lease expires after [`LEASE_TTL`]. Its holder writes and releases only while more than
//! [`HOLDER_MARGIN`] is left; past that it leaves the lease alone. The write itself applies
//! only over the image read under the lease, so a write that stalls past the lease's end
//! cannot land on the image of the request that took over (it answers 503 and destroys its
//! upload instead). On FerretDB, whose findAndModify is a read and then a write, that narrows
//! the window without closing it. A crashed holder's lease is
//! taken over once it is [`TAKEOVER_GRACE`] past its expiry, by whoever wins the unique insert
//! of a takeover ticket named after that holder; only the winner deletes it. So a lease document
//! is only ever deleted by one party, which keeps FerretDB's read-then-delete exact. Waiters
//! retry with jittered backoff for at most [`LEASE_WAIT`], then answer 503 and destroy their
//! upload.
//!
//! A failed write destroys the new image (a write that failed and could not even be read back
//! may have landed: both images are recorded instead, see below, and the check destroys the one
//! the user does not point at). A failed destroy of the old one never fails the request: it is
//! retried inline with backoff, then recorded in `image_destroys` (by public id), whose due
//! entries every later avatar, cover or register request retries alongside its own upload,
//! after checking that no user points at them. A failed request's upload lands there too:
//! one of unknown outcome (a timeout: its destroy may overtake it) due once Cloudinary must
//! have finished it, one whose destroy failed due at once. Node-era users have no stored
//! public id: it is derived from the URL, and only for URLs of our own cloud; anything else is
//! left in place.
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use lambda_http::Request;
use mongodb::{
    Collection,
    bson::{DateTime, doc, oid::ObjectId},
};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{ImageRef, UserId},
    error::{ApiError, FieldError, chain},
    media::{
        Media, MediaError, StagedImage,
        cloudinary::Leftover,
        form::{self, FieldSpec, FormSpec},
        public_id::public_id_from_url,
    },
    store::{self, Store, StoreError},
    timing,
    users::{self, UserDoc},
};

pub const LEASES: &str = "image_leases";
pub const PENDING_DESTROYS: &str = "image_destroys";

/// How long a lease lasts. The work under it is two reads and a write by `_id`.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// A holder writes, and releases, only while more than this is left of its lease.
pub const HOLDER_MARGIN: Duration = Duration::from_secs(5);
/// How long past its expiry a lease must be before another request takes it over (clock skew).
pub const TAKEOVER_GRACE: Duration = Duration::from_secs(2);
/// How long a request waits for a lease before answering 503.
pub const LEASE_WAIT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(200);
/// How long a takeover ticket is kept (TTL index where the server supports it).
const TICKET_TTL: Duration = Duration::from_secs(24 * 3600);
/// Takeovers of one dead holder's lease that may be begun and abandoned (see [`take_over`]).
const TICKET_GENERATIONS: u32 = 8;

/// Inline attempts at destroying a replaced image before it is recorded for later.
const INLINE_DESTROYS: u32 = 3;
const FIRST_DESTROY_BACKOFF: Duration = Duration::from_millis(100);
/// Due entries of `image_destroys` one request retries.
const RETRY_BATCH: i64 = 3;
const MAX_RETRY_DELAY: Duration = Duration::from_secs(6 * 3600);
/// When a write's or an upload's outcome is unknown, how long before its images are checked
/// and destroyed: longer than any write of it could still be in flight, and than Cloudinary
/// takes to finish an upload whose client stopped waiting.
const UNKNOWN_OUTCOME_DELAY: Duration = Duration::from_secs(60);

/// The answer when the user no longer exists (as [`crate::auth`] answers it).
const INVALID_TOKEN: &str = "Invalid access token";

/// Which image of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Avatar,
    CoverImage,
}

const AVATAR_FORM: FormSpec = FormSpec {
    fields: &[FieldSpec::file("avatar", "Avatar")],
};
const COVER_IMAGE_FORM: FormSpec = FormSpec {
    fields: &[FieldSpec::file("coverImage", "Cover image")],
};

impl Slot {
    /// The form field and the user document's URL field (the Node names).
    pub fn field(self) -> &'static str {
        match self {
            Self::Avatar => "avatar",
            Self::CoverImage => "coverImage",
        }
    }

    /// The user document's field for the public id, beside the URL.
    pub fn public_id_field(self) -> &'static str {
        match self {
            Self::Avatar => "avatarPublicId",
            Self::CoverImage => "coverImagePublicId",
        }
    }

    /// The Node version's 400 when the file is not there.
    pub fn missing_message(self) -> &'static str {
        match self {
            Self::Avatar => "Avatar file is missing",
            Self::CoverImage => "Cover image file is missing",
        }
    }

    /// The Node version's success message.
    pub fn updated_message(self) -> &'static str {
        match self {
            Self::Avatar => "Avatar image updated successfully",
            Self::CoverImage => "Cover image updated successfully",
        }
    }

    /// The form of this slot's route: one file, this field, nothing else.
    pub fn form(self) -> FormSpec {
        match self {
            Self::Avatar => AVATAR_FORM,
            Self::CoverImage => COVER_IMAGE_FORM,
        }
    }

    /// The stored URL and public id.
    fn current(self, user: &UserDoc) -> (&str, Option<&str>) {
        match self {
            Self::Avatar => (&user.avatar, user.avatar_public_id.as_deref()),
            Self::CoverImage => (&user.cover_image, user.cover_image_public_id.as_deref()),
        }
    }
}

/// Reads the route's form and returns its one image: 400 naming the field when it is missing
/// or when any part is wrong, 415 when it is not an accepted image (see [`form::read`] for
/// 413 and 415 on the body).
pub async fn read_image(req: Request, media: &Media, slot: Slot) -> Result<StagedImage, ApiError> {
    let spec = slot.form();
    let mut raw = form::read(req, media, spec).await?;
    let mut problems = std::mem::take(&mut raw.problems);
    let file = raw.take_file(slot.field());
    if file.is_none() && !problems.iter().any(|p| p.field == slot.field()) {
        problems.push(FieldError::new(slot.field(), slot.missing_message()));
    }
    match file {
        Some(file) if problems.is_empty() => {
            form::image(spec, slot.field(), file).map_err(|problem| form::not_images(&[problem]))
        }
        _ => Err(ApiError::Validation(problems)),
    }
}

/// Uploads `image` and makes it the user's image of `slot`; returns the user as stored. See
/// the module doc for the protocol. The staged file is deleted once it is uploaded.
#[tracing::instrument(name = "replace_image", skip_all, fields(user_id = %user.id, slot = slot.field()))]
pub async fn replace(
    store: &Store,
    media: &Media,
    user: &UserDoc,
    slot: Slot,
    image: StagedImage,
) -> Result<UserDoc, ApiError> {
    let (uploaded, ()) = tokio::join!(media.upload(&image), retry_pending(store, media));
    drop(image);
    let new = match uploaded {
        Ok(new) => new,
        Err(failed) => {
            if let Some(leftover) = &failed.leftover {
                record_leftovers(store, UserId(user.id), &[(slot, leftover)]).await;
            }
            return Err(failed.into());
        }
    };
    match swap(store, media, user.id, slot, &new).await {
        Ok((updated, old)) => {
            if let Some(old) = old {
                destroy_replaced(store, media, user.id, slot, &old).await;
            }
            Ok(updated)
        }
        Err(SwapFailed {
            error,
            unknown: None,
        }) => {
            discard(store, media, UserId(user.id), &[(slot, &new.public_id)]).await;
            Err(error)
        }
        // The write may have landed, and the database could not say: both images are recorded,
        // and later the one the user does not point at is destroyed (see `retry_one`).
        Err(SwapFailed {
            error,
            unknown: Some(old),
        }) => {
            // Neither is destroyed when it cannot be recorded: the user may point at either,
            // and a broken image is worse than an orphan.
            let mut images = vec![(slot, new.public_id.as_str())];
            images.extend(old.as_deref().map(|old| (slot, old)));
            recheck_later(store, UserId(user.id), &images).await;
            Err(error)
        }
    }
}

/// Why a swap failed. `unknown` is set, with the image the write would have replaced, when the
/// user may point at the new image anyway (the write failed and reading it back failed too).
struct SwapFailed {
    error: ApiError,
    unknown: Option<Option<String>>,
}

impl From<ApiError> for SwapFailed {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            unknown: None,
        }
    }
}

/// Under the lease: reads the current image, points the user at `new`. Returns the user as
/// stored and the public id of the image it replaced, when that one is ours to destroy.
async fn swap(
    store: &Store,
    media: &Media,
    user: ObjectId,
    slot: Slot,
    new: &ImageRef,
) -> Result<(UserDoc, Option<String>), SwapFailed> {
    let lease = acquire(store, user).await?;
    let outcome = timing::step(
        timing::Kind::Database,
        "users.set_image",
        write_under(store, media, &lease, user, slot, new),
    )
    .await;
    release(store, &lease).await;
    outcome
}

async fn write_under(
    store: &Store,
    media: &Media,
    lease: &Lease,
    user: ObjectId,
    slot: Slot,
    new: &ImageRef,
) -> Result<(UserDoc, Option<String>), SwapFailed> {
    let current = users::find_by_id(store, UserId(user))
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
    let old = ours_to_destroy(slot, &current, &media.cloudinary.cloud_name);
    if !lease.usable() {
        return Err(
            ApiError::Unavailable("the image lease ran out before the write".into()).into(),
        );
    }
    let set = doc! {
        slot.field(): &new.url,
        slot.public_id_field(): &new.public_id,
        "updatedAt": DateTime::now(),
    };
    // Only over the image just read: a write that stalled past the lease must not land on an
    // image another request has put there since (it would be orphaned).
    let (current_url, _) = slot.current(&current);
    let unchanged = if current_url.is_empty() {
        doc! {"_id": user, slot.field(): {"$in": ["", null]}}
    } else {
        doc! {"_id": user, slot.field(): current_url}
    };
    let written = users::collection(store)
        .find_one_and_update(unchanged, doc! {"$set": set})
        .return_document(mongodb::options::ReturnDocument::After)
        .await;
    match written {
        Ok(Some(updated)) => Ok((updated, old)),
        Ok(None) => match users::find_by_id(store, UserId(user)).await {
            Ok(None) => Err(ApiError::Unauthorized(INVALID_TOKEN).into()),
            Ok(Some(_)) => {
                tracing::warn!(
                    "the image changed between its read and the write under the lease; the write was not applied"
                );
                Err(
                    ApiError::Unavailable("the image changed while it was being replaced".into())
                        .into(),
                )
            }
            Err(e) => Err(ApiError::from(e).into()),
        },
        // The write may have been applied before the error: ask, still under the lease.
        Err(e) => {
            let error = ApiError::from(StoreError::from(e));
            match users::find_by_id(store, UserId(user)).await {
                Ok(Some(u)) if slot.current(&u).1 == Some(new.public_id.as_str()) => Ok((u, old)),
                Ok(_) => Err(error.into()),
                Err(_) => Err(SwapFailed {
                    error,
                    unknown: Some(old),
                }),
            }
        }
    }
}

/// The public id of the user's current image of `slot`, if it is ours to destroy: the stored
/// one, or for a Node-era user one derived from a URL of our own cloud.
fn ours_to_destroy(slot: Slot, user: &UserDoc, cloud: &str) -> Option<String> {
    let (url, stored) = slot.current(user);
    if let Some(id) = stored.filter(|id| !id.is_empty()) {
        return Some(id.to_owned());
    }
    if url.is_empty() {
        return None;
    }
    let derived = public_id_from_url(url).filter(|_| cloud_in_url(url).as_deref() == Some(cloud));
    if derived.is_none() {
        tracing::info!(
            slot = slot.field(),
            "the replaced image is not one of ours (or its id cannot be derived); left in place"
        );
    }
    derived
}

/// The cloud name of a delivery URL (`.../<cloud>/image/upload/...`).
fn cloud_in_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let segments: Vec<&str> = parsed.path_segments()?.collect();
    let i = segments.windows(2).position(|w| w == ["image", "upload"])?;
    i.checked_sub(1)
        .and_then(|c| segments.get(c))
        .filter(|c| !c.is_empty())
        .map(|c| (*c).to_owned())
}

fn after(t: DateTime, d: Duration) -> DateTime {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(t.timestamp_millis().saturating_add(ms))
}

/// `d` scaled by a random factor in [0.5, 1.5).
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>())
}

// ---- The lease ----------------------------------------------------------------------------

/// A lease or a takeover ticket, in `image_leases`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseDoc {
    #[serde(rename = "_id")]
    pub id: String,
    /// Random per acquisition: who may release it.
    pub holder: String,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    #[serde(rename = "expiresAt")]
    pub expires_at: DateTime,
}

pub fn leases(store: &Store) -> Collection<LeaseDoc> {
    store.collection(LEASES)
}

/// The `_id` of a user's image lease.
pub fn lease_id(user: ObjectId) -> String {
    format!("images/{}", user.to_hex())
}

struct Lease {
    id: String,
    holder: String,
    expires_at: DateTime,
}

impl Lease {
    /// Whether the holder may still act on it (see [`HOLDER_MARGIN`]).
    fn usable(&self) -> bool {
        after(DateTime::now(), HOLDER_MARGIN) < self.expires_at
    }
}

#[derive(Debug, thiserror::Error)]
#[error("another image update of this user held the lease for {0:?}")]
struct Busy(Duration);

async fn acquire(store: &Store, user: ObjectId) -> Result<Lease, ApiError> {
    timing::step(timing::Kind::Database, "image_leases.acquire", async {
        let leases = leases(store);
        let id = lease_id(user);
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let doc = LeaseDoc {
                id: id.clone(),
                holder: hex::encode(rand::random::<[u8; 16]>()),
                user_id: user,
                expires_at: after(DateTime::now(), LEASE_TTL),
            };
            match leases.insert_one(&doc).await.map_err(StoreError::from) {
                Ok(_) => {
                    return Ok(Lease {
                        id,
                        holder: doc.holder,
                        expires_at: doc.expires_at,
                    });
                }
                Err(StoreError::Duplicate(_)) => {}
                Err(e) => return Err(ApiError::from(e)),
            }
            let current = leases
                .find_one(doc! {"_id": &id})
                .await
                .map_err(StoreError::from)?;
            match current {
                // Released in between: try again at once.
                None => {}
                Some(held) if after(held.expires_at, TAKEOVER_GRACE) < DateTime::now() => {
                    take_over(&leases, &held).await?;
                }
                Some(_) => {
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            if started.elapsed() >= LEASE_WAIT {
                return Err(ApiError::Unavailable(Box::new(Busy(started.elapsed()))));
            }
        }
    })
    .await
}

/// Removes a lease whose holder is gone, if this request wins the ticket for it.
///
/// A ticket's taker deletes the lease right after winning it. A ticket older than a lease's
/// whole lifetime was won by a request that died before its delete; without more, every later
/// request would lose that ticket and wait for a lease nobody removes (FerretDB has no TTL to
/// end it). So the next ticket of the same dead holder is tried: one winner again, and never
/// more than [`TICKET_GENERATIONS`] of them.
async fn take_over(leases: &Collection<LeaseDoc>, held: &LeaseDoc) -> Result<(), StoreError> {
    for generation in 0..TICKET_GENERATIONS {
        let id = match generation {
            0 => format!("{}/takeover/{}", held.id, held.holder),
            n => format!("{}/takeover/{}/{n}", held.id, held.holder),
        };
        let ticket = LeaseDoc {
            id: id.clone(),
            holder: hex::encode(rand::random::<[u8; 16]>()),
            user_id: held.user_id,
            expires_at: after(DateTime::now(), TICKET_TTL),
        };
        match leases.insert_one(&ticket).await.map_err(StoreError::from) {
            Ok(_) => {
                tracing::warn!(
                    user_id = %held.user_id,
                    generation,
                    "took over an image lease whose holder did not release it"
                );
                leases
                    .delete_one(doc! {"_id": &held.id, "holder": &held.holder})
                    .await?;
                return Ok(());
            }
            Err(StoreError::Duplicate(_)) => {
                // Won more than a lease's lifetime ago: its expiry is that much less than a
                // ticket won now would have.
                let won = leases.find_one(doc! {"_id": &id}).await?;
                let abandoned_if_before = after(DateTime::now(), TICKET_TTL - LEASE_TTL);
                let abandoned = won.is_some_and(|t| t.expires_at < abandoned_if_before);
                // Another request is taking it over now.
                if !abandoned {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Deletes the lease while its holder may; a lease past that is left for a takeover.
async fn release(store: &Store, lease: &Lease) {
    if !lease.usable() {
        tracing::warn!("an image lease ran too close to its expiry; left for a takeover");
        return;
    }
    let deleted = timing::step(
        timing::Kind::Database,
        "image_leases.release",
        leases(store)
            .delete_one(doc! {"_id": &lease.id, "holder": &lease.holder})
            .into_future(),
    )
    .await;
    if let Err(e) = deleted {
        tracing::warn!(error = %chain(&e), "could not release an image lease; it will expire");
    }
}

// ---- Destroying replaced images ------------------------------------------------------------

/// A replaced image whose destroy failed, to be retried by a later request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingDestroy {
    #[serde(rename = "_id")]
    pub public_id: String,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    pub slot: String,
    pub attempts: i64,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime,
    #[serde(rename = "nextAttemptAt")]
    pub next_attempt_at: DateTime,
}

pub fn pending_destroys(store: &Store) -> Collection<PendingDestroy> {
    store.collection(PENDING_DESTROYS)
}

/// The indexes of `image_leases` (expiry, to tidy up tickets) and `image_destroys` (due time).
pub async fn ensure_indexes(store: &Store) -> Result<(), StoreError> {
    store::ensure_index(&pending_destroys(store), "nextAttemptAt").await?;
    store::ensure_expiry(&leases(store)).await?;
    Ok(())
}

/// Destroys the image a replacement made obsolete: inline with backoff, then durably.
async fn destroy_replaced(
    store: &Store,
    media: &Media,
    user: ObjectId,
    slot: Slot,
    public_id: &str,
) {
    let mut backoff = FIRST_DESTROY_BACKOFF;
    for attempt in 1..=INLINE_DESTROYS {
        match media.destroy(public_id).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(public_id, attempt, error = %chain(&e), "destroying a replaced image failed");
                // A timeout already cost the whole Cloudinary timeout: leave it for later.
                if attempt == INLINE_DESTROYS || matches!(e, MediaError::Timeout { .. }) {
                    break;
                }
                tokio::time::sleep(jitter(backoff)).await;
                backoff *= 4;
            }
        }
    }
    let now = DateTime::now();
    record_logged(
        store,
        user,
        slot,
        public_id,
        INLINE_DESTROYS,
        now,
        "a replaced image",
    )
    .await;
}

/// Destroys images a failed request of `user` uploaded, which nobody points at. One whose
/// destroy fails is recorded in `image_destroys`, due now, so that the next request that
/// retries due entries destroys it (Cloudinary failing for one call seldom fails for the
/// next); only when that write fails too is it logged as orphaned.
pub async fn discard(store: &Store, media: &Media, user: UserId, images: &[(Slot, &str)]) {
    futures::future::join_all(images.iter().map(|&(slot, public_id)| async move {
        if let Err(e) = media.destroy(public_id).await {
            tracing::warn!(public_id, error = %chain(&e), "could not delete the upload of a failed request");
            let now = DateTime::now();
            record_logged(store, user.0, slot, public_id, 1, now, FAILED_REQUESTS_UPLOAD).await;
        }
    }))
    .await;
}

/// For images that may exist at Cloudinary without `user` pointing at them, or with it
/// pointing at them, and nobody can tell now: an upload of unknown outcome (its destroy may
/// have overtaken it), or register's insert when neither the insert nor a read-back could say.
/// Each is recorded for a check in [`UNKNOWN_OUTCOME_DELAY`], which destroys it unless the user
/// then points at it. An image that cannot be recorded either is logged by public id, as
/// possibly orphaned.
pub async fn recheck_later(store: &Store, user: UserId, images: &[(Slot, &str)]) {
    let later = after(DateTime::now(), UNKNOWN_OUTCOME_DELAY);
    for (slot, public_id) in images {
        record_logged(store, user.0, *slot, public_id, 0, later, UNKNOWN_OUTCOME).await;
    }
}

/// Records what failed uploads of `user` may have left at Cloudinary: an upload in doubt for
/// a check in [`UNKNOWN_OUTCOME_DELAY`] (as [`recheck_later`]), one whose destroy failed for a
/// retry by the next request. An image that cannot be recorded is logged as orphaned.
pub async fn record_leftovers(store: &Store, user: UserId, leftovers: &[(Slot, &Leftover)]) {
    for (slot, leftover) in leftovers {
        let (attempts, due, what) = if leftover.in_doubt {
            let later = after(DateTime::now(), UNKNOWN_OUTCOME_DELAY);
            (0, later, UNKNOWN_OUTCOME)
        } else {
            (1, DateTime::now(), FAILED_REQUESTS_UPLOAD)
        };
        let public_id = leftover.public_id.as_str();
        record_logged(store, user.0, *slot, public_id, attempts, due, what).await;
    }
}

/// What [`record_logged`] says an image is.
const UNKNOWN_OUTCOME: &str = "an image of unknown outcome";
const FAILED_REQUESTS_UPLOAD: &str = "the upload of a failed request";

/// Records `public_id` in `image_destroys`, due at `due` (already recorded counts as done),
/// and logs it as `what`; one that cannot be recorded is logged as possibly orphaned at
/// Cloudinary, by public id (the only place left that names it).
async fn record_logged(
    store: &Store,
    user: ObjectId,
    slot: Slot,
    public_id: &str,
    attempts: u32,
    due: DateTime,
    what: &str,
) {
    let entry = PendingDestroy {
        public_id: public_id.to_owned(),
        user_id: user,
        slot: slot.field().to_owned(),
        attempts: i64::from(attempts),
        created_at: DateTime::now(),
        next_attempt_at: due,
    };
    let recorded = timing::step(
        timing::Kind::Database,
        "image_destroys.insert",
        pending_destroys(store).insert_one(&entry).into_future(),
    )
    .await
    .map_err(StoreError::from);
    match recorded {
        Ok(_) | Err(StoreError::Duplicate(_)) => {
            tracing::warn!(public_id, "{what} is recorded for a later destroy");
        }
        Err(e) => tracing::error!(
            public_id,
            error = %chain(&e),
            "{what} could not be recorded; if nothing points at it, it is orphaned at Cloudinary"
        ),
    }
}

/// Retries up to [`RETRY_BATCH`] due entries of `image_destroys`. Never fails: what does not
/// work now is tried again later.
pub async fn retry_pending(store: &Store, media: &Media) {
    let due = timing::step(timing::Kind::Database, "image_destroys.due", async {
        pending_destroys(store)
            .find(doc! {"nextAttemptAt": {"$lte": DateTime::now()}})
            .limit(RETRY_BATCH)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await;
    let due = match due {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %chain(&e), "could not read the images waiting to be destroyed");
            return;
        }
    };
    futures::future::join_all(due.iter().map(|entry| retry_one(store, media, entry))).await;
}

async fn retry_one(store: &Store, media: &Media, entry: &PendingDestroy) {
    let pending = pending_destroys(store);
    let id = entry.public_id.as_str();
    // Never destroy what a user points at (a write from elsewhere may have put it back).
    let in_use = match users::find_by_id(store, UserId(entry.user_id)).await {
        Ok(user) => user.is_some_and(|u| points_at(&u, id, &media.cloudinary.cloud_name)),
        Err(e) => {
            tracing::warn!(error = %chain(&e), "could not check a recorded image; retrying later");
            return;
        }
    };
    let outcome = if in_use {
        tracing::warn!(
            public_id = id,
            "a recorded image is in use again; not destroyed"
        );
        Ok(())
    } else {
        media.destroy(id).await
    };
    let written = match outcome {
        Ok(()) => {
            if !in_use {
                tracing::info!(public_id = id, "a recorded image was destroyed");
            }
            pending.delete_one(doc! {"_id": id}).await.map(|_| ())
        }
        Err(e) => {
            let attempts = entry.attempts.saturating_add(1);
            tracing::warn!(public_id = id, attempts, error = %chain(&e), "destroying a recorded image failed again");
            let delay = Duration::from_secs(30)
                .saturating_mul(1 << attempts.clamp(0, 20))
                .min(MAX_RETRY_DELAY);
            pending
                .update_one(
                    doc! {"_id": id},
                    doc! {"$set": {"attempts": attempts, "nextAttemptAt": after(DateTime::now(), delay)}},
                )
                .await
                .map(|_| ())
        }
    };
    if let Err(e) = written {
        tracing::warn!(public_id = id, error = %chain(&e), "could not update a recorded image");
    }
}

/// Whether either of the user's images is `public_id`.
fn points_at(user: &UserDoc, public_id: &str, cloud: &str) -> bool {
    [Slot::Avatar, Slot::CoverImage].into_iter().any(|slot| {
        let (url, stored) = slot.current(user);
        stored == Some(public_id)
            || (!url.is_empty()
                && public_id_from_url(url).as_deref() == Some(public_id)
                && cloud_in_url(url).as_deref() == Some(cloud))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_of_a_delivery_url_is_the_segment_before_image_upload() {
        let cases = [
            (
                "http://res.cloudinary.com/demo/image/upload/v1/abc.png",
                Some("demo"),
            ),
            (
                "http://127.0.0.1:9100/base/cloudx/image/upload/v3/videotube/x.png",
                Some("cloudx"),
            ),
            ("https://res.cloudinary.com/image/upload/v1/abc.png", None),
            ("https://example.com/demo/video/upload/v1/a.mp4", None),
            ("not a url", None),
        ];
        for (url, cloud) in cases {
            assert_eq!(cloud_in_url(url).as_deref(), cloud, "{url}");
        }
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half_times() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d < Duration::from_millis(150));
        }
    }

    #[test]
    fn a_lease_is_usable_only_while_more_than_the_margin_is_left() {
        let lease = |left: Duration| Lease {
            id: String::new(),
            holder: String::new(),
            expires_at: after(DateTime::now(), left),
        };
        assert!(lease(LEASE_TTL).usable());
        assert!(!lease(HOLDER_MARGIN - Duration::from_millis(100)).usable());
    }
}
