//! Several real `hookgate serve` processes on one PostgreSQL database, as behind a load
//! balancer: one acceptance per event id across nodes, one chain per log, changes in force
//! on every node within a second, the stream across nodes, deliveries taken over from a
//! dead node, a node killed under load, the database stopped and started, migrations run
//! by nodes starting together, and the seal key every node must share.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookgate::cli::client::{Answer, HttpClient};
use hyper::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::pg;
use crate::process::{self, Proc};
use crate::support::{ADMIN_TOKEN, TEST_SECRET_KEY};

/// The bearer token of the test account `shop`.
const SHOP_TOKEN: &str = "shop-token-0123";

/// Starts a node on `url` with the shared seal key and `extra` variables.
async fn node(url: &str, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![("HOOKGATE_SECRET_KEY", TEST_SECRET_KEY)];
    env.extend_from_slice(extra);
    process::start(Path::new(url), &env).await
}

async fn admin(p: &Proc, method: Method, path: &str, body: Option<Value>) -> Answer {
    HttpClient::default()
        .admin(
            method,
            &format!("{}{path}", p.admin),
            ADMIN_TOKEN,
            body.as_ref(),
        )
        .await
        .expect("admin API reachable")
}

/// Posts `{"id": id}` to account `shop` on `p`; `None` when the node did not answer.
async fn post(p: &str, id: &str) -> Option<Answer> {
    HttpClient::default()
        .send(
            Method::POST,
            &format!("{p}/hooks/shop"),
            &[
                ("authorization", &format!("Bearer {SHOP_TOKEN}")),
                ("content-type", "application/json"),
            ],
            format!(r#"{{"id":"{id}","phone":"+255700000001"}}"#),
        )
        .await
        .ok()
}

fn shop(extra: Value) -> Value {
    let mut spec = json!({
        "name": "shop",
        "auth": {"type": "bearer", "token": SHOP_TOKEN},
        "paths": {"event_id": "$.id", "sender": "$.phone"}
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    spec
}

/// Waits until `check` holds, trying every 20 ms for at most `within`; returns how long it
/// took. The condition is an event another process makes happen; this awaits it.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both chains verify through `p`'s API and offline on the database; returns the events
/// log's (rows, head).
async fn assert_chains(p: &Proc, url: &str) -> (u64, String) {
    let online = admin(p, Method::GET, "/v1/audit/verify", None).await.json();
    assert_eq!(online["ok"], true, "{online}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["audit", "verify", "--db", url])
        .output()
        .await
        .expect("run audit verify");
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "{offline} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(offline["logs"][0]["head"], online["logs"][0]["head"]);
    (
        offline["logs"][0]["rows"].as_u64().unwrap_or(0),
        offline["logs"][0]["head"].as_str().unwrap_or("").to_owned(),
    )
}

/// How many rows of account `shop` hold `id` with `status`, read from the database.
fn rows_with(url: &str, id: &str, status: &str) -> i64 {
    pg::psql(
        url,
        &format!("SELECT count(*) FROM events WHERE account = 'shop' AND event_id = '{id}' AND status = '{status}'"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .trim()
    .parse()
    .expect("a count")
}

/// Two nodes on a fresh database, the account `shop` created on the first and known to the
/// second.
async fn two_nodes_with_shop() -> (String, Proc, Proc) {
    let url = pg::server().fresh_database();
    let (a, b) = tokio::join!(node(&url, &[]), node(&url, &[]));
    admin(&a, Method::POST, "/v1/accounts", Some(shop(json!({})))).await;
    until(
        Duration::from_secs(1),
        "the account reaches node b",
        || async {
            admin(&b, Method::GET, "/v1/accounts/shop", None)
                .await
                .status
                == 200
        },
    )
    .await;
    (url, a, b)
}

#[tokio::test]
async fn the_same_ids_sent_to_two_nodes_at_once_are_accepted_once() {
    let (url, a, b) = two_nodes_with_shop().await;
    let ids: Vec<String> = (0..60).map(|i| format!("twice-{i}")).collect();
    let mut tasks = Vec::new();
    for id in &ids {
        for p in [a.public.clone(), b.public.clone()] {
            let id = id.clone();
            tasks.push(tokio::spawn(async move { post(&p, &id).await }));
        }
    }
    let mut accepted = std::collections::HashMap::<String, usize>::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let a = t.await.expect("sender").expect("answered");
        assert_eq!(a.status, 200, "{:?}", a.json());
        let status = a.json()["status"].as_str().unwrap_or("").to_owned();
        assert!(status == "accepted" || status == "duplicate", "{status}");
        if status == "accepted" {
            *accepted.entry(ids[i / 2].clone()).or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            accepted.get(id),
            Some(&1),
            "{id} accepted once in the answers"
        );
        assert_eq!(
            rows_with(&url, id, "accepted"),
            1,
            "{id} accepted once in the log"
        );
        assert_eq!(
            rows_with(&url, id, "duplicate"),
            1,
            "{id}'s copy a duplicate"
        );
    }
    let (rows, _) = assert_chains(&b, &url).await;
    assert_eq!(rows, 120);
    a.term(Duration::from_secs(15)).await;
    b.term(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_change_on_one_node_is_in_force_on_the_other_within_a_second() {
    let url = pg::server().fresh_database();
    let (a, b) = tokio::join!(node(&url, &[]), node(&url, &[]));
    admin(&a, Method::POST, "/v1/accounts", Some(shop(json!({})))).await;
    let took = until(
        Duration::from_secs(1),
        "a new account served by node b",
        || async {
            post(&b.public, "first")
                .await
                .is_some_and(|r| r.status == 200)
        },
    )
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Deactivated through b: a refuses it.
    let off = admin(&b, Method::POST, "/v1/accounts/shop/deactivate", None).await;
    assert_eq!(off.status, 200, "{:?}", off.json());
    until(
        Duration::from_secs(1),
        "the deactivation in force on node a",
        || async {
            post(&a.public, "while-off")
                .await
                .is_some_and(|r| r.status != 200)
        },
    )
    .await;
    // A token made on a works on b; revoked on b, refused on a.
    let made = admin(
        &a,
        Method::POST,
        "/v1/tokens",
        Some(json!({"name": "ops", "role": "auditor"})),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let token = made.json()["token"]
        .as_str()
        .expect("the new token")
        .to_owned();
    let reads = |p: String, token: String| async move {
        HttpClient::default()
            .admin(Method::GET, &format!("{p}/v1/events?limit=1"), &token, None)
            .await
            .map(|r| r.status.as_u16())
            .unwrap_or(0)
    };
    until(
        Duration::from_secs(1),
        "the new token accepted by node b",
        || {
            let (p, t) = (b.admin.clone(), token.clone());
            async move { reads(p, t).await == 200 }
        },
    )
    .await;
    let revoked = admin(&b, Method::DELETE, "/v1/tokens/ops", None).await;
    assert!(revoked.status.is_success(), "{:?}", revoked.json());
    until(
        Duration::from_secs(1),
        "the revoked token refused by node a",
        || {
            let (p, t) = (a.admin.clone(), token.clone());
            async move { reads(p, t).await == 401 }
        },
    )
    .await;
    a.term(Duration::from_secs(15)).await;
    b.term(Duration::from_secs(15)).await;
}

/// Reads server-sent events from a node's stream (its admin URL) until `n` have arrived: (id, event_id).
async fn read_stream(admin_url: &str, last_event_id: Option<i64>, n: usize) -> Vec<(i64, String)> {
    let addr = admin_url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let resume = last_event_id
        .map(|id| format!("last-event-id: {id}\r\n"))
        .unwrap_or_default();
    tcp.write_all(
        format!(
            "GET /v1/stream?account=shop HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n{resume}\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("request");
    let mut lines = BufReader::new(tcp).lines();
    let mut out = Vec::new();
    let mut id = None;
    let read = async {
        while out.len() < n {
            let Some(line) = lines.next_line().await.expect("read stream") else {
                break;
            };
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.trim().parse::<i64>().ok();
            }
            if let (Some(data), Some(seq)) = (line.strip_prefix("data: "), id) {
                let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                out.push((seq, v["event_id"].as_str().unwrap_or("").to_owned()));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the stream delivered its events");
    out
}

#[tokio::test]
async fn the_stream_on_one_node_carries_every_nodes_events_in_commit_order_and_resumes() {
    let url = pg::server().fresh_database();
    let (a, b) = tokio::join!(node(&url, &[]), node(&url, &[]));
    admin(&a, Method::POST, "/v1/accounts", Some(shop(json!({})))).await;
    let on = admin(
        &a,
        Method::POST,
        "/v1/accounts/shop/listening",
        Some(json!({"listening": true})),
    )
    .await;
    assert_eq!(on.status, 200, "{:?}", on.json());
    until(Duration::from_secs(1), "the listener on node b", || async {
        admin(&b, Method::GET, "/v1/accounts/shop", None)
            .await
            .json()["listening"]
            == true
    })
    .await;
    // Open on node b while the events go to both nodes.
    let reader = tokio::spawn({
        let b_admin = b.admin.clone();
        async move { read_stream(&b_admin, None, 40).await }
    });
    for i in 0..40 {
        let p = if i % 2 == 0 { &a.public } else { &b.public };
        let r = post(p, &format!("live-{i}")).await.expect("answered");
        assert_eq!(r.json()["status"], "accepted", "{:?}", r.json());
    }
    let seen = reader.await.expect("reader");
    let seqs: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "in commit order, each once");
    let mut ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    ids.sort_unstable();
    let mut sent: Vec<String> = (0..40).map(|i| format!("live-{i}")).collect();
    sent.sort_unstable();
    assert_eq!(ids, sent.iter().map(String::as_str).collect::<Vec<_>>());
    // Resumed from the middle on node a: the rest, from the log.
    let from = seen[19].0;
    let rest = read_stream(&a.admin, Some(from), 20).await;
    assert_eq!(rest, seen[20..].to_vec());
    a.term(Duration::from_secs(15)).await;
    b.term(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn sigkill_of_one_node_under_load_loses_no_acknowledged_event() {
    let (url, a, b) = two_nodes_with_shop().await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for s in 0..6 {
        let target = if s % 2 == 0 {
            a.public.clone()
        } else {
            b.public.clone()
        };
        let acked = Arc::clone(&acked);
        senders.push(tokio::spawn(async move {
            for i in 0..150 {
                let id = format!("k{s}-{i}");
                match post(&target, &id).await {
                    Some(r) if r.status == 200 => acked.lock().expect("acked").push(id),
                    // The killed node's senders see refused connections from then on.
                    _ => {}
                }
            }
        }));
    }
    until(Duration::from_secs(20), "load under way", || {
        let acked = Arc::clone(&acked);
        async move { acked.lock().expect("acked").len() >= 200 }
    })
    .await;
    a.kill9().await;
    for s in senders {
        s.await.expect("sender");
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() >= 450,
        "the surviving node kept serving: {}",
        acked.len()
    );
    for id in &acked {
        assert_eq!(rows_with(&url, id, "accepted"), 1, "{id}");
    }
    // The survivor and a fresh node agree, and every chain verifies.
    let c = node(&url, &[]).await;
    let (rows, head) = assert_chains(&c, &url).await;
    assert!(rows >= acked.len() as u64);
    let again = assert_chains(&b, &url).await;
    assert_eq!(again, (rows, head));
    b.term(Duration::from_secs(15)).await;
    c.term(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn nodes_starting_together_migrate_once_and_a_node_needs_the_shared_key() {
    let url = pg::server().fresh_database();
    let (a, b, c) = tokio::join!(node(&url, &[]), node(&url, &[]), node(&url, &[]));
    let version =
        pg::psql(&url, "SELECT version FROM schema_version").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        version.trim(),
        hookgate::store::postgres::schema_version().to_string()
    );
    let anchors = pg::psql(
        &url,
        "SELECT count(*) FROM changes WHERE action = 'audit.anchored'",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        anchors.trim(),
        "1",
        "one anchor row, however many nodes start together"
    );
    let heads =
        pg::psql(&url, "SELECT count(*) FROM chain_heads").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(heads.trim(), "2");
    admin(&a, Method::POST, "/v1/accounts", Some(shop(json!({})))).await;
    for p in [a, b, c] {
        p.term(Duration::from_secs(15)).await;
    }
    // Without the key: refused at start, with the reason.
    let err = refused_start(&url, None).await;
    assert!(err.contains("HOOKGATE_SECRET_KEY is required"), "{err}");
    // With another key: the stored account cannot be opened, and the node refuses to start.
    let err = refused_start(&url, Some("b3RoZXIta2V5LW9mLXRoaXJ0eS10d28tYnl0ZXMtISE=")).await;
    assert!(
        err.contains("HOOKGATE_SECRET_KEY") && err.contains("shop"),
        "{err}"
    );
}

/// Runs `hookgate serve` on `url` with the seal key `key`; asserts that it refuses to
/// start, and returns what it said.
async fn refused_start(url: &str, key: Option<&str>) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.arg("serve")
        .env_clear()
        .env("HOOKGATE_DB", url)
        .env("HOOKGATE_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN);
    if let Some(key) = key {
        cmd.env("HOOKGATE_SECRET_KEY", key);
    }
    let out = cmd.output().await.expect("run");
    assert!(
        !out.status.success(),
        "a node without the shared key must not start"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A chat platform that holds the first request it gets without answering and answers
/// every later one 200; reports each request's idempotency key.
async fn holding_chat() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    holding_chat_first(1).await
}

/// A chat platform that holds the first `held` requests it gets without answering and
/// answers every later one 200; reports each request's idempotency key.
async fn holding_chat_first(held: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/messages", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen_requests = 0usize;
        while let Ok((mut s, _)) = listener.accept().await {
            seen_requests += 1;
            let (tx, hold) = (tx.clone(), seen_requests <= held);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&seen).to_lowercase();
                let key = head
                    .lines()
                    .find_map(|l| l.strip_prefix("idempotency-key:"))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let _ = tx.send(key);
                if hold {
                    std::future::pending::<()>().await;
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_delivery_held_by_a_node_that_died_is_finished_by_another() {
    let url = pg::server().fresh_database();
    let (chat, mut requests) = holding_chat().await;
    let env = [
        ("HOOKGATE_CHAT_URL", chat.as_str()),
        ("HOOKGATE_STORAGE_CLAIM_LEASE_SECS", "2"),
        ("HOOKGATE_CHAT_TIMEOUT_MS", "60000"),
    ];
    let a = node(&url, &env).await;
    let spec = shop(json!({"forward": {"send_to_user": true, "template": "Paid {{event_id}}"}}));
    admin(&a, Method::POST, "/v1/accounts", Some(spec)).await;
    admin(
        &a,
        Method::POST,
        "/v1/accounts/shop/listening",
        Some(json!({"listening": true})),
    )
    .await;
    let r = post(&a.public, "pay-1").await.expect("answered");
    assert_eq!(r.json()["status"], "accepted", "{:?}", r.json());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    // Node a has claimed the delivery and is waiting on the chat platform: it dies there.
    let first = tokio::time::timeout(Duration::from_secs(10), requests.recv())
        .await
        .expect("node a sent the message")
        .expect("a request");
    a.kill9().await;
    let b = node(&url, &env).await;
    let second = tokio::time::timeout(Duration::from_secs(20), requests.recv())
        .await
        .expect("node b took the delivery over once the claim ran out")
        .expect("a request");
    assert_eq!(first, second, "the same idempotency key from either node");
    until(
        Duration::from_secs(10),
        "the delivery recorded as delivered",
        || async {
            admin(&b, Method::GET, &format!("/v1/events/{id}"), None)
                .await
                .json()["forward_status"]
                == "delivered"
        },
    )
    .await;
    b.term(Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_database_outage_answers_503_and_the_node_recovers_by_itself() {
    let server = pg::private_server();
    let url = server.fresh_database();
    let a = node(&url, &[]).await;
    admin(&a, Method::POST, "/v1/accounts", Some(shop(json!({})))).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let id = format!("before-{i}");
        let r = post(&a.public, &id).await.expect("answered");
        assert_eq!(r.status, 200);
        acked.push(id);
    }
    server.stop();
    let mut refused = 0;
    for i in 0..10 {
        let r = post(&a.public, &format!("during-{i}"))
            .await
            .expect("answered");
        assert_eq!(
            r.status,
            503,
            "never 2xx while the database is down: {:?}",
            r.json()
        );
        refused += 1;
    }
    let ready = HttpClient::default()
        .send(Method::GET, &format!("{}/readyz", a.public), &[], "")
        .await
        .expect("readyz");
    assert_eq!(ready.status, 503);
    server.start();
    until(Duration::from_secs(15), "the node serves again", || async {
        post(&a.public, "after")
            .await
            .is_some_and(|r| r.status == 200)
    })
    .await;
    acked.push("after".into());
    for id in &acked {
        assert_eq!(rows_with(&url, id, "accepted"), 1, "{id}");
    }
    assert_eq!(refused, 10);
    assert_chains(&a, &url).await;
    a.term(Duration::from_secs(15)).await;
}

/// Two nodes share the destinations' outbox: each delivery is claimed by one node at a
/// time, and a destination's `max_in_flight` holds across the nodes.
#[tokio::test]
async fn each_delivery_to_a_destination_is_claimed_by_one_node() {
    use crate::destinations::{Endpoint, Reply};
    let url = pg::server().fresh_database();
    let mut ep = Endpoint::start().await;
    ep.answer_with(Reply::Hang);
    let env = [
        ("HOOKGATE_EGRESS_ALLOW", r#"["127.0.0.0/8"]"#),
        ("HOOKGATE_DELIVERY_TIMEOUT_MS", "60000"),
    ];
    let (a, b) = tokio::join!(node(&url, &env), node(&url, &env));
    admin(&a, Method::POST, "/v1/accounts", Some(shop(json!({})))).await;
    let made = admin(
        &a,
        Method::POST,
        "/v1/accounts/shop/destinations",
        Some(json!({"name": "backend", "url": ep.url, "max_in_flight": 2})),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    until(
        Duration::from_secs(2),
        "the destination reaches node b",
        || async {
            admin(
                &b,
                Method::GET,
                "/v1/accounts/shop/destinations/backend",
                None,
            )
            .await
            .status
                == 200
        },
    )
    .await;
    let mut ids = Vec::new();
    for (i, p) in [&a, &b, &a].into_iter().enumerate() {
        let r = post(&p.public, &format!("claim-{i}"))
            .await
            .expect("answered");
        ids.push(format!("{}_backend", r.json()["id"].as_str().expect("id")));
    }
    // Both nodes poll the outbox; the two oldest are held open, each sent once; the third
    // waits, since two are in flight across the nodes.
    let first = ep.next().await.header("webhook-id").to_owned();
    let second = ep.next().await.header("webhook-id").to_owned();
    assert_ne!(first, second, "one delivery sent by two nodes");
    let mut got = vec![first, second];
    got.sort();
    let mut want = ids[..2].to_vec();
    want.sort();
    assert_eq!(got, want);
    ep.nothing_within(Duration::from_millis(1500)).await;
    a.kill9().await;
    b.kill9().await;
}

/// Chat messages are deliveries like the others: each is claimed by one node at a time,
/// and the chat lane's cap (`[chat] concurrency`) holds across the nodes.
#[tokio::test]
async fn each_chat_message_is_claimed_by_one_node() {
    let url = pg::server().fresh_database();
    let (chat, mut requests) = holding_chat_first(usize::MAX).await;
    let env = [
        ("HOOKGATE_CHAT_URL", chat.as_str()),
        ("HOOKGATE_CHAT_TIMEOUT_MS", "60000"),
        ("HOOKGATE_CHAT_CONCURRENCY", "2"),
    ];
    let (a, b) = tokio::join!(node(&url, &env), node(&url, &env));
    let spec = shop(json!({"forward": {"send_to_user": true, "template": "Paid {{event_id}}"}}));
    admin(&a, Method::POST, "/v1/accounts", Some(spec)).await;
    admin(
        &a,
        Method::POST,
        "/v1/accounts/shop/listening",
        Some(json!({"listening": true})),
    )
    .await;
    until(
        Duration::from_secs(2),
        "the listening account reaches node b",
        || async {
            admin(&b, Method::GET, "/v1/accounts/shop", None)
                .await
                .json()["listening"]
                == true
        },
    )
    .await;
    let mut seqs = Vec::new();
    for (i, p) in [&a, &b, &a].into_iter().enumerate() {
        let r = post(&p.public, &format!("chat-{i}"))
            .await
            .expect("answered");
        let id = r.json()["id"].as_str().expect("id").to_owned();
        seqs.push(id.trim_start_matches("evt_").to_owned());
    }
    // Both nodes poll the one outbox; the two oldest messages are held open, each sent
    // once; the third waits, since two are in flight across the nodes.
    let mut got = Vec::new();
    for _ in 0..2 {
        let key = tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await
            .expect("sent within 10s")
            .expect("a key");
        got.push(key);
    }
    let (first, second) = (got[0].clone(), got[1].clone());
    assert_ne!(first, second, "one message sent by two nodes");
    got.sort();
    let mut want: Vec<String> = seqs[..2]
        .iter()
        .map(|s| format!("hookgate-shop-{s}"))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), requests.recv())
            .await
            .is_err(),
        "the third message waits for a free place in the chat lane"
    );
    a.kill9().await;
    b.kill9().await;
}
