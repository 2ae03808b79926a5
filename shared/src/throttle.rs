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
//! deletes it (login: beside its confirmation read, after the session's insert). The pair's trust document (by `_id`, read beside
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
//! **Device cookies** (see [`device`]): a correct password at login hands the browser a signed
//! cookie for the account. An attempt that presents one for the account it names is counted
//! under that device rather than its address (its own pair, with the same growing delay), is
//! exempt from the address budget, and meets an account budget that only the account's devices
//! share (trusted or not): a stranger who shares the owner's address (a carrier-grade NAT, an
//! office) can spend the address's budget, its delay at the account and the account's budget,
//! but not the owner's device's; and cookies minted by signing in many times cannot multiply
//! the account's budget. Without such a cookie an attempt is counted as above, so whether an
//! account exists still changes nothing.
//!
//! If the counts cannot be read or written the password is checked as without throttling (the
//! route's own database access answers 503 if the database is down), and the incident is
//! logged as `throttle_unavailable`.
mod address;
mod device;
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
    config::{CookieConfig, ThrottleConfig},
    cookies,
    error::{ApiError, chain},
    store::{self, Store, StoreError},
    timing,
    tokens::hmac_sha256,
};

pub use address::SourceAddress;
pub use device::DeviceId;
pub use rules::{Limit, retry_after_secs};

/// The names the throttles count an account under, one per way of presenting it: login's
/// `username` or `email` (each as login normalises it), change-password's user id.
pub mod account {
    pub fn username(normalised: &str) -> String {
        format!("u:{normalised}")
    }
    pub fn email(normalised: &str) -> String {
        format!("e:{normalised}")
    }
    pub fn user_id(id: impl std::fmt::Display) -> String {
        format!("id:{id}")
    }
}

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
    /// Signs device cookies.
    device_key: [u8; 32],
}

/// Who is trying: the hashed keys of one attempt, and the address for the log.
#[derive(Debug, Clone)]
pub struct Subject {
    route: &'static str,
    pair: String,
    address_key: String,
    account_key: String,
    address: SourceAddress,
    /// The device whose cookie vouched for this account: then `pair` is the device's.
    device: Option<DeviceId>,
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
        let secret = secret.expose_secret().as_bytes();
        Self {
            cfg,
            key: hmac_sha256(secret, b"videotube password throttle keys v1"),
            device_key: hmac_sha256(secret, b"videotube login device cookies v1"),
        }
    }

    /// The keys for an attempt on `route` at `account` (see [`account`]) from `address`, with
    /// the value of the request's device cookie if it sent one. A cookie that is not ours, is
    /// too old or names other accounts changes nothing.
    pub fn subject(
        &self,
        route: &'static str,
        account: &str,
        address: SourceAddress,
        device_cookie: Option<&str>,
    ) -> Subject {
        let account_raw = self.raw_hash(b"account", account);
        let device = device_cookie
            .filter(|_| self.devices_on())
            .and_then(|value| device::decode(&self.device_key, value))
            .filter(|d| d.vouches_for(&account_raw, timing::unix_secs(), self.cfg.trusted_for))
            .map(|d| d.id);
        // A device has its own pair, and the account's devices share an account budget of
        // their own: strangers without a cookie cannot spend it, and cookies minted by logging
        // in many times (with a password since changed, say) cannot multiply it.
        let (pair, account_key) = match &device {
            Some(id) => (
                self.hash(b"pair", &format!("{account}\0device:{}", id.hex())),
                self.hash(b"account devices", account),
            ),
            None => (
                self.hash(b"pair", &format!("{account}\0{address}")),
                hex::encode(account_raw),
            ),
        };
        Subject {
            route,
            pair,
            address_key: self.hash(b"address", address.as_str()),
            account_key,
            address,
            device,
        }
    }

    /// Whether device cookies are issued and honoured: with the throttles on and a
    /// `THROTTLE_TRUSTED_FOR` above zero, which is also their lifetime.
    fn devices_on(&self) -> bool {
        self.cfg.enabled && !self.cfg.trusted_for.is_zero()
    }

    /// The device cookie a correct password at login hands out: for the user's `accounts`
    /// (its names by [`account`]), keeping the device of `subject` if its cookie vouched for
    /// it, else a new device. `None` while device cookies are off (see [`Throttle::subject`]).
    pub fn device_cookie(
        &self,
        subject: &Subject,
        accounts: &[String; device::ACCOUNTS],
        cookie: &CookieConfig,
    ) -> Option<cookie::Cookie<'static>> {
        if !self.devices_on() {
            return None;
        }
        let issued = device::Device {
            id: subject.device.unwrap_or_else(DeviceId::generate),
            issued_at_secs: timing::unix_secs(),
            accounts: accounts.each_ref().map(|a| self.raw_hash(b"account", a)),
        };
        Some(cookies::device(
            cookie,
            device::encode(&self.device_key, &issued),
            self.cfg.trusted_for,
        ))
    }

    /// A trust outlives its exemption when failures are remembered longer: it also resets.
    fn trust_kept(&self) -> Duration {
        self.cfg.trusted_for.max(self.cfg.forget_after)
    }

    fn hash(&self, purpose: &[u8], value: &str) -> String {
        hex::encode(self.raw_hash(purpose, value))
    }

    fn raw_hash(&self, purpose: &[u8], value: &str) -> [u8; device::ACCOUNT_LEN] {
        let mut message = Vec::with_capacity(purpose.len() + 1 + value.len());
        message.extend_from_slice(purpose);
        message.push(0);
        message.extend_from_slice(value.as_bytes());
        let mac = hmac_sha256(&self.key, &message);
        let mut cut = [0u8; device::ACCOUNT_LEN];
        cut.copy_from_slice(&mac[..device::ACCOUNT_LEN]);
        cut
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
            device: subject.device.is_some(),
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
            device = seen.device,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(enabled: bool, trusted_for: Duration) -> Throttle {
        let cfg = ThrottleConfig {
            enabled,
            trusted_for,
            ..rules::defaults()
        };
        Throttle::new(cfg, &SecretString::from("s".repeat(32)))
    }

    const MONTH: Duration = Duration::from_secs(30 * 86_400);
    const NAMES: [&str; 3] = [
        "u:alice",
        "e:alice@example.com",
        "id:65a000000000000000000001",
    ];

    fn names() -> [String; 3] {
        NAMES.map(str::to_owned)
    }

    fn at(t: &Throttle, account: &str, ip: [u8; 4], cookie: Option<&str>) -> Subject {
        let address = SourceAddress::from_ip(std::net::IpAddr::from(ip));
        t.subject("login", account, address, cookie)
    }

    fn cookies() -> CookieConfig {
        CookieConfig {
            secure: true,
            same_site: None,
        }
    }

    #[test]
    fn a_device_cookie_vouches_for_every_name_of_its_account_and_keeps_its_device() {
        let t = throttle(true, MONTH);
        let first = at(&t, "u:alice", [192, 0, 2, 1], None);
        assert_eq!(first.device, None);
        let cookie = t.device_cookie(&first, &names(), &cookies()).expect("on");
        assert_eq!(cookie.name(), cookies::DEVICE_COOKIE);

        let on_device = at(&t, "u:alice", [192, 0, 2, 1], Some(cookie.value()));
        let device = on_device
            .device
            .expect("the cookie vouches for the account");
        assert_ne!(on_device.pair, first.pair, "the device's own pair");
        assert_eq!(
            on_device.address_key, first.address_key,
            "still recorded under the address, for the others' budget"
        );
        assert_ne!(
            on_device.account_key, first.account_key,
            "and under the account's devices' budget, which strangers do not spend"
        );
        let elsewhere = at(&t, "u:alice", [198, 51, 100, 9], Some(cookie.value()));
        assert_eq!(
            (elsewhere.device, &elsewhere.pair),
            (Some(device), &on_device.pair),
            "the same pair from any address"
        );
        for name in &NAMES[1..] {
            assert_eq!(
                at(&t, name, [192, 0, 2, 1], Some(cookie.value())).device,
                Some(device),
                "{name}"
            );
        }
        assert_eq!(
            at(&t, "u:bob", [192, 0, 2, 1], Some(cookie.value())).device,
            None,
            "another account"
        );

        let renewed = t
            .device_cookie(&on_device, &names(), &cookies())
            .expect("on");
        assert_eq!(
            at(&t, "u:alice", [192, 0, 2, 1], Some(renewed.value())).device,
            Some(device),
            "for the same device"
        );
        let other = throttle(true, MONTH);
        let fresh = t.device_cookie(&first, &names(), &cookies()).expect("on");
        assert_ne!(
            at(&t, "u:alice", [192, 0, 2, 1], Some(fresh.value())).device,
            Some(device),
            "a sign-in without a cookie is a new device"
        );
        assert!(
            at(&other, "u:alice", [192, 0, 2, 1], Some(cookie.value()))
                .device
                .is_some(),
            "the same secret, the same key"
        );
    }

    #[test]
    fn no_device_cookie_is_issued_or_honoured_with_the_throttles_off_or_no_trust() {
        let on = throttle(true, MONTH);
        let issued = on
            .device_cookie(
                &at(&on, "u:alice", [192, 0, 2, 1], None),
                &names(),
                &cookies(),
            )
            .expect("on");
        for off in [throttle(false, MONTH), throttle(true, Duration::ZERO)] {
            let subject = at(&off, "u:alice", [192, 0, 2, 1], Some(issued.value()));
            assert_eq!(subject.device, None);
            assert!(off.device_cookie(&subject, &names(), &cookies()).is_none());
        }
        let rotated = Throttle::new(on.cfg, &SecretString::from("t".repeat(32)));
        assert_eq!(
            at(&rotated, "u:alice", [192, 0, 2, 1], Some(issued.value())).device,
            None,
            "a rotated secret voids every cookie"
        );
    }
}
