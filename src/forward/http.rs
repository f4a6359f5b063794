//! The destinations' delivery worker: takes due deliveries from the outbox, posts each to
//! its destination as a Standard Webhook, and records every attempt through the writer.
//!
//! Owns the delivery client (the egress resolver under it, HTTPS with the Mozilla roots,
//! connect and answer timeouts, a cap on the answer read), the per-destination lanes (how
//! many in flight, the rate limit, the circuit breaker) and the attempt counters for
//! `/metrics`. A delivery's `webhook-id` is fixed by its event and destination, so every
//! retry and every resend after a crash carries the same one. The worker must never mark
//! a delivery delivered without a 2xx, never send to an address the egress policy refuses,
//! and never keep a delivery only in memory: what it has not recorded is still due.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::retry::{self, Answer, Next, Policy};
use crate::clock::{format_micros, now_micros};
use crate::config::Delivery as Settings;
use crate::destination::breaker::{self, Gate};
use crate::destination::egress::{self, Resolver};
use crate::destination::{CompiledDestination, event_view, sign};
use crate::event::{Extracted, public_id};
use crate::server::AppState;
use crate::store::{AdminWrite, DestinationWrite, DueDelivery};

/// The characters of a destination's answer kept with an attempt.
const EXCERPT_CHARS: usize = 512;

/// Destinations named in the attempt counters; the rest are counted as `other`.
const METRIC_DESTINATIONS: usize = 200;

/// How long a delivery whose attempt could not be recorded waits before it is due again.
const RECORD_FAILED_PAUSE: Duration = Duration::from_secs(1);

/// How long in-flight deliveries get to finish at shutdown; the rest are resent after the
/// restart, with the same `webhook-id`.
const DRAIN: Duration = Duration::from_secs(2);

type HttpsClient = Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

/// The state of one destination on this node.
#[derive(Debug, Default, Clone)]
struct Lane {
    breaker: breaker::State,
    in_flight: usize,
    /// When the rate limit lets the next attempt start (microseconds).
    next_start: i64,
}

/// The worker's shared view of its lanes and what is in flight; also what `/metrics` and
/// a destination's GET show.
#[derive(Debug, Default)]
pub struct Lanes {
    inner: Mutex<LanesInner>,
}

#[derive(Debug, Default)]
struct LanesInner {
    lanes: HashMap<String, Lane>,
    in_flight: HashSet<i64>,
    /// Attempts by (destination key, outcome).
    attempts: HashMap<(String, &'static str), u64>,
    /// The destinations named in `attempts` (at most `METRIC_DESTINATIONS`).
    named: HashSet<String>,
}

fn key(account: &str, name: &str) -> String {
    format!("{account}/{name}")
}

impl Lanes {
    fn lock(&self) -> std::sync::MutexGuard<'_, LanesInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The circuit breaker of one destination on this node.
    pub fn breaker(&self, account: &str, name: &str) -> breaker::State {
        self.lock()
            .lanes
            .get(&key(account, name))
            .map(|l| l.breaker)
            .unwrap_or_default()
    }

    /// Appends the attempt counters in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let inner = self.lock();
        let mut rows: Vec<(&String, &'static str, u64)> = inner
            .attempts
            .iter()
            .map(|((k, o), n)| (k, *o, *n))
            .collect();
        rows.sort();
        out.push_str(
            "# HELP hookgate_destination_attempts_total Delivery attempts to destinations, by destination (account/name) and outcome.\n\
             # TYPE hookgate_destination_attempts_total counter\n",
        );
        for (k, outcome, n) in rows {
            let k = k.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&format!(
                "hookgate_destination_attempts_total{{destination=\"{k}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
    }

    fn count(&self, k: &str, outcome: &'static str) {
        let mut inner = self.lock();
        let named = inner.named.contains(k) || inner.named.len() < METRIC_DESTINATIONS;
        let label = if named {
            inner.named.insert(k.to_owned());
            k.to_owned()
        } else {
            "other".to_owned()
        };
        *inner.attempts.entry((label, outcome)).or_default() += 1;
    }
}

/// Builds the delivery client: the egress resolver under HTTP, HTTPS with the Mozilla
/// roots (HTTP/1.1).
fn client(settings: &Settings, policy: Arc<egress::Policy>) -> HttpsClient {
    let mut http = HttpConnector::new_with_resolver(Resolver::new(policy));
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
        // Fails only for a provider without the default protocol versions; aws-lc-rs has
        // both (the admin client's test builds one the same way).
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

/// Runs the worker until `stop` flips.
pub async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let settings = state.config.delivery.clone();
    let client = client(&settings, Arc::clone(&state.egress));
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let breaker_settings = breaker::Settings {
        threshold: settings.breaker_failures,
        probe_micros: (settings.breaker_probe_ms as i64).saturating_mul(1000),
    };
    loop {
        if *stop.borrow() {
            break;
        }
        let now = now_micros();
        let (paused, in_flight) = {
            let inner = state.lanes.lock();
            let paused: Vec<String> = inner
                .lanes
                .iter()
                .filter(|(_, l)| {
                    l.next_start > now
                        || match l.breaker {
                            breaker::State::Open { until } => until > now,
                            breaker::State::Probing => true,
                            breaker::State::Closed { .. } => false,
                        }
                })
                .map(|(k, _)| k.clone())
                .collect();
            (paused, inner.in_flight.iter().copied().collect::<Vec<_>>())
        };
        let due = match state
            .store
            .due_to_destinations(now, settings.concurrency.max(1) * 2, paused, in_flight)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the destinations' outbox; retrying");
                Vec::new()
            }
        };
        let mut started = 0usize;
        let mut put_back = Vec::new();
        for d in due {
            let Some(dest) = state.destinations.get(&d.account, &d.destination) else {
                put_back.push(d.id);
                continue;
            };
            let k = key(&d.account, &d.destination);
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                put_back.push(d.id);
                continue;
            };
            let go = {
                let mut inner = state.lanes.lock();
                let lane = inner.lanes.entry(k.clone()).or_default();
                let gate = if lane.next_start > now {
                    Gate::Wait
                } else {
                    lane.breaker.gate(now)
                };
                if gate != Gate::Wait {
                    lane.in_flight += 1;
                    if let Some(rate) = dest.spec.rate_per_sec {
                        lane.next_start = now + 1_000_000 / i64::from(rate.max(1));
                    }
                    inner.in_flight.insert(d.id);
                }
                gate != Gate::Wait
            };
            if !go {
                put_back.push(d.id);
                continue;
            }
            started += 1;
            let job = Attempt {
                state: Arc::clone(&state),
                client: client.clone(),
                dest,
                settings: settings.clone(),
                breaker: breaker_settings,
                key: k,
            };
            tasks.spawn(async move {
                job.deliver(d).await;
                drop(permit);
            });
        }
        if !put_back.is_empty()
            && let Err(e) = state.store.release_deliveries(put_back).await
        {
            tracing::warn!(error = %e, "cannot give back claims on deliveries; their lease runs out");
        }
        let wait = if started > 0 {
            Duration::ZERO
        } else {
            match state.store.next_due_to_destinations().await {
                Ok(Some(at)) => {
                    Duration::from_micros(u64::try_from(at - now_micros()).unwrap_or(0))
                }
                _ => Duration::from_secs(60),
            }
            .clamp(Duration::from_millis(20), Duration::from_secs(5))
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = state.destination_wake.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    // What is still in flight was not recorded: it stays due, and another node (or this
    // one after its restart) need not wait for this node's claims to run out.
    let unfinished: Vec<i64> = state.lanes.lock().in_flight.drain().collect();
    if let Err(e) = state.store.release_deliveries(unfinished).await {
        tracing::warn!(error = %e, "cannot give back claims at shutdown; their lease runs out");
    }
}

/// One attempt and what it needs.
struct Attempt {
    state: Arc<AppState>,
    client: HttpsClient,
    dest: Arc<CompiledDestination>,
    settings: Settings,
    breaker: breaker::Settings,
    key: String,
}

/// What came of sending.
struct Outcome {
    answer: Answer,
    http_status: Option<u16>,
    detail: String,
    /// Whether the destination itself failed (counts for the breaker); a refusal by the
    /// egress policy or a broken event does not.
    destination_failed: bool,
}

/// A header value with anything HTTP does not allow dropped.
fn header_text(s: &str) -> Option<HeaderValue> {
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(512)
        .collect();
    HeaderValue::from_str(&clean).ok()
}

impl Attempt {
    async fn deliver(self, d: DueDelivery) {
        let attempt = d.attempts + 1;
        let started = Instant::now();
        let outcome = self.send(&d).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let now = now_micros();
        let policy = Policy {
            max_attempts: self.settings.max_attempts,
            base_ms: self.settings.retry_base_ms,
            max_ms: self.settings.retry_max_ms,
        };
        let (status, next_attempt_at) =
            match retry::next(&policy, attempt, outcome.answer, now, rand::random::<f64>()) {
                Next::Delivered => ("delivered", now),
                Next::NoSession | Next::Dead => ("dead", now),
                Next::RetryAt(at) => ("retrying", at),
            };
        {
            let mut inner = self.state.lanes.lock();
            if let Some(lane) = inner.lanes.get_mut(&self.key) {
                lane.in_flight = lane.in_flight.saturating_sub(1);
                if outcome.destination_failed || status == "delivered" {
                    lane.breaker
                        .record(status == "delivered", now, self.breaker);
                } else if lane.breaker == breaker::State::Probing {
                    // A probe that says nothing about the destination probes again soon.
                    lane.breaker = breaker::State::Open { until: now };
                }
            }
        }
        self.state.lanes.count(&self.key, status);
        let write = AdminWrite::Destination(DestinationWrite::Attempt {
            id: d.id,
            attempts: attempt,
            at: now,
            status,
            next_attempt_at,
            http_status: outcome.http_status,
            latency_ms,
            detail: outcome.detail,
        });
        if let Err(e) = self.state.store.admin(write).await {
            // It may have been delivered; it stays due and goes again with the same
            // webhook-id, which lets the destination drop the repeat.
            tracing::warn!(error = %e, delivery = d.id, "could not record a delivery attempt");
            // Held a moment as in flight, so a database that takes no writes does not turn
            // into a stream of resends.
            tokio::time::sleep(RECORD_FAILED_PAUSE).await;
        }
        self.state.lanes.lock().in_flight.remove(&d.id);
        self.state.destination_wake.notify_one();
    }

    /// Builds the request from the stored event and sends it.
    async fn send(&self, d: &DueDelivery) -> Outcome {
        let broken = |detail: String| Outcome {
            answer: Answer::Refused,
            http_status: None,
            detail,
            destination_failed: false,
        };
        let event = match self.state.store.event(d.seq).await {
            Ok(Some(e)) => e,
            Ok(None) => return broken(format!("{} is no longer in the log", public_id(d.seq))),
            Err(e) => {
                return Outcome {
                    answer: Answer::Retryable {
                        retry_after_ms: None,
                    },
                    http_status: None,
                    detail: format!("the event could not be read: {e}"),
                    destination_failed: false,
                };
            }
        };
        let body: Vec<u8> = if event.body_encoding == "base64" {
            STANDARD.decode(&event.body).unwrap_or_default()
        } else {
            event.body.clone().into_bytes()
        };
        let s = &event.summary;
        let extracted = Extracted {
            sender: s.sender.clone(),
            source: s.source.clone(),
            event_type: s.event_type.clone(),
            event_id: s.event_id.clone(),
            params: (!s.params.is_null()).then(|| s.params.to_string()),
        };
        if event.body_truncated && self.dest.mapping.is_none() {
            return broken(
                "the account keeps no whole body (store_body is off): give the destination a mapping of event fields"
                    .into(),
            );
        }
        let gateway_id = public_id(d.seq);
        let (payload_bytes, content_type) = match &self.dest.mapping {
            None => (
                body,
                event
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
            ),
            Some(mapping) => {
                let payload = if event.body_truncated {
                    Value::Null
                } else {
                    crate::payload::decode_unverified(&body, event.content_type.as_deref())
                        .unwrap_or(Value::Null)
                };
                let view = event_view(
                    &d.account,
                    &extracted,
                    Some(&gateway_id),
                    Some(&s.received_at),
                );
                let rendered = mapping.render(&payload, &view);
                (rendered.to_string().into_bytes(), "application/json".into())
            }
        };
        let now = now_micros();
        let timestamp = now / 1_000_000;
        let msg_id = format!("{gateway_id}_{}", d.destination);
        let signature = sign::signature(&self.dest.keys, &msg_id, timestamp, &payload_bytes, now);
        // An address literal is judged here, against the policy in force now.
        let target = match egress::Target::parse(&self.dest.spec.url) {
            Ok(t) => t,
            Err(e) => return broken(e.to_string()),
        };
        if let Some(ip) = target.literal()
            && let Err(e) = self.state.egress.check(&target.host, ip)
        {
            return broken(format!("egress refused: {e}"));
        }
        let mut req = match Request::builder()
            .method(Method::POST)
            .uri(&self.dest.spec.url)
            .body(Full::new(Bytes::from(payload_bytes)))
        {
            Ok(r) => r,
            Err(e) => return broken(format!("the URL cannot be used: {e}")),
        };
        let timestamp_text = timestamp.to_string();
        let headers = [
            ("content-type", content_type.as_str()),
            (
                "user-agent",
                concat!("hookgate/", env!("CARGO_PKG_VERSION")),
            ),
            ("webhook-id", msg_id.as_str()),
            ("webhook-timestamp", timestamp_text.as_str()),
            ("webhook-signature", signature.as_str()),
            ("hookgate-event-id", gateway_id.as_str()),
            ("hookgate-account", d.account.as_str()),
            ("hookgate-destination", d.destination.as_str()),
            ("hookgate-received-at", s.received_at.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k, Some(v.to_owned())))
        .chain([
            ("webhook-event-type", s.event_type.clone()),
            ("hookgate-source-event-id", s.event_id.clone()),
            ("hookgate-sender", s.sender.clone()),
            ("hookgate-source", s.source.clone()),
        ]);
        for (k, v) in headers {
            if let (Some(v), Ok(name)) = (
                v.as_deref().and_then(header_text),
                HeaderName::from_bytes(k.as_bytes()),
            ) {
                req.headers_mut().insert(name, v);
            }
        }
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let cap = self.settings.max_response_bytes;
        let sent = tokio::time::timeout(timeout, async {
            let res = self.client.request(req).await?;
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = res.into_body();
            let mut read = Vec::new();
            while read.len() < cap {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            read.extend_from_slice(&data[..data.len().min(cap - read.len())]);
                        }
                    }
                    // What was read is enough to judge the answer by its status.
                    Some(Err(_)) | None => break,
                }
            }
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, read))
        })
        .await;
        match sent {
            Err(_) => Outcome {
                answer: Answer::Retryable {
                    retry_after_ms: None,
                },
                http_status: None,
                detail: format!("no answer within {}ms", timeout.as_millis()),
                destination_failed: true,
            },
            Ok(Err(e)) => {
                let message = describe(&e);
                if message.contains("egress refused") {
                    return broken(message);
                }
                Outcome {
                    answer: Answer::Retryable {
                        retry_after_ms: None,
                    },
                    http_status: None,
                    detail: message,
                    destination_failed: true,
                }
            }
            Ok(Ok((code, retry_after, read))) => {
                let excerpt: String = String::from_utf8_lossy(&read)
                    .chars()
                    .take(EXCERPT_CHARS)
                    .collect();
                let detail = if excerpt.is_empty() {
                    format!("HTTP {code}")
                } else {
                    format!("HTTP {code}: {excerpt}")
                };
                let answer = if (200..300).contains(&code) {
                    Answer::Delivered
                } else {
                    Answer::Retryable {
                        retry_after_ms: retry_after
                            .and_then(|v| retry::parse_retry_after(&v, now_micros())),
                    }
                };
                Outcome {
                    destination_failed: !matches!(answer, Answer::Delivered),
                    answer,
                    http_status: Some(code),
                    detail,
                }
            }
        }
    }
}

/// A client error with every cause.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// A destination's state as its GET shows it.
pub fn breaker_view(state: &breaker::State) -> Value {
    match state {
        breaker::State::Closed { failures } => {
            serde_json::json!({"state": "closed", "consecutive_failures": failures})
        }
        breaker::State::Open { until } => {
            serde_json::json!({"state": "open", "next_probe_at": format_micros(*until)})
        }
        breaker::State::Probing => serde_json::json!({"state": "probing"}),
    }
}
