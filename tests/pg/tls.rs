//! A node reaching PostgreSQL over TLS, as the database URL's `sslmode` and `sslrootcert`
//! ask: a real server that offers TLS with a certificate for 127.0.0.1 signed by a CA made
//! for the run. The server itself reports which of the node's sessions are encrypted.

use std::path::Path;
use std::time::Duration;

use hookgate::cli::client::HttpClient;
use hyper::Method;
use serde_json::json;

use crate::pg;
use crate::process;
use crate::support::{ADMIN_TOKEN, TEST_SECRET_KEY};

/// How many of the node's sessions (`application_name` hookgate) are, and are not, on TLS.
fn sessions(admin_url: &str) -> (i64, i64) {
    let out = pg::psql(
        admin_url,
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.application_name = 'hookgate'",
    )
    .expect("psql");
    let (tls, plain) = out.trim().split_once('|').expect("two counts");
    (
        tls.parse().expect("a count"),
        plain.parse().expect("a count"),
    )
}

/// Runs `hookgate serve` on `url`; asserts that it refuses to start, and returns what it
/// said.
async fn refused(url: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("serve")
        .env_clear()
        .env("HOOKGATE_DB", url)
        .env("HOOKGATE_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY)
        .output()
        .await
        .expect("run hookgate");
    assert!(!out.status.success(), "a node on {url} must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn verify_full_encrypts_every_session_and_an_event_is_stored_through_it() {
    let (server, ca) = pg::private_tls_server();
    let url = server.fresh_database();
    let node = process::start(
        Path::new(&format!(
            "{url}?sslmode=verify-full&sslrootcert={}",
            ca.display()
        )),
        &[("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY)],
    )
    .await;
    node.create_account(
        &json!({"name": "shop", "auth": {"type": "bearer", "token": "shop-token-0123"},
                                 "paths": {"event_id": "$.id"}}),
    )
    .await;
    let a = HttpClient::default()
        .send(
            Method::POST,
            &format!("{}/hooks/shop", node.public),
            &[
                ("authorization", "Bearer shop-token-0123"),
                ("content-type", "application/json"),
            ],
            r#"{"id":"evt-tls-1"}"#.to_owned(),
        )
        .await
        .expect("the node answers");
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(
        pg::psql(
            &url,
            "SELECT count(*) FROM events WHERE event_id = 'evt-tls-1'"
        )
        .expect("psql")
        .trim(),
        "1"
    );
    let (tls, plain) = sessions(&url);
    assert!(tls >= 1, "the node's sessions are on TLS: {tls}");
    assert_eq!(plain, 0, "no session of the node is in plain text");
    let _ = node.term(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_certificate_for_another_name_or_from_another_ca_is_refused_with_the_reason() {
    let (server, ca) = pg::private_tls_server();
    let url = server.fresh_database();
    // The certificate names 127.0.0.1 only: connecting by `localhost` with verify-full
    // fails on the name, and verify-ca (the chain alone) accepts it.
    let by_name = url.replacen("127.0.0.1", "localhost", 1);
    let err = refused(&format!(
        "{by_name}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ))
    .await;
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let node = process::start(
        Path::new(&format!(
            "{by_name}?sslmode=verify-ca&sslrootcert={}",
            ca.display()
        )),
        &[("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY)],
    )
    .await;
    let _ = node.term(Duration::from_secs(10)).await;
    // Another cluster's CA did not sign this server's certificate.
    let (_other, other_ca) = pg::private_tls_server();
    let err = refused(&format!(
        "{url}?sslmode=verify-ca&sslrootcert={}",
        other_ca.display()
    ))
    .await;
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // A root file that does not exist is named.
    let err = refused(&format!(
        "{url}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ))
    .await;
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn require_never_falls_back_to_plain_text_and_disable_never_encrypts() {
    // The shared test server offers no TLS: `require` must not connect in the clear.
    let plain_url = pg::server().fresh_database();
    let err = refused(&format!("{plain_url}?sslmode=require")).await;
    assert!(err.contains("server does not support TLS"), "{err}");
    let (server, _ca) = pg::private_tls_server();
    let url = server.fresh_database();
    let node = process::start(
        Path::new(&format!("{url}?sslmode=disable")),
        &[("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY)],
    )
    .await;
    let (tls, plain) = sessions(&url);
    assert_eq!(tls, 0, "sslmode=disable encrypts nothing");
    assert!(plain >= 1, "the node's sessions are in plain text: {plain}");
    let _ = node.term(Duration::from_secs(10)).await;
    // `require` without a root: encrypted, the certificate not checked (as libpq).
    let node = process::start(
        Path::new(&format!("{url}?sslmode=require")),
        &[("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY)],
    )
    .await;
    let (tls, plain) = sessions(&url);
    assert!(tls >= 1, "{tls}");
    assert_eq!(plain, 0);
    let _ = node.term(Duration::from_secs(10)).await;
}
