//! The audit trail: hash chains that catch edited, removed and reordered rows (online and
//! offline), pruning that keeps the rest verifiable, roles, streamed export, redaction.

use std::path::{Path, PathBuf};

use hyper::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Fills a gateway with a mix of accepted, duplicate and rejected events.
async fn fill(gw: &TestGateway, n: usize) {
    gw.create_account(
        json!({"name": "aud", "auth": {"type": "bearer", "token": "aud-token-1"},
                             "paths": {"event_id": "$.id", "sender": "$.who"}}),
    )
    .await;
    for i in 0..n {
        let auth = if i % 6 == 5 {
            "Bearer nope"
        } else {
            "Bearer aud-token-1"
        };
        let id = if i % 4 == 3 { 0 } else { i };
        gw.post_hook(
            "aud",
            &[("authorization", auth)],
            format!("{{\"id\":\"{id}\",\"who\":\"c{i}\"}}"),
        )
        .await;
    }
}

/// Copies a stopped gateway's database (with any WAL) to a new file.
fn copy_db(db: &Path, name: &str) -> PathBuf {
    let to = db.with_file_name(name);
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            std::fs::copy(&from, format!("{}{suffix}", to.display())).expect("copy db");
        }
    }
    to
}

fn tamper(db: &Path, sql: &str) {
    let c = rusqlite::Connection::open(db).expect("open copy");
    c.execute_batch(sql).expect("tamper");
}

/// Runs `hookgate audit verify --db FILE` and returns (success, parsed output).
async fn verify_offline(db: &Path, extra: &[&str]) -> (bool, Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["audit", "verify", "--db"])
        .arg(db)
        .args(extra)
        .output()
        .await
        .expect("run the CLI");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

fn log<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["logs"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["log"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn the_chain_verifies_and_any_edit_removal_or_swap_is_found_at_its_row() {
    let gw = spawn_sqlite_with(|_| {}).await;
    fill(&gw, 20).await;
    let online = gw
        .call_as(AUDITOR_TOKEN, Method::GET, "/v1/audit/verify", None)
        .await;
    assert_eq!(online.status, 200);
    let online = online.json();
    assert_eq!(online["ok"], true, "{online}");
    assert_eq!(log(&online, "events")["rows"], 20);
    let head = log(&online, "events")["head"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(head.len(), 64);
    let db = gw.db.clone();
    let _dir = gw.stop().await;

    let (ok, report) = verify_offline(&db, &["--expect-head", &head]).await;
    assert!(ok, "{report}");
    assert_eq!(log(&report, "events")["head"], head.as_str());
    assert!(log(&report, "changes")["rows"].as_u64().unwrap_or(0) >= 1);

    let cases: [(&str, &str, &str, i64, &str); 4] = [
        ("edited.db", "UPDATE events SET sender = 'mallory' WHERE seq = 7", "events", 7, "edited"),
        ("removed.db", "DELETE FROM events WHERE seq = 9", "events", 10, "removed"),
        (
            "swapped.db",
            "CREATE TEMP TABLE t AS SELECT * FROM events WHERE seq IN (3, 5);
             UPDATE events SET (received_at, account, status, reason, detail, event_id, event_type, sender, source, params, method, path, query, remote_addr, headers, content_type, body, body_size, body_sha256, body_truncated, handle_micros, hash)
               = (SELECT received_at, account, status, reason, detail, event_id, event_type, sender, source, params, method, path, query, remote_addr, headers, content_type, body, body_size, body_sha256, body_truncated, handle_micros, hash FROM t WHERE t.seq = 8 - events.seq)
               WHERE seq IN (3, 5);",
            "events", 3, "reordered",
        ),
        ("change.db", "UPDATE changes SET actor = 'somebody else' WHERE seq = 1", "changes", 1, "edited"),
    ];
    for (file, sql, which, at, problem) in cases {
        let copy = copy_db(&db, file);
        tamper(&copy, sql);
        let (ok, report) = verify_offline(&copy, &[]).await;
        assert!(!ok, "{file}: tampering must fail verification");
        let r = log(&report, which);
        assert_eq!(r["ok"], false, "{file}: {report}");
        assert_eq!(r["broken_at"], at, "{file}: {report}");
        assert_eq!(r["problem"], problem, "{file}: {report}");
    }

    // Cutting off the newest rows leaves a valid chain, but not one through the noted head.
    let copy = copy_db(&db, "truncated.db");
    tamper(&copy, "DELETE FROM events WHERE seq > 18");
    assert!(
        verify_offline(&copy, &[]).await.0,
        "a shorter chain is still a chain"
    );
    let (ok, report) = verify_offline(&copy, &["--expect-head", &head]).await;
    assert!(!ok);
    assert_eq!(log(&report, "events")["expected_head_found"], false);
}

#[tokio::test]
async fn pruning_leaves_a_checkpoint_and_the_rest_still_verifies() {
    let gw = spawn_sqlite_with(|_| {}).await;
    fill(&gw, 12).await;
    let newest_old = gw.events("limit=1").await[0]["received_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    for i in 0..8 {
        gw.post_hook(
            "aud",
            &[("authorization", "Bearer aud-token-1")],
            format!("{{\"id\":\"new{i}\"}}"),
        )
        .await;
    }
    let first_new = gw.events("limit=8").await[7]["received_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(first_new > newest_old);
    let pruned = gw
        .admin_call(
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": first_new})),
        )
        .await;
    assert_eq!(pruned.status, 200, "{:?}", pruned.json());
    assert_eq!(pruned.json()["pruned"], 12);
    assert_eq!(gw.events("limit=100").await.len(), 8);
    let report = gw
        .admin_call(Method::GET, "/v1/audit/verify", None)
        .await
        .json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(log(&report, "events")["pruned"], 12);
    assert_eq!(log(&report, "events")["rows"], 8);
    // Pruning again with the same cut-off finds nothing and records nothing.
    assert_eq!(
        gw.admin_call(
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": first_new}))
        )
        .await
        .json()["pruned"],
        0
    );
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=audit.pruned", None)
        .await
        .json();
    assert_eq!(changes["changes"].as_array().map(Vec::len), Some(1));
    // New events after the prune keep chaining from the checkpoint, across a restart.
    let gw = gw.restart().await;
    gw.post_hook(
        "aud",
        &[("authorization", "Bearer aud-token-1")],
        "{\"id\":\"after\"}",
    )
    .await;
    let db = gw.db.clone();
    let _dir = gw.stop().await;
    let (ok, report) = verify_offline(&db, &[]).await;
    assert!(ok, "{report}");
    let copy = copy_db(&db, "pruned-then-edited.db");
    tamper(
        &copy,
        "UPDATE events SET body = x'00' WHERE seq = (SELECT MIN(seq) FROM events)",
    );
    let (ok, report) = verify_offline(&copy, &[]).await;
    assert!(!ok);
    assert_eq!(log(&report, "events")["broken_at"], 13, "{report}");
}

#[tokio::test]
async fn the_auditor_reads_everything_it_may_and_nothing_else() {
    let gw = spawn_gateway().await;
    fill(&gw, 3).await;
    let reads = [
        "/v1/events",
        "/v1/events/evt_1",
        "/v1/events/export",
        "/v1/events/export?format=csv",
        "/v1/changes",
        "/v1/audit/verify",
    ];
    for path in reads {
        let a = gw.call_as(AUDITOR_TOKEN, Method::GET, path, None).await;
        assert_eq!(a.status, 200, "auditor GET {path}");
    }
    let denied: [(Method, &str, Option<Value>); 17] = [
        (Method::GET, "/v1/accounts", None),
        (
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "x", "allow_unverified": true})),
        ),
        (Method::GET, "/v1/accounts/aud", None),
        (
            Method::PATCH,
            "/v1/accounts/aud",
            Some(json!({"active": false})),
        ),
        (Method::DELETE, "/v1/accounts/aud", None),
        (Method::POST, "/v1/accounts/aud/activate", None),
        (Method::POST, "/v1/accounts/aud/deactivate", None),
        (
            Method::POST,
            "/v1/accounts/aud/listening",
            Some(json!({"listening": true})),
        ),
        (
            Method::POST,
            "/v1/accounts/aud/secrets",
            Some(json!({"secret": "s"})),
        ),
        (Method::DELETE, "/v1/accounts/aud/secrets/0", None),
        (
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": "2000-01-01T00:00:00Z"})),
        ),
        (Method::GET, "/v1/tokens", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "n", "role": "admin"})),
        ),
        (Method::DELETE, "/v1/tokens/n", None),
        (Method::GET, "/v1/providers", None),
        (Method::GET, "/v1/providers/stripe", None),
        (Method::GET, "/metrics", None),
    ];
    for (method, path, body) in denied {
        let a = gw.call_as(AUDITOR_TOKEN, method.clone(), path, body).await;
        assert_eq!(a.status, 403, "auditor {method} {path}");
    }
    // Nothing the auditor tried changed anything.
    assert_eq!(
        gw.admin_call(Method::GET, "/v1/accounts/aud", None)
            .await
            .json()["active"],
        true
    );
    gw.stop().await;
}

#[tokio::test]
async fn named_tokens_appear_in_the_change_log_and_can_be_revoked() {
    let gw = spawn_gateway().await;
    let made = gw
        .admin_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "ops-amina", "role": "admin"})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let token = made.json()["token"].as_str().unwrap_or("").to_owned();
    let auditor = gw
        .admin_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "auditor-juma", "role": "auditor"})),
        )
        .await
        .json();
    let auditor_token = auditor["token"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        gw.call_as(&auditor_token, Method::GET, "/v1/events", None)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.call_as(&auditor_token, Method::GET, "/v1/accounts", None)
            .await
            .status,
        403
    );

    let a = gw
        .call_as(
            &token,
            Method::POST,
            "/v1/accounts",
            Some(json!({"name": "by_ops", "allow_unverified": true})),
        )
        .await;
    assert_eq!(a.status, 201);
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?account=by_ops", None)
        .await
        .json();
    assert_eq!(changes["changes"][0]["actor"], "ops-amina (admin)");
    let listed = gw.admin_call(Method::GET, "/v1/tokens", None).await;
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    assert!(
        text.contains("ops-amina") && !text.contains(&token),
        "{text}"
    );
    assert_eq!(
        gw.admin_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "ops-amina", "role": "admin"}))
        )
        .await
        .status,
        409
    );

    assert_eq!(
        gw.admin_call(Method::DELETE, "/v1/tokens/ops-amina", None)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.call_as(&token, Method::GET, "/v1/events", None)
            .await
            .status,
        401
    );
    // Tokens survive a restart (as hashes), revocations too.
    let gw = gw.restart().await;
    assert_eq!(
        gw.call_as(&auditor_token, Method::GET, "/v1/events", None)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.call_as(&token, Method::GET, "/v1/events", None)
            .await
            .status,
        401
    );
    let actions: Vec<String> = gw
        .admin_call(Method::GET, "/v1/changes?action=token.revoked", None)
        .await
        .json()["changes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["detail"]["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(actions, ["ops-amina"]);
    gw.stop().await;
}

#[tokio::test]
async fn export_streams_every_matching_row_in_both_formats_and_the_cli_saves_it() {
    let gw = spawn_gateway().await;
    fill(&gw, 30).await;
    let listed = gw.events("limit=1000").await;
    let ndjson = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::GET,
            "/v1/events/export?format=ndjson",
            None,
        )
        .await;
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    let rows: Vec<Value> = String::from_utf8_lossy(&ndjson.body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect();
    assert_eq!(rows.len(), 30);
    let mut expected: Vec<Value> = listed.iter().map(|e| e["id"].clone()).collect();
    expected.reverse();
    assert_eq!(
        rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        expected,
        "oldest first, every row"
    );
    assert!(
        rows.iter()
            .all(|r| r["hash"].as_str().is_some_and(|h| h.len() == 64) && r.get("body").is_none())
    );

    let rejected = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::GET,
            "/v1/events/export?format=csv&status=rejected&include_body=true",
            None,
        )
        .await;
    let text = String::from_utf8_lossy(&rejected.body).into_owned();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("id,received_at,account,status")
                && h.ends_with("hash,body,body_encoding"))
    );
    assert_eq!(
        lines.count(),
        listed.iter().filter(|e| e["status"] == "rejected").count()
    );
    assert_eq!(
        gw.admin_call(Method::GET, "/v1/events/export?format=xml", None)
            .await
            .status,
        400
    );

    let out = gw.scratch("export.ndjson");
    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["events", "export", "--format", "ndjson", "--output"])
        .arg(&out)
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", AUDITOR_TOKEN)
        .output()
        .await
        .expect("run the CLI");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(
        std::fs::read(&out).unwrap_or_default(),
        ndjson.body.to_vec()
    );
    gw.stop().await;
}

#[tokio::test]
async fn redacted_values_appear_in_no_answer_no_export_and_not_in_the_database_file() {
    let gw = spawn_sqlite_with(|c| c.redact_headers = vec!["X-Custom-Secret".into()]).await;
    gw.create_account(json!({"name": "red", "auth": {"type": "api_key", "header": "X-Shop-Key", "value": "shopkey-AAAA1111"},
                             "signature": {"header": "X-Sig", "secrets": ["sigsecret-BBBB2222"]}})).await;
    let body = r#"{"ok":true}"#;
    let sig = hmac_sha256_hex(b"sigsecret-BBBB2222", body.as_bytes());
    let leaked = [
        "shopkey-AAAA1111",
        sig.as_str(),
        "bearer-CCCC3333",
        "cookie-DDDD4444",
        "custom-EEEE5555",
    ];
    let headers = [
        ("x-shop-key", leaked[0]),
        ("x-sig", leaked[1]),
        ("authorization", "Bearer bearer-CCCC3333"),
        ("cookie", "session=cookie-DDDD4444"),
        ("x-custom-secret", leaked[4]),
    ];
    let a = gw.post_hook("red", &headers, body).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let bad = gw
        .post_hook(
            "red",
            &[
                ("x-shop-key", leaked[0]),
                ("x-sig", "00"),
                ("cookie", "session=cookie-DDDD4444"),
            ],
            body,
        )
        .await;
    assert_eq!(bad.status, 401);
    let mut seen = String::new();
    for path in [
        "/v1/events",
        "/v1/events/evt_1",
        "/v1/events/evt_2",
        "/v1/events/export?include_body=true",
        "/v1/events/export?format=csv&include_body=true",
        "/v1/accounts/red",
        "/v1/changes",
    ] {
        seen.push_str(&String::from_utf8_lossy(
            &gw.admin_call(Method::GET, path, None).await.body,
        ));
    }
    let db = gw.db.clone();
    let _dir = gw.stop().await;
    let mut file = Vec::new();
    for suffix in ["", "-wal"] {
        file.extend(std::fs::read(format!("{}{suffix}", db.display())).unwrap_or_default());
    }
    for value in &leaked[1..] {
        assert!(!seen.contains(value), "{value} in an answer");
        assert!(
            !file.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value} in the database file"
        );
    }
    // The authenticate key itself is redacted in every answer (it must stay in the
    // accounts table to be checked; issue 7 seals it at rest).
    assert!(!seen.contains(leaked[0]));
}

#[tokio::test]
async fn an_account_may_keep_only_the_hash_of_bodies() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "hashonly", "store_body": false, "auth": {"type": "bearer", "token": "h-token-1"},
                             "paths": {"sender": "$.who"}})).await;
    let body = r#"{"who":"amina","card":"4111111111111111"}"#;
    let a = gw
        .post_hook("hashonly", &[("authorization", "Bearer h-token-1")], body)
        .await;
    let e = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(e["sender"], "amina", "extraction still sees the body");
    assert_eq!(e["body"], "");
    assert_eq!(e["body_size"], body.len());
    use sha2::Digest;
    assert_eq!(
        e["body_sha256"],
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    );
    assert_eq!(
        gw.admin_call(Method::GET, "/v1/accounts/hashonly", None)
            .await
            .json()["store_body"],
        false
    );
    // The chain binds the empty body stored, not the one received.
    let verify = gw.admin_call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verify.json()["ok"], true, "{}", verify.json());
    gw.stop().await;
}

#[tokio::test]
async fn pagination_under_concurrent_inserts_neither_skips_nor_repeats() {
    let gw = spawn_gateway().await;
    fill(&gw, 40).await;
    // An inserter that reports each committed insert; paging waits for one between pages,
    // so new rows certainly arrive while the cursor walks.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1024);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let client = gw.client.clone();
    let url = format!("{}/hooks/aud", gw.public);
    let inserter = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop_rx => return,
                r = client.send(Method::POST, &url, &[("authorization", "Bearer aud-token-1")], "{\"who\":\"late\"}") => {
                    if r.is_ok_and(|a| a.status == 200) && done_tx.send(()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let seq = |e: &Value| {
        e["id"]
            .as_str()
            .and_then(|s| s.strip_prefix("evt_"))
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let mut page = gw
        .admin_call(Method::GET, "/v1/events?limit=7", None)
        .await
        .json();
    let top = page["events"]
        .as_array()
        .and_then(|a| a.first())
        .map(seq)
        .unwrap_or(0);
    let mut seen: Vec<i64> = Vec::new();
    let mut raced = 0;
    loop {
        seen.extend(
            page["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(seq),
        );
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else {
            break;
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), done_rx.recv())
            .await
            .expect("an insert within 10s");
        raced += 1;
        page = gw
            .admin_call(
                Method::GET,
                &format!("/v1/events?limit=7&cursor={cursor}"),
                None,
            )
            .await
            .json();
    }
    let _ = stop_tx.send(());
    inserter.await.expect("inserter task");
    assert!(raced >= 5, "inserts committed between pages: {raced}");
    let expected: Vec<i64> = (1..=top).rev().collect();
    assert_eq!(
        seen, expected,
        "every row up to the first page's newest, once, in order"
    );
    assert!(gw.events("limit=1").await.first().map(seq).unwrap_or(0) > top);
    gw.stop().await;
}

#[tokio::test]
async fn the_retention_loop_prunes_what_is_older_than_the_configured_age_on_its_own() {
    use hookgate::clock::Clock;

    let now = hookgate::clock::now_micros();
    let day = 86_400_000_000;
    let clock = Clock::fixed(now - 3 * day);
    let gw = spawn_with_clock_and(clock.clone(), |c| {
        c.retention.max_age_days = 1;
        c.retention.interval_secs = 1;
    })
    .await;
    gw.create_account(
        json!({"name": "old", "auth": {"type": "bearer", "token": "old-token-1"},
               "paths": {"event_id": "$.id"}}),
    )
    .await;
    let post = |id: &'static str| {
        gw.post_hook(
            "old",
            &[("authorization", "Bearer old-token-1")],
            format!("{{\"id\":\"{id}\"}}"),
        )
    };
    for id in ["a", "b", "c"] {
        assert_eq!(post(id).await.status, 200);
    }
    // Events received now, and one received 20 hours ago: younger than a day, kept.
    clock.set(now - 20 * 3_600_000_000);
    assert_eq!(post("d").await.status, 200);
    clock.set(now);
    assert_eq!(post("e").await.status, 200);

    // Nothing is asked of the gateway: its retention loop runs every second.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        tick.tick().await;
        if gw.audit_rows() == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retention loop did not prune: {} rows",
            gw.audit_rows()
        );
    }
    let kept: Vec<String> = gw
        .events("account=old")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kept, ["e", "d"]);
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=audit.pruned", None)
        .await
        .json();
    let pruned = changes["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(pruned.len(), 1, "{changes}");
    assert_eq!(pruned[0]["actor"], "hookgate:retention", "{changes}");
    let report = gw
        .admin_call(Method::GET, "/v1/audit/verify", None)
        .await
        .json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(log(&report, "events")["pruned"], 3, "{report}");
    gw.stop().await;
}
