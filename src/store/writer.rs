//! The one writer: a named OS thread that owns the only write connection.
//!
//! It drains the bounded job queue, commits everything pending in one transaction
//! (`synchronous=FULL`: one fsync per group, not per event), and only then answers each
//! job. It decides `duplicate` (the dedupe table is read and written here, inside the
//! same transaction, so two copies in one group are caught too). It must never answer a
//! job before its commit, and nothing else may write to the database.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::StreamItem;

use super::StoreError;
use super::admin_write::AdminWrite;
use super::checkpoint::Checkpoints;
use super::keys::{self, Entry, Flusher, Keys, Step};
use super::schema;
use crate::chain::{self, Field, Hash};
use crate::config::Storage;
use crate::event::{Committed, EventRecord, Forward, Status};
use crate::metrics::Metrics;

/// One unit of work for the writer.
pub(super) enum Job {
    Event(
        Box<EventRecord>,
        oneshot::Sender<Result<Committed, StoreError>>,
    ),
    Admin(Box<AdminWrite>, oneshot::Sender<Result<u64, StoreError>>),
    /// A health probe: a real write (see `super::health`) committed with the group.
    Probe(oneshot::Sender<Result<(), StoreError>>),
    Shutdown(oneshot::Sender<()>),
}

/// What the writer keeps in memory between groups: the next sequence numbers and the head
/// of each hash chain. Reloaded from the database after a failed group.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    next_event: i64,
    event_head: Hash,
    next_change: i64,
    change_head: Hash,
}

impl Heads {
    /// The seq and previous hash the next change-log row chains from.
    pub(super) fn next_change(&self) -> (i64, Hash) {
        (self.next_change, self.change_head)
    }

    /// Moves the change-log head past a row just written.
    pub(super) fn advance_change(&mut self, hash: Hash) {
        self.next_change += 1;
        self.change_head = hash;
    }

    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Heads> {
        let last = |table: &str| -> rusqlite::Result<(i64, Hash)> {
            let row: Option<(i64, Option<Vec<u8>>)> = conn
                .query_row(
                    &format!("SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let checkpoint: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT through, hash FROM chain_checkpoints WHERE log = ?1",
                    [table],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match (row, checkpoint) {
                (Some((seq, hash)), _) => (seq + 1, to_hash(hash.as_deref())),
                (None, Some((through, hash))) => (through + 1, to_hash(Some(&hash))),
                (None, None) => (1, chain::GENESIS),
            })
        };
        let (next_event, event_head) = last("events")?;
        let (next_change, change_head) = last("changes")?;
        Ok(Heads {
            next_event,
            event_head,
            next_change,
            change_head,
        })
    }
}

fn to_hash(bytes: Option<&[u8]>) -> Hash {
    bytes
        .and_then(|b| Hash::try_from(b).ok())
        .unwrap_or(chain::GENESIS)
}

/// Opens the write connection with the pragmas durability depends on, and migrates.
pub(super) fn open_write_connection(
    path: &Path,
    tuning: &Storage,
) -> Result<Connection, StoreError> {
    // The write connection's WAL appends go through hookgate-wal-vfs (one write per
    // commit instead of two per page), which also sets WAL mode and synchronous=FULL;
    // every other connection uses SQLite's default VFS.
    let busy = std::time::Duration::from_millis(tuning.busy_timeout_ms);
    let mut conn = hookgate_wal_vfs::open(path, busy)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    // The random-key indexes (dedupe, sender) outgrow SQLite's 2 MB default cache quickly;
    // a miss costs a read from the OS and more dirty pages per group.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    conn.set_prepared_statement_cache_capacity(32);
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// What the writer shares with the rest of the gateway.
pub(super) struct Shared {
    /// False after a failed group, until one commits.
    pub healthy: Arc<AtomicBool>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Streamed events, published in commit order after their group commits.
    pub stream: broadcast::Sender<Arc<StreamItem>>,
    /// The sender and source keys not yet written in runs.
    pub keys: Arc<Keys>,
}

/// Starts the writer thread.
pub(super) fn spawn(
    conn: Connection,
    checkpoints: Checkpoints,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    shared: Shared,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hookgate-writer".into())
        .spawn(move || run(conn, checkpoints, rx, max_batch, &shared))
}

fn run(
    mut conn: Connection,
    mut checkpoints: Checkpoints,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    shared: &Shared,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let (mut heads, mut flusher) = match (Heads::load(&conn), Flusher::load(&conn)) {
        (Ok(h), Ok(f)) => (h, f),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot read the chain heads; the writer stops");
            return;
        }
    };
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let stop = commit_batch(
            &mut conn,
            &mut batch,
            &mut rx,
            max_batch,
            shared,
            &mut heads,
            &mut flusher,
        );
        if let Some(done) = stop {
            drop(checkpoints);
            let _ = done.send(());
            return;
        }
        checkpoints.after_commit(&conn);
    }
}

/// What one job came to, held until the commit decides whether it stands.
enum Outcome {
    Event(Result<(Committed, Option<StreamItem>), StoreError>),
    Admin(Result<u64, StoreError>),
    Probe(Result<(), StoreError>),
    /// A shutdown request: answered after the group, by the caller.
    Shutdown,
}

impl Outcome {
    /// An event or probe that failed part-way, which an unguarded attempt cannot keep.
    /// (A refused admin write is an answer, not a failure: it has a savepoint of its own.)
    fn failed_part_way(&self) -> bool {
        matches!(self, Outcome::Event(Err(_)) | Outcome::Probe(Err(_)))
    }
}

/// How an attempt at a group guards each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// No savepoints. Inside a savepoint SQLite copies each page a row touches into a
    /// statement journal before changing it (12 % of the writer's time at maximum rate,
    /// BENCHMARKS.md), so the first attempt goes without; the first event that fails
    /// abandons the attempt, and the group is made again [`Guard::PerEvent`].
    Optimistic,
    /// Each event and probe in a savepoint of its own, so one that fails half-way leaves
    /// nothing while the rest of the group commits.
    PerEvent,
}

/// How one attempt at a group ended.
enum Attempt {
    /// Committed: one outcome per job, in order; the keys of its events; what it wrote of
    /// a run.
    Committed(Vec<Outcome>, Vec<Entry>, Option<Step>),
    /// An event failed in an [`Guard::Optimistic`] attempt; it was rolled back.
    Abandoned,
    /// The transaction could not begin or commit: nothing of the group stands.
    Failed(rusqlite::Error),
}

/// Commits one group, counts it, and answers its jobs; returns the shutdown reply if one
/// was queued (the jobs before it are committed first).
///
/// Jobs that arrive while the group's rows are being inserted join the group before the
/// commit, so one fsync covers them too: the group grows with the load, at no idle cost.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    rx: &mut mpsc::Receiver<Job>,
    max_batch: usize,
    shared: &Shared,
    heads: &mut Heads,
    flusher: &mut Flusher,
) -> Option<oneshot::Sender<()>> {
    let (healthy, metrics) = (&shared.healthy, &shared.metrics);
    let started = std::time::Instant::now();
    let start_heads = *heads;
    let mut group = Group {
        rx,
        max_batch,
        keys: &shared.keys,
        flusher,
    };
    let mut attempt = write_group(conn, batch, &mut group, heads, Guard::Optimistic);
    if let Attempt::Abandoned = attempt {
        // The rolled-back attempt moved the heads past rows that are not there.
        *heads = start_heads;
        metrics.record_retried_group();
        attempt = write_group(conn, batch, &mut group, heads, Guard::PerEvent);
    }
    let (outcomes, failure) = match attempt {
        Attempt::Committed(outcomes, entries, step) => {
            // Before any answer: a search that follows an answer finds its row.
            shared.keys.add(entries);
            if let Some(step) = step {
                flusher.advance(step, &shared.keys);
            }
            (outcomes, None)
        }
        Attempt::Failed(e) => (Vec::new(), Some(e.to_string())),
        // A guarded attempt goes on past a failed event; it never abandons.
        Attempt::Abandoned => (Vec::new(), Some("the write group was abandoned".into())),
    };
    if failure.is_some() {
        // The group was rolled back: the heads are what they were before it.
        *heads = start_heads;
    }
    // Counters first, so that anyone who has seen an answer also sees it counted.
    let elapsed = started.elapsed().as_micros() as u64;
    let rows = batch
        .iter()
        .filter(|job| !matches!(job, Job::Shutdown(_)))
        .count();
    metrics.record_batch(rows, elapsed, failure.is_none());
    if let Some(e) = &failure {
        healthy.store(false, Ordering::Relaxed);
        tracing::error!(error = %e, "write batch failed; answering 503 for its requests");
    } else {
        healthy.store(true, Ordering::Relaxed);
    }
    let failed = failure.map(StoreError::Unavailable);
    let mut outcomes = outcomes.into_iter();
    let mut shutdown = None;
    for job in batch.drain(..) {
        let outcome = outcomes.next();
        match (job, &failed) {
            (Job::Shutdown(reply), _) => shutdown = Some(reply),
            (Job::Event(_, reply), Some(err)) => {
                let _ = reply.send(Err(err.clone()));
            }
            (Job::Admin(_, reply), Some(err)) => {
                let _ = reply.send(Err(err.clone()));
            }
            (Job::Probe(reply), Some(err)) => {
                let _ = reply.send(Err(err.clone()));
            }
            (Job::Event(_, reply), None) => {
                let outcome = match outcome {
                    Some(Outcome::Event(outcome)) => outcome.map(|(committed, item)| {
                        if let Some(item) = item {
                            // No subscriber is fine: the log is the source of truth.
                            let _ = shared.stream.send(Arc::new(item));
                        }
                        committed
                    }),
                    _ => Err(unmatched()),
                };
                let _ = reply.send(outcome);
            }
            (Job::Admin(_, reply), None) => {
                let _ = reply.send(match outcome {
                    Some(Outcome::Admin(outcome)) => outcome,
                    _ => Err(unmatched()),
                });
            }
            (Job::Probe(reply), None) => {
                let _ = reply.send(match outcome {
                    Some(Outcome::Probe(outcome)) => outcome,
                    _ => Err(unmatched()),
                });
            }
        }
    }
    shutdown
}

/// The answer for a job whose outcome is missing, which `write_group` never leaves.
fn unmatched() -> StoreError {
    StoreError::Unavailable("the write group lost track of a job".into())
}

/// What every attempt at one group works with.
struct Group<'a> {
    rx: &'a mut mpsc::Receiver<Job>,
    max_batch: usize,
    keys: &'a Keys,
    flusher: &'a Flusher,
}

/// One attempt at writing `batch` in a single transaction. Jobs that arrive meanwhile
/// are appended to `batch` and join it (up to `max_batch`), until a shutdown is reached.
/// The transaction also carries the next chunk of a complete run of keys (`keys`).
fn write_group(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    group: &mut Group<'_>,
    heads: &mut Heads,
    guard: Guard,
) -> Attempt {
    // Every key up to here is in memory: it was added after its group committed.
    let committed = heads.next_event - 1;
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return Attempt::Failed(e),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut entries = Vec::new();
    let mut stopping = false;
    loop {
        while let Some(job) = batch.get(outcomes.len()) {
            let outcome = match job {
                Job::Event(record, _) => {
                    let outcome = guarded(&tx, guard, |tx| {
                        insert_event(tx, heads, record).map_err(StoreError::from)
                    });
                    if let Ok((committed, _)) = &outcome {
                        let e = &record.extracted;
                        entries.extend(keys::entries_of(
                            committed.seq,
                            e.sender.as_deref(),
                            e.source.as_deref(),
                        ));
                    }
                    Outcome::Event(outcome)
                }
                Job::Admin(write, _) => {
                    Outcome::Admin(super::admin_write::apply(&mut tx, heads, write))
                }
                Job::Probe(_) => Outcome::Probe(guarded(&tx, guard, super::health::probe_write)),
                Job::Shutdown(_) => {
                    stopping = true;
                    Outcome::Shutdown
                }
            };
            if guard == Guard::Optimistic && outcome.failed_part_way() {
                // Dropping the transaction rolls back everything this attempt wrote.
                return Attempt::Abandoned;
            }
            outcomes.push(outcome);
        }
        if stopping {
            break;
        }
        while batch.len() < group.max_batch {
            match group.rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if outcomes.len() == batch.len() {
            break;
        }
    }
    // A chunk a few times the group's size keeps the runs ahead of the log.
    let budget = (4 * batch.len()).max(64);
    let step = match group.flusher.step(&tx, group.keys, committed, budget) {
        Ok(step) => step,
        Err(e) => return Attempt::Failed(e),
    };
    match tx.commit() {
        Ok(()) => Attempt::Committed(outcomes, entries, step),
        Err(e) => Attempt::Failed(e),
    }
}

/// Runs `write` as [`Guard`] says: bare, or inside a savepoint so that when it fails
/// half-way (its event row written, its dedupe row not), none of it stays in the group's
/// commit, and a request answered 503 leaves nothing behind that a retry could collide
/// with.
fn guarded<T>(
    tx: &rusqlite::Transaction<'_>,
    guard: Guard,
    write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if guard == Guard::Optimistic {
        return write(tx);
    }
    // Prepared once per connection.
    tx.prepare_cached("SAVEPOINT one_event")?.execute([])?;
    match write(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE one_event")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO one_event; RELEASE one_event")?;
            Err(e)
        }
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    heads: &mut Heads,
    r: &EventRecord,
) -> rusqlite::Result<(Committed, Option<StreamItem>)> {
    let mut status = r.status;
    let mut original_seq = None;
    if status == Status::Accepted
        && let Some(id) = &r.extracted.event_id
    {
        original_seq = tx
            .prepare_cached("SELECT seq FROM dedupe WHERE account = ?1 AND event_id = ?2")?
            .query_row(params![r.account, id], |row| row.get::<_, i64>(0))
            .optional()?;
        if original_seq.is_some() {
            status = Status::Duplicate;
        }
    }
    let seq = heads.next_event;
    let body_sha = r.body_sha256.as_ref().map(|h| &h[..]);
    let e = &r.extracted;
    let fields = [
        Field::Int(seq),
        Field::Int(r.received_at),
        Field::from(r.account.as_str()),
        Field::from(status.as_str()),
        Field::from(r.reason.map(|x| x.as_str())),
        Field::from(r.detail.as_deref()),
        Field::from(e.event_id.as_deref()),
        Field::from(e.event_type.as_deref()),
        Field::from(e.sender.as_deref()),
        Field::from(e.source.as_deref()),
        Field::from(e.params.as_deref()),
        Field::from(r.method.as_str()),
        Field::from(r.path.as_str()),
        Field::from(r.query.as_str()),
        Field::from(r.remote_addr.as_str()),
        Field::from(r.headers.as_str()),
        Field::from(r.content_type.as_deref()),
        Field::Blob(&r.body),
        Field::Int(r.body_size as i64),
        body_sha.map_or(Field::Null, Field::Blob),
        Field::Int(i64::from(r.body_truncated)),
        Field::Int(r.handle_micros),
    ];
    let hash = chain::row_hash(&heads.event_head, &fields);
    // Only a first acceptance flows onward; duplicates never forward again.
    let forward = if status == Status::Accepted {
        &r.forward
    } else {
        &Forward::None
    };
    let (forward_status, streamed) = match forward {
        Forward::None => (None, false),
        Forward::Skipped => (Some("skipped"), false),
        Forward::StreamOnly => (Some("skipped"), true),
        Forward::Deliver { .. } => (Some("pending"), true),
    };
    tx.prepare_cached(
        "INSERT INTO events (seq, received_at, account, status, reason, detail, event_id,
            event_type, sender, source, params, method, path, query, remote_addr, headers,
            content_type, body, body_size, body_sha256, body_truncated, handle_micros, hash,
            forward_status, streamed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?
    .execute(params![
        seq,
        r.received_at,
        r.account,
        status.as_str(),
        r.reason.map(|x| x.as_str()),
        r.detail,
        e.event_id,
        e.event_type,
        e.sender,
        e.source,
        e.params,
        r.method,
        r.path,
        r.query,
        r.remote_addr,
        r.headers,
        r.content_type,
        &r.body[..],
        r.body_size as i64,
        body_sha,
        r.body_truncated,
        r.handle_micros,
        &hash[..],
        forward_status,
        streamed,
    ])?;
    if let Forward::Deliver { to, text } = forward {
        tx.prepare_cached(
            "INSERT INTO outbox (seq, account, recipient, text, event_id, event_type, status,
                next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)",
        )?
        .execute(params![
            seq,
            r.account,
            to,
            text,
            e.event_id,
            e.event_type,
            r.received_at
        ])?;
    }
    if status == Status::Accepted
        && let Some(id) = &e.event_id
    {
        tx.prepare_cached("INSERT INTO dedupe (account, event_id, seq) VALUES (?1, ?2, ?3)")?
            .execute(params![r.account, id, seq])?;
    }
    heads.next_event = seq + 1;
    heads.event_head = hash;
    let item = streamed.then(|| StreamItem {
        seq,
        account: r.account.clone(),
        data: serde_json::json!({
            "id": crate::event::public_id(seq),
            "received_at": crate::clock::format_micros(r.received_at),
            "account": r.account,
            "status": status.as_str(),
            "event_id": e.event_id,
            "event_type": e.event_type,
            "sender": e.sender,
            "source": e.source,
            "params": e.params.as_deref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()),
            "forward_status": forward_status,
        })
        .to_string(),
    });
    Ok((
        Committed {
            seq,
            status,
            original_seq,
        },
        item,
    ))
}

#[cfg(test)]
mod tests {
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

    /// A writer without its thread: the connection, its state, and what it shares.
    struct Rig {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        conn: Connection,
        heads: Heads,
        flusher: Flusher,
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
                heads: Heads::load(&conn).expect("heads"),
                flusher: Flusher::load(&conn).expect("flusher"),
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
                &mut self.heads,
                &mut self.flusher,
            );
            assert!(stop.is_none());
            replies
                .into_iter()
                .map(|mut r| r.try_recv().expect("every job is answered"))
                .collect()
        }

        /// Writes one group of events with these ids.
        fn write_ids(&mut self, ids: &[&str]) -> Vec<Result<Committed, StoreError>> {
            self.write(ids.iter().map(|id| record(id)).collect())
        }

        /// The seqs a search by sender or source finds, newest first, on a read connection.
        fn search(&self, sender: Option<&str>, source: Option<&str>) -> Vec<i64> {
            let c = Connection::open(&self.path).expect("reader");
            let filter = super::super::reader::EventFilter {
                sender: sender.map(Into::into),
                source: source.map(Into::into),
                limit: 10_000,
                ..Default::default()
            };
            super::super::reader::events(&c, &filter, &self.shared.keys)
                .expect("search")
                .items
                .iter()
                .map(|e| e.seq)
                .collect()
        }
    }

    #[test]
    fn an_event_failing_half_way_leaves_nothing_and_the_rest_of_its_group_commits() {
        let mut rig = Rig::new(keys::RUN_ROWS);
        // The event row is written, then its dedupe row fails, for one id only.
        rig.conn
            .execute_batch(
                "CREATE TRIGGER staged_fault BEFORE INSERT ON dedupe WHEN NEW.event_id = 'bad'
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
        assert!(
            matches!(&answers[1], Err(StoreError::Unavailable(m)) if m.contains("staged fault"))
        );
        assert!(metrics.render(true, 0).contains("retried_groups_total 1\n"));

        // What stands is exactly the answered rows, contiguous, and the chain holds.
        let (conn, heads) = (&rig.conn, &rig.heads);
        let ids: Vec<(i64, String)> = conn
            .prepare("SELECT seq, event_id FROM events ORDER BY seq")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("rows");
        let ids: Vec<(i64, &str)> = ids.iter().map(|(s, i)| (*s, i.as_str())).collect();
        assert_eq!(ids, [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "a")]);
        let dedupe: i64 = conn
            .query_row(
                "SELECT count(*) FROM dedupe WHERE event_id = 'bad'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(dedupe, 0);
        let reloaded = Heads::load(conn).expect("heads");
        assert_eq!(reloaded.next_event, heads.next_event);
        assert_eq!(reloaded.event_head, heads.event_head);
        let report = super::super::audit::verify(conn, super::super::audit::Log::Events, None)
            .expect("verify");
        assert!(report.ok && report.rows == 5, "{report:?}");
    }

    #[test]
    fn searches_by_sender_and_source_find_every_row_across_written_runs_memory_and_a_restart() {
        // Runs of 64 seqs: 128 keys each, more than one group's chunk (64), so a run is
        // written over several groups.
        const ROWS: i64 = 64;
        let mut rig = Rig::new(ROWS);
        let sender = |i: usize| format!("+2557000000{}", i % 7);
        let source = |i: usize| format!("order-{}", i % 5);
        let mut seq = 0;
        // (seq, sender, source) of every row written.
        type Row = (i64, String, Option<String>);
        let mut expected: Vec<Row> = Vec::new();
        for group in 0..60 {
            let records: Vec<_> = (0..5)
                .map(|k| {
                    let i = group * 5 + k;
                    // Every third row has no source: no key, and no entry for it.
                    let src = (i % 3 != 0).then(|| source(i));
                    keyed(&format!("evt-{i}"), Some(&sender(i)), src.as_deref())
                })
                .collect();
            for (k, answer) in rig.write(records).into_iter().enumerate() {
                let i = group * 5 + k;
                seq += 1;
                assert_eq!(answer.expect("accepted").seq, seq);
                expected.push((seq, sender(i), (i % 3 != 0).then(|| source(i))));
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
            assert_eq!(
                rig.search(Some(&s), Some(&o)),
                want(&|e| e.1 == s && e.2.as_deref() == Some(o.as_str()))
            );
            assert!(rig.search(Some("+255799999999"), None).is_empty());
        };
        check(&rig);

        // A restart rebuilds memory from the log past the last written run.
        let Rig {
            _dir, path, conn, ..
        } = rig;
        drop(conn);
        let conn = open_write_connection(&path, &Storage::default()).expect("reopen");
        let mut rig = Rig::resume(_dir, path, conn, ROWS);
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
                    &format!(
                        "SELECT count(*) FROM events WHERE seq <= ?1 AND {column} IS NOT NULL"
                    ),
                    [marked * ROWS],
                    |r| r.get(0),
                )
                .expect("count")
        };
        let in_runs: i64 = written
            .iter()
            .filter(|(run, _)| *run <= marked)
            .map(|w| w.1)
            .sum();
        assert_eq!(in_runs, keyed("sender") + keyed("source"));
        // The rows before the restart are found as before, the ones after as well.
        assert_eq!(
            rig.search(Some(&sender(1)), None),
            want(&|e| e.1 == sender(1))
        );
        let after: Vec<i64> = (301..=450).rev().collect();
        assert_eq!(rig.search(Some("+255700000001"), None), after);
    }
}
