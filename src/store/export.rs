//! Export of the audit log as NDJSON or CSV, streamed: pages of matching rows, oldest
//! first, are asked of the engine one at a time and sent on as chunks through a bounded
//! channel, so a million-row export runs in flat memory and stops as soon as the client
//! goes away.
//!
//! Owns the export row shape and formats, for every engine. It must never hold more than
//! one page and one chunk in memory, and never ask an engine for more than a page at once.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Engine, EventFilter, EventSummary, StoreError};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

/// Rows asked of the engine at a time.
pub const PAGE: usize = 1000;
const CHUNK: usize = 64 * 1024;

/// One exported row: the listing's fields plus what an auditor needs to check it.
#[derive(Debug, Serialize)]
pub struct ExportRow {
    /// The listing's fields.
    #[serde(flatten)]
    pub summary: EventSummary,
    /// Why it was rejected, in words.
    pub detail: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Peer address.
    pub remote_addr: String,
    /// Size of the body as received.
    pub body_size: i64,
    /// SHA-256 of the whole body, hex.
    pub body_sha256: Option<String>,
    /// The row's chain hash, hex.
    pub hash: Option<String>,
    /// The stored body, when asked for: text when it is UTF-8, else base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `utf8` or `base64`, with the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<&'static str>,
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

/// Streams every row matching `filter`, oldest first, as chunks of `format`. The receiver
/// ends when the export is complete; a failure arrives as an `Err` item last.
pub fn stream(
    engine: Arc<dyn Engine>,
    mut filter: EventFilter,
    format: Format,
    include_body: bool,
) -> mpsc::Receiver<Result<Bytes, String>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        filter.oldest_first = true;
        filter.limit = PAGE;
        filter.before_seq = None;
        if let Err(e) = run(&*engine, filter, format, include_body, &tx).await {
            tracing::warn!(error = %e, "export stopped early");
            let _ = tx.send(Err(e.to_string())).await;
        }
    });
    rx
}

async fn run(
    engine: &dyn Engine,
    mut filter: EventFilter,
    format: Format,
    include_body: bool,
    out: &mpsc::Sender<Result<Bytes, String>>,
) -> Result<(), StoreError> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    if format == Format::Csv {
        let mut header: Vec<&str> = CSV_HEADER.to_vec();
        header.push("hash");
        if include_body {
            header.extend(["body", "body_encoding"]);
        }
        write_csv(&mut buf, &header)?;
    }
    loop {
        let rows = engine.export_page(filter.clone(), include_body).await?;
        let more = rows.len() > PAGE;
        for row in rows.iter().take(PAGE) {
            write_row(&mut buf, row, format)?;
            if buf.len() >= CHUNK
                && out
                    .send(Ok(Bytes::from(std::mem::take(&mut buf))))
                    .await
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
        let _ = out.send(Ok(Bytes::from(buf))).await;
    }
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("export: {e}"))
}

fn write_csv<I, T>(buf: &mut Vec<u8>, record: I) -> Result<(), StoreError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(&mut *buf);
    w.write_record(record).map_err(fail)?;
    w.flush().map_err(fail)
}

fn write_row(buf: &mut Vec<u8>, row: &ExportRow, format: Format) -> Result<(), StoreError> {
    match format {
        Format::Ndjson => {
            serde_json::to_writer(&mut *buf, row).map_err(fail)?;
            buf.push(b'\n');
            Ok(())
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
            // A cell an auditor's spreadsheet would run as a formula is made inert.
            write_csv(
                buf,
                record
                    .iter()
                    .map(|c| crate::csv_cell::neutralise(c).into_owned()),
            )
        }
    }
}
