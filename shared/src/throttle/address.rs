//! Where a request comes from, as the throttles count it.
//!
//! Only API Gateway's own record of the connection counts: `requestContext.http.sourceIp`
//! (HTTP API, payload 2.0, the only event the functions are built to accept). Never a header:
//! `X-Forwarded-For` and friends are whatever the client wrote. An IPv6 client is counted by
//! its /64, the smallest block a subscriber is normally given (RFC 6177), so walking through a
//! prefix does not yield fresh budgets.
use std::{
    fmt,
    net::{IpAddr, Ipv6Addr},
};

use lambda_http::{Request, RequestExt as _, request::RequestContext};

/// The address a request is counted under: an IPv4 address, an IPv6 /64, or `unknown` when
/// the event carries none (not an API Gateway event); all of those share one budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceAddress(String);

impl SourceAddress {
    /// The address of `req` as API Gateway recorded it.
    pub fn of(req: &Request) -> Self {
        let recorded = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
            _ => None,
        };
        match recorded.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
            Some(ip) => Self::from_ip(ip),
            None => Self::unknown(),
        }
    }

    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(v4.to_string()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(v4.to_string()),
                None => {
                    let s = v6.segments();
                    let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    Self(format!("{prefix}/64"))
                }
            },
        }
    }

    pub fn unknown() -> Self {
        Self("unknown".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_event(source_ip: Option<&str>, forwarded: &str) -> SourceAddress {
        let mut http = serde_json::json!({"method": "POST", "path": "/api/v1/users/login"});
        if let Some(ip) = source_ip {
            http["sourceIp"] = ip.into();
        }
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /api/v1/users/login",
            "rawPath": "/api/v1/users/login",
            "rawQueryString": "",
            "headers": {"x-forwarded-for": forwarded, "x-real-ip": forwarded, "host": "api.example.com"},
            "requestContext": {"http": http, "requestId": "r", "stage": "$default", "routeKey": "POST /api/v1/users/login"},
            "isBase64Encoded": false
        });
        let req = crate::http::request_from_event(&event.to_string()).expect("event parses");
        SourceAddress::of(&req)
    }

    #[test]
    fn the_address_is_api_gateways_never_a_header() {
        assert_eq!(
            from_event(Some("203.0.113.7"), "1.2.3.4").as_str(),
            "203.0.113.7"
        );
        assert_eq!(from_event(None, "1.2.3.4").as_str(), "unknown");
        assert_eq!(from_event(Some("not an ip"), "1.2.3.4").as_str(), "unknown");
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            from_event(Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "").as_str(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            from_event(Some("2001:db8:1:2::1"), ""),
            from_event(Some("2001:db8:1:2:ffff::9"), ""),
            "one /64, one budget"
        );
        assert_ne!(
            from_event(Some("2001:db8:1:2::1"), ""),
            from_event(Some("2001:db8:1:3::1"), "")
        );
        assert_eq!(
            from_event(Some("::ffff:192.0.2.1"), "").as_str(),
            "192.0.2.1"
        );
        assert_eq!(from_event(Some("::1"), "").as_str(), "::/64");
    }
}
