//! What other nodes committed, heard on a connection of its own: streamed events, published
//! on this node's live stream in commit order, and account or token changes, passed to the
//! gateway so it reloads them.
//!
//! Owns the `LISTEN` connection and the follower task. Writers notify `hookgate_events` and
//! `hookgate_changes` in their transactions (PostgreSQL delivers a notification only when
//! its transaction commits). The follower never trusts notifications alone: it also reads
//! the log once a second and after every reconnect, so a notification lost with a dropped
//! connection delays an event by at most that second and never loses it. It must never
//! publish an event before it is committed, or out of seq order.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use super::reader;
use crate::store::{EngineContext, StoreError, StreamItem};

/// How often the log is read even without a notification.
const POLL: Duration = Duration::from_secs(1);
/// Streamed rows read per statement.
const PAGE: usize = 500;

/// Follows the database for one node.
pub(super) struct Follower {
    url: String,
    pool: Pool,
    context: EngineContext,
    waker: Arc<Notify>,
    /// The last streamed seq published here.
    published: i64,
    /// The change log's head last passed to the gateway.
    changes: i64,
}

impl Follower {
    /// Reads where the logs stand, so that only what commits from now on is published.
    pub(super) async fn start(
        url: &str,
        pool: Pool,
        context: EngineContext,
    ) -> Result<Follower, StoreError> {
        let (published, changes) = {
            let c = pool.get().await?;
            let published: i64 = c
                .query_one(
                    "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM events WHERE streamed = 1",
                    &[],
                )
                .await?
                .get(0);
            let changes: i64 = c
                .query_one("SELECT seq FROM chain_heads WHERE log = 'changes'", &[])
                .await?
                .get(0);
            (published, changes)
        };
        Ok(Follower {
            url: url.to_owned(),
            pool,
            context,
            waker: Arc::new(Notify::new()),
            published,
            changes,
        })
    }

    /// What this node's writer wakes after it commits streamed events.
    pub(super) fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.waker)
    }

    /// Runs the follower until the engine closes, starting it again after a panic from
    /// where it stood (`restart`).
    pub(super) fn spawn(self) -> tokio::task::JoinHandle<()> {
        let unrecoverable = self.context.unrecoverable.clone();
        let follower = Arc::new(tokio::sync::Mutex::new(self));
        tokio::spawn(crate::restart::restarting(
            "notification follower",
            move || {
                let follower = Arc::clone(&follower);
                async move { follower.lock().await.run().await }
            },
            move |why| {
                unrecoverable.send_replace(Some(why));
            },
        ))
    }

    async fn run(&mut self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if let Err(e) = self.listen(&mut backoff).await {
                tracing::warn!(error = %e, "lost the notification connection; reconnecting (the log is read meanwhile)");
            }
            // Meanwhile, keep up by reading the log.
            let until = tokio::time::Instant::now() + backoff;
            while tokio::time::Instant::now() < until {
                tokio::select! {
                    _ = self.waker.notified() => {}
                    _ = tokio::time::sleep_until(until) => {}
                }
                self.catch_up().await;
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Listens until the connection ends; `backoff` starts over once it is listening.
    async fn listen(&mut self, backoff: &mut Duration) -> Result<(), StoreError> {
        let (config, tls) = super::connection(&self.url)?;
        let (client, mut connection) = config.connect(tls).await?;
        // The connection is driven by a task of its own, which passes notifications on; a
        // full channel drops a wake-up, which is harmless: a wake-up reads the whole log.
        let (heard, mut notifications) = tokio::sync::mpsc::channel::<()>(16);
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        let _ = heard.try_send(());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        let listening = client
            .batch_execute("LISTEN hookgate_events; LISTEN hookgate_changes")
            .await;
        if let Err(e) = listening {
            driver.abort();
            return Err(e.into());
        }
        *backoff = Duration::from_millis(200);
        // Whatever committed before the LISTEN took effect is read now.
        self.catch_up().await;
        let mut poll = tokio::time::interval(POLL);
        let ended = loop {
            tokio::select! {
                heard = notifications.recv() => match heard {
                    Some(()) => self.catch_up().await,
                    None => break StoreError::Unavailable("the notification connection closed".into()),
                },
                _ = self.waker.notified() => {
                    if let Err(e) = self.publish().await {
                        tracing::warn!(error = %e, "cannot read streamed events; retrying");
                    }
                }
                _ = poll.tick() => self.catch_up().await,
            }
        };
        driver.abort();
        drop(client);
        Err(ended)
    }

    /// Publishes every streamed event committed since the last one published, and passes
    /// on a change of accounts or tokens.
    async fn catch_up(&mut self) {
        if let Err(e) = self.publish().await {
            tracing::warn!(error = %e, "cannot read streamed events; retrying");
        }
        if let Err(e) = self.follow_changes().await {
            tracing::warn!(error = %e, "cannot read the change log's head; retrying");
        }
    }

    async fn publish(&mut self) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        loop {
            let rows = reader::streamed(&**c, self.published, None, PAGE).await?;
            let full = rows.len() == PAGE;
            for (seq, account, data) in rows {
                self.published = seq;
                // No subscriber is fine: the log is the source of truth.
                let _ = self
                    .context
                    .stream
                    .send(Arc::new(StreamItem { seq, account, data }));
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn follow_changes(&mut self) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        let head: i64 = c
            .query_one("SELECT seq FROM chain_heads WHERE log = 'changes'", &[])
            .await?
            .get(0);
        if head != self.changes {
            self.changes = head;
            self.context.changed.send_replace(head);
        }
        Ok(())
    }
}
