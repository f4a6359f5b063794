//! Crash safety and graceful shutdown of the REAL binary under load: SIGKILL mid-stream
//! then restart on the same database, and SIGTERM while requests flow. Every event that
//! got a 2xx must be in the log exactly once afterwards. Also the binary's start: a bad
//! worker count stops it before it opens anything; a standard output already gone does
//! not stop it; a SIGTERM right after its banner stops it cleanly.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookgate::cli::client::HttpClient;
use hyper::Method;
use serde_json::json;
use tokio::sync::Notify;

use crate::process::{self, Proc};
use crate::support::*;

const SECRET: &str = "crash-test-signing-secret";
const SENDERS: usize = 8;

async fn create_signed_account(p: &Proc) {
    let spec = json!({
        "name": "crash",
        "signature": {
            "algorithm": "hmac-sha256", "header": "X-Signature", "encoding": "hex",
            "prefix": "sha256=", "signed_content": "{timestamp}.{body}",
            "timestamp_header": "X-Timestamp", "tolerance_secs": 300, "secrets": [SECRET],
        },
        "paths": {"event_id": "$.id"}
    });
    p.create_account(&spec).await;
}

/// Sends one signed event and returns the gateway's answer.
async fn post_signed(
    client: &HttpClient,
    public: &str,
    id: &str,
) -> Result<hookgate::cli::client::Answer, hookgate::cli::client::ClientError> {
    let body = format!("{{\"id\":\"{id}\",\"amount\":1}}");
    let ts = now_secs();
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(SECRET.as_bytes(), format!("{ts}.{body}").as_bytes())
    );
    let ts = ts.to_string();
    let headers = [
        ("x-signature", sig.as_str()),
        ("x-timestamp", ts.as_str()),
        ("content-type", "application/json"),
    ];
    client
        .send(
            Method::POST,
            &format!("{public}/hooks/crash"),
            &headers,
            body,
        )
        .await
}

/// Sends one signed event; true when the gateway acknowledged it with a 2xx.
async fn send_signed(client: &HttpClient, public: &str, id: &str) -> Option<bool> {
    post_signed(client, public, id)
        .await
        .ok()
        .map(|a| a.status.is_success())
}

/// Concurrent senders with unique ids; stops when told or when the gateway is gone.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
    progress: Arc<Notify>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(public: &str, round: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..SENDERS)
            .map(|w| {
                let (acked, count, progress, stop) = (
                    Arc::clone(&acked),
                    Arc::clone(&count),
                    Arc::clone(&progress),
                    Arc::clone(&stop),
                );
                let public = public.to_owned();
                tokio::spawn(async move {
                    let client = HttpClient::default();
                    for i in 0..100_000 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let id = format!("r{round}-w{w}-{i}");
                        match send_signed(&client, &public, &id).await {
                            Some(true) => {
                                acked.lock().expect("lock").push(id);
                                count.fetch_add(1, Ordering::Relaxed);
                                progress.notify_waiters();
                            }
                            Some(false) => panic!("a live gateway refused a good event {id}"),
                            None => return,
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            count,
            progress,
            stop,
            tasks,
        }
    }

    /// Waits (bounded) until at least `n` events were acknowledged.
    async fn until_acked(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(60), async {
            while self.count.load(Ordering::Relaxed) < n {
                let notified = self.progress.notified();
                if self.count.load(Ordering::Relaxed) >= n {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
            }
        })
        .await
        .expect("load made progress");
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("sender task");
        }
        self.acked.lock().expect("lock").clone()
    }
}

/// The log's integrity after a stop: SQLite's own check, and every acknowledged event
/// exactly once as `accepted`. This is the one place the hash chain check (issue 5) goes.
fn assert_log_integrity(db: &Path, acked: &[String]) {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok");
    let mut count = conn
        .prepare(
            "SELECT count(*) FROM events WHERE account = 'crash' AND status = 'accepted'
             AND event_id = ?1",
        )
        .expect("prepare");
    for id in acked {
        let n: i64 = count.query_row([id], |r| r.get(0)).expect("count");
        assert_eq!(
            n, 1,
            "acknowledged event {id} must be in the log exactly once"
        );
    }
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT event_id) FROM events
             WHERE account = 'crash' AND status = 'accepted'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts");
    assert_eq!(rows, distinct, "no event id accepted twice");
    drop(count);
    drop(conn);
    // The hash chain survives every kill: no half-written or lost link.
    let reports = hookgate::store::verify_file(db, None).expect("verify the chain");
    for r in &reports {
        assert!(r.ok, "the {} chain breaks after a crash: {r:?}", r.log);
    }
    assert!(reports[0].rows as usize >= acked.len());
}

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let mut all_acked: Vec<String> = Vec::new();
    let p = process::start(&db, &[]).await;
    create_signed_account(&p).await;
    let mut p = Some(p);
    // Kill at different moments: early, mid and later in the stream.
    for (round, kill_after) in [5usize, 40, 120, 1].into_iter().enumerate() {
        let proc = match p.take() {
            Some(proc) => proc,
            None => process::start(&db, &[]).await,
        };
        let load = Load::start(&proc.public, round);
        load.until_acked(kill_after).await;
        proc.kill9().await;
        let acked = load.finish().await;
        assert!(acked.len() >= kill_after);
        all_acked.extend(acked);
        assert_log_integrity(&db, &all_acked);
    }
    // The restarted gateway knows them all: each is now answered as a duplicate.
    let proc = process::start(&db, &[]).await;
    let client = HttpClient::default();
    let sample: HashSet<&String> = all_acked.iter().step_by(17).collect();
    for id in sample {
        let a = post_signed(&client, &proc.public, id)
            .await
            .expect("reachable");
        assert_eq!(a.json()["status"], "duplicate", "{id}");
    }
    proc.term(Duration::from_secs(15)).await;
    assert_log_integrity(&db, &all_acked);
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_requests_and_loses_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("term.db");
    let p = process::start(&db, &[]).await;
    create_signed_account(&p).await;
    let load = Load::start(&p.public, 0);
    load.until_acked(50).await;
    // A request caught half-way through its body when SIGTERM arrives.
    let body = r#"{"id":"in-flight","amount":1}"#;
    let ts = now_secs();
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(SECRET.as_bytes(), format!("{ts}.{body}").as_bytes())
    );
    let addr = p.public.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    // `Expect: 100-continue`: the interim answer shows the gateway has accepted the
    // connection and is reading this request's body, so SIGTERM finds it in flight (not
    // still waiting in the listener's backlog, which closes with the listener).
    let head = format!(
        "POST /hooks/crash HTTP/1.1\r\nhost: x\r\nx-signature: {sig}\r\nx-timestamp: {ts}\r\n\
         content-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    let mut interim = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("read the interim answer");
            assert!(n > 0, "closed before 100 Continue");
            interim.push(byte[0]);
        }
    })
    .await
    .expect("100 Continue");
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    s.write_all(&body.as_bytes()[..10])
        .await
        .expect("write part");
    p.signal_term();
    // Shutdown has begun once the listener stops accepting; the request is still open.
    tokio::time::timeout(Duration::from_secs(15), async {
        while tokio::net::TcpStream::connect(&addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the listener closed after SIGTERM");
    s.write_all(&body.as_bytes()[10..])
        .await
        .expect("write rest");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut response))
        .await
        .expect("answered")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let log = p.wait_exit(Duration::from_secs(20)).await;
    let mut acked = load.finish().await;
    acked.push("in-flight".into());
    assert!(
        log.contains("every acknowledged event is committed"),
        "{log}"
    );
    assert_log_integrity(&db, &acked);
}

#[tokio::test]
async fn a_sigterm_as_soon_as_the_banner_is_out_stops_the_gateway_cleanly() {
    // A supervisor may stop the gateway the moment it says it runs: the signal is caught
    // from before the banner, so each stop is a clean one, never the signal's default
    // action, and leaves the database file whole with an empty WAL.
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("hookgate.db");
        let p = process::start(&db, &[]).await;
        p.term(Duration::from_secs(10)).await;
        let wal = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL holds {wal} bytes after the stop");
    }
}

#[tokio::test]
async fn sigterm_exits_within_the_drain_deadline_even_when_a_client_never_finishes() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("stuck.db");
    // The body timeout is longer than the drain deadline, so only the deadline ends it.
    let config = dir.path().join("hookgate.toml");
    std::fs::write(&config, "[limits]\nbody_timeout_secs = 120\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let p = process::start(&db, &[("HOOKGATE_CONFIG", config.as_str())]).await;
    create_signed_account(&p).await;
    let addr = p.public.trim_start_matches("http://").to_owned();
    let mut stuck = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stuck
        .write_all(b"POST /hooks/crash HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("write");
    // An acknowledged event just before the signal must survive it.
    let client = HttpClient::default();
    assert_eq!(
        send_signed(&client, &p.public, "before-term").await,
        Some(true)
    );
    let started = std::time::Instant::now();
    // Drain deadline (10 s) plus margin for a loaded machine.
    let log = p.term(Duration::from_secs(25)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "the stuck request was given its drain time"
    );
    assert!(log.contains("did not finish within"), "{log}");
    assert!(
        log.contains("every acknowledged event is committed"),
        "{log}"
    );
    assert_log_integrity(&db, &["before-term".to_owned()]);
    drop(stuck);
}

#[tokio::test]
async fn a_bad_worker_count_stops_the_binary_before_it_opens_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("never.db");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("serve")
        .env_clear()
        .env("HOOKGATE_DB", &db)
        .env("HOOKGATE_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("TOKIO_WORKER_THREADS", "0")
        .output()
        .await
        .expect("run the binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TOKIO_WORKER_THREADS must be a whole number above 0"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing is created before the runtime starts");
}

#[tokio::test]
async fn a_gateway_whose_standard_output_is_gone_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = process::start_with_stdout_gone(&dir.path().join("h.db")).await;
    p.create_account(&json!({"name": "quiet", "allow_unverified": true}))
        .await;
    let answer = HttpClient::default()
        .send(
            Method::POST,
            &format!("{}/hooks/quiet", p.public),
            &[("content-type", "application/json")],
            r#"{"id":"q1"}"#,
        )
        .await
        .expect("public reachable");
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let log = p.term(Duration::from_secs(15)).await;
    assert!(!log.contains("panicked"), "{log}");
}

/// A destination holds the first delivery open; the gateway is killed with SIGKILL and
/// started again: every event is delivered at least once, each with its own stable
/// `webhook-id`, the held one again with the same id.
#[tokio::test]
async fn sigkill_mid_delivery_delivers_everything_again_with_the_same_webhook_id() {
    use crate::destinations::{Endpoint, Reply};
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("hookgate.db");
    let env = [
        ("HOOKGATE_EGRESS_ALLOW", r#"["127.0.0.0/8"]"#),
        ("HOOKGATE_DELIVERY_RETRY_BASE_MS", "20"),
    ];
    let mut ep = Endpoint::start().await;
    ep.script(&[Reply::Hang]);
    let p = process::start(&db, &env).await;
    p.create_account(
        &json!({"name": "shop", "allow_unverified": true, "paths": {"event_id": "$.id"}}),
    )
    .await;
    let client = HttpClient::default();
    let made = client
        .admin(
            Method::POST,
            &format!("{}/v1/accounts/shop/destinations", p.admin),
            ADMIN_TOKEN,
            Some(&json!({"name": "backend", "url": ep.url})),
        )
        .await
        .expect("admin");
    assert_eq!(made.status, 201, "{:?}", made.json());
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = client
            .send(
                Method::POST,
                &format!("{}/hooks/shop", p.public),
                &[("content-type", "application/json")],
                format!("{{\"id\":\"k{i}\"}}"),
            )
            .await
            .expect("accepted");
        assert_eq!(a.status, 200);
        ids.push(format!("{}_backend", a.json()["id"].as_str().expect("id")));
    }
    // The first delivery is held open: the gateway is mid-delivery.
    let held = ep.next().await.header("webhook-id").to_owned();
    assert_eq!(held, ids[0]);
    p.kill9().await;
    let p = process::start(&db, &env).await;
    let mut seen = HashSet::new();
    while seen.len() < ids.len() {
        let id = ep.next().await.header("webhook-id").to_owned();
        assert!(ids.contains(&id), "an unknown webhook-id {id}");
        seen.insert(id);
    }
    assert!(seen.contains(&held));
    p.term(Duration::from_secs(10)).await;
}
