//! Figures for the console: per-account counts, per-minute outcomes and rejections by
//! reason over a recent window, and the outbox backlog.
//!
//! Owns these read-only queries: plain SQL over the `events` and `outbox` tables, run on
//! the reader pool. The events have no index by time, so a window is first turned into a
//! range of seqs by bisecting the primary key (`first_seq_at`), and only that range is
//! read. An account's newest event comes from the store's own search by account. It must
//! never write, and never read a body or headers: only counts and times leave it.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{EventFilter, Store, StoreError};

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

/// How far a row's time may fall before the time of a row logged ahead of it. The writer
/// keeps rows within a fraction of a second of time order (and older databases within
/// the enqueue timeout); a window's seq range starts this much earlier, and the rows in
/// it are then filtered by their exact time, so no row of the window is missed.
const SLACK: i64 = 10 * MINUTE;

impl Store {
    /// Per-account counts of the events received since `since` (microseconds), and each
    /// account's newest event time, for the accounts named.
    pub async fn account_counts(
        &self,
        names: Vec<String>,
        since: i64,
    ) -> Result<BTreeMap<String, AccountCounts>, StoreError> {
        let wanted = names.clone();
        let mut out = self
            .readers
            .run(move |c| account_counts(c, &wanted, since))
            .await?;
        for name in names {
            let newest = self
                .events(EventFilter {
                    account: Some(name.clone()),
                    limit: 1,
                    ..Default::default()
                })
                .await?;
            if let (Some(e), Some(counts)) = (newest.items.first(), out.get_mut(&name)) {
                counts.last_event_at = crate::clock::parse_time(&e.received_at);
            }
        }
        Ok(out)
    }

    /// Outcomes per minute and rejections by reason over the `minutes` before `now`, and
    /// the outbox backlog.
    pub async fn activity(&self, now: i64, minutes: u32) -> Result<Activity, StoreError> {
        self.readers.run(move |c| activity(c, now, minutes)).await
    }
}

/// The first seq at or after which every row received at `at` or later lies: a bisection
/// of the primary key for the first row timed at `at - SLACK` or later. Past the last seq
/// when there is none.
fn first_seq_at(c: &Connection, at: i64) -> Result<i64, StoreError> {
    let target = at.saturating_sub(SLACK);
    let (first, last): (Option<i64>, Option<i64>) =
        c.query_row("SELECT min(seq), max(seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut lo), Some(last)) = (first, last) else {
        return Ok(i64::MAX);
    };
    // The first row at or after a seq (pruning leaves gaps), with its time.
    let mut at_or_after =
        c.prepare_cached("SELECT received_at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
    let mut hi = last + 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let time: Option<i64> = at_or_after
            .query_row(params![mid], |r| r.get(0))
            .optional()?;
        match time {
            Some(time) if time < target => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
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
    let from = first_seq_at(c, since)?;
    let mut by_status = c.prepare_cached(
        "SELECT account, status, count(*) FROM events WHERE seq >= ?1 AND received_at >= ?2 \
         GROUP BY account, status",
    )?;
    let mut rows = by_status.query(params![from, since])?;
    while let Some(row) = rows.next()? {
        let account: String = row.get(0)?;
        let status: String = row.get(1)?;
        let n = u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0);
        let Some(counts) = out.get_mut(&account) else {
            continue;
        };
        match status.as_str() {
            "accepted" => counts.accepted = n,
            "duplicate" => counts.duplicate = n,
            "rejected" => counts.rejected = n,
            _ => {}
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
    let from = first_seq_at(c, start)?;
    let mut per_minute = c.prepare_cached(
        "SELECT (received_at - ?1) / ?3, status, count(*) FROM events \
         WHERE seq >= ?4 AND received_at >= ?1 AND received_at < ?2 GROUP BY 1, 2",
    )?;
    let mut rows = per_minute.query(params![start, end, MINUTE, from])?;
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
        "SELECT reason, count(*) FROM events WHERE seq >= ?3 AND received_at >= ?1 \
         AND received_at < ?2 AND status = 'rejected' GROUP BY reason ORDER BY 2 DESC, 1",
    )?;
    out.rejections = reasons
        .query_map(params![start, end, from], |r| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn db(rows: &[(i64, &str, &str, Option<&str>)]) -> Connection {
        let mut c = Connection::open_in_memory().expect("memory db");
        super::super::schema::migrate(&mut c).expect("schema");
        for (at, account, status, reason) in rows {
            c.execute(
                "INSERT INTO events (received_at, account, status, reason, method, path, query, \
                 remote_addr, headers, body, body_size, body_truncated, handle_micros) \
                 VALUES (?1, ?2, ?3, ?4, 'POST', '/', '', '', '[]', x'', 0, 0, 0)",
                params![at, account, status, reason],
            )
            .expect("insert");
        }
        c
    }

    const HOUR: i64 = 60 * MINUTE;

    #[test]
    fn a_window_starts_at_the_first_seq_within_the_slack_before_it() {
        let empty = db(&[]);
        assert_eq!(first_seq_at(&empty, 0).expect("seq"), i64::MAX);
        let times: Vec<(i64, &str, &str, Option<&str>)> = (0..100)
            .map(|i| (i * MINUTE, "a", "accepted", None))
            .collect();
        let c = db(&times);
        // Row n (seq n + 1) is at minute n; the slack is ten minutes.
        assert_eq!(first_seq_at(&c, 50 * MINUTE).expect("seq"), 41);
        assert_eq!(first_seq_at(&c, 0).expect("seq"), 1);
        assert_eq!(first_seq_at(&c, 1000 * MINUTE).expect("seq"), 101);
        // Pruned rows leave a gap: the range starts inside it, just before row 46.
        c.execute("DELETE FROM events WHERE seq BETWEEN 30 AND 45", [])
            .expect("prune");
        let from = first_seq_at(&c, 50 * MINUTE).expect("seq");
        let first: i64 = c
            .query_row("SELECT min(seq) FROM events WHERE seq >= ?1", [from], |r| {
                r.get(0)
            })
            .expect("a row");
        assert_eq!(first, 46);
    }

    #[test]
    fn counts_and_minutes_take_only_the_window_even_from_rows_out_of_order() {
        let now = 10 * HOUR + 30 * 1_000_000;
        let c = db(&[
            (now - 2 * HOUR, "a", "accepted", None),
            (now - 30 * MINUTE, "a", "accepted", None),
            // Held up: logged after a later row, but within the slack.
            (now - 31 * MINUTE, "a", "rejected", Some("bad_signature")),
            (now - MINUTE, "b", "duplicate", None),
            (now, "a", "rejected", Some("bad_auth")),
            (now, "x", "accepted", None),
        ]);
        let counts = account_counts(&c, &["a".into(), "b".into()], now - HOUR).expect("counts");
        assert_eq!(
            (
                counts["a"].accepted,
                counts["a"].rejected,
                counts["a"].duplicate
            ),
            (1, 2, 0)
        );
        assert_eq!(counts["b"].duplicate, 1);
        assert!(!counts.contains_key("x"), "only the accounts asked for");

        let a = activity(&c, now, 60).expect("activity");
        assert_eq!(a.minutes.len(), 60);
        assert!(a.minutes.windows(2).all(|w| w[1].at - w[0].at == MINUTE));
        let last = a.minutes.last().expect("a minute");
        assert!(
            last.at <= now && now < last.at + MINUTE,
            "the last minute holds now"
        );
        assert_eq!((last.accepted, last.rejected), (1, 1));
        let total = |f: fn(&Minute) -> u64| a.minutes.iter().map(f).sum::<u64>();
        assert_eq!(
            total(|m| m.accepted),
            2,
            "the row two hours back is outside"
        );
        assert_eq!(total(|m| m.duplicate), 1);
        assert_eq!(total(|m| m.rejected), 2);
        assert_eq!(
            a.rejections,
            [("bad_auth".to_owned(), 1), ("bad_signature".to_owned(), 1)]
        );
        assert_eq!(a.outbox_backlog, 0);
    }
}
