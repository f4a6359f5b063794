//! Reading a whole SQLite database out, table by table, for `hookgate migrate`.
//!
//! Owns the read side of a move to another engine: each table's rows in key order, in
//! batches, as engine-neutral values, on a read-only connection in one read transaction
//! (a consistent snapshot, even while a gateway writes). It must never write to the source.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;
use crate::store::audit::Value;
use crate::store::migrate::{Batch, TABLES};

/// Rows sent per batch.
const BATCH: usize = 1_000;

/// Sends every row of every table `migrate` copies through `out`, in batches; stops early
/// when the receiver is gone.
pub fn dump(path: &Path, out: &tokio::sync::mpsc::Sender<Batch>) -> Result<(), StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "database file {}",
            path.display()
        )));
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < super::schema::latest() {
        return Err(StoreError::Unavailable(format!(
            "{} is at schema version {version}; start and stop this hookgate on it once (it migrates the file), then move it",
            path.display()
        )));
    }
    // One snapshot for every table.
    let tx = c.unchecked_transaction()?;
    for (table, order) in TABLES {
        let columns: Vec<String> = {
            let mut stmt = tx.prepare(&format!("PRAGMA table_info({table})"))?;
            stmt.query_map([], |r| r.get::<_, String>(1))?
                .collect::<Result<_, _>>()?
        };
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {order}",
            columns.join(", ")
        );
        let mut stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(f) => Value::Int(f as i64),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            batch.push(values);
            if batch.len() == BATCH && !send(out, table, &columns, &mut batch) {
                return Ok(());
            }
        }
        if !batch.is_empty() && !send(out, table, &columns, &mut batch) {
            return Ok(());
        }
    }
    Ok(())
}

fn send(
    out: &tokio::sync::mpsc::Sender<Batch>,
    table: &'static str,
    columns: &[String],
    rows: &mut Vec<Vec<Value>>,
) -> bool {
    out.blocking_send(Batch {
        table,
        columns: columns.to_vec(),
        rows: std::mem::take(rows),
    })
    .is_ok()
}
