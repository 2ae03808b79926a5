//! `POST /api/v1/users/login`: checks a password and opens a new session (one per device).
//!
//! The body is JSON or urlencoded with `username` and/or `email` plus `password`. Unknown
//! accounts and wrong passwords get the same 401 (unknown ones verify against a dummy argon2id
//! hash). Passwords are not held to today's length minimum here, so accounts from the Node
//! version, which had none, can still log in; the 128-character maximum applies.
//!
//! A Node-era account is brought up to date by its first successful login, in the same request:
//! its bcrypt hash becomes argon2id, its plaintext `refreshToken` is removed, and an email it
//! stored in mixed case is lowercased (see `users::confirm_login`). That runs after the session's
//! insert and also confirms that the password verified is still the account's: a password change
//! that landed in between would otherwise leave this session alive (see `still_valid`).
//!
//! Before any password is checked, the throttles (`shared::throttle`) record the attempt and
//! may refuse it with a 429 and `Retry-After`; they count the account as presented (username,
//! or email), so an account that does not exist is throttled exactly like one that does. The
//! throttle's records are read beside the account lookup, and its success write runs beside the
//! confirmation read that follows the session's insert.
use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::json;
use shared::{
    ApiError, App, FieldError, cookies,
    domain::{Email, Password, SessionId, UserId, Username},
    error::chain,
    http::{self, Reply, cookie_value, read_fields, take_string},
    password::{self, Verdict},
    sessions,
    throttle::{self, Admission, SourceAddress},
    tokens::{new_jti, now_secs},
    users::{self, AfterLogin, Identifier, PublicUser, UserDoc},
};

pub const ROUTE: &str = "POST /api/v1/users/login";
/// Credentials are tiny; anything bigger is not a login attempt.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const INVALID_CREDENTIALS: &str = "Invalid user credentials";

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::respond(ROUTE, req, |req| login(app, req)).await
}

struct Credentials {
    identifier: Identifier,
    password: Password,
}

fn parse(req: &Request) -> Result<Credentials, ApiError> {
    let mut fields = read_fields(req, MAX_BODY_BYTES)?;
    let mut errors = Vec::new();
    let mut take = |name: &str| {
        take_string(&mut fields, name).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let username = take("username")
        .map(|u| Username::normalise_for_lookup(&u))
        .filter(|u| !u.is_empty());
    let email = take("email")
        .map(|e| Email::normalise_for_lookup(&e))
        .filter(|e| !e.is_empty());
    let password = take("password");
    for (field, value) in [("username", &username), ("email", &email)] {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > Email::MAX_CHARS)
        {
            errors.push(FieldError::new(
                field,
                format!(
                    "{field} must be at most {} characters long",
                    Email::MAX_CHARS
                ),
            ));
        }
    }
    let identifier = match (username, email) {
        (Some(username), Some(email)) => Some(Identifier::Both { username, email }),
        (Some(u), None) => Some(Identifier::Username(u)),
        (None, Some(e)) => Some(Identifier::Email(e)),
        (None, None) => {
            if !errors
                .iter()
                .any(|e| e.field == "username" || e.field == "email")
            {
                errors.push(FieldError::new("username", "username or email is required"));
            }
            None
        }
    };
    let password = Password::parse_presented(password.unwrap_or_default())
        .map_err(|m| errors.push(FieldError::new("password", m)))
        .ok();
    match (identifier, password) {
        (Some(identifier), Some(password)) if errors.is_empty() => Ok(Credentials {
            identifier,
            password,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// What the throttles count a login under: the account as presented. With both identifiers
/// the username decides (the account must match it), so varying the email buys no budget.
fn throttle_account(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Username(u) | Identifier::Both { username: u, .. } => {
            throttle::account::username(u)
        }
        Identifier::Email(e) => throttle::account::email(e),
    }
}

#[tracing::instrument(name = "login", skip_all)]
async fn login(app: &App, req: Request) -> Result<Reply, ApiError> {
    let creds = parse(&req)?;
    let store = app.store().await?;
    let throttle = app.throttle()?;
    let device = cookie_value(&req, cookies::DEVICE_COOKIE);
    let subject = throttle.subject(
        "login",
        &throttle_account(&creds.identifier),
        SourceAddress::of(&req),
        device.as_deref(),
    );
    // Both whether or not the other refuses, so a refusal takes as long for every account.
    let (user, admission) = tokio::join!(
        users::find_for_login(store, &creds.identifier, app.config.node.email_fallback),
        throttle.check(store, &subject),
    );
    let attempt = match admission {
        Admission::Check(attempt) => attempt,
        Admission::Refused(refusal) => return Err(refusal.into()),
    };
    let user = user?;
    let presented = creds.password.expose();
    let verdict = password::verify(presented, user.as_ref().map(|u| u.password.as_str()))
        .await
        .map_err(ApiError::internal)?;
    let (user, needs_rehash) = match (user, verdict) {
        (Some(user), Verdict::Match { needs_rehash }) => (user, needs_rehash),
        _ => {
            attempt.failed();
            return Err(ApiError::Unauthorized(INVALID_CREDENTIALS));
        }
    };
    let user_id = UserId(user.id);
    let upgrade = upgrade(&user, presented, needs_rehash).await;
    let jti = new_jti();
    let sid = SessionId::generate();
    let open = sessions::create(
        store,
        sid.clone(),
        user_id,
        user.claims(),
        &jti,
        app.config.tokens.session_max_age,
    );
    // The session first; then, beside the throttle's success write (best effort: the password
    // was right either way), whether the account still has the password verified: a password
    // change that came after the read revoked the sessions it saw, and this one was not among
    // them. The write runs beside a read rather than beside the insert, so that a database
    // with one writer does not queue it behind the insert.
    let session = open.await;
    let confirmed = async {
        match &session {
            Ok(_) => still_valid(store, &user, presented, upgrade).await,
            Err(_) => Ok(()),
        }
    };
    let (confirmed, ()) = tokio::join!(confirmed, attempt.succeeded(store));
    let session = session?;
    if let Err(e) = confirmed {
        if let Err(d) = sessions::discard(store, &sid).await {
            tracing::warn!(error = %chain(&d), session_id = %session.id, "could not discard an unused session; none of its tokens was handed out");
        }
        return Err(e);
    }
    let pair = app
        .tokens
        .issue(session.grant(), &jti, now_secs())
        .map_err(ApiError::internal)?;
    let [access_cookie, refresh_cookie] = pair.cookies(&app.config.cookies);
    let data = json!({
        "user": PublicUser::from(&user),
        "accessToken": pair.access_token,
        "refreshToken": pair.refresh_token,
    });
    let reply = Reply::new(StatusCode::OK, data, "User logged In Successfully")
        .with_cookie(access_cookie)
        .with_cookie(refresh_cookie);
    // The browser's device, for this account's throttles from now on (under every name it can
    // be presented by).
    let names = [
        throttle::account::username(&Username::normalise_for_lookup(&user.username)),
        throttle::account::email(&Email::normalise_for_lookup(&user.email)),
        throttle::account::user_id(user_id),
    ];
    Ok(
        match throttle.device_cookie(&subject, &names, &app.config.cookies) {
            Some(device) => reply.with_cookie(device),
            None => reply,
        },
    )
}

/// Whether the password this login verified is still the account's, asked after its session
/// is in (see `users::confirm_login`), bringing the account up to date while it is. If the hash
/// changed meanwhile, the presented password is checked against the new one: another login's
/// upgrade changes the hash but not the password; a password change changes both, and then
/// the login fails as it would have a moment later (401), so its session does not outlive the
/// change. A database error fails the login (503): a session nobody checked is not handed out.
async fn still_valid(
    store: &shared::store::Store,
    user: &UserDoc,
    presented: &str,
    upgrade: AfterLogin,
) -> Result<(), ApiError> {
    if users::confirm_login(store, user, upgrade).await? {
        return Ok(());
    }
    let current = users::password_of(store, UserId(user.id)).await?;
    let still = match current {
        Some(hash) => password::verify(presented, Some(&hash))
            .await
            .map_err(ApiError::internal)?,
        None => Verdict::Mismatch,
    };
    if matches!(still, Verdict::Match { .. }) {
        return Ok(());
    }
    tracing::info!(user_id = %user.id, "the password changed during the login; its session is discarded");
    Err(ApiError::Unauthorized(INVALID_CREDENTIALS))
}

/// What this login brings the stored user up to date with: a fresh argon2id hash for a bcrypt
/// or weaker one, the email lowercased, a Node-era `refreshToken` removed.
async fn upgrade(user: &UserDoc, password: &str, needs_rehash: bool) -> AfterLogin {
    let password_hash = if needs_rehash {
        match password::rehash(password).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "could not upgrade the password hash");
                None
            }
        }
    } else {
        None
    };
    let lowercase = Email::normalise_for_lookup(&user.email);
    AfterLogin {
        password_hash,
        email: (lowercase != user.email).then_some(lowercase),
        drop_refresh_token: user.refresh_token.is_some(),
    }
}
