//! Images at the Cloudinary stand-in for the avatar and cover-image tests: put one there as the
//! functions do (so a user can point at an image that really exists), and list what is there.
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use shared::{domain::ImageRef, media::StagedImage, profile_images::PENDING_DESTROYS};

use crate::TestApp;

/// Public ids recorded in `image_destroys` of `db` for a later destroy, sorted.
pub async fn recorded_destroys(db: &mongodb::Database) -> Vec<String> {
    let mut ids: Vec<String> = db
        .collection::<Document>(PENDING_DESTROYS)
        .find(doc! {})
        .await
        .expect("find the recorded destroys")
        .try_collect::<Vec<_>>()
        .await
        .expect("read the recorded destroys")
        .iter()
        .map(|d| d.get_str("_id").expect("a public id").to_owned())
        .collect();
    ids.sort();
    ids
}

impl TestApp {
    /// Uploads `bytes` (an accepted image) to this test's cloud through the app's own media
    /// client, and returns its URL and public id.
    pub async fn upload_image(&self, bytes: &[u8]) -> ImageRef {
        let media = self.app.media().expect("the test app handles images");
        let mut staging = media.stage().expect("stage");
        staging.write(bytes).await.expect("write the staged file");
        let staged = staging.finish().await.expect("finish the staged file");
        let image = StagedImage::from_staged(staged).expect("an accepted image");
        media.upload(&image).await.expect("upload to the stand-in")
    }

    /// Public ids of the images the stand-in holds for this test's cloud, sorted.
    pub async fn image_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .stored_images()
            .await
            .iter()
            .filter_map(|i| i["public_id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    /// [`image_ids`](Self::image_ids) once it equals `expected` (sorted), or as it is after
    /// `within`: for an image that lands late, such as a hung upload's, without betting on
    /// how busy the machine is.
    pub async fn image_ids_once(
        &self,
        expected: &[String],
        within: std::time::Duration,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ids = self.image_ids().await;
            if ids == expected || tokio::time::Instant::now() >= deadline {
                return ids;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
