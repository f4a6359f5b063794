//! This node's writer: a task that drains the bounded job queue and commits what is
//! pending in one transaction, then answers each job.
//!
//! A group that writes events locks the events log's head row (`chain_heads`) first, and
//! one with admin writes the change log's after it, always in that order: groups of every
//! node are then serialised on the chain, each row chains from the committed head, and
//! seq order is commit order. Dedupe is decided inside that lock, so the same id sent to
//! two nodes at once is accepted once. Events go in with one statement per table per
//! group, from statements prepared once per connection, and the statements of a group are
//! pipelined: the head's lock and the dedupe lookup go out together, then every insert
//! with the head's update, so a group costs four round trips to the server whatever its
//! size. It must never answer a job before its commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Statement, Transaction};

use super::admin_write;
use crate::chain::{self, Hash};
use crate::destination::CHAT;
use crate::event::{Committed, EventRecord, Status};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::chained::EventRow;
use crate::store::queue::Job;

/// What the writer shares with the rest of the engine.
#[derive(Clone)]
pub(super) struct Shared {
    /// False after a failed group, until one commits.
    pub healthy: Arc<AtomicBool>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Woken after a group with streamed events commits, so they are published at once.
    pub committed: Arc<Notify>,
}

/// A log's head as locked for a group: the last seq and its hash.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub seq: i64,
    pub hash: Hash,
}

/// Locks and reads a log's head row until the transaction ends.
pub(super) async fn lock_head(tx: &Transaction<'_>, log: &str) -> Result<Head, StoreError> {
    let row = tx.query_one(LOCK_HEAD, &[&log]).await?;
    let hash: Vec<u8> = row.get(1);
    Ok(Head {
        seq: row.get(0),
        hash: Hash::try_from(hash.as_slice()).unwrap_or(chain::GENESIS),
    })
}

async fn store_head(tx: &Transaction<'_>, log: &str, head: Head) -> Result<(), StoreError> {
    tx.execute(STORE_HEAD, &[&log, &head.seq, &&head.hash[..]])
        .await?;
    Ok(())
}

const LOCK_HEAD: &str = "SELECT seq, hash FROM chain_heads WHERE log = $1 FOR UPDATE";
const STORE_HEAD: &str = "UPDATE chain_heads SET seq = $2, hash = $3 WHERE log = $1";
const KNOWN_IDS: &str = "SELECT d.account, d.event_id, d.seq FROM dedupe d
     JOIN unnest($1::text[], $2::text[]) AS k(account, event_id) USING (account, event_id)";
const INSERT_EVENTS: &str = "INSERT INTO events (seq, received_at, account, status, reason,
        detail, event_id, event_type, sender, source, params, forward_status, method, path,
        query, remote_addr, headers, content_type, body, body_size, body_sha256,
        body_truncated, handle_micros, hash, streamed)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
        $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
        $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
        $17::text[], $18::text[], $19::bytea[], $20::bigint[], $21::bytea[],
        $22::bigint[], $23::bigint[], $24::bytea[], $25::bigint[])";
const INSERT_DEDUPE: &str = "INSERT INTO dedupe (account, event_id, seq)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])";
const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (seq, account, destination, status,
        next_attempt_at, created_at, recipient, text)
     SELECT s, a, d, 'pending', t, t, r, x FROM unnest($1::bigint[], $2::text[],
        $3::text[], $4::bigint[], $5::text[], $6::text[]) AS o(s, a, d, t, r, x)";
const NOTIFY_EVENTS: &str = "SELECT pg_notify('hookgate_events', '')";

/// The statements an event group runs, prepared once per connection (the pool keeps them
/// in its statement cache), so no group waits for the server to parse one.
struct Statements {
    lock_head: Statement,
    store_head: Statement,
    known_ids: Statement,
    events: Statement,
    dedupe: Statement,
    deliveries: Statement,
    notify: Statement,
}

impl Statements {
    /// The connection's cached statements; the first group on a connection prepares them,
    /// together.
    async fn of(client: &deadpool_postgres::Object) -> Result<Statements, tokio_postgres::Error> {
        let (lock_head, store_head, known_ids, events) = tokio::try_join!(
            client.prepare_cached(LOCK_HEAD),
            client.prepare_cached(STORE_HEAD),
            client.prepare_cached(KNOWN_IDS),
            client.prepare_cached(INSERT_EVENTS),
        )?;
        let (dedupe, deliveries, notify) = tokio::try_join!(
            client.prepare_cached(INSERT_DEDUPE),
            client.prepare_cached(INSERT_DELIVERIES),
            client.prepare_cached(NOTIFY_EVENTS),
        )?;
        Ok(Statements {
            lock_head,
            store_head,
            known_ids,
            events,
            dedupe,
            deliveries,
            notify,
        })
    }

    async fn lock_events_head(&self, tx: &Transaction<'_>) -> Result<Head, StoreError> {
        let row = tx.query_one(&self.lock_head, &[&"events"]).await?;
        let hash: Vec<u8> = row.get(1);
        Ok(Head {
            seq: row.get(0),
            hash: Hash::try_from(hash.as_slice()).unwrap_or(chain::GENESIS),
        })
    }

    async fn store_events_head(&self, tx: &Transaction<'_>, head: Head) -> Result<(), StoreError> {
        tx.execute(&self.store_head, &[&"events", &head.seq, &&head.hash[..]])
            .await?;
        Ok(())
    }
}

/// Runs until the queue closes or a shutdown job arrives.
pub(super) async fn run(
    pool: Pool,
    rx: &mut mpsc::Receiver<Job>,
    max_batch: usize,
    shared: &Shared,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(done) = commit_batch(&pool, &mut batch, shared).await {
            let _ = done.send(());
            return;
        }
    }
}

/// What one job came to, held until the commit decides whether it stands.
enum Outcome {
    Event(Result<Committed, StoreError>),
    Admin(Result<u64, StoreError>),
    Probe(Result<(), StoreError>),
    Shutdown,
}

/// How an attempt guards each event: all of them in one statement per table, or each in a
/// savepoint of its own (after one failed), so one bad row leaves nothing while the rest of
/// its group commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Together,
    PerEvent,
}

async fn commit_batch(
    pool: &Pool,
    batch: &mut Vec<Job>,
    shared: &Shared,
) -> Option<oneshot::Sender<()>> {
    let started = std::time::Instant::now();
    let mut attempt = attempt_group(pool, batch, Guard::Together).await;
    if matches!(attempt, Err(Failure::EventFailed)) {
        shared.metrics.record_retried_group();
        attempt = attempt_group(pool, batch, Guard::PerEvent).await;
    }
    let (outcomes, failed, streamed) = match attempt {
        Ok((outcomes, streamed)) => (outcomes, None, streamed),
        Err(Failure::Store(e)) => (Vec::new(), Some(e), false),
        Err(Failure::EventFailed) => (
            Vec::new(),
            Some(StoreError::Unavailable(
                "the write group was abandoned".into(),
            )),
            false,
        ),
    };
    let rows = batch
        .iter()
        .filter(|j| !matches!(j, Job::Shutdown(_)))
        .count();
    shared
        .metrics
        .record_batch(rows, started.elapsed().as_micros() as u64, failed.is_none());
    match &failed {
        Some(e) => {
            shared.healthy.store(false, Ordering::Relaxed);
            tracing::error!(error = %e, "write batch failed; answering 503 for its requests");
        }
        None => shared.healthy.store(true, Ordering::Relaxed),
    }
    if streamed {
        shared.committed.notify_one();
    }
    let mut outcomes = outcomes.into_iter();
    let mut shutdown = None;
    for job in batch.drain(..) {
        let outcome = outcomes.next();
        match job {
            Job::Shutdown(reply) => shutdown = Some(reply),
            Job::Event(_, reply) => {
                let _ = reply.send(match (&failed, outcome) {
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(Outcome::Event(o))) => o,
                    _ => Err(unmatched()),
                });
            }
            Job::Admin(_, reply) => {
                let _ = reply.send(match (&failed, outcome) {
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(Outcome::Admin(o))) => o,
                    _ => Err(unmatched()),
                });
            }
            Job::Probe(reply) => {
                let _ = reply.send(match (&failed, outcome) {
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(Outcome::Probe(o))) => o,
                    _ => Err(unmatched()),
                });
            }
        }
    }
    shutdown
}

fn unmatched() -> StoreError {
    StoreError::Unavailable("the write group lost track of a job".into())
}

/// Why an attempt at a group did not commit.
enum Failure {
    /// An event failed in a [`Guard::Together`] attempt: make the group again per event.
    EventFailed,
    /// The transaction could not begin or commit: nothing of the group stands.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Store(e.into())
    }
}

/// One attempt at writing the group in a single transaction; returns one outcome per job
/// and whether any event was streamed.
async fn attempt_group(
    pool: &Pool,
    batch: &[Job],
    guard: Guard,
) -> Result<(Vec<Outcome>, bool), Failure> {
    let mut client = pool.get().await.map_err(StoreError::from)?;
    let has_events = batch.iter().any(|j| matches!(j, Job::Event(..)));
    let statements = if has_events {
        Some(Statements::of(&client).await?)
    } else {
        None
    };
    let mut tx = client.transaction().await?;
    let events: Vec<(usize, &EventRecord)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, j)| match j {
            Job::Event(r, _) => Some((i, &**r)),
            _ => None,
        })
        .collect();
    let has_admin = batch.iter().any(|j| matches!(j, Job::Admin(..)));
    let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
    let mut streamed = false;
    if let Some(st) = &statements {
        let records: Vec<&EventRecord> = events.iter().map(|(_, r)| *r).collect();
        match guard {
            Guard::Together => {
                // The lookup runs after the lock in the same pipeline, so it sees every
                // group committed before this one took the head.
                let lookup = Lookup::of(&records);
                let (head, known) =
                    tokio::try_join!(st.lock_events_head(&tx), lookup.run(&tx, st))?;
                let (rows, done, head) = chain_events(head, known, &records);
                let any_streamed = done.iter().any(|(_, s)| *s);
                let written = tokio::try_join!(
                    rows.insert(&tx, st),
                    st.store_events_head(&tx, head),
                    notify_if(&tx, st, any_streamed),
                );
                if let Err(e) = written {
                    tracing::warn!(error = %e, "an event of the group failed; writing it again event by event");
                    return Err(Failure::EventFailed);
                }
                for ((i, _), (committed, s)) in events.iter().zip(done) {
                    streamed |= s;
                    outcomes[*i] = Some(Outcome::Event(Ok(committed)));
                }
            }
            Guard::PerEvent => {
                let mut head = st.lock_events_head(&tx).await?;
                for (i, r) in &events {
                    let sp = tx.savepoint("one_event").await?;
                    let outcome = match insert_one(&sp, st, head, r).await {
                        Ok((committed, s, trial)) => {
                            sp.commit().await?;
                            head = trial;
                            streamed |= s;
                            Ok(committed)
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            Err(e)
                        }
                    };
                    outcomes[*i] = Some(Outcome::Event(outcome));
                }
                st.store_events_head(&tx, head).await?;
                notify_if(&tx, st, streamed).await?;
            }
        }
    }
    if has_admin {
        let mut head = lock_head(&tx, "changes").await?;
        let mut changed = false;
        for (i, job) in batch.iter().enumerate() {
            if let Job::Admin(write, _) = job {
                let sp = tx.savepoint("one_admin").await?;
                let outcome = match admin_write::apply(&sp, &mut head, write).await {
                    Ok(n) => {
                        sp.commit().await?;
                        changed |= admin_write::concerns_every_node(write);
                        Ok(n)
                    }
                    Err(e) => {
                        sp.rollback().await?;
                        Err(e)
                    }
                };
                outcomes[i] = Some(Outcome::Admin(outcome));
            }
        }
        store_head(&tx, "changes", head).await?;
        if changed {
            tx.execute(
                "SELECT pg_notify('hookgate_changes', $1)",
                &[&head.seq.to_string()],
            )
            .await?;
        }
    }
    for (i, job) in batch.iter().enumerate() {
        match job {
            Job::Probe(_) => {
                let probe = probe_write(&tx).await;
                if guard == Guard::Together && probe.is_err() {
                    return Err(Failure::EventFailed);
                }
                outcomes[i] = Some(Outcome::Probe(probe));
            }
            Job::Shutdown(_) => outcomes[i] = Some(Outcome::Shutdown),
            _ => {}
        }
    }
    tx.commit().await?;
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Shutdown))
        .collect();
    Ok((outcomes, streamed))
}

/// Writes and removes one padded row: proves the database takes commits again.
async fn probe_write(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let pad = vec![0u8; 64 * 1024];
    tx.execute("INSERT INTO health_probe (pad) VALUES ($1)", &[&pad])
        .await?;
    tx.execute("DELETE FROM health_probe", &[]).await?;
    Ok(())
}

/// The ids of a run of events that may be first acceptances, asked of the `dedupe` table in
/// one statement.
struct Lookup<'a> {
    accounts: Vec<&'a str>,
    ids: Vec<&'a str>,
}

/// The accepted ids a lookup found: (account, event id) → the first acceptance's seq.
type Known = HashMap<(String, String), i64>;

impl<'a> Lookup<'a> {
    fn of(records: &[&'a EventRecord]) -> Lookup<'a> {
        let (mut accounts, mut ids) = (Vec::new(), Vec::new());
        for r in records {
            if r.status == Status::Accepted
                && let Some(id) = &r.extracted.event_id
            {
                accounts.push(r.account.as_str());
                ids.push(id.as_str());
            }
        }
        Lookup { accounts, ids }
    }

    async fn run(&self, tx: &Transaction<'_>, st: &Statements) -> Result<Known, StoreError> {
        let mut known = Known::new();
        if self.ids.is_empty() {
            return Ok(known);
        }
        for row in tx
            .query(&st.known_ids, &[&self.accounts, &self.ids])
            .await?
        {
            known.insert((row.get(0), row.get(1)), row.get(2));
        }
        Ok(known)
    }
}

/// Chains a run of events from `head`, deciding `duplicate` against the ids `known` and
/// the run itself (pure). Returns the rows to insert, each event's outcome and whether it
/// was streamed, and the head after the run.
fn chain_events<'a>(
    head: Head,
    mut known: Known,
    records: &[&'a EventRecord],
) -> (Columns<'a>, Vec<(Committed, bool)>, Head) {
    let mut rows = Columns::default();
    let mut out = Vec::with_capacity(records.len());
    let mut seq = head.seq;
    let mut prev = head.hash;
    for r in records {
        seq += 1;
        let mut status = r.status;
        let mut original_seq = None;
        if status == Status::Accepted
            && let Some(id) = &r.extracted.event_id
        {
            let key = (r.account.clone(), id.clone());
            match known.get(&key) {
                Some(first) => {
                    status = Status::Duplicate;
                    original_seq = Some(*first);
                }
                None => {
                    rows.dedupe(r, id, seq);
                    known.insert(key, seq);
                }
            }
        }
        let row = EventRow::new(r, status, seq, &prev);
        prev = row.hash;
        rows.event(r, &row);
        out.push((
            Committed {
                seq,
                status: row.status,
                original_seq,
            },
            row.streamed,
        ));
    }
    (rows, out, Head { seq, hash: prev })
}

/// Writes one event after `head` (inside the caller's savepoint); returns its outcome,
/// whether it was streamed, and the head after it.
async fn insert_one(
    tx: &Transaction<'_>,
    st: &Statements,
    head: Head,
    r: &EventRecord,
) -> Result<(Committed, bool, Head), StoreError> {
    let records = [r];
    let known = Lookup::of(&records).run(tx, st).await?;
    let (rows, mut done, head) = chain_events(head, known, &records);
    rows.insert(tx, st).await?;
    match done.pop() {
        Some((committed, streamed)) => Ok((committed, streamed, head)),
        None => Err(unmatched()),
    }
}

/// Tells every node's stream follower that events were committed, when some were streamed.
async fn notify_if(
    tx: &Transaction<'_>,
    st: &Statements,
    streamed: bool,
) -> Result<(), StoreError> {
    if streamed {
        tx.execute(&st.notify, &[]).await?;
    }
    Ok(())
}

/// A group's rows, column by column, for one `INSERT … SELECT FROM unnest(…)` per table.
#[derive(Default)]
struct Columns<'a> {
    seq: Vec<i64>,
    received_at: Vec<i64>,
    account: Vec<&'a str>,
    status: Vec<&'static str>,
    reason: Vec<Option<&'static str>>,
    detail: Vec<Option<&'a str>>,
    event_id: Vec<Option<&'a str>>,
    event_type: Vec<Option<&'a str>>,
    sender: Vec<Option<&'a str>>,
    source: Vec<Option<&'a str>>,
    params: Vec<Option<&'a str>>,
    forward_status: Vec<Option<&'static str>>,
    method: Vec<&'a str>,
    path: Vec<&'a str>,
    query: Vec<&'a str>,
    remote_addr: Vec<&'a str>,
    headers: Vec<&'a str>,
    content_type: Vec<Option<&'a str>>,
    body: Vec<&'a [u8]>,
    body_size: Vec<i64>,
    body_sha256: Vec<Option<&'a [u8]>>,
    body_truncated: Vec<i64>,
    handle_micros: Vec<i64>,
    hash: Vec<Vec<u8>>,
    streamed: Vec<i64>,
    dedupe_account: Vec<&'a str>,
    dedupe_id: Vec<&'a str>,
    dedupe_seq: Vec<i64>,
    delivery_seq: Vec<i64>,
    delivery_account: Vec<&'a str>,
    delivery_destination: Vec<&'a str>,
    delivery_due: Vec<i64>,
    delivery_recipient: Vec<Option<&'a str>>,
    delivery_text: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn dedupe(&mut self, r: &'a EventRecord, id: &'a str, seq: i64) {
        self.dedupe_account.push(&r.account);
        self.dedupe_id.push(id);
        self.dedupe_seq.push(seq);
    }

    fn event(&mut self, r: &'a EventRecord, row: &EventRow<'a>) {
        let e = &r.extracted;
        self.seq.push(row.seq);
        self.received_at.push(r.received_at);
        self.account.push(&r.account);
        self.status.push(row.status.as_str());
        self.reason.push(r.reason.map(|x| x.as_str()));
        self.detail.push(r.detail.as_deref());
        self.event_id.push(e.event_id.as_deref());
        self.event_type.push(e.event_type.as_deref());
        self.sender.push(e.sender.as_deref());
        self.source.push(e.source.as_deref());
        self.params.push(e.params.as_deref());
        self.forward_status.push(row.forward_status);
        self.method.push(&r.method);
        self.path.push(&r.path);
        self.query.push(&r.query);
        self.remote_addr.push(&r.remote_addr);
        self.headers.push(&r.headers);
        self.content_type.push(r.content_type.as_deref());
        self.body.push(&r.body);
        self.body_size.push(r.body_size as i64);
        self.body_sha256
            .push(r.body_sha256.as_ref().map(|h| &h[..]));
        self.body_truncated.push(i64::from(r.body_truncated));
        self.handle_micros.push(r.handle_micros);
        self.hash.push(row.hash.to_vec());
        self.streamed.push(i64::from(row.streamed));
        if let Some((to, text)) = row.deliver {
            self.delivery_seq.push(row.seq);
            self.delivery_account.push(&r.account);
            self.delivery_destination.push(CHAT);
            self.delivery_due.push(r.received_at);
            self.delivery_recipient.push(Some(to));
            self.delivery_text.push(Some(text));
        }
        if row.status == crate::event::Status::Accepted {
            for d in &r.destinations {
                self.delivery_seq.push(row.seq);
                self.delivery_account.push(&r.account);
                self.delivery_destination.push(d);
                self.delivery_due.push(r.received_at);
                self.delivery_recipient.push(None);
                self.delivery_text.push(None);
            }
        }
    }

    /// Inserts the rows, one statement per table, all sent at once.
    async fn insert(&self, tx: &Transaction<'_>, st: &Statements) -> Result<(), StoreError> {
        let columns: [&(dyn ToSql + Sync); 25] = [
            &self.seq,
            &self.received_at,
            &self.account,
            &self.status,
            &self.reason,
            &self.detail,
            &self.event_id,
            &self.event_type,
            &self.sender,
            &self.source,
            &self.params,
            &self.forward_status,
            &self.method,
            &self.path,
            &self.query,
            &self.remote_addr,
            &self.headers,
            &self.content_type,
            &self.body,
            &self.body_size,
            &self.body_sha256,
            &self.body_truncated,
            &self.handle_micros,
            &self.hash,
            &self.streamed,
        ];
        let events = tx.execute(&st.events, &columns);
        let dedupe = async {
            if self.dedupe_seq.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &st.dedupe,
                &[&self.dedupe_account, &self.dedupe_id, &self.dedupe_seq],
            )
            .await
        };
        let deliveries = async {
            if self.delivery_seq.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &st.deliveries,
                &[
                    &self.delivery_seq,
                    &self.delivery_account,
                    &self.delivery_destination,
                    &self.delivery_due,
                    &self.delivery_recipient,
                    &self.delivery_text,
                ],
            )
            .await
        };
        tokio::try_join!(events, dedupe, deliveries)?;
        Ok(())
    }
}
