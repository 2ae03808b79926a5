//! The authorizer driven with real HTTP API v2 authorizer events (`events/authorizer/`), tokens
//! issued by the same code as login's, hostile tokens of every kind, and secret references
//! resolved through a stand-in for the Parameters and Secrets extension on loopback.
use std::{collections::HashMap, path::Path, time::Duration};

use authorizer::{Authorizer, LEEWAY_VARIABLE, SECRET_VARIABLE, extension::Extension};
use serde_json::{Value, json};
use shared::{
    config::TokenConfig,
    tokens::{AccessClaims, TokenKeys, UserClaims, new_jti, now_secs},
};
use testkit::forge::{b64, jwt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const SECRET: &str = "authorizer-test-access-secret-0123456789";
const REFRESH_SECRET: &str = "authorizer-test-refresh-secret-012345678";
const USER: &str = "6650f0c2a1b2c3d4e5f60718";
const SID: &str = "0123456789abcdef0123456789abcdef";

fn keys(access: &str) -> TokenKeys {
    TokenKeys::new(&TokenConfig {
        access_secret: Some(access.into()),
        refresh_secret: Some(REFRESH_SECRET.into()),
        node_refresh_secret: None,
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86_400),
        session_max_age: Duration::from_secs(86_400 * 30),
        reuse_grace: Duration::from_secs(10),
        leeway: Duration::from_secs(2),
    })
}

fn claims() -> AccessClaims {
    let now = now_secs();
    AccessClaims {
        id: USER.into(),
        sub: USER.into(),
        sid: SID.into(),
        username: "ada".into(),
        email: "ada@example.com".into(),
        full_name: "Ada Lovelace".into(),
        iat: now,
        exp: now + 900,
        jti: new_jti(),
    }
}

/// A token exactly as login issues it (`TokenKeys::issue`), for the same user and session.
fn issued() -> String {
    let user_claims = UserClaims {
        username: "ada".into(),
        email: "ada@example.com".into(),
        full_name: "Ada Lovelace".into(),
    };
    let grant = shared::tokens::Grant {
        user_id: mongodb::bson::oid::ObjectId::parse_str(USER).expect("oid"),
        session_id: SID,
        claims: &user_claims,
        session_ends: now_secs() + 86_400,
    };
    keys(SECRET)
        .issue(grant, &new_jti(), now_secs())
        .expect("issue")
        .access_token
}

async fn authorizer() -> Authorizer {
    let vars = HashMap::from([(SECRET_VARIABLE.to_owned(), SECRET.to_owned())]);
    Authorizer::from_vars(&vars, &Extension::unreachable())
        .await
        .expect("configuration")
}

fn event_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/authorizer")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// The event file with the token placeholder replaced (cookie) or the cookie swapped for a
/// header.
fn with_cookie(token: &str) -> Value {
    let mut e = event_file("authorizer.json");
    e["cookies"] = json!(["theme=dark", format!("accessToken={token}")]);
    e
}

fn with_bearer(token: &str) -> Value {
    let mut e = event_file("authorizer-no-token.json");
    e["headers"]["authorization"] = json!(format!("Bearer {token}"));
    e
}

fn allowed(answer: &Value) -> bool {
    answer["isAuthorized"] == json!(true)
}

#[tokio::test]
async fn a_token_login_issued_is_allowed_with_the_user_as_context() {
    let a = authorizer().await;
    let token = issued();
    for event in [with_cookie(&token), with_bearer(&token)] {
        let answer = a.authorize(&event);
        assert_eq!(
            answer,
            json!({"isAuthorized": true, "context": {
                "userId": USER, "username": "ada", "email": "ada@example.com",
                "fullName": "Ada Lovelace", "sid": SID,
            }})
        );
    }
}

#[tokio::test]
async fn the_event_files_replay_as_documented() {
    let a = authorizer().await;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/authorizer/authorizer.json"),
    )
    .expect("read");
    assert!(text.contains("ACCESS_TOKEN"), "the placeholder is there");
    let replaced: Value =
        serde_json::from_str(&text.replace("ACCESS_TOKEN", &issued())).expect("JSON");
    assert!(allowed(&a.authorize(&replaced)));
    assert!(
        !allowed(&a.authorize(&event_file("authorizer.json"))),
        "placeholder unreplaced"
    );
    assert_eq!(
        a.authorize(&event_file("authorizer-no-token.json")),
        json!({"isAuthorized": false})
    );
}

#[tokio::test]
async fn the_cookie_is_taken_before_the_header_as_on_our_routes() {
    let a = authorizer().await;
    let mut event = with_cookie("not-a-token");
    event["headers"]["authorization"] = json!(format!("Bearer {}", issued()));
    assert!(
        !allowed(&a.authorize(&event)),
        "a bad cookie is not rescued by the header"
    );
    let mut event = with_cookie(&issued());
    event["headers"]["authorization"] = json!("Bearer not-a-token");
    assert!(allowed(&a.authorize(&event)));
}

#[tokio::test]
async fn every_hostile_or_wrong_token_is_refused_with_nothing_in_context() {
    use jsonwebtoken::Algorithm::{HS256, HS384};
    let a = authorizer().await;
    let good = serde_json::to_value(claims()).expect("claims");
    let at = |alg: &str| json!({"alg": alg, "typ": "at+jwt"});
    let mut expired = good.clone();
    expired["exp"] = json!(now_secs() - 60);
    let mut mismatched = good.clone();
    mismatched["_id"] = json!("6650f0c2a1b2c3d4e5f60719");
    let mut extra = good.clone();
    extra["admin"] = json!(true);
    let mut typed_wrong = good.clone();
    typed_wrong["sid"] = json!(5);
    let payload = b64(good.to_string());
    let refresh = keys(SECRET)
        .sign_refresh(&shared::tokens::RefreshClaims {
            sub: USER.into(),
            sid: SID.into(),
            jti: new_jti(),
            iat: now_secs(),
            exp: now_secs() + 60,
        })
        .expect("refresh");
    let cases = [
        ("expired", jwt(&at("HS256"), &expired, HS256, SECRET)),
        (
            "alg none",
            format!("{}.{payload}.", b64(at("none").to_string())),
        ),
        ("HS384", jwt(&at("HS384"), &good, HS384, SECRET)),
        (
            "another secret",
            jwt(
                &at("HS256"),
                &good,
                HS256,
                "another-secret-0123456789abcdefghij",
            ),
        ),
        (
            "typ rt+jwt",
            jwt(
                &json!({"alg": "HS256", "typ": "rt+jwt"}),
                &good,
                HS256,
                SECRET,
            ),
        ),
        (
            "no typ, as Node signs",
            jwt(&json!({"alg": "HS256"}), &good, HS256, SECRET),
        ),
        ("a refresh token", refresh),
        (
            "_id differs from sub",
            jwt(&at("HS256"), &mismatched, HS256, SECRET),
        ),
        ("an extra claim", jwt(&at("HS256"), &extra, HS256, SECRET)),
        (
            "sid a number",
            jwt(&at("HS256"), &typed_wrong, HS256, SECRET),
        ),
        ("garbage", "garbage".to_owned()),
        ("oversized", "a".repeat(5000)),
    ];
    for (what, token) in &cases {
        for event in [with_cookie(token), with_bearer(token)] {
            assert_eq!(
                a.authorize(&event),
                json!({"isAuthorized": false}),
                "{what}"
            );
        }
    }
    let mut basic = event_file("authorizer-no-token.json");
    basic["headers"]["authorization"] = json!("Basic dXNlcjpwYXNz");
    assert!(!allowed(&a.authorize(&basic)));
    // The control: the same forger, with everything right, is allowed.
    assert!(allowed(&a.authorize(&with_cookie(&jwt(
        &at("HS256"),
        &good,
        HS256,
        SECRET
    )))));
}

#[tokio::test]
async fn the_leeway_is_the_configured_one() {
    let mut late = serde_json::to_value(claims()).expect("claims");
    late["exp"] = json!(now_secs() - 5);
    let token = jwt(
        &json!({"alg": "HS256", "typ": "at+jwt"}),
        &late,
        jsonwebtoken::Algorithm::HS256,
        SECRET,
    );
    let build = |leeway: &str| {
        let vars = HashMap::from([
            (SECRET_VARIABLE.to_owned(), SECRET.to_owned()),
            (LEEWAY_VARIABLE.to_owned(), leeway.to_owned()),
        ]);
        async move {
            Authorizer::from_vars(&vars, &Extension::unreachable())
                .await
                .expect("ok")
        }
    };
    assert!(!allowed(&build("2s").await.authorize(&with_cookie(&token))));
    assert!(allowed(&build("30s").await.authorize(&with_cookie(&token))));
}

/// A stand-in for the extension: answers `body` to every request whose token header is
/// `token`, 401 otherwise; returns the port and the request lines it saw.
async fn extension(
    token: &'static str,
    body: Value,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let authorised = request.lines().any(|l| {
                l.eq_ignore_ascii_case(&format!("x-aws-parameters-secrets-token: {token}"))
            });
            let _ = tx.send(request.lines().next().unwrap_or_default().to_owned());
            let (status, text) = if authorised {
                ("200 OK", body.to_string())
            } else {
                (
                    "401 Unauthorized",
                    "{\"message\":\"not authorized\"}".to_owned(),
                )
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    (port, rx)
}

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:videotube/prod-AbCdEf";

#[tokio::test]
async fn a_secrets_manager_reference_with_a_key_is_resolved_through_the_extension() {
    let body = json!({"ARN": ARN, "SecretString": json!({"ACCESS_TOKEN_SECRET": SECRET, "OTHER": "x"}).to_string()});
    let (port, mut seen) = extension("session-token", body).await;
    let vars = HashMap::from([(
        SECRET_VARIABLE.to_owned(),
        format!("{ARN}#ACCESS_TOKEN_SECRET"),
    )]);
    let a = Authorizer::from_vars(&vars, &Extension::at(port, Some("session-token")))
        .await
        .expect("resolved");
    assert!(
        allowed(&a.authorize(&with_cookie(&issued()))),
        "verifies with the fetched secret"
    );
    let line = seen.recv().await.expect("one request");
    assert_eq!(
        line,
        "GET /secretsmanager/get?secretId=arn%3Aaws%3Asecretsmanager%3Aeu-west-1%3A123456789012%3Asecret%3Avideotube%2Fprod-AbCdEf HTTP/1.1"
    );
}

#[tokio::test]
async fn an_ssm_reference_is_resolved_decrypted() {
    let body = json!({"Parameter": {"Name": "/videotube/at", "Value": SECRET}});
    let (port, mut seen) = extension("t", body).await;
    let vars = HashMap::from([(SECRET_VARIABLE.to_owned(), "ssm:/videotube/at".to_owned())]);
    let a = Authorizer::from_vars(&vars, &Extension::at(port, Some("t")))
        .await
        .expect("resolved");
    assert!(allowed(&a.authorize(&with_bearer(&issued()))));
    assert_eq!(
        seen.recv().await.expect("request"),
        "GET /systemsmanager/parameters/get?name=%2Fvideotube%2Fat&withDecryption=true HTTP/1.1"
    );
}

#[tokio::test]
async fn an_unresolvable_reference_refuses_to_start_and_says_why() {
    let vars = |v: &str| HashMap::from([(SECRET_VARIABLE.to_owned(), v.to_owned())]);
    // No extension listening.
    let err = Authorizer::from_vars(&vars("ssm:/videotube/at"), &Extension::unreachable())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not reachable"), "{err}");
    // The wrong session token.
    let (port, _) = extension("right", json!({"Parameter": {"Value": SECRET}})).await;
    let err = Authorizer::from_vars(
        &vars("ssm:/videotube/at"),
        &Extension::at(port, Some("wrong")),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("401"), "{err}");
    // A JSON secret without #key, and a key that is not there.
    let (port, _) = extension(
        "t",
        json!({"SecretString": json!({"A": SECRET}).to_string()}),
    )
    .await;
    let ext = Extension::at(port, Some("t"));
    let err = Authorizer::from_vars(&vars(ARN), &ext)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("add #KEY"), "{err}");
    let err = Authorizer::from_vars(&vars(&format!("{ARN}#B")), &ext)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no key"), "{err}");
    // A resolved secret that is too short is still refused, and never quoted.
    let (port, _) = extension("t", json!({"Parameter": {"Value": "tiny-secret"}})).await;
    let err = Authorizer::from_vars(&vars("ssm:/x"), &Extension::at(port, Some("t")))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("at least 32 bytes") && !err.to_string().contains("tiny-secret")
    );
}
