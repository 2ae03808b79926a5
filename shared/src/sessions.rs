//! The `sessions` collection: one document per login (per device), holding only a hash of the
//! current refresh token's id, and the atomic rotation that makes refresh tokens single-use.
//!
//! Rotation is one `find_one_and_update` whose filter names the current token hash, so of any
//! number of concurrent refreshes with one token exactly one matches. A token that no longer
//! matches is either a client racing itself (it was current less than the grace period ago) or
//! reuse of a stolen or stale token, which revokes the whole session.
use std::time::Duration;

use mongodb::{
    bson::{DateTime, doc, oid::ObjectId},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    domain::{SessionId, UserId},
    store::{Store, StoreError},
};

/// The stored session. `claims` snapshots what access tokens carry about the user, so a refresh
/// needs one round trip; whatever later changes a user's profile must update it too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    #[serde(rename = "tokenHash")]
    pub token_hash: String,
    #[serde(rename = "previousTokenHash")]
    pub previous_token_hash: Option<String>,
    #[serde(rename = "rotatedAt")]
    pub rotated_at: Option<DateTime>,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime,
    #[serde(rename = "expiresAt")]
    pub expires_at: DateTime,
    #[serde(rename = "revokedAt")]
    pub revoked_at: Option<DateTime>,
    pub claims: UserClaims,
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

/// Starts a session for a fresh login whose first refresh token has id `jti`.
pub async fn create(
    store: &Store,
    user: UserId,
    claims: UserClaims,
    jti: &str,
    max_age: Duration,
) -> Result<SessionDoc, StoreError> {
    let now = DateTime::now();
    let doc = SessionDoc {
        id: SessionId::generate().as_ref().to_owned(),
        user_id: user.0,
        token_hash: token_hash(jti),
        previous_token_hash: None,
        rotated_at: None,
        created_at: now,
        expires_at: after(now, max_age),
        revoked_at: None,
        claims,
    };
    store.sessions.insert_one(&doc).await?;
    Ok(doc)
}

fn after(t: DateTime, d: Duration) -> DateTime {
    DateTime::from_millis(
        t.timestamp_millis()
            .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
    )
}

/// Why a refresh token was refused after its signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such session for this user.
    Unknown,
    /// Revoked earlier, or past its absolute lifetime.
    Ended,
    /// The token was current until moments ago: a client racing itself. Session kept.
    JustRotated,
    /// A token that is neither current nor just-rotated was presented: the session is revoked.
    Reused,
}

/// Atomically replaces the session's current token hash, if `old_jti` is current.
pub async fn rotate(
    store: &Store,
    sid: &SessionId,
    user: UserId,
    old_jti: &str,
    new_jti: &str,
    reuse_grace: Duration,
) -> Result<Result<SessionDoc, Refusal>, StoreError> {
    let now = DateTime::now();
    let old = token_hash(old_jti);
    let filter = doc! {
        "_id": sid.as_ref(),
        "userId": user.0,
        "tokenHash": &old,
        "revokedAt": null,
        "expiresAt": {"$gt": now},
    };
    let update = doc! {"$set": {"tokenHash": token_hash(new_jti), "previousTokenHash": &old, "rotatedAt": now}};
    let rotated = store
        .sessions
        .find_one_and_update(filter, update)
        .return_document(ReturnDocument::After)
        .await?;
    if let Some(session) = rotated {
        return Ok(Ok(session));
    }
    // Nothing matched: find out why. Only this rare path pays a second round trip.
    let Some(session) = store
        .sessions
        .find_one(doc! {"_id": sid.as_ref(), "userId": user.0})
        .await?
    else {
        return Ok(Err(Refusal::Unknown));
    };
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Ok(Err(Refusal::Ended));
    }
    let grace_start =
        DateTime::from_millis(now.timestamp_millis() - reuse_grace.as_millis() as i64);
    let just_rotated = session.previous_token_hash.as_deref() == Some(old.as_str())
        && session.rotated_at.is_some_and(|t| t > grace_start);
    if just_rotated {
        return Ok(Err(Refusal::JustRotated));
    }
    revoke(store, sid).await?;
    Ok(Err(Refusal::Reused))
}

/// Ends a session: its current refresh token stops working too.
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
    fn token_hashes_are_sha256_hex_and_never_the_input() {
        let h = token_hash("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!h.contains("abc"));
    }
}
