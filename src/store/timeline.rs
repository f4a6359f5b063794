//! Where a time falls in the log's seq order, without an index on `received_at`.
//!
//! A row's time (`received_at`) is taken when its request's body has been read, and its
//! seq is given in the order rows enter the writer's queue (first in, first out), which a
//! row enters within the enqueue timeout of its time: so a row's seq can be late against
//! its time by at most that long, never early. [`lateness`] is that bound with a margin;
//! a search by time needs only the seqs where its range begins and ends, which a binary
//! search over the seqs (the table's own key) finds in a few dozen lookups with the bound
//! applied. That spares every row an entry in an index by time, written at each commit
//! and again at checkpoint.
//!
//! Owns that search and the bound. It never writes. A wall clock stepped back by more than
//! the bound would break it; the writer holds such rows' times within the bound instead
//! (`writer::Heads::time_for`).

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

/// Added to the enqueue timeout: the work between a row's time and its place in the
/// queue (verification, extraction) takes microseconds; this covers a stalled process.
const MARGIN: Duration = Duration::from_secs(5);

/// How late a row's seq can be against its time, in microseconds, for a gateway whose
/// writes wait up to `enqueue_timeout` for a place in the queue.
pub(super) fn lateness(enqueue_timeout: Duration) -> i64 {
    i64::try_from(enqueue_timeout.saturating_add(MARGIN).as_micros()).unwrap_or(i64::MAX)
}

/// The seqs that can hold rows received in `since..until` (microseconds; either open):
/// at or above the first bound and below the second. Rows inside them must still be
/// compared on `received_at`; rows outside are certainly out of the range.
pub(super) fn seq_range(
    c: &Connection,
    since: Option<i64>,
    until: Option<i64>,
    lateness: i64,
) -> rusqlite::Result<(Option<i64>, Option<i64>)> {
    // A row received before `since - lateness` entered the queue before `since`, and so
    // did every row before it: none of them was received at or after `since`.
    let after = match since {
        Some(since) => edge(c, since.saturating_sub(lateness))?
            .0
            .map(|old| old.saturating_add(1)),
        None => None,
    };
    // A row received at or after `until + lateness` entered the queue after `until +
    // lateness`, and every row after it later still: all were received at or after `until`.
    let before = match until {
        Some(until) => edge(c, until.saturating_add(lateness))?.1,
        None => None,
    };
    Ok((after, before))
}

/// Where `at` (microseconds) falls among the log's rows, by a binary search over the
/// seqs: the seqs of a row received before it (`old`) and of the next row, received at or
/// after it (`new`). `old` is absent when the first row is at or after `at`, `new` when
/// the last row is before it (and both when the log is empty). Rows out of time order can
/// put the pair anywhere among them; [`seq_range`] applies the bound that limits that.
fn edge(c: &Connection, at: i64) -> rusqlite::Result<(Option<i64>, Option<i64>)> {
    let mut probe = c.prepare_cached(
        "SELECT seq, received_at FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq LIMIT 1",
    )?;
    let mut first_from = |from: i64, below: i64| -> rusqlite::Result<Option<(i64, i64)>> {
        probe
            .query_row(params![from, below], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    };
    let Some((first, first_at)) = first_from(i64::MIN, i64::MAX)? else {
        return Ok((None, None));
    };
    if first_at >= at {
        return Ok((None, Some(first)));
    }
    let last: i64 = c.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    // `old` is a row received before `at`; `new` a row received at or after it, or one
    // past the end. Each probe takes the first row at or after the middle.
    let (mut old, mut new) = (first, last.saturating_add(1));
    let mut new_row = None;
    while new - old > 1 {
        let mid = old + (new - old) / 2;
        match first_from(mid, new)? {
            Some((seq, t)) if t < at => old = seq,
            Some((seq, _)) => {
                new = seq;
                new_row = Some(seq);
            }
            // No row in `mid..new`: the first row at or after `mid` is `new`'s.
            None => new = mid,
        }
    }
    Ok((Some(old), new_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(times: &[(i64, i64)]) -> Connection {
        let mut c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::schema::migrate(&mut c).unwrap_or_else(|e| panic!("{e}"));
        let mut insert = c
            .prepare(
                "INSERT INTO events (seq, received_at, account, status, method, path, query,
                     remote_addr, headers, body, body_size, body_truncated, handle_micros)
                 VALUES (?1, ?2, 'shop', 'accepted', 'POST', '/', '', '', '{}', x'', 0, 0, 0)",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        for (seq, at) in times {
            insert
                .execute(params![seq, at])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        drop(insert);
        c
    }

    fn edge_of(c: &Connection, at: i64) -> (Option<i64>, Option<i64>) {
        edge(c, at).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn in_time_order_the_edge_is_exact() {
        // Seqs 1..=1000 received at 10, 20, ..., 10000.
        let rows: Vec<(i64, i64)> = (1..=1000).map(|s| (s, s * 10)).collect();
        let c = log(&rows);
        assert_eq!(edge_of(&c, 4005), (Some(400), Some(401)));
        assert_eq!(edge_of(&c, 4010), (Some(400), Some(401)));
        assert_eq!(edge_of(&c, 10), (None, Some(1)));
        assert_eq!(edge_of(&c, 5), (None, Some(1)));
        assert_eq!(edge_of(&c, 10_000), (Some(999), Some(1000)));
        assert_eq!(edge_of(&c, 10_001), (Some(1000), None));
    }

    #[test]
    fn an_empty_log_has_no_edge() {
        assert_eq!(edge_of(&log(&[]), 5), (None, None));
    }

    #[test]
    fn gaps_in_the_seqs_and_a_pruned_prefix_are_walked_over() {
        // Seqs from 5,000 up, every third one missing.
        let rows: Vec<(i64, i64)> = (5_000..8_000)
            .filter(|s| s % 3 != 0)
            .map(|s| (s, s))
            .collect();
        let c = log(&rows);
        assert_eq!(edge_of(&c, 6_000), (Some(5_999), Some(6_001)));
        assert_eq!(edge_of(&c, 6_001), (Some(5_999), Some(6_001)));
        assert_eq!(edge_of(&c, 4_000), (None, Some(5_000)));
        assert_eq!(edge_of(&c, 9_000), (Some(7_999), None));
    }

    #[test]
    fn rows_late_by_up_to_the_bound_are_always_inside_the_range_and_the_rest_outside() {
        // Rows enter the queue 100 µs apart; each was received up to 5,000 µs before, in
        // no order (a spread of lateness), so neighbours' times cross.
        let lateness = 5_000;
        let rows: Vec<(i64, i64)> = (1..=3_000)
            .map(|seq| (seq, 1_000_000 + seq * 100 - (seq * 7_919) % (lateness + 1)))
            .collect();
        let c = log(&rows);
        let times = [
            None,
            Some(0),
            Some(1_000_000),
            Some(1_100_000),
            Some(1_150_050),
        ];
        let more = [
            Some(1_200_000),
            Some(1_299_999),
            Some(1_400_000),
            Some(2_000_000),
        ];
        for since in times.iter().chain(&more) {
            for until in times.iter().chain(&more) {
                let (after, before) =
                    seq_range(&c, *since, *until, lateness).unwrap_or_else(|e| panic!("{e}"));
                let inside =
                    |seq: i64| after.is_none_or(|a| seq >= a) && before.is_none_or(|b| seq < b);
                for &(seq, t) in &rows {
                    let wanted = since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u);
                    assert!(
                        !wanted || inside(seq),
                        "{since:?}..{until:?}: seq {seq} ({t}) outside {after:?}..{before:?}"
                    );
                }
                // The bounds are tight: within the lateness (50 rows here) of the range.
                let matched: Vec<i64> = rows
                    .iter()
                    .filter(|(_, t)| since.is_none_or(|s| *t >= s) && until.is_none_or(|u| *t < u))
                    .map(|r| r.0)
                    .collect();
                if let (Some(a), Some(first)) = (after, matched.first()) {
                    assert!(first - a <= 2 * lateness / 100 + 1, "{a} for {first}");
                }
                if let (Some(b), Some(last)) = (before, matched.last()) {
                    assert!(b - last <= 2 * lateness / 100 + 1, "{b} for {last}");
                }
            }
        }
        // A range wholly before or after the log is known empty without reading it.
        assert_eq!(
            seq_range(&c, Some(0), Some(900_000), lateness).unwrap_or_else(|e| panic!("{e}")),
            (None, Some(1))
        );
        assert_eq!(
            seq_range(&c, Some(5_000_000), None, lateness).unwrap_or_else(|e| panic!("{e}")),
            (Some(3_001), None)
        );
    }

    #[test]
    fn the_bound_is_the_enqueue_timeout_and_a_margin() {
        assert_eq!(lateness(Duration::from_secs(2)), 7_000_000);
        assert_eq!(lateness(Duration::MAX), i64::MAX);
    }
}
