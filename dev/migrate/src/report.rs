//! What a run found and did, printed as the summary: counts per item, found against done (or
//! "would"), the documents that need a human by `_id` only, and a last line saying whether a
//! re-run would change anything. Nothing here can print an email, hash, token or URL: the
//! report holds only counts, ids and index names.
use std::fmt;

use mongodb::bson::oid::ObjectId;

use crate::cli::Options;

/// At most this many ids per list of documents needing a human (collisions are all listed).
const MAX_IDS_LISTED: usize = 100;

/// How many documents needed a fix, and on how many it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub found: u64,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indexes {
    /// Dry run: not touched; the `users` indexes that exist now.
    Unchecked { users: Vec<String> },
    /// `--apply`: every collection's indexes ensured; the `users` indexes afterwards.
    Ensured { users: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub database: String,
    pub options: Options,
    pub scanned: u64,
    /// Documents whose `_id` is not an ObjectId (neither app writes them): not touched.
    pub other_ids: u64,
    pub emails: Tally,
    /// Groups of documents whose emails are equal after lowercasing; left alone.
    pub email_collisions: Vec<Vec<ObjectId>>,
    /// Email updates refused by a unique index (a live sign-up took the email meanwhile).
    pub email_races: Vec<ObjectId>,
    /// Documents whose `email` is missing or not a string.
    pub unreadable_emails: Vec<ObjectId>,
    pub refresh_tokens: Tally,
    pub avatar_public_ids: Tally,
    pub cover_public_ids: Tally,
    pub underivable_avatars: Vec<ObjectId>,
    pub underivable_covers: Vec<ObjectId>,
    pub https_avatars: Tally,
    pub https_covers: Tally,
    /// Documents with an `http://` image URL on a host that is not Cloudinary's.
    pub foreign_http: Vec<ObjectId>,
    /// Documents that need (or got) an update.
    pub documents: Tally,
    /// Documents whose update matched nothing: the Node app changed them after they were read.
    pub changed_during_run: Vec<ObjectId>,
    pub indexes: Indexes,
}

impl Report {
    pub fn new(database: &str, options: Options) -> Self {
        Self {
            database: database.to_owned(),
            options,
            scanned: 0,
            other_ids: 0,
            emails: Tally::default(),
            email_collisions: Vec::new(),
            email_races: Vec::new(),
            unreadable_emails: Vec::new(),
            refresh_tokens: Tally::default(),
            avatar_public_ids: Tally::default(),
            cover_public_ids: Tally::default(),
            underivable_avatars: Vec::new(),
            underivable_covers: Vec::new(),
            https_avatars: Tally::default(),
            https_covers: Tally::default(),
            foreign_http: Vec::new(),
            documents: Tally::default(),
            changed_during_run: Vec::new(),
            indexes: Indexes::Unchecked { users: Vec::new() },
        }
    }

    /// Documents listed for a human, by kind.
    fn attention(&self) -> Vec<(&'static str, usize)> {
        let collisions = self.email_collisions.iter().map(Vec::len).sum();
        [
            ("emails colliding after lowercasing", collisions),
            ("emails taken during the run", self.email_races.len()),
            (
                "emails missing or not strings",
                self.unreadable_emails.len(),
            ),
            (
                "avatars without a derivable public id",
                self.underivable_avatars.len(),
            ),
            (
                "cover images without a derivable public id",
                self.underivable_covers.len(),
            ),
            ("http:// images on other hosts", self.foreign_http.len()),
            (
                "documents changed during the run",
                self.changed_during_run.len(),
            ),
            (
                "documents whose _id is not an ObjectId",
                usize::try_from(self.other_ids).unwrap_or(usize::MAX),
            ),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    pub fn needs_a_human(&self) -> bool {
        !self.attention().is_empty()
    }

    /// 0 when nothing needs a human, 1 otherwise (2, for errors, is the binary's).
    pub fn exit_code(&self) -> u8 {
        u8::from(self.needs_a_human())
    }

    /// Whether running the same command again would change anything.
    pub fn rerun_line(&self) -> String {
        let n = self.documents.found;
        if !self.options.apply {
            return if n == 0 {
                "Dry run, nothing was changed: --apply would change no document (and only \
                 ensure the indexes)."
                    .to_owned()
            } else {
                format!(
                    "Dry run, nothing was changed: --apply would update {n} document{} and \
                     ensure the indexes.",
                    plural(n)
                )
            };
        }
        let changed = self.changed_during_run.len();
        if changed > 0 {
            return format!(
                "A re-run would change up to {changed} more document{}: {} changed while this \
                 run read {}; run it again.",
                plural(changed as u64),
                if changed == 1 { "it" } else { "they" },
                if changed == 1 { "it" } else { "them" },
            );
        }
        if self.documents.done == 0 {
            "Nothing needed changing; a re-run would change nothing.".to_owned()
        } else {
            format!(
                "Updated {} document{}; a re-run would change nothing.",
                self.documents.done,
                plural(self.documents.done)
            )
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let apply = self.options.apply;
        let mode = if apply {
            "--apply"
        } else {
            "dry run, nothing is changed"
        };
        writeln!(
            f,
            "migrate-node: database {:?}, collection \"users\" ({mode})",
            self.database
        )?;
        writeln!(f, "  {:<50} {:>8}", "documents read", self.scanned)?;
        if self.other_ids > 0 {
            writeln!(
                f,
                "  {:<50} {:>8}  left alone",
                "  _id not an ObjectId (not a user of either app)", self.other_ids
            )?;
        }
        writeln!(
            f,
            "  {:<50} {:>8}  {}",
            "item",
            "found",
            if apply { "done" } else { "would do" }
        )?;
        let action = |t: Tally, verb: &str, done_verb: &str| {
            if apply {
                format!("{done_verb} {}", t.done)
            } else {
                format!("{verb} {}", t.found)
            }
        };
        let row = |f: &mut fmt::Formatter<'_>, label: &str, found: u64, what: String| {
            writeln!(f, "  {label:<50} {found:>8}  {what}")
        };
        let collisions: usize = self.email_collisions.iter().map(Vec::len).sum();
        row(
            f,
            "emails to trim and lowercase",
            self.emails.found,
            action(self.emails, "would lowercase", "lowercased"),
        )?;
        row(
            f,
            "  left alone: would collide after lowercasing",
            collisions as u64,
            format!(
                "in {} group{}",
                self.email_collisions.len(),
                plural(self.email_collisions.len() as u64)
            ),
        )?;
        if apply {
            row(
                f,
                "  left alone: taken by a sign-up during the run",
                self.email_races.len() as u64,
                "duplicate key".to_owned(),
            )?;
        }
        row(
            f,
            "  emails missing or not strings",
            self.unreadable_emails.len() as u64,
            "left alone".to_owned(),
        )?;
        let tokens = if self.options.remove_refresh_tokens {
            action(self.refresh_tokens, "would remove", "removed")
        } else {
            "kept (--remove-refresh-tokens removes them)".to_owned()
        };
        row(
            f,
            "plaintext refreshToken fields",
            self.refresh_tokens.found,
            tokens,
        )?;
        row(
            f,
            "avatarPublicId missing, derivable from the URL",
            self.avatar_public_ids.found,
            action(self.avatar_public_ids, "would set", "set"),
        )?;
        row(
            f,
            "  avatarPublicId missing, not derivable",
            self.underivable_avatars.len() as u64,
            "left alone".to_owned(),
        )?;
        row(
            f,
            "coverImagePublicId missing, derivable from the URL",
            self.cover_public_ids.found,
            action(self.cover_public_ids, "would set", "set"),
        )?;
        row(
            f,
            "  coverImagePublicId missing, not derivable",
            self.underivable_covers.len() as u64,
            "left alone".to_owned(),
        )?;
        row(
            f,
            "http:// Cloudinary avatar URLs",
            self.https_avatars.found,
            action(self.https_avatars, "would make https://", "made https://"),
        )?;
        row(
            f,
            "http:// Cloudinary cover image URLs",
            self.https_covers.found,
            action(self.https_covers, "would make https://", "made https://"),
        )?;
        row(
            f,
            "  documents with http:// images on other hosts",
            self.foreign_http.len() as u64,
            "left alone".to_owned(),
        )?;
        row(
            f,
            "documents to update",
            self.documents.found,
            action(self.documents, "would update", "updated"),
        )?;
        if apply {
            row(
                f,
                "  changed by someone else during the run",
                self.changed_during_run.len() as u64,
                "skipped".to_owned(),
            )?;
        }
        match &self.indexes {
            Indexes::Unchecked { users } => writeln!(
                f,
                "  indexes: not touched in a dry run; users has {}",
                names(users)
            )?,
            Indexes::Ensured { users } => writeln!(
                f,
                "  indexes: ensured for every collection; users has {}",
                names(users)
            )?,
        }

        for (n, group) in self.email_collisions.iter().enumerate() {
            if n == 0 {
                writeln!(
                    f,
                    "\nEmails that would collide after lowercasing, by _id (one group per address):"
                )?;
            }
            writeln!(f, "  group {}: {}", n + 1, ids(group, usize::MAX))?;
        }
        for (title, list) in [
            (
                "Emails taken by a sign-up during the run",
                &self.email_races,
            ),
            ("Emails missing or not strings", &self.unreadable_emails),
            (
                "Avatars whose URL holds no public id",
                &self.underivable_avatars,
            ),
            (
                "Cover images whose URL holds no public id",
                &self.underivable_covers,
            ),
            (
                "http:// images on hosts other than Cloudinary's",
                &self.foreign_http,
            ),
            (
                "Changed by someone else during the run (re-run)",
                &self.changed_during_run,
            ),
        ] {
            if !list.is_empty() {
                writeln!(f, "\n{title}, by _id:\n  {}", ids(list, MAX_IDS_LISTED))?;
            }
        }

        let attention = self.attention();
        if !attention.is_empty() {
            let parts: Vec<String> = attention
                .iter()
                .map(|(what, n)| format!("{n} {what}"))
                .collect();
            writeln!(f, "\nNeeds a human (exit status 1): {}.", parts.join(", "))?;
        }
        writeln!(f, "\n{}", self.rerun_line())
    }
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "no indexes (no collection yet)".to_owned()
    } else {
        list.join(", ")
    }
}

fn ids(list: &[ObjectId], max: usize) -> String {
    let mut shown: Vec<String> = list.iter().take(max).map(|id| id.to_hex()).collect();
    if list.len() > max {
        shown.push(format!("... and {} more", list.len() - max));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(apply: bool) -> Report {
        Report::new(
            "videotube",
            Options {
                apply,
                remove_refresh_tokens: false,
            },
        )
    }

    #[test]
    fn a_dry_run_says_what_apply_would_do_and_that_nothing_changed() {
        let mut r = report(false);
        r.documents = Tally { found: 3, done: 0 };
        let line = r.rerun_line();
        assert!(line.contains("nothing was changed") && line.contains("would update 3 documents"));
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn a_second_apply_says_nothing_needed_changing() {
        assert_eq!(
            report(true).rerun_line(),
            "Nothing needed changing; a re-run would change nothing."
        );
    }

    #[test]
    fn documents_changed_during_the_run_ask_for_a_re_run_and_a_non_zero_exit() {
        let mut r = report(true);
        r.documents = Tally { found: 2, done: 1 };
        r.changed_during_run.push(ObjectId::new());
        assert!(
            r.rerun_line()
                .starts_with("A re-run would change up to 1 more document")
        );
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn collisions_are_listed_by_id_and_make_the_exit_non_zero() {
        let (a, b) = (ObjectId::new(), ObjectId::new());
        let mut r = report(false);
        r.email_collisions.push(vec![a, b]);
        let text = r.to_string();
        assert!(text.contains(&format!("group 1: {}, {}", a.to_hex(), b.to_hex())));
        assert!(text.contains("Needs a human (exit status 1): 2 emails colliding"));
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn long_lists_are_cut_with_a_count_of_the_rest() {
        let list: Vec<ObjectId> = (0..MAX_IDS_LISTED + 5).map(|_| ObjectId::new()).collect();
        let text = ids(&list, MAX_IDS_LISTED);
        assert!(text.ends_with("... and 5 more"));
    }
}
