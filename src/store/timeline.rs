//! Where a time falls in the log's seq order, without an index on `received_at`.
//!
//! A row's time is taken when its request arrives and its seq when its group commits, so
//! seq order follows time order except among rows queued together. Searches by time and
//! retention need only the seq where a time begins; a binary search over the seqs (the
//! table's own key) finds it in a few dozen lookups, which spares every row an index entry
//! of its own (written at each commit and again at checkpoint).
//!
//! Owns that search and the bound on the disorder it relies on. It never writes.

use rusqlite::{Connection, OptionalExtension, params};

/// How far apart in seq two rows may be and still be out of time order: what can be
/// queued at once is far below it. A time's seq bounds are widened by this much, and the
/// rows within them are then compared exactly.
pub(super) const SLACK: i64 = 100_000;

/// Where `at` (microseconds) falls among the log's rows: the seqs of a row received before
/// it (`old`) and of the next row, received at or after it (`new`). `old` is absent when
/// the first row is at or after `at`, `new` when the last row is before it (and both when
/// the log is empty). Every row more than [`SLACK`] below `old` is older than `at`; every
/// row more than [`SLACK`] above `new` is not.
pub(super) fn edge(c: &Connection, at: i64) -> rusqlite::Result<(Option<i64>, Option<i64>)> {
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
    fn rows_out_of_order_by_less_than_the_bound_fall_on_the_right_side_of_it() {
        // Times rise with seq, but within each block of 50 seqs they come reversed: rows
        // more than 49 seqs apart are in time order, so 49 stands in for `SLACK`.
        let disorder = 49;
        let rows: Vec<(i64, i64)> = (0..5_000)
            .map(|i| (i + 1, (i / 50) * 50 + (49 - i % 50)))
            .collect();
        let c = log(&rows);
        for at in [0, 1, 777, 2_500, 2_525, 4_999, 5_000] {
            let (old, new) = edge_of(&c, at);
            for &(seq, t) in &rows {
                if old.is_some_and(|o| seq < o - disorder) {
                    assert!(t < at, "at {at}: seq {seq} ({t}) is below {old:?}");
                }
                if new.is_some_and(|n| seq > n + disorder) {
                    assert!(t >= at, "at {at}: seq {seq} ({t}) is above {new:?}");
                }
            }
            assert!(old.is_some() || rows[0].1 >= at);
            assert!(new.is_some() || rows[rows.len() - 1].1 < at);
            if let (Some(o), Some(n)) = (old, new) {
                assert!(o < n);
            }
        }
    }
}
