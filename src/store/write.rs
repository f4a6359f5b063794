//! The writes an engine applies for the gateway's admin side: accounts, tokens, retention
//! and delivery outcomes, each with the change-log row that records it.
//!
//! Plain data. Each engine applies a write together with its chained change-log row in one
//! transaction; nothing here does I/O or names a database driver.

use crate::tokens::TokenEntry;

/// A change-log row: who did what to which account, and when.
#[derive(Debug, Clone)]
pub struct Change {
    /// When, in microseconds since the epoch.
    pub at: i64,
    /// The token name (with its role) that made the change.
    pub actor: String,
    /// What was done: `account.created`, `account.updated`, `account.deleted`, ...
    pub action: String,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Secret-free JSON detail.
    pub detail: String,
}

/// An admin write, always together with its change-log row.
#[derive(Debug, Clone)]
pub enum AdminWrite {
    /// Creates an account; fails with `Conflict` when the name is taken.
    CreateAccount {
        /// The name.
        name: String,
        /// The stored spec JSON (secrets in clear).
        spec: String,
        /// The change-log row.
        change: Change,
    },
    /// Replaces an account's spec and listening flag; fails with `NotFound`.
    UpdateAccount {
        /// The name.
        name: String,
        /// The stored spec JSON (secrets in clear).
        spec: String,
        /// Whether the listener is on.
        listening: bool,
        /// The change-log row.
        change: Change,
    },
    /// Deletes an account (its audit rows stay); fails with `NotFound`.
    DeleteAccount {
        /// The name.
        name: String,
        /// The change-log row.
        change: Change,
    },
    /// Prunes events received before a time, as a seq prefix, leaving a chain checkpoint.
    /// Writes a change-log row only when something was pruned.
    PruneEvents {
        /// Microseconds since the epoch.
        before: i64,
        /// The most rows pruned by this one write.
        max_rows: i64,
        /// Dedupe ids of pruned events received before this time (microseconds) are
        /// forgotten; `None` keeps every id.
        dedupe_before: Option<i64>,
        /// Signs the checkpoint the prune leaves.
        key: std::sync::Arc<crate::anchor::AuditKey>,
        /// Who asked, and when (`action` and `detail` are filled in by the writer).
        change: Change,
    },
    /// Writes the change log's anchor row (`audit.anchored`, signed), and nothing else.
    Anchor {
        /// The change-log row.
        change: Change,
    },
    /// Removes a token.
    RevokeToken {
        /// The token's name.
        name: String,
        /// The change-log row.
        change: Change,
    },
    /// A destination change or a delivery outcome.
    Destination(DestinationWrite),
    /// Stores a token's hash.
    AddToken {
        /// The token.
        entry: TokenEntry,
        /// The change-log row.
        change: Change,
    },
}

/// What one prune did, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Events rows removed.
    pub rows: u64,
    /// The first seq removed (when `rows` > 0).
    pub from: i64,
    /// The checkpoint's seq: the last seq pruned so far.
    pub through: i64,
    /// The checkpoint's hash.
    pub hash: crate::chain::Hash,
    /// Dedupe ids forgotten (their events were pruned and are older than the horizon).
    pub dedupe_expired: u64,
}

impl Pruned {
    /// Whether the prune changed anything, and so is recorded.
    pub fn changed(&self) -> bool {
        self.rows > 0 || self.dedupe_expired > 0
    }
}

impl Change {
    /// The change-log row of a prune, asked for as `self` with rows received before
    /// `before`: the log, the range pruned and the checkpoint it left, which verification
    /// checks against the checkpoint (`store::anchoring`).
    pub fn pruned(&self, p: &Pruned, before: i64) -> Change {
        let mut detail = serde_json::json!({"log": "events", "pruned": p.rows,
            "through_seq": p.through, "checkpoint_hash": hex::encode(p.hash),
            "before": crate::clock::format_micros(before)});
        if p.rows > 0 {
            detail["from_seq"] = p.from.into();
        }
        if p.dedupe_expired > 0 {
            detail["dedupe_expired"] = p.dedupe_expired.into();
        }
        Change {
            action: "audit.pruned".into(),
            detail: detail.to_string(),
            ..self.clone()
        }
    }
}

/// The destination writes, each with its change-log row (never a secret in it).
#[derive(Debug, Clone)]
pub enum DestinationWrite {
    /// Creates a destination; `Conflict` when the name is taken in the account.
    Create {
        /// The stored row (keys in clear here; `Store` seals them).
        row: crate::store::rows::StoredDestination,
        /// The change-log row.
        change: Change,
    },
    /// Replaces a destination's spec and keys; `NotFound` when it does not exist.
    Update {
        /// The stored row (keys in clear here; `Store` seals them).
        row: crate::store::rows::StoredDestination,
        /// The change-log row.
        change: Change,
    },
    /// Deletes a destination; its waiting deliveries become `cancelled`.
    Delete {
        /// The account.
        account: String,
        /// The destination's name.
        name: String,
        /// The change-log row.
        change: Change,
    },
    /// Records one attempt of a delivery (of either kind) and its new state; a chat
    /// message's state is also its event's `forward_status`. Writes no change-log row.
    Attempt {
        /// The delivery's id.
        id: i64,
        /// Attempts since queued or redriven.
        attempts: u32,
        /// When, in microseconds since the epoch.
        at: i64,
        /// `delivered`, `retrying` or `dead`; for a chat message also `no_session`, or
        /// `pending` when it waits for its channel (no attempt spent).
        status: &'static str,
        /// When to try again (for `retrying` and `pending`).
        next_attempt_at: i64,
        /// The destination's (or chat platform's) HTTP status, if it answered.
        http_status: Option<u16>,
        /// Milliseconds the attempt took.
        latency_ms: i64,
        /// What happened.
        detail: String,
    },
    /// Queues every delivery matching the filter again with a fresh attempt budget;
    /// answers how many. `NotFound` when the filter names one event (`seq`) and nothing
    /// matched.
    Redrive {
        /// Which deliveries.
        filter: crate::store::rows::RedriveFilter,
        /// The change-log row (its detail is the filter).
        change: Change,
    },
}
