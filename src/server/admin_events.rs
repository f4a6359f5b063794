//! Admin routes for reading the audit log: event search, one event, the change log.
//!
//! Owns query-string parsing for the search filters and cursors, with a clear 400 for any
//! value it cannot use. Read-only: open to the admin and auditor roles alike. It must
//! never return an unredacted credential (the rows were redacted before they were stored).

use hyper::{Response, StatusCode};
use serde_json::json;

use super::AppState;
use super::admin::store_problem;
use super::http::{Problem, ResBody};
use crate::clock::parse_time;
use crate::event::{Reason, Status, parse_public_id};
use crate::store::audit::{Expected, KeptHead};
use crate::store::{AttemptRow, ChangeFilter, EventFilter, ExportFormat};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

fn bad(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad_query", "Bad Request", detail)
}

/// The parameters common to every listing.
struct Common {
    since: Option<i64>,
    until: Option<i64>,
    limit: usize,
    before_seq: Option<i64>,
}

fn common(pairs: &[(String, String)]) -> Result<Common, Problem> {
    let mut c = Common {
        since: None,
        until: None,
        limit: DEFAULT_LIMIT,
        before_seq: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "since" | "until" => {
                let t = parse_time(v)
                    .ok_or_else(|| bad(format!("{k}={v:?} is not an RFC 3339 time")))?;
                if k == "since" {
                    c.since = Some(t)
                } else {
                    c.until = Some(t)
                }
            }
            "limit" => {
                c.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "cursor" => {
                c.before_seq = Some(
                    v.parse()
                        .ok()
                        .filter(|n: &i64| *n > 0)
                        .ok_or_else(|| bad("cursor is not one this API returned".into()))?,
                );
            }
            _ => {}
        }
    }
    Ok(c)
}

fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Parses the event filters; `extra` names further parameters the route accepts.
fn event_filter(query: &str, extra: &[&str]) -> Result<EventFilter, Problem> {
    let pairs = pairs(query);
    let c = common(&pairs)?;
    let mut f = EventFilter {
        since: c.since,
        until: c.until,
        limit: c.limit,
        before_seq: c.before_seq,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "account" => f.account = Some(v),
            "status" => {
                if Status::parse(&v).is_none() {
                    return Err(bad(format!(
                        "status={v:?}; use accepted, duplicate or rejected"
                    )));
                }
                f.status = Some(v);
            }
            "reason" => {
                if Reason::parse(&v).is_none() {
                    let known: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                    return Err(bad(format!(
                        "reason={v:?}; known reasons: {}",
                        known.join(", ")
                    )));
                }
                f.reason = Some(v);
            }
            "sender" => f.sender = Some(v),
            "source" => f.source = Some(v),
            "event_type" => f.event_type = Some(v),
            "since" | "until" | "limit" | "cursor" => {}
            other if extra.contains(&other) => {}
            other => return Err(bad(format!("unknown filter {other:?}"))),
        }
    }
    Ok(f)
}

/// `GET /v1/events?account=&status=&reason=&sender=&source=&event_type=&since=&until=&limit=&cursor=`.
pub async fn list(state: &AppState, query: &str) -> Result<Response<ResBody>, Problem> {
    let f = event_filter(query, &[])?;
    let page = state.store.events(f).await.map_err(store_problem)?;
    Ok(super::http::json(
        StatusCode::OK,
        &json!({"events": page.items, "next_cursor": page.next_cursor}),
    ))
}

/// `GET /v1/events/export?format=ndjson|csv&include_body=true&...filters`: every matching
/// event, oldest first, streamed.
pub async fn export(state: &AppState, query: &str) -> Result<Response<ResBody>, Problem> {
    let pairs = pairs(query);
    // An export's `limit` caps the whole export (the N oldest), not a page.
    let limit = match pairs.iter().find(|(k, _)| k == "limit") {
        Some((_, v)) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("limit={v:?}; give a whole number above 0")))?,
        ),
        None => None,
    };
    let rest: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(k, _)| k != "limit"))
        .finish();
    let f = event_filter(&rest, &["format", "include_body"])?;
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let (format, content_type) = match get("format").unwrap_or("ndjson") {
        "ndjson" => (ExportFormat::Ndjson, "application/x-ndjson"),
        "csv" => (ExportFormat::Csv, "text/csv; charset=utf-8"),
        other => return Err(bad(format!("format={other:?}; use ndjson or csv"))),
    };
    let include_body = match get("include_body").unwrap_or("false") {
        "true" | "1" => true,
        "false" | "0" => false,
        other => return Err(bad(format!("include_body={other:?}; use true or false"))),
    };
    let mut rx = state.store.export(f, format, include_body);
    if let Some(n) = limit {
        let csv = matches!(format, ExportFormat::Csv);
        rx = super::export_limit::limited(rx, super::export_limit::RecordLimit::new(n, csv));
    }
    let mut res = Response::new(super::http::channel_body(rx));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(res)
}

/// `GET /v1/audit/verify[?expect_head=HEX][&expect_changes_head=HEX]`: both hash chains,
/// checked row by row, and their anchors (`store::anchoring`) with the gateway's own key.
pub async fn verify(state: &AppState, query: &str) -> Result<Response<ResBody>, Problem> {
    let pairs = pairs(query);
    let kept = |name: &str| -> Result<Option<KeptHead>, Problem> {
        match pairs.iter().find(|(k, _)| k == name) {
            Some((_, v)) => {
                let hash =
                    parse_hash(v).ok_or_else(|| bad(format!("{name} must be 64 hex digits")))?;
                let seq_name = format!("{name}_seq");
                let seq = match pairs.iter().find(|(k, _)| *k == seq_name) {
                    Some((_, n)) => Some(
                        n.parse::<i64>()
                            .map_err(|_| bad(format!("{seq_name} must be a row number")))?,
                    ),
                    None => None,
                };
                Ok(Some(KeptHead { seq, hash }))
            }
            None => Ok(None),
        }
    };
    let expected = Expected {
        events: kept("expect_head")?,
        changes: kept("expect_changes_head")?,
    };
    let reports = state.store.verify(expected).await.map_err(store_problem)?;
    let ok = reports.iter().all(|r| r.ok);
    Ok(super::http::json(
        StatusCode::OK,
        &json!({"ok": ok, "logs": reports,
            "public_key": state.store.audit_key().public_hex(), "signatures_checked": true}),
    ))
}

/// `GET /v1/audit/heads`: both logs' heads, signed now, with the public key: the file an
/// auditor keeps and later gives to `hookgate audit verify --heads`.
pub async fn heads(state: &AppState) -> Result<Response<ResBody>, Problem> {
    let file = state.store.signed_heads().await.map_err(store_problem)?;
    Ok(super::http::json(StatusCode::OK, &file))
}

/// Parses a hex chain hash.
pub fn parse_hash(text: &str) -> Option<crate::chain::Hash> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| crate::chain::Hash::try_from(b.as_slice()).ok())
}

/// `POST /v1/audit/prune {"before": RFC3339}`: prunes events received before that time.
pub async fn prune(
    state: &AppState,
    caller: &crate::tokens::Caller,
    body: serde_json::Value,
) -> Result<Response<ResBody>, Problem> {
    let before = body
        .get("before")
        .and_then(serde_json::Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| bad("give {\"before\": \"<RFC 3339 time>\"}".into()))?;
    let pruned = prune_before(
        state,
        &format!("{} ({})", caller.name, caller.role.as_str()),
        before,
    )
    .await
    .map_err(store_problem)?;
    Ok(super::http::json(
        StatusCode::OK,
        &json!({"pruned": pruned}),
    ))
}

/// Prunes in steps of 10,000 rows so the writer is never held long; returns the total.
/// Dedupe ids of pruned events older than the replay horizon (`retention.dedupe_days`, by
/// the gateway's clock) are forgotten in the same writes.
pub async fn prune_before(
    state: &AppState,
    actor: &str,
    before: i64,
) -> Result<u64, crate::store::StoreError> {
    let days = state.config.retention.dedupe_days;
    let dedupe_before = (days > 0).then(|| {
        let horizon = i64::try_from(days.saturating_mul(86_400_000_000)).unwrap_or(i64::MAX);
        state.clock.now_micros().saturating_sub(horizon)
    });
    let mut total = 0;
    loop {
        let n = state
            .store
            .admin(crate::store::AdminWrite::PruneEvents {
                before,
                max_rows: 10_000,
                dedupe_before,
                key: state.store.audit_key(),
                change: crate::store::Change {
                    at: crate::clock::now_micros(),
                    actor: actor.to_owned(),
                    action: "audit.pruned".into(),
                    account: None,
                    detail: String::new(),
                },
            })
            .await?;
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}

/// `GET /v1/events/{id}`.
pub async fn show(state: &AppState, id: &str) -> Result<Response<ResBody>, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("there is no event {id:?}"),
        )
    };
    let seq = parse_public_id(id).ok_or_else(not_found)?;
    let event = state
        .store
        .event(seq)
        .await
        .map_err(store_problem)?
        .ok_or_else(not_found)?;
    let mut value = serde_json::to_value(&event).unwrap_or_default();
    let deliveries = state
        .store
        .deliveries_of(seq)
        .await
        .map_err(store_problem)?;
    // The chat message is a delivery like the others; its attempts are also shown in the
    // shape the console reads.
    let chat_attempts: Vec<AttemptRow> = deliveries
        .iter()
        .filter(|d| d.destination == crate::destination::CHAT)
        .flat_map(|d| &d.history)
        .map(|a| AttemptRow {
            attempt: a.attempt,
            at: a.at.clone(),
            outcome: a.outcome.clone(),
            http_status: a.http_status,
            detail: a.detail.clone(),
        })
        .collect();
    value["forward_attempts"] = serde_json::to_value(chat_attempts).unwrap_or_default();
    value["deliveries"] = serde_json::to_value(deliveries).unwrap_or_default();
    if value["forward_status"] == "skipped"
        && let Some(account) = value["account"]
            .as_str()
            .and_then(|a| state.registry.get(a))
    {
        value["forward_note"] = super::account_view::skipped_because(
            &account.spec,
            value["event_type"].as_str(),
            value["sender"].as_str(),
        )
        .into();
    }
    Ok(super::http::json(StatusCode::OK, &value))
}

/// `POST /v1/events/{id}/redeliver`: queues a dead or no-session delivery again.
pub async fn redeliver(
    state: &AppState,
    caller: &crate::tokens::Caller,
    id: &str,
) -> Result<Response<ResBody>, Problem> {
    let seq = parse_public_id(id).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not Found",
            format!("there is no event {id:?}"),
        )
    })?;
    let account = state
        .store
        .event(seq)
        .await
        .map_err(store_problem)?
        .map(|e| e.summary.account);
    let filter = crate::store::RedriveFilter {
        destination: Some(crate::destination::CHAT.into()),
        seq: Some(seq),
        statuses: vec!["dead".into(), "no_session".into()],
        ..Default::default()
    };
    state
        .store
        .admin(crate::store::AdminWrite::Destination(
            crate::store::DestinationWrite::Redrive {
                filter,
                change: crate::store::Change {
                    at: crate::clock::now_micros(),
                    actor: format!("{} ({})", caller.name, caller.role.as_str()),
                    action: "event.redelivered".into(),
                    account,
                    detail: json!({"id": id}).to_string(),
                },
            },
        ))
        .await
        .map_err(store_problem)?;
    state.deliveries.notify_one();
    Ok(super::http::json(
        StatusCode::ACCEPTED,
        &json!({"id": id, "forward_status": "pending"}),
    ))
}

/// `GET /v1/changes?account=&action=&since=&until=&limit=&cursor=`.
pub async fn changes(state: &AppState, query: &str) -> Result<Response<ResBody>, Problem> {
    let pairs = pairs(query);
    let c = common(&pairs)?;
    let mut f = ChangeFilter {
        since: c.since,
        until: c.until,
        limit: c.limit,
        before_seq: c.before_seq,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "account" => f.account = Some(v),
            "action" => f.action = Some(v),
            "since" | "until" | "limit" | "cursor" => {}
            other => return Err(bad(format!("unknown filter {other:?}"))),
        }
    }
    let page = state.store.changes(f).await.map_err(store_problem)?;
    Ok(super::http::json(
        StatusCode::OK,
        &json!({"changes": page.items, "next_cursor": page.next_cursor}),
    ))
}
