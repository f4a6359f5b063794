//! Hostile clients over real sockets: slow heads, bodies declared too large, a connection
//! limit, a per-account rate limit, ambiguous JSON and path tricks. Each gets a clear
//! answer (problem+json where a request was parsed) and, when it reached `/hooks`, exactly
//! one audit row; the gateway keeps serving everybody else.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn addr(gw: &TestGateway) -> String {
    gw.public.trim_start_matches("http://").to_owned()
}

/// Reads until the gateway closes the connection, bounded.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .expect("the gateway closed the connection in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&out).into_owned()
}

fn problem_code(answer: &hookgate::cli::client::Answer) -> String {
    let ct = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(ct, "application/problem+json");
    answer.json()["code"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_noisy_account_gets_429_with_retry_after_and_the_rest_are_served() {
    let gw = spawn_with(|c| {
        c.limits.account_rate_per_sec = 1;
        c.limits.account_burst = 3;
    })
    .await;
    for name in ["noisy", "quiet"] {
        gw.create_account(json!({"name": name, "allow_unverified": true}))
            .await;
    }
    let before = gw.audit_rows();
    // Ten at once: the burst of 3 passes, then 429s (plus at most one refill per second
    // elapsed, so a slow machine cannot make this flaky).
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(gw.post_hook("noisy", &[], "{}").await);
    }
    let refills = started.elapsed().as_secs() as usize + 1;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert!(ok >= 3 && ok <= 3 + refills, "{ok} accepted");
    assert!(
        answers[..3].iter().all(|a| a.status == 200),
        "the burst passes"
    );
    let a = answers
        .iter()
        .find(|a| a.status == 429)
        .expect("the noisy account was limited");
    assert!(answers.iter().all(|a| a.status == 200 || a.status == 429));
    assert_eq!(problem_code(a), "rate_limited");
    let retry: u64 = a
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let id = a.json()["id"].as_str().unwrap_or("").to_owned();
    let row = gw.event(&id).await;
    assert_eq!(row["status"], "rejected");
    assert_eq!(row["reason"], "rate_limited");
    // The other account is not starved.
    for _ in 0..3 {
        assert_eq!(gw.post_hook("quiet", &[], "{}").await.status, 200);
    }
    assert_eq!(
        gw.audit_rows() - before,
        13,
        "one row per request, 429 included"
    );
    gw.stop().await;
}

#[tokio::test]
async fn slow_heads_are_cut_off_and_declared_giants_are_refused_unread() {
    let gw = spawn_with(|c| {
        c.limits.header_timeout_secs = 1;
        c.limits.max_body_bytes = 1024;
    })
    .await;
    gw.create_account(json!({"name": "h", "allow_unverified": true}))
        .await;
    // Slowloris on the head: a few bytes, then nothing. The gateway hangs up by itself.
    let mut s = TcpStream::connect(addr(&gw)).await.expect("connect");
    s.write_all(b"POST /hooks/h HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .expect("write");
    let text = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(!text.starts_with("HTTP/1.1 2"), "{text}");

    // A body declared far over the limit is refused before a byte of it is sent.
    let mut s = TcpStream::connect(addr(&gw)).await.expect("connect");
    s.write_all(b"POST /hooks/h HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n")
        .await
        .expect("write head");
    let text = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("application/problem+json"));
    let rows = gw.events("account=h&reason=too_large").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        gw.event(rows[0]["id"].as_str().unwrap_or("")).await["body_size"],
        1_000_000_000u64
    );

    // Everyone else is still served.
    assert_eq!(gw.post_hook("h", &[], "{}").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn the_connection_limit_holds_extra_clients_until_a_slot_frees() {
    let gw = spawn_with(|c| c.limits.max_connections = 2).await;
    gw.create_account(json!({"name": "c", "allow_unverified": true}))
        .await;
    let a = TcpStream::connect(addr(&gw)).await.expect("connect 1");
    let b = TcpStream::connect(addr(&gw)).await.expect("connect 2");
    let mut third = TcpStream::connect(addr(&gw)).await.expect("connect 3");
    third
        .write_all(b"POST /hooks/c HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .expect("write");
    // Both slots are held: the third is not served (a bounded wait for a non-event).
    let mut buf = [0u8; 16];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the connection limit");
    drop(a);
    let text = read_until_closed(&mut third, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(b);
    gw.stop().await;
}

#[tokio::test]
async fn ambiguous_json_is_refused_and_huge_numbers_are_kept_exactly() {
    let gw = spawn_gateway().await;
    gw.create_account(
        json!({"name": "j", "allow_unverified": true, "paths": {"event_id": "$.id"}}),
    )
    .await;
    let before = gw.audit_rows();
    let ct = [("content-type", "application/json")];
    // A repeat deep in a large part that no path reads is refused all the same.
    let pad: String = (0..40).map(|i| format!(r#""k{i}":{i},"#)).collect();
    let many_keys = format!(r#"{{"id":"m","pad":{{{pad}"k7":0}}}}"#);
    for (body, needle) in [
        (r#"{"id":"a","id":"b"}"#.to_owned(), "appears twice"),
        (r#"{"x":{"k":1,"k":2}}"#.to_owned(), "appears twice"),
        (r#"{"\u0069d":"a","id":"b"}"#.to_owned(), "appears twice"),
        (many_keys, "appears twice"),
        (r#"{"n":1e400}"#.to_owned(), "number out of range"),
        (r#"{"n":-1e99999}"#.to_owned(), "number out of range"),
    ] {
        let a = gw.post_hook("j", &ct, body.clone()).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(problem_code(&a), "malformed_payload");
        let detail = a.json()["detail"].as_str().unwrap_or("").to_owned();
        assert!(detail.contains(needle), "{body}: {detail}");
        let row = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
        assert_eq!(row["reason"], "malformed_payload");
        assert_eq!(row["body"], body, "the raw body is kept as sent");
    }
    // A huge integer is valid JSON: accepted, and the stored body is byte-exact.
    let big = r#"{"id":"big","n":123456789012345678901234567890123456789}"#;
    let a = gw.post_hook("j", &ct, big).await;
    assert_eq!(a.status, 200);
    let row = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(row["body"], big);
    assert_eq!(gw.audit_rows() - before, 7);
    gw.stop().await;
}

#[tokio::test]
async fn path_tricks_in_the_account_segment_get_404_and_one_row_each() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "shop", "allow_unverified": true}))
        .await;
    let before = gw.audit_rows();
    let tricks = [
        "..",
        "../shop",
        "shop/..",
        "%2e%2e",
        "shop%2F..",
        "..%2Fshop",
        "SHOP",
        "Shop",
        "sh%C3%B6p",
        "%E2%80%AEpohs",
        "shop%00",
        "shop%20",
        ".%2Fshop",
        "shop/",
        "%73hop",
    ];
    for trick in tricks {
        let a = gw.post_hook(trick, &[], "{}").await;
        assert_eq!(a.status, 404, "{trick}");
        assert_eq!(problem_code(&a), "unknown_account", "{trick}");
        let row = gw.event(a.json()["id"].as_str().unwrap_or("")).await;
        assert_eq!(row["reason"], "unknown_account", "{trick}");
        assert_ne!(row["account"], "shop", "{trick} must not reach the account");
    }
    // Raw non-ASCII bytes in the request line: the same clear answer and one row.
    let mut s = TcpStream::connect(addr(&gw)).await.expect("connect");
    s.write_all(
        "POST /hooks/shöp HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"
            .as_bytes(),
    )
    .await
    .expect("write");
    let text = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert!(text.contains("unknown_account"), "{text}");
    assert_eq!(gw.audit_rows() - before, tricks.len() as i64 + 1);
    assert_eq!(gw.post_hook("shop", &[], "{}").await.status, 200);
    gw.stop().await;
}

/// Connects from a chosen loopback source address.
async fn connect_from(source: [u8; 4], to: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("bind source");
    socket
        .connect(to.parse().expect("addr"))
        .await
        .expect("connect")
}

async fn one_request(s: &mut TcpStream) -> String {
    s.write_all(
        b"POST /hooks/ip HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await
    .expect("write");
    read_until_closed(s, Duration::from_secs(10)).await
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection_slot() {
    let gw = spawn_with(|c| c.limits.max_connections_per_ip = 2).await;
    gw.create_account(json!({"name": "ip", "allow_unverified": true}))
        .await;
    let to = addr(&gw);
    let hog1 = connect_from([127, 0, 0, 1], &to).await;
    let hog2 = connect_from([127, 0, 0, 1], &to).await;
    // A third connection from the same address is closed without an answer.
    let mut third = connect_from([127, 0, 0, 1], &to).await;
    let _ = third
        .write_all(b"POST /hooks/ip HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await;
    let text = read_until_closed(&mut third, Duration::from_secs(10)).await;
    assert_eq!(text, "", "closed at once, not served");
    // Another address is served meanwhile.
    let mut other = connect_from([127, 0, 0, 2], &to).await;
    assert!(one_request(&mut other).await.starts_with("HTTP/1.1 200"));
    // When the first address lets a connection go, it gets a slot again.
    drop(hog1);
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut again = connect_from([127, 0, 0, 1], &to).await;
            let text = one_request(&mut again).await;
            if !text.is_empty() {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a slot came back");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    drop(hog2);
    gw.stop().await;
}

/// Sends `head` whole, then `trickle` one byte every 100 ms (the client's pace, not a
/// synchronisation), until the gateway hangs up; returns what it answered and how long
/// the connection lasted.
async fn trickle(to: &str, head: &[u8], trickle: &[u8]) -> (String, Duration) {
    let started = std::time::Instant::now();
    let s = TcpStream::connect(to).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(head).await.expect("write head");
    let trickle = trickle.to_vec();
    let writer = tokio::spawn(async move {
        for b in trickle {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), rd.read_to_end(&mut out))
        .await
        .expect("the gateway hung up within 15s")
        .unwrap_or(0);
    writer.abort();
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn trickling_heads_and_bodies_are_cut_off_by_total_deadlines() {
    let gw = spawn_with(|c| {
        c.limits.header_timeout_secs = 1;
        c.limits.body_timeout_secs = 1;
    })
    .await;
    gw.create_account(json!({"name": "t", "allow_unverified": true}))
        .await;
    let to = addr(&gw);
    // A head that never ends, one byte at a time: each byte arrives well within any
    // per-read timeout, so only a deadline on the whole head stops it.
    let filler = vec![b'a'; 200];
    let (text, took) = trickle(&to, b"POST /hooks/t HTTP/1.1\r\nx-slow: ", &filler).await;
    assert!(!text.starts_with("HTTP/1.1 2"), "{text}");
    assert!(took < Duration::from_secs(6), "head cut off after {took:?}");
    // The same with a body: 408 with problem+json, and one audit row.
    let (text, took) = trickle(
        &to,
        b"POST /hooks/t HTTP/1.1\r\nhost: x\r\ncontent-length: 200\r\n\r\n",
        &filler,
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("read_timeout"));
    assert!(took < Duration::from_secs(6), "body cut off after {took:?}");
    assert_eq!(gw.events("account=t&reason=read_timeout").await.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_endless_chunked_body_gets_413_without_being_read_whole() {
    let gw = spawn_with(|c| c.limits.max_body_bytes = 64 * 1024).await;
    gw.create_account(json!({"name": "big", "allow_unverified": true}))
        .await;
    let s = TcpStream::connect(addr(&gw)).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&sent);
    // No Content-Length: the size is unknown until the limit is crossed. Up to 256 MiB.
    let writer = tokio::spawn(async move {
        let head = b"POST /hooks/big HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
        if wr.write_all(head).await.is_err() {
            return;
        }
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        for _ in 0..4096 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            counter.fetch_add(0x10000, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut out))
        .await
        .expect("answered")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("too_large"));
    writer.abort();
    let _ = writer.await;
    let total = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        total < 256 << 20,
        "the gateway stopped reading long before the end ({total} bytes sent)"
    );
    let rows = gw.events("account=big&reason=too_large").await;
    assert_eq!(rows.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_head_over_the_limit_gets_431_problem_json_and_on_hooks_one_audit_row() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "heady", "allow_unverified": true}))
        .await;
    let limit = gw.config.limits.max_header_bytes;
    let big = "a".repeat(limit + 100);
    let a = gw
        .post_hook("heady", &[("x-big", big.as_str())], r#"{"id":"h1"}"#)
        .await;
    assert_eq!(a.status, 431);
    assert_eq!(problem_code(&a), "headers_too_large");
    // The body was never read, so the connection cannot carry another request.
    assert_eq!(
        a.headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    assert!(
        a.json()["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with(&format!("the limit is {limit} bytes"))),
        "{:?}",
        a.json()
    );
    let row = gw
        .event(a.json()["id"].as_str().expect("the audit id"))
        .await;
    assert_eq!(row["status"], "rejected");
    assert_eq!(row["reason"], "headers_too_large");
    assert_eq!(row["account"], "heady");
    assert_eq!(row["body_size"], 0, "the body is not read");
    // One row for the one request; a head within the limit goes on as usual.
    assert_eq!(gw.events("account=heady").await.len(), 1);
    let fine = "a".repeat(limit / 2);
    let ok = gw
        .post_hook("heady", &[("x-big", fine.as_str())], r#"{"id":"h2"}"#)
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());

    // Off /hooks the answer is the same problem, with no row.
    let admin = gw
        .client
        .send(
            hyper::Method::GET,
            &format!("{}/healthz", gw.public),
            &[("x-big", big.as_str())],
            "",
        )
        .await
        .expect("answered");
    assert_eq!(admin.status, 431);
    assert_eq!(problem_code(&admin), "headers_too_large");

    // A head well past twice the limit is refused by hyper before there is a request to
    // route: a bare 431, and no row (ARCHITECTURE.md, Known limits).
    let mut s = TcpStream::connect(addr(&gw)).await.expect("connect");
    let giant = format!(
        "POST /hooks/heady HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(8 * limit)
    );
    let _ = s.write_all(giant.as_bytes()).await;
    let text = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(gw.events("account=heady").await.len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn forged_requests_do_not_use_up_a_senders_rate_limit() {
    let gw = spawn_with(|c| {
        c.limits.account_rate_per_sec = 1;
        c.limits.account_burst = 2;
    })
    .await;
    gw.create_account(json!({
        "name": "guarded",
        "auth": {"type": "bearer", "token": "guarded-token-1"},
    }))
    .await;
    // A flood without the key: each is refused as unverified and recorded, none as
    // rate-limited.
    for _ in 0..10 {
        let a = gw
            .post_hook("guarded", &[("authorization", "Bearer wrong")], "{}")
            .await;
        assert_eq!(a.status, 401);
    }
    assert_eq!(gw.events("account=guarded&reason=bad_auth").await.len(), 10);
    assert!(
        gw.events("account=guarded&reason=rate_limited")
            .await
            .is_empty()
    );
    // The real sender still has its whole burst.
    for id in ["g1", "g2"] {
        let a = gw
            .post_hook(
                "guarded",
                &[("authorization", "Bearer guarded-token-1")],
                format!(r#"{{"id":"{id}"}}"#),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.json());
    }
    gw.stop().await;
}

#[tokio::test]
async fn nul_characters_in_a_payload_are_recorded_on_every_engine() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "nul", "allow_unverified": true,
        "paths": {"event_id": "$.id", "sender": "$.from", "event_type": "$.type",
                  "params": {"note": "$.note"}}}))
        .await;
    let body = r#"{"id":"ev\u0000","from":"+255\u0000700","type":"\u0000","note":"a\u0000b"}"#;
    let json = [("content-type", "application/json")];
    let first = gw.post_hook("nul", &json, body).await;
    assert_eq!(first.status, 200, "{:?}", first.json());
    assert_eq!(first.json()["status"], "accepted");
    let row = gw.event(first.json()["id"].as_str().unwrap_or("")).await;
    assert_eq!(row["event_id"], r#""ev\u0000""#);
    assert_eq!(row["sender"], r#""+255\u0000700""#);
    assert_eq!(row["params"]["note"], "a\u{0}b");
    // The same id again is a duplicate, as any other id would be.
    let again = gw.post_hook("nul", &json, body).await;
    assert_eq!(again.json()["status"], "duplicate");
    // A key holding a NUL, repeated: refused as ambiguous, and the refusal is recorded.
    let before = gw.audit_rows();
    let dup = gw
        .post_hook("nul", &json, r#"{"\u0000":1,"\u0000":2}"#)
        .await;
    assert_eq!(dup.status, 400, "{:?}", dup.json());
    assert_eq!(gw.audit_rows() - before, 1);
    let verify = gw
        .admin_call(hyper::Method::GET, "/v1/audit/verify", None)
        .await;
    assert_eq!(verify.status, 200, "{:?}", verify.json());
    gw.stop().await;
}
