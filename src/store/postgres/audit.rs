//! Audit-log integrity on PostgreSQL: reading each log's rows in seq order for the
//! engine-neutral verifier, and pruning a prefix of the events log with a checkpoint.
//!
//! Owns the statements only; what a row's hash is and what a break means is
//! `store::audit`'s. Verification reads a page of rows at a time and writes nothing.

use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row};

use crate::chain::{self, Hash};
use crate::store::StoreError;
use crate::store::audit::{ChainReport, ChainRow, Checkpoint, Log, Step, Value, Verifier};

/// Rows read per statement while verifying.
const PAGE: i64 = 5_000;

/// Verifies both logs, events first.
pub(super) async fn verify_both(
    c: &impl GenericClient,
    expected_events_head: Option<Hash>,
) -> Result<Vec<ChainReport>, StoreError> {
    Ok(vec![
        verify(c, Log::Events, expected_events_head).await?,
        verify(c, Log::Changes, None).await?,
    ])
}

fn value(row: &Row, i: usize) -> Value {
    let ty = row.columns()[i].type_();
    let v = if *ty == Type::INT8 {
        row.get::<_, Option<i64>>(i).map(Value::Int)
    } else if *ty == Type::BYTEA {
        row.get::<_, Option<Vec<u8>>>(i).map(Value::Blob)
    } else {
        row.get::<_, Option<String>>(i).map(Value::Text)
    };
    v.unwrap_or(Value::Null)
}

fn chain_row(row: &Row, width: usize) -> ChainRow {
    let values = (0..width).map(|i| value(row, i)).collect();
    let hash = row
        .get::<_, Option<Vec<u8>>>(width)
        .and_then(|b| Hash::try_from(b.as_slice()).ok());
    ChainRow { values, hash }
}

async fn checkpoint(c: &impl GenericClient, log: Log) -> Result<Checkpoint, StoreError> {
    let row = c
        .query_opt(
            "SELECT through, pruned, hash FROM chain_checkpoints WHERE log = $1",
            &[&log.table()],
        )
        .await?;
    Ok(match row {
        Some(r) => {
            let hash: Vec<u8> = r.get(2);
            Checkpoint {
                through: r.get(0),
                pruned: r.get::<_, i64>(1).max(0) as u64,
                hash: Hash::try_from(hash.as_slice()).unwrap_or(chain::GENESIS),
            }
        }
        None => Checkpoint::default(),
    })
}

/// Verifies one log from its checkpoint (or the start) to its last row.
pub(super) async fn verify(
    c: &impl GenericClient,
    log: Log,
    expected_head: Option<Hash>,
) -> Result<ChainReport, StoreError> {
    let start = checkpoint(c, log).await?;
    let width = log.width();
    let mut verifier = Verifier::new(log, start, expected_head);
    let sql = format!(
        "SELECT {}, hash FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2",
        log.columns(),
        log.table()
    );
    let stmt = c.prepare(&sql).await?;
    let mut after = start.through;
    loop {
        let rows = c.query(&stmt, &[&after, &PAGE]).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.get(0);
        for row in &rows {
            let row = chain_row(row, width);
            match verifier.push(&row) {
                Step::Chained => {}
                Step::Removed => return Ok(verifier.finish()),
                Step::Mismatch => {
                    let seq = row.seq();
                    let moved = moved_from(c, log, &verifier, seq).await?;
                    return Ok(verifier.mismatch(seq, moved));
                }
            }
        }
    }
    Ok(verifier.finish())
}

async fn moved_from(
    c: &impl GenericClient,
    log: Log,
    verifier: &Verifier,
    seq: i64,
) -> Result<Option<i64>, StoreError> {
    let window = Verifier::REORDER_WINDOW;
    let sql = format!(
        "SELECT {}, hash FROM {} WHERE seq BETWEEN $1 AND $2 AND seq <> $3",
        log.columns(),
        log.table()
    );
    for row in c
        .query(&sql, &[&(seq - window), &(seq + window), &seq])
        .await?
    {
        let row = chain_row(&row, log.width());
        if verifier.would_chain_at(seq, &row) {
            return Ok(Some(row.seq()));
        }
    }
    Ok(None)
}

/// The advisory lock a prune holds for its transaction: prunes run on one node at a time.
const PRUNE_LOCK: i64 = 0x686f_6f6b_7072_756e;

/// Prunes events received before `before` (microseconds), at most `max_rows`, as a seq
/// prefix; records the checkpoint. Returns (rows pruned, last pruned seq). Runs inside the
/// writer's transaction; a prune already running on another node makes this one prune
/// nothing.
pub(super) async fn prune_events(
    tx: &impl GenericClient,
    before: i64,
    max_rows: i64,
    at: i64,
) -> Result<(u64, i64), StoreError> {
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
        .await?
        .get(0);
    let Checkpoint {
        through, pruned, ..
    } = checkpoint(tx, Log::Events).await?;
    if !locked {
        return Ok((0, through));
    }
    // The prefix is exact: every row up to the first one not old, read in seq order.
    let first_new: Option<i64> = tx
        .query_opt(
            "SELECT seq FROM events WHERE seq > $1 AND seq <= $2 AND received_at >= $3
             ORDER BY seq LIMIT 1",
            &[&through, &through.saturating_add(max_rows), &before],
        )
        .await?
        .map(|r| r.get(0));
    let last_old = match first_new {
        Some(s) => s - 1,
        None => tx
            .query_one("SELECT COALESCE(MAX(seq), 0)::BIGINT FROM events", &[])
            .await?
            .get(0),
    };
    let last = last_old.min(through + max_rows);
    if last <= through {
        return Ok((0, through));
    }
    let hash: Option<Vec<u8>> = tx
        .query_opt("SELECT hash FROM events WHERE seq = $1", &[&last])
        .await?
        .and_then(|r| r.get(0));
    let Some(hash) = hash else {
        // The row that would anchor the checkpoint is missing: leave the log as it is, so
        // verification reports the gap instead of pruning hiding it.
        return Ok((0, through));
    };
    let count = tx
        .execute(
            "DELETE FROM events WHERE seq > $1 AND seq <= $2",
            &[&through, &last],
        )
        .await?;
    tx.execute("DELETE FROM dedupe WHERE seq <= $1", &[&last])
        .await?;
    // Finished deliveries go with their events; waiting ones stay (and die, their event gone).
    tx.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries
            WHERE seq <= $1 AND status NOT IN ('pending', 'retrying'))",
        &[&last],
    )
    .await?;
    tx.execute(
        "DELETE FROM deliveries WHERE seq <= $1 AND status NOT IN ('pending', 'retrying')",
        &[&last],
    )
    .await?;
    tx.execute(
        "INSERT INTO chain_checkpoints (log, through, pruned, hash, at) VALUES ('events', $1, $2, $3, $4)
         ON CONFLICT (log) DO UPDATE SET through = excluded.through, pruned = excluded.pruned,
            hash = excluded.hash, at = excluded.at",
        &[&last, &(pruned as i64 + count as i64), &hash, &at],
    )
    .await?;
    Ok((count, last))
}
