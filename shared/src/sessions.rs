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
//! A token that already has a successor is either a client racing itself (the successor is
//! younger than the grace period: refused, session kept) or reuse of a stolen or stale token
//! (the whole session is revoked) - unless the successor is one this process recorded but could
//! not hand out (the database failed before answering): see [`Undelivered`].
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use mongodb::bson::{DateTime, doc, oid::ObjectId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    domain::{SessionId, UserId},
    store::{Store, StoreError},
};

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
    /// Hash of the first refresh token's id (see [`token_hash`]). Sessions written before this
    /// field existed have their first token in `refresh_tokens` instead.
    #[serde(rename = "firstToken", default)]
    pub first_token: String,
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

/// The user fields an access token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    pub username: String,
    pub email: String,
    #[serde(rename = "fullName")]
    pub full_name: String,
}

/// SHA-256 of a token id, hex. Only this is stored, never the token or the id itself.
pub fn token_hash(jti: &str) -> String {
    hex::encode(Sha256::digest(jti.as_bytes()))
}

fn after(t: DateTime, d: Duration) -> DateTime {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(t.timestamp_millis().saturating_add(ms))
}

/// Starts a session for a fresh login whose first refresh token has id `jti`.
pub async fn create(
    store: &Store,
    user: UserId,
    claims: UserClaims,
    jti: &str,
    max_age: Duration,
) -> Result<SessionDoc, StoreError> {
    let now = DateTime::now();
    let session = SessionDoc {
        id: SessionId::generate().as_ref().to_owned(),
        user_id: user.0,
        claims,
        created_at: now,
        expires_at: after(now, max_age),
        revoked_at: None,
        first_token: token_hash(jti),
    };
    // One write: the first token is on record in the session itself.
    store.sessions.insert_one(&session).await?;
    Ok(session)
}

/// Why a refresh token was refused after its signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such session for this user, or a token this session never issued.
    Unknown,
    /// Revoked earlier, or past its absolute lifetime.
    Ended,
    /// The token was replaced moments ago: a client racing itself. Session kept.
    JustRotated,
    /// A token replaced longer ago than the grace period came back: the session is revoked.
    Reused,
}

/// A successful rotation: the session, and the id of the refresh token to issue in it.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub session: SessionDoc,
    pub jti: String,
}

/// Successor tokens this process recorded, or may have recorded, without being able to hand
/// them out: the database failed (a crash, a dropped connection) after receiving the insert and
/// before answering, so the client got a 503 and will retry with the token it still holds.
/// Without this, that retry would find a successor it never received and, after the grace
/// period, revoke its session as if the token had been stolen: a 503 that invites a retry must
/// not end in a logout.
///
/// Keyed by the hash of the presented token. An entry is used at most once, only by a client
/// presenting that exact token, and only while the recorded successor is still the token's
/// successor; nobody can have seen the successor, since its answer was never sent. A second
/// presenter of the same token meets the usual reuse detection. In-process by nature: a retry
/// that reaches another instance gets the usual answer (401, and revocation after the grace).
#[derive(Debug, Default)]
pub struct Undelivered(Mutex<HashMap<String, (String, Instant)>>);

impl Undelivered {
    /// Retries come after an outage; anything older is forgotten.
    const KEEP: Duration = Duration::from_secs(15 * 60);
    const MAX_ENTRIES: usize = 10_000;

    fn remember(&self, old_hash: &str, new_jti: &str) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < Self::KEEP);
            if map.len() >= Self::MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(old_hash.to_owned(), (new_jti.to_owned(), Instant::now()));
    }

    fn take(&self, old_hash: &str) -> Option<String> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(old_hash)
            .filter(|(_, at)| at.elapsed() < Self::KEEP)
            .map(|(jti, _)| jti)
    }
}

/// Replaces the token `old_jti` of session `sid` by `new_jti`, if `old_jti` is current.
///
/// Two steps. First, concurrently, the session (revoked? past its end?) and the check that
/// `old_jti` was issued in it (its record, or the session's first token); a token refused there
/// causes no write at all. Then the compare-and-swap: the successor's insert. The token to issue
/// is normally `new_jti`; it is an earlier, undelivered successor when this completes a rotation
/// whose answer was lost (see [`Undelivered`]).
///
/// The insert could run alongside the reads and save a round trip, but then every refused token
/// would write (and delete) a successor, and bad input must not write.
pub async fn rotate(
    store: &Store,
    sid: &SessionId,
    user: UserId,
    old_jti: &str,
    new_jti: &str,
    reuse_grace: Duration,
    token_ttl: Duration,
) -> Result<Result<Rotated, Refusal>, StoreError> {
    let now = DateTime::now();
    let old = token_hash(old_jti);
    // By `_id` alone, the other fields checked here: FerretDB 1.x answers only a filter that is
    // exactly `{_id: ...}` from its primary key and scans the collection for anything else
    // (`internal/backends/sqlite/collection.go`); 5.7 ms against 0.3 ms once the bench had
    // issued a few hundred tokens. On MongoDB both forms use the `_id` index.
    let (issued, session) = tokio::try_join!(
        store.refresh_tokens.find_one(doc! {"_id": &old}),
        store.sessions.find_one(doc! {"_id": sid.as_ref()}),
    )?;
    let session = session.filter(|s| s.user_id == user.0);
    let issued = issued.is_some_and(|r| r.session_id == sid.as_ref() && r.user_id == user.0)
        || session.as_ref().is_some_and(|s| s.first_token == old);
    let session = match session {
        Some(s) if issued && s.revoked_at.is_none() && s.expires_at > now => s,
        Some(_) if issued => return Ok(Err(Refusal::Ended)),
        _ => return Ok(Err(Refusal::Unknown)),
    };
    let successor = RefreshTokenDoc {
        id: token_hash(new_jti),
        session_id: sid.as_ref().to_owned(),
        user_id: user.0,
        parent: old.clone(),
        issued_at: now,
        // Kept while the successor can be presented; its parent expires before it does.
        expires_at: after(now, token_ttl),
    };
    let claimed = store
        .refresh_tokens
        .insert_one(&successor)
        .await
        .map_err(StoreError::from);
    // The successor may be on record (sent, but the answer was lost) while this request fails:
    // the client will come back with the same token.
    if matches!(claimed, Err(StoreError::Unavailable(_))) {
        store.undelivered.remember(&old, new_jti);
    }
    let rotated = |jti: &str| {
        Ok(Ok(Rotated {
            session: session.clone(),
            jti: jti.to_owned(),
        }))
    };
    match claimed {
        Ok(_) => rotated(new_jti),
        Err(StoreError::Duplicate(_)) => {
            // Already replaced: find out how long ago. Only this rare path pays another trip.
            let replaced = store.refresh_tokens.find_one(doc! {"parent": &old}).await?;
            if let Some(r) = &replaced {
                // Our own record: the driver retried an insert whose first answer was lost.
                if r.id == successor.id {
                    return rotated(new_jti);
                }
                if let Some(jti) = store.undelivered.take(&old)
                    && r.id == token_hash(&jti)
                {
                    tracing::info!(session_id = %sid, "completing a rotation whose answer was lost");
                    return rotated(&jti);
                }
            }
            let grace = i64::try_from(reuse_grace.as_millis()).unwrap_or(i64::MAX);
            let grace_start = DateTime::from_millis(now.timestamp_millis().saturating_sub(grace));
            if replaced.is_some_and(|r| r.issued_at > grace_start) {
                return Ok(Err(Refusal::JustRotated));
            }
            revoke(store, sid).await?;
            Ok(Err(Refusal::Reused))
        }
        Err(e) => Err(e),
    }
}

/// Ends a session: every refresh token issued in it stops working.
pub async fn revoke(store: &Store, sid: &SessionId) -> Result<(), StoreError> {
    store
        .sessions
        .update_one(
            doc! {"_id": sid.as_ref(), "revokedAt": null},
            doc! {"$set": {"revokedAt": DateTime::now()}},
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undelivered_successor_is_handed_out_once_and_only_for_its_own_token() {
        let u = Undelivered::default();
        u.remember("hash-of-old", "new-jti");
        assert_eq!(u.take("hash-of-another"), None);
        assert_eq!(u.take("hash-of-old").as_deref(), Some("new-jti"));
        assert_eq!(
            u.take("hash-of-old"),
            None,
            "a second presenter meets reuse detection"
        );
    }

    #[test]
    fn token_hashes_are_sha256_hex_and_never_the_input() {
        let h = token_hash("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!h.contains("abc"));
    }
}
