//! WAL checkpoints off the writer's path.
//!
//! A checkpoint copies committed WAL frames into the database file and fsyncs it. Inside
//! the writer it is a pause in front of every waiting request; here a thread with its own
//! connection copies the frames while the writer goes on committing. Frames committed
//! during a pass are left for the next one, so passes shrink; when few are left, the writer
//! copies them itself, and its next transaction starts the WAL over from its beginning
//! (SQLite restarts the WAL only when every frame is in the database file). Without that
//! last step the WAL would grow without end under steady load, and appending to a growing
//! file costs more than overwriting one (BENCHMARKS.md).
//!
//! Owns the checkpointer thread and the writer's decision of when to checkpoint. It never
//! writes a row: a checkpoint moves bytes that the WAL already holds durably, so a crash at
//! any point leaves SQLite's own recovery to finish or redo it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

use super::StoreError;
use crate::config::Storage;
use crate::metrics::Metrics;

/// The most frames the writer copies itself to finish a round.
const FINISH_FRAMES: i64 = 64;

/// A pass's result while none has finished since the last request.
const RUNNING: i64 = -1;

/// What the writer holds: when to start a pass, and when to finish a round itself.
pub(super) struct Checkpoints {
    /// WAL frames at which a round starts (`storage.checkpoint_pages`).
    threshold: i64,
    /// The WAL's frame count after the last commit, set by the writer's WAL hook.
    frames: Arc<AtomicI64>,
    /// Frames backfilled by the last finished pass, or [`RUNNING`].
    done: Arc<AtomicI64>,
    running: bool,
    metrics: Arc<Metrics>,
    request: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    /// Installs the WAL hook on the writer's connection (which turns off SQLite's own
    /// automatic checkpoint, itself a WAL hook) and starts the checkpointer thread on a
    /// connection of its own to the database at `path`.
    pub(super) fn start(
        writer: &mut Connection,
        path: &Path,
        tuning: &Storage,
        metrics: Arc<Metrics>,
    ) -> Result<Checkpoints, StoreError> {
        let checkpointer = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        checkpointer.busy_timeout(Duration::from_millis(tuning.busy_timeout_ms))?;
        // A checkpoint fsyncs the WAL before it copies and the database file after.
        checkpointer.pragma_update(None, "synchronous", "FULL")?;
        let frames = Arc::new(AtomicI64::new(0));
        let seen = Arc::clone(&frames);
        writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            seen.store(i64::from(pages), Ordering::Relaxed);
            Ok(())
        }))?;
        let done = Arc::new(AtomicI64::new(RUNNING));
        let (request, requests) = mpsc::channel::<()>();
        let (published, counted) = (Arc::clone(&done), Arc::clone(&metrics));
        let thread = std::thread::Builder::new()
            .name("hookgate-checkpoint".into())
            .spawn(move || run(&checkpointer, &requests, &published, &counted))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpoints {
            threshold: i64::from(tuning.checkpoint_pages.max(1)),
            frames,
            done,
            running: false,
            metrics,
            request: Some(request),
            thread: Some(thread),
        })
    }

    /// Called by the writer after each group is committed and answered: starts a pass
    /// when the WAL has grown past the threshold, and finishes a round when a pass has
    /// left little behind.
    pub(super) fn after_commit(&mut self, writer: &Connection) {
        let frames = self.frames.load(Ordering::Relaxed);
        if self.running {
            let backfilled = self.done.load(Ordering::Acquire);
            if backfilled == RUNNING {
                return;
            }
            self.running = false;
            let left = frames - backfilled;
            // When passes cannot catch up (a long reader holds frames back, or the disk
            // is slower than the writer), the writer checkpoints itself, as SQLite would.
            if left <= FINISH_FRAMES.min(self.threshold) || frames >= 4 * self.threshold {
                let started = Instant::now();
                if let Err(e) = writer.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                    tracing::warn!(error = %e, "checkpoint failed; it is retried");
                }
                self.metrics
                    .record_checkpoint(true, started.elapsed().as_micros() as u64);
                return;
            }
        }
        if frames >= self.threshold {
            self.done.store(RUNNING, Ordering::Release);
            if let Some(tx) = &self.request
                && tx.send(()).is_ok()
            {
                self.running = true;
            }
        }
    }
}

impl Drop for Checkpoints {
    /// Stops the checkpointer thread; SQLite checkpoints what is left when the last
    /// connection closes.
    fn drop(&mut self) {
        self.request = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, requests: &mpsc::Receiver<()>, done: &AtomicI64, metrics: &Metrics) {
    while requests.recv().is_ok() {
        let started = Instant::now();
        // PASSIVE: copies what no reader still needs, never waits for a lock.
        let backfilled = match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((_, backfilled)) => i64::from(backfilled.max(0)),
            Err(e) => {
                tracing::warn!(error = %e, "background checkpoint failed; retried in 100 ms");
                // A back-off, so that a lasting failure is not retried after every group.
                std::thread::sleep(Duration::from_millis(100));
                0
            }
        };
        metrics.record_checkpoint(false, started.elapsed().as_micros() as u64);
        done.store(backfilled, Ordering::Release);
    }
}
