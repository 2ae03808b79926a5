//! Every collection's indexes, in one list: what a function ensures once per process before its
//! first database request (see [`crate::App::store`]), and what `migrate-node` ensures on a Node
//! database. Each collection's module owns its own indexes; this only names them all.
use crate::{
    profile_images, sessions,
    store::{Store, StoreError},
    throttle, users,
};

pub async fn ensure_indexes(store: &Store) -> Result<(), StoreError> {
    // One index per command, one collection after another: FerretDB 1.24 (the local stand-in
    // for Atlas) drops the connection on a createIndexes that names several indexes of a new
    // collection.
    users::ensure_indexes(store).await?;
    sessions::ensure_indexes(store).await?;
    profile_images::ensure_indexes(store).await?;
    throttle::ensure_indexes(store).await
}
