//! The account routes over real HTTP, through `cargo lambda watch` serving the compiled
//! functions: a user on two devices changes the password on one (the other is signed out at
//! once, for refresh and on our routes), updates the account, and logs out.
use base64::Engine as _;
use e2e::{Api, cookie};
use serde_json::{Value, json};
use testkit::{PASSWORD, random_suffix, seed_user};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn seeded(api: &Api) -> String {
    let name = format!("acct_{}", random_suffix());
    seed_user(&api.db, &name, &format!("{name}@example.com"), PASSWORD).await;
    name
}

/// One signed-in device: its current tokens.
#[derive(Debug, Clone)]
struct Device {
    access: String,
    refresh: String,
}

async fn login(api: &Api, name: &str, password: &str) -> (u16, Option<Device>) {
    let (status, _, body) = api
        .send(
            api.http
                .post(api.url("login"))
                .json(&json!({"username": name, "password": password})),
        )
        .await;
    let device = (status == 200).then(|| Device {
        access: body["data"]["accessToken"]
            .as_str()
            .expect("access")
            .to_owned(),
        refresh: body["data"]["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    });
    (status, device)
}

async fn current_user_by_cookie(api: &Api, access: &str) -> (u16, Value) {
    let (status, _, body) = api
        .send(
            api.http
                .get(api.url("current-user"))
                .header("cookie", format!("accessToken={access}")),
        )
        .await;
    (status, body)
}

async fn current_user_by_bearer(api: &Api, access: &str) -> (u16, Value) {
    let (status, _, body) = api
        .send(api.http.get(api.url("current-user")).bearer_auth(access))
        .await;
    (status, body)
}

async fn refresh(api: &Api, token: &str) -> (u16, Option<Device>) {
    let (status, _, body) = api
        .send(
            api.http
                .post(api.url("refresh-token"))
                .header("cookie", format!("refreshToken={token}")),
        )
        .await;
    let device = (status == 200).then(|| Device {
        access: body["data"]["accessToken"]
            .as_str()
            .expect("access")
            .to_owned(),
        refresh: body["data"]["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    });
    (status, device)
}

async fn change_password(api: &Api, access: &str, old: &str, new: &str) -> (u16, Value) {
    let (status, _, body) = api
        .send(
            api.http
                .post(api.url("change-password"))
                .header("cookie", format!("accessToken={access}"))
                .json(&json!({"oldPassword": old, "newPassword": new})),
        )
        .await;
    (status, body)
}

async fn update_account(api: &Api, access: &str, body: &Value) -> (u16, Vec<String>, Value) {
    api.send(
        api.http
            .patch(api.url("update-account"))
            .bearer_auth(access)
            .json(body),
    )
    .await
}

async fn logout(api: &Api, access: &str, body: Option<Value>) -> (u16, Vec<String>, Value) {
    let mut req = api
        .http
        .post(api.url("logout"))
        .header("cookie", format!("accessToken={access}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    api.send(req).await
}

/// The claims of a JWT, read without checking it (the functions checked it).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The user's document and every session of theirs: what a refused request must leave as it
/// was. (Other tests share the database, so not the whole footprint.)
async fn account_state(api: &Api, name: &str) -> Vec<mongodb::bson::Document> {
    use futures::TryStreamExt as _;
    use mongodb::bson::{Document, doc};
    let user = api
        .db
        .collection::<Document>("users")
        .find_one(doc! {"username": name})
        .await
        .expect("read")
        .expect("the user exists");
    let id = user.get_object_id("_id").expect("_id");
    let mut state = vec![user];
    let sessions: Vec<Document> = api
        .db
        .collection::<Document>("sessions")
        .find(doc! {"userId": id})
        .sort(doc! {"_id": 1})
        .await
        .expect("read")
        .try_collect()
        .await
        .expect("read");
    state.extend(sessions);
    state
}

fn assert_cleared(set_cookies: &[String]) {
    for (name, path, same_site) in [
        ("accessToken", "Path=/", "SameSite=Lax"),
        ("refreshToken", "Path=/api/v1/users", "SameSite=Strict"),
    ] {
        let c = set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} cleared in {set_cookies:?}"));
        assert_eq!(cookie(set_cookies, name), Some(""), "{c}");
        for attribute in ["Max-Age=0", "HttpOnly", same_site] {
            assert!(c.contains(attribute), "{attribute} in {c}");
        }
        assert!(c.split("; ").any(|a| a == path), "{path} exactly in {c}");
    }
}

#[tokio::test]
async fn a_user_on_two_devices_changes_the_password_updates_the_account_and_logs_out() {
    let api = Api::connect().await;
    let name = seeded(&api).await;
    let (_, phone) = login(&api, &name, PASSWORD).await;
    let (_, laptop) = login(&api, &name, PASSWORD).await;
    let (phone, laptop) = (phone.expect("phone"), laptop.expect("laptop"));

    let (status, body) = current_user_by_cookie(&api, &phone.access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["username"], name.as_str());
    assert_eq!(body["message"], "User fetched successfully");
    let (status, body) = current_user_by_bearer(&api, &laptop.access).await;
    assert_eq!(status, 200, "{body}");

    // The password changes on the phone.
    let (status, body) = change_password(&api, &phone.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Password changed successfully");
    assert_eq!(body["data"], json!({}));

    // The laptop is signed out at once: its refresh token and its access token on our routes.
    assert_eq!(refresh(&api, &laptop.refresh).await.0, 401);
    assert_eq!(current_user_by_cookie(&api, &laptop.access).await.0, 401);
    assert_eq!(current_user_by_bearer(&api, &laptop.access).await.0, 401);
    let (status, _, _) =
        update_account(&api, &laptop.access, &json!({"fullName": "Laptop Thief"})).await;
    assert_eq!(status, 401);
    let (status, _) =
        change_password(&api, &laptop.access, NEW_PASSWORD, "a thief's passphrase").await;
    assert_eq!(status, 401);

    // The phone goes on, and only the new password logs in.
    assert_eq!(current_user_by_cookie(&api, &phone.access).await.0, 200);
    let (status, phone) = refresh(&api, &phone.refresh).await;
    assert_eq!(status, 200);
    let phone = phone.expect("rotated");
    assert_eq!(login(&api, &name, PASSWORD).await.0, 401);
    assert_eq!(login(&api, &name, NEW_PASSWORD).await.0, 200);

    // The account is updated; the new access cookie already carries the new email.
    let email = format!("{name}.Renamed@Example.com");
    let (status, set_cookies, body) = update_account(
        &api,
        &phone.access,
        &json!({"fullName": "Renamed User", "email": email}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Account details updated successfully");
    let lowercased = email.to_lowercase();
    assert_eq!(body["data"]["email"], lowercased.as_str());
    assert_eq!(body["data"]["fullName"], "Renamed User");
    let access = cookie(&set_cookies, "accessToken")
        .expect("a new access cookie")
        .to_owned();
    assert_eq!(claims(&access)["email"], lowercased.as_str());
    assert_eq!(claims(&access)["fullName"], "Renamed User");
    let (status, body) = current_user_by_cookie(&api, &access).await;
    assert_eq!((status, &body["data"]["email"]), (200, &json!(lowercased)));
    let (status, phone) = refresh(&api, &phone.refresh).await;
    assert_eq!(status, 200);
    let phone = phone.expect("rotated");
    assert_eq!(
        claims(&phone.access)["email"],
        lowercased.as_str(),
        "refresh carries it too"
    );

    // Logout: cookies cleared, the session is over for refresh and on our routes.
    let (status, set_cookies, body) = logout(&api, &phone.access, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "User logged Out");
    assert_eq!(body["data"], json!({}));
    assert_cleared(&set_cookies);
    assert_eq!(refresh(&api, &phone.refresh).await.0, 401);
    assert_eq!(current_user_by_cookie(&api, &phone.access).await.0, 401);
    // A retried logout (its first answer lost) still succeeds.
    let (status, set_cookies, _) = logout(&api, &phone.access, None).await;
    assert_eq!(status, 200);
    assert_cleared(&set_cookies);
}

#[tokio::test]
async fn logout_of_every_device_signs_every_device_out() {
    let api = Api::connect().await;
    let name = seeded(&api).await;
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(login(&api, &name, PASSWORD).await.1.expect("signed in"));
    }
    let (status, set_cookies, body) =
        logout(&api, &devices[0].access, Some(json!({"allDevices": true}))).await;
    assert_eq!(status, 200, "{body}");
    assert_cleared(&set_cookies);
    for d in &devices {
        assert_eq!(refresh(&api, &d.refresh).await.0, 401);
        assert_eq!(current_user_by_bearer(&api, &d.access).await.0, 401);
    }
}

#[tokio::test]
async fn bad_requests_to_the_account_routes_are_json_4xx_and_change_nothing() {
    let api = Api::connect().await;
    let name = seeded(&api).await;
    let device = login(&api, &name, PASSWORD).await.1.expect("signed in");
    let auth = |req: reqwest::RequestBuilder| req.bearer_auth(&device.access);
    let cases = [
        (api.http.post(api.url("logout")), 401),
        (api.http.get(api.url("current-user")), 401),
        (api.http.post(api.url("change-password")), 401),
        (api.http.patch(api.url("update-account")), 401),
        (
            api.http
                .get(api.url("current-user"))
                .header("cookie", "accessToken=eyJhbGciOiJub25lIn0.e30."),
            401,
        ),
        (
            auth(api.http.post(api.url("logout"))).json(&json!({"allDevices": "yes"})),
            400,
        ),
        (
            auth(api.http.post(api.url("change-password"))).json(&json!({})),
            400,
        ),
        (
            auth(api.http.post(api.url("change-password")))
                .json(&json!({"oldPassword": "wrong password", "newPassword": NEW_PASSWORD})),
            400,
        ),
        (
            auth(api.http.post(api.url("change-password")))
                .json(&json!({"oldPassword": PASSWORD, "newPassword": PASSWORD})),
            400,
        ),
        (
            auth(api.http.patch(api.url("update-account"))).json(&json!({"email": {"$gt": ""}})),
            400,
        ),
        (
            auth(api.http.patch(api.url("update-account")))
                .header("content-type", "text/html")
                .body("<b>x</b>"),
            415,
        ),
    ];
    let before = account_state(&api, &name).await;
    for (req, expected) in cases {
        let (status, cookies, body) = api.send(req).await;
        assert_eq!(status, expected, "{body}");
        assert!(cookies.is_empty(), "{cookies:?}");
        assert!(!body.to_string().contains(PASSWORD));
    }
    assert_eq!(
        account_state(&api, &name).await,
        before,
        "no bad request writes anything"
    );
}

#[tokio::test]
async fn two_users_racing_over_http_for_one_free_email_get_one_200_and_one_409() {
    let api = Api::connect().await;
    let (a, b) = (seeded(&api).await, seeded(&api).await);
    let da = login(&api, &a, PASSWORD).await.1.expect("a");
    let db = login(&api, &b, PASSWORD).await.1.expect("b");
    let wanted = json!({"email": format!("wanted.{}@example.com", random_suffix())});
    let (ra, rb) = tokio::join!(
        update_account(&api, &da.access, &wanted),
        update_account(&api, &db.access, &wanted),
    );
    let mut statuses = [ra.0, rb.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", ra.2, rb.2);
}
