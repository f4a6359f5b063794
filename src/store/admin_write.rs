//! Admin writes: the account, token, retention and delivery changes the writer applies,
//! each with its change-log row chained like every audit row.
//!
//! Owns [`AdminWrite`], [`Change`] and how each is applied inside the writer's transaction
//! (in a savepoint, so a refused write leaves no trace in the group). Only the writer calls
//! [`apply`]; it must never run outside the writer's transaction.

use rusqlite::params;

use super::StoreError;
use super::writer::Heads;
use crate::chain::{self, Field, Hash};
use crate::tokens::TokenEntry;

/// A change-log row: who did what to which account, and when.
#[derive(Debug, Clone)]
pub struct Change {
    /// When, in microseconds since the epoch.
    pub at: i64,
    /// The token name (with its role) that made the change.
    pub actor: String,
    /// What was done: `account.created`, `account.updated`, `account.deleted`, ...
    pub action: String,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// Secret-free JSON detail.
    pub detail: String,
}

/// An admin write, always together with its change-log row.
#[derive(Debug, Clone)]
pub enum AdminWrite {
    /// Creates an account; fails with `Conflict` when the name is taken.
    CreateAccount {
        /// The name.
        name: String,
        /// The stored spec JSON (secrets in clear).
        spec: String,
        /// The change-log row.
        change: Change,
    },
    /// Replaces an account's spec and listening flag; fails with `NotFound`.
    UpdateAccount {
        /// The name.
        name: String,
        /// The stored spec JSON (secrets in clear).
        spec: String,
        /// Whether the listener is on.
        listening: bool,
        /// The change-log row.
        change: Change,
    },
    /// Deletes an account (its audit rows stay); fails with `NotFound`.
    DeleteAccount {
        /// The name.
        name: String,
        /// The change-log row.
        change: Change,
    },
    /// Prunes events received before a time, as a seq prefix, leaving a chain checkpoint.
    /// Writes a change-log row only when something was pruned.
    PruneEvents {
        /// Microseconds since the epoch.
        before: i64,
        /// The most rows pruned by this one write.
        max_rows: i64,
        /// Who asked, and when (`action` and `detail` are filled in by the writer).
        change: Change,
    },
    /// Records one delivery attempt: the outbox row's new state, the attempt itself, and
    /// the event's `forward_status`. Writes no change-log row.
    ForwardAttempt {
        /// The event's seq.
        seq: i64,
        /// Attempts made since the message was queued (or last redelivered).
        attempts: u32,
        /// When, in microseconds since the epoch.
        at: i64,
        /// `delivered`, `no_session`, `retrying` or `dead`.
        status: &'static str,
        /// When to try again (for `retrying`).
        next_attempt_at: i64,
        /// The connector's HTTP status, if it answered.
        http_status: Option<u16>,
        /// What happened, in words.
        detail: String,
    },
    /// Queues a dead or no-session delivery again, with a fresh attempt budget.
    Redeliver {
        /// The event's seq.
        seq: i64,
        /// The change-log row.
        change: Change,
    },
    /// Removes a token.
    RevokeToken {
        /// The token's name.
        name: String,
        /// The change-log row.
        change: Change,
    },
    /// Stores a token's hash.
    AddToken {
        /// The token.
        entry: TokenEntry,
        /// The change-log row.
        change: Change,
    },
}

/// Applies an admin write inside a savepoint, so a refused write leaves no trace while the
/// rest of the group still commits.
pub(super) fn apply(
    tx: &mut rusqlite::Transaction<'_>,
    heads: &mut Heads,
    write: &AdminWrite,
) -> Result<u64, StoreError> {
    let mut sp = tx.savepoint()?;
    match apply_admin_inner(&sp, heads, write) {
        Ok((n, hash)) => {
            sp.commit()?;
            if let Some(hash) = hash {
                heads.advance_change(hash);
            }
            Ok(n)
        }
        Err(e) => {
            sp.rollback()?;
            sp.commit()?;
            Err(e)
        }
    }
}

/// Applies the write and appends its change-log row; returns the rows affected and the
/// change row's chain hash (none when nothing was changed and so nothing recorded).
fn apply_admin_inner(
    tx: &rusqlite::Savepoint<'_>,
    heads: &Heads,
    write: &AdminWrite,
) -> Result<(u64, Option<Hash>), StoreError> {
    let mut affected = 1;
    let pruned_change;
    let change = match write {
        AdminWrite::CreateAccount { name, spec, change } => {
            let n = tx.execute(
                "INSERT INTO accounts (name, spec, listening, created_at, updated_at)
                 VALUES (?1, ?2, 0, ?3, ?3) ON CONFLICT(name) DO NOTHING",
                params![name, spec, change.at],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("account {name:?}")));
            }
            change
        }
        AdminWrite::UpdateAccount {
            name,
            spec,
            listening,
            change,
        } => {
            let n = tx.execute(
                "UPDATE accounts SET spec = ?2, listening = ?3, updated_at = ?4 WHERE name = ?1",
                params![name, spec, listening, change.at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {name:?}")));
            }
            change
        }
        AdminWrite::DeleteAccount { name, change } => {
            let n = tx.execute("DELETE FROM accounts WHERE name = ?1", params![name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {name:?}")));
            }
            change
        }
        AdminWrite::PruneEvents {
            before,
            max_rows,
            change,
        } => {
            let (n, through) = super::audit::prune_events(tx, *before, *max_rows, change.at)?;
            if n == 0 {
                return Ok((0, None));
            }
            affected = n;
            pruned_change = Change {
                action: "audit.pruned".into(),
                detail: serde_json::json!({"pruned": n, "through_seq": through,
                    "before": crate::clock::format_micros(*before)})
                .to_string(),
                ..change.clone()
            };
            &pruned_change
        }
        AdminWrite::ForwardAttempt {
            seq,
            attempts,
            at,
            status,
            next_attempt_at,
            http_status,
            detail,
        } => {
            tx.execute(
                "UPDATE outbox SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5
                 WHERE seq = ?1",
                params![seq, status, attempts, next_attempt_at, (*status != "delivered").then_some(detail)],
            )?;
            tx.execute(
                "INSERT INTO forward_attempts (seq, attempt, at, outcome, http_status, detail)
                 VALUES (?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM forward_attempts WHERE seq = ?1),
                         ?2, ?3, ?4, ?5)",
                params![seq, at, status, http_status, detail],
            )?;
            tx.execute(
                "UPDATE events SET forward_status = ?2 WHERE seq = ?1",
                params![seq, status],
            )?;
            return Ok((1, None));
        }
        AdminWrite::Redeliver { seq, change } => {
            let n = tx.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2
                 WHERE seq = ?1 AND status IN ('dead', 'no_session')",
                params![seq, change.at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "a dead or no_session delivery for {}",
                    crate::event::public_id(*seq)
                )));
            }
            tx.execute(
                "UPDATE events SET forward_status = 'pending' WHERE seq = ?1",
                params![seq],
            )?;
            change
        }
        AdminWrite::RevokeToken { name, change } => {
            let n = tx.execute("DELETE FROM tokens WHERE name = ?1", params![name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("token {name:?}")));
            }
            change
        }
        AdminWrite::AddToken { entry, change } => {
            tx.execute(
                "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET role = excluded.role, hash = excluded.hash",
                params![entry.name, entry.role.as_str(), &entry.hash[..], change.at],
            )?;
            change
        }
    };
    let (seq, prev) = heads.next_change();
    let fields = [
        Field::Int(seq),
        Field::Int(change.at),
        Field::from(change.actor.as_str()),
        Field::from(change.action.as_str()),
        Field::from(change.account.as_deref()),
        Field::from(change.detail.as_str()),
    ];
    let hash = chain::row_hash(chain::Version::V1, &prev, &fields);
    tx.execute(
        "INSERT INTO changes (seq, at, actor, action, account, detail, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq,
            change.at,
            change.actor,
            change.action,
            change.account,
            change.detail,
            &hash[..]
        ],
    )?;
    Ok((affected, Some(hash)))
}
