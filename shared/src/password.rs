//! Password hashing with argon2id at the OWASP minimum (the `argon2` crate's defaults:
//! m=19456 KiB, t=2, p=1), always off the async executor, on one dedicated worker thread.
//!
//! Why one thread rather than `spawn_blocking`: each argon2 call needs 19 MiB of working memory.
//! The worker keeps that block between calls (`hash_password_into_with_memory`) instead of letting
//! the crate allocate and free it every time: a fresh block costs about 4,900 page faults of
//! zeroed memory per login, and glibc's dynamic mmap threshold used to turn each freed block into
//! another 19 MiB of resident heap (five logins, 88 MiB). A Lambda instance serves one request at
//! a time, so one worker never makes a request wait in production.
//!
//! Login against an unknown account verifies against [`DUMMY_HASH`], which has the same
//! parameters, so "no such user" and "wrong password" cost the same time and look the same.
//!
//! Accounts the Node version created hold bcrypt hashes (`$2a$`, `$2b$`, `$2y$`, any cost).
//! They are verified with the `bcrypt` crate on the same worker, truncating at 72 bytes exactly
//! as Node's `bcrypt` did when it hashed them, and always reported as needing a rehash, so the
//! first successful login upgrades them to argon2id. A wrong bcrypt password costs bcrypt's
//! time, not argon2's: the figures are in the README's Performance section.
use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, Salt, SaltString, rand_core::OsRng},
};

use crate::{domain::Password, timing};

/// A well-formed argon2id hash with the current parameters whose digest is random: no password
/// is known to produce it, and verifying against it costs what a real verification costs. A unit test keeps its
/// parameters equal to [`Argon2::default`]'s.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$4MKlEqSq2o3ZKJNkF8sr6k52Uk6wHk7nQ0AT2uWbI9c";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the password worker thread is gone")]
    WorkerGone,
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the password worker thread (started on first use) and awaits its result.
async fn on_worker<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    static WORKER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let sender = WORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("argon2".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .ok()
            .map(|_| tx)
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // The receiver is gone only if the request was cancelled; nothing to report then.
        let _ = done.send(job());
    });
    sender
        .as_ref()
        .ok_or(PasswordError::WorkerGone)?
        .send(job)
        .map_err(|_| PasswordError::WorkerGone)?;
    let waited = timing::step(timing::Kind::Password, "worker", result);
    waited.await.map_err(|_| PasswordError::WorkerGone)
}

/// What a verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match { needs_rehash: bool },
    Mismatch,
}

/// Hashes a new password into a PHC string.
pub async fn hash(password: &Password) -> Result<String, PasswordError> {
    rehash(password.expose()).await
}

/// Hashes a password that already proved itself at login (it may predate today's length
/// rules), to upgrade a stored hash with weaker parameters.
pub async fn rehash(password: &str) -> Result<String, PasswordError> {
    let password = zeroizing(password);
    on_worker(move || hash_blocking(&password)).await?
}

fn zeroizing(s: &str) -> secrecy::SecretString {
    secrecy::SecretString::from(s.to_owned())
}

fn hash_blocking(password: &secrecy::SecretString) -> Result<String, PasswordError> {
    let fail = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let ctx = Argon2::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(
        &ctx,
        secrecy::ExposeSecret::expose_secret(password).as_bytes(),
        salt.as_salt(),
        &mut out,
    )
    .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(ctx.params()).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

thread_local! {
    /// The worker's working memory, kept from one call to the next. Only the worker thread runs
    /// argon2, so this is one block per process.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs argon2 with `ctx`'s parameters into `out`, in the kept working memory. A stored hash
/// with a larger memory cost than today's gets a block of its own, freed afterwards, so an odd
/// account cannot make the process keep more than the current parameters need.
fn compute(
    ctx: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    out: &mut [u8],
) -> Result<(), argon2::password_hash::Error> {
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let needed = ctx.params().block_count();
    if needed > Params::default().block_count() {
        let mut own = vec![Block::default(); needed];
        ctx.hash_password_into_with_memory(password, salt, out, &mut own)?;
        return Ok(());
    }
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        // Uses the first `needed` blocks and overwrites them before reading: no state carries over.
        ctx.hash_password_into_with_memory(password, salt, out, blocks.as_mut_slice())
    })?;
    Ok(())
}

static VERIFICATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many verifications (real or against the dummy hash) this process has begun: tests and
/// the bench count password checks with it, rather than timing them.
pub fn verifications() -> u64 {
    VERIFICATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Verifies `password` against `stored`, or against the dummy hash when there is no account.
/// A stored hash that does not parse counts as a mismatch (and is logged by the caller).
pub async fn verify(password: &str, stored: Option<&str>) -> Result<Verdict, PasswordError> {
    VERIFICATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let password = zeroizing(password);
    let (hash, real) = match stored {
        Some(h) => (h.to_owned(), true),
        None => (DUMMY_HASH.to_owned(), false),
    };
    on_worker(move || {
        let verdict = verify_blocking(secrecy::ExposeSecret::expose_secret(&password), &hash);
        if real { verdict } else { Verdict::Mismatch }
    })
    .await
}

fn verify_blocking(password: &str, stored: &str) -> Verdict {
    if is_bcrypt(stored) {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verdict::Match { needs_rehash: true },
            // A malformed hash (bad cost, bad salt) is a mismatch, like a corrupt PHC string.
            Ok(false) | Err(_) => Verdict::Mismatch,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict::Mismatch;
    };
    if matches(password.as_bytes(), &parsed) {
        Verdict::Match {
            needs_rehash: is_weaker_than_current(&parsed),
        }
    } else {
        Verdict::Mismatch
    }
}

/// A bcrypt hash in modular crypt format, as npm's `bcrypt` and `bcryptjs` write them.
fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// What the crate's `PasswordVerifier::verify_password` does (algorithm, version and parameters
/// from the stored hash, constant-time comparison of the outputs), in the kept working memory.
fn matches(password: &[u8], parsed: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let ctx = Argon2::new(algorithm, version, params);
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    // `Output`'s equality is constant-time.
    compute(&ctx, password, salt, out).is_ok() && Output::new(out).is_ok_and(|o| o == expected)
}

/// True when the stored hash used another algorithm or any cost parameter below the current.
fn is_weaker_than_current(parsed: &PasswordHash<'_>) -> bool {
    let current = argon2::Params::default();
    let Ok(stored) = argon2::Params::try_from(parsed) else {
        return true;
    };
    parsed.algorithm != argon2::Algorithm::Argon2id.ident()
        || stored.m_cost() < current.m_cost()
        || stored.t_cost() < current.t_cost()
        || stored.p_cost() < current.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    fn pw(s: &str) -> Password {
        Password::parse(s.to_owned()).expect("valid password")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let h = hash(&pw("correct horse")).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            verify("correct horse", Some(&h)).await.expect("verify"),
            Verdict::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify("wrong horse!", Some(&h)).await.expect("verify"),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches_even_with_the_dummy_password() {
        assert_eq!(
            verify("anything at all", None).await.expect("verify"),
            Verdict::Mismatch
        );
    }

    #[test]
    fn the_dummy_hash_has_the_current_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("dummy parses");
        let p = argon2::Params::try_from(&parsed).expect("params");
        let d = argon2::Params::default();
        assert_eq!(
            (p.m_cost(), p.t_cost(), p.p_cost()),
            (d.m_cost(), d.t_cost(), d.p_cost())
        );
        assert_eq!(parsed.algorithm, argon2::Algorithm::Argon2id.ident());
    }

    #[test]
    fn weaker_stored_hashes_are_flagged_for_rehash() {
        let weak = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(4096, 1, 1, None).expect("params"),
        );
        let salt = SaltString::generate(&mut OsRng);
        let h = weak
            .hash_password(b"correct horse", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(
            verify_blocking("correct horse", &h),
            Verdict::Match { needs_rehash: true }
        );
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::default(),
        );
        let h = argon2i
            .hash_password(b"correct horse", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(
            verify_blocking("correct horse", &h),
            Verdict::Match { needs_rehash: true }
        );
    }

    /// The kept-memory path must agree with the crate's own hasher and verifier both ways, for
    /// every algorithm and version a stored hash can name, and after calls with other sizes.
    #[test]
    fn kept_memory_agrees_with_the_crates_own_hashing_and_verifying() {
        let ours = hash_blocking(&zeroizing("correct horse")).expect("hash");
        let parsed = PasswordHash::new(&ours).expect("parses");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horsf", &parsed)
                .is_err()
        );
        let salt = SaltString::generate(&mut OsRng);
        for (algorithm, version, m) in [
            (Algorithm::Argon2id, Version::V0x13, 19456),
            (Algorithm::Argon2id, Version::V0x13, 8),
            (Algorithm::Argon2i, Version::V0x13, 4096),
            (Algorithm::Argon2d, Version::V0x10, 1024),
            (Algorithm::Argon2id, Version::V0x13, 19456 * 2),
            (Algorithm::Argon2id, Version::V0x13, 19456),
        ] {
            let params = Params::new(m, 2, 1, Some(48)).expect("params");
            let theirs = Argon2::new(algorithm, version, params)
                .hash_password(b"correct horse", &salt)
                .expect("hash")
                .to_string();
            assert!(
                matches!(
                    verify_blocking("correct horse", &theirs),
                    Verdict::Match { .. }
                ),
                "{algorithm:?} {version:?} m={m}"
            );
            assert_eq!(verify_blocking("correct horsf", &theirs), Verdict::Mismatch);
        }
    }

    #[test]
    fn node_era_bcrypt_hashes_verify_at_any_cost_and_prefix_and_always_need_a_rehash() {
        for (cost, version) in [
            (4, bcrypt::Version::TwoB),
            (10, bcrypt::Version::TwoA),
            (5, bcrypt::Version::TwoY),
        ] {
            let h = bcrypt::hash_with_result("correct horse", cost)
                .expect("hash")
                .format_for_version(version);
            assert_eq!(
                verify_blocking("correct horse", &h),
                Verdict::Match { needs_rehash: true },
                "{h}"
            );
            assert_eq!(verify_blocking("correct horsf", &h), Verdict::Mismatch);
        }
    }

    #[test]
    fn bcrypt_compares_the_first_72_bytes_as_node_did_when_it_hashed() {
        let long = "x".repeat(72);
        let h = bcrypt::hash(&long, 4).expect("hash");
        assert!(matches!(
            verify_blocking(&format!("{long}tail"), &h),
            Verdict::Match { .. }
        ));
    }

    #[test]
    fn a_malformed_bcrypt_hash_is_a_mismatch_not_a_panic() {
        for bad in ["$2b$", "$2b$99$abc", "$2a$10$tooshort", "$2y$xx$"] {
            assert_eq!(verify_blocking("x", bad), Verdict::Mismatch, "{bad}");
        }
    }

    #[test]
    fn a_corrupt_stored_hash_is_a_mismatch_not_a_panic() {
        assert_eq!(verify_blocking("x", "not a phc string"), Verdict::Mismatch);
    }
}
