//! Reads of destinations and the one outbox on PostgreSQL: the stored destinations, the
//! deliveries shown with an event (its chat message among them) and the backlog by kind.
//! (Claiming due deliveries is `claims`.)
//!
//! Owns these statements. It must never change a row.

use tokio_postgres::GenericClient;

use crate::clock::format_micros;
use crate::destination::CHAT;
use crate::store::StoreError;
use crate::store::rows::{DeliveryAttemptRow, DeliveryRow, OutboxStats, StoredDestination};

pub(super) async fn destinations(
    c: &impl GenericClient,
) -> Result<Vec<StoredDestination>, StoreError> {
    let rows = c
        .query(
            "SELECT account, name, spec, keys, max_in_flight, created_at, updated_at
             FROM destinations ORDER BY account, name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredDestination {
            account: r.get(0),
            name: r.get(1),
            spec: r.get(2),
            keys: r.get(3),
            max_in_flight: r.get(4),
            created_at: r.get(5),
            updated_at: r.get(6),
        })
        .collect())
}

pub(super) async fn of_event(
    c: &impl GenericClient,
    seq: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows = c
        .query(
            "SELECT id, destination, status, attempts, next_attempt_at FROM deliveries
             WHERE seq = $1 ORDER BY destination",
            &[&seq],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.get(0);
        let status: String = r.get(2);
        let next: i64 = r.get(4);
        let history = c
            .query(
                "SELECT attempt, at, outcome, http_status, latency_ms, detail
                 FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
                &[&id],
            )
            .await?
            .iter()
            .map(|a| DeliveryAttemptRow {
                attempt: a.get(0),
                at: format_micros(a.get(1)),
                outcome: a.get(2),
                http_status: a.get(3),
                latency_ms: a.get(4),
                detail: a.get(5),
            })
            .collect();
        out.push(DeliveryRow {
            id: format!("dlv_{id}"),
            destination: r.get(1),
            next_attempt_at: matches!(status.as_str(), "pending" | "retrying")
                .then(|| format_micros(next)),
            status,
            attempts: r.get(3),
            history,
        });
    }
    Ok(out)
}

pub(super) async fn stats(c: &impl GenericClient) -> Result<OutboxStats, StoreError> {
    let rows = c
        .query(
            "SELECT destination = $1, COUNT(*), MIN(created_at) FROM deliveries
             WHERE status IN ('pending', 'retrying') GROUP BY destination = $1",
            &[&CHAT],
        )
        .await?;
    let mut out = OutboxStats::default();
    for r in rows {
        if r.get::<_, bool>(0) {
            (out.chat_backlog, out.chat_oldest_queued) = (r.get(1), r.get(2));
        } else {
            (out.backlog, out.oldest_queued) = (r.get(1), r.get(2));
        }
    }
    Ok(out)
}
