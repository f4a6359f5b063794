//! Access to the admin API, walked over every declared route: without a token 401, with
//! the auditor's 403 wherever the admin role is declared, and served (neither) where the
//! caller's role is enough; what is not declared is refused.

use std::time::Duration;

use hookgate::server::{Access, admin_routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The status of one request to the admin listener; only the status line is read, so a
/// route that streams (the live stream) answers like any other.
async fn status(gw: &TestGateway, method: &str, path: &str, token: Option<&str>) -> u16 {
    let addr = gw.admin.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !line.ends_with(b"\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => line.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .expect("a status line in time");
    let text = String::from_utf8_lossy(&line);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {text:?}"))
}

/// A concrete path for a pattern: every `{parameter}` becomes a name that does not exist.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| if s.starts_with('{') { "nosuch0" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_admin_route_declares_its_role_and_is_refused_below_it() {
    let gw = spawn_gateway().await;
    let routes = admin_routes();
    // The auditor reads: events, exports, the stream, the change log and verification at
    // least, only with GET, and never accounts or tokens (they hold secrets and grant access).
    let readable: Vec<String> = routes
        .iter()
        .filter(|(_, _, a)| *a == Access::Auditor)
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    for route in [
        "GET /v1/audit/verify",
        "GET /v1/changes",
        "GET /v1/events",
        "GET /v1/events/export",
        "GET /v1/events/{id}",
        "GET /v1/stream",
    ] {
        assert!(
            readable.iter().any(|r| r == route),
            "{route} is the auditor's"
        );
    }
    for route in &readable {
        assert!(
            route.starts_with("GET /"),
            "{route}: the auditor only reads"
        );
        assert!(
            !route.starts_with("GET /v1/accounts") && !route.starts_with("GET /v1/tokens"),
            "{route}: accounts and tokens are the admin's"
        );
    }
    assert!(routes.len() > readable.len(), "and the rest is the admin's");
    for (method, pattern, access) in &routes {
        let path = concrete(pattern);
        let m = method.as_str();
        let anonymous = status(&gw, m, &path, None).await;
        let forged = status(&gw, m, &path, Some("not-a-token-0123456789")).await;
        let auditor = status(&gw, m, &path, Some(AUDITOR_TOKEN)).await;
        let admin = status(&gw, m, &path, Some(ADMIN_TOKEN)).await;
        let route = format!("{m} {pattern} ({access:?})");
        assert_eq!(forged, 401, "{route}: a wrong token");
        match access {
            Access::Anyone => assert!(![401, 403].contains(&anonymous), "{route}: {anonymous}"),
            _ => assert_eq!(anonymous, 401, "{route}: no token"),
        }
        match access {
            Access::Admin => assert_eq!(auditor, 403, "{route}: the auditor"),
            _ => assert!(
                ![401, 403].contains(&auditor),
                "{route}: auditor got {auditor}"
            ),
        }
        assert!(![401, 403].contains(&admin), "{route}: admin got {admin}");
    }
    // Nothing undeclared is served: an unknown path, or a known path with another method.
    for (m, path) in [
        ("GET", "/v1/nope"),
        ("PUT", "/v1/accounts"),
        ("DELETE", "/v1/events/evt_1"),
        ("GET", "/nothing-here"),
    ] {
        assert_eq!(status(&gw, m, path, None).await, 401, "{m} {path}");
        assert_eq!(
            status(&gw, m, path, Some(AUDITOR_TOKEN)).await,
            404,
            "{m} {path}"
        );
        assert_eq!(
            status(&gw, m, path, Some(ADMIN_TOKEN)).await,
            404,
            "{m} {path}"
        );
    }
    gw.stop().await;
}
