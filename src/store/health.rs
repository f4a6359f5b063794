//! The storage health probe: a write that proves the database takes commits again.
//!
//! Owns the statements the writer runs for `Store::probe`: inside the writer's
//! transaction it inserts a row padded like a sizeable event into `health_probe` and
//! deletes it again. Committing that needs the write lock, new pages (so a full disk or a
//! full database fails it), the WAL and fsync. It must never leave a row behind or touch
//! the audit log.

use std::time::{Duration, Instant};

use rusqlite::{Transaction, params};

use super::StoreError;

/// Bytes the probe writes: as much as a large webhook body.
pub const PROBE_BYTES: i64 = 64 * 1024;

/// The least time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// How long to wait before the next probe, given when the last one ran.
pub(super) fn wait_before_probe(last: Option<Instant>, now: Instant) -> Option<Duration> {
    let next = last? + PROBE_INTERVAL;
    (next > now).then(|| next - now)
}

/// Writes and removes one padded row inside the writer's transaction.
pub(super) fn probe_write(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO health_probe (pad) VALUES (zeroblob(?1))")?
        .execute(params![PROBE_BYTES])?;
    tx.prepare_cached("DELETE FROM health_probe")?.execute([])?;
    Ok(())
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
