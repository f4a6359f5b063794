//! The storage health probe: a write that proves the database takes commits again.
//!
//! Owns the statements the writer runs for a probe (`Store::probe` paces them): inside the writer's
//! transaction it inserts a row padded like a sizeable event into `health_probe` and
//! deletes it again. Committing that needs the write lock, new pages (so a full disk or a
//! full database fails it), the WAL and fsync. It must never leave a row behind or touch
//! the audit log.

use rusqlite::{Transaction, params};

use crate::store::StoreError;

/// Bytes the probe writes: as much as a large webhook body.
pub const PROBE_BYTES: i64 = 64 * 1024;

/// Writes and removes one padded row inside the writer's transaction.
pub(super) fn probe_write(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO health_probe (pad) VALUES (zeroblob(?1))")?
        .execute(params![PROBE_BYTES])?;
    tx.prepare_cached("DELETE FROM health_probe")?.execute([])?;
    Ok(())
}
