//! The PostgreSQL engine, for several stateless gateway nodes sharing one database.
//!
//! Owns the only names of `tokio_postgres` and `deadpool_postgres` in the crate. Each node
//! commits in groups (`writer`); every group that writes events first locks the events
//! log's head row, so seqs and chain hashes are assigned in one order across all nodes and
//! that order is the commit order. Notifications (`notify`) carry committed stream events
//! and account or token changes between nodes; outbox deliveries are claimed with a lease
//! (`claims`) so one node sends each at a time. It must never answer a write before its
//! commit, and never keep state that another node needs to see.

mod admin_write;
mod audit;
mod claims;
mod deliveries;
pub(super) mod load;
mod notify;
mod reader;
mod schema;
mod tls;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};

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

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Unavailable(postgres_message(&e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {}", with_causes(&e)))
    }
}

/// An error and the errors beneath it, as one line: a failed TLS handshake says why.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !line.contains(&said) {
            line.push_str(": ");
            line.push_str(&said);
        }
        cause = c.source();
    }
    line
}

/// The schema version this build migrates a database to.
pub fn schema_version() -> i32 {
    schema::latest()
}

/// The server's own message where there is one (it says what is wrong), else the
/// client's.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => format!("PostgreSQL: {}", with_causes(e)),
    }
}

/// True for a database URL (`postgres://` or `postgresql://`), which selects this engine.
pub fn is_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// The URL with any password replaced, for logs and messages.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let shown = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{shown}/{tail}")
}

/// The driver's settings and TLS connector for `url`, or why the URL cannot be used.
fn connection(
    url: &str,
) -> Result<
    (
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    StoreError,
> {
    let (mut config, tls) = tls::connection(url).map_err(|e| {
        StoreError::Unavailable(format!(
            "the database URL {} is not valid: {e}",
            redacted_url(url)
        ))
    })?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("hookgate");
    // Statements are prepared once per connection; each execution is still planned for its
    // own values, so a plan made while a table was small (a scan of `dedupe`) is never kept
    // once the table is large.
    let options = match config.get_options() {
        Some(given) => format!("{given} -c plan_cache_mode=force_custom_plan"),
        None => "-c plan_cache_mode=force_custom_plan".to_owned(),
    };
    config.options(&options);
    Ok((config, tls))
}

/// How long a node's claim on a delivery lasts before another node may take it over.
fn claim_lease(tuning: &Storage) -> Duration {
    Duration::from_secs(tuning.claim_lease_secs.max(1))
}

/// The PostgreSQL engine: a pool, the writer's queue, and the notification listener.
pub struct Postgres {
    pool: Pool,
    queue: Queue,
    healthy: Arc<AtomicBool>,
    /// This node's name in the outbox's claims.
    node: String,
    lease: Duration,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    follower: tokio::task::JoinHandle<()>,
}

/// Opens a pool on `url` (connections are made as they are needed).
fn pool(url: &str, size: usize) -> Result<Pool, StoreError> {
    let (config, tls) = connection(url)?;
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(Duration::from_secs(5)),
            create: Some(Duration::from_secs(5)),
            recycle: Some(Duration::from_secs(5)),
        })
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot make a connection pool: {e}")))
}

/// Creates the schema of the empty database at `url` at version `version` (its first
/// `version` migrations), as a hookgate of that version left it: what an upgrade is
/// tested from.
pub async fn create_at_version(url: &str, version: usize) -> Result<(), StoreError> {
    let pool = pool(url, 1)?;
    let mut client = pool.get().await?;
    schema::migrate_to(&mut client, version).await
}

/// Verifies the chains of the database at `url` without starting a gateway.
pub async fn verify_url(url: &str, expected: Expected) -> Result<Vec<ChainReport>, StoreError> {
    let pool = pool(url, 2)?;
    let client = pool.get().await?;
    audit::verify_both(&**client, expected).await
}

impl Postgres {
    /// Connects, migrates (once, whichever node starts first), and starts this node's
    /// writer and notification listener.
    pub async fn open(
        url: &str,
        tuning: &Storage,
        context: EngineContext,
    ) -> Result<Postgres, StoreError> {
        let pool = pool(url, tuning.pool_size.max(4))?;
        {
            let mut client = pool.get().await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to {}: {}",
                    redacted_url(url),
                    with_causes(&e)
                ))
            })?;
            schema::migrate(&mut client).await?;
        }
        let healthy = Arc::new(AtomicBool::new(true));
        let (queue, rx) = Queue::new(
            tuning.queue_capacity,
            Duration::from_millis(tuning.enqueue_timeout_ms),
        );
        let follower = notify::Follower::start(url, pool.clone(), context.clone()).await?;
        let shared = writer::Shared {
            healthy: Arc::clone(&healthy),
            metrics: Arc::clone(&context.metrics),
            committed: follower.waker(),
        };
        // The writer outlives its panics: the queue stays, and a group that panicked is
        // answered with an error (its replies dropped) before the writer starts again.
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let (max_batch, write_pool) = (tuning.max_batch, pool.clone());
        let unrecoverable = context.unrecoverable.clone();
        let unhealthy = Arc::clone(&healthy);
        let writer = tokio::spawn(crate::restart::restarting(
            "writer",
            move || {
                let (pool, rx, shared) = (write_pool.clone(), Arc::clone(&rx), shared.clone());
                async move {
                    let mut rx = rx.lock().await;
                    writer::run(pool, &mut rx, max_batch, &shared).await;
                }
            },
            move |why| {
                unhealthy.store(false, Ordering::Relaxed);
                unrecoverable.send_replace(Some(why));
            },
        ));
        Ok(Postgres {
            pool,
            queue,
            healthy,
            node: format!("{:016x}", rand::random::<u64>()),
            lease: claim_lease(tuning),
            writer: tokio::sync::Mutex::new(Some(writer)),
            follower: follower.spawn(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

#[async_trait]
impl Engine for Postgres {
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
        reader::accounts(&**self.client().await?).await
    }

    async fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        reader::tokens(&**self.client().await?).await
    }

    async fn events(&self, filter: EventFilter) -> Result<Page<EventSummary>, StoreError> {
        reader::events(&**self.client().await?, &filter).await
    }

    async fn event(&self, seq: i64) -> Result<Option<EventDetail>, StoreError> {
        reader::event(&**self.client().await?, seq).await
    }

    async fn export_page(
        &self,
        filter: EventFilter,
        include_body: bool,
    ) -> Result<Vec<ExportRow>, StoreError> {
        reader::export_page(&**self.client().await?, &filter, include_body).await
    }

    async fn destinations(&self) -> Result<Vec<StoredDestination>, StoreError> {
        deliveries::destinations(&**self.client().await?).await
    }

    async fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        paused: Vec<String>,
        _in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // What is in flight is claimed, and the claim query counts it.
        let until = now.saturating_add(self.lease.as_micros() as i64);
        claims::claim_due(
            &**self.client().await?,
            &self.node,
            now,
            until,
            limit,
            &paused,
            chat_cap,
        )
        .await
    }

    async fn release_deliveries(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        claims::release(&**self.client().await?, &self.node, &ids).await
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        claims::next_due(&**self.client().await?).await
    }

    async fn next_startable(
        &self,
        paused: Vec<String>,
        in_flight: Vec<i64>,
        chat_cap: usize,
    ) -> Result<Option<i64>, StoreError> {
        claims::next_startable(&**self.client().await?, &paused, &in_flight, chat_cap).await
    }

    async fn deliveries_of(&self, seq: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        deliveries::of_event(&**self.client().await?, seq).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        deliveries::stats(&**self.client().await?).await
    }

    async fn streamed_after(
        &self,
        after_seq: i64,
        account: Option<String>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        reader::streamed_after(
            &**self.client().await?,
            after_seq,
            account.as_deref(),
            limit,
        )
        .await
    }

    async fn changes(&self, filter: ChangeFilter) -> Result<Page<ChangeRow>, StoreError> {
        reader::changes(&**self.client().await?, &filter).await
    }

    async fn counts(
        &self,
        by: CountBy,
        since: i64,
        until: i64,
    ) -> Result<Vec<CountRow>, StoreError> {
        reader::counts(&**self.client().await?, by, since, until).await
    }

    async fn verify(&self, expected: Expected) -> Result<Vec<ChainReport>, StoreError> {
        audit::verify_both(&**self.client().await?, expected).await
    }

    async fn heads(&self) -> Result<[(i64, chain::Hash); 2], StoreError> {
        let client = self.client().await?;
        Ok([
            audit::head(&**client, Log::Events).await?,
            audit::head(&**client, Log::Changes).await?,
        ])
    }

    async fn close(&self) {
        self.queue.shut_down().await;
        if let Some(writer) = self.writer.lock().await.take() {
            let _ = writer.await;
        }
        self.follower.abort();
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_engine_and_passwords_never_print() {
        assert!(is_url("postgres://u:p@h:5432/db"));
        assert!(is_url("postgresql://h/db"));
        assert!(!is_url("hookgate.db"));
        assert!(!is_url("/var/lib/postgres://x"));
        assert_eq!(
            redacted_url("postgres://hook:s3cret@db.internal:5432/hookgate"),
            "postgres://hook:***@db.internal:5432/hookgate"
        );
        assert_eq!(
            redacted_url("postgres://hook@127.0.0.1/hg"),
            "postgres://hook@127.0.0.1/hg"
        );
        assert!(!redacted_url("postgres://a:b@c:d@h/x").contains("b@c"));
    }
}
