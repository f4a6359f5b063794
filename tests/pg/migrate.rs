//! `hookgate migrate`: a SQLite log with every kind of row moved into an empty PostgreSQL
//! database, its chains verifying with the same heads, and a node on the new database
//! serving the old accounts with their history; a target that holds a log is refused.

use std::path::Path;
use std::time::Duration;

use hookgate::cli::client::HttpClient;
use hyper::Method;
use serde_json::{Value, json};

use crate::pg;
use crate::process;
use crate::support::*;

async fn hookgate(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_remove("HOOKGATE_SECRET_KEY")
        .output()
        .await
        .expect("run hookgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn heads(db: &str) -> Value {
    let (ok, out, err) = hookgate(&["audit", "verify", "--db", db]).await;
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    json!([
        [
            v["logs"][0]["rows"],
            v["logs"][0]["head"],
            v["logs"][0]["pruned"]
        ],
        [v["logs"][1]["rows"], v["logs"][1]["head"]]
    ])
}

#[tokio::test]
async fn a_sqlite_log_moves_into_postgres_with_its_chains_and_history() {
    // A log with accepted, duplicate and rejected rows, a pruned prefix, a listener's
    // status message (a delivery to the chat destination) and its attempt, a named token
    // and several accounts. The chat connector refuses connections: attempts are made.
    let gw = spawn_sqlite_with(|c| {
        c.chat.url = Some("http://127.0.0.1:9/messages".into());
        c.chat.retry_base_ms = 60_000;
        c.chat.retry_max_ms = 60_000;
    })
    .await;
    gw.create_account(json!({
        "name": "shop", "auth": {"type": "bearer", "token": "shop-token-1"},
        "paths": {"event_id": "$.id", "sender": "$.phone"}
    }))
    .await;
    let h = [("authorization", "Bearer shop-token-1")];
    for i in 0..30 {
        let a = gw
            .post_hook(
                "shop",
                &h,
                format!(r#"{{"id":"m{i}","phone":"+2557{i:08}"}}"#),
            )
            .await;
        assert_eq!(a.status, 200);
    }
    assert_eq!(
        gw.post_hook("shop", &h, r#"{"id":"m3"}"#).await.json()["status"],
        "duplicate"
    );
    assert_eq!(gw.post_hook("shop", &[], "{}").await.status, 401);
    // Pruned up to the sixth oldest row: five rows go, leaving a checkpoint.
    let oldest = gw.events("limit=100").await;
    let sixth = oldest[oldest.len() - 6]["received_at"].clone();
    let pruned = gw
        .admin_call(
            Method::POST,
            "/v1/audit/prune",
            Some(json!({"before": sixth})),
        )
        .await;
    assert!(pruned.status.is_success(), "{:?}", pruned.json());
    let token = gw
        .admin_call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"name": "auditor2", "role": "auditor"})),
        )
        .await;
    assert_eq!(token.status, 201);
    // A destination (its signing key sealed with the file's key) and a delivery to it.
    let made = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/shop/destinations",
            Some(json!({"name": "backend", "url": "https://hooks.example.com/in"})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let listener = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/shop",
            Some(json!({"forward": {"send_to_user": true, "template": "Paid {{event_id}}"}})),
        )
        .await;
    assert_eq!(listener.status, 200, "{:?}", listener.json());
    let on = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/shop/listening",
            Some(json!({"listening": true})),
        )
        .await;
    assert_eq!(on.status, 200, "{:?}", on.json());
    let queued = gw
        .post_hook("shop", &h, r#"{"id":"to-backend","phone":"+1"}"#)
        .await;
    let queued = queued.json()["id"].as_str().expect("id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.event(&queued).await["forward_status"] != "retrying" {
        assert!(
            std::time::Instant::now() < deadline,
            "the message was tried"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let shown = gw.event(&queued).await;
    assert_eq!(
        shown["deliveries"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    assert_eq!(shown["forward_attempts"].as_array().map(Vec::len), Some(1));
    let db = gw.db.clone();
    let dir = gw.stop().await;
    let source = db.to_str().expect("path");
    let before = heads(source).await;

    let url = pg::server().fresh_database();
    let (ok, out, err) = hookgate(&["migrate", "--from", source, "--to", &url]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("events: 28 rows"), "{out}");
    assert!(out.contains("destinations: 1 rows"), "{out}");
    assert!(out.contains("deliveries: 2 rows"), "{out}");
    assert!(out.contains("HOOKGATE_SECRET_KEY"), "{out}");
    assert_eq!(
        heads(&url).await,
        before,
        "the same rows and heads after the move"
    );

    // A node on the new database, with the old key, serves the old account and its dedupe.
    let key = std::fs::read_to_string(hookgate::seal::key_file_for(&db)).expect("key file");
    let node = process::start(Path::new(&url), &[("HOOKGATE_SECRET_KEY", key.trim())]).await;
    let client = HttpClient::default();
    let again = client
        .send(
            Method::POST,
            &format!("{}/hooks/shop", node.public),
            &h,
            r#"{"id":"m20"}"#,
        )
        .await
        .expect("answered");
    assert_eq!(again.json()["status"], "duplicate", "{:?}", again.json());
    let new = client
        .send(
            Method::POST,
            &format!("{}/hooks/shop", node.public),
            &h,
            r#"{"id":"after-move"}"#,
        )
        .await
        .expect("answered");
    assert_eq!(new.json()["status"], "accepted");
    // The destination came along, its key opened with the old key; a new event queues a
    // delivery numbered after the moved ones.
    let dest = client
        .admin(
            Method::GET,
            &format!("{}/v1/accounts/shop/destinations/backend", node.admin),
            ADMIN_TOKEN,
            None,
        )
        .await
        .expect("destination");
    assert_eq!(dest.status, 200, "{:?}", dest.json());
    let shown = client
        .admin(
            Method::GET,
            &format!(
                "{}/v1/events/{}",
                node.admin,
                new.json()["id"].as_str().unwrap_or("")
            ),
            ADMIN_TOKEN,
            None,
        )
        .await
        .expect("event");
    let ids: Vec<(String, String)> = shown.json()["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d["destination"].to_string(), d["id"].to_string()))
        .collect();
    // (The moved event's two deliveries are dlv_1 and dlv_2.)
    assert_eq!(
        ids,
        [(r#""backend""#.to_owned(), r#""dlv_3""#.to_owned())],
        "{:?}",
        shown.json()
    );
    // The moved status message is still waiting, with its attempt.
    let moved = client
        .admin(
            Method::GET,
            &format!("{}/v1/events/{queued}", node.admin),
            ADMIN_TOKEN,
            None,
        )
        .await
        .expect("event");
    assert_eq!(
        moved.json()["forward_status"],
        "retrying",
        "{:?}",
        moved.json()
    );
    assert_eq!(
        moved.json()["forward_attempts"].as_array().map(Vec::len),
        Some(1)
    );
    let found = client
        .admin(
            Method::GET,
            &format!("{}/v1/events?sender=%2B255700000012", node.admin),
            ADMIN_TOKEN,
            None,
        )
        .await
        .expect("search");
    assert_eq!(found.json()["events"].as_array().map(Vec::len), Some(1));
    let verify = client
        .admin(
            Method::GET,
            &format!("{}/v1/audit/verify", node.admin),
            ADMIN_TOKEN,
            None,
        )
        .await
        .expect("verify");
    assert_eq!(verify.json()["ok"], true, "{:?}", verify.json());
    node.term(Duration::from_secs(15)).await;

    // The target now holds a log: a second move is refused and changes nothing.
    let after = heads(&url).await;
    let (ok, _, err) = hookgate(&["migrate", "--from", source, "--to", &url]).await;
    assert!(!ok);
    assert!(err.contains("empty database"), "{err}");
    assert_eq!(heads(&url).await, after);
    drop(dir);
}
