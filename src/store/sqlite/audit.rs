//! Audit-log integrity: verifying the hash chains, and pruning a prefix of the events log
//! while leaving a checkpoint that lets the rest still verify.
//!
//! Owns the read side of `chain` (recomputing every row's hash in seq order) and the prune
//! step the writer runs. Verification opens nothing and writes nothing: it runs on a
//! read-only connection it is given, so it also works offline on a copied file.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::chain::{self, Field, Hash, Version};
use crate::store::StoreError;
use crate::store::audit::{ChainReport, Log};

fn field(v: ValueRef<'_>) -> Field<'_> {
    match v {
        ValueRef::Null => Field::Null,
        ValueRef::Integer(n) => Field::Int(n),
        // The chained columns hold no reals; one that appears was written by someone else
        // and is hashed by its bit pattern, so it can never match.
        ValueRef::Real(f) => Field::Int(f.to_bits() as i64),
        ValueRef::Text(t) => Field::Text(t),
        ValueRef::Blob(b) => Field::Blob(b),
    }
}

fn owned_field(v: &Value) -> Field<'_> {
    match v {
        Value::Null => Field::Null,
        Value::Integer(n) => Field::Int(*n),
        Value::Real(f) => Field::Int(f.to_bits() as i64),
        Value::Text(t) => Field::Text(t.as_bytes()),
        Value::Blob(b) => Field::Blob(b),
    }
}

fn stored_hash(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Hash>> {
    Ok(row
        .get::<_, Option<Vec<u8>>>(i)?
        .and_then(|b| Hash::try_from(b.as_slice()).ok()))
}

/// The checkpoint a prune left: (last pruned seq, rows pruned, hash of that row).
fn checkpoint(c: &Connection, log: Log) -> rusqlite::Result<(i64, u64, Hash)> {
    let row: Option<(i64, i64, Vec<u8>)> = c
        .query_row(
            "SELECT through, pruned, hash FROM chain_checkpoints WHERE log = ?1",
            [log.table()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        Some((through, pruned, hash)) => (
            through,
            pruned.max(0) as u64,
            Hash::try_from(hash.as_slice()).unwrap_or(chain::GENESIS),
        ),
        None => (0, 0, chain::GENESIS),
    })
}

/// Verifies one log from its checkpoint (or the start) to its last row.
pub fn verify(
    c: &Connection,
    log: Log,
    expected_head: Option<&Hash>,
) -> Result<ChainReport, StoreError> {
    let (through, pruned, start_hash) = checkpoint(c, log)?;
    let width = log.width();
    let mut report = ChainReport {
        log: log.table(),
        ok: true,
        rows: 0,
        pruned,
        head: hex::encode(start_hash),
        broken_at: None,
        problem: None,
        detail: None,
        expected_head_found: expected_head.map(|h| *h == start_hash && pruned > 0),
    };
    let sql = format!(
        "SELECT {}, hash FROM {} WHERE seq > ?1 ORDER BY seq",
        log.columns(),
        log.table()
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(params![through])?;
    let (mut prev_seq, mut prev_hash) = (through, start_hash);
    // Rows written before encoding v2 come first (`chain`).
    let mut version = Version::V1;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        if seq != prev_seq + 1 {
            let missing = if seq == prev_seq + 2 {
                format!("row {}", prev_seq + 1)
            } else {
                format!("rows {} to {}", prev_seq + 1, seq - 1)
            };
            return Ok(broken(
                report,
                seq,
                "removed",
                format!("{missing} of the {} log are missing", log.table()),
            ));
        }
        let mut fields: Vec<Field<'_>> = Vec::with_capacity(width);
        for i in 0..width {
            fields.push(field(row.get_ref(i)?));
        }
        let stored = stored_hash(row, width)?;
        let matched = log
            .versions_after(version)
            .iter()
            .map(|v| (*v, log.row_hash(*v, &prev_hash, &fields)))
            .find(|(_, computed)| stored == Some(*computed));
        let Some((row_version, computed)) = matched else {
            let (problem, detail) = match reordered_from(c, log, version, seq, &prev_hash)? {
                Some(k) => (
                    "reordered",
                    format!(
                        "the row stored at seq {seq} does not belong there; the content that chains here is at seq {k}"
                    ),
                ),
                None => (
                    "edited",
                    format!(
                        "row {seq} does not match its hash: it was edited (or row {} was rewritten together with its hash)",
                        seq - 1
                    ),
                ),
            };
            return Ok(broken(report, seq, problem, detail));
        };
        version = row_version;
        if let Some(expected) = expected_head
            && *expected == computed
        {
            report.expected_head_found = Some(true);
        }
        prev_seq = seq;
        prev_hash = computed;
        report.rows += 1;
    }
    report.head = hex::encode(prev_hash);
    if expected_head.is_some() && report.expected_head_found != Some(true) {
        report.expected_head_found = Some(false);
        report.ok = false;
        report.problem = Some("removed");
        report.detail = Some("the expected head is not in the chain: rows after it were removed, or the log was replaced".into());
    }
    Ok(report)
}

fn broken(mut report: ChainReport, seq: i64, problem: &'static str, detail: String) -> ChainReport {
    report.ok = false;
    report.broken_at = Some(seq);
    report.problem = Some(problem);
    report.detail = Some(detail);
    report
}

/// Looks near `seq` for a row whose content, placed at `seq`, chains from `prev`: the sign
/// that rows were moved rather than edited.
fn reordered_from(
    c: &Connection,
    log: Log,
    version: Version,
    seq: i64,
    prev: &Hash,
) -> Result<Option<i64>, StoreError> {
    const WINDOW: i64 = 512;
    let width = log.width();
    let sql = format!(
        "SELECT {}, hash FROM {} WHERE seq BETWEEN ?1 AND ?2 AND seq <> ?3",
        log.columns(),
        log.table()
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(params![seq - WINDOW, seq + WINDOW, seq])?;
    while let Some(row) = rows.next()? {
        let k: i64 = row.get(0)?;
        let mut values: Vec<Value> = Vec::with_capacity(width);
        for i in 0..width {
            values.push(row.get(i)?);
        }
        values[0] = Value::Integer(seq);
        let fields: Vec<Field<'_>> = values.iter().map(owned_field).collect();
        let stored = stored_hash(row, width)?;
        if log
            .versions_after(version)
            .iter()
            .any(|v| stored == Some(log.row_hash(*v, prev, &fields)))
        {
            return Ok(Some(k));
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
    let (through, pruned, _) = checkpoint(tx, Log::Events)?;
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
    use crate::chain::EVENT_COLUMNS;

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
                    let fields = (0..Log::Events.width())
                        .map(|i| r.get_ref(i).map(field))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
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
