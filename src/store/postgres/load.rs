//! Writing a whole log into an empty PostgreSQL database, for `hookgate migrate`.
//!
//! Owns the write side of a move from another engine: migrates the target, refuses one
//! that holds anything already, inserts each batch of rows as it comes (typed by the
//! target's own columns), sets each chain's head from the rows copied, and commits once,
//! so a move that fails half-way leaves the target as empty as it was. It must never write
//! into a database that already holds a log.

use tokio::sync::mpsc;
use tokio_postgres::Transaction;
use tokio_postgres::types::{ToSql, Type};

use super::{pool, schema};
use crate::store::StoreError;
use crate::store::audit::Value;
use crate::store::migrate::Batch;

/// Rows copied into `url`, by table, in the order they came.
pub(crate) async fn load(
    url: &str,
    mut batches: mpsc::Receiver<Batch>,
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let pool = pool(url, 2)?;
    let mut client = pool.get().await?;
    schema::migrate(&mut client).await?;
    let held: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM changes)
                  + (SELECT count(*) FROM accounts) + (SELECT count(*) FROM tokens)",
            &[],
        )
        .await?
        .get(0);
    if held > 0 {
        return Err(StoreError::Conflict(format!(
            "a log in {} (the target must be an empty database)",
            super::redacted_url(url)
        )));
    }
    let tx = client.transaction().await?;
    let mut copied: Vec<(&'static str, u64)> = Vec::new();
    while let Some(batch) = batches.recv().await {
        insert(&tx, &batch).await?;
        match copied.last_mut() {
            Some((t, n)) if *t == batch.table => *n += batch.rows.len() as u64,
            _ => copied.push((batch.table, batch.rows.len() as u64)),
        }
    }
    for log in ["events", "changes"] {
        tx.execute(
            &format!(
                "UPDATE chain_heads SET (seq, hash) = (
                    SELECT seq, hash FROM (
                        SELECT seq, hash FROM {log} WHERE hash IS NOT NULL
                        UNION ALL
                        SELECT through, hash FROM chain_checkpoints WHERE log = '{log}'
                    ) h ORDER BY seq DESC LIMIT 1)
                 WHERE log = '{log}' AND EXISTS (
                    SELECT 1 FROM {log} UNION ALL
                    SELECT 1 FROM chain_checkpoints WHERE log = '{log}')"
            ),
            &[],
        )
        .await?;
    }
    // Deliveries keep their ids; the next one numbers after them.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('deliveries', 'id'),
             COALESCE((SELECT MAX(id) FROM deliveries), 0) + 1, false)",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(copied)
}

/// Inserts one batch, each value bound as the target column's type.
async fn insert(tx: &Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    let width = batch.columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        batch.table,
        batch.columns.join(", ")
    );
    for r in 0..batch.rows.len() {
        if r > 0 {
            sql.push_str(", ");
        }
        let places: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
        sql.push_str(&format!("({})", places.join(", ")));
    }
    let stmt = tx.prepare(&sql).await?;
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(width * batch.rows.len());
    for (i, value) in batch.rows.iter().flatten().enumerate() {
        let ty = stmt.params().get(i).cloned().unwrap_or(Type::TEXT);
        args.push(bound(value, &ty).map_err(|what| {
            StoreError::Unavailable(format!(
                "table {} column {}: {what}",
                batch.table,
                batch.columns.get(i % width).map_or("?", String::as_str)
            ))
        })?);
    }
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as _).collect();
    tx.execute(&stmt, &refs).await?;
    Ok(())
}

/// A value as the column's type takes it.
fn bound(value: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    Ok(match (value, ty) {
        (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (Value::Null, t) if *t == Type::INT4 => Box::new(None::<i32>),
        (Value::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
        (Value::Null, _) => Box::new(None::<String>),
        (Value::Int(n), t) if *t == Type::INT8 => Box::new(*n),
        (Value::Int(n), t) if *t == Type::INT4 => {
            Box::new(i32::try_from(*n).map_err(|_| format!("{n} is out of range"))?)
        }
        (Value::Text(s), t) if *t == Type::TEXT => Box::new(s.clone()),
        (Value::Blob(b), t) if *t == Type::BYTEA => Box::new(b.clone()),
        (v, t) => return Err(format!("a value {v:?} where the target holds {t}")),
    })
}
