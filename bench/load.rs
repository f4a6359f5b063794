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

use std::io::Write as _;

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
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
    /// Nothing measured yet.
    pub fn empty() -> LoadResult {
        LoadResult {
            ok: 0,
            http_errors: 0,
            transport_errors: 0,
            elapsed: Duration::ZERO,
            latency: new_histogram(),
        }
    }

    /// 2xx answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Builds one connection's signed requests: the HMAC key's state is computed once, the
/// body is written into a buffer that is reused once the previous request has gone, and
/// the timestamp's text is remade only when the second changes. What it sends is what a
/// provider would: every request has its own event id and the current time.
pub struct Signer {
    run_tag: String,
    conn: usize,
    body_bytes: usize,
    keyed: Option<Hmac<sha2::Sha256>>,
    buf: BytesMut,
    second: u64,
    ts: HeaderValue,
}

impl Signer {
    /// A signer for connection `conn` of a run.
    pub fn new(spec: &LoadSpec, conn: usize) -> Signer {
        Signer {
            run_tag: spec.run_tag.clone(),
            conn,
            body_bytes: spec.body_bytes,
            keyed: <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(spec.secret.as_bytes()).ok(),
            buf: BytesMut::new(),
            second: u64::MAX,
            ts: HeaderValue::from_static("0"),
        }
    }

    /// The `n`-th request's body, its `X-Timestamp` and its `X-Signature`.
    pub fn sign(&mut self, n: u64) -> (Bytes, HeaderValue, HeaderValue) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.second {
            self.second = now;
            self.ts = HeaderValue::from(now);
        }
        let conn = self.conn;
        self.buf.reserve(self.body_bytes + 160);
        let _ = write!(
            BufWriter(&mut self.buf),
            "{{\"id\":\"evt_{}_{conn}_{n}\",\"type\":\"payment.succeeded\",\"customer\":{{\"phone\":\"+2557{:08}\"}},\"order\":{{\"id\":{n}}},\"amount\":25000,\"currency\":\"TZS\",\"pad\":\"",
            self.run_tag,
            (conn as u64 * 1_000_003 + n) % 100_000_000
        );
        let pad = self.body_bytes.saturating_sub(self.buf.len() + 2);
        self.buf.resize(self.buf.len() + pad, b'x');
        self.buf.extend_from_slice(b"\"}");
        let body = self.buf.split().freeze();
        let sig = match self.keyed.clone() {
            Some(mut m) => {
                m.update(self.ts.as_bytes());
                m.update(b".");
                m.update(&body);
                let mut text = [0u8; 7 + 64];
                text[..7].copy_from_slice(b"sha256=");
                // Both are fixed sizes: 32 bytes of MAC, 64 hex digits.
                let _ = hex::encode_to_slice(m.finalize().into_bytes(), &mut text[7..]);
                HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
            }
            None => HeaderValue::from_static(""),
        };
        (body, self.ts.clone(), sig)
    }
}

/// `write!` into a `BytesMut` without `fmt::Write`'s UTF-8 detour.
struct BufWriter<'a>(&'a mut BytesMut);

impl std::io::Write for BufWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One signed request body, as the load sends it.
pub fn signed_body(spec: &LoadSpec, conn: usize, n: u64) -> Bytes {
    Signer::new(spec, conn).sign(n).0
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
    // One thread per core, each with a runtime of its own and its share of the
    // connections: a connection's wake-ups stay on its thread, with no work stealing and
    // no parking and unparking of idle workers between the cores.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(spec.connections.max(1));
    let mut workers = Vec::new();
    for t in 0..threads {
        let conns: Vec<usize> = (t..spec.connections).step_by(threads).collect();
        let (spec, stop, ticket, slots) = (
            Arc::clone(&spec),
            Arc::clone(&stop),
            Arc::clone(&ticket),
            Arc::clone(&slots),
        );
        workers.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok::<_, std::io::Error>(rt.block_on(async move {
                let tasks: Vec<_> = conns
                    .into_iter()
                    .map(|conn| {
                        let (spec, stop, ticket, slots) = (
                            Arc::clone(&spec),
                            Arc::clone(&stop),
                            Arc::clone(&ticket),
                            Arc::clone(&slots),
                        );
                        tokio::spawn(connection(spec, conn, stop, ticket, slots, start))
                    })
                    .collect();
                let mut results = Vec::with_capacity(tasks.len());
                for t in tasks {
                    if let Ok(r) = t.await {
                        results.push(r);
                    }
                }
                results
            }))
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
    let mut total = LoadResult::empty();
    let results = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .filter_map(|w| w.join().ok().and_then(Result::ok))
            .flatten()
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    if results.len() < spec.connections {
        // A thread that could not start its runtime: its connections sent nothing.
        total.transport_errors += (spec.connections - results.len()) as u64;
    }
    for r in results {
        total.ok += r.ok;
        total.http_errors += r.http_errors;
        total.transport_errors += r.transport_errors;
        let _ = total.latency.add(&r.latency);
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
    let mut r = LoadResult::empty();
    let mut signer = Signer::new(&spec, conn);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(spec.addr).await else {
            r.transport_errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((sender, driver)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
        else {
            r.transport_errors += 1;
            continue;
        };
        // The connection is driven in this task, beside its requests, not in a task of its
        // own: a request and its answer then need no hand-off between tasks. Both run to
        // their end: the requests stop with the run or at the first failure, and dropping
        // their sender ends the driver.
        let requests = requests(
            &spec,
            sender,
            &mut signer,
            &mut n,
            &mut r,
            (&stop, &ticket, &slots, start),
        );
        let (end, _) = tokio::join!(requests, driver);
        if end == End::Stopped {
            break;
        }
    }
    r
}

/// Why a connection's requests ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The run is over.
    Stopped,
    /// The server closed the connection after an answer that said it would
    /// (`Connection: close`, as gunicorn's sync workers send): not an error.
    Closed,
    /// The connection failed; counted as a transport error.
    Failed,
}

/// Sends requests on one connection until the run stops or the connection ends.
async fn requests(
    spec: &LoadSpec,
    mut sender: SendRequest<Full<Bytes>>,
    signer: &mut Signer,
    n: &mut u64,
    r: &mut LoadResult,
    (stop, ticket, slots, start): (&AtomicBool, &AtomicU64, &Semaphore, Instant),
) -> End {
    let Ok(path) = Uri::try_from(spec.path.as_str()) else {
        r.transport_errors += 1;
        return End::Stopped;
    };
    while !stop.load(Ordering::Relaxed) {
        // At a fixed rate each request has a slot in one global schedule; the k-th slot
        // taken is released at the k-th instant (the pacer's, FIFO), and is timed from it.
        let scheduled = match spec.rate {
            Some(rate) => {
                match slots.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return End::Stopped,
                }
                let k = ticket.fetch_add(1, Ordering::Relaxed);
                start + Duration::from_secs_f64(k as f64 / rate)
            }
            None => Instant::now(),
        };
        *n += 1;
        let (body, ts, sig) = signer.sign(*n);
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = path.clone();
        let h = req.headers_mut();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(HeaderName::from_static("x-timestamp"), ts);
        h.insert(HeaderName::from_static("x-signature"), sig);
        if sender.ready().await.is_err() {
            r.transport_errors += 1;
            return End::Failed;
        }
        match sender.send_request(req).await {
            Ok(res) => {
                let status = res.status();
                let closing = res
                    .headers()
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let drained = res.into_body().collect().await.is_ok();
                let micros = scheduled.elapsed().as_micros() as u64;
                let _ = r.latency.record(micros.max(1));
                if status.is_success() && drained {
                    r.ok += 1;
                } else {
                    r.http_errors += 1;
                }
                if closing {
                    return End::Closed;
                }
            }
            Err(_) => {
                r.transport_errors += 1;
                return End::Failed;
            }
        }
    }
    End::Stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    use hyper::Response;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    /// What the test server saw.
    #[derive(Default)]
    struct Seen {
        ids: HashSet<String>,
        requests: u64,
        bad_signatures: u64,
        repeated_ids: u64,
    }

    fn spec(addr: SocketAddr, connections: usize, body_bytes: usize) -> LoadSpec {
        LoadSpec {
            addr,
            path: "/hooks/t".into(),
            secret: "s3cret".into(),
            connections,
            duration: Duration::from_millis(300),
            rate: None,
            body_bytes,
            run_tag: "t".into(),
        }
    }

    /// A server that checks each request's signature the way the gateway's HMAC preset
    /// does and notes its event id; with `keep_alive` false it answers each request with
    /// `Connection: close` and closes, as gunicorn's sync workers do.
    async fn server(keep_alive: bool, seen: Arc<Mutex<Seen>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .map(|v| v.as_bytes().to_vec())
                                    .unwrap_or_default()
                            };
                            let (ts, sig) = (header("x-timestamp"), header("x-signature"));
                            let body = req.into_body().collect().await?.to_bytes();
                            let mut mac =
                                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"s3cret")
                                    .expect("any key length");
                            mac.update(&ts);
                            mac.update(b".");
                            mac.update(&body);
                            let want =
                                format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                            let id = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["id"].as_str().map(str::to_owned))
                                .unwrap_or_default();
                            let mut s = seen.lock().expect("not poisoned");
                            s.requests += 1;
                            s.bad_signatures += u64::from(want.as_bytes() != sig.as_slice());
                            s.repeated_ids += u64::from(!s.ids.insert(id));
                            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(
                                b"{}",
                            ))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn every_request_is_signed_unique_and_counted_once() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr = server(true, Arc::clone(&seen)).await;
        let r = run(spec(addr, 4, 1024)).await;
        let s = seen.lock().expect("not poisoned");
        assert!(r.ok > 0, "no request answered");
        assert_eq!((r.http_errors, r.transport_errors), (0, 0));
        assert_eq!(s.requests, r.ok, "answers counted are the requests served");
        assert_eq!(s.bad_signatures, 0);
        assert_eq!(s.repeated_ids, 0);
        assert_eq!(r.latency.len(), r.ok);
    }

    #[tokio::test]
    async fn a_server_that_closes_after_each_answer_costs_a_reconnect_not_an_error() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr = server(false, Arc::clone(&seen)).await;
        let r = run(spec(addr, 2, 256)).await;
        let s = seen.lock().expect("not poisoned");
        assert!(r.ok > 1, "no reconnect happened: {} answers", r.ok);
        assert_eq!((r.http_errors, r.transport_errors), (0, 0));
        assert_eq!(s.requests, r.ok);
        assert_eq!((s.bad_signatures, s.repeated_ids), (0, 0));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error() {
        // A port that was just free: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let r = run(spec(addr, 1, 256)).await;
        assert_eq!(r.ok, 0);
        assert!(r.transport_errors > 0);
    }

    #[test]
    fn bodies_have_the_asked_size_and_a_fresh_id_each() {
        let s = spec("127.0.0.1:9".parse().expect("an address"), 1, 1024);
        let mut signer = Signer::new(&s, 3);
        let (a, ts, sig) = signer.sign(1);
        let (b, _, _) = signer.sign(2);
        assert_eq!((a.len(), b.len()), (1024, 1024));
        let id =
            |b: &Bytes| serde_json::from_slice::<serde_json::Value>(b).expect("JSON")["id"].clone();
        assert_eq!(id(&a), "evt_t_3_1");
        assert_eq!(id(&b), "evt_t_3_2");
        assert!(ts.to_str().expect("text").parse::<u64>().is_ok());
        assert_eq!(sig.len(), "sha256=".len() + 64);
        // A body larger than asked when the fields alone exceed it: never cut.
        let small = Signer::new(&spec(s.addr, 1, 10), 0).sign(7).0;
        assert!(serde_json::from_slice::<serde_json::Value>(&small).is_ok());
    }
}
