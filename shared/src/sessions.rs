//! Sessions (one per login, i.e. per device) and the refresh tokens issued in them.
//!
//! `sessions` holds who the session is for, its absolute end, its revocation and the SHA-256 of
//! its first refresh token's `jti` (never the token), so a login writes one document. Each token
//! issued by a rotation has a document in `refresh_tokens`, keyed by the SHA-256 of its `jti`,
//! with `parent` naming the token it replaced. A unique index on `parent` is the
//! compare-and-swap: rotating a token means inserting its successor, and of any number of
//! concurrent rotations of one token exactly one insert succeeds, on MongoDB and on FerretDB
//! alike. (FerretDB 1.x runs `findAndModify` as a query followed by a separate update, so a
//! `find_one_and_update` on the session would let two concurrent refreshes both win there.)
//!
//! A successor's `jti` is derived from its parent's with a key of ours
//! ([`TokenKeys::successor_jti`]) and its tokens are issued at its record's `issuedAt`, so the
//! pair a rotation issued can be rebuilt by any instance, after any restart, from the record
//! alone. That is what a lost answer or a racing tab gets when it presents the token that was
//! just replaced, within `REFRESH_REUSE_GRACE`. Any older ancestor, or the previous token after
//! the grace, is reuse of a stolen or stale token: the whole session is revoked.
use std::time::Duration;

use mongodb::{
    Collection,
    bson::{DateTime, doc, oid::ObjectId},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    domain::{SessionId, UserId},
    store::{self, Store, StoreError},
    timing,
    tokens::{Grant, RefreshClaims, TokenKeys, UserClaims},
};

pub const SESSIONS: &str = "sessions";
pub const REFRESH_TOKENS: &str = "refresh_tokens";

/// The stored session. `claims` snapshots what access tokens carry about the user, so a refresh
/// needs no user lookup; whatever later changes a user's profile must update it too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    pub claims: UserClaims,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime,
    #[serde(rename = "expiresAt")]
    pub expires_at: DateTime,
    #[serde(rename = "revokedAt")]
    pub revoked_at: Option<DateTime>,
    /// Hash of the first refresh token's id (see [`token_hash`]).
    #[serde(rename = "firstToken")]
    pub first_token: String,
}

impl SessionDoc {
    /// What tokens for this session are issued for.
    pub fn grant(&self) -> Grant<'_> {
        Grant {
            user_id: self.user_id,
            session_id: &self.id,
            claims: &self.claims,
            session_ends: self.expires_at.timestamp_millis().div_euclid(1000),
        }
    }

    /// Neither revoked nor past its absolute end.
    pub fn is_live(&self, now: DateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// One refresh token issued by a rotation, by hash. `parent` is the hash of the token it
/// replaced, and is unique.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "sessionId")]
    pub session_id: String,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    pub parent: String,
    #[serde(rename = "issuedAt")]
    pub issued_at: DateTime,
    #[serde(rename = "expiresAt")]
    pub expires_at: DateTime,
}

pub fn sessions(store: &Store) -> Collection<SessionDoc> {
    store.collection(SESSIONS)
}

pub fn refresh_tokens(store: &Store) -> Collection<RefreshTokenDoc> {
    store.collection(REFRESH_TOKENS)
}

/// The indexes of both collections (see [`crate::schema`]).
pub async fn ensure_indexes(store: &Store) -> Result<(), StoreError> {
    store::ensure_index(&sessions(store), "userId").await?;
    // The compare-and-swap of refresh-token rotation: one successor per token.
    store::ensure_unique(&refresh_tokens(store), "parent", "parent_unique").await?;
    if store::ensure_expiry(&sessions(store)).await? {
        store::ensure_expiry(&refresh_tokens(store)).await?;
    }
    Ok(())
}

/// SHA-256 of a token id, hex. Only this is stored, never the token or the id itself.
pub fn token_hash(jti: &str) -> String {
    hex::encode(Sha256::digest(jti.as_bytes()))
}

fn after(t: DateTime, d: Duration) -> DateTime {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(t.timestamp_millis().saturating_add(ms))
}

/// Unix seconds of a stored time: tokens issued at `t` carry this `iat`.
pub fn unix_secs(t: DateTime) -> i64 {
    t.timestamp_millis().div_euclid(1000)
}

/// Starts session `id` whose first refresh token has id `jti`. One write: the first token is on
/// record in the session itself. A duplicate `_id` (only possible for a derived id, see
/// `exchange_node_token` in the refresh function) is a [`StoreError::Duplicate`].
pub async fn create(
    store: &Store,
    id: SessionId,
    user: UserId,
    claims: UserClaims,
    jti: &str,
    max_age: Duration,
) -> Result<SessionDoc, StoreError> {
    timing::step(timing::Kind::Database, "sessions.create", async move {
        let now = DateTime::now();
        let session = SessionDoc {
            id: id.as_ref().to_owned(),
            user_id: user.0,
            claims,
            created_at: now,
            expires_at: after(now, max_age),
            revoked_at: None,
            first_token: token_hash(jti),
        };
        sessions(store).insert_one(&session).await?;
        Ok(session)
    })
    .await
}

/// Reads a session by id, for `user` only.
pub async fn find(
    store: &Store,
    sid: &SessionId,
    user: UserId,
) -> Result<Option<SessionDoc>, StoreError> {
    timing::step(
        timing::Kind::Database,
        "sessions.find",
        find_session(store, sid, user),
    )
    .await
}

// The unmeasured forms, for `rotate`, which is measured as one step.
async fn find_session(
    store: &Store,
    sid: &SessionId,
    user: UserId,
) -> Result<Option<SessionDoc>, StoreError> {
    let session = sessions(store).find_one(doc! {"_id": sid.as_ref()}).await?;
    Ok(session.filter(|s| s.user_id == user.0))
}

async fn revoke_session(store: &Store, sid: &SessionId) -> Result<(), StoreError> {
    sessions(store)
        .update_one(
            doc! {"_id": sid.as_ref(), "revokedAt": null},
            doc! {"$set": {"revokedAt": DateTime::now()}},
        )
        .await?;
    Ok(())
}

/// Why a refresh token was refused after its signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such session for this user, or a token this session never issued.
    Unknown,
    /// Revoked earlier, or past its absolute lifetime.
    Ended,
    /// A replaced token came back outside the grace, or an older ancestor at any time: the
    /// session is now revoked.
    Reused,
}

/// A successful rotation: the session, and the refresh token to issue in it (id and issue
/// time, Unix seconds). A retry within the grace gets the same two values, so the same pair.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub session: SessionDoc,
    pub jti: String,
    pub issued_at: i64,
}

/// Replaces refresh token `presented` (already verified) by its successor, if it is current.
///
/// One round trip of three concurrent reads by `_id`: the session (revoked? past its end?),
/// the presented token's record (was it issued in this session?) and its successor's record
/// (was it replaced already?). A token refused there causes no write. Then the
/// compare-and-swap: the successor's insert under `parent = hash(presented)`.
///
/// Lookups are by `_id` alone, with the other fields checked here, because FerretDB 1.x answers
/// only a filter that is exactly `{_id: ...}` from its primary key and scans the collection for
/// anything else (`internal/backends/sqlite/collection.go`); on MongoDB both use an index.
pub async fn rotate(
    store: &Store,
    keys: &TokenKeys,
    presented: &RefreshClaims,
    reuse_grace: Duration,
) -> Result<Result<Rotated, Refusal>, StoreError> {
    timing::step(timing::Kind::Database, "sessions.rotate", async move {
    let (Ok(user), Ok(sid)) = (
        UserId::parse(&presented.sub),
        SessionId::parse(&presented.sid),
    ) else {
        return Ok(Err(Refusal::Unknown));
    };
    let now = DateTime::now();
    let old = token_hash(&presented.jti);
    let next_jti = keys.successor_jti(&presented.jti).map_err(key_missing)?;
    let next = token_hash(&next_jti);
    let tokens = refresh_tokens(store);
    let (issued, successor, session) = tokio::try_join!(
        async { Ok::<_, StoreError>(tokens.find_one(doc! {"_id": &old}).await?) },
        async { Ok(tokens.find_one(doc! {"_id": &next}).await?) },
        find_session(store, &sid, user),
    )?;
    let Some(session) = session else {
        return Ok(Err(Refusal::Unknown));
    };
    let issued_here = issued.is_some_and(|r| r.session_id == session.id && r.user_id == user.0)
        || session.first_token == old;
    if !issued_here {
        return Ok(Err(Refusal::Unknown));
    }
    if !session.is_live(now) {
        return Ok(Err(Refusal::Ended));
    }
    let successor = match successor {
        Some(existing) => existing,
        None => {
            let record = RefreshTokenDoc {
                id: next.clone(),
                session_id: session.id.clone(),
                user_id: user.0,
                parent: old.clone(),
                issued_at: now,
                // Kept while the successor can be presented; its parent expires before it does.
                expires_at: after(now, keys.refresh_ttl),
            };
            match tokens.insert_one(&record).await.map_err(StoreError::from) {
                Ok(_) => {
                    return Ok(Ok(Rotated {
                        jti: next_jti,
                        issued_at: unix_secs(record.issued_at),
                        session,
                    }));
                }
                // A concurrent refresh with the same token won: answer as it did.
                Err(StoreError::Duplicate(_)) => {
                    match tokens.find_one(doc! {"_id": &next}).await? {
                        Some(winner) => winner,
                        None => return Err(StoreError::Other(lost_record())),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    // Replaced already. Within the grace, and only if the successor is itself still current
    // (the presented token is the immediately previous one), hand out the same pair again.
    let grace = i64::try_from(reuse_grace.as_millis()).unwrap_or(i64::MAX);
    let recent = grace > 0
        && successor.issued_at.timestamp_millis() > now.timestamp_millis().saturating_sub(grace);
    let current = recent
        && tokens
            .find_one(doc! {"_id": token_hash(&keys.successor_jti(&next_jti).map_err(key_missing)?)})
            .await?
            .is_none();
    if current && successor.session_id == session.id {
        tracing::info!(session_id = %sid, "a just-replaced refresh token came back within the grace; same pair again");
        return Ok(Ok(Rotated {
            jti: next_jti,
            issued_at: unix_secs(successor.issued_at),
            session,
        }));
    }
    revoke_session(store, &sid).await?;
    Ok(Err(Refusal::Reused))
    })
    .await
}

/// Rotation in a function built without the refresh secret: a deployment mistake, not input.
fn key_missing(e: crate::tokens::TokenError) -> StoreError {
    StoreError::Other(mongodb::error::Error::custom(std::io::Error::other(
        e.to_string(),
    )))
}

/// The successor's insert said "duplicate" but the record is not there: its `_id` is derived
/// from the parent's, so only a parent index entry left by another record could cause that.
fn lost_record() -> mongodb::error::Error {
    mongodb::error::Error::custom(std::io::Error::other(
        "a successor record is indexed under this parent but could not be read",
    ))
}

/// Ends a session: every refresh token issued in it stops working, and so do its access tokens
/// on our routes.
pub async fn revoke(store: &Store, sid: &SessionId) -> Result<(), StoreError> {
    timing::step(
        timing::Kind::Database,
        "sessions.revoke",
        revoke_session(store, sid),
    )
    .await
}

/// Removes a session none of whose tokens was handed out (its opener found, after the insert,
/// that it must not stand): nothing can have used it, so nothing of it is kept, and an id
/// derived from a token (the Node-era exchange) can be inserted again by a retry.
pub async fn discard(store: &Store, sid: &SessionId) -> Result<(), StoreError> {
    timing::step(timing::Kind::Database, "sessions.discard", async move {
        sessions(store)
            .delete_one(doc! {"_id": sid.as_ref()})
            .await?;
        Ok(())
    })
    .await
}

/// Ends every live session of `user` except `keep` (if given): after a password change, the
/// device that changed it stays signed in and every other one is signed out. Returns how many
/// it ended. A `userId` filter: FerretDB scans for it, MongoDB uses the `userId` index; rare
/// and never on a hot path.
pub async fn revoke_all_of(
    store: &Store,
    user: UserId,
    keep: Option<&SessionId>,
) -> Result<u64, StoreError> {
    timing::step(
        timing::Kind::Database,
        "sessions.revoke_all_of",
        async move {
            let mut filter = doc! {"userId": user.0, "revokedAt": null};
            if let Some(keep) = keep {
                filter.insert("_id", doc! {"$ne": keep.as_ref()});
            }
            let r = sessions(store)
                .update_many(filter, doc! {"$set": {"revokedAt": DateTime::now()}})
                .await?;
            Ok(r.modified_count)
        },
    )
    .await
}

/// Writes `claims` into every live session of `user`, so each session's next refresh issues
/// access tokens with the user's current profile.
pub async fn update_claims(
    store: &Store,
    user: UserId,
    claims: &UserClaims,
) -> Result<u64, StoreError> {
    timing::step(
        timing::Kind::Database,
        "sessions.update_claims",
        async move {
            let claims = mongodb::bson::to_bson(claims).map_err(|e| {
                StoreError::Other(mongodb::error::Error::custom(std::io::Error::other(e)))
            })?;
            let r = sessions(store)
                .update_many(
                    doc! {"userId": user.0, "revokedAt": null},
                    doc! {"$set": {"claims": claims}},
                )
                .await?;
            Ok(r.modified_count)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hashes_are_sha256_hex_and_never_the_input() {
        let h = token_hash("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!h.contains("abc"));
    }

    #[test]
    fn stored_times_become_whole_unix_seconds_rounding_down() {
        assert_eq!(
            unix_secs(DateTime::from_millis(1_700_000_000_999)),
            1_700_000_000
        );
        assert_eq!(unix_secs(DateTime::from_millis(-1)), -1);
    }
}
