//! The writer's tests: groups written through `commit_batch` on a real database file,
//! without the writer's thread.

use super::super::timeline::Bound;
use super::*;
use crate::event::Extracted;

fn record(event_id: &str) -> EventRecord {
    keyed(event_id, Some("+255700000001"), None)
}

fn keyed(event_id: &str, sender: Option<&str>, source: Option<&str>) -> EventRecord {
    EventRecord {
        received_at: 1_700_000_000_000_000,
        account: "shop".into(),
        status: Status::Accepted,
        reason: None,
        detail: None,
        extracted: Extracted {
            event_id: Some(event_id.into()),
            sender: sender.map(Into::into),
            source: source.map(Into::into),
            ..Extracted::default()
        },
        method: "POST".into(),
        path: "/hooks/shop".into(),
        query: String::new(),
        remote_addr: "127.0.0.1:1".into(),
        headers: "{}".into(),
        content_type: Some("application/json".into()),
        body: bytes::Bytes::from(format!("{{\"id\":\"{event_id}\"}}")),
        body_size: 12,
        body_sha256: None,
        body_truncated: false,
        handle_micros: 5,
        forward: Forward::None,
    }
}

type Reply = oneshot::Receiver<Result<Committed, StoreError>>;

/// The timeline's bounds of the database in `conn`, for the default configuration, as
/// the store reads them.
fn bound(conn: &Connection) -> Bound {
    let timeout = std::time::Duration::from_millis(Storage::default().enqueue_timeout_ms);
    Bound::load(conn, timeout).expect("bound")
}

/// A writer without its thread: the connection, its state, and what it shares.
struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    conn: Connection,
    state: State,
    shared: Shared,
}

impl Rig {
    /// A new database, with runs of `rows` seqs.
    fn new(rows: i64) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let conn = open_write_connection(&path, &Storage::default()).expect("open");
        Rig::resume(dir, path, conn, rows)
    }

    /// The writer's state as a restart finds it in `conn`'s database.
    fn resume(
        dir: tempfile::TempDir,
        path: std::path::PathBuf,
        conn: Connection,
        rows: i64,
    ) -> Rig {
        Rig {
            state: State {
                heads: Heads::load(&conn, bound(&conn)).expect("heads"),
                flusher: Flusher::load(&conn).expect("flusher"),
                dedupe: Dedupe::load(&conn, rows).expect("dedupe"),
            },
            shared: Shared {
                healthy: Arc::new(AtomicBool::new(true)),
                metrics: Arc::new(Metrics::default()),
                stream: broadcast::channel(4).0,
                keys: Arc::new(Keys::load(&conn, rows).expect("keys")),
            },
            _dir: dir,
            path,
            conn,
        }
    }

    /// Closes the connection and opens the database again, as a restart does.
    fn restart(self, rows: i64) -> Rig {
        let Rig {
            _dir, path, conn, ..
        } = self;
        drop(conn);
        let conn = open_write_connection(&path, &Storage::default()).expect("reopen");
        Rig::resume(_dir, path, conn, rows)
    }

    /// Writes one group through `commit_batch`, as the writer thread does.
    fn write(&mut self, records: Vec<EventRecord>) -> Vec<Result<Committed, StoreError>> {
        let (mut batch, replies): (Vec<Job>, Vec<Reply>) = records
            .into_iter()
            .map(|r| {
                let (tx, rx) = oneshot::channel();
                (Job::Event(Box::new(r), tx), rx)
            })
            .unzip();
        let (_keep, mut rx) = mpsc::channel(1);
        let stop = commit_batch(
            &mut self.conn,
            &mut batch,
            &mut rx,
            64,
            &self.shared,
            &mut self.state,
        );
        assert!(stop.is_none());
        replies
            .into_iter()
            .map(|mut r| r.try_recv().expect("every job is answered"))
            .collect()
    }

    /// Prunes the rows received before `before` in a group of its own, as the retention
    /// loop does; answers how many rows went.
    fn prune(&mut self, before: i64) -> u64 {
        let (tx, mut rx) = oneshot::channel();
        let change = super::super::admin_write::Change {
            at: before,
            actor: "test".into(),
            action: String::new(),
            account: None,
            detail: String::new(),
        };
        let write = AdminWrite::PruneEvents {
            before,
            max_rows: 1_000_000,
            change,
        };
        let mut batch = vec![Job::Admin(Box::new(write), tx)];
        let (_keep, mut jobs) = mpsc::channel(1);
        let stop = commit_batch(
            &mut self.conn,
            &mut batch,
            &mut jobs,
            64,
            &self.shared,
            &mut self.state,
        );
        assert!(stop.is_none());
        rx.try_recv().expect("answered").expect("pruned")
    }

    /// Writes one group of events with these ids.
    fn write_ids(&mut self, ids: &[&str]) -> Vec<Result<Committed, StoreError>> {
        self.write(ids.iter().map(|id| record(id)).collect())
    }

    /// The seqs a search finds page by page, `limit` at a time, newest first (following
    /// each page's cursor) or oldest first (as export pages).
    fn search_paged(
        &self,
        filter: &super::super::reader::EventFilter,
        limit: usize,
        oldest_first: bool,
    ) -> Vec<i64> {
        let c = Connection::open(&self.path).expect("reader");
        let mut filter = super::super::reader::EventFilter {
            limit,
            oldest_first,
            ..filter.clone()
        };
        let mut seqs = Vec::new();
        for _ in 0..10_000 {
            let page = super::super::reader::events(&c, &filter, &self.shared.keys, Bound::EXACT)
                .expect("search");
            assert!(page.items.len() <= limit);
            seqs.extend(page.items.iter().map(|e| e.seq));
            let Some(cursor) = page.next_cursor.and_then(|c| c.parse().ok()) else {
                return seqs;
            };
            if oldest_first {
                filter.after_seq = Some(cursor);
            } else {
                filter.before_seq = Some(cursor);
            }
        }
        panic!("paging did not end: {seqs:?}");
    }

    /// The seqs a search finds, newest first, on a read connection.
    fn search_by(&self, filter: &super::super::reader::EventFilter) -> Vec<i64> {
        let c = Connection::open(&self.path).expect("reader");
        let filter = super::super::reader::EventFilter {
            limit: 10_000,
            ..filter.clone()
        };
        super::super::reader::events(&c, &filter, &self.shared.keys, Bound::EXACT)
            .expect("search")
            .items
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    /// The seqs a search by sender or source finds, newest first.
    fn search(&self, sender: Option<&str>, source: Option<&str>) -> Vec<i64> {
        self.search_by(&by(sender, source))
    }
}

/// A filter by sender and source.
fn by(sender: Option<&str>, source: Option<&str>) -> super::super::reader::EventFilter {
    super::super::reader::EventFilter {
        sender: sender.map(Into::into),
        source: source.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn an_event_failing_half_way_leaves_nothing_and_the_rest_of_its_group_commits() {
    let mut rig = Rig::new(keys::RUN_ROWS);
    // The event row is written, then the statement fails (FAIL keeps what it changed),
    // for one id only.
    rig.conn
        .execute_batch(
            "CREATE TRIGGER staged_fault AFTER INSERT ON events WHEN NEW.event_id = 'bad'
             BEGIN SELECT RAISE(FAIL, 'staged fault'); END;",
        )
        .expect("stage the fault");
    let metrics = Arc::clone(&rig.shared.metrics);

    let fast = rig.write_ids(&["a", "b"]);
    assert!(fast.iter().all(Result::is_ok), "{fast:?}");
    assert!(metrics.render(true, 0).contains("retried_groups_total 0\n"));

    let answers = rig.write_ids(&["c", "bad", "d", "a"]);
    let seqs: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().ok().map(|c| (c.seq, c.status)))
        .collect();
    assert_eq!(
        seqs,
        [
            Some((3, Status::Accepted)),
            None,
            Some((4, Status::Accepted)),
            Some((5, Status::Duplicate)),
        ],
        "{answers:?}"
    );
    assert!(matches!(&answers[1], Err(StoreError::Unavailable(m)) if m.contains("staged fault")));
    assert!(metrics.render(true, 0).contains("retried_groups_total 1\n"));

    // What stands is exactly the answered rows, contiguous, and the chain holds.
    let (conn, heads) = (&rig.conn, &rig.state.heads);
    let ids: Vec<(i64, String)> = conn
        .prepare("SELECT seq, event_id FROM events ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .expect("rows");
    let ids: Vec<(i64, &str)> = ids.iter().map(|(s, i)| (*s, i.as_str())).collect();
    assert_eq!(ids, [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "a")]);
    let reloaded = Heads::load(conn, bound(conn)).expect("heads");
    assert_eq!(reloaded.next_event, heads.next_event);
    assert_eq!(reloaded.event_head, heads.event_head);
    let report =
        super::super::audit::verify(conn, super::super::audit::Log::Events, None).expect("verify");
    assert!(report.ok && report.rows == 5, "{report:?}");

    // The failed id was never taken as seen: once the fault is gone, it is accepted.
    rig.conn
        .execute_batch("DROP TRIGGER staged_fault")
        .expect("clear the fault");
    let again: Vec<_> = rig
        .write_ids(&["bad", "c", "bad"])
        .into_iter()
        .map(|a| a.map(|c| (c.seq, c.status, c.original_seq)).ok())
        .collect();
    assert_eq!(
        again,
        [
            Some((6, Status::Accepted, None)),
            Some((7, Status::Duplicate, Some(3))),
            Some((8, Status::Duplicate, Some(6))),
        ]
    );
}

#[test]
fn searches_by_every_key_find_every_row_across_written_runs_memory_and_a_restart() {
    // Runs of 64 seqs: over 200 keys each, more than one group's chunk (64), so a run is
    // written over several groups.
    const ROWS: i64 = 64;
    let mut rig = Rig::new(ROWS);
    let sender = |i: usize| format!("+2557000000{}", i % 7);
    let source = |i: usize| format!("order-{}", i % 5);
    let account = |i: usize| format!("shop-{}", i % 2);
    // Every fourth row has no type, every third no source: no key, and no entry for it.
    let kind = |i: usize| (!i.is_multiple_of(4)).then(|| format!("payment.{}", i % 3));
    let mut seq = 0;
    // (seq, sender, source, account, event type) of every row written.
    type Row = (i64, String, Option<String>, String, Option<String>);
    let mut expected: Vec<Row> = Vec::new();
    for group in 0..60 {
        let records: Vec<_> = (0..5)
            .map(|k| {
                let i = group * 5 + k;
                let src = (i % 3 != 0).then(|| source(i));
                let mut r = keyed(&format!("evt-{i}"), Some(&sender(i)), src.as_deref());
                r.account = account(i);
                r.extracted.event_type = kind(i);
                r
            })
            .collect();
        for (k, answer) in rig.write(records).into_iter().enumerate() {
            let i = group * 5 + k;
            seq += 1;
            assert_eq!(answer.expect("accepted").seq, seq);
            let src = (i % 3 != 0).then(|| source(i));
            expected.push((seq, sender(i), src, account(i), kind(i)));
        }
    }
    let marked: i64 = rig
        .conn
        .query_row("SELECT count(*) FROM key_runs", [], |r| r.get(0))
        .expect("runs");
    assert!(
        marked >= 3,
        "300 rows make 4 complete runs of 64; {marked} written"
    );
    let want = |f: &dyn Fn(&Row) -> bool| -> Vec<i64> {
        expected
            .iter()
            .rev()
            .filter(|e| f(e))
            .map(|e| e.0)
            .collect()
    };
    let check = |rig: &Rig| {
        for s in 0..7 {
            let key = sender(s);
            assert_eq!(rig.search(Some(&key), None), want(&|e| e.1 == key), "{key}");
        }
        for o in 0..5 {
            let key = source(o);
            assert_eq!(
                rig.search(None, Some(&key)),
                want(&|e| e.2.as_deref() == Some(key.as_str())),
                "{key}"
            );
        }
        let (s, o) = (sender(1), source(1));
        let both = want(&|e| e.1 == s && e.2.as_deref() == Some(o.as_str()));
        assert_eq!(rig.search(Some(&s), Some(&o)), both);
        assert!(rig.search(Some("+255799999999"), None).is_empty());
        let (a, t) = (account(1), kind(1).unwrap_or_default());
        let filter =
            |account: Option<&str>, event_type: Option<&str>| super::super::reader::EventFilter {
                account: account.map(Into::into),
                event_type: event_type.map(Into::into),
                ..Default::default()
            };
        let of_account = want(&|e| e.3 == a);
        let of_type = want(&|e| e.4.as_deref() == Some(t.as_str()));
        assert_eq!(rig.search_by(&filter(Some(&a), None)), of_account);
        assert_eq!(rig.search_by(&filter(None, Some(&t))), of_type);
        assert_eq!(
            rig.search_by(&filter(Some(&a), Some(&t))),
            want(&|e| e.3 == a && e.4.as_deref() == Some(t.as_str()))
        );
        assert!(rig.search_by(&filter(Some("shop-9"), None)).is_empty());
        assert!(of_account.len() == 150 && of_type.len() == 75);
        // Page by page, both ways, the walk crosses memory and the written runs.
        for limit in [1, 3, 50] {
            let newest = want(&|e| e.1 == s);
            assert_eq!(rig.search_paged(&by(Some(&s), None), limit, false), newest);
            let mut oldest = newest;
            oldest.reverse();
            assert_eq!(rig.search_paged(&by(Some(&s), None), limit, true), oldest);
            assert_eq!(
                rig.search_paged(&by(Some(&s), Some(&o)), limit, false),
                both
            );
            assert_eq!(
                rig.search_paged(&by(None, Some(&o)), limit, false),
                want(&|e| e.2.as_deref() == Some(o.as_str()))
            );
            assert_eq!(
                rig.search_paged(&filter(Some(&a), None), limit, false),
                of_account
            );
            let mut oldest = of_type.clone();
            oldest.reverse();
            assert_eq!(
                rig.search_paged(&filter(None, Some(&t)), limit, true),
                oldest
            );
        }
    };
    check(&rig);

    // A restart rebuilds memory from the log past the last written run.
    let mut rig = rig.restart(ROWS);
    check(&rig);
    // ... and the writer goes on writing runs where it left off.
    for group in 60..90 {
        let ids: Vec<String> = (0..5).map(|k| format!("evt-{}", group * 5 + k)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert!(rig.write_ids(&ids).iter().all(Result::is_ok));
    }
    let written: Vec<(i64, i64)> = rig
        .conn
        .prepare("SELECT run, count(*) FROM run_keys GROUP BY run ORDER BY run")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .expect("runs");
    let marked: i64 = rig
        .conn
        .query_row("SELECT max(run) FROM key_runs", [], |r| r.get(0))
        .expect("runs");
    assert!(
        marked >= 6,
        "450 rows, 7 complete runs; {marked} written: {written:?}"
    );
    // Each run written holds exactly the keys of its seqs, each once.
    let keyed = |column: &str| -> i64 {
        rig.conn
            .query_row(
                &format!("SELECT count(*) FROM events WHERE seq <= ?1 AND {column} IS NOT NULL"),
                [marked * ROWS],
                |r| r.get(0),
            )
            .expect("count")
    };
    // Memory holds exactly the keys past the last written run, and says so.
    let held = keyed_after(&rig.conn, marked * ROWS);
    let metrics = rig.shared.metrics.render(true, 0);
    assert!(
        metrics.contains(&format!("hookgate_keys_in_memory {held}\n")),
        "{held} keys past run {marked}: {metrics}"
    );
    let runs_since_restart: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hookgate_key_runs_written_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(runs_since_restart >= 2, "{metrics}");
    let in_runs: i64 = written
        .iter()
        .filter(|(run, _)| *run <= marked)
        .map(|w| w.1)
        .sum();
    assert_eq!(
        in_runs,
        keyed("sender") + keyed("source") + keyed("account") + keyed("event_type")
    );
    // The rows before the restart are found as before, the ones after as well.
    assert_eq!(
        rig.search(Some(&sender(1)), None),
        want(&|e| e.1 == sender(1))
    );
    let after: Vec<i64> = (301..=450).rev().collect();
    assert_eq!(rig.search(Some("+255700000001"), None), after);

    // Beside a rare outcome the key is checked on the outcome's rows instead of walked.
    let again: Vec<_> = [1, 8, 15]
        .iter()
        .map(|&i| {
            let mut r = self::keyed(&format!("evt-{i}"), Some(&sender(1)), None);
            r.account = account(i);
            r
        })
        .collect();
    let dups: Vec<i64> = rig
        .write(again)
        .into_iter()
        .map(|a| {
            let a = a.expect("answered");
            assert_eq!(a.status, Status::Duplicate);
            a.seq
        })
        .collect();
    let c = Connection::open(&rig.path).expect("reader");
    let filter = super::super::reader::EventFilter {
        sender: Some(sender(1)),
        status: Some("duplicate".into()),
        limit: 2,
        ..Default::default()
    };
    let page =
        super::super::reader::events(&c, &filter, &rig.shared.keys, Bound::EXACT).expect("search");
    let seqs: Vec<i64> = page.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [dups[2], dups[1]]);
    assert!(page.next_cursor.is_some());
    let nobody = super::super::reader::EventFilter {
        sender: Some(sender(2)),
        ..filter
    };
    let page =
        super::super::reader::events(&c, &nobody, &rig.shared.keys, Bound::EXACT).expect("search");
    assert!(page.items.is_empty());
}

/// How many keys (sender, source, account, event type) the rows after `seq` have.
fn keyed_after(conn: &Connection, seq: i64) -> i64 {
    conn.query_row(
        "SELECT count(sender) + count(source) + count(account) + count(event_type)
         FROM events WHERE seq > ?1",
        [seq],
        |r| r.get(0),
    )
    .expect("count")
}

/// (seq, status, original seq) of each answer, `None` for a failed one.
fn verdicts(
    answers: Vec<Result<Committed, StoreError>>,
) -> Vec<Option<(i64, Status, Option<i64>)>> {
    answers
        .into_iter()
        .map(|a| a.ok().map(|c| (c.seq, c.status, c.original_seq)))
        .collect()
}

#[test]
fn an_id_is_a_duplicate_wherever_its_acceptance_is_held_and_a_pruned_one_is_new_again() {
    // Runs of 64 seqs: ids move from a group to memory to the table over several groups.
    const ROWS: i64 = 64;
    let mut rig = Rig::new(ROWS);
    let at = |i: i64| 1_700_000_000_000_000 + i;
    let timed = |i: i64| {
        let mut r = record(&format!("evt-{i}"));
        r.received_at = at(i);
        r
    };
    // evt-i is accepted as seq i + 1.
    for group in 0..60 {
        let answers = rig.write((group * 5..group * 5 + 5).map(timed).collect());
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_ok_and(|c| c.status == Status::Accepted))
        );
    }
    let marked: i64 = rig
        .conn
        .query_row("SELECT coalesce(max(run), 0) FROM dedupe_runs", [], |r| {
            r.get(0)
        })
        .expect("runs");
    assert!(
        marked >= 3,
        "300 rows make 4 complete runs of 64; {marked} written"
    );
    // The table holds each accepted id of the written runs once; memory the rest.
    let (in_table, past): (i64, i64) = rig
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM dedupe WHERE seq <= ?1),
                    (SELECT count(*) FROM events WHERE seq > ?1 AND status = 'accepted')",
            [marked * ROWS],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!(in_table, marked * ROWS);
    let metrics = rig.shared.metrics.render(true, 0);
    assert!(
        metrics.contains(&format!("hookgate_dedupe_ids_in_memory {past}\n")),
        "{past} ids past run {marked}: {metrics}"
    );
    assert!(metrics.contains(&format!("hookgate_dedupe_runs_written_total {marked}\n")));

    // Written runs, memory, the group itself: each is asked.
    let repeats = |rig: &mut Rig, new: i64| {
        verdicts(rig.write(vec![
            timed(0),
            timed(100),
            timed(299),
            timed(new),
            timed(new),
        ]))
    };
    let dup = |seq: i64, of: i64| Some((seq, Status::Duplicate, Some(of)));
    assert_eq!(
        repeats(&mut rig, 300),
        [
            dup(301, 1),
            dup(302, 101),
            dup(303, 300),
            Some((304, Status::Accepted, None)),
            dup(305, 304)
        ]
    );

    // A restart rebuilds memory from the log past the last written run.
    let mut rig = rig.restart(ROWS);
    assert_eq!(
        repeats(&mut rig, 301),
        [
            dup(306, 1),
            dup(307, 101),
            dup(308, 300),
            Some((309, Status::Accepted, None)),
            dup(310, 309)
        ]
    );

    // A prune through the open run: the ids of pruned rows, in the table or in memory,
    // may be accepted again; later ones stay duplicates.
    // Retention prunes a seq prefix: through the last row received before the time,
    // seq 303 (the repeats of evt-0, evt-100 and evt-299 were stamped as those).
    assert_eq!(rig.prune(at(300)), 303);
    assert_eq!(
        rig.state.dedupe.held(),
        2,
        "memory keeps only the ids past the prune (seqs 304 and 309)"
    );
    let gone: i64 = rig
        .conn
        .query_row("SELECT count(*) FROM dedupe WHERE seq <= 303", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(gone, 0);
    assert_eq!(
        verdicts(rig.write(vec![timed(0), timed(299), timed(300), timed(301)])),
        [
            Some((311, Status::Accepted, None)),
            Some((312, Status::Accepted, None)),
            dup(313, 304),
            dup(314, 309),
        ]
    );
    // Once the run the prune cut into is written, the pruned ids are still not in the
    // table (memory's order kept them; the writing skips them).
    for group in 0..20 {
        let ids: Vec<String> = (0..5).map(|k| format!("new-{}", group * 5 + k)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert!(rig.write_ids(&ids).iter().all(Result::is_ok));
    }
    let (marked, stale): (i64, i64) = rig
        .conn
        .query_row(
            "SELECT (SELECT max(run) FROM dedupe_runs),
                    (SELECT count(*) FROM dedupe WHERE seq <= 303)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert!(marked >= 5, "run 5 (seqs 257-320) written; {marked}");
    assert_eq!(stale, 0);
}

#[test]
fn a_clock_gone_back_holds_row_times_so_that_a_search_by_time_finds_every_row() {
    let mut rig = Rig::new(keys::RUN_ROWS);
    let (l, sec, hour) = (super::super::timeline::TIGHT, 1_000_000, 3_600_000_000);
    let t = 1_700_000_000_000_000;
    let stamped = |id: &str, at: i64| {
        let mut r = record(id);
        r.received_at = at;
        r
    };
    let stored = |conn: &Connection| -> Vec<i64> {
        conn.prepare("SELECT received_at FROM events ORDER BY seq")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("times")
    };
    // The clock goes back an hour after b, and has caught up by e; f is later still.
    rig.write(vec![stamped("a", t), stamped("b", t + sec)]);
    rig.write(vec![stamped("c", t - hour), stamped("d", t - hour + sec)]);
    rig.write(vec![
        stamped("e", t + sec - l + 1),
        stamped("f", t + 10 * sec),
    ]);
    let floor = t + sec - l;
    // c and d are held at the floor; e, late within the bound, keeps its own time.
    assert_eq!(
        stored(&rig.conn),
        [t, t + sec, floor, floor, floor + 1, t + 10 * sec]
    );
    let metrics = rig.shared.metrics.render(true, 0);
    assert!(
        metrics.contains("hookgate_writer_held_times_total 2\n"),
        "{metrics}"
    );
    // Every row is inside the seqs a search by its own stored instant reads.
    let findable = |conn: &Connection| {
        for (seq, at) in (1..).zip(stored(conn)) {
            let (after, before) =
                super::super::timeline::seq_range(conn, Some(at), Some(at + 1), bound(conn))
                    .expect("range");
            assert!(
                after.is_none_or(|a| a <= seq) && before.is_none_or(|b| seq < b),
                "row {seq} at {at} is outside {after:?}..{before:?}"
            );
        }
    };
    findable(&rig.conn);

    // After a restart the floor is the last row's time: a clock set back across the
    // restart is held there, one that moved on is not.
    let mut rig = rig.restart(keys::RUN_ROWS);
    rig.write(vec![stamped("g", t + 5 * sec), stamped("h", t + 11 * sec)]);
    assert_eq!(stored(&rig.conn)[6..], [t + 10 * sec, t + 11 * sec]);
    findable(&rig.conn);
}

#[test]
fn rows_after_an_upgrade_are_held_against_the_old_rows_loose_bound() {
    let mut rig = Rig::new(keys::RUN_ROWS);
    let t = 1_700_000_000_000_000;
    let stamped = |id: &str, at: i64| {
        let mut r = record(id);
        r.received_at = at;
        r
    };
    rig.write(vec![stamped("a", t), stamped("b", t + 1_000)]);
    // As a log written before migration 11 is left: its rows were held only to the loose
    // bound, and the tight one begins after them.
    rig.conn
        .execute("UPDATE timeline_bound SET from_seq = 3", [])
        .expect("mark");
    let mut rig = rig.restart(keys::RUN_ROWS);
    let b = bound(&rig.conn);
    // An old row may have been stored up to the loose bound after the last one's time; a
    // new row is held to the tight bound against that, so one stamped at the last row's
    // time is stored the difference of the bounds later.
    rig.write(vec![stamped("c", t + 1_000), stamped("d", t + 60_000_000)]);
    let times: Vec<i64> = rig
        .conn
        .prepare("SELECT received_at FROM events WHERE seq >= 3 ORDER BY seq")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("times");
    assert_eq!(times, [t + 1_000 + b.loose - b.tight, t + 60_000_000]);
}
