//! The engine-neutral rows and filters every storage engine reads and returns.
//!
//! Owns the shapes the admin API serialises (the contract of `GET /v1/events` and the
//! change log) and the filters behind them. Plain data: nothing here names a database
//! driver or does I/O.

use serde::Serialize;
use serde_json::Value;

/// A streamed event, as published after its group committed.
#[derive(Debug, Clone)]
pub struct StreamItem {
    /// The audit seq: the stream's event id.
    pub seq: i64,
    /// The account.
    pub account: String,
    /// The event as JSON (the listing's shape).
    pub data: String,
}

/// Cuts a result fetched with one extra row down to a page, with the cursor of its last row
/// when there is more.
pub fn into_page<T>(mut items: Vec<T>, limit: usize, seq: impl Fn(&T) -> i64) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| seq(e).to_string())
    } else {
        None
    };
    Page { items, next_cursor }
}

/// An account row as stored.
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// The account's name (the row key; sealed specs are bound to it).
    pub name: String,
    /// The spec JSON, secrets in clear (opened from its sealed form by `Store::accounts`).
    pub spec: String,
    /// Whether its listener is on.
    pub listening: bool,
    /// Created, in microseconds since the epoch.
    pub created_at: i64,
    /// Last changed, in microseconds since the epoch.
    pub updated_at: i64,
}

/// Event search filters; every one optional. Times are microseconds since the epoch.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Account name.
    pub account: Option<String>,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: Option<String>,
    /// A rejection reason.
    pub reason: Option<String>,
    /// Extracted sender.
    pub sender: Option<String>,
    /// Extracted source.
    pub source: Option<String>,
    /// Extracted event type.
    pub event_type: Option<String>,
    /// Received at or after.
    pub since: Option<i64>,
    /// Received before.
    pub until: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// Only rows older than this sequence number (the cursor).
    pub before_seq: Option<i64>,
    /// Only rows newer than this sequence number (export paging).
    pub after_seq: Option<i64>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// One page of results, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The cursor for the next (older) page, if there is one.
    pub next_cursor: Option<String>,
}

/// An event as listed (the contract of `GET /v1/events`).
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    /// `evt_{seq}`.
    pub id: String,
    /// RFC 3339, UTC.
    pub received_at: String,
    /// Account name as received.
    pub account: String,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    /// The rejection reason.
    pub reason: Option<String>,
    /// The sender's event id.
    pub event_id: Option<String>,
    /// The event type.
    pub event_type: Option<String>,
    /// Extracted sender.
    pub sender: Option<String>,
    /// Extracted source.
    pub source: Option<String>,
    /// Extracted params.
    pub params: Value,
    /// Forwarding outcome, once listeners forward.
    pub forward_status: Option<String>,
    /// The audit seq (the listing's order and cursor).
    #[serde(skip)]
    pub seq: i64,
}

/// One event in full (the contract of `GET /v1/events/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct EventDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: EventSummary,
    /// Why it was rejected, in words.
    pub detail: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Query string, credentials redacted.
    pub query: String,
    /// Peer address.
    pub remote_addr: String,
    /// Headers, credentials and signatures redacted.
    pub headers: Value,
    /// Content type.
    pub content_type: Option<String>,
    /// The stored body: text when it is UTF-8, else base64.
    pub body: String,
    /// `utf8` or `base64`.
    pub body_encoding: &'static str,
    /// Size of the body as received.
    pub body_size: i64,
    /// SHA-256 of the whole body, hex.
    pub body_sha256: Option<String>,
    /// True when `body` holds less than was received.
    pub body_truncated: bool,
    /// Microseconds from request line to hand-off to the writer.
    pub handle_micros: i64,
}

/// Change-log filters.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// Account name.
    pub account: Option<String>,
    /// Action name.
    pub action: Option<String>,
    /// At or after.
    pub since: Option<i64>,
    /// Before.
    pub until: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// Only rows older than this sequence number.
    pub before_seq: Option<i64>,
}

/// One change-log row.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    /// `chg_{seq}`.
    pub id: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// The token that made the change.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The account concerned.
    pub account: Option<String>,
    /// Secret-free detail.
    pub detail: Value,
    /// The change-log seq (the listing's order and cursor).
    #[serde(skip)]
    pub seq: i64,
}

/// A chat status message as its channel sends it (from a delivery to the chat
/// destination, [`DueDelivery::chat_message`]).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event's seq.
    pub seq: i64,
    /// The account.
    pub account: String,
    /// The sender to address.
    pub recipient: String,
    /// The rendered message.
    pub text: String,
    /// The event's id.
    pub event_id: Option<String>,
    /// The event's type.
    pub event_type: Option<String>,
    /// Attempts made so far (since queued or redelivered).
    pub attempts: u32,
}

/// One attempt of an event's chat message, as the event's `forward_attempts` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    /// 1, 2, ...
    pub attempt: i64,
    /// RFC 3339.
    pub at: String,
    /// delivered, no_session, retrying or dead.
    pub outcome: String,
    /// The connector's HTTP status.
    pub http_status: Option<i64>,
    /// What happened.
    pub detail: Option<String>,
}

/// A destination as stored: its spec JSON (no secret) and its signing keys (sealed).
#[derive(Debug, Clone)]
pub struct StoredDestination {
    /// The account.
    pub account: String,
    /// The destination's name.
    pub name: String,
    /// The spec JSON.
    pub spec: String,
    /// The signing keys' JSON, sealed at rest (opened by `Store`).
    pub keys: String,
    /// Deliveries in flight at once (from the spec; the due query reads it).
    pub max_in_flight: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub updated_at: i64,
}

/// A delivery to a destination that is due.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery's id.
    pub id: i64,
    /// The event's seq.
    pub seq: i64,
    /// The account.
    pub account: String,
    /// The destination's name.
    pub destination: String,
    /// Attempts made so far (since queued or redriven).
    pub attempts: u32,
    /// A chat message's recipient (the chat destination only).
    pub recipient: Option<String>,
    /// A chat message's rendered text (the chat destination only).
    pub text: Option<String>,
    /// The event's id, when the event is still in the log.
    pub event_id: Option<String>,
    /// The event's type, when the event is still in the log.
    pub event_type: Option<String>,
}

impl DueDelivery {
    /// The chat status message this delivery carries, when it goes to the chat
    /// destination.
    pub fn chat_message(&self) -> Option<Delivery> {
        if self.destination != crate::destination::CHAT {
            return None;
        }
        Some(Delivery {
            seq: self.seq,
            account: self.account.clone(),
            recipient: self.recipient.clone().unwrap_or_default(),
            text: self.text.clone().unwrap_or_default(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            attempts: self.attempts,
        })
    }
}

/// One delivery of an event to a destination, as shown with the event.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// `dlv_{id}`.
    pub id: String,
    /// The destination's name.
    pub destination: String,
    /// pending, retrying, delivered, dead or cancelled.
    pub status: String,
    /// Attempts since queued or redriven.
    pub attempts: i64,
    /// When the next attempt is due (pending and retrying only).
    pub next_attempt_at: Option<String>,
    /// Every attempt, oldest first.
    pub history: Vec<DeliveryAttemptRow>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttemptRow {
    /// 1, 2, ... over the delivery's whole life.
    pub attempt: i64,
    /// RFC 3339.
    pub at: String,
    /// delivered, retrying or dead.
    pub outcome: String,
    /// The destination's HTTP status, if it answered.
    pub http_status: Option<i64>,
    /// Milliseconds from sending to the end of the answer (or the failure).
    pub latency_ms: i64,
    /// What happened, with the start of the answer's body (capped).
    pub detail: Option<String>,
}

/// Which deliveries a redrive queues again.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedriveFilter {
    /// The account.
    pub account: Option<String>,
    /// The destination's name.
    pub destination: Option<String>,
    /// One delivery by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The deliveries of one event, by its seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The statuses taken (`dead` when none is given; `delivered` may be sent again).
    pub statuses: Vec<String>,
    /// Deliveries queued at or after (microseconds since the epoch).
    pub since: Option<i64>,
    /// Deliveries queued before.
    pub until: Option<i64>,
}

/// The outbox at a glance: deliveries to HTTP destinations and chat status messages
/// (deliveries to the chat destination), each kind apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxStats {
    /// Deliveries to HTTP destinations pending or retrying.
    pub backlog: i64,
    /// When the oldest of them was queued (microseconds since the epoch).
    pub oldest_queued: Option<i64>,
    /// Chat status messages pending or retrying.
    pub chat_backlog: i64,
    /// When the oldest of them was queued (its event's arrival; microseconds since the epoch).
    pub chat_oldest_queued: Option<i64>,
}
