//! `migrate-node`: brings the `users` collection a Node-era videotube backend shares with us to
//! the shape our functions write, in place, while the Node app keeps serving.
//!
//! Two passes over the collection, each reading only the fields it needs:
//! 1. emails only, one cursor: which are not trimmed and lowercased, and where they would land.
//!    Pairs that would collide (with each other, or with an email already stored that way,
//!    found by one `$in` query per 500 targets) are left alone and listed by `_id` for a
//!    human: picking which account keeps the address is not a migration's call.
//! 2. everything else, one cursor: one [`plan::DocPlan`] per document, applied (with
//!    `--apply`) as one conditional update per document (see [`plan`]): a document the live
//!    app changed after we read it is skipped and reported, never overwritten; an email a
//!    sign-up took meanwhile (duplicate key) is reported as a collision and the document's
//!    other fixes still go in. On MongoDB that filter is an `_id` index lookup; FerretDB 1.x
//!    scans the collection for any filter but `{_id}` alone, so there each update costs a scan
//!    (3,000 users: about 7 minutes, measured; 300: 10 s). Local stacks only, so accepted.
//!
//! With `--apply`, the indexes are ensured first ([`shared::schema::ensure_indexes`], the one
//! place that knows them; it keeps mongoose's `username_1`/`email_1`), so every email update
//! runs under the unique index. Every step is idempotent: a second run finds nothing to do.
pub mod cli;
pub mod plan;
pub mod report;

use std::{collections::HashMap, io::Write, time::Duration};

use futures::TryStreamExt as _;
use mongodb::{
    Client, Collection, Database,
    bson::{Document, doc, oid::ObjectId},
    error::ErrorKind,
    options::ClientOptions,
};
use shared::store::{Store, StoreError};

pub use cli::{Command, HELP, Options, Target};
use plan::{DocPlan, EmailChecks, EmailPlan, Update};
pub use report::{Indexes, Report, Tally};

/// A progress line goes to stderr every this many documents.
pub const PROGRESS_EVERY: u64 = 1_000;
/// Documents per cursor batch in pass 2.
const PAGE_SIZE: u32 = 1_000;
/// Emails looked up per `$in` query in the collision check.
const TARGETS_PER_QUERY: usize = 500;
const USERS: &str = shared::users::USERS;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] mongodb::error::Error),
    #[error("ensuring the indexes failed; nothing was changed: {0}")]
    Indexes(#[source] StoreError),
    #[error(
        "the database failed while {during} ({updated} documents updated before; re-run to finish): {source}"
    )]
    Database {
        during: &'static str,
        updated: u64,
        #[source]
        source: mongodb::error::Error,
    },
}

impl MigrateError {
    /// Every error is exit status 2: the run could not do what it was asked.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Connects to `target` and checks the server answers.
pub async fn connect(target: &Target) -> Result<Database, MigrateError> {
    let mut options = ClientOptions::parse(&target.uri)
        .await
        .map_err(MigrateError::Connect)?;
    options.app_name = Some("videotube-migrate-node".to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(10));
    options.connect_timeout = Some(Duration::from_secs(10));
    let client = Client::with_options(options).map_err(MigrateError::Connect)?;
    let db = client.database(&target.database);
    db.run_command(doc! {"ping": 1})
        .await
        .map_err(MigrateError::Connect)?;
    Ok(db)
}

/// Runs the migration on `db`'s `users`, writing progress lines to `progress`.
pub async fn run(
    db: &Database,
    options: Options,
    progress: &mut dyn Write,
) -> Result<Report, MigrateError> {
    let users: Collection<Document> = db.collection(USERS);
    let mut report = Report::new(db.name(), options);
    let db_error = |during: &'static str, updated: u64| {
        move |source| MigrateError::Database {
            during,
            updated,
            source,
        }
    };

    if options.apply {
        let store = Store::from_database(db.clone());
        store
            .ready(shared::schema::ensure_indexes)
            .await
            .map_err(MigrateError::Indexes)?;
    }
    let total = users
        .estimated_document_count()
        .await
        .map_err(db_error("counting the users", 0))?;

    let checks = check_emails(&users, total, &mut report, progress).await?;

    // Batches of 1,000: a server drops a cursor left idle for 10 minutes, and a full 16 MB
    // batch would take longer than that to update on a slow server.
    let mut cursor = users
        .find(doc! {})
        .projection(plan::projection())
        .batch_size(PAGE_SIZE)
        .await
        .map_err(db_error("reading the users", 0))?;
    let mut read = 0;
    while let Some(document) = cursor
        .try_next()
        .await
        .map_err(db_error("reading the users", report.documents.done))?
    {
        read += 1;
        if let Some(plan) = DocPlan::of(&document, &checks) {
            tally(&mut report, &plan);
            if let Some(update) = plan.update(options.remove_refresh_tokens, true) {
                report.documents.found += 1;
                if options.apply {
                    apply(&users, &plan, update, &mut report).await?;
                }
            }
        }
        if read % PROGRESS_EVERY == 0 {
            let (n, what) = if options.apply {
                (report.documents.done, "updated")
            } else {
                (report.documents.found, "to update")
            };
            progress_line(
                progress,
                &format!("fixes: {read} of ~{total} documents read, {n} {what}"),
            );
        }
    }
    report.scanned = read;
    report.changed_during_run.sort();
    report.changed_during_run.dedup();

    let names = index_names(&users)
        .await
        .map_err(db_error("listing the indexes", report.documents.done))?;
    report.indexes = if options.apply {
        Indexes::Ensured { users: names }
    } else {
        Indexes::Unchecked { users: names }
    };
    Ok(report)
}

/// Pass 1: which emails can be lowercased, and which would collide.
async fn check_emails(
    users: &Collection<Document>,
    total: u64,
    report: &mut Report,
    progress: &mut dyn Write,
) -> Result<EmailChecks, MigrateError> {
    let failed = |source| MigrateError::Database {
        during: "checking the emails",
        updated: 0,
        source,
    };
    // Normalised email -> the documents (id, stored email) that would get it.
    let mut targets: HashMap<String, Vec<(ObjectId, String)>> = HashMap::new();
    let mut cursor = users
        .find(doc! {})
        .projection(doc! {"email": 1})
        .await
        .map_err(failed)?;
    let mut read = 0;
    while let Some(document) = cursor.try_next().await.map_err(failed)? {
        read += 1;
        if read % PROGRESS_EVERY == 0 {
            progress_line(
                progress,
                &format!("emails: {read} of ~{total} documents read"),
            );
        }
        let Ok(id) = document.get_object_id("_id") else {
            report.other_ids += 1;
            continue;
        };
        let Ok(email) = document.get_str("email") else {
            continue;
        };
        let new = plan::normalised(email);
        if new != email {
            targets.entry(new).or_default().push((id, email.to_owned()));
        }
    }

    // Documents already holding a target exactly (they are normalised, so not in `targets`).
    let mut holders: HashMap<String, Vec<ObjectId>> = HashMap::new();
    let wanted: Vec<&String> = targets.keys().collect();
    for chunk in wanted.chunks(TARGETS_PER_QUERY) {
        let mut cursor = users
            .find(doc! {"email": {"$in": chunk.to_vec()}})
            .projection(doc! {"email": 1})
            .await
            .map_err(failed)?;
        while let Some(document) = cursor.try_next().await.map_err(failed)? {
            if let (Ok(id), Ok(email)) = (document.get_object_id("_id"), document.get_str("email"))
            {
                holders.entry(email.to_owned()).or_default().push(id);
            }
        }
    }

    let mut checks = EmailChecks::default();
    for (target, candidates) in targets {
        let held = holders.remove(&target).unwrap_or_default();
        if candidates.len() + held.len() == 1 {
            checks.lowercase.extend(candidates);
            continue;
        }
        let mut group: Vec<ObjectId> = candidates.iter().map(|(id, _)| *id).collect();
        checks.collided.extend(group.iter().copied());
        group.extend(held);
        group.sort();
        report.email_collisions.push(group);
    }
    report.email_collisions.sort();
    Ok(checks)
}

/// Counts what `plan` found into the report.
fn tally(report: &mut Report, plan: &DocPlan) {
    match &plan.email {
        EmailPlan::Lowercase { .. } => report.emails.found += 1,
        EmailPlan::ChangedSinceCheck => report.changed_during_run.push(plan.id),
        EmailPlan::Unreadable => report.unreadable_emails.push(plan.id),
        EmailPlan::Clean | EmailPlan::Collides => {}
    }
    if plan.refresh_token.is_some() {
        report.refresh_tokens.found += 1;
    }
    for (image, public_ids, https, underivable) in [
        (
            &plan.avatar,
            &mut report.avatar_public_ids,
            &mut report.https_avatars,
            &mut report.underivable_avatars,
        ),
        (
            &plan.cover_image,
            &mut report.cover_public_ids,
            &mut report.https_covers,
            &mut report.underivable_covers,
        ),
    ] {
        public_ids.found += u64::from(image.public_id.is_some());
        https.found += u64::from(image.https.is_some());
        if image.underivable {
            underivable.push(plan.id);
        }
    }
    if plan.avatar.foreign_http || plan.cover_image.foreign_http {
        report.foreign_http.push(plan.id);
    }
}

/// Applies one document's update (from `plan`) and counts it into `report`. An update that
/// matches nothing (the document changed since it was read) is counted as changed during the
/// run; a duplicate email (a sign-up took it meanwhile) as a race, and the update is retried
/// without the email.
pub async fn apply(
    users: &Collection<Document>,
    plan: &DocPlan,
    update: Update,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let mut with_email = matches!(plan.email, EmailPlan::Lowercase { .. });
    let mut next = Some(update);
    while let Some(Update { filter, update }) = next.take() {
        match users.update_one(filter, update).await {
            Ok(result) if result.matched_count == 1 => {
                count_done(report, plan, with_email);
                return Ok(());
            }
            Ok(_) => {
                report.changed_during_run.push(plan.id);
                return Ok(());
            }
            Err(e) if with_email && is_duplicate_key(&e) => {
                report.email_races.push(plan.id);
                with_email = false;
                next = plan.update(report.options.remove_refresh_tokens, false);
            }
            Err(source) => {
                return Err(MigrateError::Database {
                    during: "updating a user",
                    updated: report.documents.done,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn count_done(report: &mut Report, plan: &DocPlan, with_email: bool) {
    report.documents.done += 1;
    report.emails.done += u64::from(with_email);
    let removed = plan.refresh_token.is_some() && report.options.remove_refresh_tokens;
    report.refresh_tokens.done += u64::from(removed);
    report.avatar_public_ids.done += u64::from(plan.avatar.public_id.is_some());
    report.https_avatars.done += u64::from(plan.avatar.https.is_some());
    report.cover_public_ids.done += u64::from(plan.cover_image.public_id.is_some());
    report.https_covers.done += u64::from(plan.cover_image.https.is_some());
}

/// A unique-index violation: code 11000 from MongoDB (and from FerretDB on inserts). FerretDB
/// 1.24 answers one caused by an *update* as `InternalError` (code 1) carrying SQLite's
/// "UNIQUE constraint failed" (`internal/backends/sqlite/collection.go`: `InsertAll` maps
/// `SQLITE_CONSTRAINT_UNIQUE` to a duplicate key, `UpdateAll` does not), so that answer counts
/// as a duplicate too: the local stack must show the same outcome as Atlas.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    let ferretdb_update = match &*e.kind {
        ErrorKind::Command(c) => c.code == 1 && c.message.contains("UNIQUE constraint failed"),
        _ => false,
    };
    ferretdb_update || matches!(StoreError::from(e.clone()), StoreError::Duplicate(_))
}

async fn index_names(users: &Collection<Document>) -> Result<Vec<String>, mongodb::error::Error> {
    match users.list_index_names().await {
        Ok(mut names) => {
            names.sort();
            Ok(names)
        }
        // No collection yet (NamespaceNotFound).
        Err(e) if matches!(&*e.kind, ErrorKind::Command(c) if c.code == 26) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn progress_line(progress: &mut dyn Write, line: &str) {
    // Progress is best effort: a closed stderr must not stop a migration half-way.
    let _ = writeln!(progress, "[migrate-node] {line}");
}
