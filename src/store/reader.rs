//! Reads: event search with cursor pagination, one event, accounts, tokens, the change log.
//!
//! Owns a small pool of read-only connections and the queries. Each read runs on the
//! blocking pool so it never stalls the async workers. It must never write: its
//! connections are opened read-only.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter};
use serde::Serialize;
use serde_json::Value;

use super::StoreError;
use super::keys::{Keys, Kind};
use super::timeline::{self, Bound};
use crate::clock::format_micros;
use crate::event::{Status, public_id};
use crate::tokens::{Role, TokenEntry};

/// The read connections.
pub(super) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: PathBuf, busy_timeout_ms: u64) -> Self {
        Readers {
            path,
            busy_timeout: Duration::from_millis(busy_timeout_ms),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        Ok(conn)
    }

    /// Returns a connection to the pool.
    pub(super) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 8 {
            idle.push(conn);
        }
    }

    /// Runs a read on a pooled connection, on the blocking pool.
    pub(super) async fn run<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = me.take()?;
            let out = f(&conn);
            let mut idle = me.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < 8 {
                idle.push(conn);
            }
            out
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("read task failed: {e}"))))
    }
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

pub(super) fn accounts(c: &Connection) -> Result<Vec<StoredAccount>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT spec, listening, created_at, updated_at, name FROM accounts ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredAccount {
            spec: r.get(0)?,
            listening: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
            name: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn tokens(c: &Connection) -> Result<Vec<TokenEntry>, StoreError> {
    let mut stmt = c.prepare("SELECT name, role, hash FROM tokens")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, role, hash) = row?;
        if let (Some(role), Ok(hash)) = (Role::parse(&role), <[u8; 32]>::try_from(hash)) {
            out.push(TokenEntry { name, role, hash });
        }
    }
    Ok(out)
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
    #[serde(skip)]
    pub(super) seq: i64,
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

pub(super) const SUMMARY_COLUMNS: &str = "seq, received_at, account, status, reason, event_id, event_type, sender, source, params, forward_status";

pub(super) fn summary(r: &Row<'_>) -> rusqlite::Result<EventSummary> {
    let seq: i64 = r.get(0)?;
    let params: Option<String> = r.get(9)?;
    Ok(EventSummary {
        id: public_id(seq),
        received_at: format_micros(r.get(1)?),
        account: r.get(2)?,
        status: r.get(3)?,
        reason: r.get(4)?,
        event_id: r.get(5)?,
        event_type: r.get(6)?,
        sender: r.get(7)?,
        source: r.get(8)?,
        params: params
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null),
        forward_status: r.get(10)?,
        seq,
    })
}

/// A page of events matching `f`; `bound` bounds its time range (`timeline`).
pub(super) fn events(
    c: &Connection,
    f: &EventFilter,
    keys: &Keys,
    bound: Bound,
) -> Result<Page<EventSummary>, StoreError> {
    let items = select(c, f, SUMMARY_COLUMNS, (keys, bound), summary)?;
    Ok(into_page(items, f.limit, |e| e.seq))
}

/// Up to `f.limit + 1` rows of `columns` matching `f`, in its order, each made by `map`.
///
/// A filter by sender, source, event type or account (the first given, in that order)
/// walks that key's seqs in order (`keys::Walk`) and asks the events table about a batch
/// of them at a time, the batch growing while the other filters turn candidates down, so
/// a key with a long history costs a page only what the page needs. Memory is read
/// first, then every statement runs in one snapshot.
pub(super) fn select<T>(
    c: &Connection,
    f: &EventFilter,
    columns: &str,
    (keys, bound): (&Keys, Bound),
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let want = f.limit.saturating_add(1);
    // A rare outcome or a reason has a partial index of its own, which finds its few rows
    // faster than a walk through all of a key's: the key is then checked on each row.
    let rare = f.reason.is_some()
        || matches!(
            f.status.as_deref(),
            Some("rejected" | "duplicate" | "handshake")
        );
    // The key most likely to be selective is walked; the others are compared on its rows.
    let key = [
        (Kind::Sender, &f.sender),
        (Kind::Source, &f.source),
        (Kind::EventType, &f.event_type),
        (Kind::Account, &f.account),
    ]
    .into_iter()
    .find_map(|(kind, key)| key.as_ref().map(|k| (kind, k)))
    .filter(|_| !rare);
    let Some((kind, key)) = key else {
        let bounds = seq_bounds(c, f, bound)?;
        let (sql, args) = filtered(f, columns, None, bounds, want);
        let mut stmt = c.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(args), map)?
            .collect::<Result<_, _>>()?;
        return Ok(rows);
    };
    let within = (
        f.after_seq.map_or(i64::MIN, |s| s.saturating_add(1)),
        f.before_seq.unwrap_or(i64::MAX),
    );
    let mut walk = keys.walk(kind, key, !f.oldest_first, within);
    let snapshot = c.unchecked_transaction()?;
    let bounds = seq_bounds(&snapshot, f, bound)?;
    walk.start(
        &snapshot,
        bounds.0.unwrap_or(i64::MIN),
        bounds.1.unwrap_or(i64::MAX),
    )?;
    let mut out = Vec::new();
    let mut batch = want;
    while out.len() < want {
        let seqs = walk.next(&snapshot, batch)?;
        if seqs.is_empty() {
            break;
        }
        let among =
            serde_json::to_string(&seqs).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (sql, args) = filtered(f, columns, Some(among), bounds, want - out.len());
        let mut stmt = snapshot.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), &mut map)?;
        for row in rows {
            out.push(row?);
        }
        batch = batch.saturating_mul(4).min(8192);
    }
    Ok(out)
}

/// Cuts a result fetched with one extra row down to a page, with the cursor of its last row
/// when there is more.
fn into_page<T>(mut items: Vec<T>, limit: usize, seq: impl Fn(&T) -> i64) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| seq(e).to_string())
    } else {
        None
    };
    Page { items, next_cursor }
}

/// The SQL and arguments that select `columns` of the events matching a filter, in the
/// filter's order, at most `limit`, within its seq bounds (`seq_bounds`); with `among` (a
/// JSON array of seqs), only those seqs.
fn filtered(
    f: &EventFilter,
    columns: &str,
    among: Option<String>,
    (after, before): (Option<i64>, Option<i64>),
    limit: usize,
) -> (String, Vec<SqlValue>) {
    // Rare outcomes have partial indexes; naming them stops the planner, which cannot
    // know they are rare, from scanning the whole table newest-first instead.
    let index = match (f.reason.is_some(), f.status.as_deref()) {
        (true, _) => " INDEXED BY events_by_reason",
        (false, Some("rejected")) => " INDEXED BY events_rejected",
        (false, Some("duplicate")) => " INDEXED BY events_duplicate",
        (false, Some("handshake")) => " INDEXED BY events_handshake",
        _ => "",
    };
    let mut sql = format!("SELECT {columns} FROM events{index} WHERE 1 = 1");
    // The status is written into the SQL so the partial indexes apply; it comes from the
    // closed `Status` set, never from input text. An unknown status matches nothing.
    if let Some(status) = &f.status {
        match Status::parse(status) {
            Some(s) => sql.push_str(&format!(" AND status = '{}'", s.as_str())),
            None => sql.push_str(" AND 0"),
        }
    }
    let mut args: Vec<SqlValue> = Vec::new();
    let text_filters = [
        ("account", &f.account),
        ("reason", &f.reason),
        ("sender", &f.sender),
        ("source", &f.source),
        ("event_type", &f.event_type),
    ];
    for (column, value) in text_filters {
        if let Some(v) = value {
            args.push(SqlValue::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    // The keyed columns have no index on `events`: `select` walks one key's seqs, except
    // beside a rare outcome's index (every column is compared above either way).
    if let Some(seqs) = among {
        args.push(SqlValue::Text(seqs));
        sql.push_str(&format!(
            " AND seq IN (SELECT value FROM json_each(?{}))",
            args.len()
        ));
    }
    let int_filters = [
        ("received_at >=", f.since),
        ("received_at <", f.until),
        ("seq <", before),
        ("seq >=", after),
    ];
    for (cond, value) in int_filters {
        if let Some(v) = value {
            args.push(SqlValue::Integer(v));
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        }
    }
    args.push(SqlValue::Integer(limit as i64));
    let order = if f.oldest_first { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY seq {order} LIMIT ?{}", args.len()));
    (sql, args)
}

/// The seqs a filter can match: at or above the first (`after`) and below the second
/// (`before`), from its cursors and its time range (`timeline`: the rows within these
/// bounds are then compared on `received_at` exactly).
fn seq_bounds(
    c: &Connection,
    f: &EventFilter,
    bound: Bound,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let (mut after, mut before) = (f.after_seq.map(|s| s + 1), f.before_seq);
    if f.since.is_some() || f.until.is_some() {
        let (from, below) = timeline::seq_range(c, f.since, f.until, bound)?;
        after = after.max(from);
        before = match (before, below) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok((after, before))
}

pub(super) fn event(c: &Connection, seq: i64) -> Result<Option<EventDetail>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, detail, method, path, query, remote_addr, headers, content_type,
                body, body_size, body_sha256, body_truncated, handle_micros
         FROM events WHERE seq = ?1"
    );
    let row = c
        .prepare_cached(&sql)?
        .query_row(params![seq], |r| {
            let body: Vec<u8> = r.get(18)?;
            let (body, body_encoding) = match String::from_utf8(body) {
                Ok(text) => (text, "utf8"),
                Err(e) => (STANDARD.encode(e.as_bytes()), "base64"),
            };
            let headers: String = r.get(16)?;
            Ok(EventDetail {
                summary: summary(r)?,
                detail: r.get(11)?,
                method: r.get(12)?,
                path: r.get(13)?,
                query: r.get(14)?,
                remote_addr: r.get(15)?,
                headers: serde_json::from_str(&headers).unwrap_or(Value::Null),
                content_type: r.get(17)?,
                body,
                body_encoding,
                body_size: r.get(19)?,
                body_sha256: r.get::<_, Option<Vec<u8>>>(20)?.map(hex::encode),
                body_truncated: r.get(21)?,
                handle_micros: r.get(22)?,
            })
        })
        .optional()?;
    Ok(row)
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
    #[serde(skip)]
    seq: i64,
}

pub(super) fn changes(c: &Connection, f: &ChangeFilter) -> Result<Page<ChangeRow>, StoreError> {
    let mut sql =
        String::from("SELECT seq, at, actor, action, account, detail FROM changes WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    for (column, value) in [("account", &f.account), ("action", &f.action)] {
        if let Some(v) = value {
            args.push(SqlValue::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    for (cond, value) in [
        ("at >=", f.since),
        ("at <", f.until),
        ("seq <", f.before_seq),
    ] {
        if let Some(v) = value {
            args.push(SqlValue::Integer(v));
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        }
    }
    args.push(SqlValue::Integer(f.limit as i64 + 1));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    let mut stmt = c.prepare_cached(&sql)?;
    let items: Vec<ChangeRow> = stmt
        .query_map(params_from_iter(args), |r| {
            let seq: i64 = r.get(0)?;
            let detail: String = r.get(5)?;
            Ok(ChangeRow {
                id: format!("chg_{seq}"),
                at: format_micros(r.get(1)?),
                actor: r.get(2)?,
                action: r.get(3)?,
                account: r.get(4)?,
                detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                seq,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(into_page(items, f.limit, |c| c.seq))
}

/// A message waiting in the outbox.
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

pub(super) fn due_deliveries(
    c: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, account, recipient, text, event_id, event_type, attempts FROM outbox
         WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?1
         ORDER BY next_attempt_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |r| {
        Ok(Delivery {
            seq: r.get(0)?,
            account: r.get(1)?,
            recipient: r.get(2)?,
            text: r.get(3)?,
            event_id: r.get(4)?,
            event_type: r.get(5)?,
            attempts: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn next_due(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(c.query_row(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE status IN ('pending', 'retrying')",
        [],
        |r| r.get(0),
    )?)
}

/// One delivery attempt, as shown on the event.
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

pub(super) fn attempts(c: &Connection, seq: i64) -> Result<Vec<AttemptRow>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT attempt, at, outcome, http_status, detail FROM forward_attempts WHERE seq = ?1 ORDER BY attempt",
    )?;
    let rows = stmt.query_map(params![seq], |r| {
        Ok(AttemptRow {
            attempt: r.get(0)?,
            at: format_micros(r.get(1)?),
            outcome: r.get(2)?,
            http_status: r.get(3)?,
            detail: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Streamed events after `after_seq`, oldest first, as (seq, JSON).
pub(super) fn streamed_after(
    c: &Connection,
    after_seq: i64,
    account: Option<&str>,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM events WHERE streamed = 1 AND seq > ?1 {} ORDER BY seq LIMIT ?2",
        if account.is_some() {
            "AND account = ?3"
        } else {
            "AND ?3 IS NULL"
        }
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after_seq, limit as i64, account], |r| {
        let e = summary(r)?;
        Ok((e.seq, serde_json::to_string(&e).unwrap_or_default()))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
