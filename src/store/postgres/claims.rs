//! Outbox claims: which node sends a due delivery (to an HTTP destination or a chat
//! message). A node claims what is due with a lease; recording the attempt ends the
//! claim, and a claim whose node died runs out, so another node takes the delivery over.
//!
//! Owns the claiming statements. The claim's condition (unclaimed or lease run out) is
//! checked again on the locked row, so of two nodes claiming one row at the same moment
//! only the first takes it. It must never hand one delivery to two nodes while a lease
//! runs.

use tokio_postgres::GenericClient;

use crate::destination::CHAT;
use crate::store::{DueDelivery, StoreError};

/// Claims deliveries of both kinds due at `now` for `node` until `until`: per destination
/// (an account's chat messages are one destination) the lowest seqs among its due and its
/// claimed (in flight anywhere) deliveries, up to its `max_in_flight` (`chat_cap` for chat
/// messages), less those claimed; none of a destination in `paused`, none to a
/// destination no longer stored. The oldest due first.
pub(super) async fn claim_due(
    c: &impl GenericClient,
    node: &str,
    now: i64,
    until: i64,
    limit: usize,
    paused: &[String],
    chat_cap: usize,
) -> Result<Vec<DueDelivery>, StoreError> {
    let rows = c
        .query(
            "WITH claimed AS (
                 UPDATE deliveries SET claimed_by = $1, claimed_until = $3
                 WHERE id IN (
                     SELECT id FROM (
                         SELECT d.id, d.seq, d.next_attempt_at, d.claimed_until,
                             CASE WHEN d.destination = $6 THEN $7 ELSE x.max_in_flight END
                                 AS cap,
                             ROW_NUMBER() OVER (PARTITION BY d.account, d.destination
                                 ORDER BY d.seq) AS rn
                         FROM deliveries d
                         LEFT JOIN destinations x
                             ON x.account = d.account AND x.name = d.destination
                         WHERE d.status IN ('pending', 'retrying')
                           AND (x.name IS NOT NULL OR (d.destination = $6 AND $7 > 0))
                           AND (d.next_attempt_at <= $2 OR d.claimed_until >= $2)
                           AND NOT ((d.account || '/' || d.destination) = ANY($5))
                     ) w
                     WHERE rn <= cap AND (claimed_until IS NULL OR claimed_until < $2)
                     ORDER BY next_attempt_at, seq LIMIT $4)
                   AND status IN ('pending', 'retrying')
                   AND (claimed_until IS NULL OR claimed_until < $2)
                 RETURNING id, seq, account, destination, attempts, next_attempt_at,
                     recipient, text)
             SELECT c.id, c.seq, c.account, c.destination, c.attempts, c.next_attempt_at,
                 c.recipient, c.text, e.event_id, e.event_type
             FROM claimed c LEFT JOIN events e ON e.seq = c.seq",
            &[
                &node,
                &now,
                &until,
                &(limit as i64),
                &paused,
                &CHAT,
                &(chat_cap as i64),
            ],
        )
        .await?;
    let mut due: Vec<(i64, DueDelivery)> = rows
        .iter()
        .map(|r| {
            (
                r.get(5),
                DueDelivery {
                    id: r.get(0),
                    seq: r.get(1),
                    account: r.get(2),
                    destination: r.get(3),
                    attempts: u32::try_from(r.get::<_, i64>(4)).unwrap_or(u32::MAX),
                    recipient: r.get(6),
                    text: r.get(7),
                    event_id: r.get(8),
                    event_type: r.get(9),
                },
            )
        })
        .collect();
    due.sort_by_key(|(at, d)| (*at, d.seq));
    Ok(due.into_iter().map(|(_, d)| d).collect())
}

/// Ends this node's claims on deliveries it took but will not attempt now.
pub(super) async fn release(
    c: &impl GenericClient,
    node: &str,
    ids: &[i64],
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL
         WHERE id = ANY($1) AND claimed_by = $2",
        &[&ids, &node],
    )
    .await?;
    Ok(())
}

/// When the next pending or retrying delivery may be claimed: when it is due, or when
/// another node's claim on it runs out.
pub(super) async fn next_due(c: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    Ok(c.query_one(
        "SELECT MIN(GREATEST(next_attempt_at, COALESCE(claimed_until + 1, 0)))::BIGINT
             FROM deliveries WHERE status IN ('pending', 'retrying')",
        &[],
    )
    .await?
    .get(0))
}

/// When the next delivery this node could claim and start is due, as [`claim_due`]
/// chooses without the per-destination cap: none of a destination in `paused`, none of
/// this node's `in_flight`, none to a destination no longer stored, chat messages only
/// when `chat_cap` > 0; another node's claim counts from when it runs out. A time already
/// past means deliveries wait for one in flight.
pub(super) async fn next_startable(
    c: &impl GenericClient,
    paused: &[String],
    in_flight: &[i64],
    chat_cap: usize,
) -> Result<Option<i64>, StoreError> {
    Ok(c.query_one(
        "SELECT MIN(GREATEST(d.next_attempt_at, COALESCE(d.claimed_until + 1, 0)))::BIGINT
             FROM deliveries d
             LEFT JOIN destinations x ON x.account = d.account AND x.name = d.destination
             WHERE d.status IN ('pending', 'retrying')
               AND (x.name IS NOT NULL OR (d.destination = $1 AND $2 > 0))
               AND NOT (d.id = ANY($3))
               AND NOT ((d.account || '/' || d.destination) = ANY($4))",
        &[&CHAT, &(chat_cap as i64), &in_flight, &paused],
    )
    .await?
    .get(0))
}
