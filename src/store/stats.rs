//! Figures for the console: per-account counts, per-minute outcomes and rejections by
//! reason over a recent window, and the outbox's oldest waiting delivery.
//!
//! Owns reading these through the engine-neutral searches every engine answers
//! ([`Store::events`], [`Store::next_due`]) and counting them in memory ([`tally`], pure).
//! Every read is capped, so a busy window costs a bounded number of pages, and a capped
//! figure says so. It must never name a database driver or write anything; only counts
//! and times leave it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EventFilter, EventSummary, Store, StoreError};
use crate::clock::parse_time;

/// Rows per page read.
const PAGE: usize = 1000;
/// At most this many rows of a window are read for the per-minute figures.
pub const WINDOW_CAP: usize = 20 * PAGE;
/// At most this many events per account and status are counted.
pub const COUNT_CAP: usize = PAGE;

const MINUTE: i64 = 60_000_000;

/// Counts of one account's events since a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountCounts {
    /// Accepted events.
    pub accepted: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Rejected requests.
    pub rejected: u64,
    /// Whether a count stopped at [`COUNT_CAP`] (there are at least that many).
    pub capped: bool,
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
    /// Whether the window held more than [`WINDOW_CAP`] rows: then only the newest were
    /// counted, and the oldest minutes read low.
    pub capped: bool,
    /// When the oldest waiting delivery (pending or retrying) is due, if any is.
    pub outbox_oldest_due: Option<i64>,
}

/// The window of `minutes` whole minutes that ends with the one holding `now`:
/// `(start, end)` in microseconds.
pub fn window(now: i64, minutes: u32) -> (i64, i64) {
    let end = now - now.rem_euclid(MINUTE) + MINUTE;
    (end - i64::from(minutes) * MINUTE, end)
}

/// Counts rows into the minutes of the window starting at `start`, and rejections by
/// reason. Rows outside the window are left out.
pub fn tally(rows: &[EventSummary], start: i64, minutes: u32) -> (Vec<Minute>, Vec<(String, u64)>) {
    let mut out: Vec<Minute> = (0..i64::from(minutes))
        .map(|i| Minute {
            at: start + i * MINUTE,
            ..Minute::default()
        })
        .collect();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows {
        let Some(at) = parse_time(&row.received_at) else {
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
            "accepted" => minute.accepted += 1,
            "duplicate" => minute.duplicate += 1,
            "rejected" => {
                minute.rejected += 1;
                *reasons
                    .entry(row.reason.clone().unwrap_or_default())
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (out, reasons)
}

impl Store {
    /// Per-account counts of the events received since `since` (microseconds), each capped
    /// at [`COUNT_CAP`], and each account's newest event time, for the accounts named.
    pub async fn account_counts(
        &self,
        names: Vec<String>,
        since: i64,
    ) -> Result<BTreeMap<String, AccountCounts>, StoreError> {
        let mut out = BTreeMap::new();
        for name in names {
            let mut counts = AccountCounts::default();
            for status in ["accepted", "duplicate", "rejected"] {
                let page = self
                    .events(EventFilter {
                        account: Some(name.clone()),
                        status: Some(status.to_owned()),
                        since: Some(since),
                        limit: COUNT_CAP,
                        ..Default::default()
                    })
                    .await?;
                counts.capped |= page.next_cursor.is_some();
                let n = page.items.len() as u64;
                match status {
                    "accepted" => counts.accepted = n,
                    "duplicate" => counts.duplicate = n,
                    _ => counts.rejected = n,
                }
            }
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
            out.insert(name, counts);
        }
        Ok(out)
    }

    /// Outcomes per minute and rejections by reason over the `minutes` whole minutes up
    /// to the one holding `now`, and the outbox's oldest waiting delivery.
    pub async fn activity(&self, now: i64, minutes: u32) -> Result<Activity, StoreError> {
        let (start, end) = window(now, minutes);
        let mut rows: Vec<EventSummary> = Vec::new();
        let mut before_seq = None;
        let mut capped = false;
        loop {
            let page = self
                .events(EventFilter {
                    since: Some(start),
                    until: Some(end),
                    limit: PAGE,
                    before_seq,
                    ..Default::default()
                })
                .await?;
            before_seq = page.items.last().map(|e| e.seq);
            let more = page.next_cursor.is_some();
            rows.extend(page.items);
            if !more || before_seq.is_none() {
                break;
            }
            if rows.len() >= WINDOW_CAP {
                capped = true;
                break;
            }
        }
        let (minutes, rejections) = tally(&rows, start, minutes);
        Ok(Activity {
            minutes,
            rejections,
            capped,
            outbox_oldest_due: self.next_due().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::format_micros;

    fn row(at: i64, status: &str, reason: Option<&str>) -> EventSummary {
        EventSummary {
            id: "evt_1".into(),
            received_at: format_micros(at),
            account: "a".into(),
            status: status.into(),
            reason: reason.map(str::to_owned),
            event_id: None,
            event_type: None,
            sender: None,
            source: None,
            params: serde_json::Value::Null,
            forward_status: None,
            seq: 1,
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
    fn rows_fall_into_their_minutes_and_rejections_are_counted_by_reason() {
        let (start, _) = window(100 * MINUTE, 3);
        let rows = [
            row(start - 1, "accepted", None),
            row(start, "accepted", None),
            row(start + MINUTE - 1, "duplicate", None),
            row(start + MINUTE, "rejected", Some("bad_auth")),
            row(start + 2 * MINUTE + 5, "rejected", Some("bad_signature")),
            row(start + 2 * MINUTE + 6, "rejected", Some("bad_signature")),
            row(start + 2 * MINUTE + 7, "handshake", None),
            row(start + 3 * MINUTE, "accepted", None),
        ];
        let (minutes, reasons) = tally(&rows, start, 3);
        let counts: Vec<(u64, u64, u64)> = minutes
            .iter()
            .map(|m| (m.accepted, m.duplicate, m.rejected))
            .collect();
        assert_eq!(counts, [(1, 1, 0), (0, 0, 1), (0, 0, 2)]);
        assert_eq!(minutes[1].at - minutes[0].at, MINUTE);
        assert_eq!(
            reasons,
            [("bad_signature".to_owned(), 2), ("bad_auth".to_owned(), 1)]
        );
    }
}
