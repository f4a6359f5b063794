//! The one delivery worker: takes due deliveries of both kinds from the outbox (HTTP
//! destinations and chat status messages, which go to the reserved chat destination),
//! sends each by its kind (`webhook` or `chat`), and records every attempt through the
//! writer with one write.
//!
//! Owns the loop, the per-destination lanes (how many in flight, the rate limit, the
//! circuit breaker; an account's chat messages are one lane, capped by `[chat]
//! concurrency`) and the attempt counters for `/metrics`. The worker must never mark a
//! delivery delivered without a 2xx and never keep a delivery only in memory: what it has
//! not recorded is still due, and goes again with the same `webhook-id` or idempotency key.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::retry::{self, Next, Policy};
use super::webhook::{self, HttpsClient};
use super::{channel, chat};
use crate::cli::client::HttpClient;
use crate::clock::{format_micros, now_micros};
use crate::config::Delivery as Settings;
use crate::destination::breaker::{self, Gate};
use crate::destination::{CHAT, CompiledDestination};
use crate::server::AppState;
use crate::store::{AdminWrite, Delivery, DestinationWrite, DueDelivery};

/// Destinations named in the attempt counters; the rest are counted as `other`.
const METRIC_DESTINATIONS: usize = 200;

/// How long a delivery whose attempt could not be recorded waits before it is due again.
const RECORD_FAILED_PAUSE: Duration = Duration::from_secs(1);

/// How long in-flight deliveries get to finish at shutdown; the rest are resent after the
/// restart, with the same `webhook-id` or idempotency key.
const DRAIN: Duration = Duration::from_secs(2);

/// The shortest and the longest the worker sleeps when it started nothing. The longest
/// bounds how late it sees what no event announces: a destination added or a claim
/// released on another node.
const IDLE_MIN: Duration = Duration::from_millis(20);
const IDLE_MAX: Duration = Duration::from_secs(5);

/// How long the worker waits when deliveries are due but each waits for an attempt in
/// flight. An attempt of this node wakes it as it ends; this covers those of other nodes.
const HELD_RECHECK: Duration = Duration::from_secs(1);

/// The state of one destination on this node.
#[derive(Debug, Default, Clone)]
struct Lane {
    breaker: breaker::State,
    in_flight: usize,
    /// When the rate limit lets the next attempt start (microseconds).
    next_start: i64,
}

/// Whether a lane takes attempts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    Open,
    /// Paused by its rate or its open breaker until this time (microseconds).
    Until(i64),
    /// Paused while its breaker's probe is in flight: the probe's end wakes the worker.
    Probing,
}

impl Lane {
    /// Whether the lane takes attempts at `now`, and if not, when it will again.
    fn pause(&self, now: i64) -> Pause {
        let rate = (self.next_start > now).then_some(self.next_start);
        match self.breaker {
            breaker::State::Probing => Pause::Probing,
            breaker::State::Open { until } if until > now => {
                Pause::Until(rate.map_or(until, |r| r.max(until)))
            }
            _ => rate.map_or(Pause::Open, Pause::Until),
        }
    }
}

/// How long the worker sleeps after a pass that started nothing, at `now`: until the
/// next delivery it could start is due (`next`, from the outbox), or a paused lane
/// reopens (`reopens`), whichever is first; briefly when deliveries are due but each
/// waits for an attempt in flight (`next` already past); bounded by [`IDLE_MIN`] and
/// [`IDLE_MAX`]. A new delivery or an attempt ending wakes the worker sooner.
fn idle_wait(now: i64, next: Option<i64>, reopens: Option<i64>) -> Duration {
    let until = |at: i64| Duration::from_micros(u64::try_from(at - now).unwrap_or(0));
    let due = match next {
        Some(at) if at > now => until(at),
        Some(_) => HELD_RECHECK,
        None => IDLE_MAX,
    };
    reopens
        .map_or(due, |at| due.min(until(at)))
        .clamp(IDLE_MIN, IDLE_MAX)
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
    /// Times the worker read the outbox for due deliveries.
    reads: u64,
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
        out.push_str(&format!(
            "# HELP hookgate_outbox_reads_total Times the delivery worker read the outbox for due deliveries.\n\
             # TYPE hookgate_outbox_reads_total counter\nhookgate_outbox_reads_total {}\n",
            inner.reads
        ));
        // Paused by an open breaker or a probe in flight (a rate's spacing is not a pause).
        let (mut chat, mut destinations) = (0u64, 0u64);
        for (k, lane) in &inner.lanes {
            if !lane.breaker.is_open() {
                continue;
            }
            if k.rsplit_once('/').is_some_and(|(_, name)| name == CHAT) {
                chat += 1;
            } else {
                destinations += 1;
            }
        }
        out.push_str(&format!(
            "# HELP hookgate_paused_lanes Lanes on this node whose circuit breaker is open or probing: destinations, and accounts' chat messages.\n\
             # TYPE hookgate_paused_lanes gauge\n\
             hookgate_paused_lanes{{kind=\"destination\"}} {destinations}\n\
             hookgate_paused_lanes{{kind=\"chat\"}} {chat}\n"
        ));
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

/// Runs the worker until `stop` flips.
pub async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let settings = state.config.delivery.clone();
    let client = webhook::client(&settings, Arc::clone(&state.egress));
    let chat_client = HttpClient::outbound();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    // Chat messages wait in the outbox until a connector or a channel is configured.
    let chat_cap = if state.chat_routed {
        let routes = channel::configured(&state.config.chat);
        tracing::info!(through = ?routes, "status messages are delivered");
        state.config.chat.concurrency.max(1)
    } else {
        0
    };
    let chat_permits = Arc::new(Semaphore::new(chat_cap.max(1)));
    let mut tasks = JoinSet::new();
    let breaker_settings =
        breaker::Settings::new(settings.breaker_failures, settings.breaker_probe_ms);
    let chat_breaker = breaker::Settings::new(
        state.config.chat.breaker_failures,
        state.config.chat.breaker_probe_ms,
    );
    loop {
        if *stop.borrow() {
            break;
        }
        let now = now_micros();
        let (paused, reopens, in_flight) = {
            let mut inner = state.lanes.lock();
            inner.reads += 1;
            let mut paused = Vec::new();
            let mut reopens: Option<i64> = None;
            for (k, lane) in &inner.lanes {
                match lane.pause(now) {
                    Pause::Open => {}
                    Pause::Probing => paused.push(k.clone()),
                    Pause::Until(at) => {
                        paused.push(k.clone());
                        reopens = Some(reopens.map_or(at, |r| r.min(at)));
                    }
                }
            }
            let in_flight: Vec<i64> = inner.in_flight.iter().copied().collect();
            (paused, reopens, in_flight)
        };
        let limit = (settings.concurrency.max(1) + chat_cap) * 2;
        let due = match state
            .store
            .due_deliveries(now, limit, paused.clone(), in_flight, chat_cap)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; retrying");
                Vec::new()
            }
        };
        let mut started = 0usize;
        let mut put_back = Vec::new();
        for d in due {
            let k = key(&d.account, &d.destination);
            if let Some(message) = d.chat_message() {
                let Ok(permit) = Arc::clone(&chat_permits).try_acquire_owned() else {
                    put_back.push(d.id);
                    continue;
                };
                let go = {
                    let mut inner = state.lanes.lock();
                    let lane = inner.lanes.entry(k.clone()).or_default();
                    let go = lane.breaker.gate(now) != Gate::Wait;
                    if go {
                        lane.in_flight += 1;
                        inner.in_flight.insert(d.id);
                    }
                    go
                };
                if !go {
                    put_back.push(d.id);
                    continue;
                }
                started += 1;
                let job = Attempt {
                    state: Arc::clone(&state),
                    kind: Kind::Chat {
                        client: chat_client.clone(),
                        message,
                        breaker: chat_breaker,
                    },
                    key: k,
                };
                tasks.spawn(async move {
                    job.deliver(d).await;
                    drop(permit);
                });
                continue;
            }
            let Some(dest) = state.destinations.get(&d.account, &d.destination) else {
                put_back.push(d.id);
                continue;
            };
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
                kind: Kind::Webhook {
                    client: client.clone(),
                    dest,
                    settings: settings.clone(),
                    breaker: breaker_settings,
                },
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
            // Waits on what could start: a paused lane's deliveries wait for it to reopen,
            // and those in flight here for their attempt to end.
            let in_flight: Vec<i64> = state.lanes.lock().in_flight.iter().copied().collect();
            let next = state
                .store
                .next_startable(paused, in_flight, chat_cap)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read when the next delivery is due");
                    None
                });
            idle_wait(now_micros(), next, reopens)
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = state.deliveries.notified() => {}
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

/// How one delivery goes out.
enum Kind {
    /// A Standard Webhook to an account's destination.
    Webhook {
        client: HttpsClient,
        dest: Arc<CompiledDestination>,
        settings: Settings,
        breaker: breaker::Settings,
    },
    /// A status message through the connector or the account's chat channel.
    Chat {
        client: HttpClient,
        message: Delivery,
        breaker: breaker::Settings,
    },
}

/// One attempt and what it needs.
struct Attempt {
    state: Arc<AppState>,
    kind: Kind,
    key: String,
}

impl Attempt {
    async fn deliver(self, d: DueDelivery) {
        let write = match &self.kind {
            Kind::Webhook {
                client,
                dest,
                settings,
                breaker,
            } => self.webhook(&d, client, dest, settings, *breaker).await,
            Kind::Chat {
                client,
                message,
                breaker,
            } => {
                let sent = chat::send(&self.state, client, message).await;
                self.judge(sent.platform_up, now_micros(), *breaker);
                DestinationWrite::Attempt {
                    id: d.id,
                    attempts: sent.attempts,
                    at: now_micros(),
                    status: sent.status,
                    next_attempt_at: sent.next_attempt_at,
                    http_status: sent.http_status,
                    latency_ms: sent.latency_ms,
                    detail: sent.detail,
                }
            }
        };
        if let Some(lane) = self.state.lanes.lock().lanes.get_mut(&self.key) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
        if let Err(e) = self.state.store.admin(AdminWrite::Destination(write)).await {
            // It may have been delivered; it stays due and goes again with the same
            // webhook-id or idempotency key, which lets the receiver drop the repeat.
            tracing::warn!(error = %e, delivery = d.id, "could not record a delivery attempt");
            // Held a moment as in flight, so a database that takes no writes does not turn
            // into a stream of resends.
            tokio::time::sleep(RECORD_FAILED_PAUSE).await;
        }
        self.state.lanes.lock().in_flight.remove(&d.id);
        self.state.deliveries.notify_one();
    }

    /// Feeds the lane's circuit breaker what an attempt said of its destination (or chat
    /// platform): `Some(up)`, or `None` when it said nothing, which lets a probe go again
    /// soon. Logs the lane pausing.
    fn judge(&self, up: Option<bool>, now: i64, settings: breaker::Settings) {
        let mut inner = self.state.lanes.lock();
        let Some(lane) = inner.lanes.get_mut(&self.key) else {
            return;
        };
        let was_closed = !lane.breaker.is_open();
        match up {
            Some(ok) => lane.breaker.record(ok, now, settings),
            None if lane.breaker == breaker::State::Probing => {
                lane.breaker = breaker::State::Open { until: now };
            }
            None => {}
        }
        if was_closed && let breaker::State::Open { until } = lane.breaker {
            tracing::warn!(
                lane = %self.key,
                next_probe_at = %format_micros(until),
                "paused after consecutive failed attempts; its deliveries wait without spending attempts"
            );
        }
    }

    /// Sends a Standard Webhook and judges the destination by its answer (the breaker).
    async fn webhook(
        &self,
        d: &DueDelivery,
        client: &HttpsClient,
        dest: &CompiledDestination,
        settings: &Settings,
        breaker: breaker::Settings,
    ) -> DestinationWrite {
        let attempt = d.attempts + 1;
        let started = Instant::now();
        let outcome = webhook::send(&self.state, client, dest, settings, d).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let now = now_micros();
        let policy = Policy {
            max_attempts: settings.max_attempts,
            base_ms: settings.retry_base_ms,
            max_ms: settings.retry_max_ms,
        };
        let (status, next_attempt_at) =
            match retry::next(&policy, attempt, outcome.answer, now, rand::random::<f64>()) {
                Next::Delivered => ("delivered", now),
                Next::NoSession | Next::Dead => ("dead", now),
                Next::RetryAt(at) => ("retrying", at),
            };
        let up = if outcome.destination_failed {
            Some(false)
        } else {
            (status == "delivered").then_some(true)
        };
        self.judge(up, now, breaker);
        self.state.lanes.count(&self.key, status);
        DestinationWrite::Attempt {
            id: d.id,
            attempts: attempt,
            at: now,
            status,
            next_attempt_at,
            http_status: outcome.http_status,
            latency_ms,
            detail: outcome.detail,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000;

    #[test]
    fn a_future_due_time_is_waited_for_and_a_reopening_lane_cuts_it_short() {
        assert_eq!(
            idle_wait(0, Some(300 * MS), None),
            Duration::from_millis(300)
        );
        assert_eq!(
            idle_wait(0, Some(300 * MS), Some(120 * MS)),
            Duration::from_millis(120)
        );
        assert_eq!(
            idle_wait(0, Some(300 * MS), Some(900 * MS)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn deliveries_due_but_held_are_checked_again_without_a_busy_loop() {
        assert_eq!(idle_wait(1_000 * MS, Some(10 * MS), None), HELD_RECHECK);
        // Every due delivery is paused: the lane's reopening is what is waited for.
        assert_eq!(
            idle_wait(0, None, Some(2_500 * MS)),
            Duration::from_millis(2_500)
        );
    }

    #[test]
    fn the_wait_stays_within_its_bounds() {
        assert_eq!(idle_wait(0, None, None), IDLE_MAX);
        assert_eq!(idle_wait(0, Some(3_600_000 * MS), None), IDLE_MAX);
        assert_eq!(idle_wait(0, Some(MS), None), IDLE_MIN);
        assert_eq!(idle_wait(5 * MS, Some(MS), Some(MS)), IDLE_MIN);
    }

    #[test]
    fn a_lane_is_paused_until_its_rate_and_its_breaker_both_allow() {
        let rate_only = Lane {
            next_start: 50,
            ..Lane::default()
        };
        assert_eq!(rate_only.pause(10), Pause::Until(50));
        assert_eq!(rate_only.pause(50), Pause::Open);
        let open = Lane {
            breaker: breaker::State::Open { until: 400 },
            next_start: 50,
            ..Lane::default()
        };
        assert_eq!(open.pause(10), Pause::Until(400));
        assert_eq!(open.pause(400), Pause::Open);
        let probing = Lane {
            breaker: breaker::State::Probing,
            ..Lane::default()
        };
        assert_eq!(probing.pause(10), Pause::Probing);
    }
}
