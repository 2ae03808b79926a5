//! Proves that the local database server (FerretDB in `make test` and `make dev`) does what
//! our data layer relies on, so that a green test run means something for MongoDB Atlas too:
//! duplicate keys surface as code 11000 (also under 20 concurrent inserts), an insert under a
//! unique `parent` is a compare-and-swap (50 concurrent tasks, one winner), find_one_and_update
//! swaps only while its filter matches, `$or` lookups, `$set`/`$unset`, and `null` filters
//! matching missing and null fields.
use futures::future::join_all;
use mongodb::{
    Collection, IndexModel,
    bson::{Document, doc},
    error::{ErrorKind, WriteFailure},
    options::{IndexOptions, ReturnDocument},
};
use testkit::{Services, random_suffix};

async fn collection() -> Collection<Document> {
    let services = Services::from_env();
    let client = mongodb::Client::with_uri_str(&services.mongodb_uri)
        .await
        .expect("client");
    let coll = client
        .database(&format!("caps_{}", random_suffix()))
        .collection::<Document>("things");
    let unique = IndexOptions::builder().unique(true).build();
    coll.create_index(
        IndexModel::builder()
            .keys(doc! {"name": 1})
            .options(unique)
            .build(),
    )
    .await
    .expect("unique index");
    coll
}

fn duplicate_key_code(e: &mongodb::error::Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

#[tokio::test]
async fn a_unique_index_violation_surfaces_as_code_11000() {
    let coll = collection().await;
    coll.insert_one(doc! {"name": "a"})
        .await
        .expect("first insert");
    let e = coll
        .insert_one(doc! {"name": "a"})
        .await
        .expect_err("duplicate must fail");
    assert_eq!(duplicate_key_code(&e), Some(11000), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_inserts_of_one_name_exactly_one_succeeds() {
    let coll = collection().await;
    let tasks = (0..20).map(|i| {
        let coll = coll.clone();
        tokio::spawn(async move { coll.insert_one(doc! {"name": "same", "i": i}).await })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(duplicate_key_code(e), Some(11000), "{e}");
    }
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inserting_a_successor_under_a_unique_parent_is_a_compare_and_swap_with_one_winner_of_fifty()
 {
    // The compare-and-swap refresh-token rotation relies on (see shared/src/sessions.rs).
    let coll = collection().await;
    let unique = IndexOptions::builder().unique(true).build();
    coll.create_index(
        IndexModel::builder()
            .keys(doc! {"parent": 1})
            .options(unique)
            .build(),
    )
    .await
    .expect("unique parent index");
    let tasks = (0..50).map(|i| {
        let coll = coll.clone();
        tokio::spawn(async move {
            coll.insert_one(doc! {"name": format!("t{i}"), "parent": "t0"})
                .await
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one successor"
    );
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(duplicate_key_code(e), Some(11000), "{e}");
    }
}

#[tokio::test]
async fn find_one_and_update_swaps_only_when_the_filter_still_matches() {
    // Sequential semantics only: FerretDB 1.x runs findAndModify as a query and a separate
    // update, so under concurrency two callers can both "win" there (seen in this suite's
    // 50-way race); our rotation does not rely on it.
    let coll = collection().await;
    coll.insert_one(doc! {"name": "s", "token": "t0"})
        .await
        .expect("insert");
    let swap = |from: &'static str, to: &'static str| {
        coll.find_one_and_update(
            doc! {"name": "s", "token": from},
            doc! {"$set": {"token": to}},
        )
        .return_document(ReturnDocument::After)
    };
    let first = swap("t0", "t1")
        .await
        .expect("query")
        .expect("first swap matches");
    assert_eq!(first.get_str("token"), Ok("t1"));
    assert!(
        swap("t0", "t2").await.expect("query").is_none(),
        "a stale swap matches nothing"
    );
}

#[tokio::test]
async fn or_lookups_set_unset_and_null_filters_behave_as_in_mongodb() {
    let coll = collection().await;
    coll.insert_one(doc! {"name": "u1", "email": "a@x.y", "gone": 1, "revokedAt": null})
        .await
        .expect("insert");
    coll.insert_one(doc! {"name": "u2", "email": "b@x.y"})
        .await
        .expect("insert");
    let found = coll
        .find(doc! {"$or": [{"name": "nobody"}, {"email": "b@x.y"}]})
        .await
        .expect("find");
    let found: Vec<Document> = futures::TryStreamExt::try_collect(found)
        .await
        .expect("collect");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].get_str("name"), Ok("u2"));

    coll.update_one(
        doc! {"name": "u1"},
        doc! {"$set": {"email": "c@x.y"}, "$unset": {"gone": ""}},
    )
    .await
    .expect("update");
    let u1 = coll
        .find_one(doc! {"name": "u1"})
        .await
        .expect("find")
        .expect("doc");
    assert_eq!(u1.get_str("email"), Ok("c@x.y"));
    assert!(!u1.contains_key("gone"));

    // `revokedAt: null` must match both an explicit null and a missing field.
    assert_eq!(
        coll.count_documents(doc! {"revokedAt": null})
            .await
            .expect("count"),
        2
    );
    coll.update_one(
        doc! {"name": "u2"},
        doc! {"$set": {"revokedAt": mongodb::bson::DateTime::now()}},
    )
    .await
    .expect("revoke");
    assert_eq!(
        coll.count_documents(doc! {"revokedAt": null})
            .await
            .expect("count"),
        1
    );
}
