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
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::schema;
use crate::config::Storage;
use crate::event::{Committed, EventRecord, Status};
use crate::tokens::TokenEntry;

/// One unit of work for the writer.
pub(super) enum Job {
    Event(
        Box<EventRecord>,
        oneshot::Sender<Result<Committed, StoreError>>,
    ),
    Admin(Box<AdminWrite>, oneshot::Sender<Result<(), StoreError>>),
    /// A health probe: a real write (see `super::health`) committed with the group.
    Probe(oneshot::Sender<Result<(), StoreError>>),
    Shutdown(oneshot::Sender<()>),
}

/// A change-log row: who did what to which account, and when.
#[derive(Debug, Clone)]
pub struct Change {
    /// When, in microseconds since the epoch.
    pub at: i64,
    /// The token name (with its role) that made the change.
    pub actor: String,
    /// What was done: `account.created`, `account.updated`, `account.deleted`, ...
    pub action: String,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Secret-free JSON detail.
    pub detail: String,
}

/// An admin write, always together with its change-log row.
#[derive(Debug, Clone)]
pub enum AdminWrite {
    /// Creates an account; fails with `Conflict` when the name is taken.
    CreateAccount {
        /// The name.
        name: String,
        /// The stored spec JSON (secrets in clear).
        spec: String,
        /// The change-log row.
        change: Change,
    },
    /// Replaces an account's spec and listening flag; fails with `NotFound`.
    UpdateAccount {
        /// The name.
        name: String,
        /// The stored spec JSON (secrets in clear).
        spec: String,
        /// Whether the listener is on.
        listening: bool,
        /// The change-log row.
        change: Change,
    },
    /// Deletes an account (its audit rows stay); fails with `NotFound`.
    DeleteAccount {
        /// The name.
        name: String,
        /// The change-log row.
        change: Change,
    },
    /// Stores a token's hash.
    AddToken {
        /// The token.
        entry: TokenEntry,
        /// The change-log row.
        change: Change,
    },
}

/// Opens the write connection with the pragmas durability depends on, and migrates.
pub(super) fn open_write_connection(
    path: &Path,
    tuning: &Storage,
) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_millis(tuning.busy_timeout_ms))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(32);
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Starts the writer thread.
pub(super) fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    healthy: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hookgate-writer".into())
        .spawn(move || run(conn, rx, max_batch, healthy))
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    healthy: Arc<AtomicBool>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let stop = commit_batch(&mut conn, &mut batch, &healthy);
        if let Some(done) = stop {
            let _ = done.send(());
            return;
        }
    }
}

/// What each job will be answered, held until the commit decides.
enum Pending {
    Event(
        oneshot::Sender<Result<Committed, StoreError>>,
        Result<Committed, StoreError>,
    ),
    Admin(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

/// Commits one group and answers its jobs. Returns the shutdown reply if one was queued;
/// the jobs before it are committed first, and the queue is closed for the rest.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    healthy: &AtomicBool,
) -> Option<oneshot::Sender<()>> {
    let mut shutdown = None;
    let mut pending = Vec::with_capacity(batch.len());
    let result = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in batch.drain(..) {
            match job {
                Job::Event(record, reply) => {
                    let outcome = all_or_nothing(&tx, |tx| insert_event(tx, &record));
                    pending.push(Pending::Event(reply, outcome));
                }
                Job::Admin(write, reply) => {
                    let outcome = apply_admin(&mut tx, &write);
                    pending.push(Pending::Admin(reply, outcome));
                }
                Job::Probe(reply) => {
                    let outcome = super::health::probe_write(&tx);
                    pending.push(Pending::Admin(reply, outcome));
                }
                Job::Shutdown(reply) => shutdown = Some(reply),
            }
        }
        tx.commit()
    })();
    // Jobs not reached (the transaction failed to begin) are answered with the error.
    for job in batch.drain(..) {
        let err = StoreError::Unavailable(match &result {
            Err(e) => e.to_string(),
            Ok(()) => "the write group ended early".into(),
        });
        match job {
            Job::Event(_, reply) => pending.push(Pending::Event(reply, Err(err))),
            Job::Admin(_, reply) | Job::Probe(reply) => {
                pending.push(Pending::Admin(reply, Err(err)))
            }
            Job::Shutdown(reply) => shutdown = Some(reply),
        }
    }
    match result {
        Ok(()) => {
            healthy.store(true, Ordering::Relaxed);
            for p in pending {
                match p {
                    Pending::Event(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                    Pending::Admin(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
        Err(e) => {
            healthy.store(false, Ordering::Relaxed);
            tracing::error!(error = %e, "write batch failed; answering 503 for its requests");
            let err = StoreError::Unavailable(e.to_string());
            for p in pending {
                match p {
                    Pending::Event(reply, _) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                    Pending::Admin(reply, _) => {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
    }
    shutdown
}

/// Runs `write` inside a savepoint: when it fails half-way (its event row written, its
/// dedupe row not), none of it stays in the group's commit, so a request answered 503
/// leaves nothing behind that a retry could collide with.
fn all_or_nothing<T>(
    tx: &rusqlite::Transaction<'_>,
    write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    tx.execute_batch("SAVEPOINT one_event")?;
    match write(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE one_event")?;
            Ok(v)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO one_event; RELEASE one_event")?;
            Err(StoreError::from(e))
        }
    }
}

fn insert_event(tx: &rusqlite::Transaction<'_>, r: &EventRecord) -> rusqlite::Result<Committed> {
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
    tx.prepare_cached(
        "INSERT INTO events (received_at, account, status, reason, detail, event_id, event_type,
            sender, source, params, method, path, query, remote_addr, headers, content_type,
            body, body_size, body_sha256, body_truncated, handle_micros)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        r.received_at,
        r.account,
        status.as_str(),
        r.reason.map(|x| x.as_str()),
        r.detail,
        r.extracted.event_id,
        r.extracted.event_type,
        r.extracted.sender,
        r.extracted.source,
        r.extracted.params,
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
    ])?;
    let seq = tx.last_insert_rowid();
    if status == Status::Accepted
        && let Some(id) = &r.extracted.event_id
    {
        tx.prepare_cached("INSERT INTO dedupe (account, event_id, seq) VALUES (?1, ?2, ?3)")?
            .execute(params![r.account, id, seq])?;
    }
    Ok(Committed {
        seq,
        status,
        original_seq,
    })
}

/// Applies an admin write inside a savepoint, so a refused write leaves no trace while the
/// rest of the group still commits.
fn apply_admin(tx: &mut rusqlite::Transaction<'_>, write: &AdminWrite) -> Result<(), StoreError> {
    let mut sp = tx.savepoint()?;
    let result = apply_admin_inner(&sp, write);
    if result.is_ok() {
        sp.commit()?;
    } else {
        sp.rollback()?;
        sp.commit()?;
    }
    result
}

fn apply_admin_inner(tx: &rusqlite::Savepoint<'_>, write: &AdminWrite) -> Result<(), StoreError> {
    let change = match write {
        AdminWrite::CreateAccount { name, spec, change } => {
            let n = tx.execute(
                "INSERT INTO accounts (name, spec, listening, created_at, updated_at)
                 VALUES (?1, ?2, 0, ?3, ?3) ON CONFLICT(name) DO NOTHING",
                params![name, spec, change.at],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("account {name:?}")));
            }
            change
        }
        AdminWrite::UpdateAccount {
            name,
            spec,
            listening,
            change,
        } => {
            let n = tx.execute(
                "UPDATE accounts SET spec = ?2, listening = ?3, updated_at = ?4 WHERE name = ?1",
                params![name, spec, listening, change.at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {name:?}")));
            }
            change
        }
        AdminWrite::DeleteAccount { name, change } => {
            let n = tx.execute("DELETE FROM accounts WHERE name = ?1", params![name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {name:?}")));
            }
            change
        }
        AdminWrite::AddToken { entry, change } => {
            tx.execute(
                "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET role = excluded.role, hash = excluded.hash",
                params![entry.name, entry.role.as_str(), &entry.hash[..], change.at],
            )?;
            change
        }
    };
    tx.execute(
        "INSERT INTO changes (at, actor, action, account, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            change.at,
            change.actor,
            change.action,
            change.account,
            change.detail
        ],
    )?;
    Ok(())
}
