//! Storage: the embedded SQLite audit log, accounts, change log and tokens.
//!
//! Owns the [`Store`] handle. Writes go to the one writer thread (`writer`) through a
//! bounded queue and are answered after their group's commit; reads run on their own
//! read-only connections (`reader`). Nothing outside this module names `rusqlite`; that
//! keeps a PostgreSQL implementation a matter of one more module behind the same calls.

mod admin_write;
pub mod audit;
mod checkpoint;
mod dedupe;
mod export;
mod filter;
pub mod health;
mod keys;
mod reader;
mod schema;
mod seal;
mod sliced;
mod timeline;
mod writer;
mod writer_queue;

pub use admin_write::{AdminWrite, Change};
pub use export::Format as ExportFormat;
pub use reader::{
    AttemptRow, ChangeFilter, ChangeRow, Delivery, EventDetail, EventFilter, EventSummary, Page,
    StoredAccount,
};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::chain;
use crate::config::Storage;
use crate::event::{Committed, EventRecord};
use crate::metrics::Metrics;
use crate::tokens::TokenEntry;

/// A storage failure, mapped to an HTTP status at the edge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be written or read now (locked, full, read-only, I/O error).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The writer's queue stayed full (overload) or the writer stopped.
    #[error("storage busy: {0}")]
    Busy(&'static str),
    /// The row to create exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// The row to change does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// A streamed event, as published after its group committed.
#[derive(Debug, Clone)]
pub struct StreamItem {
    /// The audit seq: the stream's event id.
    pub seq: i64,
    /// The account.
    pub account: String,
    /// The event as JSON (the listing's shape).
    pub data: String,
}

/// The storage handle shared by the servers. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<writer::Job>,
    readers: Arc<reader::Readers>,
    healthy: Arc<AtomicBool>,
    enqueue_timeout: Duration,
    /// How searches by time bound each end of their range (`timeline`).
    bound: timeline::Bound,
    writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    metrics: Arc<Metrics>,
    stream: tokio::sync::broadcast::Sender<Arc<StreamItem>>,
    seal: Arc<seal::SealKey>,
    /// Sender and source keys not yet written in runs, for searches.
    keys: Arc<keys::Keys>,
    /// When the last health probe ran: probes are paced (see `probe`).
    last_probe: Arc<tokio::sync::Mutex<Option<std::time::Instant>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Verifies a database file offline, read-only, without starting a gateway.
pub fn verify_file(
    path: &Path,
    expected_events_head: Option<chain::Hash>,
) -> Result<Vec<audit::ChainReport>, StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "database file {}",
            path.display()
        )));
    }
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    Ok(vec![
        audit::verify(&c, audit::Log::Events, expected_events_head.as_ref())?,
        audit::verify(&c, audit::Log::Changes, None)?,
    ])
}

impl Store {
    /// Opens (creating and migrating as needed) the database and starts the writer thread.
    /// `stream_buffer` is how far a live-stream subscriber may fall behind.
    pub fn open(path: &Path, tuning: &Storage, stream_buffer: usize) -> Result<Store, StoreError> {
        let seal = Arc::new(seal::SealKey::load(path, tuning.secret_key.as_ref())?);
        let mut conn = writer::open_write_connection(path, tuning)?;
        let keys = Arc::new(keys::Keys::load(&conn, keys::RUN_ROWS)?);
        let (dedupe, filter_build) = dedupe::Dedupe::load(&conn, keys::RUN_ROWS)?
            .with_filter(tuning.dedupe_filter_mib as usize * 1024 * 1024);
        let metrics = Arc::new(Metrics::default());
        let checkpoints =
            checkpoint::Checkpoints::start(&mut conn, path, tuning, Arc::clone(&metrics))?;
        let healthy = Arc::new(AtomicBool::new(true));
        let (jobs, rx) = mpsc::channel(tuning.queue_capacity);
        let (stream, _) = tokio::sync::broadcast::channel(stream_buffer.max(1));
        let shared = writer::Shared {
            healthy: Arc::clone(&healthy),
            metrics: Arc::clone(&metrics),
            stream: stream.clone(),
            keys: Arc::clone(&keys),
        };
        let enqueue_timeout = Duration::from_millis(tuning.enqueue_timeout_ms);
        let bound = timeline::Bound::load(&conn, enqueue_timeout)?;
        let handle = writer::spawn(
            conn,
            checkpoints,
            rx,
            tuning.max_batch,
            shared,
            dedupe,
            bound,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        if let Some(build) = filter_build {
            // After the load above: its snapshot holds every id written before open.
            let (path, busy) = (PathBuf::from(path), tuning.busy_timeout_ms);
            // A read connection of its own, read-only: the writer is not held up.
            let started = std::thread::Builder::new()
                .name("hookgate-filter".into())
                .spawn(move || match reader::Readers::new(path, busy).take() {
                    Ok(mut c) => build.run(&mut c),
                    Err(e) => tracing::warn!(error = %e, "cannot read the dedupe table for its filter; every new id is looked up in the table"),
                });
            if let Err(e) = started {
                // The writer sees the build gone and asks the table.
                tracing::warn!(error = %e, "cannot start the dedupe filter's thread");
            }
        }
        Ok(Store {
            jobs,
            readers: Arc::new(reader::Readers::new(
                PathBuf::from(path),
                tuning.busy_timeout_ms,
            )),
            healthy,
            enqueue_timeout,
            bound,
            writer: Arc::new(std::sync::Mutex::new(Some(handle))),
            metrics,
            stream,
            seal,
            keys,
            last_probe: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// The gateway's counters (the writer fills in its part).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Subscribes to streamed events as they commit, in commit order.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<StreamItem>> {
        self.stream.subscribe()
    }

    /// True while the last write batch committed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> writer::Job,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        match tokio::time::timeout(self.enqueue_timeout, self.jobs.send(job(tx))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Busy("the writer has stopped")),
            Err(_) => return Err(StoreError::Busy("the write queue is full")),
        }
        rx.await
            .unwrap_or(Err(StoreError::Busy("the writer stopped before answering")))
    }

    /// Appends one audit row; returns after the row's group is committed to disk.
    pub async fn append(&self, record: EventRecord) -> Result<Committed, StoreError> {
        self.submit(|reply| writer::Job::Event(Box::new(record), reply))
            .await
    }

    /// Applies one admin change (with its change-log row) in the writer's next group;
    /// returns the rows it affected (rows pruned, for a prune).
    pub async fn admin(&self, mut write: AdminWrite) -> Result<u64, StoreError> {
        // Account specs hold signing secrets: they are sealed before they are stored.
        if let AdminWrite::CreateAccount { name, spec, .. }
        | AdminWrite::UpdateAccount { name, spec, .. } = &mut write
        {
            *spec = self.seal.seal(name, spec)?;
        }
        self.submit(|reply| writer::Job::Admin(Box::new(write), reply))
            .await
    }

    /// Runs a real write through the writer (see `health`); a success marks the store
    /// healthy again, so `/readyz` recovers without waiting for traffic.
    ///
    /// Probes run one at a time and at most one per [`health::PROBE_INTERVAL`]: callers
    /// queue, so a flood of `/readyz` during an outage cannot turn into a flood of writes.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let mut last = self.last_probe.lock().await;
        if let Some(wait) = health::wait_before_probe(*last, std::time::Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let result = self.submit(writer::Job::Probe).await;
        *last = Some(std::time::Instant::now());
        result
    }

    /// Every stored account.
    pub async fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        let mut accounts = self.readers.run(reader::accounts).await?;
        for a in &mut accounts {
            a.spec = self.seal.open(&a.name, &a.spec)?;
        }
        Ok(accounts)
    }

    /// Every stored token hash.
    pub async fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        self.readers.run(reader::tokens).await
    }

    /// One page of events, newest first.
    pub async fn events(&self, filter: EventFilter) -> Result<Page<EventSummary>, StoreError> {
        let keys = Arc::clone(&self.keys);
        let bound = self.bound;
        self.readers
            .run(move |c| reader::events(c, &filter, &keys, bound))
            .await
    }

    /// One event with its headers and body.
    pub async fn event(&self, seq: i64) -> Result<Option<EventDetail>, StoreError> {
        self.readers.run(move |c| reader::event(c, seq)).await
    }

    /// Deliveries due at `now`, oldest due first.
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.readers
            .run(move |c| reader::due_deliveries(c, now, limit))
            .await
    }

    /// When the next pending or retrying delivery is due.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.readers.run(reader::next_due).await
    }

    /// Every delivery attempt of one event.
    pub async fn attempts(&self, seq: i64) -> Result<Vec<AttemptRow>, StoreError> {
        self.readers.run(move |c| reader::attempts(c, seq)).await
    }

    /// Streamed events after a seq, oldest first, as (seq, JSON).
    pub async fn streamed_after(
        &self,
        after_seq: i64,
        account: Option<String>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.readers
            .run(move |c| reader::streamed_after(c, after_seq, account.as_deref(), limit))
            .await
    }

    /// One page of the change log, newest first.
    pub async fn changes(&self, filter: ChangeFilter) -> Result<Page<ChangeRow>, StoreError> {
        self.readers.run(move |c| reader::changes(c, &filter)).await
    }

    /// Streams the events matching `filter`, oldest first, as chunks of NDJSON or CSV. The
    /// receiver ends when the export is complete; a failure arrives as an `Err` item last.
    pub fn export(
        &self,
        filter: EventFilter,
        format: ExportFormat,
        include_body: bool,
    ) -> mpsc::Receiver<Result<bytes::Bytes, String>> {
        let (tx, rx) = mpsc::channel(4);
        let readers = Arc::clone(&self.readers);
        let keys = Arc::clone(&self.keys);
        let bound = self.bound;
        tokio::task::spawn_blocking(move || {
            let conn = match readers.take() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "export could not open the database");
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            };
            if let Err(e) = export::run(&conn, (&keys, bound), filter, format, include_body, &tx) {
                tracing::warn!(error = %e, "export stopped early");
                let _ = tx.blocking_send(Err(e.to_string()));
            }
            readers.give_back(conn);
        });
        rx
    }

    /// Verifies both hash chains; `expected_events_head` checks that the events chain still
    /// passes through a head noted earlier.
    pub async fn verify(
        &self,
        expected_events_head: Option<chain::Hash>,
    ) -> Result<Vec<audit::ChainReport>, StoreError> {
        self.readers
            .run(move |c| {
                Ok(vec![
                    audit::verify(c, audit::Log::Events, expected_events_head.as_ref())?,
                    audit::verify(c, audit::Log::Changes, None)?,
                ])
            })
            .await
    }

    /// Asks the writer to finish every queued write and stop, then waits for it.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(writer::Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}
