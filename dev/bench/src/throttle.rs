//! Login with the password throttles on, beside the same login with them off, beside its floor
//! and beside a refused (throttled) attempt, round-robin in one run.
//!
//! The floor is what a successful login cannot skip, each step bare, one after the other as
//! login must run them: the user's lookup by name, one argon2id verification (in kept working
//! memory, timed on its thread, as [`crate::floors::login_floor`]), and the session's insert.
//! The throttled login adds, beside the lookup, its attempt's insert with the pair's trust read
//! beside it and then the budgets' one read; and beside the session's insert, the delete of its
//! attempt record (and the trust's rewrite when that says something new, which a returning
//! user's sign-in does not).
use std::time::Instant;

use mongodb::bson::{DateTime, Document, doc};
use shared::{App, sessions, tokens::new_jti, users};

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

/// `rounds` rounds of: the floor, login with the throttles on (`throttled`), login with them
/// off (`unthrottled`), and an attempt the throttles refuse; each against the floor.
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
    let (users, sessions) = (
        store.db.collection::<Document>(users::USERS),
        store.db.collection::<Document>(sessions::SESSIONS),
    );
    let (users, sessions, stored) = (&users, &sessions, &stored);
    // Each step timed bare and added up: the verification's time is taken on its thread, so
    // the hand-off to it is not in the floor (as in `floors::login_floor`).
    let floor = || async move {
        let started = Instant::now();
        let found = users
            .find_one(doc! {"username": username})
            .await
            .map_err(|e| e.to_string())?;
        let lookup = started.elapsed();
        found.ok_or("the bench user is missing")?;
        let hash = stored.clone();
        let verified = tokio::task::spawn_blocking(move || bare_verify(&hash))
            .await
            .map_err(|e| e.to_string())??;
        // A document shaped like a session (the bench's own: expired, revoked, for no user).
        let now = DateTime::now();
        let session = doc! {
            "_id": format!("bench-floor-{}", hex::encode(rand::random::<[u8; 12]>())),
            "claims": {"username": username, "email": "bench@example.com", "fullName": "Bench"},
            "createdAt": now, "expiresAt": now, "revokedAt": now,
            "firstToken": sessions::token_hash(&new_jti()),
        };
        let started = Instant::now();
        sessions
            .insert_one(session)
            .await
            .map_err(|e| e.to_string())?;
        Ok(lookup + verified + started.elapsed())
    };
    let sides: [(String, &mut dyn AnySide); 4] = [
        (
            "floor: lookup + argon2id verify + session insert".to_owned(),
            &mut Floor(floor),
        ),
        (
            "login, throttles on".to_owned(),
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
    ];
    let (names, mut sides): (Vec<String>, Vec<&mut dyn AnySide>) = sides.into_iter().unzip();
    let timings = round_robin(rounds, &mut sides).await?;
    Ok(LoginFailures {
        rounds,
        series: series(&names, &timings),
    })
}
