//! The live stream: Server-Sent Events of the accepted events of listening accounts, at
//! `GET /v1/stream[?account=NAME]`, resumable with `Last-Event-ID`.
//!
//! Owns one stream's life: subscribe to the writer's commit-ordered broadcast first, then
//! replay from the durable log everything after the client's last id, then pass live events
//! on, skipping what the replay already sent. A consumer that falls behind the broadcast is
//! cut off (it resumes from the log), so a slow reader never grows memory. It must never
//! send an event twice or skip one between replay and live.

use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use super::http::{Problem, ResBody, channel_body};

/// Replayed rows per read.
const REPLAY_PAGE: usize = 500;

/// Opens a stream.
pub async fn open(
    state: &AppState,
    req: &Request<Incoming>,
    query: &str,
) -> Result<Response<ResBody>, Problem> {
    let bad = |d: String| Problem::new(StatusCode::BAD_REQUEST, "bad_query", "Bad Request", d);
    let mut account = None;
    let mut last: i64 = 0;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "account" => account = Some(v.into_owned()),
            "last_event_id" => {
                last = v
                    .parse()
                    .map_err(|_| bad("last_event_id must be an event's stream id".into()))?
            }
            other => return Err(bad(format!("unknown parameter {other:?}"))),
        }
    }
    if let Some(h) = req.headers().get("last-event-id") {
        last = h
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("Last-Event-ID must be an event's stream id".into()))?;
    }
    // Subscribe before reading the log, so nothing committed in between is missed.
    let live = state.store.subscribe();
    let (tx, rx) = mpsc::channel(64);
    let store = state.store.clone();
    let heartbeat = Duration::from_secs(state.config.stream.heartbeat_secs);
    let stopping = state.stopping.clone();
    tokio::spawn(async move {
        if let Err(e) = pump(store, account, last, live, &tx, heartbeat, stopping).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let mut res = Response::new(channel_body(rx));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn frame(seq: i64, data: &str) -> Bytes {
    Bytes::from(format!("id: {seq}\nevent: webhook\ndata: {data}\n\n"))
}

/// Feeds one stream until the client leaves, falls behind, or the gateway stops.
async fn pump(
    store: crate::store::Store,
    account: Option<String>,
    mut last: i64,
    mut live: broadcast::Receiver<std::sync::Arc<crate::store::StreamItem>>,
    tx: &mpsc::Sender<Result<Bytes, String>>,
    heartbeat: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    // Replay from the durable log.
    loop {
        let page = store
            .streamed_after(last, account.clone(), REPLAY_PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() == REPLAY_PAGE;
        for (seq, data) in page {
            if tx.send(Ok(frame(seq, &data))).await.is_err() {
                return Ok(());
            }
            last = seq;
        }
        if !full {
            break;
        }
    }
    let _ = tx.send(Ok(Bytes::from_static(b": live\n\n"))).await;
    let mut beat = tokio::time::interval(heartbeat);
    beat.tick().await;
    loop {
        tokio::select! {
            item = live.recv() => match item {
                Ok(item) => {
                    if item.seq <= last || account.as_ref().is_some_and(|a| *a != item.account) {
                        continue;
                    }
                    // A full client buffer cuts the stream rather than growing memory.
                    match tx.try_send(Ok(frame(item.seq, &item.data))) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            store.metrics().record_stream_cut();
                            return Ok(());
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                    }
                    last = item.seq;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    store.metrics().record_stream_cut();
                    let _ = tx.try_send(Ok(Bytes::from_static(b": too slow; reconnect with Last-Event-ID to resume from the log\n\n")));
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = beat.tick() => {
                // Never waits on a full buffer: a consumer that has stopped reading is cut
                // here too, instead of holding this task until it disconnects.
                match tx.try_send(Ok(Bytes::from_static(b": heartbeat\n\n"))) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        store.metrics().record_stream_cut();
                        return Ok(());
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                }
            }
            _ = tx.closed() => return Ok(()),
            _ = stopping.changed() => return Ok(()),
        }
    }
}
