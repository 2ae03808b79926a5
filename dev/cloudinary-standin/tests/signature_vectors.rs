//! The team's Cloudinary signature test vectors (tests/data/cloudinary-signatures.json).

use std::collections::BTreeMap;

use cloudinary_standin::{Algo, sign, string_to_sign};
use serde::Deserialize;

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    params: BTreeMap<String, String>,
    string_to_sign: String,
    api_secret: String,
    sha1: String,
    sha256: Option<String>,
}

#[test]
fn every_signature_vector_matches_its_string_to_sign_and_digests() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cloudinary-signatures.json"
    );
    let text = std::fs::read_to_string(path).expect("the vector file");
    let file: VectorFile = serde_json::from_str(&text).expect("valid vector JSON");
    assert!(!file.vectors.is_empty());
    for vector in &file.vectors {
        // The vector's params are signed exactly as given (the first one signs cloud_name).
        assert_eq!(string_to_sign(&vector.params), vector.string_to_sign);
        assert_eq!(
            sign(&vector.params, &vector.api_secret, Algo::Sha1),
            vector.sha1
        );
        if let Some(sha256) = &vector.sha256 {
            assert_eq!(
                &sign(&vector.params, &vector.api_secret, Algo::Sha256),
                sha256
            );
        }
    }
}
