//! Storage: the seam between the gateway and its storage engines.
//!
//! Owns the [`Engine`] trait every engine implements, the engine-neutral rows, filters and
//! writes (`rows`, `write`), the audit chains' report (`audit`), the export formats
//! (`export`), and [`Store`], the handle the gateway holds. `Store` keeps what belongs to
//! the gateway and not to an engine: the counters, the live-stream broadcast and the key
//! that seals account specs at rest. Nothing here names a database driver; each engine
//! lives in a module of its own (`sqlite`) and nothing outside it names its driver.

pub mod anchoring;
pub mod audit;
pub mod chained;
pub mod dedupe;
pub mod export;
pub mod migrate;
pub mod postgres;
pub mod query;
pub mod queue;
pub mod rows;
pub mod sqlite;
pub mod stats;
pub mod write;

pub use export::Format as ExportFormat;
pub use rows::{
    AttemptRow, ChangeFilter, ChangeRow, Delivery, DeliveryAttemptRow, DeliveryRow, DueDelivery,
    EventDetail, EventFilter, EventSummary, OutboxStats, Page, RedriveFilter, StoredAccount,
    StoredDestination, StreamItem,
};
pub use write::{AdminWrite, Change, DestinationWrite};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, watch};

use crate::chain;
use crate::config::Storage;
use crate::event::{Committed, EventRecord};
use crate::metrics::Metrics;
use crate::seal::SealKey;
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

/// What the gateway lends an engine when it opens it: its counters, and the broadcast that
/// streamed events are published on after their commit, in commit order.
#[derive(Clone)]
pub struct EngineContext {
    /// The gateway's counters; an engine fills in what its writes did.
    pub metrics: Arc<Metrics>,
    /// Where an engine publishes each streamed event once it is committed.
    pub stream: broadcast::Sender<Arc<StreamItem>>,
    /// Where an engine says that accounts or tokens were changed by another gateway node
    /// (the change log's head); the gateway then reloads them.
    pub changed: watch::Sender<i64>,
    /// Where an engine says that it cannot write again by itself (the database file gone
    /// or corrupt); the gateway then stops, to be restarted by its supervisor.
    pub unrecoverable: watch::Sender<Option<String>>,
}

/// A storage engine: everything the gateway, forwarding, the CLI and the audit code may ask
/// of storage.
///
/// Every engine keeps these promises: a write is answered only after it is durably
/// committed; every event row is chained to the one before it in one chain per log; an
/// `event_id` is accepted at most once per account; account specs are stored exactly as
/// given (the gateway seals them first).
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Appends one audit row, deciding `duplicate`; returns after its commit.
    async fn append(&self, record: EventRecord) -> Result<Committed, StoreError>;
    /// Applies one admin write with its change-log row; returns the rows it affected.
    async fn admin(&self, write: AdminWrite) -> Result<u64, StoreError>;
    /// Runs one real write that proves the database takes commits.
    async fn probe(&self) -> Result<(), StoreError>;
    /// True while the last write committed.
    fn is_healthy(&self) -> bool;
    /// Writes waiting in this node's writer queue, and the queue's capacity.
    fn queue_depth(&self) -> (usize, usize);
    /// Every stored account, specs as stored (sealed).
    async fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError>;
    /// Every stored token hash.
    async fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError>;
    /// One page of events in the filter's order.
    async fn events(&self, filter: EventFilter) -> Result<Page<EventSummary>, StoreError>;
    /// One event with its headers and body.
    async fn event(&self, seq: i64) -> Result<Option<EventDetail>, StoreError>;
    /// Up to `filter.limit + 1` export rows in the filter's order (`export` pages them).
    async fn export_page(
        &self,
        filter: EventFilter,
        include_body: bool,
    ) -> Result<Vec<export::ExportRow>, StoreError>;
    /// Every destination, keys as stored (sealed).
    async fn destinations(&self) -> Result<Vec<StoredDestination>, StoreError>;
    /// Deliveries due at `now`, of both kinds: per destination (per account for the chat
    /// destination) the oldest by seq, as many as its `max_in_flight` (`chat_cap` for
    /// chat messages; 0 takes none) less those in flight; none of a destination in
    /// `paused` (`account/name`) nor a delivery in `in_flight`. On an engine shared by
    /// several nodes each is claimed for this node.
    async fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Gives back claims on deliveries this node took but will not attempt now.
    async fn release_deliveries(&self, ids: Vec<i64>) -> Result<(), StoreError>;
    /// When the next pending or retrying delivery is due (or its claim runs out).
    async fn next_due(&self) -> Result<Option<i64>, StoreError>;
    /// When the next delivery the worker could start is due: as `due_deliveries` chooses
    /// them without the per-destination cap (none of a destination in `paused`, none in
    /// `in_flight`, none to a destination no longer stored, chat messages only when
    /// `chat_cap` > 0; on an engine shared by several nodes, another node's claim counts
    /// from when it runs out). A time already past means deliveries are due but wait for
    /// an attempt in flight.
    async fn next_startable(
        &self,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Option<i64>, StoreError>;
    /// Every delivery of one event (its chat message included), with their attempts.
    async fn deliveries_of(&self, seq: i64) -> Result<Vec<DeliveryRow>, StoreError>;
    /// The outbox's backlog, by kind.
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
    /// Streamed events after a seq, oldest first, as (seq, JSON).
    async fn streamed_after(
        &self,
        after_seq: i64,
        account: Option<String>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError>;
    /// One page of the change log, newest first.
    async fn changes(&self, filter: ChangeFilter) -> Result<Page<ChangeRow>, StoreError>;
    /// Exact counts of the events received in `[since, until)` (microseconds), grouped
    /// `by` ([`stats::count_sql`]).
    async fn counts(
        &self,
        by: stats::CountBy,
        since: i64,
        until: i64,
    ) -> Result<Vec<stats::CountRow>, StoreError>;
    /// Verifies both hash chains, events first.
    async fn verify(
        &self,
        expected: audit::Expected,
    ) -> Result<Vec<audit::ChainReport>, StoreError>;
    /// The last row of each log: (seq, hash), events first; (0, genesis) for an empty log.
    async fn heads(&self) -> Result<[(i64, chain::Hash); 2], StoreError>;
    /// Finishes every queued write and stops; the engine's files are complete afterwards.
    async fn close(&self);
}

/// The least time between two health probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// How long to wait before the next probe, given when the last one ran.
fn wait_before_probe(last: Option<Instant>, now: Instant) -> Option<Duration> {
    let next = last? + PROBE_INTERVAL;
    (next > now).then(|| next - now)
}

/// The storage handle the gateway shares: an engine, and what the gateway keeps beside it.
/// Cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    stream: broadcast::Sender<Arc<StreamItem>>,
    changed: watch::Sender<i64>,
    unrecoverable: watch::Sender<Option<String>>,
    seal: Arc<SealKey>,
    /// When the last health probe ran: probes are paced (see `probe`).
    last_probe: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Verifies a SQLite database file offline, read-only, without starting a gateway.
pub fn verify_file(
    path: &Path,
    expected: impl Into<audit::Expected>,
) -> Result<Vec<audit::ChainReport>, StoreError> {
    sqlite::verify_file(path, expected.into())
}

/// The PostgreSQL URL a database setting holds, if it is one.
pub fn postgres_url(database: &Path) -> Option<&str> {
    database.to_str().filter(|d| postgres::is_url(d))
}

/// The database setting as it may be shown: a URL's password is masked.
pub fn shown(database: &Path) -> String {
    match postgres_url(database) {
        Some(url) => postgres::redacted_url(url),
        None => database.display().to_string(),
    }
}

/// Verifies a database offline, read-only, without starting a gateway: a SQLite file, or a
/// PostgreSQL database by its URL.
pub async fn verify_database(
    database: &Path,
    expected: audit::Expected,
) -> Result<Vec<audit::ChainReport>, StoreError> {
    match postgres_url(database) {
        Some(url) => postgres::verify_url(url, expected).await,
        None => {
            let path = database.to_owned();
            tokio::task::spawn_blocking(move || sqlite::verify_file(&path, expected))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
        }
    }
}

/// Copies a live SQLite database into `to` with SQLite's online backup: a consistent
/// snapshot, taken while a gateway may be writing. Refuses to overwrite an existing file.
pub fn backup_file(from: &Path, to: &Path) -> Result<u64, StoreError> {
    sqlite::backup(from, to)
}

impl Store {
    /// Opens (creating and migrating as needed) the database `database` names — a
    /// `postgres://` URL, or else a SQLite file — and starts its engine. `stream_buffer` is
    /// how far a live-stream subscriber may fall behind.
    pub async fn open(
        database: &Path,
        tuning: &Storage,
        stream_buffer: usize,
    ) -> Result<Store, StoreError> {
        let metrics = Arc::new(Metrics::default());
        let (stream, _) = broadcast::channel(stream_buffer.max(1));
        let (changed, _) = watch::channel(0);
        let (unrecoverable, _) = watch::channel(None);
        let context = EngineContext {
            metrics: Arc::clone(&metrics),
            stream: stream.clone(),
            changed: changed.clone(),
            unrecoverable: unrecoverable.clone(),
        };
        let (engine, seal): (Arc<dyn Engine>, SealKey) = match postgres_url(database) {
            Some(url) => {
                // Every node must open what every other node sealed: the key is configured,
                // never a file beside one node's database.
                let Some(key) = tuning.secret_key.as_ref() else {
                    return Err(StoreError::Unavailable(
                        "HOOKGATE_SECRET_KEY is required with a PostgreSQL database: every gateway node needs the same key (base64 of 32 random bytes, e.g. from `openssl rand -base64 32`) to open the accounts the others stored".into(),
                    ));
                };
                let seal = SealKey::from_configured(key)?;
                (
                    Arc::new(postgres::Postgres::open(url, tuning, context).await?),
                    seal,
                )
            }
            None => {
                let seal = SealKey::load(database, tuning.secret_key.as_ref())?;
                let (path, tuning) = (database.to_owned(), tuning.clone());
                let engine = tokio::task::spawn_blocking(move || {
                    sqlite::Sqlite::open(&path, &tuning, context)
                })
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))??;
                (Arc::new(engine), seal)
            }
        };
        let store = Store {
            engine,
            metrics,
            stream,
            changed,
            unrecoverable,
            seal: Arc::new(seal),
            last_probe: Arc::new(tokio::sync::Mutex::new(None)),
        };
        store.anchor().await?;
        Ok(store)
    }

    /// Set when the engine cannot write again by itself: the reason.
    pub fn unrecoverable(&self) -> watch::Receiver<Option<String>> {
        self.unrecoverable.subscribe()
    }

    /// Changes to accounts or tokens made by other gateway nodes: the value is the change
    /// log's head when they were noticed. It never changes with one node alone.
    pub fn changes_by_others(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }

    /// The gateway's counters (the engine fills in its part).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Subscribes to streamed events as they commit, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamItem>> {
        self.stream.subscribe()
    }

    /// True while the last write committed.
    pub fn is_healthy(&self) -> bool {
        self.engine.is_healthy()
    }

    /// Writes waiting for the engine's writer, and how many may wait.
    pub fn queue_depth(&self) -> (usize, usize) {
        self.engine.queue_depth()
    }

    /// Appends one audit row; returns after the row is committed.
    pub async fn append(&self, record: EventRecord) -> Result<Committed, StoreError> {
        self.engine.append(record).await
    }

    /// Applies one admin change (with its change-log row); returns the rows it affected
    /// (rows pruned, for a prune).
    pub async fn admin(&self, mut write: AdminWrite) -> Result<u64, StoreError> {
        // Account specs hold signing secrets: they are sealed before they are stored.
        if let AdminWrite::CreateAccount { name, spec, .. }
        | AdminWrite::UpdateAccount { name, spec, .. } = &mut write
        {
            *spec = self.seal.seal(name, spec)?;
        }
        // So are a destination's signing keys.
        if let AdminWrite::Destination(
            DestinationWrite::Create { row, .. } | DestinationWrite::Update { row, .. },
        ) = &mut write
        {
            row.keys = self.seal.seal(&destination_seal_name(row), &row.keys)?;
        }
        self.engine.admin(write).await
    }

    /// Every destination, keys opened.
    pub async fn destinations(&self) -> Result<Vec<StoredDestination>, StoreError> {
        let mut all = self.engine.destinations().await?;
        for d in &mut all {
            d.keys = self.seal.open(&destination_seal_name(d), &d.keys)?;
        }
        Ok(all)
    }

    /// Deliveries due at `now`, of both kinds (see [`Engine::due_deliveries`]).
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.engine
            .due_deliveries(now, limit, paused, in_flight, chat_cap)
            .await
    }

    /// Gives back claims on deliveries this node will not attempt now.
    pub async fn release_deliveries(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.engine.release_deliveries(ids).await
    }

    /// When the next pending or retrying delivery is due.
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.engine.next_due().await
    }

    /// When the next delivery the worker could start is due (see
    /// [`Engine::next_startable`]).
    pub async fn next_startable(
        &self,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Option<i64>, StoreError> {
        self.engine
            .next_startable(paused, in_flight, chat_cap)
            .await
    }

    /// Every delivery of one event (its chat message included), with their attempts.
    pub async fn deliveries_of(&self, seq: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        self.engine.deliveries_of(seq).await
    }

    /// The outbox's backlog, by kind.
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.engine.outbox_stats().await
    }

    /// Runs a real write through the engine; a success marks the store healthy again, so
    /// `/readyz` recovers without waiting for traffic.
    ///
    /// Probes run one at a time and at most one per [`PROBE_INTERVAL`]: callers queue, so a
    /// flood of `/readyz` during an outage cannot turn into a flood of writes.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let mut last = self.last_probe.lock().await;
        if let Some(wait) = wait_before_probe(*last, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let result = self.engine.probe().await;
        *last = Some(Instant::now());
        result
    }

    /// Every stored account, specs opened.
    pub async fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        let mut accounts = self.engine.accounts().await?;
        for a in &mut accounts {
            a.spec = self.seal.open(&a.name, &a.spec)?;
        }
        Ok(accounts)
    }

    /// Every stored token hash.
    pub async fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        self.engine.tokens().await
    }

    /// One page of events, newest first.
    pub async fn events(&self, filter: EventFilter) -> Result<Page<EventSummary>, StoreError> {
        self.engine.events(filter).await
    }

    /// One event with its headers and body.
    pub async fn event(&self, seq: i64) -> Result<Option<EventDetail>, StoreError> {
        self.engine.event(seq).await
    }

    /// Streamed events after a seq, oldest first, as (seq, JSON).
    pub async fn streamed_after(
        &self,
        after_seq: i64,
        account: Option<String>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.engine.streamed_after(after_seq, account, limit).await
    }

    /// Exact counts of the events received in `[since, until)`, grouped `by`.
    pub async fn counts(
        &self,
        by: stats::CountBy,
        since: i64,
        until: i64,
    ) -> Result<Vec<stats::CountRow>, StoreError> {
        self.engine.counts(by, since, until).await
    }

    /// One page of the change log, newest first.
    pub async fn changes(&self, filter: ChangeFilter) -> Result<Page<ChangeRow>, StoreError> {
        self.engine.changes(filter).await
    }

    /// Streams the events matching `filter`, oldest first, as chunks of NDJSON or CSV. The
    /// receiver ends when the export is complete; a failure arrives as an `Err` item last.
    pub fn export(
        &self,
        filter: EventFilter,
        format: ExportFormat,
        include_body: bool,
    ) -> mpsc::Receiver<Result<bytes::Bytes, String>> {
        export::stream(Arc::clone(&self.engine), filter, format, include_body)
    }

    /// Verifies both hash chains; `expected_events_head` checks that the events chain still
    /// passes through a head noted earlier.
    pub async fn verify(
        &self,
        expected: audit::Expected,
    ) -> Result<Vec<audit::ChainReport>, StoreError> {
        let mut reports = self.engine.verify(expected).await?;
        anchoring::check(&mut reports, Some(&self.audit_key().public()));
        Ok(reports)
    }

    /// The key that signs checkpoints, the anchor row and heads.
    pub fn audit_key(&self) -> Arc<crate::anchor::AuditKey> {
        self.seal.audit_key()
    }

    /// Both logs' heads, signed now: the file an auditor keeps.
    pub async fn signed_heads(&self) -> Result<crate::anchor::HeadFile, StoreError> {
        let key = self.audit_key();
        let at = crate::clock::now_micros();
        let [events, changes] = self.engine.heads().await?;
        Ok(crate::anchor::HeadFile {
            public_key: key.public_hex(),
            heads: vec![
                key.sign_head("events", events.0, &events.1, at),
                key.sign_head("changes", changes.0, &changes.1, at),
            ],
        })
    }

    /// Writes the change log's signed anchor row when it has none (a new database, or one
    /// from before anchoring), so a change log deleted whole no longer verifies.
    async fn anchor(&self) -> Result<(), StoreError> {
        let anchored = self
            .engine
            .changes(ChangeFilter {
                action: Some("audit.anchored".into()),
                limit: 1,
                ..ChangeFilter::default()
            })
            .await?;
        if !anchored.items.is_empty() {
            return Ok(());
        }
        let key = self.audit_key();
        let at = crate::clock::now_micros();
        self.engine
            .admin(AdminWrite::Anchor {
                change: Change {
                    at,
                    actor: "hookgate:start".into(),
                    action: "audit.anchored".into(),
                    account: None,
                    detail: serde_json::json!({"public_key": key.public_hex(),
                        "signature": hex::encode(key.sign_anchor(at))})
                    .to_string(),
                },
            })
            .await
            .map(|_| ())
    }

    /// Finishes every queued write and stops the engine.
    pub async fn close(&self) {
        self.engine.close().await;
    }
}

/// The name a destination's keys are sealed under (bound to it: keys moved to another
/// row do not open).
fn destination_seal_name(d: &StoredDestination) -> String {
    format!("destination:{}/{}", d.account, d.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_paced() {
        let now = Instant::now();
        assert_eq!(wait_before_probe(None, now), None);
        assert_eq!(
            wait_before_probe(Some(now), now + Duration::from_millis(50)),
            Some(Duration::from_millis(150))
        );
        assert_eq!(wait_before_probe(Some(now), now + PROBE_INTERVAL), None);
    }
}
