//! The embedded SQLite engine, the default: one database file in WAL mode.
//!
//! Owns the only names of `rusqlite` in the crate. Writes go to the one writer thread
//! (`writer`) through a bounded queue and are answered after their group's commit; reads
//! run on read-only connections of their own (`reader`). Every search is one statement over
//! ordinary indexes (`schema`). It must never answer a write before its commit, and never
//! leave the database file needing its WAL after a graceful stop.

mod admin_write;
mod audit;
mod backup;
mod deliveries;
pub(super) mod dump;
mod export;
mod health;
mod reader;
mod schema;
mod writer;

pub use backup::backup;

/// Creates the database file `path` at schema version `version` (its first `version`
/// migrations), as a hookgate of that version left it: what an upgrade is tested from.
pub fn create_at_version(path: &Path, version: usize) -> Result<(), StoreError> {
    let mut conn = rusqlite::Connection::open(path)?;
    schema::migrate_to(&mut conn, version)?;
    Ok(())
}

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::audit::{ChainReport, Expected, Log};
use super::export::ExportRow;
use super::queue::{Job, Queue};
use super::stats::{CountBy, CountRow};
use super::{
    AdminWrite, ChangeFilter, ChangeRow, Engine, EngineContext, EventDetail, EventFilter,
    EventSummary, Page, StoreError, StoredAccount,
};
use super::{DeliveryRow, DueDelivery, OutboxStats, StoredDestination};
use crate::chain;
use crate::config::Storage;
use crate::event::{Committed, EventRecord};
use crate::tokens::TokenEntry;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// The SQLite engine: the writer's queue and the read connections.
pub struct Sqlite {
    queue: Queue,
    readers: Arc<reader::Readers>,
    healthy: Arc<AtomicBool>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Verifies a database file offline, read-only, without starting a gateway.
pub fn verify_file(path: &Path, expected: Expected) -> Result<Vec<ChainReport>, StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "database file {}",
            path.display()
        )));
    }
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    verify_both(&c, expected)
}

fn verify_both(
    c: &rusqlite::Connection,
    expected: Expected,
) -> Result<Vec<ChainReport>, StoreError> {
    Ok(vec![
        audit::verify(c, Log::Events, expected.events)?,
        audit::verify(c, Log::Changes, expected.changes)?,
    ])
}

impl Sqlite {
    /// Opens (creating and migrating as needed) the database and starts the writer thread.
    pub fn open(
        path: &Path,
        tuning: &Storage,
        context: EngineContext,
    ) -> Result<Sqlite, StoreError> {
        let conn = writer::open_write_connection(path, tuning)?;
        let healthy = Arc::new(AtomicBool::new(true));
        let (queue, rx) = Queue::new(
            tuning.queue_capacity,
            Duration::from_millis(tuning.enqueue_timeout_ms),
        );
        let shared = writer::Shared {
            healthy: Arc::clone(&healthy),
            metrics: context.metrics,
            stream: context.stream,
            unrecoverable: context.unrecoverable,
            path: path.to_owned(),
            tuning: tuning.clone(),
        };
        let handle = writer::spawn(conn, rx, tuning.max_batch, shared)?;
        Ok(Sqlite {
            queue,
            readers: Arc::new(reader::Readers::new(
                PathBuf::from(path),
                tuning.busy_timeout_ms,
            )),
            healthy,
            writer: std::sync::Mutex::new(Some(handle)),
        })
    }
}

#[async_trait]
impl Engine for Sqlite {
    async fn append(&self, record: EventRecord) -> Result<Committed, StoreError> {
        self.queue
            .submit(|reply| Job::Event(Box::new(record), reply))
            .await
    }

    async fn admin(&self, write: AdminWrite) -> Result<u64, StoreError> {
        self.queue
            .submit(|reply| Job::Admin(Box::new(write), reply))
            .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.queue.submit(Job::Probe).await
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn queue_depth(&self) -> (usize, usize) {
        self.queue.depth()
    }

    async fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        self.readers.run(reader::accounts).await
    }

    async fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        self.readers.run(reader::tokens).await
    }

    async fn events(&self, filter: EventFilter) -> Result<Page<EventSummary>, StoreError> {
        self.readers.run(move |c| reader::events(c, &filter)).await
    }

    async fn event(&self, seq: i64) -> Result<Option<EventDetail>, StoreError> {
        self.readers.run(move |c| reader::event(c, seq)).await
    }

    async fn export_page(
        &self,
        filter: EventFilter,
        include_body: bool,
    ) -> Result<Vec<ExportRow>, StoreError> {
        self.readers
            .run(move |c| export::page(c, &filter, include_body))
            .await
    }

    async fn destinations(&self) -> Result<Vec<StoredDestination>, StoreError> {
        self.readers.run(deliveries::destinations).await
    }

    async fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.readers
            .run(move |c| deliveries::due(c, now, limit, &paused, &in_flight, chat_cap))
            .await
    }

    async fn release_deliveries(&self, _ids: Vec<i64>) -> Result<(), StoreError> {
        // One node: nothing is claimed.
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.readers.run(deliveries::next_due).await
    }

    async fn next_startable(
        &self,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Option<i64>, StoreError> {
        self.readers
            .run(move |c| deliveries::next_startable(c, &paused, &in_flight, chat_cap))
            .await
    }

    async fn deliveries_of(&self, seq: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        self.readers
            .run(move |c| deliveries::of_event(c, seq))
            .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.readers.run(deliveries::stats).await
    }

    async fn streamed_after(
        &self,
        after_seq: i64,
        account: Option<String>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.readers
            .run(move |c| reader::streamed_after(c, after_seq, account.as_deref(), limit))
            .await
    }

    async fn changes(&self, filter: ChangeFilter) -> Result<Page<ChangeRow>, StoreError> {
        self.readers.run(move |c| reader::changes(c, &filter)).await
    }

    async fn counts(
        &self,
        by: CountBy,
        since: i64,
        until: i64,
    ) -> Result<Vec<CountRow>, StoreError> {
        self.readers
            .run(move |c| reader::counts(c, by, since, until))
            .await
    }

    async fn verify(&self, expected: Expected) -> Result<Vec<ChainReport>, StoreError> {
        self.readers.run(move |c| verify_both(c, expected)).await
    }

    async fn heads(&self) -> Result<[(i64, chain::Hash); 2], StoreError> {
        self.readers
            .run(|c| Ok([audit::head(c, Log::Events)?, audit::head(c, Log::Changes)?]))
            .await
    }

    async fn close(&self) {
        self.queue.shut_down().await;
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // Idle read connections go too, so nothing holds the database open.
        self.readers.close();
    }
}
