//! Export of the audit log as NDJSON or CSV, streamed: a blocking reader pages through
//! the matching rows oldest first and sends chunks through a bounded channel, so a
//! million-row export runs in flat memory and stops as soon as the client goes away.
//!
//! Owns the export row shape and formats. It must never hold more than one page and one
//! chunk in memory, and never keep one read transaction open for the whole export.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::mpsc;

use super::StoreError;
use super::keys::Keys;
use super::reader::{EventFilter, EventSummary, SUMMARY_COLUMNS, select, summary};
use super::timeline::Bound;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

const PAGE: usize = 1000;
const CHUNK: usize = 64 * 1024;

/// One exported row: the listing's fields plus what an auditor needs to check it.
#[derive(Debug, Serialize)]
struct ExportRow {
    #[serde(flatten)]
    summary: EventSummary,
    detail: Option<String>,
    method: String,
    path: String,
    remote_addr: String,
    body_size: i64,
    body_sha256: Option<String>,
    hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_encoding: Option<&'static str>,
}

const CSV_HEADER: [&str; 17] = [
    "id",
    "received_at",
    "account",
    "status",
    "reason",
    "event_id",
    "event_type",
    "sender",
    "source",
    "params",
    "forward_status",
    "detail",
    "method",
    "path",
    "remote_addr",
    "body_size",
    "body_sha256",
];

/// Streams every row matching `filter` into `out` (`bound` bounds its time range, as
/// `timeline` says). Returns when done or when the receiver is gone.
pub(super) fn run(
    c: &Connection,
    (keys, bound): (&Keys, Bound),
    mut filter: EventFilter,
    format: Format,
    include_body: bool,
    out: &mpsc::Sender<Result<Bytes, String>>,
) -> Result<(), StoreError> {
    filter.oldest_first = true;
    filter.limit = PAGE;
    filter.before_seq = None;
    let columns = format!(
        "{SUMMARY_COLUMNS}, detail, method, path, remote_addr, body_size, body_sha256, hash{}",
        if include_body { ", body" } else { "" }
    );
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(&mut buf);
        let mut header: Vec<&str> = CSV_HEADER.to_vec();
        header.push("hash");
        if include_body {
            header.extend(["body", "body_encoding"]);
        }
        w.write_record(&header)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        drop(w);
    }
    loop {
        let rows: Vec<ExportRow> = select(c, &filter, &columns, (keys, bound), |r| {
            let (body, body_encoding) = if include_body {
                let raw: Vec<u8> = r.get(18)?;
                match String::from_utf8(raw) {
                    Ok(t) => (Some(t), Some("utf8")),
                    Err(e) => (Some(STANDARD.encode(e.as_bytes())), Some("base64")),
                }
            } else {
                (None, None)
            };
            Ok(ExportRow {
                summary: summary(r)?,
                detail: r.get(11)?,
                method: r.get(12)?,
                path: r.get(13)?,
                remote_addr: r.get(14)?,
                body_size: r.get(15)?,
                body_sha256: r.get::<_, Option<Vec<u8>>>(16)?.map(hex::encode),
                hash: r.get::<_, Option<Vec<u8>>>(17)?.map(hex::encode),
                body,
                body_encoding,
            })
        })?;
        let more = rows.len() > PAGE;
        for row in rows.iter().take(PAGE) {
            write_row(&mut buf, row, format)?;
            if buf.len() >= CHUNK
                && out
                    .blocking_send(Ok(Bytes::from(std::mem::take(&mut buf))))
                    .is_err()
            {
                return Ok(());
            }
        }
        match rows.get(PAGE.saturating_sub(1)) {
            Some(last) if more => filter.after_seq = Some(last.summary.seq),
            _ => break,
        }
    }
    if !buf.is_empty() {
        let _ = out.blocking_send(Ok(Bytes::from(buf)));
    }
    Ok(())
}

fn write_row(buf: &mut Vec<u8>, row: &ExportRow, format: Format) -> Result<(), StoreError> {
    let fail = |e: String| StoreError::Unavailable(format!("export: {e}"));
    match format {
        Format::Ndjson => {
            serde_json::to_writer(&mut *buf, row).map_err(|e| fail(e.to_string()))?;
            buf.push(b'\n');
        }
        Format::Csv => {
            let s = &row.summary;
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            let params = if s.params.is_null() {
                String::new()
            } else {
                s.params.to_string()
            };
            let mut record = vec![
                s.id.clone(),
                s.received_at.clone(),
                s.account.clone(),
                s.status.clone(),
                text(&s.reason),
                text(&s.event_id),
                text(&s.event_type),
                text(&s.sender),
                text(&s.source),
                params,
                text(&s.forward_status),
                text(&row.detail),
                row.method.clone(),
                row.path.clone(),
                row.remote_addr.clone(),
                row.body_size.to_string(),
                text(&row.body_sha256),
                text(&row.hash),
            ];
            if let (Some(body), Some(enc)) = (&row.body, row.body_encoding) {
                record.push(body.clone());
                record.push(enc.to_owned());
            }
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *buf);
            w.write_record(&record).map_err(|e| fail(e.to_string()))?;
            w.flush().map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(())
}
