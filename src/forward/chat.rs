//! The chat kind of delivery: one attempt to send a status message (a delivery to the
//! reserved chat destination) to the chat connector or the account's channel
//! ([`super::channel`]), and its outcome for the retry policy.
//!
//! Owns the sending of one message and the mapping of its answer to a recorded status
//! under the `[chat]` retry settings: `no_session` is final, and a channel that is not
//! configured leaves the message waiting without spending an attempt. What an attempt
//! says of the platform (`Sent::platform_up`) feeds the account's chat circuit breaker,
//! kept by the worker. The worker
//! (`forward::worker`) takes the delivery, and records what this returns. It must never
//! log a request's URL or headers (they may hold a credential) and never call a message
//! delivered without a 2xx.

use std::time::{Duration, Instant};

use hyper::Method;

use super::channel;
use super::retry::{self, Answer, Next, Policy};
use crate::cli::client::HttpClient;
use crate::clock::now_micros;
use crate::config::Chat;
use crate::server::AppState;
use crate::store::Delivery;

/// What came of one chat attempt, as the worker records it.
#[derive(Debug)]
pub struct Sent {
    /// `delivered`, `no_session`, `retrying` or `dead`; `pending` when the message waits
    /// for its channel to be configured (no attempt spent).
    pub status: &'static str,
    /// Attempts since queued or redriven, this one included when it was spent.
    pub attempts: u32,
    /// When to try again (pending and retrying).
    pub next_attempt_at: i64,
    /// The platform's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Milliseconds the attempt took.
    pub latency_ms: i64,
    /// What happened (credentials masked).
    pub detail: String,
    /// What the attempt says of the platform, for the account's chat circuit breaker:
    /// `Some(false)` when it failed (429, 5xx, no answer), `Some(true)` when it answered
    /// otherwise, `None` when no attempt was made.
    pub platform_up: Option<bool>,
}

/// The `[chat]` retry schedule.
pub fn policy(chat: &Chat) -> Policy {
    Policy {
        max_attempts: chat.max_attempts,
        base_ms: chat.retry_base_ms,
        max_ms: chat.retry_max_ms,
    }
}

/// Sends `m` once through its account's channel (or the connector) and decides what
/// follows. The connector's `Idempotency-Key` is fixed by the account and the event, so
/// every retry and every resend after a restart carries the same one.
pub async fn send(state: &AppState, client: &HttpClient, m: &Delivery) -> Sent {
    let chat = &state.config.chat;
    let policy = policy(chat);
    let started = Instant::now();
    let out = match channel::prepare(state, m).await {
        Ok(out) => out,
        Err(why) => {
            tracing::warn!(account = %m.account, seq = m.seq, reason = %why, "a status message waits");
            state
                .store
                .metrics()
                .record_chat_attempt(channel::label_of(state, &m.account), "waiting");
            let wait_ms = i64::try_from(policy.max_ms).unwrap_or(i64::MAX);
            return Sent {
                status: "pending",
                attempts: m.attempts,
                next_attempt_at: now_micros().saturating_add(wait_ms.saturating_mul(1000)),
                http_status: None,
                latency_ms: 0,
                detail: why.to_string(),
                platform_up: None,
            };
        }
    };
    let attempt = m.attempts + 1;
    let timeout = Duration::from_millis(chat.timeout_ms);
    let sent = tokio::time::timeout(
        timeout,
        client.send(
            Method::POST,
            &out.url,
            &out.header_pairs(),
            out.body.clone(),
        ),
    )
    .await;
    let latency_ms = started.elapsed().as_millis() as i64;
    let now = now_micros();
    let retryable = Answer::Retryable {
        retry_after_ms: None,
    };
    let (answer, http_status, detail) = match sent {
        Err(_) => (
            retryable,
            None,
            format!("no answer within {}ms", timeout.as_millis()),
        ),
        Ok(Err(e)) => (retryable, None, out.failure(&e)),
        Ok(Ok(a)) => {
            let code = a.status.as_u16();
            let (answer, detail) = out.classify(code, &a.headers, &a.body, now);
            (answer, Some(code), detail)
        }
    };
    let platform_up = Some(!matches!(answer, Answer::Retryable { .. }));
    let (status, next_attempt_at) =
        match retry::next(&policy, attempt, answer, now, rand::random::<f64>()) {
            Next::Delivered => ("delivered", now),
            Next::NoSession => ("no_session", now),
            Next::Dead => ("dead", now),
            Next::RetryAt(at) => ("retrying", at),
        };
    state
        .store
        .metrics()
        .record_chat_attempt(out.label(), status);
    Sent {
        status,
        attempts: attempt,
        next_attempt_at,
        http_status,
        latency_ms,
        detail,
        platform_up,
    }
}
