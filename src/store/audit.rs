//! The audit chains as every engine reports them: which logs are chained, how a row's
//! hash is recomputed, and what a verification found.
//!
//! Pure and engine-neutral: an engine reads its rows in seq order and recomputes each with
//! [`Log::row_hash`]; nothing here does I/O or names a database driver.

use serde::Serialize;

use crate::chain::{self, CHANGE_COLUMNS, EVENT_COLUMNS, Field, Hash, Version};

/// One of the two chained logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Every webhook request.
    Events,
    /// Every admin change.
    Changes,
}

impl Log {
    /// The table name, also the log's name in reports and checkpoints.
    pub fn table(self) -> &'static str {
        match self {
            Log::Events => "events",
            Log::Changes => "changes",
        }
    }

    /// The chained columns, in their order in the row hash.
    pub fn columns(self) -> &'static str {
        match self {
            Log::Events => EVENT_COLUMNS,
            Log::Changes => CHANGE_COLUMNS,
        }
    }

    /// How many chained columns a row has.
    pub fn width(self) -> usize {
        self.columns().split(',').count()
    }

    /// The hash of a row read back from this log, under `version`.
    pub fn row_hash(self, version: Version, prev: &Hash, fields: &[Field<'_>]) -> Hash {
        match (self, version) {
            (Log::Events, Version::V2) => chain::events_v2(prev, fields),
            _ => chain::row_hash(version, prev, fields),
        }
    }

    /// The versions a row may be in, given the version of the row before it: the events
    /// log moves from v1 to v2 once, never back; the changes log is v1 throughout.
    pub fn versions_after(self, version: Version) -> &'static [Version] {
        match (self, version) {
            (Log::Events, Version::V1) => &[Version::V1, Version::V2],
            (Log::Events, Version::V2) => &[Version::V2],
            (Log::Changes, _) => &[Version::V1],
        }
    }
}

/// What verifying one log found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainReport {
    /// `events` or `changes`.
    pub log: &'static str,
    /// True when every row chains from the one before.
    pub ok: bool,
    /// Rows verified (after any pruned prefix).
    pub rows: u64,
    /// Rows pruned by retention before the first row, per the checkpoint.
    pub pruned: u64,
    /// The hash of the last row that verified, hex; note it to detect later truncation.
    pub head: String,
    /// The seq where the chain breaks.
    pub broken_at: Option<i64>,
    /// `edited`, `removed` or `reordered`.
    pub problem: Option<&'static str>,
    /// What exactly is wrong, in words.
    pub detail: Option<String>,
    /// When an expected head was given: whether the chain passes through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_head_found: Option<bool>,
}
