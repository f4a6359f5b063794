//! Figures for the console: per-account counts, per-minute outcomes and rejections by
//! reason over a recent window, and the outbox backlog.
//!
//! Owns these read-only queries: plain SQL over the `events` and `outbox` tables, run on
//! the reader pool, bounded by a time window through the `received_at` index. It must
//! never write, and never read a body or headers: only counts and times leave it.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};

/// Counts of one account's events since a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountCounts {
    /// Accepted events.
    pub accepted: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Rejected requests.
    pub rejected: u64,
    /// When its newest event of any age arrived (microseconds), if it has one.
    pub last_event_at: Option<i64>,
}

/// Outcomes in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Minute {
    /// The minute's start, microseconds since the epoch.
    pub at: i64,
    /// Accepted events.
    pub accepted: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Rejected requests.
    pub rejected: u64,
}

/// Activity over a recent window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// One entry per minute of the window, oldest first, zeros included.
    pub minutes: Vec<Minute>,
    /// Rejections in the window by reason, most frequent first.
    pub rejections: Vec<(String, u64)>,
    /// Forwards waiting for delivery (pending or retrying).
    pub outbox_backlog: u64,
}

const MINUTE: i64 = 60_000_000;

impl Store {
    /// Per-account counts of the events received since `since` (microseconds), and each
    /// account's newest event time, for the accounts named.
    pub async fn account_counts(
        &self,
        names: Vec<String>,
        since: i64,
    ) -> Result<BTreeMap<String, AccountCounts>, StoreError> {
        self.readers
            .run(move |c| account_counts(c, &names, since))
            .await
    }

    /// Outcomes per minute and rejections by reason over the `minutes` before `now`, and
    /// the outbox backlog.
    pub async fn activity(&self, now: i64, minutes: u32) -> Result<Activity, StoreError> {
        self.readers.run(move |c| activity(c, now, minutes)).await
    }
}

fn account_counts(
    c: &Connection,
    names: &[String],
    since: i64,
) -> Result<BTreeMap<String, AccountCounts>, StoreError> {
    let mut out: BTreeMap<String, AccountCounts> = names
        .iter()
        .map(|n| (n.clone(), AccountCounts::default()))
        .collect();
    let mut by_status = c.prepare_cached(
        "SELECT account, status, count(*) FROM events WHERE received_at >= ?1 \
         GROUP BY account, status",
    )?;
    let mut rows = by_status.query(params![since])?;
    while let Some(row) = rows.next()? {
        let account: String = row.get(0)?;
        let status: String = row.get(1)?;
        let n: i64 = row.get(2)?;
        let Some(counts) = out.get_mut(&account) else {
            continue;
        };
        let n = u64::try_from(n).unwrap_or(0);
        match status.as_str() {
            "accepted" => counts.accepted = n,
            "duplicate" => counts.duplicate = n,
            "rejected" => counts.rejected = n,
            _ => {}
        }
    }
    let mut last = c.prepare_cached("SELECT max(seq) FROM events WHERE account = ?1")?;
    let mut time = c.prepare_cached("SELECT received_at FROM events WHERE seq = ?1")?;
    for (name, counts) in &mut out {
        let seq: Option<i64> = last.query_row(params![name], |r| r.get(0))?;
        if let Some(seq) = seq {
            counts.last_event_at = time.query_row(params![seq], |r| r.get(0)).optional()?;
        }
    }
    Ok(out)
}

fn activity(c: &Connection, now: i64, minutes: u32) -> Result<Activity, StoreError> {
    let end = now - now.rem_euclid(MINUTE) + MINUTE;
    let start = end - i64::from(minutes) * MINUTE;
    let mut out = Activity {
        minutes: (0..i64::from(minutes))
            .map(|i| Minute {
                at: start + i * MINUTE,
                ..Minute::default()
            })
            .collect(),
        ..Activity::default()
    };
    let mut per_minute = c.prepare_cached(
        "SELECT (received_at - ?1) / ?3, status, count(*) FROM events \
         WHERE received_at >= ?1 AND received_at < ?2 GROUP BY 1, 2",
    )?;
    let mut rows = per_minute.query(params![start, end, MINUTE])?;
    while let Some(row) = rows.next()? {
        let index: i64 = row.get(0)?;
        let status: String = row.get(1)?;
        let n = u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0);
        let Some(m) = usize::try_from(index)
            .ok()
            .and_then(|i| out.minutes.get_mut(i))
        else {
            continue;
        };
        match status.as_str() {
            "accepted" => m.accepted += n,
            "duplicate" => m.duplicate += n,
            "rejected" => m.rejected += n,
            _ => {}
        }
    }
    let mut reasons = c.prepare_cached(
        "SELECT reason, count(*) FROM events WHERE received_at >= ?1 AND received_at < ?2 \
         AND status = 'rejected' GROUP BY reason ORDER BY 2 DESC, 1",
    )?;
    out.rejections = reasons
        .query_map(params![start, end], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            ))
        })?
        .collect::<Result<_, _>>()?;
    out.outbox_backlog = c.query_row(
        "SELECT count(*) FROM outbox WHERE status IN ('pending', 'retrying')",
        [],
        |r| r.get::<_, i64>(0).map(|n| u64::try_from(n).unwrap_or(0)),
    )?;
    Ok(out)
}
