//! The `users` collection: the stored document, its public view, and the queries on it.
//!
//! The document is the Node user model's, so the Node backend that keeps running beside us reads
//! it as its own: `avatar` and `coverImage` are URL strings, the hash is in `password` (which
//! the Node code hides with `.select("-password -refreshToken")`), timestamps as mongoose writes
//! them. We add the Cloudinary public ids beside the URLs (`avatarPublicId`,
//! `coverImagePublicId`); documents the Node version wrote lack them, and may also carry `__v`,
//! `http://` URLs, a plaintext `refreshToken` (a live credential, removed when we meet it) and
//! an email in the case the user typed (its schema misspelt `lowercase`).
//!
//! Uniqueness of username and email is enforced by unique indexes; reads here are by normalised
//! values, so there is no collation and no operator can get in. While `NODE_EMAIL_FALLBACK` is
//! on, a login email is also looked up in any case (beside the exact lookup, see
//! [`find_for_login`]), for Node-era accounts the migration command has not lowercased yet.
use std::fmt;

use mongodb::{
    Collection,
    bson::{DateTime, Document, doc, oid::ObjectId},
};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{Email, FullName, ImageRef, UserId, Username},
    store::{self, Store, StoreError},
    timing,
    tokens::UserClaims,
};

pub const USERS: &str = "users";

/// The stored user, in the Node model's shape.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub username: String,
    pub email: String,
    #[serde(rename = "fullName")]
    pub full_name: String,
    #[serde(default)]
    pub avatar: String,
    #[serde(
        rename = "avatarPublicId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub avatar_public_id: Option<String>,
    /// "" when there is none (the Node version also leaves it out).
    #[serde(rename = "coverImage", default)]
    pub cover_image: String,
    #[serde(
        rename = "coverImagePublicId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cover_image_public_id: Option<String>,
    #[serde(rename = "watchHistory", default)]
    pub watch_history: Vec<ObjectId>,
    /// The password hash as a PHC string: argon2id, or bcrypt for Node-era accounts.
    pub password: String,
    /// A Node-era refresh token in plaintext; never written by us (see [`after_login`]).
    #[serde(
        rename = "refreshToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_token: Option<String>,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime,
    #[serde(rename = "updatedAt")]
    pub updated_at: DateTime,
}

/// Never prints the hash or a token.
impl fmt::Debug for UserDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDoc")
            .field("id", &self.id)
            .field("password", &"[REDACTED]")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl UserDoc {
    /// What this user's access tokens say about them.
    pub fn claims(&self) -> UserClaims {
        UserClaims {
            username: self.username.clone(),
            email: self.email.clone(),
            full_name: self.full_name.clone(),
        }
    }
}

/// What clients see of a user: the Node API's shape, never the hash or any token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUser {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub email: String,
    #[serde(rename = "fullName")]
    pub full_name: String,
    pub avatar: String,
    #[serde(rename = "coverImage")]
    pub cover_image: String,
    #[serde(rename = "watchHistory")]
    pub watch_history: Vec<String>,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

impl From<&UserDoc> for PublicUser {
    fn from(u: &UserDoc) -> Self {
        Self {
            id: u.id.to_hex(),
            username: u.username.clone(),
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            avatar: u.avatar.clone(),
            cover_image: u.cover_image.clone(),
            watch_history: u.watch_history.iter().map(|id| id.to_hex()).collect(),
            created_at: iso_millis(u.created_at),
            updated_at: iso_millis(u.updated_at),
        }
    }
}

/// RFC 3339 in UTC with milliseconds, as JavaScript's `toISOString` (and so Mongoose) renders.
pub fn iso_millis(t: DateTime) -> String {
    let ms = t.timestamp_millis();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

pub fn collection(store: &Store) -> Collection<UserDoc> {
    store.collection(USERS)
}

/// Unique `username` and `email`; the Node version's `username_1` / `email_1` count as ours.
pub async fn ensure_indexes(store: &Store) -> Result<(), StoreError> {
    let users = collection(store);
    store::ensure_unique(&users, "username", "username_unique").await?;
    store::ensure_unique(&users, "email", "email_unique").await
}

/// A new user, ready to insert.
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub full_name: FullName,
    pub avatar: ImageRef,
    pub cover_image: Option<ImageRef>,
    pub password_hash: String,
}

/// Inserts `new` under `id`, which the caller chooses so that it can ask afterwards whether an
/// insert that failed was applied anyway (a connection lost after the insert was sent).
pub async fn insert(store: &Store, id: UserId, new: NewUser) -> Result<(), StoreError> {
    timing::step(timing::Kind::Database, "users.insert", async move {
        let now = DateTime::now();
        let (cover_image, cover_image_public_id) = match new.cover_image {
            Some(c) => (c.url, Some(c.public_id)),
            None => (String::new(), None),
        };
        let doc = UserDoc {
            id: id.0,
            username: new.username.as_ref().to_owned(),
            email: new.email.as_ref().to_owned(),
            full_name: new.full_name.as_ref().to_owned(),
            avatar: new.avatar.url,
            avatar_public_id: Some(new.avatar.public_id),
            cover_image,
            cover_image_public_id,
            watch_history: Vec::new(),
            password: new.password_hash,
            refresh_token: None,
            created_at: now,
            updated_at: now,
        };
        collection(store).insert_one(&doc).await?;
        Ok(())
    })
    .await
}

pub async fn find_by_id(store: &Store, id: UserId) -> Result<Option<UserDoc>, StoreError> {
    timing::step(timing::Kind::Database, "users.find_by_id", async move {
        Ok(collection(store).find_one(doc! {"_id": id.0}).await?)
    })
    .await
}

/// Which login identifiers were given, already normalised.
pub enum Identifier {
    Username(String),
    Email(String),
    Both { username: String, email: String },
}

/// The account a login names, if any. With both identifiers they must name the same account.
/// `email_fallback`: see the module doc.
pub async fn find_for_login(
    store: &Store,
    id: &Identifier,
    email_fallback: bool,
) -> Result<Option<UserDoc>, StoreError> {
    timing::step(timing::Kind::Database, "users.find_for_login", async move {
        let users = collection(store);
        match id {
            Identifier::Username(u) => Ok(users.find_one(doc! {"username": u}).await?),
            Identifier::Both { username, email } => {
                let user = users.find_one(doc! {"username": username}).await?;
                Ok(user.filter(|u| Email::normalise_for_lookup(&u.email) == *email))
            }
            Identifier::Email(e) => {
                let exact = users.find_one(doc! {"email": e});
                if !email_fallback {
                    return Ok(exact.await?);
                }
                // Both at once, whatever the first finds: the lookup then takes as long for an
                // address nobody holds as for one stored as typed or lowercase, so its time
                // cannot tell them apart (nor can a refusal's, which waits for it).
                let (exact, any) = tokio::join!(exact, in_any_case(&users, e));
                if let Some(user) = exact? {
                    return Ok(Some(user));
                }
                let mut found = any?;
                if found.len() > 1 {
                    tracing::warn!(
                        "an email matches two Node-era accounts that differ only in case; \
                         run migrate-node to list them"
                    );
                    return Ok(None);
                }
                Ok(found.pop())
            }
        }
    })
    .await
}

/// The accounts holding `lowercase` in any case, at most two: enough to tell one match from an
/// ambiguous pair (`Bob@x.com` and `BOB@x.com` were two accounts to the Node version; the
/// migration reports those).
async fn in_any_case(
    users: &Collection<UserDoc>,
    lowercase: &str,
) -> Result<Vec<UserDoc>, StoreError> {
    let mut cursor = users
        .find(doc! {"$or": any_case(lowercase)})
        .limit(2)
        .await?;
    let mut found = Vec::with_capacity(2);
    while cursor.advance().await? {
        found.push(cursor.deserialize_current()?);
    }
    Ok(found)
}

/// How many leading characters' case forms [`any_case`] spells out as literal prefixes.
const SPELLED_OUT: usize = 3;

/// Filters (to be `$or`ed) for `email` equal to `lowercase` once lowercased: the emails whose
/// [`Email::normalise_for_lookup`] is `lowercase`, the key the throttles count a login under.
///
/// Not the `i` option: a case-insensitive regex matches by Unicode case *folding*, which is
/// wider than lowercasing (`ſ` folds to `s` but lowercases to itself), so `ſam@x.com` would
/// have reached `sam@x.com` under a throttle key of its own. Each character matches only its
/// case forms that lowercase to it ([`case_forms`]), so two spellings with different keys never
/// reach the same account. The first [`SPELLED_OUT`] characters' forms are spelt out, one
/// branch each (at most 8): every branch then starts with a literal prefix, which MongoDB turns
/// into bounds on the email index instead of scanning all of it. Only ASCII punctuation is
/// escaped: both MongoDB's PCRE and FerretDB's Go RE2 read `\` before it as the literal
/// character, and RE2 refuses an escaped letter or non-ASCII character.
fn any_case(lowercase: &str) -> Vec<Document> {
    let forms: Vec<Vec<char>> = lowercase.chars().map(case_forms).collect();
    let split = forms.len().min(SPELLED_OUT);
    let mut rest = String::with_capacity(lowercase.len() * 4 + 2);
    for f in &forms[split..] {
        match f.as_slice() {
            [c] => push_literal(&mut rest, *c),
            many => {
                rest.push('[');
                rest.extend(many);
                rest.push(']');
            }
        }
    }
    rest.push_str("\\z");
    let mut prefixes = vec![String::from("\\A")];
    for f in &forms[..split] {
        prefixes = prefixes
            .iter()
            .flat_map(|p| {
                f.iter().map(move |&c| {
                    let mut p = p.clone();
                    push_literal(&mut p, c);
                    p
                })
            })
            .collect();
    }
    prefixes
        .into_iter()
        .map(|p| doc! {"email": {"$regex": p + &rest}})
        .collect()
}

fn push_literal(pattern: &mut String, c: char) {
    if c.is_ascii_punctuation() {
        pattern.push('\\');
    }
    pattern.push(c);
}

/// `c` and its uppercase, when that is one character whose lowercase is `c` again (`s`: `s S`;
/// `ü`: `ü Ü`; `ſ`: only `ſ`, since its uppercase `S` lowercases to `s`). Rarer forms (the
/// Kelvin sign for `k`, titlecase digraphs) are left out: an account stored with them is not
/// found by its email, and never the wrong account is.
fn case_forms(c: char) -> Vec<char> {
    let mut forms = vec![c];
    let mut upper = c.to_uppercase();
    if let (Some(u), None) = (upper.next(), upper.next())
        && u != c
        && lowercases_to(u, c)
    {
        forms.push(u);
    }
    forms
}

fn lowercases_to(u: char, c: char) -> bool {
    let mut lower = u.to_lowercase();
    lower.next() == Some(c) && lower.next().is_none()
}

/// Whether the username or the email is already taken, as field errors for a 409.
///
/// One `$or` query: on MongoDB each branch uses its unique index. FerretDB 1.x answers any filter
/// other than `{_id: ...}` by scanning the collection, so one query (one scan) beats two
/// concurrent equality lookups there (measured 9 ms against 16 ms with a few hundred users).
/// With `email_fallback`, a Node-era email in another case counts as taken too.
pub async fn taken(
    store: &Store,
    username: &Username,
    email: &Email,
    email_fallback: bool,
) -> Result<Vec<&'static str>, StoreError> {
    timing::step(timing::Kind::Database, "users.taken", async move {
        let mut branches = vec![
            doc! {"username": username.as_ref()},
            doc! {"email": email.as_ref()},
        ];
        if email_fallback {
            branches.extend(any_case(email.as_ref()));
        }
        let users = collection(store).clone_with_type::<Document>();
        let mut cursor = users
            .find(doc! {"$or": branches})
            .projection(doc! {"username": 1, "email": 1})
            .await?;
        let mut fields = Vec::new();
        while cursor.advance().await? {
            let raw = cursor.current();
            if raw.get_str("username").ok() == Some(username.as_ref())
                && !fields.contains(&"username")
            {
                fields.push("username");
            }
            let same_email = raw
                .get_str("email")
                .is_ok_and(|e| Email::normalise_for_lookup(e) == email.as_ref());
            if same_email && !fields.contains(&"email") {
                fields.push("email");
            }
        }
        Ok(fields)
    })
    .await
}

/// Whether an account other than `except` holds `email` in any case: a Node-era account that
/// stored it as typed (`Bob@x.com`) would clash with `bob@x.com` once lowercased. Asked only while
/// `email_fallback` is on; an exact duplicate is always decided by the unique index.
pub async fn email_held_by_another(
    store: &Store,
    email: &Email,
    except: UserId,
) -> Result<bool, StoreError> {
    timing::step(
        timing::Kind::Database,
        "users.email_held_by_another",
        async move {
            let filter = doc! {"$or": any_case(email.as_ref()), "_id": {"$ne": except.0}};
            any(store, filter).await
        },
    )
    .await
}

/// What a successful login brings a stored user up to date with.
#[derive(Default)]
pub struct AfterLogin {
    /// A fresh argon2id hash, replacing a bcrypt one or weaker argon2 parameters.
    pub password_hash: Option<String>,
    /// The email lowercased, for a Node-era account that stored it as typed.
    pub email: Option<String>,
    /// Remove a Node-era plaintext `refreshToken`.
    pub drop_refresh_token: bool,
}

impl AfterLogin {
    pub fn is_empty(&self) -> bool {
        self.password_hash.is_none() && self.email.is_none() && !self.drop_refresh_token
    }
}

/// Called once a login's session is in: whether `read` (the user as the login read it) still
/// has the password hash the login verified, applying `change` while it does.
///
/// A password change that lands between the login's read and its session's insert has already
/// revoked the sessions it could see, so the login's would outlive it: the login asks after
/// its insert, and discards its session if the hash changed (see the login function). The
/// upgrade's update is filtered on the values it replaces (the hash verified, the email and
/// the `refreshToken` as read), so it never undoes a password change, an email change or a
/// Node login that came in between; it is then left for the next login. If the lowercased
/// email collides with another account (a pair the Node version kept apart by case), the rest
/// is still applied and the email left as it is: the migration command reports such pairs.
pub async fn confirm_login(
    store: &Store,
    read: &UserDoc,
    change: AfterLogin,
) -> Result<bool, StoreError> {
    timing::step(timing::Kind::Database, "users.confirm_login", async move {
        let users = collection(store);
        let unchanged = doc! {"_id": read.id, "password": &read.password};
        if change.is_empty() {
            return any(store, unchanged).await;
        }
        let apply = |with_email: bool| {
            let mut filter = unchanged.clone();
            let mut set = doc! {"updatedAt": DateTime::now()};
            if let Some(h) = &change.password_hash {
                set.insert("password", h);
            }
            if let (true, Some(e)) = (with_email, &change.email) {
                filter.insert("email", &read.email);
                set.insert("email", e);
            }
            let mut update = doc! {"$set": set};
            if let (true, Some(token)) = (change.drop_refresh_token, &read.refresh_token) {
                filter.insert("refreshToken", token);
                update.insert("$unset", doc! {"refreshToken": ""});
            }
            users.update_one(filter, update)
        };
        let applied = match apply(true).await.map_err(StoreError::from) {
            Err(StoreError::Duplicate(_)) => {
                tracing::warn!(user_id = %read.id, "a Node-era email could not be lowercased: another account has it");
                apply(false).await?
            }
            other => other?,
        };
        if applied.matched_count == 1 {
            return Ok(true);
        }
        // Something changed since the read: the upgrade waits for the next login. Whether the
        // password is among it decides the login.
        tracing::info!(user_id = %read.id, "the account changed during the login; its upgrade is left for the next one");
        any(store, unchanged).await
    })
    .await
}

/// Whether some user matches `filter` (only its `_id` is fetched).
async fn any(store: &Store, filter: Document) -> Result<bool, StoreError> {
    let found = collection(store)
        .clone_with_type::<Document>()
        .find_one(filter)
        .projection(doc! {"_id": 1})
        .await?;
    Ok(found.is_some())
}

/// The stored password hash of `id`, if the user still exists.
pub async fn password_of(store: &Store, id: UserId) -> Result<Option<String>, StoreError> {
    timing::step(timing::Kind::Database, "users.password_of", async move {
        let found = collection(store)
            .clone_with_type::<Document>()
            .find_one(doc! {"_id": id.0})
            .projection(doc! {"password": 1})
            .await?;
        Ok(found.and_then(|d| d.get_str("password").ok().map(str::to_owned)))
    })
    .await
}

/// Removes a Node-era `refreshToken`, but only if it still holds `token`, so a token the Node
/// version issued since is never removed by mistake. Returns whether it did.
pub async fn drop_node_refresh_token(
    store: &Store,
    id: UserId,
    token: &str,
) -> Result<bool, StoreError> {
    timing::step(
        timing::Kind::Database,
        "users.drop_node_refresh_token",
        async move {
            let r = collection(store)
                .update_one(
                    doc! {"_id": id.0, "refreshToken": token},
                    doc! {"$unset": {"refreshToken": ""}, "$set": {"updatedAt": DateTime::now()}},
                )
                .await?;
            Ok(r.modified_count == 1)
        },
    )
    .await
}

/// Removes a Node-era `refreshToken`, whatever it holds: signing out of every device ends the
/// Node-era session too, which would otherwise be exchanged for a new one by its next refresh.
/// `$unset` of an absent field changes nothing (and writes nothing on MongoDB).
pub async fn forget_node_refresh_token(store: &Store, id: UserId) -> Result<(), StoreError> {
    timing::step(
        timing::Kind::Database,
        "users.forget_node_refresh_token",
        async move {
            collection(store)
                .update_one(doc! {"_id": id.0}, doc! {"$unset": {"refreshToken": ""}})
                .await?;
            Ok(())
        },
    )
    .await
}

/// Replaces the password hash with `new_hash`, but only while the stored hash is still
/// `checked_against` (the one the old password was verified against), so of two concurrent
/// changes with the same old password one applies and the other finds the password changed.
/// A Node-era `refreshToken` goes with the old password. Returns whether it applied.
pub async fn set_password(
    store: &Store,
    id: UserId,
    checked_against: &str,
    new_hash: &str,
) -> Result<bool, StoreError> {
    timing::step(timing::Kind::Database, "users.set_password", async move {
        let r = collection(store)
            .update_one(
                doc! {"_id": id.0, "password": checked_against},
                doc! {
                    "$set": {"password": new_hash, "updatedAt": DateTime::now()},
                    "$unset": {"refreshToken": ""},
                },
            )
            .await?;
        Ok(r.matched_count == 1)
    })
    .await
}

/// A change to the profile fields a user may edit.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub full_name: Option<FullName>,
    pub email: Option<Email>,
}

/// Applies `change` and returns the user as stored afterwards (`None`: no such user). An email
/// another account holds is a [`StoreError::Duplicate`], decided by the unique index.
pub async fn update_profile(
    store: &Store,
    id: UserId,
    change: &ProfileChange,
) -> Result<Option<UserDoc>, StoreError> {
    timing::step(timing::Kind::Database, "users.update_profile", async move {
        let mut set = doc! {"updatedAt": DateTime::now()};
        if let Some(name) = &change.full_name {
            set.insert("fullName", name.as_ref());
        }
        if let Some(email) = &change.email {
            set.insert("email", email.as_ref());
        }
        Ok(collection(store)
            .find_one_and_update(doc! {"_id": id.0}, doc! {"$set": set})
            .return_document(mongodb::options::ReturnDocument::After)
            .await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_like_javascript_to_iso_string() {
        assert_eq!(
            iso_millis(DateTime::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            iso_millis(DateTime::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
    }

    fn patterns(lowercase: &str) -> Vec<String> {
        any_case(lowercase)
            .iter()
            .map(|f| {
                f.get_document("email")
                    .and_then(|e| e.get_str("$regex"))
                    .expect("pattern")
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn any_case_lookups_escape_every_pattern_character_and_anchor_both_ends() {
        let rest = r"\+[cC]\([dD]\)\|[eE]\*\@[xX]\-[yY]\.[cC][oO][mM]\z";
        assert_eq!(
            patterns("a.b+c(d)|e*@x-y.com"),
            [r"\Aa\.b", r"\Aa\.B", r"\AA\.b", r"\AA\.B"].map(|p| format!("{p}{rest}")),
            "the first three characters' forms spelt out, one literal prefix per branch"
        );
        assert_eq!(
            patterns("jö@x.ıo"),
            [r"\Ajö\@", r"\AjÖ\@", r"\AJö\@", r"\AJÖ\@"].map(|p| format!(r"{p}[xX]\.ı[oO]\z")),
            "non-ASCII is never escaped; ı has no other form (its uppercase I lowercases to i)"
        );
        assert_eq!(patterns("1@"), [r"\A1\@\z"]);
    }

    #[test]
    fn a_character_matches_only_the_forms_that_lowercase_to_it() {
        assert_eq!(case_forms('s'), ['s', 'S']);
        assert_eq!(case_forms('ü'), ['ü', 'Ü']);
        assert_eq!(case_forms('ſ'), ['ſ'], "S lowercases to s, not to ſ");
        assert_eq!(case_forms('ς'), ['ς'], "Σ lowercases to σ, not to ς");
        assert_eq!(case_forms('@'), ['@']);
        // Every character a lowercased email can hold: each of its forms lowercases to it and
        // to nothing else, so two different lowercased emails never match one stored email.
        let mut checked = 0;
        for x in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for c in x.to_lowercase() {
                for u in case_forms(c) {
                    assert!(lowercases_to(u, c), "{u:?} is a form of {c:?}");
                }
                checked += 1;
            }
        }
        assert!(checked > 1_000_000, "{checked}");
    }

    #[test]
    fn a_user_document_never_prints_its_hash_or_token() {
        let u = UserDoc {
            id: ObjectId::new(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            full_name: "Alice".into(),
            avatar: String::new(),
            avatar_public_id: None,
            cover_image: String::new(),
            cover_image_public_id: None,
            watch_history: Vec::new(),
            password: "$argon2id$secret-hash".into(),
            refresh_token: Some("node.refresh.token".into()),
            created_at: DateTime::now(),
            updated_at: DateTime::now(),
        };
        let printed = format!("{u:?}");
        assert!(!printed.contains("secret-hash") && !printed.contains("node.refresh"));
        assert!(!printed.contains("alice@example.com"));
    }
}
