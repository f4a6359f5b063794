//! Admin writes: the account, token, retention and delivery changes the writer applies,
//! each with its change-log row chained like every audit row.
//!
//! Owns how each [`AdminWrite`] is applied inside the writer's transaction (in a
//! savepoint, so a refused write leaves no trace in the group). Only the writer calls
//! [`apply`]; it must never run outside the writer's transaction.

use rusqlite::{OptionalExtension, params};

use super::writer::Heads;
use crate::chain::Hash;
use crate::store::chained::change_hash;
use crate::store::{AdminWrite, StoreError};

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
            dedupe_before,
            key,
            change,
        } => {
            let p =
                super::audit::prune_events(tx, *before, *max_rows, change.at, key, *dedupe_before)?;
            if !p.changed() {
                return Ok((0, None));
            }
            affected = p.rows;
            pruned_change = change.pruned(&p, *before);
            &pruned_change
        }
        AdminWrite::Anchor { change } => {
            if tx
                .query_row(
                    "SELECT 1 FROM changes WHERE action = 'audit.anchored' LIMIT 1",
                    [],
                    |_| Ok(()),
                )
                .optional()?
                .is_some()
            {
                return Ok((0, None));
            }
            change
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
    let hash = change_hash(seq, &prev, change);
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
