//! Storage faults staged for real: a database file that turns read-only under the running
//! gateway (`chattr +i`), a full disk (a small tmpfs filled to ENOSPC under the
//! running gateway), a database another process holds locked, and a write that fails half
//! way through one event (a trigger staged from another connection). Ingest must answer 503,
//! never 2xx; `/readyz` must say not ready; and both must recover by themselves, with no
//! webhook needed, once the fault clears. A fault that cannot be staged fails the test;
//! nothing is skipped.

use hookgate::cli::client::HttpClient;
use hyper::Method;
use serde_json::json;

use crate::support::*;

async fn status_of(client: &HttpClient, url: &str) -> u16 {
    client
        .send(Method::GET, url, &[], "")
        .await
        .expect("reachable")
        .status
        .as_u16()
}

/// Asserts what `/readyz` answers now (each call probes the writer when unhealthy).
async fn readyz_is(client: &HttpClient, public: &str, want: u16) {
    let got = status_of(client, &format!("{public}/readyz")).await;
    assert_eq!(got, want, "/readyz");
}

/// A small tmpfs mounted over a temporary directory, unmounted on drop. Staging it needs
/// root (CI runs as root); when it cannot be staged the test fails.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount must exist to stage a full disk");
        assert!(
            out.status.success(),
            "cannot stage a full disk (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    /// Fills the free space with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = f.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_and_recovers_by_itself_when_space_returns() {
    let disk = SmallDisk::mount("4m");
    let db = disk.dir.path().join("full.db");
    let gw = spawn_sqlite_with(|c| c.database = db.clone()).await;
    gw.create_account(json!({"name": "full", "auth": {"type": "bearer", "token": "full-token-1"}, "paths": {"event_id": "$.id"}})).await;
    let h = [("authorization", "Bearer full-token-1")];
    let pad = "z".repeat(64 * 1024);
    let event = |id: &str| format!("{{\"id\":\"{id}\",\"pad\":\"{pad}\"}}");
    assert_eq!(gw.post_hook("full", &h, event("before")).await.status, 200);
    let rows_before = gw.audit_rows();

    let filler = disk.fill();
    for i in 0..3 {
        let a = gw.post_hook("full", &h, event(&format!("full-{i}"))).await;
        assert_eq!(a.status, 503, "never 2xx on a full disk: {:?}", a.json());
        assert_eq!(a.json()["code"], "storage_unavailable");
        assert!(a.headers.contains_key("retry-after"));
    }
    readyz_is(&gw.client, &gw.public, 503).await;

    std::fs::remove_file(&filler).expect("free the space");
    // No webhook arrives: readiness comes back through the probe alone.
    readyz_is(&gw.client, &gw.public, 200).await;
    assert_eq!(
        gw.audit_rows(),
        rows_before,
        "nothing was stored while full"
    );
    let a = gw.post_hook("full", &h, event("full-0")).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(
        a.json()["status"],
        "accepted",
        "the refused event was not half-stored"
    );
    gw.stop().await;
    drop(disk);
}

#[tokio::test]
async fn a_locked_database_makes_readyz_unready_and_it_recovers_without_traffic() {
    let gw = spawn_sqlite_with(|c| c.storage.busy_timeout_ms = 100).await;
    gw.create_account(json!({"name": "lk", "auth": {"type": "bearer", "token": "lk-token-1"}}))
        .await;
    let h = [("authorization", "Bearer lk-token-1")];
    let locker = rusqlite::Connection::open(&gw.db).expect("open");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    assert_eq!(gw.post_hook("lk", &h, "{}").await.status, 503);
    readyz_is(&gw.client, &gw.public, 503).await;
    locker.execute_batch("ROLLBACK").expect("unlock");
    drop(locker);
    readyz_is(&gw.client, &gw.public, 200).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_write_failing_half_way_leaves_nothing_and_the_retry_is_accepted_once() {
    let gw = spawn_sqlite_with(|_| {}).await;
    gw.create_account(json!({"name": "half", "auth": {"type": "bearer", "token": "half-token-1"}, "paths": {"event_id": "$.id"}})).await;
    let h = [("authorization", "Bearer half-token-1")];
    // The event row is written, then its statement fails (FAIL keeps what it changed):
    // a fault in the middle of one event's write, staged with a trigger from another
    // connection.
    let other = rusqlite::Connection::open(&gw.db).expect("open");
    other
        .execute_batch(
            "CREATE TRIGGER staged_fault AFTER INSERT ON events
             BEGIN SELECT RAISE(FAIL, 'staged fault'); END;",
        )
        .expect("stage the fault");
    let rows_before = gw.audit_rows();
    let a = gw.post_hook("half", &h, r#"{"id":"once"}"#).await;
    assert_eq!(a.status, 503, "{:?}", a.json());
    assert_eq!(gw.audit_rows(), rows_before, "no half-written event row");
    other
        .execute_batch("DROP TRIGGER staged_fault")
        .expect("clear the fault");
    let a = gw.post_hook("half", &h, r#"{"id":"once"}"#).await;
    assert_eq!(a.json()["status"], "accepted");
    let a = gw.post_hook("half", &h, r#"{"id":"once"}"#).await;
    assert_eq!(a.json()["status"], "duplicate");
    let n: i64 = other
        .query_row(
            "SELECT count(*) FROM events WHERE event_id = 'once' AND status = 'accepted'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
    gw.stop().await;
}

/// Files made immutable (`chattr +i`): writes through the gateway's already-open
/// descriptors then fail with EPERM, as on a database that turned read-only under it.
/// Staging it needs root and an ext-family file system; when it cannot be staged the test
/// fails. The flag is cleared on drop, so the temporary directory can be removed.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(paths: Vec<std::path::PathBuf>) -> Immutable {
        for p in &paths {
            let out = std::process::Command::new("chattr")
                .arg("+i")
                .arg(p)
                .output()
                .expect("chattr must exist");
            assert!(
                out.status.success(),
                "cannot make {} read-only (needs root): {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Immutable(paths)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(p)
                .output();
        }
    }
}

#[tokio::test]
async fn a_database_that_turns_read_only_answers_503_and_recovers_when_writable_again() {
    let gw = spawn_sqlite_with(|_| {}).await;
    gw.create_account(json!({"name": "ro", "auth": {"type": "bearer", "token": "ro-token-1"}, "paths": {"event_id": "$.id"}})).await;
    let h = [("authorization", "Bearer ro-token-1")];
    assert_eq!(
        gw.post_hook("ro", &h, r#"{"id":"before"}"#).await.status,
        200
    );
    let wal = std::path::PathBuf::from(format!("{}-wal", gw.db.display()));
    assert!(wal.exists(), "the gateway writes through its WAL");
    let before = gw.audit_rows();
    let frozen = Immutable::set(vec![gw.db.clone(), wal]);
    let a = gw.post_hook("ro", &h, r#"{"id":"during"}"#).await;
    assert_eq!(a.status, 503, "{:?}", a.json());
    assert_eq!(a.json()["code"], "storage_unavailable");
    readyz_is(&gw.client, &gw.public, 503).await;
    drop(frozen);
    // Writable again: /readyz probes the writer and recovers with no webhook needed; the
    // sender's retry is accepted once.
    readyz_is(&gw.client, &gw.public, 200).await;
    let a = gw.post_hook("ro", &h, r#"{"id":"during"}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "accepted");
    assert_eq!(
        gw.audit_rows(),
        before + 1,
        "the refused attempt left no row; the retry one"
    );
    gw.stop().await;
}

#[tokio::test]
async fn writes_waiting_on_a_locked_database_show_in_the_queue_depth_and_all_commit_after() {
    let gw = std::sync::Arc::new(spawn_sqlite_with(|c| c.storage.busy_timeout_ms = 20_000).await);
    gw.create_account(json!({"name": "q", "auth": {"type": "bearer", "token": "q-token-1"}, "paths": {"event_id": "$.id"}}))
        .await;
    let locker = rusqlite::Connection::open(&gw.db).expect("open");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    // The writer takes what is queued into its first group and waits on the lock; from
    // then on every write queues behind it. Send one at a time until one is seen waiting.
    let mut senders = Vec::new();
    for i in 0..200 {
        let gw2 = std::sync::Arc::clone(&gw);
        senders.push(tokio::spawn(async move {
            gw2.post_hook(
                "q",
                &[("authorization", "Bearer q-token-1")],
                format!(r#"{{"id":"q{i}"}}"#),
            )
            .await
            .status
        }));
        if gw.metric("hookgate_writer_queue_depth").await >= 1.0 {
            break;
        }
    }
    assert!(
        gw.metric("hookgate_writer_queue_depth").await >= 1.0,
        "no write ever queued"
    );
    locker.execute_batch("ROLLBACK").expect("unlock");
    drop(locker);
    let senders_sent = senders.len();
    for s in senders {
        assert_eq!(s.await.expect("sender"), 200);
    }
    assert_eq!(gw.metric("hookgate_writer_queue_depth").await, 0.0);
    assert_eq!(gw.events("account=q&limit=500").await.len(), senders_sent);
}

/// Posts `body` to the real process's account `name` with its bearer token; the status.
async fn post_to(client: &HttpClient, p: &crate::process::Proc, name: &str, body: &str) -> u16 {
    let auth = format!("Bearer {name}-token-1");
    client
        .send(
            Method::POST,
            &format!("{}/hooks/{name}", p.public),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_owned(),
        )
        .await
        .expect("reachable")
        .status
        .as_u16()
}

/// The real process's count of log lines whose write failed.
async fn failed_log_writes(client: &HttpClient, p: &crate::process::Proc) -> f64 {
    let text = client
        .admin(
            Method::GET,
            &format!("{}/metrics", p.admin),
            ADMIN_TOKEN,
            None,
        )
        .await
        .expect("admin reachable");
    counter(
        &String::from_utf8_lossy(&text.body),
        "hookgate_log_lines_lost_total{cause=\"write_failed\"}",
    )
}

async fn bearer_account(p: &crate::process::Proc, name: &str) {
    p.create_account(
        &json!({"name": name, "auth": {"type": "bearer", "token": format!("{name}-token-1")},
        "paths": {"event_id": "$.id"}}),
    )
    .await;
}

#[tokio::test]
async fn with_its_stderr_a_closed_pipe_the_real_gateway_heals_from_a_held_lock_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("h.db");
    // A log shipper that died: the read end of the gateway's standard error is closed.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut p = crate::process::start_with_stderr(
        &db,
        &[
            ("HOOKGATE_STORAGE_BUSY_TIMEOUT_MS", "100"),
            ("HOOKGATE_LOG", "debug"),
        ],
        std::process::Stdio::from(writer),
    )
    .await;
    let client = HttpClient::default();
    bearer_account(&p, "pipe").await;
    // Many log lines, each a failed write to a closed pipe.
    for i in 0..200 {
        let body = format!("{{\"id\":\"warm-{i}\"}}");
        assert_eq!(post_to(&client, &p, "pipe", &body).await, 200);
    }
    // Another process holds the write lock past the busy timeout.
    let locker = rusqlite::Connection::open(&db).expect("open");
    locker.execute_batch("BEGIN IMMEDIATE").expect("lock");
    assert_eq!(post_to(&client, &p, "pipe", "{\"id\":\"held\"}").await, 503);
    assert_eq!(
        status_of(&client, &format!("{}/readyz", p.public)).await,
        503
    );
    locker.execute_batch("ROLLBACK").expect("unlock");
    drop(locker);
    // Ready again with no webhook and no restart; the refused event is accepted now.
    assert_eq!(
        status_of(&client, &format!("{}/readyz", p.public)).await,
        200
    );
    assert_eq!(post_to(&client, &p, "pipe", "{\"id\":\"held\"}").await, 200);
    assert!(p.is_running(), "a closed stderr never stops the gateway");
    assert!(
        failed_log_writes(&client, &p).await > 0.0,
        "every log line failed to be written, and was counted"
    );
    p.term(std::time::Duration::from_secs(30)).await;
}

#[tokio::test]
async fn with_its_log_and_database_on_a_full_disk_the_real_gateway_heals_when_space_returns() {
    let disk = SmallDisk::mount("4m");
    let db = disk.dir.path().join("full.db");
    let log = std::fs::File::create(disk.dir.path().join("hookgate.log")).expect("log file");
    let mut p = crate::process::start_with_stderr(
        &db,
        &[("HOOKGATE_LOG", "debug")],
        std::process::Stdio::from(log),
    )
    .await;
    let client = HttpClient::default();
    bearer_account(&p, "disk").await;
    let pad = "z".repeat(64 * 1024);
    let event = |id: &str| format!("{{\"id\":\"{id}\",\"pad\":\"{pad}\"}}");
    assert_eq!(post_to(&client, &p, "disk", &event("before")).await, 200);

    // The disk fills: every log line and every write now fails with ENOSPC.
    let filler = disk.fill();
    for i in 0..3 {
        let status = post_to(&client, &p, "disk", &event(&format!("full-{i}"))).await;
        assert_eq!(status, 503, "never 2xx on a full disk");
    }
    // Readiness asked again and again: each answer is a log line the full disk refuses.
    for _ in 0..50 {
        let ready = status_of(&client, &format!("{}/readyz", p.public)).await;
        assert_eq!(ready, 503);
    }

    std::fs::remove_file(&filler).expect("free the space");
    assert_eq!(
        status_of(&client, &format!("{}/readyz", p.public)).await,
        200
    );
    assert_eq!(post_to(&client, &p, "disk", &event("full-0")).await, 200);
    assert!(p.is_running(), "a full log disk never stops the gateway");
    assert!(
        failed_log_writes(&client, &p).await > 0.0,
        "log lines were lost to the full disk, and counted"
    );
    p.term(std::time::Duration::from_secs(30)).await;
    drop(disk);
}

#[tokio::test]
async fn a_database_file_removed_under_the_real_gateway_stops_it_non_zero_with_a_clear_last_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("gone.db");
    let p = crate::process::start(&db, &[]).await;
    let client = HttpClient::default();
    bearer_account(&p, "gone").await;
    assert_eq!(post_to(&client, &p, "gone", "{\"id\":\"kept\"}").await, 200);
    // The connection could go on writing to the unlinked file, which nobody would read
    // again: every acknowledgement after this would be a lost event.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    assert_eq!(
        post_to(&client, &p, "gone", "{\"id\":\"lost\"}").await,
        503,
        "never acknowledged into a removed file"
    );
    let (status, log) = p.wait_end(std::time::Duration::from_secs(30)).await;
    assert_eq!(
        status.code(),
        Some(1),
        "a non-zero exit for the supervisor: {log}"
    );
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.contains("unable to recover") && last.contains("removed or replaced"),
        "the last line says why: {last:?}\n{log}"
    );
}
