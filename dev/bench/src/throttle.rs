//! Login with the password throttles on, beside the same login with them off, beside its floor
//! and beside a refused (throttled) attempt, round-robin in one run.
//!
//! The floor is what a successful login cannot skip, each step bare, one after the other as
//! login must run them: the user's lookup by name, one argon2id verification (in kept working
//! memory, timed on its thread, as [`crate::floors::login_floor`]), and the session's insert.
//! Every login then reads the user once more, to confirm the hash it verified (not in the
//! floor: it is login's guard against a racing password change, not a throttle's step). The
//! throttled login adds, beside the lookup, its attempt's insert with the pair's trust read
//! beside it and then the budgets' one read; and beside that confirmation read, the delete of
//! its attempt record (and the trust's rewrite when that says something new, which a returning
//! user's sign-in does not).
//!
//! A fifth series runs those extra steps bare beside the floor's, with the driver and documents
//! of the same shape in the same collections, arranged as login arranges them: (the lookup
//! beside (the insert beside the trust read, then the budgets' read)), the verify, the
//! session's insert, then (the confirmation read beside the delete). It is what the throttles' design costs on this server
//! with nothing of the handler around it, so the handler's series against it says how much of
//! the throttles' cost is their own code and how much is the server's round trips. A sixth runs
//! the same with the delete after the timing stops: the steps before the verify alone, so the
//! two halves' shares can be told apart.
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};
use shared::{App, sessions, throttle, tokens::new_jti, users};

use crate::{
    floors::{
        AnySide, Caller, Floor, LoginFailures, bare_verify, expect_status, round_robin,
        seeded_hash, series, store,
    },
    workload,
};

/// Failures that put the refused series' account and address over the pair budget, through
/// the throttled app, before the first round.
async fn lock_out(app: &'static App, username: &str) -> Result<(), String> {
    for _ in 0..app.config.throttle.free_failures {
        let body = workload::login_json_with(username, workload::WRONG_PASSWORD);
        let resp = login::handle(app, testkit::post_json(workload::LOGIN_PATH, &body)).await;
        expect_status(&resp, 401, "a failure before the lock-out")?;
    }
    Ok(())
}

/// Hex keys shaped like the throttle's (HMACs, 16 bytes), for the bare steps' own records.
fn bench_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A record shaped like an attempt's (`shared::throttle`'s `AttemptDoc`).
fn attempt_doc(id: ObjectId, pair: &str, address: &str, account: &str, keep: Duration) -> Document {
    let now = DateTime::now();
    doc! {
        "_id": id, "pair": pair, "address": address, "account": account, "at": now,
        "expiresAt": DateTime::from_millis(now.timestamp_millis() + millis(keep)),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A document shaped like a session (the bench's own: expired, revoked, for no user).
fn floor_session(username: &str) -> Document {
    let now = DateTime::now();
    doc! {
        "_id": format!("bench-floor-{}", hex::encode(rand::random::<[u8; 12]>())),
        "claims": {"username": username, "email": "bench@example.com", "fullName": "Bench"},
        "createdAt": now, "expiresAt": now, "revokedAt": now,
        "firstToken": sessions::token_hash(&new_jti()),
    }
}

/// `rounds` rounds of: the floor, login with the throttles on (`throttled`), login with them
/// off (`unthrottled`), an attempt the throttles refuse, and the floor with the throttles' steps
/// run bare beside it; each against the floor.
pub async fn login(
    throttled: &'static App,
    unthrottled: &'static App,
    username: &str,
    rounds: usize,
) -> Result<LoginFailures, String> {
    let store = store(throttled).await?;
    let stored = seeded_hash(throttled, username).await?;
    let locked = workload::unique_name("locked");
    lock_out(throttled, &locked).await?;
    let cfg = &throttled.config.throttle;
    let (users, sessions, attempts, trusted) = (
        store.db.collection::<Document>(users::USERS),
        store.db.collection::<Document>(sessions::SESSIONS),
        store.db.collection::<Document>(throttle::ATTEMPTS),
        store.db.collection::<Document>(throttle::TRUSTED),
    );
    // The bare steps' subject, as the handler's is: a returning user whose pair is trusted,
    // at an address that the locked account's failures share.
    let (pair, address, account) = (bench_key(), bench_key(), bench_key());
    let retention = cfg
        .forget_after
        .max(cfg.address_window)
        .max(cfg.account_window);
    let kept = DateTime::from_millis(DateTime::now().timestamp_millis() + millis(retention));
    trusted
        .insert_one(doc! {"_id": &pair, "at": DateTime::now(), "expiresAt": kept})
        .await
        .map_err(|e| format!("the bare steps' trust: {e}"))?;
    for _ in 0..cfg.free_failures {
        let failure = attempt_doc(
            ObjectId::new(),
            &bench_key(),
            &address,
            &bench_key(),
            retention,
        );
        attempts
            .insert_one(failure)
            .await
            .map_err(|e| format!("the bare steps' failures: {e}"))?;
    }
    let user_id = users
        .find_one(doc! {"username": username})
        .await
        .map_err(|e| format!("the bench user: {e}"))?
        .and_then(|d| d.get_object_id("_id").ok())
        .ok_or("the bench user is missing")?;
    let windows = (cfg.forget_after, cfg.address_window, cfg.account_window);
    let (users, sessions, attempts, trusted, stored) =
        (&users, &sessions, &attempts, &trusted, &stored);
    let (pair, address, account) = (pair.as_str(), address.as_str(), account.as_str());
    let lookup = || async move {
        let found = users
            .find_one(doc! {"username": username})
            .await
            .map_err(|e| e.to_string())?;
        found
            .map(|_| ())
            .ok_or_else(|| "the bench user is missing".to_owned())
    };
    // The verification's time is taken on its thread, so the hand-off to it is not in the
    // floor (as in `floors::login_floor`).
    let verify = || async move {
        let hash = stored.clone();
        tokio::task::spawn_blocking(move || bare_verify(&hash))
            .await
            .map_err(|e| e.to_string())?
    };
    let insert_session = || async move {
        sessions
            .insert_one(floor_session(username))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // Login's read after the session's insert (`users::confirm_login`): by `_id` and hash.
    let confirm = || async move {
        let found = users
            .find_one(doc! {"_id": user_id, "password": stored.as_ref()})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| e.to_string())?;
        found
            .map(|_| ())
            .ok_or_else(|| "the bench user's hash changed".to_owned())
    };
    // Each step timed bare and added up.
    let floor = || async move {
        let started = Instant::now();
        lookup().await?;
        let looked_up = started.elapsed();
        let verified = verify().await?;
        let started = Instant::now();
        insert_session().await?;
        Ok(looked_up + verified + started.elapsed())
    };
    // The same, with the throttles' steps beside the lookup and beside the confirmation read
    // that follows the session's insert (which the floor does not have).
    // With `timed_delete` false the delete runs after the timing stops: the steps before the
    // verify alone, with the collection as the other series leave it.
    let with_steps = |timed_delete: bool| async move {
        let id = ObjectId::new();
        let started = Instant::now();
        let budgets = async {
            let (inserted, trust) = tokio::join!(
                attempts.insert_one(attempt_doc(id, pair, address, account, retention)),
                trusted.find_one(doc! {"_id": pair}),
            );
            inserted.map_err(|e| e.to_string())?;
            trust
                .map_err(|e| e.to_string())?
                .ok_or("the bare steps' trust is missing")?;
            let now = DateTime::now().timestamp_millis();
            let since = |d: Duration| DateTime::from_millis(now - millis(d));
            let found: Vec<Document> = attempts
                .find(doc! {
                    "_id": {"$ne": id},
                    "$or": [
                        {"pair": pair, "at": {"$gt": since(windows.0)}},
                        {"address": address, "at": {"$gt": since(windows.1)}},
                        {"account": account, "at": {"$gt": since(windows.2)}},
                    ],
                })
                .projection(doc! {"pair": 1, "address": 1, "account": 1, "at": 1})
                .await
                .map_err(|e| e.to_string())?
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(found.len())
        };
        let (found, seen) = tokio::join!(lookup(), budgets);
        found?;
        seen?;
        let checked = started.elapsed();
        let verified = verify().await?;
        let delete = || async move {
            attempts
                .delete_one(doc! {"_id": id})
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let started = Instant::now();
        insert_session().await?;
        if timed_delete {
            let (confirmed, deleted) = tokio::join!(confirm(), delete());
            confirmed?;
            deleted?;
            Ok(checked + verified + started.elapsed())
        } else {
            confirm().await?;
            let confirmed = started.elapsed();
            delete().await?;
            Ok(checked + verified + confirmed)
        }
    };
    let sides: [(String, &mut dyn AnySide); 6] = [
        (
            "floor: lookup + argon2id verify + session insert".to_owned(),
            &mut Floor(floor),
        ),
        (
            THROTTLES_ON.to_owned(),
            &mut Caller::login(throttled, username),
        ),
        (
            "login, throttles off".to_owned(),
            &mut Caller::login(unthrottled, username),
        ),
        (
            "refused by the throttles (429)".to_owned(),
            &mut Caller::throttled_login(throttled, &locked),
        ),
        (BARE_STEPS.to_owned(), &mut Floor(|| with_steps(true))),
        (
            "floor + the confirmation read + the throttles' steps before the verify".to_owned(),
            &mut Floor(|| with_steps(false)),
        ),
    ];
    let (names, mut sides): (Vec<String>, Vec<&mut dyn AnySide>) = sides.into_iter().unzip();
    let timings = round_robin(rounds, &mut sides).await?;
    Ok(LoginFailures {
        rounds,
        series: series(&names, &timings),
    })
}

/// The name of the series of logins with the throttles on.
pub const THROTTLES_ON: &str = "login, throttles on";

/// The name of the series that runs the throttles' steps bare beside the floor's.
pub const BARE_STEPS: &str = "floor + the confirmation read + the throttles' steps, bare";
