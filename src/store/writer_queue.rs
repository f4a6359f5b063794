//! How full the writer's queue is, for `/metrics`: the jobs waiting for the writer thread
//! and the queue's capacity.
//!
//! Owns only reading the bounded channel's fill. It must never enqueue, dequeue or wait.

use super::Store;

impl Store {
    /// The jobs waiting in the writer's queue now, and how many it holds at most.
    pub fn writer_queue(&self) -> (usize, usize) {
        let max = self.jobs.max_capacity();
        (max.saturating_sub(self.jobs.capacity()), max)
    }
}
