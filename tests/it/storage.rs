//! The write path under sustained load: WAL checkpoints run beside the writer, keep the
//! WAL file bounded, and lose or damage nothing.

use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn checkpoints_keep_the_wal_bounded_under_load_and_every_row_survives() {
    const PAGES: u32 = 64;
    let gw = Arc::new(
        spawn_with(|c| {
            c.storage.checkpoint_pages = PAGES;
        })
        .await,
    );
    gw.create_account(json!({
        "name": "load",
        "auth": {"type": "bearer", "token": "load-token-1"},
        "paths": {"event_id": "$.id", "sender": "$.phone"}
    }))
    .await;
    let pad = "x".repeat(2000);
    let (mut sent, mut biggest_wal) = (0usize, 0u64);
    let wal = gw.db.with_extension("db-wal");
    // Rounds of concurrent requests until both kinds of checkpoint have run at least
    // twice, and at least 2,000 events (4 MB of bodies, far more than the bounded WAL).
    for round in 0..40 {
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (gw, pad) = (Arc::clone(&gw), pad.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..32 {
                    let body = format!(
                        r#"{{"id":"r{round}-t{t}-{i}","phone":"+2557{:08}","pad":"{pad}"}}"#,
                        (i * 7919 + t * 104_729) % 100_000_000
                    );
                    let a = gw
                        .post_hook("load", &[("authorization", "Bearer load-token-1")], body)
                        .await;
                    assert_eq!(a.status, 200, "{:?}", a.json());
                }
            }));
        }
        for t in tasks {
            t.await.expect("sender task");
        }
        sent += 8 * 32;
        biggest_wal = biggest_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        let text =
            String::from_utf8_lossy(&gw.admin_call(Method::GET, "/metrics", None).await.body)
                .into_owned();
        let background = counter(&text, "hookgate_checkpoints_total{by=\"background\"}");
        let writer = counter(&text, "hookgate_checkpoints_total{by=\"writer\"}");
        if sent >= 2000 && background >= 2.0 && writer >= 2.0 {
            break;
        }
        assert!(
            round < 39,
            "checkpoints did not run: {background} background, {writer} by the writer"
        );
    }
    // The WAL is started over rather than grown: at most about four times the threshold,
    // plus what arrives while a pass runs (a generous allowance here).
    let frame = u64::from(page_size(&gw.db)) + 24;
    assert!(
        biggest_wal <= u64::from(12 * PAGES) * frame,
        "WAL grew to {biggest_wal} bytes after {sent} events"
    );
    assert_eq!(
        gw.audit_rows(),
        sent as i64,
        "one row per acknowledged event"
    );
    let conn = rusqlite::Connection::open(&gw.db).expect("open db");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(ok, "ok");
    drop(conn);
    assert_chains_verify(&gw).await;
    match Arc::try_unwrap(gw) {
        Ok(gw) => {
            gw.stop().await;
        }
        Err(_) => panic!("a sender task still holds the gateway"),
    }
}

/// Asserts that both hash chains verify through the admin API.
async fn assert_chains_verify(gw: &TestGateway) {
    let verify = gw.admin_call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verify.status, 200, "{:?}", verify.json());
    assert!(
        verify.json()["logs"]
            .as_array()
            .is_some_and(|logs| logs.iter().all(|l| l["ok"] == true)),
        "{:?}",
        verify.json()
    );
}

/// The page size a database file was made with, read by a connection of its own.
fn page_size(db: &std::path::Path) -> u32 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("PRAGMA page_size", [], |r| r.get(0)))
        .expect("page size")
}

/// Posts an event of about 1.5 KB with id `id` to account `pages`; its answer's status.
async fn post_page_event(gw: &TestGateway, id: &str) -> (u16, serde_json::Value) {
    let pad = "x".repeat(1500);
    let body = format!(r#"{{"id":"{id}","phone":"+255700000001","pad":"{pad}"}}"#);
    let a = gw
        .post_hook("pages", &[("authorization", "Bearer pages-token-1")], body)
        .await;
    (a.status.as_u16(), a.json())
}

#[tokio::test]
async fn a_new_database_gets_the_configured_page_size_and_an_existing_one_keeps_its_own() {
    let fresh = spawn_gateway().await;
    assert_eq!(
        page_size(&fresh.db),
        hookgate::config::Storage::default().page_size
    );
    fresh.stop().await;

    let mut gw = spawn_with(|c| c.storage.page_size = 16384).await;
    gw.create_account(json!({
        "name": "pages",
        "auth": {"type": "bearer", "token": "pages-token-1"},
        "paths": {"event_id": "$.id", "sender": "$.phone"}
    }))
    .await;
    for i in 0..20 {
        let (status, answer) = post_page_event(&gw, &format!("before-{i}")).await;
        assert_eq!(status, 200, "{answer:?}");
    }
    assert_eq!(page_size(&gw.db), 16384);

    // Started again with another setting, the database keeps its pages and its log.
    gw.config.storage.page_size = 4096;
    let gw = gw.restart().await;
    for i in 0..20 {
        let (status, answer) = post_page_event(&gw, &format!("after-{i}")).await;
        assert_eq!(status, 200, "{answer:?}");
    }
    let (status, answer) = post_page_event(&gw, "before-3").await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("duplicate")),
        "{answer:?}"
    );
    assert_eq!(page_size(&gw.db), 16384);
    assert_eq!(gw.audit_rows(), 41);
    assert_eq!(
        gw.events("sender=%2B255700000001&limit=100").await.len(),
        41
    );
    assert_chains_verify(&gw).await;
    gw.stop().await;
}
