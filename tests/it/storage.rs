//! The SQLite engine's files: a graceful stop leaves a self-contained database file, a
//! backup taken under load is consistent, and the page size a database was made with.

use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use crate::support::*;

/// Sends `senders` x `each` accepted events concurrently to account `load` (bearer
/// `load-token-1`); returns the ids acknowledged.
async fn send_load(gw: &Arc<TestGateway>, tag: &str, senders: usize, each: usize) -> Vec<String> {
    let pad = "x".repeat(1000);
    let mut tasks = Vec::new();
    for t in 0..senders {
        let (gw, pad, tag) = (Arc::clone(gw), pad.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..each {
                let id = format!("{tag}-{t}-{i}");
                let body = format!(r#"{{"id":"{id}","phone":"+2557{t:04}{i:04}","pad":"{pad}"}}"#);
                let a = gw
                    .post_hook("load", &[("authorization", "Bearer load-token-1")], body)
                    .await;
                assert_eq!(a.status, 200, "{:?}", a.json());
                acked.push(id);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("sender task"));
    }
    acked
}

async fn load_gateway() -> Arc<TestGateway> {
    let gw = spawn_sqlite_with(|_| {}).await;
    gw.create_account(json!({
        "name": "load",
        "auth": {"type": "bearer", "token": "load-token-1"},
        "paths": {"event_id": "$.id", "sender": "$.phone"}
    }))
    .await;
    Arc::new(gw)
}

fn unwrap_gateway(gw: Arc<TestGateway>) -> TestGateway {
    match Arc::try_unwrap(gw) {
        Ok(gw) => gw,
        Err(_) => panic!("a sender task still holds the gateway"),
    }
}

/// Runs the `hookgate` binary with `args`; returns (exit code, stdout, stderr).
async fn hookgate(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_remove("HOOKGATE_DB")
        .output()
        .await
        .expect("run hookgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hookgate audit verify --db FILE`: asserts both chains verify and returns the events
/// log's rows.
async fn verify_offline_rows(db: &std::path::Path) -> u64 {
    let (code, out, err) = hookgate(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("verify prints JSON");
    assert_eq!(report["ok"], true, "{report}");
    report["logs"][0]["rows"].as_u64().expect("rows")
}

#[tokio::test]
async fn a_graceful_stop_leaves_a_database_file_that_is_a_complete_backup_alone() {
    let gw = load_gateway().await;
    let acked = send_load(&gw, "stop", 8, 40).await;
    let gw = unwrap_gateway(gw);
    let db = gw.db.clone();
    let copy_dir = tempfile::tempdir().expect("temp dir");
    let copy = copy_dir.path().join("copy.db");
    let dir = gw.stop().await;
    // The WAL holds nothing after the stop: the file alone is the database.
    let wal = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
    assert_eq!(
        wal, 0,
        "the WAL still holds {wal} bytes after a graceful stop"
    );
    std::fs::copy(&db, &copy).expect("copy the database file alone");
    drop(dir);
    assert_eq!(verify_offline_rows(&copy).await, acked.len() as u64);
    let conn = rusqlite::Connection::open(&copy).expect("open copy");
    let ids: i64 = conn
        .query_row(
            "SELECT count(DISTINCT event_id) FROM events WHERE status = 'accepted'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(ids, acked.len() as i64);
}

#[tokio::test]
async fn a_backup_taken_under_load_is_consistent_and_an_existing_file_is_never_overwritten() {
    let gw = load_gateway().await;
    let before = send_load(&gw, "before", 4, 25).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("backup.db");
    // The backup runs while senders keep writing.
    let during = tokio::spawn({
        let gw = Arc::clone(&gw);
        async move { send_load(&gw, "during", 4, 50).await }
    });
    let args = |to: &std::path::Path| {
        vec![
            std::ffi::OsString::from("backup"),
            "--db".into(),
            gw.db.clone().into_os_string(),
            "--to".into(),
            to.as_os_str().to_owned(),
        ]
    };
    let a = args(&target);
    let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let (code, out, err) = hookgate(&a).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit verify --db"), "{out}");
    let during = during.await.expect("senders");
    // A snapshot: every row it holds chains, and it holds at least what was acknowledged
    // before it began, at most everything acknowledged by the end.
    let rows = verify_offline_rows(&target).await;
    assert!(
        rows >= before.len() as u64 && rows <= (before.len() + during.len()) as u64,
        "{rows} rows"
    );
    let size = std::fs::metadata(&target).expect("backup").len();
    // A second backup to the same name is refused, and the first is left as it was.
    let (code, out, err) = hookgate(&a).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::metadata(&target).expect("backup").len(), size);
    assert_eq!(verify_offline_rows(&target).await, rows);
    // A database that is not there is a clear error, and no file is made.
    let missing = dir.path().join("missing.db");
    let other = dir.path().join("other.db");
    let b = [
        std::ffi::OsStr::new("backup"),
        "--db".as_ref(),
        missing.as_os_str(),
        "--to".as_ref(),
        other.as_os_str(),
    ];
    let (code, _, err) = hookgate(&b).await;
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    assert!(!other.exists());
    // A PostgreSQL URL is pointed at PostgreSQL's own tools, its password never shown.
    let url = [
        std::ffi::OsStr::new("backup"),
        "--db".as_ref(),
        "postgres://hook:s3cret-pass@127.0.0.1:1/hookgate".as_ref(),
        "--to".as_ref(),
        other.as_os_str(),
    ];
    let (code, _, err) = hookgate(&url).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("pg_dump") && !err.contains("s3cret-pass"),
        "{err}"
    );
    assert!(!other.exists());
    unwrap_gateway(gw).stop().await;
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
    let fresh = spawn_sqlite_with(|_| {}).await;
    assert_eq!(
        page_size(&fresh.db),
        hookgate::config::Storage::default().page_size
    );
    fresh.stop().await;

    let mut gw = spawn_sqlite_with(|c| c.storage.page_size = 16384).await;
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
