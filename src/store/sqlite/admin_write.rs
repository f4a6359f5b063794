//! Admin writes: the account, token, retention and delivery changes the writer applies,
//! each with its change-log row chained like every audit row.
//!
//! Owns how each [`AdminWrite`] is applied inside the writer's transaction (in a
//! savepoint, so a refused write leaves no trace in the group). Only the writer calls
//! [`apply`]; it must never run outside the writer's transaction.

use rusqlite::{OptionalExtension, params};

use super::writer::Heads;
use crate::chain::Hash;
use crate::destination::CHAT;
use crate::store::chained::change_hash;
use crate::store::{AdminWrite, Change, DestinationWrite, StoreError};

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
            unchanged_since,
            change,
        } => {
            let n = tx.execute(
                "UPDATE accounts SET spec = ?2, listening = ?3, updated_at = ?4
                 WHERE name = ?1 AND (?5 IS NULL OR updated_at = ?5)",
                params![name, spec, listening, change.at, unchanged_since],
            )?;
            if n == 0 && unchanged_since.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a newer change of account {name:?}"
                )));
            }
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
            // Its destinations go with it; what waited for them is cancelled. Its chat
            // messages, accepted while it existed, still go.
            tx.execute("DELETE FROM destinations WHERE account = ?1", params![name])?;
            tx.execute(
                "UPDATE deliveries SET status = 'cancelled'
                 WHERE account = ?1 AND destination <> ?2 AND status IN ('pending', 'retrying')",
                params![name, CHAT],
            )?;
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
        AdminWrite::Destination(w) => match destination(tx, w)? {
            (n, Some(change)) => {
                affected = n;
                change
            }
            (n, None) => return Ok((n, None)),
        },
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

/// Applies a destination write; returns the rows affected and the change-log row to
/// append, if any.
fn destination<'w>(
    tx: &rusqlite::Savepoint<'_>,
    write: &'w DestinationWrite,
) -> Result<(u64, Option<&'w Change>), StoreError> {
    Ok(match write {
        DestinationWrite::Create { row, change } => {
            let n = tx.execute(
                "INSERT INTO destinations (account, name, spec, keys, max_in_flight, created_at,
                    updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT(account, name) DO NOTHING",
                params![
                    row.account,
                    row.name,
                    row.spec,
                    row.keys,
                    row.max_in_flight,
                    change.at
                ],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("destination {:?}", row.name)));
            }
            (1, Some(change))
        }
        DestinationWrite::Update { row, change } => {
            let n = tx.execute(
                "UPDATE destinations SET spec = ?3, keys = ?4, max_in_flight = ?5,
                    updated_at = ?6 WHERE account = ?1 AND name = ?2",
                params![
                    row.account,
                    row.name,
                    row.spec,
                    row.keys,
                    row.max_in_flight,
                    change.at
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("destination {:?}", row.name)));
            }
            (1, Some(change))
        }
        DestinationWrite::Delete {
            account,
            name,
            change,
        } => {
            let n = tx.execute(
                "DELETE FROM destinations WHERE account = ?1 AND name = ?2",
                params![account, name],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("destination {name:?}")));
            }
            tx.execute(
                "UPDATE deliveries SET status = 'cancelled'
                 WHERE account = ?1 AND destination = ?2 AND status IN ('pending', 'retrying')",
                params![account, name],
            )?;
            (1, Some(change))
        }
        DestinationWrite::Attempt {
            id,
            attempts,
            at,
            status,
            next_attempt_at,
            http_status,
            latency_ms,
            detail,
        } => {
            tx.execute(
                "UPDATE deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4,
                    last_error = ?5 WHERE id = ?1 AND status <> 'cancelled'",
                params![
                    id,
                    status,
                    attempts,
                    next_attempt_at,
                    (*status != "delivered").then_some(detail)
                ],
            )?;
            tx.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, http_status,
                    latency_ms, detail)
                 VALUES (?1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM delivery_attempts
                              WHERE delivery_id = ?1), ?2, ?3, ?4, ?5, ?6)",
                params![id, at, status, http_status, latency_ms, detail],
            )?;
            // A chat message's state is its event's `forward_status` too.
            tx.execute(
                "UPDATE events SET forward_status = ?2
                 WHERE seq = (SELECT seq FROM deliveries WHERE id = ?1 AND destination = ?3)",
                params![id, status, CHAT],
            )?;
            (1, None)
        }
        DestinationWrite::Redrive { filter, change } => {
            let statuses = serde_json::to_string(&filter.statuses).unwrap_or_default();
            let matching = "status IN (SELECT value FROM json_each(?2))
                   AND (?3 IS NULL OR account = ?3) AND (?4 IS NULL OR destination = ?4)
                   AND (?5 IS NULL OR id = ?5) AND (?6 IS NULL OR created_at >= ?6)
                   AND (?7 IS NULL OR created_at < ?7) AND (?8 IS NULL OR seq = ?8)";
            let args = params![
                change.at,
                statuses,
                filter.account,
                filter.destination,
                filter.id,
                filter.since,
                filter.until,
                filter.seq,
                CHAT
            ];
            // The chat messages among them show as pending on their events again.
            tx.execute(
                &format!(
                    "UPDATE events SET forward_status = 'pending' WHERE seq IN (
                         SELECT seq FROM deliveries WHERE destination = ?9 AND {matching})
                       AND ?1 IS NOT NULL"
                ),
                args,
            )?;
            let n = tx.execute(
                &format!(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1,
                        last_error = NULL
                     WHERE {matching} AND ?9 IS NOT NULL"
                ),
                args,
            )?;
            if n == 0
                && let Some(seq) = filter.seq
            {
                // Redelivering one event's message that is not dead changes nothing.
                return Err(StoreError::NotFound(format!(
                    "a dead or no_session delivery for {}",
                    crate::event::public_id(seq)
                )));
            }
            (n as u64, Some(change))
        }
    })
}
