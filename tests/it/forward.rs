//! Listeners end to end: a real chat-connector test server on port 0 whose answers a test
//! scripts (200, 404, 500, 429 with Retry-After, or hang), delivery outcomes, retries,
//! redelivery, exactly-once across a restart, and the resumable live stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::support::*;

use crate::standin::{Reply, StandIn as Chat};

async fn gateway_for(chat: &Chat) -> TestGateway {
    gateway_for_with(chat, |_| {}).await
}

/// A gateway sending to `chat` with fast retries, after `tweak` adjusts its configuration.
async fn gateway_for_with(
    chat: &Chat,
    tweak: impl FnOnce(&mut hookgate::config::Config),
) -> TestGateway {
    let url = chat.url.clone();
    spawn_with(move |c| {
        c.chat.url = Some(url);
        c.chat.token = Some(hookgate::secret::Secret::new("chat-token-123"));
        c.chat.timeout_ms = 300;
        c.chat.retry_base_ms = 20;
        c.chat.retry_max_ms = 100;
        c.chat.max_attempts = 3;
        c.stream.heartbeat_secs = 1;
        tweak(c);
    })
    .await
}

async fn listening_account(gw: &TestGateway, name: &str, extra: Value) {
    let mut spec = json!({
        "name": name,
        "auth": {"type": "bearer", "token": "pay-token-1"},
        "paths": {"sender": "$.phone", "event_id": "$.id", "event_type": "$.type",
                  "params": {"amount": "$.amount", "currency": "$.currency"}},
        "forward": {"send_to_user": true, "template": "Your payment of {{params.amount}} {{params.currency}} was received"}
    });
    hookgate::account::merge_patch(&mut spec, &extra);
    gw.create_account(spec).await;
    let on = gw
        .admin_call(
            Method::POST,
            &format!("/v1/accounts/{name}/listening"),
            Some(json!({"listening": true})),
        )
        .await;
    assert_eq!(on.status, 200, "{:?}", on.json());
}

async fn pay(gw: &TestGateway, account: &str, id: &str) -> String {
    let body = json!({"id": id, "type": "payment.succeeded", "phone": "+255700000001", "amount": "25,000", "currency": "TZS"});
    pay_with(gw, account, &body).await
}

/// Posts `body` to a listening account; asserts a 200 and returns the event's log id.
async fn pay_with(gw: &TestGateway, account: &str, body: &Value) -> String {
    let a = gw
        .post_hook(
            account,
            &[("authorization", "Bearer pay-token-1")],
            body.to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    a.json()["id"].as_str().unwrap_or("").to_owned()
}

/// Waits until the event's forward_status is `want` (the state changes after the chat
/// platform answered, when the gateway records it).
async fn settled(gw: &TestGateway, id: &str, want: &str) -> Value {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tick.tick().await;
        let e = gw.event(id).await;
        if e["forward_status"] == want {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never became {want}: {e}"
        );
    }
}

#[tokio::test]
async fn an_accepted_payment_reaches_the_chat_with_its_rendered_message() {
    let mut chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({})).await;
    let id = pay(&gw, "pay", "p1").await;
    let got = chat.next().await;
    assert_eq!(got.json()["to"], "+255700000001");
    assert_eq!(
        got.json()["text"],
        "Your payment of 25,000 TZS was received"
    );
    assert_eq!(
        (
            got.json()["account"].as_str(),
            got.json()["event_id"].as_str(),
            got.json()["event_type"].as_str()
        ),
        (Some("pay"), Some("p1"), Some("payment.succeeded"))
    );
    assert_eq!(got.header("authorization"), "Bearer chat-token-123");
    assert!(!got.header("idempotency-key").is_empty());
    let e = settled(&gw, &id, "delivered").await;
    assert_eq!(e["forward_attempts"].as_array().map(Vec::len), Some(1));
    // A retry of the same event by the sender is a duplicate and forwards nothing.
    let dup = gw
        .post_hook(
            "pay",
            &[("authorization", "Bearer pay-token-1")],
            json!({"id": "p1", "phone": "+1"}).to_string(),
        )
        .await;
    assert_eq!(dup.json()["status"], "duplicate");
    let id2 = pay(&gw, "pay", "p2").await;
    assert_eq!(
        chat.next().await.json()["event_id"],
        "p2",
        "the next request is the next event, not the duplicate"
    );
    settled(&gw, &id2, "delivered").await;
    chat.nothing_more();
    gw.stop().await;
}

#[tokio::test]
async fn no_session_is_final_and_retries_honour_retry_after_until_delivered() {
    let mut chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({})).await;
    chat.script(&[Reply::Status(404)]);
    let lost = pay(&gw, "pay", "n1").await;
    assert_eq!(chat.next().await.answered, Some(404));
    let e = settled(&gw, &lost, "no_session").await;
    assert_eq!(e["forward_attempts"][0]["http_status"], 404);

    chat.script(&[Reply::Status(500), Reply::RetryAfter(429, "0")]);
    let id = pay(&gw, "pay", "r1").await;
    let (a, b, c) = (chat.next().await, chat.next().await, chat.next().await);
    assert_eq!(
        (a.answered, b.answered, c.answered),
        (Some(500), Some(429), Some(200))
    );
    assert!(
        a.header("idempotency-key") == b.header("idempotency-key")
            && b.header("idempotency-key") == c.header("idempotency-key"),
        "one idempotency key for every attempt"
    );
    let e = settled(&gw, &id, "delivered").await;
    let outcomes: Vec<&str> = e["forward_attempts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["outcome"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(outcomes, ["retrying", "retrying", "delivered"]);
    chat.nothing_more();
    gw.stop().await;
}

#[tokio::test]
async fn dead_after_the_limit_then_redelivered_and_a_hang_times_out() {
    let mut chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({})).await;
    chat.answer_with(Reply::Status(503));
    let id = pay(&gw, "pay", "d1").await;
    for _ in 0..3 {
        assert_eq!(chat.next().await.answered, Some(503));
    }
    let e = settled(&gw, &id, "dead").await;
    assert_eq!(e["forward_attempts"].as_array().map(Vec::len), Some(3));
    chat.nothing_more();

    // Redeliver: a fresh budget; the first attempt hangs and times out, the next succeeds.
    chat.script(&[Reply::Hang]);
    chat.answer_with(Reply::Status(200));
    assert_eq!(
        gw.admin_call(Method::POST, &format!("/v1/events/{id}/redeliver"), None)
            .await
            .status,
        202
    );
    assert_eq!(
        gw.admin_call(Method::POST, "/v1/events/evt_999/redeliver", None)
            .await
            .status,
        404
    );
    assert_eq!(chat.next().await.answered, None, "the hung attempt");
    assert_eq!(chat.next().await.answered, Some(200));
    let e = settled(&gw, &id, "delivered").await;
    let attempts = e["forward_attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(attempts.len(), 5);
    assert!(
        attempts[3]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no answer")),
        "{attempts:?}"
    );
    // Redelivering a delivered message is refused; the redelivery is in the change log.
    assert_eq!(
        gw.admin_call(Method::POST, &format!("/v1/events/{id}/redeliver"), None)
            .await
            .status,
        404
    );
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=event.redelivered", None)
        .await
        .json();
    assert_eq!(changes["changes"].as_array().map(Vec::len), Some(1));
    gw.stop().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_retries_still_delivers_exactly_once() {
    let mut chat = Chat::start().await;
    let mut gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({})).await;
    chat.answer_with(Reply::Status(500));
    let id = pay(&gw, "pay", "x1").await;
    let first = chat.next().await;
    assert_eq!(first.answered, Some(500));
    settled(&gw, &id, "retrying").await;
    // The connector recovers while the gateway restarts; the outbox survives it.
    chat.answer_with(Reply::Status(200));
    gw = gw.restart().await;
    let mut delivered = 0;
    let mut keys = vec![first.header("idempotency-key").to_owned()];
    loop {
        let got = chat.next().await;
        keys.push(got.header("idempotency-key").to_owned());
        if got.answered == Some(200) {
            delivered += 1;
            break;
        }
    }
    settled(&gw, &id, "delivered").await;
    assert_eq!(delivered, 1);
    chat.nothing_more();
    keys.dedup();
    assert_eq!(
        keys.len(),
        1,
        "the same idempotency key before and after the restart"
    );
    gw.stop().await;
}

#[tokio::test]
async fn only_listening_accounts_forward_and_event_type_filters_apply() {
    let mut chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    gw.create_account(
        json!({"name": "quiet", "auth": {"type": "bearer", "token": "pay-token-1"},
        "paths": {"sender": "$.phone"}, "forward": {"send_to_user": true, "template": "hi"}}),
    )
    .await;
    let quiet = pay(&gw, "quiet", "q1").await;
    assert_eq!(gw.event(&quiet).await["forward_status"], Value::Null);

    listening_account(
        &gw,
        "picky",
        json!({"forward": {"event_types": ["order.paid"]}}),
    )
    .await;
    let skipped = pay(&gw, "picky", "s1").await;
    assert_eq!(gw.event(&skipped).await["forward_status"], "skipped");
    let body =
        json!({"id": "s2", "type": "order.paid", "phone": "+2557", "amount": 1, "currency": "TZS"});
    let paid = pay_with(&gw, "picky", &body).await;
    assert_eq!(chat.next().await.json()["event_id"], "s2");
    settled(&gw, &paid, "delivered").await;
    chat.nothing_more();

    // Saving a broken template is refused with the field named.
    let bad = gw
        .admin_call(
            Method::PATCH,
            "/v1/accounts/picky",
            Some(json!({"forward": {"template": "Hi {{nme}}"}})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["field"], "forward.template");
    let changes = gw
        .admin_call(
            Method::GET,
            "/v1/changes?account=picky&action=listening.on",
            None,
        )
        .await
        .json();
    assert_eq!(changes["changes"].as_array().map(Vec::len), Some(1));
    gw.stop().await;
}

/// Opens the live stream and returns a reader of its events.
async fn stream(gw: &TestGateway, last_event_id: Option<i64>) -> hyper::body::Incoming {
    let addr = gw.admin.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::get("/v1/stream?account=pay")
        .header("host", "x")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    let res = sender
        .send_request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("stream answer");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    res.into_body()
}

/// The id and data of one server-sent event block; `None` for a comment.
fn sse_event(block: &str) -> Option<(i64, Value)> {
    let id = block
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .and_then(|v| v.parse().ok())?;
    let data = block
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .and_then(|v| serde_json::from_str(v).ok())?;
    Some((id, data))
}

/// Reads `n` events (id, data) from a stream, skipping comments.
async fn read_events(
    body: &mut hyper::body::Incoming,
    buf: &mut String,
    n: usize,
) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    while out.len() < n {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(event) = sse_event(&block) {
                out.push(event);
            }
        }
        if out.len() >= n {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a frame within 10s");
        let frame = frame.expect("stream open").expect("frame");
        if let Ok(data) = frame.into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
        }
    }
    out
}

#[tokio::test]
async fn the_stream_resumes_with_last_event_id_and_misses_nothing() {
    let chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({"forward": {"send_to_user": false}})).await;
    let mut body = stream(&gw, None).await;
    let mut buf = String::new();
    let mut first = Vec::new();
    for i in 0..3 {
        first.push(pay(&gw, "pay", &format!("s{i}")).await);
    }
    let got = read_events(&mut body, &mut buf, 3).await;
    assert_eq!(
        got.iter()
            .map(|(_, d)| d["id"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>(),
        first
    );
    let last = got[2].0;
    drop(body);
    // While the listener is away, more events arrive.
    let mut missed = Vec::new();
    for i in 3..6 {
        missed.push(pay(&gw, "pay", &format!("s{i}")).await);
    }
    let mut body = stream(&gw, Some(last)).await;
    let mut buf = String::new();
    let replayed = read_events(&mut body, &mut buf, 3).await;
    assert_eq!(
        replayed
            .iter()
            .map(|(_, d)| d["id"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>(),
        missed
    );
    // And live events follow the replay, in order, with no repeat.
    let live = pay(&gw, "pay", "s6").await;
    let next = read_events(&mut body, &mut buf, 1).await;
    assert_eq!(next[0].1["id"], live.as_str());
    assert!(next[0].0 > replayed[2].0);
    drop(body);
    gw.stop().await;
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_and_events_tail_prints_each_event() {
    let chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({"forward": {"send_to_user": false}})).await;
    let mut body = stream(&gw, None).await;
    let mut text = String::new();
    while !text.contains(": heartbeat") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a heartbeat within 5s");
        if let Ok(data) = frame.expect("stream open").expect("frame").into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    drop(body);

    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["events", "tail", "--account", "pay"])
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run events tail");
    let stdout = tail.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    // Events committed before tail connects are replayed too (from the start of the log).
    let id = pay(&gw, "pay", "t1").await;
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10s")
        .expect("read")
        .expect("a line");
    let printed: Value = serde_json::from_str(&line).expect("one JSON event per line");
    assert_eq!(printed["id"], id.as_str());
    assert_eq!(printed["event_id"], "t1");
    let _ = tail.kill().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_consumer_that_stops_reading_is_cut_off_and_resumes_from_the_log_missing_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let chat = Chat::start().await;
    let gw = Arc::new(gateway_for(&chat).await);
    listening_account(&gw, "pay", json!({"forward": {"send_to_user": false}})).await;
    // A consumer that asks for the stream, then reads nothing, with a small window.
    let addr: std::net::SocketAddr = gw
        .admin
        .trim_start_matches("http://")
        .parse()
        .expect("admin address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut slow = socket.connect(addr).await.expect("connect");
    slow.write_all(
        format!(
            "GET /v1/stream?account=pay HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("request");

    // Events of about 2 KB each, in concurrent bursts, until the gateway reports the cut.
    let pad = "x".repeat(2000);
    let mut posted: Vec<String> = Vec::new();
    while gw.metric("hookgate_stream_consumers_cut_total").await < 1.0 {
        assert!(
            posted.len() < 10_000,
            "a consumer that reads nothing was never cut off"
        );
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (gw, pad, base) = (Arc::clone(&gw), pad.clone(), posted.len());
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..16 {
                    let body = json!({"id": format!("slow-{base}-{t}-{i}"), "type": format!("payment.{pad}"),
                                      "phone": "+255700000001", "amount": "1", "currency": "TZS"});
                    ids.push(pay_with(&gw, "pay", &body).await);
                }
                ids
            }));
        }
        for t in tasks {
            posted.extend(t.await.expect("sender task"));
        }
    }

    // The cut stream ends: what was already on its way arrives, then the body's end.
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !raw.ends_with(b"\r\n0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut chunk))
            .await
            .expect("the cut stream ends within 10s")
            .expect("read");
        assert!(n > 0, "the connection closed before the stream's end");
        raw.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    let mut seen: Vec<(i64, String)> = Vec::new();
    for block in text.split("\n\n") {
        if let Some((id, data)) = sse_event(block) {
            seen.push((id, data["id"].as_str().unwrap_or("").to_owned()));
        }
    }
    assert!(
        !seen.is_empty() && seen.len() < posted.len(),
        "{} of {} events before the cut",
        seen.len(),
        posted.len()
    );

    // Resuming from the last event it got, the consumer gets the rest from the log.
    let last = seen.last().map(|(seq, _)| *seq);
    let mut body = stream(&gw, last).await;
    let mut buf = String::new();
    let rest = read_events(&mut body, &mut buf, posted.len() - seen.len()).await;
    drop(body);
    seen.extend(
        rest.into_iter()
            .map(|(seq, d)| (seq, d["id"].as_str().unwrap_or("").to_owned())),
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "every event once, in commit order"
    );
    let mut got: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    got.sort();
    posted.sort();
    assert_eq!(got, posted, "nothing missed");
    match Arc::try_unwrap(gw) {
        Ok(gw) => {
            gw.stop().await;
        }
        Err(_) => panic!("a sender task still holds the gateway"),
    }
}

#[tokio::test]
async fn status_messages_with_no_route_wait_without_the_worker_rereading_the_outbox() {
    // No connector configured: the messages wait, and nothing could send them, so
    // queuing them wakes nobody and the worker does not read the outbox for them.
    let gw = spawn_gateway().await;
    listening_account(&gw, "pay", json!({})).await;
    let before = gw.metric("hookgate_outbox_reads_total").await;
    for i in 0..10 {
        pay(&gw, "pay", &format!("q{i}")).await;
    }
    assert_eq!(gw.metric("hookgate_chat_backlog").await, 10.0);
    // Watched for a second more: a read or so, not one per message nor one every few
    // milliseconds.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = gw.metric("hookgate_outbox_reads_total").await;
    assert!(after >= 1.0, "the worker read the outbox when it started");
    let reads = after - before;
    assert!(
        reads <= 3.0,
        "{reads} reads of the outbox while ten unroutable messages were queued"
    );
    assert_eq!(gw.metric("hookgate_chat_backlog").await, 10.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_failing_chat_platform_pauses_the_accounts_messages_which_keep_their_attempts() {
    let mut chat = Chat::start().await;
    chat.answer_with(Reply::Status(503));
    let gw = gateway_for_with(&chat, |c| {
        c.chat.timeout_ms = 2_000;
        c.chat.retry_max_ms = 20;
        c.chat.max_attempts = 100;
        c.chat.concurrency = 1;
        c.chat.breaker_failures = 2;
        c.chat.breaker_probe_ms = 800;
    })
    .await;
    listening_account(&gw, "pay", json!({})).await;
    let first = pay(&gw, "pay", "b1").await;
    let second = pay(&gw, "pay", "b2").await;
    // One at a time: two attempts fail in a row, and the account's messages are paused.
    // Retries are due 20 ms later, yet nothing goes until the probe.
    assert_eq!(chat.next().await.answered, Some(503));
    assert_eq!(chat.next().await.answered, Some(503));
    let opened = std::time::Instant::now();
    chat.answer_with(Reply::Status(200));
    let paused = r#"hookgate_paused_lanes{kind="chat"}"#;
    while gw.metric(paused).await != 1.0 {
        assert!(
            opened.elapsed() < Duration::from_secs(5),
            "/metrics never showed the paused chat"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probe = chat.next().await;
    assert!(
        opened.elapsed() >= Duration::from_millis(700),
        "a message went {:?} after the pause began, before the probe interval",
        opened.elapsed()
    );
    assert_eq!(probe.answered, Some(200));
    assert_eq!(probe.json()["event_id"], "b1");
    // The probe closed the breaker: the other message follows. The pause spent nothing:
    // the two failures, the probe and this one are every attempt made.
    assert_eq!(chat.next().await.json()["event_id"], "b2");
    let attempts = |e: &Value| e["forward_attempts"].as_array().map_or(0, Vec::len);
    let first = attempts(&settled(&gw, &first, "delivered").await);
    let second = attempts(&settled(&gw, &second, "delivered").await);
    assert_eq!(first + second, 4, "attempts: {first} and {second}");
    assert_eq!(gw.metric(paused).await, 0.0, "resumed after the probe");
    chat.nothing_more();
    gw.stop().await;
}

#[tokio::test]
async fn metrics_show_the_chat_outbox_backlog_and_its_oldest_age() {
    // No connector configured: status messages wait in the outbox.
    let gw = spawn_gateway().await;
    listening_account(&gw, "pay", json!({})).await;
    assert_eq!(gw.metric("hookgate_chat_backlog").await, 0.0);
    pay(&gw, "pay", "w1").await;
    pay(&gw, "pay", "w2").await;
    assert_eq!(gw.metric("hookgate_chat_backlog").await, 2.0);
    assert!(gw.metric("hookgate_chat_oldest_pending_seconds").await >= 0.0);
    gw.stop().await;

    // Delivered messages leave the backlog.
    let mut chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({})).await;
    let id = pay(&gw, "pay", "d1").await;
    chat.next().await;
    settled(&gw, &id, "delivered").await;
    assert_eq!(gw.metric("hookgate_chat_backlog").await, 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_chat_message_goes_dead_and_a_bulk_redrive_delivers_it_with_the_same_key() {
    let mut chat = Chat::start().await;
    let gw = gateway_for(&chat).await;
    listening_account(&gw, "pay", json!({})).await;
    chat.answer_with(Reply::Status(503));
    let id = pay(&gw, "pay", "b1").await;
    let first = chat.next().await;
    assert_eq!(first.answered, Some(503));
    settled(&gw, &id, "retrying").await;
    for _ in 0..2 {
        assert_eq!(chat.next().await.answered, Some(503));
    }
    let e = settled(&gw, &id, "dead").await;
    let message = e["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["destination"] == "@chat")
        .cloned()
        .unwrap_or_else(|| panic!("the chat message is a delivery: {e}"));
    assert_eq!(message["status"], "dead");
    assert_eq!(message["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(e["forward_attempts"].as_array().map(Vec::len), Some(3));
    chat.nothing_more();

    // A bulk redrive of the account's dead chat messages sends it again, same key.
    chat.answer_with(Reply::Status(200));
    let redriven = gw
        .admin_call(
            Method::POST,
            "/v1/deliveries/redrive",
            Some(json!({"account": "pay", "destination": "@chat"})),
        )
        .await;
    assert_eq!(redriven.status, 202, "{:?}", redriven.json());
    assert_eq!(redriven.json()["requeued"], 1);
    let again = chat.next().await;
    assert_eq!(again.answered, Some(200));
    assert_eq!(
        again.header("idempotency-key"),
        first.header("idempotency-key"),
        "one idempotency key across the redrive"
    );
    let e = settled(&gw, &id, "delivered").await;
    let outcomes: Vec<&str> = e["forward_attempts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["outcome"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(outcomes, ["retrying", "retrying", "dead", "delivered"]);
    // The same message redelivered by its id, once more, for a delivered one.
    let dlv = message["id"].as_str().unwrap_or("").to_owned();
    let one = gw
        .admin_call(
            Method::POST,
            &format!("/v1/deliveries/{dlv}/redeliver"),
            None,
        )
        .await;
    assert_eq!(one.json()["requeued"], 1, "{:?}", one.json());
    assert_eq!(
        chat.next().await.header("idempotency-key"),
        first.header("idempotency-key")
    );
    settled(&gw, &id, "delivered").await;
    let changes = gw
        .admin_call(Method::GET, "/v1/changes?action=deliveries.redriven", None)
        .await
        .json();
    assert_eq!(changes["changes"].as_array().map(Vec::len), Some(2));
    chat.nothing_more();
    gw.stop().await;
}

#[tokio::test]
async fn an_event_for_a_destination_and_a_chat_is_two_deliveries_each_sent_once() {
    let mut chat = Chat::start().await;
    let mut endpoint = crate::destinations::Endpoint::start().await;
    let url = chat.url.clone();
    let gw = spawn_with(move |c| {
        c.chat.url = Some(url);
        c.chat.token = Some(hookgate::secret::Secret::new("chat-token-123"));
        c.egress.allow = vec!["127.0.0.0/8".into()];
    })
    .await;
    listening_account(&gw, "pay", json!({})).await;
    let made = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/pay/destinations",
            Some(json!({"name": "backend", "url": endpoint.url})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let id = pay(&gw, "pay", "both1").await;
    // Both rows exist as soon as the event is answered: they were in its commit.
    let e = gw.event(&id).await;
    let mut names: Vec<&str> = e["deliveries"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["destination"].as_str()).collect())
        .unwrap_or_default();
    names.sort_unstable();
    assert_eq!(names, ["@chat", "backend"], "{e}");
    let sent = endpoint.next().await;
    assert_eq!(sent.header("hookgate-event-id"), id);
    assert_eq!(chat.next().await.json()["event_id"], "both1");
    let e = settled(&gw, &id, "delivered").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = gw.event(&id).await;
        let done = e["deliveries"]
            .as_array()
            .is_some_and(|a| a.iter().all(|d| d["status"] == "delivered"));
        if done {
            for d in e["deliveries"].as_array().into_iter().flatten() {
                assert_eq!(d["attempts"], 1, "{d}");
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e["forward_attempts"].as_array().map(Vec::len), Some(1));
    endpoint.nothing_within(Duration::from_millis(300)).await;
    chat.nothing_more();
    gw.stop().await;
}

/// The chat outbox as a database before one outbox left it: a pending, a retrying, a dead
/// and a delivered message of account `pay` (their events pruned), with their attempts.
const OLD_OUTBOX: &str = "
    INSERT INTO outbox (seq, account, recipient, text, status, attempts, next_attempt_at,
        last_error) VALUES
        (1, 'pay', '+1', 'one', 'pending', 0, 1, NULL),
        (2, 'pay', '+2', 'two', 'retrying', 2, 2, 'HTTP 503'),
        (3, 'pay', '+3', 'three', 'dead', 3, 3, 'HTTP 503'),
        (4, 'pay', '+4', 'four', 'delivered', 1, 4, NULL);
    INSERT INTO forward_attempts (seq, attempt, at, outcome, http_status, detail) VALUES
        (2, 1, 1, 'retrying', 503, 'HTTP 503'), (2, 2, 2, 'retrying', 503, 'HTTP 503'),
        (3, 1, 1, 'retrying', 503, NULL), (3, 2, 2, 'retrying', 503, NULL),
        (3, 3, 3, 'dead', 503, NULL), (4, 1, 1, 'delivered', 200, NULL);";

#[tokio::test]
async fn a_database_with_the_old_chat_outbox_upgrades_and_delivers_what_waited() {
    let mut chat = Chat::start().await;
    let dir = tempfile::tempdir().expect("dir");
    // The schema version just before chat messages became deliveries, built by the
    // engine's own earlier migrations.
    let database = if on_postgres() {
        let url = crate::pg::server().fresh_database();
        hookgate::store::postgres::create_at_version(&url, 3)
            .await
            .expect("old schema");
        crate::pg::psql(&url, OLD_OUTBOX).expect("old rows");
        url
    } else {
        let path = dir.path().join("old.db");
        hookgate::store::sqlite::create_at_version(&path, 14).expect("old schema");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(OLD_OUTBOX).expect("old rows");
        path.to_string_lossy().into_owned()
    };
    let url = chat.url.clone();
    let gw = spawn_with(move |c| {
        c.database = database.into();
        c.chat.url = Some(url);
        c.chat.token = Some(hookgate::secret::Secret::new("chat-token-123"));
    })
    .await;
    // The pending and the retrying messages go, with the keys they always had.
    let mut keys = vec![
        chat.next().await.header("idempotency-key").to_owned(),
        chat.next().await.header("idempotency-key").to_owned(),
    ];
    keys.sort();
    assert_eq!(keys, ["hookgate-pay-1", "hookgate-pay-2"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gw.metric("hookgate_chat_backlog").await > 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the backlog drains");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    chat.nothing_more();
    // The dead one moved with its state: a redrive of the account's chat messages sends it.
    listening_account(&gw, "pay", json!({})).await;
    let redriven = gw
        .admin_call(
            Method::POST,
            "/v1/deliveries/redrive",
            Some(json!({"account": "pay", "destination": "@chat"})),
        )
        .await;
    assert_eq!(redriven.json()["requeued"], 1, "{:?}", redriven.json());
    assert_eq!(
        chat.next().await.header("idempotency-key"),
        "hookgate-pay-3"
    );
    gw.stop().await;
    drop(dir);
}

#[tokio::test]
async fn a_deleted_accounts_waiting_message_still_goes_and_its_destinations_are_cancelled() {
    // No connector yet: the message waits in the outbox beside a destination's delivery.
    let mut chat = Chat::start().await;
    let mut gw = spawn_with(|c| {
        c.egress.allow = vec!["127.0.0.0/8".into()];
        c.delivery.timeout_ms = 60_000;
    })
    .await;
    let mut endpoint = crate::destinations::Endpoint::start().await;
    endpoint.answer_with(crate::destinations::Reply::Status(503));
    listening_account(&gw, "pay", json!({})).await;
    let made = gw
        .admin_call(
            Method::POST,
            "/v1/accounts/pay/destinations",
            Some(json!({"name": "backend", "url": endpoint.url})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json());
    let id = pay(&gw, "pay", "gone1").await;
    endpoint.next().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = gw.event(&id).await;
        let recorded = e["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["destination"] == "backend" && d["status"] == "retrying");
        if recorded {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = gw
        .admin_call(Method::DELETE, "/v1/accounts/pay", None)
        .await;
    assert!(gone.status.is_success(), "{:?}", gone.json());
    let e = gw.event(&id).await;
    let status = |dest: &str| {
        e["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"] == dest)
            .map(|d| d["status"].clone())
    };
    assert_eq!(status("backend"), Some(json!("cancelled")), "{e}");
    assert_eq!(status("@chat"), Some(json!("pending")), "{e}");
    // A connector configured later receives it.
    gw.config.chat.url = Some(chat.url.clone());
    gw = gw.restart().await;
    assert_eq!(chat.next().await.json()["event_id"], "gone1");
    settled(&gw, &id, "delivered").await;
    gw.stop().await;
}
