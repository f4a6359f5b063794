//! The load generator: signed, unique webhook requests over keep-alive HTTP/1 connections,
//! at maximum rate or at a fixed rate, with latency histograms.
//!
//! Owns request construction (a fresh event id and timestamp per request, HMAC-SHA256 over
//! `{timestamp}.{body}`, so dedupe and freshness are really exercised) and measurement.
//! At a fixed rate, latency is measured from each request's scheduled send time, so a
//! stalled server cannot hide its queueing (no coordinated omission). The schedule is kept
//! by a pacing thread, not by tokio's timer: the timer wheel rounds every wake-up to the
//! next millisecond, which would add up to a millisecond of the generator's own lateness to
//! every measured latency. It must never target anything but the address it is given (the
//! suite gives only 127.0.0.1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// What to send and how hard.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The request path, e.g. `/hooks/bench`.
    pub path: String,
    /// The HMAC secret.
    pub secret: String,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Requests per second in total; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// Approximate body size in bytes.
    pub body_bytes: usize,
    /// Distinguishes event ids across runs against the same database.
    pub run_tag: String,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Completed 2xx answers.
    pub ok: u64,
    /// Non-2xx answers.
    pub http_errors: u64,
    /// Connection or protocol failures.
    pub transport_errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies in microseconds.
    pub latency: Histogram<u64>,
}

impl LoadResult {
    /// 2xx answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Builds one signed request body and its headers.
pub fn signed_request(spec: &LoadSpec, conn: usize, n: u64) -> (Bytes, String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut body = format!(
        "{{\"id\":\"evt_{}_{conn}_{n}\",\"type\":\"payment.succeeded\",\"customer\":{{\"phone\":\"+2557{:08}\"}},\"order\":{{\"id\":{n}}},\"amount\":25000,\"currency\":\"TZS\",\"pad\":\"",
        spec.run_tag,
        (conn as u64 * 1_000_003 + n) % 100_000_000
    );
    while body.len() + 2 < spec.body_bytes {
        body.push('x');
    }
    body.push_str("\"}");
    let ts = now.to_string();
    let sig = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(spec.secret.as_bytes()) {
        Ok(mut m) => {
            m.update(ts.as_bytes());
            m.update(b".");
            m.update(body.as_bytes());
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    };
    (Bytes::from(body), ts, sig)
}

/// Runs the load and returns what it measured.
pub async fn run(spec: LoadSpec) -> LoadResult {
    let spec = Arc::new(spec);
    let stop = Arc::new(AtomicBool::new(false));
    let ticket = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(Semaphore::new(0));
    let start = Instant::now();
    let pacer = spec.rate.map(|rate| {
        let (slots, stop, end) = (Arc::clone(&slots), Arc::clone(&stop), spec.duration);
        std::thread::spawn(move || pace(rate, start, end, &slots, &stop))
    });
    let mut tasks = Vec::new();
    for conn in 0..spec.connections {
        let (spec, stop, ticket, slots) = (
            Arc::clone(&spec),
            Arc::clone(&stop),
            Arc::clone(&ticket),
            Arc::clone(&slots),
        );
        tasks.push(tokio::spawn(async move {
            connection(spec, conn, stop, ticket, slots, start).await
        }));
    }
    let deadline = start + spec.duration;
    tokio::time::sleep_until(deadline.into()).await;
    stop.store(true, Ordering::Relaxed);
    // Connections waiting for a slot that will never come are released.
    slots.close();
    if let Some(p) = pacer {
        let _ = p.join();
    }
    let mut total = LoadResult {
        ok: 0,
        http_errors: 0,
        transport_errors: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
    };
    for t in tasks {
        if let Ok(r) = t.await {
            total.ok += r.ok;
            total.http_errors += r.http_errors;
            total.transport_errors += r.transport_errors;
            let _ = total.latency.add(&r.latency);
        }
    }
    total.elapsed = start.elapsed();
    total
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits; creation cannot fail with these bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Releases one send slot per scheduled instant, `rate` per second from `start`, on an OS
/// thread whose sleep is accurate to tens of microseconds. Slots not taken accumulate: a
/// server that stalls finds the requests it owes waiting, each timed from its own instant.
fn pace(rate: f64, start: Instant, end: Duration, slots: &Semaphore, stop: &AtomicBool) {
    let mut released: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().min(end).as_secs_f64() * rate) as u64 + 1;
        let total = (end.as_secs_f64() * rate) as u64;
        let due = due.min(total);
        if due > released {
            slots.add_permits((due - released) as usize);
            released = due;
        }
        if released >= total {
            return;
        }
        let next = start + Duration::from_secs_f64(released as f64 / rate);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

async fn connection(
    spec: Arc<LoadSpec>,
    conn: usize,
    stop: Arc<AtomicBool>,
    ticket: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
    start: Instant,
) -> LoadResult {
    let mut r = LoadResult {
        ok: 0,
        http_errors: 0,
        transport_errors: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
    };
    let mut n: u64 = 0;
    'reconnect: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(spec.addr).await else {
            r.transport_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, driver)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
        else {
            r.transport_errors += 1;
            continue;
        };
        tokio::spawn(driver);
        while !stop.load(Ordering::Relaxed) {
            // At a fixed rate each request has a slot in one global schedule; the k-th slot
            // taken is released at the k-th instant (the pacer's, FIFO), and is timed from it.
            let scheduled = match spec.rate {
                Some(rate) => {
                    match slots.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => break 'reconnect,
                    }
                    let k = ticket.fetch_add(1, Ordering::Relaxed);
                    start + Duration::from_secs_f64(k as f64 / rate)
                }
                None => Instant::now(),
            };
            n += 1;
            let (body, ts, sig) = signed_request(&spec, conn, n);
            let req = Request::post(spec.path.as_str())
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("x-timestamp", ts)
                .header("x-signature", sig)
                .body(Full::new(body));
            let Ok(req) = req else {
                r.transport_errors += 1;
                continue;
            };
            if sender.ready().await.is_err() {
                r.transport_errors += 1;
                continue 'reconnect;
            }
            match sender.send_request(req).await {
                Ok(res) => {
                    let status = res.status();
                    let drained = res.into_body().collect().await.is_ok();
                    let micros = scheduled.elapsed().as_micros() as u64;
                    let _ = r.latency.record(micros.max(1));
                    if status.is_success() && drained {
                        r.ok += 1;
                    } else {
                        r.http_errors += 1;
                    }
                }
                Err(_) => {
                    r.transport_errors += 1;
                    continue 'reconnect;
                }
            }
        }
    }
    r
}
