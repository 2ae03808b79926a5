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
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use argon2::{
    Argon2, Block, PasswordHash,
    password_hash::{Output, SaltString, rand_core::OsRng},
};
use bytes::Bytes;
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
        let mut paired: Vec<f64> = handler
            .iter()
            .zip(floor_t)
            .map(|(h, f)| h.as_secs_f64() / f.as_secs_f64())
            .collect();
        paired.sort_by(f64::total_cmp);
        let (handler, floor_timings) = (Summary::of(handler), Summary::of(floor_t));
        Self {
            route: route.to_owned(),
            floor: floor.to_owned(),
            ratio: handler.median_ms / floor_timings.median_ms,
            paired_ratio: median_sorted(&paired),
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
    Login { username: String },
    Refresh { token: String },
    Register { avatar: Bytes },
}

impl Caller {
    pub fn login(app: &'static App, username: &str) -> Self {
        let username = username.to_owned();
        Self {
            app,
            kind: Kind::Login { username },
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

    /// One call: builds the request (untimed), then times `handle` alone and checks the answer.
    /// Returns when the call started and ended.
    pub async fn call(&mut self) -> Result<(Instant, Instant), String> {
        let app = self.app;
        match &mut self.kind {
            Kind::Login { username } => {
                let req = testkit::post_json(workload::LOGIN_PATH, &workload::login_json(username));
                let started = Instant::now();
                let resp = login::handle(app, req).await;
                let ended = Instant::now();
                expect_status(&resp, 200, "login")?;
                Ok((started, ended))
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

/// One side of a comparison: something to time, one call at a time.
pub trait Side {
    async fn time(&mut self) -> Result<Duration, String>;
}

impl Side for Caller {
    async fn time(&mut self) -> Result<Duration, String> {
        let (start, end) = self.call().await?;
        Ok(end - start)
    }
}

/// A floor: a closure returning a future that times one call of its own.
#[derive(Clone)]
pub struct Floor<F>(F);

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
    let (mut at, mut bt) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..WARMUP + pairs {
        let (x, y) = if i % 2 == 0 {
            let x = a.time().await?;
            (x, b.time().await?)
        } else {
            let y = b.time().await?;
            (a.time().await?, y)
        };
        if i >= WARMUP {
            at.push(x);
            bt.push(y);
        }
    }
    Ok((at, bt))
}

const WARMUP: usize = 3;

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
    Floor(move || {
        let stored_hash = stored_hash.clone();
        async move {
            tokio::task::spawn_blocking(move || bare_verify(&stored_hash))
                .await
                .map_err(|e| e.to_string())?
        }
    })
}

/// handler median / floor median, over timings of the two sides.
fn ratio_of_medians(a: &[Duration], b: &[Duration]) -> f64 {
    Summary::of(a).median_ms / Summary::of(b).median_ms
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

/// One argon2id verification of `stored` (parse, hash, compare) and nothing else, timed.
fn bare_verify(stored: &str) -> Result<Duration, String> {
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
    let c = &app.media.cloudinary;
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
    let req = testkit::post_json(workload::LOGIN_PATH, &workload::login_json(username));
    let resp = login::handle(app, req).await;
    let body = expect_status(&resp, 200, "login")?;
    workload::refresh_token_of(&body).ok_or_else(|| "login answer without a refresh token".into())
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
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let c = Comparison::new("r", "f", &ms(&[10, 20, 30]), &ms(&[10, 10, 40]));
        assert_eq!(c.ratio, 2.0, "median 20 over median 10");
        assert_eq!(c.paired_ratio, 1.0, "pairs 1.0, 2.0 and 0.75");
        assert_eq!(c.extra_ms, 10.0);
        assert_eq!((c.control_ratio, c.verify_ratio), (None, None));
    }
}
