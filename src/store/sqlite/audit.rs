//! Audit-log integrity: verifying the hash chains, and pruning a prefix of the events log
//! while leaving a checkpoint that lets the rest still verify.
//!
//! Owns the read side of `chain` (recomputing every row's hash in seq order) and the prune
//! step the writer runs. Verification opens nothing and writes nothing: it runs on a
//! read-only connection it is given, so it also works offline on a copied file.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::chain::{self, Hash};
use crate::store::StoreError;
use crate::store::audit::{ChainReport, ChainRow, Checkpoint, Log, Step, Value, Verifier};

/// A chained column as read back. The chained columns hold no reals; one that appears was
/// written by someone else and is taken by its bit pattern, so it can never match.
fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(f) => Value::Int(f.to_bits() as i64),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn chain_row(row: &Row<'_>, width: usize) -> rusqlite::Result<ChainRow> {
    let mut values = Vec::with_capacity(width);
    for i in 0..width {
        values.push(value(row.get_ref(i)?));
    }
    let hash = row
        .get::<_, Option<Vec<u8>>>(width)?
        .and_then(|b| Hash::try_from(b.as_slice()).ok());
    Ok(ChainRow { values, hash })
}

/// The checkpoint a prune left.
fn checkpoint(c: &Connection, log: Log) -> rusqlite::Result<Checkpoint> {
    let row: Option<(i64, i64, Vec<u8>)> = c
        .query_row(
            "SELECT through, pruned, hash FROM chain_checkpoints WHERE log = ?1",
            [log.table()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        Some((through, pruned, hash)) => Checkpoint {
            through,
            pruned: pruned.max(0) as u64,
            hash: Hash::try_from(hash.as_slice()).unwrap_or(chain::GENESIS),
        },
        None => Checkpoint::default(),
    })
}

/// Verifies one log from its checkpoint (or the start) to its last row.
pub fn verify(
    c: &Connection,
    log: Log,
    expected_head: Option<&Hash>,
) -> Result<ChainReport, StoreError> {
    let start = checkpoint(c, log)?;
    let width = log.width();
    let mut verifier = Verifier::new(log, start, expected_head.copied());
    let sql = format!(
        "SELECT {}, hash FROM {} WHERE seq > ?1 ORDER BY seq",
        log.columns(),
        log.table()
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(params![start.through])?;
    while let Some(row) = rows.next()? {
        let row = chain_row(row, width)?;
        match verifier.push(&row) {
            Step::Chained => {}
            Step::Removed => break,
            Step::Mismatch => {
                let seq = row.seq();
                let moved_from = moved_from(c, log, &verifier, seq)?;
                return Ok(verifier.mismatch(seq, moved_from));
            }
        }
    }
    Ok(verifier.finish())
}

/// Looks near `seq` for a row whose content, placed at `seq`, chains there.
fn moved_from(
    c: &Connection,
    log: Log,
    verifier: &Verifier,
    seq: i64,
) -> Result<Option<i64>, StoreError> {
    let window = Verifier::REORDER_WINDOW;
    let sql = format!(
        "SELECT {}, hash FROM {} WHERE seq BETWEEN ?1 AND ?2 AND seq <> ?3",
        log.columns(),
        log.table()
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(params![seq - window, seq + window, seq])?;
    while let Some(row) = rows.next()? {
        let row = chain_row(row, log.width())?;
        if verifier.would_chain_at(seq, &row) {
            return Ok(Some(row.seq()));
        }
    }
    Ok(None)
}

/// Prunes events received before `before` (microseconds), at most `max_rows`, as a seq
/// prefix; records the checkpoint. Returns (rows pruned, last pruned seq). Runs inside the
/// writer's transaction.
pub(super) fn prune_events(
    tx: &Connection,
    before: i64,
    max_rows: i64,
    at: i64,
) -> rusqlite::Result<(u64, i64)> {
    let Checkpoint {
        through, pruned, ..
    } = checkpoint(tx, Log::Events)?;
    // The prefix is exact: every row up to the first one not old, read in seq order. At
    // most `max_rows` are read, as many as are then deleted.
    let first_new: Option<i64> = tx
        .query_row(
            "SELECT seq FROM events WHERE seq > ?1 AND seq <= ?2 AND received_at >= ?3
             ORDER BY seq LIMIT 1",
            params![through, through.saturating_add(max_rows), before],
            |r| r.get(0),
        )
        .optional()?;
    let last_old = match first_new {
        Some(s) => s - 1,
        None => tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?,
    };
    let last = last_old.min(through + max_rows);
    if last <= through {
        return Ok((0, through));
    }
    let hash: Option<Vec<u8>> = tx
        .query_row(
            "SELECT hash FROM events WHERE seq = ?1",
            params![last],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(hash) = hash else {
        // The row that would anchor the checkpoint is missing: leave the log as it is, so
        // verification reports the gap instead of pruning hiding it.
        return Ok((0, through));
    };
    let count = tx.execute(
        "DELETE FROM events WHERE seq > ?1 AND seq <= ?2",
        params![through, last],
    )? as u64;
    tx.execute("DELETE FROM dedupe WHERE seq <= ?1", params![last])?;
    // Finished deliveries go with their events; waiting ones stay (and die, their event gone).
    tx.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries
            WHERE seq <= ?1 AND status NOT IN ('pending', 'retrying'))",
        params![last],
    )?;
    tx.execute(
        "DELETE FROM deliveries WHERE seq <= ?1 AND status NOT IN ('pending', 'retrying')",
        params![last],
    )?;
    tx.execute(
        "INSERT INTO chain_checkpoints (log, through, pruned, hash, at) VALUES ('events', ?1, ?2, ?3, ?4)
         ON CONFLICT(log) DO UPDATE SET through = excluded.through, pruned = excluded.pruned,
            hash = excluded.hash, at = excluded.at",
        params![last, pruned as i64 + count as i64, hash, at],
    )?;
    Ok((count, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{EVENT_COLUMNS, Version};

    /// A database whose events log holds one row per entry of `versions`, row i hashed in
    /// `versions[i]` and chained from the row before, as the writer of that version would.
    fn log_of(versions: &[Version]) -> Connection {
        let mut c = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut c).expect("migrate");
        let read = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1");
        let mut prev = chain::GENESIS;
        for (i, version) in versions.iter().enumerate() {
            let seq = i as i64 + 1;
            let body = format!("{{\"id\":\"evt_{seq}\"}}");
            c.execute(
                "INSERT INTO events (seq, received_at, account, status, method, path, query,
                    remote_addr, headers, body, body_size, body_truncated, handle_micros)
                 VALUES (?1, ?2, 'shop', 'accepted', 'POST', '/hooks/shop', '', '127.0.0.1:9',
                    '{}', ?3, ?4, 0, 5)",
                params![seq, 1_000 + seq, body.as_bytes(), body.len() as i64],
            )
            .expect("insert");
            let hash = c
                .query_row(&read, [seq], |r| {
                    let values = (0..Log::Events.width())
                        .map(|i| r.get_ref(i).map(value))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    let fields: Vec<_> = values.iter().map(Value::field).collect();
                    Ok(Log::Events.row_hash(*version, &prev, &fields))
                })
                .expect("hash");
            c.execute(
                "UPDATE events SET hash = ?1 WHERE seq = ?2",
                params![&hash[..], seq],
            )
            .expect("store the hash");
            prev = hash;
        }
        c
    }

    #[test]
    fn a_log_verifies_in_v1_then_v2_in_either_alone_and_in_both_in_that_order() {
        use Version::{V1, V2};
        for versions in [
            vec![V1, V1, V1, V2, V2],
            vec![V2, V2, V2],
            vec![V1, V1],
            vec![V1, V2],
        ] {
            let report = verify(&log_of(&versions), Log::Events, None).expect("verify");
            assert!(report.ok, "{versions:?}: {report:?}");
            assert_eq!(report.rows, versions.len() as u64);
        }
    }

    #[test]
    fn a_v1_row_after_a_v2_row_is_an_edit() {
        use Version::{V1, V2};
        let report = verify(&log_of(&[V1, V2, V2, V1, V2]), Log::Events, None).expect("verify");
        assert!(!report.ok);
        assert_eq!(report.broken_at, Some(4));
        assert_eq!(report.problem, Some("edited"));
        // The changes log knows v1 only.
        assert_eq!(Log::Changes.versions_after(V2), [V1]);
    }

    #[test]
    fn a_v2_row_whose_body_changed_in_bytes_or_in_type_is_an_edit() {
        use Version::V2;
        for sql in [
            "UPDATE events SET body = x'00' WHERE seq = 2",
            "UPDATE events SET body = CAST(body AS TEXT) WHERE seq = 2",
        ] {
            let c = log_of(&[V2, V2, V2]);
            c.execute_batch(sql).expect("tamper");
            let report = verify(&c, Log::Events, None).expect("verify");
            assert_eq!(report.broken_at, Some(2), "{sql}: {report:?}");
            assert_eq!(report.problem, Some("edited"), "{sql}");
        }
    }
}
