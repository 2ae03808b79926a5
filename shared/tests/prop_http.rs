//! Property tests of the HTTP edge's parsers: the event conversion, JSON and urlencoded bodies
//! (`read_fields`), field extraction (`take_string`) and cookies (`cookie_value`).
//!
//! Whatever a client sends, these answer with a value or an error of status 400, 413 or 415,
//! never a panic; what a well-behaved client sends comes back exactly. 256 cases per property
//! (2,048 in all); about two seconds unoptimised.
use lambda_http::{Body, Request};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shared::http::{cookie_value, read_fields, request_from_event, take_string};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn post(content_type: Option<&str>, body: Vec<u8>) -> Request {
    let mut b = http::Request::builder().method("POST").uri("/x");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Body::Binary(body)).expect("request")
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("APPLICATION/JSON".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("text/plain".to_owned())),
        Just(Some("multipart/form-data; boundary=x".to_owned())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Binary fractions: serde_json (without `float_roundtrip`) may round other floats.
        (-1_000_000i64..1_000_000).prop_map(|n| Value::from(n as f64 / 8.0)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[$a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn status(e: &shared::ApiError) -> u16 {
    e.status().as_u16()
}

/// An API Gateway v2 event with the given client-controlled parts.
fn event(
    host: &str,
    proto: &str,
    path: &str,
    query: &str,
    cookie: &str,
    body: &str,
    base64: bool,
) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /api/v1/users/login",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": [cookie],
        "headers": {"host": host, "x-forwarded-proto": proto, "content-type": "application/json"},
        "requestContext": {
            "domainName": host,
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
            "requestId": "r-1",
            "stage": "$default",
        },
        "isBase64Encoded": base64,
        "body": body,
    })
    .to_string()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_body_and_content_type_gives_fields_or_a_4xx(
        ct in content_type(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            "[a-z$%&=+\\[\\]]{0,64}".prop_map(String::into_bytes),
        ],
        max in 0usize..300,
    ) {
        let len = body.len();
        match read_fields(&post(ct.as_deref(), body), max) {
            Ok(_) => prop_assert!(len <= max),
            Err(e) => {
                prop_assert!([400, 413, 415].contains(&status(&e)), "{e:?}");
                if len > max {
                    prop_assert_eq!(status(&e), 413);
                }
            }
        }
    }

    #[test]
    fn any_json_object_reads_back_exactly(
        map in prop::collection::btree_map("[ -~]{0,12}", json_value(), 0..8),
    ) {
        let object: Map<String, Value> = map.into_iter().collect();
        let body = Value::Object(object.clone()).to_string().into_bytes();
        let read = read_fields(&post(Some("application/json"), body), usize::MAX);
        prop_assert_eq!(read.expect("a JSON object is accepted"), object);
    }

    #[test]
    fn json_that_is_not_an_object_is_a_400(value in json_value()) {
        prop_assume!(!value.is_object());
        let body = value.to_string().into_bytes();
        let e = read_fields(&post(Some("application/json"), body), usize::MAX).expect_err("not an object");
        prop_assert_eq!(status(&e), 400);
    }

    #[test]
    fn any_form_with_distinct_names_reads_back_exactly(
        map in prop::collection::btree_map("\\PC{1,12}", "\\PC{0,24}", 0..8),
    ) {
        let pairs: Vec<(&String, &String)> = map.iter().collect();
        let body = serde_urlencoded::to_string(&pairs).expect("encode").into_bytes();
        let read = read_fields(&post(Some("application/x-www-form-urlencoded"), body), usize::MAX)
            .expect("a form is accepted");
        let expected: Map<String, Value> =
            map.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        prop_assert_eq!(read, expected);
    }

    #[test]
    fn a_repeated_form_field_is_a_400_naming_it(
        name in "[a-zA-Z]{1,12}",
        first in "\\PC{0,12}",
        second in "\\PC{0,12}",
    ) {
        let body = serde_urlencoded::to_string([(&name, &first), (&name, &second)]).expect("encode");
        let e = read_fields(&post(Some("application/x-www-form-urlencoded"), body.into_bytes()), usize::MAX)
            .expect_err("a repeated field");
        prop_assert_eq!(status(&e), 400);
        prop_assert!(e.field_errors().iter().any(|f| f.field == name));
    }

    #[test]
    fn only_strings_pass_take_string(value in json_value(), name in "[a-z]{1,8}") {
        let mut fields = Map::new();
        fields.insert(name.clone(), value.clone());
        let taken = take_string(&mut fields, &name);
        prop_assert!(fields.is_empty(), "the field is consumed");
        match value {
            Value::Null => prop_assert_eq!(taken, Ok(None)),
            Value::String(s) => prop_assert_eq!(taken, Ok(Some(s))),
            _ => {
                let e = taken.expect_err("a non-string is a field error");
                prop_assert_eq!(e.field, name);
            }
        }
        prop_assert_eq!(take_string(&mut Map::new(), "absent"), Ok(None));
    }

    #[test]
    fn cookies_are_found_in_any_header_and_never_panic(
        junk in "[ -~]{0,80}",
        others in prop::collection::vec(("[a-zA-Z]{1,8}", "[a-zA-Z0-9._-]{0,16}"), 0..5),
        token in "[a-zA-Z0-9._-]{1,64}",
    ) {
        let junk_req = http::Request::builder().header("cookie", junk.as_str()).body(Body::Empty).expect("req");
        let _ = cookie_value(&junk_req, "refreshToken");
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(k, _)| k != "refreshToken")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.insert(pairs.len() / 2, format!("refreshToken={token}"));
        let req = http::Request::builder().header("cookie", pairs.join("; ")).body(Body::Empty).expect("req");
        prop_assert_eq!(cookie_value(&req, "refreshToken"), Some(token));
    }

    /// API Gateway copies these from the client; lambda_http used to panic on some of them.
    #[test]
    fn any_client_controlled_event_part_converts_without_panicking(
        host in prop_oneof!["[ -~]{0,30}", Just("api.example.com".to_owned()), "\\PC{0,10}"],
        proto in prop_oneof!["[ -~]{0,8}", Just("https".to_owned())],
        path in prop_oneof!["/[ -~]{0,30}", "[ -~]{0,30}", Just("/api/v1/users/login".to_owned())],
        query in "[ -~]{0,30}",
        cookie in "[ -~]{0,40}",
        body in "[ -~]{0,40}",
        base64 in any::<bool>(),
    ) {
        let json = event(&host, &proto, &path, &query, &cookie, &body, base64);
        let converted = std::panic::catch_unwind(|| request_from_event(&json));
        prop_assert!(converted.is_ok(), "the conversion panicked on {}", json);
        let Ok(Ok(req)) = converted else { return Ok(()) };
        prop_assert_eq!(req.method(), http::Method::POST);
    }
}
