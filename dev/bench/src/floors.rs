//! Latency against the floor: each handler, called in-process on the real database and the
//! Cloudinary stand-in, beside the least work its route cannot avoid, alternating the two.
//!
//! - login: the handler vs one bare argon2id verification of the same stored hash;
//!   the floors run argon2id in working memory kept between calls, as the functions do, so the
//!   floor pays no allocation or page faults either, and on a worker thread, as the functions
//!   do, timed on that thread, so it pays no hand-off either: the strictest comparison;
//! - refresh: the handler vs one bare `find_one_and_update` (by `_id`, returning the document)
//!   in the same database's sessions collection;
//! - register (1 MiB avatar): the handler vs (argon2id hash in parallel with one upload of the
//!   same bytes) followed by one insert.
//!
//! Iterations alternate handler-first and floor-first, so drift in the machine's speed hits both
//! series alike; the report compares their medians (the target's measure) and gives the median of
//! the per-pair ratios beside it, which slow drift cannot move.
//!
//! Login's refusals get a run of their own ([`login_failures`]): an unknown username, an argon2id
//! user with a wrong password, a Node-era (bcrypt, cost 10) user with a wrong password and a
//! Node-era user's first login (which rehashes to argon2id), beside a bare argon2id and a bare
//! bcrypt verification, all taking turns round-robin, each against the unknown username: what
//! the time of a refusal tells about the account.
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use argon2::{
    Argon2, Block, PasswordHash,
    password_hash::{Output, SaltString, rand_core::OsRng},
};
use bytes::Bytes;
use futures::future::LocalBoxFuture;
use lambda_http::{Body, Response};
use mongodb::{
    bson::{DateTime, Document, doc, oid::ObjectId},
    options::ReturnDocument,
};
use secrecy::ExposeSecret as _;
use serde::Serialize;
use serde_json::Value;
use shared::{
    App,
    domain::ImageRef,
    sessions,
    store::Store,
    tokens::new_jti,
    users::{self, Identifier, UserDoc},
};
use testkit::node::{BcryptPrefix, NODE_BCRYPT_COST, NodePassword, node_user};

use crate::{
    dbproxy::DbProxy,
    stats::{Summary, median_sorted},
    workload,
};

/// How a handler compares with its floor.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub route: String,
    pub floor: String,
    pub handler: Summary,
    pub floor_timings: Summary,
    /// handler median / floor median.
    pub ratio: f64,
    /// The median over pairs of handler / floor: each pair ran back to back.
    pub paired_ratio: f64,
    /// The ratio of medians of the floor against itself in the same alternation (login only):
    /// this run's noise, as a ratio.
    pub control_ratio: Option<f64>,
    /// The ratio of medians of the functions' `password::verify` against the floor in the same
    /// alternation (login only): how much of the handler's extra time is the verify itself.
    pub verify_ratio: Option<f64>,
    /// handler median - floor median, in milliseconds.
    pub extra_ms: f64,
}

impl Comparison {
    fn new(route: &str, floor: &str, handler: &[Duration], floor_t: &[Duration]) -> Self {
        let paired_ratio = paired_ratio(handler, floor_t);
        let (handler, floor_timings) = (Summary::of(handler), Summary::of(floor_t));
        Self {
            route: route.to_owned(),
            floor: floor.to_owned(),
            ratio: handler.median_ms / floor_timings.median_ms,
            paired_ratio,
            control_ratio: None,
            verify_ratio: None,
            extra_ms: handler.median_ms - floor_timings.median_ms,
            handler,
            floor_timings,
        }
    }
}

/// One route's handler, called in-process the way the runtime calls it, with the state the
/// next call needs (the newest refresh token, a fresh username per registration).
pub struct Caller {
    app: &'static App,
    kind: Kind,
}

enum Kind {
    /// Logins as `username` with `password`, answered with `status`.
    Login {
        username: String,
        password: &'static str,
        status: u16,
    },
    /// Successful first logins, each as a Node-era user with `hash`, inserted for it.
    FirstLogins {
        hash: NodePassword,
    },
    Refresh {
        token: String,
    },
    Register {
        avatar: Bytes,
    },
    CurrentUser {
        access_token: String,
    },
}

impl Caller {
    pub fn login(app: &'static App, username: &str) -> Self {
        Self::login_as(app, username, workload::PASSWORD, 200)
    }

    /// Logins as `username` with [`workload::WRONG_PASSWORD`], refused (401) whether or not the
    /// user exists.
    pub fn refused_login(app: &'static App, username: &str) -> Self {
        Self::login_as(app, username, workload::WRONG_PASSWORD, 401)
    }

    /// Logins as `username` with [`workload::WRONG_PASSWORD`] that the throttles refuse (429).
    pub fn throttled_login(app: &'static App, username: &str) -> Self {
        Self::login_as(app, username, workload::WRONG_PASSWORD, 429)
    }

    fn login_as(app: &'static App, username: &str, password: &'static str, status: u16) -> Self {
        let username = username.to_owned();
        Self {
            app,
            kind: Kind::Login {
                username,
                password,
                status,
            },
        }
    }

    /// One successful first login per call, each as a Node-era user of its own with `hash`,
    /// inserted before the call and deleted after it (neither timed): FerretDB scans the users
    /// collection for every lookup by name, and a miss scans all of it, so the calls beside
    /// these must meet the collection at the same small size in every round. (Users seeded
    /// before the run made an unknown username's refusal 14 ms slower than a wrong password's
    /// with 123 of them.)
    pub fn first_logins(app: &'static App, hash: NodePassword) -> Self {
        Self {
            app,
            kind: Kind::FirstLogins { hash },
        }
    }

    /// Starts a refresh chain from a fresh login of `username`.
    pub async fn refresh(app: &'static App, username: &str) -> Result<Self, String> {
        let token = fresh_refresh_token(app, username).await?;
        Ok(Self {
            app,
            kind: Kind::Refresh { token },
        })
    }

    /// Registrations of fresh users with a 1 MiB avatar.
    pub fn register(app: &'static App, avatar: Bytes) -> Self {
        Self {
            app,
            kind: Kind::Register { avatar },
        }
    }

    /// current-user with the access token of a fresh login of `username`.
    pub async fn current_user(app: &'static App, username: &str) -> Result<Self, String> {
        let body = login_body(app, username).await?;
        let access_token = body["data"]["accessToken"]
            .as_str()
            .ok_or("login answer without an access token")?
            .to_owned();
        Ok(Self {
            app,
            kind: Kind::CurrentUser { access_token },
        })
    }

    /// One call: builds the request (untimed), then times `handle` alone and checks the answer.
    /// Returns when the call started and ended.
    pub async fn call(&mut self) -> Result<(Instant, Instant), String> {
        let app = self.app;
        match &mut self.kind {
            Kind::Login {
                username,
                password,
                status,
            } => timed_login(app, username, password, *status).await,
            Kind::FirstLogins { hash } => {
                let store = store(app).await?;
                let user = node_user(&workload::unique_name("bn"))
                    .hashed(hash)
                    .insert(&store.db)
                    .await;
                let timed = timed_login(app, &user.username, &user.password, 200).await;
                users::collection(store)
                    .delete_one(doc! {"_id": user.id})
                    .await
                    .map_err(|e| format!("deleting a first login's user: {e}"))?;
                timed
            }
            Kind::Refresh { token } => {
                let req = testkit::with_cookie(
                    testkit::post(workload::REFRESH_PATH, None, Body::Empty),
                    "refreshToken",
                    token,
                );
                let started = Instant::now();
                let resp = refresh::handle(app, req).await;
                let ended = Instant::now();
                let body = expect_status(&resp, 200, "refresh")?;
                *token =
                    workload::refresh_token_of(&body).ok_or("refresh answer without a token")?;
                Ok((started, ended))
            }
            Kind::CurrentUser { access_token } => {
                let req = testkit::with_cookie(
                    testkit::request("GET", workload::CURRENT_USER_PATH, None, Body::Empty),
                    "accessToken",
                    access_token,
                );
                let started = Instant::now();
                let resp = current_user::handle(app, req).await;
                let ended = Instant::now();
                expect_status(&resp, 200, "current-user")?;
                Ok((started, ended))
            }
            Kind::Register { avatar } => {
                let username = workload::unique_name("bh");
                let (ct, body) = workload::register_form(&username, avatar, None);
                let req = testkit::post(workload::REGISTER_PATH, Some(&ct), Body::Binary(body));
                let started = Instant::now();
                let resp = register::handle(app, req).await;
                let ended = Instant::now();
                expect_status(&resp, 201, "register")?;
                Ok((started, ended))
            }
        }
    }
}

/// One login through the handler, timed alone, answered with `status`.
async fn timed_login(
    app: &App,
    username: &str,
    password: &str,
    status: u16,
) -> Result<(Instant, Instant), String> {
    let body = workload::login_json_with(username, password);
    let req = testkit::post_json(workload::LOGIN_PATH, &body);
    let started = Instant::now();
    let resp = login::handle(app, req).await;
    let ended = Instant::now();
    expect_status(&resp, status, "login")?;
    Ok((started, ended))
}

/// One side of a comparison: something to time, one call at a time.
pub trait Side {
    async fn time(&mut self) -> Result<Duration, String>;
}

/// Any [`Side`] with its future boxed, so that sides of different types can take turns in one
/// [`round_robin`].
pub trait AnySide {
    fn time_boxed(&mut self) -> LocalBoxFuture<'_, Result<Duration, String>>;
}

impl<S: Side> AnySide for S {
    fn time_boxed(&mut self) -> LocalBoxFuture<'_, Result<Duration, String>> {
        Box::pin(self.time())
    }
}

impl Side for Caller {
    async fn time(&mut self) -> Result<Duration, String> {
        let (start, end) = self.call().await?;
        Ok(end - start)
    }
}

/// A floor: a closure returning a future that times one call of its own.
#[derive(Clone)]
pub struct Floor<F>(pub F);

/// Nothing to time: for a breakdown whose calls need nothing run between them.
pub struct Nothing;

impl Side for Nothing {
    async fn time(&mut self) -> Result<Duration, String> {
        Ok(Duration::ZERO)
    }
}

impl<F, FF> Side for Floor<F>
where
    F: FnMut() -> FF,
    FF: Future<Output = Result<Duration, String>>,
{
    async fn time(&mut self) -> Result<Duration, String> {
        (self.0)().await
    }
}

/// Times `a` and `b` `pairs` times each (after `WARMUP` unrecorded pairs), swapping which goes
/// first on every pair.
async fn alternate(
    pairs: usize,
    a: &mut impl Side,
    b: &mut impl Side,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let [at, bt]: [Vec<Duration>; 2] = round_robin(pairs, &mut [a as &mut dyn AnySide, b])
        .await?
        .try_into()
        .map_err(|_| "round_robin lost a side")?;
    Ok((at, bt))
}

/// Times each of `sides` once per round, `rounds` times (after `WARMUP` unrecorded rounds), in
/// [`turn_order`]: every side goes first equally often, so drift in the machine's speed hits all
/// series alike. The timings come back in the order of `sides`.
pub(crate) async fn round_robin(
    rounds: usize,
    sides: &mut [&mut dyn AnySide],
) -> Result<Vec<Vec<Duration>>, String> {
    let mut timings = vec![Vec::with_capacity(rounds); sides.len()];
    for round in 0..WARMUP + rounds {
        for i in turn_order(round, sides.len()) {
            let took = sides[i].time_boxed().await?;
            if round >= WARMUP {
                timings[i].push(took);
            }
        }
    }
    Ok(timings)
}

/// The order of `n` sides' turns in round `round`: from side `round % n` on, wrapping around
/// (for two sides: first one, then the other, goes first).
fn turn_order(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (round + k) % n)
}

/// Unrecorded rounds before every timed run.
pub const WARMUP: usize = 3;

/// The seeded user's stored password hash, read once for the login floors.
pub async fn seeded_hash(app: &App, username: &str) -> Result<Arc<str>, String> {
    let store = store(app).await?;
    let user = users::find_for_login(store, &Identifier::Username(username.to_owned()), false)
        .await
        .map_err(|e| format!("reading the seeded user: {e}"))?
        .ok_or("the seeded user is missing")?;
    Ok(user.password.into())
}

/// The login floor: one bare argon2id verification of `stored_hash`, on tokio's blocking pool
/// (one thread, reused, as the functions' own worker) and timed there.
pub fn login_floor(stored_hash: Arc<str>) -> impl Side + Clone {
    verify_floor(stored_hash, bare_verify)
}

/// The reference for a Node-era account: one bare bcrypt verification of `stored_hash`, run and
/// timed as [`login_floor`] runs argon2id.
fn bcrypt_floor(stored_hash: Arc<str>) -> impl Side + Clone {
    verify_floor(stored_hash, bare_bcrypt_verify)
}

/// `verify(stored_hash)` on tokio's blocking pool, with the time it measures there.
fn verify_floor(
    stored_hash: Arc<str>,
    verify: fn(&str) -> Result<Duration, String>,
) -> impl Side + Clone {
    Floor(move || {
        let stored_hash = stored_hash.clone();
        async move {
            tokio::task::spawn_blocking(move || verify(&stored_hash))
                .await
                .map_err(|e| e.to_string())?
        }
    })
}

/// handler median / floor median, over timings of the two sides.
fn ratio_of_medians(a: &[Duration], b: &[Duration]) -> f64 {
    Summary::of(a).median_ms / Summary::of(b).median_ms
}

/// The median over pairs of `a[i] / b[i]`, each pair timed back to back.
fn paired_ratio(a: &[Duration], b: &[Duration]) -> f64 {
    let mut paired: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    paired.sort_by(f64::total_cmp);
    median_sorted(&paired)
}

pub async fn login(app: &'static App, username: &str, pairs: usize) -> Result<Comparison, String> {
    let stored = seeded_hash(app, username).await?;
    let mut floor = login_floor(stored.clone());
    let (h, f) = alternate(pairs, &mut Caller::login(app, username), &mut floor).await?;
    let mut comparison = Comparison::new("login", "bare argon2id verify", &h, &f);
    // The same alternation with the floor on both sides: how far this run's noise alone moves
    // a ratio of medians.
    let (a, b) = alternate(pairs, &mut floor.clone(), &mut floor).await?;
    comparison.control_ratio = Some(ratio_of_medians(&a, &b));
    // The functions' own verification path alone (hand-off to their argon2 worker and back)
    // against the floor: what of the handler's extra time is the verify itself.
    let stored = &*stored;
    let mut verify = Floor(|| async move {
        let started = Instant::now();
        let verdict = shared::password::verify(workload::PASSWORD, Some(stored)).await;
        let took = started.elapsed();
        match verdict {
            Ok(shared::password::Verdict::Match { .. }) => Ok(took),
            other => Err(format!("the functions' verify did not match: {other:?}")),
        }
    });
    let (v, f) = alternate(pairs, &mut verify, &mut floor).await?;
    comparison.verify_ratio = Some(ratio_of_medians(&v, &f));
    Ok(comparison)
}

/// Login's refusals and a Node-era account's first login beside the verifications they are made
/// of, timed round-robin in one run (see [`login_failures`]).
#[derive(Debug, Clone, Serialize)]
pub struct LoginFailures {
    /// Timed calls per series, after `WARMUP` rounds.
    pub rounds: usize,
    /// The unknown username first: every other series is compared with it.
    pub series: Vec<Series>,
}

/// One series of a [`round_robin`] run.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    pub timings: Summary,
    /// This series against the run's first, `None` for the first itself.
    pub vs_first: Option<Ratio>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratio {
    /// This median / the first series' median.
    pub of_medians: f64,
    /// The median over rounds of this call / the first series' call in the same round.
    pub per_round: f64,
}

/// Names with their timings, each series compared with the first.
pub(crate) fn series(names: &[String], timings: &[Vec<Duration>]) -> Vec<Series> {
    let first = timings.first().map(Vec::as_slice).unwrap_or_default();
    names
        .iter()
        .zip(timings)
        .enumerate()
        .map(|(i, (name, t))| Series {
            name: name.clone(),
            timings: Summary::of(t),
            vs_first: (i > 0).then(|| Ratio {
                of_medians: ratio_of_medians(t, first),
                per_round: paired_ratio(t, first),
            }),
        })
        .collect()
}

/// `rounds` rounds of: (a) a login as a username nobody has (the handler verifies the dummy
/// argon2id hash), (b) the seeded argon2id user with a wrong password, (c) a Node-era user
/// (bcrypt, cost 10) with a wrong password, (d) a Node-era user's first successful login (bcrypt,
/// then the rehash to argon2id, then the session), a bare argon2id verification (the login
/// floor) and a bare bcrypt verification at cost 10. Every first login needs a user of its own
/// ([`Caller::first_logins`]); they all share one bcrypt hash, made before the first round
/// (the salt makes no difference to the time).
pub async fn login_failures(
    app: &'static App,
    username: &str,
    rounds: usize,
) -> Result<LoginFailures, String> {
    let hash = NodePassword::new(workload::PASSWORD, NODE_BCRYPT_COST, BcryptPrefix::TwoB);
    let refused = node_user(&workload::unique_name("bn"))
        .hashed(&hash)
        .insert(&store(app).await?.db)
        .await;
    let sides: [(String, &mut dyn AnySide); 6] = [
        (
            "(a) unknown username".to_owned(),
            &mut Caller::refused_login(app, &workload::unique_name("nobody")),
        ),
        (
            "(b) argon2id user, wrong password".to_owned(),
            &mut Caller::refused_login(app, username),
        ),
        (
            format!("(c) Node bcrypt-{NODE_BCRYPT_COST} user, wrong password"),
            &mut Caller::refused_login(app, &refused.username),
        ),
        (
            format!("(d) Node bcrypt-{NODE_BCRYPT_COST} user, first login"),
            &mut Caller::first_logins(app, hash),
        ),
        (
            "bare argon2id verify (login floor)".to_owned(),
            &mut login_floor(seeded_hash(app, username).await?),
        ),
        (
            format!("bare bcrypt::verify, cost {NODE_BCRYPT_COST}"),
            &mut bcrypt_floor(refused.password_hash.into()),
        ),
    ];
    let (names, mut sides): (Vec<String>, Vec<&mut dyn AnySide>) = sides.into_iter().unzip();
    let timings = round_robin(rounds, &mut sides).await?;
    Ok(LoginFailures {
        rounds,
        series: series(&names, &timings),
    })
}

pub async fn refresh(
    app: &'static App,
    username: &str,
    pairs: usize,
) -> Result<Comparison, String> {
    let store = store(app).await?;
    let mut caller = Caller::refresh(app, username).await?;
    // The floor updates one document by `_id` in the sessions collection, so it meets the same
    // collection size as the handler's session lookup; the document is the bench's own (revoked,
    // expired, no user), whatever the session model is, and no token can ever name it.
    let collection = store.db.collection::<Document>(sessions::SESSIONS);
    let floor_id = format!("bench-floor-{}", hex::encode(rand::random::<[u8; 8]>()));
    let floor_id = floor_id.as_str();
    let fields =
        || doc! {"tokenHash": sessions::token_hash(&new_jti()), "rotatedAt": DateTime::now()};
    let mut first = fields();
    first.insert("_id", floor_id);
    first.insert("revokedAt", DateTime::now());
    first.insert("expiresAt", DateTime::now());
    collection
        .insert_one(first)
        .await
        .map_err(|e| format!("creating the floor document: {e}"))?;
    let collection = &collection;
    let floor = || async move {
        let started = Instant::now();
        let updated = collection
            .find_one_and_update(doc! {"_id": floor_id}, doc! {"$set": fields()})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        updated.ok_or("the floor document is missing")?;
        Ok(took)
    };
    let (h, f) = alternate(pairs, &mut caller, &mut Floor(floor)).await?;
    Ok(Comparison::new(
        "refresh",
        "bare find_one_and_update",
        &h,
        &f,
    ))
}

/// current-user against the two reads it cannot skip: its session and its user, each by `_id`,
/// concurrently, as plain documents, on the same collections.
pub async fn current_user(
    app: &'static App,
    username: &str,
    pairs: usize,
) -> Result<Comparison, String> {
    let store = store(app).await?;
    let mut caller = Caller::current_user(app, username).await?;
    let Kind::CurrentUser { access_token } = &caller.kind else {
        return Err("current-user caller of another kind".into());
    };
    let claims = app
        .tokens
        .verify_access(access_token)
        .map_err(|e| format!("the bench's own access token: {e}"))?;
    let sid = claims.sid.clone();
    let uid = ObjectId::parse_str(&claims.sub).map_err(|e| e.to_string())?;
    let sessions = store.db.collection::<Document>(sessions::SESSIONS);
    let users = store.db.collection::<Document>(users::USERS);
    let (sessions, users, sid) = (&sessions, &users, sid.as_str());
    let floor = || async move {
        let started = Instant::now();
        let (session, user) = tokio::join!(
            sessions.find_one(doc! {"_id": sid}),
            users.find_one(doc! {"_id": uid})
        );
        let took = started.elapsed();
        session
            .map_err(|e| e.to_string())?
            .ok_or("the floor's session is missing")?;
        user.map_err(|e| e.to_string())?
            .ok_or("the floor's user is missing")?;
        Ok(took)
    };
    let (h, f) = alternate(pairs, &mut caller, &mut Floor(floor)).await?;
    Ok(Comparison::new(
        "current-user",
        "bare session + user reads by _id (concurrent)",
        &h,
        &f,
    ))
}

/// The authorizer's whole per-request work (event in, simple response out) against a bare HS256
/// decode of the same token with jsonwebtoken, both in-process: what it adds to every request
/// of the platform on top of the verification itself.
pub async fn authorizer(
    app: &'static App,
    username: &str,
    pairs: usize,
) -> Result<Comparison, String> {
    let body = login_body(app, username).await?;
    let token = body["data"]["accessToken"]
        .as_str()
        .ok_or("login answer without an access token")?
        .to_owned();
    let secret = std::env::var("ACCESS_TOKEN_SECRET").map_err(|_| "ACCESS_TOKEN_SECRET unset")?;
    let vars =
        std::collections::HashMap::from([("ACCESS_TOKEN_SECRET".to_owned(), secret.clone())]);
    let authorizer = ::authorizer::Authorizer::from_vars(
        &vars,
        &::authorizer::extension::Extension::unreachable(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let event = workload::authorizer_event(&token);
    let (authorizer, event) = (&authorizer, &event);
    let handler = || async move {
        let started = Instant::now();
        let answer = authorizer.authorize(event);
        let took = started.elapsed();
        if answer["isAuthorized"] != Value::Bool(true) {
            return Err(format!(
                "the authorizer refused the bench's token: {answer}"
            ));
        }
        Ok(took)
    };
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let (key, validation, token) = (&key, &validation, token.as_str());
    let floor = || async move {
        let started = Instant::now();
        let decoded = jsonwebtoken::decode::<Value>(token, key, validation);
        let took = started.elapsed();
        decoded.map_err(|e| e.to_string())?;
        Ok(took)
    };
    let (h, f) = alternate(pairs, &mut Floor(handler), &mut Floor(floor)).await?;
    Ok(Comparison::new(
        "authorizer",
        "bare HS256 decode (jsonwebtoken)",
        &h,
        &f,
    ))
}

/// One argon2id verification of `stored` (parse, hash, compare) and nothing else, timed.
pub(crate) fn bare_verify(stored: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let parsed = PasswordHash::new(stored).map_err(|e| e.to_string())?;
    let (salt, expected) = parsed.salt.zip(parsed.hash).ok_or("no salt or hash")?;
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| e.to_string())?;
    let mut out = vec![0u8; expected.len()];
    argon2_kept(workload::PASSWORD.as_bytes(), salt, &mut out)?;
    let ok = Output::new(&out).is_ok_and(|o| o == expected);
    let took = started.elapsed();
    if !ok {
        return Err("the floor's argon2id verification failed".to_owned());
    }
    Ok(took)
}

/// One bcrypt verification of `stored` (what the functions run for a Node-era account), timed.
fn bare_bcrypt_verify(stored: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let verdict = bcrypt::verify(workload::PASSWORD, stored);
    let took = started.elapsed();
    match verdict {
        Ok(true) => Ok(took),
        Ok(false) => Err("the bare bcrypt verification failed".to_owned()),
        Err(e) => Err(format!("the bare bcrypt verification: {e}")),
    }
}

/// The floors' argon2id working memory, kept between calls.
static FLOOR_MEMORY: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// argon2id with the default (OWASP) parameters, in [`FLOOR_MEMORY`].
fn argon2_kept(password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), String> {
    let ctx = Argon2::default();
    let mut blocks = FLOOR_MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    let needed = ctx.params().block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    ctx.hash_password_into_with_memory(password, salt, out, blocks.as_mut_slice())
        .map_err(|e| e.to_string())
}

pub async fn register(app: &'static App, pairs: usize) -> Result<Comparison, String> {
    let store = store(app).await?;
    let avatar = Bytes::from(workload::png(workload::MIB));
    let mut caller = Caller::register(app, avatar.clone());
    let avatar = &avatar;
    let http = &reqwest::Client::new();
    let floor = || async move {
        let username = workload::unique_name("bf");
        let started = Instant::now();
        let hash = tokio::task::spawn_blocking(|| {
            let salt = SaltString::generate(&mut OsRng);
            let mut raw = [0u8; 64];
            let raw = salt.decode_b64(&mut raw).map_err(|e| e.to_string())?;
            let mut out = [0u8; 32];
            argon2_kept(workload::PASSWORD.as_bytes(), raw, &mut out)?;
            let out = Output::new(&out).map_err(|e| e.to_string())?;
            Ok::<_, String>(format!("$argon2id$v=19$m=19456,t=2,p=1${salt}${out}"))
        });
        let (hash, avatar) = tokio::join!(hash, upload(app, http, avatar.clone()));
        let hash = hash.map_err(|e| e.to_string())??;
        insert(store, &username, hash, avatar?).await?;
        Ok(started.elapsed())
    };
    let (h, f) = alternate(pairs, &mut caller, &mut Floor(floor)).await?;
    Ok(Comparison::new(
        "register (1 MiB avatar)",
        "argon2id hash || one upload, then one insert",
        &h,
        &f,
    ))
}

/// Where one handler's time goes, seen from the database's side of a [`DbProxy`].
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    pub route: String,
    pub calls: usize,
    pub handler_median_ms: f64,
    /// Median number of database round trips per call.
    pub round_trips: f64,
    /// Median time per call with at least one database request outstanding.
    pub db_wait_median_ms: f64,
    /// Median of (handler - database wait): parsing, hashing, signing, uploads, scheduling.
    pub outside_db_median_ms: f64,
    /// Per command (`find users`): median time per call, over the calls that sent it.
    pub commands: Vec<(String, f64)>,
}

/// Calls a handler `calls` times through an app whose database traffic goes through `proxy`,
/// running `between` before each call, as the latency comparison runs the floor between
/// handler calls (for login this matters: a 19 MiB argon2 pass evicts the database server's
/// working set from the shared caches, so the round trips after it are slower).
pub async fn breakdown(
    route: &str,
    caller: &mut Caller,
    proxy: &DbProxy,
    calls: usize,
    between: &mut impl Side,
) -> Result<Breakdown, String> {
    let (mut total, mut trips, mut wait, mut outside) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut commands: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..WARMUP + calls {
        between.time().await?;
        let (start, end) = caller.call().await?;
        if i < WARMUP {
            continue;
        }
        let usage = proxy.usage(start, end);
        let took = (end - start).as_secs_f64() * 1e3;
        let waited = usage.waiting.as_secs_f64() * 1e3;
        total.push(took);
        trips.push(usage.round_trips as f64);
        wait.push(waited);
        outside.push(took - waited);
        for (command, d) in usage.by_command {
            let ms = d.as_secs_f64() * 1e3;
            match commands.iter_mut().find(|(c, _)| *c == command) {
                Some((_, v)) => v.push(ms),
                None => commands.push((command, vec![ms])),
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        median_sorted(&v)
    };
    Ok(Breakdown {
        route: route.to_owned(),
        calls,
        handler_median_ms: median(total),
        round_trips: median(trips),
        db_wait_median_ms: median(wait),
        outside_db_median_ms: median(outside),
        commands: commands.into_iter().map(|(c, v)| (c, median(v))).collect(),
    })
}

/// One signed upload of `bytes` to the configured Cloudinary (the stand-in), straight from
/// memory with a plain pooled reqwest client: what any client must send and wait for, with none
/// of the handler's staging.
async fn upload(app: &App, http: &reqwest::Client, bytes: Bytes) -> Result<ImageRef, String> {
    let c = &app.media().map_err(|e| e.to_string())?.cloudinary;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let params = [
        ("folder", c.folder.as_str()),
        ("public_id", id.as_str()),
        ("timestamp", timestamp.as_str()),
    ];
    let signature = shared::media::cloudinary::request_signature(
        &params,
        c.api_secret.expose_secret(),
        c.signature_algorithm,
    );
    let len = bytes.len() as u64;
    let file = reqwest::multipart::Part::stream_with_length(reqwest::Body::from(bytes), len)
        .file_name(format!("{id}.png"))
        .mime_str("image/png")
        .map_err(|e| e.to_string())?;
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in params {
        form = form.text(k, v.to_owned());
    }
    form = form
        .text("api_key", c.api_key.clone())
        .text("signature", signature)
        .part("file", file);
    if c.signature_algorithm != shared::config::SignatureAlgorithm::Sha1 {
        form = form.text("signature_algorithm", c.signature_algorithm.as_str());
    }
    let url = c
        .api_base
        .join(&format!("v1_1/{}/image/upload", c.cloud_name))
        .map_err(|e| e.to_string())?;
    let resp = http
        .post(url)
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("floor upload: {e}"))?;
    let status = resp.status();
    let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("floor upload answered {status}: {answer}"));
    }
    Ok(ImageRef {
        url: answer["secure_url"].as_str().unwrap_or_default().to_owned(),
        public_id: format!("{}/{id}", c.folder),
    })
}

async fn insert(
    store: &Store,
    username: &str,
    hash: String,
    avatar: ImageRef,
) -> Result<(), String> {
    let now = DateTime::now();
    let doc = UserDoc {
        id: ObjectId::new(),
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        full_name: "Bench Floor".to_owned(),
        avatar: avatar.url,
        avatar_public_id: Some(avatar.public_id),
        cover_image: String::new(),
        cover_image_public_id: None,
        watch_history: Vec::new(),
        password: hash,
        refresh_token: None,
        created_at: now,
        updated_at: now,
    };
    users::collection(store)
        .insert_one(&doc)
        .await
        .map(|_| ())
        .map_err(|e| format!("floor insert: {e}"))
}

pub async fn store(app: &App) -> Result<&Store, String> {
    app.store()
        .await
        .map_err(|e| format!("the database is not ready: {e}"))
}

/// Logs the seeded user in through the login handler and returns the refresh token.
pub async fn fresh_refresh_token(app: &'static App, username: &str) -> Result<String, String> {
    let body = login_body(app, username).await?;
    workload::refresh_token_of(&body).ok_or_else(|| "login answer without a refresh token".into())
}

/// The answer of a fresh login of `username`.
pub async fn login_body(app: &'static App, username: &str) -> Result<Value, String> {
    let req = testkit::post_json(workload::LOGIN_PATH, &workload::login_json(username));
    let resp = login::handle(app, req).await;
    expect_status(&resp, 200, "login")
}

/// The JSON body, if the status is the expected one.
pub fn expect_status(resp: &Response<Body>, status: u16, what: &str) -> Result<Value, String> {
    let text = match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    if resp.status().as_u16() != status {
        return Err(format!(
            "{what} answered {} instead of {status}: {text}",
            resp.status()
        ));
    }
    serde_json::from_str(&text).map_err(|e| format!("{what} answered non-JSON ({e}): {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paired_ratio_is_the_median_of_per_pair_ratios_not_the_ratio_of_medians() {
        let c = Comparison::new("r", "f", &ms(&[10, 20, 30]), &ms(&[10, 10, 40]));
        assert_eq!(c.ratio, 2.0, "median 20 over median 10");
        assert_eq!(c.paired_ratio, 1.0, "pairs 1.0, 2.0 and 0.75");
        assert_eq!(c.extra_ms, 10.0);
        assert_eq!((c.control_ratio, c.verify_ratio), (None, None));
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn each_side_goes_first_in_turn_and_two_sides_swap_every_round() {
        let orders: Vec<Vec<usize>> = (0..4).map(|r| turn_order(r, 3).collect()).collect();
        assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
        let pairs: Vec<Vec<usize>> = (0..3).map(|r| turn_order(r, 2).collect()).collect();
        assert_eq!(pairs, [[0, 1], [1, 0], [0, 1]]);
        assert_eq!(turn_order(5, 0).count(), 0);
    }

    #[test]
    fn the_per_pair_ratio_takes_the_median_over_pairs() {
        assert_eq!(paired_ratio(&ms(&[10, 30, 40]), &ms(&[10, 10, 40])), 1.0);
        assert_eq!(paired_ratio(&ms(&[20, 30]), &ms(&[10, 10])), 2.5);
        assert!(paired_ratio(&[], &[]).is_nan());
    }

    #[test]
    fn every_series_but_the_first_is_compared_with_the_first() {
        let names = ["a", "b", "c"].map(str::to_owned);
        let rows = series(
            &names,
            &[ms(&[10, 20, 30]), ms(&[20, 40, 30]), ms(&[10, 20, 60])],
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].name, "b");
        assert_eq!(rows[1].timings.median_ms, 30.0);
        assert!(rows[0].vs_first.is_none());
        let b = rows[1].vs_first.expect("b against a");
        assert_eq!((b.of_medians, b.per_round), (1.5, 2.0));
        let c = rows[2].vs_first.expect("c against a");
        assert_eq!((c.of_medians, c.per_round), (1.0, 1.0));
    }

    /// A side that notes its turns in a shared log and takes `ms` milliseconds.
    struct Noted<'a> {
        id: usize,
        ms: u64,
        log: &'a std::cell::RefCell<Vec<usize>>,
    }

    impl Side for Noted<'_> {
        async fn time(&mut self) -> Result<Duration, String> {
            self.log.borrow_mut().push(self.id);
            Ok(Duration::from_millis(self.ms))
        }
    }

    #[tokio::test]
    async fn a_round_robin_warms_up_then_records_every_side_once_a_round_in_turn() {
        let log = std::cell::RefCell::new(Vec::new());
        let side = |id, ms| Noted { id, ms, log: &log };
        let (mut a, mut b, mut c) = (side(0, 1), side(1, 2), side(2, 3));
        let timings = round_robin(2, &mut [&mut a, &mut b, &mut c])
            .await
            .expect("fake sides never fail");
        assert_eq!(timings, [ms(&[1, 1]), ms(&[2, 2]), ms(&[3, 3])]);
        let turns: Vec<usize> = (0..WARMUP + 2).flat_map(|r| turn_order(r, 3)).collect();
        assert_eq!(*log.borrow(), turns);
        log.borrow_mut().clear();
        let (at, bt) = alternate(1, &mut a, &mut b).await.expect("fake");
        assert_eq!((at, bt), (ms(&[1]), ms(&[2])));
        assert_eq!(*log.borrow(), [0, 1, 1, 0, 0, 1, 1, 0]);
    }
}
