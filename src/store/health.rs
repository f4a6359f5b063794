//! The storage health probe: the smallest write that proves the database takes commits.
//!
//! Owns the statement the writer runs for `Store::probe`. It rewrites the schema version
//! with its own value, which dirties the header page, so the commit really goes through
//! the write lock, the WAL and fsync (a lock held elsewhere, a read-only or moved file, or
//! a write error all fail it). It must never change what the database holds.

use rusqlite::Transaction;

use super::StoreError;

/// Rewrites `user_version` with its current value inside the writer's transaction.
pub(super) fn probe_write(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    tx.pragma_update(None, "user_version", version)?;
    Ok(())
}
