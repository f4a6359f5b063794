//! The ingest path over real HTTP: authenticate keys, HMAC signatures, freshness,
//! extraction, dedupe, error answers, and exactly one audit row per request.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Asserts a problem+json answer with the status and code, and returns its audit id.
fn assert_problem(answer: &hookgate::cli::client::Answer, status: u16, code: &str) -> String {
    assert_eq!(answer.status, status, "{:?}", answer.json());
    let ct = answer
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("");
    assert_eq!(ct, "application/problem+json");
    let p = answer.json();
    assert_eq!(p["status"], status);
    assert_eq!(p["code"], code, "{p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()));
    p["id"].as_str().unwrap_or("").to_owned()
}

async fn rejected_reason(gw: &TestGateway, id: &str) -> String {
    let e = gw.event(id).await;
    assert_eq!(e["status"], "rejected");
    e["reason"].as_str().unwrap_or("").to_owned()
}

/// An auth spec, then good headers and query, then bad headers and query.
type AuthCase = (Value, Headers, &'static str, Headers, &'static str);
type Headers = Vec<(&'static str, String)>;

#[tokio::test]
async fn every_auth_type_accepts_the_right_key_and_rejects_others() {
    let gw = spawn_gateway().await;
    let basic_ok = format!("Basic {}", STANDARD.encode("shop:pa55"));
    let basic_bad = format!("Basic {}", STANDARD.encode("shop:wrong"));
    let cases: Vec<AuthCase> = vec![
        (
            json!({"type": "api_key", "header": "X-Api-Key", "value": "key-123"}),
            vec![("x-api-key", "key-123".into())],
            "",
            vec![("x-api-key", "key-124".into())],
            "",
        ),
        (
            json!({"type": "bearer", "token": "tok-abc"}),
            vec![("authorization", "Bearer tok-abc".into())],
            "",
            vec![("authorization", "Bearer tok-abd".into())],
            "",
        ),
        (
            json!({"type": "basic", "username": "shop", "password": "pa55"}),
            vec![("authorization", basic_ok.clone())],
            "",
            vec![("authorization", basic_bad.clone())],
            "",
        ),
        (
            json!({"type": "query", "param": "token", "value": "q-tok"}),
            vec![],
            "?token=q-tok",
            vec![],
            "?token=q-tox",
        ),
    ];
    for (i, (auth, good_headers, good_query, bad_headers, bad_query)) in
        cases.into_iter().enumerate()
    {
        let name = format!("auth_{i}");
        gw.create_account(json!({"name": name, "auth": auth})).await;
        let good: Vec<(&str, &str)> = good_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bad: Vec<(&str, &str)> = bad_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let ok = gw
            .post_hook(&format!("{name}{good_query}"), &good, "{}")
            .await;
        assert_eq!(ok.status, 200, "{name}: {:?}", ok.json());
        assert_eq!(ok.json()["status"], "accepted");
        let wrong = gw
            .post_hook(&format!("{name}{bad_query}"), &bad, "{}")
            .await;
        let id = assert_problem(&wrong, 401, "unauthorized");
        assert_eq!(rejected_reason(&gw, &id).await, "bad_auth", "{name}");
        let missing = gw.post_hook(&name, &[], "{}").await;
        let id = assert_problem(&missing, 401, "unauthorized");
        assert_eq!(rejected_reason(&gw, &id).await, "bad_auth");
    }
    // The query token is redacted in the stored row.
    let rows = gw.events("account=auth_3").await;
    for row in rows {
        let full = gw.event(row["id"].as_str().unwrap_or("")).await;
        assert!(
            !full["query"].as_str().unwrap_or("").contains("q-tok"),
            "{full}"
        );
    }
    gw.stop().await;
}

fn signed_account(name: &str, secrets: &[&str]) -> Value {
    json!({
        "name": name,
        "signature": {
            "algorithm": "hmac-sha256",
            "header": "X-Signature",
            "encoding": "hex",
            "prefix": "sha256=",
            "signed_content": "{timestamp}.{body}",
            "timestamp_header": "X-Timestamp",
            "tolerance_secs": 300,
            "secrets": secrets,
        },
        "paths": {"event_id": "$.id", "event_type": "$.type", "sender": "$.customer.phone",
                  "source": "$.order.id", "params": {"amount": "$.amount"}}
    })
}

fn sign_ts(secret: &str, ts: i64, body: &str) -> String {
    format!(
        "sha256={}",
        hmac_sha256_hex(secret.as_bytes(), format!("{ts}.{body}").as_bytes())
    )
}

#[tokio::test]
async fn hmac_accepts_genuine_and_rotated_secrets_and_rejects_tampering_wrong_secret_and_staleness()
{
    let gw = spawn_gateway().await;
    gw.create_account(signed_account("pay", &["old-secret", "new-secret"]))
        .await;
    let now = now_secs();
    let body = r#"{"id":"ev_1","type":"payment.succeeded","amount":25000}"#;
    let ts = now.to_string();

    for (i, secret) in ["old-secret", "new-secret"].into_iter().enumerate() {
        let body = body.replace("ev_1", &format!("ev_rot_{i}"));
        let sig = sign_ts(secret, now, &body);
        let a = gw
            .post_hook(
                "pay",
                &[
                    ("x-signature", &sig),
                    ("x-timestamp", &ts),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await;
        assert_eq!(a.status, 200, "{secret}: {:?}", a.json());
        assert_eq!(a.json()["status"], "accepted");
    }

    let sig = sign_ts("new-secret", now, body);
    let tampered = body.replace("25000", "95000");
    let a = gw
        .post_hook(
            "pay",
            &[("x-signature", &sig), ("x-timestamp", &ts)],
            tampered,
        )
        .await;
    let id = assert_problem(&a, 401, "unauthorized");
    assert_eq!(rejected_reason(&gw, &id).await, "bad_signature");

    let wrong = sign_ts("not-the-secret", now, body);
    let a = gw
        .post_hook(
            "pay",
            &[("x-signature", &wrong), ("x-timestamp", &ts)],
            body,
        )
        .await;
    let id = assert_problem(&a, 401, "unauthorized");
    assert_eq!(rejected_reason(&gw, &id).await, "bad_signature");

    let old = now - 3600;
    let stale_sig = sign_ts("new-secret", old, body);
    let a = gw
        .post_hook(
            "pay",
            &[
                ("x-signature", &stale_sig),
                ("x-timestamp", &old.to_string()),
            ],
            body,
        )
        .await;
    let id = assert_problem(&a, 401, "unauthorized");
    assert_eq!(rejected_reason(&gw, &id).await, "stale_timestamp");
    assert!(
        !a.json()["detail"].as_str().unwrap_or("").contains("stale"),
        "the sender is not told which check failed"
    );

    // The signature header is case-insensitive and its value is never stored.
    let a = gw
        .post_hook("pay", &[("X-SIGNATURE", &sig), ("x-timestamp", &ts)], body)
        .await;
    assert_eq!(a.status, 200);
    let stored = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(stored["headers"]["x-signature"], "[redacted]");
    assert!(!stored.to_string().contains(&sig[7..]));
    gw.stop().await;
}

#[tokio::test]
async fn signature_covers_raw_bytes_not_reserialised_json() {
    let gw = spawn_gateway().await;
    gw.create_account(signed_account("raw", &["k"])).await;
    let now = now_secs();
    // Odd spacing, key order and a unicode escape: re-serialising would change the bytes.
    let body = "{ \"type\" :\"x\",\n  \"id\":\"r1\", \"name\":\"\\u00e9\"  }";
    let sig = sign_ts("k", now, body);
    let a = gw
        .post_hook(
            "raw",
            &[("x-signature", &sig), ("x-timestamp", &now.to_string())],
            body,
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let e = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(
        e["body"], body,
        "the stored body is byte-for-byte what was received"
    );
    gw.stop().await;
}

#[tokio::test]
async fn extraction_from_nested_json_arrays_headers_and_form_bodies() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({
        "name": "shop",
        "auth": {"type": "bearer", "token": "t0ken-shop"},
        "paths": {
            "sender": "data.customer.contacts[0].phone",
            "source": "$.data.order.id",
            "event_type": "header:X-Event-Type",
            "event_id": "$.id",
            "params": {"skus": "$.data.order.items[*].sku", "total": "$.data.order.total", "nothing": "$.no.such"}
        }
    })).await;
    let body = json!({
        "id": "evt-nested-1",
        "data": {"customer": {"contacts": [{"phone": "+255700000001"}, {"phone": "+255700000002"}]},
                 "order": {"id": 9001, "total": 25000, "items": [{"sku": "A"}, {"sku": "B"}]}}
    });
    let a = gw
        .post_hook(
            "shop",
            &[
                ("authorization", "Bearer t0ken-shop"),
                ("x-event-type", "order.paid"),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let e = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(e["sender"], "+255700000001");
    assert_eq!(e["source"], "9001");
    assert_eq!(e["event_type"], "order.paid");
    assert_eq!(e["event_id"], "evt-nested-1");
    assert_eq!(
        e["params"],
        json!({"skus": ["A", "B"], "total": 25000, "nothing": null})
    );
    // The listing filters on extracted fields.
    let by_sender = gw.events("sender=%2B255700000001").await;
    assert_eq!(by_sender.len(), 1);
    assert_eq!(by_sender[0]["id"], e["id"]);

    gw.create_account(json!({
        "name": "form",
        "auth": {"type": "bearer", "token": "t0ken-form"},
        "paths": {"sender": "$.From", "source": "$.payload.user.id", "event_id": "MessageSid",
                  "params": {"tags": "$.tag"}}
    }))
    .await;
    let form = "MessageSid=SM1&From=%2B255711111111&tag=a&tag=b&payload=%7B%22user%22%3A%7B%22id%22%3A%22U42%22%7D%7D";
    let a = gw
        .post_hook(
            "form",
            &[
                ("authorization", "Bearer t0ken-form"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form,
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let e = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(e["sender"], "+255711111111");
    assert_eq!(e["source"], "U42");
    assert_eq!(e["event_id"], "SM1");
    assert_eq!(e["params"], json!({"tags": ["a", "b"]}));
    assert_eq!(e["body"], form, "the raw form body is what is stored");

    // JSON sent as text/plain (as AWS SNS does) is read as JSON.
    let a = gw
        .post_hook(
            "form",
            &[
                ("authorization", "Bearer t0ken-form"),
                ("content-type", "text/plain; charset=UTF-8"),
            ],
            r#"{"From":"+1","MessageSid":"SM2"}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    assert_eq!(
        gw.event(a.json()["id"].as_str().unwrap_or("")).await["sender"],
        "+1"
    );
    gw.stop().await;
}

#[tokio::test]
async fn duplicates_are_answered_2xx_and_recorded_once_as_accepted() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "dup", "auth": {"type": "bearer", "token": "dup-token"},
                             "paths": {"event_id": "$.id"}}),
    )
    .await;
    let h = [("authorization", "Bearer dup-token")];
    let first = gw.post_hook("dup", &h, r#"{"id":"same"}"#).await;
    assert_eq!(first.json()["status"], "accepted");
    let second = gw
        .post_hook("dup", &h, r#"{"id":"same", "retry": 1}"#)
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["status"], "duplicate");
    assert_eq!(second.json()["original_id"], first.json()["id"]);
    // Concurrent copies: exactly one is accepted.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = gw.client.clone();
        let url = format!("{}/hooks/dup", gw.public);
        tasks.push(tokio::spawn(async move {
            client
                .send(
                    Method::POST,
                    &url,
                    &[("authorization", "Bearer dup-token")],
                    r#"{"id":"race"}"#,
                )
                .await
                .map(|a| a.json()["status"].as_str().unwrap_or("").to_owned())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task").expect("answer"));
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "accepted").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "duplicate").count(),
        7,
        "{statuses:?}"
    );
    // Without an event id there is nothing to dedupe on.
    let a = gw.post_hook("dup", &h, "{}").await;
    let b = gw.post_hook("dup", &h, "{}").await;
    assert_eq!(
        (a.json()["status"].clone(), b.json()["status"].clone()),
        (json!("accepted"), json!("accepted"))
    );
    assert_eq!(gw.events("account=dup&status=accepted").await.len(), 4);
    assert_eq!(gw.events("account=dup&status=duplicate").await.len(), 8);
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_problem_json_and_exactly_one_audit_row_each() {
    let gw = spawn_with(|c| c.limits.max_body_bytes = 4096).await;
    gw.create_account(json!({"name": "strict", "auth": {"type": "api_key", "header": "X-Key", "value": "k-strict"}})).await;
    gw.create_account(json!({"name": "sleepy", "active": false, "allow_unverified": true}))
        .await;
    let key = ("x-key", "k-strict");
    let before = gw.audit_rows();

    let a = gw
        .post_hook(
            "strict",
            &[key, ("content-type", "application/json")],
            "{\"a\": ",
        )
        .await;
    let id = assert_problem(&a, 400, "malformed_payload");
    assert_eq!(rejected_reason(&gw, &id).await, "malformed_payload");

    let a = gw
        .post_hook(
            "strict",
            &[key, ("content-type", "application/json")],
            vec![b'"', 0xff, 0xfe, b'"'],
        )
        .await;
    let id = assert_problem(&a, 400, "malformed_payload");
    let stored = gw.event(&id).await;
    assert_eq!(
        stored["body_encoding"], "base64",
        "invalid UTF-8 is kept, as base64"
    );

    let a = gw
        .post_hook(
            "strict",
            &[key, ("content-type", "application/xml")],
            "<a/>",
        )
        .await;
    let id = assert_problem(&a, 415, "unsupported_media_type");
    assert_eq!(rejected_reason(&gw, &id).await, "unsupported_media_type");

    let giant = "x".repeat(10_000);
    let a = gw.post_hook("strict", &[key], giant).await;
    let id = assert_problem(&a, 413, "too_large");
    let stored = gw.event(&id).await;
    assert_eq!(stored["reason"], "too_large");
    assert_eq!(stored["body_size"], 10_000);

    let a = gw.post_hook("no_such_account", &[], "{}").await;
    let id = assert_problem(&a, 404, "unknown_account");
    assert_eq!(rejected_reason(&gw, &id).await, "unknown_account");

    for tricky in ["..%2Fadmin", "UPPER", "caf%C3%A9", "a/b", ""] {
        let a = gw.post_hook(tricky, &[], "{}").await;
        let id = assert_problem(&a, 404, "unknown_account");
        assert_eq!(
            rejected_reason(&gw, &id).await,
            "unknown_account",
            "{tricky}"
        );
    }

    let a = gw.post_hook("sleepy", &[], "{}").await;
    let id = assert_problem(&a, 404, "unknown_account");
    assert_eq!(rejected_reason(&gw, &id).await, "inactive_account");

    let a = gw.send_hook(Method::DELETE, "strict", &[key], "").await;
    let id = assert_problem(&a, 405, "method_not_allowed");
    assert_eq!(rejected_reason(&gw, &id).await, "method_not_allowed");

    let a = gw.post_hook("strict", &[("x-key", "nope")], "{}").await;
    assert_problem(&a, 401, "unauthorized");

    // Deeply nested JSON is refused cleanly, not with a stack overflow.
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    let a = gw.post_hook("strict", &[key], deep).await;
    assert_problem(&a, 400, "malformed_payload");

    assert_eq!(
        gw.audit_rows() - before,
        14,
        "one row per request, whatever the outcome"
    );
    // The gateway still serves after all of that.
    let ok = gw.post_hook("strict", &[key], "{}").await;
    assert_eq!(ok.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_rejected_giant_keeps_its_size_and_hash_but_not_the_whole_body() {
    let gw = spawn_with(|c| c.limits.rejected_body_bytes = 100).await;
    gw.create_account(json!({"name": "g", "auth": {"type": "bearer", "token": "g-token-1"}}))
        .await;
    let body = "y".repeat(5000);
    let a = gw
        .post_hook("g", &[("authorization", "Bearer wrong")], body.clone())
        .await;
    let id = assert_problem(&a, 401, "unauthorized");
    let e = gw.event(&id).await;
    assert_eq!(e["body_size"], 5000);
    assert_eq!(e["body_truncated"], true);
    assert_eq!(e["body"].as_str().map(str::len), Some(100));
    use sha2::Digest;
    assert_eq!(
        e["body_sha256"],
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    );
    // The chain binds the 100 bytes kept, not the 5000 received.
    let verify = gw.admin_call(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verify.json()["ok"], true, "{}", verify.json());
    gw.stop().await;
}

#[tokio::test]
async fn storage_failure_answers_503_never_2xx_and_recovers() {
    let gw = spawn_sqlite_with(|c| c.storage.busy_timeout_ms = 100).await;
    gw.create_account(json!({"name": "s", "auth": {"type": "bearer", "token": "s-token-1"}, "paths": {"event_id": "$.id"}})).await;
    let h = [("authorization", "Bearer s-token-1")];
    // Another process holds the write lock: every write the gateway tries fails.
    let locker = rusqlite::Connection::open(&gw.db).expect("open");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let before: i64 = locker
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    let a = gw.post_hook("s", &h, r#"{"id":"during-outage"}"#).await;
    assert_problem(&a, 503, "storage_unavailable");
    assert!(a.headers.contains_key("retry-after"));
    let ready = gw
        .client
        .send(Method::GET, &format!("{}/readyz", gw.public), &[], "")
        .await
        .expect("readyz");
    assert_eq!(ready.status, 503);
    let after: i64 = locker
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(before, after);
    locker.execute_batch("ROLLBACK").expect("unlock");
    drop(locker);
    // The sender retries once storage is back: accepted, not a duplicate.
    let a = gw.post_hook("s", &h, r#"{"id":"during-outage"}"#).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "accepted");
    let ready = gw
        .client
        .send(Method::GET, &format!("{}/readyz", gw.public), &[], "")
        .await
        .expect("readyz");
    assert_eq!(ready.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn acknowledged_events_survive_a_graceful_restart() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "keep", "auth": {"type": "bearer", "token": "keep-token"}, "paths": {"event_id": "$.id", "sender": "$.from", "source": "$.order"}})).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let a = gw
            .post_hook(
                "keep",
                &[("authorization", "Bearer keep-token")],
                format!(
                    "{{\"id\":\"k{i}\",\"from\":\"+25570000{}\",\"order\":\"o{}\"}}",
                    i % 3,
                    i % 4
                ),
            )
            .await;
        assert_eq!(a.status, 200);
        ids.push(a.json()["id"].as_str().unwrap_or("").to_owned());
    }
    // Searches by sender and source, newest first: the keys held in memory before the
    // restart are read back from the log after it.
    let by = |key: &str, n: usize, of: usize| -> (String, Vec<String>) {
        let want = (0..20)
            .rev()
            .filter(|i| i % of == n)
            .map(|i| ids[i].clone())
            .collect();
        (key.to_owned(), want)
    };
    let searches = [by("sender=%2B255700001", 1, 3), by("source=o2", 2, 4)];
    let found = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| e["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    for (query, want) in &searches {
        assert_eq!(&found(gw.events(query).await), want, "{query}");
    }
    let gw = gw.restart().await;
    for id in &ids {
        assert_eq!(gw.event(id).await["status"], "accepted");
    }
    for (query, want) in &searches {
        assert_eq!(
            &found(gw.events(query).await),
            want,
            "{query} after the restart"
        );
    }
    // The account and dedupe state came back too.
    let again = gw
        .post_hook(
            "keep",
            &[("authorization", "Bearer keep-token")],
            r#"{"id":"k3"}"#,
        )
        .await;
    assert_eq!(again.json()["status"], "duplicate");
    gw.stop().await;
}

#[tokio::test]
async fn slow_bodies_time_out_with_408_and_oversized_heads_get_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = spawn_with(|c| c.limits.body_timeout_secs = 1).await;
    gw.create_account(json!({"name": "slow", "allow_unverified": true}))
        .await;
    let mut s = gw.raw_connection().await;
    s.write_all(b"POST /hooks/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await
        .expect("write");
    let mut response = Vec::new();
    // The gateway answers and closes by itself; the read ends when it does.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut response),
    )
    .await
    .expect("answered within 10s")
    .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("read_timeout"));
    let rows = gw.events("account=slow&reason=read_timeout").await;
    assert_eq!(rows.len(), 1);

    let mut s = gw.raw_connection().await;
    let huge = format!(
        "POST /hooks/slow HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let _ = s.write_all(huge.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut response),
    )
    .await
    .expect("answered");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn a_row_is_timed_when_its_request_arrived_and_searches_by_time_agree() {
    use hookgate::clock::{Clock, format_micros};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let start = 1_800_000_000_000_000;
    let hour = 3_600_000_000;
    let clock = Clock::fixed(start);
    let gw = spawn_with_clock(clock.clone()).await;
    gw.create_account(json!({"name": "slow", "allow_unverified": true}))
        .await;
    let mut s = gw.raw_connection().await;
    s.write_all(
        b"POST /hooks/slow HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          expect: 100-continue\r\ncontent-length: 8\r\n\r\n",
    )
    .await
    .expect("write");
    // hyper answers 100 Continue once the handler starts reading the body: the request
    // has arrived when the body has yet to come.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.expect("100 Continue");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 100"), "{head:?}");
    // The body arrives an hour later.
    clock.set(start + hour);
    s.write_all(b"{\"a\": 1}").await.expect("body");
    let mut answer = [0u8; 12];
    s.read_exact(&mut answer).await.expect("answer");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    let rows = gw.events("account=slow").await;
    assert_eq!(rows.len(), 1);
    let at = format_micros(start);
    assert_eq!(rows[0]["received_at"], at.as_str());
    // A search by time places it where its time says, on either side of the range.
    assert_eq!(
        gw.events(&format!("account=slow&since={at}")).await.len(),
        1
    );
    assert_eq!(gw.events(&format!("until={at}")).await.len(), 0);
    let later = format_micros(start + 1);
    assert_eq!(gw.events(&format!("since={later}")).await.len(), 0);
    assert_eq!(
        gw.events(&format!("since={at}&until={later}")).await.len(),
        1
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_clock_set_back_an_hour_records_the_true_time_and_every_row_stays_findable() {
    use hookgate::clock::{Clock, format_micros};

    let start = 1_800_000_000_000_000;
    let hour = 3_600_000_000;
    let clock = Clock::fixed(start);
    let gw = spawn_with_clock(clock.clone()).await;
    gw.create_account(json!({"name": "steady", "allow_unverified": true}))
        .await;
    let post = |n: u32| {
        gw.post_hook(
            "steady",
            &[("content-type", "application/json")],
            format!("{{\"n\": {n}}}"),
        )
    };
    assert_eq!(post(1).await.status, 200);
    clock.set(start - hour);
    assert_eq!(post(2).await.status, 200);

    // Each row keeps the time its request arrived, as the clock said; the listing stays in
    // the order the rows were written, newest first.
    let times: Vec<String> = gw
        .events("account=steady")
        .await
        .iter()
        .map(|e| e["received_at"].as_str().expect("time").to_owned())
        .collect();
    assert_eq!(times, [format_micros(start - hour), format_micros(start)]);
    // A search by time finds each row at its own time, and nothing between them.
    let within = |from: i64, to: i64| {
        format!(
            "account=steady&since={}&until={}",
            format_micros(from),
            format_micros(to)
        )
    };
    for at in [start - hour, start] {
        assert_eq!(gw.events(&within(at, at + 1)).await.len(), 1, "at {at}");
    }
    assert!(gw.events(&within(start - hour + 1, start)).await.is_empty());
    gw.stop().await;
}
