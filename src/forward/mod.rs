//! Listeners: what an accepted event of a listening account does on the way out, and the
//! delivery worker that posts status messages to the chat connector or the account's chat
//! channel ([`channel`]).
//!
//! Owns [`plan`] (pure: account + extracted fields → [`Forward`]) and [`run`], the worker:
//! it reads due deliveries from the durable outbox, posts them with bounded concurrency
//! (to the connector with an idempotency key), and records every attempt through the
//! writer. The outbox row is written in the same transaction as the event, so nothing
//! accepted is lost on the way out. The worker must never mark a message delivered without
//! a 2xx, and never hold a delivery only in memory.

pub mod channel;
pub mod http;
pub mod retry;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Method;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::account::CompiledAccount;
use crate::cli::client::HttpClient;
use crate::clock::now_micros;
use crate::event::{Extracted, Forward};
use crate::render::Values;
use crate::server::AppState;
use crate::store::{AdminWrite, Delivery};
use retry::{Answer, Next, Policy};

/// Decides what an accepted event of `account` does: nothing (not listening), skipped
/// (type filtered out), streamed only, or streamed and delivered to the sender's chat.
pub fn plan(account: &CompiledAccount, e: &Extracted) -> Forward {
    if !account.listening {
        return Forward::None;
    }
    let types = &account.spec.forward.event_types;
    if !types.is_empty() && !e.event_type.as_ref().is_some_and(|t| types.contains(t)) {
        return Forward::Skipped;
    }
    let template = account.templates.select(e.event_type.as_deref());
    let (Some(template), Some(to)) = (template, &e.sender) else {
        return Forward::StreamOnly;
    };
    if !account.spec.forward.send_to_user {
        return Forward::StreamOnly;
    }
    let params = e
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(serde_json::Value::Null);
    let text = template.render(&Values {
        account: account.name(),
        sender: e.sender.as_deref(),
        source: e.source.as_deref(),
        event_type: e.event_type.as_deref(),
        event_id: e.event_id.as_deref(),
        params: &params,
    });
    Forward::Deliver {
        to: to.clone(),
        text,
    }
}

/// How long in-flight deliveries get to finish at shutdown; the rest are resent after the
/// restart, with the same idempotency key.
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the delivery worker until `stop` flips.
pub async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let chat = state.config.chat.clone();
    let routes = channel::configured(&chat);
    if routes.is_empty() {
        // Messages wait in the outbox until a connector or a channel is configured.
        let _ = stop.changed().await;
        return;
    }
    tracing::info!(through = ?routes, "status messages are delivered");
    let policy = Policy {
        max_attempts: chat.max_attempts,
        base_ms: chat.retry_base_ms,
        max_ms: chat.retry_max_ms,
    };
    let client = HttpClient::default();
    let permits = Arc::new(Semaphore::new(chat.concurrency));
    let inflight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let due = match state
            .store
            .due_deliveries(now_micros(), chat.concurrency * 2)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; retrying");
                Vec::new()
            }
        };
        for d in due {
            if !inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.seq)
            {
                continue;
            }
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let job = Attempt {
                state: Arc::clone(&state),
                client: client.clone(),
                policy,
                inflight: Arc::clone(&inflight),
            };
            tasks.spawn(async move {
                job.deliver(d).await;
                drop(permit);
            });
        }
        let wait = match state.store.next_due().await {
            Ok(Some(at)) => Duration::from_micros(u64::try_from(at - now_micros()).unwrap_or(0)),
            _ => Duration::from_secs(60),
        }
        .clamp(Duration::from_millis(1), Duration::from_secs(60));
        tokio::select! {
            _ = state.deliveries.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    let _ = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
}

/// One delivery attempt and everything it needs.
struct Attempt {
    state: Arc<AppState>,
    client: HttpClient,
    policy: Policy,
    inflight: Arc<Mutex<HashSet<i64>>>,
}

impl Attempt {
    async fn deliver(self, d: Delivery) {
        let attempt = d.attempts + 1;
        // The connector or the account's channel; one that is not configured leaves the
        // message waiting, its attempt budget untouched.
        let out = match channel::prepare(&self.state, &d).await {
            Ok(out) => out,
            Err(why) => return self.wait(d, why).await,
        };
        let timeout = Duration::from_millis(self.state.config.chat.timeout_ms);
        let sent = tokio::time::timeout(
            timeout,
            self.client.send(
                Method::POST,
                &out.url,
                &out.header_pairs(),
                out.body.clone(),
            ),
        )
        .await;
        let now = now_micros();
        let (answer, http_status, detail) = match sent {
            Err(_) => (
                Answer::Retryable {
                    retry_after_ms: None,
                },
                None,
                format!("no answer within {}ms", timeout.as_millis()),
            ),
            Ok(Err(e)) => (
                Answer::Retryable {
                    retry_after_ms: None,
                },
                None,
                out.failure(&e),
            ),
            Ok(Ok(a)) => {
                let code = a.status.as_u16();
                let (answer, detail) = out.classify(code, &a.headers, &a.body, now);
                (answer, Some(code), detail)
            }
        };
        let jitter = rand::random::<f64>();
        let (status, next_attempt_at) =
            match retry::next(&self.policy, attempt, answer, now, jitter) {
                Next::Delivered => ("delivered", now),
                Next::NoSession => ("no_session", now),
                Next::Dead => ("dead", now),
                Next::RetryAt(at) => ("retrying", at),
            };
        self.state
            .store
            .metrics()
            .record_chat_attempt(out.label(), status);
        let write = AdminWrite::ForwardAttempt {
            seq: d.seq,
            attempts: attempt,
            at: now,
            status,
            next_attempt_at,
            http_status,
            detail,
        };
        if let Err(e) = self.state.store.admin(write).await {
            // The message may have been delivered; it stays due and is resent with the same
            // idempotency key, which lets the connector drop the repeat.
            tracing::warn!(error = %e, seq = d.seq, "could not record a delivery attempt");
        }
        self.done(d.seq);
    }

    /// Leaves a message that cannot be sent now in the outbox, due again after the longest
    /// retry delay, and records why on the event (no attempt is counted).
    async fn wait(self, d: Delivery, why: channel::Unavailable) {
        tracing::warn!(account = %d.account, seq = d.seq, reason = %why, "a status message waits");
        self.state
            .store
            .metrics()
            .record_chat_attempt(channel::label_of(&self.state, &d.account), "waiting");
        let now = now_micros();
        let wait_ms = i64::try_from(self.policy.max_ms).unwrap_or(i64::MAX);
        let next = now.saturating_add(wait_ms.saturating_mul(1000));
        let write = AdminWrite::ForwardAttempt {
            seq: d.seq,
            attempts: d.attempts,
            at: now,
            status: "pending",
            next_attempt_at: next,
            http_status: None,
            detail: why.to_string(),
        };
        if let Err(e) = self.state.store.admin(write).await {
            tracing::warn!(error = %e, seq = d.seq, "could not record a waiting delivery");
        }
        self.done(d.seq);
    }

    fn done(&self, seq: i64) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&seq);
        self.state.deliveries.notify_one();
    }
}
