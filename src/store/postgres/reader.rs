//! Reads on PostgreSQL: event search, one event, export pages, accounts, tokens, the
//! change log, delivery attempts and streamed events.
//!
//! Owns the statements and how their rows become the engine-neutral shapes. Every read
//! runs on a pooled connection of its own; it must never write.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::clock::format_micros;
use crate::event::public_id;
use crate::store::StoreError;
use crate::store::export::ExportRow;
use crate::store::query::{self, Arg, Dialect};
use crate::store::rows::{
    ChangeFilter, ChangeRow, EventDetail, EventFilter, EventSummary, Page, StoredAccount, into_page,
};
use crate::store::stats::{self, CountBy, CountRow};
use crate::tokens::{Role, TokenEntry};

const DIALECT: Dialect = Dialect {
    placeholder: '$',
    index_hints: false,
};

const SUMMARY_COLUMNS: &str = "seq, received_at, account, status, reason, event_id, event_type, sender, source, params, forward_status";

fn summary(r: &Row) -> EventSummary {
    let seq: i64 = r.get(0);
    let params: Option<String> = r.get(9);
    EventSummary {
        id: public_id(seq),
        received_at: format_micros(r.get(1)),
        account: r.get(2),
        status: r.get(3),
        reason: r.get(4),
        event_id: r.get(5),
        event_type: r.get(6),
        sender: r.get(7),
        source: r.get(8),
        params: params
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null),
        forward_status: r.get(10),
        seq,
    }
}

/// The body as shown: text when it is UTF-8, else base64.
fn shown_body(body: Vec<u8>) -> (String, &'static str) {
    match String::from_utf8(body) {
        Ok(text) => (text, "utf8"),
        Err(e) => (STANDARD.encode(e.as_bytes()), "base64"),
    }
}

async fn select(
    c: &impl GenericClient,
    f: &EventFilter,
    columns: &str,
) -> Result<Vec<Row>, StoreError> {
    let (sql, args) = query::events(f, columns, f.limit.saturating_add(1), DIALECT);
    let args: Vec<Box<dyn ToSql + Sync + Send>> = args
        .into_iter()
        .map(|a| -> Box<dyn ToSql + Sync + Send> {
            match a {
                Arg::Text(t) => Box::new(t),
                Arg::Int(n) => Box::new(n),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as _).collect();
    Ok(c.query(&sql, &refs).await?)
}

pub(super) async fn events(
    c: &impl GenericClient,
    f: &EventFilter,
) -> Result<Page<EventSummary>, StoreError> {
    let rows = select(c, f, SUMMARY_COLUMNS).await?;
    let items: Vec<EventSummary> = rows.iter().map(summary).collect();
    Ok(into_page(items, f.limit, |e| e.seq))
}

pub(super) async fn export_page(
    c: &impl GenericClient,
    f: &EventFilter,
    include_body: bool,
) -> Result<Vec<ExportRow>, StoreError> {
    let columns = format!(
        "{SUMMARY_COLUMNS}, detail, method, path, remote_addr, body_size, body_sha256, hash{}",
        if include_body { ", body" } else { "" }
    );
    let rows = select(c, f, &columns).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (body, body_encoding) = if include_body {
                let (b, e) = shown_body(r.get(18));
                (Some(b), Some(e))
            } else {
                (None, None)
            };
            ExportRow {
                summary: summary(r),
                detail: r.get(11),
                method: r.get(12),
                path: r.get(13),
                remote_addr: r.get(14),
                body_size: r.get(15),
                body_sha256: r.get::<_, Option<Vec<u8>>>(16).map(hex::encode),
                hash: r.get::<_, Option<Vec<u8>>>(17).map(hex::encode),
                body,
                body_encoding,
            }
        })
        .collect())
}

pub(super) async fn event(
    c: &impl GenericClient,
    seq: i64,
) -> Result<Option<EventDetail>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, detail, method, path, query, remote_addr, headers, content_type,
                body, body_size, body_sha256, body_truncated, handle_micros
         FROM events WHERE seq = $1"
    );
    let Some(r) = c.query_opt(&sql, &[&seq]).await? else {
        return Ok(None);
    };
    let (body, body_encoding) = shown_body(r.get(18));
    let headers: String = r.get(16);
    Ok(Some(EventDetail {
        summary: summary(&r),
        detail: r.get(11),
        method: r.get(12),
        path: r.get(13),
        query: r.get(14),
        remote_addr: r.get(15),
        headers: serde_json::from_str(&headers).unwrap_or(Value::Null),
        content_type: r.get(17),
        body,
        body_encoding,
        body_size: r.get(19),
        body_sha256: r.get::<_, Option<Vec<u8>>>(20).map(hex::encode),
        body_truncated: r.get::<_, i64>(21) != 0,
        handle_micros: r.get(22),
    }))
}

pub(super) async fn accounts(c: &impl GenericClient) -> Result<Vec<StoredAccount>, StoreError> {
    let rows = c
        .query(
            "SELECT name, spec, listening, created_at, updated_at FROM accounts ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StoredAccount {
            name: r.get(0),
            spec: r.get(1),
            listening: r.get::<_, i64>(2) != 0,
            created_at: r.get(3),
            updated_at: r.get(4),
        })
        .collect())
}

pub(super) async fn tokens(c: &impl GenericClient) -> Result<Vec<TokenEntry>, StoreError> {
    let rows = c.query("SELECT name, role, hash FROM tokens", &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let role = Role::parse(r.get::<_, &str>(1))?;
            let hash = <[u8; 32]>::try_from(r.get::<_, Vec<u8>>(2)).ok()?;
            Some(TokenEntry {
                name: r.get(0),
                role,
                hash,
            })
        })
        .collect())
}

pub(super) async fn changes(
    c: &impl GenericClient,
    f: &ChangeFilter,
) -> Result<Page<ChangeRow>, StoreError> {
    let rows = c
        .query(
            "SELECT seq, at, actor, action, account, detail FROM changes
             WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR action = $2)
               AND ($3::bigint IS NULL OR at >= $3) AND ($4::bigint IS NULL OR at < $4)
               AND ($5::bigint IS NULL OR seq < $5)
             ORDER BY seq DESC LIMIT $6",
            &[
                &f.account,
                &f.action,
                &f.since,
                &f.until,
                &f.before_seq,
                &(f.limit as i64 + 1),
            ],
        )
        .await?;
    let items: Vec<ChangeRow> = rows
        .iter()
        .map(|r| {
            let seq: i64 = r.get(0);
            let detail: String = r.get(5);
            ChangeRow {
                id: format!("chg_{seq}"),
                at: format_micros(r.get(1)),
                actor: r.get(2),
                action: r.get(3),
                account: r.get(4),
                detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                seq,
            }
        })
        .collect();
    Ok(into_page(items, f.limit, |c| c.seq))
}

/// Streamed events after `after_seq`, oldest first, as (seq, JSON), with their accounts.
pub(super) async fn streamed(
    c: &impl GenericClient,
    after_seq: i64,
    account: Option<&str>,
    limit: usize,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM events WHERE streamed = 1 AND seq > $1
           AND ($2::text IS NULL OR account = $2) ORDER BY seq LIMIT $3"
    );
    let rows = c
        .query(&sql, &[&after_seq, &account, &(limit as i64)])
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let e = summary(r);
            let json = serde_json::to_string(&e).unwrap_or_default();
            (e.seq, e.account, json)
        })
        .collect())
}

pub(super) async fn streamed_after(
    c: &impl GenericClient,
    after_seq: i64,
    account: Option<&str>,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(streamed(c, after_seq, account, limit)
        .await?
        .into_iter()
        .map(|(seq, _, json)| (seq, json))
        .collect())
}

/// Exact counts of the events received in `[since, until)`, grouped `by`.
pub(super) async fn counts(
    c: &impl GenericClient,
    by: CountBy,
    since: i64,
    until: i64,
) -> Result<Vec<CountRow>, StoreError> {
    let rows = c
        .query(&stats::count_sql(by, '$'), &[&since, &until])
        .await?;
    Ok(rows
        .iter()
        .map(|r| CountRow {
            key: r.get(0),
            status: r.get(1),
            reason: r.get(2),
            n: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
        })
        .collect())
}
