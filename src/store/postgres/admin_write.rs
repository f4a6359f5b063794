//! Admin writes on PostgreSQL: accounts, tokens, retention and delivery outcomes, each
//! with its change-log row chained from the change log's locked head.
//!
//! Owns how each [`AdminWrite`] is applied inside the writer's transaction, in a savepoint
//! the writer opens, so a refused write leaves no trace in the group. Only the writer calls
//! [`apply`]; it must never run outside the writer's transaction.

use tokio_postgres::Transaction;

use super::audit;
use super::writer::Head;
use crate::destination::CHAT;
use crate::store::chained::change_hash;
use crate::store::{AdminWrite, Change, DestinationWrite, StoreError};

/// Whether other nodes must hear of this write (they keep accounts and tokens in memory).
pub(super) fn concerns_every_node(write: &AdminWrite) -> bool {
    matches!(
        write,
        AdminWrite::CreateAccount { .. }
            | AdminWrite::UpdateAccount { .. }
            | AdminWrite::DeleteAccount { .. }
            | AdminWrite::AddToken { .. }
            | AdminWrite::RevokeToken { .. }
            | AdminWrite::Destination(
                DestinationWrite::Create { .. }
                    | DestinationWrite::Update { .. }
                    | DestinationWrite::Delete { .. }
            )
    )
}

/// Applies the write and appends its change-log row after `head`; returns the rows it
/// affected and moves `head` past the change row only when it succeeds.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    head: &mut Head,
    write: &AdminWrite,
) -> Result<u64, StoreError> {
    let mut affected = 1;
    let pruned_change;
    let change = match write {
        AdminWrite::CreateAccount { name, spec, change } => {
            let n = tx
                .execute(
                    "INSERT INTO accounts (name, spec, listening, created_at, updated_at)
                     VALUES ($1, $2, 0, $3, $3) ON CONFLICT (name) DO NOTHING",
                    &[name, spec, &change.at],
                )
                .await?;
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
            let n = tx
                .execute(
                    "UPDATE accounts SET spec = $2, listening = $3, updated_at = $4
                     WHERE name = $1 AND ($5::bigint IS NULL OR updated_at = $5)",
                    &[
                        name,
                        spec,
                        &i64::from(*listening),
                        &change.at,
                        unchanged_since,
                    ],
                )
                .await?;
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
            let n = tx
                .execute("DELETE FROM accounts WHERE name = $1", &[name])
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {name:?}")));
            }
            // Its destinations go with it; what waited for them is cancelled. Its chat
            // messages, accepted while it existed, still go.
            tx.execute("DELETE FROM destinations WHERE account = $1", &[name])
                .await?;
            tx.execute(
                "UPDATE deliveries SET status = 'cancelled', claimed_by = NULL,
                    claimed_until = NULL
                 WHERE account = $1 AND destination <> $2 AND status IN ('pending', 'retrying')",
                &[name, &CHAT],
            )
            .await?;
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
                audit::prune_events(tx, *before, *max_rows, change.at, key, *dedupe_before).await?;
            if !p.changed() {
                return Ok(0);
            }
            affected = p.rows;
            pruned_change = change.pruned(&p, *before);
            &pruned_change
        }
        AdminWrite::Anchor { change } => {
            // Nodes starting together may each ask; the change log's head is locked here,
            // so the first anchor is the only one.
            if tx
                .query_opt(
                    "SELECT 1 FROM changes WHERE action = 'audit.anchored' LIMIT 1",
                    &[],
                )
                .await?
                .is_some()
            {
                return Ok(0);
            }
            change
        }
        AdminWrite::RevokeToken { name, change } => {
            let n = tx
                .execute("DELETE FROM tokens WHERE name = $1", &[name])
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("token {name:?}")));
            }
            change
        }
        AdminWrite::AddToken { entry, change } => {
            tx.execute(
                "INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash",
                &[
                    &entry.name,
                    &entry.role.as_str(),
                    &&entry.hash[..],
                    &change.at,
                ],
            )
            .await?;
            change
        }
        AdminWrite::Destination(w) => match destination(tx, w).await? {
            (n, Some(change)) => {
                affected = n;
                change
            }
            (n, None) => return Ok(n),
        },
    };
    let seq = head.seq + 1;
    let hash = change_hash(seq, &head.hash, change);
    tx.execute(
        "INSERT INTO changes (seq, at, actor, action, account, detail, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &seq,
            &change.at,
            &change.actor,
            &change.action,
            &change.account,
            &change.detail,
            &&hash[..],
        ],
    )
    .await?;
    *head = Head { seq, hash };
    Ok(affected)
}

/// Applies a destination write; returns the rows affected and the change-log row to
/// append, if any.
async fn destination<'w>(
    tx: &Transaction<'_>,
    write: &'w DestinationWrite,
) -> Result<(u64, Option<&'w Change>), StoreError> {
    Ok(match write {
        DestinationWrite::Create { row, change } => {
            let n = tx
                .execute(
                    "INSERT INTO destinations (account, name, spec, keys, max_in_flight,
                        created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (account, name) DO NOTHING",
                    &[
                        &row.account,
                        &row.name,
                        &row.spec,
                        &row.keys,
                        &row.max_in_flight,
                        &change.at,
                    ],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::Conflict(format!("destination {:?}", row.name)));
            }
            (1, Some(change))
        }
        DestinationWrite::Update { row, change } => {
            let n = tx
                .execute(
                    "UPDATE destinations SET spec = $3, keys = $4, max_in_flight = $5,
                        updated_at = $6 WHERE account = $1 AND name = $2",
                    &[
                        &row.account,
                        &row.name,
                        &row.spec,
                        &row.keys,
                        &row.max_in_flight,
                        &change.at,
                    ],
                )
                .await?;
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
            let n = tx
                .execute(
                    "DELETE FROM destinations WHERE account = $1 AND name = $2",
                    &[account, name],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("destination {name:?}")));
            }
            tx.execute(
                "UPDATE deliveries SET status = 'cancelled', claimed_by = NULL,
                    claimed_until = NULL
                 WHERE account = $1 AND destination = $2 AND status IN ('pending', 'retrying')",
                &[account, name],
            )
            .await?;
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
            let last_error = (*status != "delivered").then_some(detail);
            // The attempt is recorded, so this node's claim on the delivery ends.
            tx.execute(
                "UPDATE deliveries SET status = $2, attempts = $3, next_attempt_at = $4,
                    last_error = $5, claimed_by = NULL, claimed_until = NULL
                 WHERE id = $1 AND status <> 'cancelled'",
                &[
                    id,
                    status,
                    &i64::from(*attempts),
                    next_attempt_at,
                    &last_error,
                ],
            )
            .await?;
            tx.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, http_status,
                    latency_ms, detail)
                 VALUES ($1, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM delivery_attempts
                              WHERE delivery_id = $1), $2, $3, $4, $5, $6)",
                &[
                    id,
                    at,
                    status,
                    &http_status.map(i64::from),
                    latency_ms,
                    detail,
                ],
            )
            .await?;
            // A chat message's state is its event's `forward_status` too.
            tx.execute(
                "UPDATE events SET forward_status = $2
                 WHERE seq = (SELECT seq FROM deliveries WHERE id = $1 AND destination = $3)",
                &[id, status, &CHAT],
            )
            .await?;
            (1, None)
        }
        DestinationWrite::Redrive { filter, change } => {
            // The chat messages among them show as pending on their events again.
            let n: i64 = tx
                .query_one(
                    "WITH r AS (
                         UPDATE deliveries SET status = 'pending', attempts = 0,
                             next_attempt_at = $1, last_error = NULL, claimed_by = NULL,
                             claimed_until = NULL
                         WHERE status = ANY($2)
                           AND ($3::text IS NULL OR account = $3)
                           AND ($4::text IS NULL OR destination = $4)
                           AND ($5::bigint IS NULL OR id = $5)
                           AND ($6::bigint IS NULL OR created_at >= $6)
                           AND ($7::bigint IS NULL OR created_at < $7)
                           AND ($8::bigint IS NULL OR seq = $8)
                         RETURNING seq, destination),
                     e AS (
                         UPDATE events SET forward_status = 'pending'
                         WHERE seq IN (SELECT seq FROM r WHERE destination = $9))
                     SELECT COUNT(*) FROM r",
                    &[
                        &change.at,
                        &filter.statuses,
                        &filter.account,
                        &filter.destination,
                        &filter.id,
                        &filter.since,
                        &filter.until,
                        &filter.seq,
                        &CHAT,
                    ],
                )
                .await?
                .get(0);
            if n == 0
                && let Some(seq) = filter.seq
            {
                // Redelivering one event's message that is not dead changes nothing.
                return Err(StoreError::NotFound(format!(
                    "a dead or no_session delivery for {}",
                    crate::event::public_id(seq)
                )));
            }
            (u64::try_from(n).unwrap_or(0), Some(change))
        }
    })
}
