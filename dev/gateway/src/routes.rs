//! The route table: `[workspace.metadata.lambda.watch.router]` of the root `Cargo.toml`, the same
//! table `cargo lambda watch` reads and `dev/contract` checks against `template.yaml`.
//!
//! ```toml
//! [workspace.metadata.lambda.watch.router]
//! "/api/v1/users/login" = [{ method = "POST", function = "login" }]
//! ```
//!
//! A route is a method and an exact path, as in an HTTP API route key (`POST /api/v1/users/login`);
//! `ANY` matches every method. A request whose method and path match no route is API Gateway's
//! 404, whether or not the path is known with another method.
use std::collections::BTreeMap;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Upper case, or `ANY`.
    pub method: String,
    pub function: String,
}

#[derive(Debug, Clone, Default)]
pub struct Routes {
    by_path: BTreeMap<String, Vec<Route>>,
}

/// The route a request matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    /// `METHOD /path`, as API Gateway writes `routeKey`.
    pub route_key: String,
    pub function: &'a str,
}

impl Routes {
    /// Reads the route table from a `Cargo.toml` file.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_cargo_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads the route table from the text of a `Cargo.toml`.
    pub fn from_cargo_toml(text: &str) -> Result<Self, String> {
        let doc: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
        let table = ["workspace", "metadata", "lambda", "watch", "router"]
            .iter()
            .try_fold(&doc, |t, key| t.get(*key).and_then(toml::Value::as_table))
            .ok_or("no [workspace.metadata.lambda.watch.router] table")?;
        let mut by_path = BTreeMap::new();
        for (path, value) in table {
            if !path.starts_with('/') {
                return Err(format!("route path {path:?} does not start with /"));
            }
            let routes = match value {
                toml::Value::String(function) => vec![Route {
                    method: "ANY".into(),
                    function: function.clone(),
                }],
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| route_of(path, item))
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(format!("route {path:?}: expected [{{ method, function }}]")),
            };
            by_path.insert(path.clone(), routes);
        }
        if by_path.is_empty() {
            return Err("the router table has no routes".into());
        }
        Ok(Self { by_path })
    }

    /// The route for `method` and `path`, if any.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let routes = self.by_path.get(path)?;
        let route = routes
            .iter()
            .find(|r| r.method == method)
            .or_else(|| routes.iter().find(|r| r.method == "ANY"))?;
        Some(Matched {
            route_key: format!("{} {path}", route.method),
            function: &route.function,
        })
    }

    /// Every route as `(path, route)`, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.by_path
            .iter()
            .flat_map(|(p, rs)| rs.iter().map(move |r| (p.as_str(), r)))
    }
}

fn route_of(path: &str, item: &toml::Value) -> Result<Route, String> {
    let field = |name: &str| {
        item.get(name)
            .and_then(toml::Value::as_str)
            .ok_or_else(|| format!("route {path:?}: every entry needs a string {name:?}"))
    };
    let method = field("method")?.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!("route {path:?}: unknown method {method:?}"));
    }
    let function = field("function")?;
    if function.is_empty()
        || !function
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("route {path:?}: bad function name {function:?}"));
    }
    Ok(Route {
        method,
        function: function.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
[workspace]
members = []
[workspace.metadata.lambda.watch.router]
"/a" = [{ method = "POST", function = "fa" }, { method = "get", function = "ga" }]
"/any" = [{ method = "ANY", function = "anything" }]
"/s" = "plain"
"#;

    #[test]
    fn matches_method_and_exact_path() {
        let r = Routes::from_cargo_toml(TABLE).expect("table");
        let m = r.find("POST", "/a").expect("POST /a");
        assert_eq!((m.route_key.as_str(), m.function), ("POST /a", "fa"));
        assert_eq!(r.find("GET", "/a").map(|m| m.function), Some("ga"));
        assert_eq!(r.find("PATCH", "/a"), None);
        assert_eq!(r.find("POST", "/a/"), None);
        assert_eq!(r.find("POST", "/A"), None);
        assert_eq!(r.find("POST", "/b"), None);
        let any = r.find("DELETE", "/any").expect("ANY");
        assert_eq!(any.route_key, "ANY /any");
        assert_eq!(r.find("GET", "/s").map(|m| m.function), Some("plain"));
        assert_eq!(r.iter().count(), 4);
    }

    #[test]
    fn refuses_what_it_cannot_route() {
        for bad in [
            "[workspace]",
            "not toml = = =",
            "[workspace.metadata.lambda.watch.router]",
            "[workspace.metadata.lambda.watch.router]\n\"a\" = \"f\"",
            "[workspace.metadata.lambda.watch.router]\n\"/a\" = [{ method = \"FETCH\", function = \"f\" }]",
            "[workspace.metadata.lambda.watch.router]\n\"/a\" = [{ method = \"GET\" }]",
            "[workspace.metadata.lambda.watch.router]\n\"/a\" = [{ method = \"GET\", function = \"../x\" }]",
            "[workspace.metadata.lambda.watch.router]\n\"/a\" = 3",
        ] {
            assert!(Routes::from_cargo_toml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_workspace_table_has_the_nine_routes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let r = Routes::load(&root).expect("the root Cargo.toml");
        let all: Vec<String> = r
            .iter()
            .map(|(p, route)| format!("{} {p} {}", route.method, route.function))
            .collect();
        assert_eq!(all.len(), 9, "{all:?}");
        assert!(all.contains(&"POST /api/v1/users/login login".to_owned()));
        assert!(all.contains(&"GET /api/v1/users/current-user current-user".to_owned()));
    }
}
