//! The one writer: a named OS thread that owns the only write connection.
//!
//! It drains the bounded job queue, commits everything pending in one transaction
//! (`synchronous=FULL`: one fsync per group, not per event), and only then answers each
//! job. It decides `duplicate` by asking the `dedupe` table inside the group's transaction,
//! so two copies in one group are caught too. It must never answer a job before its
//! commit, and nothing else may write to the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::schema;
use crate::chain::{self, Hash};
use crate::config::Storage;
use crate::destination::CHAT;
use crate::event::{Committed, EventRecord, Status};
use crate::metrics::Metrics;
use crate::store::chained::EventRow;
use crate::store::queue::Job;
use crate::store::{StoreError, StreamItem};

/// What the writer keeps in memory between groups: the next sequence numbers and the head
/// of each hash chain. Put back as it was before a group that fails.
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
    let cannot = |e: rusqlite::Error| {
        StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
    };
    let mut conn = Connection::open(path).map_err(cannot)?;
    conn.busy_timeout(std::time::Duration::from_millis(tuning.busy_timeout_ms))
        .map_err(cannot)?;
    // Takes effect only on a database that has no page yet; an existing one keeps its own.
    conn.pragma_update(None, "page_size", tuning.page_size)
        .map_err(cannot)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(cannot)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "cannot open {}: the database refuses WAL mode (it is in {mode} mode)",
            path.display()
        )));
    }
    // A commit is durable when it is answered: the WAL is synced at every commit.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(cannot)?;
    conn.pragma_update(None, "cache_size", -64 * 1024)
        .map_err(cannot)?;
    // SQLite copies the WAL into the database file itself, in the committing writer, each
    // time the WAL passes this many pages.
    conn.pragma_update(None, "wal_autocheckpoint", tuning.wal_autocheckpoint_pages)
        .map_err(cannot)?;
    conn.set_prepared_statement_cache_capacity(32);
    schema::migrate(&mut conn).map_err(cannot)?;
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
    /// Set, with the reason, when the writer cannot write again by itself.
    pub unrecoverable: watch::Sender<Option<String>>,
    /// The database file, to reopen it after a panic and to notice it gone.
    pub path: PathBuf,
    /// The storage settings it was opened with.
    pub tuning: Storage,
}

/// Starts the writer thread; `heads` are read from `conn` first, so a database whose
/// heads cannot be read fails here, before the gateway answers anything.
pub(super) fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    shared: Shared,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let heads = Heads::load(&conn)?;
    let file = FileId::of(&shared.path)
        .ok_or_else(|| StoreError::Unavailable(format!("cannot read {}", shared.path.display())))?;
    std::thread::Builder::new()
        .name("hookgate-writer".into())
        .spawn(move || supervise(conn, rx, max_batch, &shared, heads, file))
        .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))
}

/// Which file a path names: its device and inode. A database file deleted or replaced
/// under the gateway names another (or none), while the open connection goes on writing
/// to the old one, which nobody will ever read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    #[cfg(not(unix))]
    fn of(path: &Path) -> Option<FileId> {
        std::fs::metadata(path)
            .ok()
            .map(|_| FileId { dev: 0, ino: 0 })
    }
}

/// How a run of the writer ended.
enum Ended {
    /// The queue closed, or a shutdown was asked for (its reply, sent once the file is
    /// complete).
    Stopped(Option<oneshot::Sender<()>>),
    /// The database cannot be written again by this process.
    Unrecoverable(String),
}

/// Runs the writer; a panic inside a group is caught, its jobs are answered with an error
/// (their replies dropped), and the writer goes on with a fresh connection and heads read
/// back from the database. A database that cannot be written again ends it: the gateway
/// is told (`Shared::unrecoverable`) and every later job is refused until shutdown.
fn supervise(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    shared: &Shared,
    heads: Heads,
    file: FileId,
) {
    let mut opened = Some((conn, heads));
    let mut panics = 0u32;
    let reason = loop {
        let (mut conn, mut heads) = match opened.take() {
            Some(o) => o,
            None => match reopen(shared, file) {
                Ok(o) => o,
                Err(reason) => break reason,
            },
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&mut conn, &mut rx, max_batch, shared, &mut heads, file)
        }));
        match ran {
            Ok(Ended::Stopped(done)) => {
                leave_self_contained(&conn);
                drop(conn);
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
            Ok(Ended::Unrecoverable(reason)) => break reason,
            Err(_) => {
                shared.healthy.store(false, Ordering::Relaxed);
                panics += 1;
                if panics > MAX_PANICS {
                    break format!("the writer panicked {panics} times");
                }
                tracing::error!(
                    "the writer panicked in a write group (its requests were answered 503); reopening the database and going on"
                );
                std::thread::sleep(std::time::Duration::from_millis(100 << panics.min(6)));
            }
        }
    };
    shared.healthy.store(false, Ordering::Relaxed);
    tracing::error!(reason = %reason, "the writer cannot write to the database again: {reason}");
    shared.unrecoverable.send_replace(Some(reason.clone()));
    refuse(&mut rx, &reason);
}

/// Panics the writer survives before it gives up.
const MAX_PANICS: u32 = 8;

/// A fresh write connection and the heads as the database holds them, after a panic.
fn reopen(shared: &Shared, file: FileId) -> Result<(Connection, Heads), String> {
    if FileId::of(&shared.path) != Some(file) {
        return Err(gone(&shared.path));
    }
    let conn = open_write_connection(&shared.path, &shared.tuning).map_err(|e| e.to_string())?;
    let heads = Heads::load(&conn).map_err(|e| format!("cannot read the chains' heads: {e}"))?;
    Ok((conn, heads))
}

fn gone(path: &Path) -> String {
    format!(
        "the database file {} was removed or replaced while the gateway had it open",
        path.display()
    )
}

/// Answers every job with `reason` until a shutdown (answered) or the queue closes.
fn refuse(rx: &mut mpsc::Receiver<Job>, reason: &str) {
    while let Some(job) = rx.blocking_recv() {
        let stop = matches!(job, Job::Shutdown(_));
        answer_failed(job, reason);
        if stop {
            return;
        }
    }
}

/// Whether a failed write means the database itself is unusable: corrupt, not a
/// database, or moved away under the open connection.
fn is_unrecoverable(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) || f.extended_code == ffi::SQLITE_READONLY_DBMOVED
        }
        _ => false,
    }
}

fn run(
    conn: &mut Connection,
    rx: &mut mpsc::Receiver<Job>,
    max_batch: usize,
    shared: &Shared,
    heads: &mut Heads,
    file: FileId,
) -> Ended {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A group written to a file nobody will open again would be acknowledged and
        // lost: the file is checked before each group (one stat).
        if FileId::of(&shared.path) != Some(file) {
            let reason = gone(&shared.path);
            for job in batch.drain(..) {
                answer_failed(job, &reason);
            }
            return Ended::Unrecoverable(reason);
        }
        let (done, fatal) = commit_batch(conn, &mut batch, rx, max_batch, shared, heads);
        if let Some(reason) = fatal {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return Ended::Unrecoverable(reason);
        }
        if done.is_some() {
            return Ended::Stopped(done);
        }
    }
    Ended::Stopped(None)
}

/// Answers one job of a group that was not written.
fn answer_failed(job: Job, reason: &str) {
    let err = StoreError::Unavailable(reason.to_owned());
    match job {
        Job::Event(_, reply) => {
            let _ = reply.send(Err(err));
        }
        Job::Admin(_, reply) => {
            let _ = reply.send(Err(err));
        }
        Job::Probe(reply) => {
            let _ = reply.send(Err(err));
        }
        Job::Shutdown(reply) => {
            let _ = reply.send(());
        }
    }
}

/// Copies every WAL frame into the database file and empties the WAL, so that the file
/// alone is a complete copy of the database once the writer has stopped.
fn leave_self_contained(conn: &Connection) {
    let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match done {
        Ok((0, _, _)) => {
            tracing::info!("the database file is complete: its WAL is checkpointed and empty")
        }
        Ok((_, log, copied)) => tracing::warn!(
            log,
            copied,
            "the WAL could not be emptied at stop (a reader held it); the database file needs its -wal file beside it"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot checkpoint the WAL at stop; the database file needs its -wal file beside it")
        }
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
    /// No savepoints: inside one SQLite copies each page a row touches into a statement
    /// journal first, so the first attempt goes without; the first event that fails
    /// abandons the attempt, and the group is made again [`Guard::PerEvent`].
    Optimistic,
    /// Each event and probe in a savepoint of its own, so one that fails half-way leaves
    /// nothing while the rest of the group commits.
    PerEvent,
}

/// How one attempt at a group ended.
enum Attempt {
    /// Committed: one outcome per job, in order.
    Committed(Vec<Outcome>),
    /// An event failed in an [`Guard::Optimistic`] attempt; it was rolled back.
    Abandoned,
    /// The transaction could not begin or commit: nothing of the group stands.
    Failed(rusqlite::Error),
}

/// Commits one group, counts it, and answers its jobs; returns the shutdown reply if one
/// was queued (the jobs before it are committed first), and the reason when the group
/// failed in a way the database cannot recover from.
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
) -> (Option<oneshot::Sender<()>>, Option<String>) {
    let (healthy, metrics) = (&shared.healthy, &shared.metrics);
    let started = std::time::Instant::now();
    let start_heads = *heads;
    let mut attempt = write_group(conn, batch, rx, max_batch, heads, Guard::Optimistic);
    if let Attempt::Abandoned = attempt {
        // The rolled-back attempt moved the heads past rows that are not there.
        *heads = start_heads;
        metrics.record_retried_group();
        attempt = write_group(conn, batch, rx, max_batch, heads, Guard::PerEvent);
    }
    let mut fatal = None;
    let (outcomes, failure) = match attempt {
        Attempt::Committed(outcomes) => (outcomes, None),
        Attempt::Failed(e) => {
            if is_unrecoverable(&e) {
                fatal = Some(format!("the database is unusable: {e}"));
            }
            (Vec::new(), Some(e.to_string()))
        }
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
    (shutdown, fatal)
}

/// The answer for a job whose outcome is missing, which `write_group` never leaves.
fn unmatched() -> StoreError {
    StoreError::Unavailable("the write group lost track of a job".into())
}

/// One attempt at writing `batch` in a single transaction. Jobs that arrive meanwhile
/// are appended to `batch` and join it (up to `max_batch`), until a shutdown is reached.
fn write_group(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    rx: &mut mpsc::Receiver<Job>,
    max_batch: usize,
    heads: &mut Heads,
    guard: Guard,
) -> Attempt {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return Attempt::Failed(e),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stopping = false;
    loop {
        while let Some(job) = batch.get(outcomes.len()) {
            let outcome = match job {
                Job::Event(record, _) => Outcome::Event(guarded(&tx, guard, |tx| {
                    insert_event(tx, heads, record).map_err(StoreError::from)
                })),
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
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if outcomes.len() == batch.len() {
            break;
        }
    }
    match tx.commit() {
        Ok(()) => Attempt::Committed(outcomes),
        Err(e) => Attempt::Failed(e),
    }
}

/// Runs `write` as [`Guard`] says: bare, or inside a savepoint so that when it fails
/// half-way (its event row written, its outbox rows not), none of it stays in the group's
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

/// Writes one event's rows: the event, its dedupe entry when it is a first acceptance, and
/// its outbox rows: a delivery to the chat destination for its status message, one to
/// each of its destinations.
fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    heads: &mut Heads,
    r: &EventRecord,
) -> rusqlite::Result<(Committed, Option<StreamItem>)> {
    let mut status = r.status;
    let mut original_seq = None;
    let seq = heads.next_event;
    if status == Status::Accepted
        && let Some(id) = &r.extracted.event_id
    {
        original_seq = tx
            .prepare_cached("SELECT seq FROM dedupe WHERE account = ?1 AND event_id = ?2")?
            .query_row(params![r.account, id], |row| row.get(0))
            .optional()?;
        if original_seq.is_some() {
            status = Status::Duplicate;
        } else {
            tx.prepare_cached("INSERT INTO dedupe (account, event_id, seq) VALUES (?1, ?2, ?3)")?
                .execute(params![r.account, id, seq])?;
        }
    }
    let row = EventRow::new(r, status, seq, &heads.event_head);
    let e = &r.extracted;
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
        row.status.as_str(),
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
        r.body_sha256.as_ref().map(|h| &h[..]),
        r.body_truncated,
        r.handle_micros,
        &row.hash[..],
        row.forward_status,
        row.streamed,
    ])?;
    if let Some((to, text)) = row.deliver {
        tx.prepare_cached(
            "INSERT INTO deliveries (seq, account, destination, status, next_attempt_at,
                created_at, recipient, text) VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?5, ?6)",
        )?
        .execute(params![seq, r.account, CHAT, r.received_at, to, text])?;
    }
    if row.status == Status::Accepted {
        for d in &r.destinations {
            tx.prepare_cached(
                "INSERT INTO deliveries (seq, account, destination, status, next_attempt_at,
                    created_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            )?
            .execute(params![seq, r.account, d, r.received_at])?;
        }
    }
    heads.next_event = seq + 1;
    heads.event_head = row.hash;
    Ok((
        Committed {
            seq,
            status: row.status,
            original_seq,
        },
        row.stream_item(r),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn a_corrupt_or_moved_database_is_unrecoverable_and_a_busy_or_full_one_is_not() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_CORRUPT,
            ffi::SQLITE_NOTADB,
            ffi::SQLITE_READONLY_DBMOVED,
        ] {
            assert!(is_unrecoverable(&failure(code)), "{code}");
        }
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_READONLY,
        ] {
            assert!(!is_unrecoverable(&failure(code)), "{code}");
        }
    }

    #[test]
    fn a_removed_or_replaced_file_is_another_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db");
        std::fs::write(&path, b"one").expect("write");
        let id = FileId::of(&path);
        assert!(id.is_some());
        assert_eq!(FileId::of(&path), id);
        let other = dir.path().join("other");
        std::fs::write(&other, b"two").expect("write");
        std::fs::rename(&other, &path).expect("replace");
        assert_ne!(FileId::of(&path), id);
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(FileId::of(&path), None);
    }
}
