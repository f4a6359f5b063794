//! Figures for the console: per-account counts, per-minute outcomes and rejections by
//! reason over a recent window, and the outbox's oldest waiting delivery.
//!
//! Owns the counting statement every engine runs ([`count_sql`]: one `GROUP BY` over the
//! window's range of the `received_at` index, exact) and folding its rows into figures
//! ([`tally`], [`per_account`], pure). It must never name a database driver or write
//! anything; only counts and times leave it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EventFilter, Store, StoreError};
use crate::clock::parse_time;

const MINUTE: i64 = 60_000_000;

/// How a count groups the window's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountBy {
    /// By account and outcome.
    Account,
    /// By minute, outcome and reason.
    Minute,
}

/// One group of a count: `key` is the account ([`CountBy::Account`]) or the minute's start
/// in microseconds, as text ([`CountBy::Minute`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    /// The account, or the minute's start.
    pub key: String,
    /// The outcome.
    pub status: String,
    /// The rejection's reason (per minute only).
    pub reason: Option<String>,
    /// How many events.
    pub n: u64,
}

/// The statement counting the events received in `[$1, $2)`, grouped `by`, with the
/// engine's placeholder prefix (`?` or `$`). Every column comes back as text or an integer:
/// the group's key (text), the outcome, the reason (null per account), the count.
pub fn count_sql(by: CountBy, placeholder: char) -> String {
    let p = placeholder;
    match by {
        CountBy::Account => format!(
            "SELECT account, status, NULL, count(*) FROM events
             WHERE received_at >= {p}1 AND received_at < {p}2
             GROUP BY account, status"
        ),
        CountBy::Minute => format!(
            "SELECT CAST(received_at - (received_at - {p}1) % {MINUTE} AS TEXT), status, reason,
                    count(*)
             FROM events WHERE received_at >= {p}1 AND received_at < {p}2
             GROUP BY 1, status, reason"
        ),
    }
}

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
    /// When the oldest waiting delivery (pending or retrying) is due, if any is.
    pub outbox_oldest_due: Option<i64>,
}

/// The window of `minutes` whole minutes that ends with the one holding `now`:
/// `(start, end)` in microseconds.
pub fn window(now: i64, minutes: u32) -> (i64, i64) {
    let end = now - now.rem_euclid(MINUTE) + MINUTE;
    (end - i64::from(minutes) * MINUTE, end)
}

/// Folds per-minute counts into the minutes of the window starting at `start`, and
/// rejections by reason. Groups outside the window are left out.
pub fn tally(rows: &[CountRow], start: i64, minutes: u32) -> (Vec<Minute>, Vec<(String, u64)>) {
    let mut out: Vec<Minute> = (0..i64::from(minutes))
        .map(|i| Minute {
            at: start + i * MINUTE,
            ..Minute::default()
        })
        .collect();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows {
        let Ok(at) = row.key.parse::<i64>() else {
            continue;
        };
        let Some(minute) = usize::try_from((at - start).div_euclid(MINUTE))
            .ok()
            .filter(|_| at >= start)
            .and_then(|i| out.get_mut(i))
        else {
            continue;
        };
        match row.status.as_str() {
            "accepted" => minute.accepted += row.n,
            "duplicate" => minute.duplicate += row.n,
            "rejected" => {
                minute.rejected += row.n;
                *reasons
                    .entry(row.reason.clone().unwrap_or_default())
                    .or_default() += row.n;
            }
            _ => {}
        }
    }
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (out, reasons)
}

/// Folds per-account counts into each named account's figures; accounts without events
/// in the window count zero.
pub fn per_account(rows: &[CountRow], names: &[String]) -> BTreeMap<String, AccountCounts> {
    let mut out: BTreeMap<String, AccountCounts> = names
        .iter()
        .map(|n| (n.clone(), AccountCounts::default()))
        .collect();
    for row in rows {
        let Some(c) = out.get_mut(&row.key) else {
            continue;
        };
        match row.status.as_str() {
            "accepted" => c.accepted += row.n,
            "duplicate" => c.duplicate += row.n,
            "rejected" => c.rejected += row.n,
            _ => {}
        }
    }
    out
}

impl Store {
    /// Per-account counts of the events received since `since` (microseconds), exact, and
    /// each account's newest event time, for the accounts named.
    pub async fn account_counts(
        &self,
        names: Vec<String>,
        since: i64,
    ) -> Result<BTreeMap<String, AccountCounts>, StoreError> {
        let rows = self.counts(CountBy::Account, since, i64::MAX).await?;
        let mut out = per_account(&rows, &names);
        for (name, counts) in &mut out {
            let newest = self
                .events(EventFilter {
                    account: Some(name.clone()),
                    limit: 1,
                    ..Default::default()
                })
                .await?;
            counts.last_event_at = newest
                .items
                .first()
                .and_then(|e| parse_time(&e.received_at));
        }
        Ok(out)
    }

    /// Outcomes per minute and rejections by reason over the `minutes` whole minutes up
    /// to the one holding `now`, exact, and the outbox's oldest waiting delivery.
    pub async fn activity(&self, now: i64, minutes: u32) -> Result<Activity, StoreError> {
        let (start, end) = window(now, minutes);
        let rows = self.counts(CountBy::Minute, start, end).await?;
        let (minutes, rejections) = tally(&rows, start, minutes);
        Ok(Activity {
            minutes,
            rejections,
            outbox_oldest_due: self.next_due().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: i64, status: &str, reason: Option<&str>, n: u64) -> CountRow {
        CountRow {
            key: key.to_string(),
            status: status.into(),
            reason: reason.map(str::to_owned),
            n,
        }
    }

    #[test]
    fn the_window_ends_with_the_minute_holding_now() {
        let now = 10 * 60 * MINUTE + 30 * 1_000_000;
        let (start, end) = window(now, 60);
        assert_eq!(end - start, 60 * MINUTE);
        assert!(end - MINUTE <= now && now < end);
        assert_eq!(start % MINUTE, 0);
    }

    #[test]
    fn counts_fall_into_their_minutes_and_rejections_are_summed_by_reason() {
        let (start, _) = window(100 * MINUTE, 3);
        let rows = [
            row(start - MINUTE, "accepted", None, 7),
            row(start, "accepted", None, 2),
            row(start, "duplicate", None, 1),
            row(start + MINUTE, "rejected", Some("bad_auth"), 1),
            row(start + 2 * MINUTE, "rejected", Some("bad_signature"), 2),
            row(start + MINUTE, "rejected", Some("bad_signature"), 3),
            row(start + 2 * MINUTE, "handshake", None, 4),
            row(start + 3 * MINUTE, "accepted", None, 9),
        ];
        let (minutes, reasons) = tally(&rows, start, 3);
        let counts: Vec<(u64, u64, u64)> = minutes
            .iter()
            .map(|m| (m.accepted, m.duplicate, m.rejected))
            .collect();
        assert_eq!(counts, [(2, 1, 0), (0, 0, 4), (0, 0, 2)]);
        assert_eq!(minutes[1].at - minutes[0].at, MINUTE);
        assert_eq!(
            reasons,
            [("bad_signature".to_owned(), 5), ("bad_auth".to_owned(), 1)]
        );
    }

    #[test]
    fn per_account_counts_name_every_account_asked_for_and_no_other() {
        let rows = [
            CountRow {
                key: "shop".into(),
                status: "accepted".into(),
                reason: None,
                n: 1500,
            },
            CountRow {
                key: "shop".into(),
                status: "rejected".into(),
                reason: None,
                n: 3,
            },
            CountRow {
                key: "deleted".into(),
                status: "accepted".into(),
                reason: None,
                n: 5,
            },
        ];
        let out = per_account(&rows, &["shop".into(), "quiet".into()]);
        assert_eq!(out.len(), 2);
        assert_eq!((out["shop"].accepted, out["shop"].rejected), (1500, 3));
        assert_eq!(out["quiet"], AccountCounts::default());
    }

    #[test]
    fn the_count_statements_bind_the_window_only() {
        for by in [CountBy::Account, CountBy::Minute] {
            let sql = count_sql(by, '$');
            assert!(
                sql.contains("received_at >= $1 AND received_at < $2"),
                "{sql}"
            );
            assert!(!sql.contains('?'), "{sql}");
        }
    }
}
