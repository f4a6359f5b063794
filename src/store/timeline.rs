//! Where a time falls in the log's seq order, without an index on `received_at`.
//!
//! A row's time (`received_at`) is taken when its request's body has been read, and its
//! seq when it reaches the writer. The writer holds every row's time to no more than
//! [`TIGHT`] before a time stored at a lower seq (`writer::Heads::time_for`), so a search
//! by time needs only the seqs where its range begins and ends, which a binary search
//! over the seqs (the table's own key) finds in a few dozen lookups with the bound
//! applied. That spares every row an entry in an index by time, written at each commit
//! and again at checkpoint.
//!
//! Rows written before migration 11 (seqs below [`Bound::from_seq`]) were held only by
//! the writer's first-in-first-out queue, which a row enters within the enqueue timeout of
//! its time: an edge that falls among them is looked for again with that bound
//! ([`loose`]).
//!
//! Owns that search and the bounds. It never writes.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

/// How far before a time already stored at a lower seq the writer lets a row's time be,
/// in microseconds (100 ms). Rows reach the writer about in the order their bodies
/// arrived, apart from the work in between (verification, extraction: microseconds to a
/// few milliseconds for the largest bodies), so a row this late is rare, and the writer
/// stores it at the bound. A search reads this much of the log beyond each end of its
/// range.
pub(super) const TIGHT: i64 = 100_000;

/// Added to the enqueue timeout for the rows before migration 11: the work between a
/// row's time and its place in the queue takes microseconds; this covers a stalled process.
const MARGIN: Duration = Duration::from_secs(5);

/// How late the seq of a row written before migration 11 can be against its time, in
/// microseconds, for a gateway whose writes wait up to `enqueue_timeout` for a place in
/// the queue.
pub(super) fn loose(enqueue_timeout: Duration) -> i64 {
    i64::try_from(enqueue_timeout.saturating_add(MARGIN).as_micros()).unwrap_or(i64::MAX)
}

/// The bounds a search by time applies, and where the tight one begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bound {
    /// For rows from `from_seq` on ([`TIGHT`]).
    pub(super) tight: i64,
    /// For the rows before ([`loose`]), never less than `tight`.
    pub(super) loose: i64,
    /// The first seq the writer held to `tight` (migration 11).
    pub(super) from_seq: i64,
}

impl Bound {
    /// For logs written in time order (tests that do not search by time).
    #[cfg(test)]
    pub(super) const EXACT: Bound = Bound {
        tight: 0,
        loose: 0,
        from_seq: 1,
    };

    /// The bounds of the log in `c`, for a gateway with this enqueue timeout.
    pub(super) fn load(c: &Connection, enqueue_timeout: Duration) -> rusqlite::Result<Bound> {
        let from_seq = c
            .query_row("SELECT from_seq FROM timeline_bound", [], |r| r.get(0))
            .optional()?
            .unwrap_or(1);
        Ok(Bound {
            tight: TIGHT,
            loose: loose(enqueue_timeout).max(TIGHT),
            from_seq,
        })
    }
}

/// The seqs that can hold rows received in `since..until` (microseconds; either open):
/// at or above the first bound and below the second. Rows inside them must still be
/// compared on `received_at`; rows outside are certainly out of the range.
pub(super) fn seq_range(
    c: &Connection,
    since: Option<i64>,
    until: Option<i64>,
    bound: Bound,
) -> rusqlite::Result<(Option<i64>, Option<i64>)> {
    // A row received before `since - b`, where `b` bounds it against every row before it,
    // has none before it received at or after `since`. A row from `from_seq` on is held to
    // the tight bound against every row before it, old or new; an older one is not.
    let after = match since {
        Some(since) => {
            let mut old = edge(c, since.saturating_sub(bound.tight))?.0;
            if old.is_some_and(|seq| seq < bound.from_seq) {
                old = edge(c, since.saturating_sub(bound.loose))?.0;
            }
            old.map(|seq| seq.saturating_add(1))
        }
        None => None,
    };
    // A row received at or after `until + b`, where `b` bounds every row after it against
    // it, has none after it received before `until`. Rows after one from `from_seq` on are
    // all held to the tight bound; rows after an older one may be older too.
    let before = match until {
        Some(until) => {
            let mut new = edge(c, until.saturating_add(bound.tight))?.1;
            if new.is_some_and(|seq| seq < bound.from_seq) {
                new = edge(c, until.saturating_add(bound.loose))?.1;
            }
            new
        }
        None => None,
    };
    Ok((after, before))
}

/// Where `at` (microseconds) falls among the log's rows, by a binary search over the
/// seqs: the seqs of a row received before it (`old`) and of the next row, received at or
/// after it (`new`). `old` is absent when the first row is at or after `at`, `new` when
/// the last row is before it (and both when the log is empty). Rows out of time order can
/// put the pair anywhere among them; [`seq_range`] applies the bounds that limit that.
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

    /// Checks every range over a grid of times: each row received in it lies within the
    /// seqs `seq_range` gives, and where the range's rows are all held to the tight bound
    /// the seqs reach no further than that bound's worth of rows (100 µs apart) beyond.
    fn every_row_inside(rows: &[(i64, i64)], bound: Bound, times: &[Option<i64>]) {
        let c = log(rows);
        for since in times {
            for until in times {
                let (after, before) =
                    seq_range(&c, *since, *until, bound).unwrap_or_else(|e| panic!("{e}"));
                let inside =
                    |seq: i64| after.is_none_or(|a| seq >= a) && before.is_none_or(|b| seq < b);
                let matched: Vec<i64> = rows
                    .iter()
                    .filter(|(_, t)| since.is_none_or(|s| *t >= s) && until.is_none_or(|u| *t < u))
                    .map(|r| r.0)
                    .collect();
                for seq in &matched {
                    assert!(
                        inside(*seq),
                        "{since:?}..{until:?}: seq {seq} outside {after:?}..{before:?}"
                    );
                }
                let slack = 2 * bound.tight / 100 + 1;
                if let (Some(a), Some(first)) = (after, matched.first())
                    && a > bound.from_seq + slack
                {
                    assert!(first - a <= slack, "{a} for {first}");
                }
                if let (Some(b), Some(last)) = (before, matched.last())
                    && *last > bound.from_seq + slack
                {
                    assert!(b - last <= slack, "{b} for {last}");
                }
            }
        }
    }

    /// Rows 100 µs apart in seq order, each received up to `late` µs before its place, in
    /// no order (a spread), so neighbours' times cross.
    fn late_rows(seqs: std::ops::RangeInclusive<i64>, late: i64) -> Vec<(i64, i64)> {
        seqs.map(|seq| (seq, 1_000_000 + seq * 100 - (seq * 7_919) % (late + 1)))
            .collect()
    }

    const GRID: [Option<i64>; 9] = [
        None,
        Some(0),
        Some(1_000_000),
        Some(1_100_000),
        Some(1_150_050),
        Some(1_200_000),
        Some(1_299_999),
        Some(1_400_000),
        Some(2_000_000),
    ];

    #[test]
    fn rows_late_by_up_to_the_bound_are_always_inside_the_range_and_the_rest_outside() {
        let late = 5_000;
        let rows = late_rows(1..=3_000, late);
        let bound = Bound {
            tight: late,
            loose: late,
            from_seq: 1,
        };
        every_row_inside(&rows, bound, &GRID);
        // A range wholly before or after the log is known empty without reading it.
        let c = log(&rows);
        assert_eq!(
            seq_range(&c, Some(0), Some(900_000), bound).unwrap_or_else(|e| panic!("{e}")),
            (None, Some(1))
        );
        assert_eq!(
            seq_range(&c, Some(5_000_000), None, bound).unwrap_or_else(|e| panic!("{e}")),
            (Some(3_001), None)
        );
    }

    #[test]
    fn rows_from_before_the_tight_bound_keep_their_loose_one() {
        // Rows up to seq 1,500 were late by up to 50 ms; from 1,501 on the writer held each
        // to 5 ms of the times before it, starting from the last old row's time plus the
        // difference of the bounds (`writer::Heads::load`).
        let (tight, loose, from_seq) = (5_000, 50_000, 1_501);
        let mut rows = late_rows(1..=1_500, loose);
        let last_old = rows.last().map_or(0, |r| r.1);
        let mut floor = last_old + loose - tight;
        for (seq, stamped) in late_rows(from_seq..=3_000, tight) {
            let at = stamped.max(floor);
            floor = floor.max(at - tight);
            rows.push((seq, at));
        }
        let bound = Bound {
            tight,
            loose,
            from_seq,
        };
        every_row_inside(&rows, bound, &GRID);
        // With the tight bound alone the old rows would be missed at some edge.
        let only_tight = Bound {
            loose: tight,
            ..bound
        };
        let c = log(&rows);
        let missed = GRID.iter().any(|since| {
            GRID.iter().any(|until| {
                let (after, before) =
                    seq_range(&c, *since, *until, only_tight).unwrap_or_else(|e| panic!("{e}"));
                rows.iter().any(|&(seq, t)| {
                    since.is_none_or(|s| t >= s)
                        && until.is_none_or(|u| t < u)
                        && !(after.is_none_or(|a| seq >= a) && before.is_none_or(|b| seq < b))
                })
            })
        });
        assert!(missed, "the old rows' lateness matters to this log");
    }

    #[test]
    fn the_loose_bound_is_the_enqueue_timeout_and_a_margin() {
        assert_eq!(loose(Duration::from_secs(2)), 7_000_000);
        assert_eq!(loose(Duration::MAX), i64::MAX);
    }

    #[test]
    fn a_new_log_is_held_to_the_tight_bound_from_its_first_row() {
        let c = log(&[]);
        let b = Bound::load(&c, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b,
            Bound {
                tight: TIGHT,
                loose: 7_000_000,
                from_seq: 1
            }
        );
    }
}
