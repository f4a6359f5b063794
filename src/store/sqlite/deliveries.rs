//! Reads of destinations and the one outbox on SQLite: the stored destinations, the due
//! query the delivery worker runs (deliveries to HTTP destinations and chat messages,
//! which go to the reserved chat destination), and the deliveries shown with an event.
//!
//! Owns these statements. Read-only connections only; every change goes through the
//! writer (`admin_write`). It must never hand out more of one destination's deliveries
//! than its `max_in_flight` allows (an account's chat messages: the chat cap), counting
//! those in flight.

use rusqlite::{Connection, params};

use crate::clock::format_micros;
use crate::destination::CHAT;
use crate::store::StoreError;
use crate::store::rows::{
    DeliveryAttemptRow, DeliveryRow, DueDelivery, OutboxStats, StoredDestination,
};

pub(super) fn destinations(c: &Connection) -> Result<Vec<StoredDestination>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT account, name, spec, keys, max_in_flight, created_at, updated_at
         FROM destinations ORDER BY account, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredDestination {
            account: r.get(0)?,
            name: r.get(1)?,
            spec: r.get(2)?,
            keys: r.get(3)?,
            max_in_flight: r.get(4)?,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Per destination, the lowest seqs among its due deliveries and those in flight, up to
/// its `max_in_flight` (`chat_cap` for an account's chat messages), less those in flight;
/// the oldest due first overall. A delivery to a destination no longer stored waits, and
/// so do chat messages while `chat_cap` is 0 (they are left out before the count).
pub(super) fn due(
    c: &Connection,
    now: i64,
    limit: usize,
    paused: &[String],
    in_flight: &[i64],
    chat_cap: usize,
) -> Result<Vec<DueDelivery>, StoreError> {
    let paused = serde_json::to_string(paused).unwrap_or_default();
    let in_flight = serde_json::to_string(in_flight).unwrap_or_default();
    let mut stmt = c.prepare_cached(
        "SELECT w.id, w.seq, w.account, w.destination, w.attempts, w.recipient, w.text,
             e.event_id, e.event_type
         FROM (
             SELECT d.id, d.seq, d.account, d.destination, d.attempts, d.next_attempt_at,
                 d.recipient, d.text,
                 CASE WHEN d.destination = ?5 THEN ?6 ELSE x.max_in_flight END AS cap,
                 ROW_NUMBER() OVER (PARTITION BY d.account, d.destination ORDER BY d.seq) AS rn
             FROM deliveries d
             LEFT JOIN destinations x ON x.account = d.account AND x.name = d.destination
             WHERE d.status IN ('pending', 'retrying')
               AND (x.name IS NOT NULL OR (d.destination = ?5 AND ?6 > 0))
               AND (d.next_attempt_at <= ?1 OR d.id IN (SELECT value FROM json_each(?4)))
               AND (d.account || '/' || d.destination) NOT IN (SELECT value FROM json_each(?3))
         ) w
         LEFT JOIN events e ON e.seq = w.seq
         WHERE w.rn <= w.cap AND w.id NOT IN (SELECT value FROM json_each(?4))
         ORDER BY w.next_attempt_at, w.seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![now, limit as i64, paused, in_flight, CHAT, chat_cap as i64],
        |r| {
            Ok(DueDelivery {
                id: r.get(0)?,
                seq: r.get(1)?,
                account: r.get(2)?,
                destination: r.get(3)?,
                attempts: r.get(4)?,
                recipient: r.get(5)?,
                text: r.get(6)?,
                event_id: r.get(7)?,
                event_type: r.get(8)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next delivery the worker could start is due: as [`due`] chooses, without the
/// per-destination cap (a time already past means deliveries wait for one in flight).
pub(super) fn next_startable(
    c: &Connection,
    paused: &[String],
    in_flight: &[i64],
    chat_cap: usize,
) -> Result<Option<i64>, StoreError> {
    let paused = serde_json::to_string(paused).unwrap_or_default();
    let in_flight = serde_json::to_string(in_flight).unwrap_or_default();
    let mut stmt = c.prepare_cached(
        "SELECT MIN(d.next_attempt_at)
         FROM deliveries d
         LEFT JOIN destinations x ON x.account = d.account AND x.name = d.destination
         WHERE d.status IN ('pending', 'retrying')
           AND (x.name IS NOT NULL OR (d.destination = ?1 AND ?2 > 0))
           AND d.id NOT IN (SELECT value FROM json_each(?3))
           AND (d.account || '/' || d.destination) NOT IN (SELECT value FROM json_each(?4))",
    )?;
    Ok(
        stmt.query_row(params![CHAT, chat_cap as i64, in_flight, paused], |r| {
            r.get(0)
        })?,
    )
}

pub(super) fn next_due(c: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(c.query_row(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'retrying')",
        [],
        |r| r.get(0),
    )?)
}

pub(super) fn of_event(c: &Connection, seq: i64) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, destination, status, attempts, next_attempt_at FROM deliveries
         WHERE seq = ?1 ORDER BY destination",
    )?;
    let mut out: Vec<(i64, DeliveryRow)> = stmt
        .query_map(params![seq], |r| {
            let id: i64 = r.get(0)?;
            let status: String = r.get(2)?;
            let next: i64 = r.get(4)?;
            Ok((
                id,
                DeliveryRow {
                    id: format!("dlv_{id}"),
                    destination: r.get(1)?,
                    next_attempt_at: matches!(status.as_str(), "pending" | "retrying")
                        .then(|| format_micros(next)),
                    status,
                    attempts: r.get(3)?,
                    history: Vec::new(),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut attempts = c.prepare_cached(
        "SELECT attempt, at, outcome, http_status, latency_ms, detail FROM delivery_attempts
         WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    for (id, row) in &mut out {
        row.history = attempts
            .query_map(params![*id], |r| {
                Ok(DeliveryAttemptRow {
                    attempt: r.get(0)?,
                    at: format_micros(r.get(1)?),
                    outcome: r.get(2)?,
                    http_status: r.get(3)?,
                    latency_ms: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

pub(super) fn stats(c: &Connection) -> Result<OutboxStats, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT destination = ?1, COUNT(*), MIN(created_at) FROM deliveries
         WHERE status IN ('pending', 'retrying') GROUP BY destination = ?1",
    )?;
    let mut out = OutboxStats::default();
    let rows = stmt.query_map(params![CHAT], |r| {
        Ok((r.get::<_, bool>(0)?, r.get(1)?, r.get(2)?))
    })?;
    for row in rows {
        match row? {
            (true, n, oldest) => (out.chat_backlog, out.chat_oldest_queued) = (n, oldest),
            (false, n, oldest) => (out.backlog, out.oldest_queued) = (n, oldest),
        }
    }
    Ok(out)
}
