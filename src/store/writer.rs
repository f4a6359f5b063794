//! The one writer: a named OS thread that owns the only write connection.
//!
//! It drains the bounded job queue, commits everything pending in one transaction
//! (`synchronous=FULL`: one fsync per group, not per event), and only then answers each
//! job. It decides `duplicate` (`dedupe`: the group's own acceptances, then those in
//! memory, then the table, so two copies in one group are caught too). It must never
//! answer a job before its commit, and nothing else may write to the database.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::StreamItem;

use super::StoreError;
use super::admin_write::AdminWrite;
use super::checkpoint::Checkpoints;
use super::dedupe::{self, Dedupe, Pending};
use super::keys::{self, Entry, Flusher, Keys};
use super::schema;
use super::timeline::Bound;
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

/// What the writer keeps in memory between groups: the next sequence numbers, the head
/// of each hash chain, and the floor for the next event row's time. Put back as it was
/// before a group that fails.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heads {
    next_event: i64,
    event_head: Hash,
    next_change: i64,
    change_head: Hash,
    /// The least time the next event row may be stored with (microseconds): the latest
    /// stored time less `lateness`. See [`Heads::time_for`].
    time_floor: i64,
    /// How far a row's time may be before one stored at a lower seq (`timeline::TIGHT`).
    lateness: i64,
    /// Event rows stored with the floor instead of their own time, since the start.
    held: u64,
    /// When that was last logged: at most once a minute, so a clock gone far back does not
    /// flood the log.
    warned: Option<std::time::Instant>,
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

    /// The time an event row stamped `stamped` is stored with: its own, unless it is below
    /// the floor. A search by time finds rows by a binary search over the seqs
    /// (`timeline`), which holds only while no row's time is more than `lateness` before a
    /// time stored at a lower seq. A row that reached the writer that late, or one stamped
    /// by a wall clock gone back, is stored at the floor instead.
    fn time_for(&self, stamped: i64) -> i64 {
        stamped.max(self.time_floor)
    }

    /// Moves the floor past an event row just stored at `at`, stamped `stamped`.
    fn note_time(&mut self, stamped: i64, at: i64) {
        self.time_floor = self.time_floor.max(at.saturating_sub(self.lateness));
        if at == stamped {
            return;
        }
        self.held += 1;
        let now = std::time::Instant::now();
        if self
            .warned
            .is_none_or(|w| now.duration_since(w) >= std::time::Duration::from_secs(60))
        {
            self.warned = Some(now);
            tracing::warn!(
                behind_ms = at.saturating_sub(stamped) / 1000,
                held_since_start = self.held,
                "an event row's time is further before the log's latest than searches by time allow (a wall clock gone back, or a row held up on its way to the writer); such rows are stored at that bound"
            );
        }
    }

    pub(super) fn load(conn: &Connection, bound: Bound) -> rusqlite::Result<Heads> {
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
        // Every row before the last was stored no later than its time plus the bound the
        // last row was held to, so that time plus that bound, less the bound from now on,
        // holds the bound for the rows to come against them all (`timeline::seq_range`).
        let last: Option<(i64, i64)> = conn
            .query_row(
                "SELECT seq, received_at FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let time_floor = match last {
            None => i64::MIN,
            Some((seq, at)) if seq < bound.from_seq => {
                at.saturating_add(bound.loose.saturating_sub(bound.tight))
            }
            Some((_, at)) => at,
        };
        Ok(Heads {
            next_event,
            event_head,
            next_change,
            change_head,
            time_floor,
            lateness: bound.tight,
            held: 0,
            warned: None,
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
    let mut conn = hookgate_wal_vfs::open(path, busy, tuning.page_size)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    let page_size: u32 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    if page_size != tuning.page_size {
        tracing::info!(
            page_size,
            "the database keeps the page size it was made with; storage.page_size ({}) applies to new databases",
            tuning.page_size
        );
    }
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
    /// The keys (sender, source, account, event type) not yet written in runs.
    pub keys: Arc<Keys>,
}

/// Starts the writer thread.
pub(super) fn spawn(
    conn: Connection,
    checkpoints: Checkpoints,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    shared: Shared,
    dedupe: Dedupe,
    bound: Bound,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hookgate-writer".into())
        .spawn(move || run(conn, checkpoints, rx, max_batch, &shared, dedupe, bound))
}

fn run(
    mut conn: Connection,
    mut checkpoints: Checkpoints,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    shared: &Shared,
    dedupe: Dedupe,
    bound: Bound,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut state = match (Heads::load(&conn, bound), Flusher::load(&conn)) {
        (Ok(heads), Ok(flusher)) => State {
            heads,
            flusher,
            dedupe,
        },
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
            &mut conn, &mut batch, &mut rx, max_batch, shared, &mut state,
        );
        if let Some(done) = stop {
            drop(checkpoints);
            let _ = done.send(());
            return;
        }
        checkpoints.after_commit(&conn);
    }
}

/// What the writer carries from one group to the next.
pub(super) struct State {
    /// Sequence numbers and chain heads.
    pub(super) heads: Heads,
    /// Progress through the runs of keys.
    pub(super) flusher: Flusher,
    /// Accepted ids not yet written, and progress through their runs.
    pub(super) dedupe: Dedupe,
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

/// What a committed group leaves for memory: its events' keys and accepted ids, and what
/// it wrote of each kind of run.
struct Written {
    entries: Vec<Entry>,
    key_step: Option<keys::Step>,
    pending: Pending,
    dedupe_step: Option<dedupe::Step>,
}

/// How one attempt at a group ended.
enum Attempt {
    /// Committed: one outcome per job, in order, and what memory takes from it.
    Committed(Vec<Outcome>, Written),
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
    state: &mut State,
) -> Option<oneshot::Sender<()>> {
    let (healthy, metrics) = (&shared.healthy, &shared.metrics);
    let State {
        heads,
        flusher,
        dedupe,
    } = state;
    let started = std::time::Instant::now();
    let start_heads = *heads;
    dedupe.prepare(heads.next_event - 1);
    let mut group = Group {
        rx,
        max_batch,
        keys: &shared.keys,
        flusher,
        dedupe,
    };
    let mut attempt = write_group(conn, batch, &mut group, heads, Guard::Optimistic);
    if let Attempt::Abandoned = attempt {
        // The rolled-back attempt moved the heads past rows that are not there.
        *heads = start_heads;
        metrics.record_retried_group();
        attempt = write_group(conn, batch, &mut group, heads, Guard::PerEvent);
    }
    let (outcomes, failure) = match attempt {
        Attempt::Committed(outcomes, written) => {
            // Before any answer: a search that follows an answer finds its row, and the
            // next group sees its ids.
            shared.keys.add(written.entries);
            if let Some(step) = written.key_step
                && flusher.advance(step, &shared.keys)
            {
                metrics.record_key_run();
            }
            metrics.set_keys_in_memory(shared.keys.held() as u64);
            dedupe.add(written.pending);
            if let Some(step) = written.dedupe_step
                && dedupe.advance(step)
            {
                metrics.record_dedupe_run();
            }
            let pruned = |job: &Job| matches!(job, Job::Admin(write, _) if matches!(**write, AdminWrite::PruneEvents { .. }));
            if batch.iter().any(pruned) {
                // The prune deleted the table's ids of its rows; memory follows.
                match super::audit::events_pruned_through(conn) {
                    Ok(through) => dedupe.forget_pruned(through),
                    Err(e) => tracing::error!(error = %e, "cannot read where the log was pruned"),
                }
            }
            metrics.set_dedupe_in_memory(dedupe.held() as u64);
            metrics.set_dedupe_filter(dedupe.filter_bytes() as u64, dedupe.table_lookups());
            metrics.record_held_times(heads.held - start_heads.held);
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
    dedupe: &'a mut Dedupe,
}

/// One attempt at writing `batch` in a single transaction. Jobs that arrive meanwhile
/// are appended to `batch` and join it (up to `max_batch`), until a shutdown is reached.
/// The transaction also carries the next chunk of a complete run of keys (`keys`) and of
/// accepted ids (`dedupe`), written before the jobs so that a prune among them deletes
/// whatever of its rows a chunk held.
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
    // A chunk a few times the group's size keeps the runs ahead of the log.
    let budget = (4 * batch.len()).max(64);
    let steps = group
        .flusher
        .step(&tx, group.keys, committed, budget)
        .and_then(|k| Ok((k, group.dedupe.step(&tx, committed, budget)?)));
    let (key_step, dedupe_step) = match steps {
        Ok(steps) => steps,
        Err(e) => return Attempt::Failed(e),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut entries = Vec::new();
    let mut pending = Pending::default();
    let mut stopping = false;
    loop {
        while let Some(job) = batch.get(outcomes.len()) {
            let outcome = match job {
                Job::Event(record, _) => {
                    let outcome = guarded(&tx, guard, |tx| {
                        insert_event(tx, heads, record, &mut pending, group.dedupe)
                            .map_err(StoreError::from)
                    });
                    if let Ok((committed, _)) = &outcome {
                        let e = &record.extracted;
                        entries.extend(keys::entries_of(
                            committed.seq,
                            [
                                e.sender.as_deref(),
                                e.source.as_deref(),
                                Some(&record.account),
                                e.event_type.as_deref(),
                            ],
                        ));
                        // Only now: a write that failed half-way must not count as seen.
                        if committed.status == Status::Accepted
                            && let Some(id) = &e.event_id
                        {
                            pending.accept(&record.account, id, committed.seq);
                        }
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
    match tx.commit() {
        Ok(()) => Attempt::Committed(
            outcomes,
            Written {
                entries,
                key_step,
                pending,
                dedupe_step,
            },
        ),
        Err(e) => Attempt::Failed(e),
    }
}

/// Runs `write` as [`Guard`] says: bare, or inside a savepoint so that when it fails
/// half-way (its event row written, its outbox row not), none of it stays in the group's
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

/// Writes one event's rows; the caller notes its id in `pending` once they stand.
fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    heads: &mut Heads,
    r: &EventRecord,
    pending: &mut Pending,
    dedupe: &Dedupe,
) -> rusqlite::Result<(Committed, Option<StreamItem>)> {
    let mut status = r.status;
    let mut original_seq = None;
    if status == Status::Accepted
        && let Some(id) = &r.extracted.event_id
    {
        original_seq = pending.original(dedupe, tx, &r.account, id)?;
        if original_seq.is_some() {
            status = Status::Duplicate;
        }
    }
    let seq = heads.next_event;
    let received_at = heads.time_for(r.received_at);
    let body_sha = r.body_sha256.as_ref().map(|h| &h[..]);
    // The chain takes the stored body as its digest (encoding v2). A body stored whole has
    // the digest the front computed; a cut one is hashed here (a rejection's, at most
    // `limits.rejected_body_bytes`; a hash-only account's stored body is empty).
    let body_digest = match (r.body_truncated, r.body_sha256) {
        (false, Some(whole)) => whole,
        _ => chain::body_digest(&r.body),
    };
    debug_assert_eq!(body_digest, chain::body_digest(&r.body));
    let e = &r.extracted;
    let fields = [
        Field::Int(seq),
        Field::Int(received_at),
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
        Field::Blob(&body_digest),
        Field::Int(r.body_size as i64),
        body_sha.map_or(Field::Null, Field::Blob),
        Field::Int(i64::from(r.body_truncated)),
        Field::Int(r.handle_micros),
    ];
    let hash = chain::row_hash(chain::Version::V2, &heads.event_head, &fields);
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
        received_at,
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
            // Due by the clock the forwarder reads, even while the row's time is held.
            r.received_at
        ])?;
    }
    heads.next_event = seq + 1;
    heads.event_head = hash;
    heads.note_time(r.received_at, received_at);
    let item = streamed.then(|| StreamItem {
        seq,
        account: r.account.clone(),
        data: serde_json::json!({
            "id": crate::event::public_id(seq),
            "received_at": crate::clock::format_micros(received_at),
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
mod tests;
