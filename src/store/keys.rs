//! The indexes of the events by account, event type, sender and source, written a run at a
//! time instead of a row at a time.
//!
//! An index on a random key (a phone number, an order id) costs every new row a leaf page
//! of its own, written to the WAL and again at checkpoint: new rows land all over the
//! B-tree. Even an index whose new entries all land at its right edge (the account, the
//! event type) rewrites its last leaf at every commit. Here the log's seqs are cut into
//! runs of [`RUN_ROWS`]. The writer keeps the keys of runs not yet written in memory,
//! appended as rows commit and sorted a slice at a time (`sliced`); once a run is
//! complete it writes them to `run_keys` (primary key: run, kind, key, seq) a chunk per
//! group, in that order, so every insert lands at the right edge of the B-tree, and it
//! marks the run written in `key_runs` with the last chunk. A search by one of these keys
//! walks the key's seqs in order (`Walk`): what memory holds for the newest runs, then
//! `run_keys` a batch at a time (many written runs to a statement), so a page costs what
//! it needs, not the key's whole history.
//!
//! Owns the runs' tables and the in-memory part. Invariants: memory holds the keys of
//! every committed row whose run is not marked written; the writer adds a group's keys
//! after its commit and before any answer, and a run's keys leave memory only after the
//! commit that marks it. A search reads memory before its statement starts, so its
//! snapshot, taken later, includes every mark that memory no longer reflects. After a
//! restart, memory is rebuilt from the log past the last marked run. It never writes an
//! event row.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, RwLock};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::sliced::Sliced;

/// Seqs per run. Migration 7 (`schema`) backfills with the same number.
pub const RUN_ROWS: i64 = 32_768;

/// Written runs a walk asks about in one statement (three in unit tests, whose logs hold
/// a few runs, so that a walk crosses from one statement's runs to the next).
const RUNS_PER_READ: usize = if cfg!(test) { 3 } else { 64 };

/// The statement a walk reads written runs with, oldest or newest first: `?1` the kind,
/// `?2` the key, seqs in `?3..?4`, at most `?5` of them, from the runs in `?6` on. SQLite
/// takes the runs of the `IN` list in the order asked, so the rows come in index order,
/// unsorted, and stop at the limit.
fn walk_sql(descending: bool) -> &'static str {
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
        let runs: Vec<String> = (6..6 + RUNS_PER_READ).map(|i| format!("?{i}")).collect();
        let runs = runs.join(", ");
        ["ASC", "DESC"].map(|order| {
            format!(
                "SELECT seq FROM run_keys WHERE run IN ({runs}) AND kind = ?1 AND key = ?2
                   AND seq >= ?3 AND seq < ?4 ORDER BY run {order}, seq {order} LIMIT ?5"
            )
        })
    });
    &SQL[usize::from(descending)]
}

/// Which column a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sender`.
    Sender = 0,
    /// `source`.
    Source = 1,
    /// `account` (migration 10).
    Account = 2,
    /// `event_type` (migration 10).
    EventType = 3,
}

/// One index entry: kind, key, seq (ordered as `run_keys` orders them within a run).
pub(super) type Entry = (u8, Box<str>, i64);

/// The run a seq belongs to, in runs of `rows` seqs (seqs start at 1).
pub fn run_of(seq: i64, rows: i64) -> i64 {
    (seq - 1).max(0) / rows.max(1) + 1
}

/// Drops a written run's memory on a thread of its own: tens of thousands of keys take
/// milliseconds to free, which the writer's path should not wait for.
pub(super) fn free_elsewhere<T: Send + 'static>(gone: T) {
    let freer = std::thread::Builder::new().name("hookgate-keys-free".into());
    if let Err(e) = freer.spawn(move || drop(gone)) {
        tracing::debug!(error = %e, "freeing a written run on the writer's thread");
    }
}

/// The keys of a committed row: its columns as [`Kind`] names them, in that order (no
/// allocation beyond the keys: this runs per row).
pub(super) fn entries_of<'a>(
    seq: i64,
    [sender, source, account, event_type]: [Option<&'a str>; 4],
) -> impl Iterator<Item = Entry> + 'a {
    [
        (Kind::Sender, sender),
        (Kind::Source, source),
        (Kind::Account, account),
        (Kind::EventType, event_type),
    ]
    .into_iter()
    .filter_map(move |(kind, key)| key.map(|k| (kind as u8, Box::from(k), seq)))
}

/// One run's keys in memory: appended as rows commit, sorted a slice at a time (a sorted
/// set cost the writer 6 % of its time in comparisons; sorting a whole run at once
/// stalled it for over 10 ms).
#[derive(Debug, Default)]
struct Run {
    entries: Sliced<Entry>,
    /// Complete, its last slice sorted: it can be read in order.
    finished: bool,
}

impl Run {
    /// The seqs this run holds for one key.
    fn seqs(&self, kind: u8, key: &str) -> Vec<i64> {
        let mut seqs = Vec::new();
        for (slice, sorted) in self.entries.slices() {
            let hit = |e: &Entry| e.0 == kind && &*e.1 == key;
            if sorted {
                let from = slice.partition_point(|e| (e.0, &*e.1) < (kind, key));
                seqs.extend(slice[from..].iter().take_while(|e| hit(e)).map(|e| e.2));
            } else {
                seqs.extend(slice.iter().filter(|e| hit(e)).map(|e| e.2));
            }
        }
        seqs
    }
}

/// The keys of runs not yet marked written, by run; shared by the writer and searches.
#[derive(Debug)]
pub(super) struct Keys {
    /// Seqs per run: [`RUN_ROWS`], except in tests.
    rows: i64,
    runs: RwLock<BTreeMap<i64, Run>>,
    /// How many entries `runs` holds.
    held: AtomicUsize,
}

impl Keys {
    /// Empty memory, for a log with no rows past its last marked run.
    pub(super) fn new(rows: i64) -> Keys {
        Keys {
            rows: rows.max(1),
            runs: RwLock::default(),
            held: AtomicUsize::new(0),
        }
    }

    /// Rebuilds memory from the log past the last run marked written.
    pub(super) fn load(c: &Connection, rows: i64) -> rusqlite::Result<Keys> {
        let marked = last_marked(c)?;
        let keys = Keys::new(rows);
        let mut stmt = c.prepare(
            "SELECT seq, sender, source, account, event_type FROM events WHERE seq > ?1",
        )?;
        let mut rows = stmt.query(params![marked * keys.rows])?;
        let mut entries = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let columns: [Option<String>; 4] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?];
            entries.extend(entries_of(seq, columns.each_ref().map(|c| c.as_deref())));
        }
        keys.add(entries);
        Ok(keys)
    }

    /// Adds a committed group's keys.
    pub(super) fn add(&self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let added = entries.len();
        let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
        for e in entries {
            runs.entry(run_of(e.2, self.rows))
                .or_default()
                .entries
                .push(e);
        }
        self.held.fetch_add(added, Ordering::Relaxed);
    }

    /// How many keys memory holds.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Forgets the runs up to `run`, whose mark has committed.
    fn forget_through(&self, run: i64) {
        let gone = {
            let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
            let kept = runs.split_off(&(run + 1));
            std::mem::replace(&mut *runs, kept)
        };
        let dropped: usize = gone.values().map(|r| r.entries.len()).sum();
        self.held.fetch_sub(dropped, Ordering::Relaxed);
        free_elsewhere(gone);
    }

    /// The seqs memory holds for one key within `lo..hi`, sorted, and the runs memory
    /// holds (all of them: a run outside the bounds is skipped, not forgotten).
    fn in_memory(&self, kind: Kind, key: &str, (lo, hi): (i64, i64)) -> (Vec<i64>, Vec<i64>) {
        let runs = self.runs.read().unwrap_or_else(|p| p.into_inner());
        let rows = self.rows;
        let mut seqs: Vec<i64> = runs
            .iter()
            .filter(|(run, _)| (*run - 1) * rows + 1 < hi && *run * rows >= lo)
            .flat_map(|(_, run)| run.seqs(kind as u8, key))
            .filter(|s| (lo..hi).contains(s))
            .collect();
        seqs.sort_unstable();
        (seqs, runs.keys().copied().collect())
    }

    /// A walk through one key's seqs in `lo..hi` (what the search's cursor allows: a page
    /// past the first skips memory's newest runs), reading memory now: call it before the
    /// search's snapshot begins (see the module's doc), then [`Walk::start`] inside it.
    pub(super) fn walk(&self, kind: Kind, key: &str, descending: bool, within: (i64, i64)) -> Walk {
        let (memory, memory_runs) = self.in_memory(kind, key, within);
        Walk {
            kind,
            key: key.to_owned(),
            descending,
            rows: self.rows,
            memory: memory.into(),
            memory_runs,
            runs: VecDeque::new(),
            last: None,
            lo: i64::MIN,
            hi: i64::MAX,
        }
    }

    /// Up to `limit` entries of `run` after `after`, in order, and whether any are left
    /// after them; the first call for a run sorts its last slice.
    fn chunk(&self, run: i64, after: Option<&Entry>, limit: usize) -> (Vec<Entry>, bool) {
        let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
        let Some(run) = runs.get_mut(&run) else {
            return (Vec::new(), false);
        };
        if !run.finished {
            run.entries.finish();
            run.finished = true;
        }
        run.entries.after(after, limit)
    }
}

/// One key's seqs in order, newest or oldest first, for a search that pages through them
/// a batch at a time instead of gathering them all: a sender with a million events costs a
/// page what a page needs. Memory's runs are the newest (runs leave memory in order, after
/// their mark commits); the written runs older than them are read from `run_keys` a batch
/// at a time, up to [`RUNS_PER_READ`] runs per statement, in the search's snapshot. A run
/// both marked and still in memory is read from memory only.
pub(super) struct Walk {
    kind: Kind,
    key: String,
    descending: bool,
    rows: i64,
    /// Memory's seqs for the key, ascending, within the bounds once started.
    memory: VecDeque<i64>,
    memory_runs: Vec<i64>,
    /// Written runs still to read, in the walk's order.
    runs: VecDeque<i64>,
    /// The last seq taken from the written runs.
    last: Option<i64>,
    /// Seqs at or above `lo` and below `hi`.
    lo: i64,
    hi: i64,
}

impl Walk {
    /// Bounds the walk to seqs in `lo..hi` and lists the written runs it will read; call
    /// it inside the search's snapshot.
    pub(super) fn start(&mut self, c: &Connection, lo: i64, hi: i64) -> rusqlite::Result<()> {
        (self.lo, self.hi) = (lo, hi);
        self.memory.retain(|s| (lo..hi).contains(s));
        let (first, last) = (
            run_of(lo.max(1), self.rows),
            run_of(hi.saturating_sub(1).max(1), self.rows),
        );
        let order = if self.descending { "DESC" } else { "ASC" };
        let mut stmt = c.prepare_cached(&format!(
            "SELECT run FROM key_runs WHERE run BETWEEN ?1 AND ?2 ORDER BY run {order}"
        ))?;
        let runs = stmt.query_map(params![first, last], |r| r.get::<_, i64>(0))?;
        self.runs.clear();
        for run in runs {
            let run = run?;
            if !self.memory_runs.contains(&run) {
                self.runs.push_back(run);
            }
        }
        self.last = None;
        Ok(())
    }

    /// Up to `n` more seqs in the walk's order; none when it is done.
    pub(super) fn next(&mut self, c: &Connection, n: usize) -> rusqlite::Result<Vec<i64>> {
        let mut out = Vec::with_capacity(n.min(4096));
        // Newest first: memory, then the written runs; oldest first, the other way round.
        let memory_first = self.descending;
        if memory_first {
            self.take_memory(&mut out, n);
        }
        while out.len() < n && !self.runs.is_empty() {
            // Up to `RUNS_PER_READ` runs in one statement: SQLite seeks the key in each, in
            // the walk's order (a run's seqs all come before the next run's), at a fraction
            // of a statement per run.
            let take = self.runs.len().min(RUNS_PER_READ);
            let want = n - out.len();
            let (lo, hi) = match (self.last, self.descending) {
                (Some(last), true) => (self.lo, last),
                (Some(last), false) => (last.saturating_add(1), self.hi),
                (None, _) => (self.lo, self.hi),
            };
            let mut stmt = c.prepare_cached(walk_sql(self.descending))?;
            let mut args = vec![
                Value::Integer(i64::from(self.kind as u8)),
                Value::Text(self.key.clone()),
                Value::Integer(lo),
                Value::Integer(hi),
                Value::Integer(i64::try_from(want).unwrap_or(i64::MAX)),
            ];
            // Unused places hold run 0, which no seq belongs to.
            args.extend(
                (0..RUNS_PER_READ).map(|i| Value::Integer(self.runs.get(i).copied().unwrap_or(0))),
            );
            let seqs = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            if seqs.len() < want {
                self.runs.drain(..take);
            }
            // Seqs across runs are in run order: the next read goes on after this one.
            self.last = seqs.last().copied().or(self.last);
            out.extend(seqs);
        }
        if !memory_first {
            self.take_memory(&mut out, n);
        }
        Ok(out)
    }

    /// Moves memory's next seqs into `out`, up to `n` in all.
    fn take_memory(&mut self, out: &mut Vec<i64>, n: usize) {
        while out.len() < n {
            let next = if self.descending {
                self.memory.pop_back()
            } else {
                self.memory.pop_front()
            };
            match next {
                Some(seq) => out.push(seq),
                None => break,
            }
        }
    }
}

/// The last run marked written.
fn last_marked(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT coalesce(max(run), 0) FROM key_runs", [], |r| {
        r.get(0)
    })
}

/// The writer's progress through the runs to write; used on the writer's thread only.
#[derive(Debug)]
pub(super) struct Flusher {
    /// The last run marked written (committed).
    marked: i64,
    /// The last entry of run `marked + 1` written (committed), if any.
    cursor: Option<Entry>,
}

/// What one group wrote of a run, applied to the [`Flusher`] once the group commits.
#[derive(Debug)]
pub(super) struct Step {
    run: i64,
    last: Option<Entry>,
    done: bool,
}

impl Flusher {
    /// Resumes where the last commit left off.
    pub(super) fn load(c: &Connection) -> rusqlite::Result<Flusher> {
        let marked = last_marked(c)?;
        let cursor = c
            .query_row(
                "SELECT kind, key, seq FROM run_keys WHERE run = ?1
                 ORDER BY kind DESC, key DESC, seq DESC LIMIT 1",
                params![marked + 1],
                |r| {
                    Ok((
                        r.get::<_, u8>(0)?,
                        Box::<str>::from(r.get::<_, String>(1)?),
                        r.get(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(Flusher { marked, cursor })
    }

    /// Inside a group's transaction: writes the next chunk (at most `budget` entries) of
    /// the first run not yet written, if that run is complete through `committed` (the
    /// last seq committed before this group, so all its keys are in memory).
    pub(super) fn step(
        &self,
        tx: &Transaction<'_>,
        keys: &Keys,
        committed: i64,
        budget: usize,
    ) -> rusqlite::Result<Option<Step>> {
        let run = self.marked + 1;
        if committed < run * keys.rows {
            return Ok(None);
        }
        let (mut chunk, more) = keys.chunk(run, self.cursor.as_ref(), budget);
        let done = !more;
        // OR IGNORE: an entry written twice is harmless, and bookkeeping of an index must
        // never be what stops the log from taking rows.
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO run_keys (run, kind, key, seq) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (kind, key, seq) in &chunk {
            insert.execute(params![run, kind, &**key, seq])?;
        }
        if done {
            tx.prepare_cached("INSERT OR IGNORE INTO key_runs (run) VALUES (?1)")?
                .execute(params![run])?;
        }
        Ok(Some(Step {
            run,
            last: chunk.pop(),
            done,
        }))
    }

    /// After the commit of the group that made `step`; true when it finished a run.
    pub(super) fn advance(&mut self, step: Step, keys: &Keys) -> bool {
        if step.done {
            self.marked = step.run;
            self.cursor = None;
            keys.forget_through(step.run);
        } else if step.last.is_some() {
            self.cursor = step.last;
        }
        step.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory's seqs for a key, as JSON.
    fn candidates(keys: &Keys, kind: Kind, key: &str) -> String {
        serde_json::to_string(&keys.in_memory(kind, key, (i64::MIN, i64::MAX)).0)
            .unwrap_or_default()
    }

    /// Every seq a walk yields, `batch` at a time.
    fn walked(
        keys: &Keys,
        c: &Connection,
        descending: bool,
        lo: i64,
        hi: i64,
        batch: usize,
    ) -> Vec<i64> {
        let mut walk = keys.walk(Kind::Sender, "a", descending, (lo, hi));
        walk.start(c, lo, hi).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        loop {
            let next = walk.next(c, batch).unwrap_or_else(|e| panic!("{e}"));
            assert!(next.len() <= batch);
            if next.is_empty() {
                return out;
            }
            out.extend(next);
            assert!(out.len() <= 100, "the walk does not end: {out:?}");
        }
    }

    #[test]
    fn a_walk_yields_each_seq_once_in_order_from_written_runs_and_memory() {
        let mut c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::schema::migrate(&mut c).unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys::new(4);
        // Key "a" at seqs 1..=10 but 6; "b" between. Runs of 4: 1..=4, 5..=8, 9..=12.
        for seq in 1..=10 {
            let key = if seq == 6 { "b" } else { "a" };
            keys.add(entries_of(seq, [Some(key), Some("a"), None, None]).collect());
        }
        // Run 1 written and marked, its memory not yet forgotten: read from memory only.
        c.execute_batch(
            "INSERT INTO run_keys (run, kind, key, seq) VALUES (1, 0, 'a', 1), (1, 0, 'a', 2),
                 (1, 0, 'a', 3), (1, 0, 'a', 4), (1, 1, 'a', 1);
             INSERT INTO key_runs (run) VALUES (1);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<i64> = (1..=10).filter(|s| *s != 6).collect();
        let newest: Vec<i64> = all.iter().rev().copied().collect();
        for batch in [1, 2, 3, 100] {
            assert_eq!(walked(&keys, &c, true, i64::MIN, i64::MAX, batch), newest);
            assert_eq!(walked(&keys, &c, false, i64::MIN, i64::MAX, batch), all);
            // Bounds on the edges of runs: 4 is run 1's last seq, 9 run 3's first.
            assert_eq!(walked(&keys, &c, true, 4, 9, batch), [8, 7, 5, 4]);
            assert_eq!(walked(&keys, &c, false, 5, 10, batch), [5, 7, 8, 9]);
        }
        // Once memory forgets it, run 1 comes from the table, in the same order.
        keys.forget_through(1);
        for batch in [1, 2, 3, 100] {
            assert_eq!(walked(&keys, &c, true, i64::MIN, i64::MAX, batch), newest);
            assert_eq!(walked(&keys, &c, false, i64::MIN, i64::MAX, batch), all);
            // Bounds: at or above 3, below 9.
            assert_eq!(walked(&keys, &c, true, 3, 9, batch), [8, 7, 5, 4, 3]);
            assert_eq!(walked(&keys, &c, false, 3, 9, batch), [3, 4, 5, 7, 8]);
            assert_eq!(
                walked(&keys, &c, true, 11, i64::MAX, batch),
                Vec::<i64>::new()
            );
        }
    }

    #[test]
    fn seqs_fall_into_runs_of_run_rows() {
        assert_eq!(run_of(1, RUN_ROWS), 1);
        assert_eq!(run_of(RUN_ROWS, RUN_ROWS), 1);
        assert_eq!(run_of(RUN_ROWS + 1, RUN_ROWS), 2);
    }

    #[test]
    fn candidates_cover_every_run_in_memory_and_only_the_key_asked() {
        let keys = Keys::new(RUN_ROWS);
        keys.add(entries_of(5, [Some("+255700"), Some("order-1"), None, None]).collect());
        keys.add(entries_of(RUN_ROWS + 9, [Some("+255700"), None, None, None]).collect());
        keys.add(entries_of(7, [Some("+255701"), Some("+255700"), None, None]).collect());
        assert_eq!(
            candidates(&keys, Kind::Sender, "+255700"),
            format!("[5,{}]", RUN_ROWS + 9)
        );
        assert_eq!(candidates(&keys, Kind::Source, "+255700"), "[7]");
        assert_eq!(candidates(&keys, Kind::Sender, "nobody"), "[]");
        // Run 1 sorted for writing: found the same way.
        let (first, more) = keys.chunk(1, None, 1);
        assert_eq!(first, [(0, Box::from("+255700"), 5)]);
        assert!(more);
        assert_eq!(
            candidates(&keys, Kind::Sender, "+255700"),
            format!("[5,{}]", RUN_ROWS + 9)
        );
        assert_eq!(candidates(&keys, Kind::Source, "+255700"), "[7]");
        assert_eq!(candidates(&keys, Kind::Sender, "+255701"), "[7]");
        assert_eq!(
            keys.chunk(1, first.last(), 10),
            (
                vec![
                    (0, Box::from("+255701"), 7),
                    (1, Box::from("+255700"), 7),
                    (1, Box::from("order-1"), 5)
                ],
                false
            )
        );
        keys.forget_through(1);
        assert_eq!(
            candidates(&keys, Kind::Sender, "+255700"),
            format!("[{}]", RUN_ROWS + 9)
        );
    }

    #[test]
    fn a_run_of_many_slices_finds_each_key_in_sorted_and_unsorted_slices() {
        let keys = Keys::new(RUN_ROWS);
        let rows = 3 * super::super::sliced::SLICE as i64 + 100;
        for seq in 1..=rows {
            keys.add(
                entries_of(seq, [Some(&format!("+2557{}", seq % 13)), None, None, None]).collect(),
            );
        }
        let want = |k: i64| -> String {
            let seqs: Vec<i64> = (1..=rows).filter(|s| s % 13 == k).collect();
            serde_json::to_string(&seqs).unwrap_or_default()
        };
        // Three sorted slices and a tail not yet sorted.
        assert_eq!(candidates(&keys, Kind::Sender, "+25575"), want(5));
        // The run finished (its tail sorted) for writing: the same answer.
        let _ = keys.chunk(1, None, 1);
        assert_eq!(candidates(&keys, Kind::Sender, "+25575"), want(5));
        assert_eq!(candidates(&keys, Kind::Sender, "+25570"), want(0));
        assert_eq!(candidates(&keys, Kind::Sender, "+255799"), "[]");
    }

    #[test]
    fn a_run_written_twice_is_no_error_and_holds_each_key_once() {
        let mut c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::schema::migrate(&mut c).unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys::new(4);
        for seq in 1..=4 {
            keys.add(entries_of(seq, [Some("+255700"), Some("order"), None, None]).collect());
        }
        assert_eq!(keys.held(), 8);
        let flusher = Flusher::load(&c).unwrap_or_else(|e| panic!("{e}"));
        // The same step twice, as if the first commit had not been noted.
        for _ in 0..2 {
            let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
            let step = flusher
                .step(&tx, &keys, 4, 64)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(step.is_some_and(|s| s.done));
            tx.commit().unwrap_or_else(|e| panic!("{e}"));
        }
        let (entries, runs): (i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM run_keys), (SELECT count(*) FROM key_runs)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((entries, runs), (8, 1));
        // Not complete yet: nothing to write for run 2.
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        let mut flusher = flusher;
        flusher.marked = 1;
        assert!(
            flusher
                .step(&tx, &keys, 7, 64)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
    }
}
