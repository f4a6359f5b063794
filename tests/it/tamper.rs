//! History that someone with write access to the database tries to remove without a trace:
//! a copy of a stopped gateway's database is edited with the engine's own tools (rusqlite
//! on SQLite, `psql` on PostgreSQL) and checked with `hookgate audit verify --db`, given
//! what an auditor keeps: the audit public key and a signed head file. Exit codes: 0
//! verified, 1 does not verify, 2 could not check.

use std::path::{Path, PathBuf};

use hookgate::chain::{self, Field, Version};
use hyper::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Fills a gateway: one bearer account and `n` accepted events.
async fn fill(gw: &TestGateway, n: usize) {
    gw.create_account(
        json!({"name": "tam", "auth": {"type": "bearer", "token": "tam-token-1"},
        "paths": {"event_id": "$.id"}}),
    )
    .await;
    for i in 0..n {
        let a = gw
            .post_hook(
                "tam",
                &[("authorization", "Bearer tam-token-1")],
                format!("{{\"id\":\"t{i}\"}}"),
            )
            .await;
        assert_eq!(a.status, 200);
    }
}

/// The head file the gateway signs now (`GET /v1/audit/heads`), as an auditor saves it.
async fn keep_heads(gw: &TestGateway, dir: &Path, name: &str) -> (PathBuf, Value) {
    let a = gw
        .call_as(AUDITOR_TOKEN, Method::GET, "/v1/audit/heads", None)
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let file = dir.join(name);
    std::fs::write(&file, a.body.as_ref()).expect("save the head file");
    (file, a.json())
}

/// A copy of the stopped gateway's database under a new name: the files on SQLite, a
/// database made from it as a template on PostgreSQL. Returns what `--db` takes.
fn copy_db(db: &Path, name: &str) -> String {
    let text = db.to_str().unwrap_or_default();
    if let Some((base, original)) = text.strip_prefix("postgres://").and(text.rsplit_once('/')) {
        let copy = format!("{original}_{name}");
        crate::pg::psql(
            &format!("{base}/postgres"),
            &format!("CREATE DATABASE {copy} TEMPLATE {original}"),
        )
        .unwrap_or_else(|e| panic!("copy the database: {e}"));
        return format!("{base}/{copy}");
    }
    let to = db.with_file_name(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            std::fs::copy(&from, format!("{}{suffix}", to.display())).expect("copy db");
        }
    }
    to.display().to_string()
}

fn is_pg(db: &str) -> bool {
    db.starts_with("postgres://")
}

/// Runs `sql` on a copy with the engine's own client.
fn tamper(db: &str, sql: &str) {
    if is_pg(db) {
        crate::pg::psql(db, sql).unwrap_or_else(|e| panic!("tamper: {e}"));
    } else {
        let c = rusqlite::Connection::open(db).expect("open copy");
        c.execute_batch(sql).expect("tamper");
    }
}

/// One text value a query returns; `HEX(col)` is written in the engine's dialect.
fn one(db: &str, sql: &str) -> String {
    if is_pg(db) {
        let sql = sql.replace("HEX(hash)", "encode(hash, 'hex')");
        return crate::pg::psql(db, &sql).unwrap_or_else(|e| panic!("query: {e}"));
    }
    let sql = sql.replace("HEX(hash)", "lower(hex(hash))");
    let c = rusqlite::Connection::open(db).expect("open copy");
    c.query_row(&sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Integer(n) => n.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap_or_else(|e| panic!("query: {e}"))
}

/// A blob literal in the engine's dialect.
fn blob(db: &str, bytes: &[u8]) -> String {
    if is_pg(db) {
        format!("'\\x{}'::bytea", hex::encode(bytes))
    } else {
        format!("x'{}'", hex::encode(bytes))
    }
}

/// Appends a change-log row chained from the last one, as someone who knows the chain's
/// encoding (but not the audit key) can.
fn append_change(db: &str, action: &str, detail: &str) {
    let seq: i64 = one(db, "SELECT max(seq) FROM changes")
        .parse()
        .expect("seq");
    let prev = hex::decode(one(
        db,
        &format!("SELECT HEX(hash) FROM changes WHERE seq = {seq}"),
    ))
    .expect("hex");
    let prev: chain::Hash = prev.try_into().expect("32 bytes");
    let (next, at, actor) = (seq + 1, 1_000_i64, "mallory");
    let fields = [
        Field::Int(next),
        Field::Int(at),
        Field::from(actor),
        Field::from(action),
        Field::Null,
        Field::from(detail),
    ];
    let hash = chain::row_hash(Version::V1, &prev, &fields);
    tamper(
        db,
        &format!(
            "INSERT INTO changes (seq, at, actor, action, account, detail, hash)
             VALUES ({next}, {at}, '{actor}', '{action}', NULL, '{detail}', {})",
            blob(db, &hash)
        ),
    );
}

/// Runs `hookgate audit verify --db DB ARGS...`: the exit code and the report.
async fn verify(db: &str, args: &[&str]) -> (i32, Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .env_remove("HOOKGATE_SECRET_KEY")
        .args(["audit", "verify", "--db", db])
        .args(args)
        .output()
        .await
        .expect("run the CLI");
    (
        out.status.code().unwrap_or(-1),
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
async fn removed_or_replaced_history_fails_verification_given_the_public_key_or_a_kept_head() {
    let gw = spawn_gateway().await;
    let keep = tempfile::tempdir().expect("auditor's directory");
    fill(&gw, 12).await;
    let (heads, kept) = keep_heads(&gw, keep.path(), "heads.json").await;
    let key = kept["public_key"].as_str().unwrap_or("").to_owned();
    assert_eq!(key.len(), 64, "{kept}");
    // More history after the head was kept: a log that grew still passes through it.
    gw.create_account(
        json!({"name": "later", "auth": {"type": "bearer", "token": "later-token-1"}}),
    )
    .await;
    let db = gw.db.clone();
    let _dir = gw.stop().await;
    let original = copy_db(&db, "original");

    let (code, report) = verify(&original, &["--public-key", &key, "--heads"]).await;
    assert_eq!(code, 2, "--heads needs its file: {report}");
    let heads_arg = heads.display().to_string();
    let (code, report) = verify(&original, &["--heads", &heads_arg]).await;
    assert_eq!(
        code, 0,
        "the untouched log verifies against its kept head: {report}"
    );
    assert_eq!(report["signatures_checked"], true);

    // The oldest events removed and a matching checkpoint forged, with a prune row chained
    // into the change log as the gateway would write it: only the signature is missing.
    let forged = copy_db(&db, "forged");
    let hash4 = one(&forged, "SELECT HEX(hash) FROM events WHERE seq = 4");
    tamper(
        &forged,
        "INSERT INTO chain_checkpoints (log, through, pruned, hash, at)
         SELECT 'events', seq, seq, hash, 0 FROM events WHERE seq = 4;
         DELETE FROM events WHERE seq <= 4;",
    );
    append_change(
        &forged,
        "audit.pruned",
        &format!(r#"{{"log":"events","pruned":4,"through_seq":4,"checkpoint_hash":"{hash4}"}}"#),
    );
    let (code, report) = verify(&forged, &[]).await;
    assert_eq!(
        code, 0,
        "without the key the forgery is consistent: {report}"
    );
    assert_eq!(report["signatures_checked"], false);
    let (code, report) = verify(&forged, &["--public-key", &key]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(log(&report, "events")["problem"], "unanchored", "{report}");

    // The same removal without a prune in the change log fails even without the key.
    let unrecorded = copy_db(&db, "unrecorded");
    tamper(
        &unrecorded,
        "INSERT INTO chain_checkpoints (log, through, pruned, hash, at)
         SELECT 'events', seq, seq, hash, 0 FROM events WHERE seq = 4;
         DELETE FROM events WHERE seq <= 4;",
    );
    let (code, report) = verify(&unrecorded, &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(log(&report, "events")["problem"], "unanchored");

    // The whole change log deleted.
    let emptied = copy_db(&db, "emptied");
    tamper(&emptied, "DELETE FROM changes");
    let (code, report) = verify(&emptied, &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(log(&report, "changes")["problem"], "unanchored", "{report}");

    // The whole change log replaced by one anchored with another key.
    let (code, report) = verify(&original, &["--public-key", &"ab".repeat(32)]).await;
    assert!(
        code == 1 || code == 2,
        "a stranger's key never verifies: {report}"
    );

    // The newest change rows deleted, back to before the kept head.
    let kept_changes = kept["heads"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["log"] == "changes"))
        .and_then(|h| h["seq"].as_i64())
        .expect("changes head");
    let cut = copy_db(&db, "cut");
    tamper(
        &cut,
        &format!("DELETE FROM changes WHERE seq >= {kept_changes}"),
    );
    let (code, report) = verify(&cut, &["--public-key", &key]).await;
    assert_eq!(code, 0, "a shorter chain is still a chain: {report}");
    let (code, report) = verify(&cut, &["--heads", &heads_arg]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        log(&report, "changes")["expected_head_found"],
        false,
        "{report}"
    );

    // The newest events deleted, back to before the kept head.
    let cut_events = copy_db(&db, "cutevents");
    tamper(&cut_events, "DELETE FROM events WHERE seq >= 10");
    let (code, report) = verify(&cut_events, &["--heads", &heads_arg]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        log(&report, "events")["expected_head_found"],
        false,
        "{report}"
    );

    // A head file edited by someone else cannot be used: nothing is concluded.
    let edited = keep.path().join("edited.json");
    let text = std::fs::read_to_string(&heads).expect("read heads");
    let kept_events = kept["heads"][0]["seq"].as_i64().unwrap_or(0);
    std::fs::write(
        &edited,
        text.replace(
            &format!("\"seq\": {kept_events}"),
            &format!("\"seq\": {}", kept_events - 1),
        )
        .replace(
            &format!("\"seq\":{kept_events}"),
            &format!("\"seq\":{}", kept_events - 1),
        ),
    )
    .expect("write");
    let (code, _) = verify(&original, &["--heads", &edited.display().to_string()]).await;
    assert_eq!(code, 2, "an altered head file is no basis for a verdict");
}

#[tokio::test]
async fn a_legitimate_prune_is_signed_recorded_and_verifies_against_older_and_newer_heads() {
    let gw = spawn_gateway().await;
    let keep = tempfile::tempdir().expect("auditor's directory");
    fill(&gw, 6).await;
    let (before_prune, kept) = keep_heads(&gw, keep.path(), "before.json").await;
    let key = kept["public_key"].as_str().unwrap_or("").to_owned();
    let cut = gw.events("limit=1").await[0]["received_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    for i in 0..3 {
        gw.post_hook(
            "tam",
            &[("authorization", "Bearer tam-token-1")],
            format!("{{\"id\":\"new{i}\"}}"),
        )
        .await;
    }
    let first_new = gw.events("limit=3").await[2]["received_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(first_new > cut);
    let pruned = gw
        .admin_call(
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": first_new})),
        )
        .await;
    assert_eq!(pruned.json()["pruned"], 6, "{:?}", pruned.json());
    // The prune is in the change log with the range and the checkpoint's hash.
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=audit.pruned", None)
        .await
        .json();
    let detail = &changes["changes"][0]["detail"];
    assert_eq!(detail["log"], "events", "{changes}");
    assert_eq!(detail["from_seq"], 1);
    assert_eq!(detail["through_seq"], 6);
    assert_eq!(detail["checkpoint_hash"].as_str().map(str::len), Some(64));
    let (after_prune, _) = keep_heads(&gw, keep.path(), "after.json").await;
    let online = gw
        .call_as(AUDITOR_TOKEN, Method::GET, "/v1/audit/verify", None)
        .await
        .json();
    assert_eq!(online["ok"], true, "{online}");
    let db = gw.db.clone();
    let _dir = gw.stop().await;
    let copy = copy_db(&db, "pruned");
    for heads in [&before_prune, &after_prune] {
        let (code, report) = verify(&copy, &["--heads", &heads.display().to_string()]).await;
        assert_eq!(code, 0, "{}: {report}", heads.display());
    }
    let (code, report) = verify(&copy, &["--public-key", &key]).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(log(&report, "events")["pruned"], 6);

    // The prune's change row deleted and the change log re-chained is out of reach here;
    // moving the checkpoint on by itself is caught by the prune row it no longer matches.
    let moved = copy_db(&db, "moved");
    tamper(
        &moved,
        "UPDATE chain_checkpoints SET through = 7, pruned = 7,
            hash = (SELECT hash FROM events WHERE seq = 7) WHERE log = 'events';
         DELETE FROM events WHERE seq = 7;",
    );
    let (code, report) = verify(&moved, &[]).await;
    assert_eq!(code, 1, "{report}");
    assert_eq!(log(&report, "events")["problem"], "unanchored");
}

#[tokio::test]
async fn the_gateway_publishes_its_signed_heads_to_a_file_an_auditor_can_verify_with() {
    let keep = tempfile::tempdir().expect("auditor's directory");
    let file = keep.path().join("published.json");
    let gw = spawn_with(|c| c.audit.heads_file = Some(file.clone())).await;
    fill(&gw, 2).await;
    let db = gw.db.clone();
    let online = gw
        .call_as(AUDITOR_TOKEN, Method::GET, "/v1/audit/heads", None)
        .await
        .json();
    // The gateway publishes at start, every interval, and once more as it stops.
    let _dir = gw.stop().await;
    let published: Value = serde_json::from_str(
        &std::fs::read_to_string(&file).expect("the heads file was published"),
    )
    .expect("JSON");
    assert_eq!(published["public_key"], online["public_key"]);
    assert_eq!(published["heads"].as_array().map(Vec::len), Some(2));
    let copy = copy_db(&db, "published");
    let (code, report) = verify(&copy, &["--heads", &file.display().to_string()]).await;
    assert_eq!(code, 0, "{report}");
}
