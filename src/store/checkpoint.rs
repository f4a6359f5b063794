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
//! SQLite syncs the database file only in the pass that reaches the WAL's end, which is the
//! writer's finishing pass: the pages every background pass wrote would wait in the page
//! cache until then, and the writer's fsync would put a whole round's worth on the disk in
//! front of the requests waiting on it (stalls of several milliseconds). So the
//! checkpointer syncs the file itself after each pass, through SQLite's own file object
//! (`hookgate_wal_vfs::sync_database_file`). That sync adds nothing to durability and
//! takes nothing from it: SQLite's own sync still ends the round, and a write-back error
//! is reported to that sync too, as Linux reports it to every descriptor of the file.
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
        let pass = Pass::open(path, tuning)?;
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
            .name("hookgate-ckpt".into())
            .spawn(move || run(&pass, &requests, &published, &counted))
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

/// The checkpointer's connection.
struct Pass {
    conn: Connection,
}

impl Pass {
    fn open(path: &Path, tuning: &Storage) -> Result<Pass, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_millis(tuning.busy_timeout_ms))?;
        // A checkpoint fsyncs the WAL before it copies and the database file after. (This
        // pragma also reads the schema, which is how the connection learns the database is
        // in WAL mode: until then a checkpoint finds no WAL.)
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Pass { conn })
    }

    /// Copies what no reader still needs into the database file (PASSIVE: never waits for
    /// a lock) and flushes the file; returns the frames backfilled and whether it flushed.
    fn run(&self) -> rusqlite::Result<(i64, bool)> {
        let (_, backfilled) = self
            .conn
            .wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)?;
        let backfilled = i64::from(backfilled.max(0));
        if backfilled == 0 {
            return Ok((0, false));
        }
        let flushed = match hookgate_wal_vfs::sync_database_file(&self.conn) {
            Ok(()) => true,
            Err(e) => {
                // SQLite's own fsync at the round's end meets the same error and fails the
                // checkpoint, which keeps every frame in the WAL.
                tracing::warn!(error = %e, "cannot flush the database file after a checkpoint pass");
                false
            }
        };
        Ok((backfilled, flushed))
    }
}

fn run(pass: &Pass, requests: &mpsc::Receiver<()>, done: &AtomicI64, metrics: &Metrics) {
    while requests.recv().is_ok() {
        let started = Instant::now();
        let (backfilled, back_off) = attempt(pass);
        metrics.record_checkpoint(false, started.elapsed().as_micros() as u64);
        if let Some(wait) = back_off {
            std::thread::sleep(wait);
        }
        done.store(backfilled, Ordering::Release);
    }
}

/// One pass: the frames backfilled, and how long to wait before the next when it failed
/// in a way that may last.
fn attempt(pass: &Pass) -> (i64, Option<Duration>) {
    match pass.run() {
        Ok((backfilled, _)) => (backfilled, None),
        // The checkpoint lock was held for a moment: a PASSIVE checkpoint has no busy
        // handler, and SQLite takes that lock itself when a WAL-index read meets the
        // writer updating the index's header. The writer asks again after its next group.
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            tracing::debug!(error = %e, "background checkpoint found the lock taken; asked again");
            (0, None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "background checkpoint failed; retried in 100 ms");
            // A back-off, so that a lasting failure is not retried after every group.
            (0, Some(Duration::from_millis(100)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    /// A fresh database in WAL mode, written through the writer's VFS, that only the
    /// passes under test checkpoint.
    fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer =
            hookgate_wal_vfs::open(&path, Duration::from_secs(1), Storage::default().page_size)
                .expect("open");
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("autocheckpoint off");
        (dir, path, writer)
    }

    #[test]
    fn a_pass_copies_the_frames_into_the_database_file_and_flushes_it() {
        let (dir, path, writer) = fresh();
        writer
            .execute_batch("CREATE TABLE t (pad BLOB NOT NULL)")
            .expect("create");
        for _ in 0..50 {
            writer
                .execute("INSERT INTO t (pad) VALUES (zeroblob(3000))", [])
                .expect("insert");
        }
        let pass = Pass::open(&path, &Storage::default()).expect("checkpointer");
        let (backfilled, flushed) = pass.run().expect("pass");
        assert!(backfilled >= 50, "{backfilled} frames backfilled");
        assert!(flushed, "the database file was not flushed");
        // The database file alone, without its WAL, now holds every committed row.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).expect("copy");
        assert_eq!(rows(&Connection::open(&copy).expect("open copy")), 50);
        assert_eq!(rows(&writer), 50);
    }

    #[test]
    fn a_pass_that_finds_the_checkpoint_lock_taken_is_asked_again_without_a_back_off() {
        let (_dir, path, writer) = fresh();
        writer
            .execute_batch("CREATE TABLE t (pad BLOB NOT NULL)")
            .expect("create");
        // A reader on an old snapshot makes a TRUNCATE checkpoint wait in its busy
        // handler, holding the checkpoint lock while it waits.
        let reader = Connection::open(&path).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        assert_eq!(rows(&reader), 0);
        writer
            .execute("INSERT INTO t (pad) VALUES (zeroblob(100))", [])
            .expect("insert");
        let (waiting, wait) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder_path = path.clone();
        let holder = std::thread::spawn(move || {
            let mut conn = Connection::open(&holder_path).expect("holder");
            conn.busy_handler(Some(move |_| {
                let _ = waiting.send(());
                // Holds on until the test has seen the pass fail; then gives up.
                let _ = released.recv();
                false
            }))
            .expect("busy handler");
            // It gives up with BUSY once released: that is expected.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        });
        wait.recv().expect("the holder waits in its busy handler");
        let pass = Pass::open(&path, &Storage::default()).expect("checkpointer");
        let busy = pass.run().err().and_then(|e| e.sqlite_error_code());
        assert_eq!(busy, Some(rusqlite::ErrorCode::DatabaseBusy));
        assert_eq!(
            attempt(&pass),
            (0, None),
            "a taken lock is not a lasting failure"
        );
        drop(release);
        holder.join().expect("holder thread");
        reader.execute_batch("COMMIT").expect("end the read");
        let (backfilled, back_off) = attempt(&pass);
        assert!(
            backfilled > 0,
            "{backfilled} frames after the lock was free"
        );
        assert_eq!(back_off, None);
    }

    #[test]
    fn a_pass_that_fails_otherwise_backs_off() {
        let (_dir, path, writer) = fresh();
        writer
            .execute_batch("CREATE TABLE t (pad BLOB NOT NULL)")
            .expect("create");
        let pass = Pass::open(&path, &Storage::default()).expect("checkpointer");
        // A connection cannot checkpoint inside its own read transaction (SQLITE_LOCKED):
        // a failure that is not a taken lock, so the pass backs off.
        pass.conn.execute_batch("BEGIN").expect("begin");
        assert_eq!(rows(&pass.conn), 0);
        assert_eq!(attempt(&pass), (0, Some(Duration::from_millis(100))));
    }

    #[test]
    fn a_pass_with_nothing_to_copy_does_not_flush() {
        let (_dir, path, _writer) = fresh();
        // A fresh WAL-mode database: the WAL holds no frame yet.
        let pass = Pass::open(&path, &Storage::default()).expect("checkpointer");
        assert_eq!(pass.run().expect("pass"), (0, false));
    }
}
