//! `hookgate backup`: a consistent copy of a live SQLite database, with SQLite's online
//! backup.
//!
//! Owns the copy only. It reads the source through a read-only connection of its own (a
//! gateway may be writing it meanwhile; WAL readers and the writer do not block each
//! other) and writes a new file, which it makes self-contained before it reports success.
//! It must never write to the source, and never overwrite an existing file.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// Copies the database at `from` into a new file `to`; returns the pages copied.
pub fn backup(from: &Path, to: &Path) -> Result<u64, StoreError> {
    if !from.exists() {
        return Err(StoreError::NotFound(format!(
            "database file {}",
            from.display()
        )));
    }
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} (choose a new file name)",
            to.display()
        )));
    }
    let cannot = |what: &str, path: &Path, e: rusqlite::Error| {
        StoreError::Unavailable(format!("cannot {what} {}: {e}", path.display()))
    };
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| cannot("open", from, e))?;
    src.busy_timeout(Duration::from_secs(5))
        .map_err(|e| cannot("open", from, e))?;
    let result = copy(&src, to);
    if result.is_err() {
        // A half-written copy is no backup: it must not be mistaken for one.
        let _ = std::fs::remove_file(to);
    }
    result
}

fn copy(src: &Connection, to: &Path) -> Result<u64, StoreError> {
    let failed = |e: rusqlite::Error| {
        StoreError::Unavailable(format!("cannot write the backup {}: {e}", to.display()))
    };
    let mut dst = Connection::open(to).map_err(failed)?;
    let pages = {
        let backup = Backup::new(src, &mut dst).map_err(failed)?;
        // One step copies every page inside one read transaction: a consistent snapshot,
        // which in WAL mode never blocks the gateway's writer. (Step by step, a copy would
        // start over each time the writer commits, and might never finish under load.)
        loop {
            match backup.step(-1).map_err(failed)? {
                StepResult::Done => break,
                // Locked for a moment by the writer: try again.
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        backup.progress().pagecount
    };
    // The copy keeps the source's WAL mode; empty its WAL so the file alone is complete.
    dst.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(failed)?;
    dst.close().map_err(|(_, e)| failed(e))?;
    Ok(pages.max(0) as u64)
}
