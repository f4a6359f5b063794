//! Outbox claims: which node sends a due delivery. A node claims what is due with a lease;
//! recording the attempt ends the claim, and a claim whose node died runs out, so another
//! node takes the delivery over.
//!
//! Owns the claiming statements. `FOR UPDATE SKIP LOCKED` lets nodes claim at the same
//! moment without waiting on each other or taking the same row. It must never hand one
//! delivery to two nodes while a lease runs.

use tokio_postgres::GenericClient;

use crate::store::{Delivery, StoreError};

/// Claims up to `limit` deliveries due at `now` for `node` until `until`; oldest due first.
pub(super) async fn claim_due(
    c: &impl GenericClient,
    node: &str,
    now: i64,
    until: i64,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = c
        .query(
            "UPDATE outbox SET claimed_by = $1, claimed_until = $3
             WHERE seq IN (
                 SELECT seq FROM outbox
                 WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $2
                   AND (claimed_until IS NULL OR claimed_until < $2)
                 ORDER BY next_attempt_at LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING seq, account, recipient, text, event_id, event_type, attempts,
                 next_attempt_at",
            &[&node, &now, &until, &(limit as i64)],
        )
        .await?;
    let mut due: Vec<(i64, Delivery)> = rows
        .iter()
        .map(|r| {
            (
                r.get(7),
                Delivery {
                    seq: r.get(0),
                    account: r.get(1),
                    recipient: r.get(2),
                    text: r.get(3),
                    event_id: r.get(4),
                    event_type: r.get(5),
                    attempts: u32::try_from(r.get::<_, i64>(6)).unwrap_or(u32::MAX),
                },
            )
        })
        .collect();
    due.sort_by_key(|(at, d)| (*at, d.seq));
    Ok(due.into_iter().map(|(_, d)| d).collect())
}

/// When the next pending or retrying delivery may be claimed: when it is due, or when
/// another node's claim on it runs out.
pub(super) async fn next_due(c: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    Ok(c.query_one(
        "SELECT MIN(GREATEST(next_attempt_at, COALESCE(claimed_until + 1, 0)))::BIGINT
             FROM outbox WHERE status IN ('pending', 'retrying')",
        &[],
    )
    .await?
    .get(0))
}
