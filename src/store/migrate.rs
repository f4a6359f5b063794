//! `hookgate migrate`: moving a SQLite log into an empty PostgreSQL database with every
//! chain intact.
//!
//! Owns the order of the move and its proof: the SQLite engine reads every table out in
//! one snapshot, the PostgreSQL engine writes it in one transaction, and then both are
//! verified and must report the same heads. It names no driver itself.

use std::path::Path;

use tokio::sync::mpsc;

use super::audit::{ChainReport, Value};
use super::{StoreError, postgres, sqlite};

/// The tables a move copies, each with the order its rows are read in.
pub const TABLES: [(&str, &str); 9] = [
    ("accounts", "name"),
    ("tokens", "name"),
    ("changes", "seq"),
    ("chain_checkpoints", "log"),
    ("events", "seq"),
    ("dedupe", "account, event_id"),
    ("destinations", "account, name"),
    ("deliveries", "id"),
    ("delivery_attempts", "delivery_id, attempt"),
];

/// Rows of one table on their way from one engine to the other.
#[derive(Debug)]
pub struct Batch {
    /// The table.
    pub table: &'static str,
    /// Its columns, as the source has them.
    pub columns: Vec<String>,
    /// The rows, each value in `columns` order.
    pub rows: Vec<Vec<Value>>,
}

/// What a move did and what verification found on both sides.
#[derive(Debug)]
pub struct Moved {
    /// Rows copied, by table.
    pub copied: Vec<(&'static str, u64)>,
    /// The source's chains.
    pub source: Vec<ChainReport>,
    /// The target's chains.
    pub target: Vec<ChainReport>,
}

/// Copies the SQLite database at `from` into the empty PostgreSQL database at `to`, then
/// verifies both. Fails, leaving the target empty, if anything could not be copied; fails
/// after the copy if the target's chains do not verify with the source's heads.
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<Moved, StoreError> {
    let source = super::verify_file(from, None)?;
    if let Some(broken) = source.iter().find(|r| !r.ok) {
        return Err(StoreError::Unavailable(format!(
            "the {} log of {} does not verify ({}); a broken log is not moved",
            broken.log,
            from.display(),
            broken.detail.as_deref().unwrap_or("broken")
        )));
    }
    let (tx, rx) = mpsc::channel(4);
    let path = from.to_owned();
    let reading = tokio::task::spawn_blocking(move || sqlite::dump::dump(&path, &tx));
    let written = postgres::load::load(to, rx).await;
    let read = reading
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    // A failed read ends the batches early: the write must not count as complete.
    read?;
    let copied = written?;
    let target = postgres::verify_url(to, super::audit::Expected::default()).await?;
    for (s, t) in source.iter().zip(&target) {
        if !t.ok || s.head != t.head || s.rows != t.rows {
            return Err(StoreError::Unavailable(format!(
                "the {} log was copied but does not verify the same in the target: {} rows, head {} in the source; {} rows, head {}, ok = {} in the target",
                s.log, s.rows, s.head, t.rows, t.head, t.ok
            )));
        }
    }
    Ok(Moved {
        copied,
        source,
        target,
    })
}
