//! `migrate-node` against the real database (FerretDB under `make test`), on users written
//! exactly as the Node version writes them (`testkit::node`): what a dry run reports and leaves
//! alone, what `--apply` fixes, that a second run has nothing to do, and what it leaves for a
//! human.
use std::{process::Command as Process, time::Duration};

use futures::TryStreamExt as _;
use migrate::{
    Options, Report,
    plan::{DocPlan, EmailChecks},
};
use mongodb::{
    Collection, Database,
    bson::{Document, doc},
};
use testkit::node::{CoverImage, NodePassword, NodeUser, create_node_indexes, node_user};

const REFRESH_SECRET: &str = "node-refresh-token-secret";
const TEN_DAYS: Duration = Duration::from_secs(10 * 24 * 3600);

/// A fresh, empty database on the test server.
async fn fresh_db() -> Database {
    let uri = testkit::required_env("TEST_MONGODB_URI");
    let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
    client.database(&format!("test_{}", testkit::random_suffix()))
}

fn users(db: &Database) -> Collection<Document> {
    db.collection("users")
}

/// One bcrypt hash at cost 4 for every user of a test: the migration never looks at it.
fn password() -> NodePassword {
    NodePassword::new(testkit::PASSWORD, 4, Default::default())
}

async fn migrate(db: &Database, apply: bool, remove_refresh_tokens: bool) -> Report {
    let options = Options {
        apply,
        remove_refresh_tokens,
    };
    migrate::run(db, options, &mut std::io::sink())
        .await
        .expect("the migration runs")
}

/// Every user document, in `_id` order.
async fn snapshot(db: &Database) -> Vec<Document> {
    users(db)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read all")
}

async fn user(db: &Database, u: &NodeUser) -> Document {
    users(db)
        .find_one(doc! {"_id": u.id})
        .await
        .expect("find")
        .expect("the user exists")
}

/// Alice logged in on Node with a mixed-case email and a cover image; Bob never logged in and
/// has `coverImage: ""`; Carol has no `coverImage` field.
async fn seed_three(db: &Database) -> [NodeUser; 3] {
    let pw = password();
    create_node_indexes(db).await;
    let alice = node_user("alice")
        .email("Alice.Smith@Example.COM")
        .full_name("Alice Smith")
        .hashed(&pw)
        .cover_image(CoverImage::Uploaded)
        .logged_in(REFRESH_SECRET, TEN_DAYS)
        .insert(db)
        .await;
    let bob = node_user("bob").hashed(&pw).insert(db).await;
    let carol = node_user("carol")
        .hashed(&pw)
        .cover_image(CoverImage::Absent)
        .insert(db)
        .await;
    [alice, bob, carol]
}

#[tokio::test]
async fn a_dry_run_reports_every_node_era_fix_and_changes_nothing() {
    let db = fresh_db().await;
    seed_three(&db).await;
    let before = snapshot(&db).await;

    let report = migrate(&db, false, false).await;

    assert_eq!(snapshot(&db).await, before, "a dry run writes nothing");
    assert_eq!(report.scanned, 3);
    assert_eq!(report.emails.found, 1);
    assert_eq!(report.refresh_tokens.found, 1);
    assert_eq!(report.avatar_public_ids.found, 3);
    assert_eq!(report.https_avatars.found, 3);
    assert_eq!(report.cover_public_ids.found, 1);
    assert_eq!(report.https_covers.found, 1);
    assert_eq!(report.documents.found, 3);
    assert_eq!(report.documents.done, 0);
    assert_eq!(report.exit_code(), 0);
    assert!(
        report
            .rerun_line()
            .contains("--apply would update 3 documents")
    );
}

#[tokio::test]
async fn apply_fixes_every_item_and_a_second_apply_changes_nothing() {
    let db = fresh_db().await;
    let [alice, bob, carol] = seed_three(&db).await;

    let report = migrate(&db, true, false).await;
    assert_eq!(report.documents, migrate::Tally { found: 3, done: 3 });
    assert_eq!(report.emails.done, 1);
    assert_eq!(report.avatar_public_ids.done, 3);
    assert_eq!(report.cover_public_ids.done, 1);
    assert_eq!(report.https_avatars.done + report.https_covers.done, 4);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        report.rerun_line(),
        "Updated 3 documents; a re-run would change nothing."
    );

    let a = user(&db, &alice).await;
    assert_eq!(a.get_str("email"), Ok("alice.smith@example.com"));
    assert_eq!(
        a.get_str("avatar").ok(),
        Some(alice.avatar_url.replacen("http://", "https://", 1).as_str())
    );
    assert_eq!(
        a.get_str("avatarPublicId").ok(),
        alice.avatar_public_id.as_deref()
    );
    assert_eq!(
        a.get_str("coverImagePublicId").ok(),
        alice.cover_image_public_id.as_deref()
    );
    assert!(
        a.get_str("coverImage")
            .expect("cover")
            .starts_with("https://res.cloudinary.com/")
    );
    assert_eq!(
        a.get_str("password"),
        Ok(alice.password_hash.as_str()),
        "hashes untouched"
    );
    let b = user(&db, &bob).await;
    assert_eq!(
        b.get_str("coverImage"),
        Ok(""),
        "no cover image stays no cover image"
    );
    assert!(!b.contains_key("coverImagePublicId"));
    assert!(!user(&db, &carol).await.contains_key("coverImage"));

    let after_first = snapshot(&db).await;
    let again = migrate(&db, true, false).await;
    assert_eq!(
        snapshot(&db).await,
        after_first,
        "the second run wrote nothing"
    );
    assert_eq!(again.documents, migrate::Tally::default());
    assert_eq!(
        again.rerun_line(),
        "Nothing needed changing; a re-run would change nothing."
    );
    assert_eq!(again.exit_code(), 0);
    assert_eq!(migrate(&db, false, false).await.documents.found, 0);
}

#[tokio::test]
async fn emails_that_would_collide_are_reported_by_id_left_alone_and_exit_non_zero() {
    let db = fresh_db().await;
    let pw = password();
    create_node_indexes(&db).await;
    let upper = node_user("bob1")
        .email("Bob@x.com")
        .hashed(&pw)
        .insert(&db)
        .await;
    let lower = node_user("bob2")
        .email("bob@x.com")
        .hashed(&pw)
        .insert(&db)
        .await;
    let shout = node_user("cat1")
        .email("CAT@y.com")
        .hashed(&pw)
        .insert(&db)
        .await;
    let padded = node_user("cat2")
        .email(" Cat@y.com")
        .hashed(&pw)
        .insert(&db)
        .await;
    let fine = node_user("dan")
        .email("Dan@Z.com")
        .hashed(&pw)
        .insert(&db)
        .await;

    let report = migrate(&db, true, false).await;

    let mut bobs = vec![upper.id, lower.id];
    bobs.sort();
    let mut cats = vec![shout.id, padded.id];
    cats.sort();
    let mut groups = vec![bobs, cats];
    groups.sort();
    assert_eq!(report.email_collisions, groups);
    for (u, email) in [
        (&upper, "Bob@x.com"),
        (&lower, "bob@x.com"),
        (&shout, "CAT@y.com"),
        (&padded, " Cat@y.com"),
    ] {
        let stored = user(&db, u).await;
        assert_eq!(stored.get_str("email"), Ok(email), "left alone");
        assert!(
            stored.contains_key("avatarPublicId"),
            "the other fixes still go in"
        );
    }
    assert_eq!(user(&db, &fine).await.get_str("email"), Ok("dan@z.com"));
    assert_eq!(report.emails.done, 1);
    assert_eq!(report.exit_code(), 1);
    let text = report.to_string();
    assert!(text.contains(&upper.id.to_hex()) && text.contains(&padded.id.to_hex()));
    assert!(text.contains("Needs a human (exit status 1)"));
    for email in [
        "Bob@x.com",
        "bob@x.com",
        "CAT@y.com",
        "Cat@y.com",
        "dan@z.com",
        "Dan@Z.com",
    ] {
        assert!(!text.contains(email), "the report never prints an email");
    }

    let again = migrate(&db, true, false).await;
    assert_eq!(
        again.email_collisions, groups,
        "still reported, still left alone"
    );
    assert_eq!(again.documents.found, 0);
    assert_eq!(again.exit_code(), 1);
}

#[tokio::test]
async fn refresh_tokens_are_kept_without_the_flag_and_removed_with_it() {
    let db = fresh_db().await;
    let [alice, ..] = seed_three(&db).await;
    let token = alice.refresh_token.clone().expect("logged in");

    let kept = migrate(&db, true, false).await;
    assert_eq!(kept.refresh_tokens, migrate::Tally { found: 1, done: 0 });
    assert_eq!(
        user(&db, &alice).await.get_str("refreshToken"),
        Ok(token.as_str())
    );
    let preview = migrate(&db, false, true).await;
    assert_eq!(preview.documents.found, 1, "a dry run previews the removal");
    assert_eq!(
        user(&db, &alice).await.get_str("refreshToken"),
        Ok(token.as_str())
    );

    let removed = migrate(&db, true, true).await;
    assert_eq!(removed.refresh_tokens, migrate::Tally { found: 1, done: 1 });
    assert!(!user(&db, &alice).await.contains_key("refreshToken"));
    assert_eq!(migrate(&db, true, true).await.documents.found, 0);
}

#[tokio::test]
async fn urls_without_a_public_id_are_reported_by_id_and_other_hosts_stay_http() {
    let db = fresh_db().await;
    let pw = password();
    let foreign = node_user("erin")
        .avatar_url("http://example.com/avatars/erin.png")
        .hashed(&pw)
        .insert(&db)
        .await;
    let odd_cover = node_user("finn")
        .cover_image(CoverImage::Url(
            "https://res.cloudinary.com/demo/video/upload/v1/clip.mp4".into(),
        ))
        .hashed(&pw)
        .insert(&db)
        .await;

    let report = migrate(&db, true, false).await;

    assert_eq!(report.underivable_avatars, vec![foreign.id]);
    assert_eq!(report.foreign_http, vec![foreign.id]);
    assert_eq!(report.underivable_covers, vec![odd_cover.id]);
    let erin = user(&db, &foreign).await;
    assert_eq!(
        erin.get_str("avatar"),
        Ok("http://example.com/avatars/erin.png")
    );
    assert!(!erin.contains_key("avatarPublicId"));
    let finn = user(&db, &odd_cover).await;
    assert_eq!(
        finn.get_str("avatarPublicId").ok(),
        odd_cover.avatar_public_id.as_deref()
    );
    assert!(!finn.contains_key("coverImagePublicId"));
    assert_eq!(report.exit_code(), 1);
    assert!(
        !report.to_string().contains("example.com"),
        "ids only, never a URL"
    );
}

#[tokio::test]
async fn the_mongoose_indexes_are_accepted_and_every_index_exists_afterwards() {
    let db = fresh_db().await;
    seed_three(&db).await;

    let report = migrate(&db, true, false).await;

    let names = users(&db).list_index_names().await.expect("indexes");
    assert!(names.contains(&"username_1".to_owned()), "{names:?}");
    assert!(names.contains(&"email_1".to_owned()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "username_unique" || n == "email_unique"),
        "mongoose's unique indexes are kept, not doubled: {names:?}"
    );
    let refresh_tokens = db
        .collection::<Document>("refresh_tokens")
        .list_index_names()
        .await
        .expect("indexes");
    assert!(refresh_tokens.len() > 1, "{refresh_tokens:?}");
    assert!(matches!(report.indexes, migrate::Indexes::Ensured { .. }));
}

#[tokio::test]
async fn a_database_without_indexes_gets_ours_and_a_dry_run_creates_none() {
    let db = fresh_db().await;
    node_user("gail").hashed(&password()).insert(&db).await;

    migrate(&db, false, false).await;
    assert_eq!(
        users(&db).list_index_names().await.expect("indexes"),
        vec!["_id_".to_owned()]
    );
    migrate(&db, true, false).await;
    let names = users(&db).list_index_names().await.expect("indexes");
    assert!(names.contains(&"username_unique".to_owned()), "{names:?}");
    assert!(names.contains(&"email_unique".to_owned()), "{names:?}");
}

#[tokio::test]
async fn an_update_from_a_stale_read_never_overwrites_a_concurrent_change() {
    let db = fresh_db().await;
    create_node_indexes(&db).await;
    let hana = node_user("hana")
        .email("Hana@X.com")
        .hashed(&password())
        .insert(&db)
        .await;
    let read = users(&db)
        .find_one(doc! {"_id": hana.id})
        .projection(migrate::plan::projection())
        .await
        .expect("find")
        .expect("exists");
    let mut checks = EmailChecks::default();
    checks.lowercase.insert(hana.id, "Hana@X.com".to_owned());
    let plan = DocPlan::of(&read, &checks).expect("id");
    let update = plan.update(false, true).expect("work to do");
    // The live Node app changes the email after the migration read the document.
    users(&db)
        .update_one(
            doc! {"_id": hana.id},
            doc! {"$set": {"email": "Hana.New@X.com"}},
        )
        .await
        .expect("node's change");

    let mut report = Report::new(db.name(), Options::default());
    migrate::apply(&users(&db), &plan, update, &mut report)
        .await
        .expect("no error");

    assert_eq!(report.changed_during_run, vec![hana.id]);
    assert_eq!(report.documents.done, 0);
    let stored = user(&db, &hana).await;
    assert_eq!(stored.get_str("email"), Ok("Hana.New@X.com"));
    assert!(
        stored
            .get_str("avatar")
            .expect("avatar")
            .starts_with("http://")
    );
}

#[tokio::test]
async fn an_email_taken_by_a_live_sign_up_is_a_collision_not_a_crash() {
    let db = fresh_db().await;
    create_node_indexes(&db).await;
    let ivy = node_user("ivy")
        .email("Ivy@X.com")
        .hashed(&password())
        .insert(&db)
        .await;
    let read = users(&db)
        .find_one(doc! {"_id": ivy.id})
        .projection(migrate::plan::projection())
        .await
        .expect("find")
        .expect("exists");
    let mut checks = EmailChecks::default();
    checks.lowercase.insert(ivy.id, "Ivy@X.com".to_owned());
    let plan = DocPlan::of(&read, &checks).expect("id");
    let update = plan.update(false, true).expect("work to do");
    // Someone signs up with the lowercase address after the collision check.
    let newcomer = node_user("ivy2")
        .email("ivy@x.com")
        .hashed(&password())
        .insert(&db)
        .await;

    let mut report = Report::new(db.name(), Options::default());
    migrate::apply(&users(&db), &plan, update, &mut report)
        .await
        .expect("a duplicate key is no error");

    assert_eq!(report.email_races, vec![ivy.id]);
    assert_eq!(report.exit_code(), 1);
    let stored = user(&db, &ivy).await;
    assert_eq!(stored.get_str("email"), Ok("Ivy@X.com"));
    assert!(
        stored.contains_key("avatarPublicId"),
        "the other fixes went in"
    );
    assert_eq!(report.documents.done, 1);
    assert_eq!(user(&db, &newcomer).await.get_str("email"), Ok("ivy@x.com"));
}

#[tokio::test]
async fn large_collections_get_a_progress_line_every_thousand_documents() {
    let db = fresh_db().await;
    let pw = password();
    let documents: Vec<Document> = (0..1_001)
        .map(|n| node_user(&format!("user{n}")).hashed(&pw).build().0)
        .collect();
    users(&db).insert_many(documents).await.expect("seed");

    let mut progress = Vec::new();
    let report = migrate::run(&db, Options::default(), &mut progress)
        .await
        .expect("runs");

    let progress = String::from_utf8(progress).expect("text");
    assert_eq!(report.scanned, 1_001);
    assert_eq!(progress.lines().count(), 2, "{progress}");
    assert!(progress.contains("[migrate-node] emails: 1000 of ~1001 documents read"));
    assert!(
        progress.contains("[migrate-node] fixes: 1000 of ~1001 documents read, 1000 to update")
    );
}

/// Runs the built `migrate-node` binary with `MONGODB_URI`/`MONGODB_DB` set as given.
fn command(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Process::new(env!("CARGO_BIN_EXE_migrate-node"));
    cmd.args(args)
        .env_remove("MONGODB_URI")
        .env_remove("MONGODB_DB");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_explains_itself_and_refuses_what_it_does_not_understand() {
    let (code, help, _) = command(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(help.contains("--apply") && help.contains("--remove-refresh-tokens"));
    assert!(help.contains("EXIT STATUS"));
    let (code, _, err) = command(&["--aply"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown argument \"--aply\""), "{err}");
    let (code, _, err) = command(&[], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("MONGODB_URI is not set"), "{err}");
}

#[tokio::test]
async fn the_command_prints_ids_and_counts_only_and_exits_1_on_collisions() {
    let db = fresh_db().await;
    let [alice, ..] = seed_three(&db).await;
    let pw = password();
    let upper = node_user("bob1")
        .email("Bob@x.com")
        .hashed(&pw)
        .insert(&db)
        .await;
    node_user("bob2")
        .email("bob@x.com")
        .hashed(&pw)
        .insert(&db)
        .await;
    let uri = testkit::required_env("TEST_MONGODB_URI");
    let env = [("MONGODB_URI", uri.as_str()), ("MONGODB_DB", db.name())];

    let (code, out, err) = command(&["--apply"], &env);

    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&upper.id.to_hex()), "{out}");
    assert!(out.contains("a re-run would change nothing"), "{out}");
    let secrets = [
        alice.email.as_str(),
        "alice.smith@example.com",
        "Bob@x.com",
        alice.password_hash.as_str(),
        alice.refresh_token.as_deref().expect("token"),
        alice.avatar_url.as_str(),
        "res.cloudinary.com",
        uri.as_str(),
    ];
    for secret in secrets {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret:?} printed"
        );
    }
}

#[tokio::test]
async fn a_document_that_neither_app_wrote_is_counted_and_left_alone() {
    let db = fresh_db().await;
    let stray = doc! {"_id": "not-an-object-id", "email": "Stray@X.com", "avatar": "http://res.cloudinary.com/d/image/upload/v1/a.png"};
    users(&db).insert_one(stray.clone()).await.expect("insert");

    let report = migrate(&db, true, false).await;

    assert_eq!(report.other_ids, 1, "{report}");
    assert_eq!(report.documents.found, 0);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(snapshot(&db).await, vec![stray]);
}
