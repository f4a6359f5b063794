//! CSV exports are safe to open in a spreadsheet: a cell a sender controls that begins
//! like a formula (`=`, `+`, `-`, `@`, tab, carriage return) is exported with a leading
//! `'`, and everything else exactly as stored. This module is listed in `main.rs` once
//! `store::export` writes its CSV cells through `hookgate::csv_cell::neutralise`.

use hyper::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn csv_export_neutralises_cells_that_a_spreadsheet_would_run() {
    let gw = spawn_gateway().await;
    gw.create_account(json!({"name": "csv", "allow_unverified": true,
        "paths": {"event_id": "$.id", "event_type": "$.type", "sender": "$.who", "source": "$.src"}}))
        .await;
    let body = json!({
        "id": "=HYPERLINK(\"http://evil.example\",\"open\")",
        "type": "+1+cmd|' /C calc'!A0",
        "who": "@SUM(1+1)",
        "src": "-2+3",
    })
    .to_string();
    let a = gw.post_hook("csv", &[], body.clone()).await;
    assert_eq!(a.status, 200, "{:?}", a.json());
    let plain = gw
        .post_hook("csv", &[], r#"{"id":"ev-1","type":"-12"}"#)
        .await;
    assert_eq!(plain.status, 200);
    let answer = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::GET,
            "/v1/events/export?format=csv&account=csv",
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
    let mut reader = csv::ReaderBuilder::new().from_reader(answer.body.as_ref());
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), 2);
    let cell = |row: usize, name: &str| rows[row][column(name)].to_owned();
    assert_eq!(
        cell(0, "event_id"),
        "'=HYPERLINK(\"http://evil.example\",\"open\")"
    );
    assert_eq!(cell(0, "event_type"), "'+1+cmd|' /C calc'!A0");
    assert_eq!(cell(0, "sender"), "'@SUM(1+1)");
    assert_eq!(cell(0, "source"), "'-2+3");
    // Nothing else changes: an ordinary id and a plain negative number stay as they are.
    assert_eq!(cell(1, "event_id"), "ev-1");
    assert_eq!(cell(1, "event_type"), "-12");
    // Every cell of the export is safe, whichever column it is in.
    for row in &rows {
        for value in row.iter() {
            let first = value.chars().next();
            let unsafe_start = matches!(first, Some('=' | '+' | '@' | '\t' | '\r'))
                || (first == Some('-') && value.parse::<f64>().is_err());
            assert!(!unsafe_start, "{value:?} would run in a spreadsheet");
        }
    }
    // NDJSON is data, not a spreadsheet: it keeps the values as stored.
    let ndjson = gw
        .call_as(
            AUDITOR_TOKEN,
            Method::GET,
            "/v1/events/export?account=csv",
            None,
        )
        .await;
    let first: serde_json::Value = serde_json::from_slice(
        ndjson
            .body
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default(),
    )
    .expect("a JSON line");
    assert_eq!(
        first["event_id"],
        "=HYPERLINK(\"http://evil.example\",\"open\")"
    );
    gw.stop().await;
}
