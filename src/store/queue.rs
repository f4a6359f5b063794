//! The bounded queue in front of an engine's writer: the jobs it takes and how a caller
//! waits for one to be committed.
//!
//! Owns [`Job`] and [`Queue`], the same for every engine: a caller waits at most the
//! enqueue timeout for a place (then `Busy`, answered 503), and then for the writer's
//! answer, which comes only after the job's group committed. It must never buffer without
//! bound or answer for the writer.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{AdminWrite, StoreError};
use crate::event::{Committed, EventRecord};

/// One unit of work for a writer.
pub enum Job {
    /// An audit row to append.
    Event(
        Box<EventRecord>,
        oneshot::Sender<Result<Committed, StoreError>>,
    ),
    /// An admin write with its change-log row.
    Admin(Box<AdminWrite>, oneshot::Sender<Result<u64, StoreError>>),
    /// A health probe: a real write committed with the group.
    Probe(oneshot::Sender<Result<(), StoreError>>),
    /// Finish what is queued before it, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// The sending side of a writer's queue.
#[derive(Debug)]
pub struct Queue {
    jobs: mpsc::Sender<Job>,
    enqueue_timeout: Duration,
}

impl Queue {
    /// A queue of `capacity` jobs and the writer's end of it.
    pub fn new(capacity: usize, enqueue_timeout: Duration) -> (Queue, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(capacity);
        (
            Queue {
                jobs,
                enqueue_timeout,
            },
            rx,
        )
    }

    /// Queues a job made with its reply channel, and waits for the writer's answer.
    pub async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
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

    /// Asks the writer to finish what is queued and stop; returns once it has.
    pub async fn shut_down(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Jobs waiting, and how many may wait.
    pub fn depth(&self) -> (usize, usize) {
        let most = self.jobs.max_capacity();
        (most - self.jobs.capacity(), most)
    }
}
