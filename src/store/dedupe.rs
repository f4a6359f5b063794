//! Dedupe: the (account, event id) pairs already accepted, written a run at a time.
//!
//! Invariant 5 needs every accepted event's id checked against every earlier acceptance,
//! exactly. The `dedupe` table (primary key: account, event id) holds them, but an event
//! id is a random key: inserting one per row costs every new row a leaf page of its own,
//! written to the WAL and again at checkpoint (a third of the rate at 1 KiB bodies,
//! BENCHMARKS.md). So the writer keeps the ids of runs not yet written in memory, in a
//! hash map per run, and in arrival order sorted a slice at a time (`sliced`). Once a run
//! of seqs (the runs of `keys`) is complete, it inserts the run's ids into `dedupe` in key
//! order, a chunk per group, where neighbouring ids share leaves, and marks the run in
//! `dedupe_runs` with the last chunk.
//!
//! Owns the in-memory ids and the writes to `dedupe` and `dedupe_runs` (pruning deletes
//! from `dedupe` too, in `audit`). Invariants: memory holds the id of every accepted row
//! committed in a run not marked written, and none of a pruned row; the ids of the group
//! being written sit in [`Pending`] until it commits. A lookup asks the group, memory,
//! then the table, so it sees every earlier acceptance. After a restart, memory is
//! rebuilt from the log past the last marked run. Used on the writer's thread only; it
//! never writes an event row.
//!
//! Nearly every id is new, and proving that by the table costs a B-tree descent per id. So
//! a filter (`filter`) stands in front of the table: a chain that every id entering memory
//! joins (`live`), and one built from the table as it was just after open, by a thread of
//! its own (`table`). Together they hold every id the table can hold, so where both say
//! "absent" the table is not asked. Until the table's filter is ready, or when the filters
//! have outgrown `storage.dedupe_filter_mib`, every id not in memory is asked of the
//! table, as it was before: the filter only ever skips work, never changes an answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::filter::{Chain, FIRST_SEGMENT_IDS, IdHasher};
use super::keys::{free_elsewhere, run_of};
use super::sliced::Sliced;

/// An id's key in memory: the account, a NUL, the event id. Account names never hold a
/// NUL, so the key splits back unambiguously and sorts as `(account, event_id)` does in
/// the table (NUL sorts first).
fn key_into(buf: &mut String, account: &str, event_id: &str) {
    buf.clear();
    buf.push_str(account);
    buf.push('\0');
    buf.push_str(event_id);
}

/// The maps' hasher: foldhash, seeded at random per map. The ids come only from verified
/// requests, and SipHash (std's default) was a few percent of the writer.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

fn split(key: &str) -> (&str, &str) {
    key.split_once('\0').unwrap_or((key, ""))
}

/// One run's ids in memory, each with the seq that accepted it: a hash map for lookups,
/// and the same keys in arrival order, sorted a slice at a time, for writing.
#[derive(Debug, Default)]
struct Ids {
    ids: HashMap<Arc<str>, i64>,
    /// May still hold ids pruned since (`Dedupe::step` skips them).
    order: Sliced<(Arc<str>, i64)>,
    /// Complete, its last slice sorted: it can be written in order.
    finished: bool,
}

impl Ids {
    fn insert(&mut self, key: Arc<str>, seq: i64) -> bool {
        let added = self.ids.insert(Arc::clone(&key), seq).is_none();
        if added {
            self.order.push((key, seq));
        }
        added
    }
}

/// The accepted ids not yet written, and the writer's progress through the runs.
#[derive(Debug)]
pub(super) struct Dedupe {
    /// Seqs per run: `keys::RUN_ROWS`, except in tests.
    rows: i64,
    /// Run → its ids.
    runs: BTreeMap<i64, Ids>,
    /// How many ids `runs` holds.
    held: usize,
    /// The last run marked written (committed).
    marked: i64,
    /// The last entry of run `marked + 1` written (committed), if any.
    cursor: Option<(Arc<str>, i64)>,
    /// Rows at or below this seq were pruned.
    pruned_through: i64,
    filters: Filters,
    /// Ids asked of the table in committed groups, since start.
    table_lookups: u64,
}

/// What proves an id absent from the `dedupe` table without asking it.
#[derive(Debug)]
struct Filters {
    hasher: IdHasher,
    /// Every id that entered memory since open (the only way into the table since).
    live: Chain,
    /// The table's ids as of a snapshot taken after open.
    table: Table,
    /// Bytes both may use together.
    budget: usize,
}

#[derive(Debug)]
enum Table {
    /// Being read by its thread.
    Building(mpsc::Receiver<Option<Chain>>),
    Ready(Chain),
    /// Off by configuration, over budget, or its build failed: the table is asked.
    Off,
}

impl Filters {
    fn off() -> Filters {
        Filters {
            hasher: IdHasher::random(),
            live: Chain::new(FIRST_SEGMENT_IDS, 0),
            table: Table::Off,
            budget: 0,
        }
    }

    /// True when the table certainly does not hold this key.
    fn absent(&self, key: &str) -> bool {
        let Table::Ready(table) = &self.table else {
            return false;
        };
        let hash = self.hasher.hash(key);
        !table.may_contain(hash) && !self.live.may_contain(hash)
    }

    /// Takes in the table's filter once its thread is done.
    fn poll(&mut self) {
        let Table::Building(rx) = &self.table else {
            return;
        };
        self.table = match rx.try_recv() {
            Ok(Some(chain)) => self.install(chain),
            Ok(None) | Err(mpsc::TryRecvError::Disconnected) => Table::Off,
            Err(mpsc::TryRecvError::Empty) => return,
        };
        if matches!(self.table, Table::Off) {
            self.live.give_up();
        }
    }

    fn install(&mut self, table: Chain) -> Table {
        if self.live.given_up() || table.bytes() + self.live.bytes() > self.budget {
            tracing::warn!(
                budget_mib = self.budget >> 20,
                "the dedupe filter would outgrow storage.dedupe_filter_mib; every new id is \
                 looked up in the table"
            );
            return Table::Off;
        }
        self.live.set_budget(self.budget - table.bytes());
        Table::Ready(table)
    }

    fn bytes(&self) -> usize {
        let table = match &self.table {
            Table::Ready(t) => t.bytes(),
            _ => 0,
        };
        table + self.live.bytes()
    }
}

/// Builds the table's filter on a thread of its own ([`Dedupe::with_filter`]).
#[derive(Debug)]
pub(super) struct Build {
    hasher: IdHasher,
    budget: usize,
    done: mpsc::Sender<Option<Chain>>,
}

impl Build {
    /// Reads the table in one snapshot and hands the writer its filter (or none, over
    /// budget or on an error, logged: the writer then asks the table).
    pub(super) fn run(self, c: &mut Connection) {
        let chain = match table_filter(c, self.hasher, self.budget) {
            Ok(chain) => chain,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build the dedupe filter; every new id is looked up in the table");
                None
            }
        };
        // A writer that stopped meanwhile does not need it.
        let _ = self.done.send(chain);
    }
}

/// The filter of every id in the table, sized for them, or none if it would exceed
/// `budget` bytes.
fn table_filter(
    c: &mut Connection,
    hasher: IdHasher,
    budget: usize,
) -> rusqlite::Result<Option<Chain>> {
    // One read transaction: the count and the ids are the same snapshot.
    let tx = c.transaction()?;
    let ids: i64 = tx.query_row("SELECT count(*) FROM dedupe", [], |r| r.get(0))?;
    let mut chain = Chain::new(usize::try_from(ids).unwrap_or(0), budget);
    let mut stmt = tx.prepare("SELECT account, event_id FROM dedupe")?;
    let mut rows = stmt.query([])?;
    let mut key = String::new();
    while let Some(r) = rows.next()? {
        key_into(&mut key, r.get_ref(0)?.as_str()?, r.get_ref(1)?.as_str()?);
        if !chain.insert(hasher.hash(&key)) {
            return Ok(None);
        }
    }
    Ok(Some(chain))
}

/// What one group wrote of a run, applied to [`Dedupe`] once the group commits.
#[derive(Debug)]
pub(super) struct Step {
    run: i64,
    last: Option<(Arc<str>, i64)>,
    done: bool,
}

impl Dedupe {
    /// Rebuilds memory from the log past the last run marked written.
    pub(super) fn load(c: &Connection, rows: i64) -> rusqlite::Result<Dedupe> {
        let rows = rows.max(1);
        let marked: i64 =
            c.query_row("SELECT coalesce(max(run), 0) FROM dedupe_runs", [], |r| {
                r.get(0)
            })?;
        let mut dedupe = Dedupe {
            rows,
            runs: BTreeMap::new(),
            held: 0,
            marked,
            cursor: None,
            pruned_through: super::audit::events_pruned_through(c)?,
            filters: Filters::off(),
            table_lookups: 0,
        };
        let mut stmt = c.prepare(
            "SELECT seq, account, event_id FROM events
             WHERE seq > ?1 AND status = 'accepted' AND event_id IS NOT NULL",
        )?;
        let mut found = stmt.query(params![(marked * rows).max(dedupe.pruned_through)])?;
        let mut key = String::new();
        while let Some(r) = found.next()? {
            let seq: i64 = r.get(0)?;
            key_into(&mut key, r.get_ref(1)?.as_str()?, r.get_ref(2)?.as_str()?);
            dedupe.insert(Arc::from(key.as_str()), seq);
        }
        Ok(dedupe)
    }

    /// Puts a filter of up to `budget` bytes in front of the table; the returned
    /// [`Build`] makes its part for the ids already in the table, and must run after this
    /// (its snapshot must hold every id written before). A budget of 0 leaves it off.
    pub(super) fn with_filter(mut self, budget: usize) -> (Dedupe, Option<Build>) {
        if budget == 0 {
            return (self, None);
        }
        let (done, rx) = mpsc::channel();
        let hasher = self.filters.hasher;
        self.filters = Filters {
            hasher,
            live: Chain::new(FIRST_SEGMENT_IDS, budget),
            table: Table::Building(rx),
            budget,
        };
        for ids in self.runs.values() {
            for key in ids.ids.keys() {
                self.filters.live.insert(hasher.hash(key));
            }
        }
        (
            self,
            Some(Build {
                hasher,
                budget,
                done,
            }),
        )
    }

    /// Bytes the filter holds.
    pub(super) fn filter_bytes(&self) -> usize {
        self.filters.bytes()
    }

    /// Ids looked up in the table by committed groups since start.
    pub(super) fn table_lookups(&self) -> u64 {
        self.table_lookups
    }

    fn insert(&mut self, key: Arc<str>, seq: i64) {
        // Before the table can hold it: the filter must know every id the table holds.
        if !self.filters.live.given_up() {
            self.filters.live.insert(self.filters.hasher.hash(&key));
        }
        let added = self
            .runs
            .entry(run_of(seq, self.rows))
            .or_default()
            .insert(key, seq);
        self.held += usize::from(added);
    }

    /// How many ids memory holds.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Takes in a committed group's ids.
    pub(super) fn add(&mut self, pending: Pending) {
        self.table_lookups += pending.table_lookups;
        for (key, seq) in pending.ids {
            self.insert(key, seq);
        }
    }

    /// After a committed prune: forgets the ids of rows at or below `through`, so they
    /// may be accepted again, as the table's rows for them were deleted.
    pub(super) fn forget_pruned(&mut self, through: i64) {
        if through <= self.pruned_through {
            return;
        }
        self.pruned_through = through;
        let last = run_of(through, self.rows);
        let mut dropped = 0;
        for ids in self.runs.range_mut(..=last).map(|(_, ids)| ids) {
            let before = ids.ids.len();
            ids.ids.retain(|_, seq| *seq > through);
            dropped += before - ids.ids.len();
        }
        // A run left with no ids goes whole, stale order and all.
        self.runs.retain(|_, ids| !ids.ids.is_empty());
        self.held -= dropped;
    }

    /// Before a group: once the first run not yet written is complete through
    /// `committed`, sorts its last slice so that [`Dedupe::step`] can write it in order.
    pub(super) fn prepare(&mut self, committed: i64) {
        self.filters.poll();
        let run = self.marked + 1;
        if committed < run * self.rows {
            return;
        }
        if let Some(ids) = self.runs.get_mut(&run)
            && !ids.finished
        {
            ids.order.finish();
            ids.finished = true;
        }
    }

    /// Inside a group's transaction: inserts the next chunk (at most `budget` ids) of the
    /// first run not yet written, if that run is complete through `committed` (the last
    /// seq committed before this group, so all its ids are in memory).
    pub(super) fn step(
        &mut self,
        tx: &Transaction<'_>,
        committed: i64,
        budget: usize,
    ) -> rusqlite::Result<Option<Step>> {
        let run = self.marked + 1;
        if committed < run * self.rows {
            return Ok(None);
        }
        let (mut chunk, more) = match self.runs.get_mut(&run) {
            None => (Vec::new(), false),
            Some(ids) if ids.finished => ids.order.after(self.cursor.as_ref(), budget),
            // Its last slice not sorted yet (`prepare` was not called): nothing this time.
            Some(_) => return Ok(None),
        };
        let done = !more;
        // OR IGNORE: after a restart the run is written again from its start.
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO dedupe (account, event_id, seq) VALUES (?1, ?2, ?3)",
        )?;
        // An id pruned since it was accepted is not written: its row is gone.
        for (key, seq) in chunk.iter().filter(|(_, seq)| *seq > self.pruned_through) {
            let (account, event_id) = split(key);
            insert.execute(params![account, event_id, seq])?;
        }
        if done {
            tx.prepare_cached("INSERT OR IGNORE INTO dedupe_runs (run) VALUES (?1)")?
                .execute(params![run])?;
        }
        Ok(Some(Step {
            run,
            last: chunk.pop(),
            done,
        }))
    }

    /// After the commit of the group that made `step`; true when it finished a run.
    pub(super) fn advance(&mut self, step: Step) -> bool {
        if step.done {
            self.marked = step.run;
            self.cursor = None;
            let kept = self.runs.split_off(&(step.run + 1));
            let gone = std::mem::replace(&mut self.runs, kept);
            self.held -= gone.values().map(|ids| ids.ids.len()).sum::<usize>();
            free_elsewhere(gone);
        } else if step.last.is_some() {
            self.cursor = step.last;
        }
        step.done
    }
}

/// The ids accepted by the group being written: seen by its later events, and kept only
/// if the group commits.
#[derive(Debug, Default)]
pub(super) struct Pending {
    ids: HashMap<Arc<str>, i64>,
    key: String,
    table_lookups: u64,
}

impl Pending {
    /// The seq that accepted `event_id` for `account` before, if any: in this group, in
    /// memory, or in the table (unless the filter proves it absent there).
    pub(super) fn original(
        &mut self,
        dedupe: &Dedupe,
        tx: &Transaction<'_>,
        account: &str,
        event_id: &str,
    ) -> rusqlite::Result<Option<i64>> {
        key_into(&mut self.key, account, event_id);
        let key = self.key.as_str();
        if let Some(seq) = self.ids.get(key) {
            return Ok(Some(*seq));
        }
        if let Some(seq) = dedupe
            .runs
            .values()
            .find_map(|ids| ids.ids.get(key).copied())
        {
            return Ok(Some(seq));
        }
        if dedupe.filters.absent(key) {
            return Ok(None);
        }
        self.table_lookups += 1;
        tx.prepare_cached("SELECT seq FROM dedupe WHERE account = ?1 AND event_id = ?2")?
            .query_row(params![account, event_id], |r| r.get(0))
            .optional()
    }

    /// Notes an acceptance, once its event's rows are in the group.
    pub(super) fn accept(&mut self, account: &str, event_id: &str, seq: i64) {
        key_into(&mut self.key, account, event_id);
        self.ids.insert(Arc::from(self.key.as_str()), seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        super::super::schema::migrate(&mut c).unwrap_or_else(|e| panic!("{e}"));
        c
    }

    fn accepted(dedupe: &mut Dedupe, ids: &[(&str, &str, i64)]) {
        let mut pending = Pending::default();
        for (account, id, seq) in ids {
            pending.accept(account, id, *seq);
        }
        dedupe.add(pending);
    }

    fn original(dedupe: &Dedupe, c: &mut Connection, account: &str, id: &str) -> Option<i64> {
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        Pending::default()
            .original(dedupe, &tx, account, id)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn keys_sort_as_the_table_does_and_split_back() {
        let mut a = String::new();
        let mut b = String::new();
        key_into(&mut a, "shop", "zzz");
        key_into(&mut b, "shop_2", "aaa");
        // ("shop", _) sorts before ("shop_2", _) whatever the ids are.
        assert!(a < b);
        key_into(&mut a, "shop", "id\0with a nul");
        assert_eq!(split(&a), ("shop", "id\0with a nul"));
    }

    #[test]
    fn a_run_is_written_in_key_order_over_chunks_and_leaves_memory_once_marked() {
        let mut c = db();
        let mut dedupe = Dedupe::load(&c, 4).unwrap_or_else(|e| panic!("{e}"));
        accepted(
            &mut dedupe,
            &[("b", "2", 1), ("a", "9", 2), ("a", "1", 3), ("b", "1", 5)],
        );
        assert_eq!(dedupe.held(), 4);
        // Run 1 (seqs 1-4) is complete only once seq 4 has committed.
        dedupe.prepare(3);
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            dedupe
                .step(&tx, 3, 2)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
        drop(tx);
        dedupe.prepare(4);
        // Sorted, and still found.
        assert_eq!(original(&dedupe, &mut c, "a", "9"), Some(2));
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        let step = dedupe.step(&tx, 4, 2).unwrap_or_else(|e| panic!("{e}"));
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
        let step = step.unwrap_or_else(|| panic!("run 1 is complete"));
        assert!(!step.done, "three ids, chunks of two");
        assert!(!dedupe.advance(step));
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        let step = dedupe.step(&tx, 5, 2).unwrap_or_else(|e| panic!("{e}"));
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
        assert!(dedupe.advance(step.unwrap_or_else(|| panic!("the rest of run 1"))));
        let rows: Vec<(String, String, i64)> = c
            .prepare("SELECT account, event_id, seq FROM dedupe")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|(a, i, s)| (a.as_str(), i.as_str(), *s))
            .collect();
        assert_eq!(rows, [("a", "1", 3), ("a", "9", 2), ("b", "2", 1)]);
        // Run 2's id stays in memory; run 1's are found in the table.
        assert_eq!(dedupe.held(), 1);
        assert_eq!(original(&dedupe, &mut c, "b", "1"), Some(5));
        assert_eq!(original(&dedupe, &mut c, "a", "9"), Some(2));
        assert_eq!(original(&dedupe, &mut c, "a", "2"), None);
        assert_eq!(original(&dedupe, &mut c, "c", "1"), None);
    }

    #[test]
    fn a_group_sees_its_own_acceptances_and_memory_before_the_table() {
        let mut c = db();
        let mut dedupe = Dedupe::load(&c, 4).unwrap_or_else(|e| panic!("{e}"));
        accepted(&mut dedupe, &[("shop", "evt-1", 1)]);
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        let mut pending = Pending::default();
        let seen = |p: &mut Pending, id: &str| {
            p.original(&dedupe, &tx, "shop", id)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(seen(&mut pending, "evt-1"), Some(1));
        assert_eq!(seen(&mut pending, "evt-2"), None);
        pending.accept("shop", "evt-2", 2);
        assert_eq!(seen(&mut pending, "evt-2"), Some(2));
        // Another account's id is another id.
        assert_eq!(
            pending
                .original(&dedupe, &tx, "other", "evt-2")
                .unwrap_or_else(|e| panic!("{e}")),
            None
        );
    }

    #[test]
    fn pruned_ids_leave_memory() {
        let c = db();
        let mut dedupe = Dedupe::load(&c, 4).unwrap_or_else(|e| panic!("{e}"));
        accepted(&mut dedupe, &[("s", "1", 1), ("s", "2", 2), ("s", "6", 6)]);
        dedupe.forget_pruned(2);
        assert_eq!(dedupe.held(), 1);
        assert_eq!(dedupe.runs.keys().copied().collect::<Vec<_>>(), [2]);
        // An older prune changes nothing.
        dedupe.forget_pruned(1);
        assert_eq!(dedupe.held(), 1);
    }

    /// Looks up `ids` of account `a` in one pending group: what each answered, and how
    /// many the table was asked for.
    fn lookups(dedupe: &Dedupe, c: &mut Connection, ids: &[String]) -> (Vec<Option<i64>>, u64) {
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        let mut pending = Pending::default();
        let found = ids
            .iter()
            .map(|id| {
                pending
                    .original(dedupe, &tx, "a", id)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        (found, pending.table_lookups)
    }

    /// Writes run 1 (seqs 1 to 4) of `dedupe` to the table and marks it, as the writer
    /// does over its groups.
    fn write_run_one(dedupe: &mut Dedupe, c: &mut Connection) {
        dedupe.prepare(4);
        loop {
            let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
            let step = dedupe.step(&tx, 4, 2).unwrap_or_else(|e| panic!("{e}"));
            tx.commit().unwrap_or_else(|e| panic!("{e}"));
            if dedupe.advance(step.unwrap_or_else(|| panic!("run 1 is complete"))) {
                return;
            }
        }
    }

    /// Puts `n` ids of account `a` in the table, `old-0` with seq `first` and so on.
    fn in_table(c: &Connection, n: i64, first: i64) {
        for i in 0..n {
            c.execute(
                "INSERT INTO dedupe (account, event_id, seq) VALUES ('a', ?1, ?2)",
                params![format!("old-{i}"), first + i],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn new_ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("new-{i}")).collect()
    }

    #[test]
    fn the_filter_spares_new_ids_the_table_and_never_hides_an_id_it_holds() {
        let mut c = db();
        // Ids already in the table at open: 1,000 of them, from runs written before.
        in_table(&c, 1000, 100);
        let (mut dedupe, build) = Dedupe::load(&c, 4)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_filter(1 << 20);
        let build = build.unwrap_or_else(|| panic!("a budget makes a build"));
        // Until the table's part is built, every id not in memory is asked of the table.
        let (found, asked) = lookups(&dedupe, &mut c, &new_ids(200));
        assert!(found.iter().all(Option::is_none));
        assert_eq!(asked, 200);
        build.run(&mut c);
        dedupe.prepare(0);
        assert!(dedupe.filter_bytes() > 0);
        // Ids accepted since open, then written to the table and gone from memory.
        accepted(&mut dedupe, &[("a", "run1-x", 1), ("a", "run1-y", 3)]);
        write_run_one(&mut dedupe, &mut c);
        assert_eq!(dedupe.held(), 0);
        let held: Vec<String> = (0..1000)
            .map(|i| format!("old-{i}"))
            .chain(["run1-x".into(), "run1-y".into()])
            .collect();
        let (found, asked) = lookups(&dedupe, &mut c, &held);
        assert!(
            found.iter().all(Option::is_some),
            "an id in the table was hidden"
        );
        assert_eq!(asked, 1002, "every id held is confirmed by the table");
        assert_eq!(found[0], Some(100));
        assert_eq!(found[1000], Some(1));
        // New ids: the table is asked for the filter's few mistakes only (about 1 %).
        let (found, asked) = lookups(&dedupe, &mut c, &new_ids(2000));
        assert!(found.iter().all(Option::is_none));
        assert!(
            asked < 100,
            "the table was asked for {asked} of 2,000 new ids"
        );
    }

    #[test]
    fn a_filter_over_its_budget_or_without_its_build_leaves_every_lookup_to_the_table() {
        let mut c = db();
        in_table(&c, 5000, 1);
        // 5,000 ids need about 6 KB of filter: 4 KB is not enough.
        let (mut dedupe, build) = Dedupe::load(&c, 4)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_filter(4096);
        build.unwrap_or_else(|| panic!("a build")).run(&mut c);
        dedupe.prepare(0);
        assert_eq!(dedupe.filter_bytes(), 0);
        // Nor do ids accepted since make a filter of their own.
        accepted(&mut dedupe, &[("a", "since", 1)]);
        assert_eq!(dedupe.filter_bytes(), 0);
        let (found, asked) = lookups(&dedupe, &mut c, &new_ids(100));
        assert_eq!((found.iter().flatten().count(), asked), (0, 100));
        let (found, _) = lookups(&dedupe, &mut c, &["old-4999".to_owned()]);
        assert_eq!(found, [Some(5000)]);

        // The table's ids fit (1.3 KB), but with the first segment for ids since open
        // (32,768 ids, 40 KB) they would not: off as a whole.
        let (mut dedupe, build) = Dedupe::load(&c, 4)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_filter(16 << 10);
        let mut small = db();
        in_table(&small, 1000, 1);
        build.unwrap_or_else(|| panic!("a build")).run(&mut small);
        accepted(&mut dedupe, &[("a", "since", 1)]);
        dedupe.prepare(0);
        assert_eq!(dedupe.filter_bytes(), 0);
        let (_, asked) = lookups(&dedupe, &mut c, &new_ids(100));
        assert_eq!(asked, 100);

        // A build that never reports (its thread failed): the same.
        let (mut dedupe, build) = Dedupe::load(&c, 4)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_filter(1 << 20);
        drop(build);
        dedupe.prepare(0);
        assert_eq!(dedupe.filter_bytes(), 0);
        let (_, asked) = lookups(&dedupe, &mut c, &new_ids(100));
        assert_eq!(asked, 100);

        // And none at all (`storage.dedupe_filter_mib = 0`).
        let (dedupe, build) = Dedupe::load(&c, 4)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_filter(0);
        assert!(build.is_none());
        let (_, asked) = lookups(&dedupe, &mut c, &new_ids(100));
        assert_eq!(asked, 100);
    }

    #[test]
    fn ids_in_memory_at_open_join_the_filter_before_they_reach_the_table() {
        let mut c = db();
        // Accepted rows past the last written run: memory is rebuilt from the log.
        for (seq, id) in [(1, "m-1"), (2, "m-2"), (4, "m-4")] {
            c.execute(
                "INSERT INTO events (seq, received_at, account, status, event_id, method, path,
                    query, remote_addr, headers, body, body_size, body_truncated, handle_micros,
                    hash)
                 VALUES (?1, 0, 'a', 'accepted', ?2, 'POST', '/hooks/a', '', '', '{}', x'', 0, 0,
                    0, x'')",
                params![seq, id],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let (mut dedupe, build) = Dedupe::load(&c, 4)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_filter(1 << 20);
        assert_eq!(dedupe.held(), 3);
        build.unwrap_or_else(|| panic!("a build")).run(&mut c);
        dedupe.prepare(0);
        write_run_one(&mut dedupe, &mut c);
        assert_eq!(dedupe.held(), 0);
        let ids = ["m-1".to_owned(), "m-2".to_owned(), "m-4".to_owned()];
        let (found, _) = lookups(&dedupe, &mut c, &ids);
        assert_eq!(found, [Some(1), Some(2), Some(4)]);
    }
}
