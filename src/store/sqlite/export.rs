//! One page of an export, read from SQLite: the listing's columns plus what an auditor
//! needs to check each row, and the body when asked for.
//!
//! Owns the export's statement only; paging and formats are engine-neutral
//! (`store::export`). Each page is its own read, so an export never holds one read
//! transaction open from start to end.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::Connection;

use super::reader::{SUMMARY_COLUMNS, select, summary};
use crate::store::StoreError;
use crate::store::export::ExportRow;
use crate::store::rows::EventFilter;

/// Up to `filter.limit + 1` rows matching `filter`, in its order.
pub(super) fn page(
    c: &Connection,
    filter: &EventFilter,
    include_body: bool,
) -> Result<Vec<ExportRow>, StoreError> {
    let columns = format!(
        "{SUMMARY_COLUMNS}, detail, method, path, remote_addr, body_size, body_sha256, hash{}",
        if include_body { ", body" } else { "" }
    );
    select(c, filter, &columns, |r| {
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
    })
}
