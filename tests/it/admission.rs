//! Who gets a connection: with the default configuration one address holding thousands of
//! idle sockets cannot lock other senders out, and behind a trusted proxy each request
//! counts against the client the proxy names, while nobody else can name one.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::*;

/// Connects from a chosen loopback source address, or gives up after `within`.
async fn connect_from(
    source: [u8; 4],
    to: std::net::SocketAddr,
    within: Duration,
) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(std::net::SocketAddr::from((source, 0))).ok()?;
    tokio::time::timeout(within, socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// Writes `request` and reads the answer until the gateway closes the connection.
async fn exchange(s: &mut TcpStream, request: &[u8]) -> String {
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn public_addr(gw: &TestGateway) -> std::net::SocketAddr {
    gw.config.listen
}

/// Raises this process's open-file limit (clients and gateway share it here) to at most
/// `want`; returns what it is now.
fn raise_open_files(want: u64) -> u64 {
    rlimit::increase_nofile_limit(want).unwrap_or(1024)
}

#[tokio::test]
async fn thousands_of_idle_sockets_from_one_address_do_not_lock_out_another_sender() {
    let files = raise_open_files(8192);
    // Room for the hog's sockets, the gateway's side of those it holds, and the rest. Two
    // thousand fill the listener's slots and then its accept queue (1,024) to the brim.
    let hogs = 2000.min(files.saturating_sub(2000) as usize);
    assert!(
        hogs > 1024 + 128 * 2,
        "the test needs more sockets than the listener has slots (open-files limit {files})"
    );
    let gw = spawn_gateway().await;
    assert!(gw.config.limits.max_connections_per_ip > 0, "on by default");
    gw.create_account(json!({"name": "genuine", "allow_unverified": true}))
        .await;
    let to = public_addr(&gw);
    // The hog: thousands of connections from 127.0.0.1 that never send a byte, opened a
    // few dozen at a time so that each is really queued for the gateway (a burst of SYNs
    // past the kernel's queues would leave half-open sockets that the gateway never sees),
    // until they are all open or the gateway's accept queue is full.
    let mut held = Vec::new();
    while held.len() < hogs {
        let mut opening = JoinSet::new();
        for _ in 0..32 {
            opening.spawn(connect_from([127, 0, 0, 1], to, Duration::from_secs(2)));
        }
        let before = held.len();
        while let Some(s) = opening.join_next().await {
            if let Ok(Some(s)) = s {
                held.push(s);
            }
        }
        if held.len() < before + 32 {
            break;
        }
    }
    // A genuine sender on another address is served promptly meanwhile.
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let Some(mut s) = connect_from([127, 0, 0, 2], to, Duration::from_secs(5)).await else {
            return "(could not connect)".to_owned();
        };
        exchange(
            &mut s,
            b"POST /hooks/genuine HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 11\r\n\r\n{\"id\":\"g\"}\n",
        )
        .await
    })
    .await
    .unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the genuine sender was not served within 5s while {} idle sockets were held \
         ({:?}): {answer:?}",
        held.len(),
        started.elapsed()
    );
    drop(held);
    gw.stop().await;
}

/// A request from the proxy for `client`, declaring a 2-byte body it has not sent yet.
fn proxied_head(client: &str) -> String {
    format!(
        "POST /hooks/lb HTTP/1.1\r\nhost: x\r\nx-forwarded-for: {client}\r\n\
         expect: 100-continue\r\ncontent-length: 2\r\n\r\n"
    )
}

/// Sends `head` and waits until the gateway asks for the body: the request is in flight.
async fn in_flight(s: &mut TcpStream, head: &str) {
    s.write_all(head.as_bytes()).await.expect("write head");
    let mut buf = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .expect("asked for the body in time")
        .expect("read");
    assert!(
        buf.starts_with(b"HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_limited_and_nobody_else_names_one() {
    let gw = spawn_with(|c| {
        c.limits.max_connections_per_ip = 2;
        c.limits.trusted_proxies = vec!["127.0.0.3/32".parse().expect("cidr")];
    })
    .await;
    gw.create_account(json!({"name": "lb", "allow_unverified": true}))
        .await;
    let to = public_addr(&gw);
    let wait = Duration::from_secs(5);
    let mut proxy = Vec::new();
    // The proxy holds more connections than one address may: it is not counted by them.
    for _ in 0..5 {
        proxy.push(
            connect_from([127, 0, 0, 3], to, wait)
                .await
                .expect("proxy connects"),
        );
    }
    // Two requests of client 203.0.113.9 in flight, the client's share.
    in_flight(&mut proxy[0], &proxied_head("203.0.113.9")).await;
    in_flight(&mut proxy[1], &proxied_head("198.51.100.1, 203.0.113.9")).await;
    // A third of the same client is refused with 429 and one audit row.
    let refused = exchange(
        &mut proxy[2],
        format!("{}{{}}", proxied_head("203.0.113.9")).as_bytes(),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("too_many_connections"), "{refused}");
    assert_eq!(
        gw.events("account=lb&reason=too_many_connections")
            .await
            .len(),
        1
    );
    // What the client itself put left of the proxy's entry does not make it someone else.
    let spoofed = exchange(
        &mut proxy[3],
        format!("{}{{}}", proxied_head("203.0.113.77, 203.0.113.9")).as_bytes(),
    )
    .await;
    assert!(spoofed.starts_with("HTTP/1.1 429"), "{spoofed}");
    // Another client through the same proxy is served.
    let other = exchange(
        &mut proxy[4],
        b"POST /hooks/lb HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 203.0.113.10\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // The requests in flight finish, and the client has its share back.
    for s in &mut proxy[..2] {
        s.write_all(b"{}").await.expect("body");
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.expect("answer");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    drop(proxy);
    let mut again = connect_from([127, 0, 0, 3], to, wait)
        .await
        .expect("proxy connects");
    let served = exchange(
        &mut again,
        b"POST /hooks/lb HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 203.0.113.9\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");

    // Anyone else's X-Forwarded-For is ignored: 127.0.0.4 is limited by its own address.
    let _hog1 = connect_from([127, 0, 0, 4], to, wait)
        .await
        .expect("connect");
    let _hog2 = connect_from([127, 0, 0, 4], to, wait)
        .await
        .expect("connect");
    let mut third = connect_from([127, 0, 0, 4], to, wait)
        .await
        .expect("connect");
    let text = exchange(
        &mut third,
        b"POST /hooks/lb HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 203.0.113.11\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(text, "", "closed at once, not served");
    gw.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_whole_head_is_closed_at_the_head_timeout() {
    let gw = spawn_with(|c| c.limits.header_timeout_secs = 1).await;
    gw.create_account(json!({"name": "idle", "allow_unverified": true}))
        .await;
    let to = public_addr(&gw);
    let wait = Duration::from_secs(5);
    // Silent from the start, and idle after one answered request on a kept-alive
    // connection: both hold a slot only until the head timeout.
    let mut silent = connect_from([127, 0, 0, 1], to, wait)
        .await
        .expect("connect");
    let mut kept = connect_from([127, 0, 0, 1], to, wait)
        .await
        .expect("connect");
    kept.write_all(b"POST /hooks/idle HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    for s in [&mut silent, &mut kept] {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(8), s.read_to_end(&mut out))
            .await
            .expect("the gateway closed the idle connection")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&out);
        assert!(
            !text.contains("HTTP/1.1 4") && !text.contains("HTTP/1.1 5"),
            "{text}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
}
