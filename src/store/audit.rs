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
    /// Where the log starts: the checkpoint its last prune left.
    #[serde(skip)]
    pub checkpoint: Checkpoint,
    /// The change log's rows that anchor the chains (`audit.anchored`, `audit.pruned`), in
    /// seq order; empty for the events log.
    #[serde(skip)]
    pub marks: Vec<Mark>,
}

/// A change-log row that the anchoring checks read (`store::anchoring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Its seq.
    pub seq: i64,
    /// Its time, microseconds.
    pub at: i64,
    /// `audit.anchored` or `audit.pruned`.
    pub action: String,
    /// Its JSON detail.
    pub detail: String,
}

/// The change-log actions that anchor the chains.
pub const MARK_ACTIONS: [&str; 2] = ["audit.anchored", "audit.pruned"];

/// A head an auditor kept: the log must still pass through `hash` (at `seq`, when known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptHead {
    /// The row's seq, when the auditor kept it (a signed head has it).
    pub seq: Option<i64>,
    /// The row's hash.
    pub hash: Hash,
}

/// The heads a verification must find, per log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    /// The events log's kept head.
    pub events: Option<KeptHead>,
    /// The change log's kept head.
    pub changes: Option<KeptHead>,
}

impl From<Option<Hash>> for Expected {
    fn from(hash: Option<Hash>) -> Self {
        Expected::events_hash(hash)
    }
}

impl Expected {
    /// The events head only, as `--expect-head` gives it (a hash without its seq).
    pub fn events_hash(hash: Option<Hash>) -> Expected {
        Expected {
            events: hash.map(|hash| KeptHead { seq: None, hash }),
            changes: None,
        }
    }

    /// The kept head of `log`.
    pub fn of(&self, log: Log) -> Option<KeptHead> {
        match log {
            Log::Events => self.events,
            Log::Changes => self.changes,
        }
    }
}
/// A chained column's value as an engine read it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (booleans are 0 or 1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The value as the chain encodes it.
    pub fn field(&self) -> Field<'_> {
        match self {
            Value::Null => Field::Null,
            Value::Int(n) => Field::Int(*n),
            Value::Text(t) => Field::Text(t.as_bytes()),
            Value::Blob(b) => Field::Blob(b),
        }
    }
}

/// One row of a log as stored: its chained columns in [`Log::columns`] order (the first is
/// the seq) and the hash stored beside them.
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// The chained columns' values.
    pub values: Vec<Value>,
    /// The stored hash, when it is one.
    pub hash: Option<Hash>,
}

impl ChainRow {
    /// The row's seq: its first column.
    pub fn seq(&self) -> i64 {
        match self.values.first() {
            Some(Value::Int(n)) => *n,
            _ => i64::MIN,
        }
    }
}

/// Where a prune left a log: rows at or below `through` are gone, `pruned` of them, and
/// `hash` is the last one's, signed (`anchor`) by the prune that left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last pruned seq (0: nothing pruned).
    pub through: i64,
    /// Rows pruned in all.
    pub pruned: u64,
    /// The hash of the last pruned row (the genesis hash when nothing was pruned).
    pub hash: Hash,
    /// The audit key's signature over the checkpoint, when it has one.
    pub signature: Option<Vec<u8>>,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint {
            through: 0,
            pruned: 0,
            hash: chain::GENESIS,
            signature: None,
        }
    }
}

/// What one row did to a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It chains from the row before.
    Chained,
    /// The chain is broken here: rows are missing before this one.
    Removed,
    /// The row does not match its hash: edited, or moved from elsewhere (the caller looks
    /// nearby with [`Verifier::would_chain_at`] and ends with [`Verifier::mismatch`]).
    Mismatch,
}

/// Verifies one log, a row at a time in seq order, from its checkpoint. Engines feed it the
/// rows they read; it never reads anything itself.
#[derive(Debug)]
pub struct Verifier {
    log: Log,
    report: ChainReport,
    prev_seq: i64,
    prev_hash: Hash,
    /// The encoding of the last row: rows written before encoding v2 come first (`chain`).
    version: Version,
    expected: Option<Hash>,
}

/// The positions of `at`, `action` and `detail` in [`CHANGE_COLUMNS`].
const CHANGE_AT: usize = 1;
const CHANGE_ACTION: usize = 3;
const CHANGE_DETAIL: usize = 5;

impl Verifier {
    /// Starts verifying `log` after `checkpoint`; `expected` is a head noted earlier that
    /// the chain must pass through. A kept head older than the checkpoint was pruned since:
    /// the checkpoint stands for it (its signature is checked by `store::anchoring`).
    pub fn new(log: Log, checkpoint: Checkpoint, expected: Option<KeptHead>) -> Verifier {
        // A head of an empty log (seq 0) is passed through by every log.
        let pruned_past = expected
            .and_then(|k| k.seq)
            .is_some_and(|seq| seq < checkpoint.through || seq == 0);
        let (through, hash) = (checkpoint.through, checkpoint.hash);
        let expected_found =
            expected.map(|k| pruned_past || (k.hash == checkpoint.hash && checkpoint.pruned > 0));
        let expected = expected.filter(|_| !pruned_past).map(|k| k.hash);
        Verifier {
            log,
            report: ChainReport {
                log: log.table(),
                ok: true,
                rows: 0,
                pruned: checkpoint.pruned,
                head: hex::encode(checkpoint.hash),
                broken_at: None,
                problem: None,
                detail: None,
                expected_head_found: expected_found,
                checkpoint,
                marks: Vec::new(),
            },
            prev_seq: through,
            prev_hash: hash,
            version: Version::V1,
            expected,
        }
    }

    /// Checks the next row in seq order.
    pub fn push(&mut self, row: &ChainRow) -> Step {
        let seq = row.seq();
        if seq != self.prev_seq + 1 {
            let missing = if seq == self.prev_seq + 2 {
                format!("row {}", self.prev_seq + 1)
            } else {
                format!("rows {} to {}", self.prev_seq + 1, seq - 1)
            };
            let detail = format!("{missing} of the {} log are missing", self.log.table());
            self.break_at(seq, "removed", detail);
            return Step::Removed;
        }
        let fields: Vec<Field<'_>> = row.values.iter().map(Value::field).collect();
        let matched = self
            .log
            .versions_after(self.version)
            .iter()
            .map(|v| (*v, self.log.row_hash(*v, &self.prev_hash, &fields)))
            .find(|(_, computed)| row.hash == Some(*computed));
        let Some((version, computed)) = matched else {
            return Step::Mismatch;
        };
        self.version = version;
        if self.log == Log::Changes {
            self.mark(row);
        }
        if self.expected == Some(computed) {
            self.report.expected_head_found = Some(true);
        }
        self.prev_seq = seq;
        self.prev_hash = computed;
        self.report.rows += 1;
        Step::Chained
    }

    /// Keeps a change row that anchors the chains.
    fn mark(&mut self, row: &ChainRow) {
        let text = |i: usize| match row.values.get(i) {
            Some(Value::Text(t)) => t.as_str(),
            _ => "",
        };
        let action = text(CHANGE_ACTION);
        if !MARK_ACTIONS.contains(&action) {
            return;
        }
        let at = match row.values.get(CHANGE_AT) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        self.report.marks.push(Mark {
            seq: row.seq(),
            at,
            action: action.to_owned(),
            detail: text(CHANGE_DETAIL).to_owned(),
        });
    }

    /// Whether `row`'s content, placed at `seq` (the row that failed), would chain there:
    /// the sign that rows were moved rather than edited.
    pub fn would_chain_at(&self, seq: i64, row: &ChainRow) -> bool {
        let mut values = row.values.clone();
        if let Some(first) = values.first_mut() {
            *first = Value::Int(seq);
        }
        let fields: Vec<Field<'_>> = values.iter().map(Value::field).collect();
        self.log
            .versions_after(self.version)
            .iter()
            .any(|v| row.hash == Some(self.log.row_hash(*v, &self.prev_hash, &fields)))
    }

    /// Ends a verification at the row at `seq` that did not match its hash; `moved_from` is
    /// the seq of a nearby row whose content chains there, if one was found.
    pub fn mismatch(mut self, seq: i64, moved_from: Option<i64>) -> ChainReport {
        let (problem, detail) = match moved_from {
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
        self.break_at(seq, problem, detail);
        self.report
    }

    /// The seq after which a mismatch's neighbours are looked for, and how far either way.
    pub const REORDER_WINDOW: i64 = 512;

    /// The report once every row was pushed (or the chain broke with [`Step::Removed`]).
    pub fn finish(mut self) -> ChainReport {
        if self.report.broken_at.is_some() {
            return self.report;
        }
        self.report.head = hex::encode(self.prev_hash);
        if self.expected.is_some() && self.report.expected_head_found != Some(true) {
            self.report.expected_head_found = Some(false);
            self.report.ok = false;
            self.report.problem = Some("removed");
            self.report.detail = Some("the expected head is not in the chain: rows after it were removed, or the log was replaced".into());
        }
        self.report
    }

    fn break_at(&mut self, seq: i64, problem: &'static str, detail: String) {
        self.report.ok = false;
        self.report.broken_at = Some(seq);
        self.report.problem = Some(problem);
        self.report.detail = Some(detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_head_of_an_empty_log_or_older_than_the_checkpoint_is_passed_through() {
        let empty = KeptHead {
            seq: Some(0),
            hash: chain::GENESIS,
        };
        let report = Verifier::new(Log::Events, Checkpoint::default(), Some(empty)).finish();
        assert!(report.ok, "{report:?}");
        let checkpoint = Checkpoint {
            through: 10,
            pruned: 10,
            hash: [7; 32],
            signature: None,
        };
        let older = KeptHead {
            seq: Some(4),
            hash: [1; 32],
        };
        let report = Verifier::new(Log::Events, checkpoint.clone(), Some(older)).finish();
        assert!(report.ok, "{report:?}");
        let newer = KeptHead {
            seq: Some(12),
            hash: [1; 32],
        };
        let report = Verifier::new(Log::Events, checkpoint, Some(newer)).finish();
        assert!(!report.ok, "a head past the end of the log is not in it");
        assert_eq!(report.expected_head_found, Some(false));
    }
}
