//! What one user document needs, decided from its fields alone, and the conditional update that
//! does it; no database here, so every rule is a unit test.
//!
//! The update's filter is the document's `_id` plus the value it read of every field it changes
//! (`email: old`, `avatar: old`, `refreshToken: old`, `avatarPublicId` still absent, ...): if
//! the live Node app changed any of them in the meantime the update matches nothing, and the
//! run reports the document as changed under it instead of overwriting the newer value.
use std::collections::{HashMap, HashSet};

use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use shared::{
    domain::Email,
    media::public_id::{https_url, public_id_from_url},
};

/// The fields the plan reads, for the cursor's projection.
pub fn projection() -> Document {
    doc! {
        "email": 1, "avatar": 1, "avatarPublicId": 1, "coverImage": 1,
        "coverImagePublicId": 1, "refreshToken": 1,
    }
}

/// The email normalisation our functions store and look up by (trimmed, lowercased).
pub fn normalised(email: &str) -> String {
    Email::normalise_for_lookup(email)
}

/// The outcome of the first pass over emails: which documents may be lowercased (with the
/// value that was read) and which collide after lowercasing.
#[derive(Debug, Default)]
pub struct EmailChecks {
    pub lowercase: HashMap<ObjectId, String>,
    pub collided: HashSet<ObjectId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailPlan {
    /// Already trimmed and lowercased.
    Clean,
    Lowercase {
        old: String,
        new: String,
    },
    /// Would collide with another document's email after lowercasing: left for a human.
    Collides,
    /// Not normalised, but not what the first pass saw: changed during the run.
    ChangedSinceCheck,
    /// Missing or not a string.
    Unreadable,
}

/// An image field (`avatar` or `coverImage`) and its public id beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImagePlan {
    /// The URL as read, when something changes (it goes into the update's filter).
    pub old_url: Option<String>,
    /// The `https://` URL to store instead of an `http://` Cloudinary one.
    pub https: Option<String>,
    /// The public id to set, derived from the URL.
    pub public_id: Option<String>,
    /// The public id is missing and the URL does not contain one (or there is no URL).
    pub underivable: bool,
    /// An `http://` URL on a host that is not Cloudinary's: left alone.
    pub foreign_http: bool,
}

impl ImagePlan {
    pub fn changes(&self) -> bool {
        self.https.is_some() || self.public_id.is_some()
    }
}

/// Everything one document needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocPlan {
    pub id: ObjectId,
    pub email: EmailPlan,
    /// The plaintext `refreshToken`, when there is one.
    pub refresh_token: Option<String>,
    pub avatar: ImagePlan,
    pub cover_image: ImagePlan,
}

/// A conditional update for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub filter: Document,
    pub update: Document,
}

impl DocPlan {
    /// Decides what `document` (read with [`projection`]) needs; `None` without an `_id`.
    pub fn of(document: &Document, emails: &EmailChecks) -> Option<Self> {
        let id = document.get_object_id("_id").ok()?;
        let email = match document.get("email") {
            Some(Bson::String(email)) => {
                let new = normalised(email);
                if new == *email {
                    EmailPlan::Clean
                } else if emails.collided.contains(&id) {
                    EmailPlan::Collides
                } else if emails.lowercase.get(&id) == Some(email) {
                    EmailPlan::Lowercase {
                        old: email.clone(),
                        new,
                    }
                } else {
                    EmailPlan::ChangedSinceCheck
                }
            }
            _ => EmailPlan::Unreadable,
        };
        let refresh_token = match document.get("refreshToken") {
            Some(Bson::String(token)) => Some(token.clone()),
            _ => None,
        };
        Some(Self {
            id,
            email,
            refresh_token,
            avatar: image(document, "avatar", "avatarPublicId", true),
            cover_image: image(document, "coverImage", "coverImagePublicId", false),
        })
    }

    /// The update doing what `remove_refresh_tokens` and `with_email` allow, if anything.
    /// `with_email: false` is the retry after the email update hit a unique index (a live
    /// sign-up took that email meanwhile): the other fixes still go in.
    pub fn update(&self, remove_refresh_tokens: bool, with_email: bool) -> Option<Update> {
        let mut filter = doc! {"_id": self.id};
        let mut set = Document::new();
        let mut unset = Document::new();
        if let (EmailPlan::Lowercase { old, new }, true) = (&self.email, with_email) {
            filter.insert("email", old);
            set.insert("email", new);
        }
        if let (Some(token), true) = (&self.refresh_token, remove_refresh_tokens) {
            filter.insert("refreshToken", token);
            unset.insert("refreshToken", "");
        }
        for (field, id_field, plan) in [
            ("avatar", "avatarPublicId", &self.avatar),
            ("coverImage", "coverImagePublicId", &self.cover_image),
        ] {
            let Some(old) = plan.old_url.as_ref().filter(|_| plan.changes()) else {
                continue;
            };
            filter.insert(field, old);
            if let Some(https) = &plan.https {
                set.insert(field, https);
            }
            if let Some(public_id) = &plan.public_id {
                filter.insert(id_field, doc! {"$exists": false});
                set.insert(id_field, public_id);
            }
        }
        let mut update = Document::new();
        if !set.is_empty() {
            update.insert("$set", set);
        }
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        (!update.is_empty()).then_some(Update { filter, update })
    }
}

fn image(document: &Document, field: &str, id_field: &str, required: bool) -> ImagePlan {
    let has_public_id = document.contains_key(id_field);
    let url = match document.get(field) {
        Some(Bson::String(url)) if !url.is_empty() => url,
        // No image ("" is how the Node version stores "no cover image"): nothing to derive,
        // but every user needs an avatar.
        None | Some(Bson::Null) | Some(Bson::String(_)) => {
            return ImagePlan {
                underivable: required && !has_public_id,
                ..ImagePlan::default()
            };
        }
        // Not a string at all.
        Some(_) => {
            return ImagePlan {
                underivable: !has_public_id,
                ..ImagePlan::default()
            };
        }
    };
    let mut plan = ImagePlan::default();
    if url
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("http:"))
    {
        match https_url(url) {
            Some(https) => plan.https = Some(https),
            None => plan.foreign_http = true,
        }
    }
    if !has_public_id {
        match public_id_from_url(url) {
            Some(id) => plan.public_id = Some(id),
            None => plan.underivable = true,
        }
    }
    if plan.changes() {
        plan.old_url = Some(url.clone());
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_AVATAR: &str =
        "http://res.cloudinary.com/demo/image/upload/v1712345678/qwertyuiop123.png";

    fn checks_allowing(id: ObjectId, old: &str) -> EmailChecks {
        let mut checks = EmailChecks::default();
        checks.lowercase.insert(id, old.to_owned());
        checks
    }

    fn node_document(id: ObjectId) -> Document {
        doc! {
            "_id": id, "email": "Alice.Smith@Example.COM", "avatar": NODE_AVATAR,
            "coverImage": "", "refreshToken": "eyJ.node.token",
        }
    }

    #[test]
    fn a_node_document_gets_every_fix_under_a_filter_on_what_was_read() {
        let id = ObjectId::new();
        let plan = DocPlan::of(
            &node_document(id),
            &checks_allowing(id, "Alice.Smith@Example.COM"),
        )
        .expect("has an id");
        let update = plan.update(true, true).expect("something to do");
        assert_eq!(
            update.filter,
            doc! {
                "_id": id, "email": "Alice.Smith@Example.COM", "refreshToken": "eyJ.node.token",
                "avatar": NODE_AVATAR, "avatarPublicId": {"$exists": false},
            }
        );
        assert_eq!(
            update.update,
            doc! {
                "$set": {
                    "email": "alice.smith@example.com",
                    "avatar": "https://res.cloudinary.com/demo/image/upload/v1712345678/qwertyuiop123.png",
                    "avatarPublicId": "qwertyuiop123",
                },
                "$unset": {"refreshToken": ""},
            }
        );
    }

    #[test]
    fn refresh_tokens_are_kept_unless_removal_is_asked_for() {
        let id = ObjectId::new();
        let plan = DocPlan::of(&node_document(id), &EmailChecks::default()).expect("id");
        let update = plan.update(false, true).expect("https and public id");
        assert!(!update.filter.contains_key("refreshToken"));
        assert!(!update.update.contains_key("$unset"));
        assert_eq!(plan.refresh_token.as_deref(), Some("eyJ.node.token"));
    }

    #[test]
    fn a_migrated_document_needs_nothing() {
        let id = ObjectId::new();
        let document = doc! {
            "_id": id, "email": "alice@example.com",
            "avatar": "https://res.cloudinary.com/demo/image/upload/v1/videotube/abc.png",
            "avatarPublicId": "videotube/abc", "coverImage": "",
        };
        let plan = DocPlan::of(&document, &EmailChecks::default()).expect("id");
        assert_eq!(plan.email, EmailPlan::Clean);
        assert_eq!(plan.update(true, true), None);
        assert!(!plan.avatar.underivable && !plan.cover_image.underivable);
    }

    #[test]
    fn emails_that_collide_or_changed_since_the_check_are_left_alone() {
        let id = ObjectId::new();
        let mut collided = EmailChecks::default();
        collided.collided.insert(id);
        let document = doc! {"_id": id, "email": "Bob@x.com", "avatarPublicId": "a"};
        assert_eq!(
            DocPlan::of(&document, &collided).expect("id").email,
            EmailPlan::Collides
        );
        let seen_other = checks_allowing(id, "BOB@x.com");
        let plan = DocPlan::of(&document, &seen_other).expect("id");
        assert_eq!(plan.email, EmailPlan::ChangedSinceCheck);
        assert_eq!(plan.update(true, true), None);
    }

    #[test]
    fn untrimmed_emails_are_lowercased_and_trimmed() {
        let id = ObjectId::new();
        let document = doc! {"_id": id, "email": "  bob@x.com ", "avatarPublicId": "a"};
        let plan = DocPlan::of(&document, &checks_allowing(id, "  bob@x.com ")).expect("id");
        assert_eq!(
            plan.email,
            EmailPlan::Lowercase {
                old: "  bob@x.com ".into(),
                new: "bob@x.com".into()
            }
        );
        let retry = plan.update(false, false);
        assert_eq!(retry, None, "without the email there is nothing else to do");
    }

    #[test]
    fn urls_without_a_public_id_or_off_cloudinary_are_reported_not_guessed() {
        let id = ObjectId::new();
        let document = doc! {
            "_id": id, "email": "a@x.com",
            "avatar": "http://example.com/avatars/a.png",
            "coverImage": "https://res.cloudinary.com/demo/image/upload/v1/c.png",
        };
        let plan = DocPlan::of(&document, &EmailChecks::default()).expect("id");
        assert!(plan.avatar.foreign_http && plan.avatar.underivable);
        assert_eq!(plan.avatar.https, None);
        assert_eq!(plan.cover_image.public_id.as_deref(), Some("c"));
        let update = plan.update(false, true).expect("the cover's public id");
        assert_eq!(update.update, doc! {"$set": {"coverImagePublicId": "c"}});
        assert!(!update.filter.contains_key("avatar"));
    }

    #[test]
    fn an_empty_or_absent_cover_image_needs_no_public_id_but_an_avatar_does() {
        let id = ObjectId::new();
        for document in [
            doc! {"_id": id, "email": "a@x.com", "avatar": "", "coverImage": ""},
            doc! {"_id": id, "email": "a@x.com"},
            doc! {"_id": id, "email": "a@x.com", "avatar": Bson::Null, "coverImage": 3},
        ] {
            let plan = DocPlan::of(&document, &EmailChecks::default()).expect("id");
            assert!(plan.avatar.underivable, "{document}");
            assert_eq!(
                plan.cover_image.underivable,
                document.get_i32("coverImage").is_ok(),
                "{document}"
            );
            assert_eq!(plan.update(true, true), None);
        }
    }

    #[test]
    fn an_existing_public_id_is_never_overwritten() {
        let id = ObjectId::new();
        let document = doc! {
            "_id": id, "email": "a@x.com", "avatar": NODE_AVATAR, "avatarPublicId": "chosen",
        };
        let plan = DocPlan::of(&document, &EmailChecks::default()).expect("id");
        let update = plan.update(false, true).expect("https only");
        assert_eq!(
            update.update,
            doc! {"$set": {"avatar": NODE_AVATAR.replacen("http:", "https:", 1)}}
        );
        assert!(!update.filter.contains_key("avatarPublicId"));
    }

    #[test]
    fn a_non_string_email_is_unreadable() {
        let id = ObjectId::new();
        for email in [Bson::Null, Bson::Int32(1), Bson::Document(doc! {"$gt": ""})] {
            let plan = DocPlan::of(&doc! {"_id": id, "email": email}, &EmailChecks::default());
            assert_eq!(plan.expect("id").email, EmailPlan::Unreadable);
        }
    }
}
