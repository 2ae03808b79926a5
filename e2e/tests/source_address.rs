//! The shared instance is reached through the local gateway, which records the loopback address
//! a client connects from (what the functions get as `sourceIp`): `Api::from_address` acts as
//! another address, IPv4 or IPv6.
use std::net::IpAddr;

use e2e::{Api, LogCursor};
use testkit::required_env;

/// The address the gateway logged for the request it answered last on `route`.
fn logged_source(log: &LogCursor, route: &str) -> Option<String> {
    log.new_text()
        .lines()
        .rev()
        .find(|l| l.contains(&format!("/api/v1/users/{route}\"")))
        .and_then(|l| l.strip_prefix("[gateway] "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

#[tokio::test]
async fn each_loopback_address_reaches_the_functions_as_itself() {
    let api = Api::connect().await;
    let mut addresses: Vec<IpAddr> = vec![
        "127.0.0.5".parse().expect("ip"),
        "127.0.0.6".parse().expect("ip"),
    ];
    if e2e::has_ipv6_loopback() {
        addresses.push("::1".parse().expect("ip"));
    } else {
        println!("::1 skipped: this machine has no IPv6 loopback");
    }
    for ip in addresses {
        let log = LogCursor::at_end(required_env("TEST_E2E_GATEWAY_LOG"));
        let from = api.from_address(ip);
        let (status, cookies, body) = from.send(from.http.get(from.url("current-user"))).await;
        assert_eq!(status, 401, "{ip}: {body}");
        assert!(cookies.is_empty());
        assert_eq!(
            logged_source(&log, "current-user").as_deref(),
            Some(ip.to_string().as_str()),
            "{ip}: {}",
            log.new_text()
        );
    }
}
