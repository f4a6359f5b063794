//! What every engine computes for a row before it stores it: an event row's chain hash,
//! its onward state and its live-stream item, and a change-log row's chain hash.
//!
//! Pure: given the record, the decided status, the row's seq and the hash of the row
//! before it, the result is the same in every engine, so a log moved from one engine to
//! another verifies unchanged. It must never read a clock or do I/O.

use crate::chain::{self, Field, Hash};
use crate::event::{EventRecord, Forward, Reason, Status};
use crate::store::{Change, StreamItem};

/// An event row ready to store.
#[derive(Debug, Clone)]
pub struct EventRow<'a> {
    /// The row's seq.
    pub seq: i64,
    /// The decided status (a first acceptance, a duplicate, or as the record says).
    pub status: Status,
    /// The decided reason: the record's, or the writer's refusal of a replayed key.
    pub reason: Option<Reason>,
    /// The decided detail: the record's, or the writer's refusal's.
    pub detail: Option<&'a str>,
    /// The row's chain hash (encoding v2).
    pub hash: Hash,
    /// `skipped` or `pending` for a listening account's first acceptance, else none.
    pub forward_status: Option<&'static str>,
    /// Whether the row goes to the live stream.
    pub streamed: bool,
    /// The chat message to queue in the outbox: (recipient, text).
    pub deliver: Option<(&'a str, &'a str)>,
}

impl<'a> EventRow<'a> {
    /// Prepares `r` as the row at `seq` with `status`, chained from `prev`.
    pub fn new(r: &'a EventRecord, status: Status, seq: i64, prev: &Hash) -> EventRow<'a> {
        EventRow::decided(r, (status, r.reason, r.detail.as_deref()), seq, prev)
    }

    /// Prepares `r`, which the record says is accepted, as a row the writer refused for
    /// `reason`, with `detail` instead of the record's.
    pub fn refused(
        r: &'a EventRecord,
        reason: Reason,
        detail: &'a str,
        seq: i64,
        prev: &Hash,
    ) -> EventRow<'a> {
        EventRow::decided(r, (Status::Rejected, Some(reason), Some(detail)), seq, prev)
    }

    fn decided(
        r: &'a EventRecord,
        (status, reason, detail): (Status, Option<Reason>, Option<&'a str>),
        seq: i64,
        prev: &Hash,
    ) -> EventRow<'a> {
        // The chain takes the stored body as its digest (encoding v2). A body stored whole
        // has the digest the front computed; a cut one is hashed here (a rejection's, at
        // most `limits.rejected_body_bytes`; a hash-only account's stored body is empty).
        let body_digest = match (r.body_truncated, r.body_sha256) {
            (false, Some(whole)) => whole,
            _ => chain::body_digest(&r.body),
        };
        debug_assert_eq!(body_digest, chain::body_digest(&r.body));
        let e = &r.extracted;
        let fields = [
            Field::Int(seq),
            Field::Int(r.received_at),
            Field::from(r.account.as_str()),
            Field::from(status.as_str()),
            Field::from(reason.map(|x| x.as_str())),
            Field::from(detail),
            Field::from(e.event_id.as_deref()),
            Field::from(e.event_type.as_deref()),
            Field::from(e.sender.as_deref()),
            Field::from(e.source.as_deref()),
            Field::from(e.params.as_deref()),
            Field::from(r.method.as_str()),
            Field::from(r.path.as_str()),
            Field::from(r.query.as_str()),
            Field::from(r.remote_addr.as_str()),
            Field::from(r.headers.as_str()),
            Field::from(r.content_type.as_deref()),
            Field::Blob(&body_digest),
            Field::Int(r.body_size as i64),
            r.body_sha256
                .as_ref()
                .map_or(Field::Null, |h| Field::Blob(h)),
            Field::Int(i64::from(r.body_truncated)),
            Field::Int(r.handle_micros),
        ];
        let hash = chain::row_hash(chain::Version::V2, prev, &fields);
        // Only a first acceptance flows onward; duplicates never forward again.
        let forward = if status == Status::Accepted {
            &r.forward
        } else {
            &Forward::None
        };
        let (forward_status, streamed, deliver) = match forward {
            Forward::None => (None, false, None),
            Forward::Skipped => (Some("skipped"), false, None),
            Forward::StreamOnly => (Some("skipped"), true, None),
            Forward::Deliver { to, text } => {
                (Some("pending"), true, Some((to.as_str(), text.as_str())))
            }
        };
        EventRow {
            seq,
            status,
            reason,
            detail,
            hash,
            forward_status,
            streamed,
            deliver,
        }
    }

    /// The live-stream item of a streamed row (the listing's shape).
    pub fn stream_item(&self, r: &EventRecord) -> Option<StreamItem> {
        let e = &r.extracted;
        self.streamed.then(|| StreamItem {
            seq: self.seq,
            account: r.account.clone(),
            data: serde_json::json!({
                "id": crate::event::public_id(self.seq),
                "received_at": crate::clock::format_micros(r.received_at),
                "account": r.account,
                "status": self.status.as_str(),
                "event_id": e.event_id,
                "event_type": e.event_type,
                "sender": e.sender,
                "source": e.source,
                "params": e.params.as_deref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()),
                "forward_status": self.forward_status,
            })
            .to_string(),
        })
    }
}

/// The chain hash of the change-log row at `seq`, chained from `prev` (encoding v1).
pub fn change_hash(seq: i64, prev: &Hash, change: &Change) -> Hash {
    let fields = [
        Field::Int(seq),
        Field::Int(change.at),
        Field::from(change.actor.as_str()),
        Field::from(change.action.as_str()),
        Field::from(change.account.as_deref()),
        Field::from(change.detail.as_str()),
    ];
    chain::row_hash(chain::Version::V1, prev, &fields)
}
