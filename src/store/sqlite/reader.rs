//! Reads: event search with cursor pagination, one event, accounts, tokens, the change log.
//!
//! Owns a small pool of read-only connections and the queries. Each read runs on the
//! blocking pool so it never stalls the async workers. It must never write: its
//! connections are opened read-only.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;

use crate::clock::format_micros;
use crate::event::public_id;
use crate::store::StoreError;
use crate::store::query::{self, Arg, Dialect};
use crate::store::rows::{
    ChangeFilter, ChangeRow, EventDetail, EventFilter, EventSummary, Page, StoredAccount, into_page,
};
use crate::store::stats::{self, CountBy, CountRow};
use crate::tokens::{Role, TokenEntry};

/// The read connections.
pub(super) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: PathBuf, busy_timeout_ms: u64) -> Self {
        Readers {
            path,
            busy_timeout: Duration::from_millis(busy_timeout_ms),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        Ok(conn)
    }

    /// Closes the idle connections (a read still running keeps its own until it ends).
    pub(super) fn close(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Runs a read on a pooled connection, on the blocking pool.
    pub(super) async fn run<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let me = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = me.take()?;
            let out = f(&conn);
            let mut idle = me.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < 8 {
                idle.push(conn);
            }
            out
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("read task failed: {e}"))))
    }
}

pub(super) fn accounts(c: &Connection) -> Result<Vec<StoredAccount>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT spec, listening, created_at, updated_at, name FROM accounts ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredAccount {
            spec: r.get(0)?,
            listening: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
            name: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn tokens(c: &Connection) -> Result<Vec<TokenEntry>, StoreError> {
    let mut stmt = c.prepare("SELECT name, role, hash FROM tokens")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, role, hash) = row?;
        if let (Some(role), Ok(hash)) = (Role::parse(&role), <[u8; 32]>::try_from(hash)) {
            out.push(TokenEntry { name, role, hash });
        }
    }
    Ok(out)
}

pub(super) const SUMMARY_COLUMNS: &str = "seq, received_at, account, status, reason, event_id, event_type, sender, source, params, forward_status";

pub(super) fn summary(r: &Row<'_>) -> rusqlite::Result<EventSummary> {
    let seq: i64 = r.get(0)?;
    let params: Option<String> = r.get(9)?;
    Ok(EventSummary {
        id: public_id(seq),
        received_at: format_micros(r.get(1)?),
        account: r.get(2)?,
        status: r.get(3)?,
        reason: r.get(4)?,
        event_id: r.get(5)?,
        event_type: r.get(6)?,
        sender: r.get(7)?,
        source: r.get(8)?,
        params: params
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null),
        forward_status: r.get(10)?,
        seq,
    })
}

/// A page of events matching `f`, in its order.
pub(super) fn events(c: &Connection, f: &EventFilter) -> Result<Page<EventSummary>, StoreError> {
    let items = select(c, f, SUMMARY_COLUMNS, summary)?;
    Ok(into_page(items, f.limit, |e| e.seq))
}

/// Up to `f.limit + 1` rows of `columns` matching `f`, in its order, each made by `map`:
/// one statement (`store::query`), which SQLite answers from the ordinary index that fits.
pub(super) fn select<T>(
    c: &Connection,
    f: &EventFilter,
    columns: &str,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let dialect = Dialect {
        placeholder: '?',
        index_hints: true,
    };
    let (sql, args) = query::events(f, columns, f.limit.saturating_add(1), dialect);
    let args = args.into_iter().map(|a| match a {
        Arg::Text(t) => SqlValue::Text(t),
        Arg::Int(n) => SqlValue::Integer(n),
    });
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args), map)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn event(c: &Connection, seq: i64) -> Result<Option<EventDetail>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, detail, method, path, query, remote_addr, headers, content_type,
                body, body_size, body_sha256, body_truncated, handle_micros
         FROM events WHERE seq = ?1"
    );
    let row = c
        .prepare_cached(&sql)?
        .query_row(params![seq], |r| {
            let body: Vec<u8> = r.get(18)?;
            let (body, body_encoding) = match String::from_utf8(body) {
                Ok(text) => (text, "utf8"),
                Err(e) => (STANDARD.encode(e.as_bytes()), "base64"),
            };
            let headers: String = r.get(16)?;
            Ok(EventDetail {
                summary: summary(r)?,
                detail: r.get(11)?,
                method: r.get(12)?,
                path: r.get(13)?,
                query: r.get(14)?,
                remote_addr: r.get(15)?,
                headers: serde_json::from_str(&headers).unwrap_or(Value::Null),
                content_type: r.get(17)?,
                body,
                body_encoding,
                body_size: r.get(19)?,
                body_sha256: r.get::<_, Option<Vec<u8>>>(20)?.map(hex::encode),
                body_truncated: r.get(21)?,
                handle_micros: r.get(22)?,
            })
        })
        .optional()?;
    Ok(row)
}

pub(super) fn changes(c: &Connection, f: &ChangeFilter) -> Result<Page<ChangeRow>, StoreError> {
    let mut sql =
        String::from("SELECT seq, at, actor, action, account, detail FROM changes WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    for (column, value) in [("account", &f.account), ("action", &f.action)] {
        if let Some(v) = value {
            args.push(SqlValue::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    for (cond, value) in [
        ("at >=", f.since),
        ("at <", f.until),
        ("seq <", f.before_seq),
    ] {
        if let Some(v) = value {
            args.push(SqlValue::Integer(v));
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        }
    }
    args.push(SqlValue::Integer(f.limit as i64 + 1));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    let mut stmt = c.prepare_cached(&sql)?;
    let items: Vec<ChangeRow> = stmt
        .query_map(params_from_iter(args), |r| {
            let seq: i64 = r.get(0)?;
            let detail: String = r.get(5)?;
            Ok(ChangeRow {
                id: format!("chg_{seq}"),
                at: format_micros(r.get(1)?),
                actor: r.get(2)?,
                action: r.get(3)?,
                account: r.get(4)?,
                detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                seq,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(into_page(items, f.limit, |c| c.seq))
}

/// Streamed events after `after_seq`, oldest first, as (seq, JSON).
pub(super) fn streamed_after(
    c: &Connection,
    after_seq: i64,
    account: Option<&str>,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM events WHERE streamed = 1 AND seq > ?1 {} ORDER BY seq LIMIT ?2",
        if account.is_some() {
            "AND account = ?3"
        } else {
            "AND ?3 IS NULL"
        }
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after_seq, limit as i64, account], |r| {
        let e = summary(r)?;
        Ok((e.seq, serde_json::to_string(&e).unwrap_or_default()))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Exact counts of the events received in `[since, until)`, grouped `by`.
pub(super) fn counts(
    c: &Connection,
    by: CountBy,
    since: i64,
    until: i64,
) -> Result<Vec<CountRow>, StoreError> {
    let mut stmt = c.prepare_cached(&stats::count_sql(by, '?'))?;
    let rows = stmt
        .query_map(params![since, until], |r| {
            Ok(CountRow {
                key: r.get(0)?,
                status: r.get(1)?,
                reason: r.get(2)?,
                n: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
