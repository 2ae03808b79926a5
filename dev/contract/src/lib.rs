//! The API contract as a test can use it: `openapi/openapi.yaml`, loaded once, and a check that a
//! handler's real response is one the document describes.
//!
//! [`Spec::check`] finds the response documented for (path, method, status), following the
//! OpenAPI `$ref`s to shared responses and headers, then validates the JSON body against its
//! schema with a JSON Schema 2020-12 validator (OpenAPI 3.1's dialect; `$ref`s inside schemas
//! resolve against the document's `components`) and checks the documented headers: required
//! ones present, every one that is present matching its schema. A status the document does not
//! list for the operation is a failure, so an undocumented outcome cannot slip through.
//!
//! [`events`] lists the API Gateway events in `events/` for the replay test.
use std::path::{Path, PathBuf};

use lambda_http::{Body, Response};
use serde_json::{Value, json};

/// The workspace root (this crate lives in `dev/contract`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The OpenAPI document, as JSON.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// Reads and parses `openapi/openapi.yaml`; panics with the reason if it cannot.
    pub fn load() -> Self {
        let path = workspace_root().join("openapi/openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "the document must be OpenAPI 3.1"
        );
        Self { doc }
    }

    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// Follows a local `$ref` (`#/components/...`) until it reaches a non-reference object.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..16 {
            let Some(reference) = v.get("$ref").and_then(Value::as_str) else {
                return Ok(v);
            };
            let pointer = reference
                .strip_prefix('#')
                .ok_or_else(|| format!("only local references are supported: {reference}"))?;
            v = self
                .doc
                .pointer(pointer)
                .ok_or_else(|| format!("dangling reference {reference}"))?;
        }
        Err("reference chain too long".to_owned())
    }

    /// The operation object for `method` (lowercase, e.g. `post`) on `path`.
    pub fn operation(&self, path: &str, method: &str) -> Result<&Value, String> {
        self.doc["paths"]
            .get(path)
            .and_then(|p| p.get(method))
            .ok_or_else(|| format!("{method} {path} is not documented"))
    }

    /// Every status code documented for the operation.
    pub fn documented_statuses(&self, path: &str, method: &str) -> Result<Vec<u16>, String> {
        let op = self.operation(path, method)?;
        let responses = op["responses"]
            .as_object()
            .ok_or_else(|| format!("{method} {path} has no responses"))?;
        responses
            .keys()
            .map(|k| {
                k.parse()
                    .map_err(|_| format!("{method} {path}: response key {k:?} is not a status"))
            })
            .collect()
    }

    /// The (resolved) response object documented for `status`.
    pub fn response(&self, path: &str, method: &str, status: u16) -> Result<&Value, String> {
        let op = self.operation(path, method)?;
        let response = op["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("status {status} is not documented for {method} {path}"))?;
        self.resolve(response)
    }

    /// Validates `instance` against `schema`, a schema object taken from this document.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
        // The schema is wrapped in a root that carries the document's components, so that
        // `#/components/schemas/...` references resolve exactly as they do in the document.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| vec![format!("the schema does not compile: {e}")])?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The schema of a named component (`#/components/schemas/NAME`).
    pub fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Checks a handler's response against the document and returns its JSON body. The error
    /// lists every mismatch.
    pub fn check(
        &self,
        path: &str,
        method: &str,
        resp: &Response<Body>,
    ) -> Result<Value, Vec<String>> {
        let status = resp.status().as_u16();
        let documented = self.response(path, method, status).map_err(|e| vec![e])?;
        let mut problems = Vec::new();

        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let body = body_text(resp);
        let json: Value = match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => return Err(vec![format!("the body is not JSON ({e}): {body}")]),
        };
        match documented["content"].get(essence) {
            None => problems.push(format!(
                "content type {content_type:?} is not documented for {status}"
            )),
            Some(media) => match self.resolve(&media["schema"]) {
                Ok(schema) => {
                    if let Err(errors) = self.validate(schema, &json) {
                        problems.extend(errors.into_iter().map(|e| format!("body {e}")));
                    }
                }
                Err(e) => problems.push(e),
            },
        }

        if let Some(headers) = documented["headers"].as_object() {
            for (name, header) in headers {
                let header = match self.resolve(header) {
                    Ok(h) => h,
                    Err(e) => {
                        problems.push(e);
                        continue;
                    }
                };
                let values: Vec<&str> = resp
                    .headers()
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                if values.is_empty() && header["required"] == Value::Bool(true) {
                    problems.push(format!("required header {name} is missing"));
                }
                for value in values {
                    if let Err(errors) =
                        self.validate(&header["schema"], &Value::String(value.to_owned()))
                    {
                        problems.push(format!("header {name}: {value:?}: {errors:?}"));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(json)
        } else {
            problems.push(format!("the body was: {body}"));
            Err(problems)
        }
    }
}

/// The response body as text (every answer of ours is JSON text).
pub fn body_text(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// The file names in `events/`, sorted.
pub fn events() -> Vec<String> {
    let dir = workspace_root().join("events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The text of `events/NAME`.
pub fn event_text(name: &str) -> String {
    let path = workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_loads_and_every_reference_in_it_resolves() {
        let spec = Spec::load();
        fn walk(spec: &Spec, v: &Value, at: &str) {
            match v {
                Value::Object(map) => {
                    if map.contains_key("$ref") {
                        spec.resolve(v).unwrap_or_else(|e| panic!("{at}: {e}"));
                    }
                    for (k, child) in map {
                        walk(spec, child, &format!("{at}/{k}"));
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(spec, child, &format!("{at}/{i}"));
                    }
                }
                _ => {}
            }
        }
        walk(&spec, spec.document(), "#");
    }

    #[test]
    fn every_schema_in_the_document_compiles() {
        let spec = Spec::load();
        let schemas = spec.document()["components"]["schemas"]
            .as_object()
            .expect("components.schemas");
        for name in schemas.keys() {
            // Validating anything compiles the schema; only compilation errors matter here.
            if let Err(errors) = spec.validate(&spec.schema(name), &Value::Null) {
                assert!(
                    !errors.iter().any(|e| e.contains("does not compile")),
                    "{name}: {errors:?}"
                );
            }
        }
    }

    /// The Node version's nine users routes, each with its one method, and nothing else; the
    /// same list as the `cargo lambda watch` router in the workspace Cargo.toml.
    const ROUTES: &[(&str, &str)] = &[
        ("/api/v1/users/register", "post"),
        ("/api/v1/users/login", "post"),
        ("/api/v1/users/refresh-token", "post"),
        ("/api/v1/users/logout", "post"),
        ("/api/v1/users/current-user", "get"),
        ("/api/v1/users/change-password", "post"),
        ("/api/v1/users/update-account", "patch"),
        ("/api/v1/users/avatar", "patch"),
        ("/api/v1/users/cover-image", "patch"),
    ];

    #[test]
    fn the_routes_are_the_nine_users_routes_and_nothing_else() {
        let spec = Spec::load();
        let paths = spec.document()["paths"].as_object().expect("paths");
        let documented: Vec<(&str, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(move |m| (path.as_str(), m.clone()))
            })
            .collect();
        let expected: Vec<(&str, String)> =
            ROUTES.iter().map(|(p, m)| (*p, (*m).to_owned())).collect();
        assert_eq!(documented, expected);
    }

    #[test]
    fn the_local_router_serves_exactly_the_documented_routes() {
        let manifest =
            std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("read Cargo.toml");
        let router = manifest
            .split("[workspace.metadata.lambda.watch.router]")
            .nth(1)
            .expect("a watch router table");
        let entries: Vec<(String, String)> = router
            .lines()
            .filter_map(|line| {
                let (path, rest) = line.split_once(" = ")?;
                let method = rest.split("method = \"").nth(1)?.split('"').next()?;
                Some((
                    path.trim_matches('"').to_owned(),
                    method.to_ascii_lowercase(),
                ))
            })
            .collect();
        let expected: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
            .collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn the_public_user_schema_refuses_secrets_and_malformed_ids() {
        let spec = Spec::load();
        let user = json!({
            "_id": "65a1b2c3d4e5f60718293a4b",
            "username": "ada",
            "email": "ada@example.com",
            "fullName": "Ada Lovelace",
            "avatar": "https://res.cloudinary.com/demo/image/upload/a.png",
            "coverImage": "",
            "watchHistory": [],
            "createdAt": "2026-11-24T12:00:00.000Z",
            "updatedAt": "2026-11-24T12:00:00.000Z",
        });
        let schema = spec.schema("PublicUser");
        spec.validate(&schema, &user).expect("a valid user");
        let mut with_hash = user.clone();
        with_hash["password"] = json!("$argon2id$...");
        assert!(spec.validate(&schema, &with_hash).is_err());
        let mut bad_id = user.clone();
        bad_id["_id"] = json!("not-an-object-id");
        assert!(spec.validate(&schema, &bad_id).is_err());
        let mut bad_cover = user;
        bad_cover["coverImage"] = json!("cover.png");
        assert!(spec.validate(&schema, &bad_cover).is_err());
    }

    #[test]
    fn the_error_envelope_requires_every_field() {
        let spec = Spec::load();
        let ok = json!({
            "statusCode": 400, "data": null, "message": "Password is required", "success": false,
            "errors": [{"field": "password", "message": "Password is required"}],
            "requestId": "r-1",
        });
        let schema = spec.schema("ErrorEnvelope");
        spec.validate(&schema, &ok).expect("valid");
        for missing in [
            "statusCode",
            "data",
            "message",
            "success",
            "errors",
            "requestId",
        ] {
            let mut v = ok.clone();
            v.as_object_mut().expect("object").remove(missing);
            assert!(spec.validate(&schema, &v).is_err(), "{missing}");
        }
    }
}
