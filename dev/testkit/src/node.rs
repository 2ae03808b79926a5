//! Node-era users, exactly as the Node/Express "videotube" backend (mongoose) leaves them in the
//! shared `users` collection, for tests of everything that must accept them: login with a bcrypt
//! hash, the one-time exchange of a Node refresh token, and the `migrate-node` command.
//!
//! Documents are written as raw BSON, never through our own `UserDoc`, so a change to our
//! document type cannot quietly change what "a Node user" means in the tests. Each part mirrors
//! one piece of the Node version:
//! - the field order and types are those of a document created by `User.create(...)` in its
//!   register controller and then saved by its login (`refreshToken` last, added by that save);
//! - `password` is what npm `bcrypt` writes (`$2b$`, cost 10 by default; `$2a$` and `$2y$`
//!   hashes also occur, imported from other stacks);
//! - `email` is kept as typed (its schema misspells `lowercase`, so only mongoose's `trim`
//!   applies), `avatar`/`coverImage` are the `http://` `url` of Cloudinary's upload answer, and
//!   `coverImage` is `""` when none was uploaded;
//! - tokens are signed as node's `jsonwebtoken` signs them ([`node_refresh_token`],
//!   [`node_access_token`]).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use mongodb::{
    Database, IndexModel,
    bson::{Bson, DateTime, Document, doc, oid::ObjectId},
    options::IndexOptions,
};
use rand::Rng as _;
use serde::Serialize;

/// The cost npm `bcrypt` uses unless told otherwise (the Node version's `bcrypt.hash(pw, 10)`).
pub const NODE_BCRYPT_COST: u32 = 10;

/// The header node's `jsonwebtoken` writes for HS256, byte for byte (`alg` first).
pub const NODE_JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The version prefix of a bcrypt hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BcryptPrefix {
    /// `$2a$`: older libraries (and PHP's `password_hash` before 5.3.7 fixes) write it.
    TwoA,
    /// `$2b$`: what npm `bcrypt` writes today.
    #[default]
    TwoB,
    /// `$2y$`: PHP and some imports.
    TwoY,
}

impl BcryptPrefix {
    /// The prefix as it starts a hash, e.g. `"$2b$"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TwoA => "$2a$",
            Self::TwoB => "$2b$",
            Self::TwoY => "$2y$",
        }
    }

    fn version(self) -> bcrypt::Version {
        match self {
            Self::TwoA => bcrypt::Version::TwoA,
            Self::TwoB => bcrypt::Version::TwoB,
            Self::TwoY => bcrypt::Version::TwoY,
        }
    }
}

/// A password and its bcrypt hash, hashed once and reusable across many users (seeding
/// thousands of users at cost 10 would otherwise take minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePassword {
    pub plaintext: String,
    pub hash: String,
}

impl NodePassword {
    /// Hashes `plaintext` as npm `bcrypt.hash` does, with the given cost and prefix.
    pub fn new(plaintext: &str, cost: u32, prefix: BcryptPrefix) -> Self {
        let hash = bcrypt::hash_with_result(plaintext, cost)
            .expect("bcrypt cost is between 4 and 31")
            .format_for_version(prefix.version());
        Self {
            plaintext: plaintext.to_owned(),
            hash,
        }
    }
}

/// What the Node version stores as `coverImage`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CoverImage {
    /// `""`: registered without a cover image (`coverImage?.url || ""`).
    #[default]
    Empty,
    /// An `http://` Cloudinary URL, like the avatar's.
    Uploaded,
    /// This exact string.
    Url(String),
    /// No field at all (documents written before the controller set `""`, or by hand).
    Absent,
}

/// A Node-era user as inserted: what a test needs to log in as them or to check a migration.
#[derive(Debug, Clone)]
pub struct NodeUser {
    pub id: ObjectId,
    pub username: String,
    /// The email as typed at sign-up (mixed case possible), as stored.
    pub email: String,
    pub full_name: String,
    /// The plaintext password.
    pub password: String,
    pub password_hash: String,
    pub avatar_url: String,
    /// The public id inside `avatar_url`, when the fixture built that URL.
    pub avatar_public_id: Option<String>,
    /// The stored `coverImage` (`None` when the field is absent).
    pub cover_image: Option<String>,
    /// The public id inside the cover image URL, when the fixture built that URL.
    pub cover_image_public_id: Option<String>,
    /// The stored `refreshToken`, when the user was logged in on the Node version.
    pub refresh_token: Option<String>,
}

/// Starts a Node-era user; see [`NodeUserBuilder`] for the defaults.
pub fn node_user(username: &str) -> NodeUserBuilder {
    NodeUserBuilder {
        id: ObjectId::new(),
        username: username.to_owned(),
        email: None,
        full_name: "Node User".to_owned(),
        password: Password::Plain {
            plaintext: crate::PASSWORD.to_owned(),
            cost: NODE_BCRYPT_COST,
            prefix: BcryptPrefix::TwoB,
        },
        cloud: "videotube".to_owned(),
        avatar_url: None,
        cover_image: CoverImage::Empty,
        refresh: None,
    }
}

#[derive(Debug, Clone)]
enum Password {
    Plain {
        plaintext: String,
        cost: u32,
        prefix: BcryptPrefix,
    },
    Hashed(NodePassword),
}

/// Builds one Node-era user document. Defaults: email `<username>@example.com`, full name
/// "Node User", password [`crate::PASSWORD`] hashed `$2b$` at cost 10, avatar an `http://`
/// URL on `res.cloudinary.com` in cloud `videotube`, `coverImage: ""`, never logged in (no
/// `refreshToken`).
#[derive(Debug, Clone)]
pub struct NodeUserBuilder {
    id: ObjectId,
    username: String,
    email: Option<String>,
    full_name: String,
    password: Password,
    cloud: String,
    avatar_url: Option<String>,
    cover_image: CoverImage,
    refresh: Option<(String, Duration)>,
}

impl NodeUserBuilder {
    /// The `_id` (default: a fresh one).
    pub fn id(mut self, id: ObjectId) -> Self {
        self.id = id;
        self
    }

    /// The email exactly as stored (the Node version kept the case the user typed).
    pub fn email(mut self, typed: &str) -> Self {
        self.email = Some(typed.to_owned());
        self
    }

    pub fn full_name(mut self, full_name: &str) -> Self {
        self.full_name = full_name.to_owned();
        self
    }

    /// The plaintext password, hashed at build time with the chosen cost and prefix.
    pub fn password(mut self, plaintext: &str) -> Self {
        let (cost, prefix) = self.cost_and_prefix();
        self.password = Password::Plain {
            plaintext: plaintext.to_owned(),
            cost,
            prefix,
        };
        self
    }

    /// The bcrypt cost (default 10, npm `bcrypt`'s usual; 4 to 31).
    pub fn bcrypt_cost(mut self, cost: u32) -> Self {
        let (plaintext, _, prefix) = self.plain_parts();
        self.password = Password::Plain {
            plaintext,
            cost,
            prefix,
        };
        self
    }

    /// The hash's version prefix (default `$2b$`).
    pub fn bcrypt_prefix(mut self, prefix: BcryptPrefix) -> Self {
        let (plaintext, cost, _) = self.plain_parts();
        self.password = Password::Plain {
            plaintext,
            cost,
            prefix,
        };
        self
    }

    /// A password hashed beforehand, to seed many users without paying bcrypt for each.
    pub fn hashed(mut self, password: &NodePassword) -> Self {
        self.password = Password::Hashed(password.clone());
        self
    }

    /// The Cloudinary cloud name in generated image URLs (default `videotube`).
    pub fn cloud(mut self, cloud: &str) -> Self {
        self.cloud = cloud.to_owned();
        self
    }

    /// This exact `avatar` instead of a generated Cloudinary URL.
    pub fn avatar_url(mut self, url: &str) -> Self {
        self.avatar_url = Some(url.to_owned());
        self
    }

    pub fn cover_image(mut self, cover: CoverImage) -> Self {
        self.cover_image = cover;
        self
    }

    /// Logged in on the Node version: stores a refresh token from [`node_refresh_token`].
    pub fn logged_in(mut self, refresh_token_secret: &str, ttl: Duration) -> Self {
        self.refresh = Some((refresh_token_secret.to_owned(), ttl));
        self
    }

    fn cost_and_prefix(&self) -> (u32, BcryptPrefix) {
        match &self.password {
            Password::Plain { cost, prefix, .. } => (*cost, *prefix),
            Password::Hashed(_) => (NODE_BCRYPT_COST, BcryptPrefix::TwoB),
        }
    }

    fn plain_parts(&self) -> (String, u32, BcryptPrefix) {
        let (cost, prefix) = self.cost_and_prefix();
        let plaintext = match &self.password {
            Password::Plain { plaintext, .. } => plaintext.clone(),
            Password::Hashed(p) => p.plaintext.clone(),
        };
        (plaintext, cost, prefix)
    }

    /// The document as the Node version writes it, and what the test needs to know about it.
    /// No database needed; [`insert`](Self::insert) stores it.
    pub fn build(self) -> (Document, NodeUser) {
        let password = match self.password {
            Password::Plain {
                plaintext,
                cost,
                prefix,
            } => NodePassword::new(&plaintext, cost, prefix),
            Password::Hashed(p) => p,
        };
        let (avatar_url, avatar_public_id) = match self.avatar_url {
            Some(url) => (url, None),
            None => {
                let (url, id) = cloudinary_upload_url(&self.cloud);
                (url, Some(id))
            }
        };
        let (cover_image, cover_image_public_id) = match self.cover_image {
            CoverImage::Empty => (Some(String::new()), None),
            CoverImage::Uploaded => {
                let (url, id) = cloudinary_upload_url(&self.cloud);
                (Some(url), Some(id))
            }
            CoverImage::Url(url) => (Some(url), None),
            CoverImage::Absent => (None, None),
        };
        let email = self
            .email
            .unwrap_or_else(|| format!("{}@example.com", self.username));
        let refresh_token = self
            .refresh
            .map(|(secret, ttl)| node_refresh_token(&secret, self.id, ttl));
        let now = DateTime::now();

        let mut document = doc! {
            "_id": self.id,
            "username": &self.username,
            "email": &email,
            "fullName": &self.full_name,
            "avatar": &avatar_url,
        };
        if let Some(cover) = &cover_image {
            document.insert("coverImage", cover);
        }
        document.insert("watchHistory", Bson::Array(Vec::new()));
        document.insert("password", &password.hash);
        document.insert("createdAt", now);
        document.insert("updatedAt", now);
        document.insert("__v", 0_i32);
        if let Some(token) = &refresh_token {
            document.insert("refreshToken", token);
        }

        let user = NodeUser {
            id: self.id,
            username: self.username,
            email,
            full_name: self.full_name,
            password: password.plaintext,
            password_hash: password.hash,
            avatar_url,
            avatar_public_id,
            cover_image,
            cover_image_public_id,
            refresh_token,
        };
        (document, user)
    }

    /// Inserts the user into `db`'s `users` collection.
    pub async fn insert(self, db: &Database) -> NodeUser {
        let (document, user) = self.build();
        db.collection::<Document>("users")
            .insert_one(document)
            .await
            .expect("insert a Node-era user");
        user
    }
}

/// An upload URL as the Node version stored it: Cloudinary's `url` (plain `http://`), with the
/// version and the 20-character random public id Cloudinary picks when none is given.
fn cloudinary_upload_url(cloud: &str) -> (String, String) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let public_id: String = (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let version = rng.random_range(1_600_000_000_u64..1_800_000_000);
    let url = format!("http://res.cloudinary.com/{cloud}/image/upload/v{version}/{public_id}.png");
    (url, public_id)
}

/// The indexes mongoose's `autoIndex` creates for the Node user schema, under its names:
/// `username_1` and `email_1` (unique), `fullName_1` (`index: true`).
pub async fn create_node_indexes(db: &Database) {
    let users = db.collection::<Document>("users");
    for (field, unique) in [("username", true), ("email", true), ("fullName", false)] {
        // mongoose omits `unique` on plain indexes rather than sending `unique: false`.
        let options = IndexOptions::builder()
            .name(format!("{field}_1"))
            .unique(unique.then_some(true))
            .build();
        let model = IndexModel::builder()
            .keys(doc! {field: 1})
            .options(options)
            .build();
        users
            .create_index(model)
            .await
            .unwrap_or_else(|e| panic!("create the mongoose index {field}_1: {e}"));
    }
}

/// The Node version's refresh-token claims (`generateRefreshToken`), in its order.
#[derive(Serialize)]
struct NodeRefreshClaims {
    _id: String,
    iat: u64,
    exp: u64,
}

/// The Node version's access-token claims (`generateAccessToken`), in its order.
#[derive(Serialize)]
struct NodeAccessClaims<'a> {
    _id: String,
    email: &'a str,
    username: &'a str,
    #[serde(rename = "fullName")]
    full_name: &'a str,
    iat: u64,
    exp: u64,
}

/// A refresh token as the Node version mints it: `jwt.sign({_id}, REFRESH_TOKEN_SECRET,
/// {expiresIn})`, i.e. claims exactly `{_id, iat, exp}` and no `typ` claim of ours.
pub fn node_refresh_token(secret: &str, user_id: ObjectId, ttl: Duration) -> String {
    let iat = unix_now();
    node_jwt(
        secret,
        &NodeRefreshClaims {
            _id: user_id.to_hex(),
            iat,
            exp: iat + ttl.as_secs(),
        },
    )
}

/// An access token as the Node version mints it: `jwt.sign({_id, email, username, fullName},
/// ACCESS_TOKEN_SECRET, {expiresIn})`, with the email as stored.
pub fn node_access_token(secret: &str, user: &NodeUser, ttl: Duration) -> String {
    let iat = unix_now();
    node_jwt(
        secret,
        &NodeAccessClaims {
            _id: user.id.to_hex(),
            email: &user.email,
            username: &user.username,
            full_name: &user.full_name,
            iat,
            exp: iat + ttl.as_secs(),
        },
    )
}

/// Signs any claims (serialised in field order) as node's `jsonwebtoken` does for HS256, with
/// its header byte for byte; for tokens the two helpers above do not cover (e.g. expired ones).
pub fn node_jwt(secret: &str, claims: &impl Serialize) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialise");
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(NODE_JWT_HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("HS256 signs with any key");
    format!("{message}.{signature}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "node-refresh-secret";

    fn decode(token: &str, secret: &str) -> Value {
        jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &Validation::new(Algorithm::HS256),
        )
        .expect("a valid HS256 token")
        .claims
    }

    fn segment(token: &str, n: usize) -> String {
        let part = token.split('.').nth(n).expect("three segments");
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("utf-8")
    }

    #[test]
    fn a_node_refresh_token_has_exactly_the_node_header_and_claims() {
        let id = ObjectId::new();
        let token = node_refresh_token(SECRET, id, Duration::from_secs(864_000));
        assert_eq!(segment(&token, 0), NODE_JWT_HEADER);
        let claims = decode(&token, SECRET);
        let iat = claims["iat"].as_u64().expect("iat");
        assert_eq!(
            claims,
            json!({"_id": id.to_hex(), "iat": iat, "exp": iat + 864_000})
        );
        assert!(
            segment(&token, 1).starts_with(&format!(r#"{{"_id":"{}","iat":"#, id.to_hex())),
            "claims in node's order"
        );
    }

    #[test]
    fn a_node_access_token_carries_the_user_as_stored() {
        let (_, user) = node_user("alice")
            .email("Alice.Smith@Example.COM")
            .full_name("Alice Smith")
            .bcrypt_cost(4)
            .build();
        let token = node_access_token("access", &user, Duration::from_secs(86_400));
        assert_eq!(segment(&token, 0), NODE_JWT_HEADER);
        let claims = decode(&token, "access");
        let iat = claims["iat"].as_u64().expect("iat");
        assert_eq!(
            claims,
            json!({"_id": user.id.to_hex(), "email": "Alice.Smith@Example.COM",
                   "username": "alice", "fullName": "Alice Smith",
                   "iat": iat, "exp": iat + 86_400})
        );
        assert!(segment(&token, 1).starts_with(r#"{"_id":"#));
    }

    #[test]
    fn a_token_signed_with_another_secret_does_not_verify() {
        let token = node_refresh_token(SECRET, ObjectId::new(), Duration::from_secs(60));
        let wrong = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn hashes_verify_with_the_bcrypt_crate_and_have_the_asked_prefix_and_cost() {
        for (prefix, cost) in [
            (BcryptPrefix::TwoA, 4),
            (BcryptPrefix::TwoB, NODE_BCRYPT_COST),
            (BcryptPrefix::TwoY, 5),
        ] {
            let (document, user) = node_user("bob")
                .password("hunter2")
                .bcrypt_cost(cost)
                .bcrypt_prefix(prefix)
                .build();
            let stored = document.get_str("password").expect("password");
            assert_eq!(stored, user.password_hash);
            assert!(
                stored.starts_with(&format!("{}{cost:02}$", prefix.as_str())),
                "{stored} starts with {} and cost {cost}",
                prefix.as_str()
            );
            assert_eq!(stored.len(), 60);
            assert!(bcrypt::verify("hunter2", stored).expect("a bcrypt hash"));
            assert!(!bcrypt::verify("hunter3", stored).expect("a bcrypt hash"));
        }
    }

    #[test]
    fn the_cost_and_prefix_can_be_set_in_either_order_around_the_password() {
        let (_, user) = node_user("carol")
            .bcrypt_prefix(BcryptPrefix::TwoY)
            .bcrypt_cost(4)
            .password("pw")
            .build();
        assert!(user.password_hash.starts_with("$2y$04$"));
        assert_eq!(user.password, "pw");
    }

    #[test]
    fn a_node_document_has_mongooses_fields_in_mongooses_order() {
        let (document, user) = node_user("dave")
            .email("Dave@Example.COM")
            .bcrypt_cost(4)
            .cloud("democloud")
            .cover_image(CoverImage::Uploaded)
            .logged_in(SECRET, Duration::from_secs(60))
            .build();
        let keys: Vec<&str> = document.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "_id",
                "username",
                "email",
                "fullName",
                "avatar",
                "coverImage",
                "watchHistory",
                "password",
                "createdAt",
                "updatedAt",
                "__v",
                "refreshToken"
            ]
        );
        assert_eq!(document.get_str("email"), Ok("Dave@Example.COM"));
        assert_eq!(document.get_i32("__v"), Ok(0));
        assert!(
            document
                .get_array("watchHistory")
                .expect("array")
                .is_empty()
        );
        let avatar = document.get_str("avatar").expect("avatar");
        let public_id = user.avatar_public_id.as_deref().expect("generated");
        assert!(avatar.starts_with("http://res.cloudinary.com/democloud/image/upload/v"));
        assert!(avatar.ends_with(&format!("/{public_id}.png")));
        assert_eq!(public_id.len(), 20);
        assert_eq!(
            user.refresh_token.as_deref(),
            document.get_str("refreshToken").ok()
        );
        assert_eq!(
            decode(user.refresh_token.as_deref().expect("token"), SECRET)["_id"],
            user.id.to_hex()
        );
    }

    #[test]
    fn a_user_who_never_logged_in_has_no_refresh_token_and_an_empty_cover_image() {
        let (document, user) = node_user("erin").bcrypt_cost(4).build();
        assert!(!document.contains_key("refreshToken"));
        assert_eq!(document.get_str("coverImage"), Ok(""));
        assert_eq!(user.refresh_token, None);
        let (absent, _) = node_user("erin")
            .bcrypt_cost(4)
            .cover_image(CoverImage::Absent)
            .build();
        assert!(!absent.contains_key("coverImage"));
    }

    #[test]
    fn one_hash_can_be_reused_for_many_users() {
        let password = NodePassword::new("shared pw", 4, BcryptPrefix::TwoA);
        let (a, _) = node_user("f1").hashed(&password).build();
        let (b, user) = node_user("f2").hashed(&password).build();
        assert_eq!(a.get_str("password"), b.get_str("password"));
        assert_eq!(user.password, "shared pw");
        assert_ne!(a.get_object_id("_id"), b.get_object_id("_id"));
    }
}
