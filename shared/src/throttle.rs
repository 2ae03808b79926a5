//! Throttles on password guessing: login and change-password ask here before they check a
//! password, and a refused attempt runs no hash at all.
//!
//! Three budgets, kept in the database so that every Lambda instance sees the same counts:
//! - **one address at one account**: `THROTTLE_FREE_FAILURES` failures, then each next check
//!   waits `THROTTLE_DELAY` doubled per further failure, up to `THROTTLE_MAX_DELAY` (Cognito's
//!   curve). A correct password resets it. Failures older than `THROTTLE_FORGET_AFTER` are
//!   forgotten.
//! - **one address across accounts** (credential stuffing): `THROTTLE_ADDRESS_FAILURES` per
//!   sliding `THROTTLE_ADDRESS_WINDOW` (Auth0's 100 a day).
//! - **one account from anywhere**: `THROTTLE_ACCOUNT_FAILURES` per sliding
//!   `THROTTLE_ACCOUNT_WINDOW`, counting every address, so many addresses are slowed too. An
//!   address that signed in to the account within `THROTTLE_TRUSTED_FOR` is exempt from this one
//!   budget: its owner, at home or at work, is never locked out by a stranger elsewhere. A
//!   stranger would have to share the owner's address (and then meets that pair's own delay).
//!
//! **Counting on what both servers make atomic.** FerretDB 1.x runs `findAndModify` and
//! updates as a read followed by a write, so a counter document would lose increments under
//! concurrency. Inserts are atomic on both: every attempt first *inserts* its own record, then
//! reads the records of the others (by `pair`, `address`, `account`, within each window). Of
//! any number of concurrent attempts, the k-th to be inserted sees at least the k-1 before it,
//! so no more than the budget get past the reads, however many race. A refused attempt deletes
//! its record (refusals are not failures, and an attacker's flood does not fill the
//! collection); a checked one keeps it, and it becomes the failure record; a correct password
//! deletes it beside the session's insert. The pair's trust document (by `_id`, read beside
//! the insert) holds the time of its last correct password: that time resets the pair's count,
//! and while it is younger than `THROTTLE_TRUSTED_FOR` the address is exempt from the
//! account's budget. A correct password rewrites it only when that says something new (there
//! were attempts since to reset, or it is missing or a thirtieth of `THROTTLE_TRUSTED_FOR`
//! old), so a returning user's sign-in writes nothing but the delete.
//!
//! The budgets are read in one query (an `$or` of the three keys, each within its window) that
//! fetches the records' times, unsorted (FerretDB sorts in memory, slowly). A window holds at most its budget of failures plus the checks under way,
//! because records are only added by checks that got through, so the reads stay small; the
//! times say both whether the budget is spent and when the window lets the next attempt in, so
//! a refusal needs no further read.
//!
//! Keys are HMACs (under a key derived from `ACCESS_TOKEN_SECRET`) of the account as presented
//! (`u:` username or `e:` email at login, `id:` user id at change-password) and of the address:
//! neither names nor emails are stored or logged, and unknown accounts are counted exactly like
//! real ones, because nothing here knows whether the account exists. A rotated secret starts
//! every count afresh.
//!
//! If the counts cannot be read or written the password is checked as without throttling (the
//! route's own database access answers 503 if the database is down), and the incident is
//! logged as `throttle_unavailable`.
mod address;
mod rules;

use std::time::Duration;

use futures::TryStreamExt as _;
use mongodb::{
    Collection,
    bson::{DateTime, doc, oid::ObjectId},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    config::ThrottleConfig,
    error::{ApiError, chain},
    store::{self, Store, StoreError},
    timing,
    tokens::hmac_sha256,
};

pub use address::SourceAddress;
pub use rules::{Limit, retry_after_secs};

/// One record per password check begun (see the module doc).
pub const ATTEMPTS: &str = "password_attempts";

#[derive(Debug, Serialize, Deserialize)]
struct AttemptDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    pair: String,
    address: String,
    account: String,
    at: DateTime,
    #[serde(rename = "expiresAt")]
    expires_at: DateTime,
}

/// What the budget read needs of another attempt's record.
#[derive(Debug, Deserialize)]
struct Other {
    pair: String,
    address: String,
    account: String,
    at: DateTime,
}

/// One document per address and account whose password was right, by `_id` (the pair).
#[derive(Debug, Serialize, Deserialize)]
struct TrustDoc {
    #[serde(rename = "_id")]
    pair: String,
    at: DateTime,
    #[serde(rename = "expiresAt")]
    expires_at: DateTime,
}

fn attempts(store: &Store) -> Collection<AttemptDoc> {
    store.collection(ATTEMPTS)
}

/// The pair's last correct password (see the module doc).
pub const TRUSTED: &str = "password_trusted";

fn trusted(store: &Store) -> Collection<TrustDoc> {
    store.collection(TRUSTED)
}

pub async fn ensure_indexes(store: &Store) -> Result<(), StoreError> {
    let attempts = attempts(store);
    for field in ["pair", "address", "account"] {
        store::ensure_compound(&attempts, doc! {field: 1, "at": 1}).await?;
    }
    store::ensure_expiry(&attempts).await?;
    store::ensure_expiry(&trusted(store)).await?;
    Ok(())
}

/// The throttles of one function: its configuration and the key its records are hashed with.
pub struct Throttle {
    cfg: ThrottleConfig,
    key: [u8; 32],
}

/// Who is trying: the hashed keys of one attempt, and the address for the log.
#[derive(Debug, Clone)]
pub struct Subject {
    route: &'static str,
    pair: String,
    address_key: String,
    account_key: String,
    address: SourceAddress,
}

/// What [`Throttle::check`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Check the password, then report the outcome on the attempt.
    Check(Attempt),
    /// Do not check it: answer 429.
    Refused(Refusal),
}

/// A refused attempt: which budgets it is over and when the next check may come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub limits: Vec<Limit>,
    pub retry_after_secs: u64,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::Throttled {
            retry_after_secs: r.retry_after_secs,
        }
    }
}

/// A password check that was let through, to be reported as a success or a failure.
#[derive(Debug)]
#[must_use = "report the outcome with `succeeded` or `failed`"]
pub struct Attempt {
    /// `None` when the throttles are off or could not be consulted: nothing to report then.
    id: Option<ObjectId>,
    subject: Subject,
    /// How long a correct password's trust document is kept.
    trust_kept: Duration,
    /// Whether a correct password writes the pair's trust (see [`rules::trust_needs_writing`]).
    write_trust: bool,
}

impl Throttle {
    /// `secret` is `ACCESS_TOKEN_SECRET`: the records' keys are derived from it.
    pub fn new(cfg: ThrottleConfig, secret: &SecretString) -> Self {
        Self {
            cfg,
            key: hmac_sha256(
                secret.expose_secret().as_bytes(),
                b"videotube password throttle keys v1",
            ),
        }
    }

    /// The keys for an attempt on `route` at `account` (`u:name`, `e:email`, `id:hex`) from
    /// `address`.
    pub fn subject(&self, route: &'static str, account: &str, address: SourceAddress) -> Subject {
        Subject {
            route,
            pair: self.hash(b"pair", &format!("{account}\0{address}")),
            address_key: self.hash(b"address", address.as_str()),
            account_key: self.hash(b"account", account),
            address,
        }
    }

    /// A trust outlives its exemption when failures are remembered longer: it also resets.
    fn trust_kept(&self) -> Duration {
        self.cfg.trusted_for.max(self.cfg.forget_after)
    }

    fn hash(&self, purpose: &[u8], value: &str) -> String {
        let mut message = Vec::with_capacity(purpose.len() + 1 + value.len());
        message.extend_from_slice(purpose);
        message.push(0);
        message.extend_from_slice(value.as_bytes());
        hex::encode(&hmac_sha256(&self.key, &message)[..16])
    }

    /// A check with nothing recorded (throttles off, or their records unusable): nothing to
    /// report afterwards.
    fn untracked(&self, subject: &Subject) -> Admission {
        Admission::Check(Attempt {
            id: None,
            subject: subject.clone(),
            trust_kept: self.trust_kept(),
            write_trust: false,
        })
    }

    /// Records the attempt and decides whether its password may be checked now. Never fails: if
    /// the records cannot be used, the check goes ahead untracked and the incident is logged.
    pub async fn check(&self, store: &Store, subject: &Subject) -> Admission {
        if !self.cfg.enabled {
            return self.untracked(subject);
        }
        match timing::step(
            timing::Kind::Database,
            "throttle.check",
            self.admit(store, subject),
        )
        .await
        {
            Ok(admission) => admission,
            Err(e) => {
                tracing::warn!(
                    event = "throttle_unavailable",
                    route = subject.route,
                    account = %subject.account_key,
                    address = %subject.address,
                    error = %chain(&e),
                    "the throttle records could not be used; checking the password without them"
                );
                self.untracked(subject)
            }
        }
    }

    async fn admit(&self, store: &Store, subject: &Subject) -> Result<Admission, StoreError> {
        let cfg = &self.cfg;
        let now = DateTime::now();
        let now_ms = now.timestamp_millis();
        let id = ObjectId::new();
        let retention = cfg
            .forget_after
            .max(cfg.address_window)
            .max(cfg.account_window);
        let records = attempts(store);
        let others = records.clone_with_type::<Other>();
        // The pair's trust is about sign-ins already over: read beside the insert.
        let trust_records = trusted(store);
        let (inserted, trust) = tokio::join!(
            records.insert_one(AttemptDoc {
                id,
                pair: subject.pair.clone(),
                address: subject.address_key.clone(),
                account: subject.account_key.clone(),
                at: now,
                expires_at: after(now_ms, retention),
            }),
            trust_records.find_one(doc! {"_id": &subject.pair}),
        );
        inserted?;
        let trust = trust?;
        let since = |d: Duration| DateTime::from_millis(now_ms.saturating_sub(rules::millis(d)));
        // The others' failures and checks under way, each budget within its window: one read
        // (one scan on FerretDB, one index per branch on MongoDB), split up here.
        let filter = doc! {
            "_id": {"$ne": id},
            "$or": [
                {"pair": &subject.pair, "at": {"$gt": since(cfg.forget_after)}},
                {"address": &subject.address_key, "at": {"$gt": since(cfg.address_window)}},
                {"account": &subject.account_key, "at": {"$gt": since(cfg.account_window)}},
            ],
        };
        let found: Vec<Other> = others
            .find(filter)
            .projection(doc! {"pair": 1, "address": 1, "account": 1, "at": 1})
            .await?
            .try_collect()
            .await?;
        // Newest first, each within its own window.
        let within = |key: fn(&Other) -> &str, value: &str, window: Duration| {
            let start = now_ms.saturating_sub(rules::millis(window));
            let mut at: Vec<i64> = found
                .iter()
                .filter(|o| key(o) == value)
                .map(|o| o.at.timestamp_millis())
                .filter(|&at| at > start)
                .collect();
            at.sort_unstable_by(|a, b| b.cmp(a));
            at
        };
        let pair = within(|o| &o.pair, &subject.pair, cfg.forget_after);
        let address = within(|o| &o.address, &subject.address_key, cfg.address_window);
        let account = within(|o| &o.account, &subject.account_key, cfg.account_window);
        let trusted_at = trust.map(|t| t.at.timestamp_millis());
        let reset = trusted_at.unwrap_or(i64::MIN);
        let seen = rules::Seen {
            pair: pair.into_iter().filter(|&at| at > reset).collect(),
            address,
            account,
            trusted: trusted_at
                .is_some_and(|at| now_ms < at.saturating_add(rules::millis(cfg.trusted_for))),
        };
        let over = rules::over(cfg, now_ms, &seen);
        if over.is_empty() {
            return Ok(Admission::Check(Attempt {
                id: Some(id),
                subject: subject.clone(),
                trust_kept: self.trust_kept(),
                write_trust: rules::trust_needs_writing(cfg, now_ms, trusted_at, seen.pair.len()),
            }));
        }
        if let Err(e) = records.delete_one(doc! {"_id": id}).await {
            tracing::warn!(event = "throttle_unavailable", error = %chain(&StoreError::from(e)), "a refused attempt's record was not deleted; it counts until it expires");
        }
        Ok(Admission::Refused(
            self.refusal(subject, now_ms, &seen, &over),
        ))
    }

    /// The refusal for what an attempt saw, logged as the security event.
    fn refusal(
        &self,
        subject: &Subject,
        now_ms: i64,
        seen: &rules::Seen,
        over: &[(Limit, i64)],
    ) -> Refusal {
        let ready = over.iter().map(|(_, at)| *at).max().unwrap_or(now_ms);
        let refusal = Refusal {
            limits: over.iter().map(|(l, _)| *l).collect(),
            retry_after_secs: rules::retry_after_secs(now_ms, ready),
        };
        let limits: Vec<&str> = refusal.limits.iter().map(|l| l.as_str()).collect();
        tracing::warn!(
            event = "password_throttled",
            route = subject.route,
            account = %subject.account_key,
            address = %subject.address,
            limits = %limits.join(","),
            pair_failures = seen.pair.len(),
            address_failures = seen.address.len(),
            account_failures = seen.account.len(),
            trusted = seen.trusted,
            until = %DateTime::from_millis(ready).try_to_rfc3339_string().unwrap_or_default(),
            retry_after_s = refusal.retry_after_secs,
            "password check refused by the throttle"
        );
        refusal
    }
}

impl Attempt {
    /// The password was right: the record goes (it was no failure) and, when it says something
    /// new, the pair's trust is written, which resets its count and exempts the address from the
    /// account's budget. Failures are logged, never answered: the sign-in has succeeded either
    /// way.
    pub async fn succeeded(self, store: &Store) {
        let Some(id) = self.id else { return };
        let records = attempts(store);
        let trust = self.write_trust.then(|| {
            let now = DateTime::now();
            TrustDoc {
                pair: self.subject.pair.clone(),
                at: now,
                expires_at: after(now.timestamp_millis(), self.trust_kept),
            }
        });
        let trust_records = trusted(store);
        let write_trust = async {
            let Some(trust) = &trust else { return Ok(()) };
            let written = trust_records
                .replace_one(doc! {"_id": &trust.pair}, trust)
                .upsert(true)
                .await;
            // Two concurrent successes may both insert the trust (FerretDB's upsert is a read,
            // then a write): either one will do.
            match written.map_err(StoreError::from) {
                Err(StoreError::Duplicate(_)) => Ok(()),
                other => other.map(|_| ()),
            }
        };
        let writes = async {
            tokio::join!(
                async { records.delete_one(doc! {"_id": id}).await },
                write_trust,
            )
        };
        let (deleted, written) =
            timing::step(timing::Kind::Database, "throttle.succeeded", writes).await;
        for e in [deleted.err().map(StoreError::from), written.err()]
            .into_iter()
            .flatten()
        {
            tracing::warn!(event = "throttle_unavailable", route = self.subject.route, error = %chain(&e), "a correct password's throttle records were not updated");
        }
    }

    /// The password was wrong: the record stays, as the failure. Logged for the security trail.
    pub fn failed(self) {
        tracing::info!(
            event = "password_check_failed",
            route = self.subject.route,
            account = %self.subject.account_key,
            address = %self.subject.address,
            tracked = self.id.is_some(),
            "a password check failed"
        );
    }
}

fn after(now_ms: i64, d: Duration) -> DateTime {
    DateTime::from_millis(now_ms.saturating_add(rules::millis(d)))
}
