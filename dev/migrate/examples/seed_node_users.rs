//! Seeds a scratch database with Node-era users for a measured `migrate-node` run:
//!
//! ```sh
//! MONGODB_URI=mongodb://127.0.0.1:27117/ MONGODB_DB=scratch_migration \
//!     cargo run --release -p migrate --example seed_node_users -- 3000
//! ```
//!
//! Users are written by `testkit::node` exactly as the Node version writes them, with one
//! bcrypt hash (cost 10, `$2b$`) shared by all, so seeding takes seconds. Of N users (default
//! 3,000): 3 pairs whose emails collide after lowercasing (`Pair<k>@Example.com` and
//! `pair<k>@example.com`), and of the rest every tenth email mixed-case, every other user
//! logged in (a Node refresh token), every fourth with an uploaded cover image, every fourth
//! without a `coverImage` field and the others with `coverImage: ""`; every image URL is
//! `http://res.cloudinary.com/...`. The mongoose indexes (`username_1`, `email_1`,
//! `fullName_1`) are created first. Refuses a database whose `users` is not empty.
use std::time::{Duration, Instant};

use mongodb::bson::{Document, doc};
use testkit::node::{BcryptPrefix, CoverImage, NodePassword, create_node_indexes, node_user};

const PAIRS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), String> {
    let count: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("{n:?} is not a number of users"))?,
        None => 3_000,
    };
    let uri = std::env::var("MONGODB_URI").map_err(|_| "MONGODB_URI is not set")?;
    let name = std::env::var("MONGODB_DB")
        .map_err(|_| "MONGODB_DB is not set (name a scratch database)")?;
    let db = mongodb::Client::with_uri_str(&uri)
        .await
        .map_err(|e| e.to_string())?
        .database(&name);
    let users = db.collection::<Document>("users");
    if users
        .count_documents(doc! {})
        .await
        .map_err(|e| e.to_string())?
        > 0
    {
        return Err(format!(
            "{name}.users is not empty; seed a scratch database"
        ));
    }
    let started = Instant::now();
    create_node_indexes(&db).await;
    let password = NodePassword::new(testkit::PASSWORD, 10, BcryptPrefix::TwoB);
    // A throwaway REFRESH_TOKEN_SECRET: the migration never verifies the tokens.
    let secret = format!("node-refresh-secret-{}", testkit::random_suffix());
    let ten_days = Duration::from_secs(10 * 24 * 3600);

    let mut documents = Vec::with_capacity(count);
    for k in 0..PAIRS.min(count / 2) {
        for (suffix, email) in [
            ("a", format!("Pair{k}@Example.com")),
            ("b", format!("pair{k}@example.com")),
        ] {
            let (doc, _) = node_user(&format!("pair{k}{suffix}"))
                .email(&email)
                .hashed(&password)
                .build();
            documents.push(doc);
        }
    }
    for i in 0..count - documents.len() {
        let username = format!("user{i}");
        let mut user = node_user(&username)
            .full_name(&format!("User {i}"))
            .hashed(&password);
        if i % 10 == 0 {
            user = user.email(&format!("User{i}@Example.COM"));
        }
        if i % 2 == 0 {
            user = user.logged_in(&secret, ten_days);
        }
        user = user.cover_image(match i % 4 {
            0 => CoverImage::Uploaded,
            1 => CoverImage::Absent,
            _ => CoverImage::Empty,
        });
        documents.push(user.build().0);
    }
    for batch in documents.chunks(500) {
        users
            .insert_many(batch.to_vec())
            .await
            .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "seeded {} Node-era users into {name}.users in {:.1} s",
        documents.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
